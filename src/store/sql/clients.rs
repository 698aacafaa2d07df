//! Clients: the registered relying parties.

use super::row::{Record, Value};
use super::{SqlStore, insert_result};
use crate::clock::Timestamp;
use crate::store::{Client, ClientStore, StoreResult};

impl ClientStore for SqlStore {
    async fn insert_client(&self, c: &Client) -> StoreResult<()> {
        let insert = sqlx::query(insert_into!(
            "clients",
            client_columns,
            "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14"
        ));
        insert_result(c.bind_columns(insert).execute(&self.writer).await)
    }

    async fn find_client(&self, id: &str) -> StoreResult<Option<Client>> {
        let query = sqlx::query(select!(client_columns, "FROM clients WHERE id = $1"));
        self.read_one(query.bind(id)).await
    }

    async fn list_clients(&self) -> StoreResult<Vec<Client>> {
        let query = sqlx::query(select!(client_columns, "FROM clients ORDER BY id"));
        self.read_all(query).await
    }

    async fn update_client(&self, c: &Client) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE clients SET redirect_uris = $1, post_logout_redirect_uris = $2, \
             grant_types = $3, scopes = $4, audiences = $5, first_party = $6, require_mfa = $7, \
             backchannel_logout_uri = $8 WHERE id = $9",
        )
        .bind(c.redirect_uris.to_stored())
        .bind(c.post_logout_redirect_uris.to_stored())
        .bind(c.grant_types.to_stored())
        .bind(c.scopes.to_stored())
        .bind(c.audiences.to_stored())
        .bind(c.first_party.to_stored())
        .bind(c.require_mfa.to_stored())
        .bind(c.backchannel_logout_uri.to_stored())
        .bind(c.id.clone())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn rotate_client_secret(
        &self,
        id: &str,
        secret_hash: &[u8],
        previous_until: Timestamp,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE clients SET previous_secret_hash = secret_hash, \
             previous_secret_expires_at = $1, secret_hash = $2 \
             WHERE id = $3 AND secret_hash IS NOT NULL",
        )
        .bind(previous_until)
        .bind(secret_hash.to_vec())
        .bind(id.to_string())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_client_disabled(&self, id: &str, at: Option<Timestamp>) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE clients SET disabled_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id.to_string())
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
