//! Signing in and staying signed in: the sign-in form, CSRF, single sign-on,
//! `prompt` and `max_age`, session lifetimes, logout, and restarts.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::cookie::Jar;

use crate::helpers::*;

const WRONG_CREDENTIALS: &str = "The email or password is incorrect.";

async fn user_and_webapp(app: &TestApp) -> (TestUser, RegisteredClient) {
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;
    (user, client)
}

/// A browser of its own: no cookies shared with `app.client`.
fn another_browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(Arc::new(Jar::default()))
        .build()
        .unwrap()
}

/// Whether the browser is signed in, as a relying party finds out: prompt=none.
async fn has_session(app: &TestApp, client: &RegisteredClient) -> bool {
    let request = AuthRequest::new(client).with("prompt", "none");
    let resp = app.authorize(&request).await;
    let callback = expect_callback(&resp, &client.redirect_uri);
    app.assert_state_and_issuer(&callback, &request);
    match callback.error().as_deref() {
        None => {
            callback.code();
            true
        }
        Some("login_required") => false,
        Some(other) => panic!("prompt=none answered {other}: {}", callback.url),
    }
}

fn session_cookie(resp: &reqwest::Response) -> SetCookie {
    set_cookies(resp)
        .into_iter()
        .find(|c| c.name == "tessera_session")
        .unwrap_or_else(|| {
            panic!(
                "signing in sets the tessera_session cookie; Set-Cookie: {:?}",
                set_cookies(resp)
            )
        })
}

#[tokio::test]
async fn a_second_first_party_client_gets_a_code_at_once_from_the_sso_session() {
    let app = spawn_app().await;
    let (user, webapp) = user_and_webapp(&app).await;
    let wiki = app.add_client(ClientSpec::first_party("wiki")).await;
    let first = app.tokens_for(&webapp, &user).await;

    let request = AuthRequest::new(&wiki);
    let resp = app.authorize(&request).await;
    let callback = expect_callback(&resp, &wiki.redirect_uri);
    app.assert_state_and_issuer(&callback, &request);
    let second = app.exchange_code(&wiki, &request, &callback.code()).await;

    let (a, b) = (
        jwt_claims(&first.access_token),
        jwt_claims(&second.access_token),
    );
    assert_eq!(b["sub"], user.id.as_str());
    assert_eq!(b["client_id"], "wiki");
    assert_eq!(a["sid"], b["sid"], "both clients share the one SSO session");
}

#[tokio::test]
async fn prompt_none_returns_a_code_to_a_signed_in_browser() {
    let app = spawn_app().await;
    let (user, client) = user_and_webapp(&app).await;
    app.tokens_for(&client, &user).await;

    let request = AuthRequest::new(&client).with("prompt", "none");
    let resp = app.authorize(&request).await;

    let callback = expect_callback(&resp, &client.redirect_uri);
    app.assert_state_and_issuer(&callback, &request);
    app.exchange_code(&client, &request, &callback.code()).await;
}

#[tokio::test]
async fn prompt_none_without_a_session_is_sent_back_with_login_required() {
    let app = spawn_app().await;
    let (_user, client) = user_and_webapp(&app).await;
    let request = AuthRequest::new(&client).with("prompt", "none");

    let resp = app.authorize(&request).await;

    expect_error_callback(&app, &resp, &request, "login_required");
}

#[tokio::test]
async fn prompt_login_shows_the_sign_in_page_even_to_a_signed_in_browser() {
    let app = spawn_app().await;
    let (user, client) = user_and_webapp(&app).await;
    app.tokens_for(&client, &user).await;

    let request = AuthRequest::new(&client).with("prompt", "login");
    let page = expect_sign_in_page(app.authorize(&request).await).await;
    let resp = app.post_login(&page, &user.email, &user.password).await;

    let callback = expect_callback(&resp, &client.redirect_uri);
    app.assert_state_and_issuer(&callback, &request);
    app.exchange_code(&client, &request, &callback.code()).await;
}

#[tokio::test]
async fn every_sign_in_sets_a_new_http_only_same_site_lax_session_cookie() {
    let app = spawn_app().await;
    let (user, client) = user_and_webapp(&app).await;

    let request = AuthRequest::new(&client);
    let page = expect_sign_in_page(app.authorize(&request).await).await;
    let resp = app.post_login(&page, &user.email, &user.password).await;
    let first = session_cookie(&resp);
    expect_callback(&resp, &client.redirect_uri);

    assert!(
        first.attribute("httponly").is_some(),
        "the session cookie is HttpOnly: {first:?}"
    );
    assert!(
        first
            .attribute("samesite")
            .is_some_and(|v| v.eq_ignore_ascii_case("lax")),
        "the session cookie is SameSite=Lax: {first:?}"
    );
    assert!(!first.value.is_empty());

    let request = AuthRequest::new(&client).with("prompt", "login");
    let page = expect_sign_in_page(app.authorize(&request).await).await;
    let resp = app.post_login(&page, &user.email, &user.password).await;
    let second = session_cookie(&resp);
    expect_callback(&resp, &client.redirect_uri);

    assert_ne!(
        second.value, first.value,
        "a new sign-in gets a new session cookie value"
    );
    assert!(has_session(&app, &client).await);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_refusal() {
    let app = spawn_app().await;
    let (user, client) = user_and_webapp(&app).await;

    let mut texts = Vec::new();
    for (email, password) in [
        (user.email.as_str(), "not the password"),
        ("nobody@example.test", PASSWORD),
    ] {
        let page = expect_sign_in_page(app.authorize(&AuthRequest::new(&client)).await).await;
        let resp = app.post_login(&page, email, password).await;
        assert!(
            set_cookies(&resp)
                .iter()
                .all(|c| c.name != "tessera_session"),
            "no session for {email}"
        );
        let again = sign_in_page_with_status(resp).await;
        assert_eq!(again.status, StatusCode::UNAUTHORIZED, "{email}");
        let text = visible_text(&again.html);
        assert!(
            text.contains(WRONG_CREDENTIALS),
            "{email}: the page says {text:?}"
        );
        texts.push(text);
    }

    assert_eq!(
        texts[0], texts[1],
        "the page must not reveal whether the account exists"
    );
    assert!(!has_session(&app, &client).await);
}

#[tokio::test]
async fn after_a_wrong_password_the_user_can_try_again_and_sign_in() {
    let app = spawn_app().await;
    let (user, client) = user_and_webapp(&app).await;
    let request = AuthRequest::new(&client);

    let page = expect_sign_in_page(app.authorize(&request).await).await;
    let retry =
        sign_in_page_with_status(app.post_login(&page, &user.email, "not the password").await)
            .await;
    assert_eq!(retry.status, StatusCode::UNAUTHORIZED);

    let resp = app.post_login(&retry, &user.email, &user.password).await;
    let callback = expect_callback(&resp, &client.redirect_uri);
    app.assert_state_and_issuer(&callback, &request);
    app.exchange_code(&client, &request, &callback.code()).await;
}

#[tokio::test]
async fn a_sign_in_without_a_valid_csrf_token_is_refused() {
    let app = spawn_app().await;
    let (user, client) = user_and_webapp(&app).await;
    let page = expect_sign_in_page(app.authorize(&AuthRequest::new(&client)).await).await;

    let forged = random_token();
    for csrf_token in [None, Some(""), Some(forged.as_str())] {
        let mut form = vec![
            ("request", page.request.as_str()),
            ("email", user.email.as_str()),
            ("password", PASSWORD),
        ];
        if let Some(token) = csrf_token {
            form.push(("csrf_token", token));
        }
        let resp = app
            .client
            .post(app.url("/login"))
            .form(&form)
            .send()
            .await
            .unwrap();
        expect_error_page(resp, StatusCode::FORBIDDEN).await;
    }

    assert!(
        !has_session(&app, &client).await,
        "none of the refused attempts signed the user in"
    );
}

#[tokio::test]
async fn a_sign_in_form_replayed_from_another_browser_is_refused() {
    let app = spawn_app().await;
    let (user, client) = user_and_webapp(&app).await;
    let page = expect_sign_in_page(app.authorize(&AuthRequest::new(&client)).await).await;

    let elsewhere = another_browser();
    let resp = app
        .post_login_in(&elsewhere, &page, &user.email, &user.password)
        .await;

    expect_error_page(resp, StatusCode::FORBIDDEN).await;
}

#[tokio::test]
async fn logout_with_an_id_token_hint_ends_the_session_and_its_refresh_tokens() {
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let signed_out = "https://webapp.example.test/signed-out";
    let client = app
        .add_client(ClientSpec::first_party("webapp").post_logout_redirect_uri(signed_out))
        .await;
    let tokens = app.tokens_for(&client, &user).await;

    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("id_token_hint", tokens.id_token())
        .append_pair("post_logout_redirect_uri", signed_out)
        .append_pair("state", "see-you")
        .finish();
    let resp = app.get(&format!("/logout?{query}")).await;

    let back = expect_callback(&resp, signed_out);
    assert_eq!(back.param("state").as_deref(), Some("see-you"));
    assert!(!has_session(&app, &client).await, "the SSO session is over");
    expect_sign_in_page(app.authorize(&AuthRequest::new(&client)).await).await;
    let refresh = app.refresh(&client.auth(), tokens.refresh_token()).await;
    expect_oauth_error(refresh, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn logout_never_redirects_to_an_unregistered_uri() {
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let client = app
        .add_client(
            ClientSpec::first_party("webapp")
                .post_logout_redirect_uri("https://webapp.example.test/signed-out"),
        )
        .await;
    let tokens = app.tokens_for(&client, &user).await;

    for target in [
        "https://attacker.example.test/",
        "https://webapp.example.test/signed-out/../admin",
    ] {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("id_token_hint", tokens.id_token())
            .append_pair("post_logout_redirect_uri", target)
            .append_pair("state", "x")
            .finish();
        let resp = app.get(&format!("/logout?{query}")).await;
        assert!(resp.status() != StatusCode::INTERNAL_SERVER_ERROR);
        if let Some(location) = resp.headers().get("location") {
            let location = location.to_str().unwrap();
            assert!(
                !location.starts_with("https://attacker.example.test")
                    && !location.contains("/admin"),
                "logout redirected to an unregistered URI: {location}"
            );
        }
    }
}

/// Edges, and how activity moves the limit: `auth::engine_tests::sessions`.
#[tokio::test]
async fn a_session_left_idle_past_its_lifetime_asks_the_user_to_sign_in_again() {
    let app = spawn_app_with(|c| {
        c.env("TESSERA_SESSION_IDLE_TTL", "1s");
    })
    .await;
    let (user, client) = user_and_webapp(&app).await;
    app.tokens_for(&client, &user).await;

    // Whole seconds: 1.1 s after the sign-in the clock has reached the idle limit.
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    assert!(
        !has_session(&app, &client).await,
        "an idle session has expired"
    );
    expect_sign_in_page(app.authorize(&AuthRequest::new(&client)).await).await;
}

#[tokio::test]
async fn a_max_age_shorter_than_the_time_since_sign_in_asks_for_a_fresh_sign_in() {
    let app = spawn_app().await;
    let (user, client) = user_and_webapp(&app).await;
    app.tokens_for(&client, &user).await;
    // Whole seconds: 1.1 s after the sign-in, more than 0 s have passed (the edge of
    // max_age is an engine test: `oauth::engine_tests::codes`).
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    let recent_enough = AuthRequest::new(&client).with("max_age", "3600");
    let resp = app.authorize(&recent_enough).await;
    expect_callback(&resp, &client.redirect_uri).code();

    let too_old = AuthRequest::new(&client).with("max_age", "0");
    expect_sign_in_page(app.authorize(&too_old).await).await;
}

#[tokio::test]
async fn tokens_and_sessions_survive_a_server_restart() {
    let mut app = spawn_app().await;
    let (user, client) = user_and_webapp(&app).await;
    let tokens = app.tokens_for(&client, &user).await;
    let kid = jwt_header(&tokens.access_token).kid.unwrap();

    app.restart().await;

    app.verify_jwt(&tokens.access_token, &app.issuer)
        .await
        .expect("the access token still verifies");
    assert!(app.is_active(&client.auth(), &tokens.access_token).await);
    assert_eq!(
        app.userinfo(&tokens.access_token).await.status(),
        StatusCode::OK
    );
    let refreshed = expect_tokens(app.refresh(&client.auth(), tokens.refresh_token()).await).await;
    assert_eq!(
        jwt_header(&refreshed.access_token).kid.unwrap(),
        kid,
        "a restart does not change the signing key"
    );
    assert!(
        has_session(&app, &client).await,
        "the browser is still signed in"
    );
}

/// Under an `https://` issuer every cookie is `__Host-`-prefixed, `Secure`, host-only with
/// `Path=/`, and pages carry HSTS (the server listens on plain HTTP behind a TLS proxy here).
#[tokio::test]
async fn under_an_https_issuer_cookies_are_host_prefixed_and_secure_and_hsts_is_sent() {
    let app = spawn_https_app().await;
    let (user, client) = user_and_webapp(&app).await;
    // The back channel keeps no cookies: the test carries them itself (a cookie jar would not
    // send `Secure` cookies over plain HTTP).
    let browser = &app.backchannel;
    let request = AuthRequest::new(&client);

    let resp = app.authorize_in(browser, &request).await;
    assert_hsts(&resp, "the sign-in page");
    let csrf = host_cookie(&resp, "__Host-tessera_csrf");
    let page = expect_sign_in_page(resp).await;

    let resp = browser
        .post(app.url("/login"))
        .header("cookie", format!("__Host-tessera_csrf={}", csrf.value))
        .form(&[
            ("csrf_token", page.csrf_token.as_str()),
            ("request", page.request.as_str()),
            ("email", user.email.as_str()),
            ("password", user.password.as_str()),
        ])
        .send()
        .await
        .expect("POST /login");
    assert_hsts(&resp, "the sign-in answer");
    let session = host_cookie(&resp, "__Host-tessera_session");
    assert!(!session.value.is_empty(), "the session cookie has a value");
    let callback = expect_callback(&resp, &request.redirect_uri());
    app.assert_state_and_issuer(&callback, &request);
}

fn assert_hsts(resp: &reqwest::Response, what: &str) {
    let hsts = header_str(resp.headers(), "strict-transport-security")
        .unwrap_or_else(|| panic!("{what} sends Strict-Transport-Security under https"));
    let max_age: u64 = hsts
        .split(';')
        .find_map(|p| p.trim().strip_prefix("max-age="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{what}: HSTS has a max-age: {hsts}"));
    assert!(
        max_age >= 31_536_000,
        "{what}: HSTS lasts a year or more: {hsts}"
    );
}

/// Every cookie the response sets is `__Host-`-prefixed and shaped as the prefix demands; the
/// one named `name` is returned.
fn host_cookie(resp: &reqwest::Response, name: &str) -> SetCookie {
    let cookies = set_cookies(resp);
    for c in &cookies {
        assert!(
            c.name.starts_with("__Host-"),
            "under https every cookie is __Host- prefixed: {c:?}"
        );
        assert!(
            c.attribute("secure").is_some(),
            "{} is Secure: {c:?}",
            c.name
        );
        assert!(
            c.attribute("httponly").is_some(),
            "{} is HttpOnly: {c:?}",
            c.name
        );
        assert_eq!(
            c.attribute("path"),
            Some("/"),
            "{} has Path=/: {c:?}",
            c.name
        );
        assert_eq!(
            c.attribute("domain"),
            None,
            "{} is host-only: {c:?}",
            c.name
        );
        assert_eq!(
            c.attribute("samesite")
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("lax"),
            "{} is SameSite=Lax: {c:?}",
            c.name
        );
    }
    cookies
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("the response sets {name}: {:?}", set_cookies(resp)))
}
