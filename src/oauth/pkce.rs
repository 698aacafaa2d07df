//! PKCE (RFC 7636) with S256 only: `plain` is refused (RFC 9700 §2.1.1).

use crate::crypto::{b64, ct_eq, sha256};

use super::error::OAuthError;

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Checks the authorization request's challenge and method.
pub fn check_challenge(
    challenge: Option<&str>,
    method: Option<&str>,
) -> Result<String, OAuthError> {
    let challenge = challenge.ok_or_else(|| {
        OAuthError::InvalidRequest("code_challenge is required (PKCE, S256)".into())
    })?;
    match method {
        Some("S256") => {}
        Some("plain") | None => {
            return Err(OAuthError::InvalidRequest(
                "code_challenge_method must be S256".into(),
            ));
        }
        Some(_) => {
            return Err(OAuthError::InvalidRequest(
                "unsupported code_challenge_method; use S256".into(),
            ));
        }
    }
    // base64url of a SHA-256 digest: 43 characters.
    if challenge.len() != 43 || !challenge.bytes().all(is_unreserved) {
        return Err(OAuthError::InvalidRequest(
            "malformed code_challenge".into(),
        ));
    }
    Ok(challenge.to_string())
}

/// Verifies a code_verifier against the stored S256 challenge, in constant time.
pub fn verify(verifier: &str, challenge: &str) -> Result<(), OAuthError> {
    if !(43..=128).contains(&verifier.len()) || !verifier.bytes().all(is_unreserved) {
        return Err(OAuthError::InvalidGrant("malformed code_verifier".into()));
    }
    let computed = b64(&sha256(verifier.as_bytes()));
    if ct_eq(computed.as_bytes(), challenge.as_bytes()) {
        Ok(())
    } else {
        Err(OAuthError::InvalidGrant(
            "code_verifier does not match the code_challenge".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_7636_example_verifies_and_a_wrong_verifier_fails() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(check_challenge(Some(challenge), Some("S256")).is_ok());
        assert!(verify(verifier, challenge).is_ok());
        assert!(verify(&verifier.replace('d', "e"), challenge).is_err());
    }

    #[test]
    fn plain_and_missing_methods_are_refused() {
        let c = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(check_challenge(Some(c), Some("plain")).is_err());
        assert!(check_challenge(Some(c), None).is_err());
        assert!(check_challenge(None, Some("S256")).is_err());
    }
}
