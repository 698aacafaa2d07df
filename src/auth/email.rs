//! An email address, the sign-in name of a person: parsed and normalised once where it enters
//! (a form, a command-line argument), so the engine only ever sees well-formed addresses.

use std::fmt;

/// The longest address accepted (RFC 5321 §4.5.3.1.3 path limit, less the angle brackets).
const MAX_LEN: usize = 254;

/// A well-formed email address, normalised: trimmed and lower-cased. Stored users carry it in
/// this form, so two spellings of one address are one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Not of the form `local@domain.tld` (after normalising), too long, or with whitespace or
    /// control characters. Carries the normalised input.
    #[error("`{0}` is not a valid email address")]
    Invalid(String),
}

/// The normalised form of whatever someone typed as an email: trimmed and lower-cased. Lookups
/// (signing in, "forgot password") use it as is, valid or not: an address that cannot exist
/// simply finds no account, and is answered like any unknown one.
pub fn normalise(raw: &str) -> String {
    raw.trim().to_lowercase()
}

impl Email {
    /// Normalises `raw` and checks its shape.
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let email = normalise(raw);
        let valid = email.len() <= MAX_LEN
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
            })
            && !email.chars().any(|c| c.is_whitespace() || c.is_control());
        if valid {
            Ok(Self(email))
        } else {
            Err(EmailError::Invalid(email))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::{Email, EmailError};

    #[test]
    fn an_address_is_trimmed_and_lower_cased() {
        let email = Email::parse("  Ada.Lovelace@Example.ORG \n");
        assert_eq!(
            email.map(Email::into_string),
            Ok("ada.lovelace@example.org".to_string())
        );
    }

    #[test]
    fn an_address_without_a_local_part_or_a_dotted_domain_is_refused() {
        for raw in [
            "",
            "ada",
            "@example.org",
            "ada@example",
            "ada@.org",
            "a da@example.org",
        ] {
            assert!(Email::parse(raw).is_err(), "{raw:?} was accepted");
        }
    }

    #[test]
    fn an_address_longer_than_254_characters_is_refused() {
        let long = format!("{}@example.org", "a".repeat(243));
        assert_eq!(long.len(), 255);
        assert!(Email::parse(&long).is_err());
        assert!(Email::parse(&long[1..]).is_ok());
    }

    #[test]
    fn the_error_names_the_normalised_input() {
        assert_eq!(
            Email::parse(" NOPE "),
            Err(EmailError::Invalid("nope".to_string()))
        );
    }
}
