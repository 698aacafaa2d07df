//! The operator's view of users: the list (search, filters, keyset pages), a user's audit
//! entries and consents, and the changes the last-admin rule guards.

use super::SqlStore;
use super::row::{Record, column, list};
use crate::audit::AuditRecord;
use crate::clock::Timestamp;
use crate::store::{
    AdminUserStore, Backend, Consent, Guarded, PageDirection, StoreResult, User, UserQuery,
    UserRow, UserSort,
};

/// The user list: `$1` a `LIKE` pattern (empty: no search), `$2` only disabled, `$3` only
/// without a second factor, `$4` only recently locked, `$5` where recorded locks count from,
/// `$6`/`$7` the cursor (sort key, id), `$8` the limit. `$key` is the sort column, `$cmp` and
/// `$dir` the page's direction: `<` / `DESC` after the cursor, `>` / `ASC` before it. The
/// cursor is compared as a row value, which both backends answer from the (key, id) index.
macro_rules! user_list {
    ($key:literal, $cmp:literal, $dir:literal) => {
        concat!(
            "SELECT ",
            user_columns!(),
            ", last_signin_at, \
             (SELECT COUNT(*) FROM mfa_factors f WHERE f.user_id = users.id) AS factor_count, \
             CAST(CASE WHEN EXISTS (SELECT 1 FROM audit_events a WHERE a.subject = users.id \
             AND a.action IN ('signin.locked', 'mfa.locked') AND a.at >= $5) \
             THEN 1 ELSE 0 END AS BIGINT) AS recently_locked \
             FROM users WHERE \
             ($1 = '' OR email LIKE $1 ESCAPE '\\' OR LOWER(COALESCE(name, '')) LIKE $1 ESCAPE '\\' \
             OR LOWER(id) LIKE $1 ESCAPE '\\') \
             AND ($2 = 0 OR disabled <> 0) \
             AND ($3 = 0 OR NOT EXISTS (SELECT 1 FROM mfa_factors f WHERE f.user_id = users.id)) \
             AND ($4 = 0 OR id IN (SELECT subject FROM audit_events \
             WHERE action IN ('signin.locked', 'mfa.locked') AND at >= $5)) \
             AND (",
            $key,
            ", id) ",
            $cmp,
            " ($6, $7) ORDER BY ",
            $key,
            " ",
            $dir,
            ", id ",
            $dir,
            " LIMIT $8"
        )
    };
}

const BY_CREATED_AFTER: &str = user_list!("created_at", "<", "DESC");
const BY_CREATED_BEFORE: &str = user_list!("created_at", ">", "ASC");
const BY_SIGNIN_AFTER: &str = user_list!("last_signin_at", "<", "DESC");
const BY_SIGNIN_BEFORE: &str = user_list!("last_signin_at", ">", "ASC");

/// Whether another enabled user than `$3` holds the `admin` role (roles are JSON text, so the
/// quoted name matches the whole role and nothing longer).
macro_rules! another_enabled_admin {
    () => {
        "EXISTS (SELECT 1 FROM users o WHERE o.id <> $3 AND o.disabled = 0 \
         AND o.roles LIKE '%\"admin\"%')"
    };
}

/// `$1` the new roles, `$2` now, `$3` the user, `$4` whether the new roles hold `admin`.
const SET_ROLES: &str = concat!(
    "UPDATE users SET roles = $1, updated_at = $2 WHERE id = $3 AND ($4 <> 0 \
     OR disabled <> 0 OR roles NOT LIKE '%\"admin\"%' OR ",
    another_enabled_admin!(),
    ")"
);

/// `$1` disabled, `$2` now, `$3` the user.
const SET_DISABLED: &str = concat!(
    "UPDATE users SET disabled = $1, updated_at = $2 WHERE id = $3 AND ($1 = 0 \
     OR disabled <> 0 OR roles NOT LIKE '%\"admin\"%' OR ",
    another_enabled_admin!(),
    ")"
);

/// A `LIKE` pattern finding `text` anywhere, with `\` escaping the pattern's own characters.
fn contains_pattern(text: &str) -> String {
    if text.is_empty() {
        return String::new();
    }
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

impl SqlStore {
    /// Runs a statement of the last-admin rule: serialised on both backends (SQLite has one
    /// writer; PostgreSQL takes a transaction-scoped advisory lock first, so the "another admin"
    /// check of one call sees what a concurrent one committed).
    async fn guarded_update(
        &self,
        sql: &'static str,
        bind: impl FnOnce(super::AnyQuery<'static>) -> super::AnyQuery<'static>,
        id: &str,
    ) -> StoreResult<Guarded> {
        let mut tx = self.writer.begin().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7352011)")
                .execute(&mut *tx)
                .await?;
        }
        let changed = bind(sqlx::query(sql))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let outcome = if changed == 1 {
            Guarded::Done
        } else {
            let exists: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await?;
            match exists {
                Some(_) => Guarded::LastAdmin,
                None => Guarded::NotFound,
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }
}

impl AdminUserStore for SqlStore {
    async fn list_users(&self, q: &UserQuery) -> StoreResult<Vec<UserRow>> {
        let direction = match q.cursor {
            None => PageDirection::After,
            Some(_) => q.direction,
        };
        let sql = match (q.sort, direction) {
            (UserSort::Created, PageDirection::After) => BY_CREATED_AFTER,
            (UserSort::Created, PageDirection::Before) => BY_CREATED_BEFORE,
            (UserSort::LastSignIn, PageDirection::After) => BY_SIGNIN_AFTER,
            (UserSort::LastSignIn, PageDirection::Before) => BY_SIGNIN_BEFORE,
        };
        // The first page starts past every row: no key reaches i64::MAX.
        let (key, id) = q.cursor.clone().unwrap_or((i64::MAX, String::new()));
        let rows = sqlx::query(sql)
            .bind(contains_pattern(&q.search))
            .bind(i64::from(q.disabled))
            .bind(i64::from(q.without_mfa))
            .bind(i64::from(q.recently_locked))
            .bind(q.locks_since)
            .bind(key)
            .bind(id)
            .bind(q.limit.max(0))
            .fetch_all(&self.pool)
            .await?;
        let mut found = rows
            .iter()
            .map(|row| {
                let last: i64 = column(row, "last_signin_at")?;
                let locked: i64 = column(row, "recently_locked")?;
                Ok(UserRow {
                    user: User::from_row(row)?,
                    last_signin_at: (last > 0).then_some(last),
                    factors: column(row, "factor_count")?,
                    recently_locked: locked != 0,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        if direction == PageDirection::Before {
            found.reverse();
        }
        Ok(found)
    }

    async fn last_signin(&self, user_id: &str) -> StoreResult<Option<Timestamp>> {
        let last: Option<i64> =
            sqlx::query_scalar("SELECT last_signin_at FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(last.filter(|t| *t > 0))
    }

    async fn set_user_name(
        &self,
        id: &str,
        name: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE users SET name = $1, updated_at = $2 WHERE id = $3")
            .bind(name.map(str::to_string))
            .bind(now)
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_user_roles(
        &self,
        id: &str,
        roles: &[String],
        now: Timestamp,
    ) -> StoreResult<Guarded> {
        let keeps_admin = roles.iter().any(|r| r == "admin");
        let (stored, owned_id) = (list(roles), id.to_string());
        self.guarded_update(
            SET_ROLES,
            move |q| {
                q.bind(stored)
                    .bind(now)
                    .bind(owned_id)
                    .bind(i64::from(keeps_admin))
            },
            id,
        )
        .await
    }

    async fn set_user_disabled_guarded(
        &self,
        id: &str,
        disabled: bool,
        now: Timestamp,
    ) -> StoreResult<Guarded> {
        let owned_id = id.to_string();
        self.guarded_update(
            SET_DISABLED,
            move |q| q.bind(i64::from(disabled)).bind(now).bind(owned_id),
            id,
        )
        .await
    }

    async fn audit_about(&self, subject: &str, limit: i64) -> StoreResult<Vec<AuditRecord>> {
        let query = sqlx::query(select!(
            audit_columns,
            "FROM audit_events WHERE subject = $1 ORDER BY seq DESC LIMIT $2"
        ));
        self.read_all(query.bind(subject).bind(limit)).await
    }

    async fn user_consents(&self, user_id: &str) -> StoreResult<Vec<Consent>> {
        let rows = sqlx::query(
            "SELECT client_id, scopes, granted_at FROM consents WHERE user_id = $1 ORDER BY client_id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Consent {
                    client_id: column(row, "client_id")?,
                    scopes: column(row, "scopes")?,
                    granted_at: column(row, "granted_at")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::contains_pattern;

    #[test]
    fn a_search_matches_its_text_anywhere_and_like_characters_only_as_themselves() {
        assert_eq!(contains_pattern(""), "");
        assert_eq!(contains_pattern("ann"), "%ann%");
        assert_eq!(contains_pattern("a_b%c\\"), "%a\\_b\\%c\\\\%");
    }
}
