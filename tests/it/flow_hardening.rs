//! Issue 12: every step of the authorization flow re-runs the decision and accepts only its own
//! forms; account links and forms that must not reveal or spend anything.

use reqwest::header;
use reqwest::{Response, StatusCode};
use url::Url;

use crate::helpers::*;
use crate::mail_sink::MailSink;

const NEW_PASSWORD: &str = "quiet violet harbour at dawn";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The answer must not hand a code to the client: no redirect carrying `code`.
#[track_caller]
fn assert_no_code(resp: &Response, what: &str) {
    let location = resp
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        !location.contains("code="),
        "{what}: no code may be issued, but the answer ({}) redirects to {location}",
        resp.status()
    );
}

/// Posts a form as the browser would, with exactly these fields.
async fn post_form(
    app: &TestApp,
    browser: &reqwest::Client,
    path: &str,
    form: &[(&str, &str)],
) -> Response {
    browser
        .post(app.url(path))
        .form(form)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

/// The consent form posted with `decision`, from a page that carries `request` + `csrf_token`.
async fn post_consent_in(
    app: &TestApp,
    browser: &reqwest::Client,
    page: &FormPage,
    decision: &str,
) -> Response {
    let form = [
        ("csrf_token", page.csrf_token.as_str()),
        ("request", page.request.as_str()),
        ("decision", decision),
    ];
    post_form(app, browser, "/consent", &form).await
}

async fn page_text(resp: Response) -> (StatusCode, String) {
    let status = resp.status();
    let html = resp.text().await.expect("read the page");
    (status, html)
}

/// A browser signed in to Tessera (no application yet), with a third-party client that
/// needs consent.
async fn signed_in_with_third_party_client()
-> (TestApp, TestUser, RegisteredClient, reqwest::Client) {
    let app = spawn_app().await;
    let user = app.add_user("flow@example.test").await;
    let client = app.add_client(ClientSpec::new("partner")).await;
    let browser = app.new_browser();
    app.sign_in_to_account_in(&browser, &user).await;
    (app, user, client, browser)
}

// ---------------------------------------------------------------------------
// 3. prompt=login / max_age cannot be skipped
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_sign_in_form_posted_to_consent_gets_no_code_when_prompt_login_asks_to_sign_in_again() {
    let (app, user, client, browser) = signed_in_with_third_party_client().await;
    let request = AuthRequest::new(&client).with("prompt", "login");

    let sign_in = expect_sign_in_page(app.authorize_in(&browser, &request).await).await;
    let resp = post_consent_in(&app, &browser, &sign_in, "allow").await;
    assert_no_code(
        &resp,
        "the sign-in page's sealed request posted to /consent",
    );
    assert!(
        resp.status().is_client_error() || resp.status() == StatusCode::OK,
        "an error page or the sign-in page, not {}",
        resp.status()
    );

    // Signing in as asked still works: sign-in, consent, code.
    let sign_in = expect_sign_in_page(app.authorize_in(&browser, &request).await).await;
    let resp = app
        .post_login_in(&browser, &sign_in, &user.email, &user.password)
        .await;
    let consent = expect_consent_page(resp).await;
    let resp = post_consent_in(&app, &browser, &consent, "allow").await;
    let callback = expect_callback(&resp, &request.redirect_uri());
    app.assert_state_and_issuer(&callback, &request);
    let tokens = app.exchange_code(&client, &request, &callback.code()).await;
    assert!(!tokens.access_token.is_empty());
}

#[tokio::test]
async fn a_consent_form_shown_right_after_a_sign_in_vouches_for_that_sign_in_once() {
    let (app, user, client, browser) = signed_in_with_third_party_client().await;
    let request = AuthRequest::new(&client).with("prompt", "login");
    let sign_in = expect_sign_in_page(app.authorize_in(&browser, &request).await).await;
    let resp = app
        .post_login_in(&browser, &sign_in, &user.email, &user.password)
        .await;
    let consent = expect_consent_page(resp).await;
    let first = post_consent_in(&app, &browser, &consent, "allow").await;
    expect_callback(&first, &request.redirect_uri());

    // The same form again: the sign-in it followed has been used; prompt=login asks anew.
    let again = post_consent_in(&app, &browser, &consent, "allow").await;
    assert_no_code(&again, "a fresh consent form posted a second time");
    expect_sign_in_page(again).await;
}

#[tokio::test]
async fn a_sign_in_form_posted_to_consent_gets_no_code_when_the_session_is_older_than_max_age() {
    let (app, _user, client, browser) = signed_in_with_third_party_client().await;
    // The sign-in happened an hour ago.
    let moved = app
        .execute_sql("UPDATE sessions SET auth_time = auth_time - 3600")
        .await;
    assert_eq!(moved, 1, "one session to backdate");
    let request = AuthRequest::new(&client).with("max_age", "60");

    let sign_in = expect_sign_in_page(app.authorize_in(&browser, &request).await).await;
    let resp = post_consent_in(&app, &browser, &sign_in, "allow").await;
    assert_no_code(
        &resp,
        "a stale session answering the consent step with max_age=60",
    );
}

#[tokio::test]
async fn a_consent_form_gets_no_code_once_the_session_is_older_than_max_age() {
    let (app, _user, client, browser) = signed_in_with_third_party_client().await;
    let request = AuthRequest::new(&client).with("max_age", "60");
    // Shown while the sign-in is recent enough...
    let consent = expect_consent_page(app.authorize_in(&browser, &request).await).await;
    // ...answered once it is not: the consent step runs the decision again.
    app.execute_sql("UPDATE sessions SET auth_time = auth_time - 3600")
        .await;
    let resp = post_consent_in(&app, &browser, &consent, "allow").await;
    assert_no_code(
        &resp,
        "a consent form answered by a session older than max_age",
    );
    expect_sign_in_page(resp).await;
}

#[tokio::test]
async fn a_consent_form_posted_to_the_sign_in_step_is_refused() {
    let (app, user, client, browser) = signed_in_with_third_party_client().await;
    let request = AuthRequest::new(&client);
    let consent = expect_consent_page(app.authorize_in(&browser, &request).await).await;

    let resp = app
        .post_login_in(&browser, &consent, &user.email, &user.password)
        .await;
    assert_no_code(&resp, "a consent form posted to /login");
    let html = expect_error_page(resp, StatusCode::BAD_REQUEST).await;
    assert!(
        !html.contains("action=\"/consent\""),
        "the sign-in step does not move on to consent with a consent form:\n{html}"
    );
}

#[tokio::test]
async fn a_consent_form_posted_after_the_session_ended_gets_no_code() {
    let (app, user, client, browser) = signed_in_with_third_party_client().await;
    let request = AuthRequest::new(&client);
    let consent = expect_consent_page(app.authorize_in(&browser, &request).await).await;
    app.cli_revoke_all_sessions(&user.email).await;

    let resp = post_consent_in(&app, &browser, &consent, "allow").await;
    assert_no_code(&resp, "a consent form posted after the session ended");
    expect_sign_in_page(resp).await;
}

// ---------------------------------------------------------------------------
// 7. Forgot password: the answer does not depend on whether the account exists
// ---------------------------------------------------------------------------

async fn spawn_app_with_mail() -> (TestApp, MailSink) {
    let sink = MailSink::start().await;
    let smtp_url = sink.smtp_url();
    let app = spawn_app_with(|c| {
        c.env("TESSERA_SMTP_URL", &smtp_url);
        c.env("TESSERA_MAIL_FROM", "Tessera <no-reply@tessera.test>");
    })
    .await;
    (app, sink)
}

/// GET /password/forgot in a fresh browser, then POST it for `email`: the answer's status and
/// its page with the CSRF values and the email blanked.
async fn ask_for_a_reset(app: &TestApp, email: &str) -> (StatusCode, String) {
    let browser = app.new_browser();
    let (status, html) = page_text(
        browser
            .get(app.url("/password/forgot"))
            .send()
            .await
            .expect("GET /password/forgot"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let csrf = input_value(&html, "csrf_token").expect("the forgot form carries a csrf_token");
    let resp = post_form(
        app,
        &browser,
        "/password/forgot",
        &[("csrf_token", csrf.as_str()), ("email", email)],
    )
    .await;
    let (status, html) = page_text(resp).await;
    let mut neutral = html.replace(email, "<email>");
    while let Some(value) = input_value(&neutral, "csrf_token").filter(|v| !v.is_empty()) {
        neutral = neutral.replace(&value, "<csrf>");
    }
    (status, neutral)
}

#[tokio::test]
async fn forgot_password_answers_identically_even_when_the_work_for_an_existing_account_fails() {
    let (app, sink) = spawn_app_with_mail().await;
    let known = app.add_user("known@example.test").await;
    let unknown = "ghost@example.test";

    let for_known = ask_for_a_reset(&app, &known.email).await;
    let for_unknown = ask_for_a_reset(&app, unknown).await;
    assert_eq!(for_known.0, StatusCode::OK, "{}", for_known.1);
    assert_eq!(
        for_known, for_unknown,
        "the same status and page for an existing and an unknown account"
    );
    let mail = sink.next_mail_to(&known.email).await;
    assert_eq!(mail.subject, "Reset your password", "{}", mail.body);

    // The link is made off the response path: even when storing it fails, the answer for the
    // existing account is the one an unknown address gets (no 500 that only accounts get).
    app.execute_sql("ALTER TABLE account_tokens RENAME TO account_tokens_away")
        .await;
    let for_known = ask_for_a_reset(&app, &known.email).await;
    let for_unknown = ask_for_a_reset(&app, unknown).await;
    assert_eq!(
        for_known, for_unknown,
        "the answer does not wait for the work done for an existing account"
    );
    assert_eq!(for_known.0, StatusCode::OK, "{}", for_known.1);
}

// ---------------------------------------------------------------------------
// 9c. A password change gives this browser a new session cookie
// ---------------------------------------------------------------------------

fn session_cookie_of(resp: &Response) -> Option<String> {
    set_cookies(resp)
        .into_iter()
        .find(|c| c.name.ends_with("tessera_session"))
        .map(|c| c.value)
}

#[tokio::test]
async fn changing_the_password_replaces_this_browsers_session_cookie_and_keeps_it_signed_in() {
    let app = spawn_app().await;
    let user = app.add_user("rotate@example.test").await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;
    let laptop = app.new_browser();
    let phone = app.new_browser();

    let resp = laptop
        .get(app.url("/login"))
        .send()
        .await
        .expect("GET /login");
    let (_, html) = page_text(resp).await;
    let csrf = input_value(&html, "csrf_token").expect("csrf_token");
    let resp = post_form(
        &app,
        &laptop,
        "/login",
        &[
            ("csrf_token", csrf.as_str()),
            ("request", ""),
            ("email", user.email.as_str()),
            ("password", user.password.as_str()),
        ],
    )
    .await;
    let old_cookie = session_cookie_of(&resp).expect("signing in sets the session cookie");
    app.sign_in_to_account_in(&phone, &user).await;

    let (status, html) = page_text(
        laptop
            .get(app.url("/account/password"))
            .send()
            .await
            .expect("GET /account/password"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let csrf = input_value(&html, "csrf_token").expect("csrf_token");
    let resp = post_form(
        &app,
        &laptop,
        "/account/password",
        &[
            ("csrf_token", csrf.as_str()),
            ("current", user.password.as_str()),
            ("password", NEW_PASSWORD),
            ("confirm", NEW_PASSWORD),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let new_cookie = session_cookie_of(&resp).expect("the change sets a new session cookie");
    assert!(!new_cookie.is_empty(), "the new session cookie has a value");
    assert_ne!(new_cookie, old_cookie, "the session cookie changed");

    // The old cookie value no longer opens anything.
    let stale = app
        .backchannel
        .get(app.url("/account"))
        .header(header::COOKIE, format!("tessera_session={old_cookie}"))
        .send()
        .await
        .expect("GET /account with the old cookie");
    assert_eq!(
        expect_see_other(&stale).path(),
        "/login",
        "the old session cookie is no longer valid"
    );
    // This browser stays signed in; the other device is signed out.
    let (status, html) = page_text(
        laptop
            .get(app.url("/account"))
            .send()
            .await
            .expect("GET /account"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the laptop stays signed in: {html}");
    assert!(app.is_signed_in_in(&laptop, &client).await);
    assert!(!app.is_signed_in_in(&phone, &client).await);
}

// ---------------------------------------------------------------------------
// 9e. Opening a confirmation link spends nothing; pressing its button does
// ---------------------------------------------------------------------------

async fn account_says_unconfirmed(app: &TestApp, browser: &reqwest::Client) -> bool {
    let (status, html) = page_text(
        browser
            .get(app.url("/account"))
            .send()
            .await
            .expect("GET /account"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    visible_text(&html).contains("Your email address is not confirmed yet.")
}

#[tokio::test]
async fn opening_a_confirmation_link_confirms_nothing_until_its_button_is_pressed_once() {
    let (app, sink) = spawn_app_with_mail().await;
    let user = app.add_user("scan@example.test").await;
    let browser = app.new_browser();
    app.sign_in_to_account_in(&browser, &user).await;
    assert!(account_says_unconfirmed(&app, &browser).await);
    let (_, html) = page_text(
        browser
            .get(app.url("/account"))
            .send()
            .await
            .expect("GET /account"),
    )
    .await;
    let csrf = input_value(&html, "csrf_token").expect("csrf_token");
    let resp = post_form(
        &app,
        &browser,
        "/account/verify-email",
        &[("csrf_token", csrf.as_str())],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mail = sink.next_mail_to(&user.email).await;
    let link: Url = mail.link(&format!("{}/verify-email?token=", app.issuer));

    // A mail scanner (no cookies) and the person, in a fresh browser, open the link.
    let scanner = app
        .backchannel
        .get(link.as_str())
        .send()
        .await
        .expect("GET");
    assert_eq!(scanner.status(), StatusCode::OK);
    let fresh = app.new_browser();
    let (status, html) = page_text(fresh.get(link.as_str()).send().await.expect("GET")).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        account_says_unconfirmed(&app, &browser).await,
        "opening the link twice confirmed nothing"
    );

    let form = tags(&html, "form")
        .into_iter()
        .find(|f| f.attr("action") == Some("/verify-email"))
        .unwrap_or_else(|| panic!("the link's page has a form posting to /verify-email:\n{html}"));
    assert!(
        form.attr("method")
            .is_some_and(|m| m.eq_ignore_ascii_case("post"))
    );
    assert!(
        tags(&html, "button")
            .iter()
            .any(|b| b.attr("type") == Some("submit")),
        "the page has a button to press:\n{html}"
    );
    let fields: Vec<(String, String)> = tags(&html, "input")
        .into_iter()
        .filter(|i| i.attr("type") == Some("hidden"))
        .filter_map(|i| {
            Some((
                i.attr("name")?.to_owned(),
                i.attr("value").unwrap_or_default().to_owned(),
            ))
        })
        .collect();
    let form: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();

    let (status, html) = page_text(post_form(&app, &fresh, "/verify-email", &form).await).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(visible_text(&html).contains("Email confirmed"), "{html}");
    assert!(!account_says_unconfirmed(&app, &browser).await);

    let (status, html) = page_text(post_form(&app, &fresh, "/verify-email", &form).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(
        visible_text(&html).contains("already used"),
        "a second press says the link was used: {html}"
    );
}

#[tokio::test]
async fn a_reset_links_token_posted_to_the_confirmation_step_confirms_nothing_and_is_not_spent() {
    let (app, sink) = spawn_app_with_mail().await;
    let user = app.add_user("crossed@example.test").await;
    let browser = app.new_browser();
    app.sign_in_to_account_in(&browser, &user).await;
    let (status, _) = ask_for_a_reset(&app, &user.email).await;
    assert_eq!(status, StatusCode::OK);
    let link: Url = sink
        .next_mail_to(&user.email)
        .await
        .link(&format!("{}/password/reset?token=", app.issuer));
    let token = link
        .query_pairs()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .expect("the reset link carries a token");

    // The other step's token, as the page's button would send it, and again in bulk.
    for _ in 0..3 {
        let resp = post_form(
            &app,
            &app.new_browser(),
            "/verify-email",
            &[("token", &token)],
        )
        .await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    }
    let resp = app
        .new_browser()
        .get(app.url(&format!("/verify-email?token={token}")))
        .send()
        .await
        .expect("GET");
    assert_eq!(
        resp.status(),
        StatusCode::BAD_REQUEST,
        "no confirmation button for a reset token"
    );
    assert!(
        account_says_unconfirmed(&app, &browser).await,
        "a reset token confirms no address"
    );
    // ...and the reset link itself still works.
    let (status, html) = page_text(
        app.new_browser()
            .get(link.as_str())
            .send()
            .await
            .expect("GET"),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the reset link was not spent: {html}"
    );
    assert_eq!(
        input_value(&html, "token").as_deref(),
        Some(token.as_str()),
        "the reset form carries the link's token: {html}"
    );
}
