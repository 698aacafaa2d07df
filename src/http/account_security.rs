//! `/account/security`: the signed-in person's second factors and recovery codes. Each handler
//! reads the form (CSRF checked), finds the session, calls one use case of
//! `auth::mfa::manage`, and renders; a change that needs the password again renders the
//! "confirm it's you" page carrying the change, which it then makes.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::AppState;
use super::account::signed_in;
use super::browser::{checked_form, html, too_many_requests};
use super::cookies;
use super::errors::failure_page;
use super::views::when;
use super::views_mfa::{
    FactorLine, ReauthPage, RecoveryCodesPage, SecurityPage, TotpEnrolmentPage,
};
use crate::auth::mfa::manage::{self, ChangeContext, ChangeError};
use crate::auth::mfa::recovery_codes::SET_SIZE;
use crate::auth::mfa::{self, FactorInfo, FactorName, MfaError, TotpEnrolment};
use crate::auth::session::ActiveSession;
use crate::auth::throttle::ThrottlePolicy;
use crate::crypto::SecretString;

const DEFAULT_APP_NAME: &str = "Authenticator app";

/// A change the "confirm it's you" page carries until the password is typed.
enum Change {
    AddApp,
    Remove(String),
    RegenerateCodes,
}

impl Change {
    fn parse(then: &str, factor_id: &str) -> Option<Self> {
        match then {
            "add-totp" => Some(Self::AddApp),
            "remove" if !factor_id.is_empty() && factor_id.len() <= 128 => {
                Some(Self::Remove(factor_id.to_string()))
            }
            "regenerate" => Some(Self::RegenerateCodes),
            _ => None,
        }
    }

    fn fields(&self) -> (&'static str, &str) {
        match self {
            Self::AddApp => ("add-totp", ""),
            Self::Remove(id) => ("remove", id),
            Self::RegenerateCodes => ("regenerate", ""),
        }
    }
}

fn context<'a>(
    state: &'a AppState,
    req: &HttpRequest,
    throttle: &'a ThrottlePolicy,
) -> ChangeContext<'a> {
    ChangeContext {
        mailer: &state.mailer,
        throttle,
        ip: super::client_addr::client_addr(req).map(|a| a.to_string()),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(256).collect()),
    }
}

fn line(f: &FactorInfo) -> FactorLine {
    FactorLine {
        id: f.id.clone(),
        kind: f.kind_label().into(),
        name: f.name.clone(),
        added: when(f.created_at),
        last_used: f.last_used_at.map(when),
    }
}

/// The security page, with a notice (after a change) or an error.
async fn render_security(
    state: &AppState,
    req: &HttpRequest,
    active: &ActiveSession,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> HttpResponse {
    let p = &state.provider;
    let user_id = &active.user.id;
    let (factors, codes_left) = match (
        mfa::factors(p, user_id).await,
        mfa::recovery_codes_left(p, user_id).await,
    ) {
        (Ok(f), Ok(n)) => (f, n),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "could not read the user's factors");
            return failure_page(&e);
        }
    };
    let (apps, keys): (Vec<_>, Vec<_>) = factors.iter().partition(|f| f.is_authenticator_app());
    let csrf = cookies::csrf(p, req, state.secure_cookies());
    let view = SecurityPage {
        csrf_token: csrf.token.clone(),
        notice,
        error,
        apps: apps.into_iter().map(line).collect(),
        keys: keys.into_iter().map(line).collect(),
        has_factors: !factors.is_empty(),
        codes_left,
        codes_in_a_set: SET_SIZE,
    };
    html(status, &csrf, view.render())
}

/// GET /account/security
pub async fn security_page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    match signed_in(&state, &req).await {
        Ok(active) => render_security(&state, &req, &active, StatusCode::OK, None, None).await,
        Err(res) => res,
    }
}

async fn reauth_page(
    state: &AppState,
    req: &HttpRequest,
    active: &ActiveSession,
    change: &Change,
    status: StatusCode,
    error: Option<&str>,
) -> HttpResponse {
    let p = &state.provider;
    let code_accepted = match mfa::has_second_factor(p, &active.user.id).await {
        Ok(has) => has,
        Err(e) => {
            tracing::error!(error = %e, "could not read the user's factors");
            return failure_page(&e);
        }
    };
    let csrf = cookies::csrf(p, req, state.secure_cookies());
    let (then, factor_id) = change.fields();
    let view = ReauthPage {
        csrf_token: csrf.token.clone(),
        email: active.user.email.clone(),
        then: then.into(),
        factor_id: factor_id.into(),
        error: error.map(String::from),
        code_accepted,
    };
    html(status, &csrf, view.render())
}

fn enrolment_page(
    state: &AppState,
    req: &HttpRequest,
    active: &ActiveSession,
    e: &TotpEnrolment,
    name: &str,
    status: StatusCode,
    error: Option<&str>,
) -> HttpResponse {
    let p = &state.provider;
    let csrf = cookies::csrf(p, req, state.secure_cookies());
    let view = TotpEnrolmentPage {
        csrf_token: csrf.token.clone(),
        enrolment: manage::enrolment_token(p, &active.session.id, &e.id),
        qr_svg: e.qr_svg.clone(),
        key: e.key.expose().to_string(),
        name: name.to_string(),
        error: error.map(String::from),
        expires: when(e.expires_at),
    };
    html(status, &csrf, view.render())
}

fn codes_page(heading: &str, intro: &str, codes: &[SecretString]) -> HttpResponse {
    let view = RecoveryCodesPage {
        heading: heading.into(),
        intro: intro.into(),
        codes: codes.iter().map(|c| c.expose().to_string()).collect(),
    };
    // No form on this page: it needs no CSRF cookie.
    let no_csrf = cookies::Csrf {
        token: String::new(),
        set_cookie: None,
    };
    html(StatusCode::OK, &no_csrf, view.render())
}

/// Makes a change (its recent authentication checked by the use case) and answers it.
async fn make(
    state: &AppState,
    req: &HttpRequest,
    active: &ActiveSession,
    change: Change,
) -> HttpResponse {
    let p = &state.provider;
    let throttle = state.config.throttle_policy();
    let ctx = context(state, req, &throttle);
    let result = match &change {
        Change::AddApp => match manage::start_totp(p, active).await {
            Ok(e) => {
                return enrolment_page(state, req, active, &e, "", StatusCode::OK, None);
            }
            Err(e) => e,
        },
        Change::Remove(id) => match manage::remove(p, &ctx, active, id).await {
            Ok(f) => {
                let notice = format!(
                    "{} was removed. Your other devices were signed out.",
                    f.name
                );
                return render_security(state, req, active, StatusCode::OK, Some(notice), None)
                    .await;
            }
            Err(e) => e,
        },
        Change::RegenerateCodes => match manage::regenerate(p, &ctx, active).await {
            Ok(codes) => {
                return codes_page(
                    "Your new recovery codes",
                    "Your old recovery codes no longer work. Your other devices were signed out.",
                    &codes,
                );
            }
            Err(e) => e,
        },
    };
    refused(state, req, active, &change, result).await
}

async fn refused(
    state: &AppState,
    req: &HttpRequest,
    active: &ActiveSession,
    change: &Change,
    e: ChangeError,
) -> HttpResponse {
    match e {
        ChangeError::ReauthNeeded => {
            reauth_page(state, req, active, change, StatusCode::OK, None).await
        }
        ChangeError::Locked(wait) => too_many_requests(wait),
        ChangeError::NoSuchFactor => not_on_the_account(state, req, active).await,
        e => {
            tracing::error!(error = %e, "could not change the user's factors");
            failure_page(&e)
        }
    }
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf_token: String,
}

#[derive(Deserialize)]
struct RemoveForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    factor_id: String,
}

#[derive(Deserialize)]
struct ConfirmForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    enrolment: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    code: String,
}

#[derive(Deserialize)]
struct ReauthForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    then: String,
    #[serde(default)]
    factor_id: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
}

csrf_forms!(CsrfOnly, RemoveForm, ConfirmForm, ReauthForm);

/// The form (CSRF checked) and the signed-in person, or the answer to give instead.
async fn form_and_session<T: super::browser::CsrfForm>(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<(T, ActiveSession), HttpResponse> {
    let form = checked_form::<T>(state, req, payload).await?;
    let active = signed_in(state, req).await?;
    Ok((form, active))
}

/// POST /account/security/totp: begin adding an authenticator app.
pub async fn add_app(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    match form_and_session::<CsrfOnly>(&state, &req, payload).await {
        Ok((_, active)) => make(&state, &req, &active, Change::AddApp).await,
        Err(res) => res,
    }
}

/// POST /account/security/remove
pub async fn remove(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let (form, active) = match form_and_session::<RemoveForm>(&state, &req, payload).await {
        Ok(v) => v,
        Err(res) => return res,
    };
    match Change::parse("remove", &form.factor_id) {
        Some(change) => make(&state, &req, &active, change).await,
        None => not_on_the_account(&state, &req, &active).await,
    }
}

/// POST /account/security/recovery-codes: a new set, shown once.
pub async fn regenerate_codes(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    match form_and_session::<CsrfOnly>(&state, &req, payload).await {
        Ok((_, active)) => make(&state, &req, &active, Change::RegenerateCodes).await,
        Err(res) => res,
    }
}

/// POST /account/security/confirm-password: the password again, then the change it carries.
pub async fn confirm_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let (form, active) = match form_and_session::<ReauthForm>(&state, &req, payload).await {
        Ok(v) => v,
        Err(res) => return res,
    };
    let Some(change) = Change::parse(&form.then, &form.factor_id) else {
        return render_security(
            &state,
            &req,
            &active,
            StatusCode::BAD_REQUEST,
            None,
            Some("Choose the change again.".into()),
        )
        .await;
    };
    let p = &state.provider;
    let throttle = state.config.throttle_policy();
    let confirmed = if form.code.trim().is_empty() {
        let password = SecretString::new(form.password.clone());
        manage::confirm_password(p, &state.passwords, &throttle, &active, &password).await
    } else {
        manage::confirm_code(p, &throttle, &active, &form.code).await
    };
    let wrong = match confirmed {
        Ok(()) => return make(&state, &req, &active, change).await,
        Err(ChangeError::WrongPassword) => "The password is not right.",
        Err(ChangeError::Mfa(MfaError::InvalidCode)) => "That code is not right.",
        Err(e) => return refused(&state, &req, &active, &change, e).await,
    };
    reauth_page(
        &state,
        &req,
        &active,
        &change,
        StatusCode::UNAUTHORIZED,
        Some(wrong),
    )
    .await
}

/// POST /account/security/totp/confirm: the first code from the app finishes adding it.
pub async fn confirm_app(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let (form, active) = match form_and_session::<ConfirmForm>(&state, &req, payload).await {
        Ok(v) => v,
        Err(res) => return res,
    };
    let p = &state.provider;
    let name = match FactorName::parse(&form.name, DEFAULT_APP_NAME) {
        Ok(n) => n,
        Err(e) => {
            return enrolment_again(
                &state,
                &req,
                &active,
                &form,
                StatusCode::BAD_REQUEST,
                &e.to_string(),
            )
            .await;
        }
    };
    let throttle = state.config.throttle_policy();
    let ctx = context(&state, &req, &throttle);
    match manage::finish_totp(p, &ctx, &active, &form.enrolment, &name, &form.code).await {
        Ok(confirmed) => {
            let sessions = "Your other devices were signed out.";
            match confirmed.recovery_codes {
                Some(codes) => codes_page(
                    "Your recovery codes",
                    &format!(
                        "{} was added. {sessions} If you lose your phone, sign in with one of these codes instead of a code from the app.",
                        name.as_str()
                    ),
                    &codes,
                ),
                None => {
                    let notice = format!("{} was added. {sessions}", name.as_str());
                    render_security(&state, &req, &active, StatusCode::OK, Some(notice), None).await
                }
            }
        }
        Err(ChangeError::Mfa(MfaError::InvalidCode)) => {
            let error = "That code is not right. Enter the code the app shows now.";
            enrolment_again(
                &state,
                &req,
                &active,
                &form,
                StatusCode::UNAUTHORIZED,
                error,
            )
            .await
        }
        Err(ChangeError::OtherSession | ChangeError::Mfa(MfaError::EnrolmentGone)) => {
            gone(&state, &req, &active).await
        }
        Err(e) => refused(&state, &req, &active, &Change::AddApp, e).await,
    }
}

/// The enrolment page again (same key, same QR code) with `error`, while the setup lasts.
async fn enrolment_again(
    state: &AppState,
    req: &HttpRequest,
    active: &ActiveSession,
    form: &ConfirmForm,
    status: StatusCode,
    error: &str,
) -> HttpResponse {
    let p = &state.provider;
    let Some(id) = manage::open_enrolment_token(p, &active.session.id, &form.enrolment) else {
        return gone(state, req, active).await;
    };
    match manage::show_totp(p, &active.user, &id).await {
        Ok(e) => enrolment_page(state, req, active, &e, &form.name, status, Some(error)),
        Err(MfaError::EnrolmentGone) => gone(state, req, active).await,
        Err(e) => {
            tracing::error!(error = %e, "could not show the enrolment again");
            failure_page(&e)
        }
    }
}

async fn not_on_the_account(
    state: &AppState,
    req: &HttpRequest,
    active: &ActiveSession,
) -> HttpResponse {
    let error = "That sign-in method is not on your account (it may have been removed already).";
    render_security(
        state,
        req,
        active,
        StatusCode::NOT_FOUND,
        None,
        Some(error.into()),
    )
    .await
}

/// The enrolment is over (expired, finished, replaced) or not this session's.
async fn gone(state: &AppState, req: &HttpRequest, active: &ActiveSession) -> HttpResponse {
    let error = "This setup has expired or was started elsewhere. Add the app again.";
    render_security(
        state,
        req,
        active,
        StatusCode::BAD_REQUEST,
        None,
        Some(error.into()),
    )
    .await
}
