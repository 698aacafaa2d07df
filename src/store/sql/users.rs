//! Users: accounts and their sign-in details.

use super::row::{Record, Value};
use super::{SqlStore, insert_result};
use crate::clock::Timestamp;
use crate::store::{StoreResult, User, UserStore};

impl UserStore for SqlStore {
    async fn insert_user(&self, u: &User) -> StoreResult<()> {
        let insert = sqlx::query(concat!(
            "INSERT INTO users (",
            user_columns!(),
            ", updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)"
        ));
        insert_result(u.bind_columns(insert).execute(&self.writer).await)
    }

    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let query = sqlx::query(select!(user_columns, "FROM users WHERE email = $1"));
        self.read_one(query.bind(email)).await
    }

    async fn find_user(&self, id: &str) -> StoreResult<Option<User>> {
        let query = sqlx::query(select!(user_columns, "FROM users WHERE id = $1"));
        self.read_one(query.bind(id)).await
    }

    async fn set_password_hash(&self, id: &str, hash: &str, now: Timestamp) -> StoreResult<()> {
        sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
            .bind(hash)
            .bind(now)
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn set_email_verified(&self, id: &str, now: Timestamp) -> StoreResult<()> {
        sqlx::query("UPDATE users SET email_verified = 1, updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn set_user_disabled(
        &self,
        id: &str,
        disabled: bool,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let r = sqlx::query("UPDATE users SET disabled = $1, updated_at = $2 WHERE id = $3")
            .bind(disabled.to_stored())
            .bind(now)
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(r.rows_affected() == 1)
    }
}
