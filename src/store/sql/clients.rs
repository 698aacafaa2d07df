//! Clients: the registered relying parties.

use super::row::Record;
use super::{SqlStore, insert_result};
use crate::store::{Client, ClientStore, StoreResult};

impl ClientStore for SqlStore {
    async fn insert_client(&self, c: &Client) -> StoreResult<()> {
        let insert = sqlx::query(insert_into!(
            "clients",
            client_columns,
            "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10"
        ));
        insert_result(c.bind_columns(insert).execute(&self.writer).await)
    }

    async fn find_client(&self, id: &str) -> StoreResult<Option<Client>> {
        let query = sqlx::query(select!(client_columns, "FROM clients WHERE id = $1"));
        self.read_one(query.bind(id)).await
    }
}
