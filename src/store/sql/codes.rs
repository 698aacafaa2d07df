//! Authorization codes: issued once, redeemed once (RFC 6749 section 4.1.2).

use super::row::{Record, column};
use super::{SqlStore, insert_result, refresh};
use crate::clock::Timestamp;
use crate::store::{
    AuthCode, AuthCodeStore, CodeOutcome, CodeRedemption, RefreshToken, StoreResult,
};

impl AuthCodeStore for SqlStore {
    async fn insert_code(&self, c: &AuthCode) -> StoreResult<()> {
        let c = c.clone();
        self.write(move |writer| async move {
            let insert = sqlx::query(insert_into!(
                "auth_codes",
                code_columns,
                "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13"
            ));
            insert_result(c.bind_columns(insert).execute(&writer).await)
        })
        .await
    }

    async fn find_code(&self, code_hash: &[u8]) -> StoreResult<Option<AuthCode>> {
        let query = sqlx::query(select!(
            code_columns,
            "FROM auth_codes WHERE code_hash = $1"
        ));
        self.read_one(query.bind(code_hash.to_vec())).await
    }

    async fn redeem_code(
        &self,
        code_hash: &[u8],
        redemption: &CodeRedemption,
        first_refresh: Option<&RefreshToken>,
        now: Timestamp,
    ) -> StoreResult<CodeOutcome> {
        // A conditional UPDATE is the compare-and-set: one caller flips used_at (and gets the
        // code back in the same statement), all others see no row. The winner stores the first
        // refresh token in the same transaction, so whoever sees the code spent (on PostgreSQL
        // the row lock holds them until the commit) also sees the token, and a replay's
        // `revoke_family` reaches it.
        let (hash, r, first_refresh) = (
            code_hash.to_vec(),
            redemption.clone(),
            first_refresh.cloned(),
        );
        let redeemed = self
            .write(move |writer| async move {
                let mut tx = writer.begin().await?;
                let Some(code) = sqlx::query(concat!(
                    "UPDATE auth_codes SET used_at = $1, family_id = $2, access_jti = $3, access_expires_at = $4 \
                     WHERE code_hash = $5 AND used_at IS NULL RETURNING ",
                    code_columns!()
                ))
                .bind(now)
                .bind(&r.family_id)
                .bind(&r.access_jti)
                .bind(r.access_expires_at)
                .bind(hash)
                .fetch_optional(&mut *tx)
                .await?
                .as_ref()
                .map(AuthCode::from_row)
                .transpose()?
                else {
                    return Ok(None);
                };
                if let Some(t) = &first_refresh {
                    insert_result(refresh::insert_query(t).execute(&mut *tx).await)?;
                }
                tx.commit().await?;
                Ok(Some(code))
            })
            .await?;
        if let Some(code) = redeemed {
            return Ok(CodeOutcome::Redeemed(code));
        }
        let Some(row) = sqlx::query(concat!(
            "SELECT ",
            code_columns!(),
            ", family_id, access_jti, access_expires_at FROM auth_codes WHERE code_hash = $1"
        ))
        .bind(code_hash.to_vec())
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(CodeOutcome::NotFound);
        };
        let code = AuthCode::from_row(&row)?;
        // Set together with `used_at` by the first redemption.
        let first = CodeRedemption {
            family_id: column::<Option<String>>(&row, "family_id")?.unwrap_or_default(),
            access_jti: column::<Option<String>>(&row, "access_jti")?.unwrap_or_default(),
            access_expires_at: column::<Option<i64>>(&row, "access_expires_at")?
                .unwrap_or_default(),
        };
        Ok(CodeOutcome::Replayed(code, first))
    }
}
