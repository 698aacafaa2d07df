//! The pages people see: /authorize, sign-in, consent and the landing page.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use askama::Template;
use serde::Deserialize;

use super::AppState;
use super::cookies::{self, Csrf};
use super::errors::{page, server_error_page};
use super::protocol::form_body;
use super::views::{ConsentPage, HomePage, LoginPage, ScopeLine, describe_scope};
use crate::audit::AuditEvent;
use crate::auth::password::MAX_PASSWORD_BYTES;
use crate::auth::session::{self, ActiveSession, DeviceInfo, Room};
use crate::crypto::SecretString;
use crate::oauth::authorize::{self, AuthorizationRequest, Next, Rejection};
use crate::oauth::params::Params;
use crate::store::{Client, ConsentStore, UserStore};

pub const BAD_CREDENTIALS: &str = "The email or password is incorrect.";
pub const TOO_MANY_SESSIONS: &str = "You are signed in on too many devices. Sign out on another device first, or ask your administrator.";

pub(crate) fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

pub(crate) fn html(
    status: StatusCode,
    csrf: &Csrf,
    body: Result<String, askama::Error>,
) -> HttpResponse {
    let Ok(body) = body else {
        return server_error_page();
    };
    let mut res = HttpResponseBuilder::new(status);
    res.insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type("text/html; charset=utf-8");
    if let Some(c) = &csrf.set_cookie {
        res.cookie(c.clone());
    }
    res.body(body)
}

fn rejection(r: Rejection) -> HttpResponse {
    match r {
        Rejection::Page(message) => page(
            StatusCode::BAD_REQUEST,
            "This sign-in link is not valid",
            &message,
        ),
        Rejection::Redirect(location) => see_other(&location),
    }
}

pub(crate) async fn current_session(
    state: &AppState,
    req: &HttpRequest,
) -> Result<Option<ActiveSession>, HttpResponse> {
    let p = &state.provider;
    let Some(cookie) = cookies::session_value(req, state.secure_cookies()) else {
        return Ok(None);
    };
    session::resolve(p, &cookie, p.now()).await.map_err(|e| {
        tracing::error!(error = %e, "session lookup failed");
        server_error_page()
    })
}

#[allow(clippy::too_many_arguments)]
fn render_login(
    state: &AppState,
    req: &HttpRequest,
    status: StatusCode,
    request: String,
    client: Option<&Client>,
    email: &str,
    error: Option<&str>,
) -> HttpResponse {
    let csrf = cookies::csrf(&state.provider, req, state.secure_cookies());
    let view = LoginPage {
        csrf_token: csrf.token.clone(),
        request,
        email: email.to_string(),
        error: error.map(String::from),
        client: client.map(|c| c.id.clone()),
    };
    html(status, &csrf, view.render())
}

fn consent_page(
    state: &AppState,
    req: &HttpRequest,
    request: String,
    client: &Client,
    active: &ActiveSession,
    scopes: &[String],
) -> HttpResponse {
    let csrf = cookies::csrf(&state.provider, req, state.secure_cookies());
    let view = ConsentPage {
        csrf_token: csrf.token.clone(),
        request,
        client: client.id.clone(),
        email: active.user.email.clone(),
        scopes: scopes
            .iter()
            .map(|s| ScopeLine {
                name: s.clone(),
                description: describe_scope(s),
            })
            .collect(),
    };
    html(StatusCode::OK, &csrf, view.render())
}

/// Runs the decision for a validated request and answers it.
async fn proceed(
    state: &AppState,
    req: &HttpRequest,
    params: &Params,
    client: &Client,
    authz: &AuthorizationRequest,
    active: Option<&ActiveSession>,
    fresh: bool,
) -> HttpResponse {
    let p = &state.provider;
    let now = p.now();
    let sealed = || authorize::seal_params(p, authorize::AUTHORIZE_PURPOSE, params, now);
    match authorize::next_step(p, client, authz, active, fresh, now).await {
        Ok(Next::SignIn) => {
            render_login(state, req, StatusCode::OK, sealed(), Some(client), "", None)
        }
        Ok(Next::Consent(scopes)) => match active {
            Some(a) => consent_page(state, req, sealed(), client, a, &scopes),
            None => server_error_page(),
        },
        Ok(Next::Issue) => match active {
            Some(a) => match authorize::issue_code(p, authz, a, now).await {
                Ok(location) => see_other(&location),
                Err(e) => see_other(&authorize::error_redirect(
                    p,
                    &authz.redirect_uri,
                    authz.state.as_deref(),
                    &e,
                )),
            },
            None => server_error_page(),
        },
        Err(e) => see_other(&authorize::error_redirect(
            p,
            &authz.redirect_uri,
            authz.state.as_deref(),
            &e,
        )),
    }
}

/// GET /authorize
pub async fn authorize(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let p = &state.provider;
    let params = match Params::parse(req.query_string()) {
        Ok(p) => p,
        Err(_) => {
            return page(
                StatusCode::BAD_REQUEST,
                "This sign-in link is not valid",
                "A parameter is repeated or malformed.",
            );
        }
    };
    let (client, authz) = match authorize::validate(p, &params).await {
        Ok(v) => v,
        Err(r) => return rejection(r),
    };
    let active = match current_session(&state, &req).await {
        Ok(a) => a,
        Err(res) => return res,
    };
    proceed(
        &state,
        &req,
        &params,
        &client,
        &authz,
        active.as_ref(),
        false,
    )
    .await
}

/// GET /login: signing in to Tessera itself, without an application.
pub async fn login_page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    render_login(&state, &req, StatusCode::OK, String::new(), None, "", None)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    request: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

pub(crate) fn csrf_failed() -> HttpResponse {
    page(
        StatusCode::FORBIDDEN,
        "Please try again",
        "This form expired or was not sent from this site. Go back, reload the page and try again.",
    )
}

pub(crate) async fn read_form<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, HttpResponse> {
    let body = form_body(req, payload).await.map_err(|e| {
        page(
            StatusCode::BAD_REQUEST,
            "The form could not be read",
            &e.description(),
        )
    })?;
    serde_urlencoded::from_str(&body).map_err(|_| {
        page(
            StatusCode::BAD_REQUEST,
            "The form could not be read",
            "Some fields were malformed.",
        )
    })
}

/// Reopens the authorization request carried by a form; `None` for a plain sign-in.
async fn reopen(
    state: &AppState,
    sealed: &str,
) -> Result<Option<(Params, Client, AuthorizationRequest)>, HttpResponse> {
    if sealed.is_empty() {
        return Ok(None);
    }
    let p = &state.provider;
    let Some(params) = authorize::open_params(p, authorize::AUTHORIZE_PURPOSE, sealed, p.now())
    else {
        return Err(page(
            StatusCode::BAD_REQUEST,
            "This sign-in took too long",
            "For your security the sign-in expired. Go back to the application and start again.",
        ));
    };
    match authorize::validate(p, &params).await {
        Ok((client, authz)) => Ok(Some((params, client, authz))),
        Err(r) => Err(rejection(r)),
    }
}

/// POST /login
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let p = &state.provider;
    let secure = state.secure_cookies();
    let form: LoginForm = match read_form(&req, payload).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    if !cookies::csrf_ok(p, &req, secure, &form.csrf_token) {
        return csrf_failed();
    }
    let pending = match reopen(&state, &form.request).await {
        Ok(v) => v,
        Err(res) => return res,
    };
    let client = pending.as_ref().map(|(_, c, _)| c);
    let email = form.email.trim().to_lowercase();
    let fail = |status: StatusCode| {
        render_login(
            &state,
            &req,
            status,
            form.request.clone(),
            client,
            &email,
            Some(BAD_CREDENTIALS),
        )
    };
    if email.is_empty()
        || email.len() > 254
        || form.password.is_empty()
        || form.password.len() > MAX_PASSWORD_BYTES
    {
        return fail(StatusCode::UNAUTHORIZED);
    }
    let user = match p.store.find_user_by_email(&email).await {
        Ok(u) => u,
        Err(e) => {
            tracing::error!(error = %e, "user lookup failed");
            return server_error_page();
        }
    };
    let password = SecretString::new(form.password.clone());
    // Unknown accounts are checked against a dummy hash: same work, same answer.
    let verification = match state
        .passwords
        .verify(&password, user.as_ref().map(|u| u.password_hash.as_str()))
        .await
    {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "password check failed");
            return server_error_page();
        }
    };
    let ip = req.peer_addr().map(|a| a.ip().to_string());
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let Some(user) = user.clone().filter(|u| verification.valid && !u.disabled) else {
        let reason = match &user {
            None => "unknown_account",
            Some(u) if u.disabled => "account_disabled",
            Some(_) => "wrong_password",
        };
        tracing::info!(outcome = "failure", reason, "sign-in failed");
        crate::metrics::inc(&p.metrics.signins_failed);
        p.audit(
            AuditEvent::new("signin.failure")
                .subject(
                    user.as_ref()
                        .map(|u| u.id.clone())
                        .unwrap_or_else(|| email.clone()),
                )
                .from_device(ip.clone(), user_agent.clone())
                .detail("reason", reason),
        )
        .await;
        return fail(StatusCode::UNAUTHORIZED);
    };
    let now = p.now();
    if verification.needs_rehash
        && let Ok(hash) = state.passwords.hash(&password).await
        && let Err(e) = p.store.set_password_hash(&user.id, &hash, now).await
    {
        tracing::warn!(error = %e, "could not upgrade a password hash");
    }
    // The browser's previous session ends: one browser, one session, new id at every sign-in.
    if let Ok(Some(old)) = current_session(&state, &req).await
        && let Err(e) = p.revoke_session(&old.session.id).await
    {
        tracing::warn!(error = %e, "could not end the previous session");
    }
    let limit = state.config.max_sessions_per_user;
    match session::make_room(p, &user, limit, state.config.session_limit_policy, now).await {
        Ok(Room::Available) => {}
        Ok(Room::Evicted(ended)) => {
            p.audit(
                AuditEvent::new("session.evicted")
                    .subject(&user.id)
                    .detail("sessions", ended),
            )
            .await;
        }
        Ok(Room::Refused) => {
            p.audit(
                AuditEvent::new("signin.refused")
                    .subject(&user.id)
                    .from_device(ip.clone(), user_agent.clone())
                    .detail("reason", "session_limit"),
            )
            .await;
            return render_login(
                &state,
                &req,
                StatusCode::FORBIDDEN,
                form.request.clone(),
                client,
                &email,
                Some(TOO_MANY_SESSIONS),
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "session limit check failed");
            return server_error_page();
        }
    }
    let device = DeviceInfo {
        user_agent: user_agent.clone(),
        ip: ip.clone(),
    };
    let (cookie_value, active) =
        match session::start(p, &user, vec!["pwd".into()], device, now).await {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "could not start a session");
                return server_error_page();
            }
        };
    tracing::info!(outcome = "success", user_id = %user.id, session_id = %active.session.id, "sign-in");
    crate::metrics::inc(&p.metrics.signins_ok);
    p.audit(
        AuditEvent::new("signin.success")
            .subject(&user.id)
            .from_device(ip, user_agent)
            .detail("session", active.session.id.clone())
            .detail("amr", "pwd"),
    )
    .await;
    let mut res = match &pending {
        Some((params, client, authz)) => {
            proceed(&state, &req, params, client, authz, Some(&active), true).await
        }
        None => see_other("/account"),
    };
    let cookie = cookies::session_cookie(cookie_value, secure, p.settings.session_absolute_ttl);
    if let Err(e) = res.add_cookie(&cookie) {
        tracing::error!(error = %e, "could not set the session cookie");
        return server_error_page();
    }
    res
}

#[derive(Deserialize)]
struct ConsentForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    request: String,
    #[serde(default)]
    decision: String,
}

/// POST /consent
pub async fn consent(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let p = &state.provider;
    let form: ConsentForm = match read_form(&req, payload).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    if !cookies::csrf_ok(p, &req, state.secure_cookies(), &form.csrf_token) {
        return csrf_failed();
    }
    let (params, client, authz) = match reopen(&state, &form.request).await {
        Ok(Some(v)) => v,
        Ok(None) => {
            return page(
                StatusCode::BAD_REQUEST,
                "Nothing to approve",
                "There is no pending request.",
            );
        }
        Err(res) => return res,
    };
    let active = match current_session(&state, &req).await {
        Ok(Some(a)) => a,
        Ok(None) => return proceed(&state, &req, &params, &client, &authz, None, false).await,
        Err(res) => return res,
    };
    let now = p.now();
    if form.decision != "allow" {
        let err = crate::oauth::OAuthError::AccessDenied("the user denied the request".into());
        return see_other(&authorize::error_redirect(
            p,
            &authz.redirect_uri,
            authz.state.as_deref(),
            &err,
        ));
    }
    if let Err(e) = p
        .store
        .save_consent(&active.user.id, &client.id, &authz.scope, now)
        .await
    {
        tracing::error!(error = %e, "could not save consent");
        return server_error_page();
    }
    match authorize::issue_code(p, &authz, &active, now).await {
        Ok(location) => see_other(&location),
        Err(e) => see_other(&authorize::error_redirect(
            p,
            &authz.redirect_uri,
            authz.state.as_deref(),
            &e,
        )),
    }
}

/// GET /
pub async fn home(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let active = match current_session(&state, &req).await {
        Ok(a) => a,
        Err(res) => return res,
    };
    let csrf = cookies::csrf(&state.provider, &req, state.secure_cookies());
    let view = HomePage {
        email: active.map(|a| a.user.email),
        csrf_token: csrf.token.clone(),
    };
    html(StatusCode::OK, &csrf, view.render())
}
