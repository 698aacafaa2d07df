//! Pages for passwords and account links: forgot / reset, change, self-registration, email
//! verification. Each handler checks CSRF and rate limits, then calls one use case in
//! `auth::recovery` or `auth::account`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::AppState;
use super::account::{render_account, signed_in};
use super::browser::read_form;
use super::browser::{checked_form, current_session, html, see_other, too_many_requests};
use super::cookies;
use super::errors::{failure_page, page, server_error_page};
use super::views::{
    ChangePasswordPage, ForgotPage, NoticePage, RegisterPage, ResetPage, VerifyEmailPage,
};
use crate::auth::account::{self, ChangeError, ChangeRules};
use crate::auth::email::{self, Email};
use crate::auth::recovery::{self, Links, RecoveryError};
use crate::auth::throttle::{self, MailKey};
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

/// Limits account mails per hour for one address or one email (see
/// [`throttle::mail_rate_limited`]).
async fn mail_limited(state: &AppState, key: MailKey<'_>) -> Option<i64> {
    let p = &state.provider;
    let limit = state.config.account_mail_rate_limit;
    throttle::mail_rate_limited(&p.fleet, key, limit, p.now()).await
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
    let email = email::normalise(&form.email);
    if let Some(wait) = mail_limited(&state, MailKey::Address(&ip(&req))).await {
        return too_many_requests(wait);
    }
    // Over the per-email limit the answer stays the same; the mail is simply not sent again.
    // The work itself runs off the response path, for existing and unknown accounts alike.
    if email.len() <= 254 && mail_limited(&state, MailKey::Email(&email)).await.is_none() {
        recovery::request_password_reset_in_background(p, &links(&state), &email);
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
    let query = req.query_string();
    if crate::oauth::params::check_count(query).is_err() {
        return String::new();
    }
    serde_urlencoded::from_str::<Query>(query)
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
            failure_page(&e)
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
            failure_page(&e)
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
        Ok(Some(cookie)) => {
            let notice = "Your password was changed. Your other devices were signed out.";
            let mut res = render_account(&state, &req, &active.user, Some(notice.into()));
            let secure = state.secure_cookies();
            let renewed = cookies::session_cookie(cookie, secure, p.settings.session_absolute_ttl);
            if res.add_cookie(&renewed).is_err() {
                tracing::error!("could not set the renewed session cookie");
                return server_error_page();
            }
            res
        }
        // This session ended while the password changed (signed out elsewhere).
        Ok(None) => see_other("/login"),
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
            failure_page(&e)
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
    if let Some(wait) = mail_limited(&state, MailKey::Address(&ip(&req))).await {
        return too_many_requests(wait);
    }
    let form_again = |status: StatusCode, error: String| {
        register_form(&state, &req, &form.email, &form.name, status, Some(error))
    };
    let Ok(email) = Email::parse(&form.email) else {
        return form_again(
            StatusCode::BAD_REQUEST,
            "Enter a valid email address.".into(),
        );
    };
    let name = (!form.name.trim().is_empty()).then_some(form.name.as_str());
    let password = SecretString::new(form.password.clone());
    match recovery::register(
        p,
        &state.passwords,
        &state.config.password_policy(),
        &links(&state),
        &email,
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
                "We sent a message to {email}. Open the link in it to confirm your address, then sign in."
            ),
            Some(("/login", "Go to sign in")),
        ),
        Err(RecoveryError::Policy(v)) => form_again(StatusCode::BAD_REQUEST, v.to_string()),
        Err(e) => {
            tracing::error!(error = %e, "registration failed");
            failure_page(&e)
        }
    }
}

fn used_confirmation_link(state: &AppState, req: &HttpRequest) -> HttpResponse {
    let mut res = notice(
        state,
        req,
        "This link has expired",
        "The confirmation link was already used or is too old. Sign in and send a new one from your account page.",
        Some(("/account", "Go to your account")),
    );
    *res.status_mut() = StatusCode::BAD_REQUEST;
    res
}

/// GET /verify-email?token=…: a page with a button; opening the link spends nothing, so a mail
/// scanner that prefetches it does not use it up.
pub async fn verify_email_page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let token = link_token(&req);
    match recovery::verification_link_usable(&state.provider, &token).await {
        Ok(true) => {
            // The form needs no CSRF cookie (see `VerifyEmailForm`).
            let no_csrf = cookies::Csrf {
                token: String::new(),
                set_cookie: None,
            };
            html(StatusCode::OK, &no_csrf, VerifyEmailPage { token }.render())
        }
        Ok(false) => used_confirmation_link(&state, &req),
        Err(e) => {
            tracing::error!(error = %e, "confirmation link lookup failed");
            failure_page(&e)
        }
    }
}

/// The confirmation form. It carries no CSRF token on purpose: the link's token is the secret
/// that authorises the action, and a forged post could only confirm an address for whoever
/// already holds its link (it signs nobody in). So the link works in any browser, even one
/// that has no cookie of ours yet.
#[derive(Deserialize)]
struct VerifyEmailForm {
    #[serde(default)]
    token: String,
}

/// POST /verify-email: spends the link.
pub async fn verify_email(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let form: VerifyEmailForm = match read_form(&req, payload).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    match recovery::verify_email(&state.provider, &form.token).await {
        Ok(user) => notice(
            &state,
            &req,
            "Email confirmed",
            &format!("Thank you: {} is confirmed.", user.email),
            Some(("/account", "Go to your account")),
        ),
        Err(RecoveryError::InvalidLink) => used_confirmation_link(&state, &req),
        Err(e) => {
            tracing::error!(error = %e, "email verification failed");
            failure_page(&e)
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
    if let Some(wait) = mail_limited(&state, MailKey::Email(&active.user.email)).await {
        return too_many_requests(wait);
    }
    if let Err(e) = recovery::send_verification(p, &links(&state), &active.user).await {
        tracing::error!(error = %e, "could not send a verification link");
        return failure_page(&e);
    }
    let notice = format!("We sent a confirmation link to {}.", active.user.email);
    render_account(&state, &req, &active.user, Some(notice))
}

csrf_forms!(ForgotForm, ResetForm, ChangeForm, RegisterForm, CsrfOnly);
