//! Minting tokens: RFC 9068 JWT access tokens, OIDC ID tokens, opaque refresh tokens.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::error::OAuthError;
use super::{Provider, scope};
use crate::clock::Timestamp;
use crate::crypto::{SecretString, b64, random_id, random_token};
use crate::keys::SigningAlg;
use crate::store::{Client, RefreshToken, User};

/// The token endpoint's successful response (RFC 6749 §5.1, OIDC Core §3.1.3.3).
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    pub access_token: SecretString,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<SecretString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<SecretString>,
}

/// Claims of an access token (RFC 9068 §2.2).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: Timestamp,
    pub iat: Timestamp,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// How the person signed in (RFC 9068 §2.2.1 allows `acr` and `amr`), so an API can demand
    /// multi-factor for a sensitive operation offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
}

/// `acr` for a sign-in's methods (decision: "2" exactly when `amr` holds `mfa`, which
/// `auth::mfa::level::with_mfa` records when the methods reach two factors), `None` without
/// methods (no person signed in, or a grant older than `amr`).
pub fn acr_of(amr: &[String]) -> Option<&'static str> {
    if amr.is_empty() {
        None
    } else if amr.iter().any(|m| m == "mfa") {
        Some("2")
    } else {
        Some("1")
    }
}

/// Who an access token is for, when a person is behind it.
pub struct UserGrant<'a> {
    pub user: &'a User,
    pub session_id: Option<&'a str>,
    pub auth_time: Option<Timestamp>,
    pub amr: &'a [String],
}

/// `aud` (RFC 8707 §2): the requested resource if the client may use it, else the client's
/// default audience, else this issuer.
pub fn audience(
    p: &Provider,
    client: &Client,
    resource: Option<&str>,
) -> Result<String, OAuthError> {
    match resource {
        Some(r) if client.audiences.iter().any(|a| a == r) => Ok(r.to_string()),
        Some(_) => Err(OAuthError::InvalidTarget(
            "the requested resource is not registered for this client".into(),
        )),
        None => Ok(client
            .audiences
            .first()
            .cloned()
            .unwrap_or_else(|| p.settings.issuer.clone())),
    }
}

/// Claims about the user released for `scope` (OIDC Core §5.4).
pub fn user_claims(user: &User, scope_text: &str) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert("sub".into(), json!(user.id));
    if scope::contains(scope_text, "email") {
        claims.insert("email".into(), json!(user.email));
        claims.insert("email_verified".into(), json!(user.email_verified));
    }
    if scope::contains(scope_text, "profile")
        && let Some(name) = &user.name
    {
        claims.insert("name".into(), json!(name));
    }
    claims
}

impl Provider {
    /// Signs an access token; returns it with its `jti` and `exp`.
    pub fn mint_access_token(
        &self,
        client: &Client,
        user: Option<&UserGrant<'_>>,
        aud: &str,
        scope: &str,
        jti: String,
        exp: Timestamp,
    ) -> Result<String, OAuthError> {
        let now = self.now();
        let claims = AccessClaims {
            iss: self.settings.issuer.clone(),
            sub: user
                .map(|u| u.user.id.clone())
                .unwrap_or_else(|| client.id.clone()),
            aud: aud.to_string(),
            exp,
            iat: now,
            jti,
            client_id: client.id.clone(),
            scope: scope.to_string(),
            sid: user.and_then(|u| u.session_id.map(String::from)),
            auth_time: user.and_then(|u| u.auth_time),
            roles: user
                .filter(|u| !u.user.roles.is_empty())
                .map(|u| u.user.roles.clone()),
            acr: user.and_then(|u| acr_of(u.amr)).map(String::from),
            amr: user.filter(|u| !u.amr.is_empty()).map(|u| u.amr.to_vec()),
        };
        let value = serde_json::to_value(&claims).map_err(|_| OAuthError::ServerError)?;
        Ok(self.keys().signer(now)?.sign_jwt("at+jwt", &value)?)
    }

    /// Signs an ID token (OIDC Core §2, §3.1.3.6).
    pub fn mint_id_token(
        &self,
        client: &Client,
        grant: &UserGrant<'_>,
        scope: &str,
        nonce: Option<&str>,
        access_token: &str,
    ) -> Result<String, OAuthError> {
        let now = self.now();
        let keys = self.keys();
        let signer = keys.signer(now)?;
        let mut claims = user_claims(grant.user, scope);
        claims.insert("iss".into(), json!(self.settings.issuer));
        claims.insert("aud".into(), json!(client.id));
        claims.insert("azp".into(), json!(client.id));
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + self.settings.id_token_ttl));
        if let Some(t) = grant.auth_time {
            claims.insert("auth_time".into(), json!(t));
        }
        if let Some(n) = nonce {
            claims.insert("nonce".into(), json!(n));
        }
        if let Some(sid) = grant.session_id {
            claims.insert("sid".into(), json!(sid));
        }
        if let Some(acr) = acr_of(grant.amr) {
            claims.insert("amr".into(), json!(grant.amr));
            claims.insert("acr".into(), json!(acr));
        }
        claims.insert(
            "at_hash".into(),
            json!(token_hash_claim(signer.alg, access_token)),
        );
        Ok(signer.sign_jwt("JWT", &Value::Object(claims))?)
    }

    /// Creates a refresh token record (not stored) and its value.
    pub fn new_refresh_token(
        &self,
        family_id: &str,
        client: &Client,
        grant: &UserGrant<'_>,
        scope: &str,
        audience: &str,
        family_expires_at: Timestamp,
    ) -> (String, RefreshToken) {
        let now = self.now();
        let value = random_token();
        let record = RefreshToken {
            token_hash: self.crypto.token_hash(&value),
            family_id: family_id.to_string(),
            client_id: client.id.clone(),
            user_id: Some(grant.user.id.clone()),
            session_id: grant.session_id.map(String::from),
            scope: scope.to_string(),
            audience: audience.to_string(),
            auth_time: grant.auth_time,
            amr: grant.amr.to_vec(),
            created_at: now,
            idle_expires_at: (now + self.settings.refresh_idle_ttl).min(family_expires_at),
            expires_at: family_expires_at,
            rotated_at: None,
            successor_hash: None,
            successor_enc: None,
            revoked_at: None,
        };
        (value, record)
    }

    /// Access token (+ ID token) for a person; shared by the code and refresh grants.
    pub fn user_tokens(
        &self,
        client: &Client,
        grant: &UserGrant<'_>,
        aud: &str,
        scope: &str,
        nonce: Option<&str>,
        jti: Option<String>,
    ) -> Result<TokenResponse, OAuthError> {
        let exp = self.now() + self.settings.access_token_ttl;
        let access = self.mint_access_token(
            client,
            Some(grant),
            aud,
            scope,
            jti.unwrap_or_else(random_id),
            exp,
        )?;
        let id_token = if scope::contains(scope, scope::OPENID) {
            Some(self.mint_id_token(client, grant, scope, nonce, &access)?)
        } else {
            None
        };
        Ok(TokenResponse {
            access_token: access.into(),
            token_type: "Bearer",
            expires_in: self.settings.access_token_ttl,
            scope: scope.to_string(),
            refresh_token: None,
            id_token: id_token.map(SecretString::new),
        })
    }
}

/// `at_hash`: the left half of the hash of the access token, with the hash of the JWS algorithm
/// (SHA-256 for ES256/RS256, SHA-512 for Ed25519).
pub fn token_hash_claim(alg: SigningAlg, token: &str) -> String {
    use aws_lc_rs::digest;
    let d = match alg {
        SigningAlg::EdDsa => digest::digest(&digest::SHA512, token.as_bytes()),
        _ => digest::digest(&digest::SHA256, token.as_bytes()),
    };
    let bytes = d.as_ref();
    b64(&bytes[..bytes.len() / 2])
}
