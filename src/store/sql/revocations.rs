//! The revocation log every replica replays (see `crate::revocation`).

use super::SqlStore;
use super::row::{Record, column};
use crate::clock::Timestamp;
use crate::revocation::{Revocation, RevocationKind};
use crate::store::{RevocationStore, StoreResult};

impl RevocationStore for SqlStore {
    async fn latest_revocation(&self) -> StoreResult<i64> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM revocation_events")
            .fetch_one(&self.pool)
            .await?;
        Ok(seq.unwrap_or(0))
    }

    async fn append_revocation(&self, r: &Revocation) -> StoreResult<i64> {
        let r = r.clone();
        self.write(move |writer| async move {
            // A session entry names its session's user (for the feed), read in the same
            // statement: no extra round trip on the sign-out path.
            let insert = sqlx::query(concat!(
                "INSERT INTO revocation_events (",
                revocation_columns!(),
                ") VALUES ($1, $2, $3, $4, COALESCE($5, ",
                "(SELECT user_id FROM sessions WHERE id = $2 AND $1 = 'session'))) RETURNING seq"
            ));
            column(&r.bind_columns(insert).fetch_one(&writer).await?, "seq")
        })
        .await
    }

    async fn revocations_after(
        &self,
        after: i64,
        now: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<(i64, Option<Revocation>)>> {
        let rows = sqlx::query(concat!(
            "SELECT seq, ",
            revocation_columns!(),
            " FROM revocation_events WHERE seq > $1 AND expires_at > $2 ORDER BY seq LIMIT $3"
        ))
        .bind(after)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        log_entries(&rows)
    }

    async fn revocations_after_or_in(
        &self,
        after: i64,
        also: &[i64],
        now: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<(i64, Option<Revocation>)>> {
        let mut sql = String::from(concat!(
            "SELECT seq, ",
            revocation_columns!(),
            " FROM revocation_events WHERE expires_at > $2 AND (seq > $1"
        ));
        if !also.is_empty() {
            let placeholders: Vec<String> =
                (0..also.len()).map(|i| format!("${}", i + 4)).collect();
            sql.push_str(" OR seq IN (");
            sql.push_str(&placeholders.join(", "));
            sql.push(')');
        }
        sql.push_str(") ORDER BY seq LIMIT $3");
        // Only numbered placeholders are added: the values are bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after)
            .bind(now)
            .bind(limit);
        for seq in also {
            query = query.bind(*seq);
        }
        let rows = query.fetch_all(&self.pool).await?;
        log_entries(&rows)
    }
}

/// Log rows as readers see them: an entry of a kind this version does not know is `None`.
fn log_entries(rows: &[sqlx::any::AnyRow]) -> StoreResult<Vec<(i64, Option<Revocation>)>> {
    rows.iter()
            .map(|row| {
                let seq = column(row, "seq")?;
                let kind: String = column(row, "kind")?;
                if RevocationKind::parse(&kind).is_none() {
                    tracing::warn!(seq, %kind, "skipping a revocation of a kind this version does not know");
                    return Ok((seq, None));
                }
                Ok((seq, Some(Revocation::from_row(row)?)))
            })
            .collect()
}
