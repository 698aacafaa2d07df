//! Second factors, recovery codes and ceremony state. Every accept and every take is one
//! conditional statement (or one transaction), so it holds across replicas without locks held
//! in between: see docs/DESIGN.md, "Second factors: storage, replay, ceremonies".

use std::sync::Arc;

use super::audit::AuditHead;
use super::row::{Columns, Record, Value, bind, column, list};
use super::{AnyQuery, SqlStore, insert_result};
use crate::clock::Timestamp;
use crate::crypto::Crypto;
use crate::store::{
    Backend, Ceremony, FactorKind, MfaFactor, MfaStore, PendingTotp, SPENT_MARK_KEPT,
    SPENT_SECOND_STEP, SecondStepCompletion, StepOutcome, StepProof, StepSession, StepTake,
    StoreError, StoreResult,
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
                     SELECT $1, $2, $3, $4, $5, $6 WHERE $3 <> 'second_step' OR NOT EXISTS \
                     (SELECT 1 FROM users WHERE id = $2 AND sessions_ended_at > $5)",
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
        .bind(kind)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(ceremony_from).transpose()
    }

    async fn sessions_epoch(&self, user_id: &str) -> StoreResult<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT sessions_epoch FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn sealed_step_live(
        &self,
        user_id: &str,
        id_hash: &[u8],
        epoch: i64,
    ) -> StoreResult<bool> {
        let live: Option<String> = sqlx::query_scalar(
            "SELECT id FROM users WHERE id = $1 AND sessions_epoch = $2 AND disabled = 0 \
             AND NOT EXISTS (SELECT 1 FROM mfa_ceremonies WHERE id_hash = $3)",
        )
        .bind(user_id)
        .bind(epoch)
        .bind(id_hash.to_vec())
        .fetch_optional(&self.pool)
        .await?;
        Ok(live.is_some())
    }

    async fn complete_second_step(
        &self,
        crypto: &Arc<Crypto>,
        c: &SecondStepCompletion,
    ) -> StoreResult<StepOutcome> {
        let (crypto, c) = (Arc::clone(crypto), c.clone());
        let known = (self.backend() == Backend::Postgres).then(|| Arc::clone(&self.audit_head));
        self.write(move |writer| async move {
            let mut tx = writer.begin().await?;
            let outcome = complete_in(&mut tx, &crypto, known.as_deref(), &c).await?;
            if outcome == StepOutcome::Done {
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
            Ok(outcome)
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
        let ceremony = ceremony_from(&row)?;
        Ok((ceremony.expires_at > now).then_some(ceremony))
    }
}

fn ceremony_from(row: &sqlx::any::AnyRow) -> StoreResult<Ceremony> {
    Ok(Ceremony {
        user_id: column(row, "user_id")?,
        kind: column(row, "kind")?,
        state: column(row, "state")?,
        created_at: column(row, "created_at")?,
        expires_at: column(row, "expires_at")?,
    })
}

/// The statements of [`MfaStore::complete_second_step`] in the caller's transaction; anything
/// but `Done` is rolled back by the caller.
async fn complete_in(
    tx: &mut sqlx::AnyConnection,
    crypto: &Crypto,
    known: Option<&tokio::sync::Mutex<Option<AuditHead>>>,
    c: &SecondStepCompletion,
) -> StoreResult<StepOutcome> {
    // The user's row first: it reads the "sessions ended at" mark and, on PostgreSQL, locks the
    // row until the commit, so an ending of all sessions (`revoke_user_sessions`, which writes
    // the mark first) either comes before and is seen here, or waits and ends the session
    // opened here. A disabled or deleted user completes nothing.
    let user = sqlx::query(
        "UPDATE users SET sessions_ended_at = sessions_ended_at WHERE id = $1 \
         RETURNING sessions_ended_at, sessions_epoch, disabled",
    )
    .bind(&c.user_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(user) = user else {
        return Ok(StepOutcome::Gone);
    };
    let ended_at: Option<Timestamp> = column(&user, "sessions_ended_at")?;
    let epoch: i64 = column(&user, "sessions_epoch")?;
    let disabled: bool = column(&user, "disabled")?;
    if disabled {
        return Ok(StepOutcome::Gone);
    }
    // The take decides the single winner, as `take_ceremony` does.
    let taken = match &c.take {
        StepTake::Stored { ceremony_hash } => sqlx::query(
            "DELETE FROM mfa_ceremonies WHERE id_hash = $1 AND kind = 'second_step' \
             AND user_id = $2 AND expires_at > $3 AND created_at >= $4 RETURNING created_at",
        )
        .bind(ceremony_hash.clone())
        .bind(&c.user_id)
        .bind(c.now)
        .bind(ended_at.unwrap_or(Timestamp::MIN))
        .fetch_optional(&mut *tx)
        .await?
        .is_some(),
        StepTake::Sealed {
            id_hash,
            epoch: begun_under,
            expires_at,
        } => {
            *begun_under == epoch
                && *expires_at > c.now
                && sqlx::query(
                    "INSERT INTO mfa_ceremonies (id_hash, user_id, kind, state, created_at, \
                     expires_at) VALUES ($1, $2, $3, '', $4, $5) ON CONFLICT (id_hash) DO NOTHING",
                )
                .bind(id_hash.clone())
                .bind(&c.user_id)
                .bind(SPENT_SECOND_STEP)
                .bind(c.now)
                .bind(expires_at.saturating_add(SPENT_MARK_KEPT))
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1
        }
    };
    if !taken {
        return Ok(StepOutcome::Gone);
    }
    let accepted = match &c.proof {
        StepProof::TotpStep { factor_id, step } => {
            sqlx::query(
                "UPDATE mfa_factors SET last_step = $1, last_used_at = $2 \
                 WHERE id = $3 AND user_id = $4 AND kind = 'totp' \
                 AND (last_step IS NULL OR last_step < $1)",
            )
            .bind(*step)
            .bind(c.now)
            .bind(factor_id)
            .bind(&c.user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1
        }
        StepProof::RecoveryCode { hash } => {
            sqlx::query(
                "UPDATE recovery_codes SET used_at = $1 \
                 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL",
            )
            .bind(c.now)
            .bind(&c.user_id)
            .bind(hash.clone())
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1
        }
        StepProof::Verified => true,
    };
    if !accepted {
        return Ok(StepOutcome::Refused);
    }
    match &c.session {
        StepSession::Open { session, end } => {
            for id in end {
                sqlx::query(
                    "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND user_id = $3 \
                     AND revoked_at IS NULL",
                )
                .bind(c.now)
                .bind(id)
                .bind(&c.user_id)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = $1 WHERE session_id = $2 \
                     AND revoked_at IS NULL",
                )
                .bind(c.now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            let insert = sqlx::query(insert_into!(
                "sessions",
                session_columns,
                "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12"
            ));
            insert_result(session.bind_columns(insert).execute(&mut *tx).await)?;
        }
        StepSession::Raise {
            id,
            token_hash,
            amr,
        } => {
            let raised = sqlx::query(
                "UPDATE sessions SET token_hash = $1, amr = $2 \
                 WHERE id = $3 AND user_id = $4 AND revoked_at IS NULL",
            )
            .bind(token_hash.clone())
            .bind(list(amr))
            .bind(id)
            .bind(&c.user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if raised != 1 {
                return Ok(StepOutcome::Gone);
            }
        }
    }
    super::audit::append_in_tx(tx, known, crypto, c.now, &c.audit).await?;
    Ok(StepOutcome::Done)
}
