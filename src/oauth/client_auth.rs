//! Client authentication at the token, revocation and introspection endpoints:
//! `client_secret_basic`, `client_secret_post` and `none` (public clients, PKCE mandatory).
//! Secrets are high-entropy, so a keyed SHA-256 compared in constant time is enough: microseconds,
//! not argon2's milliseconds.

use base64::Engine;

use super::Provider;
use super::error::OAuthError;
use super::params::Params;
use crate::crypto::{Crypto, SecretString, ct_eq};
use crate::store::Client;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Basic,
    Post,
    None,
}

#[derive(Debug)]
pub struct Credentials {
    pub client_id: String,
    pub secret: Option<SecretString>,
    pub method: AuthMethod,
}

fn failed() -> OAuthError {
    OAuthError::InvalidClient("client authentication failed".into())
}

fn form_decode(s: &str) -> Option<String> {
    // RFC 6749 §2.3.1: the id and secret are form-urlencoded before Basic encoding.
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&format!("v={s}")).ok()?;
    pairs.into_iter().next().map(|(_, v)| v)
}

/// Reads the client's credentials from the Authorization header or the form; more than one
/// method at once is refused (RFC 6749 §2.3).
pub fn extract(authorization: Option<&str>, form: &Params) -> Result<Credentials, OAuthError> {
    if let Some(header) = authorization {
        let (scheme, value) = header.split_once(' ').ok_or_else(failed)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(failed());
        }
        if form.get("client_secret").is_some() {
            return Err(OAuthError::InvalidRequest(
                "use one client authentication method".into(),
            ));
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map_err(|_| failed())?;
        let decoded = String::from_utf8(decoded).map_err(|_| failed())?;
        let (id, secret) = decoded.split_once(':').ok_or_else(failed)?;
        let id = form_decode(id).ok_or_else(failed)?;
        let secret = form_decode(secret).ok_or_else(failed)?;
        if let Some(form_id) = form.get("client_id")
            && form_id != id
        {
            return Err(OAuthError::InvalidRequest(
                "client_id does not match the credentials".into(),
            ));
        }
        return Ok(Credentials {
            client_id: id,
            secret: Some(SecretString::new(secret)),
            method: AuthMethod::Basic,
        });
    }
    let client_id = form
        .get("client_id")
        .ok_or_else(|| OAuthError::InvalidClient("client authentication is required".into()))?;
    Ok(match form.get("client_secret") {
        Some(secret) => Credentials {
            client_id: client_id.to_string(),
            secret: Some(SecretString::new(secret)),
            method: AuthMethod::Post,
        },
        None => Credentials {
            client_id: client_id.to_string(),
            secret: None,
            method: AuthMethod::None,
        },
    })
}

/// Authenticates the client; every failure is the same `invalid_client`.
pub async fn authenticate(p: &Provider, creds: &Credentials) -> Result<Client, OAuthError> {
    let crypto: &Crypto = &p.crypto;
    if creds.client_id.len() > 255 {
        return Err(failed());
    }
    let client = p.client(&creds.client_id).await?;
    let Some(client) = client else {
        // Same work as a real check, so unknown ids do not answer faster.
        let _ = crypto.token_hash(creds.secret.as_ref().map(|s| s.as_str()).unwrap_or(""));
        return Err(failed());
    };
    match (&client.secret_hash, &creds.secret) {
        (Some(stored), Some(given)) => {
            let given = crypto.token_hash(given.expose());
            // After a rotation the previous secret still works until its overlap ends.
            let previous = match (
                &client.previous_secret_hash,
                client.previous_secret_expires_at,
            ) {
                (Some(previous), Some(until)) if p.now() < until => {
                    ct_eq(previous.expose(), &given)
                }
                _ => false,
            };
            if ct_eq(stored.expose(), &given) | previous {
                Ok(client)
            } else {
                Err(failed())
            }
        }
        (None, None) => Ok(client),
        _ => Err(failed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("my%20app:s%3Acret")
        );
        let c = extract(Some(&header), &Params::default()).unwrap();
        assert_eq!(c.client_id, "my app");
        assert_eq!(c.secret.unwrap().expose(), "s:cret");
        assert_eq!(c.method, AuthMethod::Basic);
    }

    #[test]
    fn two_methods_at_once_are_refused() {
        let header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("a:b")
        );
        let form = Params::parse("client_secret=b").unwrap();
        assert!(matches!(
            extract(Some(&header), &form),
            Err(OAuthError::InvalidRequest(_))
        ));
    }

    #[test]
    fn no_credentials_at_all_is_invalid_client() {
        assert!(matches!(
            extract(None, &Params::default()),
            Err(OAuthError::InvalidClient(_))
        ));
    }
}
