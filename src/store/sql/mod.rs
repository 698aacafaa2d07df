//! The one store implementation: the same SQL on SQLite (embedded default) and PostgreSQL,
//! through sqlx's `Any` driver. Only `$n` placeholders, `BIGINT`-compatible integers, text and
//! bytes are used, so both backends behave identically (how values are stored: [`row`]).
//!
//! This module opens the store and runs its writes; each capability's trait is implemented in
//! a module of its own, and the row types are declared in `store::columns`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};

use super::checkpoint;
use super::group_commit::RotationQueue;
use super::group_commit_pg::PgRotationQueue;
use super::{Backend, StoreError, StoreResult};
use row::Record;

mod account_tokens;
mod admin_users;
mod audit;
mod backchannel;
mod clients;
mod codes;
mod consent;
mod keys;
mod mfa;
mod purge;
mod refresh;
mod revocations;
pub(super) mod row;
mod sessions;
mod users;

pub(super) use refresh::refresh_grant_from;

/// A statement with its parameters bound so far.
pub(super) type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

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
    audit_head: Arc<tokio::sync::Mutex<Option<audit::AuditHead>>>,
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

    /// The row a read finds, if any.
    async fn read_one<T: Record>(&self, query: AnyQuery<'_>) -> StoreResult<Option<T>> {
        query
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(T::from_row)
            .transpose()
    }

    /// Every row a read finds, in its order.
    async fn read_all<T: Record>(&self, query: AnyQuery<'_>) -> StoreResult<Vec<T>> {
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(T::from_row)
            .collect()
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
