//! Refresh tokens: rotation, the reuse grace window, reuse detection, client
//! binding, lifetimes — and access tokens that expire.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::*;

async fn signed_in(app: &TestApp) -> (RegisteredClient, TestUser, TokenResponse) {
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;
    let tokens = app.tokens_for(&client, &user).await;
    (client, user, tokens)
}

#[tokio::test]
async fn a_refresh_issues_a_new_access_token_and_rotates_the_refresh_token() {
    let app = spawn_app().await;
    let (client, user, first) = signed_in(&app).await;

    let second = expect_tokens(app.refresh(&client.auth(), first.refresh_token()).await).await;
    assert_ne!(
        second.refresh_token(),
        first.refresh_token(),
        "the refresh token rotates"
    );
    assert_ne!(second.access_token, first.access_token);
    assert_eq!(second.scopes(), first.scopes(), "the scope carries over");

    let before = jwt_claims(&first.access_token);
    let after = app
        .verify_jwt(&second.access_token, &app.issuer)
        .await
        .expect("the new access token verifies");
    assert_eq!(after["sub"], user.id.as_str());
    assert_eq!(after["sid"], before["sid"], "the same session");
    assert_ne!(after["jti"], before["jti"]);
    assert_eq!(
        app.userinfo(&second.access_token).await.status(),
        StatusCode::OK
    );

    let third = expect_tokens(app.refresh(&client.auth(), second.refresh_token()).await).await;
    assert_ne!(third.refresh_token(), second.refresh_token());
}

#[tokio::test]
async fn a_just_rotated_refresh_token_presented_again_within_the_grace_window_gets_the_same_successor()
 {
    let app = spawn_app().await;
    let (client, _user, first) = signed_in(&app).await;

    let second = expect_tokens(app.refresh(&client.auth(), first.refresh_token()).await).await;
    let retried = expect_tokens(app.refresh(&client.auth(), first.refresh_token()).await).await;

    assert_eq!(
        retried.refresh_token(),
        second.refresh_token(),
        "a retry after a lost response gets the same successor, not a fork"
    );
    let third = expect_tokens(app.refresh(&client.auth(), second.refresh_token()).await).await;
    assert_ne!(third.refresh_token(), second.refresh_token());
}

/// The window's edges (its last second, the one after) are engine tests
/// (`oauth::engine_tests::refresh`); this is the rule end to end.
#[tokio::test]
async fn a_rotated_refresh_token_replayed_after_the_grace_window_revokes_the_whole_family() {
    let app = spawn_app_with(|c| {
        c.env("TESSERA_REFRESH_REUSE_GRACE", "0s");
    })
    .await;
    let (client, _user, first) = signed_in(&app).await;
    let second = expect_tokens(app.refresh(&client.auth(), first.refresh_token()).await).await;

    // Whole seconds: 1.1 s later the clock has passed the rotation's second.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let replay = app.refresh(&client.auth(), first.refresh_token()).await;
    expect_oauth_error(replay, StatusCode::BAD_REQUEST, "invalid_grant").await;

    let newest = app.refresh(&client.auth(), second.refresh_token()).await;
    expect_oauth_error(newest, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert!(
        !app.is_active(&client.auth(), second.refresh_token()).await,
        "the newest token is revoked too"
    );
}

#[tokio::test]
async fn a_refresh_token_presented_by_another_client_is_refused() {
    let app = spawn_app().await;
    let (_client, _user, tokens) = signed_in(&app).await;
    let other = app.add_client(ClientSpec::first_party("other-app")).await;

    let resp = app.refresh(&other.auth(), tokens.refresh_token()).await;

    expect_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn a_refresh_may_narrow_the_scope_but_never_widen_it() {
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;
    let request = AuthRequest::new(&client).with("scope", "openid email offline_access");
    let tokens = app.tokens_for_request(&client, &request, &user).await;

    let widened = app
        .token(
            &client.auth(),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens.refresh_token()),
                ("scope", "openid email profile"),
            ],
        )
        .await;
    expect_oauth_error(widened, StatusCode::BAD_REQUEST, "invalid_scope").await;

    let narrowed = app
        .token(
            &client.auth(),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens.refresh_token()),
                ("scope", "openid"),
            ],
        )
        .await;
    let narrowed = expect_tokens(narrowed).await;
    assert_eq!(narrowed.scopes(), scope_set("openid"));
    let info = expect_json(app.userinfo(&narrowed.access_token).await, StatusCode::OK).await;
    assert!(
        info.get("email").is_none(),
        "the narrowed token no longer reads the email: {info}"
    );
}

/// Edges, and how each refresh moves the limit: `oauth::engine_tests::refresh`.
#[tokio::test]
async fn a_refresh_token_left_unused_past_its_idle_lifetime_is_refused() {
    let app = spawn_app_with(|c| {
        c.env("TESSERA_REFRESH_IDLE_TTL", "1s");
    })
    .await;
    let (client, _user, tokens) = signed_in(&app).await;

    // Whole seconds: 1.1 s after issue the clock has reached the idle limit.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let resp = app.refresh(&client.auth(), tokens.refresh_token()).await;

    let body = expect_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("inactivity")),
        "{body}"
    );
}

/// A family in use until its last second, and its edges: `oauth::engine_tests::refresh`.
#[tokio::test]
async fn a_refresh_token_family_ends_at_its_absolute_lifetime() {
    let app = spawn_app_with(|c| {
        // The idle limit may not exceed the absolute one; at the same instant the absolute
        // limit is the one reported.
        c.env("TESSERA_REFRESH_IDLE_TTL", "1s")
            .env("TESSERA_REFRESH_ABSOLUTE_TTL", "1s");
    })
    .await;
    let (client, _user, tokens) = signed_in(&app).await;

    // Whole seconds: 1.1 s after issue the clock has reached the family's end.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let resp = app.refresh(&client.auth(), tokens.refresh_token()).await;

    let body = expect_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("maximum lifetime")),
        "{body}"
    );
}

#[tokio::test]
async fn an_expired_access_token_is_refused_and_a_refresh_gets_a_working_one() {
    let app = spawn_app_with(|c| {
        c.env("TESSERA_ACCESS_TOKEN_TTL", "2s");
    })
    .await;
    let (client, _user, tokens) = signed_in(&app).await;
    assert_eq!(tokens.expires_in, 2);
    let claims = jwt_claims(&tokens.access_token);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        2
    );

    // Whole seconds: 2.1 s after issue the clock has reached `exp` (edges, and the
    // verified-token cache: `oauth::engine_tests::tokens`).
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let resp = app.userinfo(&tokens.access_token).await;
    assert_eq!(
        resp.status(),
        StatusCode::UNAUTHORIZED,
        "an expired access token is refused"
    );
    let challenge = header_str(resp.headers(), "www-authenticate")
        .unwrap_or("")
        .to_owned();
    assert!(
        challenge.contains("error=\"invalid_token\""),
        "WWW-Authenticate is {challenge:?}"
    );
    assert!(
        !app.is_active(&client.auth(), &tokens.access_token).await,
        "an expired token is inactive"
    );

    let fresh = expect_tokens(app.refresh(&client.auth(), tokens.refresh_token()).await).await;
    assert_eq!(
        app.userinfo(&fresh.access_token).await.status(),
        StatusCode::OK
    );
}

/// DESIGN.md: within the grace window a rotated token gets its successor back only "as long as the
/// successor is still the current token". A token two rotations old (A -> B -> C, then A) is
/// therefore reuse even seconds later: the family and its session end, C included.
#[tokio::test]
async fn a_refresh_token_two_rotations_old_is_reuse_even_within_the_grace_window() {
    let app = spawn_app_with(|c| {
        c.env("TESSERA_REFRESH_REUSE_GRACE", "1h");
    })
    .await;
    let (client, _user, a) = signed_in(&app).await;
    let b = expect_tokens(app.refresh(&client.auth(), a.refresh_token()).await).await;
    let c = expect_tokens(app.refresh(&client.auth(), b.refresh_token()).await).await;

    app.assert_refresh_refused(&client, a.refresh_token(), "A, two rotations old")
        .await;

    app.assert_refresh_refused(&client, c.refresh_token(), "C, the newest of the family")
        .await;
    app.assert_refresh_refused(&client, b.refresh_token(), "B, C's predecessor")
        .await;
    app.assert_inactive(&client, c.refresh_token(), "C").await;
    app.assert_inactive(
        &client,
        &c.access_token,
        "C's access token, its session ended",
    )
    .await;
}
