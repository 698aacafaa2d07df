//! Recovery codes: single-use codes the user writes down, accepted wherever a one-time code is.
//!
//! Each is 8 characters of Crockford's base32 alphabet (no `i`, `l`, `o`, `u`: nothing to
//! confuse), 40 random bits, shown grouped as `k7qm-2x9d`. Input is read forgivingly: case,
//! spaces and the hyphen do not matter, and `o`, `i`, `l` read as `0`, `1`, `1`. Only keyed
//! hashes are stored ([`hash`]); 40 bits are plenty against online guessing behind the
//! second-step throttle, and the key keeps a stolen database from being searched offline.

use crate::crypto::Crypto;
use crate::secret::SecretString;

/// Codes in a set (the issue asks for at least 8).
pub const SET_SIZE: usize = 10;
/// Characters per code.
pub const CODE_CHARS: usize = 8;

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A recovery code in its canonical form: 8 characters of the alphabet, lower case.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(SecretString);

impl std::fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCode([redacted])")
    }
}

impl RecoveryCode {
    /// A new random code.
    pub fn generate() -> Self {
        let bits = crate::crypto::random_bytes::<5>();
        let mut value = bits.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b));
        let mut chars = [0u8; CODE_CHARS];
        for c in chars.iter_mut().rev() {
            *c = ALPHABET[(value & 31) as usize];
            value >>= 5;
        }
        Self(SecretString::new(
            String::from_utf8_lossy(&chars).into_owned(),
        ))
    }

    /// What the user typed, if it can be a recovery code: case, spaces and hyphens ignored,
    /// `o` read as `0` and `i`/`l` as `1`.
    pub fn parse(input: &str) -> Option<Self> {
        let mut code = String::with_capacity(CODE_CHARS);
        for c in input.chars() {
            let c = match c.to_ascii_lowercase() {
                ' ' | '\t' | '-' => continue,
                'o' => '0',
                'i' | 'l' => '1',
                c if c.is_ascii() && ALPHABET.contains(&(c as u8)) => c,
                _ => return None,
            };
            if code.len() == CODE_CHARS {
                return None;
            }
            code.push(c);
        }
        (code.len() == CODE_CHARS).then(|| Self(SecretString::new(code)))
    }

    /// As shown to the user: `xxxx-xxxx`.
    pub fn display(&self) -> SecretString {
        let code = self.0.as_str();
        SecretString::new(format!("{}-{}", &code[..4], &code[4..]))
    }

    /// The keyed hash stored for this code of this user.
    pub fn hash(&self, crypto: &Crypto, user_id: &str) -> Vec<u8> {
        hash(crypto, user_id, self)
    }
}

/// The keyed hash of a user's code (HMAC under the master key's token-hash key, with the user
/// id and a label, so it is never the hash of any other token).
pub fn hash(crypto: &Crypto, user_id: &str, code: &RecoveryCode) -> Vec<u8> {
    crypto.token_hash(&format!("recovery-code\0{user_id}\0{}", code.0.as_str()))
}

/// A new set of [`SET_SIZE`] distinct codes.
pub fn generate_set() -> Vec<RecoveryCode> {
    let mut set: Vec<RecoveryCode> = Vec::with_capacity(SET_SIZE);
    while set.len() < SET_SIZE {
        let code = RecoveryCode::generate();
        if !set.contains(&code) {
            set.push(code);
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;

    #[test]
    fn a_set_has_ten_distinct_codes_of_eight_unambiguous_characters_shown_in_two_groups() {
        let set = generate_set();
        assert_eq!(set.len(), 10);
        for code in &set {
            let shown = code.display();
            let (a, b) = shown.as_str().split_once('-').unwrap();
            assert_eq!((a.len(), b.len()), (4, 4));
            assert!(
                format!("{a}{b}")
                    .chars()
                    .all(|c| ALPHABET.contains(&(c as u8)) && !"ilou".contains(c))
            );
            assert_eq!(RecoveryCode::parse(shown.as_str()).as_ref(), Some(code));
        }
        let mut distinct = set.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), 10);
    }

    #[test]
    fn codes_are_read_whatever_the_case_spacing_or_hyphen_and_with_lookalikes() {
        let code = RecoveryCode::parse("k7qm-2x9d").unwrap();
        for typed in ["K7QM-2X9D", "k7qm2x9d", " k7qm 2x9d ", "k7 qm-2x 9d"] {
            assert_eq!(RecoveryCode::parse(typed).as_ref(), Some(&code), "{typed}");
        }
        assert_eq!(
            RecoveryCode::parse("oil0-1111"),
            RecoveryCode::parse("0110-1111")
        );
        for bad in [
            "",
            "k7qm-2x9",
            "k7qm-2x9dd",
            "k7qm-2x9u",
            "k7qm_2x9d",
            "k7qm-2x9é",
        ] {
            assert_eq!(RecoveryCode::parse(bad), None, "{bad:?}");
        }
        assert_eq!(format!("{code:?}"), "RecoveryCode([redacted])");
    }

    #[test]
    fn hashes_are_keyed_and_belong_to_one_user() {
        let crypto = Crypto::new(&MasterKey::generate());
        let other = Crypto::new(&MasterKey::generate());
        let code = RecoveryCode::parse("k7qm-2x9d").unwrap();
        assert_eq!(code.hash(&crypto, "u1"), code.hash(&crypto, "u1"));
        assert_ne!(code.hash(&crypto, "u1"), code.hash(&crypto, "u2"));
        assert_ne!(code.hash(&crypto, "u1"), code.hash(&other, "u1"));
    }
}
