//! Sessions: browsers signed in, and what was issued through them.

use std::collections::HashMap;

use super::row::{Record, column, list};
use super::{SqlStore, insert_result};
use crate::clock::Timestamp;
use crate::store::{Session, SessionFilter, SessionStore, StoreResult};

/// The user's (`$1`) sessions neither revoked nor past their end at `$2`: the condition of
/// `list_user_sessions`, and of the clients listed with them.
macro_rules! live_sessions_of_user {
    () => {
        "user_id = $1 AND revoked_at IS NULL AND expires_at > $2"
    };
}

impl SessionStore for SqlStore {
    async fn insert_session(&self, s: &Session) -> StoreResult<()> {
        let s = s.clone();
        self.write(move |writer| async move {
            let insert = sqlx::query(insert_into!(
                "sessions",
                session_columns,
                "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12"
            ));
            insert_result(s.bind_columns(insert).execute(&writer).await)
        })
        .await
    }

    async fn find_session_by_token(&self, token_hash: &[u8]) -> StoreResult<Option<Session>> {
        let query = sqlx::query(select!(
            session_columns,
            "FROM sessions WHERE token_hash = $1"
        ));
        self.read_one(query.bind(token_hash.to_vec())).await
    }

    async fn find_session(&self, id: &str) -> StoreResult<Option<Session>> {
        let query = sqlx::query(select!(session_columns, "FROM sessions WHERE id = $1"));
        self.read_one(query.bind(id)).await
    }

    async fn touch_session(&self, id: &str, now: Timestamp) -> StoreResult<()> {
        let id = id.to_string();
        self.write(move |writer| async move {
            sqlx::query(
                "UPDATE sessions SET last_seen_at = $1 WHERE id = $2 AND last_seen_at < $1",
            )
            .bind(now)
            .bind(&id)
            .execute(&writer)
            .await?;
            Ok(())
        })
        .await
    }

    async fn count_live_sessions(&self, now: Timestamp, seen_after: Timestamp) -> StoreResult<i64> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM sessions \
             WHERE revoked_at IS NULL AND expires_at > $1 AND last_seen_at > $2",
        )
        .bind(now)
        .bind(seen_after)
        .fetch_one(&self.pool)
        .await?;
        Ok(n)
    }

    async fn replace_session_token(&self, id: &str, token_hash: &[u8]) -> StoreResult<bool> {
        let id = id.to_string();
        let token_hash = token_hash.to_vec();
        self.write(move |writer| async move {
            let done = sqlx::query(
                "UPDATE sessions SET token_hash = $1 WHERE id = $2 AND revoked_at IS NULL",
            )
            .bind(&token_hash)
            .bind(&id)
            .execute(&writer)
            .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn raise_session(
        &self,
        id: &str,
        token_hash: &[u8],
        amr: &[String],
    ) -> StoreResult<bool> {
        let (id, token_hash, amr) = (id.to_string(), token_hash.to_vec(), list(amr));
        self.write(move |writer| async move {
            let done = sqlx::query(
                "UPDATE sessions SET token_hash = $1, amr = $2 WHERE id = $3 AND revoked_at IS NULL",
            )
            .bind(&token_hash)
            .bind(&amr)
            .bind(&id)
            .execute(&writer)
            .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn revoke_session(&self, id: &str, now: Timestamp) -> StoreResult<()> {
        let id = id.to_string();
        self.write(move |writer| async move {
            let mut tx = writer.begin().await?;
            sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = $1 WHERE session_id = $2 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn list_user_sessions(&self, user_id: &str, now: Timestamp) -> StoreResult<Vec<Session>> {
        let query = sqlx::query(select!(
            session_columns,
            "FROM sessions WHERE ",
            live_sessions_of_user!(),
            " ORDER BY created_ms DESC, created_at DESC, id"
        ));
        self.read_all(query.bind(user_id).bind(now)).await
    }

    async fn list_live_sessions(
        &self,
        filter: &SessionFilter,
        after: Option<(i64, &str)>,
        limit: i64,
        now: Timestamp,
        seen_after: Timestamp,
    ) -> StoreResult<Vec<(Session, String)>> {
        let (after_ms, after_id) = after.unwrap_or((i64::MAX, ""));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(live_sessions_sql(filter)))
            .bind(now)
            .bind(seen_after)
            .bind(after_ms)
            .bind(after_id.to_string());
        for value in [&filter.user_id, &filter.ip, &filter.client_id] {
            if !value.is_empty() {
                query = query.bind(value.clone());
            }
        }
        let rows = query.bind(limit).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| Ok((Session::from_row(row)?, column(row, "email")?)))
            .collect()
    }

    async fn list_user_sessions_with_clients(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> StoreResult<Vec<(Session, Vec<String>)>> {
        let sessions = self.list_user_sessions(user_id, now).await?;
        if sessions.is_empty() {
            return Ok(Vec::new());
        }
        // The pairs `session_clients` would find for each of those sessions, in its order.
        let pairs: Vec<(String, String)> = sqlx::query_as(concat!(
            "SELECT session_id, client_id FROM refresh_tokens WHERE session_id IN \
             (SELECT id FROM sessions WHERE ",
            live_sessions_of_user!(),
            ") UNION SELECT session_id, client_id FROM auth_codes WHERE session_id IN \
             (SELECT id FROM sessions WHERE ",
            live_sessions_of_user!(),
            ") ORDER BY 1, 2"
        ))
        .bind(user_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let mut clients: HashMap<String, Vec<String>> = HashMap::new();
        for (session_id, client_id) in pairs {
            clients.entry(session_id).or_default().push(client_id);
        }
        Ok(sessions
            .into_iter()
            .map(|s| {
                let of_session = clients.remove(&s.id).unwrap_or_default();
                (s, of_session)
            })
            .collect())
    }

    async fn revoke_user_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<Vec<String>> {
        self.revoke_sessions_where(user_id, keep, now).await
    }

    async fn session_clients(&self, session_id: &str) -> StoreResult<Vec<String>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT client_id FROM refresh_tokens WHERE session_id = $1 \
             UNION SELECT client_id FROM auth_codes WHERE session_id = $1 ORDER BY 1",
        )
        .bind(session_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }
}

impl SqlStore {
    async fn revoke_sessions_where(
        &self,
        user_id: &str,
        keep: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<Vec<String>> {
        let keep = keep.unwrap_or("");
        let mut tx = self.writer.begin().await?;
        // First, so that it queues behind (or ahead of) a second step completing for this user
        // on the users row (`complete_second_step` takes the same row first): that step either
        // sees the mark, or its new session is ended below.
        sqlx::query(
            "UPDATE users SET sessions_ended_at = $1, sessions_epoch = sessions_epoch + 1 \
             WHERE id = $2",
        )
        .bind(now)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        let ended: Vec<String> = sqlx::query_scalar(
            "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND id <> $3 AND revoked_at IS NULL RETURNING id",
        )
        .bind(now)
        .bind(user_id)
        .bind(keep)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL \
             AND ($3 = '' OR session_id IS NULL OR session_id <> $3)",
        )
        .bind(now)
        .bind(user_id)
        .bind(keep)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ended)
    }
}

/// The live-session list's statement, holding a condition only for each filter that is set
/// (`$1` now, `$2` seen after, `$3`/`$4` the cursor, then user, address and client in that
/// order when set, then the limit): written as `($n = '' OR s.user_id = $n)`, PostgreSQL's
/// generic plan (after five runs on a connection) could not use the `user_id` index; see
/// `audit_search_sql` in `audit.rs`.
fn live_sessions_sql(filter: &SessionFilter) -> String {
    let mut sql = String::from(
        "SELECT s.id, s.token_hash, s.user_id, s.created_at, s.created_ms, s.last_seen_at, \
         s.expires_at, s.auth_time, s.amr, s.user_agent, s.ip, s.revoked_at, u.email \
         FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.revoked_at IS NULL AND s.expires_at > $1 AND s.last_seen_at > $2 \
         AND (s.created_ms < $3 OR (s.created_ms = $3 AND s.id > $4))",
    );
    let mut n = 4;
    let conditions = [
        (&filter.user_id, "s.user_id = $n"),
        (&filter.ip, "s.ip = $n"),
        (
            &filter.client_id,
            "(EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.session_id = s.id \
             AND r.client_id = $n) OR EXISTS (SELECT 1 FROM auth_codes c \
             WHERE c.session_id = s.id AND c.client_id = $n))",
        ),
    ];
    for (value, condition) in conditions {
        if !value.is_empty() {
            n += 1;
            sql.push_str(" AND ");
            sql.push_str(&condition.replace("$n", &format!("${n}")));
        }
    }
    sql.push_str(&format!(
        " ORDER BY s.created_ms DESC, s.id LIMIT ${}",
        n + 1
    ));
    sql
}
