//! Refresh tokens: rotated on every use, revoked by family (RFC 6749 section 6, RFC 9700
//! section 4.14.2).

use sqlx::any::AnyRow;

use super::row::{Record, column};
use super::{AnyQuery, Rotations, SqlStore, insert_result};
use crate::clock::Timestamp;
use crate::store::{
    CurrentRotation, RefreshGrant, RefreshToken, RefreshTokenStore, StoreResult, User,
};

/// A refresh token with its user (`u_` columns) and session (`s_id`, `s_revoked_at`), as
/// `refresh_grant_select!` reads them.
pub(in crate::store) fn refresh_grant_from(row: &AnyRow) -> StoreResult<RefreshGrant> {
    let token = RefreshToken::from_row(row)?;
    let user = match column::<Option<String>>(row, "u_id")? {
        Some(_) => Some(User::from_prefixed(row, "u_")?),
        None => None,
    };
    let session_active = match token.session_id {
        None => None,
        Some(_) => Some(
            column::<Option<String>>(row, "s_id")?.is_some()
                && column::<Option<i64>>(row, "s_revoked_at")?.is_none(),
        ),
    };
    Ok(RefreshGrant {
        token,
        user,
        session_active,
    })
}

/// Stores a refresh token (in a transaction of the caller's, or on its own).
pub(super) fn insert_query(t: &RefreshToken) -> AnyQuery<'_> {
    t.bind_columns(sqlx::query(insert_into!(
        "refresh_tokens",
        refresh_columns,
        "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16"
    )))
}

impl RefreshTokenStore for SqlStore {
    async fn insert_refresh(&self, t: &RefreshToken) -> StoreResult<()> {
        let t = t.clone();
        self.write(
            move |writer| async move { insert_result(insert_query(&t).execute(&writer).await) },
        )
        .await
    }

    async fn find_refresh(&self, token_hash: &[u8]) -> StoreResult<Option<RefreshToken>> {
        let query = sqlx::query(select!(
            refresh_columns,
            "FROM refresh_tokens WHERE token_hash = $1"
        ));
        self.read_one(query.bind(token_hash.to_vec())).await
    }

    async fn find_refresh_grant(&self, token_hash: &[u8]) -> StoreResult<Option<RefreshGrant>> {
        let Some(row) = sqlx::query(concat!(refresh_grant_select!(), "WHERE r.token_hash = $1"))
            .bind(token_hash.to_vec())
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        refresh_grant_from(&row).map(Some)
    }

    async fn rotate_refresh(
        &self,
        old_hash: &[u8],
        successor: &RefreshToken,
        successor_enc: &[u8],
        now: Timestamp,
    ) -> StoreResult<bool> {
        // SQLite: batched with concurrent rotations into one transaction (group commit).
        if let Rotations::Sqlite(queue) = &self.rotations {
            return queue.rotate(old_hash, successor, successor_enc, now).await;
        }
        // PostgreSQL: one statement, one round trip. The UPDATE's row lock decides the winner (a
        // concurrent statement re-checks the WHERE after the winner commits and finds nothing),
        // and the successor is inserted only from the row the UPDATE returned.
        let rotate = sqlx::query(concat!(
            "WITH won AS (UPDATE refresh_tokens SET rotated_at = $17, successor_hash = $1, successor_enc = $18 \
             WHERE token_hash = $19 AND rotated_at IS NULL AND revoked_at IS NULL RETURNING 1) \
             INSERT INTO refresh_tokens (",
            refresh_columns!(),
            ") SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16 FROM won"
        ));
        let inserted = successor
            .bind_columns(rotate)
            .bind(now)
            .bind(successor_enc.to_vec())
            .bind(old_hash.to_vec())
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(inserted == 1)
    }

    async fn rotate_if_current(
        &self,
        r: &CurrentRotation<'_>,
    ) -> StoreResult<Option<RefreshGrant>> {
        match &self.rotations {
            Rotations::Sqlite(queue) => queue.rotate_current(r).await,
            Rotations::Postgres(queue) => queue.rotate(r).await,
        }
    }

    async fn revoke_family(&self, family_id: &str, now: Timestamp) -> StoreResult<()> {
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(family_id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn revoke_client_grants(&self, client_id: &str, now: Timestamp) -> StoreResult<u64> {
        let client_id = client_id.to_string();
        self.write(move |writer| async move {
            let mut tx = writer.begin().await?;
            let live = sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = $1 \
                 WHERE client_id = $2 AND revoked_at IS NULL AND rotated_at IS NULL",
            )
            .bind(now)
            .bind(client_id.clone())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(client_id.clone())
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM auth_codes WHERE client_id = $1")
                .bind(client_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(live.rows_affected())
        })
        .await
    }
}
