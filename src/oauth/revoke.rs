//! Token revocation (RFC 7009). The answer is 200 whether or not the token was known, so the
//! endpoint reveals nothing; only the client a token was issued to can revoke it.

use super::Provider;
use super::client_auth;
use super::error::OAuthError;
use super::params::Params;
use super::tokens::AccessClaims;
use crate::store::RefreshTokenStore;

pub async fn revoke(
    p: &Provider,
    authorization: Option<&str>,
    body: &str,
) -> Result<(), OAuthError> {
    let params = Params::parse(body)?;
    let creds = client_auth::extract(authorization, &params)?;
    let client = client_auth::authenticate(p, &creds).await?;
    let token = params.require("token")?;
    if token.len() > 8192 {
        return Ok(());
    }
    let now = p.now();
    if let Some(t) = p.store.find_refresh(&p.crypto.token_hash(token)).await? {
        // RFC 7009 §2.1: revoking a refresh token also ends the grant it belongs to.
        if t.client_id == client.id {
            p.store.revoke_family(&t.family_id, now).await?;
        }
        return Ok(());
    }
    if let Ok(claims) =
        p.keys()
            .verify::<AccessClaims>(token, Some("at+jwt"), &p.settings.issuer, now)
        && claims.client_id == client.id
    {
        p.deny_access_token(&claims.jti, claims.exp).await?;
    }
    Ok(())
}
