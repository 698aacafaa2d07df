//! OpenID Connect Back-Channel Logout 1.0: when a session ends, however it ends, each client
//! that took part in it and registered a back-channel logout URI is POSTed a logout token that
//! verifies against the JWKS; failures are retried, redirects not followed, a slow RP never
//! delays the user, and a delivery outlives a restart.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// How soon a logout token must reach the RP (the ERP's tabs land on sign-in within 5 s).
const PROMPTLY: Duration = Duration::from_secs(3);

/// The SSO session an access token was issued under.
fn sid(tokens: &TokenResponse) -> String {
    jwt_claims(&tokens.access_token)["sid"]
        .as_str()
        .expect("a user's access token names its session (sid)")
        .to_owned()
}

/// Verifies a received logout token as an RP must (§2.6) and returns its claims.
async fn verified_logout_token(app: &TestApp, post: &ReceivedPost, client_id: &str) -> Value {
    assert_eq!(
        post.content_type, "application/x-www-form-urlencoded",
        "a logout token is POSTed as a form"
    );
    let token = post.logout_token();
    let header = jwt_header(&token);
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"), "typ (§2.4)");
    assert!(header.kid.is_some(), "the header names its key");
    let claims = app
        .verify_jwt(&token, client_id)
        .await
        .unwrap_or_else(|e| panic!("the logout token does not verify: {e}"));
    assert_eq!(claims["iss"], json!(app.issuer));
    assert_eq!(audiences(&claims), vec![client_id.to_owned()]);
    assert_eq!(claims["events"], json!({ EVENT: {} }));
    assert!(claims.get("nonce").is_none(), "a logout token has no nonce");
    assert!(
        claims["jti"].as_str().is_some_and(|j| j.len() >= 16),
        "a unique jti: {claims}"
    );
    let (iat, exp) = (
        claims["iat"].as_i64().expect("iat"),
        claims["exp"].as_i64().expect("exp"),
    );
    assert!(exp > iat && exp - iat <= 120, "a short life: {claims}");
    claims
}

async fn rp(app: &TestApp, id: &str, receiver: &LogoutReceiver) -> RegisteredClient {
    app.add_client(
        ClientSpec::first_party(id).backchannel_logout_uri(&receiver.url(&format!("/{id}"))),
    )
    .await
}

#[tokio::test]
async fn signing_out_sends_a_verifiable_logout_token_to_each_client_of_that_session_only_and_never_waits_for_them()
 {
    let receiver = LogoutReceiver::start().await;
    let app = spawn_app().await;
    let discovery = app.discovery().await;
    assert_eq!(discovery["backchannel_logout_supported"], json!(true));
    assert_eq!(
        discovery["backchannel_logout_session_supported"],
        json!(true)
    );

    let user = app.add_user("ada@example.test").await;
    let signed_out = "https://erp.example.test/signed-out";
    let erp = app
        .add_client(
            ClientSpec::first_party("erp")
                .post_logout_redirect_uri(signed_out)
                .backchannel_logout_uri(&receiver.url("/erp")),
        )
        .await;
    let crm = rp(&app, "crm", &receiver).await;
    let wiki = app.add_client(ClientSpec::first_party("wiki")).await;
    let other = rp(&app, "other", &receiver).await;
    let erp_tokens = app.tokens_for(&erp, &user).await;
    let crm_tokens = app.tokens_for(&crm, &user).await;
    app.tokens_for(&wiki, &user).await;
    // The same user's other session, with another client: not part of this one.
    let phone = app.new_browser();
    let phone_tokens = app.tokens_for_in(&phone, &other, &user).await;
    let laptop_sid = sid(&erp_tokens);
    assert_eq!(sid(&crm_tokens), laptop_sid);
    // The ERP takes its time answering: the user must not wait for it.
    receiver.script("/erp", &[Reply::Slow(Duration::from_secs(3), 200)]);

    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("id_token_hint", erp_tokens.id_token())
        .append_pair("post_logout_redirect_uri", signed_out)
        .finish();
    let started = Instant::now();
    let resp = app.get(&format!("/logout?{query}")).await;
    let took = started.elapsed();
    expect_callback(&resp, signed_out);
    assert!(
        took < Duration::from_secs(1),
        "the sign-out answered in {took:?}, not waiting for a slow RP"
    );

    let posts = receiver.wait_for(2, PROMPTLY, |_| true).await;
    let mut paths: Vec<&str> = posts.iter().map(|p| p.path.as_str()).collect();
    paths.sort();
    assert_eq!(paths, ["/crm", "/erp"], "the session's clients with a URI");
    for post in &posts {
        let client_id = post.path.trim_start_matches('/');
        let claims = verified_logout_token(&app, post, client_id).await;
        assert_eq!(claims["sid"], json!(laptop_sid));
        assert_eq!(claims["sub"], json!(user.id));
        let after = post.at.duration_since(started);
        println!(
            "{} got its logout token {after:?} after the sign-out",
            post.path
        );
        assert!(after < PROMPTLY, "delivered {after:?} after the sign-out");
    }
    let jtis: std::collections::BTreeSet<String> = posts
        .iter()
        .map(|p| {
            jwt_claims(&p.logout_token())["jti"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(jtis.len(), 2, "each token has its own jti");

    // Nothing for the other session's client, nor a second copy for anyone.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(receiver.posts().len(), 2, "{:?}", receiver.posts());
    app.assert_active(&other, &phone_tokens.access_token, "the phone")
        .await;
    let m = app.metrics().await;
    assert_eq!(m.get("tessera_backchannel_logout_queued_total"), 2);
    assert_eq!(m.get("tessera_backchannel_logout_delivered_total"), 2);
    assert_eq!(m.get("tessera_backchannel_logout_failed_total"), 0);
    assert_eq!(m.get("tessera_backchannel_logout_pending"), 0);
}

#[tokio::test]
async fn every_way_a_session_ends_sends_a_logout_token() {
    let receiver = LogoutReceiver::start().await;
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let erp = rp(&app, "erp", &receiver).await;
    let mut expected = 0;
    let mut delivered_for = |sid: String| {
        expected += 1;
        let (receiver, app) = (receiver.clone(), &app);
        let n = expected;
        async move {
            let posts = receiver.wait_for(n, PROMPTLY, |_| true).await;
            let post = posts.last().unwrap().clone();
            let claims = verified_logout_token(app, &post, "erp").await;
            assert_eq!(claims["sid"], json!(sid));
            assert_eq!(posts.len(), n, "one token per ended session: {posts:?}");
        }
    };

    // Sign out all devices, from the sessions page.
    let browser = app.new_browser();
    let tokens = app.tokens_for_in(&browser, &erp, &user).await;
    let page = app.sessions_page_in(&browser).await;
    let resp = app.revoke_all_sessions_in(&browser, &page, false).await;
    assert_eq!(resp.status(), StatusCode::OK);
    delivered_for(sid(&tokens)).await;

    // Sign out one other device from the sessions page.
    let (laptop, phone) = (app.new_browser(), app.new_browser());
    app.tokens_for_in(&laptop, &erp, &user).await;
    let on_phone = app.tokens_for_in(&phone, &erp, &user).await;
    let page = app.sessions_page_in(&laptop).await;
    app.revoke_session_in(&laptop, &page, &sid(&on_phone)).await;
    delivered_for(sid(&on_phone)).await;
    let page = app.sessions_page_in(&laptop).await;
    app.revoke_all_sessions_in(&laptop, &page, false).await;
    delivered_for(page.current().id.clone()).await;

    // An operator revokes the session.
    let tokens = app.tokens_for_in(&app.new_browser(), &erp, &user).await;
    app.cli_revoke_session(&sid(&tokens)).await;
    delivered_for(sid(&tokens)).await;

    // An operator disables the user.
    let tokens = app.tokens_for_in(&app.new_browser(), &erp, &user).await;
    app.disable_user(&user.email).await;
    delivered_for(sid(&tokens)).await;
    app.enable_user(&user.email).await;

    // An operator sets a new password.
    let tokens = app.tokens_for_in(&app.new_browser(), &erp, &user).await;
    app.set_password(&user.email, &user.password).await;
    delivered_for(sid(&tokens)).await;

    // A rotated refresh token is replayed after the grace window (two rotations old).
    let a = app.tokens_for_in(&app.new_browser(), &erp, &user).await;
    let b = expect_tokens(app.refresh(&erp.auth(), a.refresh_token()).await).await;
    expect_tokens(app.refresh(&erp.auth(), b.refresh_token()).await).await;
    app.assert_refresh_refused(&erp, a.refresh_token(), "A, two rotations old")
        .await;
    delivered_for(sid(&a)).await;

    let m = app.metrics().await;
    assert_eq!(m.get("tessera_backchannel_logout_delivered_total"), 7);
}

#[tokio::test]
async fn a_failed_delivery_is_retried_and_a_redirecting_rp_is_not_followed_and_given_up() {
    let receiver = LogoutReceiver::start().await;
    let app = spawn_app_with(|c| {
        c.env("TESSERA_BACKCHANNEL_LOGOUT_RETRY_MIN", "200ms");
        c.env("TESSERA_BACKCHANNEL_LOGOUT_RETRY_MAX", "400ms");
        c.env("TESSERA_BACKCHANNEL_LOGOUT_GIVE_UP_AFTER", "2s");
    })
    .await;
    let user = app.add_user("ada@example.test").await;
    let erp = rp(&app, "erp", &receiver).await;
    let hop = rp(&app, "hop", &receiver).await;
    receiver.script("/erp", &[Reply::Status(500)]);
    let landing = receiver.url("/landing");
    receiver.script("/hop", &vec![Reply::Redirect(landing); 50]);
    let tokens = app.tokens_for(&erp, &user).await;
    app.tokens_for(&hop, &user).await;

    app.cli_revoke_session(&sid(&tokens)).await;

    let erp_posts = receiver
        .wait_for(2, Duration::from_secs(5), |p| p.path == "/erp")
        .await;
    let gap = erp_posts[1].at.duration_since(erp_posts[0].at);
    assert!(
        gap >= Duration::from_millis(100),
        "the retry waited a back-off: {gap:?}"
    );
    let first = jwt_claims(&erp_posts[0].logout_token());
    let second = verified_logout_token(&app, &erp_posts[1], "erp").await;
    assert_ne!(
        first["jti"], second["jti"],
        "each attempt signs a fresh token"
    );
    assert_eq!(second["sid"], json!(sid(&tokens)));

    // The redirecting RP: retried, never followed, then given up and audited.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = app.metrics().await;
        if m.get("tessera_backchannel_logout_failed_total") == 1 {
            assert_eq!(m.get("tessera_backchannel_logout_pending"), 0);
            assert_eq!(m.get("tessera_backchannel_logout_delivered_total"), 1);
            assert!(m.get("tessera_backchannel_logout_retried_total") >= 2);
            break;
        }
        assert!(Instant::now() < deadline, "never given up:\n{}", m.text);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let hops = receiver.posts();
    assert!(
        hops.iter().filter(|p| p.path == "/hop").count() >= 2,
        "the redirecting RP was retried: {hops:?}"
    );
    assert!(
        hops.iter().all(|p| p.path != "/landing"),
        "the redirect was not followed: {hops:?}"
    );
    let audit = app.audit_tail(50).await;
    let failed: Vec<_> = audit
        .iter()
        .filter(|l| l.action == "backchannel_logout.failed")
        .collect();
    assert_eq!(failed.len(), 1, "{audit:?}");
    assert_eq!(failed[0].subject.as_deref(), Some("hop"));
    assert_eq!(failed[0].detail["sid"], json!(sid(&tokens)));
    let text = format!("{:?}", failed[0].detail);
    assert!(!text.contains("eyJ"), "no token in the audit log: {text}");
}

#[tokio::test]
async fn two_replicas_polling_the_same_queue_send_each_logout_token_once() {
    let receiver = LogoutReceiver::start().await;
    let fast = |c: &mut AppConfig| {
        c.env("TESSERA_BACKCHANNEL_LOGOUT_POLL_INTERVAL", "20ms");
    };
    let app = spawn_app_with(fast).await;
    let replica = app.spawn_replica_with(fast).await;
    let user = app.add_user("ada@example.test").await;
    let erp = rp(&app, "erp", &receiver).await;
    let crm = rp(&app, "crm", &receiver).await;
    let mut sessions = std::collections::BTreeSet::new();
    for _ in 0..8 {
        let browser = app.new_browser();
        let tokens = app.tokens_for_in(&browser, &erp, &user).await;
        app.tokens_for_in(&browser, &crm, &user).await;
        sessions.insert(sid(&tokens));
    }

    // Ended by the operator's command: neither server is woken, both find the queue by polling.
    app.cli_revoke_all_sessions(&user.email).await;

    receiver
        .wait_for(16, Duration::from_secs(5), |_| true)
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let posts = receiver.posts();
    let mut sent: Vec<(String, String)> = posts
        .iter()
        .map(|p| {
            let claims = jwt_claims(&p.logout_token());
            (
                claims["sid"].as_str().unwrap().to_owned(),
                claims["aud"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    sent.sort();
    let expected: Vec<(String, String)> = sessions
        .iter()
        .flat_map(|s| [(s.clone(), "crm".to_owned()), (s.clone(), "erp".to_owned())])
        .collect();
    assert_eq!(sent, expected, "each (session, client) exactly once");
    let delivered = app
        .metrics()
        .await
        .get("tessera_backchannel_logout_delivered_total")
        + replica
            .metrics()
            .await
            .get("tessera_backchannel_logout_delivered_total");
    assert_eq!(delivered, 16);
}

#[tokio::test]
async fn a_delivery_queued_while_the_server_is_down_is_sent_when_it_starts() {
    let receiver = LogoutReceiver::start().await;
    let mut app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let erp = rp(&app, "erp", &receiver).await;
    let tokens = app.tokens_for(&erp, &user).await;

    app.stop().await;
    // The operator's command ends the session in the database; no server is there to send.
    app.cli_revoke_session(&sid(&tokens)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(receiver.posts().is_empty());

    app.start().await;
    let posts = receiver.wait_for(1, PROMPTLY, |_| true).await;
    let claims = verified_logout_token(&app, &posts[0], "erp").await;
    assert_eq!(claims["sid"], json!(sid(&tokens)));
}

#[tokio::test]
async fn registration_refuses_a_bad_backchannel_logout_uri_and_http_when_the_issuer_is_https() {
    let app = spawn_app().await;
    for (i, bad) in [
        "not a uri",
        "/relative/bcl",
        "https://rp.example/bcl#fragment",
        "ftp://rp.example/bcl",
    ]
    .iter()
    .enumerate()
    {
        let out = app
            .try_add_client(
                &ClientSpec::first_party(&format!("bad{i}")).backchannel_logout_uri(bad),
            )
            .await;
        assert!(!out.status.success(), "{bad} was accepted: {out:?}");
        assert!(
            out.stderr.contains("back-channel logout URI"),
            "the error names the setting: {}",
            out.stderr
        );
    }
    // With an http issuer (development), http is accepted; update replaces and removes it.
    app.add_client(
        ClientSpec::first_party("dev").backchannel_logout_uri("http://localhost:3000/bcl"),
    )
    .await;
    let shown = app.cli(&["client", "show", "dev", "--json"], None).await;
    shown.assert_success("client show");
    let view: Value = serde_json::from_str(shown.stdout.trim()).unwrap();
    assert_eq!(view["backchannel_logout_uri"], "http://localhost:3000/bcl");
    app.cli(
        &["client", "update", "dev", "--backchannel-logout-uri", ""],
        None,
    )
    .await
    .assert_success("client update");
    let shown = app.cli(&["client", "show", "dev", "--json"], None).await;
    let view: Value = serde_json::from_str(shown.stdout.trim()).unwrap();
    assert_eq!(view["backchannel_logout_uri"], Value::Null);

    let secure = spawn_https_app().await;
    let out = secure
        .try_add_client(
            &ClientSpec::first_party("plain").backchannel_logout_uri("http://rp.example/bcl"),
        )
        .await;
    assert!(!out.status.success(), "http accepted with an https issuer");
    assert!(out.stderr.contains("https"), "{}", out.stderr);
    secure
        .add_client(ClientSpec::first_party("tls").backchannel_logout_uri("https://rp.example/bcl"))
        .await;
    let out = secure
        .cli(
            &[
                "client",
                "update",
                "tls",
                "--backchannel-logout-uri",
                "http://rp.example/bcl",
            ],
            None,
        )
        .await;
    assert!(
        !out.status.success(),
        "update to http accepted with an https issuer"
    );
}

async fn api(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Value,
) -> (StatusCode, Value) {
    let resp = app
        .backchannel
        .request(method, app.url(&format!("/admin/api/v1{path}")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("an admin API request");
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_admin_api_sets_checks_and_removes_a_backchannel_logout_uri() {
    use reqwest::Method;
    let app = spawn_app().await;
    let token = app.admin_api_token().await;
    let uri = "https://erp.example.test/bcl";
    let (status, created) = api(
        &app,
        Method::POST,
        "/clients",
        &token,
        json!({ "id": "erp", "redirect_uris": ["https://erp.example.test/cb"], "backchannel_logout_uri": uri }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["client"]["backchannel_logout_uri"], uri);
    let (status, err) = api(
        &app,
        Method::PATCH,
        "/clients/erp",
        &token,
        json!({ "backchannel_logout_uri": "https://erp.example.test/bcl#frag" }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    let (status, kept) = api(
        &app,
        Method::PATCH,
        "/clients/erp",
        &token,
        json!({ "first_party": true }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(kept["backchannel_logout_uri"], uri, "absent: unchanged");
    let (status, removed) = api(
        &app,
        Method::PATCH,
        "/clients/erp",
        &token,
        json!({ "backchannel_logout_uri": "" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(removed["backchannel_logout_uri"], Value::Null);
}

/// A session ends once, so its clients hear of it once: replaying a rotated refresh token
/// ends the (already ended) session again on every replay, and must not make the server POST
/// a fresh logout token to the RP each time (an amplifier anyone holding an old refresh token
/// of a public client could drive).
#[tokio::test]
async fn replaying_a_rotated_refresh_token_again_and_again_sends_one_logout_token() {
    let receiver = LogoutReceiver::start().await;
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let erp = rp(&app, "erp", &receiver).await;
    let a = app.tokens_for(&erp, &user).await;
    let b = expect_tokens(app.refresh(&erp.auth(), a.refresh_token()).await).await;
    expect_tokens(app.refresh(&erp.auth(), b.refresh_token()).await).await;
    app.assert_refresh_refused(&erp, a.refresh_token(), "A, two rotations old")
        .await;
    receiver
        .wait_for(1, Duration::from_secs(5), |p| p.path == "/erp")
        .await;
    for _ in 0..5 {
        app.assert_refresh_refused(&erp, a.refresh_token(), "A, replayed")
            .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let posts = receiver.posts();
    let to_erp = posts.iter().filter(|p| p.path == "/erp").count();
    assert_eq!(to_erp, 1, "one logout token for one session end");
    assert_eq!(
        app.metrics()
            .await
            .get("tessera_backchannel_logout_queued_total"),
        1
    );
}
