//! What several Tessera replicas share beyond the database: revocations (and, through Redis,
//! hearing about them at once). Without Redis a replica polls the revocation log, which serves a
//! single node fully and several nodes within one poll interval.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::oauth::tokens::AccessClaims;
use crate::revocation::{Revocation, RevocationList};
use crate::store::{RevocationStore, StoreResult};

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

#[derive(Serialize, Deserialize)]
struct Message {
    seq: i64,
    revocation: Revocation,
}

struct Bus {
    client: redis::Client,
    conn: redis::aio::ConnectionManager,
    channel: String,
}

pub struct Fleet {
    list: RwLock<RevocationList>,
    bus: Option<Bus>,
    /// In-process counters, used when there is no Redis: key -> (value, expires_at).
    counters: Mutex<HashMap<String, (i64, Timestamp)>>,
    prefix: String,
    /// When this replica last asked the database for new revocations (ms), without Redis.
    last_catch_up_ms: std::sync::atomic::AtomicI64,
    /// Recently read shared values: key -> (value, read at ms).
    recent: Mutex<HashMap<String, (i64, i64)>>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("redis", &self.bus.is_some())
            .finish()
    }
}

impl Fleet {
    /// A fleet of one (no Redis).
    pub fn local() -> Self {
        Self {
            list: RwLock::new(RevocationList::default()),
            bus: None,
            counters: Mutex::new(HashMap::new()),
            prefix: "tessera".into(),
            last_catch_up_ms: Default::default(),
            recent: Mutex::new(HashMap::new()),
        }
    }

    pub async fn connect(redis_url: Option<&str>, prefix: &str) -> Result<Self, FleetError> {
        let Some(url) = redis_url else {
            return Ok(Self::local());
        };
        let client = redis::Client::open(url)?;
        let conn = redis::aio::ConnectionManager::new(client.clone()).await?;
        Ok(Self {
            list: RwLock::new(RevocationList::default()),
            bus: Some(Bus {
                client,
                conn,
                channel: format!("{prefix}:revocations"),
            }),
            counters: Mutex::new(HashMap::new()),
            prefix: prefix.to_string(),
            last_catch_up_ms: Default::default(),
            recent: Mutex::new(HashMap::new()),
        })
    }

    pub fn revocations_in_memory(&self) -> usize {
        match self.list.read() {
            Ok(l) => l.len(),
            Err(poisoned) => poisoned.into_inner().len(),
        }
    }

    pub fn has_redis(&self) -> bool {
        self.bus.is_some()
    }

    fn with_list<T>(&self, f: impl FnOnce(&mut RevocationList) -> T) -> T {
        match self.list.write() {
            Ok(mut l) => f(&mut l),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    pub fn is_revoked(&self, claims: &AccessClaims) -> bool {
        match self.list.read() {
            Ok(l) => l.is_revoked(claims),
            Err(poisoned) => poisoned.into_inner().is_revoked(claims),
        }
    }

    /// Records a revocation: database first (the source of truth), then this replica's memory,
    /// then everyone else through Redis.
    pub async fn revoke<S: RevocationStore>(&self, store: &S, r: Revocation) -> StoreResult<()> {
        let seq = store.append_revocation(&r).await?;
        self.with_list(|l| l.apply(&r));
        if let Some(bus) = &self.bus {
            let message =
                serde_json::to_string(&Message { seq, revocation: r }).unwrap_or_default();
            let mut conn = bus.conn.clone();
            if let Err(e) = conn.publish::<_, _, i64>(&bus.channel, message).await {
                // Other replicas still see it at their next poll of the log.
                tracing::warn!(error = %e, "could not publish a revocation to redis");
            }
        }
        Ok(())
    }

    /// Without Redis, nothing tells this replica about revocations made elsewhere (another
    /// replica, the CLI) until its next poll. Before trusting its memory it therefore checks the
    /// newest log entry, at most once per `CATCH_UP_EVERY_MS` (one primary-key lookup), and replays
    /// when it is behind. With Redis, pub/sub has already delivered.
    pub async fn catch_up<S: RevocationStore>(
        &self,
        store: &S,
        now: Timestamp,
        now_ms: i64,
    ) -> StoreResult<()> {
        use std::sync::atomic::Ordering;
        const CATCH_UP_EVERY_MS: i64 = 5;
        if self.bus.is_some() {
            return Ok(());
        }
        let last = self.last_catch_up_ms.load(Ordering::Relaxed);
        if now_ms - last < CATCH_UP_EVERY_MS
            || self
                .last_catch_up_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return Ok(());
        }
        let newest = store.latest_revocation().await?;
        if newest > self.with_list(|l| l.last_seq) {
            self.sync(store, now).await?;
        }
        Ok(())
    }

    /// Replays the log since the last entry seen and forgets expired entries.
    pub async fn sync<S: RevocationStore>(&self, store: &S, now: Timestamp) -> StoreResult<usize> {
        let mut applied = 0;
        loop {
            let after = self.with_list(|l| l.last_seq);
            let page = store.revocations_after(after, now, 1000).await?;
            if page.is_empty() {
                break;
            }
            applied += page.len();
            self.with_list(|l| {
                for (seq, r) in &page {
                    l.apply(r);
                    l.last_seq = l.last_seq.max(*seq);
                }
            });
        }
        self.with_list(|l| l.purge(now));
        Ok(applied)
    }

    fn local_counters<T>(&self, f: impl FnOnce(&mut HashMap<String, (i64, Timestamp)>) -> T) -> T {
        match self.counters.lock() {
            Ok(mut m) => f(&mut m),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Counts one event in a fixed window of `window` seconds that starts at the first event;
    /// returns the count so far and the seconds left in the window. Shared through Redis.
    pub async fn hit(&self, key: &str, window: i64, now: Timestamp) -> (i64, i64) {
        if let Some(bus) = &self.bus {
            let key = format!("{}:{key}", self.prefix);
            let mut conn = bus.conn.clone();
            let result: Result<(i64, i64), _> = redis::pipe()
                .atomic()
                .cmd("SET")
                .arg(&key)
                .arg(0)
                .arg("EX")
                .arg(window)
                .arg("NX")
                .ignore()
                .incr(&key, 1)
                .ttl(&key)
                .query_async(&mut conn)
                .await;
            match result {
                Ok((count, ttl)) => return (count, ttl.max(1)),
                // Fail open on the shared store but keep counting here.
                Err(e) => tracing::warn!(error = %e, "redis counter failed; counting locally"),
            }
        }
        self.local_counters(|m| {
            if m.len() > 100_000 {
                m.retain(|_, (_, exp)| *exp > now);
            }
            let entry = m.entry(key.to_string()).or_insert((0, now + window));
            if entry.1 <= now {
                *entry = (0, now + window);
            }
            entry.0 += 1;
            (entry.0, entry.1 - now)
        })
    }

    /// Like [`Fleet::get`], but a value read from Redis less than a second ago is reused: for
    /// limits checked on every request (failed client authentications) a second of staleness is
    /// harmless and saves a Redis round trip per request.
    pub async fn get_recent(&self, key: &str, now: Timestamp, now_ms: i64) -> i64 {
        if self.bus.is_none() {
            return self.get(key, now).await;
        }
        let cached = match self.recent.lock() {
            Ok(m) => m
                .get(key)
                .filter(|(_, at)| now_ms - at < 1000)
                .map(|(v, _)| *v),
            Err(_) => None,
        };
        if let Some(v) = cached {
            return v;
        }
        let v = self.get(key, now).await;
        self.remember(key, v, now_ms);
        v
    }

    /// Records a freshly known value for [`Fleet::get_recent`].
    pub fn remember(&self, key: &str, value: i64, now_ms: i64) {
        if let Ok(mut m) = self.recent.lock() {
            if m.len() > 10_000 {
                m.clear();
            }
            m.insert(key.to_string(), (value, now_ms));
        }
    }

    /// Reads a value set with [`Fleet::put`] (0 when absent or expired).
    pub async fn get(&self, key: &str, now: Timestamp) -> i64 {
        if let Some(bus) = &self.bus {
            let mut conn = bus.conn.clone();
            match conn
                .get::<_, Option<i64>>(format!("{}:{key}", self.prefix))
                .await
            {
                Ok(v) => return v.unwrap_or(0),
                Err(e) => tracing::warn!(error = %e, "redis read failed; reading locally"),
            }
        }
        self.local_counters(|m| {
            m.get(key)
                .filter(|(_, exp)| *exp > now)
                .map(|(v, _)| *v)
                .unwrap_or(0)
        })
    }

    /// Stores a value for `ttl` seconds.
    pub async fn put(&self, key: &str, value: i64, ttl: i64, now: Timestamp) {
        if let Some(bus) = &self.bus {
            let mut conn = bus.conn.clone();
            let r: Result<(), _> = conn
                .set_ex(format!("{}:{key}", self.prefix), value, ttl.max(1) as u64)
                .await;
            match r {
                Ok(()) => return,
                Err(e) => tracing::warn!(error = %e, "redis write failed; storing locally"),
            }
        }
        self.local_counters(|m| {
            m.insert(key.to_string(), (value, now + ttl.max(1)));
        });
    }

    /// Forgets keys.
    pub async fn clear(&self, keys: &[String]) {
        if let Some(bus) = &self.bus {
            let mut conn = bus.conn.clone();
            let full: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{k}", self.prefix))
                .collect();
            if let Err(e) = conn.del::<_, i64>(full).await {
                tracing::warn!(error = %e, "redis delete failed");
            }
        }
        self.local_counters(|m| {
            for k in keys {
                m.remove(k);
            }
        });
    }

    pub async fn ping(&self) -> Result<(), FleetError> {
        if let Some(bus) = &self.bus {
            let mut conn = bus.conn.clone();
            let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        }
        Ok(())
    }

    /// Applies revocations published by other replicas as they arrive; reconnects on failure.
    pub async fn listen(self: Arc<Self>) {
        let Some(bus) = &self.bus else { return };
        loop {
            match bus.client.get_async_pubsub().await {
                Ok(mut pubsub) => {
                    if let Err(e) = pubsub.subscribe(&bus.channel).await {
                        tracing::warn!(error = %e, "redis subscribe failed");
                    } else {
                        let mut stream = pubsub.on_message();
                        while let Some(msg) = stream.next().await {
                            let Ok(payload) = msg.get_payload::<String>() else {
                                continue;
                            };
                            if let Ok(m) = serde_json::from_str::<Message>(&payload) {
                                self.with_list(|l| l.apply(&m.revocation));
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "redis pub/sub connection failed"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
