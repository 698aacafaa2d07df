//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): the rules are in
//! [`crate::oauth::logout`]; this renders its decisions. With a valid `id_token_hint` for this
//! browser's session the session ends at once; otherwise the person confirms.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::AppState;
use super::browser::{checked_form, current_session, html, see_other};
use super::cookies;
use super::errors::{failure_page, page};
use super::views::{LogoutPage, SignedOutPage};
use crate::auth::session::ActiveSession;
use crate::oauth::logout::{self, LogoutRejection, Reopened};
use crate::oauth::params::Params;

fn invalid(rejection: LogoutRejection) -> HttpResponse {
    page(
        StatusCode::BAD_REQUEST,
        "This sign-out link is not valid",
        rejection.message(),
    )
}

fn finish(state: &AppState, req: &HttpRequest, target: Option<&str>) -> HttpResponse {
    let mut res = match target {
        Some(t) => see_other(t),
        None => {
            let csrf = cookies::csrf(&state.provider, req, state.secure_cookies());
            html(StatusCode::OK, &csrf, SignedOutPage.render())
        }
    };
    let _ = res.add_cookie(&cookies::clear_session_cookie(state.secure_cookies()));
    res
}

/// Ends the browser's session, if it has one.
async fn sign_out(state: &AppState, active: Option<&ActiveSession>) -> Result<(), HttpResponse> {
    let Some(active) = active else {
        return Ok(());
    };
    logout::sign_out(&state.provider, active)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "could not end a session");
            failure_page(&e)
        })
}

/// GET /logout
pub async fn logout_get(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let p = &state.provider;
    let params = match Params::parse(req.query_string()) {
        Ok(params) => params,
        Err(e) => {
            return page(
                StatusCode::BAD_REQUEST,
                "This sign-out link is not valid",
                &format!("The link is malformed: {}.", e.description()),
            );
        }
    };
    let request = match logout::understand(p, &params).await {
        Ok(r) => r,
        Err(rejection) => return invalid(rejection),
    };
    let active = match current_session(&state, &req).await {
        Ok(a) => a,
        Err(res) => return res,
    };
    if request.ends_without_asking(active.as_ref()) {
        if let Err(res) = sign_out(&state, active.as_ref()).await {
            return res;
        }
        return finish(&state, &req, request.target.as_deref());
    }
    let csrf = cookies::csrf(p, &req, state.secure_cookies());
    let view = LogoutPage {
        csrf_token: csrf.token.clone(),
        request: logout::seal(p, &params, p.now()),
    };
    html(StatusCode::OK, &csrf, view.render())
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    request: String,
}

/// POST /logout: the person confirmed.
pub async fn logout_post(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let p = &state.provider;
    let form: LogoutForm = match checked_form(&state, &req, payload).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let request = match logout::reopen(p, &form.request, p.now()).await {
        Ok(r) => r,
        Err(Reopened::Expired) => {
            return page(
                StatusCode::BAD_REQUEST,
                "This sign-out took too long",
                "Go back to the application and try again.",
            );
        }
        Err(Reopened::Rejected(rejection)) => return invalid(rejection),
    };
    let active = match current_session(&state, &req).await {
        Ok(a) => a,
        Err(res) => return res,
    };
    if let Err(res) = sign_out(&state, active.as_ref()).await {
        return res;
    }
    finish(&state, &req, request.and_then(|r| r.target).as_deref())
}

csrf_forms!(LogoutForm);
