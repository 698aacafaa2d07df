//! The operator's user list over many users: the server time of `admin::users::list` (the
//! engine call the console, the API and `tessera user list` make), measured in process on a
//! migrated database of its own, on SQLite and PostgreSQL.
//!
//! ```sh
//! cargo run --release -p tessera-bench --bin user_list -- --backend both --users 10000 --runs 300
//! ```
//! PostgreSQL: `TESSERA_BENCH_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`)
//! names a server where a fresh database is created.

use std::time::{Duration, Instant};

use tessera::admin::users::{self, ListInput, UserRules};
use tessera::audit::AuditEvent;
use tessera::config::Config;
use tessera::crypto::MasterKey;
use tessera::mail::Mailer;
use tessera::store::UserSort;

struct Args {
    backends: Vec<&'static str>,
    users: usize,
    runs: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        backends: vec!["sqlite", "postgres"],
        users: 10_000,
        runs: 300,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--backend" => {
                args.backends = match value.as_str() {
                    "sqlite" => vec!["sqlite"],
                    "postgres" => vec!["postgres"],
                    "both" => vec!["sqlite", "postgres"],
                    other => panic!("--backend sqlite|postgres|both, not {other}"),
                }
            }
            "--users" => args.users = value.parse().expect("--users N"),
            "--runs" => args.runs = value.parse().expect("--runs N"),
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

fn random_suffix() -> String {
    tessera::crypto::random_id()
        .to_lowercase()
        .replace(['-', '_'], "")
}

async fn database_url(backend: &str, dir: &std::path::Path) -> String {
    if backend == "sqlite" {
        return format!("sqlite://{}/bench.db", dir.display());
    }
    let base = std::env::var("TESSERA_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&base).await.expect("PostgreSQL");
    let name = format!("tessera_userlist_{}", random_suffix());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .expect("create the bench database");
    admin.close().await;
    let (prefix, _) = base.rsplit_once('/').expect("a database URL");
    format!("{prefix}/{name}")
}

/// `n` users created over n/3 seconds (three per second: equal keys), half of them signed in,
/// every third with an authenticator app.
async fn populate(url: &str, n: usize) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.expect("bench database");
    let users = format!(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) \
         INSERT INTO users (id, email, name, roles, password_hash, disabled, email_verified, \
         created_at, updated_at, last_signin_at) \
         SELECT 'u-' || x, 'user' || x || '@bench.example', 'User ' || x, '[]', '!unusable', \
         CASE WHEN x % 50 = 0 THEN 1 ELSE 0 END, 1, 1800000000 + x / 3, 1800000000 + x / 3, \
         CASE WHEN x % 2 = 0 THEN 1800100000 + x ELSE 0 END FROM c"
    );
    let factors = format!(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) \
         INSERT INTO mfa_factors (id, user_id, kind, name, created_at, passwordless) \
         SELECT 'f-' || x, 'u-' || x, 'totp', 'Phone', 1800000000, 0 FROM c WHERE x % 3 = 0"
    );
    for sql in [users, factors, "ANALYZE".to_string()] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .expect("populate");
    }
    pool.close().await;
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    println!(
        "| backend | list ({} users) | median | p99 | rows |",
        args.users
    );
    println!("|---|---|---|---|---|");
    for backend in &args.backends {
        let dir = std::env::temp_dir().join(format!("tessera-userlist-{}", random_suffix()));
        std::fs::create_dir_all(&dir).expect("a temp folder");
        let url = database_url(backend, &dir).await;
        let config = Config {
            database_url: Some(url.clone()),
            data_dir: dir.clone(),
            master_key: Some(MasterKey::generate()),
            database_max_connections: 4,
            ..Config::default()
        };
        // Migrates the database.
        let p = tessera::startup::provider(&config).await.expect("provider");
        populate(&url, args.users).await;
        // A few recorded lock-outs (long over by now): the "locked" filter's candidates.
        for x in (7..args.users).step_by(args.users / 20 + 1) {
            p.audit(
                AuditEvent::new("signin.locked")
                    .subject(format!("u-{x}"))
                    .detail("seconds", 60),
            )
            .await;
        }
        let mailer = Mailer::Log;
        let rules = UserRules::from_config(&config, &mailer);
        let cases: Vec<(&str, ListInput)> = vec![
            ("first page, newest created", ListInput::default()),
            (
                "first page, last sign-in",
                ListInput {
                    sort: UserSort::LastSignIn,
                    ..ListInput::default()
                },
            ),
            (
                "search `er12` (substring)",
                ListInput {
                    query: "er12".into(),
                    ..ListInput::default()
                },
            ),
            (
                "without MFA",
                ListInput {
                    without_mfa: true,
                    ..ListInput::default()
                },
            ),
            (
                "disabled",
                ListInput {
                    disabled: true,
                    ..ListInput::default()
                },
            ),
            (
                "locked",
                ListInput {
                    locked: true,
                    ..ListInput::default()
                },
            ),
        ];
        for (label, input) in cases {
            let mut times = Vec::with_capacity(args.runs);
            let mut rows = 0;
            // Warm-up: prepared statements and caches, as a running server has them.
            for _ in 0..10 {
                users::list(&p, &rules, &input).await.expect("list");
            }
            // The page after the first, too (a keyset page, not an offset).
            let mut next = input.clone();
            next.cursor = users::list(&p, &rules, &input).await.expect("list").next;
            for _ in 0..args.runs {
                let started = Instant::now();
                let page = users::list(&p, &rules, &input).await.expect("list");
                times.push(started.elapsed());
                rows = page.users.len();
            }
            times.sort();
            println!(
                "| {backend} | {label} | {:.2} ms | {:.2} ms | {rows} |",
                millis(times[times.len() / 2]),
                millis(times[(times.len() * 99 / 100).min(times.len() - 1)]),
            );
            if next.cursor.is_some() && label.starts_with("first page") {
                let started = Instant::now();
                let page = users::list(&p, &rules, &next).await.expect("list");
                println!(
                    "| {backend} | {label}: the second page (once) | {:.2} ms | | {} |",
                    millis(started.elapsed()),
                    page.users.len()
                );
            }
        }
        p.store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
