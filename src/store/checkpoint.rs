//! WAL checkpoints for SQLite, off the writer's path.
//!
//! Left to itself, SQLite checkpoints inside the commit that takes the write-ahead log past
//! 1,000 pages: that commit copies the log into the database file and waits for two fsyncs
//! while every other write queues behind the single writer. Under refresh rotation this
//! happened many times a second and set the tail latency (refresh p99 18-22 ms; with the
//! checkpoints moved here, 12-16 ms). So the writer checkpoints only as a last resort
//! ([`WRITER_PRAGMAS`]) and this task runs *passive* checkpoints on a reader connection:
//! they copy whatever no reader still needs, on another thread, without taking the write lock.
//! Durability is unchanged: a commit is in the log either way, and the log is what recovery
//! replays.

use std::time::Duration;

use sqlx::{AnyPool, Row};

/// For the writer's connection: it still checkpoints by itself when the log passes 10,000
/// pages (~40 MiB), in case this task cannot keep up or has stopped.
pub(crate) const WRITER_PRAGMAS: &str = "PRAGMA wal_autocheckpoint = 10000;";
/// Pause between checkpoints while the log is growing. With 50 ms the log outran this task on a
/// database of a million refresh tokens and reached the writer's fallback, whose 40 MiB
/// checkpoint stalled every write (refresh p99 43 ms against 22 ms with 10 ms).
const BUSY: Duration = Duration::from_millis(10);
/// Pause while nothing is being written.
const QUIET: Duration = Duration::from_millis(250);

/// Runs until `pool` is closed.
pub(crate) fn start(pool: AnyPool) {
    tokio::spawn(async move {
        let mut pause = QUIET;
        let mut last_log = 0;
        loop {
            tokio::time::sleep(pause).await;
            if pool.is_closed() {
                break;
            }
            pause = match passive(&pool).await {
                Ok((log, checkpointed)) => {
                    let growing = log != last_log || checkpointed < log;
                    last_log = log;
                    if growing { BUSY } else { QUIET }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "background WAL checkpoint failed");
                    QUIET
                }
            };
        }
    });
}

/// One passive checkpoint: the frames in the log and how many of them are now in the database.
pub(crate) async fn passive(pool: &AnyPool) -> Result<(i64, i64), sqlx::Error> {
    let row = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(pool)
        .await?;
    Ok((row.try_get(1)?, row.try_get(2)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::random_id;
    use crate::store::{SqlStore, User, UserStore};

    /// The database file holds every page (nothing is left only in the log) once the
    /// background task has run, although the writer itself would not checkpoint yet.
    #[tokio::test]
    async fn writes_reach_the_database_file_without_the_writer_checkpointing() {
        let dir = std::env::temp_dir().join(format!("tessera-checkpoint-{}", random_id()));
        let path = dir.join("t.db");
        let store = SqlStore::connect(&format!("sqlite://{}", path.display()), 2)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        for i in 0..300 {
            let user = User {
                id: random_id(),
                email: format!("user{i}@example.com"),
                name: Some("x".repeat(500)),
                roles: Vec::new(),
                password_hash: crate::secret::SecretString::new("$argon2id$..."),
                disabled: false,
                email_verified: false,
                created_at: 100,
            };
            store.insert_user(&user).await.unwrap();
        }
        let pages = || async {
            let row = sqlx::query(
                "SELECT (SELECT page_count FROM pragma_page_count()), \
                 (SELECT page_size FROM pragma_page_size())",
            )
            .fetch_one(&store.pool)
            .await
            .unwrap();
            row.try_get::<i64, _>(0).unwrap() * row.try_get::<i64, _>(1).unwrap()
        };
        let logical = pages().await;
        assert!(logical > 300 * 500, "the writes are in the database");
        let mut in_file = 0;
        for _ in 0..40 {
            in_file = std::fs::metadata(&path).unwrap().len() as i64;
            if in_file == logical {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            in_file, logical,
            "the log was copied into the database file"
        );
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}
