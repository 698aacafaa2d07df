//! The measured paths. Each scenario prepares what it needs through the CLI and HTTP, then runs
//! closed loops against the server.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::sync::Mutex;

use tessera::auth::mfa::totp::TotpSecret;
use tessera::auth::mfa::{self, FactorName};
use tessera::store::UserStore;

use crate::lean;
use crate::runner::{Outcome, closed_loop};
use crate::server_time::SignInTotals;
use crate::servers::{Backend, Tessera};

pub const SECRET: &str = "bench-secret-0123456789-abcdefghijklmnopq";
pub const PASSWORD: &str = "calm otter under violet lamps";
const REDIRECT: &str = "http://127.0.0.1:9/cb";
// RFC 7636 appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

pub fn http_client(connections: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

pub fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// Registers the clients and the user every scenario uses.
pub async fn bootstrap(t: &Tessera) {
    t.cli(
        &[
            "user",
            "add",
            "--email",
            "bench@example.com",
            "--password-stdin",
        ],
        PASSWORD,
    )
    .await;
    for (id, grants) in [("svc", "client_credentials"), ("rs", "client_credentials")] {
        t.cli(
            &[
                "client",
                "add",
                "--id",
                id,
                "--secret-stdin",
                "--grant",
                grants,
                "--scope",
                "api:read",
                "--audience",
                "https://api.bench",
            ],
            SECRET,
        )
        .await;
    }
    t.cli(
        &[
            "client",
            "add",
            "--id",
            "web",
            "--public",
            "--first-party",
            "--redirect-uri",
            REDIRECT,
            "--grant",
            "authorization_code",
            "--grant",
            "refresh_token",
        ],
        "",
    )
    .await;
}

fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let rest = &html[at..];
    let v = rest.find("value=\"")? + 7;
    let end = rest[v..].find('"')?;
    Some(
        rest[v..v + end]
            .replace("&#x2b;", "+")
            .replace("&#43;", "+")
            .replace("&amp;", "&"),
    )
}

fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| {
            c.strip_prefix(&format!("{name}="))
                .map(|rest| rest.split(';').next().unwrap_or("").to_string())
        })
}

fn authorize_url(base: &str) -> String {
    format!(
        "{base}/authorize?response_type=code&client_id=web&redirect_uri={}&scope=openid&state=s&code_challenge={CHALLENGE}&code_challenge_method=S256",
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    )
}

fn code_from(resp: &reqwest::Response) -> Option<String> {
    let loc = resp
        .headers()
        .get(reqwest::header::LOCATION)?
        .to_str()
        .ok()?;
    let url = url::Url::parse(loc).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
}

/// The whole password sign-in as the bench user: authorize -> sign-in page -> POST -> code.
/// Returns (session cookie, code).
pub async fn sign_in(c: &reqwest::Client, base: &str) -> Option<(String, String)> {
    sign_in_as(c, base, "bench@example.com").await
}

async fn sign_in_as(c: &reqwest::Client, base: &str, email: &str) -> Option<(String, String)> {
    let page = c.get(authorize_url(base)).send().await.ok()?;
    let csrf_cookie = set_cookie(&page, "tessera_csrf")?;
    let html = page.text().await.ok()?;
    let form = [
        ("csrf_token", input_value(&html, "csrf_token")?),
        ("request", input_value(&html, "request")?),
        ("email", email.to_string()),
        ("password", PASSWORD.to_string()),
    ];
    let resp = c
        .post(format!("{base}/login"))
        .header(
            reqwest::header::COOKIE,
            format!("tessera_csrf={csrf_cookie}"),
        )
        .form(&form)
        .send()
        .await
        .ok()?;
    let session = set_cookie(&resp, "tessera_session")?;
    Some((session, code_from(&resp)?))
}

async fn code_with_session(c: &reqwest::Client, base: &str, session: &str) -> Option<String> {
    let resp = c
        .get(authorize_url(base))
        .header(
            reqwest::header::COOKIE,
            format!("tessera_session={session}"),
        )
        .send()
        .await
        .ok()?;
    code_from(&resp)
}

async fn redeem(c: &reqwest::Client, base: &str, code: &str) -> Option<serde_json::Value> {
    let resp = c
        .post(format!("{base}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", "web"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

/// Adds users `chain-1@bench.example` .. `chain-{n}@bench.example`, with the bench user's
/// password, straight into the database (the CLI would hash each password again): the refresh
/// paths rotate one chain per session and one session per user, as a fleet of browsers would.
pub async fn add_chain_users(database_url: &str, n: usize) {
    add_users(database_url, "chain", n).await;
}

/// Adds users `{prefix}-1@bench.example` .. `{prefix}-{n}@bench.example` with the bench user's
/// password hash (ids `{prefix}-1` ..); returns their emails.
pub async fn add_users(database_url: &str, prefix: &str, n: usize) -> Vec<String> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(database_url)
        .await
        .expect("bench database");
    let sql = format!(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) \
         INSERT INTO users (id, email, roles, password_hash, disabled, created_at, updated_at) \
         SELECT '{prefix}-' || x, '{prefix}-' || x || '@bench.example', '[]', u.password_hash, 0, \
         u.created_at, u.updated_at FROM c, users u WHERE u.email = 'bench@example.com'"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&pool)
        .await
        .expect("bench users");
    pool.close().await;
    (1..=n)
        .map(|i| format!("{prefix}-{i}@bench.example"))
        .collect()
}

/// Signs each of the `n` chain users in once (eight at a time): their session cookies.
pub async fn chain_sessions(c: &reqwest::Client, base: &str, n: usize) -> Vec<String> {
    const AT_ONCE: usize = 8;
    let tasks: Vec<_> = (0..AT_ONCE)
        .map(|w| {
            let (c, base) = (c.clone(), base.to_string());
            tokio::spawn(async move {
                let mut sessions = Vec::new();
                for i in (w..n).step_by(AT_ONCE) {
                    let email = format!("chain-{}@bench.example", i + 1);
                    let (session, _) = sign_in_as(&c, &base, &email)
                        .await
                        .expect("chain user sign-in");
                    sessions.push(session);
                }
                sessions
            })
        })
        .collect();
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await.expect("sign-in task"));
    }
    all
}

/// A fresh refresh-token chain in each session (a code from the SSO session, redeemed).
pub async fn refresh_chains(c: &reqwest::Client, base: &str, sessions: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(sessions.len());
    for session in sessions {
        let code = code_with_session(c, base, session)
            .await
            .expect("code from the SSO session");
        let tokens = redeem(c, base, &code).await.expect("code exchange");
        out.push(
            tokens["refresh_token"]
                .as_str()
                .expect("refresh token")
                .to_string(),
        );
    }
    out
}

pub async fn client_credentials(
    name: &str,
    base: String,
    resource: Option<&'static str>,
    workers: usize,
    d: Duration,
) -> Outcome {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(r) = resource {
        form.push(("resource", r));
    }
    let request = Arc::new(lean::Fixed::post_form(
        "/token",
        &basic("svc", SECRET),
        &form,
    ));
    let conns = lean::connections(&base, workers);
    closed_loop(name, workers, d, move |w, _| {
        let (conns, request) = (conns.clone(), request.clone());
        async move { lean::ok(&conns[w].send(&request).await) }
    })
    .await
}

pub async fn mint_access_tokens(
    c: &reqwest::Client,
    base: &str,
    n: usize,
    resource: Option<&str>,
) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(r) = resource {
            form.push(("resource", r));
        }
        let v: serde_json::Value = c
            .post(format!("{base}/token"))
            .header("authorization", basic("svc", SECRET))
            .form(&form)
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("token json");
        out.push(
            v["access_token"]
                .as_str()
                .expect("access token")
                .to_string(),
        );
    }
    out
}

/// Introspection by a resource server at `base` + `path`. `caller` is the client id used to
/// authenticate.
pub async fn introspection(
    name: &str,
    base: String,
    path: &str,
    caller: &str,
    tokens: Vec<String>,
    workers: usize,
    d: Duration,
) -> Outcome {
    let auth = basic(caller, SECRET);
    let requests: Arc<Vec<lean::Fixed>> = Arc::new(
        tokens
            .iter()
            .map(|t| lean::Fixed::post_form(path, &auth, &[("token", t.as_str())]))
            .collect(),
    );
    let conns = lean::connections(&base, workers);
    closed_loop(name, workers, d, move |w, i| {
        let (conns, requests) = (conns.clone(), requests.clone());
        async move {
            let request = &requests[(w * 7919 + i as usize) % requests.len()];
            lean::active(&conns[w].send(request).await)
        }
    })
    .await
}

pub async fn refresh_rotation(
    name: &str,
    c: reqwest::Client,
    base: String,
    chains: Vec<String>,
    workers: usize,
    d: Duration,
) -> Outcome {
    let chains: Arc<Vec<Mutex<String>>> = Arc::new(chains.into_iter().map(Mutex::new).collect());
    closed_loop(name, workers, d, move |w, i| {
        let (c, url, chains) = (c.clone(), format!("{base}/token"), chains.clone());
        async move {
            // Worker w owns chains w, w+W, w+2W, ...: each chain is rotated by one worker only.
            let owned = chains.len().div_ceil(workers);
            let idx = w + (i as usize % owned) * workers;
            let Some(slot) = chains.get(idx.min(chains.len() - 1)) else {
                return false;
            };
            let mut token = slot.lock().await;
            let resp = c
                .post(url)
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("client_id", "web"),
                    ("refresh_token", token.as_str()),
                ])
                .send()
                .await;
            match resp {
                Ok(r) if r.status().is_success() => match r.json::<serde_json::Value>().await {
                    Ok(v) => match v["refresh_token"].as_str() {
                        Some(next) => {
                            *token = next.to_string();
                            true
                        }
                        None => false,
                    },
                    Err(_) => false,
                },
                _ => false,
            }
        }
    })
    .await
}

pub async fn jwks_and_discovery(name: &str, base: String, workers: usize, d: Duration) -> Outcome {
    let requests = Arc::new([
        lean::Fixed::get("/jwks.json"),
        lean::Fixed::get("/.well-known/openid-configuration"),
    ]);
    let conns = lean::connections(&base, workers);
    closed_loop(name, workers, d, move |w, i| {
        let (conns, requests) = (conns.clone(), requests.clone());
        async move { lean::ok(&conns[w].send(&requests[i as usize % 2]).await) }
    })
    .await
}

pub async fn password_sign_in(
    name: &str,
    c: reqwest::Client,
    base: String,
    workers: usize,
    d: Duration,
) -> Outcome {
    closed_loop(name, workers, d, move |_, _| {
        let (c, base) = (c.clone(), base.clone());
        async move {
            match sign_in(&c, &base).await {
                Some((_, code)) => redeem(&c, &base, &code).await.is_some(),
                None => false,
            }
        }
    })
    .await
}

/// Stores sessions and refresh tokens `from + 1 ..= n` that belong to nobody in the benchmark, half of them
/// already expired (so the purge works during the measurement).
pub async fn seed_rows(database_url: &str, backend: Backend, from: u64, n: u64, now: i64) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(database_url)
        .await
        .expect("bench database");
    let user = format!(
        "INSERT INTO users (id, email, roles, password_hash, disabled, created_at, updated_at) \
         VALUES ('seed-user', 'seed-{n}@bench.example', '[]', 'x', 0, {now}, {now}) ON CONFLICT DO NOTHING"
    );
    let (rows, hash, hash2) = match backend {
        Backend::Sqlite => (
            format!(
                "WITH RECURSIVE c(x) AS (SELECT {} UNION ALL SELECT x + 1 FROM c WHERE x < {n}) SELECT x FROM c",
                from + 1
            ),
            "randomblob(32)".to_string(),
            "randomblob(32)".to_string(),
        ),
        Backend::Postgres => (
            format!("SELECT x FROM generate_series({}, {n}) AS x", from + 1),
            "decode(md5(x::text) || md5((x + 1)::text), 'hex')".to_string(),
            "decode(md5((x + 2)::text) || md5((x + 3)::text), 'hex')".to_string(),
        ),
    };
    let expires = format!("CASE WHEN x % 2 = 0 THEN 1 ELSE {} END", now + 86400);
    let sessions = format!(
        "INSERT INTO sessions (id, token_hash, user_id, created_at, last_seen_at, expires_at, auth_time, amr) \
         SELECT 'seed-' || x, {hash}, 'seed-user', {now}, {now}, {expires}, {now}, '[\"pwd\"]' FROM ({rows}) AS s"
    );
    let tokens = format!(
        "INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, session_id, scope, audience, amr, \
         created_at, idle_expires_at, expires_at) \
         SELECT {hash2}, 'seed-' || x, 'web', 'seed-user', 'seed-' || x, 'openid', 'https://api.bench', '[]', {now}, {}, {expires} \
         FROM ({rows}) AS s",
        now + 3600
    );
    for sql in [user, sessions, tokens] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .expect("seed rows");
    }
    // Rows that arrived in seconds: refresh the planner's statistics as autovacuum would after
    // such growth. On PostgreSQL this also invalidates plans cached while the tables were tiny
    // (a sequential scan is the cheapest plan for a table of a few pages, and a disaster for
    // one of a million rows).
    if backend == Backend::Postgres {
        sqlx::query("ANALYZE refresh_tokens, sessions, users")
            .execute(&pool)
            .await
            .expect("analyze");
    }
    pool.close().await;
}

/// Adds users `mfa-1@bench.example` .. `mfa-{n}@bench.example` (the bench user's password, as
/// [`add_chain_users`]) and gives each an authenticator app through Tessera's own enrolment use
/// cases, on the server's database and master key. The confirming code is the previous step's,
/// so the present step is unused. Returns (email, key) pairs.
pub async fn add_mfa_users(t: &Tessera, n: usize) -> Vec<(String, TotpSecret)> {
    add_mfa_users_named(t, "mfa", n).await
}

/// [`add_mfa_users`] with another prefix, for a second pool on the same server.
pub async fn add_mfa_users_named(t: &Tessera, prefix: &str, n: usize) -> Vec<(String, TotpSecret)> {
    add_users(&t.database_url, prefix, n).await;
    let config = tessera::config::Config::load_from(None, &t.env).expect("the server's settings");
    let p = tessera::startup::provider(&config)
        .await
        .expect("the server's store");
    let name = FactorName::parse("Bench phone", "").expect("a factor name");
    let mut out = Vec::with_capacity(n);
    for i in 1..=n {
        let email = format!("{prefix}-{i}@bench.example");
        let user = p
            .store
            .find_user_by_email(&email)
            .await
            .expect("read a user")
            .expect("the user exists");
        let e = mfa::begin_totp_enrolment(&p, &user)
            .await
            .expect("begin an enrolment");
        let key = TotpSecret::parse_base32(e.key.expose()).expect("the key shown");
        let code = key.code_at(unix_now() - 30).expect("a code");
        mfa::confirm_totp_enrolment(&p, &user.id, &e.id, &name, &code)
            .await
            .expect("confirm the enrolment");
        out.push((email, key));
    }
    out
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// The whole sign-in with a second step: authorize -> sign-in page -> POST the password ->
/// second-step page -> POST the authenticator's current code -> code.
async fn sign_in_with_code(
    c: &reqwest::Client,
    base: &str,
    email: &str,
    key: &TotpSecret,
) -> Option<String> {
    let page = c.get(authorize_url(base)).send().await.ok()?;
    let csrf_cookie = set_cookie(&page, "tessera_csrf")?;
    let html = page.text().await.ok()?;
    let form = [
        ("csrf_token", input_value(&html, "csrf_token")?),
        ("request", input_value(&html, "request")?),
        ("email", email.to_string()),
        ("password", PASSWORD.to_string()),
    ];
    let resp = c
        .post(format!("{base}/login"))
        .header(
            reqwest::header::COOKIE,
            format!("tessera_csrf={csrf_cookie}"),
        )
        .form(&form)
        .send()
        .await
        .ok()?;
    let handle = set_cookie(&resp, "tessera_second_step")?;
    let html = resp.text().await.ok()?;
    let form = [
        ("csrf_token", input_value(&html, "csrf_token")?),
        ("code", key.code_at(unix_now())?),
    ];
    let resp = c
        .post(format!("{base}/login/second-step"))
        .header(
            reqwest::header::COOKIE,
            format!("tessera_csrf={csrf_cookie}; tessera_second_step={handle}"),
        )
        .form(&form)
        .send()
        .await
        .ok()?;
    code_from(&resp)
}

/// Sign-ins with a password and an authenticator's code, each by the next of `users` in turn
/// (a code is accepted once per user and 30-second step, so the pool must outlast a step).
pub async fn password_totp_sign_in(
    name: &str,
    c: reqwest::Client,
    base: String,
    users: Arc<Vec<(String, TotpSecret)>>,
    workers: usize,
    d: Duration,
) -> Outcome {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    closed_loop(name, workers, d, move |_, _| {
        let (c, base, users, next) = (c.clone(), base.clone(), users.clone(), next.clone());
        async move {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % users.len().max(1);
            let Some((email, key)) = users.get(i) else {
                return false;
            };
            match sign_in_with_code(&c, &base, email, key).await {
                Some(code) => redeem(&c, &base, &code).await.is_some(),
                None => false,
            }
        }
    })
    .await
}

/// What sign-ins cost Tessera, measured one at a time so that nothing queues: per pair, a
/// password-only sign-in of a fresh user and a password + TOTP sign-in of another fresh user,
/// each whole flow (authorize, sign-in POST, second-step POST, code redeemed) bracketed by two
/// reads of `/metrics` and of the process's CPU time. Returns, per pair, what (password only,
/// password + TOTP) spent; `None` for a pair where a sign-in failed or a read did not answer.
pub async fn paired_sign_ins(
    c: &reqwest::Client,
    base: &str,
    pid: u32,
    plain: &[String],
    mfa: &[(String, TotpSecret)],
) -> Vec<Option<(SignInTotals, SignInTotals)>> {
    let totals = || crate::server_time::sign_in_totals(c, base, pid);
    let mut out = Vec::with_capacity(plain.len().min(mfa.len()));
    for (email, (mfa_email, key)) in plain.iter().zip(mfa) {
        let pair = async {
            let t0 = totals().await?;
            let (_, code) = sign_in_as(c, base, email).await?;
            redeem(c, base, &code).await?;
            let t1 = totals().await?;
            let code = sign_in_with_code(c, base, mfa_email, key).await?;
            redeem(c, base, &code).await?;
            let t2 = totals().await?;
            Some((t0.until(&t1), t1.until(&t2)))
        };
        out.push(pair.await);
    }
    out
}
