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
//! batch is rolled back (nothing is half-written) and its rotations are retried one at a time,
//! so a caller sees an error only when its own rotation fails, and still holds a valid token.
//!
//! Two kinds of rotation queue here, each with its own task: the general rotation (`rotate`,
//! a successor the caller built after reading the token) and the rotation of a current token
//! (`rotate_current`), which checks client, lifetimes, user and session itself and builds the
//! successor from the row, so the common refresh needs no read before it (the same statement as
//! PostgreSQL's, see `group_commit_pg`).
//!
//! A batch travels as one multi-statement query, so it costs one round trip to SQLite's thread
//! whatever its size. sqlx's SQLite driver runs such queries and binds `$n` across statements;
//! the store contract suite (concurrent rotations, a failing batch) checks that it still does.

use std::collections::HashMap;

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Executor, Row};
use tokio::sync::{mpsc, oneshot};

use super::sql::row::Record;
use super::sql::{AnyQuery, refresh_grant_from};
use super::{CurrentRotation, RefreshGrant, RefreshToken, StoreError, StoreResult};
use crate::clock::Timestamp;

/// Rotations waiting beyond this make callers wait for room (backpressure, not unbounded memory).
const QUEUE: usize = 4096;
/// The most rotations committed together (the largest statement); bounds the time a batch holds
/// the write lock.
const BATCH: usize = SIZES[SIZES.len() - 1];

/// One kind of batched write: its statement for `n` jobs, its parameters, and what each job
/// gets back from the rows the statement returns.
trait Job: Send + Sync + Sized + 'static {
    type Output: Send + 'static;
    fn statement(n: usize) -> String;
    fn bind<'q>(&'q self, q: AnyQuery<'q>) -> AnyQuery<'q>;
    fn outcomes(batch: &[Queued<Self>], rows: &[AnyRow]) -> StoreResult<Vec<Self::Output>>;
}

/// A job waiting in a queue (here and in `group_commit_pg`), with where its outcome goes.
pub(super) struct Pending<J, O> {
    pub(super) job: J,
    pub(super) done: oneshot::Sender<StoreResult<O>>,
}

type Queued<J> = Pending<J, <J as Job>::Output>;

/// A general rotation: `successor` replaces `old_hash` if that is still current.
struct Rotation {
    old_hash: Vec<u8>,
    successor: RefreshToken,
    successor_enc: Vec<u8>,
    now: Timestamp,
}

/// A rotation of a current, live token (see `RefreshTokenStore::rotate_if_current`), owned so it
/// can wait in a queue (here and in `group_commit_pg`).
pub(super) struct Current {
    pub(super) old_hash: Vec<u8>,
    pub(super) client_id: String,
    pub(super) successor_hash: Vec<u8>,
    pub(super) successor_enc: Vec<u8>,
    pub(super) now: Timestamp,
    pub(super) idle_ttl: i64,
}

impl From<&CurrentRotation<'_>> for Current {
    fn from(r: &CurrentRotation<'_>) -> Self {
        Self {
            old_hash: r.old_hash.to_vec(),
            client_id: r.client_id.to_string(),
            successor_hash: r.successor_hash.to_vec(),
            successor_enc: r.successor_enc.to_vec(),
            now: r.now,
            idle_ttl: r.idle_ttl,
        }
    }
}

/// For each rotation, its grant if it won: its predecessor (among `rows`, read with
/// `refresh_grant_from`'s columns) now names its successor.
pub(super) fn won<'a>(
    rows: &[AnyRow],
    rotations: impl Iterator<Item = &'a Current>,
) -> StoreResult<Vec<Option<RefreshGrant>>> {
    let grants = rows
        .iter()
        .map(refresh_grant_from)
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(rotations
        .map(|r| {
            grants
                .iter()
                .find(|g| {
                    g.token.token_hash == r.old_hash
                        && g.token.successor_hash.as_deref() == Some(r.successor_hash.as_slice())
                })
                .cloned()
        })
        .collect())
}

/// The sending sides; cloned into every handle of the store.
#[derive(Clone, Debug)]
pub(crate) struct RotationQueue {
    general: mpsc::Sender<Queued<Rotation>>,
    current: mpsc::Sender<Queued<Current>>,
}

impl<J, O> std::fmt::Debug for Pending<J, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Queued")
    }
}

impl RotationQueue {
    /// Starts the committing tasks on the current runtime.
    pub(crate) fn start(writer: AnyPool) -> Self {
        Self {
            general: spawn(writer.clone()),
            current: spawn(writer),
        }
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
        let job = Rotation {
            old_hash: old_hash.to_vec(),
            successor: successor.clone(),
            successor_enc: successor_enc.to_vec(),
            now,
        };
        submit(&self.general, job).await
    }

    /// Queues the rotation of a current token; its grant if it rotated, `None` when the token
    /// was not current and live (or another rotation of it won).
    pub(crate) async fn rotate_current(
        &self,
        r: &CurrentRotation<'_>,
    ) -> StoreResult<Option<RefreshGrant>> {
        submit(&self.current, Current::from(r)).await
    }
}

fn spawn<J: Job>(writer: AnyPool) -> mpsc::Sender<Queued<J>> {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(run(writer, rx));
    tx
}

/// Queues `job` and waits for its outcome.
pub(super) async fn submit<J, O>(queue: &mpsc::Sender<Pending<J, O>>, job: J) -> StoreResult<O> {
    let stopped = || StoreError::Unavailable("the refresh rotation queue has stopped".into());
    let (done, result) = oneshot::channel();
    queue
        .send(Pending { job, done })
        .await
        .map_err(|_| stopped())?;
    result.await.map_err(|_| stopped())?
}

async fn run<J: Job>(writer: AnyPool, mut rx: mpsc::Receiver<Queued<J>>) {
    let statements: Vec<String> = SIZES.iter().map(|&n| J::statement(n)).collect();
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        match commit(&writer, &statements, &batch).await {
            Ok(outcomes) => {
                for (queued, outcome) in batch.drain(..).zip(outcomes) {
                    let _ = queued.done.send(Ok(outcome));
                }
            }
            Err(e) => {
                if batch.len() > 1 {
                    tracing::warn!(error = %e, rotations = batch.len(), "a batch of refresh rotations failed and was rolled back; retrying them one by one");
                } else {
                    tracing::error!(error = %e, "refresh rotation failed; rolled back");
                }
                for queued in batch.drain(..) {
                    let one = std::slice::from_ref(&queued);
                    let result = match commit(&writer, &statements, one).await {
                        Ok(outcomes) => outcomes.into_iter().next().ok_or_else(|| {
                            StoreError::Unavailable("a rotation had no outcome".into())
                        }),
                        Err(e) => Err(e),
                    };
                    let _ = queued.done.send(result);
                }
            }
        }
    }
}

/// Batches are sent as statements for 1, 2, 4 .. 64 rotations (padded by repeating the last
/// one, which then can only lose), so the connection keeps seven prepared statements.
const SIZES: [usize; 7] = [1, 2, 4, 8, 16, 32, 64];
impl Job for Rotation {
    type Output = bool;

    /// Each rotation's compare-and-set (the successor is inserted only while the predecessor is
    /// current, then the predecessor is marked), then the predecessors' successor hashes, which
    /// tell who won. Parameters per rotation: the successor's 16 columns, then now, the sealed
    /// successor and the predecessor's hash.
    fn statement(n: usize) -> String {
        const PARAMS: usize = 19;
        let mut sql = String::from("BEGIN IMMEDIATE;\n");
        let mut olds = Vec::with_capacity(n);
        for k in 0..n {
            let p = |i: usize| format!("${}", k * PARAMS + i);
            let columns: Vec<String> = (1..=16).map(p).collect();
            sql.push_str(&format!(
                concat!(
                    "INSERT INTO refresh_tokens (",
                    refresh_columns!(),
                    ") SELECT {} WHERE EXISTS (SELECT 1 FROM refresh_tokens WHERE token_hash = {old} \
                     AND rotated_at IS NULL AND revoked_at IS NULL);\n\
                     UPDATE refresh_tokens SET rotated_at = {now}, successor_hash = {succ}, successor_enc = {enc} \
                     WHERE token_hash = {old} AND rotated_at IS NULL AND revoked_at IS NULL;\n"
                ),
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

    fn bind<'q>(&'q self, q: AnyQuery<'q>) -> AnyQuery<'q> {
        self.successor
            .bind_columns(q)
            .bind(self.now)
            .bind(self.successor_enc.clone())
            .bind(self.old_hash.clone())
    }

    fn outcomes(batch: &[Queued<Self>], rows: &[AnyRow]) -> StoreResult<Vec<bool>> {
        let mut successors = HashMap::with_capacity(rows.len());
        for row in rows {
            let old: Vec<u8> = row.try_get("token_hash")?;
            let successor: Option<Vec<u8>> = row.try_get("successor_hash")?;
            successors.insert(old, successor);
        }
        // A rotation won if its predecessor now names its successor.
        Ok(batch
            .iter()
            .map(|q| {
                successors.get(&q.job.old_hash).and_then(|s| s.as_deref())
                    == Some(q.job.successor.token_hash.as_slice())
            })
            .collect())
    }
}

impl Job for Current {
    type Output = Option<RefreshGrant>;

    /// Each rotation marks its predecessor if it is current and live (client, lifetimes, user
    /// enabled, session active) and, only if that changed a row, inserts the successor built
    /// from it (idle limit `min(now + idle lifetime, the family's expiry)`, as
    /// `Provider::new_refresh_token`); then the predecessors with user and session, whose
    /// successor hashes tell who won. Parameters per rotation: the predecessor's hash, the
    /// client, the successor's hash and sealed value, now, the idle lifetime.
    fn statement(n: usize) -> String {
        const PARAMS: usize = 6;
        let mut sql = String::from("BEGIN IMMEDIATE;\n");
        let mut olds = Vec::with_capacity(n);
        for k in 0..n {
            let p = |i: usize| format!("${}", k * PARAMS + i);
            let (old, client, succ, enc, now, ttl) = (p(1), p(2), p(3), p(4), p(5), p(6));
            sql.push_str(&format!(
                "UPDATE refresh_tokens SET rotated_at = {now}, successor_hash = {succ}, successor_enc = {enc} \
                 WHERE token_hash = {old} AND client_id = {client} \
                 AND rotated_at IS NULL AND revoked_at IS NULL \
                 AND expires_at > {now} AND idle_expires_at > {now} \
                 AND (SELECT u.disabled = 0 FROM users u WHERE u.id = refresh_tokens.user_id) \
                 AND (session_id IS NULL OR \
                   (SELECT s.revoked_at IS NULL FROM sessions s WHERE s.id = refresh_tokens.session_id));\n\
                 INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, session_id, scope, \
                 audience, auth_time, amr, created_at, idle_expires_at, expires_at) \
                 SELECT successor_hash, family_id, client_id, user_id, session_id, scope, audience, \
                 auth_time, amr, rotated_at, MIN(rotated_at + {ttl}, expires_at), expires_at \
                 FROM refresh_tokens WHERE token_hash = {old} AND changes() = 1;\n",
            ));
            olds.push(old);
        }
        sql.push_str(&format!(
            concat!(
                refresh_grant_select!(),
                "WHERE r.token_hash IN ({});\nCOMMIT;"
            ),
            olds.join(", ")
        ));
        sql
    }

    fn bind<'q>(&'q self, q: AnyQuery<'q>) -> AnyQuery<'q> {
        q.bind(self.old_hash.clone())
            .bind(self.client_id.as_str())
            .bind(self.successor_hash.clone())
            .bind(self.successor_enc.clone())
            .bind(self.now)
            .bind(self.idle_ttl)
    }

    fn outcomes(batch: &[Queued<Self>], rows: &[AnyRow]) -> StoreResult<Vec<Self::Output>> {
        won(rows, batch.iter().map(|q| &q.job))
    }
}

/// Commits `batch` (at most the largest size) as one transaction; each job's outcome, in order.
async fn commit<J: Job>(
    writer: &AnyPool,
    statements: &[String],
    batch: &[Queued<J>],
) -> StoreResult<Vec<J::Output>> {
    let mut conn = writer.acquire().await?;
    let size = SIZES
        .iter()
        .position(|&n| n >= batch.len())
        .unwrap_or(SIZES.len() - 1);
    let mut query = sqlx::query(sqlx::AssertSqlSafe(statements[size].as_str()));
    for k in 0..SIZES[size] {
        let Some(queued) = batch.get(k).or_else(|| batch.last()) else {
            return Ok(Vec::new());
        };
        query = queued.job.bind(query);
    }
    match query.fetch_all(&mut *conn).await {
        Ok(rows) => J::outcomes(batch, &rows),
        Err(e) => {
            // Nothing of the batch may stay half-applied; an error when SQLite already rolled
            // back is expected and ignored.
            let _ = conn.execute("ROLLBACK").await;
            Err(e.into())
        }
    }
}
