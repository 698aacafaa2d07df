//! Multi-factor sign-in over HTTP: the second step after the password, what it accepts and
//! refuses (codes computed here from the user's key), its throttle, the step-up, the policy
//! that requires it, and the `acr`/`amr` a relying party reads.

use std::time::Duration;

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    PkceCodeChallenge, RedirectUrl, TokenResponse as _,
};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

const SESSION_COOKIE: &str = "tessera_session";
const HANDLE_COOKIE: &str = "tessera_second_step";
const CSRF_COOKIE: &str = "tessera_csrf";

/// Waits for a fresh 30-second step when the current one is nearly over, so that the codes a
/// test computes stay one step apart from the server's clock.
async fn with_time_in_the_step() {
    if seconds_left_in_step() < 6 {
        tokio::time::sleep(Duration::from_secs(seconds_left_in_step() as u64 + 1)).await;
    }
}

fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    set_cookies(resp)
        .into_iter()
        .find(|c| c.name == name)
        .map(|c| c.value)
}

/// From a browser: /authorize, the sign-in page, the right password; expects the second step.
async fn password_step_in(
    app: &TestApp,
    browser: &reqwest::Client,
    request: &AuthRequest,
    user: &TestUser,
) -> SecondStepPage {
    let page = expect_sign_in_page(app.authorize_in(browser, request).await).await;
    let resp = app
        .post_login_in(browser, &page, &user.email, &user.password)
        .await;
    assert_eq!(
        set_cookie(&resp, SESSION_COOKIE),
        None,
        "the password alone opens no session"
    );
    assert!(
        set_cookie(&resp, HANDLE_COOKIE).is_some(),
        "the browser gets the pending step's handle"
    );
    let step = expect_second_step_page(resp).await;
    assert_eq!(step.status, StatusCode::OK);
    step
}

/// The code flow's end: the callback's code becomes tokens; returns the claims of the ID token
/// and of the access token.
async fn claims_after(
    app: &TestApp,
    client: &RegisteredClient,
    request: &AuthRequest,
    resp: &reqwest::Response,
) -> (Value, Value) {
    let callback = expect_callback(resp, &request.redirect_uri());
    app.assert_state_and_issuer(&callback, request);
    let tokens = app.exchange_code(client, request, &callback.code()).await;
    let id = app
        .verify_jwt(tokens.id_token(), &client.id)
        .await
        .expect("the ID token verifies");
    let access = app
        .verify_jwt(&tokens.access_token, &app.issuer)
        .await
        .expect("the access token verifies");
    (id, access)
}

fn amr(claims: &Value) -> Vec<String> {
    claims["amr"]
        .as_array()
        .unwrap_or_else(|| panic!("amr is listed: {claims}"))
        .iter()
        .map(|m| m.as_str().expect("a method").to_owned())
        .collect()
}

#[tokio::test]
async fn a_user_with_an_authenticator_app_signs_in_with_the_password_then_a_code() {
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("erp")).await;
    let (phone, _) = app.enrol_authenticator(&user).await;
    with_time_in_the_step().await;

    let request = AuthRequest::new(&client);
    let step = password_step_in(&app, &app.client, &request, &user).await;
    assert!(
        !app.is_signed_in_in(&app.client, &client).await,
        "between the password and the code the browser is not signed in"
    );
    let resp = app.post_second_step(&step, &phone.code(0)).await;
    assert!(set_cookie(&resp, SESSION_COOKIE).is_some(), "a session now");
    let (id, access) = claims_after(&app, &client, &request, &resp).await;

    for claims in [&id, &access] {
        assert_eq!(claims["acr"], "2", "{claims}");
        assert_eq!(amr(claims), ["pwd", "otp", "mfa"], "{claims}");
    }
    assert!(app.is_signed_in_in(&app.client, &client).await);
}

#[tokio::test]
async fn a_password_only_sign_in_carries_acr_1_and_amr_pwd_in_both_tokens() {
    let app = spawn_app().await;
    let user = app.add_user("bob@example.test").await;
    let client = app.add_client(ClientSpec::first_party("erp")).await;
    let request = AuthRequest::new(&client);
    let page = expect_sign_in_page(app.authorize(&request).await).await;
    let resp = app.post_login(&page, &user.email, &user.password).await;
    let (id, access) = claims_after(&app, &client, &request, &resp).await;
    for claims in [&id, &access] {
        assert_eq!(claims["acr"], "1", "{claims}");
        assert_eq!(amr(claims), ["pwd"], "{claims}");
    }
}

/// The `openidconnect` relying party signs a user in (with a code when `phone` is given) and
/// returns the `acr` and `amr` of the verified ID token.
async fn relying_party_reads_acr_and_amr(
    app: &TestApp,
    client: &RegisteredClient,
    user: &TestUser,
    phone: Option<&Authenticator>,
) -> (Option<String>, Vec<String>) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("the relying party's HTTP client");
    let issuer = IssuerUrl::new(app.issuer.clone()).expect("the issuer is a URL");
    let metadata = CoreProviderMetadata::discover_async(issuer, &http)
        .await
        .expect("discovery succeeds");
    let rp = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client.id.clone()),
        client.secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(RedirectUrl::new(client.redirect_uri.clone()).expect("a redirect URL"))
    .set_auth_type(AuthType::BasicAuth);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .url();
    let browser = app.new_browser();
    let resp = browser.get(url.as_str()).send().await.expect("authorize");
    let page = expect_sign_in_page(resp).await;
    let mut resp = app
        .post_login_in(&browser, &page, &user.email, &user.password)
        .await;
    if let Some(phone) = phone {
        let step = expect_second_step_page(resp).await;
        resp = app
            .post_second_step_in(&browser, &step, &phone.code(0))
            .await;
    }
    let code = expect_callback(&resp, &client.redirect_uri).code();
    let tokens = rp
        .exchange_code(AuthorizationCode::new(code))
        .expect("the token endpoint is known")
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("the code is exchanged");
    let verifier = rp
        .id_token_verifier()
        .set_allowed_algs([CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
    let claims = tokens
        .id_token()
        .expect("an ID token")
        .claims(&verifier, &nonce)
        .expect("the ID token verifies");
    (
        claims.auth_context_ref().map(|a| a.as_str().to_owned()),
        claims
            .auth_method_refs()
            .map(|m| m.iter().map(|a| a.as_str().to_owned()).collect())
            .unwrap_or_default(),
    )
}

#[tokio::test]
async fn the_relying_party_reads_acr_1_for_a_password_and_acr_2_for_a_password_and_a_code() {
    let app = spawn_app().await;
    let client = app.add_client(ClientSpec::first_party("rp")).await;
    let bob = app.add_user("bob@example.test").await;
    let (acr, methods) = relying_party_reads_acr_and_amr(&app, &client, &bob, None).await;
    assert_eq!(acr.as_deref(), Some("1"));
    assert_eq!(methods, ["pwd"]);

    let ada = app.add_user("ada@example.test").await;
    let (phone, _) = app.enrol_authenticator(&ada).await;
    with_time_in_the_step().await;
    let (acr, methods) = relying_party_reads_acr_and_amr(&app, &client, &ada, Some(&phone)).await;
    assert_eq!(acr.as_deref(), Some("2"));
    assert!(
        methods.iter().any(|m| m == "otp") && methods.iter().any(|m| m == "mfa"),
        "{methods:?}"
    );
}

#[tokio::test]
async fn a_wrong_code_is_refused_and_the_step_waits_for_the_right_one() {
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("erp")).await;
    let (phone, _) = app.enrol_authenticator(&user).await;
    with_time_in_the_step().await;
    let request = AuthRequest::new(&client);
    let step = password_step_in(&app, &app.client, &request, &user).await;

    let wrong = if phone.code(0) == "123456" {
        "654321"
    } else {
        "123456"
    };
    let resp = app.post_second_step(&step, wrong).await;
    assert_eq!(set_cookie(&resp, SESSION_COOKIE), None);
    let again = expect_second_step_page(resp).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert!(again.html.contains("not valid"), "{}", again.html);

    let resp = app.post_second_step(&again, &phone.code(0)).await;
    expect_callback(&resp, &request.redirect_uri()).code();
}

#[tokio::test]
async fn a_recovery_code_answers_the_second_step_once() {
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("erp")).await;
    let (_, recovery) = app.enrol_authenticator(&user).await;
    assert!(recovery.len() >= 8, "{recovery:?}");

    let request = AuthRequest::new(&client);
    let step = password_step_in(&app, &app.client, &request, &user).await;
    let resp = app.post_second_step(&step, &recovery[0]).await;
    let (id, _) = claims_after(&app, &client, &request, &resp).await;
    assert_eq!(id["acr"], "2");
    assert_eq!(amr(&id), ["pwd", "otp", "mfa"]);

    let browser = app.new_browser();
    let step = password_step_in(&app, &browser, &AuthRequest::new(&client), &user).await;
    let resp = app.post_second_step_in(&browser, &step, &recovery[0]).await;
    assert_eq!(
        expect_second_step_page(resp).await.status,
        StatusCode::UNAUTHORIZED,
        "a spent recovery code is refused"
    );
}

#[tokio::test]
async fn the_second_step_without_a_pending_step_is_refused() {
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("erp")).await;
    let (phone, _) = app.enrol_authenticator(&user).await;
    let page = expect_sign_in_page(app.authorize(&AuthRequest::new(&client)).await).await;
    let step = SecondStepPage {
        status: StatusCode::OK,
        csrf_token: page.csrf_token,
        html: String::new(),
    };
    let resp = app.post_second_step(&step, &phone.code(0)).await;
    assert_eq!(set_cookie(&resp, SESSION_COOKIE), None);
    let html = expect_error_page(resp, StatusCode::BAD_REQUEST).await;
    assert!(html.contains("took too long"), "{html}");
    assert!(!app.is_signed_in_in(&app.client, &client).await);
}

#[tokio::test]
async fn another_browsers_pending_step_cannot_be_answered_from_this_one() {
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("erp")).await;
    let (phone, _) = app.enrol_authenticator(&user).await;
    with_time_in_the_step().await;
    let request = AuthRequest::new(&client);
    let step = password_step_in(&app, &app.client, &request, &user).await;

    // Another browser, with its own CSRF pair and a handle of its own making.
    let intruder = app.new_browser();
    let page = expect_sign_in_page(app.authorize_in(&intruder, &request).await).await;
    let theirs = SecondStepPage {
        status: StatusCode::OK,
        csrf_token: page.csrf_token,
        html: String::new(),
    };
    let resp = app
        .post_second_step_in(&intruder, &theirs, &phone.code(0))
        .await;
    expect_error_page(resp, StatusCode::BAD_REQUEST).await;
    let resp = intruder
        .post(app.url("/login/second-step"))
        .header("cookie", format!("{HANDLE_COOKIE}=forged-handle"))
        .form(&[
            ("csrf_token", theirs.csrf_token.as_str()),
            ("code", &phone.code(0)),
        ])
        .send()
        .await
        .expect("POST /login/second-step");
    assert_ne!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(set_cookie(&resp, SESSION_COOKIE), None);

    // The rightful browser's step was not spent.
    let resp = app.post_second_step(&step, &phone.code(0)).await;
    expect_callback(&resp, &request.redirect_uri()).code();
}

#[tokio::test]
async fn a_completed_second_step_cannot_be_replayed() {
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("erp")).await;
    let (phone, recovery) = app.enrol_authenticator(&user).await;
    with_time_in_the_step().await;
    let request = AuthRequest::new(&client);
    let resp = app.authorize(&request).await;
    let csrf = set_cookie(&resp, CSRF_COOKIE).expect("a CSRF cookie");
    let page = expect_sign_in_page(resp).await;
    let resp = app.post_login(&page, &user.email, &user.password).await;
    let handle = set_cookie(&resp, HANDLE_COOKIE).expect("a handle");
    let step = expect_second_step_page(resp).await;
    let resp = app.post_second_step(&step, &phone.code(0)).await;
    expect_callback(&resp, &request.redirect_uri()).code();
    assert_eq!(
        set_cookie(&resp, HANDLE_COOKIE).as_deref(),
        Some(""),
        "the handle's cookie is cleared"
    );

    // The same form, cookies and all, sent again (with a code that would still be good).
    let replay = app
        .backchannel
        .post(app.url("/login/second-step"))
        .header(
            "cookie",
            format!("{CSRF_COOKIE}={csrf}; {HANDLE_COOKIE}={handle}"),
        )
        .form(&[
            ("csrf_token", step.csrf_token.as_str()),
            ("code", &recovery[0]),
        ])
        .send()
        .await
        .expect("POST /login/second-step");
    assert_eq!(set_cookie(&replay, SESSION_COOKIE), None);
    let html = expect_error_page(replay, StatusCode::BAD_REQUEST).await;
    assert!(html.contains("took too long"), "{html}");
}

#[tokio::test]
async fn a_code_from_one_users_app_does_not_answer_another_users_step() {
    let app = spawn_app().await;
    let client = app.add_client(ClientSpec::first_party("erp")).await;
    let ada = app.add_user("ada@example.test").await;
    let bob = app.add_user("bob@example.test").await;
    let (adas_phone, adas_recovery) = app.enrol_authenticator(&ada).await;
    app.enrol_authenticator(&bob).await;
    with_time_in_the_step().await;
    let step = password_step_in(&app, &app.client, &AuthRequest::new(&client), &bob).await;
    for code in [adas_phone.code(0), adas_recovery[0].clone()] {
        let resp = app.post_second_step(&step, &code).await;
        assert_eq!(
            expect_second_step_page(resp).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn the_sign_in_and_consent_forms_do_not_pass_for_the_second_step_nor_it_for_them() {
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("erp")).await;
    let (phone, _) = app.enrol_authenticator(&user).await;
    with_time_in_the_step().await;
    let request = AuthRequest::new(&client);
    let sign_in = expect_sign_in_page(app.authorize(&request).await).await;
    let resp = app.post_login(&sign_in, &user.email, &user.password).await;
    let step = expect_second_step_page(resp).await;

    // The sign-in form's fields, and the consent form's, posted to the second step.
    for form in [
        vec![
            ("csrf_token", step.csrf_token.as_str()),
            ("request", sign_in.request.as_str()),
            ("email", user.email.as_str()),
            ("password", user.password.as_str()),
        ],
        vec![
            ("csrf_token", step.csrf_token.as_str()),
            ("request", sign_in.request.as_str()),
            ("decision", "allow"),
        ],
    ] {
        let resp = app
            .client
            .post(app.url("/login/second-step"))
            .form(&form)
            .send()
            .await
            .expect("POST /login/second-step");
        assert_eq!(set_cookie(&resp, SESSION_COOKIE), None);
        assert_eq!(
            expect_second_step_page(resp).await.status,
            StatusCode::UNAUTHORIZED
        );
    }

    // The second step's fields posted to the sign-in and to the consent endpoints.
    let code = phone.code(0);
    let form = [
        ("csrf_token", step.csrf_token.as_str()),
        ("code", code.as_str()),
    ];
    let resp = app
        .client
        .post(app.url("/login"))
        .form(&form)
        .send()
        .await
        .expect("POST /login");
    assert_eq!(set_cookie(&resp, SESSION_COOKIE), None);
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = app
        .client
        .post(app.url("/consent"))
        .form(&form)
        .send()
        .await
        .expect("POST /consent");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // The pending step is still there for the right code.
    let resp = app.post_second_step(&step, &code).await;
    expect_callback(&resp, &request.redirect_uri()).code();
}

#[tokio::test]
async fn an_authenticator_code_is_accepted_once() {
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("erp")).await;
    let (phone, _) = app.enrol_authenticator(&user).await;
    with_time_in_the_step().await;
    let code = phone.code(0);
    let step = password_step_in(&app, &app.client, &AuthRequest::new(&client), &user).await;
    let resp = app.post_second_step(&step, &code).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);

    let browser = app.new_browser();
    let request = AuthRequest::new(&client);
    let step = password_step_in(&app, &browser, &request, &user).await;
    let resp = app.post_second_step_in(&browser, &step, &code).await;
    let step = expect_second_step_page(resp).await;
    assert_eq!(
        step.status,
        StatusCode::UNAUTHORIZED,
        "a replayed code fails"
    );
    let resp = app
        .post_second_step_in(&browser, &step, &phone.code(1))
        .await;
    expect_callback(&resp, &request.redirect_uri()).code();
}

#[tokio::test]
async fn codes_one_step_either_side_are_accepted_and_two_steps_away_refused() {
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("erp")).await;
    let (phone, _) = app.enrol_authenticator(&user).await;
    with_time_in_the_step().await;
    let t = now();

    let request = AuthRequest::new(&client);
    let mut step = password_step_in(&app, &app.client, &request, &user).await;
    for (steps, name) in [(-2, "two steps behind"), (2, "two steps ahead")] {
        let resp = app
            .post_second_step(&step, &phone.code_at(t + steps * 30))
            .await;
        step = expect_second_step_page(resp).await;
        assert_eq!(step.status, StatusCode::UNAUTHORIZED, "{name}");
    }
    let resp = app.post_second_step(&step, &phone.code_at(t - 30)).await;
    expect_callback(&resp, &request.redirect_uri()).code();

    // One step ahead (later than the step just used, so not a replay).
    let browser = app.new_browser();
    let request = AuthRequest::new(&client);
    let step = password_step_in(&app, &browser, &request, &user).await;
    let resp = app
        .post_second_step_in(&browser, &step, &phone.code_at(t + 30))
        .await;
    expect_callback(&resp, &request.redirect_uri()).code();
}

#[tokio::test]
async fn wrong_codes_lock_the_second_step_but_neither_the_owners_password_step_nor_other_users() {
    let app = spawn_app().await;
    let client = app.add_client(ClientSpec::first_party("erp")).await;
    let ada = app.add_user("ada@example.test").await;
    let bob = app.add_user("bob@example.test").await;
    let (adas_phone, _) = app.enrol_authenticator(&ada).await;
    let (bobs_phone, _) = app.enrol_authenticator(&bob).await;
    with_time_in_the_step().await;

    // Ada's own browser signed in before: it holds her device cookie.
    let step = password_step_in(&app, &app.client, &AuthRequest::new(&client), &ada).await;
    let resp = app.post_second_step(&step, &adas_phone.code(-1)).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);

    // Someone who knows her password guesses codes, from the same address.
    let thief = app.new_browser();
    let mut step = password_step_in(&app, &thief, &AuthRequest::new(&client), &ada).await;
    let wrong = if adas_phone.code(0) == "111111" {
        "222222"
    } else {
        "111111"
    };
    for _ in 0..5 {
        let resp = app.post_second_step_in(&thief, &step, wrong).await;
        step = expect_second_step_page(resp).await;
        assert_eq!(step.status, StatusCode::UNAUTHORIZED);
    }
    let resp = app
        .post_second_step_in(&thief, &step, &adas_phone.code(0))
        .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().get("retry-after").is_some());
    assert_eq!(set_cookie(&resp, SESSION_COOKIE), None);

    // Ada's password step on her trusted device still goes through (to the second step).
    let request = AuthRequest::new(&client).with("prompt", "login");
    let step = password_step_in(&app, &app.client, &request, &ada).await;
    assert_eq!(step.status, StatusCode::OK);

    // Bob, from the same address, signs in with both steps.
    let browser = app.new_browser();
    let request = AuthRequest::new(&client);
    let step = password_step_in(&app, &browser, &request, &bob).await;
    let resp = app
        .post_second_step_in(&browser, &step, &bobs_phone.code(0))
        .await;
    expect_callback(&resp, &request.redirect_uri()).code();
}

#[tokio::test]
async fn a_password_only_session_steps_up_for_acr_values_2_and_its_cookie_is_replaced() {
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("erp")).await;
    let request = AuthRequest::new(&client);
    let page = expect_sign_in_page(app.authorize(&request).await).await;
    let resp = app.post_login(&page, &user.email, &user.password).await;
    let old_cookie = set_cookie(&resp, SESSION_COOKIE).expect("a session");
    let (id, _) = claims_after(&app, &client, &request, &resp).await;
    assert_eq!(id["acr"], "1");
    let sid = id["sid"].clone();

    let (phone, _) = app.enrol_authenticator(&user).await;
    with_time_in_the_step().await;
    let request = AuthRequest::new(&client).with("acr_values", "2");
    let resp = app.authorize(&request).await;
    let step = expect_second_step_page(resp).await;
    assert_eq!(
        step.status,
        StatusCode::OK,
        "the session is asked for a code"
    );
    let resp = app.post_second_step(&step, &phone.code(0)).await;
    let new_cookie = set_cookie(&resp, SESSION_COOKIE).expect("a new session cookie");
    assert_ne!(new_cookie, old_cookie);
    let (id, access) = claims_after(&app, &client, &request, &resp).await;
    assert_eq!(id["acr"], "2");
    assert_eq!(access["acr"], "2");
    assert_eq!(amr(&id), ["pwd", "otp", "mfa"]);
    assert_eq!(id["sid"], sid, "the same session, raised");

    // The cookie from before the step-up no longer signs anyone in.
    let silent = AuthRequest::new(&client).with("prompt", "none");
    let resp = app
        .backchannel
        .get(app.url(&format!("/authorize?{}", silent.query())))
        .header("cookie", format!("{SESSION_COOKIE}={old_cookie}"))
        .send()
        .await
        .expect("GET /authorize");
    expect_error_callback(&app, &resp, &silent, "login_required");
}

#[tokio::test]
async fn prompt_none_on_a_session_below_the_requested_level_is_login_required() {
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("erp")).await;
    app.obtain_code(&AuthRequest::new(&client), &user).await;
    let request = AuthRequest::new(&client)
        .with("acr_values", "2")
        .with("prompt", "none");
    let resp = app.authorize(&request).await;
    expect_error_callback(&app, &resp, &request, "login_required");
}

#[tokio::test]
async fn prompt_login_and_max_age_ask_for_the_password_and_the_code_again() {
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("erp")).await;
    let (phone, _) = app.enrol_authenticator(&user).await;
    with_time_in_the_step().await;
    let step = password_step_in(&app, &app.client, &AuthRequest::new(&client), &user).await;
    let resp = app.post_second_step(&step, &phone.code(-1)).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);

    let request = AuthRequest::new(&client).with("prompt", "login");
    let step = password_step_in(&app, &app.client, &request, &user).await;
    let resp = app.post_second_step(&step, &phone.code(0)).await;
    expect_callback(&resp, &request.redirect_uri()).code();

    tokio::time::sleep(Duration::from_millis(1100)).await;
    with_time_in_the_step().await;
    let request = AuthRequest::new(&client).with("max_age", "0");
    let step = password_step_in(&app, &app.client, &request, &user).await;
    let resp = app.post_second_step(&step, &phone.code(1)).await;
    expect_callback(&resp, &request.redirect_uri()).code();
}

#[tokio::test]
async fn who_must_use_a_second_factor_and_has_none_is_led_to_set_one_up_and_gets_no_code() {
    let app = spawn_app().await;
    let open = app.add_client(ClientSpec::first_party("erp")).await;
    let strict = app
        .add_client(ClientSpec::first_party("payroll").require_mfa())
        .await;
    let admin = app
        .add_user_with("root@example.test", None, &["admin"])
        .await;
    let clerk = app.add_user("clerk@example.test").await;

    for (who, client, request) in [
        (&admin, &open, AuthRequest::new(&open)),
        (&clerk, &strict, AuthRequest::new(&strict)),
        (
            &clerk,
            &open,
            AuthRequest::new(&open).with("acr_values", "2"),
        ),
    ] {
        let browser = app.new_browser();
        let page = expect_sign_in_page(app.authorize_in(&browser, &request).await).await;
        let resp = app
            .post_login_in(&browser, &page, &who.email, &who.password)
            .await;
        let to = expect_see_other(&resp);
        assert_eq!(to.path(), "/account/security", "{}", client.id);
        let page = browser.get(to).send().await.expect("GET the security page");
        assert_eq!(
            page.status(),
            StatusCode::OK,
            "signed in, it shows the security page"
        );
        let html = page.text().await.expect("the security page");
        assert!(
            html.contains("/account/security/totp"),
            "it offers an app: {html}"
        );

        // Signed in with the password, but no code for this request until a factor is set up.
        let resp = app.authorize_in(&browser, &request).await;
        assert_eq!(expect_see_other(&resp).path(), "/account/security");
    }

    // Once the admin has an authenticator app, the same request asks for its code.
    let (phone, _) = app.enrol_authenticator(&admin).await;
    with_time_in_the_step().await;
    let request = AuthRequest::new(&open);
    let step = password_step_in(&app, &app.client, &request, &admin).await;
    let resp = app.post_second_step(&step, &phone.code(0)).await;
    let (id, _) = claims_after(&app, &open, &request, &resp).await;
    assert_eq!(id["acr"], "2");
}

#[tokio::test]
async fn login_hint_fills_in_the_email_whether_or_not_an_account_has_it() {
    let app = spawn_app().await;
    app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("erp")).await;
    let mut pages = Vec::new();
    for hint in ["ada@example.test", "nobody@example.test"] {
        let request = AuthRequest::new(&client).with("login_hint", hint);
        let page = expect_sign_in_page(app.authorize(&request).await).await;
        assert_eq!(input_value(&page.html, "email").as_deref(), Some(hint));
        pages.push(
            page.html
                .replace(&page.csrf_token, "")
                .replace(&page.request, "")
                .replace(hint, ""),
        );
    }
    assert_eq!(pages[0], pages[1], "the same page for both");
}

#[tokio::test]
async fn signing_out_everywhere_or_a_new_password_ends_a_pending_second_step() {
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("erp")).await;
    let (phone, recovery) = app.enrol_authenticator(&user).await;
    with_time_in_the_step().await;
    let request = AuthRequest::new(&client);

    // Someone with the password waits at the second step; the owner signs out everywhere.
    let step = password_step_in(&app, &app.client, &request, &user).await;
    app.cli_revoke_all_sessions(&user.email).await;
    let resp = app.post_second_step(&step, &phone.code(0)).await;
    assert_eq!(set_cookie(&resp, SESSION_COOKIE), None, "no session");
    let html = expect_error_page(resp, StatusCode::BAD_REQUEST).await;
    assert!(html.contains("took too long"), "{html}");

    // Again, and the owner sets a new password.
    let other = app.new_browser();
    let step = password_step_in(&app, &other, &request, &user).await;
    app.set_password(&user.email, "a-completely-new-passphrase-42")
        .await;
    let resp = app.post_second_step_in(&other, &step, &recovery[0]).await;
    assert_eq!(set_cookie(&resp, SESSION_COOKIE), None, "no session");
    let html = expect_error_page(resp, StatusCode::BAD_REQUEST).await;
    assert!(html.contains("took too long"), "{html}");
}

#[tokio::test]
async fn a_step_up_offers_the_security_key_of_a_user_who_has_one() {
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("erp")).await;
    let request = AuthRequest::new(&client);
    let page = expect_sign_in_page(app.authorize(&request).await).await;
    let resp = app.post_login(&page, &user.email, &user.password).await;
    set_cookie(&resp, SESSION_COOKIE).expect("a password-only session");
    // A security key is the user's only factor (no app, so no recovery codes either).
    app.execute_sql(&format!(
        "INSERT INTO mfa_factors (id, user_id, kind, name, created_at, credential) \
         VALUES ('key-1', '{}', 'webauthn', 'YubiKey', 0, '{{}}')",
        user.id
    ))
    .await;

    let request = AuthRequest::new(&client).with("acr_values", "2");
    let step = expect_second_step_page(app.authorize(&request).await).await;
    assert_eq!(step.status, StatusCode::OK);
    assert!(
        step.html.contains("id=\"security-key\""),
        "the step-up offers the key: {}",
        step.html
    );
}

#[tokio::test]
async fn a_user_disabled_while_at_the_second_step_is_not_signed_in_by_the_code() {
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("erp")).await;
    let (phone, _) = app.enrol_authenticator(&user).await;
    with_time_in_the_step().await;
    let request = AuthRequest::new(&client);
    let step = password_step_in(&app, &app.client, &request, &user).await;
    app.disable_user(&user.email).await;
    let resp = app.post_second_step(&step, &phone.code(0)).await;
    assert_eq!(set_cookie(&resp, SESSION_COOKIE), None, "no session");
    expect_error_page(resp, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn step_ups_begun_in_bulk_from_one_address_get_429() {
    // Each step-up stores a pending step: a limit per address, as for passkey ceremonies.
    let app = spawn_app_with(|c| {
        c.env("TESSERA_SIGNIN_RATE_LIMIT", "3");
    })
    .await;
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("erp")).await;
    let page = expect_sign_in_page(app.authorize(&AuthRequest::new(&client)).await).await;
    let resp = app.post_login(&page, &user.email, &user.password).await;
    set_cookie(&resp, SESSION_COOKIE).expect("a password-only session");
    app.enrol_authenticator(&user).await;
    let request = AuthRequest::new(&client).with("acr_values", "2");
    for _ in 0..3 {
        let step = expect_second_step_page(app.authorize(&request).await).await;
        assert_eq!(step.status, StatusCode::OK);
    }
    let resp = app.authorize(&request).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().get("retry-after").is_some());
    assert_eq!(set_cookie(&resp, HANDLE_COOKIE), None, "no step was begun");
}
