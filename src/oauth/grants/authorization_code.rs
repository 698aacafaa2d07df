//! The authorization code grant (RFC 6749 §4.1.3) with mandatory PKCE (RFC 7636).

use super::{Grant, active_user, session_not_revoked};
use crate::audit::AuditEvent;
use crate::clock::Timestamp;
use crate::crypto::random_id;
use crate::oauth::error::OAuthError;
use crate::oauth::params::Params;
use crate::oauth::tokens::{TokenResponse, UserGrant, audience};
use crate::oauth::{Provider, pkce};
use crate::store::{
    AuthCode, AuthCodeStore, Client, CodeOutcome, CodeRedemption, RefreshToken, RefreshTokenStore,
};

pub struct AuthorizationCode;

impl Grant for AuthorizationCode {
    const GRANT_TYPE: &'static str = "authorization_code";

    async fn exchange(
        p: &Provider,
        client: &Client,
        params: &Params,
    ) -> Result<TokenResponse, OAuthError> {
        let code = params.require("code")?;
        let presented = Presented {
            redirect_uri: params.require("redirect_uri")?,
            verifier: params.require("code_verifier")?,
            resource: params.get("resource"),
        };
        if code.len() > 128 {
            return Err(OAuthError::InvalidGrant(
                "unknown authorization code".into(),
            ));
        }
        let now = p.now();
        let hash = p.crypto.token_hash(code);
        let Some(code) = p.store.find_code(&hash).await? else {
            return Err(OAuthError::InvalidGrant(
                "unknown authorization code".into(),
            ));
        };
        // What this redemption will issue is fixed and built before the code is spent, so the
        // store spends it and keeps the first refresh token in one transaction: a replay that
        // finds the code spent finds that token too, and revokes exactly what this use issued.
        let redemption = CodeRedemption {
            family_id: random_id(),
            access_jti: random_id(),
            access_expires_at: now + p.settings.access_token_ttl,
        };
        let issued = issue(p, client, &presented, &code, &redemption, now).await;
        // A failure on our side (a database unreachable for a moment, a bug) is not a refusal:
        // the client is told to try again, so the code must still be there when it does. Spent
        // here, the retry would read as a replay and be refused for good.
        if let Err(e @ (OAuthError::TemporarilyUnavailable | OAuthError::ServerError)) = &issued {
            return Err(e.clone());
        }
        // A refused request spends the code all the same (and a replay is a replay either way).
        let first_refresh = issued
            .as_ref()
            .ok()
            .and_then(|(_, refresh)| refresh.as_ref());
        match p
            .store
            .redeem_code(&hash, &redemption, first_refresh, now)
            .await?
        {
            CodeOutcome::Redeemed(_) => issued.map(|(response, _)| response),
            CodeOutcome::NotFound => Err(OAuthError::InvalidGrant(
                "unknown authorization code".into(),
            )),
            CodeOutcome::Replayed(code, first) => {
                // RFC 6749 §4.1.2: a code used twice revokes what its first use issued.
                tracing::warn!(client_id = %code.client_id, family = %first.family_id, "authorization code replayed; revoking its tokens");
                p.store.revoke_family(&first.family_id, now).await?;
                if !first.access_jti.is_empty() {
                    p.deny_access_token(&first.access_jti, first.access_expires_at)
                        .await?;
                }
                crate::metrics::inc(&p.metrics.code_replays);
                p.audit(
                    AuditEvent::new("code.replayed")
                        .actor(&client.id)
                        .subject(&code.user_id)
                        .detail("family", first.family_id.clone()),
                )
                .await;
                Err(OAuthError::InvalidGrant(
                    "the authorization code was already used".into(),
                ))
            }
        }
    }
}

/// What the client presented with the code.
struct Presented<'a> {
    redirect_uri: &'a str,
    verifier: &'a str,
    resource: Option<&'a str>,
}

/// Checks the request against the code and builds what its redemption issues: the response
/// and, when the client may refresh, the first refresh token's record (stored by the redemption).
async fn issue(
    p: &Provider,
    client: &Client,
    presented: &Presented<'_>,
    code: &AuthCode,
    redemption: &CodeRedemption,
    now: Timestamp,
) -> Result<(TokenResponse, Option<RefreshToken>), OAuthError> {
    if code.client_id != client.id {
        return Err(OAuthError::InvalidGrant(
            "the code was issued to another client".into(),
        ));
    }
    if code.expires_at <= now {
        return Err(OAuthError::InvalidGrant(
            "the authorization code has expired".into(),
        ));
    }
    if code.redirect_uri != presented.redirect_uri {
        return Err(OAuthError::InvalidGrant(
            "redirect_uri does not match the authorization request".into(),
        ));
    }
    pkce::verify(presented.verifier, &code.code_challenge)?;
    let user = active_user(p, &code.user_id).await?;
    session_not_revoked(p, Some(&code.session_id), now).await?;

    let aud = match (presented.resource, code.resource.as_deref()) {
        (Some(r), Some(bound)) if r != bound => {
            return Err(OAuthError::InvalidTarget(
                "resource differs from the authorization request".into(),
            ));
        }
        (Some(r), _) | (None, Some(r)) => audience(p, client, Some(r))?,
        (None, None) => audience(p, client, None)?,
    };
    let grant = UserGrant {
        user: &user,
        session_id: Some(&code.session_id),
        auth_time: Some(code.auth_time),
        amr: &code.amr,
    };
    let mut response = p.user_tokens(
        client,
        &grant,
        &aud,
        &code.scope,
        code.nonce.as_deref(),
        Some(redemption.access_jti.clone()),
    )?;
    let mut first_refresh = None;
    if client.grant_types.iter().any(|g| g == "refresh_token") {
        let family_expires_at = now + p.settings.refresh_absolute_ttl;
        let (value, record) = p.new_refresh_token(
            &redemption.family_id,
            client,
            &grant,
            &code.scope,
            &aud,
            family_expires_at,
        );
        response.refresh_token = Some(value.into());
        first_refresh = Some(record);
    }
    Ok((response, first_refresh))
}
