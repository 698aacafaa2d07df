//! The second step's page: the one-time-code form after a right password (or for a step-up),
//! and where a user who must use a second factor and has none is sent.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::AppState;
use super::browser::{
    checked_form, html, see_other, too_many_requests, with_session_cookies, within_signin_quota,
};
use super::cookies;
use super::errors::{failure_page, page, server_error_page};
use super::views::SecondStepPage;
use crate::auth::mfa::ceremony::CEREMONY_TTL;
use crate::auth::mfa::second_step::{self, Browser, Completed, SecondStepError};
use crate::auth::signin::{SecondStepMethods, SignInRules};
use crate::secret::SecretString;
use crate::store::Client;

pub const INVALID_CODE: &str = "That code is not valid. Try the current code, or a recovery code.";

/// Where a user who must use a second factor and has none sets one up: the account's security
/// page (signed in with the password just now, so no re-authentication is asked).
pub fn enrolment_url() -> String {
    "/account/security".into()
}

pub(crate) fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-tessera_second_step"
    } else {
        "tessera_second_step"
    }
}

/// The cookie holding the pending second step's handle: host-only, HttpOnly, gone with the
/// step (five minutes).
pub(crate) fn handle_cookie(handle: SecretString, secure: bool) -> Cookie<'static> {
    let mut c = Cookie::build(cookie_name(secure), handle.into_inner())
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .finish();
    c.set_max_age(CookieDuration::seconds(CEREMONY_TTL));
    c
}

fn clear_handle_cookie(secure: bool) -> Cookie<'static> {
    let mut c = handle_cookie(SecretString::new(String::new()), secure);
    c.set_max_age(CookieDuration::seconds(0));
    c
}

/// The page asking for the second factor, with the cookie of the pending step when one was
/// just begun.
pub(crate) fn render(
    state: &AppState,
    req: &HttpRequest,
    status: StatusCode,
    client: Option<&Client>,
    methods: SecondStepMethods,
    error: Option<&str>,
    handle: Option<SecretString>,
) -> HttpResponse {
    let secure = state.secure_cookies();
    let csrf = cookies::csrf(&state.provider, req, secure);
    let view = SecondStepPage {
        csrf_token: csrf.token.clone(),
        client: client.map(|c| c.id.clone()),
        error: error.map(String::from),
        security_keys: methods.security_key,
    };
    let mut res = html(status, &csrf, view.render());
    if let Some(h) = handle
        && res.add_cookie(&handle_cookie(h, secure)).is_err()
    {
        return server_error_page();
    }
    res
}

/// GET /login/second-step: the form again (a reload); without a pending step, the sign-in.
pub async fn second_step_page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if req.cookie(cookie_name(state.secure_cookies())).is_none() {
        return see_other("/login");
    }
    render(
        &state,
        &req,
        StatusCode::OK,
        None,
        Default::default(),
        None,
        None,
    )
}

#[derive(Deserialize)]
struct CodeForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    code: String,
}

fn gone(secure: bool) -> HttpResponse {
    let mut res = page(
        StatusCode::BAD_REQUEST,
        "This sign-in took too long",
        "For your security the sign-in expired or was already completed. Go back to the \
         application, or sign in again.",
    );
    if res.add_cookie(&clear_handle_cookie(secure)).is_err() {
        return server_error_page();
    }
    res
}

/// POST /login/second-step
pub async fn second_step(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let p = &state.provider;
    let secure = state.secure_cookies();
    let form: CodeForm = match checked_form(&state, &req, payload).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let (addr, ip_key) = match within_signin_quota(&state, &req).await {
        Ok(v) => v,
        Err(res) => return res,
    };
    let Some(handle) = req
        .cookie(cookie_name(secure))
        .map(|c| c.value().to_string())
    else {
        return gone(secure);
    };
    let previous_session = match super::browser::current_session(&state, &req).await {
        Ok(a) => a.map(|a| a.session.id),
        Err(res) => return res,
    };
    let rules = SignInRules {
        hasher: &state.passwords,
        throttle: state.config.throttle_policy(),
        max_sessions: state.config.max_sessions_per_user,
        session_policy: state.config.session_limit_policy,
    };
    let browser = Browser {
        handle,
        ip: addr.map(|a| a.to_string()),
        ip_key,
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(String::from),
        previous_session,
    };
    let again = |status: StatusCode, message: &str| {
        render(
            &state,
            &req,
            status,
            None,
            SecondStepMethods::default(),
            Some(message),
            None,
        )
    };
    let completed = match second_step::complete_with_code(p, &rules, browser, &form.code).await {
        Ok(c) => c,
        Err(SecondStepError::Gone) => return gone(secure),
        Err(SecondStepError::InvalidCode) => {
            return again(StatusCode::UNAUTHORIZED, INVALID_CODE);
        }
        Err(SecondStepError::Locked(wait)) => {
            let minutes = (wait + 59) / 60;
            let message = format!(
                "Too many wrong codes. For your security, try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            );
            let mut res = again(StatusCode::TOO_MANY_REQUESTS, &message);
            res.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(wait));
            return res;
        }
        Err(SecondStepError::Limited(wait)) => return too_many_requests(wait),
        Err(SecondStepError::TooManySessions) => {
            return page(
                StatusCode::FORBIDDEN,
                "Too many sessions",
                super::browser::TOO_MANY_SESSIONS,
            );
        }
        Err(e @ (SecondStepError::Internal(_) | SecondStepError::Unavailable(_))) => {
            tracing::error!(error = %e, "second step failed on our side");
            return failure_page(&e);
        }
    };
    finish(&state, &req, completed).await
}

/// Sets the session's new cookie and goes on: back into the authorization request, or to the
/// account page.
pub(crate) async fn finish(
    state: &AppState,
    req: &HttpRequest,
    completed: Completed,
) -> HttpResponse {
    let secure = state.secure_cookies();
    let Completed {
        cookie_value,
        active,
        request,
        raised,
    } = completed;
    let mut res = match request {
        Some(params) => super::browser::resume(state, req, params, &active, !raised).await,
        // A step-up without an authorization request is the admin console's
        // re-authentication (`http::admin`): it opens the console window, then the console.
        None if raised => {
            let idle = super::admin::idle_timeout(state);
            if crate::admin::access::reauthenticated(&state.provider, &active, idle).await {
                see_other("/admin")
            } else {
                see_other("/account")
            }
        }
        None => see_other("/account"),
    };
    if res.add_cookie(&clear_handle_cookie(secure)).is_err() {
        return server_error_page();
    }
    with_session_cookies(state, req, res, cookie_value, &active.user.id)
}

csrf_forms!(CodeForm);
