//! Password policy after NIST SP 800-63B §5.1.1.2: a minimum length, a long maximum, no
//! composition rules, no passwords known from breaches, nothing built from the account's email.
//!
//! The breached list (`data-files/breached-passwords.bin`, built by
//! `scripts/build-breached-list.py`) holds ~1.46 million passwords of 12+ characters as sorted
//! 6-byte SHA-256 prefixes. It is compiled into the binary and binary-searched in place.

use crate::crypto::sha256;

static BREACHED: &[u8] = include_bytes!("../../data-files/breached-passwords.bin");
const PREFIX: usize = 6;

/// A password's length, in the one unit every check uses: characters (Unicode scalar values),
/// never bytes. A password of `password_max_length` characters may take up to four times as many
/// bytes; setting it, changing it and signing in with it all count the same way.
pub fn password_length(password: &str) -> usize {
    password.chars().count()
}

/// The highest `password_max_length` can be set to. Longer input is refused before hashing (a
/// cheap guard in front of argon2), at sign-in too.
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// Whether a password is short enough to be worth hashing at all.
pub fn within_ceiling(password: &str) -> bool {
    password_length(password) <= MAX_PASSWORD_CHARS
}

#[derive(Debug, Clone, Copy)]
pub struct PasswordPolicy {
    pub min_chars: usize,
    pub max_chars: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyViolation {
    #[error(
        "Use at least {0} characters. A few unrelated words make a strong, memorable password."
    )]
    TooShort(usize),
    #[error("Use at most {0} characters.")]
    TooLong(usize),
    #[error(
        "This password has appeared in a data breach, so attackers try it first. Choose another one."
    )]
    Breached,
    #[error("The password must not contain your email address or its name part.")]
    ContainsEmail,
}

/// How many entries the shipped breached list holds.
pub fn breached_entries() -> usize {
    BREACHED.len() / PREFIX
}

fn listed(candidate: &str) -> bool {
    let digest = sha256(candidate.as_bytes());
    let key = &digest[..PREFIX];
    let (mut lo, mut hi) = (0usize, breached_entries());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let entry = &BREACHED[mid * PREFIX..(mid + 1) * PREFIX];
        match entry.cmp(key) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

/// True when the password (or its lower-cased form) is on the breached list.
pub fn is_breached(password: &str) -> bool {
    listed(password) || {
        let lower = password.to_lowercase();
        lower != password && listed(&lower)
    }
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars: 12,
            max_chars: 256,
        }
    }
}

impl PasswordPolicy {
    pub fn check(&self, password: &str, email: &str) -> Result<(), PolicyViolation> {
        let chars = password_length(password);
        if chars < self.min_chars {
            return Err(PolicyViolation::TooShort(self.min_chars));
        }
        if chars > self.max_chars {
            return Err(PolicyViolation::TooLong(self.max_chars));
        }
        let lower = password.to_lowercase();
        let email = crate::auth::email::normalise(email);
        let local = email.split('@').next().unwrap_or_default();
        if !email.is_empty()
            && (lower.contains(&email) || (local.chars().count() >= 3 && lower.contains(local)))
        {
            return Err(PolicyViolation::ContainsEmail);
        }
        if is_breached(password) {
            return Err(PolicyViolation::Breached);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_list_is_large_and_sorted() {
        assert!(breached_entries() >= 100_000, "{}", breached_entries());
        assert_eq!(BREACHED.len() % PREFIX, 0);
        assert!(
            BREACHED
                .chunks(PREFIX)
                .zip(BREACHED.chunks(PREFIX).skip(1))
                .all(|(a, b)| a < b)
        );
    }

    #[test]
    fn common_breached_passwords_are_refused_in_any_case() {
        let p = PasswordPolicy::default();
        for pw in [
            "password1234",
            "qwertyuiop123",
            "PASSWORD1234",
            "iloveyou1234",
        ] {
            assert_eq!(
                p.check(pw, "ann@example.com"),
                Err(PolicyViolation::Breached),
                "{pw}"
            );
        }
    }

    #[test]
    fn long_unusual_passphrases_pass_and_length_is_counted_in_characters() {
        let p = PasswordPolicy::default();
        assert_eq!(
            p.check("calm otter under violet lamps", "ann@example.com"),
            Ok(())
        );
        assert_eq!(
            p.check("short", "ann@example.com"),
            Err(PolicyViolation::TooShort(12))
        );
        // Twelve characters, more than twelve bytes: long enough.
        assert_eq!(p.check("ééééééééééé€", "ann@example.com"), Ok(()));
        assert_eq!(
            p.check(&"x".repeat(257), "a@b.c"),
            Err(PolicyViolation::TooLong(256))
        );
    }

    #[test]
    fn a_password_built_from_the_email_is_refused() {
        let p = PasswordPolicy::default();
        assert_eq!(
            p.check("Annabelle-river-2024", "annabelle@example.com"),
            Err(PolicyViolation::ContainsEmail)
        );
    }
}
