//! Housekeeping: dead rows deleted in small batches.

use super::SqlStore;
use crate::clock::Timestamp;
use crate::store::{PurgeStore, StoreResult};

/// Dead rows per table: `$1` is now, `$2` the batch size. Kept a day past their end where they
/// still help forensics or replay detection; refresh tokens until their family's absolute end.
/// One condition per statement, each served by an index (an OR of two conditions scanned the
/// whole table, so each batch grew slower with the rows stored).
const PURGES: &[&str] = &[
    "DELETE FROM auth_codes WHERE code_hash IN \
     (SELECT code_hash FROM auth_codes WHERE expires_at < $1 - 86400 LIMIT $2)",
    "DELETE FROM refresh_tokens WHERE token_hash IN \
     (SELECT token_hash FROM refresh_tokens WHERE expires_at < $1 LIMIT $2)",
    "DELETE FROM refresh_tokens WHERE token_hash IN \
     (SELECT token_hash FROM refresh_tokens WHERE revoked_at < $1 - 86400 LIMIT $2)",
    "DELETE FROM sessions WHERE id IN \
     (SELECT id FROM sessions WHERE expires_at < $1 - 86400 LIMIT $2)",
    "DELETE FROM sessions WHERE id IN \
     (SELECT id FROM sessions WHERE revoked_at < $1 - 86400 LIMIT $2)",
    "DELETE FROM account_tokens WHERE token_hash IN \
     (SELECT token_hash FROM account_tokens WHERE expires_at < $1 - 86400 LIMIT $2)",
    "DELETE FROM revocation_events WHERE seq IN \
     (SELECT seq FROM revocation_events WHERE expires_at < $1 LIMIT $2)",
    "DELETE FROM mfa_ceremonies WHERE id_hash IN \
     (SELECT id_hash FROM mfa_ceremonies WHERE expires_at < $1 LIMIT $2)",
    "DELETE FROM mfa_pending WHERE id IN \
     (SELECT id FROM mfa_pending WHERE expires_at < $1 LIMIT $2)",
    // Back-channel logout deliveries given up on, a week later (delivered ones are deleted at
    // once; the sessions' client lists go with their sessions, by trigger).
    "DELETE FROM backchannel_deliveries WHERE id IN \
     (SELECT id FROM backchannel_deliveries WHERE failed_at < $1 - 604800 LIMIT $2)",
];

impl PurgeStore for SqlStore {
    async fn purge_expired(&self, now: Timestamp, batch: i64) -> StoreResult<u64> {
        let mut deleted = 0;
        for sql in PURGES {
            deleted += sqlx::query(*sql)
                .bind(now)
                .bind(batch)
                .execute(&self.writer)
                .await?
                .rows_affected();
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    use super::*;
    use crate::crypto::random_id;

    /// Every purge statement finds its rows through an index: none scans a table whole.
    #[tokio::test]
    async fn purge_statements_search_indexes_instead_of_scanning_tables() {
        let dir = std::env::temp_dir().join(format!("tessera-purge-{}", random_id()));
        let store = SqlStore::connect(&format!("sqlite://{}/t.db", dir.display()), 1)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        for sql in PURGES {
            let plan = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .bind(1_000_000_i64)
                .bind(500_i64)
                .fetch_all(&store.pool)
                .await
                .unwrap();
            let steps: Vec<String> = plan
                .iter()
                .map(|row| row.try_get::<String, _>("detail").unwrap())
                .collect();
            assert!(
                steps.iter().all(|s| !s.starts_with("SCAN")),
                "{sql}: {steps:?}"
            );
            assert!(
                steps.iter().any(|s| s.contains("USING")),
                "{sql}: {steps:?}"
            );
        }
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}
