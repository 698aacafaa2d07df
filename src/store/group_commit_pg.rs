//! Group commit for the one-statement refresh rotation on PostgreSQL.
//!
//! A rotation of a current token is one statement (see
//! [`RefreshTokenStore::rotate_if_current`](super::RefreshTokenStore::rotate_if_current)), but
//! most of what PostgreSQL spends on it is per statement, not per row: starting the executor for
//! a CTE with its sub-plans, the commit and its WAL flush, two network round trips (the query and
//! the pool's check when the connection is returned). Rotations therefore queue here and one task
//! sends whatever has queued as a single statement over a JSON array, with up to
//! [`IN_FLIGHT`] such statements running at once on separate connections. Alone, a rotation is a
//! batch of one and costs what it did before.
//!
//! Each row is still its own compare-and-set: the UPDATE's row lock decides the winner and a
//! concurrent statement re-checks its WHERE clause after the winner commits. Two rotations of the
//! same token in one batch join the same row, which PostgreSQL updates once; the one whose
//! successor the row now names has won, the other gets `None` and takes the general path like any
//! loser. Two batches could deadlock only if each held a token the other wants; PostgreSQL then
//! aborts one of them, and a batch that fails for any reason is retried one rotation at a time,
//! so its callers see an error only when a rotation fails on its own.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sqlx::AnyPool;
use tokio::sync::{Semaphore, mpsc};

use super::group_commit::{Current, Pending, submit, won};
use super::{CurrentRotation, RefreshGrant, StoreResult};

/// Rotations waiting beyond this make callers wait for room.
const QUEUE: usize = 4096;
/// The most rotations in one statement.
const BATCH: usize = 64;
/// Batches running at once, each on its own connection.
const IN_FLIGHT: usize = 3;

type Rotation = Pending<Current, Option<RefreshGrant>>;

#[derive(Clone, Debug)]
pub(crate) struct PgRotationQueue {
    tx: mpsc::Sender<Rotation>,
}

impl PgRotationQueue {
    /// Starts the batching task on the current runtime.
    pub(crate) fn start(pool: AnyPool) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, rx));
        Self { tx }
    }

    /// Queues a rotation and waits for the statement holding it. `None`: the token was not
    /// current and live (or another rotation of it won); the caller's general path decides.
    pub(crate) async fn rotate(
        &self,
        r: &CurrentRotation<'_>,
    ) -> StoreResult<Option<RefreshGrant>> {
        submit(&self.tx, Current::from(r)).await
    }
}

async fn run(pool: AnyPool, mut rx: mpsc::Receiver<Rotation>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        // Waiting for a slot first lets rotations pile up while every slot is busy: the busier
        // the database, the larger the next batch.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = Vec::with_capacity(BATCH);
        if rx.recv_many(&mut batch, BATCH).await == 0 {
            return;
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            execute(&pool, batch).await;
            drop(slot);
        });
    }
}

async fn execute(pool: &AnyPool, batch: Vec<Rotation>) {
    if batch.len() > 1 {
        match rotate_all(pool, &batch).await {
            Ok(results) => {
                for (job, result) in batch.into_iter().zip(results) {
                    let _ = job.done.send(Ok(result));
                }
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, rotations = batch.len(), "batched refresh rotation failed; retrying one by one");
            }
        }
    }
    for job in batch {
        let result = rotate_all(pool, std::slice::from_ref(&job))
            .await
            .map(|mut won| won.pop().flatten());
        let _ = job.done.send(result);
    }
}

/// One statement for the whole batch; for each rotation, its grant if it won.
async fn rotate_all(pool: &AnyPool, batch: &[Rotation]) -> StoreResult<Vec<Option<RefreshGrant>>> {
    let input: Vec<serde_json::Value> = batch
        .iter()
        .map(|Rotation { job: r, .. }| {
            serde_json::json!({
                "o": STANDARD.encode(&r.old_hash),
                "c": r.client_id,
                "s": STANDARD.encode(&r.successor_hash),
                "e": STANDARD.encode(&r.successor_enc),
                "n": r.now,
                "t": r.idle_ttl,
            })
        })
        .collect();
    let rows = sqlx::query(ROTATE_CURRENT)
        .bind(serde_json::Value::Array(input).to_string())
        .fetch_all(pool)
        .await?;
    won(&rows, batch.iter().map(|r| &r.job))
}

/// PostgreSQL: rotates every current, live token of a JSON array of rotations (`o` the
/// predecessor's hash, `c` the client, `s` and `e` the successor's hash and sealed value, in
/// base64; `n` now, `t` the idle lifetime) in one statement; returns the predecessors it rotated,
/// with their users. The successor's idle limit is the rule of
/// `Provider::new_refresh_token`, `min(now + idle lifetime, the family's expiry)`.
/// The token is found through its primary key (`= ANY`), and user and session are checked by
/// scalar sub-queries on theirs, so the plan cannot start from a table whose statistics are stale
/// (a generic plan made while `users` looked tiny scanned it and every token of each user).
const ROTATE_CURRENT: &str = concat!(
    "WITH input AS (\
       SELECT decode(i->>'o', 'base64') AS old_hash, i->>'c' AS client_id, \
         decode(i->>'s', 'base64') AS successor_hash, decode(i->>'e', 'base64') AS successor_enc, \
         (i->>'n')::BIGINT AS now, (i->>'t')::BIGINT AS idle_ttl \
       FROM jsonb_array_elements($1::jsonb) AS i), \
     won AS (\
       UPDATE refresh_tokens r SET rotated_at = i.now, successor_hash = i.successor_hash, \
         successor_enc = i.successor_enc \
       FROM input i \
       WHERE r.token_hash = ANY (ARRAY(SELECT old_hash FROM input)) \
         AND r.token_hash = i.old_hash AND r.client_id = i.client_id \
         AND r.rotated_at IS NULL AND r.revoked_at IS NULL \
         AND r.expires_at > i.now AND r.idle_expires_at > i.now \
         AND (SELECT u.disabled = 0 FROM users u WHERE u.id = r.user_id) \
         AND (r.session_id IS NULL OR \
           (SELECT s.revoked_at IS NULL FROM sessions s WHERE s.id = r.session_id)) \
       RETURNING r.*, i.idle_ttl AS successor_idle_ttl), \
     successor AS (\
       INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, session_id, scope, \
         audience, auth_time, amr, created_at, idle_expires_at, expires_at) \
       SELECT successor_hash, family_id, client_id, user_id, session_id, scope, audience, \
         auth_time, amr, rotated_at, LEAST(rotated_at + successor_idle_ttl, expires_at), expires_at \
       FROM won) \
     SELECT won.token_hash, won.family_id, won.client_id, won.user_id, won.session_id, won.scope, \
       won.audience, won.auth_time, won.amr, won.created_at, won.idle_expires_at, won.expires_at, \
       won.rotated_at, won.successor_hash, won.successor_enc, won.revoked_at, ",
    joined_user_columns!(),
    ", won.session_id AS s_id, NULL::BIGINT AS s_revoked_at \
     FROM won JOIN users u ON u.id = won.user_id"
);

#[cfg(test)]
mod tests {
    use super::super::columns::qualified;

    #[test]
    fn a_batched_rotation_returns_every_column_of_the_rotated_token() {
        let columns = qualified("won", refresh_columns!());
        assert!(super::ROTATE_CURRENT.contains(&format!("SELECT {columns}, ")));
    }
}
