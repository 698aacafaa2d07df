//! The keyring held in memory: the keys that may sign now or soon, the keys whose tokens may
//! still be alive, and the pre-serialised JWKS with its ETag.

use std::sync::{Arc, RwLock};

use jsonwebtoken::{DecodingKey, Validation, jwk::Jwk};
use serde::de::DeserializeOwned;

use super::signer::{KeyError, Signer, SigningAlg};
use crate::clock::Timestamp;
use crate::crypto::{Crypto, b64, sha256};
use crate::store::SigningKeyRecord;

struct Entry {
    activate_at: Timestamp,
    signer: Signer,
    decoding: DecodingKey,
}

pub struct Keyring {
    /// Ordered by activation time, oldest first.
    entries: Vec<Entry>,
    jwks: String,
    etag: String,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("etag", &self.etag).finish()
    }
}

/// Why a presented JWT is not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("malformed token")]
    Malformed,
    #[error("unknown key id")]
    UnknownKey,
    #[error("wrong token type")]
    WrongType,
    #[error("invalid signature or claims")]
    Invalid,
    #[error("expired")]
    Expired,
}

pub type SharedKeyring = Arc<RwLock<Arc<Keyring>>>;

impl Keyring {
    /// Builds the keyring from stored records, decrypting private keys with the master key.
    pub fn load(records: &[SigningKeyRecord], crypto: &Crypto) -> Result<Self, KeyError> {
        let mut entries = Vec::with_capacity(records.len());
        for r in records {
            let alg: SigningAlg = r.alg.parse().map_err(|_| KeyError::Load(r.kid.clone()))?;
            let der = crypto
                .decrypt(&r.private_enc, r.kid.as_bytes())
                .map_err(|_| KeyError::Load(r.kid.clone()))?;
            let signer = Signer::from_pkcs8(&r.kid, alg, &der)?;
            let jwk: Jwk =
                serde_json::from_str(&r.public_jwk).map_err(|_| KeyError::Load(r.kid.clone()))?;
            let decoding =
                DecodingKey::from_jwk(&jwk).map_err(|_| KeyError::Load(r.kid.clone()))?;
            entries.push(Entry {
                activate_at: r.activate_at,
                signer,
                decoding,
            });
        }
        entries.sort_by_key(|e| e.activate_at);
        let keys: Vec<serde_json::Value> = entries.iter().map(|e| e.signer.public_jwk()).collect();
        let jwks = serde_json::json!({ "keys": keys }).to_string();
        let etag = format!("\"{}\"", b64(&sha256(jwks.as_bytes())[..16]));
        Ok(Self {
            entries,
            jwks,
            etag,
        })
    }

    pub fn shared(self) -> SharedKeyring {
        Arc::new(RwLock::new(Arc::new(self)))
    }

    /// The key that signs at `now`: the most recently activated one.
    pub fn signer(&self, now: Timestamp) -> Result<&Signer, KeyError> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.activate_at <= now)
            .map(|e| &e.signer)
            .ok_or(KeyError::NoActiveKey)
    }

    pub fn kids(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.signer.kid.clone()).collect()
    }

    pub fn jwks(&self) -> &str {
        &self.jwks
    }

    pub fn etag(&self) -> &str {
        &self.etag
    }

    pub fn algorithms(&self) -> Vec<&'static str> {
        let mut algs: Vec<&'static str> =
            self.entries.iter().map(|e| e.signer.alg.as_str()).collect();
        algs.sort_unstable();
        algs.dedup();
        algs
    }

    /// Verifies a JWT we issued: the `kid` names a published key, the header `alg` must be that
    /// key's algorithm (no `none`, no HS*), `typ` must match when given, `iss` must be ours and
    /// `exp` must be in the future at `now`.
    pub fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        typ: Option<&str>,
        issuer: &str,
        now: Timestamp,
    ) -> Result<T, VerifyError> {
        self.verify_at(token, typ, issuer, Some(now))
    }

    /// As [`Keyring::verify`] but accepting expired tokens (an `id_token_hint` may have expired).
    pub fn verify_ignoring_expiry<T: DeserializeOwned>(
        &self,
        token: &str,
        typ: Option<&str>,
        issuer: &str,
    ) -> Result<T, VerifyError> {
        self.verify_at(token, typ, issuer, None)
    }

    fn verify_at<T: DeserializeOwned>(
        &self,
        token: &str,
        typ: Option<&str>,
        issuer: &str,
        now: Option<Timestamp>,
    ) -> Result<T, VerifyError> {
        if token.len() > 8192 {
            return Err(VerifyError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
        if let Some(expected) = typ
            && !header
                .typ
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case(expected))
        {
            return Err(VerifyError::WrongType);
        }
        let kid = header.kid.as_deref().ok_or(VerifyError::UnknownKey)?;
        let entry = self
            .entries
            .iter()
            .find(|e| e.signer.kid == kid)
            .ok_or(VerifyError::UnknownKey)?;
        let alg = entry.signer.alg.jwt_algorithm();
        if header.alg != alg {
            return Err(VerifyError::Invalid);
        }
        let mut validation = Validation::new(alg);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &entry.decoding, &validation)
            .map_err(|_| VerifyError::Invalid)?;
        let exp = data
            .claims
            .get("exp")
            .and_then(|v| v.as_i64())
            .ok_or(VerifyError::Invalid)?;
        if now.is_some_and(|now| exp <= now) {
            return Err(VerifyError::Expired);
        }
        serde_json::from_value(data.claims).map_err(|_| VerifyError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;
    use crate::keys::signer::generate;
    use serde_json::json;

    fn record(crypto: &Crypto, kid: &str, alg: SigningAlg, activate_at: i64) -> SigningKeyRecord {
        let der = generate(alg).unwrap();
        let signer = Signer::from_pkcs8(kid, alg, &der).unwrap();
        SigningKeyRecord {
            kid: kid.into(),
            alg: alg.as_str().into(),
            private_enc: crypto.encrypt(&der, kid.as_bytes()),
            public_jwk: signer.public_jwk().to_string(),
            created_at: 0,
            activate_at,
            expire_at: None,
            revoked_at: None,
        }
    }

    fn claims(exp: i64) -> serde_json::Value {
        json!({"iss": "https://id.example", "sub": "u1", "exp": exp})
    }

    #[test]
    fn tokens_signed_by_each_algorithm_verify_against_the_keyring() {
        let crypto = Crypto::new(&MasterKey::generate());
        for alg in [SigningAlg::Es256, SigningAlg::EdDsa, SigningAlg::Rs256] {
            let ring = Keyring::load(&[record(&crypto, "k", alg, 0)], &crypto).unwrap();
            let jwt = ring
                .signer(10)
                .unwrap()
                .sign_jwt("at+jwt", &claims(100))
                .unwrap();
            let c: serde_json::Value = ring
                .verify(&jwt, Some("at+jwt"), "https://id.example", 10)
                .unwrap();
            assert_eq!(c["sub"], "u1");
        }
    }

    #[test]
    fn a_pending_key_is_published_but_does_not_sign_until_it_activates() {
        let crypto = Crypto::new(&MasterKey::generate());
        let ring = Keyring::load(
            &[
                record(&crypto, "old", SigningAlg::Es256, 0),
                record(&crypto, "new", SigningAlg::Es256, 100),
            ],
            &crypto,
        )
        .unwrap();
        assert_eq!(ring.signer(50).unwrap().kid, "old");
        assert_eq!(ring.signer(100).unwrap().kid, "new");
        assert!(ring.jwks().contains("\"old\"") && ring.jwks().contains("\"new\""));
    }

    #[test]
    fn expired_wrong_type_wrong_issuer_and_tampered_tokens_are_refused() {
        let crypto = Crypto::new(&MasterKey::generate());
        let ring = Keyring::load(&[record(&crypto, "k", SigningAlg::Es256, 0)], &crypto).unwrap();
        let signer = ring.signer(0).unwrap();
        let jwt = signer.sign_jwt("at+jwt", &claims(100)).unwrap();
        let iss = "https://id.example";
        assert_eq!(
            ring.verify::<serde_json::Value>(&jwt, Some("at+jwt"), iss, 100),
            Err(VerifyError::Expired)
        );
        assert_eq!(
            ring.verify::<serde_json::Value>(&jwt, Some("JWT"), iss, 1),
            Err(VerifyError::WrongType)
        );
        assert_eq!(
            ring.verify::<serde_json::Value>(&jwt, None, "https://evil", 1),
            Err(VerifyError::Invalid)
        );
        let mut parts: Vec<String> = jwt.split('.').map(String::from).collect();
        parts[1] = b64(json!({"iss": iss, "sub": "admin", "exp": 100})
            .to_string()
            .as_bytes());
        assert_eq!(
            ring.verify::<serde_json::Value>(&parts.join("."), None, iss, 1),
            Err(VerifyError::Invalid)
        );
    }

    #[test]
    fn alg_none_and_hmac_tokens_are_refused() {
        let crypto = Crypto::new(&MasterKey::generate());
        let ring = Keyring::load(&[record(&crypto, "k", SigningAlg::Es256, 0)], &crypto).unwrap();
        let body = b64(claims(100).to_string().as_bytes());
        let none = format!("{}.{}.", b64(br#"{"alg":"none","kid":"k"}"#), body);
        assert!(
            ring.verify::<serde_json::Value>(&none, None, "https://id.example", 1)
                .is_err()
        );
        let hs = format!(
            "{}.{}.{}",
            b64(br#"{"alg":"HS256","kid":"k"}"#),
            body,
            b64(b"sig")
        );
        assert!(
            ring.verify::<serde_json::Value>(&hs, None, "https://id.example", 1)
                .is_err()
        );
        let unknown = format!(
            "{}.{}.{}",
            b64(br#"{"alg":"ES256","kid":"../../etc/passwd"}"#),
            body,
            b64(b"sig")
        );
        assert_eq!(
            ring.verify::<serde_json::Value>(&unknown, None, "https://id.example", 1),
            Err(VerifyError::UnknownKey)
        );
    }
}
