//! How /authorize refuses bad requests: an error page when the client or its
//! redirect URI cannot be trusted, otherwise a redirect back with `error`,
//! `state` and `iss` — and never a sign-in page for a request that is invalid.

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn an_unknown_or_missing_client_id_gets_an_error_page_and_no_redirect() {
    let app = spawn_app().await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;

    let unknown = AuthRequest::new(&client).with("client_id", "no-such-client");
    expect_error_page(app.authorize(&unknown).await, StatusCode::BAD_REQUEST).await;

    let missing = AuthRequest::new(&client).without("client_id");
    expect_error_page(app.authorize(&missing).await, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn a_redirect_uri_that_is_not_exactly_registered_gets_an_error_page_and_no_redirect() {
    let app = spawn_app().await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;
    assert_eq!(client.redirect_uri, "https://webapp.example.test/callback");

    for redirect_uri in [
        "https://attacker.example.test/callback",
        "https://webapp.example.test/callback/more",
        "https://webapp.example.test/callback?next=/admin",
        "https://webapp.example.test/callback/",
        "http://webapp.example.test/callback",
        "https://webapp.example.test:8443/callback",
        "https://webapp.example.test.attacker.test/callback",
    ] {
        let request = AuthRequest::new(&client).with("redirect_uri", redirect_uri);
        let resp = app.authorize(&request).await;
        let status = resp.status();
        let html = expect_error_page(resp, StatusCode::BAD_REQUEST).await;
        assert!(
            !html.contains("action=\"/login\""),
            "{redirect_uri} ({status}) must not lead to a sign-in page:\n{html}"
        );
    }

    let missing = AuthRequest::new(&client).without("redirect_uri");
    expect_error_page(app.authorize(&missing).await, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn a_request_without_pkce_is_sent_back_with_invalid_request() {
    let app = spawn_app().await;
    let confidential = app.add_client(ClientSpec::first_party("webapp")).await;
    let public = app
        .add_client(ClientSpec::first_party("spa").public())
        .await;

    for client in [&confidential, &public] {
        let request = AuthRequest::new(client)
            .without("code_challenge")
            .without("code_challenge_method");
        let resp = app.authorize(&request).await;
        expect_error_callback(&app, &resp, &request, "invalid_request");
    }
}

#[tokio::test]
async fn the_plain_pkce_method_is_sent_back_with_invalid_request() {
    let app = spawn_app().await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;
    let request = AuthRequest::new(&client);
    let verifier = request.verifier.clone();
    let request = request
        .with("code_challenge", &verifier)
        .with("code_challenge_method", "plain");

    let resp = app.authorize(&request).await;

    expect_error_callback(&app, &resp, &request, "invalid_request");
}

#[tokio::test]
async fn an_unsupported_response_type_is_sent_back_with_unsupported_response_type() {
    let app = spawn_app().await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;

    for response_type in ["token", "id_token", "code token"] {
        let request = AuthRequest::new(&client).with("response_type", response_type);
        let resp = app.authorize(&request).await;
        expect_error_callback(&app, &resp, &request, "unsupported_response_type");
    }
}

#[tokio::test]
async fn a_scope_the_client_may_not_use_is_sent_back_with_invalid_scope() {
    let app = spawn_app().await;
    let client = app
        .add_client(
            ClientSpec::first_party("webapp")
                .scope("openid")
                .scope("profile"),
        )
        .await;

    for scope in ["openid email", "openid admin"] {
        let request = AuthRequest::new(&client).with("scope", scope);
        let resp = app.authorize(&request).await;
        expect_error_callback(&app, &resp, &request, "invalid_scope");
    }
}

#[tokio::test]
async fn a_resource_not_registered_for_the_client_is_sent_back_with_invalid_target() {
    let app = spawn_app().await;
    let client = app
        .add_client(ClientSpec::first_party("webapp").audience("https://api.example.test"))
        .await;
    let request = AuthRequest::new(&client).with("resource", "https://elsewhere.example.test");

    let resp = app.authorize(&request).await;

    expect_error_callback(&app, &resp, &request, "invalid_target");
}

#[tokio::test]
async fn a_valid_request_without_a_session_shows_the_sign_in_page_and_sets_a_csrf_cookie() {
    let app = spawn_app().await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;

    let resp = app.authorize(&AuthRequest::new(&client)).await;
    let cookies = set_cookies(&resp);
    let page = expect_sign_in_page(resp).await;

    assert!(!cookies.is_empty(), "the sign-in page sets a CSRF cookie");
    assert!(!page.csrf_token.is_empty() && !page.request.is_empty());
}
