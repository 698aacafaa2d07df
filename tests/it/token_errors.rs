//! How /token refuses what it must refuse, in RFC 6749 JSON and never with a 500.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

/// A signed-in user, a first-party confidential client, and a fresh code for it.
async fn a_fresh_code(app: &TestApp) -> (RegisteredClient, AuthRequest, String) {
    let user = app.add_user("ada@example.test").await;
    let client = app
        .add_client(
            ClientSpec::first_party("webapp")
                .redirect_uri("https://webapp.example.test/other-callback"),
        )
        .await;
    let request = AuthRequest::new(&client);
    let code = app.sign_in(&request, &user).await.code();
    (client, request, code)
}

/// A 4xx answer in JSON with an `error` code: how malformed input must be refused.
async fn expect_json_client_error(resp: reqwest::Response) -> Value {
    let status = resp.status();
    let content_type = header_str(resp.headers(), "content-type")
        .unwrap_or("")
        .to_owned();
    let body = resp.text().await.expect("read the body");
    assert!(
        status.is_client_error(),
        "expected a 4xx, got {status}: {body}"
    );
    assert!(
        content_type.starts_with("application/json"),
        "expected JSON, got {content_type:?}: {body}"
    );
    let json: Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("invalid JSON ({e}): {body}"));
    assert!(json["error"].is_string(), "an RFC 6749 error: {json}");
    json
}

#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_the_tokens_it_issued() {
    let app = spawn_app().await;
    let (client, request, code) = a_fresh_code(&app).await;
    let tokens = app.exchange_code(&client, &request, &code).await;
    assert!(app.is_active(&client.auth(), &tokens.access_token).await);

    let replay = app.redeem_code(&client.auth(), &request, &code).await;
    expect_oauth_error(replay, StatusCode::BAD_REQUEST, "invalid_grant").await;

    let refresh = app.refresh(&client.auth(), tokens.refresh_token()).await;
    expect_oauth_error(refresh, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert!(
        !app.is_active(&client.auth(), tokens.refresh_token()).await,
        "the refresh token is revoked"
    );
    assert!(
        !app.is_active(&client.auth(), &tokens.access_token).await,
        "the access token is revoked"
    );
    assert_eq!(
        app.userinfo(&tokens.access_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn two_simultaneous_redemptions_of_one_code_succeed_at_most_once() {
    let app = spawn_app().await;
    let (client, request, code) = a_fresh_code(&app).await;

    let auth = client.auth();
    let (first, second) = tokio::join!(
        app.redeem_code(&auth, &request, &code),
        app.redeem_code(&auth, &request, &code),
    );

    let statuses = [first.status(), second.status()];
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "exactly one redemption wins: {statuses:?}"
    );
    let loser = if first.status() == StatusCode::OK {
        second
    } else {
        first
    };
    expect_oauth_error(loser, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

/// One code fired many times at once: at most one use wins, and once a replay has been answered,
/// nothing the winner issued is alive (RFC 6749 §4.1.2). A replay that arrived while the winner
/// was still issuing its tokens used to find no refresh token to revoke yet, and the one inserted
/// after it stayed valid.
#[tokio::test]
async fn a_code_fired_many_times_at_once_leaves_none_of_its_tokens_alive() {
    let app = std::sync::Arc::new(spawn_app().await);
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;
    for round in 0..6 {
        let request = AuthRequest::new(&client);
        let code = app.obtain_code(&request, &user).await;
        let mut redemptions = tokio::task::JoinSet::new();
        // Some at once, the rest spread over the next milliseconds, while the winner issues.
        for i in 0..12_u64 {
            let (app, auth, request, code) =
                (app.clone(), client.auth(), request.clone(), code.clone());
            redemptions.spawn(async move {
                tokio::time::sleep(Duration::from_micros(i.saturating_sub(3) * 700)).await;
                app.redeem_code(&auth, &request, &code).await
            });
        }
        let mut issued = Vec::new();
        while let Some(answer) = redemptions.join_next().await {
            let answer = answer.expect("the redemption task finishes");
            if answer.status() == StatusCode::OK {
                issued.push(expect_tokens(answer).await);
            } else {
                expect_oauth_error(answer, StatusCode::BAD_REQUEST, "invalid_grant").await;
            }
        }
        assert!(
            issued.len() <= 1,
            "round {round}: at most one redemption wins"
        );
        for tokens in &issued {
            app.assert_refresh_refused(
                &client,
                tokens.refresh_token(),
                &format!("round {round}: the refresh token of a replayed code"),
            )
            .await;
            app.assert_inactive(
                &client,
                &tokens.access_token,
                &format!("round {round}: the access token of a replayed code"),
            )
            .await;
        }
    }
}

#[tokio::test]
async fn a_wrong_code_verifier_is_refused_with_invalid_grant() {
    let app = spawn_app().await;
    let (client, request, code) = a_fresh_code(&app).await;
    let mut impostor = request.clone();
    impostor.verifier = AuthRequest::new(&client).verifier;

    let resp = app.redeem_code(&client.auth(), &impostor, &code).await;

    expect_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn a_code_redeemed_without_its_code_verifier_is_refused() {
    let app = spawn_app().await;
    let (client, request, code) = a_fresh_code(&app).await;
    let redirect_uri = request.redirect_uri();

    let resp = app
        .token(
            &client.auth(),
            &[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", redirect_uri.as_str()),
            ],
        )
        .await;

    let body = expect_json(resp, StatusCode::BAD_REQUEST).await;
    assert!(
        body["error"] == "invalid_grant" || body["error"] == "invalid_request",
        "a code bound to a PKCE challenge needs its verifier: {body}"
    );
}

#[tokio::test]
async fn a_code_redeemed_with_another_redirect_uri_is_refused_with_invalid_grant() {
    let app = spawn_app().await;
    let (client, request, code) = a_fresh_code(&app).await;
    let elsewhere = request
        .clone()
        .with("redirect_uri", "https://webapp.example.test/other-callback");

    let resp = app.redeem_code(&client.auth(), &elsewhere, &code).await;

    expect_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn a_code_issued_to_another_client_is_refused_with_invalid_grant() {
    let app = spawn_app().await;
    let (_client, request, code) = a_fresh_code(&app).await;
    let thief = app
        .add_client(
            ClientSpec::first_party("thief").redirect_uri("https://webapp.example.test/callback"),
        )
        .await;

    let resp = app.redeem_code(&thief.auth(), &request, &code).await;

    expect_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn an_expired_code_is_refused_with_invalid_grant() {
    let app = spawn_app_with(|c| {
        c.env("TESSERA_AUTH_CODE_TTL", "1s");
    })
    .await;
    let (client, request, code) = a_fresh_code(&app).await;

    // Whole seconds: 1.1 s after issue the clock has reached the code's end (the edges are
    // engine tests: `oauth::engine_tests::codes`).
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let resp = app.redeem_code(&client.auth(), &request, &code).await;

    let body = expect_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("expired")),
        "{body}"
    );
}

#[tokio::test]
async fn an_unknown_code_is_refused_with_invalid_grant() {
    let app = spawn_app().await;
    let (client, request, _code) = a_fresh_code(&app).await;

    let resp = app
        .redeem_code(&client.auth(), &request, "no-such-code")
        .await;

    expect_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn a_confidential_client_redeeming_a_code_without_its_secret_is_refused_with_invalid_client()
{
    let app = spawn_app().await;
    let (client, request, code) = a_fresh_code(&app).await;

    let resp = app
        .redeem_code(
            &ClientAuth::Public {
                id: client.id.clone(),
            },
            &request,
            &code,
        )
        .await;
    expect_oauth_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;

    let resp = app
        .redeem_code(&client.wrong_secret_auth(), &request, &code)
        .await;
    expect_oauth_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

#[tokio::test]
async fn an_unsupported_grant_type_is_refused_with_unsupported_grant_type() {
    let app = spawn_app().await;
    let client = app
        .add_client(ClientSpec::service("billing").scope("api.read"))
        .await;

    for grant_type in [
        "password",
        "implicit",
        "urn:ietf:params:oauth:grant-type:device_code",
    ] {
        let resp = app
            .token(
                &client.auth(),
                &[
                    ("grant_type", grant_type),
                    ("username", "ada"),
                    ("password", "x"),
                ],
            )
            .await;
        expect_oauth_error(resp, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
    }
}

#[tokio::test]
async fn a_token_request_without_a_grant_type_is_refused_with_invalid_request() {
    let app = spawn_app().await;
    let client = app
        .add_client(ClientSpec::service("billing").scope("api.read"))
        .await;

    let resp = app.token(&client.auth(), &[("scope", "api.read")]).await;

    expect_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn an_oversized_token_request_gets_a_json_client_error_and_the_server_carries_on() {
    let app = spawn_app().await;
    let client = app
        .add_client(ClientSpec::service("billing").scope("api.read"))
        .await;
    let body = format!(
        "grant_type=client_credentials&scope={}",
        "a".repeat(80 * 1024)
    );

    let resp = app
        .backchannel
        .post(app.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "authorization",
            basic_authorization(&client.id, client.secret.as_deref().unwrap()),
        )
        .body(body)
        .send()
        .await
        .expect("the server answers an oversized body");
    expect_json_client_error(resp).await;

    let resp = app
        .client_credentials(&client.auth(), &[("scope", "api.read")])
        .await;
    expect_tokens(resp).await;
}

#[tokio::test]
async fn a_token_request_that_is_not_utf8_gets_a_json_client_error() {
    let app = spawn_app().await;
    let client = app
        .add_client(ClientSpec::service("billing").scope("api.read"))
        .await;

    let raw: &[u8] = b"grant_type=client_credentials&scope=api.read\xff\xfe";
    let percent_encoded: &[u8] = b"grant_type=client_credentials&scope=api.read%FF%FE";
    for body in [raw, percent_encoded] {
        let resp = app
            .backchannel
            .post(app.url("/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header(
                "authorization",
                basic_authorization(&client.id, client.secret.as_deref().unwrap()),
            )
            .body(body.to_vec())
            .send()
            .await
            .expect("the server answers");
        expect_json_client_error(resp).await;
    }
}
