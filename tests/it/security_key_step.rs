//! A security key as the second step, over HTTP, with a software key that signs real answers:
//! it completes the step once; its answer replayed, carried to another browser, posted after
//! its ceremony or the step expired, posted out of order or to another step's form is refused,
//! and the step then still waits for its rightful answer. The page keeps offering the key after
//! a wrong code and after a reload.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

const SESSION_COOKIE: &str = "tessera_session";
const HANDLE_COOKIE: &str = "tessera_second_step";
const CEREMONY_COOKIE: &str = "tessera_webauthn";
const CSRF_COOKIE: &str = "tessera_csrf";

fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    set_cookies(resp)
        .into_iter()
        .find(|c| c.name == name)
        .map(|c| c.value)
}

fn offers_the_key(step: &SecondStepPage) -> bool {
    step.html.contains("id=\"security-key\"")
        && step.html.contains("action=\"/login/second-step/key\"")
}

struct Setup {
    app: TestApp,
    user: TestUser,
    client: RegisteredClient,
    key: SecurityKey,
}

/// A user whose only second factor is a security key.
async fn setup() -> Setup {
    let app = spawn_localhost_app().await;
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("erp")).await;
    let key = app.add_security_key(&user).await;
    Setup {
        app,
        user,
        client,
        key,
    }
}

/// From `browser`: /authorize, the password; expects the second step, offering the key.
async fn password_step(
    s: &Setup,
    browser: &reqwest::Client,
    request: &AuthRequest,
) -> SecondStepPage {
    let page = expect_sign_in_page(s.app.authorize_in(browser, request).await).await;
    let resp = s
        .app
        .post_login_in(browser, &page, &s.user.email, &s.user.password)
        .await;
    assert_eq!(set_cookie(&resp, SESSION_COOKIE), None, "no session yet");
    let step = expect_second_step_page(resp).await;
    assert_eq!(step.status, StatusCode::OK);
    assert!(
        offers_the_key(&step),
        "the step offers the key: {}",
        step.html
    );
    step
}

/// POST /login/second-step/key/begin from `browser`: the options to sign.
async fn begin_key(app: &TestApp, browser: &reqwest::Client, csrf: &str) -> reqwest::Response {
    browser
        .post(app.url("/login/second-step/key/begin"))
        .json(&json!({ "csrf_token": csrf }))
        .send()
        .await
        .expect("POST /login/second-step/key/begin")
}

async fn key_options(app: &TestApp, browser: &reqwest::Client, csrf: &str) -> Value {
    let resp = begin_key(app, browser, csrf).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("JSON options");
    body["options"].clone()
}

async fn post_key(
    app: &TestApp,
    browser: &reqwest::Client,
    csrf: &str,
    credential: &str,
) -> reqwest::Response {
    browser
        .post(app.url("/login/second-step/key"))
        .form(&[("csrf_token", csrf), ("credential", credential)])
        .send()
        .await
        .expect("POST /login/second-step/key")
}

/// The key signs the browser's challenge and the answer is posted: the step completes.
async fn answer_with_the_key(
    s: &mut Setup,
    browser: &reqwest::Client,
    csrf: &str,
) -> reqwest::Response {
    let options = key_options(&s.app, browser, csrf).await;
    let answer = s.key.assert(&options, &s.app.issuer).to_string();
    post_key(&s.app, browser, csrf, &answer).await
}

#[tokio::test]
async fn a_security_key_completes_the_step_once_and_its_answer_replayed_is_refused() {
    let mut s = setup().await;
    let browser = s.app.new_browser();
    let request = AuthRequest::new(&s.client);
    let resp = s.app.authorize_in(&browser, &request).await;
    let csrf_cookie = set_cookie(&resp, CSRF_COOKIE).expect("a CSRF cookie");
    let page = expect_sign_in_page(resp).await;
    let resp = s
        .app
        .post_login_in(&browser, &page, &s.user.email, &s.user.password)
        .await;
    let handle = set_cookie(&resp, HANDLE_COOKIE).expect("the pending step's handle");
    let step = expect_second_step_page(resp).await;
    let resp = begin_key(&s.app, &browser, &step.csrf_token).await;
    let ceremony = set_cookie(&resp, CEREMONY_COOKIE).expect("the key ceremony's handle");
    let body: Value = resp.json().await.expect("JSON options");
    let answer = s.key.assert(&body["options"], &s.app.issuer).to_string();

    let resp = post_key(&s.app, &browser, &step.csrf_token, &answer).await;
    assert!(
        set_cookie(&resp, SESSION_COOKIE).is_some(),
        "a session opens"
    );
    assert_eq!(set_cookie(&resp, HANDLE_COOKIE).as_deref(), Some(""));
    let code = expect_callback(&resp, &request.redirect_uri()).code();
    let tokens = s.app.exchange_code(&s.client, &request, &code).await;
    let claims = s
        .app
        .verify_jwt(tokens.id_token(), &s.client.id)
        .await
        .expect("the ID token verifies");
    assert_eq!(claims["acr"], "2");
    let amr: Vec<&str> = claims["amr"]
        .as_array()
        .expect("amr")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        amr.contains(&"pwd") && amr.contains(&"hwk") && amr.contains(&"mfa"),
        "{amr:?}"
    );

    // The same answer again from the same browser (its cookies now cleared): to the sign-in.
    let resp = post_key(&s.app, &browser, &step.csrf_token, &answer).await;
    assert_eq!(set_cookie(&resp, SESSION_COOKIE), None);
    assert_eq!(expect_see_other(&resp).path(), "/login");
    // The same request, cookies and all, sent again: the step and the ceremony are spent.
    let resp = s
        .app
        .backchannel
        .post(s.app.url("/login/second-step/key"))
        .header(
            "cookie",
            format!("{CSRF_COOKIE}={csrf_cookie}; {HANDLE_COOKIE}={handle}; {CEREMONY_COOKIE}={ceremony}"),
        )
        .form(&[("csrf_token", step.csrf_token.as_str()), ("credential", answer.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(set_cookie(&resp, SESSION_COOKIE), None);
    let html = expect_error_page(resp, StatusCode::BAD_REQUEST).await;
    assert!(html.contains("took too long"), "{html}");

    // The same answer in a new sign-in (its own step and its own ceremony): another challenge.
    let other = s.app.new_browser();
    let step = password_step(&s, &other, &request).await;
    let _ = key_options(&s.app, &other, &step.csrf_token).await;
    let resp = post_key(&s.app, &other, &step.csrf_token, &answer).await;
    assert_eq!(set_cookie(&resp, SESSION_COOKIE), None);
    let refused = expect_second_step_page(resp).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(
        offers_the_key(&refused),
        "a refused key leaves the key offered"
    );

    // That step was not spent by the replay: a fresh answer completes it.
    let resp = answer_with_the_key(&mut s, &other, &step.csrf_token).await;
    expect_callback(&resp, &request.redirect_uri()).code();
}

#[tokio::test]
async fn a_key_answer_to_one_browsers_challenge_does_not_complete_another_browsers_step() {
    let mut s = setup().await;
    let request = AuthRequest::new(&s.client);
    let (mine, theirs) = (s.app.new_browser(), s.app.new_browser());
    let my_step = password_step(&s, &mine, &request).await;
    let their_step = password_step(&s, &theirs, &request).await;
    let my_options = key_options(&s.app, &mine, &my_step.csrf_token).await;
    let _ = key_options(&s.app, &theirs, &their_step.csrf_token).await;
    let answer = s.key.assert(&my_options, &s.app.issuer).to_string();

    // Posted from the other browser (its own step, its own ceremony): refused.
    let resp = post_key(&s.app, &theirs, &their_step.csrf_token, &answer).await;
    assert_eq!(set_cookie(&resp, SESSION_COOKIE), None);
    assert_eq!(
        expect_second_step_page(resp).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Posted with no cookies at all (another device that saw the answer): nothing happens.
    let stranger = s.app.new_browser();
    let csrf = s.app.csrf_token_in(&stranger).await;
    let resp = post_key(&s.app, &stranger, &csrf, &answer).await;
    assert_eq!(set_cookie(&resp, SESSION_COOKIE), None);
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(expect_see_other(&resp).path(), "/login");

    // The browser the challenge was for completes its own step with it.
    let resp = post_key(&s.app, &mine, &my_step.csrf_token, &answer).await;
    expect_callback(&resp, &request.redirect_uri()).code();
}

#[tokio::test]
async fn key_requests_out_of_order_are_refused_and_leave_the_step_waiting() {
    let mut s = setup().await;
    let browser = s.app.new_browser();
    let csrf = s.app.csrf_token_in(&browser).await;

    // No pending step: no ceremony begins, and an answer goes back to the sign-in.
    let resp = begin_key(&s.app, &browser, &csrf).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(
        set_cookies(&resp).iter().all(|c| c.value.is_empty()),
        "nothing stored for the browser"
    );
    let resp = post_key(&s.app, &browser, &csrf, "{}").await;
    assert_eq!(expect_see_other(&resp).path(), "/login");

    // A pending step, but no key ceremony begun: an answer signed for nothing is refused.
    let request = AuthRequest::new(&s.client);
    let step = password_step(&s, &browser, &request).await;
    let unasked = s
        .key
        .assert(
            &json!({ "publicKey": { "rpId": "localhost", "challenge": "AAAAAAAAAAAAAAAAAAAAAA" } }),
            &s.app.issuer,
        )
        .to_string();
    let resp = post_key(&s.app, &browser, &step.csrf_token, &unasked).await;
    assert_eq!(set_cookie(&resp, SESSION_COOKIE), None);
    let again = expect_second_step_page(resp).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(offers_the_key(&again));

    // Without the CSRF token: refused before anything is looked at.
    let resp = post_key(&s.app, &browser, "", &unasked).await;
    assert_eq!(set_cookie(&resp, SESSION_COOKIE), None);
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // The step still waits: begun properly, the key completes it.
    let resp = answer_with_the_key(&mut s, &browser, &step.csrf_token).await;
    expect_callback(&resp, &request.redirect_uri()).code();
}

#[tokio::test]
async fn other_steps_fields_and_answers_do_not_pass_for_the_key_step_nor_it_for_them() {
    let mut s = setup().await;
    let browser = s.app.new_browser();
    let request = AuthRequest::new(&s.client);
    let step = password_step(&s, &browser, &request).await;

    // The code form's field posted to the key step.
    let resp = browser
        .post(s.app.url("/login/second-step/key"))
        .form(&[("csrf_token", step.csrf_token.as_str()), ("code", "123456")])
        .send()
        .await
        .unwrap();
    assert_eq!(set_cookie(&resp, SESSION_COOKIE), None);
    assert_eq!(
        expect_second_step_page(resp).await.status,
        StatusCode::BAD_REQUEST
    );

    // A key answer posted to the code form, as the code.
    let options = key_options(&s.app, &browser, &step.csrf_token).await;
    let answer = s.key.assert(&options, &s.app.issuer).to_string();
    let resp = browser
        .post(s.app.url("/login/second-step"))
        .form(&[
            ("csrf_token", step.csrf_token.as_str()),
            ("code", answer.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(set_cookie(&resp, SESSION_COOKIE), None);
    assert_eq!(
        expect_second_step_page(resp).await.status,
        StatusCode::UNAUTHORIZED
    );

    // The key step's answer posted to the passwordless sign-in: not a passkey sign-in ceremony.
    let resp = browser
        .post(s.app.url("/login/passkey"))
        .form(&[
            ("csrf_token", step.csrf_token.as_str()),
            ("request", ""),
            ("credential", answer.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(set_cookie(&resp, SESSION_COOKIE), None);
    let (status, html) = read_html(resp).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        html.contains("took too long or was already used"),
        "no passkey sign-in ceremony is found under the key step's handle: {html}"
    );

    // A passwordless sign-in's ceremony answered and posted to the key step.
    let begun: Value = browser
        .post(s.app.url("/login/passkey/begin"))
        .json(&json!({ "csrf_token": step.csrf_token }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let passwordless = s.key.assert(&begun["options"], &s.app.issuer).to_string();
    let resp = post_key(&s.app, &browser, &step.csrf_token, &passwordless).await;
    assert_eq!(set_cookie(&resp, SESSION_COOKIE), None);
    assert_eq!(
        expect_second_step_page(resp).await.status,
        StatusCode::BAD_REQUEST
    );

    // Through all of that the step waited.
    let resp = answer_with_the_key(&mut s, &browser, &step.csrf_token).await;
    expect_callback(&resp, &request.redirect_uri()).code();
}

#[tokio::test]
async fn an_expired_key_ceremony_or_step_is_refused_over_http() {
    let mut s = setup().await;
    let browser = s.app.new_browser();
    let request = AuthRequest::new(&s.client);
    let step = password_step(&s, &browser, &request).await;

    // The key's ceremony outlives its five minutes (moved back in the database).
    let options = key_options(&s.app, &browser, &step.csrf_token).await;
    let answer = s.key.assert(&options, &s.app.issuer).to_string();
    s.app
        .execute_sql("UPDATE mfa_ceremonies SET expires_at = 1 WHERE kind = 'webauthn_second_step'")
        .await;
    let resp = post_key(&s.app, &browser, &step.csrf_token, &answer).await;
    assert_eq!(set_cookie(&resp, SESSION_COOKIE), None);
    let again = expect_second_step_page(resp).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(again.html.contains("took too long"), "{}", again.html);

    // Then the pending step itself ends: a right answer to a fresh challenge is too late.
    // (The step is sealed in the browser's cookie, so it cannot be aged from here: it ends
    // as all the user's sessions ending ends it, with the same page. Its five minutes are
    // `auth::mfa::second_step::tests::a_pending_second_step_lives_five_minutes_to_the_second`.)
    let options = key_options(&s.app, &browser, &step.csrf_token).await;
    let answer = s.key.assert(&options, &s.app.issuer).to_string();
    s.app
        .execute_sql("UPDATE users SET sessions_epoch = sessions_epoch + 1")
        .await;
    let resp = post_key(&s.app, &browser, &step.csrf_token, &answer).await;
    assert_eq!(set_cookie(&resp, SESSION_COOKIE), None);
    let html = expect_error_page(resp, StatusCode::BAD_REQUEST).await;
    assert!(html.contains("took too long"), "{html}");
    // And no new key ceremony begins for it.
    assert_eq!(
        begin_key(&s.app, &browser, &step.csrf_token).await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn a_locked_second_step_refuses_even_the_right_key() {
    let mut s = setup().await;
    let (phone, _) = s.app.enrol_authenticator(&s.user).await;
    let thief = s.app.new_browser();
    let request = AuthRequest::new(&s.client);
    let mut step = password_step(&s, &thief, &request).await;
    let wrong = if phone.code(0) == "111111" {
        "222222"
    } else {
        "111111"
    };
    for _ in 0..5 {
        let resp = s.app.post_second_step_in(&thief, &step, wrong).await;
        step = expect_second_step_page(resp).await;
        assert_eq!(step.status, StatusCode::UNAUTHORIZED);
    }
    let resp = answer_with_the_key(&mut s, &thief, &step.csrf_token).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().get("retry-after").is_some());
    assert_eq!(set_cookie(&resp, SESSION_COOKIE), None);
}

#[tokio::test]
async fn the_step_keeps_offering_the_key_after_a_wrong_code_and_a_reload() {
    let s = setup().await;
    let (phone, _) = s.app.enrol_authenticator(&s.user).await;
    let browser = s.app.new_browser();
    let request = AuthRequest::new(&s.client);
    let step = password_step(&s, &browser, &request).await;
    let wrong = if phone.code(0) == "111111" {
        "222222"
    } else {
        "111111"
    };

    let resp = s.app.post_second_step_in(&browser, &step, wrong).await;
    let again = expect_second_step_page(resp).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert!(offers_the_key(&again), "after a wrong code: {}", again.html);

    let resp = browser
        .get(s.app.url("/login/second-step"))
        .send()
        .await
        .unwrap();
    let reloaded = expect_second_step_page(resp).await;
    assert_eq!(reloaded.status, StatusCode::OK);
    assert!(
        offers_the_key(&reloaded),
        "after a reload: {}",
        reloaded.html
    );

    // A reload after the step is gone (ended as above) goes back to the sign-in and forgets
    // the handle.
    s.app
        .execute_sql("UPDATE users SET sessions_epoch = sessions_epoch + 1")
        .await;
    let resp = browser
        .get(s.app.url("/login/second-step"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_see_other(&resp).path(), "/login");
    assert_eq!(set_cookie(&resp, HANDLE_COOKIE).as_deref(), Some(""));
}
