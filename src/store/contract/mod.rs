//! The store contract, run against SQLite always and against PostgreSQL when
//! `TESSERA_TEST_BACKEND=postgres` (CI sets it; an unreachable server fails the run loudly).
//! Here: the backends, the `contract!` macro and the fixtures; the checks, one module per
//! capability (as `store::sql`).

use super::*;
use crate::crypto::random_id;

fn sqlite_url() -> String {
    let dir = std::env::temp_dir().join(format!("tessera-contract-{}", random_id()));
    format!("sqlite://{}/t.db", dir.display())
}

async fn open(url: &str, max_connections: u32) -> SqlStore {
    let store = SqlStore::connect(url, max_connections).await.unwrap();
    store.migrate().await.unwrap();
    store
}

async fn sqlite() -> SqlStore {
    open(&sqlite_url(), 4).await
}

/// A new, empty PostgreSQL database when `TESSERA_TEST_BACKEND=postgres`: its URL.
async fn postgres_url() -> Option<String> {
    if std::env::var("TESSERA_TEST_BACKEND").as_deref() != Ok("postgres") {
        return None;
    }
    let base = std::env::var("TESSERA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let admin = SqlStore::connect(&base, 1)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {base} is unreachable: {e}"));
    let name = format!(
        "tessera_contract_{}",
        random_id().to_lowercase().replace(['-', '_'], "")
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin.pool)
        .await
        .unwrap();
    admin.close().await;
    let (prefix, _) = base.rsplit_once('/').unwrap();
    Some(format!("{prefix}/{name}"))
}

async fn postgres() -> Option<SqlStore> {
    Some(open(&postgres_url().await?, 8).await)
}

/// Runs one contract check on every configured backend.
macro_rules! contract {
    ($name:ident, $body:expr) => {
        #[tokio::test]
        async fn $name() {
            let check = $body;
            check(sqlite().await).await;
            if let Some(pg) = postgres().await {
                check(pg).await;
            }
        }
    };
}

fn user(email: &str) -> User {
    User {
        id: random_id(),
        email: email.into(),
        name: Some("Ann".into()),
        roles: vec!["admin".into()],
        password_hash: crate::secret::SecretString::new("$argon2id$..."),
        disabled: false,
        email_verified: false,
        created_at: 100,
    }
}

fn session(user_id: &str) -> Session {
    Session {
        id: random_id(),
        token_hash: random_id().into_bytes(),
        user_id: user_id.into(),
        created_at: 100,
        created_ms: 100_000,
        last_seen_at: 100,
        expires_at: 1000,
        auth_time: 100,
        amr: vec!["pwd".into()],
        user_agent: Some("test".into()),
        ip: Some("127.0.0.1".into()),
        revoked_at: None,
    }
}

fn refresh(family: &str, session_id: Option<&str>) -> RefreshToken {
    RefreshToken {
        token_hash: random_id().into_bytes(),
        family_id: family.into(),
        client_id: "app".into(),
        user_id: Some("u".into()),
        session_id: session_id.map(String::from),
        scope: "openid".into(),
        audience: "api".into(),
        auth_time: Some(100),
        amr: vec!["pwd".into()],
        created_at: 100,
        idle_expires_at: 500,
        expires_at: 1000,
        rotated_at: None,
        successor_hash: None,
        successor_enc: None,
        revoked_at: None,
    }
}

fn a_code() -> AuthCode {
    AuthCode {
        code_hash: random_id().into_bytes(),
        client_id: "app".into(),
        user_id: "u".into(),
        session_id: "s".into(),
        redirect_uri: "https://a/cb".into(),
        scope: "openid".into(),
        nonce: None,
        code_challenge: "c".into(),
        resource: None,
        auth_time: 1,
        amr: vec!["pwd".into()],
        created_at: 1,
        expires_at: 61,
    }
}

fn redemption(family: &str) -> CodeRedemption {
    CodeRedemption {
        family_id: family.into(),
        access_jti: format!("{family}-jti"),
        access_expires_at: 600,
    }
}

/// A user, a session and `n` current tokens of theirs (families `{prefix}0..n`).
async fn live_tokens(s: &SqlStore, prefix: &str, n: usize) -> (User, Session, Vec<RefreshToken>) {
    let u = user(&format!("{prefix}@example.com"));
    s.insert_user(&u).await.unwrap();
    let sess = session(&u.id);
    s.insert_session(&sess).await.unwrap();
    let mut tokens = Vec::new();
    for i in 0..n {
        let mut t = refresh(&format!("{prefix}{i}"), Some(&sess.id));
        t.user_id = Some(u.id.clone());
        s.insert_refresh(&t).await.unwrap();
        tokens.push(t);
    }
    (u, sess, tokens)
}

/// Rotates `old` at 200 with `successor` in a task of its own.
fn spawn_rotation(
    s: &SqlStore,
    old: &RefreshToken,
    successor: Vec<u8>,
) -> tokio::task::JoinHandle<StoreResult<Option<RefreshGrant>>> {
    let (s, old) = (s.clone(), old.token_hash.clone());
    tokio::spawn(async move {
        s.rotate_if_current(&CurrentRotation {
            old_hash: &old,
            client_id: "app",
            successor_hash: &successor,
            successor_enc: b"sealed",
            now: 200,
            idle_ttl: 100,
        })
        .await
    })
}

mod admin_users;
mod audit;
mod backchannel;
mod codes;
mod consent;
mod keys;
mod mfa;
mod purge;
mod refresh;
mod revocations;
mod sessions;
mod users;
