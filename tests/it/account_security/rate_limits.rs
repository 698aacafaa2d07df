//! Rate limits: sign-in posts per address, wrong client secrets per address, token requests per
//! client, each answered with 429 and Retry-After.

use super::*;

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
