//! Signing keys: published, activated, retired and revoked by the keyring (`crate::keys`).

use super::row::Record;
use super::{SqlStore, insert_result};
use crate::clock::Timestamp;
use crate::store::{KeyStore, SigningKeyRecord, StoreResult};

impl KeyStore for SqlStore {
    async fn insert_key(&self, k: &SigningKeyRecord) -> StoreResult<()> {
        let insert = sqlx::query(insert_into!(
            "signing_keys",
            key_columns,
            "$1, $2, $3, $4, $5, $6, $7, $8"
        ));
        insert_result(k.bind_columns(insert).execute(&self.writer).await)
    }

    async fn live_keys(&self, now: Timestamp) -> StoreResult<Vec<SigningKeyRecord>> {
        let query = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM signing_keys WHERE revoked_at IS NULL AND (expire_at IS NULL OR expire_at > $1) \
             ORDER BY activate_at, created_at"
        ));
        self.read_all(query.bind(now)).await
    }

    async fn set_key_expiry(&self, kid: &str, expire_at: Timestamp) -> StoreResult<()> {
        sqlx::query("UPDATE signing_keys SET expire_at = $1 WHERE kid = $2")
            .bind(expire_at)
            .bind(kid)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn revoke_key(&self, kid: &str, now: Timestamp) -> StoreResult<()> {
        sqlx::query(
            "UPDATE signing_keys SET revoked_at = $1 WHERE kid = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(kid)
        .execute(&self.writer)
        .await?;
        Ok(())
    }
}
