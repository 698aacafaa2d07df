//! The refresh token grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2).
//!
//! Every use returns a new refresh token. Two tabs that race with the same token must both
//! succeed and end up with one chain: within `refresh_reuse_grace` of its rotation, the immediate
//! predecessor of the current token gets the *same* successor back. The successor is kept sealed
//! under a key derived from the predecessor's value, so nothing secret is stored in the clear.
//! Any other use of a rotated token is a replay: the whole family and its session are revoked.

use super::{Grant, session_ended, user_disabled};
use crate::audit::AuditEvent;
use crate::clock::Timestamp;
use crate::crypto::{open_with_token, random_token, seal_with_token};
use crate::metrics::inc;
use crate::oauth::error::OAuthError;
use crate::oauth::params::Params;
use crate::oauth::tokens::{TokenResponse, UserGrant};
use crate::oauth::{Provider, scope};
use crate::store::{Client, CurrentRotation, RefreshGrant, RefreshToken, RefreshTokenStore, User};

pub struct RefreshTokenGrant;

fn invalid(msg: &str) -> OAuthError {
    OAuthError::InvalidGrant(msg.into())
}

impl Grant for RefreshTokenGrant {
    const GRANT_TYPE: &'static str = "refresh_token";

    async fn exchange(
        p: &Provider,
        client: &Client,
        params: &Params,
    ) -> Result<TokenResponse, OAuthError> {
        let presented = params.require("refresh_token")?;
        if presented.len() > 128 {
            return Err(invalid("unknown refresh token"));
        }
        let now = p.now();
        let hash = p.crypto.token_hash(presented);
        // The common case first: a current token, same scope, rotated in one statement (batched
        // with concurrent ones) without reading it first. Everything else, and the reason for a
        // refusal, takes the path below.
        if params.get("scope").is_none()
            && let Some(response) = rotate_current(p, client, presented, &hash, now).await?
        {
            return Ok(response);
        }
        let Some(RefreshGrant {
            token,
            user,
            session_active,
        }) = p.store.find_refresh_grant(&hash).await?
        else {
            return Err(invalid("unknown refresh token"));
        };
        // Sender-bound: only the client it was issued to may use it.
        if token.client_id != client.id {
            return Err(invalid("unknown refresh token"));
        }
        if token.revoked_at.is_some() {
            return Err(invalid("the refresh token was revoked; sign in again"));
        }
        let requested_scope = match params.get("scope") {
            Some(raw) => {
                let requested = scope::parse(raw)?;
                let granted: Vec<String> = token.scope.split(' ').map(String::from).collect();
                scope::require_allowed(&requested, &granted)?;
                Some(scope::join(&requested))
            }
            None => None,
        };

        // A disabled user or an ended session stops the grant before anything rotates.
        let user = match user {
            Some(u) if !u.disabled => u,
            _ => return Err(user_disabled()),
        };
        if session_active == Some(false) {
            return Err(session_ended());
        }

        let successor = if token.rotated_at.is_none() {
            check_lifetime(&token, now)?;
            match rotate(p, client, &token, &user, presented, now).await? {
                Some(s) => s,
                // Another request rotated it first: treat ours as the racing twin.
                None => {
                    let Some(reloaded) = p.store.find_refresh(&hash).await? else {
                        return Err(invalid("unknown refresh token"));
                    };
                    racing_twin(p, &reloaded, presented, now).await?
                }
            }
        } else {
            racing_twin(p, &token, presented, now).await?
        };

        let scope = requested_scope.unwrap_or_else(|| token.scope.clone());
        respond(p, client, &token, &user, &scope, successor)
    }
}

/// Whether `params` present a refresh token that would be honoured now: issued to `client`, not
/// revoked, within its lifetimes, current (or rotated within the grace window), of an enabled user
/// and a live session. One read and no write: it lets a valid refresh through when the caller's
/// address is over its failure quota, without letting that address's junk reach the writer.
pub(crate) async fn presents_live_token(
    p: &Provider,
    client: &Client,
    params: &Params,
) -> Result<bool, OAuthError> {
    let Some(presented) = params.get("refresh_token").filter(|t| t.len() <= 128) else {
        return Ok(false);
    };
    let now = p.now();
    let Some(RefreshGrant {
        token,
        user,
        session_active,
    }) = p
        .store
        .find_refresh_grant(&p.crypto.token_hash(presented))
        .await?
    else {
        return Ok(false);
    };
    let current = token
        .rotated_at
        .is_none_or(|at| now - at <= p.settings.refresh_reuse_grace);
    Ok(token.client_id == client.id
        && token.revoked_at.is_none()
        && current
        && check_lifetime(&token, now).is_ok()
        && user.is_some_and(|u| !u.disabled)
        && session_active != Some(false))
}

/// Access and ID token for the grant behind `token`, with its successor refresh token.
fn respond(
    p: &Provider,
    client: &Client,
    token: &RefreshToken,
    user: &User,
    scope: &str,
    successor: String,
) -> Result<TokenResponse, OAuthError> {
    let grant = UserGrant {
        user,
        session_id: token.session_id.as_deref(),
        auth_time: token.auth_time,
        amr: &token.amr,
    };
    let mut response = p.user_tokens(client, &grant, &token.audience, scope, None, None)?;
    response.refresh_token = Some(successor.into());
    Ok(response)
}

/// The one-statement rotation of a current token (see `RefreshTokenStore::rotate_if_current`);
/// `None` when the general path must decide.
async fn rotate_current(
    p: &Provider,
    client: &Client,
    presented: &str,
    hash: &[u8],
    now: Timestamp,
) -> Result<Option<TokenResponse>, OAuthError> {
    let value = random_token();
    let successor_hash = p.crypto.token_hash(&value);
    let sealed = seal_with_token(presented, value.as_bytes());
    let rotation = CurrentRotation {
        old_hash: hash,
        client_id: &client.id,
        successor_hash: &successor_hash,
        successor_enc: &sealed,
        now,
        idle_ttl: p.settings.refresh_idle_ttl,
    };
    let Some(RefreshGrant {
        token,
        user: Some(user),
        ..
    }) = p.store.rotate_if_current(&rotation).await?
    else {
        return Ok(None);
    };
    inc(&p.metrics.refresh_rotations);
    respond(p, client, &token, &user, &token.scope, value).map(Some)
}

fn check_lifetime(token: &RefreshToken, now: Timestamp) -> Result<(), OAuthError> {
    if token.expires_at <= now {
        return Err(invalid(
            "the refresh token reached its maximum lifetime; sign in again",
        ));
    }
    if token.idle_expires_at <= now {
        return Err(invalid(
            "the refresh token expired after inactivity; sign in again",
        ));
    }
    Ok(())
}

/// Rotates `token`; `None` when a concurrent request won the rotation.
async fn rotate(
    p: &Provider,
    client: &Client,
    token: &RefreshToken,
    user: &User,
    presented: &str,
    now: Timestamp,
) -> Result<Option<String>, OAuthError> {
    let grant = UserGrant {
        user,
        session_id: token.session_id.as_deref(),
        auth_time: token.auth_time,
        amr: &token.amr,
    };
    let (value, record) = p.new_refresh_token(
        &token.family_id,
        client,
        &grant,
        &token.scope,
        &token.audience,
        token.expires_at,
    );
    let sealed = seal_with_token(presented, value.as_bytes());
    if p.store
        .rotate_refresh(&token.token_hash, &record, &sealed, now)
        .await?
    {
        inc(&p.metrics.refresh_rotations);
        Ok(Some(value))
    } else {
        Ok(None)
    }
}

/// A rotated token presented again: the same successor within the grace window if it is the
/// current token's immediate predecessor; otherwise a replay that revokes the family.
async fn racing_twin(
    p: &Provider,
    token: &RefreshToken,
    presented: &str,
    now: Timestamp,
) -> Result<String, OAuthError> {
    if token.revoked_at.is_some() {
        return Err(invalid("the refresh token was revoked; sign in again"));
    }
    let rotated_at = token.rotated_at.unwrap_or(now);
    let within_grace = now - rotated_at <= p.settings.refresh_reuse_grace;
    if within_grace
        && let (Some(succ_hash), Some(sealed)) = (&token.successor_hash, &token.successor_enc)
        && let Some(successor) = p.store.find_refresh(succ_hash).await?
        && successor.rotated_at.is_none()
        && successor.revoked_at.is_none()
        && let Ok(value) = open_with_token(presented, sealed)
        && let Ok(value) = String::from_utf8(value)
    {
        tracing::info!(family = %token.family_id, "concurrent refresh within the grace window; returning the same successor");
        inc(&p.metrics.refresh_races);
        p.audit(
            AuditEvent::new("refresh.race")
                .actor(&token.client_id)
                .subject(token.user_id.clone().unwrap_or_default())
                .detail("family", token.family_id.clone())
                .detail("seconds_after_rotation", now - rotated_at),
        )
        .await;
        return Ok(value);
    }
    tracing::warn!(
        family = %token.family_id,
        client_id = %token.client_id,
        "rotated refresh token reused; revoking the family and its session"
    );
    p.store.revoke_family(&token.family_id, now).await?;
    if let Some(sid) = &token.session_id {
        p.revoke_session(sid).await?;
    }
    inc(&p.metrics.refresh_reuse_detected);
    p.audit(
        AuditEvent::new("refresh.reuse_detected")
            .actor(&token.client_id)
            .subject(token.user_id.clone().unwrap_or_default())
            .detail("family", token.family_id.clone())
            .detail("session", token.session_id.clone())
            .detail("seconds_after_rotation", now - rotated_at),
    )
    .await;
    Err(invalid(
        "the refresh token was already used; the session has been ended",
    ))
}
