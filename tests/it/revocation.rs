//! Revocation (RFC 7009) and introspection (RFC 7662).

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

async fn signed_in(app: &TestApp) -> (RegisteredClient, TestUser, TokenResponse) {
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;
    let tokens = app.tokens_for(&client, &user).await;
    (client, user, tokens)
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_its_whole_family() {
    let app = spawn_app().await;
    let (client, _user, first) = signed_in(&app).await;
    let second = expect_tokens(app.refresh(&client.auth(), first.refresh_token()).await).await;

    let resp = app
        .revoke(
            &client.auth(),
            second.refresh_token(),
            Some("refresh_token"),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);

    let newest = app.refresh(&client.auth(), second.refresh_token()).await;
    expect_oauth_error(newest, StatusCode::BAD_REQUEST, "invalid_grant").await;
    // Within the reuse grace window the rotated token would have answered with
    // its successor; after revocation the family is gone.
    let rotated = app.refresh(&client.auth(), first.refresh_token()).await;
    expect_oauth_error(rotated, StatusCode::BAD_REQUEST, "invalid_grant").await;
    assert!(!app.is_active(&client.auth(), second.refresh_token()).await);
}

#[tokio::test]
async fn revoking_an_access_token_makes_it_inactive_and_refused_by_userinfo() {
    let app = spawn_app().await;
    let (client, _user, tokens) = signed_in(&app).await;
    assert_eq!(
        app.userinfo(&tokens.access_token).await.status(),
        StatusCode::OK
    );

    let resp = app
        .revoke(&client.auth(), &tokens.access_token, Some("access_token"))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);

    assert!(!app.is_active(&client.auth(), &tokens.access_token).await);
    assert_eq!(
        app.userinfo(&tokens.access_token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The refresh token was not what was revoked.
    expect_tokens(app.refresh(&client.auth(), tokens.refresh_token()).await).await;
}

#[tokio::test]
async fn revocation_finds_the_token_whatever_the_hint_says() {
    let app = spawn_app().await;
    let (client, _user, tokens) = signed_in(&app).await;

    // A wrong hint for the access token, no hint for the refresh token.
    let resp = app
        .revoke(&client.auth(), &tokens.access_token, Some("refresh_token"))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = app
        .revoke(&client.auth(), tokens.refresh_token(), None)
        .await;
    assert_eq!(resp.status(), StatusCode::OK);

    assert!(!app.is_active(&client.auth(), &tokens.access_token).await);
    let refresh = app.refresh(&client.auth(), tokens.refresh_token()).await;
    expect_oauth_error(refresh, StatusCode::BAD_REQUEST, "invalid_grant").await;
}

#[tokio::test]
async fn revoking_an_unknown_token_still_answers_200() {
    let app = spawn_app().await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;

    for (token, hint) in [
        ("no-such-token", None),
        ("still-no-such-token", Some("refresh_token")),
        ("a.b.c", Some("access_token")),
    ] {
        let resp = app.revoke(&client.auth(), token, hint).await;
        assert_eq!(resp.status(), StatusCode::OK, "revoking {token}");
    }
}

#[tokio::test]
async fn revocation_by_a_client_that_fails_to_authenticate_is_refused() {
    let app = spawn_app().await;
    let (client, _user, tokens) = signed_in(&app).await;

    let resp = app
        .revoke(&client.wrong_secret_auth(), tokens.refresh_token(), None)
        .await;
    expect_oauth_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;

    expect_tokens(app.refresh(&client.auth(), tokens.refresh_token()).await).await;
}

#[tokio::test]
async fn a_client_cannot_revoke_a_token_issued_to_another_client() {
    let app = spawn_app().await;
    let (client, _user, tokens) = signed_in(&app).await;
    let other = app.add_client(ClientSpec::first_party("other-app")).await;

    app.revoke(&other.auth(), &tokens.access_token, None).await;
    app.revoke(&other.auth(), tokens.refresh_token(), None)
        .await;

    assert!(
        app.is_active(&client.auth(), &tokens.access_token).await,
        "the access token is untouched"
    );
    expect_tokens(app.refresh(&client.auth(), tokens.refresh_token()).await).await;
}

#[tokio::test]
async fn introspection_requires_an_authenticated_client() {
    let app = spawn_app().await;
    let (client, _user, tokens) = signed_in(&app).await;

    for auth in [ClientAuth::Anonymous, client.wrong_secret_auth()] {
        let resp = app
            .post_as_client("/introspect", &auth, &[("token", &tokens.access_token)])
            .await;
        expect_oauth_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
}

#[tokio::test]
async fn introspection_describes_an_active_access_token() {
    let app = spawn_app().await;
    let (client, user, tokens) = signed_in(&app).await;
    let claims = jwt_claims(&tokens.access_token);

    let answer = app.introspect(&client.auth(), &tokens.access_token).await;

    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(
        scope_set(answer["scope"].as_str().expect("a scope")),
        scope_set(DEFAULT_SCOPE)
    );
    assert_eq!(answer["client_id"], client.id.as_str());
    assert_eq!(answer["sub"], user.id.as_str());
    assert_eq!(answer["iss"], app.issuer.as_str());
    assert_eq!(answer["exp"], claims["exp"]);
    assert_eq!(answer["iat"], claims["iat"]);
    assert_eq!(answer["jti"], claims["jti"]);
    assert_eq!(answer["sid"], claims["sid"]);
    assert_eq!(audiences(&answer), audiences(&claims));
    assert!(answer["token_type"].is_string(), "{answer}");
}

#[tokio::test]
async fn introspection_calls_a_live_refresh_token_active() {
    let app = spawn_app().await;
    let (client, user, tokens) = signed_in(&app).await;

    let answer = app.introspect(&client.auth(), tokens.refresh_token()).await;

    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["client_id"], client.id.as_str());
    assert_eq!(answer["sub"], user.id.as_str());
}

#[tokio::test]
async fn introspection_of_an_unknown_token_says_only_that_it_is_inactive() {
    let app = spawn_app().await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;

    for token in ["no-such-token", "a.b.c"] {
        let answer = app.introspect(&client.auth(), token).await;
        assert_eq!(
            answer,
            json!({ "active": false }),
            "introspecting {token:?}"
        );
    }
}
