//! Starting, stopping and restarting one Tessera server per test (and its replicas): its
//! directory, port, settings and the browser and back-channel clients that talk to it.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::cookie::Jar;
use reqwest::{Response, StatusCode};
use tokio::process::{Child, Command};

use super::database::{
    Backend, PostgresDatabase, backend, create_postgres_database, drop_postgres_database,
    test_redis_url,
};
use super::random::random_lowercase_alphanumeric;
use super::random_bytes;

const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Settings a test adds to the server's environment before it starts.
#[derive(Debug, Default, Clone)]
pub struct AppConfig {
    env: Vec<(String, String)>,
}

impl AppConfig {
    pub fn env(&mut self, key: &str, value: &str) -> &mut Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }
}

/// A port for a test server that no other test of this run is handed. Ports come from below
/// the kernel's ephemeral range (32768-60999 on Linux), so the clients' own outgoing connections
/// never take them, and from a counter, so two tests never get the same one (a port asked of the
/// kernel with `:0` and released could be handed out again before the server binds it).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 12_000;
    const SPAN: u32 = 20_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Each test process starts at its own place, so two runs side by side rarely meet.
    let start = std::process::id().wrapping_mul(2_654_435_761) % SPAN;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = (FIRST + (start + n) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {FIRST} and {}", FIRST + SPAN)
}

fn browser_with(jar: Arc<Jar>) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(jar)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build the browser client")
}

fn backchannel_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build the back-channel client")
}

/// The bearer token test servers require for `/metrics` (setting `metrics_token`).
pub const METRICS_TOKEN: &str = "tessera-it-metrics-token";

/// Starts a Tessera server with the default settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts a Tessera server with extra settings, e.g.
/// `spawn_app_with(|c| { c.env("TESSERA_ACCESS_TOKEN_TTL", "2s"); })`.
pub async fn spawn_app_with(configure: impl FnOnce(&mut AppConfig)) -> TestApp {
    let mut app = prepare_app_with(configure).await;
    app.start().await;
    app
}

/// Starts a server whose issuer is `https://localhost:<port>`, as behind a TLS-terminating proxy;
/// the server itself still listens on plain HTTP at `address`.
pub async fn spawn_https_app() -> TestApp {
    // An https issuer needs a mail transport or mail-to-log chosen explicitly.
    let mut app = prepare_app_with(|c| {
        c.env("TESSERA_MAIL_TO_LOG", "true");
    })
    .await;
    app.issuer = format!("https://localhost:{}", app.port);
    let issuer = app.issuer.clone();
    app.env.push(("TESSERA_ISSUER".to_owned(), issuer));
    app.start().await;
    app
}

/// Starts a server whose issuer is `http://localhost:<port>` (requests still go to
/// `address`): WebAuthn refuses IP addresses as relying-party ids, so passkeys need a name.
pub async fn spawn_localhost_app() -> TestApp {
    spawn_localhost_app_with(|_| {}).await
}

/// [`spawn_localhost_app`] with extra settings.
pub async fn spawn_localhost_app_with(configure: impl FnOnce(&mut AppConfig)) -> TestApp {
    let mut app = prepare_app_with(configure).await;
    app.issuer = format!("http://localhost:{}", app.port);
    let issuer = app.issuer.clone();
    app.env.push(("TESSERA_ISSUER".to_owned(), issuer));
    app.start().await;
    app
}

/// Prepares everything a server needs (directory, database, settings) without starting it.
pub async fn prepare_app_with(configure: impl FnOnce(&mut AppConfig)) -> TestApp {
    let dir =
        std::env::temp_dir().join(format!("tessera-it-{}", random_lowercase_alphanumeric(12)));
    std::fs::create_dir_all(&dir).expect("create the test's temporary directory");
    let port = free_port();
    let address = format!("http://127.0.0.1:{port}");

    let (postgres, database_url) = match backend() {
        Backend::Sqlite => (
            None,
            format!("sqlite://{}", dir.join("tessera.db").display()),
        ),
        Backend::Postgres => {
            let (db, url) = create_postgres_database().await;
            (Some(db), url)
        }
    };

    let mut env = vec![
        ("TESSERA_LISTEN".to_owned(), format!("127.0.0.1:{port}")),
        ("TESSERA_ISSUER".to_owned(), address.clone()),
        ("TESSERA_DATABASE_URL".to_owned(), database_url),
        ("TESSERA_DATA_DIR".to_owned(), dir.display().to_string()),
        (
            "TESSERA_MASTER_KEY".to_owned(),
            URL_SAFE_NO_PAD.encode(random_bytes::<32>()),
        ),
        ("TESSERA_LOG".to_owned(), "warn".to_owned()),
        // `/metrics` is off on the public listener unless a token is set (a test that wants
        // the default sets this to the empty string).
        ("TESSERA_METRICS_TOKEN".to_owned(), METRICS_TOKEN.to_owned()),
    ];
    // Without `smtp_url`, PostgreSQL needs mail-to-log chosen explicitly (tests that read mail
    // set `TESSERA_SMTP_URL` to a sink).
    if backend() == Backend::Postgres {
        env.push(("TESSERA_MAIL_TO_LOG".to_owned(), "true".to_owned()));
    }
    // On the PostgreSQL run, Redis joins in too (a prefix per app keeps parallel tests apart).
    if let Some(redis) = test_redis_url() {
        env.push(("TESSERA_REDIS_URL".to_owned(), redis));
        env.push((
            "TESSERA_REDIS_PREFIX".to_owned(),
            format!("tessera-it-{}", random_lowercase_alphanumeric(12)),
        ));
    }
    let mut config = AppConfig::default();
    configure(&mut config);
    env.extend(config.env);

    let jar = Arc::new(Jar::default());
    TestApp {
        issuer: address.clone(),
        address,
        port,
        client: browser_with(jar.clone()),
        jar,
        backchannel: backchannel_client(),
        dir,
        env,
        server: None,
        postgres,
    }
}

/// One running Tessera server and the clients that talk to it.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`
    pub address: String,
    /// The issuer the server was configured with: the same as `address`, except on a
    /// replica, which shares the first app's issuer.
    pub issuer: String,
    pub port: u16,
    /// A browser: keeps cookies, never follows redirects.
    pub client: reqwest::Client,
    pub jar: Arc<Jar>,
    /// A relying party's back channel: no cookies, never follows redirects.
    pub backchannel: reqwest::Client,
    pub dir: PathBuf,
    env: Vec<(String, String)>,
    server: Option<Child>,
    pub(super) postgres: Option<PostgresDatabase>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.start_kill();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- tessera server log ({}) ---\n{}\n--- end of server log ---",
                self.log_path().display(),
                self.log_tail(8_000)
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        if let Some(db) = self.postgres.take() {
            drop_postgres_database(db);
        }
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// The last `max` bytes of the server's combined stdout/stderr.
    pub fn log_tail(&self, max: u64) -> String {
        let Ok(mut file) = std::fs::File::open(self.log_path()) else {
            return "(no log file)".to_owned();
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(max)));
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// A `tessera` command with this app's environment and nothing inherited from ours.
    pub(super) fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("TESSERA_") {
                cmd.env_remove(&key);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.current_dir(&self.dir);
        cmd.kill_on_drop(true);
        cmd
    }

    /// Starts `tessera serve` and waits until `/readyz` answers 200.
    pub async fn start(&mut self) {
        assert!(self.server.is_none(), "the server is already running");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the server log");
        let mut cmd = self.command();
        cmd.arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone the log handle")))
            .stderr(Stdio::from(log));
        self.server = Some(cmd.spawn().expect("start `tessera serve`"));
        self.wait_until_ready().await;
    }

    async fn wait_until_ready(&mut self) {
        let probe = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("build the readiness client");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self
                .server
                .as_mut()
                .and_then(|s| s.try_wait().ok().flatten())
            {
                self.server = None;
                panic!("`tessera serve` exited ({status}) before it was ready (its log follows)");
            }
            if let Ok(resp) = probe.get(self.url("/readyz")).send().await
                && resp.status() == StatusCode::OK
            {
                return;
            }
            if Instant::now() > deadline {
                panic!("`tessera serve` was not ready within {READY_TIMEOUT:?} (its log follows)");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills the server process and waits for it to be gone.
    pub async fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.kill().await.expect("kill the server");
        }
    }

    /// Stops the server and starts it again on the same port, database, data
    /// directory and master key. The browser keeps its cookies.
    pub async fn restart(&mut self) {
        self.stop().await;
        // Pooled connections went down with the old process.
        self.client = browser_with(self.jar.clone());
        self.backchannel = backchannel_client();
        self.start().await;
    }

    /// A GET from the browser.
    pub async fn get(&self, path_and_query: &str) -> Response {
        self.client
            .get(self.url(path_and_query))
            .send()
            .await
            .expect("GET from the browser")
    }

    /// A browser of its own: its own cookies, never follows redirects.
    pub fn new_browser(&self) -> reqwest::Client {
        browser_with(Arc::new(Jar::default()))
    }

    /// The value this app's `tessera` processes see for a setting (the last one set wins).
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Starts a second `tessera serve` of this app's configuration: the same database, master
    /// key, issuer (this app's address) and, with Redis, the same Redis and prefix; its own
    /// port, data directory, log, browser and back channel.
    pub async fn spawn_replica(&self) -> TestApp {
        self.spawn_replica_with(|_| {}).await
    }

    pub async fn spawn_replica_with(&self, configure: impl FnOnce(&mut AppConfig)) -> TestApp {
        let dir = std::env::temp_dir().join(format!(
            "tessera-it-replica-{}",
            random_lowercase_alphanumeric(12)
        ));
        std::fs::create_dir_all(&dir).expect("create the replica's temporary directory");
        let port = free_port();
        let address = format!("http://127.0.0.1:{port}");
        let mut env: Vec<(String, String)> = self
            .env
            .iter()
            .filter(|(k, _)| k != "TESSERA_LISTEN" && k != "TESSERA_DATA_DIR")
            .cloned()
            .collect();
        env.push(("TESSERA_LISTEN".to_owned(), format!("127.0.0.1:{port}")));
        env.push(("TESSERA_DATA_DIR".to_owned(), dir.display().to_string()));
        let mut config = AppConfig::default();
        configure(&mut config);
        env.extend(config.env);

        let jar = Arc::new(Jar::default());
        let mut replica = TestApp {
            issuer: self.issuer.clone(),
            address,
            port,
            client: browser_with(jar.clone()),
            jar,
            backchannel: backchannel_client(),
            dir,
            env,
            server: None,
            // The database belongs to the first app; it drops it.
            postgres: None,
        };
        replica.start().await;
        replica
    }
}
