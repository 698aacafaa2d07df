//! The operator's command line: clients, secrets, migrations and settings.

use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn client_add_without_a_secret_prints_a_generated_one_that_authenticates() {
    let app = spawn_app().await;
    let spec = ClientSpec::service("billing").scope("api.read");

    let out = app.try_add_client(&spec).await;
    out.assert_success("tessera client add");
    let secret = printed_client_secret(&out.stdout)
        .unwrap_or_else(|| panic!("no `client_secret: <secret>` line in:\n{}", out.stdout));
    assert!(
        secret.len() >= 43,
        "a 256-bit secret needs at least 43 characters, got {secret:?}"
    );

    let auth = ClientAuth::Basic {
        id: "billing".into(),
        secret: secret.clone(),
    };
    expect_tokens(
        app.client_credentials(&auth, &[("scope", "api.read")])
            .await,
    )
    .await;

    let wrong = ClientAuth::Basic {
        id: "billing".into(),
        secret: secret[..secret.len() - 1].to_owned(),
    };
    let resp = app
        .client_credentials(&wrong, &[("scope", "api.read")])
        .await;
    expect_oauth_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

#[tokio::test]
async fn every_generated_client_secret_is_different() {
    let app = spawn_app().await;

    let first = app
        .add_client(ClientSpec::service("first").scope("api.read"))
        .await;
    let second = app
        .add_client(ClientSpec::service("second").scope("api.read"))
        .await;

    assert_ne!(first.secret, second.secret);
}

#[tokio::test]
async fn client_add_refuses_a_supplied_secret_shorter_than_32_characters() {
    let app = spawn_app().await;
    let short = "s".repeat(31);

    let out = app
        .try_add_client(
            &ClientSpec::service("billing")
                .scope("api.read")
                .secret(&short),
        )
        .await;

    assert!(
        !out.status.success(),
        "a 31-character secret is refused:\nstdout:\n{}",
        out.stdout
    );
    assert!(
        !(out.stderr.trim().is_empty() && out.stdout.trim().is_empty()),
        "the refusal says why"
    );
    let auth = ClientAuth::Basic {
        id: "billing".into(),
        secret: short,
    };
    let resp = app
        .client_credentials(&auth, &[("scope", "api.read")])
        .await;
    expect_oauth_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

#[tokio::test]
async fn client_add_accepts_a_supplied_secret_of_32_characters() {
    let app = spawn_app().await;
    let secret = "0123456789abcdefghijklmnopqrstuv";
    assert_eq!(secret.len(), 32);

    let client = app
        .add_client(
            ClientSpec::service("billing")
                .scope("api.read")
                .secret(secret),
        )
        .await;

    expect_tokens(
        app.client_credentials(&client.auth(), &[("scope", "api.read")])
            .await,
    )
    .await;
    expect_tokens(
        app.client_credentials(&client.post_auth(), &[("scope", "api.read")])
            .await,
    )
    .await;
}

#[tokio::test]
async fn client_add_for_a_public_client_prints_no_secret() {
    let app = spawn_app().await;

    let out = app
        .try_add_client(&ClientSpec::first_party("spa").public())
        .await;

    out.assert_success("tessera client add --public");
    assert_eq!(
        printed_client_secret(&out.stdout),
        None,
        "a public client has no secret:\n{}",
        out.stdout
    );
}

#[tokio::test]
async fn migrate_can_run_again_on_a_live_database() {
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;

    app.cli(&["migrate"], None)
        .await
        .assert_success("tessera migrate");
    app.cli(&["migrate"], None)
        .await
        .assert_success("tessera migrate (again)");

    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    app.tokens_for(&client, &user).await;
}

#[tokio::test]
async fn serve_refuses_to_start_with_a_bad_setting_and_names_it() {
    let app = prepare_app_with(|c| {
        c.env("TESSERA_ACCESS_TOKEN_TTL", "banana");
    })
    .await;

    let out = app.serve_expecting_exit().await;

    assert!(
        !out.status.success(),
        "`tessera serve` exits non-zero with a bad setting"
    );
    assert!(
        out.stderr.contains("TESSERA_ACCESS_TOKEN_TTL") || out.stderr.contains("access_token_ttl"),
        "the message names the setting; stderr:\n{}",
        out.stderr
    );
}

#[tokio::test]
async fn the_health_endpoints_answer_when_the_server_is_up() {
    let app = spawn_app().await;

    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
}
