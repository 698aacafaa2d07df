//! Pages for passwords and account links: forgot / reset, change, self-registration, email
//! verification. Each handler checks CSRF and rate limits, then calls one use case in
//! `auth::recovery` or `auth::account`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::AppState;
use super::account::{render_account, signed_in};
use super::browser::{checked_form, current_session, html, see_other, too_many_requests};
use super::cookies;
use super::errors::{page, server_error_page};
use super::views::{ChangePasswordPage, ForgotPage, NoticePage, RegisterPage, ResetPage};
use crate::auth::account::{self, ChangeError, ChangeRules};
use crate::auth::recovery::{self, Links, RecoveryError};
use crate::auth::throttle;
use crate::crypto::SecretString;

fn links(state: &AppState) -> Links<'_> {
    Links {
        mailer: &state.mailer,
        reset_ttl: state.config.reset_link_ttl.as_secs() as i64,
        verification_ttl: state.config.verification_link_ttl.as_secs() as i64,
    }
}

fn notice(
    state: &AppState,
    req: &HttpRequest,
    title: &str,
    message: &str,
    link: Option<(&str, &str)>,
) -> HttpResponse {
    let csrf = cookies::csrf(&state.provider, req, state.secure_cookies());
    let view = NoticePage {
        title: title.into(),
        message: message.into(),
        link_href: link.map(|(h, _)| h.to_string()),
        link_text: link.map(|(_, t)| t.to_string()).unwrap_or_default(),
    };
    html(StatusCode::OK, &csrf, view.render())
}

/// Limits account mails per hour for one key (an IP address or an email).
async fn mail_limited(state: &AppState, key: &str) -> Option<i64> {
    let p = &state.provider;
    throttle::rate_limited(
        &p.fleet,
        &format!("mail:{key}"),
        state.config.account_mail_rate_limit,
        3600,
        p.now(),
    )
    .await
}

/// The key of the client's address for per-address limits.
fn ip(req: &HttpRequest) -> String {
    super::client_addr::client_addr(req)
        .map(|a| a.limit_key())
        .unwrap_or_else(|| "-".into())
}

/// GET /password/forgot
pub async fn forgot_page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let csrf = cookies::csrf(&state.provider, &req, state.secure_cookies());
    let view = ForgotPage {
        csrf_token: csrf.token.clone(),
    };
    html(StatusCode::OK, &csrf, view.render())
}

#[derive(Deserialize)]
struct ForgotForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    email: String,
}

/// POST /password/forgot: the same answer whether or not the account exists.
pub async fn forgot(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let p = &state.provider;
    let form: ForgotForm = match checked_form(&state, &req, payload).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let email = form.email.trim().to_lowercase();
    if let Some(wait) = mail_limited(&state, &ip(&req)).await {
        return too_many_requests(wait);
    }
    // Over the per-email limit the answer stays the same; the mail is simply not sent again.
    if email.len() <= 254
        && mail_limited(&state, &email).await.is_none()
        && let Err(e) = recovery::request_password_reset(p, &links(&state), &email).await
    {
        tracing::error!(error = %e, "password reset request failed");
        return server_error_page();
    }
    let minutes = state.config.reset_link_ttl.as_secs().div_ceil(60);
    notice(
        &state,
        &req,
        "Check your email",
        &format!(
            "If an account exists for {email}, we sent it a link to choose a new password. The link works for {minutes} minutes."
        ),
        Some(("/login", "Back to sign in")),
    )
}

/// The `token` of a link; a malformed query reads as no token (and gets the friendly page).
fn link_token(req: &HttpRequest) -> String {
    #[derive(Deserialize)]
    struct Query {
        #[serde(default)]
        token: String,
    }
    serde_urlencoded::from_str::<Query>(req.query_string())
        .map(|q| q.token)
        .unwrap_or_default()
}

fn expired_link(state: &AppState, req: &HttpRequest) -> HttpResponse {
    let mut res = notice(
        state,
        req,
        "This link has expired",
        "The link is no longer valid: it was already used, or it is too old. Ask for a new one.",
        Some(("/password/forgot", "Send a new link")),
    );
    *res.status_mut() = StatusCode::BAD_REQUEST;
    res
}

fn reset_form(
    state: &AppState,
    req: &HttpRequest,
    token: &str,
    status: StatusCode,
    error: Option<String>,
) -> HttpResponse {
    let csrf = cookies::csrf(&state.provider, req, state.secure_cookies());
    let policy = state.config.password_policy();
    let view = ResetPage {
        csrf_token: csrf.token.clone(),
        token: token.to_string(),
        error,
        min_chars: policy.min_chars,
        max_chars: policy.max_chars,
    };
    html(status, &csrf, view.render())
}

/// GET /password/reset?token=…
pub async fn reset_page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let token = link_token(&req);
    match recovery::reset_link_usable(&state.provider, &token).await {
        Ok(true) => reset_form(&state, &req, &token, StatusCode::OK, None),
        Ok(false) => expired_link(&state, &req),
        Err(e) => {
            tracing::error!(error = %e, "reset link lookup failed");
            server_error_page()
        }
    }
}

#[derive(Deserialize)]
struct ResetForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

/// POST /password/reset
pub async fn reset(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let p = &state.provider;
    let form: ResetForm = match checked_form(&state, &req, payload).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    if form.password != form.confirm {
        return reset_form(
            &state,
            &req,
            &form.token,
            StatusCode::BAD_REQUEST,
            Some("The two passwords differ.".into()),
        );
    }
    let password = SecretString::new(form.password.clone());
    match recovery::complete_password_reset(
        p,
        &state.passwords,
        &state.config.password_policy(),
        &form.token,
        &password,
    )
    .await
    {
        Ok(_) => {
            let mut res = notice(
                &state,
                &req,
                "Your password was changed",
                "For your security, every device was signed out. Sign in with your new password.",
                Some(("/login", "Sign in")),
            );
            let _ = res.add_cookie(&cookies::clear_session_cookie(state.secure_cookies()));
            res
        }
        Err(RecoveryError::Policy(v)) => reset_form(
            &state,
            &req,
            &form.token,
            StatusCode::BAD_REQUEST,
            Some(v.to_string()),
        ),
        Err(RecoveryError::InvalidLink) => expired_link(&state, &req),
        Err(e) => {
            tracing::error!(error = %e, "password reset failed");
            server_error_page()
        }
    }
}

fn change_form(
    state: &AppState,
    req: &HttpRequest,
    email: &str,
    status: StatusCode,
    error: Option<String>,
) -> HttpResponse {
    let csrf = cookies::csrf(&state.provider, req, state.secure_cookies());
    let policy = state.config.password_policy();
    let view = ChangePasswordPage {
        csrf_token: csrf.token.clone(),
        email: email.to_string(),
        error,
        min_chars: policy.min_chars,
        max_chars: policy.max_chars,
    };
    html(status, &csrf, view.render())
}

/// GET /account/password
pub async fn change_page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    match current_session(&state, &req).await {
        Ok(Some(active)) => change_form(&state, &req, &active.user.email, StatusCode::OK, None),
        Ok(None) => see_other("/login"),
        Err(res) => res,
    }
}

#[derive(Deserialize)]
struct ChangeForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    current: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

/// POST /account/password
pub async fn change(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let p = &state.provider;
    let form: ChangeForm = match checked_form(&state, &req, payload).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let active = match signed_in(&state, &req).await {
        Ok(a) => a,
        Err(res) => return res,
    };
    let email = active.user.email.clone();
    if form.password != form.confirm {
        return change_form(
            &state,
            &req,
            &email,
            StatusCode::BAD_REQUEST,
            Some("The two new passwords differ.".into()),
        );
    }
    let rules = ChangeRules {
        hasher: &state.passwords,
        policy: &state.config.password_policy(),
        throttle: &state.config.throttle_policy(),
    };
    let result = account::change_password(
        p,
        &rules,
        &active.user,
        &SecretString::new(form.current.clone()),
        &SecretString::new(form.password.clone()),
        &active.session.id,
    )
    .await;
    match result {
        Ok(()) => {
            let notice = "Your password was changed. Your other devices were signed out.";
            render_account(&state, &req, &active.user, Some(notice.into()))
        }
        Err(ChangeError::WrongPassword) => change_form(
            &state,
            &req,
            &email,
            StatusCode::UNAUTHORIZED,
            Some("The current password is not right.".into()),
        ),
        Err(ChangeError::Locked(wait)) => too_many_requests(wait),
        Err(ChangeError::Policy(v)) => change_form(
            &state,
            &req,
            &email,
            StatusCode::BAD_REQUEST,
            Some(v.to_string()),
        ),
        Err(ChangeError::Account(e)) => {
            tracing::error!(error = %e, "password change failed");
            server_error_page()
        }
    }
}

fn register_form(
    state: &AppState,
    req: &HttpRequest,
    email: &str,
    name: &str,
    status: StatusCode,
    error: Option<String>,
) -> HttpResponse {
    let csrf = cookies::csrf(&state.provider, req, state.secure_cookies());
    let policy = state.config.password_policy();
    let view = RegisterPage {
        csrf_token: csrf.token.clone(),
        email: email.to_string(),
        name: name.to_string(),
        error,
        min_chars: policy.min_chars,
        max_chars: policy.max_chars,
    };
    html(status, &csrf, view.render())
}

fn registration_closed() -> HttpResponse {
    page(
        StatusCode::NOT_FOUND,
        "Accounts are created by your administrator",
        "This service does not offer self-registration. Ask your administrator for an account.",
    )
}

/// GET /register (only when `self_registration` is on)
pub async fn register_page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if !state.config.self_registration {
        return registration_closed();
    }
    register_form(&state, &req, "", "", StatusCode::OK, None)
}

#[derive(Deserialize)]
struct RegisterForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

/// POST /register: the same answer for a new and an already registered email.
pub async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    if !state.config.self_registration {
        return registration_closed();
    }
    let p = &state.provider;
    let form: RegisterForm = match checked_form(&state, &req, payload).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    if let Some(wait) = mail_limited(&state, &ip(&req)).await {
        return too_many_requests(wait);
    }
    let name = (!form.name.trim().is_empty()).then_some(form.name.as_str());
    let password = SecretString::new(form.password.clone());
    match recovery::register(
        p,
        &state.passwords,
        &state.config.password_policy(),
        &links(&state),
        &form.email,
        name,
        &password,
    )
    .await
    {
        Ok(()) => notice(
            &state,
            &req,
            "Check your email",
            &format!(
                "We sent a message to {}. Open the link in it to confirm your address, then sign in.",
                form.email.trim().to_lowercase()
            ),
            Some(("/login", "Go to sign in")),
        ),
        Err(RecoveryError::Policy(v)) => register_form(
            &state,
            &req,
            &form.email,
            &form.name,
            StatusCode::BAD_REQUEST,
            Some(v.to_string()),
        ),
        Err(RecoveryError::InvalidEmail) => register_form(
            &state,
            &req,
            &form.email,
            &form.name,
            StatusCode::BAD_REQUEST,
            Some("Enter a valid email address.".into()),
        ),
        Err(e) => {
            tracing::error!(error = %e, "registration failed");
            server_error_page()
        }
    }
}

/// GET /verify-email?token=…
pub async fn verify_email(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    match recovery::verify_email(&state.provider, &link_token(&req)).await {
        Ok(user) => notice(
            &state,
            &req,
            "Email confirmed",
            &format!("Thank you: {} is confirmed.", user.email),
            Some(("/account", "Go to your account")),
        ),
        Err(RecoveryError::InvalidLink) => {
            let mut res = notice(
                &state,
                &req,
                "This link has expired",
                "The confirmation link was already used or is too old. Sign in and send a new one from your account page.",
                Some(("/account", "Go to your account")),
            );
            *res.status_mut() = StatusCode::BAD_REQUEST;
            res
        }
        Err(e) => {
            tracing::error!(error = %e, "email verification failed");
            server_error_page()
        }
    }
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf_token: String,
}

/// POST /account/verify-email: send a confirmation link to the signed-in user.
pub async fn send_verification(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let p = &state.provider;
    if let Err(res) = checked_form::<CsrfOnly>(&state, &req, payload).await {
        return res;
    }
    let active = match signed_in(&state, &req).await {
        Ok(a) => a,
        Err(res) => return res,
    };
    if let Some(wait) = mail_limited(&state, &active.user.email).await {
        return too_many_requests(wait);
    }
    if let Err(e) = recovery::send_verification(p, &links(&state), &active.user).await {
        tracing::error!(error = %e, "could not send a verification link");
        return server_error_page();
    }
    let notice = format!("We sent a confirmation link to {}.", active.user.email);
    render_account(&state, &req, &active.user, Some(notice))
}

csrf_forms!(ForgotForm, ResetForm, ChangeForm, RegisterForm, CsrfOnly);
