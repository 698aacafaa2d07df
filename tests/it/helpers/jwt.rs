//! Reading JWTs (unverified) and verifying them against the JWKS the server publishes.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde_json::Value;

use super::TestApp;

/// The header of a JWT, unverified.
pub fn jwt_header(token: &str) -> Header {
    jsonwebtoken::decode_header(token).unwrap_or_else(|e| panic!("not a JWT ({e}): {token}"))
}

/// The claims of a JWT, unverified (for reading, never for trusting).
pub fn jwt_claims(token: &str) -> Value {
    let payload = token
        .split('.')
        .nth(1)
        .unwrap_or_else(|| panic!("not a JWT: {token}"));
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .expect("the JWT payload is base64url");
    serde_json::from_slice(&bytes).expect("the JWT payload is JSON")
}

/// `aud` as a list, whether the token carries a string or an array.
pub fn audiences(claims: &Value) -> Vec<String> {
    match &claims["aud"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        other => panic!("aud is neither a string nor an array: {other}"),
    }
}

impl TestApp {
    /// Verifies a JWT offline against the JWKS published right now: signature,
    /// issuer, audience and expiry. Returns the claims, or why it does not verify.
    pub async fn verify_jwt(&self, token: &str, audience: &str) -> Result<Value, String> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| format!("bad JWT header: {e}"))?;
        let kid = header.kid.clone().ok_or("the JWT header has no kid")?;
        let jwks = self.jwks().await;
        let jwk = jwks
            .find(&kid)
            .ok_or_else(|| format!("the JWKS does not publish kid {kid}"))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("unusable JWK {kid}: {e}"))?;
        if ![Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256].contains(&header.alg) {
            return Err(format!("unexpected signing algorithm {:?}", header.alg));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = 5;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| format!("the JWT does not verify: {e}"))
    }
}
