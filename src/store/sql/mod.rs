//! The one store implementation: the same SQL on SQLite (embedded default) and PostgreSQL,
//! through sqlx's `Any` driver. Only `$n` placeholders, `BIGINT`-compatible integers, text and
//! bytes are used, so both backends behave identically.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};

use super::checkpoint;
use super::group_commit::RotationQueue;
use super::group_commit_pg::PgRotationQueue;
use super::*;
use crate::secret::{Secret, SecretString};

/// The audit chain's head: the last entry's sequence number and hash.
type AuditHead = (i64, Vec<u8>);

#[derive(Clone, Debug)]
pub struct SqlStore {
    /// Reads.
    pub(crate) pool: AnyPool,
    /// Writes. On SQLite one connection: SQLite has a single writer, and queueing writes here is
    /// far cheaper than connections contending for the lock in SQLite's busy handler (which
    /// sleeps in steps of up to 100 ms). On PostgreSQL the same pool as reads.
    writer: AnyPool,
    /// Refresh rotations, committed in batches (see `group_commit` and `group_commit_pg`).
    rotations: Rotations,
    /// SQLite: the runtime whose task owns the writer (see [`SqlStore::write`]).
    writer_task: Option<tokio::runtime::Handle>,
    /// PostgreSQL: the audit chain's head (sequence number, hash) as this process last wrote or
    /// read it, so the next append can be one conditional statement (see `append_audit`).
    /// Holding its lock also queues this process's appends.
    audit_head: Arc<tokio::sync::Mutex<Option<AuditHead>>>,
    backend: Backend,
}

#[derive(Clone, Debug)]
enum Rotations {
    /// Every rotation, in one transaction per batch on the single writer.
    Sqlite(RotationQueue),
    /// Rotations of current tokens, one statement per batch; the rest in place.
    Postgres(PgRotationQueue),
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

fn insert_result(r: Result<sqlx::any::AnyQueryResult, sqlx::Error>) -> StoreResult<()> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict),
        Err(e) => Err(e.into()),
    }
}

fn list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn parse_list(row: &AnyRow, col: &str) -> StoreResult<Vec<String>> {
    let text: String = row.try_get(col)?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

fn flag(row: &AnyRow, col: &str) -> StoreResult<bool> {
    Ok(row.try_get::<i64, _>(col)? != 0)
}

fn user_from(row: &AnyRow) -> StoreResult<User> {
    user_from_prefixed(row, "")
}

/// A user whose columns were selected as `{prefix}{column}` (joined reads).
fn user_from_prefixed(row: &AnyRow, prefix: &str) -> StoreResult<User> {
    let col = |c: &str| format!("{prefix}{c}");
    Ok(User {
        id: row.try_get(col("id").as_str())?,
        email: row.try_get(col("email").as_str())?,
        name: row.try_get(col("name").as_str())?,
        roles: parse_list(row, &col("roles"))?,
        password_hash: SecretString::new(row.try_get::<String, _>(col("password_hash").as_str())?),
        disabled: flag(row, &col("disabled"))?,
        email_verified: flag(row, &col("email_verified"))?,
        created_at: row.try_get(col("created_at").as_str())?,
    })
}

fn client_from(row: &AnyRow) -> StoreResult<Client> {
    Ok(Client {
        id: row.try_get("id")?,
        secret_hash: row
            .try_get::<Option<Vec<u8>>, _>("secret_hash")?
            .map(Secret::wrap),
        redirect_uris: parse_list(row, "redirect_uris")?,
        post_logout_redirect_uris: parse_list(row, "post_logout_redirect_uris")?,
        grant_types: parse_list(row, "grant_types")?,
        scopes: parse_list(row, "scopes")?,
        audiences: parse_list(row, "audiences")?,
        first_party: flag(row, "first_party")?,
        created_at: row.try_get("created_at")?,
    })
}

fn session_from(row: &AnyRow) -> StoreResult<Session> {
    Ok(Session {
        id: row.try_get("id")?,
        token_hash: row.try_get("token_hash")?,
        user_id: row.try_get("user_id")?,
        created_at: row.try_get("created_at")?,
        created_ms: row.try_get("created_ms")?,
        last_seen_at: row.try_get("last_seen_at")?,
        expires_at: row.try_get("expires_at")?,
        auth_time: row.try_get("auth_time")?,
        amr: parse_list(row, "amr")?,
        user_agent: row.try_get("user_agent")?,
        ip: row.try_get("ip")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

fn code_from(row: &AnyRow) -> StoreResult<AuthCode> {
    Ok(AuthCode {
        code_hash: row.try_get("code_hash")?,
        client_id: row.try_get("client_id")?,
        user_id: row.try_get("user_id")?,
        session_id: row.try_get("session_id")?,
        redirect_uri: row.try_get("redirect_uri")?,
        scope: row.try_get("scope")?,
        nonce: row.try_get("nonce")?,
        code_challenge: row.try_get("code_challenge")?,
        resource: row.try_get("resource")?,
        auth_time: row.try_get("auth_time")?,
        amr: parse_list(row, "amr")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

fn refresh_from(row: &AnyRow) -> StoreResult<RefreshToken> {
    Ok(RefreshToken {
        token_hash: row.try_get("token_hash")?,
        family_id: row.try_get("family_id")?,
        client_id: row.try_get("client_id")?,
        user_id: row.try_get("user_id")?,
        session_id: row.try_get("session_id")?,
        scope: row.try_get("scope")?,
        audience: row.try_get("audience")?,
        auth_time: row.try_get("auth_time")?,
        amr: parse_list(row, "amr")?,
        created_at: row.try_get("created_at")?,
        idle_expires_at: row.try_get("idle_expires_at")?,
        expires_at: row.try_get("expires_at")?,
        rotated_at: row.try_get("rotated_at")?,
        successor_hash: row.try_get("successor_hash")?,
        successor_enc: row.try_get("successor_enc")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// A refresh token with its user (`u_` columns) and session (`s_id`, `s_revoked_at`).
pub(super) fn refresh_grant_from(row: &AnyRow) -> StoreResult<RefreshGrant> {
    let token = refresh_from(row)?;
    let user = match row.try_get::<Option<String>, _>("u_id")? {
        Some(_) => Some(user_from_prefixed(row, "u_")?),
        None => None,
    };
    let session_active = match token.session_id {
        None => None,
        Some(_) => Some(
            row.try_get::<Option<String>, _>("s_id")?.is_some()
                && row.try_get::<Option<i64>, _>("s_revoked_at")?.is_none(),
        ),
    };
    Ok(RefreshGrant {
        token,
        user,
        session_active,
    })
}

fn key_from(row: &AnyRow) -> StoreResult<SigningKeyRecord> {
    Ok(SigningKeyRecord {
        kid: row.try_get("kid")?,
        alg: row.try_get("alg")?,
        private_enc: row.try_get("private_enc")?,
        public_jwk: row.try_get("public_jwk")?,
        created_at: row.try_get("created_at")?,
        activate_at: row.try_get("activate_at")?,
        expire_at: row.try_get("expire_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

// Columns are always listed: a statement prepared before a migration added a column would
// otherwise disagree with the table about how many columns a row has.

impl SqlStore {
    /// Connects to `sqlite://…` or `postgres://…` (creating the SQLite file and its folder).
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::Corrupt(
                "database_url must start with sqlite:// or postgres://".into(),
            ));
        };
        let mut url = url.to_string();
        if backend == Backend::Sqlite {
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:")
                .split('?')
                .next()
                .unwrap_or_default()
                .to_string();
            if let Some(parent) = Path::new(&path).parent()
                && !parent.as_os_str().is_empty()
            {
                std::fs::create_dir_all(parent).map_err(|e| {
                    StoreError::Corrupt(format!("cannot create {}: {e}", parent.display()))
                })?;
            }
            if !url.contains('?') {
                url.push_str("?mode=rwc");
            }
        }
        // `extra`: pragmas for this pool's connections only.
        let options = |size: u32, extra: &'static str| {
            AnyPoolOptions::new()
                .max_connections(size.max(1))
                .acquire_timeout(Duration::from_secs(10))
                // A broken connection fails its query and is replaced; pinging before every
                // acquire would double the round trips of every request.
                .test_before_acquire(false)
                .after_connect(move |conn, _meta| {
                    Box::pin(async move {
                        if backend == Backend::Sqlite {
                            // WAL: readers never block the writer; NORMAL is durable in WAL mode
                            // except for the last transactions on power loss.
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                            )
                            .await?;
                            if !extra.is_empty() {
                                conn.execute(extra).await?;
                            }
                        }
                        Ok(())
                    })
                })
        };
        let pool = options(max_connections, "").connect(&url).await?;
        let writer = match backend {
            Backend::Sqlite => {
                // Checkpoints run in the background (see `checkpoint`), not in the writer's
                // commits.
                let writer = options(1, checkpoint::WRITER_PRAGMAS).connect(&url).await?;
                checkpoint::start(pool.clone());
                writer
            }
            Backend::Postgres => pool.clone(),
        };
        let rotations = match backend {
            Backend::Sqlite => Rotations::Sqlite(RotationQueue::start(writer.clone())),
            Backend::Postgres => Rotations::Postgres(PgRotationQueue::start(writer.clone())),
        };
        let writer_task = (backend == Backend::Sqlite).then(tokio::runtime::Handle::current);
        Ok(Self {
            pool,
            writer,
            rotations,
            writer_task,
            audit_head: Arc::default(),
            backend,
        })
    }

    /// Runs a write. On SQLite it runs as a task of the runtime that opened the store (the
    /// server's main thread), not on the request's worker: SQLite has one writer connection, and
    /// a write holds it until its task is polled again, which on a busy request worker took up to
    /// 44 ms under a sign-in flood while every other write (refresh rotations included) waited.
    /// On PostgreSQL it runs in place. The writes of the sign-in, code, refresh and revocation
    /// paths and the audit log go through here; rare administrative writes still run in place.
    async fn write<T, Fut>(&self, op: impl FnOnce(AnyPool) -> Fut) -> StoreResult<T>
    where
        Fut: Future<Output = StoreResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        let run = op(self.writer.clone());
        match &self.writer_task {
            Some(task) => task
                .spawn(run)
                .await
                .map_err(|e| StoreError::Unavailable(format!("the write did not finish: {e}")))?,
            None => run.await,
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn migrate(&self) -> StoreResult<usize> {
        super::migrate::run(&self.writer, self.backend).await
    }

    /// Readiness: the database answers a trivial query.
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query_scalar::<_, i64>("SELECT 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}

impl UserStore for SqlStore {
    async fn insert_user(&self, u: &User) -> StoreResult<()> {
        insert_result(
            sqlx::query(
                "INSERT INTO users (id, email, name, roles, password_hash, disabled, email_verified, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
            )
            .bind(&u.id)
            .bind(&u.email)
            .bind(&u.name)
            .bind(list(&u.roles))
            .bind(u.password_hash.expose())
            .bind(i64::from(u.disabled))
            .bind(i64::from(u.email_verified))
            .bind(u.created_at)
            .execute(&self.writer)
            .await,
        )
    }

    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE email = $1"
        ))
        .bind(email)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(user_from)
        .transpose()
    }

    async fn find_user(&self, id: &str) -> StoreResult<Option<User>> {
        sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(user_from)
        .transpose()
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
            .bind(i64::from(disabled))
            .bind(now)
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(r.rows_affected() == 1)
    }
}

impl ClientStore for SqlStore {
    async fn insert_client(&self, c: &Client) -> StoreResult<()> {
        insert_result(
            sqlx::query(
                "INSERT INTO clients (id, secret_hash, redirect_uris, post_logout_redirect_uris, grant_types, \
                 scopes, audiences, first_party, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&c.id)
            .bind(c.secret_hash.as_ref().map(|h| h.expose().clone()))
            .bind(list(&c.redirect_uris))
            .bind(list(&c.post_logout_redirect_uris))
            .bind(list(&c.grant_types))
            .bind(list(&c.scopes))
            .bind(list(&c.audiences))
            .bind(i64::from(c.first_party))
            .bind(c.created_at)
            .execute(&self.writer)
            .await,
        )
    }

    async fn find_client(&self, id: &str) -> StoreResult<Option<Client>> {
        sqlx::query("SELECT * FROM clients WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(client_from)
            .transpose()
    }
}

impl SessionStore for SqlStore {
    async fn insert_session(&self, s: &Session) -> StoreResult<()> {
        let s = s.clone();
        self.write(move |writer| async move {
            insert_result(
                sqlx::query(
                "INSERT INTO sessions (id, token_hash, user_id, created_at, last_seen_at, expires_at, auth_time, amr, user_agent, ip, revoked_at, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(&s.id)
            .bind(&s.token_hash)
            .bind(&s.user_id)
            .bind(s.created_at)
            .bind(s.last_seen_at)
            .bind(s.expires_at)
            .bind(s.auth_time)
            .bind(list(&s.amr))
            .bind(&s.user_agent)
            .bind(&s.ip)
            .bind(s.revoked_at)
            .bind(s.created_ms)
            .execute(&writer)
            .await,
            )
        })
        .await
    }

    async fn find_session_by_token(&self, token_hash: &[u8]) -> StoreResult<Option<Session>> {
        sqlx::query("SELECT id, token_hash, user_id, created_at, created_ms, last_seen_at, expires_at, auth_time, amr, user_agent, ip, revoked_at FROM sessions WHERE token_hash = $1")
            .bind(token_hash.to_vec())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(session_from)
            .transpose()
    }

    async fn find_session(&self, id: &str) -> StoreResult<Option<Session>> {
        sqlx::query("SELECT id, token_hash, user_id, created_at, created_ms, last_seen_at, expires_at, auth_time, amr, user_agent, ip, revoked_at FROM sessions WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(session_from)
            .transpose()
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
        sqlx::query(
            "SELECT id, token_hash, user_id, created_at, created_ms, last_seen_at, expires_at, auth_time, amr, user_agent, ip, revoked_at FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2              ORDER BY created_ms DESC, created_at DESC, id",
        )
        .bind(user_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(session_from)
        .collect()
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
            "SELECT client_id FROM refresh_tokens WHERE session_id = $1              UNION SELECT client_id FROM auth_codes WHERE session_id = $1 ORDER BY 1",
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
        let ended: Vec<String> = sqlx::query_scalar(
            "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND id <> $3 AND revoked_at IS NULL RETURNING id",
        )
        .bind(now)
        .bind(user_id)
        .bind(keep)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL              AND ($3 = '' OR session_id IS NULL OR session_id <> $3)",
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

impl AuthCodeStore for SqlStore {
    async fn insert_code(&self, c: &AuthCode) -> StoreResult<()> {
        let c = c.clone();
        self.write(move |writer| async move {
            insert_result(
                sqlx::query(
                "INSERT INTO auth_codes (code_hash, client_id, user_id, session_id, redirect_uri, scope, nonce, \
                 code_challenge, resource, auth_time, amr, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(&c.code_hash)
            .bind(&c.client_id)
            .bind(&c.user_id)
            .bind(&c.session_id)
            .bind(&c.redirect_uri)
            .bind(&c.scope)
            .bind(&c.nonce)
            .bind(&c.code_challenge)
            .bind(&c.resource)
            .bind(c.auth_time)
            .bind(list(&c.amr))
            .bind(c.created_at)
            .bind(c.expires_at)
            .execute(&writer)
            .await,
            )
        })
        .await
    }

    async fn find_code(&self, code_hash: &[u8]) -> StoreResult<Option<AuthCode>> {
        sqlx::query("SELECT * FROM auth_codes WHERE code_hash = $1")
            .bind(code_hash.to_vec())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(code_from)
            .transpose()
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
                let Some(code) = sqlx::query(
                    "UPDATE auth_codes SET used_at = $1, family_id = $2, access_jti = $3, access_expires_at = $4 \
                     WHERE code_hash = $5 AND used_at IS NULL RETURNING *",
                )
                .bind(now)
                .bind(&r.family_id)
                .bind(&r.access_jti)
                .bind(r.access_expires_at)
                .bind(hash)
                .fetch_optional(&mut *tx)
                .await?
                .as_ref()
                .map(code_from)
                .transpose()?
                else {
                    return Ok(None);
                };
                if let Some(t) = &first_refresh {
                    insert_result(insert_refresh_query(t).execute(&mut *tx).await)?;
                }
                tx.commit().await?;
                Ok(Some(code))
            })
            .await?;
        if let Some(code) = redeemed {
            return Ok(CodeOutcome::Redeemed(code));
        }
        let Some(row) = sqlx::query("SELECT * FROM auth_codes WHERE code_hash = $1")
            .bind(code_hash.to_vec())
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(CodeOutcome::NotFound);
        };
        let code = code_from(&row)?;
        let first = CodeRedemption {
            family_id: row
                .try_get::<Option<String>, _>("family_id")?
                .unwrap_or_default(),
            access_jti: row
                .try_get::<Option<String>, _>("access_jti")?
                .unwrap_or_default(),
            access_expires_at: row
                .try_get::<Option<i64>, _>("access_expires_at")?
                .unwrap_or_default(),
        };
        Ok(CodeOutcome::Replayed(code, first))
    }
}

impl RefreshTokenStore for SqlStore {
    async fn insert_refresh(&self, t: &RefreshToken) -> StoreResult<()> {
        let t = t.clone();
        self.write(move |writer| async move {
            insert_result(insert_refresh_query(&t).execute(&writer).await)
        })
        .await
    }

    async fn find_refresh(&self, token_hash: &[u8]) -> StoreResult<Option<RefreshToken>> {
        sqlx::query("SELECT * FROM refresh_tokens WHERE token_hash = $1")
            .bind(token_hash.to_vec())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(refresh_from)
            .transpose()
    }

    async fn find_refresh_grant(&self, token_hash: &[u8]) -> StoreResult<Option<RefreshGrant>> {
        let Some(row) = sqlx::query(concat!(refresh_grant_select!(), "WHERE r.token_hash = $1"))
            .bind(token_hash.to_vec())
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        refresh_grant_from(&row).map(Some)
    }

    async fn rotate_refresh(
        &self,
        old_hash: &[u8],
        successor: &RefreshToken,
        successor_enc: &[u8],
        now: Timestamp,
    ) -> StoreResult<bool> {
        // SQLite: batched with concurrent rotations into one transaction (group commit).
        if let Rotations::Sqlite(queue) = &self.rotations {
            return queue.rotate(old_hash, successor, successor_enc, now).await;
        }
        // PostgreSQL: one statement, one round trip. The UPDATE's row lock decides the winner (a
        // concurrent statement re-checks the WHERE after the winner commits and finds nothing),
        // and the successor is inserted only from the row the UPDATE returned.
        let inserted = bind_refresh(
            sqlx::query(
            "WITH won AS (UPDATE refresh_tokens SET rotated_at = $17, successor_hash = $1, successor_enc = $18 \
             WHERE token_hash = $19 AND rotated_at IS NULL AND revoked_at IS NULL RETURNING 1) \
             INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, session_id, scope, audience, \
             auth_time, amr, created_at, idle_expires_at, expires_at, rotated_at, successor_hash, successor_enc, revoked_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16 FROM won",
            ),
            successor,
        )
        .bind(now)
        .bind(successor_enc.to_vec())
        .bind(old_hash.to_vec())
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    async fn rotate_if_current(
        &self,
        r: &CurrentRotation<'_>,
    ) -> StoreResult<Option<RefreshGrant>> {
        match &self.rotations {
            Rotations::Sqlite(queue) => queue.rotate_current(r).await,
            Rotations::Postgres(queue) => queue.rotate(r).await,
        }
    }

    async fn revoke_family(&self, family_id: &str, now: Timestamp) -> StoreResult<()> {
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(family_id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }
}

fn insert_refresh_query(t: &RefreshToken) -> AnyQuery<'_> {
    bind_refresh(
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, session_id, scope, audience, \
             auth_time, amr, created_at, idle_expires_at, expires_at, rotated_at, successor_hash, successor_enc, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        ),
        t,
    )
}

pub(super) type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// Binds a refresh token's columns as `$1..$16`, in the column order used by every insert.
pub(super) fn bind_refresh<'q>(q: AnyQuery<'q>, t: &'q RefreshToken) -> AnyQuery<'q> {
    q.bind(t.token_hash.clone())
        .bind(&t.family_id)
        .bind(&t.client_id)
        .bind(&t.user_id)
        .bind(&t.session_id)
        .bind(&t.scope)
        .bind(&t.audience)
        .bind(t.auth_time)
        .bind(list(&t.amr))
        .bind(t.created_at)
        .bind(t.idle_expires_at)
        .bind(t.expires_at)
        .bind(t.rotated_at)
        .bind(t.successor_hash.clone())
        .bind(t.successor_enc.clone())
        .bind(t.revoked_at)
}

impl RevocationStore for SqlStore {
    async fn latest_revocation(&self) -> StoreResult<i64> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM revocation_events")
            .fetch_one(&self.pool)
            .await?;
        Ok(seq.unwrap_or(0))
    }

    async fn append_revocation(&self, r: &crate::revocation::Revocation) -> StoreResult<i64> {
        let r = r.clone();
        self.write(move |writer| async move {
            let seq: i64 = sqlx::query_scalar(
                "INSERT INTO revocation_events (kind, subject, at, expires_at) VALUES ($1, $2, $3, $4) RETURNING seq",
            )
            .bind(r.kind.as_str())
            .bind(&r.subject)
            .bind(r.at)
            .bind(r.expires_at)
            .fetch_one(&writer)
            .await?;
            Ok(seq)
        })
        .await
    }

    async fn revocations_after(
        &self,
        after: i64,
        now: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<(i64, crate::revocation::Revocation)>> {
        let rows = sqlx::query(
            "SELECT * FROM revocation_events WHERE seq > $1 AND expires_at > $2 ORDER BY seq LIMIT $3",
        )
        .bind(after)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let kind: String = row.try_get("kind")?;
                let kind = crate::revocation::RevocationKind::parse(&kind)
                    .ok_or_else(|| StoreError::Corrupt(format!("revocation kind {kind}")))?;
                Ok((
                    row.try_get("seq")?,
                    crate::revocation::Revocation {
                        kind,
                        subject: row.try_get("subject")?,
                        at: row.try_get("at")?,
                        expires_at: row.try_get("expires_at")?,
                    },
                ))
            })
            .collect()
    }
}

impl KeyStore for SqlStore {
    async fn insert_key(&self, k: &SigningKeyRecord) -> StoreResult<()> {
        insert_result(
            sqlx::query(
                "INSERT INTO signing_keys (kid, alg, private_enc, public_jwk, created_at, activate_at, expire_at, revoked_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&k.kid)
            .bind(&k.alg)
            .bind(k.private_enc.clone())
            .bind(&k.public_jwk)
            .bind(k.created_at)
            .bind(k.activate_at)
            .bind(k.expire_at)
            .bind(k.revoked_at)
            .execute(&self.writer)
            .await,
        )
    }

    async fn live_keys(&self, now: Timestamp) -> StoreResult<Vec<SigningKeyRecord>> {
        sqlx::query(
            "SELECT * FROM signing_keys WHERE revoked_at IS NULL AND (expire_at IS NULL OR expire_at > $1) \
             ORDER BY activate_at, created_at",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(key_from)
        .collect()
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

impl ConsentStore for SqlStore {
    async fn find_consent(&self, user_id: &str, client_id: &str) -> StoreResult<Vec<String>> {
        let row = sqlx::query("SELECT scopes FROM consents WHERE user_id = $1 AND client_id = $2")
            .bind(user_id)
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => parse_list(&row, "scopes"),
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

fn audit_from(row: &AnyRow) -> StoreResult<crate::audit::AuditRecord> {
    Ok(crate::audit::AuditRecord {
        seq: row.try_get("seq")?,
        at: row.try_get("at")?,
        action: row.try_get("action")?,
        actor: row.try_get("actor")?,
        subject: row.try_get("subject")?,
        ip: row.try_get("ip")?,
        user_agent: row.try_get("user_agent")?,
        detail: row.try_get("detail")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// PostgreSQL: appends an event as the successor of the head this process last saw, in one
/// statement: the head moves only if it is still where this process left it (compare-and-set on
/// its sequence number), and the event is inserted only if it moved.
/// The head's new MAC (`$11`) is computed by the process before the statement: the database never
/// sees the key. Comparing the last hash (`$9`) too means a head forged in between is never
/// overwritten with a genuine MAC by this path; the locked path then finds it forged.
const APPEND_AFTER_KNOWN_HEAD: &str = "WITH head AS (UPDATE audit_head SET seq = $1, last_hash = $10, head_mac = $11 \
     WHERE id = 1 AND seq = $1 - 1 AND last_hash = $9 RETURNING seq) \
     INSERT INTO audit_events (seq, at, action, actor, subject, ip, user_agent, detail, prev_hash, hash) \
     SELECT seq, $2, $3, $4, $5, $6, $7, $8, $9, $10 FROM head";

/// Binds an audit entry's columns as `$1`..`$10`, in `audit_events` order: sequence number,
/// time, the event's fields, detail, the previous hash and the entry's hash.
fn bind_entry<'q>(
    query: AnyQuery<'q>,
    (seq, at): (i64, Timestamp),
    e: &'q crate::audit::AuditEvent,
    detail: &'q str,
    prev: Vec<u8>,
    hash: Vec<u8>,
) -> AnyQuery<'q> {
    query
        .bind(seq)
        .bind(at)
        .bind(&e.action)
        .bind(&e.actor)
        .bind(&e.subject)
        .bind(&e.ip)
        .bind(&e.user_agent)
        .bind(detail)
        .bind(prev)
        .bind(hash)
}

impl SqlStore {
    /// Appends after whatever the head is: takes the head row's lock first, so appends from
    /// every process queue there. Returns the new head.
    async fn append_audit_locked(
        &self,
        crypto: &Arc<crate::crypto::Crypto>,
        at: Timestamp,
        e: &crate::audit::AuditEvent,
    ) -> StoreResult<AuditHead> {
        let (crypto, e) = (Arc::clone(crypto), e.clone());
        self.write(move |writer| async move {
            let mut tx = writer.begin().await?;
            let head = sqlx::query(
                "UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, last_hash, head_mac",
            )
            .fetch_one(&mut *tx)
            .await?;
            let seq: i64 = head.try_get("seq")?;
            let prev: Vec<u8> = head.try_get("last_hash")?;
            let prev_mac: Option<Vec<u8>> = head.try_get("head_mac")?;
            // The head this entry extends must be one a process with the master key wrote;
            // otherwise the new head stays unsealed (an empty MAC), so appending never launders a
            // truncated tail and `tessera audit verify` keeps failing until an operator looks.
            let authentic =
                crate::audit::head_is_authentic(&crypto, seq - 1, &prev, prev_mac.as_deref());
            let detail = e.detail.to_string();
            let hash = crate::audit::event_link(&crypto, &prev, seq, at, &e, &detail);
            let new_mac = if authentic {
                crate::audit::head_mac(&crypto, seq, &hash)
            } else {
                tracing::error!(
                    entry = seq - 1,
                    "the audit log's head is not authenticated (moved or its MAC removed without \
                     the master key); appending anyway and leaving it unsealed: run `tessera audit verify`"
                );
                Vec::new()
            };
            let insert = sqlx::query(
                "INSERT INTO audit_events (seq, at, action, actor, subject, ip, user_agent, detail, prev_hash, hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            );
            bind_entry(insert, (seq, at), &e, &detail, prev, hash.clone())
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE audit_head SET last_hash = $1, head_mac = $2 WHERE id = 1")
                .bind(hash.clone())
                .bind(new_mac)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok((seq, hash))
        })
        .await
    }

    /// PostgreSQL: one round trip instead of five when no other process appended since this one
    /// last did; `None` when one did (the caller then takes the locked path).
    pub(super) async fn append_audit_after(
        &self,
        crypto: &crate::crypto::Crypto,
        (seq, prev): AuditHead,
        at: Timestamp,
        e: &crate::audit::AuditEvent,
    ) -> StoreResult<Option<AuditHead>> {
        let next = seq + 1;
        let detail = e.detail.to_string();
        let hash = crate::audit::event_link(crypto, &prev, next, at, e, &detail);
        let query = sqlx::query(APPEND_AFTER_KNOWN_HEAD);
        let mac = crate::audit::head_mac(crypto, next, &hash);
        let appended = bind_entry(query, (next, at), e, &detail, prev, hash.clone())
            .bind(mac)
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok((appended == 1).then_some((next, hash)))
    }
}

impl AuditStore for SqlStore {
    async fn append_audit(
        &self,
        crypto: &Arc<crate::crypto::Crypto>,
        at: Timestamp,
        e: &crate::audit::AuditEvent,
    ) -> StoreResult<i64> {
        if self.backend == Backend::Sqlite {
            // One writer in one process: the transaction costs no round trips.
            return Ok(self.append_audit_locked(crypto, at, e).await?.0);
        }
        let mut known = self.audit_head.lock().await;
        // On an error the head is unknown (the statement may have committed): it stays `None`,
        // and the next append takes the locked path.
        let appended = match known.take() {
            Some(head) => self.append_audit_after(crypto, head, at, e).await?,
            None => None,
        };
        let new = match appended {
            Some(new) => new,
            None => self.append_audit_locked(crypto, at, e).await?,
        };
        let seq = new.0;
        *known = Some(new);
        Ok(seq)
    }

    async fn audit_after(
        &self,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<crate::audit::AuditRecord>> {
        sqlx::query("SELECT * FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2")
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(audit_from)
            .collect()
    }

    async fn audit_tail(&self, limit: i64) -> StoreResult<Vec<crate::audit::AuditRecord>> {
        sqlx::query("SELECT * FROM audit_events ORDER BY seq DESC LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(audit_from)
            .collect()
    }

    async fn audit_head(&self) -> StoreResult<(i64, Vec<u8>, Option<Vec<u8>>)> {
        let row = sqlx::query("SELECT seq, last_hash, head_mac FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok((
            row.try_get("seq")?,
            row.try_get("last_hash")?,
            row.try_get("head_mac")?,
        ))
    }

    async fn seal_audit_head(&self, crypto: &crate::crypto::Crypto) -> StoreResult<Option<i64>> {
        // The UPDATE below only seals the head read here if it is still unsealed and unmoved.
        let (seq, hash, mac) = self.audit_head().await?;
        if mac.is_some() {
            return Ok(None);
        }
        let sealed = sqlx::query(
            "UPDATE audit_head SET head_mac = $1 \
             WHERE id = 1 AND seq = $2 AND last_hash = $3 AND head_mac IS NULL",
        )
        .bind(crate::audit::head_mac(crypto, seq, &hash))
        .bind(seq)
        .bind(hash)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok((sealed == 1).then_some(seq))
    }
}

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

/// Dead rows per table: `$1` is now, `$2` the batch size. Kept a day past their end where they
/// still help forensics or replay detection; refresh tokens until their family's absolute end.
/// One condition per statement, each served by an index (an OR of two conditions scanned the
/// whole table, so each batch grew slower with the rows stored).
const PURGES: &[&str] = &[
    "DELETE FROM auth_codes WHERE code_hash IN \
     (SELECT code_hash FROM auth_codes WHERE expires_at < $1 - 86400 LIMIT $2)",
    "DELETE FROM refresh_tokens WHERE token_hash IN \
     (SELECT token_hash FROM refresh_tokens WHERE expires_at < $1 LIMIT $2)",
    "DELETE FROM refresh_tokens WHERE token_hash IN \
     (SELECT token_hash FROM refresh_tokens WHERE revoked_at < $1 - 86400 LIMIT $2)",
    "DELETE FROM sessions WHERE id IN \
     (SELECT id FROM sessions WHERE expires_at < $1 - 86400 LIMIT $2)",
    "DELETE FROM sessions WHERE id IN \
     (SELECT id FROM sessions WHERE revoked_at < $1 - 86400 LIMIT $2)",
    "DELETE FROM account_tokens WHERE token_hash IN \
     (SELECT token_hash FROM account_tokens WHERE expires_at < $1 - 86400 LIMIT $2)",
    "DELETE FROM revocation_events WHERE seq IN \
     (SELECT seq FROM revocation_events WHERE expires_at < $1 LIMIT $2)",
];

impl PurgeStore for SqlStore {
    async fn purge_expired(&self, now: Timestamp, batch: i64) -> StoreResult<u64> {
        let mut deleted = 0;
        for sql in PURGES {
            deleted += sqlx::query(*sql)
                .bind(now)
                .bind(batch)
                .execute(&self.writer)
                .await?
                .rows_affected();
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::random_id;

    /// Every purge statement finds its rows through an index: none scans a table whole.
    #[tokio::test]
    async fn purge_statements_search_indexes_instead_of_scanning_tables() {
        let dir = std::env::temp_dir().join(format!("tessera-purge-{}", random_id()));
        let store = SqlStore::connect(&format!("sqlite://{}/t.db", dir.display()), 1)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        for sql in PURGES {
            let plan = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .bind(1_000_000_i64)
                .bind(500_i64)
                .fetch_all(&store.pool)
                .await
                .unwrap();
            let steps: Vec<String> = plan
                .iter()
                .map(|row| row.try_get::<String, _>("detail").unwrap())
                .collect();
            assert!(
                steps.iter().all(|s| !s.starts_with("SCAN")),
                "{sql}: {steps:?}"
            );
            assert!(
                steps.iter().any(|s| s.contains("USING")),
                "{sql}: {steps:?}"
            );
        }
        store.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}
