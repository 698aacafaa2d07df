//! The audit log: append-only and tamper-evident. Each entry carries a MAC (keyed with a key
//! derived from the master key) over its fields and the previous entry's MAC, so editing,
//! deleting or reordering any entry breaks the chain; without the master key the chain cannot be
//! recomputed. The head (last sequence number and MAC) carries a MAC of its own, so a database
//! writer cannot delete the tail and move the head back onto the new last row either.

use serde_json::Value;

use crate::clock::Timestamp;
use crate::crypto::Crypto;

/// What happened, to whom, from where. `detail` must never contain a secret.
#[derive(Debug, Clone, Default)]
pub struct AuditEvent {
    pub action: String,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: Value,
}

impl AuditEvent {
    pub fn new(action: &str) -> Self {
        Self {
            action: action.to_string(),
            detail: Value::Object(Default::default()),
            ..Default::default()
        }
    }
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }
    pub fn from_device(mut self, ip: Option<String>, user_agent: Option<String>) -> Self {
        self.ip = ip;
        self.user_agent = user_agent.map(|ua| ua.chars().take(256).collect());
        self
    }
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        if let Value::Object(map) = &mut self.detail {
            map.insert(key.to_string(), value.into());
        }
        self
    }
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: Timestamp,
    pub action: String,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: String,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

fn push(buf: &mut Vec<u8>, field: Option<&str>) {
    match field {
        Some(s) => {
            buf.push(1);
            buf.extend_from_slice(&(s.len() as u64).to_be_bytes());
            buf.extend_from_slice(s.as_bytes());
        }
        None => buf.push(0),
    }
}

/// The MAC linking an entry to its predecessor.
#[allow(clippy::too_many_arguments)]
pub fn link(
    crypto: &Crypto,
    prev: &[u8],
    seq: i64,
    at: Timestamp,
    action: &str,
    actor: Option<&str>,
    subject: Option<&str>,
    ip: Option<&str>,
    user_agent: Option<&str>,
    detail: &str,
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(&(prev.len() as u64).to_be_bytes());
    buf.extend_from_slice(prev);
    buf.extend_from_slice(&seq.to_be_bytes());
    buf.extend_from_slice(&at.to_be_bytes());
    for f in [Some(action), actor, subject, ip, user_agent, Some(detail)] {
        push(&mut buf, f);
    }
    crypto.mac("audit-chain", &buf)
}

/// The MAC of event `e` appended as entry `seq` after `prev`; `detail` is `e.detail` as stored.
pub fn event_link(
    crypto: &Crypto,
    prev: &[u8],
    seq: i64,
    at: Timestamp,
    e: &AuditEvent,
    detail: &str,
) -> Vec<u8> {
    link(
        crypto,
        prev,
        seq,
        at,
        &e.action,
        e.actor.as_deref(),
        e.subject.as_deref(),
        e.ip.as_deref(),
        e.user_agent.as_deref(),
        detail,
    )
}

pub fn record_link(crypto: &Crypto, r: &AuditRecord) -> Vec<u8> {
    link(
        crypto,
        &r.prev_hash,
        r.seq,
        r.at,
        &r.action,
        r.actor.as_deref(),
        r.subject.as_deref(),
        r.ip.as_deref(),
        r.user_agent.as_deref(),
        &r.detail,
    )
}

/// The MAC that authenticates the head `(seq, last_hash)`: only a process holding the master
/// key can move the head, so a truncated tail cannot be hidden by moving the head back.
pub fn head_mac(crypto: &Crypto, seq: i64, last_hash: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(48);
    buf.extend_from_slice(&seq.to_be_bytes());
    buf.extend_from_slice(&(last_hash.len() as u64).to_be_bytes());
    buf.extend_from_slice(last_hash);
    crypto.mac("audit-head", &buf)
}

/// Whether `mac` (as stored beside the head) authenticates the head `(seq, last_hash)`. A head
/// without a MAC (`None`: never sealed, or left unsealed by an append that found it forged) does
/// not.
pub fn head_is_authentic(crypto: &Crypto, seq: i64, last_hash: &[u8], mac: Option<&[u8]>) -> bool {
    mac.is_some_and(|mac| crate::crypto::ct_eq(&head_mac(crypto, seq, last_hash), mac))
}

/// An entry an operator recorded elsewhere (`tessera audit verify` prints it): its sequence number
/// and MAC. A log rolled back to before it, or rewritten from it on, no longer contains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub seq: i64,
    pub hash: Vec<u8>,
}

impl Pin {
    /// `SEQ:MAC` with the MAC in base64url, as printed by `tessera audit verify`.
    pub fn parse(text: &str) -> Result<Self, String> {
        use base64::Engine;
        let bad =
            || format!("`{text}` is not a pin (SEQ:MAC, as printed by `tessera audit verify`)");
        let (seq, mac) = text.trim().split_once(':').ok_or_else(bad)?;
        let seq: i64 = seq.parse().map_err(|_| bad())?;
        let hash = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| bad())?;
        if seq < 1 || hash.is_empty() {
            return Err(bad());
        }
        Ok(Self { seq, hash })
    }
}

impl std::fmt::Display for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use base64::Engine;
        let mac = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.hash);
        write!(f, "{}:{mac}", self.seq)
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("entry {0} was altered")]
    Altered(i64),
    #[error("entry {0} does not follow the previous entry (missing or reordered entries)")]
    Broken(i64),
    #[error("the log ends at entry {found} but {expected} entries were written (tail deleted)")]
    Truncated { found: i64, expected: i64 },
    #[error(
        "the head (entry {0}) is not authenticated: it was moved or its MAC removed by someone \
         without the master key (tail deleted, or a forged head)"
    )]
    Head(i64),
    #[error("pinned entry {0} is missing or differs (log rolled back or rewritten)")]
    Pin(i64),
}

/// Walks the chain in order; `head` is (last sequence number, last hash) as recorded at append.
pub struct ChainVerifier<'a> {
    crypto: &'a Crypto,
    prev_hash: Vec<u8>,
    prev_seq: i64,
}

impl<'a> ChainVerifier<'a> {
    pub fn new(crypto: &'a Crypto) -> Self {
        Self {
            crypto,
            prev_hash: Vec::new(),
            prev_seq: 0,
        }
    }

    pub fn next(&mut self, r: &AuditRecord) -> Result<(), ChainBreak> {
        if r.seq != self.prev_seq + 1 || r.prev_hash != self.prev_hash {
            return Err(ChainBreak::Broken(r.seq));
        }
        if !crate::crypto::ct_eq(&record_link(self.crypto, r), &r.hash) {
            return Err(ChainBreak::Altered(r.seq));
        }
        self.prev_seq = r.seq;
        self.prev_hash = r.hash.clone();
        Ok(())
    }

    /// Checks that the walk ended where the head says the log ends, and that the head itself is
    /// authentic (`head_mac` as stored beside it).
    pub fn finish(
        &self,
        head_seq: i64,
        head_hash: &[u8],
        head_mac: Option<&[u8]>,
    ) -> Result<i64, ChainBreak> {
        if self.prev_seq != head_seq || self.prev_hash != head_hash {
            return Err(ChainBreak::Truncated {
                found: self.prev_seq,
                expected: head_seq,
            });
        }
        if !head_is_authentic(self.crypto, head_seq, head_hash, head_mac) {
            return Err(ChainBreak::Head(head_seq));
        }
        Ok(self.prev_seq)
    }
}
