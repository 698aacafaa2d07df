//! `/account/security` as a person and an attacker meet it: adding an authenticator app with
//! codes computed here from the key the page shows, recovery codes shown once, removal, the
//! password asked again when the sign-in is old, the other devices signed out, the notice
//! mailed, and `tessera user reset-mfa`.
//!
//! The five-minute edge itself is an engine test (`auth::mfa::manage`); here a fresh sign-in
//! passes and one made an hour ago (its `auth_time` moved back behind the server's back) is
//! asked.

use std::time::Duration;

use reqwest::{Response, StatusCode};
use totp_rs::{Algorithm, Builder, Totp};

use crate::helpers::*;
use crate::mail_sink::MailSink;

const STEP: i64 = 30;
const CONFIRM_IT_IS_YOU: &str = "Confirm it's you";
const SIGN_IN_SECURITY: &str = "/account/security";

// ---------------------------------------------------------------------------
// An authenticator app, and pages as a browser reads them
// ---------------------------------------------------------------------------

/// An authenticator app holding the key an enrolment page showed.
struct App {
    totp: Totp,
}

impl App {
    fn from_shown_key(key: &str) -> Self {
        let compact: String = key.chars().filter(|c| !c.is_whitespace()).collect();
        let secret = totp_rs::Secret::try_from_base32(compact).expect("the shown key is base32");
        // RFC 6238 as authenticator apps run it: SHA-1, 6 digits, 30-second steps.
        let totp = Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(6)
            .with_step_duration(STEP as u64)
            .with_secret(secret.as_ref().to_vec())
            .build()
            .expect("a TOTP key");
        Self { totp }
    }

    /// The code `steps` time steps away from now (0: what the app shows now).
    fn code(&self, steps: i64) -> String {
        self.totp
            .generate((unix_now() + steps * STEP) as u64)
            .to_string()
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Codes computed now are judged in the same 30-second step by the server.
async fn wait_for_a_fresh_step() {
    let left = STEP - unix_now() % STEP;
    if left < 5 {
        tokio::time::sleep(Duration::from_secs(left as u64 + 1)).await;
    }
}

#[derive(Debug)]
struct Page {
    status: StatusCode,
    cache_control: String,
    html: String,
}

impl Page {
    fn text(&self) -> String {
        visible_text(&self.html)
    }

    #[track_caller]
    fn assert_says(&self, status: StatusCode, words: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        assert!(
            self.text().contains(words),
            "the page should say {words:?}, says: {}",
            self.text()
        );
    }

    fn has_form(&self, action: &str) -> bool {
        tags(&self.html, "form")
            .iter()
            .any(|f| f.attr("action") == Some(action))
    }

    /// The hidden fields of the form posting to `action` (the page has one form per action,
    /// except the factor list: then the one holding `factor_id`).
    fn hidden(&self, name: &str) -> String {
        input_value(&self.html, name)
            .unwrap_or_else(|| panic!("the page has no {name} field:\n{}", self.html))
    }
}

async fn read(resp: Response) -> Page {
    let status = resp.status();
    let cache_control = header_str(resp.headers(), "cache-control")
        .unwrap_or("")
        .to_owned();
    let html = resp.text().await.expect("read the page");
    Page {
        status,
        cache_control,
        html,
    }
}

async fn open(app: &TestApp, browser: &reqwest::Client, path: &str) -> Page {
    read(
        browser
            .get(app.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}")),
    )
    .await
}

async fn post(
    app: &TestApp,
    browser: &reqwest::Client,
    action: &str,
    fields: &[(&str, &str)],
) -> Page {
    read(
        browser
            .post(app.url(action))
            .form(fields)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {action}: {e}")),
    )
    .await
}

/// The security page, with its CSRF token.
async fn security_page(app: &TestApp, browser: &reqwest::Client) -> (Page, String) {
    let page = open(app, browser, SIGN_IN_SECURITY).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let csrf = page.hidden("csrf_token");
    (page, csrf)
}

/// The enrolment page as a person reads it.
struct Enrolment {
    csrf: String,
    enrolment: String,
    app: App,
}

#[track_caller]
fn expect_enrolment(page: &Page) -> Enrolment {
    page.assert_says(StatusCode::OK, "Add an authenticator app");
    assert!(
        page.html.contains("<svg"),
        "the QR code is an inline SVG:\n{}",
        page.html
    );
    assert!(
        tags(&page.html, "img").is_empty() && tags(&page.html, "script").is_empty(),
        "the QR code is drawn by the page itself, no image from a QR service, no script"
    );
    let key_at = page
        .html
        .find("id=\"totp-key\">")
        .map(|at| at + "id=\"totp-key\">".len())
        .expect("the key is shown as text beside the QR code");
    let key_end = key_at + page.html[key_at..].find('<').expect("the key ends");
    let key = unescape_html(&page.html[key_at..key_end]);
    let code_input = tags(&page.html, "input")
        .into_iter()
        .find(|t| t.attr("name") == Some("code"))
        .expect("a code input");
    assert_eq!(code_input.attr("autocomplete"), Some("one-time-code"));
    assert_eq!(code_input.attr("inputmode"), Some("numeric"));
    assert!(page.has_form("/account/security/totp/confirm"));
    Enrolment {
        csrf: page.hidden("csrf_token"),
        enrolment: page.hidden("enrolment"),
        app: App::from_shown_key(&key),
    }
}

/// "Add an authenticator app" on the security page; expects the enrolment page.
async fn begin_adding_an_app(app: &TestApp, browser: &reqwest::Client) -> Enrolment {
    let (_, csrf) = security_page(app, browser).await;
    let page = post(
        app,
        browser,
        "/account/security/totp",
        &[("csrf_token", &csrf)],
    )
    .await;
    expect_enrolment(&page)
}

async fn confirm(
    app: &TestApp,
    browser: &reqwest::Client,
    e: &Enrolment,
    name: &str,
    code: &str,
) -> Page {
    post(
        app,
        browser,
        "/account/security/totp/confirm",
        &[
            ("csrf_token", &e.csrf),
            ("enrolment", &e.enrolment),
            ("name", name),
            ("code", code),
        ],
    )
    .await
}

/// The recovery codes a page shows (`xxxx-xxxx`).
#[track_caller]
fn recovery_codes(page: &Page) -> Vec<String> {
    let at = page
        .html
        .find("id=\"recovery-codes\"")
        .unwrap_or_else(|| panic!("the page lists recovery codes:\n{}", page.html));
    let list = &page.html[at..page.html[at..]
        .find("</ul>")
        .map_or(page.html.len(), |e| at + e)];
    let codes: Vec<String> = list
        .split("<code>")
        .skip(1)
        .filter_map(|s| s.split("</code>").next())
        .map(str::to_owned)
        .collect();
    for c in &codes {
        let (a, b) = c
            .split_once('-')
            .unwrap_or_else(|| panic!("{c} is grouped"));
        assert_eq!((a.len(), b.len()), (4, 4), "{c} reads xxxx-xxxx");
    }
    codes
}

/// Adds an authenticator app named `name` in a freshly signed-in browser; returns the app and
/// the recovery codes shown (empty when it was not the first factor).
async fn add_an_app(app: &TestApp, browser: &reqwest::Client, name: &str) -> (App, Vec<String>) {
    wait_for_a_fresh_step().await;
    let e = begin_adding_an_app(app, browser).await;
    let page = confirm(app, browser, &e, name, &e.app.code(0)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let codes = if page.html.contains("id=\"recovery-codes\"") {
        recovery_codes(&page)
    } else {
        Vec::new()
    };
    (e.app, codes)
}

/// A user signed in (just now) in a browser of their own.
async fn signed_in(app: &TestApp, email: &str) -> (TestUser, reqwest::Client) {
    let user = app.add_user(email).await;
    let browser = app.new_browser();
    app.sign_in_to_account_in(&browser, &user).await;
    (user, browser)
}

/// Signs `user`, who has `authenticator`, in to their account in `browser`: the password, then,
/// when the sign-in asks for a second step, a code from the app one step ahead (the step that
/// confirmed the app is spent).
async fn sign_in_with_app(
    app: &TestApp,
    browser: &reqwest::Client,
    user: &TestUser,
    authenticator: &App,
) {
    let resp = app
        .plain_sign_in_in(browser, &user.email, &user.password)
        .await;
    if resp.status() == StatusCode::SEE_OTHER {
        assert_eq!(expect_see_other(&resp).path(), "/account");
        return;
    }
    let step = read(resp).await;
    assert!(
        step.has_form("/login/second-step"),
        "the password leads to the account or to the second step: {}",
        step.text()
    );
    let csrf = step.hidden("csrf_token");
    let resp = browser
        .post(app.url("/login/second-step"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("code", &authenticator.code(1)),
        ])
        .send()
        .await
        .expect("POST /login/second-step");
    assert_eq!(expect_see_other(&resp).path(), "/account");
}

/// Moves every sign-in of the user an hour back, as if they signed in long ago.
async fn age_sign_ins(app: &TestApp, user: &TestUser) {
    let n = app
        .execute_sql(&format!(
            "UPDATE sessions SET auth_time = auth_time - 3600 WHERE user_id = '{}'",
            user.id
        ))
        .await;
    assert!(n > 0, "the user has a session to age");
}

async fn factor_count(app: &TestApp, user: &TestUser) -> u64 {
    // An UPDATE that changes nothing counts the rows it matches.
    app.execute_sql(&format!(
        "UPDATE mfa_factors SET name = name WHERE user_id = '{}'",
        user.id
    ))
    .await
}

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

async fn actions(app: &TestApp) -> Vec<String> {
    app.audit_tail(200)
        .await
        .into_iter()
        .map(|l| l.action)
        .collect()
}

// ---------------------------------------------------------------------------
// What a person does
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_person_adds_an_authenticator_app_from_the_key_shown_and_gets_recovery_codes_once() {
    let (app, sink) = spawn_app_with_mail().await;
    let (user, laptop) = signed_in(&app, "ada@example.test").await;
    let phone = app.new_browser();
    app.sign_in_to_account_in(&phone, &user).await;

    let account = open(&app, &laptop, "/account").await;
    assert!(
        tags(&account.html, "a")
            .iter()
            .any(|a| a.attr("href") == Some(SIGN_IN_SECURITY)),
        "the account page links to {SIGN_IN_SECURITY}:\n{}",
        account.html
    );
    let (page, _) = security_page(&app, &laptop).await;
    assert!(page.text().contains("No authenticator app yet."));
    assert!(page.text().contains("Passkeys and security keys"));

    wait_for_a_fresh_step().await;
    let e = begin_adding_an_app(&app, &laptop).await;
    // The app's clock is a step behind: its code still counts.
    let done = confirm(&app, &laptop, &e, "Pixel", &e.app.code(-1)).await;
    done.assert_says(StatusCode::OK, "Your recovery codes");
    assert!(done.cache_control.contains("no-store"));
    let codes = recovery_codes(&done);
    assert_eq!(codes.len(), 10);

    let (page, _) = security_page(&app, &laptop).await;
    let text = page.text();
    assert!(text.contains("Pixel"), "{text}");
    assert!(text.contains("Authenticator app"), "{text}");
    assert!(text.contains("Added "), "{text}");
    assert!(text.contains("10 of 10 left."), "{text}");

    // The phone was signed out; the laptop was not.
    let phone_page = phone.get(app.url("/account")).send().await.expect("GET");
    assert_eq!(expect_see_other(&phone_page).path(), "/login");
    let mail = sink.next_mail_to(&user.email).await;
    assert_eq!(
        mail.subject,
        "An authenticator app was added to your account"
    );
    assert!(mail.body.contains("Pixel"), "{}", mail.body);
    assert!(mail.body.contains("/password/forgot"), "{}", mail.body);
    assert!(actions(&app).await.contains(&"mfa.factor_added".to_owned()));
}

#[tokio::test]
async fn a_wrong_code_two_steps_off_or_a_second_confirmation_adds_nothing() {
    let app = spawn_app().await;
    let (user, browser) = signed_in(&app, "ben@example.test").await;
    wait_for_a_fresh_step().await;
    let e = begin_adding_an_app(&app, &browser).await;
    for wrong in [e.app.code(-2), e.app.code(2), "123".into(), "abcdef".into()] {
        let page = confirm(&app, &browser, &e, "Phone", &wrong).await;
        page.assert_says(StatusCode::UNAUTHORIZED, "That code is not right.");
        // The same key is shown again.
        assert_eq!(expect_enrolment_again(&page), e.enrolment);
    }
    assert_eq!(factor_count(&app, &user).await, 0);

    let form_again = confirm(&app, &browser, &e, "Phone", &e.app.code(0)).await;
    form_again.assert_says(StatusCode::OK, "Your recovery codes");
    let twice = confirm(&app, &browser, &e, "Phone", &e.app.code(1)).await;
    twice.assert_says(StatusCode::BAD_REQUEST, "This setup has expired");
    assert_eq!(factor_count(&app, &user).await, 1);
}

#[track_caller]
fn expect_enrolment_again(page: &Page) -> String {
    assert!(page.html.contains("<svg"), "{}", page.html);
    page.hidden("enrolment")
}

#[tokio::test]
async fn a_fresh_sign_in_changes_at_once_and_an_old_one_is_asked_for_the_password_first() {
    let app = spawn_app().await;
    let (user, browser) = signed_in(&app, "cleo@example.test").await;
    let _ = begin_adding_an_app(&app, &browser).await;

    age_sign_ins(&app, &user).await;
    let (_, csrf) = security_page(&app, &browser).await;
    let asked = post(
        &app,
        &browser,
        "/account/security/totp",
        &[("csrf_token", &csrf)],
    )
    .await;
    asked.assert_says(StatusCode::OK, CONFIRM_IT_IS_YOU);
    assert!(!asked.html.contains("<svg"), "no key before the password");

    let csrf = asked.hidden("csrf_token");
    let then = asked.hidden("then");
    let wrong = post(
        &app,
        &browser,
        "/account/security/confirm-password",
        &[
            ("csrf_token", &csrf),
            ("then", &then),
            ("password", "not the password at all"),
        ],
    )
    .await;
    wrong.assert_says(StatusCode::UNAUTHORIZED, "The password is not right.");
    let right = post(
        &app,
        &browser,
        "/account/security/confirm-password",
        &[
            ("csrf_token", &csrf),
            ("then", &then),
            ("password", &user.password),
        ],
    )
    .await;
    // The change it carried goes ahead.
    expect_enrolment(&right);
}

#[tokio::test]
async fn a_code_from_the_app_confirms_it_is_you_once_and_a_replayed_one_is_refused() {
    let app = spawn_app().await;
    let (user, browser) = signed_in(&app, "dan@example.test").await;
    wait_for_a_fresh_step().await;
    let e = begin_adding_an_app(&app, &browser).await;
    confirm(&app, &browser, &e, "Phone", &e.app.code(-1))
        .await
        .assert_says(StatusCode::OK, "Your recovery codes");

    age_sign_ins(&app, &user).await;
    let (_, csrf) = security_page(&app, &browser).await;
    let asked = post(
        &app,
        &browser,
        "/account/security/recovery-codes",
        &[("csrf_token", &csrf)],
    )
    .await;
    asked.assert_says(StatusCode::OK, CONFIRM_IT_IS_YOU);
    let code_input = tags(&asked.html, "input")
        .into_iter()
        .find(|t| t.attr("name") == Some("code"))
        .expect("a user with an app may type a code instead");
    assert_eq!(code_input.attr("autocomplete"), Some("one-time-code"));
    assert_eq!(code_input.attr("inputmode"), Some("numeric"));
    let then = asked.hidden("then");
    let with_code = |code: String| {
        let (app, browser, csrf, then) = (&app, &browser, csrf.clone(), then.clone());
        async move {
            post(
                app,
                browser,
                "/account/security/confirm-password",
                &[("csrf_token", &csrf), ("then", &then), ("code", &code)],
            )
            .await
        }
    };
    // One step ahead (the phone's clock runs fast): accepted, and the change goes ahead.
    let ahead = e.app.code(1);
    with_code(ahead.clone())
        .await
        .assert_says(StatusCode::OK, "Your new recovery codes");
    // The same code again: refused, and so is the older current one.
    for replayed in [ahead, e.app.code(0)] {
        with_code(replayed)
            .await
            .assert_says(StatusCode::UNAUTHORIZED, "That code is not right.");
    }
}

#[tokio::test]
async fn removing_an_app_signs_out_the_other_devices_is_audited_and_mailed() {
    let (app, sink) = spawn_app_with_mail().await;
    let (user, laptop) = signed_in(&app, "eve@example.test").await;
    let (authenticator, _) = add_an_app(&app, &laptop, "Old phone").await;
    let _added = sink.next_mail_to(&user.email).await;
    let tablet = app.new_browser();
    sign_in_with_app(&app, &tablet, &user, &authenticator).await;

    let (page, csrf) = security_page(&app, &laptop).await;
    let factor_id = page.hidden("factor_id");
    let removed = post(
        &app,
        &laptop,
        "/account/security/remove",
        &[("csrf_token", &csrf), ("factor_id", &factor_id)],
    )
    .await;
    removed.assert_says(StatusCode::OK, "Old phone was removed.");
    assert!(removed.text().contains("No authenticator app yet."));
    assert_eq!(factor_count(&app, &user).await, 0);
    let tablet_page = tablet.get(app.url("/account")).send().await.expect("GET");
    assert_eq!(expect_see_other(&tablet_page).path(), "/login");
    let mail = sink.next_mail_to(&user.email).await;
    assert_eq!(
        mail.subject,
        "An authenticator app was removed from your account"
    );
    assert!(
        actions(&app)
            .await
            .contains(&"mfa.factor_removed".to_owned())
    );
}

// ---------------------------------------------------------------------------
// What an attacker tries
// ---------------------------------------------------------------------------

#[tokio::test]
async fn removing_another_users_factor_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let (victim, victims_browser) = signed_in(&app, "fay@example.test").await;
    add_an_app(&app, &victims_browser, "Phone").await;
    let (victims_page, _) = security_page(&app, &victims_browser).await;
    let victims_factor = victims_page.hidden("factor_id");

    let (_, attacker) = signed_in(&app, "mallory@example.test").await;
    let (_, csrf) = security_page(&app, &attacker).await;
    let refused = post(
        &app,
        &attacker,
        "/account/security/remove",
        &[("csrf_token", &csrf), ("factor_id", &victims_factor)],
    )
    .await;
    refused.assert_says(StatusCode::NOT_FOUND, "not on your account");
    assert_eq!(factor_count(&app, &victim).await, 1);
    // The victim is still signed in.
    open(&app, &victims_browser, SIGN_IN_SECURITY)
        .await
        .assert_says(StatusCode::OK, "Phone");
}

#[tokio::test]
async fn removing_another_users_passkey_through_the_passkeys_page_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let (victim, _) = signed_in(&app, "ida@example.test").await;
    // The victim's security key, as registration stores it (the credential itself is not read
    // by removal).
    app.execute_sql(&format!(
        "INSERT INTO mfa_factors (id, user_id, kind, name, created_at, credential, passwordless) \
         VALUES ('victims-key', '{}', 'webauthn', 'YubiKey', 1, '{{}}', 0)",
        victim.id
    ))
    .await;
    assert_eq!(factor_count(&app, &victim).await, 1);

    let (_, attacker) = signed_in(&app, "max@example.test").await;
    let (_, csrf) = security_page(&app, &attacker).await;
    post(
        &app,
        &attacker,
        "/account/passkeys/remove",
        &[("csrf_token", &csrf), ("factor_id", "victims-key")],
    )
    .await;
    assert_eq!(factor_count(&app, &victim).await, 1);
    assert!(
        !actions(&app)
            .await
            .contains(&"mfa.factor_removed".to_owned())
    );
}

#[tokio::test]
async fn regenerating_codes_without_a_recent_sign_in_shows_no_codes_and_keeps_the_old_set() {
    let app = spawn_app().await;
    let (user, browser) = signed_in(&app, "gus@example.test").await;
    let (_, codes) = add_an_app(&app, &browser, "Phone").await;
    age_sign_ins(&app, &user).await;
    let (_, csrf) = security_page(&app, &browser).await;
    let asked = post(
        &app,
        &browser,
        "/account/security/recovery-codes",
        &[("csrf_token", &csrf)],
    )
    .await;
    asked.assert_says(StatusCode::OK, CONFIRM_IT_IS_YOU);
    assert!(!asked.html.contains("recovery-codes\""));
    // A forged "then" with a wrong password changes nothing either.
    let wrong = post(
        &app,
        &browser,
        "/account/security/confirm-password",
        &[
            ("csrf_token", &csrf),
            ("then", "regenerate"),
            ("password", "guess"),
        ],
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(
        !actions(&app)
            .await
            .contains(&"mfa.recovery_codes_regenerated".to_owned())
    );
    let (page, _) = security_page(&app, &browser).await;
    assert!(page.text().contains("10 of 10 left."));
    assert_eq!(codes.len(), 10);
}

#[tokio::test]
async fn posts_without_the_csrf_token_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let (user, browser) = signed_in(&app, "hal@example.test").await;
    let e = begin_adding_an_app(&app, &browser).await;
    let (page, _) = security_page(&app, &browser).await;
    assert!(page.text().contains("No authenticator app yet."));
    let code = e.app.code(0);
    let posts: [(&str, Vec<(&str, &str)>); 5] = [
        ("/account/security/totp", vec![]),
        (
            "/account/security/totp/confirm",
            vec![("enrolment", &e.enrolment), ("code", &code)],
        ),
        ("/account/security/remove", vec![("factor_id", "x")]),
        ("/account/security/recovery-codes", vec![]),
        (
            "/account/security/confirm-password",
            vec![("then", "regenerate"), ("password", &user.password)],
        ),
    ];
    for (action, fields) in &posts {
        for csrf in [None, Some("forged")] {
            let mut form = fields.clone();
            if let Some(token) = csrf {
                form.push(("csrf_token", token));
            }
            let page = post(&app, &browser, action, &form).await;
            assert_eq!(
                page.status,
                StatusCode::FORBIDDEN,
                "{action} without a valid CSRF token: {}",
                page.text()
            );
        }
    }
    assert_eq!(factor_count(&app, &user).await, 0);
    assert!(!actions(&app).await.iter().any(|a| a.starts_with("mfa.")));
}

#[tokio::test]
async fn an_enrolment_confirmed_from_another_browser_is_refused() {
    let app = spawn_app().await;
    let (user, mine) = signed_in(&app, "ivy@example.test").await;
    let theirs = app.new_browser();
    app.sign_in_to_account_in(&theirs, &user).await;
    wait_for_a_fresh_step().await;
    let e = begin_adding_an_app(&app, &mine).await;

    // The other browser, with its own CSRF token, sends this browser's enrolment and a right code.
    let (_, their_csrf) = security_page(&app, &theirs).await;
    let refused = post(
        &app,
        &theirs,
        "/account/security/totp/confirm",
        &[
            ("csrf_token", &their_csrf),
            ("enrolment", &e.enrolment),
            ("name", "Attacker"),
            ("code", &e.app.code(0)),
        ],
    )
    .await;
    refused.assert_says(StatusCode::BAD_REQUEST, "started elsewhere");
    assert_eq!(factor_count(&app, &user).await, 0);
    // This browser still finishes it.
    confirm(&app, &mine, &e, "Phone", &e.app.code(0))
        .await
        .assert_says(StatusCode::OK, "Your recovery codes");
}

#[tokio::test]
async fn bulk_guesses_at_the_confirmation_are_throttled() {
    let app = spawn_app().await;
    let (user, browser) = signed_in(&app, "jo@example.test").await;
    wait_for_a_fresh_step().await;
    let e = begin_adding_an_app(&app, &browser).await;
    let right = e.app.code(0);
    let mut throttled = None;
    for (i, guess) in (100_000..100_020).enumerate() {
        let guess = guess.to_string();
        if guess == right {
            continue;
        }
        let page = confirm(&app, &browser, &e, "Phone", &guess).await;
        if page.status == StatusCode::TOO_MANY_REQUESTS {
            throttled = Some(i);
            break;
        }
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.text());
    }
    let after = throttled.expect("twenty wrong guesses in a row are throttled");
    assert!(after <= 6, "throttled after {after} guesses");
    let page = confirm(&app, &browser, &e, "Phone", &right).await;
    assert_eq!(
        page.status,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right code waits for the lock: {}",
        page.text()
    );
    assert_eq!(factor_count(&app, &user).await, 0);
}

#[tokio::test]
async fn a_recovery_code_shown_once_never_appears_again_on_any_page() {
    let app = spawn_app().await;
    let (_, browser) = signed_in(&app, "kim@example.test").await;
    let (_, first) = add_an_app(&app, &browser, "Phone").await;
    assert_eq!(first.len(), 10);
    let (_, second) = add_an_app(&app, &browser, "Tablet").await;
    assert!(second.is_empty(), "a second app brings no new codes");

    let (_, csrf) = security_page(&app, &browser).await;
    let regenerated = post(
        &app,
        &browser,
        "/account/security/recovery-codes",
        &[("csrf_token", &csrf)],
    )
    .await;
    regenerated.assert_says(StatusCode::OK, "Your new recovery codes");
    let fresh = recovery_codes(&regenerated);
    assert_eq!(fresh.len(), 10);

    let mut seen = Vec::new();
    for path in [SIGN_IN_SECURITY, "/account", "/account/sessions", "/"] {
        seen.push(open(&app, &browser, path).await);
    }
    let (_, csrf) = security_page(&app, &browser).await;
    seen.push(
        post(
            &app,
            &browser,
            "/account/security/totp",
            &[("csrf_token", &csrf)],
        )
        .await,
    );
    for page in &seen {
        for code in first.iter().chain(&fresh) {
            assert!(
                !page.html.contains(code.as_str()),
                "a recovery code shown once appears again:\n{}",
                page.html
            );
        }
    }
}

// ---------------------------------------------------------------------------
// The operator
// ---------------------------------------------------------------------------

#[tokio::test]
async fn resetting_mfa_removes_every_factor_and_code_and_signs_the_user_out() {
    let app = spawn_app().await;
    let (user, browser) = signed_in(&app, "lou@example.test").await;
    add_an_app(&app, &browser, "Phone").await;
    let out = app.cli(&["user", "reset-mfa", &user.email], None).await;
    out.assert_success("tessera user reset-mfa");
    assert!(
        out.stdout.contains("removed 1 second factor"),
        "{}",
        out.stdout
    );
    assert_eq!(factor_count(&app, &user).await, 0);
    let resp = browser.get(app.url("/account")).send().await.expect("GET");
    assert_eq!(expect_see_other(&resp).path(), "/login");
    let audit = app.audit_tail(50).await;
    let reset = audit
        .iter()
        .find(|l| l.action.contains("mfa") && l.action.contains("reset"))
        .expect("the reset is audited");
    assert_eq!(reset.actor.as_deref(), Some("cli"));
    assert_eq!(reset.subject.as_deref(), Some(user.id.as_str()));
    // Signing in again asks for no second step, and the page offers to add one.
    app.sign_in_to_account_in(&browser, &user).await;
    let (page, _) = security_page(&app, &browser).await;
    assert!(page.text().contains("No authenticator app yet."));
    assert!(!page.text().contains("left."), "no recovery codes remain");

    let unknown = app
        .cli(&["user", "reset-mfa", "nobody@example.test"], None)
        .await;
    assert!(!unknown.status.success());
}
