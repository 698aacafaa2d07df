//! One signing key: generation (aws-lc-rs), JWS compact signing, and its public JWK.
//!
//! Signing keeps the parsed key pair in memory (parsing PKCS#8 per token would cost more than the
//! signature). Verification goes through `jsonwebtoken` with an explicit algorithm allow-list.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
};
use serde_json::json;

use crate::crypto::b64;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key generation failed")]
    Generate,
    #[error("stored key {0} cannot be loaded")]
    Load(String),
    #[error("signing failed")]
    Sign,
    #[error("no signing key is active")]
    NoActiveKey,
}

/// The JWS algorithms Tessera signs with. Never `none`, never HS*.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlg {
    Es256,
    EdDsa,
    Rs256,
}

impl SigningAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::Es256 => "ES256",
            SigningAlg::EdDsa => "EdDSA",
            SigningAlg::Rs256 => "RS256",
        }
    }

    pub fn jwt_algorithm(self) -> jsonwebtoken::Algorithm {
        match self {
            SigningAlg::Es256 => jsonwebtoken::Algorithm::ES256,
            SigningAlg::EdDsa => jsonwebtoken::Algorithm::EdDSA,
            SigningAlg::Rs256 => jsonwebtoken::Algorithm::RS256,
        }
    }
}

impl std::str::FromStr for SigningAlg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ES256" => Ok(Self::Es256),
            "EdDSA" => Ok(Self::EdDsa),
            "RS256" => Ok(Self::Rs256),
            other => Err(format!(
                "unsupported signing algorithm `{other}` (ES256, EdDSA or RS256)"
            )),
        }
    }
}

enum Pair {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair),
}

/// A loaded private key able to sign JWTs.
pub struct Signer {
    pub kid: String,
    pub alg: SigningAlg,
    pair: Pair,
    rng: SystemRandom,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish()
    }
}

/// Generates a new private key; returns its PKCS#8 DER.
pub fn generate(alg: SigningAlg) -> Result<Vec<u8>, KeyError> {
    let der = match alg {
        SigningAlg::Es256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .and_then(|k| k.to_pkcs8v1())
            .map(|d| d.as_ref().to_vec()),
        SigningAlg::EdDsa => Ed25519KeyPair::generate()
            .and_then(|k| k.to_pkcs8v1())
            .map(|d| d.as_ref().to_vec()),
        SigningAlg::Rs256 => RsaKeyPair::generate(KeySize::Rsa2048)
            .and_then(|k| k.as_der())
            .map(|d| d.as_ref().to_vec()),
    };
    der.map_err(|_| KeyError::Generate)
}

impl Signer {
    pub fn from_pkcs8(kid: &str, alg: SigningAlg, der: &[u8]) -> Result<Self, KeyError> {
        let bad = |_| KeyError::Load(kid.to_string());
        let pair = match alg {
            SigningAlg::Es256 => Pair::Ec(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|e| bad(e.to_string()))?,
            ),
            SigningAlg::EdDsa => {
                Pair::Ed(Ed25519KeyPair::from_pkcs8(der).map_err(|e| bad(e.to_string()))?)
            }
            SigningAlg::Rs256 => {
                Pair::Rsa(RsaKeyPair::from_pkcs8(der).map_err(|e| bad(e.to_string()))?)
            }
        };
        Ok(Self {
            kid: kid.to_string(),
            alg,
            pair,
            rng: SystemRandom::new(),
        })
    }

    /// The public half as a JWK with `kid`, `alg` and `use: sig`.
    pub fn public_jwk(&self) -> serde_json::Value {
        let mut jwk = match &self.pair {
            Pair::Ec(k) => {
                // Uncompressed SEC1 point: 0x04 || x (32 bytes) || y (32 bytes).
                let p = k.public_key().as_ref();
                let (x, y) = if p.len() == 65 {
                    (&p[1..33], &p[33..65])
                } else {
                    (&p[..0], &p[..0])
                };
                json!({"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y)})
            }
            Pair::Ed(k) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(k.public_key().as_ref())})
            }
            Pair::Rsa(k) => {
                let public = k.public_key();
                json!({
                    "kty": "RSA",
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                })
            }
        };
        jwk["kid"] = json!(self.kid);
        jwk["alg"] = json!(self.alg.as_str());
        jwk["use"] = json!("sig");
        jwk
    }

    /// Signs a JWT (JWS compact serialisation) with header `typ` and this key's `kid`.
    pub fn sign_jwt(&self, typ: &str, claims: &serde_json::Value) -> Result<String, KeyError> {
        let header = json!({"alg": self.alg.as_str(), "typ": typ, "kid": self.kid});
        let header = serde_json::to_vec(&header).map_err(|_| KeyError::Sign)?;
        let claims = serde_json::to_vec(claims).map_err(|_| KeyError::Sign)?;
        let mut out = String::with_capacity(512);
        out.push_str(&b64(&header));
        out.push('.');
        out.push_str(&b64(&claims));
        let signature = self.sign(out.as_bytes())?;
        out.push('.');
        out.push_str(&b64(&signature));
        Ok(out)
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.pair {
            Pair::Ec(k) => k
                .sign(&self.rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Sign),
            Pair::Ed(k) => Ok(k.sign(msg).as_ref().to_vec()),
            Pair::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &self.rng, msg, &mut sig)
                    .map_err(|_| KeyError::Sign)?;
                Ok(sig)
            }
        }
    }
}
