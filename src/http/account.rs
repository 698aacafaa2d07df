//! The signed-in person's own pages: account and "devices and sessions".

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::AppState;
use super::browser::{checked_form, current_session, html, see_other};
use super::cookies;
use super::errors::failure_page;
use super::views::{AccountPage, SessionLine, SessionsPage, SignedOutPage, when};
use crate::auth::account;
use crate::auth::devices::{self, EndOwn};
use crate::auth::session::{ActiveSession, device_label};
use crate::store::User;

/// The signed-in person, or a redirect to the sign-in page.
pub(crate) async fn signed_in(
    state: &AppState,
    req: &HttpRequest,
) -> Result<ActiveSession, HttpResponse> {
    match current_session(state, req).await? {
        Some(a) => Ok(a),
        None => Err(see_other("/login")),
    }
}

/// GET /account
pub async fn account_page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let active = match signed_in(&state, &req).await {
        Ok(a) => a,
        Err(res) => return res,
    };
    render_account(&state, &req, &active.user, None)
}

/// The account page, with an optional notice (after a change on another page).
pub(crate) fn render_account(
    state: &AppState,
    req: &HttpRequest,
    user: &User,
    notice: Option<String>,
) -> HttpResponse {
    let csrf = cookies::csrf(&state.provider, req, state.secure_cookies());
    let view = AccountPage {
        email: user.email.clone(),
        name: user.name.clone(),
        email_verified: user.email_verified,
        notice,
        csrf_token: csrf.token.clone(),
        admin: crate::admin::access::is_admin(user),
    };
    html(StatusCode::OK, &csrf, view.render())
}

async fn render_sessions(
    state: &AppState,
    req: &HttpRequest,
    active: &ActiveSession,
    notice: Option<String>,
) -> HttpResponse {
    let p = &state.provider;
    let devices = match devices::list_devices(p, &active.user, p.now()).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "could not list sessions");
            return failure_page(&e);
        }
    };
    let lines = devices
        .into_iter()
        .map(|d| SessionLine {
            current: d.session_id == active.session.id,
            device: d.label,
            ip: d.ip,
            clients: d.clients.join(", "),
            created: when(d.created_at),
            last_seen: when(d.last_seen_at),
            expires: when(d.ends_at),
            id: d.session_id,
        })
        .collect();
    let csrf = cookies::csrf(p, req, state.secure_cookies());
    let view = SessionsPage {
        sessions: lines,
        csrf_token: csrf.token.clone(),
        notice,
    };
    html(StatusCode::OK, &csrf, view.render())
}

/// GET /account/sessions
pub async fn sessions_page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    match signed_in(&state, &req).await {
        Ok(active) => render_sessions(&state, &req, &active, None).await,
        Err(res) => res,
    }
}

fn signed_out(state: &AppState, req: &HttpRequest) -> HttpResponse {
    let csrf = cookies::csrf(&state.provider, req, state.secure_cookies());
    let mut res = html(StatusCode::OK, &csrf, SignedOutPage.render());
    let _ = res.add_cookie(&cookies::clear_session_cookie(state.secure_cookies()));
    res
}

#[derive(Deserialize)]
struct RevokeForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    session_id: String,
}

/// POST /account/sessions/revoke: end one of my sessions.
pub async fn revoke_one(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let p = &state.provider;
    let form: RevokeForm = match checked_form(&state, &req, payload).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let active = match signed_in(&state, &req).await {
        Ok(a) => a,
        Err(res) => return res,
    };
    let ended = match devices::end_own_session(p, &active.user, &form.session_id).await {
        Ok(EndOwn::Ended(session)) => session,
        Ok(EndOwn::NotTheirs) => {
            let notice = "That session had already ended.".to_string();
            return render_sessions(&state, &req, &active, Some(notice)).await;
        }
        Err(e) => {
            tracing::error!(error = %e, "could not end a session");
            return failure_page(&e);
        }
    };
    if ended.id == active.session.id {
        return signed_out(&state, &req);
    }
    let notice = format!("Signed out {}.", device_label(ended.user_agent.as_deref()));
    render_sessions(&state, &req, &active, Some(notice)).await
}

#[derive(Deserialize)]
struct RevokeAllForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    keep_current: String,
}

/// POST /account/sessions/revoke-all: "sign out all (other) devices".
pub async fn revoke_all(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let p = &state.provider;
    let form: RevokeAllForm = match checked_form(&state, &req, payload).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let active = match signed_in(&state, &req).await {
        Ok(a) => a,
        Err(res) => return res,
    };
    let keep = (form.keep_current == "yes").then_some(active.session.id.as_str());
    let ended = match account::sign_out_everywhere(p, &active.user, keep, &active.user.id).await {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "could not end sessions");
            return failure_page(&e);
        }
    };
    if keep.is_none() {
        return signed_out(&state, &req);
    }
    let notice = format!(
        "Signed out {ended} other device{}.",
        if ended == 1 { "" } else { "s" }
    );
    render_sessions(&state, &req, &active, Some(notice)).await
}

csrf_forms!(RevokeForm, RevokeAllForm);
