//! Account security, one module per capability: password reset, password change,
//! registration and email verification, the password policy, lock-out, rate limits, timing,
//! security headers. Mail goes through a real SMTP sink.
//!
//! This module holds what they share: browsers with a source address of their own, pages and
//! forms, the mail steps, and the turn-taking with the timing test.

mod lockout;
mod password_change;
mod password_policy;
mod password_reset;
mod rate_limits;
mod registration_and_verification;
mod security_headers;
mod sign_in_timing;

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

/// The timing test measures differences of a few milliseconds. The other account-security
/// tests start servers and hash passwords; they wait while it measures (and it waits for them), so
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

/// The `token` a mailed link carries.
fn link_token(link: &Url) -> String {
    link.query_pairs()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .expect("the link carries a token")
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
