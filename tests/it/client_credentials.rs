//! Machine-to-machine tokens: the client_credentials grant.

use jsonwebtoken::Algorithm;
use reqwest::StatusCode;

use crate::helpers::*;

async fn service_with_api_scopes(app: &TestApp) -> RegisteredClient {
    app.add_client(
        ClientSpec::service("billing")
            .scope("api.read")
            .scope("api.write"),
    )
    .await
}

/// What every service token looks like: an ES256 at+jwt for the client, with no user in it.
async fn assert_service_token(app: &TestApp, client: &RegisteredClient, tokens: &TokenResponse) {
    assert_eq!(
        tokens.refresh_token, None,
        "client_credentials never yields a refresh token"
    );
    assert_eq!(
        tokens.id_token, None,
        "client_credentials never yields an ID token"
    );
    let header = jwt_header(&tokens.access_token);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.alg, Algorithm::ES256);
    let claims = app
        .verify_jwt(&tokens.access_token, &app.issuer)
        .await
        .expect("the token verifies");
    assert_eq!(claims["client_id"], client.id.as_str());
    assert!(claims["jti"].is_string(), "{claims}");
    assert!(
        claims.get("sid").is_none(),
        "a service token has no user session: {claims}"
    );

    let introspection = app.introspect(&client.auth(), &tokens.access_token).await;
    assert_eq!(introspection["active"], true, "{introspection}");
    assert_eq!(
        introspection["client_id"],
        client.id.as_str(),
        "{introspection}"
    );
}

#[tokio::test]
async fn a_service_gets_a_token_with_client_credentials_and_basic_auth() {
    let app = spawn_app().await;
    let client = service_with_api_scopes(&app).await;

    let resp = app
        .client_credentials(&client.auth(), &[("scope", "api.read")])
        .await;
    let tokens = expect_tokens(resp).await;

    assert_eq!(tokens.scopes(), scope_set("api.read"));
    assert_service_token(&app, &client, &tokens).await;
}

#[tokio::test]
async fn a_service_gets_a_token_with_client_credentials_and_post_auth() {
    let app = spawn_app().await;
    let client = service_with_api_scopes(&app).await;

    let resp = app
        .client_credentials(&client.post_auth(), &[("scope", "api.write")])
        .await;
    let tokens = expect_tokens(resp).await;

    assert_eq!(tokens.scopes(), scope_set("api.write"));
    assert_service_token(&app, &client, &tokens).await;
}

#[tokio::test]
async fn a_wrong_client_secret_is_refused_with_invalid_client_and_a_challenge() {
    let app = spawn_app().await;
    let client = service_with_api_scopes(&app).await;
    let secret = client.secret.clone().unwrap();

    let attempts = [
        ("a wrong secret over basic auth", client.wrong_secret_auth()),
        (
            "a wrong secret in the body",
            ClientAuth::Post {
                id: client.id.clone(),
                secret: format!("{secret}x"),
            },
        ),
        (
            "an unknown client",
            ClientAuth::Basic {
                id: "nobody".into(),
                secret: secret.clone(),
            },
        ),
        ("no client authentication", ClientAuth::Anonymous),
        (
            "a secretless claim to be a confidential client",
            ClientAuth::Public {
                id: client.id.clone(),
            },
        ),
    ];
    for (what, auth) in attempts {
        let resp = app
            .client_credentials(&auth, &[("scope", "api.read")])
            .await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what}");
        expect_oauth_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
}

#[tokio::test]
async fn a_client_not_registered_for_client_credentials_is_refused_as_unauthorized_client() {
    let app = spawn_app().await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;

    let resp = app.client_credentials(&client.auth(), &[]).await;

    expect_oauth_error(resp, StatusCode::BAD_REQUEST, "unauthorized_client").await;
}

#[tokio::test]
async fn a_service_may_narrow_its_scopes_but_not_ask_for_one_it_was_not_given() {
    let app = spawn_app().await;
    let client = service_with_api_scopes(&app).await;

    for scope in ["api.read api.write", "api.write"] {
        let tokens = expect_tokens(
            app.client_credentials(&client.auth(), &[("scope", scope)])
                .await,
        )
        .await;
        assert_eq!(tokens.scopes(), scope_set(scope));
        let claims = jwt_claims(&tokens.access_token);
        assert_eq!(
            scope_set(claims["scope"].as_str().expect("a scope claim")),
            scope_set(scope)
        );
    }

    for scope in ["api.admin", "api.read api.admin", "openid"] {
        let resp = app
            .client_credentials(&client.auth(), &[("scope", scope)])
            .await;
        expect_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_scope").await;
    }
}

#[tokio::test]
async fn a_service_token_is_for_the_requested_registered_resource_or_else_the_first_audience() {
    let app = spawn_app().await;
    let client = app
        .add_client(
            ClientSpec::service("billing")
                .scope("api.read")
                .audience("https://ledger.example.test")
                .audience("https://invoices.example.test"),
        )
        .await;

    let tokens = expect_tokens(
        app.client_credentials(&client.auth(), &[("scope", "api.read")])
            .await,
    )
    .await;
    let claims = app
        .verify_jwt(&tokens.access_token, "https://ledger.example.test")
        .await
        .expect("verifies");
    assert_eq!(
        audiences(&claims),
        vec!["https://ledger.example.test".to_owned()]
    );

    let resp = app
        .client_credentials(
            &client.auth(),
            &[
                ("scope", "api.read"),
                ("resource", "https://invoices.example.test"),
            ],
        )
        .await;
    let tokens = expect_tokens(resp).await;
    let claims = app
        .verify_jwt(&tokens.access_token, "https://invoices.example.test")
        .await
        .expect("verifies");
    assert_eq!(
        audiences(&claims),
        vec!["https://invoices.example.test".to_owned()]
    );
    assert!(
        app.verify_jwt(&tokens.access_token, "https://ledger.example.test")
            .await
            .is_err(),
        "a token for one resource is not accepted by another"
    );

    let resp = app
        .client_credentials(
            &client.auth(),
            &[
                ("scope", "api.read"),
                ("resource", "https://elsewhere.example.test"),
            ],
        )
        .await;
    expect_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_target").await;
}

#[tokio::test]
async fn metrics_time_each_request_by_endpoint() {
    let app = spawn_app().await;
    let client = service_with_api_scopes(&app).await;
    let series = "tessera_http_request_duration_seconds";
    let count = |m: &MetricsSnapshot, endpoint: &str| {
        m.get(&format!("{series}_count{{endpoint=\"{endpoint}\"}}"))
    };
    let before = app.metrics().await;

    for _ in 0..2 {
        expect_tokens(app.client_credentials(&client.auth(), &[]).await).await;
    }
    let bad = app
        .client_credentials(
            &ClientAuth::Basic {
                id: client.id.clone(),
                secret: "wrong secret".into(),
            },
            &[],
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    let unsupported = app
        .token(&client.auth(), &[("grant_type", "password")])
        .await;
    assert_eq!(unsupported.status(), StatusCode::BAD_REQUEST);
    app.get("/no/such/page").await;

    let after = app.metrics().await;
    assert_eq!(
        count(&after, "token") - count(&before, "token"),
        4,
        "every /token request is timed, refused ones too"
    );
    let per_grant = |m: &MetricsSnapshot, grant: &str| {
        m.get(&format!(
            "tessera_token_request_duration_seconds_count{{grant_type=\"{grant}\"}}"
        ))
    };
    assert_eq!(
        per_grant(&after, "client_credentials") - per_grant(&before, "client_credentials"),
        3,
        "the client_credentials requests are timed as such; a grant type Tessera does not offer is not"
    );
    assert_eq!(
        per_grant(&after, "refresh_token"),
        per_grant(&before, "refresh_token")
    );
    assert!(count(&after, "other") > count(&before, "other"));
    assert_eq!(count(&after, "introspect"), count(&before, "introspect"));
    let inf = after.get(&format!(
        "{series}_bucket{{endpoint=\"token\",le=\"+Inf\"}}"
    ));
    let under_a_second = after.get(&format!("{series}_bucket{{endpoint=\"token\",le=\"1\"}}"));
    assert_eq!(inf, count(&after, "token"));
    assert!(
        under_a_second <= inf && under_a_second >= 1,
        "buckets are cumulative: {under_a_second} of {inf} under a second"
    );
}
