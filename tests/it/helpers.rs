//! The harness every test shares.
//!
//! Each test runs its own Tessera process (`spawn_app`), with its own database,
//! data directory, port and master key, and talks to it as the outside world
//! does: over HTTP, through the command-line tool, and by reading the HTML pages
//! and JWTs it hands out.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use reqwest::cookie::Jar;
use reqwest::header::{self, HeaderMap};
use reqwest::{Response, StatusCode};
use serde::Deserialize;
use serde_json::Value;
use sqlx::Connection as _;
use tokio::io::AsyncWriteExt as _;
use tokio::process::{Child, Command};
use url::Url;

/// The password every test user gets unless a test says otherwise.
pub const PASSWORD: &str = "correct horse battery staple";

/// The scopes a relying party asks for when a test does not say otherwise.
pub const DEFAULT_SCOPE: &str = "openid profile email offline_access";

const READY_TIMEOUT: Duration = Duration::from_secs(20);
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Randomness
// ---------------------------------------------------------------------------

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random generator works");
    bytes
}

/// A random URL-safe string (24 random bytes, base64url without padding).
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<24>())
}

fn random_lowercase_alphanumeric(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    random_bytes::<64>()
        .iter()
        .take(len)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// The S256 PKCE challenge for a verifier (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

// ---------------------------------------------------------------------------
// Starting the server
// ---------------------------------------------------------------------------

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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

fn backend() -> Backend {
    match std::env::var("TESSERA_TEST_BACKEND").as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => Backend::Sqlite,
        Ok("postgres") => Backend::Postgres,
        Ok(other) => panic!("TESSERA_TEST_BACKEND must be `sqlite` or `postgres`, not `{other}`"),
    }
}

/// A PostgreSQL database made for one test, dropped when the test ends.
struct PostgresDatabase {
    admin_url: String,
    name: String,
}

async fn create_postgres_database() -> (PostgresDatabase, String) {
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

fn drop_postgres_database(db: PostgresDatabase) {
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

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("a bound address").port()
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

/// The Redis every app of this run shares: only on the PostgreSQL run, and only when
/// TESSERA_TEST_REDIS_URL is set.
fn test_redis_url() -> Option<String> {
    if backend() != Backend::Postgres {
        return None;
    }
    std::env::var("TESSERA_TEST_REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// Whether the apps of this run share revocations over Redis pub/sub (known before any starts).
/// Whether this run's servers use PostgreSQL (`TESSERA_TEST_BACKEND=postgres`).
pub fn postgres_in_this_run() -> bool {
    backend() == Backend::Postgres
}

pub fn redis_in_this_run() -> bool {
    test_redis_url().is_some()
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
    postgres: Option<PostgresDatabase>,
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

/// What a finished command printed.
#[derive(Debug)]
pub struct CliOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    pub fn assert_success(&self, what: &str) {
        assert!(
            self.status.success(),
            "`{what}` failed ({}):\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// On the PostgreSQL run, the administration URL and the name of this test's database.
    pub fn postgres_database(&self) -> Option<(&str, &str)> {
        self.postgres
            .as_ref()
            .map(|db| (db.admin_url.as_str(), db.name.as_str()))
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
    fn command(&self) -> Command {
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

    /// Runs `tessera serve` expecting it to refuse to start; returns what it printed.
    pub async fn serve_expecting_exit(&self) -> CliOutput {
        let mut cmd = self.command();
        cmd.arg("serve");
        let output = self.run(cmd, None, Duration::from_secs(20)).await;
        output.unwrap_or_else(|| {
            panic!(
                "`tessera serve` was still running after 20 s, but it should have refused to start"
            )
        })
    }

    async fn run(
        &self,
        mut cmd: Command,
        stdin: Option<&str>,
        limit: Duration,
    ) -> Option<CliOutput> {
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run the tessera command");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("a stdin pipe");
            // A command that exits without reading its input closes the pipe:
            // that is for its exit status to tell, not for a write error.
            let _ = pipe.write_all(format!("{input}\n").as_bytes()).await;
            drop(pipe);
        }
        let output = tokio::time::timeout(limit, child.wait_with_output())
            .await
            .ok()?;
        let output = output.expect("wait for the tessera command");
        Some(CliOutput {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Runs `tessera <args>` with this app's environment, feeding `stdin` if given.
    pub async fn cli(&self, args: &[&str], stdin: Option<&str>) -> CliOutput {
        let mut cmd = self.command();
        cmd.args(args);
        self.run(cmd, stdin, CLI_TIMEOUT).await.unwrap_or_else(|| {
            panic!(
                "`tessera {}` did not finish within {CLI_TIMEOUT:?}",
                args.join(" ")
            )
        })
    }

    // -- CLI helpers --------------------------------------------------------

    /// `tessera user add` with the default password and no name or roles.
    pub async fn add_user(&self, email: &str) -> TestUser {
        self.add_user_with(email, None, &[]).await
    }

    pub async fn add_user_with(&self, email: &str, name: Option<&str>, roles: &[&str]) -> TestUser {
        let mut args = vec!["user", "add", "--email", email];
        if let Some(name) = name {
            args.extend(["--name", name]);
        }
        for role in roles {
            args.extend(["--role", role]);
        }
        args.push("--password-stdin");
        let out = self.cli(&args, Some(PASSWORD)).await;
        out.assert_success("tessera user add");
        let id = out.stdout.trim().to_owned();
        assert!(
            !id.is_empty() && !id.contains(char::is_whitespace),
            "`tessera user add` should print just the new user's id, printed {:?}",
            out.stdout
        );
        TestUser {
            id,
            email: email.to_owned(),
            password: PASSWORD.to_owned(),
            name: name.map(str::to_owned),
            roles: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    /// The arguments `tessera client add` gets for a spec.
    fn client_add_args(spec: &ClientSpec) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "client".into(),
            "add".into(),
            "--id".into(),
            spec.id.clone(),
        ];
        match &spec.secret {
            SecretChoice::Generated => {}
            SecretChoice::Supplied(_) => args.push("--secret-stdin".into()),
            SecretChoice::Public => args.push("--public".into()),
        }
        for (flag, values) in [
            ("--redirect-uri", &spec.redirect_uris),
            (
                "--post-logout-redirect-uri",
                &spec.post_logout_redirect_uris,
            ),
            ("--grant", &spec.grants),
            ("--scope", &spec.scopes),
            ("--audience", &spec.audiences),
        ] {
            for value in values {
                args.push(flag.into());
                args.push(value.clone());
            }
        }
        if spec.first_party {
            args.push("--first-party".into());
        }
        args
    }

    /// Runs `tessera client add` for a spec and returns its raw output.
    pub async fn try_add_client(&self, spec: &ClientSpec) -> CliOutput {
        let args = Self::client_add_args(spec);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let stdin = match &spec.secret {
            SecretChoice::Supplied(secret) => Some(secret.as_str()),
            _ => None,
        };
        self.cli(&args, stdin).await
    }

    /// Registers a client with `tessera client add`.
    pub async fn add_client(&self, spec: ClientSpec) -> RegisteredClient {
        let out = self.try_add_client(&spec).await;
        out.assert_success("tessera client add");
        let secret = match &spec.secret {
            SecretChoice::Generated => Some(
                printed_client_secret(&out.stdout).unwrap_or_else(|| {
                    panic!(
                        "`tessera client add` without a secret should print `client_secret: <secret>`, printed:\n{}",
                        out.stdout
                    )
                }),
            ),
            SecretChoice::Supplied(secret) => Some(secret.clone()),
            SecretChoice::Public => None,
        };
        RegisteredClient {
            id: spec.id.clone(),
            secret,
            redirect_uri: spec.redirect_uris.first().cloned().unwrap_or_default(),
            post_logout_redirect_uri: spec.post_logout_redirect_uris.first().cloned(),
        }
    }

    /// `tessera keys rotate`, or `tessera keys rotate --emergency`.
    pub async fn rotate_keys(&self, emergency: bool) {
        let mut args = vec!["keys", "rotate"];
        if emergency {
            args.push("--emergency");
        }
        self.cli(&args, None)
            .await
            .assert_success(&format!("tessera {}", args.join(" ")));
    }

    // -- Plain HTTP -----------------------------------------------------------

    /// A GET from the browser.
    pub async fn get(&self, path_and_query: &str) -> Response {
        self.client
            .get(self.url(path_and_query))
            .send()
            .await
            .expect("GET from the browser")
    }

    pub async fn discovery(&self) -> Value {
        let resp = self
            .backchannel
            .get(self.url("/.well-known/openid-configuration"))
            .send()
            .await
            .expect("GET the discovery document");
        expect_json(resp, StatusCode::OK).await
    }

    pub async fn jwks(&self) -> JwkSet {
        let resp = self
            .backchannel
            .get(self.url("/jwks.json"))
            .send()
            .await
            .expect("GET /jwks.json");
        let status = resp.status();
        let content_type = header_str(resp.headers(), "content-type")
            .unwrap_or("")
            .to_owned();
        let body = resp.text().await.expect("read the JWKS");
        assert_eq!(
            status,
            StatusCode::OK,
            "/jwks.json answered {status}: {body}"
        );
        assert!(
            content_type.starts_with("application/json")
                || content_type.starts_with("application/jwk-set+json"),
            "/jwks.json is served as JSON, not {content_type:?}"
        );
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("/jwks.json is not a JWK set ({e}): {body}"))
    }

    /// The key ids the JWKS publishes right now.
    pub async fn published_kids(&self) -> BTreeSet<String> {
        self.jwks()
            .await
            .keys
            .iter()
            .map(|k| {
                k.common
                    .key_id
                    .clone()
                    .expect("every published key has a kid")
            })
            .collect()
    }

    // -- The browser side of the code flow --------------------------------------

    /// The browser visits the authorization endpoint.
    pub async fn authorize(&self, request: &AuthRequest) -> Response {
        self.authorize_in(&self.client, request).await
    }

    pub async fn authorize_in(&self, browser: &reqwest::Client, request: &AuthRequest) -> Response {
        browser
            .get(self.url(&format!("/authorize?{}", request.query())))
            .send()
            .await
            .expect("GET /authorize")
    }

    /// The browser submits the sign-in form.
    pub async fn post_login(&self, page: &FormPage, email: &str, password: &str) -> Response {
        self.post_login_in(&self.client, page, email, password)
            .await
    }

    pub async fn post_login_in(
        &self,
        browser: &reqwest::Client,
        page: &FormPage,
        email: &str,
        password: &str,
    ) -> Response {
        let form = [
            ("csrf_token", page.csrf_token.as_str()),
            ("request", page.request.as_str()),
            ("email", email),
            ("password", password),
        ];
        browser
            .post(self.url("/login"))
            .form(&form)
            .send()
            .await
            .expect("POST /login")
    }

    /// The browser answers the consent page with `allow` or `deny`.
    pub async fn post_consent(&self, page: &FormPage, decision: &str) -> Response {
        let form = [
            ("csrf_token", page.csrf_token.as_str()),
            ("request", page.request.as_str()),
            ("decision", decision),
        ];
        self.client
            .post(self.url("/consent"))
            .form(&form)
            .send()
            .await
            .expect("POST /consent")
    }

    /// From a browser without a session: authorize, see the sign-in page, sign in,
    /// and come back to the client with a code (first-party clients only).
    pub async fn sign_in(&self, request: &AuthRequest, user: &TestUser) -> Callback {
        let page = expect_sign_in_page(self.authorize(request).await).await;
        let resp = self.post_login(&page, &user.email, &user.password).await;
        let callback = expect_callback(&resp, &request.redirect_uri());
        self.assert_state_and_issuer(&callback, request);
        callback
    }

    /// Gets a code for a first-party client, signing in only if the browser has no session.
    pub async fn obtain_code(&self, request: &AuthRequest, user: &TestUser) -> String {
        self.obtain_code_in(&self.client, request, user).await
    }

    /// `obtain_code` from another browser (see `new_browser`).
    pub async fn obtain_code_in(
        &self,
        browser: &reqwest::Client,
        request: &AuthRequest,
        user: &TestUser,
    ) -> String {
        let resp = self.authorize_in(browser, request).await;
        let callback = if resp.status() == StatusCode::OK {
            let page = expect_sign_in_page(resp).await;
            let resp = self
                .post_login_in(browser, &page, &user.email, &user.password)
                .await;
            expect_callback(&resp, &request.redirect_uri())
        } else {
            expect_callback(&resp, &request.redirect_uri())
        };
        self.assert_state_and_issuer(&callback, request);
        callback.code()
    }

    pub fn assert_state_and_issuer(&self, callback: &Callback, request: &AuthRequest) {
        assert_eq!(
            callback.param("state").as_deref(),
            request.param("state"),
            "the client gets its state back: {}",
            callback.url
        );
        assert_eq!(
            callback.param("iss").as_deref(),
            Some(self.issuer.as_str()),
            "the response names the issuer (RFC 9207): {}",
            callback.url
        );
    }

    /// The whole code flow for a first-party client: tokens for `user`.
    pub async fn tokens_for(&self, client: &RegisteredClient, user: &TestUser) -> TokenResponse {
        let request = AuthRequest::new(client);
        self.tokens_for_request(client, &request, user).await
    }

    pub async fn tokens_for_request(
        &self,
        client: &RegisteredClient,
        request: &AuthRequest,
        user: &TestUser,
    ) -> TokenResponse {
        let code = self.obtain_code(request, user).await;
        self.exchange_code(client, request, &code).await
    }

    // -- Back-channel endpoints --------------------------------------------------

    /// POSTs a form to an endpoint with the given client authentication.
    pub async fn post_as_client(
        &self,
        path: &str,
        auth: &ClientAuth,
        form: &[(&str, &str)],
    ) -> Response {
        let mut fields: Vec<(String, String)> = form
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut builder = self.backchannel.post(self.url(path));
        match auth {
            ClientAuth::Basic { id, secret } => {
                builder = builder.header(header::AUTHORIZATION, basic_authorization(id, secret));
            }
            ClientAuth::Post { id, secret } => {
                fields.push(("client_id".into(), id.clone()));
                fields.push(("client_secret".into(), secret.clone()));
            }
            ClientAuth::Public { id } => fields.push(("client_id".into(), id.clone())),
            ClientAuth::Anonymous => {}
        }
        builder
            .form(&fields)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    pub async fn token(&self, auth: &ClientAuth, form: &[(&str, &str)]) -> Response {
        self.post_as_client("/token", auth, form).await
    }

    /// Redeems a code as the client would; the exchange must succeed.
    pub async fn exchange_code(
        &self,
        client: &RegisteredClient,
        request: &AuthRequest,
        code: &str,
    ) -> TokenResponse {
        let resp = self.redeem_code(&client.auth(), request, code).await;
        expect_tokens(resp).await
    }

    /// Redeems a code and returns the raw answer.
    pub async fn redeem_code(
        &self,
        auth: &ClientAuth,
        request: &AuthRequest,
        code: &str,
    ) -> Response {
        let redirect_uri = request.redirect_uri();
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri.as_str()),
            ("code_verifier", request.verifier.as_str()),
        ];
        self.token(auth, &form).await
    }

    pub async fn refresh(&self, auth: &ClientAuth, refresh_token: &str) -> Response {
        self.token(
            auth,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    pub async fn client_credentials(&self, auth: &ClientAuth, extra: &[(&str, &str)]) -> Response {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend_from_slice(extra);
        self.token(auth, &form).await
    }

    pub async fn revoke(&self, auth: &ClientAuth, token: &str, hint: Option<&str>) -> Response {
        let mut form = vec![("token", token)];
        if let Some(hint) = hint {
            form.push(("token_type_hint", hint));
        }
        self.post_as_client("/revoke", auth, &form).await
    }

    /// Introspects a token; the call itself must succeed.
    pub async fn introspect(&self, auth: &ClientAuth, token: &str) -> Value {
        let resp = self
            .post_as_client("/introspect", auth, &[("token", token)])
            .await;
        expect_json(resp, StatusCode::OK).await
    }

    /// Whether introspection calls the token active.
    pub async fn is_active(&self, auth: &ClientAuth, token: &str) -> bool {
        let body = self.introspect(auth, token).await;
        body["active"]
            .as_bool()
            .unwrap_or_else(|| panic!("introspection answers with a boolean `active`: {body}"))
    }

    pub async fn userinfo(&self, access_token: &str) -> Response {
        self.backchannel
            .get(self.url("/userinfo"))
            .bearer_auth(access_token)
            .send()
            .await
            .expect("GET /userinfo")
    }

    // -- JWTs ----------------------------------------------------------------

    /// Verifies a JWT offline against the JWKS published right now: signature,
    /// issuer, audience and expiry. Returns the claims, or why it does not verify.
    pub async fn verify_jwt(&self, token: &str, audience: &str) -> Result<Value, String> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| format!("bad JWT header: {e}"))?;
        let kid = header.kid.clone().ok_or("the JWT header has no kid")?;
        let jwks = self.jwks().await;
        let jwk = jwks
            .find(&kid)
            .ok_or_else(|| format!("the JWKS does not publish kid {kid}"))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("unusable JWK {kid}: {e}"))?;
        if ![Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256].contains(&header.alg) {
            return Err(format!("unexpected signing algorithm {:?}", header.alg));
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = 5;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| format!("the JWT does not verify: {e}"))
    }
}

// ---------------------------------------------------------------------------
// Users and clients
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub password: String,
    pub name: Option<String>,
    pub roles: Vec<String>,
}

#[derive(Debug, Clone)]
enum SecretChoice {
    Generated,
    Supplied(String),
    Public,
}

/// What `tessera client add` is asked to register.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    id: String,
    secret: SecretChoice,
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    grants: Vec<String>,
    scopes: Vec<String>,
    audiences: Vec<String>,
    first_party: bool,
}

impl ClientSpec {
    /// A confidential client whose secret the CLI generates, with one redirect
    /// URI `https://<id>.example.test/callback`, default grants and scopes.
    pub fn new(id: &str) -> Self {
        ClientSpec {
            id: id.to_owned(),
            secret: SecretChoice::Generated,
            redirect_uris: vec![format!("https://{id}.example.test/callback")],
            post_logout_redirect_uris: Vec::new(),
            grants: Vec::new(),
            scopes: Vec::new(),
            audiences: Vec::new(),
            first_party: false,
        }
    }

    /// A first-party confidential client (no consent page).
    pub fn first_party(id: &str) -> Self {
        Self::new(id).trusted()
    }

    /// A confidential client for the client_credentials grant only.
    pub fn service(id: &str) -> Self {
        Self::new(id).grant("client_credentials")
    }

    pub fn trusted(mut self) -> Self {
        self.first_party = true;
        self
    }

    pub fn public(mut self) -> Self {
        self.secret = SecretChoice::Public;
        self
    }

    pub fn secret(mut self, secret: &str) -> Self {
        self.secret = SecretChoice::Supplied(secret.to_owned());
        self
    }

    /// Adds a redirect URI after the default one.
    pub fn redirect_uri(mut self, uri: &str) -> Self {
        self.redirect_uris.push(uri.to_owned());
        self
    }

    pub fn post_logout_redirect_uri(mut self, uri: &str) -> Self {
        self.post_logout_redirect_uris.push(uri.to_owned());
        self
    }

    pub fn grant(mut self, grant: &str) -> Self {
        self.grants.push(grant.to_owned());
        self
    }

    pub fn scope(mut self, scope: &str) -> Self {
        self.scopes.push(scope.to_owned());
        self
    }

    pub fn audience(mut self, audience: &str) -> Self {
        self.audiences.push(audience.to_owned());
        self
    }
}

/// The `client_secret: <secret>` line `tessera client add` prints.
pub fn printed_client_secret(stdout: &str) -> Option<String> {
    stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("client_secret:"))
        .map(|secret| secret.trim().to_owned())
        .filter(|secret| !secret.is_empty())
}

/// A registered client as its relying party knows it.
#[derive(Debug, Clone)]
pub struct RegisteredClient {
    pub id: String,
    pub secret: Option<String>,
    /// The first registered redirect URI.
    pub redirect_uri: String,
    pub post_logout_redirect_uri: Option<String>,
}

impl RegisteredClient {
    /// client_secret_basic for confidential clients, `none` (client_id in the body) for public ones.
    pub fn auth(&self) -> ClientAuth {
        match &self.secret {
            Some(secret) => ClientAuth::Basic {
                id: self.id.clone(),
                secret: secret.clone(),
            },
            None => ClientAuth::Public {
                id: self.id.clone(),
            },
        }
    }

    /// client_secret_post.
    pub fn post_auth(&self) -> ClientAuth {
        ClientAuth::Post {
            id: self.id.clone(),
            secret: self.secret.clone().expect("a confidential client"),
        }
    }

    /// client_secret_basic with a wrong secret.
    pub fn wrong_secret_auth(&self) -> ClientAuth {
        ClientAuth::Basic {
            id: self.id.clone(),
            secret: format!("{}x", self.secret.clone().unwrap_or_default()),
        }
    }
}

/// How a request to the token, revocation or introspection endpoint authenticates.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// client_secret_basic
    Basic { id: String, secret: String },
    /// client_secret_post
    Post { id: String, secret: String },
    /// `none`: only client_id in the body (public clients)
    Public { id: String },
    /// No client identification at all.
    Anonymous,
}

/// `Authorization: Basic` per RFC 6749 §2.3.1 (id and secret form-encoded first).
pub fn basic_authorization(id: &str, secret: &str) -> String {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(id), encode(secret)))
    )
}

// ---------------------------------------------------------------------------
// Authorization requests and callbacks
// ---------------------------------------------------------------------------

/// An authorization request as a relying party builds it: code flow, PKCE S256,
/// fresh state and nonce, the default scopes.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    pub verifier: String,
    params: Vec<(String, String)>,
}

impl AuthRequest {
    pub fn new(client: &RegisteredClient) -> Self {
        let verifier = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
        let challenge = pkce_challenge(&verifier);
        let params = [
            ("response_type", "code"),
            ("client_id", client.id.as_str()),
            ("redirect_uri", client.redirect_uri.as_str()),
            ("scope", DEFAULT_SCOPE),
            ("state", random_token().as_str()),
            ("nonce", random_token().as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        AuthRequest { verifier, params }
    }

    /// Sets a parameter, replacing any earlier value.
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.params.retain(|(k, _)| k != key);
        self.params.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn without(mut self, key: &str) -> Self {
        self.params.retain(|(k, _)| k != key);
        self
    }

    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn redirect_uri(&self) -> String {
        self.param("redirect_uri").unwrap_or_default().to_owned()
    }

    pub fn query(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.params)
            .finish()
    }
}

/// Where the server sent the browser back to the client.
#[derive(Debug, Clone)]
pub struct Callback {
    pub url: Url,
}

impl Callback {
    pub fn param(&self, name: &str) -> Option<String> {
        self.url
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    pub fn code(&self) -> String {
        assert_eq!(
            self.param("error"),
            None,
            "the callback carries an error: {}",
            self.url
        );
        self.param("code")
            .unwrap_or_else(|| panic!("the callback carries no code: {}", self.url))
    }

    pub fn error(&self) -> Option<String> {
        self.param("error")
    }
}

/// The Location of a 303 answer, resolved against the request URL.
pub fn expect_see_other(resp: &Response) -> Url {
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "expected a 303 redirect from {}, got {} (Location: {:?})",
        resp.url(),
        resp.status(),
        resp.headers().get(header::LOCATION)
    );
    let location = resp
        .headers()
        .get(header::LOCATION)
        .expect("a redirect has a Location")
        .to_str()
        .expect("the Location is ASCII");
    resp.url().join(location).expect("the Location is a URL")
}

/// A 303 back to the given redirect URI (exactly: same origin and path).
pub fn expect_callback(resp: &Response, redirect_uri: &str) -> Callback {
    let url = expect_see_other(resp);
    let registered = Url::parse(redirect_uri).expect("the redirect URI is a URL");
    assert!(
        url.origin() == registered.origin() && url.path() == registered.path(),
        "expected a redirect to {redirect_uri}, got {url}"
    );
    Callback { url }
}

/// The error callback for a request: a 303 to its redirect URI with `error`, `state` and `iss`.
pub fn expect_error_callback(
    app: &TestApp,
    resp: &Response,
    request: &AuthRequest,
    error: &str,
) -> Callback {
    let callback = expect_callback(resp, &request.redirect_uri());
    assert_eq!(
        callback.error().as_deref(),
        Some(error),
        "wrong error in {}",
        callback.url
    );
    assert_eq!(
        callback.param("code"),
        None,
        "an error callback carries no code: {}",
        callback.url
    );
    app.assert_state_and_issuer(&callback, request);
    callback
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Asserts the status and a JSON body; returns the body.
pub async fn expect_json(resp: Response, status: StatusCode) -> Value {
    let url = resp.url().clone();
    let actual = resp.status();
    let content_type = header_str(resp.headers(), "content-type")
        .unwrap_or("")
        .to_owned();
    let body = resp.text().await.expect("read the response body");
    assert_eq!(actual, status, "{url} answered {actual}: {body}");
    assert!(
        content_type.starts_with("application/json"),
        "{url} should answer JSON, answered {content_type:?}: {body}"
    );
    serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{url} answered invalid JSON ({e}): {body}"))
}

/// Asserts an RFC 6749 error answer: status, JSON `error` code and a textual
/// `error_description`. Returns the body.
pub async fn expect_oauth_error(resp: Response, status: StatusCode, error: &str) -> Value {
    let www_authenticate = header_str(resp.headers(), "www-authenticate").map(str::to_owned);
    let body = expect_json(resp, status).await;
    assert_eq!(body["error"], error, "wrong error code: {body}");
    assert!(
        body["error_description"].is_string(),
        "errors carry an error_description: {body}"
    );
    if error == "invalid_client" {
        assert!(
            www_authenticate.is_some(),
            "a 401 invalid_client carries a WWW-Authenticate challenge: {body}"
        );
    }
    body
}

/// What the token endpoint answers on success.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    pub scope: String,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
}

impl TokenResponse {
    pub fn refresh_token(&self) -> &str {
        self.refresh_token
            .as_deref()
            .expect("the token response has a refresh_token")
    }

    pub fn id_token(&self) -> &str {
        self.id_token
            .as_deref()
            .expect("the token response has an id_token")
    }

    pub fn scopes(&self) -> BTreeSet<String> {
        scope_set(&self.scope)
    }
}

/// A successful token response: 200, `Cache-Control: no-store`, a Bearer token.
pub async fn expect_tokens(resp: Response) -> TokenResponse {
    let cache_control = header_str(resp.headers(), "cache-control")
        .unwrap_or("")
        .to_owned();
    let body = expect_json(resp, StatusCode::OK).await;
    assert!(
        cache_control.contains("no-store"),
        "token responses must not be cached: Cache-Control is {cache_control:?}"
    );
    let tokens: TokenResponse = serde_json::from_value(body.clone())
        .unwrap_or_else(|e| panic!("not a token response ({e}): {body}"));
    assert_eq!(tokens.token_type, "Bearer", "{body}");
    assert!(tokens.expires_in > 0, "{body}");
    tokens
}

pub fn scope_set(scope: &str) -> BTreeSet<String> {
    scope.split_whitespace().map(str::to_owned).collect()
}

// ---------------------------------------------------------------------------
// HTML pages
// ---------------------------------------------------------------------------

/// One HTML start tag and its attributes (names lower-cased, values unescaped).
#[derive(Debug, Clone)]
pub struct Tag {
    pub name: String,
    pub attrs: Vec<(String, String)>,
}

impl Tag {
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Every `<name ...>` start tag in a page, in order. Enough HTML for forms.
pub fn tags(html: &str, name: &str) -> Vec<Tag> {
    let lower = html.to_ascii_lowercase();
    let bytes = html.as_bytes();
    let opener = format!("<{}", name.to_ascii_lowercase());
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = lower[from..].find(&opener) {
        let mut i = from + at + opener.len();
        from = i;
        match bytes.get(i) {
            Some(b) if b.is_ascii_whitespace() || *b == b'>' || *b == b'/' => {}
            _ => continue, // e.g. `<inputs` or `<formula`
        }
        let mut attrs = Vec::new();
        loop {
            while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
                i += 1;
            }
            if i >= bytes.len() || bytes[i] == b'>' {
                break;
            }
            let start = i;
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() && !b"=>/".contains(&bytes[i])
            {
                i += 1;
            }
            let attr_name = html[start..i].to_ascii_lowercase();
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            let mut value = String::new();
            if i < bytes.len() && bytes[i] == b'=' {
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                if i < bytes.len() && (bytes[i] == b'"' || bytes[i] == b'\'') {
                    let quote = bytes[i];
                    i += 1;
                    let start = i;
                    while i < bytes.len() && bytes[i] != quote {
                        i += 1;
                    }
                    value = unescape_html(&html[start..i]);
                    i += 1;
                } else {
                    let start = i;
                    while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
                        i += 1;
                    }
                    value = unescape_html(&html[start..i]);
                }
            }
            if !attr_name.is_empty() {
                attrs.push((attr_name, value));
            }
        }
        found.push(Tag {
            name: name.to_ascii_lowercase(),
            attrs,
        });
        from = i.min(bytes.len());
    }
    found
}

/// Decodes character references: the named ones HTML escapers emit, and numeric ones.
pub fn unescape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest.find(';').filter(|&semi| semi <= 10).and_then(|semi| {
            let entity = &rest[1..semi];
            let ch = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ => entity.strip_prefix('#').and_then(|num| {
                    let code = match num.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok(),
                        None => num.parse().ok(),
                    };
                    code.and_then(char::from_u32)
                }),
            };
            ch.map(|c| (c, semi))
        });
        match decoded {
            Some((ch, semi)) => {
                out.push(ch);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The text a person reads on a page: tags dropped, references decoded, whitespace collapsed.
pub fn visible_text(html: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for ch in html.chars() {
        match ch {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' if in_tag => in_tag = false,
            _ if !in_tag => text.push(ch),
            _ => {}
        }
    }
    unescape_html(&text)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The value of the `<input>` with this name.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    tags(html, "input")
        .into_iter()
        .find(|t| t.attr("name") == Some(name))
        .map(|t| t.attr("value").unwrap_or_default().to_owned())
}

/// A page with a form that carries `csrf_token` and `request` (sign-in or consent).
#[derive(Debug, Clone)]
pub struct FormPage {
    pub status: StatusCode,
    pub csrf_token: String,
    pub request: String,
    pub html: String,
}

async fn read_html(resp: Response) -> (StatusCode, String) {
    let status = resp.status();
    let content_type = header_str(resp.headers(), "content-type")
        .unwrap_or("")
        .to_owned();
    let html = resp.text().await.expect("read the page");
    assert!(
        content_type.starts_with("text/html"),
        "expected an HTML page, got {content_type:?} ({status}): {html}"
    );
    (status, html)
}

fn form_page(status: StatusCode, html: String, action: &str) -> FormPage {
    let form = tags(&html, "form")
        .into_iter()
        .find(|f| f.attr("action") == Some(action))
        .unwrap_or_else(|| panic!("the page has no <form action=\"{action}\">:\n{html}"));
    assert!(
        form.attr("method")
            .is_some_and(|m| m.eq_ignore_ascii_case("post")),
        "the {action} form is posted: {form:?}"
    );
    let hidden = |name: &str| {
        let input = tags(&html, "input")
            .into_iter()
            .find(|t| t.attr("name") == Some(name))
            .unwrap_or_else(|| panic!("the page has no `{name}` input:\n{html}"));
        assert_eq!(
            input.attr("type"),
            Some("hidden"),
            "`{name}` is a hidden input"
        );
        let value = input.attr("value").unwrap_or_default().to_owned();
        assert!(!value.is_empty(), "`{name}` carries a value:\n{html}");
        value
    };
    FormPage {
        status,
        csrf_token: hidden("csrf_token"),
        request: hidden("request"),
        html,
    }
}

/// Parses a sign-in page with any status (the caller checks it).
pub async fn sign_in_page_with_status(resp: Response) -> FormPage {
    let (status, html) = read_html(resp).await;
    let page = form_page(status, html, "/login");
    let inputs = tags(&page.html, "input");
    let field = |name: &str| {
        inputs
            .iter()
            .find(|t| t.attr("name") == Some(name))
            .unwrap_or_else(|| panic!("the sign-in page has no `{name}` field:\n{}", page.html))
            .clone()
    };
    assert_eq!(
        field("email").attr("autocomplete"),
        Some("username"),
        "password managers can fill the email"
    );
    assert_eq!(
        field("password").attr("type"),
        Some("password"),
        "the password is masked"
    );
    assert_eq!(
        field("password").attr("autocomplete"),
        Some("current-password"),
        "password managers can fill the password"
    );
    page
}

/// A 200 sign-in page: `<form method="post" action="/login">` with the hidden
/// `csrf_token` and `request`, an `email` and a `password` field.
pub async fn expect_sign_in_page(resp: Response) -> FormPage {
    let page = sign_in_page_with_status(resp).await;
    assert_eq!(
        page.status,
        StatusCode::OK,
        "the sign-in page is a 200:\n{}",
        page.html
    );
    page
}

/// A 200 consent page: `<form method="post" action="/consent">` with allow and deny buttons.
pub async fn expect_consent_page(resp: Response) -> FormPage {
    let (status, html) = read_html(resp).await;
    assert_eq!(status, StatusCode::OK, "the consent page is a 200:\n{html}");
    let page = form_page(status, html, "/consent");
    let choices: Vec<String> = tags(&page.html, "button")
        .into_iter()
        .chain(tags(&page.html, "input"))
        .filter(|t| t.attr("name") == Some("decision"))
        .map(|t| t.attr("value").unwrap_or_default().to_owned())
        .collect();
    assert!(
        choices.iter().any(|c| c == "allow") && choices.iter().any(|c| c == "deny"),
        "the consent page offers allow and deny, offers {choices:?}:\n{}",
        page.html
    );
    page
}

/// An HTML error page with this status and no redirect anywhere.
pub async fn expect_error_page(resp: Response, status: StatusCode) -> String {
    assert!(
        resp.headers().get(header::LOCATION).is_none(),
        "an error page must not redirect, but Location is {:?}",
        resp.headers().get(header::LOCATION)
    );
    let (actual, html) = read_html(resp).await;
    assert_eq!(actual, status, "{html}");
    html
}

// ---------------------------------------------------------------------------
// Cookies
// ---------------------------------------------------------------------------

/// One `Set-Cookie` header, split up.
#[derive(Debug, Clone)]
pub struct SetCookie {
    pub name: String,
    pub value: String,
    /// Attribute names lower-cased, with their values.
    pub attributes: Vec<(String, String)>,
}

impl SetCookie {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub fn set_cookies(resp: &Response) -> Vec<SetCookie> {
    resp.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|raw| {
            let mut parts = raw.split(';');
            let (name, value) = parts
                .next()
                .unwrap_or_default()
                .split_once('=')
                .unwrap_or_default();
            let attributes = parts
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (k.trim().to_ascii_lowercase(), v.trim().to_owned())
                })
                .collect();
            SetCookie {
                name: name.trim().to_owned(),
                value: value.trim().to_owned(),
                attributes,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// JWTs
// ---------------------------------------------------------------------------

/// The header of a JWT, unverified.
pub fn jwt_header(token: &str) -> Header {
    jsonwebtoken::decode_header(token).unwrap_or_else(|e| panic!("not a JWT ({e}): {token}"))
}

/// The claims of a JWT, unverified (for reading, never for trusting).
pub fn jwt_claims(token: &str) -> Value {
    let payload = token
        .split('.')
        .nth(1)
        .unwrap_or_else(|| panic!("not a JWT: {token}"));
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .expect("the JWT payload is base64url");
    serde_json::from_slice(&bytes).expect("the JWT payload is JSON")
}

/// `aud` as a list, whether the token carries a string or an array.
pub fn audiences(claims: &Value) -> Vec<String> {
    match &claims["aud"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        other => panic!("aud is neither a string nor an array: {other}"),
    }
}

// ---------------------------------------------------------------------------
// More browsers, the account pages, the operator's commands, metrics, replicas
// ---------------------------------------------------------------------------

/// One `<li class="session ...">` of the devices-and-sessions page.
#[derive(Debug, Clone)]
pub struct ListedSession {
    pub id: String,
    /// Marked as the session of the browser looking at the page.
    pub current: bool,
}

/// The devices-and-sessions page (`/account/sessions`).
#[derive(Debug, Clone)]
pub struct SessionsPage {
    pub csrf_token: String,
    pub sessions: Vec<ListedSession>,
    pub html: String,
}

impl SessionsPage {
    pub fn ids(&self) -> BTreeSet<String> {
        self.sessions.iter().map(|s| s.id.clone()).collect()
    }

    /// The one session marked as this browser's.
    pub fn current(&self) -> &ListedSession {
        let current: Vec<&ListedSession> = self.sessions.iter().filter(|s| s.current).collect();
        assert_eq!(
            current.len(),
            1,
            "exactly one session is marked current, not {current:?}:\n{}",
            self.html
        );
        current[0]
    }

    /// What a person reads on the page.
    pub fn text(&self) -> String {
        visible_text(&self.html)
    }
}

/// A 200 devices-and-sessions page: one `<li class="session">` per live session, each with a
/// `data-session-id`, and the forms that sign devices out.
pub async fn expect_sessions_page(resp: Response) -> SessionsPage {
    let (status, html) = read_html(resp).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the sessions page is a 200:\n{html}"
    );
    let sessions = tags(&html, "li")
        .into_iter()
        .filter(|li| {
            li.attr("class")
                .is_some_and(|c| c.split_whitespace().any(|c| c == "session"))
        })
        .map(|li| {
            let id = li.attr("data-session-id").unwrap_or_default().to_owned();
            assert!(!id.is_empty(), "a listed session carries its id: {li:?}");
            let current = li
                .attr("class")
                .is_some_and(|c| c.split_whitespace().any(|c| c == "current"));
            ListedSession { id, current }
        })
        .collect();
    let forms: Vec<String> = tags(&html, "form")
        .iter()
        .filter_map(|f| f.attr("action").map(str::to_owned))
        .collect();
    assert!(
        forms.iter().any(|a| a == "/account/sessions/revoke-all"),
        "the sessions page offers to sign devices out, its forms go to {forms:?}:\n{html}"
    );
    let csrf_token = input_value(&html, "csrf_token").unwrap_or_default();
    assert!(
        !csrf_token.is_empty(),
        "the sessions page carries a csrf_token:\n{html}"
    );
    SessionsPage {
        csrf_token,
        sessions,
        html,
    }
}

/// One line of `tessera session list`.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: String,
    pub created: String,
    pub last_seen: String,
    pub expires: String,
    pub ip: String,
    /// The client ids that got a code or tokens from the session.
    pub clients: BTreeSet<String>,
    pub device: String,
}

/// One line of `tessera audit tail`.
#[derive(Debug, Clone)]
pub struct AuditLine {
    pub seq: i64,
    pub at: i64,
    pub action: String,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub ip: Option<String>,
    pub detail: Value,
}

impl AuditLine {
    fn parse(line: &str) -> Self {
        let fields: Vec<&str> = line.splitn(7, '\t').collect();
        assert_eq!(
            fields.len(),
            7,
            "an audit line is `seq at action actor= subject= ip= detail`: {line:?}"
        );
        let labelled = |field: &str, label: &str| -> Option<String> {
            let value = field
                .strip_prefix(label)
                .unwrap_or_else(|| panic!("expected `{label}...` in the audit line {line:?}"));
            (value != "-").then(|| value.to_owned())
        };
        AuditLine {
            seq: fields[0]
                .parse()
                .unwrap_or_else(|_| panic!("the audit line starts with its number: {line:?}")),
            at: fields[1]
                .parse()
                .unwrap_or_else(|_| panic!("the audit line carries a unix time: {line:?}")),
            action: fields[2].to_owned(),
            actor: labelled(fields[3], "actor="),
            subject: labelled(fields[4], "subject="),
            ip: labelled(fields[5], "ip="),
            detail: serde_json::from_str(fields[6])
                .unwrap_or_else(|e| panic!("the audit detail is JSON ({e}): {line:?}")),
        }
    }
}

/// What `/metrics` reports, by metric name.
#[derive(Debug, Clone)]
pub struct MetricsSnapshot {
    values: std::collections::BTreeMap<String, f64>,
    pub text: String,
}

impl MetricsSnapshot {
    fn parse(text: String) -> Self {
        let values = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                Some((name.trim().to_owned(), value.trim().parse().ok()?))
            })
            .collect();
        MetricsSnapshot { values, text }
    }

    /// A counter or gauge by name; it must be reported.
    pub fn get(&self, name: &str) -> u64 {
        let value = self
            .values
            .get(name)
            .unwrap_or_else(|| panic!("/metrics does not report {name}:\n{}", self.text));
        assert!(
            *value >= 0.0 && value.fract() == 0.0,
            "{name} is a whole number: {value}"
        );
        *value as u64
    }
}

impl TestApp {
    /// A browser of its own: its own cookies, never follows redirects.
    pub fn new_browser(&self) -> reqwest::Client {
        browser_with(Arc::new(Jar::default()))
    }

    /// The whole code flow for a first-party client, in the given browser.
    pub async fn tokens_for_in(
        &self,
        browser: &reqwest::Client,
        client: &RegisteredClient,
        user: &TestUser,
    ) -> TokenResponse {
        let request = AuthRequest::new(client);
        let code = self.obtain_code_in(browser, &request, user).await;
        self.exchange_code(client, &request, &code).await
    }

    /// Whether the browser has a live SSO session, as a relying party finds out: prompt=none.
    pub async fn is_signed_in_in(
        &self,
        browser: &reqwest::Client,
        client: &RegisteredClient,
    ) -> bool {
        let request = AuthRequest::new(client).with("prompt", "none");
        let resp = self.authorize_in(browser, &request).await;
        let callback = expect_callback(&resp, &client.redirect_uri);
        self.assert_state_and_issuer(&callback, &request);
        match callback.error().as_deref() {
            None => {
                callback.code();
                true
            }
            Some("login_required") => false,
            Some(other) => panic!("prompt=none answered {other}: {}", callback.url),
        }
    }

    /// Signs in to Tessera itself (no application): GET /login, then POST it with an empty
    /// `request`. Returns the answer to the POST.
    pub async fn plain_sign_in_in(
        &self,
        browser: &reqwest::Client,
        email: &str,
        password: &str,
    ) -> Response {
        let resp = browser
            .get(self.url("/login"))
            .send()
            .await
            .expect("GET /login");
        let (status, html) = read_html(resp).await;
        assert_eq!(status, StatusCode::OK, "GET /login is a 200:\n{html}");
        assert!(
            tags(&html, "form")
                .iter()
                .any(|f| f.attr("action") == Some("/login")),
            "GET /login shows the sign-in form:\n{html}"
        );
        let csrf_token = input_value(&html, "csrf_token").unwrap_or_default();
        assert!(
            !csrf_token.is_empty(),
            "the sign-in form carries a csrf_token:\n{html}"
        );
        assert_eq!(
            input_value(&html, "request").as_deref(),
            Some(""),
            "a plain sign-in carries no authorization request:\n{html}"
        );
        let form = [
            ("csrf_token", csrf_token.as_str()),
            ("request", ""),
            ("email", email),
            ("password", password),
        ];
        browser
            .post(self.url("/login"))
            .form(&form)
            .send()
            .await
            .expect("POST /login")
    }

    /// A plain sign-in that must succeed: a 303 to /account.
    pub async fn sign_in_to_account_in(&self, browser: &reqwest::Client, user: &TestUser) {
        let resp = self
            .plain_sign_in_in(browser, &user.email, &user.password)
            .await;
        let location = expect_see_other(&resp);
        assert_eq!(
            location.path(),
            "/account",
            "a plain sign-in lands on /account"
        );
    }

    /// GET /account/sessions; the browser must be signed in.
    pub async fn sessions_page_in(&self, browser: &reqwest::Client) -> SessionsPage {
        let resp = browser
            .get(self.url("/account/sessions"))
            .send()
            .await
            .expect("GET /account/sessions");
        expect_sessions_page(resp).await
    }

    /// "Sign out" next to one session of the sessions page.
    pub async fn revoke_session_in(
        &self,
        browser: &reqwest::Client,
        page: &SessionsPage,
        session_id: &str,
    ) -> Response {
        let form = [
            ("csrf_token", page.csrf_token.as_str()),
            ("session_id", session_id),
        ];
        browser
            .post(self.url("/account/sessions/revoke"))
            .form(&form)
            .send()
            .await
            .expect("POST /account/sessions/revoke")
    }

    /// "Sign out all other devices" (`keep_current`) or "Sign out all devices".
    pub async fn revoke_all_sessions_in(
        &self,
        browser: &reqwest::Client,
        page: &SessionsPage,
        keep_current: bool,
    ) -> Response {
        let form = [
            ("csrf_token", page.csrf_token.as_str()),
            ("keep_current", if keep_current { "yes" } else { "no" }),
        ];
        browser
            .post(self.url("/account/sessions/revoke-all"))
            .form(&form)
            .send()
            .await
            .expect("POST /account/sessions/revoke-all")
    }

    /// GET /metrics (Prometheus text).
    pub async fn metrics(&self) -> MetricsSnapshot {
        let resp = self
            .backchannel
            .get(self.url("/metrics"))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .expect("GET /metrics");
        let status = resp.status();
        let text = resp.text().await.expect("read /metrics");
        assert_eq!(status, StatusCode::OK, "/metrics answered {status}: {text}");
        MetricsSnapshot::parse(text)
    }

    /// Polls introspection every 50 ms until the token is inactive; how long that took, or
    /// `None` if it was still active after `limit`.
    pub async fn time_until_inactive(
        &self,
        auth: &ClientAuth,
        token: &str,
        limit: Duration,
    ) -> Option<Duration> {
        let start = Instant::now();
        loop {
            if !self.is_active(auth, token).await {
                return Some(start.elapsed());
            }
            if start.elapsed() > limit {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The refresh token must be refused with `invalid_grant`; `whose` says which one it is.
    pub async fn assert_refresh_refused(
        &self,
        client: &RegisteredClient,
        refresh_token: &str,
        whose: &str,
    ) {
        let resp = self.refresh(&client.auth(), refresh_token).await;
        let status = resp.status();
        let body = resp.text().await.expect("read the token response");
        let error = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned));
        let shown: String = body.chars().take(200).collect();
        assert!(
            status == StatusCode::BAD_REQUEST && error.as_deref() == Some("invalid_grant"),
            "{whose}: the refresh token should be refused with invalid_grant, but /token answered {status}: {shown}..."
        );
    }

    /// Introspection must call the token active at this moment.
    pub async fn assert_active(&self, client: &RegisteredClient, token: &str, whose: &str) {
        assert!(
            self.is_active(&client.auth(), token).await,
            "{whose}: introspection should call the token active"
        );
    }

    /// Introspection must call the token inactive at this moment, with nothing else said.
    pub async fn assert_inactive(&self, client: &RegisteredClient, token: &str, whose: &str) {
        let answer = self.introspect(&client.auth(), token).await;
        assert_eq!(
            answer,
            serde_json::json!({ "active": false }),
            "{whose}: introspection should answer {{\"active\": false}} at once"
        );
    }

    // -- The operator's commands ------------------------------------------------

    /// `tessera user disable EMAIL`
    pub async fn disable_user(&self, email: &str) {
        self.cli(&["user", "disable", email], None)
            .await
            .assert_success("tessera user disable");
    }

    /// `tessera user enable EMAIL`
    pub async fn enable_user(&self, email: &str) {
        self.cli(&["user", "enable", email], None)
            .await
            .assert_success("tessera user enable");
    }

    /// `tessera user set-password EMAIL --password-stdin`
    pub async fn set_password(&self, email: &str, password: &str) {
        self.cli(
            &["user", "set-password", email, "--password-stdin"],
            Some(password),
        )
        .await
        .assert_success("tessera user set-password");
    }

    /// `tessera session list EMAIL`, parsed (the header line is checked).
    pub async fn cli_sessions(&self, email: &str) -> Vec<SessionRow> {
        let out = self.cli(&["session", "list", email], None).await;
        out.assert_success("tessera session list");
        let mut lines = out.stdout.lines();
        assert_eq!(
            lines.next(),
            Some("id\tcreated\tlast_seen\texpires\tip\tclients\tdevice"),
            "`tessera session list` starts with its header:\n{}",
            out.stdout
        );
        lines
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let f: Vec<&str> = line.splitn(7, '\t').collect();
                assert_eq!(f.len(), 7, "a session line has 7 columns: {line:?}");
                SessionRow {
                    id: f[0].to_owned(),
                    created: f[1].to_owned(),
                    last_seen: f[2].to_owned(),
                    expires: f[3].to_owned(),
                    ip: f[4].to_owned(),
                    clients: match f[5] {
                        "-" => BTreeSet::new(),
                        list => list.split(',').map(|c| c.trim().to_owned()).collect(),
                    },
                    device: f[6].to_owned(),
                }
            })
            .collect()
    }

    /// `tessera session revoke ID`
    pub async fn cli_revoke_session(&self, id: &str) {
        self.cli(&["session", "revoke", id], None)
            .await
            .assert_success("tessera session revoke ID");
    }

    /// `tessera session revoke --all EMAIL`
    pub async fn cli_revoke_all_sessions(&self, email: &str) {
        self.cli(&["session", "revoke", "--all", email], None)
            .await
            .assert_success("tessera session revoke --all");
    }

    /// `tessera audit tail -n N`, parsed, oldest first.
    pub async fn audit_tail(&self, lines: usize) -> Vec<AuditLine> {
        let n = lines.to_string();
        let out = self.cli(&["audit", "tail", "-n", &n], None).await;
        out.assert_success("tessera audit tail");
        out.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(AuditLine::parse)
            .collect()
    }

    /// `tessera audit verify`, whatever it answers.
    pub async fn audit_verify(&self) -> CliOutput {
        self.cli(&["audit", "verify"], None).await
    }

    // -- The backend ------------------------------------------------------------

    /// The value this app's `tessera` processes see for a setting (the last one set wins).
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
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

    // -- Replicas -----------------------------------------------------------------

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
