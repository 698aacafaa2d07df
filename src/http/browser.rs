//! The pages people see: /authorize, sign-in, consent and the landing page.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use askama::Template;
use serde::Deserialize;

use super::AppState;
use super::cookies::{self, Csrf};
use super::errors::{failure_page, page, server_error_page, unavailable_page};
use super::protocol::form_body;
use super::views::{ConsentPage, HomePage, LoginPage, ScopeLine, describe_scope};
use crate::auth::mfa::second_step;
use crate::auth::session::{self, ActiveSession};
use crate::auth::signin::{self, SignInError, SignInOutcome, SignInRequest, SignInRules};
use crate::auth::throttle;
use crate::crypto::SecretString;
use crate::oauth::authorize::{
    self, AuthorizationRequest, ConsentAnswer, Decision, Next, Rejection, ShownTo,
};
use crate::oauth::params::Params;
use crate::store::Client;

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
        Rejection::Unavailable => unavailable_page(),
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
        failure_page(&e)
    })
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn render_login(
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
        registration: state.config.self_registration,
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

/// Runs the decision for a validated request and answers it. Each page it shows seals the
/// request for its own step; the consent page also names the session it is shown to.
pub(crate) async fn proceed(
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
    match authorize::next_step(p, client, authz, active, fresh, now).await {
        Ok(Next::SignIn) => {
            let sealed = authorize::seal_params(p, authorize::SIGN_IN_PURPOSE, params, now);
            // login_hint pre-fills the email; the page is the same whether an account has it.
            let hint = params
                .get("login_hint")
                .map(crate::auth::email::normalise)
                .filter(|e| e.len() <= 254)
                .unwrap_or_default();
            render_login(
                state,
                req,
                StatusCode::OK,
                sealed,
                Some(client),
                &hint,
                None,
            )
        }
        Ok(Next::SecondStep) => match active {
            // A step-up: the second step raises this session, then the request goes on.
            Some(a) => {
                let ip_key = super::client_addr::client_addr(req).map(|a| a.limit_key());
                let limit = state.config.signin_rate_limit;
                if let Some(wait) =
                    throttle::ceremony_rate_limited(&p.fleet, ip_key.as_deref(), limit, now).await
                {
                    return too_many_requests(wait);
                }
                let begun = match second_step::methods(p, &a.user.id).await {
                    Ok(methods) => second_step::begin(
                        p,
                        &a.user.id,
                        &a.session.amr,
                        Some(params),
                        Some(&a.session.id),
                    )
                    .await
                    .map(|handle| (handle, methods)),
                    Err(e) => Err(e),
                };
                match begun {
                    Ok((handle, methods)) => super::second_step::render(
                        state,
                        req,
                        StatusCode::OK,
                        Some(client),
                        methods,
                        None,
                        Some(handle),
                    ),
                    Err(e) => {
                        tracing::error!(error = %e, "could not begin a second step");
                        failure_page(&e)
                    }
                }
            }
            None => server_error_page(),
        },
        Ok(Next::Enrol) => see_other(&super::second_step::enrolment_url()),
        Ok(Next::Consent(scopes)) => match active {
            Some(a) => {
                let shown_to = ShownTo::new(&a.session.id, fresh);
                let sealed = authorize::seal_consent(p, params, &shown_to, now);
                consent_page(state, req, sealed, client, a, &scopes)
            }
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
        Err(e) => {
            return page(
                StatusCode::BAD_REQUEST,
                "This sign-in link is not valid",
                &format!("The link is malformed: {}.", e.description()),
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

/// A state-changing form: it carries the CSRF token of the page that rendered it.
pub(crate) trait CsrfForm: serde::de::DeserializeOwned {
    fn csrf_token(&self) -> &str;
}

/// Reads a form and checks its CSRF token (a 403 page otherwise).
pub(crate) async fn checked_form<T: CsrfForm>(
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, HttpResponse> {
    let form: T = read_form(req, payload).await?;
    if !cookies::csrf_ok(
        &state.provider,
        req,
        state.secure_cookies(),
        form.csrf_token(),
    ) {
        return Err(csrf_failed());
    }
    Ok(form)
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

fn sign_in_expired() -> HttpResponse {
    page(
        StatusCode::BAD_REQUEST,
        "This sign-in took too long",
        "For your security the sign-in expired. Go back to the application and start again.",
    )
}

/// Reopens the authorization request carried by a sign-in form; `None` for a plain sign-in.
/// A form sealed for another step (consent) is refused like an expired one.
pub(crate) async fn reopen(
    state: &AppState,
    sealed: &str,
) -> Result<Option<(Params, Client, AuthorizationRequest)>, HttpResponse> {
    if sealed.is_empty() {
        return Ok(None);
    }
    let p = &state.provider;
    let Some(params) = authorize::open_params(p, authorize::SIGN_IN_PURPOSE, sealed, p.now())
    else {
        return Err(sign_in_expired());
    };
    revalidate(state, params).await.map(Some)
}

/// Goes on with an authorization request after a second step (`fresh`: it completed a sign-in
/// on this request, not a step-up).
pub(crate) async fn resume(
    state: &AppState,
    req: &HttpRequest,
    params: Params,
    active: &ActiveSession,
    fresh: bool,
) -> HttpResponse {
    match revalidate(state, params).await {
        Ok((params, client, authz)) => {
            proceed(state, req, &params, &client, &authz, Some(active), fresh).await
        }
        Err(res) => res,
    }
}

/// Validates a reopened request again (the client may have changed since the page was shown).
async fn revalidate(
    state: &AppState,
    params: Params,
) -> Result<(Params, Client, AuthorizationRequest), HttpResponse> {
    match authorize::validate(&state.provider, &params).await {
        Ok((client, authz)) => Ok((params, client, authz)),
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
    let form: LoginForm = match checked_form(&state, &req, payload).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let (addr, ip_key) = match within_signin_quota(&state, &req).await {
        Ok(v) => v,
        Err(res) => return res,
    };
    let pending = match reopen(&state, &form.request).await {
        Ok(v) => v,
        Err(res) => return res,
    };
    let client = pending.as_ref().map(|(_, c, _)| c);
    let email = crate::auth::email::normalise(&form.email);
    let again = |status: StatusCode, message: &str| {
        render_login(
            &state,
            &req,
            status,
            form.request.clone(),
            client,
            &email,
            Some(message),
        )
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
    let request = SignInRequest {
        email: &email,
        password: SecretString::new(form.password.clone()),
        ip: addr.map(|a| a.to_string()),
        ip_key,
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(String::from),
        trusted_device: cookies::device(p, &req, secure),
        previous_session,
        wants_mfa: pending
            .as_ref()
            .is_some_and(|(_, c, a)| authorize::wants_mfa(c, a)),
        resume: pending.as_ref().map(|(params, _, _)| params),
    };
    let (signed_in, must_enrol) = match signin::sign_in(p, &rules, request).await {
        Ok(SignInOutcome::SignedIn(s)) => (s, false),
        Ok(SignInOutcome::MustEnrol(s)) => (s, true),
        Ok(SignInOutcome::SecondStep { handle, methods }) => {
            return super::second_step::render(
                &state,
                &req,
                StatusCode::OK,
                client,
                methods,
                None,
                Some(handle),
            );
        }
        Err(SignInError::BadCredentials) => {
            return again(StatusCode::UNAUTHORIZED, BAD_CREDENTIALS);
        }
        Err(SignInError::Locked(wait)) => {
            let mut res = again(StatusCode::TOO_MANY_REQUESTS, &locked_message(wait));
            res.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(wait));
            return res;
        }
        Err(SignInError::Limited(wait)) => return too_many_requests(wait),
        Err(SignInError::TooManySessions) => {
            return again(StatusCode::FORBIDDEN, TOO_MANY_SESSIONS);
        }
        Err(e @ (SignInError::Internal(_) | SignInError::Unavailable(_))) => {
            tracing::error!(error = %e, "sign-in failed on our side");
            return failure_page(&e);
        }
    };
    let res = match &pending {
        _ if must_enrol => see_other(&super::second_step::enrolment_url()),
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
    with_session_cookies(
        &state,
        &req,
        res,
        signed_in.cookie_value,
        &signed_in.active.user.id,
    )
}

/// A response that signs the browser in: the new session's cookie and the trusted-device
/// cookie of its user are set on it (every way of signing in ends here).
pub(crate) fn with_session_cookies(
    state: &AppState,
    req: &HttpRequest,
    mut res: HttpResponse,
    cookie_value: SecretString,
    user_id: &str,
) -> HttpResponse {
    let p = &state.provider;
    let secure = state.secure_cookies();
    let session_cookie = cookies::session_cookie(
        cookie_value.into_inner(),
        secure,
        p.settings.session_absolute_ttl,
    );
    let device_cookie = cookies::device_cookie(p, user_id, req, secure);
    if res
        .add_cookie(&session_cookie)
        .and_then(|()| res.add_cookie(&device_cookie))
        .is_err()
    {
        tracing::error!("could not set the session cookie");
        return server_error_page();
    }
    res
}

fn locked_message(wait: i64) -> String {
    let minutes = (wait + 59) / 60;
    format!(
        "Too many failed attempts. For your security, try again in {minutes} minute{}.",
        if minutes == 1 { "" } else { "s" }
    )
}

/// Every sign-in POST (password, passkey, second step) counts on one quota per client address.
/// The client's address and its limit key, or the 429 to answer.
pub(crate) async fn within_signin_quota(
    state: &AppState,
    req: &HttpRequest,
) -> Result<(Option<super::client_addr::ClientAddr>, Option<String>), HttpResponse> {
    let p = &state.provider;
    let addr = super::client_addr::client_addr(req);
    let ip_key = addr.map(|a| a.limit_key());
    match throttle::signin_rate_limited(
        &p.fleet,
        ip_key.as_deref(),
        state.config.signin_rate_limit,
        p.now(),
    )
    .await
    {
        Some(wait) => Err(too_many_requests(wait)),
        None => Ok((addr, ip_key)),
    }
}

/// 429 with Retry-After (RFC 6585 §4).
pub(crate) fn too_many_requests(wait: i64) -> HttpResponse {
    let mut res = page(
        StatusCode::TOO_MANY_REQUESTS,
        "Please slow down",
        &format!("Too many attempts from your network. Try again in {wait} seconds."),
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from(wait));
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
    let form: ConsentForm = match checked_form(&state, &req, payload).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    if form.request.is_empty() {
        return page(
            StatusCode::BAD_REQUEST,
            "Nothing to approve",
            "There is no pending request.",
        );
    }
    // Only a form sealed for the consent step, by the session it was shown to.
    let Some((params, shown_to)) = authorize::open_consent(p, &form.request, p.now()) else {
        return sign_in_expired();
    };
    let (params, client, authz) = match revalidate(&state, params).await {
        Ok(v) => v,
        Err(res) => return res,
    };
    let active = match current_session(&state, &req).await {
        Ok(a) => a,
        Err(res) => return res,
    };
    let now = p.now();
    // The decision runs again: prompt=login, max_age and the session must still allow a code.
    let active =
        match authorize::consent_step(p, &client, &authz, active.as_ref(), &shown_to, now).await {
            Ok(ConsentAnswer::Decide) => match active {
                Some(a) => a,
                None => return server_error_page(),
            },
            Ok(ConsentAnswer::Again) => {
                return proceed(
                    &state,
                    &req,
                    &params,
                    &client,
                    &authz,
                    active.as_ref(),
                    false,
                )
                .await;
            }
            Err(e) => {
                return see_other(&authorize::error_redirect(
                    p,
                    &authz.redirect_uri,
                    authz.state.as_deref(),
                    &e,
                ));
            }
        };
    let decision = if form.decision == "allow" {
        Decision::Allow
    } else {
        Decision::Deny
    };
    match authorize::apply_consent(p, &authz, &active, decision, now).await {
        Ok(location) => see_other(&location),
        Err(e) => {
            tracing::error!(error = %e, "could not save consent");
            failure_page(&e)
        }
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

csrf_forms!(LoginForm, ConsentForm);
