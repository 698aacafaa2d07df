//! Revocations that live JWT access tokens must observe: single tokens (`jti`) and sessions
//! (`sid`; user-wide actions revoke each of the user's sessions by id).
//!
//! A JWT is valid until it expires; to let introspection answer `active: false` the moment a
//! session, a user or a single token is revoked, every replica holds the recent revocations in
//! memory. The database log (`revocation_events`) is the source of truth; each replica replays
//! it at start, polls it, and with Redis hears new entries at once over pub/sub. Entries are
//! dropped once every token they could concern has expired, so memory stays small.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::oauth::tokens::AccessClaims;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationKind {
    /// One access token, by `jti`.
    Jti,
    /// Every token of one SSO session (`sid`).
    Session,
}

impl RevocationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jti => "jti",
            Self::Session => "session",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "jti" => Some(Self::Jti),
            "session" => Some(Self::Session),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub kind: RevocationKind,
    pub subject: String,
    pub at: Timestamp,
    /// After this, no token it concerns can still be valid.
    pub expires_at: Timestamp,
}

#[derive(Debug, Default)]
pub struct RevocationList {
    jtis: HashMap<String, Timestamp>,
    sessions: HashMap<String, Timestamp>,
    /// The highest database sequence number replayed.
    pub last_seq: i64,
}

impl RevocationList {
    pub fn apply(&mut self, r: &Revocation) {
        match r.kind {
            RevocationKind::Jti => {
                self.jtis.insert(r.subject.clone(), r.expires_at);
            }
            RevocationKind::Session => {
                self.sessions.insert(r.subject.clone(), r.expires_at);
            }
        }
    }

    /// True when a revocation concerns this (signature-verified, unexpired) access token.
    pub fn is_revoked(&self, c: &AccessClaims) -> bool {
        if self.jtis.contains_key(&c.jti) {
            return true;
        }
        c.sid
            .as_ref()
            .is_some_and(|sid| self.sessions.contains_key(sid))
    }

    /// Forgets revocations whose tokens have all expired.
    pub fn purge(&mut self, now: Timestamp) {
        self.jtis.retain(|_, exp| *exp > now);
        self.sessions.retain(|_, exp| *exp > now);
    }

    pub fn len(&self) -> usize {
        self.jtis.len() + self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str, sid: Option<&str>, auth_time: i64, jti: &str) -> AccessClaims {
        AccessClaims {
            iss: "i".into(),
            sub: sub.into(),
            aud: "a".into(),
            exp: 1000,
            iat: auth_time + 5,
            jti: jti.into(),
            client_id: "c".into(),
            scope: "openid".into(),
            sid: sid.map(String::from),
            auth_time: Some(auth_time),
            roles: None,
            acr: None,
            amr: None,
        }
    }

    fn rev(kind: RevocationKind, subject: &str, at: i64) -> Revocation {
        Revocation {
            kind,
            subject: subject.into(),
            at,
            expires_at: at + 600,
        }
    }

    #[test]
    fn a_revoked_session_revokes_its_tokens_only() {
        let mut l = RevocationList::default();
        l.apply(&rev(RevocationKind::Session, "s1", 100));
        assert!(l.is_revoked(&claims("u", Some("s1"), 50, "j1")));
        assert!(!l.is_revoked(&claims("u", Some("s2"), 50, "j2")));
    }

    #[test]
    fn denied_jtis_apply_to_client_tokens_and_everything_is_forgotten_after_expiry() {
        let mut l = RevocationList::default();
        l.apply(&rev(RevocationKind::Jti, "j9", 100));
        assert!(l.is_revoked(&claims("svc", None, 0, "j9")));
        l.purge(700);
        assert!(l.is_empty());
    }
}
