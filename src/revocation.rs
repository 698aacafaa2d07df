//! Revocations that live JWT access tokens must observe.
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
    /// Every token of a user whose session was authenticated at or before `at`, except `keep`.
    User,
}

impl RevocationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jti => "jti",
            Self::Session => "session",
            Self::User => "user",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "jti" => Some(Self::Jti),
            "session" => Some(Self::Session),
            "user" => Some(Self::User),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub kind: RevocationKind,
    pub subject: String,
    pub keep: Option<String>,
    pub at: Timestamp,
    /// After this, no token it concerns can still be valid.
    pub expires_at: Timestamp,
}

#[derive(Debug, Default)]
pub struct RevocationList {
    jtis: HashMap<String, Timestamp>,
    sessions: HashMap<String, Timestamp>,
    users: HashMap<String, Vec<Revocation>>,
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
            RevocationKind::User => {
                let list = self.users.entry(r.subject.clone()).or_default();
                if !list.contains(r) {
                    list.push(r.clone());
                }
            }
        }
    }

    /// True when a revocation concerns this (signature-verified, unexpired) access token.
    pub fn is_revoked(&self, c: &AccessClaims) -> bool {
        if self.jtis.contains_key(&c.jti) {
            return true;
        }
        let Some(sid) = &c.sid else {
            return false;
        };
        if self.sessions.contains_key(sid) {
            return true;
        }
        let auth_time = c.auth_time.unwrap_or(c.iat);
        self.users.get(&c.sub).is_some_and(|list| {
            list.iter()
                .any(|r| auth_time <= r.at && r.keep.as_deref() != Some(sid.as_str()))
        })
    }

    /// Forgets revocations whose tokens have all expired.
    pub fn purge(&mut self, now: Timestamp) {
        self.jtis.retain(|_, exp| *exp > now);
        self.sessions.retain(|_, exp| *exp > now);
        self.users.retain(|_, list| {
            list.retain(|r| r.expires_at > now);
            !list.is_empty()
        });
    }

    pub fn len(&self) -> usize {
        self.jtis.len() + self.sessions.len() + self.users.values().map(Vec::len).sum::<usize>()
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
        }
    }

    fn rev(kind: RevocationKind, subject: &str, keep: Option<&str>, at: i64) -> Revocation {
        Revocation {
            kind,
            subject: subject.into(),
            keep: keep.map(String::from),
            at,
            expires_at: at + 600,
        }
    }

    #[test]
    fn a_revoked_session_revokes_its_tokens_only() {
        let mut l = RevocationList::default();
        l.apply(&rev(RevocationKind::Session, "s1", None, 100));
        assert!(l.is_revoked(&claims("u", Some("s1"), 50, "j1")));
        assert!(!l.is_revoked(&claims("u", Some("s2"), 50, "j2")));
    }

    #[test]
    fn signing_out_everywhere_spares_the_kept_session_and_later_sign_ins() {
        let mut l = RevocationList::default();
        l.apply(&rev(RevocationKind::User, "u", Some("keep"), 100));
        assert!(l.is_revoked(&claims("u", Some("other"), 90, "j1")));
        assert!(!l.is_revoked(&claims("u", Some("keep"), 90, "j2")));
        assert!(!l.is_revoked(&claims("u", Some("new"), 101, "j3")));
        assert!(!l.is_revoked(&claims("v", Some("other"), 90, "j4")));
    }

    #[test]
    fn denied_jtis_apply_to_client_tokens_and_everything_is_forgotten_after_expiry() {
        let mut l = RevocationList::default();
        l.apply(&rev(RevocationKind::Jti, "j9", None, 100));
        assert!(l.is_revoked(&claims("svc", None, 0, "j9")));
        l.purge(700);
        assert!(l.is_empty());
    }
}
