//! Revocations that live JWT access tokens must observe: single tokens (`jti`) and sessions
//! (`sid`; user-wide actions revoke each of the user's sessions by id).
//!
//! A JWT is valid until it expires; to let introspection answer `active: false` the moment a
//! session, a user or a single token is revoked, every replica holds the recent revocations in
//! memory. The database log (`revocation_events`) is the source of truth; each replica replays
//! it at start, polls it, and with Redis hears new entries at once over pub/sub. Entries are
//! dropped once every token they could concern has expired, so memory stays small.
//!
//! The same log, signed entry by entry, is the revocation feed offline verifiers follow
//! (`crate::oauth::feed`).

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
    /// Every token a client received up to `at` (the client was disabled).
    Client,
    /// A client's settings or secret changed at `at`: revokes nothing, but every replica
    /// stops trusting its cached copy of the client.
    ClientChanged,
    /// Every token of one user (`subject` is the user id) issued before `at`: the user was
    /// disabled, signed out everywhere, or changed or reset a password or second factor. (Each
    /// of the user's sessions gets its own entry too, which covers tokens of the same second.)
    User,
}

impl RevocationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jti => "jti",
            Self::Session => "session",
            Self::Client => "client",
            Self::ClientChanged => "client_changed",
            Self::User => "user",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "jti" => Some(Self::Jti),
            "session" => Some(Self::Session),
            "client" => Some(Self::Client),
            "client_changed" => Some(Self::ClientChanged),
            "user" => Some(Self::User),
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
    /// The user concerned, when known: the subject of a `user` entry; for a `session` entry the
    /// store fills it in from the session as it writes the entry (`None` in memory before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// Seconds a passed-over sequence number is watched for a late commit: sequence numbers are
/// handed out in order but, on PostgreSQL, may become visible out of order (an insert holding
/// 10 commits after one holding 11). An entry is one autocommitted insert, milliseconds in
/// flight; a number still missing after this was rolled back or purged.
pub const SETTLE: i64 = 60;
/// The most passed-over numbers a reader watches: no more inserts than that are in flight at once.
pub const MAX_GAPS: usize = 64;

/// Where a reader is in the log: everything up to `after` was handed out, except the numbers
/// in `gaps` (each with when it was first passed over), which were not visible yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogCursor {
    #[serde(rename = "a")]
    pub after: i64,
    #[serde(rename = "g", default)]
    pub gaps: Vec<(i64, Timestamp)>,
}

/// The cursor after handing out `rows` (read after `after` or among `watched`), and the known
/// entries among them.
pub fn advance<'r>(
    after: &i64,
    watched: Vec<(i64, Timestamp)>,
    rows: &'r [(i64, Option<Revocation>)],
    now: Timestamp,
) -> (LogCursor, Vec<(i64, &'r Revocation)>) {
    let mut gaps: Vec<(i64, Timestamp)> = watched
        .into_iter()
        .filter(|(seq, _)| !rows.iter().any(|(s, _)| s == seq))
        .collect();
    let mut high = *after;
    let mut delivered = Vec::with_capacity(rows.len());
    for (seq, r) in rows {
        if *seq > high {
            let skipped = seq - high - 1;
            // An entry of an unknown kind counts as recent (its time is not read).
            let recent = r.as_ref().is_none_or(|r| r.at + SETTLE >= now);
            if skipped > 0 && skipped as usize <= MAX_GAPS && recent {
                gaps.extend((high + 1..*seq).map(|g| (g, now)));
            }
            high = *seq;
        }
        if let Some(r) = r {
            delivered.push((*seq, r));
        }
    }
    gaps.sort_unstable();
    gaps.dedup_by_key(|(seq, _)| *seq);
    // Keep the newest numbers when there are too many: the oldest are the least likely to be
    // still in flight.
    if gaps.len() > MAX_GAPS {
        gaps.drain(..gaps.len() - MAX_GAPS);
    }
    (LogCursor { after: high, gaps }, delivered)
}

#[derive(Debug, Default)]
pub struct RevocationList {
    jtis: HashMap<String, Timestamp>,
    sessions: HashMap<String, Timestamp>,
    /// Disabled clients: when (tokens issued up to then are refused) and until when to remember.
    clients: HashMap<String, (Timestamp, Timestamp)>,
    /// Clients changed (settings, secret, disabled): when, and until when to remember; a copy
    /// cached before then is stale.
    changed: HashMap<String, (Timestamp, Timestamp)>,
    /// Users whose tokens issued up to a time are refused: when, and until when to remember.
    users: HashMap<String, (Timestamp, Timestamp)>,
    /// How far the database log was replayed: the highest sequence number, and the numbers
    /// passed over while not yet visible (read again until they appear or settle).
    pub replayed: LogCursor,
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
            RevocationKind::Client => {
                remember(&mut self.clients, r);
                remember(&mut self.changed, r);
            }
            RevocationKind::ClientChanged => remember(&mut self.changed, r),
            RevocationKind::User => remember(&mut self.users, r),
        }
    }

    /// When the client was last disabled, while any token it got before could still be valid.
    pub fn client_disabled_at(&self, client_id: &str) -> Option<Timestamp> {
        self.clients.get(client_id).map(|(at, _)| *at)
    }

    /// When the client last changed (disabled included), while a cached copy could be older.
    pub fn client_changed_at(&self, client_id: &str) -> Option<Timestamp> {
        self.changed.get(client_id).map(|(at, _)| *at)
    }

    /// True when a revocation concerns this (signature-verified, unexpired) access token.
    pub fn is_revoked(&self, c: &AccessClaims) -> bool {
        if self.jtis.contains_key(&c.jti) {
            return true;
        }
        if self
            .clients
            .get(&c.client_id)
            .is_some_and(|(at, _)| c.iat <= *at)
        {
            return true;
        }
        // Strictly before: a token of the event's own second is either of an ended session
        // (refused by its `sid` above) or of a sign-in right after, which must work.
        if self.users.get(&c.sub).is_some_and(|(at, _)| c.iat < *at) {
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
        self.clients.retain(|_, (_, exp)| *exp > now);
        self.changed.retain(|_, (_, exp)| *exp > now);
        self.users.retain(|_, (_, exp)| *exp > now);
    }

    pub fn len(&self) -> usize {
        self.jtis.len()
            + self.sessions.len()
            + self.clients.len()
            + self.changed.len()
            + self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Keeps the latest `at` and the furthest `expires_at` of a client's entries.
fn remember(map: &mut HashMap<String, (Timestamp, Timestamp)>, r: &Revocation) {
    let entry = map.entry(r.subject.clone()).or_insert((r.at, r.expires_at));
    entry.0 = entry.0.max(r.at);
    entry.1 = entry.1.max(r.expires_at);
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
            user_id: None,
        }
    }

    #[test]
    fn a_user_event_revokes_that_users_tokens_issued_until_then_only() {
        let mut l = RevocationList::default();
        let mut r = rev(RevocationKind::User, "u", 100);
        r.user_id = Some("u".into());
        l.apply(&r);
        // `claims` issues at auth_time + 5: 99 is before the event, 100 its own second (a
        // sign-in right after; a token of an ended session is refused by its session entry).
        assert!(l.is_revoked(&claims("u", Some("s1"), 90, "j1")));
        assert!(l.is_revoked(&claims("u", Some("s2"), 94, "j2")));
        assert!(l.is_revoked(&claims("u", None, 94, "j3")));
        assert!(!l.is_revoked(&claims("u", Some("s3"), 95, "j4")));
        assert!(!l.is_revoked(&claims("someone-else", Some("s1"), 90, "j5")));
        // A later event moves the line; an earlier one does not move it back.
        l.apply(&rev(RevocationKind::User, "u", 200));
        l.apply(&rev(RevocationKind::User, "u", 150));
        assert!(l.is_revoked(&claims("u", Some("s3"), 194, "j6")));
        assert!(!l.is_revoked(&claims("u", Some("s3"), 195, "j7")));
        l.purge(799);
        assert!(!l.is_empty());
        l.purge(800);
        assert!(l.is_empty());
    }

    #[test]
    fn a_revoked_session_revokes_its_tokens_only() {
        let mut l = RevocationList::default();
        l.apply(&rev(RevocationKind::Session, "s1", 100));
        assert!(l.is_revoked(&claims("u", Some("s1"), 50, "j1")));
        assert!(!l.is_revoked(&claims("u", Some("s2"), 50, "j2")));
    }

    #[test]
    fn a_disabled_client_revokes_the_tokens_it_got_until_then_and_not_after() {
        let mut l = RevocationList::default();
        l.apply(&rev(RevocationKind::Client, "c", 100));
        // `claims` issues at auth_time + 5, to client "c".
        assert!(l.is_revoked(&claims("u", Some("s1"), 94, "j1")));
        assert!(l.is_revoked(&claims("svc", None, 95, "j2")));
        assert!(!l.is_revoked(&claims("svc", None, 96, "j3")));
        assert_eq!(l.client_disabled_at("c"), Some(100));
        assert_eq!(l.client_changed_at("c"), Some(100));
        assert_eq!(l.client_disabled_at("other"), None);
        l.purge(699);
        assert_eq!(l.client_disabled_at("c"), Some(100));
        l.purge(700);
        assert_eq!(l.client_disabled_at("c"), None);
        assert!(l.is_empty());
    }

    #[test]
    fn a_changed_client_revokes_nothing_but_dates_its_cached_copies() {
        let mut l = RevocationList::default();
        let mut changed = rev(RevocationKind::ClientChanged, "c", 100);
        changed.expires_at = 110;
        l.apply(&changed);
        assert!(!l.is_revoked(&claims("svc", None, 0, "j1")));
        assert_eq!(l.client_changed_at("c"), Some(100));
        assert_eq!(l.client_disabled_at("c"), None);
        l.purge(110);
        assert_eq!(l.client_changed_at("c"), None);
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
