//! The authentication level: how a user signed in (`amr`, RFC 8176) and what level that
//! reaches (`acr`): "1" with one factor (a password), "2" with factors of two different kinds,
//! as discovery advertises. Pure functions: sessions store `amr` as strings, and the ID token,
//! the access token and the step-up decision all derive `acr` from it with [`Acr::of`].

/// Authentication method references (RFC 8176 §2) Tessera records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Amr {
    /// A password (something the user knows).
    Pwd,
    /// A one-time password: an authenticator app's code, or a recovery code.
    Otp,
    /// Proof of possession of a hardware-secured key (a security key, a device-bound passkey).
    Hwk,
    /// Proof of possession of a software-secured key (a synced passkey).
    Swk,
    /// User presence and verification on the authenticator (WebAuthn's UV flag: a PIN or a
    /// biometric checked by the device).
    User,
    /// Multiple-factor authentication: added by [`with_mfa`] when the others reach "2".
    Mfa,
}

impl Amr {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pwd => "pwd",
            Self::Otp => "otp",
            Self::Hwk => "hwk",
            Self::Swk => "swk",
            Self::User => "user",
            Self::Mfa => "mfa",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pwd" => Self::Pwd,
            "otp" => Self::Otp,
            "hwk" => Self::Hwk,
            "swk" => Self::Swk,
            "user" => Self::User,
            "mfa" => Self::Mfa,
            _ => return None,
        })
    }

    /// The kind of factor a method proves (NIST SP 800-63B §5.1): `None` for `mfa`, which is a
    /// conclusion, not a method.
    fn factor(self) -> Option<Factor> {
        match self {
            Self::Pwd => Some(Factor::Knowledge),
            Self::Otp | Self::Hwk | Self::Swk => Some(Factor::Possession),
            Self::User => Some(Factor::Verification),
            Self::Mfa => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Factor {
    Knowledge,
    Possession,
    /// The authenticator verified the user (PIN or biometric): with the key it unlocks, a
    /// passkey alone is two factors.
    Verification,
}

/// Authentication context class reference values Tessera issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Acr {
    /// "1": one factor (a password).
    SingleFactor,
    /// "2": factors of two different kinds (password and a code or key; a passkey with user
    /// verification).
    MultiFactor,
}

impl Acr {
    /// The level a set of methods reaches: "2" when it holds `mfa` or proves two different
    /// kinds of factor, "1" otherwise (also for an empty set: the lowest level, never more).
    /// Two methods of one kind (a code and a security key) are still one factor.
    pub fn of(amr: &[Amr]) -> Self {
        if amr.contains(&Amr::Mfa) {
            return Self::MultiFactor;
        }
        let mut kinds = amr.iter().filter_map(|a| a.factor());
        let first = kinds.next();
        if kinds.any(|k| Some(k) != first) {
            Self::MultiFactor
        } else {
            Self::SingleFactor
        }
    }

    /// [`Acr::of`] for `amr` as sessions and tokens store it; unknown values count for nothing.
    pub fn of_strings(amr: &[String]) -> Self {
        Self::of(&parse_all(amr))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SingleFactor => "1",
            Self::MultiFactor => "2",
        }
    }

    /// An `acr` value as a request names it (`acr_values`, `claims`): `None` for a value
    /// Tessera does not issue.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "1" => Some(Self::SingleFactor),
            "2" => Some(Self::MultiFactor),
            _ => None,
        }
    }

    /// Whether this level meets `required`.
    pub fn satisfies(self, required: Acr) -> bool {
        self >= required
    }
}

/// The known methods among stored `amr` strings, in order, without repeats.
pub fn parse_all(amr: &[String]) -> Vec<Amr> {
    let mut out: Vec<Amr> = Vec::with_capacity(amr.len());
    for a in amr.iter().filter_map(|a| Amr::parse(a)) {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

/// The `amr` to record: the methods used, each once, in order, with `mfa` appended when they
/// reach "2" (RFC 8176 §2 "mfa"), as strings for the session and the tokens.
pub fn with_mfa(amr: &[Amr]) -> Vec<String> {
    let mut out: Vec<Amr> = Vec::with_capacity(amr.len() + 1);
    for a in amr {
        if *a != Amr::Mfa && !out.contains(a) {
            out.push(*a);
        }
    }
    if Acr::of(amr) == Acr::MultiFactor {
        out.push(Amr::Mfa);
    }
    out.into_iter().map(|a| a.as_str().to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Amr::*;

    #[test]
    fn a_password_alone_is_level_1() {
        assert_eq!(Acr::of(&[Pwd]), Acr::SingleFactor);
        assert_eq!(Acr::of(&[Pwd]).as_str(), "1");
        assert_eq!(Acr::of(&[]), Acr::SingleFactor);
    }

    #[test]
    fn a_password_with_a_code_or_a_key_is_level_2() {
        for second in [Otp, Hwk, Swk] {
            assert_eq!(Acr::of(&[Pwd, second]), Acr::MultiFactor, "{second:?}");
        }
        assert_eq!(Acr::of(&[Pwd, Otp]).as_str(), "2");
    }

    #[test]
    fn a_passkey_with_user_verification_is_level_2_on_its_own() {
        assert_eq!(Acr::of(&[Hwk, User]), Acr::MultiFactor);
        assert_eq!(Acr::of(&[Swk, User]), Acr::MultiFactor);
    }

    #[test]
    fn two_things_of_one_kind_are_still_one_factor() {
        assert_eq!(Acr::of(&[Otp, Hwk]), Acr::SingleFactor);
        assert_eq!(Acr::of(&[Hwk]), Acr::SingleFactor);
        assert_eq!(Acr::of(&[Pwd, Pwd]), Acr::SingleFactor);
    }

    #[test]
    fn mfa_alone_says_level_2() {
        assert_eq!(Acr::of(&[Mfa]), Acr::MultiFactor);
    }

    #[test]
    fn the_recorded_amr_gains_mfa_exactly_when_the_level_is_2() {
        assert_eq!(with_mfa(&[Pwd]), vec!["pwd"]);
        assert_eq!(with_mfa(&[Pwd, Otp]), vec!["pwd", "otp", "mfa"]);
        assert_eq!(with_mfa(&[Pwd, Otp, Otp, Mfa]), vec!["pwd", "otp", "mfa"]);
        assert_eq!(with_mfa(&[Hwk, User]), vec!["hwk", "user", "mfa"]);
    }

    #[test]
    fn stored_amr_strings_round_trip_and_unknown_ones_count_for_nothing() {
        for a in [Pwd, Otp, Hwk, Swk, User, Mfa] {
            assert_eq!(Amr::parse(a.as_str()), Some(a));
        }
        let stored: Vec<String> = ["pwd", "sms", "otp", "pwd"].map(String::from).into();
        assert_eq!(parse_all(&stored), vec![Pwd, Otp]);
        assert_eq!(Acr::of_strings(&stored), Acr::MultiFactor);
        assert_eq!(Acr::of_strings(&["sms".into()]), Acr::SingleFactor);
    }

    #[test]
    fn level_2_satisfies_a_request_for_1_and_not_the_reverse() {
        assert!(Acr::MultiFactor.satisfies(Acr::SingleFactor));
        assert!(!Acr::SingleFactor.satisfies(Acr::MultiFactor));
        assert_eq!(Acr::parse("2"), Some(Acr::MultiFactor));
        assert_eq!(Acr::parse("urn:mace:incommon:iap:silver"), None);
    }
}
