//! Defects found reviewing the hardening batch of issue 12, each shown by the request (or the
//! database change) an attacker would make.

use reqwest::StatusCode;
use reqwest::header::HeaderValue;

use crate::helpers::*;

/// POSTs `grant_type=client_credentials` as `auth` through a proxy (the test client's address is
/// the trusted proxy) with the given raw forwarding headers.
async fn client_credentials_via_proxy(
    app: &TestApp,
    auth: &ClientAuth,
    headers: &[(&str, HeaderValue)],
) -> reqwest::Response {
    let mut builder = app.backchannel.post(app.url("/token"));
    for (name, value) in headers {
        builder = builder.header(*name, value.clone());
    }
    let mut form = vec![("grant_type".to_owned(), "client_credentials".to_owned())];
    match auth {
        ClientAuth::Basic { id, secret } => {
            builder = builder.header("Authorization", basic_authorization(id, secret));
        }
        ClientAuth::Post { id, secret } => {
            form.push(("client_id".into(), id.clone()));
            form.push(("client_secret".into(), secret.clone()));
        }
        ClientAuth::Public { id } => form.push(("client_id".into(), id.clone())),
        ClientAuth::Anonymous => {}
    }
    builder.form(&form).send().await.expect("POST /token")
}

/// A client behind a trusted proxy that appends to `X-Forwarded-For` (as nginx's
/// `$proxy_add_x_forwarded_for` does) puts a byte outside visible ASCII in its own
/// `X-Forwarded-For` and adds a `Forwarded` header naming someone else. The line used to be dropped
/// whole (it is not a `str`), the proxy's entry with it, and the client's own `Forwarded` header
/// was believed instead: the client chose the address it is counted under, here a victim's,
/// whose valid requests then got 429.
#[tokio::test]
async fn a_non_ascii_byte_in_x_forwarded_for_does_not_let_the_client_choose_its_address() {
    let app = spawn_app_with(|c| {
        c.env("TESSERA_TRUSTED_PROXIES", "127.0.0.0/8");
        c.env("TESSERA_TOKEN_FAILURE_LIMIT", "3");
    })
    .await;
    let service = app.add_client(ClientSpec::service("reports")).await;
    let attacker = "203.0.113.66";
    let victim = "198.51.100.20";
    let forged = [
        (
            "x-forwarded-for",
            HeaderValue::from_bytes(&[b"\x80, ".as_slice(), attacker.as_bytes()].concat())
                .expect("obs-text is a valid header value"),
        ),
        (
            "forwarded",
            HeaderValue::from_str(&format!("for={victim}")).expect("a header value"),
        ),
    ];
    let wrong = ClientAuth::Basic {
        id: "reports".into(),
        secret: "not-the-secret".into(),
    };
    for _ in 0..6 {
        let resp = client_credentials_via_proxy(&app, &wrong, &forged).await;
        assert!(
            resp.status().is_client_error(),
            "junk is refused: {}",
            resp.status()
        );
    }
    // The victim, through the same proxy, with a valid request.
    let from_victim = [(
        "x-forwarded-for",
        HeaderValue::from_str(victim).expect("a header value"),
    )];
    let resp = client_credentials_via_proxy(&app, &service.auth(), &from_victim).await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "the attacker's junk was counted under the victim's address: {}",
        resp.text().await.unwrap_or_default()
    );
    // The attacker's own address carries the count.
    let from_attacker = [(
        "x-forwarded-for",
        HeaderValue::from_str(attacker).expect("a header value"),
    )];
    let resp = client_credentials_via_proxy(&app, &service.auth(), &from_attacker).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
}

/// A database writer deletes the last entries, moves the head back onto the new last row and
/// clears the head's MAC. `tessera audit verify` used to seal the head it found (it opens the
/// store like every command) and then report the log intact.
#[tokio::test]
async fn audit_verify_does_not_bless_a_moved_head_whose_mac_was_cleared() {
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;
    app.tokens_for(&client, &user).await;
    app.disable_user(&user.email).await;
    let newest = app.audit_tail(1).await[0].clone();
    assert!(newest.seq >= 3, "some history was written: {newest:?}");
    app.audit_verify()
        .await
        .assert_success("tessera audit verify on an untouched log");

    let keep = newest.seq - 2;
    app.execute_sql(&format!("DELETE FROM audit_events WHERE seq > {keep}"))
        .await;
    let moved = app
        .execute_sql(&format!(
            "UPDATE audit_head SET seq = {keep}, \
             last_hash = (SELECT hash FROM audit_events WHERE seq = {keep}), head_mac = NULL \
             WHERE id = 1"
        ))
        .await;
    assert_eq!(moved, 1);

    let out = app.audit_verify().await;
    assert!(
        !out.status.success(),
        "`tessera audit verify` passed a truncated log whose head was moved back and unsealed:\n{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("AUDIT LOG TAMPERED"),
        "the failure says the log was tampered with: {}",
        out.stderr
    );
}

/// PostgreSQL only. The database fails for a moment (a serialization failure, which the store
/// classifies as transient) while a code is being redeemed, after the code was read and before it
/// is spent: the client is told 503 `temporarily_unavailable`, "try again". The code used to be
/// spent all the same, so the retry was answered `invalid_grant` (a replay) for good.
#[tokio::test]
async fn a_code_whose_redemption_failed_on_our_side_can_be_redeemed_on_retry() {
    let app = spawn_app().await;
    if app.postgres_database().is_none() {
        eprintln!(
            "SKIPPED (SQLite): a_code_whose_redemption_failed_on_our_side_can_be_redeemed_on_retry \
             needs TESSERA_TEST_BACKEND=postgres"
        );
        return;
    }
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;
    let request = AuthRequest::new(&client);
    let code = app.obtain_code(&request, &user).await;

    // Reading a user fails transiently (SQLSTATE 40001) until the view is dropped.
    app.execute_sql(
        "CREATE FUNCTION review_fail_now() RETURNS boolean LANGUAGE plpgsql AS $$ \
         BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '40001'; END $$",
    )
    .await;
    app.execute_sql("ALTER TABLE users RENAME TO users_real")
        .await;
    app.execute_sql("CREATE VIEW users AS SELECT * FROM users_real WHERE review_fail_now()")
        .await;

    let resp = app.redeem_code(&client.auth(), &request, &code).await;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();

    app.execute_sql("DROP VIEW users").await;
    app.execute_sql("ALTER TABLE users_real RENAME TO users")
        .await;

    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "a transient failure is answered try-again: {body}"
    );
    assert!(body.contains("temporarily_unavailable"), "{body}");
    let retry = app.redeem_code(&client.auth(), &request, &code).await;
    expect_tokens(retry).await;
}

/// A browser whose every request comes through the trusted proxy with
/// `X-Forwarded-For: forwarded_for`.
fn browser_from(forwarded_for: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "X-Forwarded-For",
        HeaderValue::from_str(forwarded_for).expect("a header value"),
    );
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(std::sync::Arc::new(reqwest::cookie::Jar::default()))
        .default_headers(headers)
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("build the browser")
}

/// Posts "forgot password" for `email` as `browser`; returns the status.
async fn forgot(app: &TestApp, browser: &reqwest::Client, email: &str) -> StatusCode {
    let html = browser
        .get(app.url("/password/forgot"))
        .send()
        .await
        .expect("GET /password/forgot")
        .text()
        .await
        .expect("read /password/forgot");
    let csrf = input_value(&html, "csrf_token").expect("the forgot page carries a csrf_token");
    browser
        .post(app.url("/password/forgot"))
        .form(&[("csrf_token", csrf.as_str()), ("email", email)])
        .send()
        .await
        .expect("POST /password/forgot")
        .status()
}

/// The account-mail limit counts per address and per email under one key space, so an email
/// field holding a victim's address (no `@` is required) spent the victim's per-address quota:
/// from one address of their own, an attacker kept anyone's network from asking for reset links.
#[tokio::test]
async fn an_email_field_naming_someones_address_does_not_spend_that_addresss_mail_quota() {
    let app = spawn_app_with(|c| {
        c.env("TESSERA_TRUSTED_PROXIES", "127.0.0.0/8");
        c.env("TESSERA_ACCOUNT_MAIL_RATE_LIMIT", "3");
    })
    .await;
    let victim = "198.51.100.20";
    let attacker = browser_from("203.0.113.66");
    for _ in 0..3 {
        assert_eq!(forgot(&app, &attacker, victim).await, StatusCode::OK);
    }
    let status = forgot(&app, &browser_from(victim), "ada@example.test").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the victim's address was refused after the attacker named it as an email"
    );
}
