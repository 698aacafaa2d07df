//! Where a request came from, and what each party can be held to: behind a trusted proxy the
//! forwarded address is the client's; nobody else chooses the address they are counted under;
//! and one party's junk at the token endpoint never fails another party's valid request.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::cookie::Jar;
use reqwest::header::{HeaderMap, HeaderValue};

use crate::helpers::*;

/// POSTs to /token as `auth` with `X-Forwarded-For: forwarded_for`.
async fn token_from(
    app: &TestApp,
    forwarded_for: &str,
    auth: &ClientAuth,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut fields: Vec<(String, String)> = form
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut builder = app
        .backchannel
        .post(app.url("/token"))
        .header("X-Forwarded-For", forwarded_for);
    match auth {
        ClientAuth::Basic { id, secret } => {
            builder = builder.header("Authorization", basic_authorization(id, secret));
        }
        ClientAuth::Post { id, secret } => {
            fields.push(("client_id".into(), id.clone()));
            fields.push(("client_secret".into(), secret.clone()));
        }
        ClientAuth::Public { id } => fields.push(("client_id".into(), id.clone())),
        ClientAuth::Anonymous => {}
    }
    builder.form(&fields).send().await.expect("POST /token")
}

async fn junk_refresh_from(app: &TestApp, forwarded_for: &str, auth: &ClientAuth) -> StatusCode {
    token_from(
        app,
        forwarded_for,
        auth,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &random_token()),
        ],
    )
    .await
    .status()
}

/// A browser whose every request carries `X-Forwarded-For: forwarded_for`.
fn browser_forwarded_for(forwarded_for: &str) -> reqwest::Client {
    let mut headers = HeaderMap::new();
    headers.insert(
        "X-Forwarded-For",
        HeaderValue::from_str(forwarded_for).expect("a header value"),
    );
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(Arc::new(Jar::default()))
        .default_headers(headers)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build the browser")
}

#[tokio::test]
async fn junk_refreshes_naming_a_public_client_from_one_address_do_not_fail_another_users_valid_refresh()
 {
    let app = spawn_app_with(|c| {
        c.env("TESSERA_TRUSTED_PROXIES", "127.0.0.0/8");
        c.env("TESSERA_TOKEN_RATE_LIMIT", "5");
        c.env("TESSERA_TOKEN_FAILURE_LIMIT", "5");
    })
    .await;
    let erp = app
        .add_client(ClientSpec::first_party("erp").public())
        .await;
    let user = app.add_user("ada@example.test").await;
    let tokens = app.tokens_for(&erp, &user).await;

    for _ in 0..12 {
        junk_refresh_from(&app, "203.0.113.66", &erp.auth()).await;
    }

    let resp = token_from(
        &app,
        "198.51.100.20",
        &erp.auth(),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens.refresh_token()),
        ],
    )
    .await;
    let next = expect_tokens(resp).await;
    // And again: the user's own refreshes are not held to the stranger's count either.
    let resp = token_from(
        &app,
        "198.51.100.20",
        &erp.auth(),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", next.refresh_token()),
        ],
    )
    .await;
    expect_tokens(resp).await;
}

#[tokio::test]
async fn an_address_that_floods_the_token_endpoint_with_junk_gets_429_with_retry_after() {
    let app = spawn_app_with(|c| {
        c.env("TESSERA_TRUSTED_PROXIES", "127.0.0.0/8");
        c.env("TESSERA_TOKEN_FAILURE_LIMIT", "5");
    })
    .await;
    let erp = app
        .add_client(ClientSpec::first_party("erp").public())
        .await;
    let user = app.add_user("ada@example.test").await;
    let tokens = app.tokens_for(&erp, &user).await;

    for i in 0..5 {
        assert_eq!(
            junk_refresh_from(&app, "203.0.113.66", &erp.auth()).await,
            StatusCode::BAD_REQUEST,
            "junk request {i} is answered invalid_grant"
        );
    }
    let resp = token_from(
        &app,
        "203.0.113.66",
        &erp.auth(),
        &[("grant_type", "refresh_token"), ("refresh_token", "junk")],
    )
    .await;
    let retry_after: u64 = resp
        .headers()
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a 429 says when to retry");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    expect_oauth_error(
        resp,
        StatusCode::TOO_MANY_REQUESTS,
        "temporarily_unavailable",
    )
    .await;
    // Someone else behind the same address (a NAT) is not logged out by its neighbour: a valid
    // refresh of a live family still goes through.
    let resp = token_from(
        &app,
        "203.0.113.66",
        &erp.auth(),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens.refresh_token()),
        ],
    )
    .await;
    expect_tokens(resp).await;
    assert_eq!(
        junk_refresh_from(&app, "203.0.113.67", &erp.auth()).await,
        StatusCode::BAD_REQUEST,
        "another address is not held to the flooder's count"
    );
}

#[tokio::test]
async fn bad_client_secrets_behind_a_trusted_proxy_lock_out_only_the_forwarded_address() {
    let app = spawn_app_with(|c| {
        c.env("TESSERA_TRUSTED_PROXIES", "127.0.0.0/8");
        c.env("TESSERA_IP_FAILURE_LIMIT", "3");
    })
    .await;
    let service = app.add_client(ClientSpec::service("reports")).await;
    let cc = [("grant_type", "client_credentials")];

    for _ in 0..3 {
        let resp = token_from(&app, "203.0.113.5", &service.wrong_secret_auth(), &cc).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = token_from(&app, "203.0.113.5", &service.auth(), &cc).await;
    assert_eq!(
        resp.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the guessing address is locked out, even with the right secret"
    );
    let resp = token_from(&app, "203.0.113.6", &service.auth(), &cc).await;
    expect_tokens(resp).await;
    // The proxy's own address is not the one counted either.
    expect_tokens(app.client_credentials(&service.auth(), &[]).await).await;
}

#[tokio::test]
async fn without_trusted_proxies_a_spoofed_forwarded_for_does_not_escape_the_address_limit() {
    let app = spawn_app_with(|c| {
        c.env("TESSERA_IP_FAILURE_LIMIT", "3");
    })
    .await;
    let service = app.add_client(ClientSpec::service("reports")).await;
    let cc = [("grant_type", "client_credentials")];

    for i in 0..3 {
        let resp = token_from(
            &app,
            &format!("203.0.113.{i}"),
            &service.wrong_secret_auth(),
            &cc,
        )
        .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = token_from(&app, "198.51.100.99", &service.auth(), &cc).await;
    assert_eq!(
        resp.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "a made-up X-Forwarded-For from an untrusted peer is ignored"
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_session_list_and_the_audit_log_show_the_forwarded_address() {
    let app = spawn_app_with(|c| {
        c.env("TESSERA_TRUSTED_PROXIES", "127.0.0.0/8");
    })
    .await;
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;
    // The client forged the first entry; the (trusted) proxy chain appended the rest.
    let browser = browser_forwarded_for("192.0.2.1, 198.51.100.23, 127.0.0.2");

    let request = AuthRequest::new(&client);
    let page = expect_sign_in_page(app.authorize_in(&browser, &request).await).await;
    let resp = app
        .post_login_in(&browser, &page, &user.email, &user.password)
        .await;
    expect_callback(&resp, &request.redirect_uri());

    let sessions = app.cli_sessions(&user.email).await;
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0].ip, "198.51.100.23");
    let log = app.audit_tail(50).await;
    let success = log
        .iter()
        .find(|l| l.action == "signin.success")
        .unwrap_or_else(|| panic!("a sign-in is audited: {log:?}"));
    assert_eq!(success.ip.as_deref(), Some("198.51.100.23"), "{success:?}");
}

/// A client_credentials request as a proxy that sets only `Forwarded` passes it on, carrying an
/// `X-Forwarded-For` its client made up.
async fn via_forwarded_proxy(
    app: &TestApp,
    client: &str,
    made_up: &str,
    auth: &ClientAuth,
) -> reqwest::Response {
    let ClientAuth::Basic { id, secret } = auth else {
        panic!("the service authenticates with Basic")
    };
    app.backchannel
        .post(app.url("/token"))
        .header("Forwarded", format!("for={client};proto=https"))
        .header("X-Forwarded-For", made_up)
        .header("Authorization", basic_authorization(id, secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("POST /token")
}

#[tokio::test]
async fn behind_a_proxy_that_sets_forwarded_a_made_up_x_forwarded_for_is_not_believed() {
    let app = spawn_app_with(|c| {
        c.env("TESSERA_TRUSTED_PROXIES", "127.0.0.0/8");
        c.env("TESSERA_FORWARDED_HEADER", "forwarded");
        c.env("TESSERA_IP_FAILURE_LIMIT", "3");
    })
    .await;
    let service = app.add_client(ClientSpec::service("reports")).await;

    // Each guess names a fresh address in X-Forwarded-For; the proxy's Forwarded says who it is.
    for i in 0..3 {
        let made_up = format!("198.51.100.{i}");
        let resp =
            via_forwarded_proxy(&app, "203.0.113.5", &made_up, &service.wrong_secret_auth()).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
    let resp = via_forwarded_proxy(&app, "203.0.113.5", "198.51.100.50", &service.auth()).await;
    assert_eq!(
        resp.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the guesses are counted against the address the proxy named, whatever the client added"
    );
    let resp = via_forwarded_proxy(&app, "203.0.113.6", "203.0.113.5", &service.auth()).await;
    expect_tokens(resp).await;
}

#[tokio::test]
async fn a_trusted_proxy_sending_only_the_header_not_read_is_named_in_the_log() {
    let app = spawn_app_with(|c| {
        c.env("TESSERA_TRUSTED_PROXIES", "127.0.0.0/8");
    })
    .await;
    let service = app.add_client(ClientSpec::service("reports")).await;
    let ClientAuth::Basic { id, secret } = service.auth() else {
        panic!("the service authenticates with Basic")
    };
    let resp = app
        .backchannel
        .post(app.url("/token"))
        .header("Forwarded", "for=203.0.113.5")
        .header("Authorization", basic_authorization(&id, &secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("POST /token");
    expect_tokens(resp).await;
    let mut log = String::new();
    for _ in 0..50 {
        log = app.log_tail(64 * 1024);
        if log.contains("forwarded_header") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        log.contains("set forwarded_header = \"forwarded\""),
        "the log says which setting to change: {log}"
    );
}
