//! Small cryptographic building blocks on aws-lc-rs: random tokens, keyed hashes, AEAD.
//!
//! Every key is derived from the one master key with a distinct label, so a keyed hash of a
//! refresh token can never be confused with a CSRF tag or an encryption key.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::{digest, hmac, rand};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// base64url without padding, as JOSE and OAuth use it.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn b64_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.as_bytes()).ok()
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // aws-lc's RNG only fails if the OS has no entropy source; there is nothing sane to do then.
    if rand::fill(&mut out).is_err() {
        std::process::abort();
    }
    out
}

/// A 256-bit random token, base64url: refresh tokens, codes, session ids, client secrets.
pub fn random_token() -> String {
    b64(&random_bytes::<32>())
}

/// A shorter random identifier (128 bits) for things that are not secrets: ids, jti, kid.
pub fn random_id() -> String {
    b64(&random_bytes::<16>())
}

pub fn sha256(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, data).as_ref().to_vec()
}

/// Constant-time equality of two byte strings.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// A string that must never reach a log (see `secret.rs`).
pub use crate::secret::SecretString;

/// The 256-bit master key (`TESSERA_MASTER_KEY`): base64url (43 characters) or hex (64).
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    pub fn generate() -> Self {
        Self(random_bytes())
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| "invalid hex".to_string())?
        } else {
            let trimmed = text.trim_end_matches('=');
            URL_SAFE_NO_PAD
                .decode(trimmed)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
                .map_err(|_| "expected 32 bytes as base64url or 64 hex characters".to_string())?
        };
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "the master key must be exactly 32 bytes (256 bits)".to_string())?;
        Ok(Self(key))
    }

    pub fn encode(&self) -> String {
        b64(&self.0)
    }

    fn derive(&self, label: &str) -> [u8; 32] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let tag = hmac::sign(&key, label.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }
}

/// The keys derived from the master key, built once at start.
pub struct Crypto {
    hash_key: hmac::Key,
    mac_key: hmac::Key,
    kek: LessSafeKey,
}

impl std::fmt::Debug for Crypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Crypto(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("decryption failed")]
pub struct DecryptError;

fn aead_key(bytes: &[u8; 32]) -> LessSafeKey {
    match UnboundKey::new(&aead::AES_256_GCM, bytes) {
        Ok(k) => LessSafeKey::new(k),
        // A 32-byte key is always valid for AES-256-GCM.
        Err(_) => std::process::abort(),
    }
}

fn seal(key: &LessSafeKey, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let nonce_bytes = random_bytes::<12>();
    let mut buf = plaintext.to_vec();
    let nonce = Nonce::assume_unique_for_key(nonce_bytes);
    if key
        .seal_in_place_append_tag(nonce, Aad::from(aad), &mut buf)
        .is_err()
    {
        std::process::abort();
    }
    let mut out = nonce_bytes.to_vec();
    out.extend_from_slice(&buf);
    out
}

fn open(key: &LessSafeKey, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, DecryptError> {
    if sealed.len() < 12 + 16 {
        return Err(DecryptError);
    }
    let (nonce, body) = sealed.split_at(12);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| DecryptError)?;
    let mut buf = body.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| DecryptError)?;
    Ok(plain.to_vec())
}

impl Crypto {
    pub fn new(master: &MasterKey) -> Self {
        Self {
            hash_key: hmac::Key::new(hmac::HMAC_SHA256, &master.derive("tessera/v1/token-hash")),
            mac_key: hmac::Key::new(hmac::HMAC_SHA256, &master.derive("tessera/v1/mac")),
            kek: aead_key(&master.derive("tessera/v1/key-encryption")),
        }
    }

    /// Keyed SHA-256 (HMAC) of a high-entropy secret, for storage and lookup.
    pub fn token_hash(&self, token: &str) -> Vec<u8> {
        hmac::sign(&self.hash_key, token.as_bytes())
            .as_ref()
            .to_vec()
    }

    /// A MAC over `data` in the `purpose` domain (CSRF tags, signed form state).
    pub fn mac(&self, purpose: &str, data: &[u8]) -> Vec<u8> {
        let mut ctx = hmac::Context::with_key(&self.mac_key);
        ctx.update(purpose.as_bytes());
        ctx.update(&[0]);
        ctx.update(data);
        ctx.sign().as_ref().to_vec()
    }

    pub fn verify_mac(&self, purpose: &str, data: &[u8], tag: &[u8]) -> bool {
        ct_eq(&self.mac(purpose, data), tag)
    }

    /// Encrypts with the key-encryption key; `aad` binds the ciphertext to its record.
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        seal(&self.kek, plaintext, aad)
    }

    pub fn decrypt(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, DecryptError> {
        open(&self.kek, sealed, aad)
    }
}

/// Encrypts `plaintext` under a key derived from a high-entropy token, so only a holder of that
/// token can read it (the race-free refresh grace keeps the successor token this way).
pub fn seal_with_token(token: &str, plaintext: &[u8]) -> Vec<u8> {
    seal(&token_key(token), plaintext, b"tessera/v1/successor")
}

pub fn open_with_token(token: &str, sealed: &[u8]) -> Result<Vec<u8>, DecryptError> {
    open(&token_key(token), sealed, b"tessera/v1/successor")
}

fn token_key(token: &str) -> LessSafeKey {
    let k = hmac::Key::new(hmac::HMAC_SHA256, token.as_bytes());
    let tag = hmac::sign(&k, b"tessera/v1/successor-key");
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(tag.as_ref());
    aead_key(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn master_key_accepts_base64url_and_hex_and_refuses_short_keys() {
        let k = MasterKey::generate();
        assert!(MasterKey::parse(&k.encode()).is_ok());
        assert!(MasterKey::parse(&"ab".repeat(32)).is_ok());
        assert!(MasterKey::parse("c2hvcnQ").is_err());
        assert_eq!(format!("{k:?}"), "MasterKey(<redacted>)");
    }

    #[test]
    fn encryption_round_trips_and_detects_tampering_and_wrong_context() {
        let c = Crypto::new(&MasterKey::generate());
        let sealed = c.encrypt(b"private key", b"kid-1");
        assert_eq!(c.decrypt(&sealed, b"kid-1").unwrap(), b"private key");
        assert!(c.decrypt(&sealed, b"kid-2").is_err());
        let mut bad = sealed.clone();
        bad[20] ^= 1;
        assert!(c.decrypt(&bad, b"kid-1").is_err());
    }

    #[test]
    fn a_successor_sealed_with_a_token_opens_only_with_that_token() {
        let sealed = seal_with_token("token-a", b"successor");
        assert_eq!(open_with_token("token-a", &sealed).unwrap(), b"successor");
        assert!(open_with_token("token-b", &sealed).is_err());
    }

    #[test]
    fn token_hashes_are_keyed() {
        let a = Crypto::new(&MasterKey::generate());
        let b = Crypto::new(&MasterKey::generate());
        assert_eq!(a.token_hash("t"), a.token_hash("t"));
        assert_ne!(a.token_hash("t"), b.token_hash("t"));
        assert_ne!(a.token_hash("t"), a.token_hash("u"));
    }
}
