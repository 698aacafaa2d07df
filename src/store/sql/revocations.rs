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
            let insert = sqlx::query(concat!(
                "INSERT INTO revocation_events (",
                revocation_columns!(),
                ") VALUES ($1, $2, $3, $4) RETURNING seq"
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
}
