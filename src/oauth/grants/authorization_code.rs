//! The authorization code grant (RFC 6749 §4.1.3) with mandatory PKCE (RFC 7636).

use super::{Grant, active_user, session_not_revoked};
use crate::audit::AuditEvent;
use crate::crypto::random_id;
use crate::oauth::error::OAuthError;
use crate::oauth::params::Params;
use crate::oauth::tokens::{TokenResponse, UserGrant, audience};
use crate::oauth::{Provider, pkce};
use crate::store::{AuthCodeStore, Client, CodeOutcome, CodeRedemption, RefreshTokenStore};

pub struct AuthorizationCode;

impl Grant for AuthorizationCode {
    const GRANT_TYPE: &'static str = "authorization_code";

    async fn exchange(
        p: &Provider,
        client: &Client,
        params: &Params,
    ) -> Result<TokenResponse, OAuthError> {
        let code = params.require("code")?;
        let redirect_uri = params.require("redirect_uri")?;
        let verifier = params.require("code_verifier")?;
        if code.len() > 128 {
            return Err(OAuthError::InvalidGrant(
                "unknown authorization code".into(),
            ));
        }
        let now = p.now();
        // What this redemption will issue is fixed up front, so a replay can revoke exactly it.
        let redemption = CodeRedemption {
            family_id: random_id(),
            access_jti: random_id(),
            access_expires_at: now + p.settings.access_token_ttl,
        };
        let code = match p
            .store
            .redeem_code(&p.crypto.token_hash(code), &redemption, now)
            .await?
        {
            CodeOutcome::Redeemed(code) => code,
            CodeOutcome::NotFound => {
                return Err(OAuthError::InvalidGrant(
                    "unknown authorization code".into(),
                ));
            }
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
                return Err(OAuthError::InvalidGrant(
                    "the authorization code was already used".into(),
                ));
            }
        };
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
        if code.redirect_uri != redirect_uri {
            return Err(OAuthError::InvalidGrant(
                "redirect_uri does not match the authorization request".into(),
            ));
        }
        pkce::verify(verifier, &code.code_challenge)?;
        let user = active_user(p, &code.user_id).await?;
        session_not_revoked(p, Some(&code.session_id), now).await?;

        let aud = match (params.get("resource"), code.resource.as_deref()) {
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
            Some(redemption.access_jti),
        )?;
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
            p.store.insert_refresh(&record).await?;
            response.refresh_token = Some(value.into());
        }
        Ok(response)
    }
}
