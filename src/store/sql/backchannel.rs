//! Back-channel logout deliveries: queued when a session ends, claimed by the sender.

use sqlx::any::AnyRow;

use super::SqlStore;
use super::row::column;
use crate::clock::Timestamp;
use crate::store::{BackchannelStore, Backend, LogoutDelivery, StoreResult};

/// Sessions per enqueue statement (a user rarely has more than a few).
const CHUNK: usize = 100;

/// The delivery's columns, and the client's URI now (none while it is disabled).
const RETURNING: &str = "RETURNING id, session_id, client_id, user_id, created_at, attempts, \
     (SELECT c.backchannel_logout_uri FROM clients c \
      WHERE c.id = backchannel_deliveries.client_id AND c.disabled_at IS NULL) AS uri";

fn delivery(row: &AnyRow) -> StoreResult<LogoutDelivery> {
    Ok(LogoutDelivery {
        id: column(row, "id")?,
        session_id: column(row, "session_id")?,
        client_id: column(row, "client_id")?,
        user_id: column(row, "user_id")?,
        created_at: column(row, "created_at")?,
        attempts: column(row, "attempts")?,
        uri: column(row, "uri")?,
    })
}

impl BackchannelStore for SqlStore {
    async fn enqueue_logout_deliveries(
        &self,
        session_ids: &[String],
        now: Timestamp,
        now_ms: i64,
    ) -> StoreResult<u64> {
        let chunks: Vec<Vec<String>> = session_ids.chunks(CHUNK).map(<[_]>::to_vec).collect();
        self.write(move |writer| async move {
            let mut queued = 0;
            for ids in chunks {
                let list = (0..ids.len())
                    .map(|i| format!("${}", i + 3))
                    .collect::<Vec<_>>()
                    .join(", ");
                // One statement: the session's clients that want to hear of it, with the
                // session's user; the WHERE also settles SQLite's ON CONFLICT parsing.
                let sql = format!(
                    "INSERT INTO backchannel_deliveries \
                     (session_id, client_id, user_id, created_at, due_ms, attempts) \
                     SELECT sc.session_id, sc.client_id, s.user_id, $1, $2, 0 \
                     FROM session_clients sc \
                     JOIN sessions s ON s.id = sc.session_id \
                     JOIN clients c ON c.id = sc.client_id \
                     WHERE sc.session_id IN ({list}) \
                     AND c.backchannel_logout_uri IS NOT NULL AND c.disabled_at IS NULL \
                     ON CONFLICT (session_id, client_id) DO NOTHING"
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now).bind(now_ms);
                for id in &ids {
                    query = query.bind(id);
                }
                queued += query.execute(&writer).await?.rows_affected();
                // An ended session is told of once: its client records go with the queueing,
                // so ending it again (a replayed rotated refresh token does, once per replay)
                // sends its clients nothing more.
                let list = (0..ids.len())
                    .map(|i| format!("${}", i + 1))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!("DELETE FROM session_clients WHERE session_id IN ({list})");
                let mut forget = sqlx::query(sqlx::AssertSqlSafe(sql));
                for id in ids {
                    forget = forget.bind(id);
                }
                forget.execute(&writer).await?;
            }
            Ok(queued)
        })
        .await
    }

    async fn claim_logout_deliveries(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> StoreResult<Vec<LogoutDelivery>> {
        // PostgreSQL: rows another replica is claiming right now are skipped, not waited for;
        // one that replica has just claimed is re-checked against `due_ms` after its commit
        // and so left out. SQLite: one writer, the statement is the whole claim.
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE backchannel_deliveries SET due_ms = $1 + $2, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM backchannel_deliveries \
             WHERE failed_at IS NULL AND due_ms <= $1 ORDER BY due_ms LIMIT $3{lock}) \
             AND failed_at IS NULL AND due_ms <= $1 {RETURNING}"
        );
        self.write(move |writer| async move {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(now_ms)
                .bind(lease_ms)
                .bind(limit)
                .fetch_all(&writer)
                .await?;
            let mut out = rows.iter().map(delivery).collect::<StoreResult<Vec<_>>>()?;
            out.sort_by_key(|d| d.id);
            Ok(out)
        })
        .await
    }

    async fn finish_logout_delivery(&self, id: i64) -> StoreResult<()> {
        self.write(move |writer| async move {
            sqlx::query("DELETE FROM backchannel_deliveries WHERE id = $1")
                .bind(id)
                .execute(&writer)
                .await?;
            Ok(())
        })
        .await
    }

    async fn retry_logout_delivery(&self, id: i64, due_ms: i64) -> StoreResult<()> {
        self.write(move |writer| async move {
            sqlx::query("UPDATE backchannel_deliveries SET due_ms = $1 WHERE id = $2")
                .bind(due_ms)
                .bind(id)
                .execute(&writer)
                .await?;
            Ok(())
        })
        .await
    }

    async fn fail_logout_delivery(&self, id: i64, now: Timestamp) -> StoreResult<()> {
        self.write(move |writer| async move {
            sqlx::query("UPDATE backchannel_deliveries SET failed_at = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(&writer)
                .await?;
            Ok(())
        })
        .await
    }

    async fn pending_logout_deliveries(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM backchannel_deliveries WHERE failed_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?)
    }
}
