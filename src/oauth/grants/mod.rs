//! The token endpoint (RFC 6749 §3.2): authenticate the client first, then hand the request to
//! the one grant that handles its `grant_type`. Adding a grant is one file and one line in
//! [`exchange`].

pub mod authorization_code;
pub mod client_credentials;
pub mod refresh_token;

use super::Provider;
use super::client_auth;
use super::error::OAuthError;
use super::params::Params;
use super::tokens::TokenResponse;
use crate::auth::throttle;
use crate::clock::Timestamp;
use crate::store::{Client, SessionStore, User, UserStore};

/// One OAuth grant type.
#[allow(async_fn_in_trait)]
pub trait Grant {
    const GRANT_TYPE: &'static str;
    /// Exchanges the grant for tokens; the client is already authenticated and registered for
    /// this grant type.
    async fn exchange(
        p: &Provider,
        client: &Client,
        params: &Params,
    ) -> Result<TokenResponse, OAuthError>;
}

async fn run<G: Grant>(
    p: &Provider,
    client: &Client,
    params: &Params,
) -> Result<TokenResponse, OAuthError> {
    if !client.grant_types.iter().any(|g| g == G::GRANT_TYPE) {
        return Err(OAuthError::UnauthorizedClient(format!(
            "this client is not registered for the {} grant",
            G::GRANT_TYPE
        )));
    }
    let response = G::exchange(p, client, params).await?;
    crate::metrics::inc(&p.metrics.tokens_issued);
    Ok(response)
}

/// Handles a token request: form body, the Authorization header, and the key of the caller's
/// address (`http::client_addr`).
///
/// Every quota counts what the party it refuses can be held to, so one party's traffic never fails
/// another party's valid request (see `config/tessera.toml`, "Token endpoint quotas"):
/// - failed token requests per address (`token_failure_limit` a minute): once over, the address
///   gets 429, except for a refresh presenting a live refresh token, which still goes through;
/// - failed client authentications per address (`ip_failure_limit` per `ip_failure_window`),
///   enforced on requests that present a client secret (public clients have none to guess);
/// - requests per authenticated confidential client (`token_rate_limit` a minute). A public
///   client's id is never counted: anyone can name it.
pub async fn exchange(
    p: &Provider,
    authorization: Option<&str>,
    body: &str,
    ip: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let now = p.now();
    let now_ms = p.clock.now_millis();
    let limit = p.settings.token_failure_limit;
    let address = ip.unwrap_or("-");
    let failures_key = format!("token:fail:{address}");
    let over = limit > 0 && p.fleet.get_recent(&failures_key, now, now_ms).await >= limit;
    let gate = if over {
        let until = p.fleet.get(&format!("{failures_key}:until"), now).await;
        AddressGate::Over((until - now).clamp(1, FAILURE_WINDOW))
    } else {
        AddressGate::Open
    };
    let result = authenticate_and_run(p, authorization, body, address, gate).await;
    if limit > 0
        && let Err(e) = &result
        && counts_against_the_address(e)
    {
        let (count, left) = p.fleet.hit(&failures_key, FAILURE_WINDOW, now).await;
        p.fleet.remember(&failures_key, count, now_ms);
        if count == limit {
            p.fleet
                .put(&format!("{failures_key}:until"), now + left, left, now)
                .await;
        }
    }
    result
}

/// The window of `token_failure_limit`, in seconds.
const FAILURE_WINDOW: i64 = 60;

/// Whether the caller's address is over its failed-request quota (and for how long).
#[derive(Clone, Copy)]
enum AddressGate {
    Open,
    Over(i64),
}

/// A refusal the caller earned: not a rate limit (already a refusal) nor our own failure.
fn counts_against_the_address(e: &OAuthError) -> bool {
    !matches!(
        e,
        OAuthError::RateLimited(_) | OAuthError::ServerError | OAuthError::TemporarilyUnavailable
    )
}

async fn authenticate_and_run(
    p: &Provider,
    authorization: Option<&str>,
    body: &str,
    address: &str,
    gate: AddressGate,
) -> Result<TokenResponse, OAuthError> {
    let now = p.now();
    let s = &p.settings;
    let params = Params::parse(body)?;
    let grant_type = params.require("grant_type")?;
    let is_refresh = grant_type == refresh_token::RefreshTokenGrant::GRANT_TYPE;
    if let AddressGate::Over(wait) = gate
        && !is_refresh
    {
        return Err(OAuthError::RateLimited(wait));
    }
    let creds = client_auth::extract(authorization, &params)?;
    let failures_key = format!("clientauth:ip:{address}");
    let now_ms = p.clock.now_millis();
    if creds.secret.is_some()
        && p.fleet.get_recent(&failures_key, now, now_ms).await >= s.client_auth_failure_limit
    {
        return Err(OAuthError::RateLimited(s.client_auth_failure_window));
    }
    let client = match client_auth::authenticate(p, &creds).await {
        Ok(c) => c,
        Err(e) => {
            if matches!(e, OAuthError::InvalidClient(_)) {
                let (count, _) = p
                    .fleet
                    .hit(&failures_key, s.client_auth_failure_window, now)
                    .await;
                p.fleet.remember(&failures_key, count, now_ms);
            }
            return Err(e);
        }
    };
    // Over its quota, the address keeps only what nobody else can fail for it: a refresh of a
    // live family, checked with one read before anything is written.
    if let AddressGate::Over(wait) = gate
        && !refresh_token::presents_live_token(p, &client, &params).await?
    {
        return Err(OAuthError::RateLimited(wait));
    }
    if client.secret_hash.is_some()
        && let Some(wait) = throttle::rate_limited(
            &p.fleet,
            &format!("token:client:{}", client.id),
            s.token_rate_limit,
            60,
            now,
        )
        .await
    {
        return Err(OAuthError::RateLimited(wait));
    }
    match grant_type {
        authorization_code::AuthorizationCode::GRANT_TYPE => {
            run::<authorization_code::AuthorizationCode>(p, &client, &params).await
        }
        refresh_token::RefreshTokenGrant::GRANT_TYPE => {
            run::<refresh_token::RefreshTokenGrant>(p, &client, &params).await
        }
        client_credentials::ClientCredentials::GRANT_TYPE => {
            run::<client_credentials::ClientCredentials>(p, &client, &params).await
        }
        _ => Err(OAuthError::UnsupportedGrantType(
            "this grant_type is not supported".into(),
        )),
    }
}

/// The user behind a grant, if they may still receive tokens.
pub(crate) async fn active_user(p: &Provider, user_id: &str) -> Result<User, OAuthError> {
    match p.store.find_user(user_id).await? {
        Some(u) if !u.disabled => Ok(u),
        _ => Err(user_disabled()),
    }
}

pub(crate) fn user_disabled() -> OAuthError {
    OAuthError::InvalidGrant("the user account is disabled".into())
}

pub(crate) fn session_ended() -> OAuthError {
    OAuthError::InvalidGrant("the session behind this grant has ended".into())
}

/// The SSO session behind a grant must not have been ended.
pub(crate) async fn session_not_revoked(
    p: &Provider,
    session_id: Option<&str>,
    _now: Timestamp,
) -> Result<(), OAuthError> {
    let Some(id) = session_id else { return Ok(()) };
    match p.store.find_session(id).await? {
        Some(s) if s.revoked_at.is_none() => Ok(()),
        _ => Err(session_ended()),
    }
}
