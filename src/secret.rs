//! One wrapper for every secret that travels through the code: tokens handed out, password and
//! client-secret hashes, session cookies, mail bodies that carry links. `Debug` and `Display`
//! print `[redacted]`, so a `?value` in a log line or a panic message never shows one; reading the
//! value takes an explicit [`Secret::expose`].

use serde::{Serialize, Serializer};

#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret<T>(T);

/// A secret text: a password, a token, a link.
pub type SecretString = Secret<String>;

impl<T> Secret<T> {
    /// Wraps a value that must not be logged.
    pub fn wrap(value: T) -> Self {
        Self(value)
    }

    /// The value itself: for the one place that needs it (hashing, sending, serialising).
    pub fn expose(&self) -> &T {
        &self.0
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl Secret<String> {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> std::fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Serialised as the value itself: a token response must carry the token.
impl<T: Serialize> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = SecretString::new("hunter2-very-secret");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some([redacted])");
        assert_eq!(s.expose(), "hunter2-very-secret");
        let bytes = Secret::wrap(vec![1u8, 2, 3]);
        assert_eq!(format!("{bytes:?}"), "[redacted]");
    }

    #[test]
    fn serialises_as_the_value() {
        let s = SecretString::new("tok");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"tok\"");
    }

    #[test]
    fn token_responses_users_clients_and_mails_print_no_secret() {
        let response = crate::oauth::tokens::TokenResponse {
            access_token: SecretString::new("AT-s3cr3t"),
            token_type: "Bearer",
            expires_in: 600,
            scope: "openid".into(),
            refresh_token: Some(SecretString::new("RT-s3cr3t")),
            id_token: Some(SecretString::new("IDT-s3cr3t")),
        };
        let user = crate::store::User {
            id: "u1".into(),
            email: "ada@example.test".into(),
            name: None,
            roles: vec![],
            password_hash: SecretString::new("$argon2id$v=19$m=19456,t=2,p=1$s3cr3t"),
            disabled: false,
            email_verified: true,
            created_at: 0,
        };
        let mail = crate::mail::Mail {
            to: "ada@example.test".into(),
            subject: "Reset your password".into(),
            text: SecretString::new("https://id.example.test/password/reset?token=s3cr3t"),
        };
        for text in [
            format!("{response:?}"),
            format!("{user:?}"),
            format!("{mail:?}"),
            format!("{:?}", Secret::wrap(b"s3cr3t".to_vec())),
        ] {
            assert!(!text.contains("s3cr3t"), "{text}");
            assert!(text.contains("[redacted]"), "{text}");
        }
        assert_eq!(
            serde_json::to_value(&response).unwrap()["refresh_token"],
            "RT-s3cr3t"
        );
    }
}
