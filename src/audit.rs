//! The audit log: append-only and tamper-evident. Each entry carries a MAC (keyed with a key
//! derived from the master key) over its fields and the previous entry's MAC, so editing,
//! deleting or reordering any entry, or truncating the tail, breaks the chain; without the master
//! key the chain cannot be recomputed.

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

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("entry {0} was altered")]
    Altered(i64),
    #[error("entry {0} does not follow the previous entry (missing or reordered entries)")]
    Broken(i64),
    #[error("the log ends at entry {found} but {expected} entries were written (tail deleted)")]
    Truncated { found: i64, expected: i64 },
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

    /// Checks that the walk ended where the head says the log ends.
    pub fn finish(&self, head_seq: i64, head_hash: &[u8]) -> Result<i64, ChainBreak> {
        if self.prev_seq != head_seq || self.prev_hash != head_hash {
            return Err(ChainBreak::Truncated {
                found: self.prev_seq,
                expected: head_seq,
            });
        }
        Ok(self.prev_seq)
    }
}
