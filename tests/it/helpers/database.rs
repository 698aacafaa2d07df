//! The backend of this run: SQLite by default, PostgreSQL (a database of its own per test)
//! with `TESSERA_TEST_BACKEND=postgres`, plus Redis when `TESSERA_TEST_REDIS_URL` is set; and
//! SQL run behind the server's back.

use std::time::Duration;

use sqlx::Connection as _;
use url::Url;

use super::TestApp;
use super::random::random_lowercase_alphanumeric;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Backend {
    Sqlite,
    Postgres,
}

pub(super) fn backend() -> Backend {
    match std::env::var("TESSERA_TEST_BACKEND").as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => Backend::Sqlite,
        Ok("postgres") => Backend::Postgres,
        Ok(other) => panic!("TESSERA_TEST_BACKEND must be `sqlite` or `postgres`, not `{other}`"),
    }
}

/// A PostgreSQL database made for one test, dropped when the test ends.
pub(super) struct PostgresDatabase {
    admin_url: String,
    name: String,
}

pub(super) async fn create_postgres_database() -> (PostgresDatabase, String) {
    let admin_url = std::env::var("TESSERA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let unreachable = |why: String| -> ! {
        panic!(
            "\n\n\
             ==================================================================\n\
             TESSERA_TEST_BACKEND=postgres, but PostgreSQL is UNREACHABLE\n\
             at {admin_url}:\n  {why}\n\
             Start PostgreSQL or point TESSERA_TEST_POSTGRES_URL at one.\n\
             These tests never skip.\n\
             ==================================================================\n"
        )
    };
    let mut conn = match tokio::time::timeout(
        Duration::from_secs(10),
        sqlx::postgres::PgConnection::connect(&admin_url),
    )
    .await
    {
        Ok(Ok(conn)) => conn,
        Ok(Err(err)) => unreachable(err.to_string()),
        Err(_) => unreachable("no answer within 10 s".to_owned()),
    };
    let name = format!("tessera_it_{}", random_lowercase_alphanumeric(16));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|err| panic!("could not create the test database {name}: {err}"));
    conn.close().await.ok();

    let mut url = Url::parse(&admin_url).expect("TESSERA_TEST_POSTGRES_URL is a URL");
    url.set_path(&format!("/{name}"));
    (PostgresDatabase { admin_url, name }, url.to_string())
}

pub(super) fn drop_postgres_database(db: PostgresDatabase) {
    // Best effort, from a thread of its own: Drop cannot await.
    let _ = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            if let Ok(mut conn) = sqlx::postgres::PgConnection::connect(&db.admin_url).await {
                let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.name);
                let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await;
                let _ = conn.close().await;
            }
        });
    })
    .join();
}

/// The Redis every app of this run shares: only on the PostgreSQL run, and only when
/// TESSERA_TEST_REDIS_URL is set.
pub(super) fn test_redis_url() -> Option<String> {
    if backend() != Backend::Postgres {
        return None;
    }
    std::env::var("TESSERA_TEST_REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// Whether this run's servers use PostgreSQL (`TESSERA_TEST_BACKEND=postgres`).
pub fn postgres_in_this_run() -> bool {
    backend() == Backend::Postgres
}

/// Whether the apps of this run share revocations over Redis pub/sub (known before any starts).
pub fn redis_in_this_run() -> bool {
    test_redis_url().is_some()
}

impl TestApp {
    /// On the PostgreSQL run, the administration URL and the name of this test's database.
    pub fn postgres_database(&self) -> Option<(&str, &str)> {
        self.postgres
            .as_ref()
            .map(|db| (db.admin_url.as_str(), db.name.as_str()))
    }

    /// Whether the server shares revocations over Redis (the PostgreSQL run with Redis).
    pub fn uses_redis(&self) -> bool {
        self.setting("TESSERA_REDIS_URL")
            .is_some_and(|url| !url.is_empty())
    }

    pub fn database_url(&self) -> String {
        self.setting("TESSERA_DATABASE_URL")
            .expect("every app has a database URL")
            .to_owned()
    }

    /// Runs one SQL statement directly against the app's database (SQLite or PostgreSQL),
    /// behind the server's back. Returns the number of rows affected.
    pub async fn execute_sql(&self, sql: &str) -> u64 {
        let url = self.database_url();
        if url.starts_with("sqlite:") {
            let mut conn = sqlx::sqlite::SqliteConnection::connect(&url)
                .await
                .unwrap_or_else(|e| panic!("open {url}: {e}"));
            let done = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"));
            conn.close().await.ok();
            done.rows_affected()
        } else {
            let mut conn = sqlx::postgres::PgConnection::connect(&url)
                .await
                .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
            let done = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("`{sql}` failed: {e}"));
            conn.close().await.ok();
            done.rows_affected()
        }
    }
}
