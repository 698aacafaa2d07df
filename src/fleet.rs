//! What several Tessera replicas share beyond the database: revocations (and, through Redis,
//! hearing about them at once). Without Redis a replica polls the revocation log, which serves a
//! single node fully and several nodes within one poll interval.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::oauth::tokens::AccessClaims;
use crate::revocation::{Revocation, RevocationList, SETTLE, advance};
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
    /// In-process counters, used when there is no Redis (or when it fails).
    counters: LocalCounters,
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
            counters: LocalCounters::new(KEYS_PER_SHARD),
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
            counters: LocalCounters::new(KEYS_PER_SHARD),
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

    /// When `client_id` last changed (settings, secret, disabled), if a cached copy of it may
    /// be older.
    pub fn client_changed_at(&self, client_id: &str) -> Option<Timestamp> {
        match self.list.read() {
            Ok(l) => l.client_changed_at(client_id),
            Err(poisoned) => poisoned.into_inner().client_changed_at(client_id),
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
        let behind = self.with_list(|l| newest > l.replayed.after || !l.replayed.gaps.is_empty());
        if behind {
            self.sync(store, now).await?;
        }
        Ok(())
    }

    /// Replays the log since the last entry seen, and the entries passed over while they were
    /// not yet visible (`crate::revocation::LogCursor`: on PostgreSQL an entry may commit after
    /// a later-numbered one, and reading only `seq > last` would miss it for good), then forgets
    /// expired entries.
    pub async fn sync<S: RevocationStore>(&self, store: &S, now: Timestamp) -> StoreResult<usize> {
        let mut applied = 0;
        loop {
            let (after, watched) = self.with_list(|l| {
                let watched: Vec<(i64, Timestamp)> = l
                    .replayed
                    .gaps
                    .iter()
                    .copied()
                    .filter(|(_, noticed)| noticed + SETTLE >= now)
                    .collect();
                (l.replayed.after, watched)
            });
            let also: Vec<i64> = watched.iter().map(|(seq, _)| *seq).collect();
            let page = store
                .revocations_after_or_in(after, &also, now, 1000)
                .await?;
            let (next, delivered) = advance(&after, watched, &page, now);
            self.with_list(|l| {
                for (_, r) in &delivered {
                    l.apply(r);
                }
                // Syncs may overlap (the poll task, a request catching up): each result is
                // consistent with where it started, so the furthest one is kept.
                if next.after >= l.replayed.after {
                    l.replayed = next;
                }
            });
            if page.is_empty() {
                break;
            }
            applied += page.len();
        }
        self.with_list(|l| l.purge(now));
        Ok(applied)
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
        self.counters.hit(key, window, now)
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
        self.counters.get(key, now)
    }

    /// Reads several counters in one round trip (0 for a missing one), in the order asked.
    pub async fn get_many(&self, keys: &[String], now: Timestamp) -> Vec<i64> {
        if let Some(bus) = &self.bus {
            let mut conn = bus.conn.clone();
            let full = self.shared_keys(keys);
            match redis::cmd("MGET")
                .arg(&full)
                .query_async::<Vec<Option<i64>>>(&mut conn)
                .await
            {
                Ok(v) if v.len() == keys.len() => {
                    return v.into_iter().map(|v| v.unwrap_or(0)).collect();
                }
                Ok(_) => {
                    tracing::warn!("redis answered MGET with the wrong count; reading locally")
                }
                Err(e) => tracing::warn!(error = %e, "redis read failed; reading locally"),
            }
        }
        keys.iter().map(|k| self.counters.get(k, now)).collect()
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
        self.counters.put(key, value, ttl, now);
    }

    /// `keys` as Redis knows them: under this deployment's prefix.
    fn shared_keys(&self, keys: &[String]) -> Vec<String> {
        keys.iter()
            .map(|k| format!("{}:{k}", self.prefix))
            .collect()
    }

    /// Forgets keys.
    pub async fn clear(&self, keys: &[String]) {
        if let Some(bus) = &self.bus {
            let mut conn = bus.conn.clone();
            let full = self.shared_keys(keys);
            if let Err(e) = conn.del::<_, i64>(full).await {
                tracing::warn!(error = %e, "redis delete failed");
            }
        }
        for k in keys {
            self.counters.remove(k);
        }
    }

    /// Keys held by the in-process counters.
    pub fn local_keys(&self) -> usize {
        self.counters.len()
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

/// Counters kept in this process when there is no Redis: sharded so hits on different keys rarely
/// wait for each other, and bounded without ever scanning a whole map. Each shard keeps a min-heap
/// of expiry times beside its map; every write first removes up to [`SWEEP_PER_WRITE`] expired
/// entries from the top of the heap (amortised expiry), and a shard at capacity drops the least
/// valuable of a few entries (see `Shard::evict_one`), so fresh keys cannot flush locks.
struct LocalCounters {
    shards: Vec<Mutex<Shard>>,
    hasher: std::hash::RandomState,
    per_shard: usize,
}

const SHARDS: usize = 16;
/// Keys kept per shard by default (about 130,000 in all).
const KEYS_PER_SHARD: usize = 8_192;
/// Expired entries removed at most per write.
const SWEEP_PER_WRITE: usize = 8;
/// Entries looked at to choose one to drop when a shard is full.
const EVICTION_SAMPLE: usize = 16;

#[derive(Default)]
struct Shard {
    /// key -> (value, expires_at)
    map: HashMap<String, (i64, Timestamp)>,
    /// (expires_at, key) for every expiry written; an entry whose key has since been rewritten
    /// or removed is stale and skipped when it reaches the top.
    expiries: BinaryHeap<Reverse<(Timestamp, String)>>,
}

impl Shard {
    /// Removes up to `budget` expired entries. Stale heap entries (keys rewritten, removed or
    /// evicted since) do not use the budget, but at most `4 * budget` heap entries are popped.
    fn sweep(&mut self, now: Timestamp, budget: usize) {
        let mut removed = 0;
        for _ in 0..4 * budget {
            if removed == budget {
                return;
            }
            match self.expiries.peek() {
                Some(Reverse((exp, _))) if *exp <= now => {}
                _ => return,
            }
            if let Some(Reverse((exp, key))) = self.expiries.pop()
                && self.remove_if_expiring_at(&key, exp, now)
            {
                removed += 1;
            }
        }
    }

    fn remove_if_expiring_at(&mut self, key: &str, exp: Timestamp, now: Timestamp) -> bool {
        let due = self
            .map
            .get(key)
            .is_some_and(|(_, e)| *e == exp || *e <= now);
        if due {
            self.map.remove(key);
        }
        due
    }

    /// Makes room for one more key: drops the least valuable of a few live entries, chosen by
    /// the map's hash order (which nobody outside can predict): an expired one if any, else the
    /// one with the lowest value (a counter hit once before a lock or an established count),
    /// the latest to expire among equals. Dropping the entry that expires soonest instead let
    /// a flood of fresh keys evict exactly the short-lived locks and rate windows first, and
    /// then every older counter. Returns false if the shard is empty.
    fn evict_one(&mut self, now: Timestamp) -> bool {
        let least = self
            .map
            .iter()
            .take(EVICTION_SAMPLE)
            .min_by_key(|(_, (value, exp))| (*exp > now, *value, Reverse(*exp)))
            .map(|(key, _)| key.clone());
        match least {
            Some(key) => {
                self.map.remove(&key);
                true
            }
            None => false,
        }
    }

    /// Writes `key` with its expiry, keeping the shard within `capacity`.
    fn write(&mut self, key: &str, value: i64, exp: Timestamp, now: Timestamp, capacity: usize) {
        self.sweep(now, SWEEP_PER_WRITE);
        if !self.map.contains_key(key) {
            while self.map.len() >= capacity.max(1) && self.evict_one(now) {}
        }
        self.map.insert(key.to_string(), (value, exp));
        self.expiries.push(Reverse((exp, key.to_string())));
        // Stale heap entries (keys rewritten with a later expiry, or removed) are bounded too.
        if self.expiries.len() > 4 * capacity.max(1) {
            self.expiries = self
                .map
                .iter()
                .map(|(k, (_, e))| Reverse((*e, k.clone())))
                .collect();
        }
    }
}

impl LocalCounters {
    fn new(per_shard: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: std::hash::RandomState::new(),
            per_shard,
        }
    }

    fn shard<T>(&self, key: &str, f: impl FnOnce(&mut Shard) -> T) -> T {
        use std::hash::BuildHasher;
        let i = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        match self.shards[i].lock() {
            Ok(mut s) => f(&mut s),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    fn hit(&self, key: &str, window: i64, now: Timestamp) -> (i64, i64) {
        let capacity = self.per_shard;
        self.shard(key, |s| match s.map.get_mut(key) {
            Some((count, exp)) if *exp > now => {
                *count += 1;
                (*count, *exp - now)
            }
            _ => {
                s.write(key, 1, now + window, now, capacity);
                (1, window)
            }
        })
    }

    fn get(&self, key: &str, now: Timestamp) -> i64 {
        self.shard(key, |s| {
            s.map
                .get(key)
                .filter(|(_, exp)| *exp > now)
                .map(|(v, _)| *v)
                .unwrap_or(0)
        })
    }

    fn put(&self, key: &str, value: i64, ttl: i64, now: Timestamp) {
        let capacity = self.per_shard;
        self.shard(key, |s| {
            s.write(key, value, now + ttl.max(1), now, capacity)
        });
    }

    fn remove(&self, key: &str) {
        self.shard(key, |s| {
            s.map.remove(key);
        });
    }

    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| match s.lock() {
                Ok(s) => s.map.len(),
                Err(poisoned) => poisoned.into_inner().map.len(),
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Another replica's view: a fleet of its own that learns only from the database log.
    #[tokio::test]
    async fn an_entry_that_commits_after_a_later_numbered_one_still_reaches_another_replica() {
        use crate::oauth::tokens::AccessClaims;
        let k = crate::testkit::Kit::new().await;
        let other = Fleet::local();
        let insert = |seq: i64, sid: &'static str| {
            sqlx::query(
                "INSERT INTO revocation_events (seq, kind, subject, at, expires_at) \
                 VALUES ($1, 'session', $2, $3, $4)",
            )
            .bind(seq)
            .bind(sid)
            .bind(k.now())
            .bind(k.now() + 600)
            .execute(&k.p.store.pool)
        };
        let token = |sid: &str| AccessClaims {
            iss: "i".into(),
            sub: "u".into(),
            aud: "a".into(),
            exp: k.now() + 300,
            iat: k.now() - 10,
            jti: format!("j-{sid}"),
            client_id: "c".into(),
            scope: "openid".into(),
            sid: Some(sid.into()),
            auth_time: None,
            roles: None,
            acr: None,
            amr: None,
        };
        // 2 is visible before 1, as two writers can leave it on PostgreSQL.
        insert(2, "second").await.unwrap();
        other.sync(&k.p.store, k.now()).await.unwrap();
        assert!(other.is_revoked(&token("second")));
        insert(1, "first").await.unwrap();
        // Nothing newer than 2 exists, yet catching up reads 1, as the next poll does.
        k.advance(1);
        other
            .catch_up(&k.p.store, k.now(), k.now() * 1000)
            .await
            .unwrap();
        assert!(
            other.is_revoked(&token("first")),
            "a late commit is not lost"
        );
        // Once seen (or settled), a number is no longer read again.
        k.advance(SETTLE + 1);
        other.sync(&k.p.store, k.now()).await.unwrap();
        assert!(other.with_list(|l| l.replayed.gaps.is_empty()));
    }

    #[tokio::test]
    async fn several_counters_read_in_one_go_come_back_in_order_and_missing_ones_as_zero() {
        let mut fleets = vec![Fleet::local()];
        if let Ok(url) = std::env::var("TESSERA_TEST_REDIS_URL") {
            let prefix = format!("t-{}", crate::crypto::random_id());
            fleets.push(Fleet::connect(Some(&url), &prefix).await.unwrap());
        }
        for fleet in fleets {
            fleet.put("a", 7, 60, 100).await;
            fleet.hit("c", 60, 100).await;
            fleet.hit("c", 60, 100).await;
            let keys = ["a", "b", "c"].map(String::from);
            assert_eq!(fleet.get_many(&keys, 100).await, [7, 0, 2]);
            assert_eq!(fleet.get_many(&keys[1..], 100).await, [0, 2]);
        }
    }

    #[tokio::test]
    async fn the_in_process_counters_stay_bounded_under_many_distinct_keys_and_still_expire() {
        let fleet = Fleet::local();
        for i in 0..300_000 {
            fleet.hit(&format!("k{i}"), 900, 100).await;
        }
        assert!(
            fleet.local_keys() <= 16 * 8_192,
            "{} keys held",
            fleet.local_keys()
        );
        assert_eq!(fleet.get("k299999", 100).await, 1, "the newest are kept");

        assert_eq!(fleet.hit("x", 60, 100).await, (1, 60));
        assert_eq!(fleet.hit("x", 60, 130).await, (2, 30));
        assert_eq!(fleet.hit("x", 60, 160).await, (1, 60), "a new window");
        fleet.put("lock", 7, 30, 100).await;
        assert_eq!(fleet.get("lock", 129).await, 7);
        assert_eq!(fleet.get("lock", 130).await, 0);

        // Once their windows are over, old counters are swept as new ones are written.
        let later = 100 + 901;
        for i in 0..20_000 {
            fleet.hit(&format!("n{i}"), 60, later).await;
        }
        assert!(
            fleet.local_keys() <= 20_000,
            "{} keys held",
            fleet.local_keys()
        );
        assert_eq!(fleet.get("k299999", later).await, 0);
        assert_eq!(fleet.get("n19999", later).await, 1);
    }

    #[test]
    fn a_flood_of_fresh_keys_does_not_evict_a_live_lock_or_an_established_count() {
        // Small shards so the flood is short; the policy is the same at 8,192 per shard.
        let c = LocalCounters::new(64);
        let now = 1_000;
        // A victim's account: four failures counted for a day, then a one-minute lock.
        for _ in 0..4 {
            c.hit("fail:pw:acct:victim", 86_400, now);
        }
        c.put("lock:pw:acct:victim", now + 60, 60, now);
        // An attacker's fresh keys (random emails, each failed once), later and longer-lived:
        // the lock is the entry that expires soonest, then the victim's count.
        for i in 0..(16 * 64 * 4) {
            c.hit(&format!("fail:pw:acct:junk{i}"), 86_400, now + 1);
        }
        assert!(c.len() <= 16 * 64, "{} keys held", c.len());
        assert_eq!(c.get("lock:pw:acct:victim", now + 2), now + 60, "the lock");
        assert_eq!(
            c.get("fail:pw:acct:victim", now + 2),
            4,
            "the failure count"
        );
    }
}
