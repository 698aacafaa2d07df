//! The UserInfo endpoint (OIDC Core §5.3).

use serde_json::{Map, Value};

use super::error::OAuthError;
use super::introspect::check_access_token;
use super::tokens::user_claims;
use super::{Provider, scope};
use crate::store::UserStore;

pub async fn userinfo(p: &Provider, bearer: &str) -> Result<Map<String, Value>, OAuthError> {
    let claims = check_access_token(p, bearer).await?;
    if claims.sid.is_none() || !scope::contains(&claims.scope, scope::OPENID) {
        return Err(OAuthError::InsufficientScope(
            "the access token lacks the openid scope".into(),
        ));
    }
    let user = match p.store.find_user(&claims.sub).await? {
        Some(u) if !u.disabled => u,
        _ => {
            return Err(OAuthError::InvalidToken(
                "the access token was revoked".into(),
            ));
        }
    };
    Ok(user_claims(&user, &claims.scope))
}
