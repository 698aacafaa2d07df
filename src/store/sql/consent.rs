//! Consent: the scopes a user granted a client.

use super::SqlStore;
use super::row::{column, list};
use crate::clock::Timestamp;
use crate::store::{ConsentStore, StoreResult};

impl ConsentStore for SqlStore {
    async fn find_consent(&self, user_id: &str, client_id: &str) -> StoreResult<Vec<String>> {
        let row = sqlx::query("SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2")
            .bind(user_id)
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => column(&row, "scopes"),
            None => Ok(Vec::new()),
        }
    }

    async fn save_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scopes: &[String],
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO consents (user_id, client_id, scopes, granted_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at",
        )
        .bind(user_id)
        .bind(client_id)
        .bind(list(scopes))
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(())
    }
}
