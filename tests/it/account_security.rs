//! Account security: password policy, throttling, lock-out, reset through a real SMTP sink,
//! registration, verification, headers.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::cookie::Jar;
use reqwest::header::HeaderMap;
use reqwest::{Response, StatusCode};
use url::Url;

use crate::helpers::*;
use crate::mail_sink::{Mail, MailSink};

/// A password that passes the policy, different from the helpers' default one.
const NEW_PASSWORD: &str = "quiet violet harbour at dawn";
const ANOTHER_PASSWORD: &str = "seven lanterns over the marsh";
const WRONG_PASSWORD: &str = "not the password at all, sorry";

const BAD_CREDENTIALS: &str = "The email or password is incorrect.";
const TOO_SHORT: &str = "Use at least 12 characters";
const BREACHED: &str = "This password has appeared in a data breach";
const CONTAINS_EMAIL: &str = "The password must not contain your email address";
const LOCKED: &str = "Too many failed attempts";
const EXPIRED_LINK: &str = "This link has expired";

// ---------------------------------------------------------------------------
// Browsers, pages and forms
// ---------------------------------------------------------------------------

/// A browser of its own (own cookies, no redirects) whose connections come from `source`, a
/// loopback address such as 127.0.0.2: the server sees that as the client's IP.
fn browser_from(source: &str) -> reqwest::Client {
    let source: IpAddr = source.parse().expect("a source IP address");
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_provider(Arc::new(Jar::default()))
        .local_address(source)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build a browser with a source address")
}

/// A back channel (no cookies) whose connections come from `source`.
fn backchannel_from(source: &str) -> reqwest::Client {
    let source: IpAddr = source.parse().expect("a source IP address");
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(source)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build a back channel with a source address")
}

/// An HTML page as the browser received it.
#[derive(Debug)]
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    url: Url,
    html: String,
}

impl Page {
    /// What a person reads.
    fn text(&self) -> String {
        visible_text(&self.html)
    }

    fn says(&self, words: &str) -> bool {
        self.text().contains(words)
    }

    #[track_caller]
    fn assert_says(&self, status: StatusCode, words: &str) {
        assert_eq!(
            self.status,
            status,
            "{} should answer {status} saying {words:?}, answered {}: {}",
            self.url,
            self.status,
            self.text()
        );
        assert!(
            self.says(words),
            "{} ({}) should say {words:?}, says: {}",
            self.url,
            self.status,
            self.text()
        );
    }

    /// Whether the page links to `href` with exactly this link text.
    fn links_to(&self, href: &str, text: &str) -> bool {
        let mut rest = self.html.as_str();
        while let Some(at) = rest.find("<a ") {
            let anchor = &rest[at..];
            let end = anchor.find("</a>").unwrap_or(anchor.len());
            let element = &anchor[..end];
            let tag = tags(element, "a").into_iter().next();
            if tag.is_some_and(|t| t.attr("href") == Some(href)) && visible_text(element) == text {
                return true;
            }
            rest = &anchor[end..];
        }
        false
    }

    fn retry_after(&self) -> Option<u64> {
        header_str(&self.headers, "retry-after").and_then(|v| v.trim().parse().ok())
    }

    /// A 429 whose `Retry-After` is a number of seconds between 1 and `max`; returns it.
    #[track_caller]
    fn assert_too_many(&self, max: u64) -> u64 {
        assert_eq!(
            self.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{} should answer 429, answered {}: {}",
            self.url,
            self.status,
            self.text()
        );
        let wait = self.retry_after().unwrap_or_else(|| {
            panic!(
                "a 429 carries Retry-After in seconds, headers: {:?}",
                self.headers
            )
        });
        assert!(
            (1..=max).contains(&wait),
            "Retry-After should be between 1 and {max} seconds, is {wait}"
        );
        wait
    }
}

async fn read_page(resp: Response) -> Page {
    let status = resp.status();
    let headers = resp.headers().clone();
    let url = resp.url().clone();
    let content_type = header_str(&headers, "content-type")
        .unwrap_or("")
        .to_owned();
    let html = resp.text().await.expect("read the page");
    assert!(
        content_type.starts_with("text/html"),
        "{url} should answer an HTML page, answered {content_type:?} ({status}): {html}"
    );
    Page {
        status,
        headers,
        url,
        html,
    }
}

/// The browser opens a URL (a path on the app, or a full URL such as a mailed link).
async fn open(app: &TestApp, browser: &reqwest::Client, target: &str) -> Page {
    let url = if target.starts_with("http") {
        target.to_owned()
    } else {
        app.url(target)
    };
    let resp = browser
        .get(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    read_page(resp).await
}

/// The browser fills in the page's form that posts to `action` and submits it (with the page's
/// `csrf_token`, and its other hidden fields unless `fields` sets them).
async fn submit(
    app: &TestApp,
    browser: &reqwest::Client,
    page: &Page,
    action: &str,
    fields: &[(&str, &str)],
) -> Response {
    let form = tags(&page.html, "form")
        .into_iter()
        .find(|f| f.attr("action") == Some(action))
        .unwrap_or_else(|| {
            panic!(
                "{} has no form posting to {action}:\n{}",
                page.url, page.html
            )
        });
    assert!(
        form.attr("method")
            .is_some_and(|m| m.eq_ignore_ascii_case("post")),
        "the {action} form is posted"
    );
    let mut body: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for input in tags(&page.html, "input") {
        let (Some(name), Some("hidden")) = (input.attr("name"), input.attr("type")) else {
            continue;
        };
        if !body.iter().any(|(k, _)| k == name) {
            body.push((
                name.to_owned(),
                input.attr("value").unwrap_or_default().to_owned(),
            ));
        }
    }
    assert!(
        body.iter().any(|(k, v)| k == "csrf_token" && !v.is_empty()),
        "the {action} form carries a csrf_token:\n{}",
        page.html
    );
    browser
        .post(app.url(action))
        .form(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {action}: {e}"))
}

/// Opens `path`, submits its form to `action`, and reads the answer as a page.
async fn fill_in(
    app: &TestApp,
    browser: &reqwest::Client,
    path: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> Page {
    let page = open(app, browser, path).await;
    assert_eq!(
        page.status,
        StatusCode::OK,
        "{path} should show its form: {}",
        page.text()
    );
    read_page(submit(app, browser, &page, action, fields).await).await
}

/// A sign-in to Tessera itself that must be refused as bad credentials.
async fn assert_sign_in_refused(
    app: &TestApp,
    browser: &reqwest::Client,
    email: &str,
    password: &str,
) {
    let page = read_page(app.plain_sign_in_in(browser, email, password).await).await;
    page.assert_says(StatusCode::UNAUTHORIZED, BAD_CREDENTIALS);
}

/// A sign-in to Tessera itself that must land on /account.
async fn assert_sign_in_works(
    app: &TestApp,
    browser: &reqwest::Client,
    email: &str,
    password: &str,
) {
    let resp = app.plain_sign_in_in(browser, email, password).await;
    if resp.status() != StatusCode::SEE_OTHER {
        let page = read_page(resp).await;
        panic!(
            "signing in as {email} should work, but POST /login answered {}: {}",
            page.status,
            page.text()
        );
    }
    assert_eq!(
        expect_see_other(&resp).path(),
        "/account",
        "a plain sign-in lands on /account"
    );
}

/// One sign-in attempt (GET /login, POST it); the answer as a page, or the redirect's status.
async fn attempt_sign_in(
    app: &TestApp,
    browser: &reqwest::Client,
    email: &str,
    password: &str,
) -> Page {
    read_page(app.plain_sign_in_in(browser, email, password).await).await
}

/// The code flow in `browser` for someone known only by email and password (e.g. self-registered).
async fn tokens_signing_in_as(
    app: &TestApp,
    browser: &reqwest::Client,
    client: &RegisteredClient,
    email: &str,
    password: &str,
) -> TokenResponse {
    let request = AuthRequest::new(client);
    let page = expect_sign_in_page(app.authorize_in(browser, &request).await).await;
    let resp = app.post_login_in(browser, &page, email, password).await;
    let callback = expect_callback(&resp, &request.redirect_uri());
    app.assert_state_and_issuer(&callback, &request);
    app.exchange_code(client, &request, &callback.code()).await
}

async fn userinfo_claims(app: &TestApp, access_token: &str) -> serde_json::Value {
    expect_json(app.userinfo(access_token).await, StatusCode::OK).await
}

fn with_password(user: &TestUser, password: &str) -> TestUser {
    TestUser {
        password: password.to_owned(),
        ..user.clone()
    }
}

// ---------------------------------------------------------------------------
// Taking turns with the timing test
// ---------------------------------------------------------------------------

/// The timing test measures differences of a few milliseconds. The other tests of this file
/// start servers and hash passwords; they wait while it measures (and it waits for them), so
/// their work does not land in its samples.
static MACHINE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

async fn share_the_machine() -> tokio::sync::RwLockReadGuard<'static, ()> {
    MACHINE.read().await
}

async fn have_the_machine_alone() -> tokio::sync::RwLockWriteGuard<'static, ()> {
    MACHINE.write().await
}

// ---------------------------------------------------------------------------
// Mail
// ---------------------------------------------------------------------------

/// A server that sends its mail to a fresh SMTP sink.
async fn spawn_app_with_mail(configure: impl FnOnce(&mut AppConfig)) -> (TestApp, MailSink) {
    let sink = MailSink::start().await;
    let smtp_url = sink.smtp_url();
    let app = spawn_app_with(|c| {
        c.env("TESSERA_SMTP_URL", &smtp_url);
        c.env("TESSERA_MAIL_FROM", "Tessera <no-reply@tessera.test>");
        configure(c);
    })
    .await;
    (app, sink)
}

/// "Forgot your password?" from the sign-in page: follow the link, enter the email, send.
async fn ask_for_a_reset_link(app: &TestApp, browser: &reqwest::Client, email: &str) -> Page {
    let login = open(app, browser, "/login").await;
    assert!(
        login.links_to("/password/forgot", "Forgot your password?"),
        "the sign-in page links to /password/forgot as \"Forgot your password?\":\n{}",
        login.html
    );
    fill_in(
        app,
        browser,
        "/password/forgot",
        "/password/forgot",
        &[("email", email)],
    )
    .await
}

/// The next mail to `email` must be a reset mail; returns its link.
async fn mailed_reset_link(app: &TestApp, sink: &MailSink, email: &str) -> Url {
    let mail = sink.next_mail_to(email).await;
    assert_eq!(mail.subject, "Reset your password", "{}", mail.body);
    mail.link(&format!("{}/password/reset?token=", app.issuer))
}

/// The next mail to `email` must be a confirmation mail; returns its link.
async fn mailed_confirmation_link(app: &TestApp, sink: &MailSink, email: &str) -> Url {
    let mail = sink.next_mail_to(email).await;
    assert_eq!(mail.subject, "Confirm your email address", "{}", mail.body);
    mail.link(&format!("{}/verify-email?token=", app.issuer))
}

/// Opens a confirmation link and presses its button (opening it alone confirms nothing).
async fn confirm_through(app: &TestApp, browser: &reqwest::Client, link: &Url) -> Page {
    let page = open(app, browser, link.as_str()).await;
    page.assert_says(StatusCode::OK, "Confirm your email address");
    let token = link_token(link);
    assert_eq!(
        input_value(&page.html, "token").as_deref(),
        Some(token.as_str()),
        "the confirmation form carries the link's token"
    );
    let resp = browser
        .post(app.url("/verify-email"))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .expect("POST /verify-email");
    read_page(resp).await
}

/// Opens a reset link and sets `password` (repeated as `confirm`).
async fn reset_through(
    app: &TestApp,
    browser: &reqwest::Client,
    link: &Url,
    password: &str,
    confirm: &str,
) -> Page {
    let form = open(app, browser, link.as_str()).await;
    form.assert_says(StatusCode::OK, "Choose a new password");
    let token = link_token(link);
    assert_eq!(
        input_value(&form.html, "token").as_deref(),
        Some(token.as_str()),
        "the reset form carries the link's token"
    );
    let resp = submit(
        app,
        browser,
        &form,
        "/password/reset",
        &[("password", password), ("confirm", confirm)],
    )
    .await;
    read_page(resp).await
}

/// The self-registration form, filled in and sent.
async fn register(
    app: &TestApp,
    browser: &reqwest::Client,
    name: &str,
    email: &str,
    password: &str,
) -> Page {
    fill_in(
        app,
        browser,
        "/register",
        "/register",
        &[("name", name), ("email", email), ("password", password)],
    )
    .await
}

fn subjects(mails: &[Mail]) -> Vec<&str> {
    mails.iter().map(|m| m.subject.as_str()).collect()
}

async fn audit_actions(app: &TestApp) -> Vec<AuditLine> {
    app.audit_tail(500).await
}

// ---------------------------------------------------------------------------
// 1. Password reset through the mailed link
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_mailed_reset_link_sets_a_new_password_ends_every_session_and_works_only_once() {
    let _turn = share_the_machine().await;
    let (app, sink) = spawn_app_with_mail(|_| {}).await;
    let user = app.add_user("ann@example.test").await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;
    let laptop = app.new_browser();
    let laptop_tokens = app.tokens_for_in(&laptop, &client, &user).await;
    let phone = app.new_browser();

    let sent = ask_for_a_reset_link(&app, &phone, &user.email).await;
    sent.assert_says(
        StatusCode::OK,
        "If an account exists for ann@example.test, we sent it a link",
    );
    let link = mailed_reset_link(&app, &sink, &user.email).await;

    // Two different passwords are caught before anything changes.
    let differ = reset_through(&app, &phone, &link, NEW_PASSWORD, ANOTHER_PASSWORD).await;
    differ.assert_says(StatusCode::BAD_REQUEST, "The two passwords differ.");
    let done = reset_through(&app, &phone, &link, NEW_PASSWORD, NEW_PASSWORD).await;
    done.assert_says(StatusCode::OK, "Your password was changed");

    // Every earlier session ended: the laptop's app and browser are signed out.
    app.assert_refresh_refused(&client, laptop_tokens.refresh_token(), "the laptop's app")
        .await;
    app.assert_inactive(
        &client,
        &laptop_tokens.access_token,
        "the laptop's access token",
    )
    .await;
    assert!(
        !app.is_signed_in_in(&laptop, &client).await,
        "the laptop's browser is signed out after the reset"
    );

    // The old password no longer works; the new one does.
    assert_sign_in_refused(&app, &app.new_browser(), &user.email, &user.password).await;
    assert_sign_in_works(&app, &app.new_browser(), &user.email, NEW_PASSWORD).await;

    // The link worked once: it neither shows the form again nor sets another password.
    let again = open(&app, &phone, link.as_str()).await;
    again.assert_says(StatusCode::BAD_REQUEST, EXPIRED_LINK);
    let replay = post_reset_anyway(&app, &phone, &link, ANOTHER_PASSWORD).await;
    replay.assert_says(StatusCode::BAD_REQUEST, EXPIRED_LINK);
    assert_sign_in_refused(&app, &app.new_browser(), &user.email, ANOTHER_PASSWORD).await;
    assert_sign_in_works(&app, &app.new_browser(), &user.email, NEW_PASSWORD).await;

    let audit = audit_actions(&app).await;
    for action in ["password.reset_requested", "password.reset_completed"] {
        assert!(
            audit
                .iter()
                .any(|l| l.action == action && l.subject.as_deref() == Some(user.id.as_str())),
            "the audit log records {action} for the user: {audit:?}"
        );
    }
}

fn link_token(link: &Url) -> String {
    link.query_pairs()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .expect("the link carries a token")
}

/// Posts the reset form with a link's token directly, as a form kept open in a tab (or the back
/// button) would after the link was spent or expired.
async fn post_reset_anyway(
    app: &TestApp,
    browser: &reqwest::Client,
    link: &Url,
    password: &str,
) -> Page {
    let forgot = open(app, browser, "/password/forgot").await;
    let csrf_token =
        input_value(&forgot.html, "csrf_token").expect("the forgot page carries a csrf_token");
    let token = link_token(link);
    let form = [
        ("csrf_token", csrf_token.as_str()),
        ("token", token.as_str()),
        ("password", password),
        ("confirm", password),
    ];
    let resp = browser
        .post(app.url("/password/reset"))
        .form(&form)
        .send()
        .await
        .expect("POST /password/reset");
    read_page(resp).await
}

#[tokio::test]
async fn a_reset_link_older_than_its_lifetime_is_refused() {
    let _turn = share_the_machine().await;
    let (app, sink) = spawn_app_with_mail(|c| {
        c.env("TESSERA_RESET_LINK_TTL", "1s");
    })
    .await;
    let user = app.add_user("ben@example.test").await;

    ask_for_a_reset_link(&app, &app.client, &user.email)
        .await
        .assert_says(StatusCode::OK, "we sent it a link");
    let link = mailed_reset_link(&app, &sink, &user.email).await;
    // The link was made before it was mailed; its one second passes.
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    open(&app, &app.client, link.as_str())
        .await
        .assert_says(StatusCode::BAD_REQUEST, EXPIRED_LINK);
    post_reset_anyway(&app, &app.client, &link, NEW_PASSWORD)
        .await
        .assert_says(StatusCode::BAD_REQUEST, EXPIRED_LINK);
    assert_sign_in_refused(&app, &app.new_browser(), &user.email, NEW_PASSWORD).await;
    assert_sign_in_works(&app, &app.new_browser(), &user.email, &user.password).await;
}

// ---------------------------------------------------------------------------
// 2. No account enumeration through "forgot password"
// ---------------------------------------------------------------------------

#[tokio::test]
async fn forgot_password_answers_the_same_for_an_unknown_email_and_mails_nobody() {
    let _turn = share_the_machine().await;
    let (app, sink) = spawn_app_with_mail(|_| {}).await;
    let known = app.add_user("carol@example.test").await;
    let blocked = app.add_user("dave@example.test").await;
    app.disable_user(&blocked.email).await;
    let unknown = "nobody@example.test";

    let for_unknown = ask_for_a_reset_link(&app, &app.new_browser(), unknown).await;
    let for_blocked = ask_for_a_reset_link(&app, &app.new_browser(), &blocked.email).await;
    let for_known = ask_for_a_reset_link(&app, &app.new_browser(), &known.email).await;

    for_known.assert_says(
        StatusCode::OK,
        "If an account exists for carol@example.test, we sent it a link",
    );
    let neutral = |page: &Page, email: &str| page.text().replace(email, "<email>");
    for (page, email) in [
        (&for_unknown, unknown),
        (&for_blocked, blocked.email.as_str()),
    ] {
        assert_eq!(page.status, for_known.status, "the same status for {email}");
        assert_eq!(
            neutral(page, email),
            neutral(&for_known, &known.email),
            "the page for {email} reads exactly like the one for an existing account"
        );
    }

    // The existing account gets its link; by then the others would have had theirs.
    mailed_reset_link(&app, &sink, &known.email).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let to_unknown = sink.received_by(unknown);
    let to_blocked = sink.received_by(&blocked.email);
    assert!(
        to_unknown.is_empty(),
        "nothing is mailed to an unknown address, but it got {:?}",
        subjects(&to_unknown)
    );
    assert!(
        to_blocked.is_empty(),
        "nothing is mailed to a disabled account, but it got {:?}",
        subjects(&to_blocked)
    );
    assert_eq!(
        sink.received().len(),
        1,
        "exactly one mail went out: {:?}",
        subjects(&sink.received())
    );
}

// ---------------------------------------------------------------------------
// 3. Changing the password while signed in
// ---------------------------------------------------------------------------

#[tokio::test]
async fn changing_the_password_keeps_this_session_and_signs_out_the_other_devices() {
    let _turn = share_the_machine().await;
    let app = spawn_app().await;
    let user = app.add_user("erin@example.test").await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;
    let laptop = app.new_browser();
    let phone = app.new_browser();
    let laptop_tokens = app.tokens_for_in(&laptop, &client, &user).await;
    let phone_tokens = app.tokens_for_in(&phone, &client, &user).await;

    // A wrong current password changes nothing.
    let wrong = fill_in(
        &app,
        &laptop,
        "/account/password",
        "/account/password",
        &[
            ("current", WRONG_PASSWORD),
            ("password", NEW_PASSWORD),
            ("confirm", NEW_PASSWORD),
        ],
    )
    .await;
    wrong.assert_says(
        StatusCode::UNAUTHORIZED,
        "The current password is not right.",
    );
    assert!(
        app.is_signed_in_in(&phone, &client).await,
        "a refused change signs nobody out"
    );
    assert_sign_in_refused(&app, &app.new_browser(), &user.email, NEW_PASSWORD).await;

    let changed = fill_in(
        &app,
        &laptop,
        "/account/password",
        "/account/password",
        &[
            ("current", &user.password),
            ("password", NEW_PASSWORD),
            ("confirm", NEW_PASSWORD),
        ],
    )
    .await;
    changed.assert_says(
        StatusCode::OK,
        "Your password was changed. Your other devices were signed out.",
    );

    // This device stays signed in, and its app keeps working.
    open(&app, &laptop, "/account")
        .await
        .assert_says(StatusCode::OK, "Your account");
    assert!(app.is_signed_in_in(&laptop, &client).await);
    let refreshed = expect_tokens(
        app.refresh(&client.auth(), laptop_tokens.refresh_token())
            .await,
    )
    .await;
    app.assert_active(
        &client,
        &refreshed.access_token,
        "the laptop's new access token",
    )
    .await;

    // The phone is signed out, in the browser and in the app.
    assert!(
        !app.is_signed_in_in(&phone, &client).await,
        "the other device's browser is signed out"
    );
    app.assert_refresh_refused(&client, phone_tokens.refresh_token(), "the phone's app")
        .await;
    app.assert_inactive(
        &client,
        &phone_tokens.access_token,
        "the phone's access token",
    )
    .await;

    assert_sign_in_refused(&app, &app.new_browser(), &user.email, &user.password).await;
    let changed_user = with_password(&user, NEW_PASSWORD);
    app.tokens_for_in(&app.new_browser(), &client, &changed_user)
        .await;
}

// ---------------------------------------------------------------------------
// 4. Self-registration and email verification
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_self_registered_account_is_unverified_until_the_mailed_link_confirms_it() {
    let _turn = share_the_machine().await;
    let (app, sink) = spawn_app_with_mail(|c| {
        c.env("TESSERA_SELF_REGISTRATION", "true");
    })
    .await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;
    let email = "fay@example.test";
    let browser = app.new_browser();

    let login = open(&app, &browser, "/login").await;
    assert!(
        login.links_to("/register", "Create an account"),
        "with self-registration on, the sign-in page offers \"Create an account\":\n{}",
        login.html
    );
    let answer = register(&app, &browser, "Fay", email, NEW_PASSWORD).await;
    answer.assert_says(StatusCode::OK, "Check your email");
    let link = mailed_confirmation_link(&app, &sink, email).await;

    // The account exists and can sign in, unverified.
    let before = tokens_signing_in_as(&app, &app.new_browser(), &client, email, NEW_PASSWORD).await;
    let claims = userinfo_claims(&app, &before.access_token).await;
    assert_eq!(claims["email"], email, "{claims}");
    assert_eq!(claims["name"], "Fay", "{claims}");
    assert_eq!(claims["email_verified"], false, "{claims}");
    assert_eq!(jwt_claims(before.id_token())["email_verified"], false);

    let confirmed = confirm_through(&app, &browser, &link).await;
    confirmed.assert_says(StatusCode::OK, "Email confirmed");

    let after = tokens_signing_in_as(&app, &app.new_browser(), &client, email, NEW_PASSWORD).await;
    let claims = userinfo_claims(&app, &after.access_token).await;
    assert_eq!(
        claims["email_verified"], true,
        "userinfo after confirming: {claims}"
    );
    assert_eq!(
        jwt_claims(after.id_token())["email_verified"],
        true,
        "the new ID token says the email is verified"
    );

    // The link is spent.
    open(&app, &browser, link.as_str())
        .await
        .assert_says(StatusCode::BAD_REQUEST, EXPIRED_LINK);

    let audit = audit_actions(&app).await;
    for action in ["user.registered", "user.email_verified"] {
        assert!(
            audit.iter().any(|l| l.action == action),
            "the audit log records {action}: {audit:?}"
        );
    }
}

#[tokio::test]
async fn registering_an_existing_email_answers_the_same_and_only_tells_the_owner() {
    let _turn = share_the_machine().await;
    let (app, sink) = spawn_app_with_mail(|c| {
        c.env("TESSERA_SELF_REGISTRATION", "true");
    })
    .await;
    let owner = app.add_user("gus@example.test").await;
    let newcomer = "hana@example.test";

    let fresh = register(&app, &app.new_browser(), "Hana", newcomer, NEW_PASSWORD).await;
    let taken = register(
        &app,
        &app.new_browser(),
        "Mallory",
        &owner.email,
        NEW_PASSWORD,
    )
    .await;

    fresh.assert_says(StatusCode::OK, "Check your email");
    assert_eq!(taken.status, fresh.status);
    assert_eq!(
        taken.text().replace(&owner.email, "<email>"),
        fresh.text().replace(newcomer, "<email>"),
        "registering an existing email reads exactly like registering a new one"
    );

    mailed_confirmation_link(&app, &sink, newcomer).await;
    let note = sink.next_mail_to(&owner.email).await;
    assert_eq!(note.subject, "You already have an account", "{}", note.body);
    assert!(
        note.links_starting_with(&format!("{}/verify-email", app.issuer))
            .is_empty(),
        "the owner's note carries no confirmation link:\n{}",
        note.body
    );

    // Nothing else changed: the owner's password stands, the intruder's does not.
    assert_sign_in_works(&app, &app.new_browser(), &owner.email, &owner.password).await;
    assert_sign_in_refused(&app, &app.new_browser(), &owner.email, NEW_PASSWORD).await;
    assert_eq!(
        sink.received_by(&owner.email).len(),
        1,
        "the owner got one note and nothing else: {:?}",
        subjects(&sink.received_by(&owner.email))
    );
}

#[tokio::test]
async fn without_self_registration_the_register_page_is_not_found_and_not_offered() {
    let _turn = share_the_machine().await;
    let app = spawn_app().await;

    let login = open(&app, &app.client, "/login").await;
    assert!(
        !login.says("Create an account") && !login.links_to("/register", "Create an account"),
        "the sign-in page does not offer registration:\n{}",
        login.html
    );
    expect_error_page(app.get("/register").await, StatusCode::NOT_FOUND).await;
    let csrf = input_value(&login.html, "csrf_token").expect("a csrf_token");
    let resp = app
        .client
        .post(app.url("/register"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("name", "Ivy"),
            ("email", "ivy@example.test"),
            ("password", NEW_PASSWORD),
        ])
        .send()
        .await
        .expect("POST /register");
    expect_error_page(resp, StatusCode::NOT_FOUND).await;
    assert_sign_in_refused(&app, &app.new_browser(), "ivy@example.test", NEW_PASSWORD).await;
}

#[tokio::test]
async fn a_signed_in_user_can_have_a_new_confirmation_link_sent() {
    let _turn = share_the_machine().await;
    let (app, sink) = spawn_app_with_mail(|_| {}).await;
    let user = app.add_user("jon@example.test").await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;
    let browser = app.new_browser();
    app.sign_in_to_account_in(&browser, &user).await;

    let account = open(&app, &browser, "/account").await;
    account.assert_says(StatusCode::OK, "Your email address is not confirmed yet.");
    let sent =
        read_page(submit(&app, &browser, &account, "/account/verify-email", &[]).await).await;
    sent.assert_says(
        StatusCode::OK,
        "We sent a confirmation link to jon@example.test.",
    );
    let link = mailed_confirmation_link(&app, &sink, &user.email).await;
    confirm_through(&app, &browser, &link)
        .await
        .assert_says(StatusCode::OK, "Email confirmed");

    let account = open(&app, &browser, "/account").await;
    assert!(
        !account.says("not confirmed"),
        "the account page no longer asks to confirm: {}",
        account.text()
    );
    let tokens = app.tokens_for_in(&app.new_browser(), &client, &user).await;
    assert_eq!(
        userinfo_claims(&app, &tokens.access_token).await["email_verified"],
        true
    );
}

// ---------------------------------------------------------------------------
// 5. The password policy
// ---------------------------------------------------------------------------

/// Passwords the policy refuses for `email` (its name part is `kim`), with the reason shown.
fn refused_passwords() -> [(&'static str, &'static str); 4] {
    [
        ("eleven char", TOO_SHORT),
        ("password1234", BREACHED),
        ("qwertyuiop123", BREACHED),
        ("kim-likes-long-walks", CONTAINS_EMAIL),
    ]
}

#[tokio::test]
async fn a_reset_refuses_short_breached_and_email_based_passwords_and_the_link_stays_usable() {
    let _turn = share_the_machine().await;
    // Each refused password is also tried at sign-in; no lock-out should get in the way.
    let (app, sink) = spawn_app_with_mail(|c| {
        c.env("TESSERA_LOCKOUT_THRESHOLD", "100");
    })
    .await;
    let user = app.add_user("kim@example.test").await;
    ask_for_a_reset_link(&app, &app.client, &user.email).await;
    let link = mailed_reset_link(&app, &sink, &user.email).await;

    for (password, reason) in refused_passwords()
        .into_iter()
        .chain([("my kim@example.test pass", CONTAINS_EMAIL)])
    {
        let page = reset_through(&app, &app.client, &link, password, password).await;
        page.assert_says(StatusCode::BAD_REQUEST, reason);
        assert_sign_in_refused(&app, &app.new_browser(), &user.email, password).await;
    }
    // After every refusal the same link still sets a good password.
    reset_through(&app, &app.client, &link, NEW_PASSWORD, NEW_PASSWORD)
        .await
        .assert_says(StatusCode::OK, "Your password was changed");
    assert_sign_in_works(&app, &app.new_browser(), &user.email, NEW_PASSWORD).await;
}

#[tokio::test]
async fn registration_refuses_short_breached_and_email_based_passwords() {
    let _turn = share_the_machine().await;
    let (app, sink) = spawn_app_with_mail(|c| {
        c.env("TESSERA_SELF_REGISTRATION", "true");
        c.env("TESSERA_LOCKOUT_THRESHOLD", "100");
    })
    .await;
    let email = "kim@example.test";
    for (password, reason) in refused_passwords() {
        let page = register(&app, &app.new_browser(), "Kim", email, password).await;
        page.assert_says(StatusCode::BAD_REQUEST, reason);
        assert_sign_in_refused(&app, &app.new_browser(), email, password).await;
    }
    // No account was created along the way: a good password now registers a new account.
    register(&app, &app.new_browser(), "Kim", email, NEW_PASSWORD)
        .await
        .assert_says(StatusCode::OK, "Check your email");
    mailed_confirmation_link(&app, &sink, email).await;
    assert_eq!(
        subjects(&sink.received_by(email)),
        ["Confirm your email address"],
        "the refused attempts mailed nothing"
    );
}

#[tokio::test]
async fn changing_the_password_refuses_a_password_the_policy_forbids() {
    let _turn = share_the_machine().await;
    let app = spawn_app().await;
    let user = app.add_user("kim@example.test").await;
    let browser = app.new_browser();
    app.sign_in_to_account_in(&browser, &user).await;
    for (password, reason) in refused_passwords() {
        let page = fill_in(
            &app,
            &browser,
            "/account/password",
            "/account/password",
            &[
                ("current", &user.password),
                ("password", password),
                ("confirm", password),
            ],
        )
        .await;
        page.assert_says(StatusCode::BAD_REQUEST, reason);
    }
    assert_sign_in_works(&app, &app.new_browser(), &user.email, &user.password).await;
}

#[tokio::test]
async fn tessera_user_add_refuses_short_breached_and_email_based_passwords() {
    let _turn = share_the_machine().await;
    let app = spawn_app().await;
    let email = "kim@example.test";
    for (password, reason) in refused_passwords() {
        let out = app
            .cli(
                &["user", "add", "--email", email, "--password-stdin"],
                Some(password),
            )
            .await;
        assert!(
            !out.status.success(),
            "`tessera user add` should refuse {password:?}, but it succeeded: {}",
            out.stdout
        );
        assert!(
            out.stderr.contains(reason),
            "`tessera user add` says why it refused {password:?} ({reason:?}), said:\n{}{}",
            out.stdout,
            out.stderr
        );
    }
    assert_sign_in_refused(&app, &app.new_browser(), email, "password1234").await;
    // None of them created the user: a good password does.
    let out = app
        .cli(
            &["user", "add", "--email", email, "--password-stdin"],
            Some(NEW_PASSWORD),
        )
        .await;
    out.assert_success("tessera user add with a good password");
    assert_sign_in_works(&app, &app.new_browser(), email, NEW_PASSWORD).await;
}

// ---------------------------------------------------------------------------
// 6.-8. Brute force
// ---------------------------------------------------------------------------

#[tokio::test]
async fn repeated_failures_lock_an_account_and_an_unknown_email_alike_until_the_lock_ends() {
    let _turn = share_the_machine().await;
    let app = spawn_app_with(|c| {
        c.env("TESSERA_LOCKOUT_THRESHOLD", "3");
        c.env("TESSERA_LOCKOUT_BASE", "2s");
    })
    .await;
    let user = app.add_user("lee@example.test").await;
    let unknown = "ghost@example.test";
    let attacker = app.new_browser();

    for email in [user.email.as_str(), unknown] {
        for _ in 0..3 {
            attempt_sign_in(&app, &attacker, email, WRONG_PASSWORD)
                .await
                .assert_says(StatusCode::UNAUTHORIZED, BAD_CREDENTIALS);
        }
    }
    let locked = attempt_sign_in(&app, &attacker, &user.email, &user.password).await;
    let locked_unknown = attempt_sign_in(&app, &attacker, unknown, &user.password).await;

    locked.assert_says(StatusCode::TOO_MANY_REQUESTS, LOCKED);
    let wait = locked.assert_too_many(2);
    locked_unknown.assert_too_many(2);
    assert_eq!(
        locked_unknown.text(),
        locked.text(),
        "a locked unknown email reads exactly like a locked account"
    );
    // The owner, from a browser that never signed in to the account, is refused during the lock.
    let owner = app.new_browser();
    attempt_sign_in(&app, &owner, &user.email, &user.password)
        .await
        .assert_says(StatusCode::TOO_MANY_REQUESTS, LOCKED);

    tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(200)).await;
    assert_sign_in_works(&app, &owner, &user.email, &user.password).await;

    let audit = audit_actions(&app).await;
    let failures = |reason: &str| {
        audit
            .iter()
            .filter(|l| l.action == "signin.failure" && l.detail["reason"] == reason)
            .count()
    };
    assert_eq!(failures("wrong_password"), 3, "{audit:?}");
    assert_eq!(failures("unknown_account"), 3, "{audit:?}");
    assert!(
        audit
            .iter()
            .any(|l| l.action == "signin.locked" && l.subject.as_deref() == Some(user.id.as_str())),
        "the lock is audited: {audit:?}"
    );
}

#[tokio::test]
async fn failures_from_many_addresses_still_lock_the_account_but_not_the_owners_browser() {
    let _turn = share_the_machine().await;
    let app = spawn_app_with(|c| {
        c.env("TESSERA_LOCKOUT_THRESHOLD", "3");
    })
    .await;
    let user = app.add_user("max@example.test").await;

    // The owner signed in from this browser before: it holds a signed device cookie.
    let owner = app.new_browser();
    let resp = app
        .plain_sign_in_in(&owner, &user.email, &user.password)
        .await;
    assert_eq!(expect_see_other(&resp).path(), "/account");
    let device = set_cookies(&resp)
        .into_iter()
        .find(|c| c.name == "tessera_device")
        .expect("a sign-in sets the tessera_device cookie");
    assert!(device.attribute("httponly").is_some(), "{device:?}");

    // Three attackers, three addresses, one failure each.
    for source in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        attempt_sign_in(&app, &browser_from(source), &user.email, WRONG_PASSWORD)
            .await
            .assert_says(StatusCode::UNAUTHORIZED, BAD_CREDENTIALS);
    }
    let fourth = attempt_sign_in(
        &app,
        &browser_from("127.0.0.5"),
        &user.email,
        &user.password,
    )
    .await;
    fourth.assert_says(StatusCode::TOO_MANY_REQUESTS, LOCKED);
    fourth.assert_too_many(60);

    // The owner's browser is not locked out by them.
    assert_sign_in_works(&app, &owner, &user.email, &user.password).await;
}

#[tokio::test]
async fn an_address_with_too_many_failures_gets_429_for_every_account_while_others_sign_in() {
    let _turn = share_the_machine().await;
    let app = spawn_app_with(|c| {
        c.env("TESSERA_IP_FAILURE_LIMIT", "4");
        c.env("TESSERA_LOCKOUT_THRESHOLD", "100");
    })
    .await;
    let user = app.add_user("ned@example.test").await;
    let other = app.add_user("olga@example.test").await;
    let noisy = browser_from("127.0.0.2");

    for i in 0..4 {
        attempt_sign_in(
            &app,
            &noisy,
            &format!("guess{i}@example.test"),
            WRONG_PASSWORD,
        )
        .await
        .assert_says(StatusCode::UNAUTHORIZED, BAD_CREDENTIALS);
    }
    for account in [&user, &other] {
        let page = attempt_sign_in(&app, &noisy, &account.email, &account.password).await;
        page.assert_too_many(15 * 60);
    }
    let quiet = browser_from("127.0.0.3");
    assert_sign_in_works(&app, &quiet, &user.email, &user.password).await;
    assert_sign_in_works(&app, &app.new_browser(), &other.email, &other.password).await;
}

// ---------------------------------------------------------------------------
// 9. Rate limits
// ---------------------------------------------------------------------------

#[tokio::test]
async fn too_many_sign_in_posts_from_one_address_get_429_with_retry_after() {
    let _turn = share_the_machine().await;
    let app = spawn_app_with(|c| {
        c.env("TESSERA_SIGNIN_RATE_LIMIT", "3");
    })
    .await;
    let user = app.add_user("pia@example.test").await;
    let busy = browser_from("127.0.0.2");
    for _ in 0..3 {
        attempt_sign_in(&app, &busy, &user.email, WRONG_PASSWORD)
            .await
            .assert_says(StatusCode::UNAUTHORIZED, BAD_CREDENTIALS);
    }
    attempt_sign_in(&app, &busy, &user.email, &user.password)
        .await
        .assert_too_many(60);
    assert_sign_in_works(
        &app,
        &browser_from("127.0.0.3"),
        &user.email,
        &user.password,
    )
    .await;
}

async fn token_error(resp: Response) -> (StatusCode, Option<u64>, serde_json::Value) {
    let status = resp.status();
    let retry_after =
        header_str(resp.headers(), "retry-after").and_then(|v| v.trim().parse::<u64>().ok());
    let body = expect_json(resp, status).await;
    (status, retry_after, body)
}

async fn client_credentials_from(
    app: &TestApp,
    channel: &reqwest::Client,
    id: &str,
    secret: &str,
) -> Response {
    channel
        .post(app.url("/token"))
        .header(
            reqwest::header::AUTHORIZATION,
            basic_authorization(id, secret),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("POST /token")
}

#[tokio::test]
async fn repeated_wrong_client_secrets_from_one_address_get_429_temporarily_unavailable() {
    let _turn = share_the_machine().await;
    let app = spawn_app_with(|c| {
        c.env("TESSERA_IP_FAILURE_LIMIT", "3");
    })
    .await;
    let service = app.add_client(ClientSpec::service("billing")).await;
    let secret = service.secret.clone().expect("a generated secret");
    let noisy = backchannel_from("127.0.0.2");

    for _ in 0..3 {
        let resp = client_credentials_from(&app, &noisy, &service.id, "wrong-secret").await;
        expect_oauth_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
    let (status, retry_after, body) =
        token_error(client_credentials_from(&app, &noisy, &service.id, &secret).await).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(
        retry_after.is_some_and(|s| (1..=15 * 60).contains(&s)),
        "Retry-After is a number of seconds: {retry_after:?}"
    );

    let quiet = backchannel_from("127.0.0.3");
    expect_tokens(client_credentials_from(&app, &quiet, &service.id, &secret).await).await;
}

#[tokio::test]
async fn a_client_over_its_token_rate_limit_gets_429_while_other_clients_do_not() {
    let _turn = share_the_machine().await;
    let app = spawn_app_with(|c| {
        c.env("TESSERA_TOKEN_RATE_LIMIT", "3");
    })
    .await;
    let busy = app.add_client(ClientSpec::service("busy")).await;
    let calm = app.add_client(ClientSpec::service("calm")).await;
    for _ in 0..3 {
        expect_tokens(app.client_credentials(&busy.auth(), &[]).await).await;
    }
    let (status, retry_after, body) =
        token_error(app.client_credentials(&busy.auth(), &[]).await).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(
        retry_after.is_some_and(|s| (1..=60).contains(&s)),
        "Retry-After is a number of seconds up to a minute: {retry_after:?}"
    );
    expect_tokens(app.client_credentials(&calm.auth(), &[]).await).await;
}

// ---------------------------------------------------------------------------
// 10. No enumeration by timing
// ---------------------------------------------------------------------------

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_take_the_same_time() {
    let _alone = have_the_machine_alone().await;
    let app = spawn_app_with(|c| {
        c.env("TESSERA_LOCKOUT_THRESHOLD", "1000");
        c.env("TESSERA_IP_FAILURE_LIMIT", "1000");
        c.env("TESSERA_SIGNIN_RATE_LIMIT", "0");
    })
    .await;
    let user = app.add_user("quinn@example.test").await;
    let login = open(&app, &app.client, "/login").await;
    let csrf = input_value(&login.html, "csrf_token").expect("a csrf_token");
    let attempt = |email: String| {
        let form = [
            ("csrf_token", csrf.clone()),
            ("request", String::new()),
            ("email", email),
            ("password", WRONG_PASSWORD.to_owned()),
        ];
        let request = app.client.post(app.url("/login")).form(&form);
        async move {
            let start = Instant::now();
            let resp = request.send().await.expect("POST /login");
            let status = resp.status();
            resp.bytes().await.expect("read the answer");
            let took = start.elapsed();
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            took
        }
    };
    // Warm up both paths (pools, caches) before measuring.
    for _ in 0..2 {
        attempt(user.email.clone()).await;
        attempt("warmup@example.test".to_owned()).await;
    }
    // Fifteen timings of each kind, taken in alternation. A neighbour (another test, another
    // process) can only ever add time, so each timing is the quickest of three tries made in
    // turn with the other kind: what remains is the server's own work.
    let (mut existing, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..15 {
        let (mut fastest_existing, mut fastest_unknown) = (Duration::MAX, Duration::MAX);
        for j in 0..3 {
            let unknown_email = format!("nobody{i}.{j}@example.test");
            if (i + j) % 2 == 0 {
                fastest_existing = fastest_existing.min(attempt(user.email.clone()).await);
                fastest_unknown = fastest_unknown.min(attempt(unknown_email).await);
            } else {
                fastest_unknown = fastest_unknown.min(attempt(unknown_email).await);
                fastest_existing = fastest_existing.min(attempt(user.email.clone()).await);
            }
        }
        existing.push(fastest_existing);
        unknown.push(fastest_unknown);
    }
    let (a, b) = (median(existing.clone()), median(unknown.clone()));
    let ratio = a.max(b).as_secs_f64() / a.min(b).as_secs_f64();
    assert!(
        ratio < 1.25,
        "a wrong password (median {a:?}) and an unknown email (median {b:?}) should take about \
         the same time, but one takes {ratio:.2}x the other\nexisting: {existing:?}\nunknown: {unknown:?}"
    );
}

// ---------------------------------------------------------------------------
// 11. Security headers
// ---------------------------------------------------------------------------

#[track_caller]
fn assert_security_headers(what: &str, headers: &HeaderMap, page: bool) {
    let get = |name: &str| {
        header_str(headers, name)
            .unwrap_or_else(|| panic!("{what} lacks the {name} header; headers: {headers:?}"))
    };
    let csp = get("content-security-policy");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{what}: the CSP allows no inline or eval'd script: {csp}"
    );
    assert!(
        csp.split(';')
            .any(|d| d.split_whitespace().collect::<Vec<_>>() == ["frame-ancestors", "'none'"]),
        "{what}: the CSP forbids framing (frame-ancestors 'none'): {csp}"
    );
    assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(get("referrer-policy"), "no-referrer", "{what}");
    assert!(
        !get("permissions-policy").trim().is_empty(),
        "{what}: Permissions-Policy is set"
    );
    assert_eq!(get("x-frame-options"), "DENY", "{what}");
    assert!(
        headers.get("strict-transport-security").is_none(),
        "{what}: no HSTS over plain http"
    );
    if page {
        assert!(
            get("cache-control").contains("no-store"),
            "{what}: pages are not cached"
        );
    }
}

#[tokio::test]
async fn every_page_and_json_answer_carries_the_security_headers() {
    let _turn = share_the_machine().await;
    let app = spawn_app_with(|c| {
        c.env("TESSERA_SELF_REGISTRATION", "true");
    })
    .await;
    let user = app.add_user("rosa@example.test").await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;
    let visitor = app.new_browser();
    let member = app.new_browser();
    app.sign_in_to_account_in(&member, &user).await;

    let pages = [
        (&visitor, "/login", StatusCode::OK),
        (&visitor, "/password/forgot", StatusCode::OK),
        (&visitor, "/password/reset?token=x", StatusCode::BAD_REQUEST),
        (&visitor, "/register", StatusCode::OK),
        (&visitor, "/no/such/page", StatusCode::NOT_FOUND),
        (&member, "/account", StatusCode::OK),
        (&member, "/account/sessions", StatusCode::OK),
        (&member, "/account/password", StatusCode::OK),
    ];
    for (browser, path, status) in pages {
        let page = open(&app, browser, path).await;
        assert_eq!(page.status, status, "{path}: {}", page.text());
        assert_security_headers(path, &page.headers, true);
    }

    let discovery = app
        .backchannel
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .expect("GET discovery");
    assert_eq!(discovery.status(), StatusCode::OK);
    assert_security_headers("the discovery document", discovery.headers(), false);

    let token_error = app
        .token(
            &client.wrong_secret_auth(),
            &[("grant_type", "refresh_token")],
        )
        .await;
    let headers = token_error.headers().clone();
    expect_oauth_error(token_error, StatusCode::UNAUTHORIZED, "invalid_client").await;
    assert_security_headers("a /token error", &headers, true);
}
