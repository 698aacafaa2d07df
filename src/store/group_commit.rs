//! Group commit for refresh-token rotations on SQLite.
//!
//! SQLite has one writer. Handing its connection from request to request costs a lock, a WAL
//! append and several thread wake-ups per rotation, and the connection sits idle while the next
//! request's worker thread is busy signing tokens. Instead, rotations queue here and one task
//! commits whatever has queued as a single transaction: under load a batch holds tens of
//! rotations, alone a batch holds one and costs what a direct write would.
//!
//! Every rotation in a batch is still its own compare-and-set (the successor is inserted only
//! while the predecessor is current, then the predecessor is marked), so two rotations of the
//! same token in one batch still have exactly one winner. If any statement fails, the whole
//! batch is rolled back and every caller gets the error: nothing is half-written, and the
//! clients still hold valid tokens to retry with.
//!
//! A batch travels as one multi-statement query, so it costs one round trip to SQLite's thread
//! whatever its size. sqlx's SQLite driver runs such queries and binds `$n` across statements;
//! the store contract suite (concurrent rotations, a failing batch) checks that it still does.

use std::collections::HashMap;

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, Executor, Row};
use tokio::sync::{mpsc, oneshot};

use super::sql::bind_refresh;
use super::{RefreshToken, StoreError, StoreResult};
use crate::clock::Timestamp;

/// Rotations waiting beyond this make callers wait for room (backpressure, not unbounded memory).
const QUEUE: usize = 4096;
/// The most rotations committed together (the largest statement); bounds the time a batch holds
/// the write lock.
const BATCH: usize = SIZES[SIZES.len() - 1];

struct Rotation {
    old_hash: Vec<u8>,
    successor: RefreshToken,
    successor_enc: Vec<u8>,
    now: Timestamp,
    done: oneshot::Sender<StoreResult<bool>>,
}

/// The sending side; cloned into every handle of the store.
#[derive(Clone, Debug)]
pub(crate) struct RotationQueue {
    tx: mpsc::Sender<Rotation>,
}

impl RotationQueue {
    /// Starts the committing task on the current runtime.
    pub(crate) fn start(writer: AnyPool) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(writer, rx));
        Self { tx }
    }

    /// Queues a rotation and waits for the batch holding it to commit. `Ok(false)`: another
    /// rotation of the same token won.
    pub(crate) async fn rotate(
        &self,
        old_hash: &[u8],
        successor: &RefreshToken,
        successor_enc: &[u8],
        now: Timestamp,
    ) -> StoreResult<bool> {
        let (done, result) = oneshot::channel();
        let job = Rotation {
            old_hash: old_hash.to_vec(),
            successor: successor.clone(),
            successor_enc: successor_enc.to_vec(),
            now,
            done,
        };
        self.tx.send(job).await.map_err(|_| stopped())?;
        result.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the SQLite write queue has stopped".into())
}

async fn run(writer: AnyPool, mut rx: mpsc::Receiver<Rotation>) {
    let statements: Vec<String> = SIZES.iter().map(|&n| batch_statement(n)).collect();
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let result = match writer.acquire().await {
            Ok(mut conn) => commit(&mut conn, &statements, &batch).await,
            Err(e) => Err(e.into()),
        };
        match result {
            Ok(won) => {
                for (job, won) in batch.drain(..).zip(won) {
                    let _ = job.done.send(Ok(won));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, rotations = batch.len(), "refresh rotation batch failed; rolled back");
                let message = e.to_string();
                for job in batch.drain(..) {
                    let _ = job.done.send(Err(StoreError::Unavailable(message.clone())));
                }
            }
        }
    }
}

/// Batches are sent as statements for 1, 2, 4 .. 64 rotations (padded by repeating the last
/// one, which then can only lose), so the connection keeps seven prepared statements.
const SIZES: [usize; 7] = [1, 2, 4, 8, 16, 32, 64];
/// Parameters per rotation: the successor's 16 columns, then now, the sealed successor and the
/// predecessor's hash.
const PARAMS: usize = 19;

/// The whole batch as one transaction in one round trip to the connection's thread: each
/// rotation's compare-and-set, then the predecessors' successor hashes, which tell who won.
fn batch_statement(n: usize) -> String {
    let mut sql = String::from("BEGIN IMMEDIATE;\n");
    let mut olds = Vec::with_capacity(n);
    for k in 0..n {
        let o = k * PARAMS;
        let p = |i: usize| format!("${}", o + i);
        let columns: Vec<String> = (1..=16).map(p).collect();
        sql.push_str(&format!(
            "INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, session_id, scope, audience, \
             auth_time, amr, created_at, idle_expires_at, expires_at, rotated_at, successor_hash, successor_enc, revoked_at) \
             SELECT {} WHERE EXISTS (SELECT 1 FROM refresh_tokens WHERE token_hash = {old} \
             AND rotated_at IS NULL AND revoked_at IS NULL);\n\
             UPDATE refresh_tokens SET rotated_at = {now}, successor_hash = {succ}, successor_enc = {enc} \
             WHERE token_hash = {old} AND rotated_at IS NULL AND revoked_at IS NULL;\n",
            columns.join(", "),
            old = p(19),
            now = p(17),
            succ = p(1),
            enc = p(18),
        ));
        olds.push(p(19));
    }
    sql.push_str(&format!(
        "SELECT token_hash, successor_hash FROM refresh_tokens WHERE token_hash IN ({});\nCOMMIT;",
        olds.join(", ")
    ));
    sql
}

/// Commits `batch` (at most the largest size) as one transaction; which rotations won, in order.
async fn commit(
    conn: &mut PoolConnection<Any>,
    statements: &[String],
    batch: &[Rotation],
) -> StoreResult<Vec<bool>> {
    let size = SIZES
        .iter()
        .position(|&n| n >= batch.len())
        .unwrap_or(SIZES.len() - 1);
    let mut query = sqlx::query(sqlx::AssertSqlSafe(statements[size].as_str()));
    for k in 0..SIZES[size] {
        let Some(job) = batch.get(k).or_else(|| batch.last()) else {
            return Ok(Vec::new());
        };
        query = bind_refresh(query, &job.successor)
            .bind(job.now)
            .bind(job.successor_enc.clone())
            .bind(job.old_hash.clone());
    }
    match query.fetch_all(&mut **conn).await {
        Ok(rows) => {
            let mut successors = HashMap::with_capacity(rows.len());
            for row in &rows {
                let old: Vec<u8> = row.try_get("token_hash")?;
                let successor: Option<Vec<u8>> = row.try_get("successor_hash")?;
                successors.insert(old, successor);
            }
            // A rotation won if its predecessor now names its successor.
            Ok(batch
                .iter()
                .map(|job| {
                    successors.get(&job.old_hash).and_then(|s| s.as_deref())
                        == Some(job.successor.token_hash.as_slice())
                })
                .collect())
        }
        Err(e) => {
            // Nothing of the batch may stay half-applied; an error when SQLite already rolled
            // back is expected and ignored.
            let _ = conn.execute("ROLLBACK").await;
            Err(e.into())
        }
    }
}
