//! The client credentials grant (RFC 6749 §4.4): confidential clients acting for themselves.

use super::Grant;
use crate::crypto::random_id;
use crate::oauth::error::OAuthError;
use crate::oauth::params::Params;
use crate::oauth::tokens::{TokenResponse, audience};
use crate::oauth::{Provider, scope};
use crate::store::Client;

pub struct ClientCredentials;

impl Grant for ClientCredentials {
    const GRANT_TYPE: &'static str = "client_credentials";

    async fn exchange(
        p: &Provider,
        client: &Client,
        params: &Params,
    ) -> Result<TokenResponse, OAuthError> {
        if client.secret_hash.is_none() {
            return Err(OAuthError::UnauthorizedClient(
                "public clients cannot use client_credentials".into(),
            ));
        }
        // Scopes about a person mean nothing here.
        let allowed: Vec<String> = client
            .scopes
            .iter()
            .filter(|s| !scope::USER_SCOPES.contains(&s.as_str()))
            .cloned()
            .collect();
        let granted = match params.get("scope") {
            Some(raw) => {
                let requested = scope::parse(raw)?;
                scope::require_allowed(&requested, &allowed)?;
                requested
            }
            None => allowed,
        };
        let scope = scope::join(&granted);
        let aud = audience(p, client, params.get("resource"))?;
        let exp = p.now() + p.settings.access_token_ttl;
        let access_token = p.mint_access_token(client, None, &aud, &scope, random_id(), exp)?;
        Ok(TokenResponse {
            access_token: access_token.into(),
            token_type: "Bearer",
            expires_in: p.settings.access_token_ttl,
            scope,
            refresh_token: None,
            id_token: None,
        })
    }
}
