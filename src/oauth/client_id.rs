//! A client identifier (RFC 6749 §2.2), as Tessera registers them.

use std::fmt;

/// The longest client id registered.
const MAX_LEN: usize = 128;

/// A client id of 1-128 characters of `A-Z a-z 0-9 - . _ :`, so it is safe in URLs, logs and
/// audit entries without escaping. Built by [`ClientId::parse`] where an id is registered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientIdError {
    #[error("a client id must be 1-128 characters of A-Z a-z 0-9 - . _ :")]
    Invalid,
}

impl ClientId {
    /// Trims `raw` and checks its length and characters.
    pub fn parse(raw: &str) -> Result<Self, ClientIdError> {
        let id = raw.trim();
        let valid = !id.is_empty()
            && id.len() <= MAX_LEN
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._:".contains(c));
        if valid {
            Ok(Self(id.to_string()))
        } else {
            Err(ClientIdError::Invalid)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for ClientId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::ClientId;

    #[test]
    fn a_client_id_is_trimmed_and_kept_as_written() {
        let id = ClientId::parse("  My-App.v2:web_1 ").map(|id| id.to_string());
        assert_eq!(id.as_deref(), Ok("My-App.v2:web_1"));
    }

    #[test]
    fn an_empty_overlong_or_oddly_spelled_client_id_is_refused() {
        let long = "a".repeat(129);
        for raw in [
            "",
            "   ",
            long.as_str(),
            "my app",
            "app/1",
            "app?x=1",
            "äpp",
        ] {
            assert!(ClientId::parse(raw).is_err(), "{raw:?} was accepted");
        }
        assert!(ClientId::parse(&long[1..]).is_ok());
    }
}
