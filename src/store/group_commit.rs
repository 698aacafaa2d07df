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

use sqlx::{AnyPool, Executor};
use tokio::sync::{mpsc, oneshot};

use super::sql::bind_refresh;
use super::{RefreshToken, StoreError, StoreResult};
use crate::clock::Timestamp;

/// Rotations waiting beyond this make callers wait for room (backpressure, not unbounded memory).
const QUEUE: usize = 4096;
/// The most rotations committed together; bounds the time a batch holds the write lock.
const BATCH: usize = 128;

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
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        match commit(&writer, &batch).await {
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

/// One transaction for the whole batch; which rotations won, in order.
async fn commit(writer: &AnyPool, batch: &[Rotation]) -> StoreResult<Vec<bool>> {
    let mut conn = writer.acquire().await?;
    conn.execute("BEGIN IMMEDIATE").await?;
    let mut won = Vec::with_capacity(batch.len());
    let mut failure = None;
    for job in batch {
        let result = bind_refresh(
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, session_id, scope, audience, \
                 auth_time, amr, created_at, idle_expires_at, expires_at, rotated_at, successor_hash, successor_enc, revoked_at) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16 \
                 WHERE EXISTS (SELECT 1 FROM refresh_tokens WHERE token_hash = $19 AND rotated_at IS NULL AND revoked_at IS NULL); \
                 UPDATE refresh_tokens SET rotated_at = $17, successor_hash = $1, successor_enc = $18 \
                 WHERE token_hash = $19 AND rotated_at IS NULL AND revoked_at IS NULL;",
            ),
            &job.successor,
        )
        .bind(job.now)
        .bind(job.successor_enc.clone())
        .bind(job.old_hash.clone())
        .execute(&mut *conn)
        .await;
        match result {
            // Both statements ran (the rotation won), or neither changed a row.
            Ok(done) => won.push(done.rows_affected() == 2),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let failure = match failure {
        None => match conn.execute("COMMIT").await {
            Ok(_) => return Ok(won),
            Err(e) => e,
        },
        Some(e) => e,
    };
    // Nothing of the batch may stay half-applied; an error when SQLite already rolled back is
    // expected and ignored.
    let _ = conn.execute("ROLLBACK").await;
    Err(failure.into())
}
