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

/// Handles a token request: form body, the Authorization header, and the caller's address (for
/// throttling failed client authentication).
pub async fn exchange(
    p: &Provider,
    authorization: Option<&str>,
    body: &str,
    ip: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let now = p.now();
    let failures_key = format!("clientauth:ip:{}", ip.unwrap_or("-"));
    let s = &p.settings;
    let now_ms = p.clock.now_millis();
    if p.fleet.get_recent(&failures_key, now, now_ms).await >= s.client_auth_failure_limit {
        return Err(OAuthError::RateLimited(s.client_auth_failure_window));
    }
    let params = Params::parse(body)?;
    let creds = client_auth::extract(authorization, &params)?;
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
    if let Some(wait) = throttle::rate_limited(
        &p.fleet,
        &format!("token:{}", client.id),
        s.token_rate_limit,
        60,
        now,
    )
    .await
    {
        return Err(OAuthError::RateLimited(wait));
    }
    match params.require("grant_type")? {
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
