//! Account links sent by mail (password reset, email verification): single use, stored only
//! as keyed hashes.

use super::{SqlStore, insert_result};
use crate::clock::Timestamp;
use crate::store::{AccountTokenKind, AccountTokenStore, StoreResult};

impl SqlStore {
    async fn account_token_user(
        &self,
        sql: &'static str,
        token_hash: &[u8],
        kind: AccountTokenKind,
        now: Timestamp,
    ) -> StoreResult<Option<String>> {
        Ok(sqlx::query_scalar(sql)
            .bind(now)
            .bind(token_hash.to_vec())
            .bind(kind.as_str())
            .fetch_optional(&self.writer)
            .await?)
    }
}

impl AccountTokenStore for SqlStore {
    async fn insert_account_token(
        &self,
        token_hash: &[u8],
        kind: AccountTokenKind,
        user_id: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<()> {
        insert_result(
            sqlx::query(
                "INSERT INTO account_tokens (token_hash, kind, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(token_hash.to_vec())
            .bind(kind.as_str())
            .bind(user_id)
            .bind(now)
            .bind(expires_at)
            .execute(&self.writer)
            .await,
        )
    }

    async fn consume_account_token(
        &self,
        token_hash: &[u8],
        kind: AccountTokenKind,
        now: Timestamp,
    ) -> StoreResult<Option<String>> {
        self.account_token_user(
            "UPDATE account_tokens SET used_at = $1 WHERE token_hash = $2 AND kind = $3 \
             AND used_at IS NULL AND expires_at > $1 RETURNING user_id",
            token_hash,
            kind,
            now,
        )
        .await
    }

    async fn peek_account_token(
        &self,
        token_hash: &[u8],
        kind: AccountTokenKind,
        now: Timestamp,
    ) -> StoreResult<Option<String>> {
        self.account_token_user(
            "SELECT user_id FROM account_tokens WHERE expires_at > $1 AND token_hash = $2 AND kind = $3 AND used_at IS NULL",
            token_hash,
            kind,
            now,
        )
        .await
    }

    async fn expire_account_tokens(
        &self,
        user_id: &str,
        kind: AccountTokenKind,
        now: Timestamp,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE account_tokens SET used_at = $1 WHERE user_id = $2 AND kind = $3 AND used_at IS NULL")
            .bind(now)
            .bind(user_id)
            .bind(kind.as_str())
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}
