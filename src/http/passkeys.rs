//! Passkeys and security keys over HTTP: small JSON endpoints the pages' scripts call to begin
//! and finish WebAuthn ceremonies, the passkey sign-in form, and the passkey list.
//!
//! Each begin sets a cookie holding the ceremony handle (HttpOnly, five minutes); the finish
//! reads it back, so a ceremony is bound to the browser that began it. JSON bodies carry the
//! page's CSRF token like forms do.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

use super::AppState;
use super::account::signed_in;
use super::browser::{
    checked_form, current_session, html, proceed, render_login, reopen, see_other,
    too_many_requests, with_session_cookies, within_signin_quota,
};
use super::cookies;
use super::errors::failure_page;
use super::views::{PasskeyLine, PasskeysPage, when};
use crate::auth::mfa::ceremony::CEREMONY_TTL;
use crate::auth::mfa::manage;
use crate::auth::mfa::second_step::{Browser, SecondStepError};
use crate::auth::mfa::webauthn::{
    self, Change, CredentialStyle, KeyStepError, PasskeyError, PasskeySignIn, PasskeySignInError,
};
use crate::auth::session::{ActiveSession, DeviceInfo};
use crate::auth::signin::{SecondStepMethods, SignInRules};
use crate::auth::throttle;

fn ceremony_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-tessera_webauthn"
    } else {
        "tessera_webauthn"
    }
}

fn ceremony_cookie(value: String, secure: bool, max_age: i64) -> Cookie<'static> {
    let mut c = Cookie::build(ceremony_cookie_name(secure), value)
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .finish();
    c.set_max_age(CookieDuration::seconds(max_age));
    c
}

fn ceremony_handle(state: &AppState, req: &HttpRequest) -> String {
    req.cookie(ceremony_cookie_name(state.secure_cookies()))
        .map(|c| c.value().to_string())
        .unwrap_or_default()
}

fn json(status: StatusCode, body: serde_json::Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

fn json_error(status: StatusCode, error: &str, message: &str) -> HttpResponse {
    json(
        status,
        serde_json::json!({ "error": error, "message": message }),
    )
}

fn passkey_failure(e: &PasskeyError) -> HttpResponse {
    match e {
        PasskeyError::CeremonyGone => {
            json_error(StatusCode::BAD_REQUEST, "expired", &e.to_string())
        }
        PasskeyError::Refused => json_error(StatusCode::BAD_REQUEST, "refused", &e.to_string()),
        PasskeyError::AlreadyRegistered => {
            json_error(StatusCode::CONFLICT, "already_registered", &e.to_string())
        }
        PasskeyError::InvalidName(m) => json_error(StatusCode::BAD_REQUEST, "invalid_name", m),
        PasskeyError::Store(s) if crate::store::Transient::is_transient(s) => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Please try again in a moment.",
        ),
        PasskeyError::Config(_) => {
            tracing::warn!(error = %e, "passkeys are not available with this issuer");
            json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "passkeys_unavailable",
                "Passkeys are not available on this server: its address must be a host name, not an IP address.",
            )
        }
        PasskeyError::Corrupt | PasskeyError::Store(_) => {
            tracing::error!(error = %e, "a WebAuthn ceremony failed on our side");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "Something went wrong on our side.",
            )
        }
    }
}

/// Reads a JSON body (at most [`super::MAX_BODY`]) and checks its CSRF token.
async fn checked_json<T: DeserializeOwned + JsonCsrf>(
    state: &AppState,
    req: &HttpRequest,
    body: &web::Bytes,
) -> Result<T, HttpResponse> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json || body.len() > super::MAX_BODY {
        return Err(json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Send JSON.",
        ));
    }
    let value: T = serde_json::from_slice(body).map_err(|_| {
        json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Some fields were malformed.",
        )
    })?;
    if !cookies::csrf_ok(
        &state.provider,
        req,
        state.secure_cookies(),
        value.csrf_token(),
    ) {
        return Err(json_error(
            StatusCode::FORBIDDEN,
            "csrf",
            "This page expired. Reload it and try again.",
        ));
    }
    Ok(value)
}

trait JsonCsrf {
    fn csrf_token(&self) -> &str;
}

/// The signed-in person, recently authenticated enough to change their keys.
async fn recently_signed_in(
    state: &AppState,
    req: &HttpRequest,
) -> Result<ActiveSession, HttpResponse> {
    let Some(active) = current_session(state, req).await? else {
        return Err(json_error(
            StatusCode::UNAUTHORIZED,
            "signed_out",
            "Sign in first.",
        ));
    };
    if !manage::recently_authenticated(&state.provider, &active.session).await {
        return Err(json_error(
            StatusCode::FORBIDDEN,
            "reauthenticate",
            "For your security, sign in again before changing your passkeys.",
        ));
    }
    Ok(active)
}

fn device(req: &HttpRequest) -> DeviceInfo {
    DeviceInfo {
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(String::from),
        ip: super::client_addr::client_addr(req).map(|a| a.to_string()),
    }
}

fn begun(state: &AppState, b: webauthn::Begun) -> HttpResponse {
    let mut res = json(StatusCode::OK, serde_json::json!({ "options": b.options }));
    let cookie = ceremony_cookie(
        b.handle.expose().to_string(),
        state.secure_cookies(),
        CEREMONY_TTL,
    );
    if res.add_cookie(&cookie).is_err() {
        return json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "Something went wrong on our side.",
        );
    }
    res
}

fn clear_ceremony(state: &AppState, mut res: HttpResponse) -> HttpResponse {
    let _ = res.add_cookie(&ceremony_cookie(String::new(), state.secure_cookies(), 0));
    res
}

#[derive(Deserialize)]
struct BeginRegistration {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    style: String,
}

/// POST /account/passkeys/begin: options for `navigator.credentials.create()`.
pub async fn begin_registration(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let form: BeginRegistration = match checked_json(&state, &req, &body).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let active = match recently_signed_in(&state, &req).await {
        Ok(a) => a,
        Err(res) => return res,
    };
    let Some(style) = CredentialStyle::parse(&form.style) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Choose a passkey or a security key.",
        );
    };
    match webauthn::begin_registration(&state.provider, &active.user, style).await {
        Ok(b) => begun(&state, b),
        Err(e) => passkey_failure(&e),
    }
}

#[derive(Deserialize)]
struct FinishRegistration {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    name: String,
    credential: RegisterPublicKeyCredential,
}

/// POST /account/passkeys/finish: the authenticator's answer; the key becomes a factor.
pub async fn finish_registration(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let form: FinishRegistration = match checked_json(&state, &req, &body).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let active = match recently_signed_in(&state, &req).await {
        Ok(a) => a,
        Err(res) => return res,
    };
    let d = device(&req);
    let change = Change {
        user: &active.user,
        session_id: &active.session.id,
        ip: d.ip,
        user_agent: d.user_agent,
    };
    let handle = ceremony_handle(&state, &req);
    let res = match webauthn::add_credential(
        &state.provider,
        &state.mailer,
        &change,
        &handle,
        &form.name,
        &form.credential,
    )
    .await
    {
        Ok(r) => json(
            StatusCode::OK,
            serde_json::json!({ "factor_id": r.factor_id, "name": r.name }),
        ),
        Err(e) => passkey_failure(&e),
    };
    clear_ceremony(&state, res)
}

/// Ceremonies begun without a session (a passkey sign-in, a pending step's key) each store a
/// row: at most `signin_rate_limit` a minute from one client address, on a key of their own.
async fn ceremonies_limited(state: &AppState, req: &HttpRequest) -> Option<HttpResponse> {
    let p = &state.provider;
    let ip_key = super::client_addr::client_addr(req).map(|a| a.limit_key());
    let limit = state.config.signin_rate_limit;
    let wait = throttle::ceremony_rate_limited(&p.fleet, ip_key.as_deref(), limit, p.now()).await?;
    let mut res = json_error(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "Too many attempts from your network. Try again in a minute.",
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from(wait));
    Some(res)
}

#[derive(Deserialize)]
struct BeginSignIn {
    #[serde(default)]
    csrf_token: String,
}

/// POST /login/passkey/begin: options for `navigator.credentials.get()` (any passkey of
/// this site; conditional mediation for autofill).
pub async fn begin_sign_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if let Err(res) = checked_json::<BeginSignIn>(&state, &req, &body).await {
        return res;
    }
    if let Some(res) = ceremonies_limited(&state, &req).await {
        return res;
    }
    match webauthn::begin_sign_in(&state.provider).await {
        Ok(b) => begun(&state, b),
        Err(e) => passkey_failure(&e),
    }
}

#[derive(Deserialize)]
struct PasskeyForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    request: String,
    #[serde(default)]
    credential: String,
}

/// POST /login/passkey: the page's script submits the authenticator's answer as a form, so the
/// outcome is answered exactly like a password sign-in (the application's request resumes).
pub async fn sign_in(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let p = &state.provider;
    let form: PasskeyForm = match checked_form(&state, &req, payload).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    if let Err(res) = within_signin_quota(&state, &req).await {
        return res;
    }
    let pending = match reopen(&state, &form.request).await {
        Ok(v) => v,
        Err(res) => return res,
    };
    let client = pending.as_ref().map(|(_, c, _)| c);
    let again = |status: StatusCode, message: &str| {
        let res = render_login(
            &state,
            &req,
            status,
            form.request.clone(),
            client,
            "",
            Some(message),
        );
        clear_ceremony(&state, res)
    };
    let Ok(response) = serde_json::from_str::<PublicKeyCredential>(&form.credential) else {
        return again(StatusCode::BAD_REQUEST, PASSKEY_REFUSED);
    };
    let previous_session = match current_session(&state, &req).await {
        Ok(a) => a.map(|a| a.session.id),
        Err(res) => return res,
    };
    let handle = ceremony_handle(&state, &req);
    let signed_in = match webauthn::sign_in_with_passkey(
        p,
        PasskeySignIn {
            handle: &handle,
            response: &response,
            device: device(&req),
            previous_session,
            max_sessions: state.config.max_sessions_per_user,
            session_policy: state.config.session_limit_policy,
        },
    )
    .await
    {
        Ok(s) => s,
        Err(PasskeySignInError::Passkey(PasskeyError::CeremonyGone)) => {
            return again(StatusCode::BAD_REQUEST, PASSKEY_EXPIRED);
        }
        Err(PasskeySignInError::Passkey(PasskeyError::Refused)) => {
            return again(StatusCode::UNAUTHORIZED, PASSKEY_REFUSED);
        }
        Err(PasskeySignInError::TooManySessions) => {
            return again(StatusCode::FORBIDDEN, super::browser::TOO_MANY_SESSIONS);
        }
        Err(e) => {
            tracing::error!(error = %e, "passkey sign-in failed on our side");
            return failure_page(&e);
        }
    };
    let res = match &pending {
        Some((params, client, authz)) => {
            proceed(
                &state,
                &req,
                params,
                client,
                authz,
                Some(&signed_in.active),
                true,
            )
            .await
        }
        None => super::admin::after_sign_in(&state, &req),
    };
    let res = clear_ceremony(&state, res);
    with_session_cookies(
        &state,
        &req,
        res,
        signed_in.cookie_value,
        &signed_in.active.user.id,
    )
}

/// POST /login/second-step/key/begin: options for the user's security keys and passkeys, for
/// the browser holding a pending second step.
pub async fn begin_key_step(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    if let Err(res) = checked_json::<BeginSignIn>(&state, &req, &body).await {
        return res;
    }
    if let Some(res) = ceremonies_limited(&state, &req).await {
        return res;
    }
    let handle = req
        .cookie(super::second_step::cookie_name(state.secure_cookies()))
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    match webauthn::begin_key_step(&state.provider, &handle).await {
        Ok(Some(b)) => begun(&state, b),
        Ok(None) => json_error(
            StatusCode::BAD_REQUEST,
            "expired",
            "This sign-in expired. Sign in again.",
        ),
        Err(e) => {
            tracing::error!(error = %e, "could not begin a security-key step");
            json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Please try again in a moment.",
            )
        }
    }
}

#[derive(Deserialize)]
struct KeyStepForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    credential: String,
}

/// POST /login/second-step/key: the security key's answer completes the pending second step.
pub async fn key_step(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let p = &state.provider;
    let secure = state.secure_cookies();
    let form: KeyStepForm = match checked_form(&state, &req, payload).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let (_, ip_key) = match within_signin_quota(&state, &req).await {
        Ok(v) => v,
        Err(res) => return res,
    };
    let Some(handle) = req
        .cookie(super::second_step::cookie_name(secure))
        .map(|c| c.value().to_string())
    else {
        return see_other("/login");
    };
    let previous_session = match current_session(&state, &req).await {
        Ok(a) => a.map(|a| a.session.id),
        Err(res) => return res,
    };
    let rules = SignInRules {
        hasher: &state.passwords,
        throttle: state.config.throttle_policy(),
        max_sessions: state.config.max_sessions_per_user,
        session_policy: state.config.session_limit_policy,
    };
    let d = device(&req);
    let browser = Browser {
        handle: handle.clone(),
        ip: d.ip,
        ip_key,
        user_agent: d.user_agent,
        previous_session,
    };
    let again = |status: StatusCode, message: &str, methods: Option<SecondStepMethods>| {
        let res = super::second_step::render(
            &state,
            &req,
            status,
            None,
            methods.unwrap_or_default(),
            Some(message),
            None,
        );
        clear_ceremony(&state, res)
    };
    let Ok(response) = serde_json::from_str::<PublicKeyCredential>(&form.credential) else {
        let methods = super::second_step::offered(&state, &handle).await;
        return again(StatusCode::BAD_REQUEST, KEY_REFUSED, methods);
    };
    let key_handle = ceremony_handle(&state, &req);
    let completed =
        match webauthn::complete_second_step_with_key(p, &rules, browser, &key_handle, &response)
            .await
        {
            Ok(c) => c,
            Err(KeyStepError::Refused) => {
                let methods = super::second_step::offered(&state, &handle).await;
                return again(StatusCode::UNAUTHORIZED, KEY_REFUSED, methods);
            }
            Err(KeyStepError::Expired) => {
                let methods = super::second_step::offered(&state, &handle).await;
                return again(StatusCode::BAD_REQUEST, KEY_EXPIRED, methods);
            }
            Err(KeyStepError::Step(SecondStepError::Gone)) => {
                return clear_ceremony(
                    &state,
                    super::errors::page(
                        StatusCode::BAD_REQUEST,
                        "This sign-in took too long",
                        "For your security the sign-in expired or was already completed. Go back \
                     to the application, or sign in again.",
                    ),
                );
            }
            Err(KeyStepError::Step(SecondStepError::Locked(wait))) => {
                let minutes = (wait + 59) / 60;
                let message = format!(
                    "Too many failed attempts. For your security, try again in {minutes} minute{}.",
                    if minutes == 1 { "" } else { "s" }
                );
                let methods = super::second_step::offered(&state, &handle).await;
                let mut res = again(StatusCode::TOO_MANY_REQUESTS, &message, methods);
                res.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from(wait));
                return res;
            }
            Err(KeyStepError::Step(SecondStepError::Limited(wait))) => {
                return too_many_requests(wait);
            }
            Err(KeyStepError::Step(SecondStepError::TooManySessions)) => {
                return super::errors::page(
                    StatusCode::FORBIDDEN,
                    "Too many sessions",
                    super::browser::TOO_MANY_SESSIONS,
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "security-key step failed on our side");
                return failure_page(&e);
            }
        };
    let res = super::second_step::finish(&state, &req, completed).await;
    clear_ceremony(&state, res)
}

pub const KEY_REFUSED: &str = "That security key was not accepted. Try again, or use a code.";
pub const KEY_EXPIRED: &str = "The security key took too long. Try again.";

pub const PASSKEY_REFUSED: &str = "That passkey was not accepted. Try again, or use your password.";
pub const PASSKEY_EXPIRED: &str =
    "The passkey sign-in took too long or was already used. Try again.";

async fn render_passkeys(
    state: &AppState,
    req: &HttpRequest,
    active: &ActiveSession,
    notice: Option<String>,
) -> HttpResponse {
    let p = &state.provider;
    let factors = match webauthn::listed(p, &active.user.id).await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "could not list passkeys");
            return failure_page(&e);
        }
    };
    let keys = factors
        .into_iter()
        .map(|f| PasskeyLine {
            id: f.id,
            name: f.name,
            kind: if f.passwordless {
                "Passkey".into()
            } else {
                "Security key".into()
            },
            added: when(f.created_at),
            last_used: f.last_used_at.map(when),
        })
        .collect();
    let csrf = cookies::csrf(p, req, state.secure_cookies());
    let view = PasskeysPage {
        csrf_token: csrf.token.clone(),
        keys,
        notice,
    };
    html(StatusCode::OK, &csrf, view.render())
}

/// GET /account/passkeys
pub async fn passkeys_page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    match signed_in(&state, &req).await {
        Ok(active) => render_passkeys(&state, &req, &active, None).await,
        Err(res) => res,
    }
}

#[derive(Deserialize)]
struct RemoveForm {
    #[serde(default)]
    csrf_token: String,
    #[serde(default)]
    factor_id: String,
}

/// POST /account/passkeys/remove
pub async fn remove(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let form: RemoveForm = match checked_form(&state, &req, payload).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let active = match signed_in(&state, &req).await {
        Ok(a) => a,
        Err(res) => return res,
    };
    if !manage::recently_authenticated(&state.provider, &active.session).await {
        let notice = "For your security, sign in again before removing a passkey.".to_string();
        return render_passkeys(&state, &req, &active, Some(notice)).await;
    }
    let d = device(&req);
    let change = Change {
        user: &active.user,
        session_id: &active.session.id,
        ip: d.ip,
        user_agent: d.user_agent,
    };
    let notice =
        match webauthn::remove_credential(&state.provider, &state.mailer, &change, &form.factor_id)
            .await
        {
            Ok(true) => "Removed. It can no longer be used to sign in.",
            Ok(false) => "That key had already been removed.",
            Err(e) => {
                tracing::error!(error = %e, "could not remove a passkey");
                return failure_page(&e);
            }
        };
    render_passkeys(&state, &req, &active, Some(notice.to_string())).await
}

impl JsonCsrf for BeginRegistration {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

impl JsonCsrf for FinishRegistration {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

impl JsonCsrf for BeginSignIn {
    fn csrf_token(&self) -> &str {
        &self.csrf_token
    }
}

csrf_forms!(PasskeyForm, RemoveForm, KeyStepForm);
