//! The authorization endpoint (RFC 6749 §4.1.1, OIDC Core §3.1.2), as ordered checks.
//!
//! Until the client and its redirect URI are known good, errors are shown to the person and never
//! redirected (no open redirector). After that, errors go back to the client with `state` and
//! `iss` (RFC 9207).

use url::Url;

use super::error::OAuthError;
use super::params::Params;
use super::{Provider, pkce, scope};
use crate::auth::mfa::{self, Acr, second_step};
use crate::auth::session::ActiveSession;
use crate::clock::Timestamp;
use crate::crypto::{b64, b64_decode, random_token};
use crate::store::{AuthCode, AuthCodeStore, Client, ConsentStore, StoreResult, User};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    None,
    Login,
    Consent,
}

/// A validated authorization request.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub prompt: Vec<Prompt>,
    pub max_age: Option<i64>,
    pub resource: Option<String>,
    /// `acr_values` (OIDC Core §3.1.2.1), in order of preference; Tessera knows "1" and "2".
    pub acr_values: Vec<String>,
}

impl AuthorizationRequest {
    /// The level this request asks for by itself: "2" when `acr_values` names it (essential or
    /// voluntary, it is honoured), else "1".
    pub fn requested_acr(&self) -> Acr {
        if self
            .acr_values
            .iter()
            .any(|v| Acr::parse(v) == Some(Acr::MultiFactor))
        {
            Acr::MultiFactor
        } else {
            Acr::SingleFactor
        }
    }
}

/// Whether whoever signs in for this request must use a second factor, before the user is
/// known: the client requires it, or the request asks for acr "2".
pub fn wants_mfa(client: &Client, req: &AuthorizationRequest) -> bool {
    client.require_mfa || req.requested_acr() == Acr::MultiFactor
}

/// The level a session must reach for this request and this user: "2" when the client
/// requires it, the request asks for it, or one of the user's roles is in
/// `mfa_required_roles`.
pub fn required_acr(p: &Provider, client: &Client, req: &AuthorizationRequest, user: &User) -> Acr {
    if wants_mfa(client, req) || second_step::required_by_role(p, user) {
        Acr::MultiFactor
    } else {
        Acr::SingleFactor
    }
}

#[derive(Debug)]
pub enum Rejection {
    /// Shown to the person; the client and redirect URI are not trusted.
    Page(String),
    /// The database could not be reached for a moment: the person is asked to try again (503).
    Unavailable,
    /// Sent back to the client's redirect URI.
    Redirect(String),
}

/// What the person must do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    SignIn,
    /// The session is below the level the request needs and the user has a second factor:
    /// ask for it (a step-up), then go on with this session.
    SecondStep,
    /// The session is below the level the request needs and the user has no second factor:
    /// lead them to set one up (nothing is issued meanwhile).
    Enrol,
    Consent(Vec<String>),
    Issue,
}

const MAX_PARAM_LEN: usize = 2048;

/// Appends `pairs` to a redirect URI, keeping its own query.
pub fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    match Url::parse(uri) {
        Ok(mut url) => {
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in pairs {
                    q.append_pair(k, v);
                }
            }
            url.to_string()
        }
        Err(_) => uri.to_string(),
    }
}

/// The error response to the client (RFC 6749 §4.1.2.1 + RFC 9207 `iss`).
pub fn error_redirect(
    p: &Provider,
    redirect_uri: &str,
    state: Option<&str>,
    err: &OAuthError,
) -> String {
    let description = err.description();
    let mut pairs = vec![
        ("error", err.code()),
        ("error_description", description.as_str()),
    ];
    if let Some(s) = state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", p.settings.issuer.as_str()));
    with_query(redirect_uri, &pairs)
}

pub async fn validate(
    p: &Provider,
    params: &Params,
) -> Result<(Client, AuthorizationRequest), Rejection> {
    if params.pairs().iter().any(|(_, v)| v.len() > MAX_PARAM_LEN) {
        return Err(Rejection::Page("The sign-in request is too large.".into()));
    }
    let client_id = params.get("client_id").ok_or_else(|| {
        Rejection::Page("The application did not identify itself (client_id is missing).".into())
    })?;
    let client = match p.client(client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Err(Rejection::Page(
                "The application is not registered (unknown client_id).".into(),
            ));
        }
        Err(e) if crate::store::Transient::is_transient(&e) => {
            tracing::warn!(error = %e, "client lookup failed: store unavailable");
            return Err(Rejection::Unavailable);
        }
        Err(e) => {
            tracing::error!(error = %e, "client lookup failed");
            return Err(Rejection::Page(
                "Something went wrong on our side. Please try again.".into(),
            ));
        }
    };
    let redirect_uri = params
        .get("redirect_uri")
        .ok_or_else(|| Rejection::Page("The application sent no redirect_uri.".into()))?;
    // Exact string comparison against the registered list (RFC 9700 §4.1.3).
    if !client.redirect_uris.iter().any(|r| r == redirect_uri) {
        return Err(Rejection::Page(
            "The redirect_uri is not registered for this application.".into(),
        ));
    }
    let state = params.get("state").map(String::from);
    let back = |err: OAuthError| {
        Rejection::Redirect(error_redirect(p, redirect_uri, state.as_deref(), &err))
    };

    if params.get("request").is_some() {
        return Err(back(OAuthError::RequestNotSupported));
    }
    if params.get("request_uri").is_some() {
        return Err(back(OAuthError::RequestUriNotSupported));
    }
    match params.get("response_type") {
        Some("code") => {}
        Some(_) => {
            return Err(back(OAuthError::UnsupportedResponseType(
                "only response_type=code is supported".into(),
            )));
        }
        None => {
            return Err(back(OAuthError::InvalidRequest(
                "response_type is required".into(),
            )));
        }
    }
    if let Some(mode) = params.get("response_mode")
        && mode != "query"
    {
        return Err(back(OAuthError::InvalidRequest(
            "only response_mode=query is supported".into(),
        )));
    }
    if !client.grant_types.iter().any(|g| g == "authorization_code") {
        return Err(back(OAuthError::UnauthorizedClient(
            "this client may not use the authorization code grant".into(),
        )));
    }
    let scope = match params.get("scope") {
        Some(raw) => scope::parse(raw).map_err(&back)?,
        None => vec![scope::OPENID.to_string()],
    };
    scope::require_allowed(&scope, &client.scopes).map_err(&back)?;
    let code_challenge = pkce::check_challenge(
        params.get("code_challenge"),
        params.get("code_challenge_method"),
    )
    .map_err(&back)?;
    let mut prompt = Vec::new();
    if let Some(raw) = params.get("prompt") {
        for value in raw.split(' ').filter(|v| !v.is_empty()) {
            prompt.push(match value {
                "none" => Prompt::None,
                "login" => Prompt::Login,
                "consent" => Prompt::Consent,
                _ => {
                    return Err(back(OAuthError::InvalidRequest(format!(
                        "unsupported prompt value `{value}`"
                    ))));
                }
            });
        }
        if prompt.contains(&Prompt::None) && prompt.len() > 1 {
            return Err(back(OAuthError::InvalidRequest(
                "prompt=none cannot be combined".into(),
            )));
        }
    }
    let max_age = match params.get("max_age") {
        Some(v) => Some(v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            back(OAuthError::InvalidRequest(
                "max_age must be a non-negative integer".into(),
            ))
        })?),
        None => None,
    };
    let resource = params.get("resource").map(String::from);
    if let Some(r) = &resource
        && !client.audiences.iter().any(|a| a == r)
    {
        return Err(back(OAuthError::InvalidTarget(
            "the requested resource is not registered for this client".into(),
        )));
    }
    let req = AuthorizationRequest {
        client_id: client.id.clone(),
        redirect_uri: redirect_uri.to_string(),
        scope,
        state,
        nonce: params.get("nonce").map(String::from),
        code_challenge,
        prompt,
        max_age,
        resource,
        acr_values: params
            .get("acr_values")
            .map(|v| {
                v.split(' ')
                    .filter(|a| !a.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
    };
    Ok((client, req))
}

/// Decides whether the person must sign in, reach a higher level (a step-up), consent, or can
/// get a code now. `fresh` is true right after a sign-in on this request, which satisfies
/// prompt=login/max_age (a sign-in runs every factor the user has, so both are asked again).
pub async fn next_step(
    p: &Provider,
    client: &Client,
    req: &AuthorizationRequest,
    session: Option<&ActiveSession>,
    fresh: bool,
    now: Timestamp,
) -> Result<Next, OAuthError> {
    let silent = req.prompt.contains(&Prompt::None);
    let Some(session) = session else {
        return if silent {
            Err(OAuthError::LoginRequired)
        } else {
            Ok(Next::SignIn)
        };
    };
    if !fresh {
        let too_old = req
            .max_age
            .is_some_and(|m| now - session.session.auth_time > m);
        if req.prompt.contains(&Prompt::Login) || too_old {
            return if silent {
                Err(OAuthError::LoginRequired)
            } else {
                Ok(Next::SignIn)
            };
        }
    }
    let required = required_acr(p, client, req, &session.user);
    if !Acr::of_strings(&session.session.amr).satisfies(required) {
        // OIDC Core §3.1.2.6: the person must interact (enter a code) before anything is issued.
        if silent {
            return Err(OAuthError::LoginRequired);
        }
        return match mfa::has_second_factor(p, &session.user.id).await {
            Ok(true) => Ok(Next::SecondStep),
            Ok(false) => Ok(Next::Enrol),
            Err(mfa::MfaError::Store(e)) => Err(e.into()),
            Err(e) => {
                tracing::error!(error = %e, "could not read the user's factors");
                Err(OAuthError::ServerError)
            }
        };
    }
    if client.first_party {
        return Ok(Next::Issue);
    }
    let granted = p.store.find_consent(&session.user.id, &client.id).await?;
    let missing = req.scope.iter().any(|s| !granted.contains(s));
    if missing || req.prompt.contains(&Prompt::Consent) {
        return if silent {
            Err(OAuthError::ConsentRequired)
        } else {
            Ok(Next::Consent(req.scope.clone()))
        };
    }
    Ok(Next::Issue)
}

/// Issues a code bound to the client, redirect URI, PKCE challenge, nonce, user and session;
/// returns the redirect to the client.
pub async fn issue_code(
    p: &Provider,
    req: &AuthorizationRequest,
    session: &ActiveSession,
    now: Timestamp,
) -> Result<String, OAuthError> {
    let code = random_token();
    p.store
        .insert_code(&AuthCode {
            code_hash: p.crypto.token_hash(&code),
            client_id: req.client_id.clone(),
            user_id: session.user.id.clone(),
            session_id: session.session.id.clone(),
            redirect_uri: req.redirect_uri.clone(),
            scope: scope::join(&req.scope),
            nonce: req.nonce.clone(),
            code_challenge: req.code_challenge.clone(),
            resource: req.resource.clone(),
            auth_time: session.session.auth_time,
            amr: session.session.amr.clone(),
            created_at: now,
            expires_at: now + p.settings.auth_code_ttl,
        })
        .await?;
    let mut pairs = vec![("code", code.as_str())];
    if let Some(s) = &req.state {
        pairs.push(("state", s));
    }
    pairs.push(("iss", p.settings.issuer.as_str()));
    Ok(with_query(&req.redirect_uri, &pairs))
}

/// Each page of the flow seals the request with its own purpose, so a form sealed for one step
/// is refused by every other step (a sign-in form cannot be answered as a consent form).
pub const SIGN_IN_PURPOSE: &str = "authorize-sign-in";
pub const CONSENT_PURPOSE: &str = "authorize-consent";
pub const LOGOUT_PURPOSE: &str = "logout-request";

/// How long a sign-in or logout form stays usable (typing a password takes a while).
const FORM_TTL: i64 = 1800;
/// How long a consent form stays usable: it may vouch for a sign-in that just happened.
const CONSENT_TTL: i64 = 600;

/// The session a consent page was shown to, and whether that session signed in during this
/// very request (which satisfies prompt=login and max_age when the form comes back).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShownTo {
    #[serde(rename = "s")]
    pub session_id: String,
    #[serde(rename = "f")]
    pub fresh: bool,
    /// Names this form, so that its freshness vouches for one decision only.
    #[serde(rename = "n", default)]
    pub nonce: String,
}

impl ShownTo {
    pub fn new(session_id: &str, fresh: bool) -> Self {
        Self {
            session_id: session_id.to_owned(),
            fresh,
            nonce: crate::crypto::random_token(),
        }
    }
}

/// What to do with a consent form that came back.
#[derive(Debug, PartialEq, Eq)]
pub enum ConsentAnswer {
    /// Apply the person's decision: the form was shown to this session and the request's
    /// requirements still hold.
    Decide,
    /// Run the request again as a new visit would (sign in again, or ask this session).
    Again,
}

/// Re-runs the decision when a consent form comes back (prompt=login, max_age, session
/// validity): the form speaks only for the live session it was shown to, and counts as
/// following a sign-in only if it was shown right after one.
pub async fn consent_step(
    p: &Provider,
    client: &Client,
    req: &AuthorizationRequest,
    session: Option<&ActiveSession>,
    shown_to: &ShownTo,
    now: Timestamp,
) -> Result<ConsentAnswer, OAuthError> {
    let Some(session) = session.filter(|s| s.session.id == shown_to.session_id) else {
        return Ok(ConsentAnswer::Again);
    };
    // A sign-in vouches for one decision: the same form posted again is judged like any form
    // shown to an older session (prompt=login / max_age then ask for a new sign-in).
    // (A form sealed before forms carried a nonce vouches for nothing.)
    let fresh = shown_to.fresh && !shown_to.nonce.is_empty() && {
        let key = format!("consent:fresh:{}", shown_to.nonce);
        let (uses, _) = p.fleet.hit(&key, CONSENT_TTL, now).await;
        uses == 1
    };
    match next_step(p, client, req, Some(session), fresh, now).await? {
        Next::SignIn | Next::SecondStep | Next::Enrol => Ok(ConsentAnswer::Again),
        Next::Consent(_) | Next::Issue => Ok(ConsentAnswer::Decide),
    }
}

/// The person's answer on the consent page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
}

/// Applies the person's answer once [`consent_step`] said to decide: a denial goes back to the
/// client as `access_denied`; an approval is remembered (these scopes for this client, so the
/// next visit does not ask again) and a code is issued. Returns where to send the browser; an
/// error only when the approval could not be saved.
pub async fn apply_consent(
    p: &Provider,
    req: &AuthorizationRequest,
    session: &ActiveSession,
    decision: Decision,
    now: Timestamp,
) -> StoreResult<String> {
    let back = |err: &OAuthError| error_redirect(p, &req.redirect_uri, req.state.as_deref(), err);
    if decision == Decision::Deny {
        return Ok(back(&OAuthError::AccessDenied(
            "the user denied the request".into(),
        )));
    }
    p.store
        .save_consent(&session.user.id, &req.client_id, &req.scope, now)
        .await?;
    Ok(match issue_code(p, req, session, now).await {
        Ok(location) => location,
        Err(e) => back(&e),
    })
}

fn seal(p: &Provider, purpose: &str, body: serde_json::Value) -> String {
    let body = body.to_string();
    let tag = p.crypto.mac(purpose, body.as_bytes());
    format!("{}.{}", b64(body.as_bytes()), b64(&tag))
}

#[derive(serde::Deserialize)]
struct Sealed {
    p: Vec<(String, String)>,
    exp: Timestamp,
    #[serde(default)]
    to: Option<ShownTo>,
}

fn open(p: &Provider, purpose: &str, sealed: &str, now: Timestamp) -> Option<Sealed> {
    let (body, tag) = sealed.split_once('.')?;
    let body = b64_decode(body)?;
    let tag = b64_decode(tag)?;
    if !p.crypto.verify_mac(purpose, &body, &tag) {
        return None;
    }
    let sealed: Sealed = serde_json::from_slice(&body).ok()?;
    (sealed.exp > now).then_some(sealed)
}

/// Request parameters carried through a form (sign-in, logout confirmation), MAC-protected for
/// one `purpose` and short-lived, so no server-side state is needed between pages.
pub fn seal_params(p: &Provider, purpose: &str, params: &Params, now: Timestamp) -> String {
    seal(
        p,
        purpose,
        serde_json::json!({ "p": params.pairs(), "exp": now + FORM_TTL }),
    )
}

pub fn open_params(p: &Provider, purpose: &str, sealed: &str, now: Timestamp) -> Option<Params> {
    let sealed = open(p, purpose, sealed, now)?;
    Params::from_pairs(sealed.p).ok()
}

/// The request carried by a consent page, bound to the session it is shown to.
pub fn seal_consent(p: &Provider, params: &Params, shown_to: &ShownTo, now: Timestamp) -> String {
    seal(
        p,
        CONSENT_PURPOSE,
        serde_json::json!({ "p": params.pairs(), "exp": now + CONSENT_TTL, "to": shown_to }),
    )
}

pub fn open_consent(p: &Provider, sealed: &str, now: Timestamp) -> Option<(Params, ShownTo)> {
    let sealed = open(p, CONSENT_PURPOSE, sealed, now)?;
    let shown_to = sealed.to?;
    Some((Params::from_pairs(sealed.p).ok()?, shown_to))
}
