//! Secrets stay out of the server's log, mail goes to the log only when that is chosen, and
//! operator surfaces (metrics, settings) fail safe.

use reqwest::StatusCode;
use url::Url;

use crate::helpers::*;
use crate::mail_sink::MailSink;

/// Asks for a reset link for `email` from `/password/forgot`, as a browser would.
async fn ask_for_a_reset_link(app: &TestApp, browser: &reqwest::Client, email: &str) {
    let forgot = browser
        .get(app.url("/password/forgot"))
        .send()
        .await
        .expect("GET /password/forgot");
    assert_eq!(forgot.status(), StatusCode::OK);
    let html = forgot.text().await.expect("read /password/forgot");
    let csrf = input_value(&html, "csrf_token").expect("the forgot page carries a csrf_token");
    let resp = browser
        .post(app.url("/password/forgot"))
        .form(&[("csrf_token", csrf.as_str()), ("email", email)])
        .send()
        .await
        .expect("POST /password/forgot");
    assert!(
        resp.status().is_success() || resp.status().is_redirection(),
        "POST /password/forgot answered {}",
        resp.status()
    );
}

#[tokio::test]
async fn no_token_link_or_hint_reaches_the_server_log_during_sign_in_reset_and_logout() {
    let sink = MailSink::start().await;
    let smtp_url = sink.smtp_url();
    let app = spawn_app_with(|c| {
        // As chatty as an operator can make it: every span field shows on every event.
        c.env("TESSERA_LOG", "debug");
        c.env("TESSERA_SMTP_URL", &smtp_url);
        c.env("TESSERA_MAIL_FROM", "Tessera <no-reply@tessera.test>");
    })
    .await;
    let user = app.add_user("ada@example.test").await;
    let signed_out = "https://webapp.example.test/signed-out";
    let client = app
        .add_client(ClientSpec::first_party("webapp").post_logout_redirect_uri(signed_out))
        .await;

    let login_hint = format!("hint-{}@example.test", random_token());
    let request = AuthRequest::new(&client).with("login_hint", &login_hint);
    let code = app.obtain_code(&request, &user).await;
    let tokens = expect_tokens(app.redeem_code(&client.auth(), &request, &code).await).await;

    let browser = app.new_browser();
    ask_for_a_reset_link(&app, &browser, &user.email).await;
    let mail = sink.next_mail_to(&user.email).await;
    let link: Url = mail.link(&format!("{}/password/reset?token=", app.issuer));
    let reset_token = link
        .query_pairs()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .expect("the reset link carries a token");
    let opened = browser
        .get(link.as_str())
        .send()
        .await
        .expect("open the reset link");
    assert_eq!(opened.status(), StatusCode::OK);

    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("id_token_hint", tokens.id_token())
        .append_pair("post_logout_redirect_uri", signed_out)
        .finish();
    let resp = app.get(&format!("/logout?{query}")).await;
    expect_callback(&resp, signed_out);

    // The log was written (so the check below means something) ...
    let log = app.log_tail(50_000_000);
    assert!(
        log.contains("/logout"),
        "the debug log records the requests' paths:\n{}",
        &log[log.len().saturating_sub(4000)..]
    );
    // ... and none of the secrets that travelled is in it.
    let refresh = tokens.refresh_token().to_owned();
    for (what, secret) in [
        ("the authorization code", code.as_str()),
        ("the access token", tokens.access_token.as_str()),
        ("the refresh token", refresh.as_str()),
        ("the ID token (id_token_hint)", tokens.id_token()),
        ("the reset token", reset_token.as_str()),
        ("the reset link", link.as_str()),
        ("the login_hint", login_hint.as_str()),
        ("the password", user.password.as_str()),
    ] {
        if let Some(at) = log.find(secret) {
            let from = log[..at].rfind('\n').map(|i| i + 1).unwrap_or(0);
            let to = log[at..].find('\n').map(|i| at + i).unwrap_or(log.len());
            panic!(
                "{what} is in the server log:\n{}",
                &log[from..to.min(from + 2000)]
            );
        }
    }
}

#[tokio::test]
async fn an_https_issuer_without_smtp_refuses_to_start_unless_mail_to_log_is_chosen() {
    let app = prepare_app_with(|c| {
        c.env("TESSERA_ISSUER", "https://id.example.test");
        c.env("TESSERA_MAIL_TO_LOG", "false");
    })
    .await;
    let out = app.serve_expecting_exit().await;
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("smtp_url") && out.stderr.contains("mail_to_log"),
        "the refusal names `smtp_url` and `mail_to_log`:\n{}",
        out.stderr
    );

    let mut app = prepare_app_with(|c| {
        c.env("TESSERA_ISSUER", "https://id.example.test");
        c.env("TESSERA_MAIL_TO_LOG", "true");
    })
    .await;
    app.start().await;
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn postgres_without_smtp_refuses_to_start_unless_mail_to_log_is_chosen() {
    if !postgres_in_this_run() {
        return; // The embedded default keeps writing mail to the log (development).
    }
    let app = prepare_app_with(|c| {
        c.env("TESSERA_MAIL_TO_LOG", "false");
    })
    .await;
    let out = app.serve_expecting_exit().await;
    assert!(
        !out.status.success() && out.stderr.contains("mail_to_log"),
        "PostgreSQL without smtp_url refuses to start, naming `mail_to_log`:\n{}",
        out.stderr
    );
}

// ---------------------------------------------------------------------------
// Settings: a misspelt variable is named
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_misspelt_tessera_variable_is_named_in_a_start_up_warning() {
    let app = spawn_app_with(|c| {
        c.env("TESSERA_ACESS_TOKEN_TTL", "5m");
    })
    .await;
    let log = app.log_tail(200_000);
    assert!(
        log.contains("TESSERA_ACESS_TOKEN_TTL"),
        "the log names the unknown variable:\n{log}"
    );
    assert!(
        !log.contains("TESSERA_LISTEN"),
        "known settings are not reported:\n{log}"
    );
}

// ---------------------------------------------------------------------------
// Password length: characters, everywhere
// ---------------------------------------------------------------------------

/// `n` characters of four bytes each (in UTF-8), none of them an email or a breached password.
fn astral_password(n: usize) -> String {
    ['😀', '🎉', '𝄞', '🦀'].iter().cycle().take(n).collect()
}

async fn change_password(
    app: &TestApp,
    browser: &reqwest::Client,
    current: &str,
    new: &str,
) -> (StatusCode, String) {
    let page = browser
        .get(app.url("/account/password"))
        .send()
        .await
        .expect("GET /account/password");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("read /account/password");
    let csrf = input_value(&html, "csrf_token").expect("the change form carries a csrf_token");
    let resp = browser
        .post(app.url("/account/password"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("current", current),
            ("password", new),
            ("confirm", new),
        ])
        .send()
        .await
        .expect("POST /account/password");
    let status = resp.status();
    (status, visible_text(&resp.text().await.unwrap_or_default()))
}

#[tokio::test]
async fn a_password_of_exactly_the_maximum_in_multibyte_characters_works_and_one_more_is_refused() {
    const MAX: usize = 300;
    let app = spawn_app_with(|c| {
        c.env("TESSERA_PASSWORD_MAX_LENGTH", &MAX.to_string());
    })
    .await;
    let first = astral_password(MAX);
    assert!(first.len() > 1024, "more bytes than characters");
    let out = app
        .cli(
            &[
                "user",
                "add",
                "--email",
                "ada@example.test",
                "--password-stdin",
            ],
            Some(&first),
        )
        .await;
    out.assert_success("tessera user add with a maximum-length password");

    let browser = app.new_browser();
    let resp = app
        .plain_sign_in_in(&browser, "ada@example.test", &first)
        .await;
    assert_eq!(
        expect_see_other(&resp).path(),
        "/account",
        "signing in with a {MAX}-character password works"
    );

    let second: String = astral_password(MAX + 1).chars().skip(1).collect();
    assert_eq!(second.chars().count(), MAX);
    let (status, text) = change_password(&app, &browser, &first, &second).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "changing to a {MAX}-character password: {text}"
    );
    let again = app.new_browser();
    let resp = app
        .plain_sign_in_in(&again, "ada@example.test", &second)
        .await;
    assert_eq!(expect_see_other(&resp).path(), "/account");

    let too_long = astral_password(MAX + 1);
    let (status, text) = change_password(&app, &again, &second, &too_long).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(
        text.contains(&format!("Use at most {MAX} characters")),
        "the refusal says how long a password may be: {text}"
    );
}

// ---------------------------------------------------------------------------
// /metrics is not public
// ---------------------------------------------------------------------------

#[tokio::test]
async fn metrics_are_not_served_on_the_public_listener_by_default() {
    let app = spawn_app_with(|c| {
        c.env("TESSERA_METRICS_TOKEN", "");
    })
    .await;
    let resp = app.get("/metrics").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn metrics_listen_serves_metrics_on_its_own_address_only() {
    let port = free_port();
    let app = spawn_app_with(|c| {
        c.env("TESSERA_METRICS_TOKEN", "");
        c.env("TESSERA_METRICS_LISTEN", &format!("127.0.0.1:{port}"));
    })
    .await;
    assert_eq!(app.get("/metrics").await.status(), StatusCode::NOT_FOUND);
    let resp = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("GET /metrics on metrics_listen");
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap_or_default();
    assert!(text.contains("# TYPE"), "Prometheus text: {text}");
}

#[tokio::test]
async fn a_metrics_token_is_required_on_the_public_listener_when_set() {
    let token = random_token();
    let app = spawn_app_with(|c| {
        c.env("TESSERA_METRICS_TOKEN", &token);
    })
    .await;
    let get = |auth: Option<String>| {
        let mut req = app.backchannel.get(app.url("/metrics"));
        if let Some(auth) = auth {
            req = req.header("Authorization", auth);
        }
        req.send()
    };
    let none = get(None).await.expect("GET /metrics");
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert!(none.headers().contains_key("www-authenticate"));
    let wrong = get(Some(format!("Bearer {}", random_token())))
        .await
        .expect("GET /metrics");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let right = get(Some(format!("Bearer {token}")))
        .await
        .expect("GET /metrics");
    assert_eq!(right.status(), StatusCode::OK);
}
