//! A software security key (WebAuthn, ES256, "none" attestation) for tests over HTTP: it answers
//! the options Tessera hands out the way a real authenticator would, signing with its own
//! P-256 key, so a test can register it, use it, and replay or move its answers.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::{TestApp, TestUser, input_value};

/// Flags of the authenticator data: user present, user verified, attested credential data.
const UP: u8 = 0x01;
const UV: u8 = 0x04;
const AT: u8 = 0x40;

pub struct SecurityKey {
    key: EcdsaKeyPair,
    credential_id: Vec<u8>,
    /// The user handle given at registration (answered back, as a passkey does).
    user_handle: Option<Vec<u8>>,
    counter: u32,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .unwrap_or_else(|e| panic!("base64url {text:?}: {e}"))
}

/// CBOR (RFC 8949) heads, byte and text strings: all an attestation object needs.
fn cbor_head(major: u8, len: usize, out: &mut Vec<u8>) {
    let m = major << 5;
    match len {
        0..=23 => out.push(m | len as u8),
        24..=0xff => out.extend([m | 24, len as u8]),
        _ => {
            out.push(m | 25);
            out.extend((len as u16).to_be_bytes());
        }
    }
}

fn cbor_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    cbor_head(2, bytes.len(), out);
    out.extend_from_slice(bytes);
}

fn cbor_text(text: &str, out: &mut Vec<u8>) {
    cbor_head(3, text.len(), out);
    out.extend_from_slice(text.as_bytes());
}

fn client_data(kind: &str, challenge: &str, origin: &str) -> Vec<u8> {
    json!({ "type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false })
        .to_string()
        .into_bytes()
}

impl Default for SecurityKey {
    fn default() -> Self {
        Self::new()
    }
}

impl SecurityKey {
    pub fn new() -> Self {
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("a P-256 key");
        let credential_id = crate::helpers::random_bytes::<16>().to_vec();
        Self {
            key,
            credential_id,
            user_handle: None,
            counter: 0,
        }
    }

    /// The COSE form of the public key: EC2, ES256, P-256, x and y.
    fn cose_key(&self) -> Vec<u8> {
        let point = self.key.public_key().as_ref();
        assert_eq!(point.len(), 65, "an uncompressed P-256 point");
        let mut out = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21];
        cbor_bytes(&point[1..33], &mut out);
        out.push(0x22);
        cbor_bytes(&point[33..], &mut out);
        out
    }

    fn authenticator_data(&mut self, rp_id: &str, attested: bool) -> Vec<u8> {
        self.counter += 1;
        let mut data = digest(&SHA256, rp_id.as_bytes()).as_ref().to_vec();
        data.push(UP | UV | if attested { AT } else { 0 });
        data.extend(self.counter.to_be_bytes());
        if attested {
            data.extend([0u8; 16]);
            data.extend((self.credential_id.len() as u16).to_be_bytes());
            data.extend_from_slice(&self.credential_id);
            data.extend(self.cose_key());
        }
        data
    }

    /// Answers `navigator.credentials.create()` options (`{"publicKey": …}`) from `origin`.
    pub fn register(&mut self, options: &Value, origin: &str) -> Value {
        let pk = &options["publicKey"];
        let rp_id = pk["rp"]["id"].as_str().expect("rp.id");
        let challenge = pk["challenge"].as_str().expect("a challenge");
        self.user_handle = pk["user"]["id"].as_str().map(unb64);
        let auth_data = self.authenticator_data(rp_id, true);
        let mut attestation = vec![0xa3];
        cbor_text("fmt", &mut attestation);
        cbor_text("none", &mut attestation);
        cbor_text("attStmt", &mut attestation);
        attestation.push(0xa0);
        cbor_text("authData", &mut attestation);
        cbor_bytes(&auth_data, &mut attestation);
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "response": {
                "attestationObject": b64(&attestation),
                "clientDataJSON": b64(&client_data("webauthn.create", challenge, origin)),
                "transports": ["usb"],
            },
            "extensions": {},
        })
    }

    /// Answers `navigator.credentials.get()` options (`{"publicKey": …}`) from `origin`.
    pub fn assert(&mut self, options: &Value, origin: &str) -> Value {
        let pk = &options["publicKey"];
        let rp_id = pk["rpId"].as_str().expect("rpId");
        let challenge = pk["challenge"].as_str().expect("a challenge");
        let auth_data = self.authenticator_data(rp_id, false);
        let client_data = client_data("webauthn.get", challenge, origin);
        let mut signed = auth_data.clone();
        signed.extend_from_slice(digest(&SHA256, &client_data).as_ref());
        let signature = self
            .key
            .sign(&SystemRandom::new(), &signed)
            .expect("an ECDSA signature");
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "response": {
                "authenticatorData": b64(&auth_data),
                "clientDataJSON": b64(&client_data),
                "signature": b64(signature.as_ref()),
                "userHandle": self.user_handle.as_deref().map(b64),
            },
            "extensions": {},
        })
    }
}

impl TestApp {
    /// The CSRF token a browser's pages carry (the sign-in page's; its cookie is set with it).
    pub async fn csrf_token_in(&self, browser: &reqwest::Client) -> String {
        let html = browser
            .get(self.url("/login"))
            .send()
            .await
            .expect("GET /login")
            .text()
            .await
            .expect("the sign-in page");
        input_value(&html, "csrf_token").expect("the sign-in page carries a CSRF token")
    }

    /// `user` signs in on a browser of their own and adds a new security key from
    /// `/account/passkeys`, as the page's script does; returns the key.
    pub async fn add_security_key(&self, user: &TestUser) -> SecurityKey {
        let browser = self.new_browser();
        self.sign_in_to_account_in(&browser, user).await;
        let csrf = self.csrf_token_in(&browser).await;
        let begun: Value = browser
            .post(self.url("/account/passkeys/begin"))
            .json(&json!({ "csrf_token": csrf, "style": "security_key" }))
            .send()
            .await
            .expect("POST /account/passkeys/begin")
            .json()
            .await
            .expect("registration options");
        let mut key = SecurityKey::new();
        let credential = key.register(&begun["options"], &self.issuer);
        let resp = browser
            .post(self.url("/account/passkeys/finish"))
            .json(&json!({ "csrf_token": csrf, "name": "Test key", "credential": credential }))
            .send()
            .await
            .expect("POST /account/passkeys/finish");
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        assert_eq!(status, reqwest::StatusCode::OK, "the key is added: {body}");
        key
    }
}
