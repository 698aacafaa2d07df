//! Second factors, recovery codes and ceremony state. Every accept and every take is one
//! conditional statement (or one transaction), so it holds across replicas without locks held
//! in between: see docs/DESIGN.md, "Second factors: storage, replay, ceremonies".

use super::row::{Columns, Record, Value, bind, column};
use super::{AnyQuery, SqlStore, insert_result};
use crate::clock::Timestamp;
use crate::store::{
    Ceremony, FactorKind, MfaFactor, MfaStore, PendingTotp, StoreError, StoreResult,
};

// Declared here rather than in `store::columns`: only this module reads these rows.
record!(MfaFactor => factor_columns {
    id, user_id, kind, name, created_at, last_used_at, secret_enc, last_step, credential_id,
    credential, passwordless,
});

record!(PendingTotp => pending_columns { id, user_id, secret_enc, created_at, expires_at });

/// A factor's kind, by its name.
impl Value for FactorKind {
    type Stored = String;
    fn to_stored(&self) -> String {
        self.as_str().to_string()
    }
    fn from_stored(stored: String, column: &str) -> StoreResult<Self> {
        Self::parse(&stored).ok_or_else(|| StoreError::Corrupt(format!("{column}: {stored}")))
    }
}

impl MfaStore for SqlStore {
    async fn list_factors(&self, user_id: &str) -> StoreResult<Vec<MfaFactor>> {
        let query = sqlx::query(select!(
            factor_columns,
            "FROM mfa_factors WHERE user_id = $1 ORDER BY created_at, id"
        ));
        self.read_all(query.bind(user_id)).await
    }

    async fn find_factor(&self, user_id: &str, id: &str) -> StoreResult<Option<MfaFactor>> {
        let query = sqlx::query(select!(
            factor_columns,
            "FROM mfa_factors WHERE id = $1 AND user_id = $2"
        ));
        self.read_one(query.bind(id).bind(user_id)).await
    }

    async fn find_factor_by_credential(
        &self,
        credential_id: &[u8],
    ) -> StoreResult<Option<MfaFactor>> {
        let query = sqlx::query(select!(
            factor_columns,
            "FROM mfa_factors WHERE credential_id = $1"
        ));
        self.read_one(query.bind(credential_id.to_vec())).await
    }

    async fn insert_factor(&self, factor: &MfaFactor) -> StoreResult<()> {
        let factor = factor.clone();
        self.write(move |writer| async move {
            let insert = sqlx::query(insert_into!(
                "mfa_factors",
                factor_columns,
                "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11"
            ));
            insert_result(factor.bind_columns(insert).execute(&writer).await)
        })
        .await
    }

    async fn remove_factor(&self, user_id: &str, id: &str) -> StoreResult<bool> {
        let (user_id, id) = (user_id.to_string(), id.to_string());
        self.write(move |writer| async move {
            let done = sqlx::query("DELETE FROM mfa_factors WHERE id = $1 AND user_id = $2")
                .bind(&id)
                .bind(&user_id)
                .execute(&writer)
                .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn accept_totp_step(
        &self,
        user_id: &str,
        id: &str,
        step: i64,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let (user_id, id) = (user_id.to_string(), id.to_string());
        self.write(move |writer| async move {
            let done = sqlx::query(
                "UPDATE mfa_factors SET last_step = $1, last_used_at = $2 \
                 WHERE id = $3 AND user_id = $4 AND kind = 'totp' \
                 AND (last_step IS NULL OR last_step < $1)",
            )
            .bind(step)
            .bind(now)
            .bind(&id)
            .bind(&user_id)
            .execute(&writer)
            .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn touch_factor(
        &self,
        user_id: &str,
        id: &str,
        credential: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let (user_id, id) = (user_id.to_string(), id.to_string());
        let credential = credential.map(String::from);
        self.write(move |writer| async move {
            let done = sqlx::query(
                "UPDATE mfa_factors SET last_used_at = $1, credential = COALESCE($2, credential) \
                 WHERE id = $3 AND user_id = $4",
            )
            .bind(now)
            .bind(credential)
            .bind(&id)
            .bind(&user_id)
            .execute(&writer)
            .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn delete_all_factors(&self, user_id: &str) -> StoreResult<u64> {
        let user_id = user_id.to_string();
        self.write(move |writer| async move {
            let mut tx = writer.begin().await?;
            let factors = sqlx::query("DELETE FROM mfa_factors WHERE user_id = $1")
                .bind(&user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            for sql in [
                "DELETE FROM mfa_pending WHERE user_id = $1",
                "DELETE FROM recovery_codes WHERE user_id = $1",
                "DELETE FROM mfa_ceremonies WHERE user_id = $1",
            ] {
                sqlx::query(sql).bind(&user_id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(factors)
        })
        .await
    }

    async fn delete_user_ceremonies(&self, user_id: &str, kind: &str) -> StoreResult<u64> {
        let (user_id, kind) = (user_id.to_string(), kind.to_string());
        self.write(move |writer| async move {
            let done = sqlx::query("DELETE FROM mfa_ceremonies WHERE user_id = $1 AND kind = $2")
                .bind(&user_id)
                .bind(&kind)
                .execute(&writer)
                .await?;
            Ok(done.rows_affected())
        })
        .await
    }

    async fn insert_pending_totp(&self, pending: &PendingTotp) -> StoreResult<()> {
        let pending = pending.clone();
        self.write(move |writer| async move {
            let mut tx = writer.begin().await?;
            sqlx::query("DELETE FROM mfa_pending WHERE user_id = $1")
                .bind(&pending.user_id)
                .execute(&mut *tx)
                .await?;
            let insert = sqlx::query(insert_into!(
                "mfa_pending",
                pending_columns,
                "$1, $2, $3, $4, $5"
            ));
            insert_result(pending.bind_columns(insert).execute(&mut *tx).await)?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn find_pending_totp(
        &self,
        user_id: &str,
        id: &str,
        now: Timestamp,
    ) -> StoreResult<Option<PendingTotp>> {
        let query = sqlx::query(select!(
            pending_columns,
            "FROM mfa_pending WHERE id = $1 AND user_id = $2 AND expires_at > $3"
        ));
        self.read_one(query.bind(id).bind(user_id).bind(now)).await
    }

    async fn confirm_pending_totp(
        &self,
        user_id: &str,
        id: &str,
        name: &str,
        step: i64,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let (user_id, id, name) = (user_id.to_string(), id.to_string(), name.to_string());
        self.write(move |writer| async move {
            let mut tx = writer.begin().await?;
            // The delete decides who confirms: one caller gets the row back.
            let taken: Option<Vec<u8>> = sqlx::query_scalar(
                "DELETE FROM mfa_pending WHERE id = $1 AND user_id = $2 AND expires_at > $3 \
                 RETURNING secret_enc",
            )
            .bind(&id)
            .bind(&user_id)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(secret_enc) = taken else {
                tx.rollback().await?;
                return Ok(false);
            };
            let factor = MfaFactor {
                id,
                user_id,
                kind: FactorKind::Totp,
                name,
                created_at: now,
                last_used_at: Some(now),
                secret_enc: Some(secret_enc),
                last_step: Some(step),
                credential_id: None,
                credential: None,
                passwordless: false,
            };
            let insert = sqlx::query(insert_into!(
                "mfa_factors",
                factor_columns,
                "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11"
            ));
            insert_result(factor.bind_columns(insert).execute(&mut *tx).await)?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn replace_recovery_codes(
        &self,
        user_id: &str,
        hashes: &[Vec<u8>],
        now: Timestamp,
    ) -> StoreResult<()> {
        let (user_id, hashes) = (user_id.to_string(), hashes.to_vec());
        self.write(move |writer| async move {
            let mut tx = writer.begin().await?;
            sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
                .bind(&user_id)
                .execute(&mut *tx)
                .await?;
            for hash in hashes {
                let insert = sqlx::query(
                    "INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES ($1, $2, $3)",
                );
                insert_result(
                    insert
                        .bind(&user_id)
                        .bind(hash)
                        .bind(now)
                        .execute(&mut *tx)
                        .await,
                )?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn consume_recovery_code(
        &self,
        user_id: &str,
        hash: &[u8],
        now: Timestamp,
    ) -> StoreResult<bool> {
        let (user_id, hash) = (user_id.to_string(), hash.to_vec());
        self.write(move |writer| async move {
            let done = sqlx::query(
                "UPDATE recovery_codes SET used_at = $1 \
                 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL",
            )
            .bind(now)
            .bind(&user_id)
            .bind(&hash)
            .execute(&writer)
            .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn count_recovery_codes(&self, user_id: &str) -> StoreResult<(i64, i64)> {
        let (unused, total): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*) - COUNT(used_at), COUNT(*) FROM recovery_codes WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_one(&self.pool)
        .await?;
        Ok((unused, total))
    }

    async fn put_ceremony(&self, id_hash: &[u8], ceremony: &Ceremony) -> StoreResult<()> {
        let (id_hash, c) = (id_hash.to_vec(), ceremony.clone());
        self.write(move |writer| async move {
            insert_result(
                sqlx::query(
                    "INSERT INTO mfa_ceremonies (id_hash, user_id, kind, state, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(id_hash)
                .bind(c.user_id)
                .bind(c.kind)
                .bind(c.state)
                .bind(c.created_at)
                .bind(c.expires_at)
                .execute(&writer)
                .await,
            )
        })
        .await
    }

    async fn take_ceremony(
        &self,
        id_hash: &[u8],
        kind: &str,
        now: Timestamp,
    ) -> StoreResult<Option<Ceremony>> {
        let (id_hash, kind) = (id_hash.to_vec(), kind.to_string());
        let taken = self
            .write(move |writer| async move {
                Ok(sqlx::query(
                    "DELETE FROM mfa_ceremonies WHERE id_hash = $1 AND kind = $2 \
                     RETURNING user_id, kind, state, created_at, expires_at",
                )
                .bind(id_hash)
                .bind(kind)
                .fetch_optional(&writer)
                .await?)
            })
            .await?;
        let Some(row) = taken else {
            return Ok(None);
        };
        let ceremony = ceremony_from_row(&row)?;
        Ok((ceremony.expires_at > now).then_some(ceremony))
    }

    async fn peek_ceremony(
        &self,
        id_hash: &[u8],
        kind: &str,
        now: Timestamp,
    ) -> StoreResult<Option<Ceremony>> {
        let row = sqlx::query(
            "SELECT user_id, kind, state, created_at, expires_at FROM mfa_ceremonies \
             WHERE id_hash = $1 AND kind = $2 AND expires_at > $3",
        )
        .bind(id_hash.to_vec())
        .bind(kind.to_string())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(ceremony_from_row).transpose()
    }
}

fn ceremony_from_row(row: &sqlx::any::AnyRow) -> StoreResult<Ceremony> {
    Ok(Ceremony {
        user_id: column(row, "user_id")?,
        kind: column(row, "kind")?,
        state: column(row, "state")?,
        created_at: column(row, "created_at")?,
        expires_at: column(row, "expires_at")?,
    })
}
