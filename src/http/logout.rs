//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0). With a valid `id_token_hint`
//! for this browser's session the session ends at once; otherwise the person confirms, so a
//! third-party page cannot sign people out.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::AppState;
use super::browser::{checked_form, current_session, html, see_other};
use super::cookies;
use super::errors::{failure_page, page};
use super::views::{LogoutPage, SignedOutPage};
use crate::oauth::Provider;
use crate::oauth::authorize::{LOGOUT_PURPOSE, open_params, seal_params, with_query};
use crate::oauth::params::Params;
use crate::store::ClientStore;

#[derive(Deserialize)]
struct HintClaims {
    aud: serde_json::Value,
    #[serde(default)]
    sid: Option<String>,
}

struct LogoutRequest {
    /// Where to send the browser afterwards (already carrying `state`).
    target: Option<String>,
    /// The session the relying party asked to end, from a valid id_token_hint.
    hinted_sid: Option<String>,
}

async fn understand(p: &Provider, params: &Params) -> Result<LogoutRequest, String> {
    let hint = match params.get("id_token_hint") {
        Some(h) => Some(
            p.keys()
                .verify_ignoring_expiry::<HintClaims>(h, None, &p.settings.issuer)
                .map_err(|_| {
                    "The sign-out request carries an invalid id_token_hint.".to_string()
                })?,
        ),
        None => None,
    };
    let hinted_client = hint.as_ref().and_then(|h| match &h.aud {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(a) => a.first().and_then(|v| v.as_str()).map(String::from),
        _ => None,
    });
    let client_id = match (params.get("client_id"), hinted_client) {
        (Some(c), Some(h)) if c != h => {
            return Err("client_id does not match the id_token_hint.".into());
        }
        (Some(c), _) => Some(c.to_string()),
        (None, h) => h,
    };
    let target = match params.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let client = match &client_id {
                Some(id) => p
                    .store
                    .find_client(id)
                    .await
                    .map_err(|_| "Something went wrong on our side.".to_string())?,
                None => None,
            };
            let registered =
                client.is_some_and(|c| c.post_logout_redirect_uris.iter().any(|r| r == uri));
            if !registered {
                return Err(
                    "The post_logout_redirect_uri is not registered for this application.".into(),
                );
            }
            let mut pairs = Vec::new();
            if let Some(s) = params.get("state") {
                pairs.push(("state", s));
            }
            Some(with_query(uri, &pairs))
        }
    };
    Ok(LogoutRequest {
        target,
        hinted_sid: hint.and_then(|h| h.sid),
    })
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

async fn end_current(state: &AppState, req: &HttpRequest) -> Result<(), HttpResponse> {
    let p = &state.provider;
    if let Some(active) = current_session(state, req).await? {
        p.revoke_session(&active.session.id).await.map_err(|e| {
            tracing::error!(error = %e, "could not end a session");
            failure_page(&e)
        })?;
        tracing::info!(session_id = %active.session.id, user_id = %active.user.id, "signed out");
        p.audit(
            crate::audit::AuditEvent::new("session.logout")
                .actor(&active.user.id)
                .subject(&active.user.id)
                .detail("session", active.session.id.clone()),
        )
        .await;
    }
    Ok(())
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
    let request = match understand(p, &params).await {
        Ok(r) => r,
        Err(message) => {
            return page(
                StatusCode::BAD_REQUEST,
                "This sign-out link is not valid",
                &message,
            );
        }
    };
    let active = match current_session(&state, &req).await {
        Ok(a) => a,
        Err(res) => return res,
    };
    let confirmed = match (&active, &request.hinted_sid) {
        (None, _) => true,
        (Some(a), Some(sid)) => *sid == a.session.id,
        (Some(_), None) => false,
    };
    if confirmed {
        if let Err(res) = end_current(&state, &req).await {
            return res;
        }
        return finish(&state, &req, request.target.as_deref());
    }
    let csrf = cookies::csrf(p, &req, state.secure_cookies());
    let view = LogoutPage {
        csrf_token: csrf.token.clone(),
        request: seal_params(p, LOGOUT_PURPOSE, &params, p.now()),
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
    let target = if form.request.is_empty() {
        None
    } else {
        let Some(params) = open_params(p, LOGOUT_PURPOSE, &form.request, p.now()) else {
            return page(
                StatusCode::BAD_REQUEST,
                "This sign-out took too long",
                "Go back to the application and try again.",
            );
        };
        match understand(p, &params).await {
            Ok(r) => r.target,
            Err(message) => {
                return page(
                    StatusCode::BAD_REQUEST,
                    "This sign-out link is not valid",
                    &message,
                );
            }
        }
    };
    if let Err(res) = end_current(&state, &req).await {
        return res;
    }
    finish(&state, &req, target.as_deref())
}

csrf_forms!(LogoutForm);
