//! Signing keys: what the JWKS publishes, planned and emergency rotation, and
//! the other signing algorithms.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use reqwest::StatusCode;

use crate::helpers::*;

const FAST_KEYS: [(&str, &str); 2] = [
    ("TESSERA_KEY_PUBLISH_LEAD", "2s"),
    ("TESSERA_KEY_RELOAD_INTERVAL", "1s"),
];

async fn fast_key_app() -> TestApp {
    spawn_app_with(|c| {
        for (key, value) in FAST_KEYS {
            c.env(key, value);
        }
    })
    .await
}

async fn service_token(app: &TestApp, client: &RegisteredClient) -> String {
    expect_tokens(
        app.client_credentials(&client.auth(), &[("scope", "api.read")])
            .await,
    )
    .await
    .access_token
}

fn kid_of(token: &str) -> String {
    jwt_header(token).kid.expect("the token names its key")
}

/// Polls the JWKS until `done` holds or the deadline passes.
async fn wait_for_jwks(
    app: &TestApp,
    deadline: Instant,
    what: &str,
    done: impl Fn(&BTreeSet<String>) -> bool,
) -> BTreeSet<String> {
    loop {
        let kids = app.published_kids().await;
        if done(&kids) {
            return kids;
        }
        assert!(
            Instant::now() < deadline,
            "{what}; the JWKS still publishes {kids:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn access_and_id_tokens_verify_against_the_published_keys() {
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;
    let tokens = app.tokens_for(&client, &user).await;

    let kids = app.published_kids().await;
    assert!(kids.contains(&kid_of(&tokens.access_token)));
    assert!(kids.contains(&kid_of(tokens.id_token())));
    assert_eq!(jwt_header(tokens.id_token()).alg, Algorithm::ES256);
    app.verify_jwt(&tokens.access_token, &app.issuer)
        .await
        .expect("the access token verifies");
    app.verify_jwt(tokens.id_token(), &client.id)
        .await
        .expect("the ID token verifies");

    // A token signed by someone else's key under the same kid does not.
    let forged_key = jsonwebtoken::EncodingKey::from_ec_der(
        aws_lc_rs::signature::EcdsaKeyPair::generate(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        )
        .unwrap()
        .to_pkcs8v1()
        .unwrap()
        .as_ref(),
    );
    let mut header = jwt_header(&tokens.access_token);
    header.alg = Algorithm::ES256;
    let forged =
        jsonwebtoken::encode(&header, &jwt_claims(&tokens.access_token), &forged_key).unwrap();
    assert!(
        app.verify_jwt(&forged, &app.issuer).await.is_err(),
        "a forged signature is caught offline"
    );
    assert_eq!(
        app.userinfo(&forged).await.status(),
        StatusCode::UNAUTHORIZED,
        "and by the server"
    );
}

#[tokio::test]
async fn a_rotated_key_is_published_before_it_signs_and_old_tokens_keep_verifying() {
    let app = fast_key_app().await;
    let client = app
        .add_client(ClientSpec::service("billing").scope("api.read"))
        .await;
    let old_token = service_token(&app, &client).await;
    let old_kid = kid_of(&old_token);
    assert_eq!(
        app.published_kids().await,
        BTreeSet::from([old_kid.clone()])
    );

    let rotating = Instant::now();
    app.rotate_keys(false).await;

    // The new key is published first...
    let kids = wait_for_jwks(
        &app,
        rotating + Duration::from_millis(1900),
        "the new key is published within the lead",
        |kids| kids.len() == 2,
    )
    .await;
    assert!(kids.contains(&old_kid), "the old key stays published");
    let new_kid = kids.iter().find(|k| **k != old_kid).unwrap().clone();

    // ...while tokens are still signed with the old one, until the lead has passed.
    let during_lead = service_token(&app, &client).await;
    let elapsed = rotating.elapsed();
    assert!(
        elapsed < Duration::from_secs(2),
        "the new key was published only {elapsed:?} after `keys rotate` began"
    );
    assert_eq!(
        kid_of(&during_lead),
        old_kid,
        "the new key does not sign before the lead has passed"
    );

    // Then the new key signs.
    let deadline = rotating + Duration::from_secs(5);
    let signed_by_new = loop {
        let token = service_token(&app, &client).await;
        if kid_of(&token) == new_kid {
            break token;
        }
        assert_eq!(kid_of(&token), old_kid);
        assert!(
            Instant::now() < deadline,
            "the new key never started signing"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let elapsed = rotating.elapsed();
    assert!(
        elapsed >= Duration::from_secs(2),
        "the new key signed {elapsed:?} after `keys rotate` began, before the 2 s lead had passed"
    );
    app.verify_jwt(&signed_by_new, &app.issuer)
        .await
        .expect("a token from the new key verifies");

    // Tokens from the old key still verify, offline and at the server.
    assert_eq!(
        app.published_kids().await,
        BTreeSet::from([old_kid.clone(), new_kid.clone()])
    );
    app.verify_jwt(&old_token, &app.issuer)
        .await
        .expect("a token from the old key still verifies");
    assert!(app.is_active(&client.auth(), &old_token).await);
}

#[tokio::test]
async fn an_emergency_rotation_withdraws_the_old_key_at_once_and_signs_with_a_new_one() {
    let app = fast_key_app().await;
    let user = app.add_user("ada@example.test").await;
    let webapp = app.add_client(ClientSpec::first_party("webapp")).await;
    let service = app
        .add_client(ClientSpec::service("billing").scope("api.read"))
        .await;
    let user_tokens = app.tokens_for(&webapp, &user).await;
    let old_kid = kid_of(&user_tokens.access_token);

    app.rotate_keys(true).await;
    let rotated = Instant::now();

    let kids = wait_for_jwks(
        &app,
        rotated + Duration::from_millis(2500),
        "the old key is withdrawn after a reload",
        |kids| !kids.contains(&old_kid),
    )
    .await;
    assert!(!kids.is_empty(), "a new key is published");

    let token = service_token(&app, &service).await;
    assert_ne!(kid_of(&token), old_kid, "the withdrawn key no longer signs");
    assert!(kids.contains(&kid_of(&token)));
    app.verify_jwt(&token, &app.issuer)
        .await
        .expect("a token from the new key verifies");

    assert!(
        app.verify_jwt(&user_tokens.access_token, &app.issuer)
            .await
            .is_err(),
        "a token from the withdrawn key no longer verifies"
    );
    assert_eq!(
        app.userinfo(&user_tokens.access_token).await.status(),
        StatusCode::UNAUTHORIZED,
        "the server no longer honours a token from the withdrawn key"
    );
}

async fn tokens_verify_with(alg_setting: &str, alg: Algorithm, kty: &str) {
    let app = spawn_app_with(|c| {
        c.env("TESSERA_SIGNING_ALG", alg_setting);
    })
    .await;
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;

    let discovery = app.discovery().await;
    let algs = discovery["id_token_signing_alg_values_supported"]
        .as_array()
        .expect("a list")
        .clone();
    assert!(
        algs.iter().any(|a| a == alg_setting),
        "{alg_setting} is advertised: {algs:?}"
    );

    let jwks = app.jwks().await;
    let jwk = serde_json::to_value(&jwks.keys[0]).unwrap();
    assert_eq!(jwk["kty"], kty, "{jwk}");

    let tokens = app.tokens_for(&client, &user).await;
    assert_eq!(jwt_header(&tokens.access_token).alg, alg);
    assert_eq!(jwt_header(tokens.id_token()).alg, alg);
    app.verify_jwt(&tokens.access_token, &app.issuer)
        .await
        .expect("the access token verifies");
    app.verify_jwt(tokens.id_token(), &client.id)
        .await
        .expect("the ID token verifies");
    assert_eq!(
        app.userinfo(&tokens.access_token).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn eddsa_signing_issues_tokens_that_verify() {
    tokens_verify_with("EdDSA", Algorithm::EdDSA, "OKP").await;
}

#[tokio::test]
async fn rs256_signing_issues_tokens_that_verify() {
    tokens_verify_with("RS256", Algorithm::RS256, "RSA").await;
}
