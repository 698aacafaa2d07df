//! Starting the servers under test and bootstrapping them through Tessera's own CLI.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn label(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL+Redis",
        }
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut b).expect("random");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

async fn wait_ready(url: &str, child: &mut Child, log: &Path) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        if Instant::now() > deadline || matches!(child.try_wait(), Ok(Some(_))) {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            panic!("server at {url} did not start:\n{tail}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub struct Tessera {
    pub base: String,
    pub env: Vec<(String, String)>,
    pub database_url: String,
    bin: PathBuf,
    child: Child,
    dir: PathBuf,
}

impl Tessera {
    pub async fn start(bin: &Path, backend: Backend, extra: &[(&str, &str)]) -> Tessera {
        let dir = std::env::temp_dir().join(format!("tessera-bench-{}", random_hex(6)));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let database_url = match backend {
            Backend::Sqlite => format!("sqlite://{}/tessera.db", dir.display()),
            Backend::Postgres => create_pg_database().await,
        };
        let mut env = vec![
            ("TESSERA_LISTEN".to_string(), format!("127.0.0.1:{port}")),
            ("TESSERA_ISSUER".to_string(), base.clone()),
            ("TESSERA_DATA_DIR".to_string(), dir.display().to_string()),
            ("TESSERA_DATABASE_URL".to_string(), database_url.clone()),
            (
                "TESSERA_MASTER_KEY".to_string(),
                URL_SAFE_NO_PAD.encode(random_hex(16).as_bytes()),
            ),
            ("TESSERA_LOG".to_string(), "warn".to_string()),
            // `/metrics` answers only to this token (see `server_time::METRICS_TOKEN`).
            (
                "TESSERA_METRICS_TOKEN".to_string(),
                crate::server_time::METRICS_TOKEN.to_string(),
            ),
            // No mail is sent; PostgreSQL without `smtp_url` needs this said explicitly.
            ("TESSERA_MAIL_TO_LOG".to_string(), "true".to_string()),
            // The purge runs during the measurements: the scale steps store expired rows and
            // measure while they are deleted.
            ("TESSERA_PURGE_INTERVAL".to_string(), "5s".to_string()),
            // The harness is one client from one address: the abuse limits would measure themselves.
            ("TESSERA_TOKEN_RATE_LIMIT".to_string(), "0".to_string()),
            ("TESSERA_SIGNIN_RATE_LIMIT".to_string(), "0".to_string()),
            (
                "TESSERA_DATABASE_MAX_CONNECTIONS".to_string(),
                "16".to_string(),
            ),
        ];
        if backend == Backend::Postgres {
            let redis = std::env::var("TESSERA_BENCH_REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
            env.push(("TESSERA_REDIS_URL".to_string(), redis));
            env.push((
                "TESSERA_REDIS_PREFIX".to_string(),
                format!("bench-{}", random_hex(4)),
            ));
        }
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push((k.to_string(), v.to_string()));
        }
        let log = dir.join("server.log");
        let child = Command::new(bin)
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .kill_on_drop(true)
            .spawn()
            .expect("start tessera");
        let mut t = Tessera {
            base,
            env,
            database_url,
            bin: bin.to_path_buf(),
            child,
            dir,
        };
        wait_ready(&format!("{}/readyz", t.base), &mut t.child, &log).await;
        t
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    pub async fn cli(&self, args: &[&str], stdin: &str) -> String {
        let mut child = Command::new(&self.bin)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run tessera cli");
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.as_bytes()).await.expect("stdin");
        }
        let out = child.wait_with_output().await.expect("cli output");
        assert!(
            out.status.success(),
            "tessera {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
        let _ = std::fs::remove_dir_all(&self.dir);
        // A PostgreSQL run leaves no database behind (autovacuum visits every one).
        if let Some((_, name)) = self.database_url.rsplit_once('/')
            && self.database_url.starts_with("postgres")
            && let Ok(pool) = sqlx::AnyPool::connect(&pg_admin_url()).await
        {
            let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
                .execute(&pool)
                .await;
            pool.close().await;
        }
    }
}

fn pg_admin_url() -> String {
    std::env::var("TESSERA_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

async fn create_pg_database() -> String {
    sqlx::any::install_default_drivers();
    let admin = pg_admin_url();
    let name = format!("tessera_bench_{}", random_hex(6));
    let pool = sqlx::AnyPool::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {admin}: {e}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .expect("create database");
    pool.close().await;
    let (prefix, _) = admin.rsplit_once('/').expect("database URL");
    format!("{prefix}/{name}")
}

pub struct OidcProvider {
    pub base: String,
    child: Child,
}

impl OidcProvider {
    /// Starts bench/oidc-provider/server.mjs (after `npm ci` in that folder).
    pub async fn start(folder: &Path, secret: &str) -> OidcProvider {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("oidc-provider-{port}.log"));
        let child = Command::new("node")
            .arg(folder.join("server.mjs"))
            .arg(port.to_string())
            .arg(secret)
            .env("NODE_ENV", "production")
            .stdout(std::fs::File::create(&log).expect("log file"))
            .stderr(
                std::fs::File::options()
                    .append(true)
                    .open(&log)
                    .expect("log file"),
            )
            .kill_on_drop(true)
            .spawn()
            .expect("start node (is Node.js installed?)");
        let base = format!("http://127.0.0.1:{port}");
        let mut p = OidcProvider { base, child };
        wait_ready(
            &format!("{}/.well-known/openid-configuration", p.base),
            &mut p.child,
            &log,
        )
        .await;
        p
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
