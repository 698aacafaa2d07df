//! Passkey ceremonies over HTTP, where no authenticator is needed: a ceremony is bound to the
//! browser that began it and is used up by its first answer, right or wrong; forged and
//! signed-out requests start nothing. (Real authenticators: tests/browser/passkeys.test.mjs.)

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// The sign-in page's CSRF token (the browser's CSRF cookie is set with it).
async fn csrf_token(app: &TestApp, browser: &reqwest::Client) -> String {
    let html = browser
        .get(app.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    input_value(&html, "csrf_token").expect("the sign-in page carries a CSRF token")
}

async fn begin_passkey_sign_in(
    app: &TestApp,
    browser: &reqwest::Client,
    csrf: &str,
) -> reqwest::Response {
    browser
        .post(app.url("/login/passkey/begin"))
        .json(&json!({ "csrf_token": csrf }))
        .send()
        .await
        .unwrap()
}

/// An answer shaped like an authenticator's, signed by nobody.
fn forged_assertion() -> String {
    json!({
        "id": "AAAAAAAAAAAAAAAAAAAAAA",
        "rawId": "AAAAAAAAAAAAAAAAAAAAAA",
        "type": "public-key",
        "response": {
            "authenticatorData": "AAAA",
            "clientDataJSON": "AAAA",
            "signature": "AAAA",
            "userHandle": null
        },
        "extensions": {}
    })
    .to_string()
}

async fn post_answer(app: &TestApp, browser: &reqwest::Client, csrf: &str) -> (StatusCode, String) {
    let resp = browser
        .post(app.url("/login/passkey"))
        .form(&[
            ("csrf_token", csrf),
            ("request", ""),
            ("credential", &forged_assertion()),
        ])
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, visible_text(&resp.text().await.unwrap()))
}

#[tokio::test]
async fn a_passkey_sign_in_begins_with_options_for_this_site_and_a_browser_bound_cookie() {
    let app = spawn_localhost_app().await;
    let browser = app.new_browser();
    let csrf = csrf_token(&app, &browser).await;

    let resp = begin_passkey_sign_in(&app, &browser, &csrf).await;

    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = set_cookies(&resp)
        .into_iter()
        .find(|c| c.name == "tessera_webauthn")
        .expect("the ceremony handle is kept in a cookie");
    assert!(cookie.attribute("httponly").is_some());
    assert_eq!(cookie.attribute("samesite"), Some("Strict"));
    assert_eq!(cookie.attribute("max-age"), Some("300"));
    let body: Value = resp.json().await.unwrap();
    let options = &body["options"];
    assert_eq!(options["publicKey"]["rpId"], "localhost");
    assert_eq!(options["publicKey"]["userVerification"], "required");
    assert_eq!(options["mediation"], "conditional");
    assert!(options["publicKey"]["challenge"].as_str().unwrap().len() >= 43);
}

#[tokio::test]
async fn a_passkey_ceremony_is_used_up_by_its_first_answer_so_a_replay_is_refused() {
    let app = spawn_localhost_app().await;
    let browser = app.new_browser();
    let csrf = csrf_token(&app, &browser).await;
    assert_eq!(
        begin_passkey_sign_in(&app, &browser, &csrf).await.status(),
        StatusCode::OK
    );

    let (first, text) = post_answer(&app, &browser, &csrf).await;
    assert_eq!(first, StatusCode::UNAUTHORIZED, "{text}");
    assert!(text.contains("That passkey was not accepted"), "{text}");

    // The same answer again, from a browser that still holds the ceremony's cookie.
    let (again, text) = post_answer(&app, &browser, &csrf).await;
    assert_eq!(again, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("took too long or was already used"), "{text}");
}

#[tokio::test]
async fn a_passkey_answer_from_a_browser_that_began_no_ceremony_is_refused() {
    let app = spawn_localhost_app().await;
    let began = app.new_browser();
    let csrf = csrf_token(&app, &began).await;
    assert_eq!(
        begin_passkey_sign_in(&app, &began, &csrf).await.status(),
        StatusCode::OK
    );

    let other = app.new_browser();
    let other_csrf = csrf_token(&app, &other).await;
    let (status, text) = post_answer(&app, &other, &other_csrf).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("took too long or was already used"), "{text}");
}

#[tokio::test]
async fn a_forged_request_starts_no_passkey_ceremony() {
    let app = spawn_localhost_app().await;
    let browser = app.new_browser();
    csrf_token(&app, &browser).await;

    let resp = begin_passkey_sign_in(&app, &browser, "forged").await;

    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(
        set_cookies(&resp)
            .iter()
            .all(|c| c.name != "tessera_webauthn")
    );
}

#[tokio::test]
async fn adding_a_passkey_needs_a_signed_in_person() {
    let app = spawn_localhost_app().await;
    let browser = app.new_browser();
    let csrf = csrf_token(&app, &browser).await;

    let resp = browser
        .post(app.url("/account/passkeys/begin"))
        .json(&json!({ "csrf_token": csrf, "style": "passkey" }))
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "signed_out");
}

#[tokio::test]
async fn a_signed_in_person_begins_adding_a_passkey_that_must_be_discoverable_and_verified() {
    let app = spawn_localhost_app().await;
    let user = app.add_user("pia@example.test").await;
    let browser = app.new_browser();
    app.sign_in_to_account_in(&browser, &user).await;
    let csrf = csrf_token(&app, &browser).await;

    let resp = browser
        .post(app.url("/account/passkeys/begin"))
        .json(&json!({ "csrf_token": csrf, "style": "passkey" }))
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let pk = &body["options"]["publicKey"];
    assert_eq!(pk["rp"]["id"], "localhost");
    assert_eq!(pk["user"]["name"], "pia@example.test");
    assert_eq!(pk["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(pk["authenticatorSelection"]["userVerification"], "required");
}

#[tokio::test]
async fn passkey_sign_ins_begun_in_bulk_from_one_address_get_429() {
    // Each begin stores a ceremony: unauthenticated writes need a limit per address.
    let app = spawn_localhost_app_with(|c| {
        c.env("TESSERA_SIGNIN_RATE_LIMIT", "3");
    })
    .await;
    let browser = app.new_browser();
    let csrf = csrf_token(&app, &browser).await;
    for _ in 0..3 {
        assert_eq!(
            begin_passkey_sign_in(&app, &browser, &csrf).await.status(),
            StatusCode::OK
        );
    }
    let resp = begin_passkey_sign_in(&app, &browser, &csrf).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().get("retry-after").is_some());
    assert!(
        set_cookies(&resp)
            .iter()
            .all(|c| !c.name.contains("webauthn")),
        "no ceremony was begun"
    );
}
