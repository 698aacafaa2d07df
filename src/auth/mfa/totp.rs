//! Authenticator apps: time-based one-time passwords (RFC 6238) as every app computes them:
//! HMAC-SHA-1, 6 digits, 30-second steps, one step of clock drift either way (§5.2).
//!
//! The secret is 160 random bits (RFC 4226 §4 recommends 160), shown once as base32 and as an
//! `otpauth://` URI in a QR code (Key Uri Format), and stored encrypted under the master key
//! with its record's identity as AAD ([`aad`]). Which step a code matched is returned, so the
//! store can accept each step once (`MfaStore::accept_totp_step`).

use qrcode::QrCode;
use qrcode::render::svg;
use totp_rs::{Algorithm, Builder, Totp};

use crate::clock::Timestamp;
use crate::secret::{Secret, SecretString};

/// Seconds per time step (RFC 6238 §5.2 recommends 30).
pub const STEP_SECS: i64 = 30;
/// Digits per code.
pub const DIGITS: usize = 6;
/// Steps of drift accepted either way.
pub const SKEW_STEPS: i64 = 1;
/// Bytes of secret (160 bits).
pub const SECRET_BYTES: usize = 20;

/// A TOTP shared secret; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Secret<Vec<u8>>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret([redacted])")
    }
}

impl TotpSecret {
    /// A new random secret.
    pub fn generate() -> Self {
        Self::from_bytes(crate::crypto::random_bytes::<SECRET_BYTES>().to_vec())
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(Secret::wrap(bytes))
    }

    /// The secret as an app's "enter a setup key" field takes it: base32 (RFC 4648), spaces,
    /// hyphens and case ignored. `None` for anything else or a secret under 128 bits.
    pub fn parse_base32(text: &str) -> Option<Self> {
        let compact: String = text
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect::<String>()
            .to_ascii_uppercase();
        let secret = totp_rs::Secret::try_from_base32(compact.trim_end_matches('=')).ok()?;
        let bytes = secret.as_ref().to_vec();
        (bytes.len() >= 16).then(|| Self::from_bytes(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        self.0.expose()
    }

    /// Base32 without padding, upper case, grouped in fours for reading aloud or typing:
    /// `JBSW Y3DP EHPK 3PXP ...`.
    pub fn base32_grouped(&self) -> SecretString {
        let plain = self.base32();
        let groups: Vec<String> = plain
            .as_str()
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        SecretString::new(groups.join(" "))
    }

    /// Base32 without padding, as the `secret` parameter of an `otpauth://` URI.
    pub fn base32(&self) -> SecretString {
        let secret = totp_rs::Secret::from(self.expose().to_vec());
        SecretString::new(secret.to_base32().trim_end_matches('=').to_string())
    }

    fn totp(&self) -> Option<Totp> {
        totp(self.expose().to_vec(), DIGITS)
    }

    /// The code at time `at` (what the user's app shows then).
    pub fn code_at(&self, at: Timestamp) -> Option<String> {
        let t = self.totp()?;
        Some(t.generate(u64::try_from(at).ok()?).to_string())
    }

    /// The time step whose code `code` is, among the step of `now` and one either side; `None`
    /// when it is none of them. Spaces in the code are ignored (`123 456`). Which of the
    /// accepted steps it is matters: the caller accepts it once through the store.
    pub fn verify(&self, code: &str, now: Timestamp) -> Option<i64> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let t = self.totp()?;
        let now = u64::try_from(now).ok()?;
        // totp-rs compares in constant time and returns the matched step.
        t.check(&code, now)
            .and_then(|step| i64::try_from(step).ok())
    }
}

fn totp(secret: Vec<u8>, digits: usize) -> Option<Totp> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(u8::try_from(digits).ok()?)
        .with_skew(SKEW_STEPS as u16)
        .with_step_duration(STEP_SECS as u64)
        .with_secret(secret)
        .build()
        .ok()
}

/// The AAD a TOTP secret is encrypted with: its user and its record id (the enrolment's id,
/// which the confirmed factor keeps), so a ciphertext copied to another row does not open.
pub fn aad(user_id: &str, id: &str) -> Vec<u8> {
    format!("tessera/v1/totp\0{user_id}\0{id}").into_bytes()
}

/// The label an app shows for the account: the issuer's host (no port: the Key Uri Format
/// forbids `:` in the issuer), and the account name (`:` removed for the same reason).
pub fn issuer_label(issuer: &str) -> String {
    url::Url::parse(issuer)
        .ok()
        .and_then(|u| u.host_str().map(String::from))
        .unwrap_or_else(|| "Tessera".into())
}

/// The `otpauth://totp/...` URI an app scans (Key Uri Format): label
/// `{issuer host}:{account}`, `secret`, `issuer`; SHA-1, 6 digits and 30 s are the defaults
/// it leaves out. `None` only if the parameters are refused (they are fixed here).
pub fn otpauth_uri(secret: &TotpSecret, issuer: &str, account: &str) -> Option<SecretString> {
    let account = account.replace(':', "");
    let t = Builder::new()
        .with_secret(secret.expose().to_vec())
        .with_issuer(Some(issuer_label(issuer)))
        .with_account_name(if account.is_empty() {
            "account".to_string()
        } else {
            account
        })
        .build()
        .ok()?;
    t.to_url().ok().map(SecretString::new)
}

/// The URI as a QR code: an inline `<svg>` element (no XML declaration), black on white with
/// its quiet zone, at least 200 px wide. The page gives it a text alternative.
pub fn qr_svg(uri: &SecretString) -> Option<String> {
    let code = QrCode::new(uri.expose().as_bytes()).ok()?;
    let image = code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .dark_color(svg::Color("#000"))
        .light_color(svg::Color("#fff"))
        .build();
    let start = image.find("<svg")?;
    Some(image[start..].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B: the SHA-1 seed, ASCII "12345678901234567890".
    fn rfc_seed() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890".to_vec())
    }

    /// RFC 6238 Appendix B, SHA-1 rows: (time, 8-digit TOTP).
    const RFC_6238_SHA1: [(i64, &str); 6] = [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];

    #[test]
    fn codes_match_the_rfc_6238_test_vectors_at_8_digits() {
        let t = totp(b"12345678901234567890".to_vec(), 8).unwrap();
        for (time, expected) in RFC_6238_SHA1 {
            assert_eq!(t.generate(time as u64).to_string(), expected, "t={time}");
        }
    }

    #[test]
    fn six_digit_codes_are_the_last_six_digits_of_the_rfc_vectors() {
        // Dynamic truncation (RFC 4226 §5.3) takes the value modulo 10^digits: a 6-digit code
        // is the 8-digit one's last six digits.
        for (time, expected) in RFC_6238_SHA1 {
            assert_eq!(rfc_seed().code_at(time).unwrap(), expected[2..], "t={time}");
            assert_eq!(rfc_seed().verify(&expected[2..], time), Some(time / 30));
        }
    }

    #[test]
    fn a_code_one_step_early_or_late_is_accepted_and_two_steps_is_refused() {
        let s = TotpSecret::generate();
        let now = 1_700_000_000 - 1_700_000_000 % 30 + 10;
        let step = now / 30;
        for (offset, accepted) in [(-2, false), (-1, true), (0, true), (1, true), (2, false)] {
            let code = s.code_at(now + offset * 30).unwrap();
            let found = s.verify(&code, now);
            if accepted {
                assert_eq!(found, Some(step + offset), "offset {offset}");
            } else {
                assert_eq!(found, None, "offset {offset}");
            }
        }
    }

    #[test]
    fn codes_are_read_with_spaces_and_refused_when_malformed() {
        let s = rfc_seed();
        assert_eq!(s.verify("287 082", 59), Some(1));
        for bad in ["", "28708", "2870822", "+87082", "28708a", "２８７０８２"] {
            assert_eq!(s.verify(bad, 59), None, "{bad:?}");
        }
    }

    #[test]
    fn the_key_shown_reads_back_as_the_same_secret_and_is_grouped_in_fours() {
        let s = TotpSecret::generate();
        let shown = s.base32_grouped();
        assert_eq!(shown.as_str().len(), 32 + 7);
        assert!(
            shown
                .as_str()
                .split(' ')
                .all(|g| g.len() == 4 && g.chars().all(|c| c.is_ascii_alphanumeric()))
        );
        assert_eq!(TotpSecret::parse_base32(shown.as_str()), Some(s.clone()));
        assert_eq!(
            TotpSecret::parse_base32(&shown.as_str().to_lowercase()),
            Some(s)
        );
        assert_eq!(TotpSecret::parse_base32("not base32!"), None);
        assert_eq!(TotpSecret::parse_base32("JBSWY3DP"), None, "too short");
        assert_eq!(
            format!("{:?}", TotpSecret::generate()),
            "TotpSecret([redacted])"
        );
    }

    #[test]
    fn the_otpauth_uri_names_the_issuer_host_and_the_account_and_carries_the_secret() {
        let s = rfc_seed();
        let uri = otpauth_uri(&s, "http://localhost:8080", "ann@example.com").unwrap();
        assert_eq!(
            uri.as_str(),
            format!(
                "otpauth://totp/localhost:ann%40example.com?secret={}&issuer=localhost",
                s.base32().as_str()
            )
        );
        let uri = otpauth_uri(&s, "https://id.example.com/tenant", "a:b@x").unwrap();
        assert!(
            uri.as_str()
                .starts_with("otpauth://totp/id.example.com:ab%40x?")
        );
        // An app reading the URI computes the same codes.
        let read = Totp::from_url(uri.as_str()).unwrap();
        assert_eq!(read.generate(59).to_string(), "287082");
    }

    #[test]
    fn the_qr_code_is_an_inline_svg_element() {
        let uri = otpauth_uri(&TotpSecret::generate(), "http://localhost:8080", "a@b").unwrap();
        let svg = qr_svg(&uri).unwrap();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>"));
        assert!(!svg.contains("<?xml"));
    }
}
