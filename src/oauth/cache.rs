//! Small in-memory caches on the hot paths.
//!
//! - Clients: looked up on every token and introspection request; kept 5 s. A change made on
//!   this replica forgets the entry; a client disabled on another replica is refetched as soon
//!   as its revocation arrives (Redis pub/sub, or the log's poll).
//! - Verified access tokens: an ES256 verification costs ~50 µs; a resource server introspects
//!   the same token on every request. The cache maps SHA-256(token) to its claims until the token
//!   expires; revocation is still checked on every call, and a keyring change clears it.

use std::collections::HashMap;
use std::sync::Mutex;

use super::tokens::AccessClaims;
use crate::clock::Timestamp;
use crate::store::Client;

const CLIENT_TTL_MS: i64 = 5_000;
const MAX_VERIFIED: usize = 20_000;

#[derive(Default)]
pub struct Caches {
    clients: Mutex<HashMap<String, (Client, i64)>>,
    verified: Mutex<HashMap<[u8; 32], AccessClaims>>,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Caches")
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn key(token: &str) -> [u8; 32] {
    let d = crate::crypto::sha256(token.as_bytes());
    let mut k = [0u8; 32];
    k.copy_from_slice(&d);
    k
}

impl Caches {
    /// The cached client, unless older than its TTL or cached at or before `stale_until_ms`
    /// (the client changed then: disabled, on any replica).
    pub fn client(&self, id: &str, now_ms: i64, stale_until_ms: i64) -> Option<Client> {
        lock(&self.clients)
            .get(id)
            .filter(|(_, at)| now_ms - at < CLIENT_TTL_MS && *at > stale_until_ms)
            .map(|(c, _)| c.clone())
    }

    /// Forgets a client changed on this replica.
    pub fn forget_client(&self, id: &str) {
        lock(&self.clients).remove(id);
    }

    pub fn put_client(&self, client: &Client, now_ms: i64) {
        let mut m = lock(&self.clients);
        if m.len() > 10_000 {
            m.clear();
        }
        m.insert(client.id.clone(), (client.clone(), now_ms));
    }

    pub fn verified(&self, token: &str, now: Timestamp) -> Option<AccessClaims> {
        lock(&self.verified)
            .get(&key(token))
            .filter(|c| c.exp > now)
            .cloned()
    }

    pub fn put_verified(&self, token: &str, claims: &AccessClaims) {
        let mut m = lock(&self.verified);
        if m.len() >= MAX_VERIFIED {
            m.clear();
        }
        m.insert(key(token), claims.clone());
    }

    /// After a keyring change: tokens of a withdrawn key must be verified (and refused) again.
    pub fn forget_verified(&self) {
        lock(&self.verified).clear();
    }
}
