//! Token introspection (RFC 7662) and the shared access-token check used by userinfo.

use serde_json::{Value, json};

use super::Provider;
use super::client_auth;
use super::error::OAuthError;
use super::params::Params;
use super::tokens::AccessClaims;
use crate::store::{RefreshTokenStore, SessionStore, UserStore};

/// Verifies an access token we issued and checks it was not revoked since: its `jti` is not
/// denied, its session has not ended and its user is not disabled.
pub async fn check_access_token(p: &Provider, token: &str) -> Result<AccessClaims, OAuthError> {
    let now = p.now();
    let claims = match p.caches.verified(token, now) {
        Some(c) => c,
        None => {
            let c: AccessClaims = p
                .keys()
                .verify(token, Some("at+jwt"), &p.settings.issuer, now)
                .map_err(|e| {
                    OAuthError::InvalidToken(format!(
                        "the access token is {}",
                        match e {
                            crate::keys::keyring::VerifyError::Expired => "expired",
                            _ => "invalid",
                        }
                    ))
                })?;
            p.caches.put_verified(token, &c);
            c
        }
    };
    // In memory, kept current on every replica (see `fleet`): with Redis no database round trip,
    // without it at most one primary-key lookup every few milliseconds.
    p.fleet
        .catch_up(&p.store, now, p.clock.now_millis())
        .await?;
    if p.fleet.is_revoked(&claims) {
        return Err(OAuthError::InvalidToken(
            "the access token was revoked".into(),
        ));
    }
    // A disabled client's tokens stop with it, whenever they were issued (the lookup is cached).
    if p.client(&claims.client_id).await?.is_none() {
        return Err(OAuthError::InvalidToken(
            "the access token was revoked".into(),
        ));
    }
    Ok(claims)
}

fn inactive() -> Value {
    json!({ "active": false })
}

/// Answers an introspection request from an authenticated client. RFC 7662 §2.1: the caller
/// must be authorized to introspect, and Tessera authorizes confidential clients only (resource
/// servers): a public client proves nothing by sending its client_id, so it gets the same
/// `invalid_client` as a wrong secret, and discovery lists no `none` method for this endpoint.
pub async fn introspect(
    p: &Provider,
    authorization: Option<&str>,
    body: &str,
) -> Result<Value, OAuthError> {
    let params = Params::parse(body)?;
    let creds = client_auth::extract(authorization, &params)?;
    let client = client_auth::authenticate(p, &creds).await?;
    if client.secret_hash.is_none() || creds.method == client_auth::AuthMethod::None {
        return Err(OAuthError::InvalidClient(
            "client authentication failed".into(),
        ));
    }
    let token = params.require("token")?;
    if token.len() > 8192 {
        return Ok(inactive());
    }
    let hint = params.get("token_type_hint");
    if hint != Some("refresh_token") && token.contains('.') {
        return Ok(match check_access_token(p, token).await {
            Ok(c) => json!({
                "active": true,
                "token_type": "Bearer",
                "scope": c.scope,
                "client_id": c.client_id,
                "sub": c.sub,
                "aud": c.aud,
                "iss": c.iss,
                "exp": c.exp,
                "iat": c.iat,
                "jti": c.jti,
                "sid": c.sid,
                "auth_time": c.auth_time,
                "roles": c.roles,
            }),
            Err(OAuthError::InvalidToken(_)) => inactive(),
            // A revocation list that could not be brought up to date says nothing about the
            // token: "inactive" would read as a revocation (see `store::Transient`).
            Err(e) => return Err(e),
        });
    }
    let now = p.now();
    let Some(t) = p.store.find_refresh(&p.crypto.token_hash(token)).await? else {
        return Ok(inactive());
    };
    // Only the client a refresh token belongs to may learn about it.
    let usable = t.client_id == client.id
        && t.revoked_at.is_none()
        && t.rotated_at.is_none()
        && t.expires_at > now
        && t.idle_expires_at > now;
    if !usable {
        return Ok(inactive());
    }
    if let Some(sid) = &t.session_id
        && !matches!(p.store.find_session(sid).await?, Some(s) if s.revoked_at.is_none())
    {
        return Ok(inactive());
    }
    if let Some(uid) = &t.user_id
        && !matches!(p.store.find_user(uid).await?, Some(u) if !u.disabled)
    {
        return Ok(inactive());
    }
    Ok(json!({
        "active": true,
        "token_type": "refresh_token",
        "scope": t.scope,
        "client_id": t.client_id,
        "sub": t.user_id,
        "aud": t.audience,
        "iss": p.settings.issuer,
        "exp": t.idle_expires_at.min(t.expires_at),
        "iat": t.created_at,
        "sid": t.session_id,
    }))
}
