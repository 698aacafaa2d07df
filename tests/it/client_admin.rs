//! Operating clients from the command line over a running server: list, show, update,
//! rotate a secret with an overlap, disable (its tokens stop at once) and enable.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

fn secret_printed(out: &CliOutput) -> String {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("client_secret: "))
        .unwrap_or_else(|| panic!("a secret is printed: {}", out.stdout))
        .to_owned()
}

async fn show(app: &TestApp, id: &str) -> Value {
    let out = app.cli(&["client", "show", id, "--json"], None).await;
    out.assert_success("client show");
    serde_json::from_str(out.stdout.trim()).expect("one JSON object")
}

#[tokio::test]
async fn clients_are_listed_shown_and_updated_without_their_secrets() {
    let app = spawn_app().await;
    let web = app.add_client(ClientSpec::new("erp")).await;
    app.add_client(ClientSpec::service("billing")).await;

    let out = app.cli(&["client", "list", "--json"], None).await;
    out.assert_success("client list");
    let ids: Vec<String> = out
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids, ["billing", "erp"]);
    assert!(
        !out.stdout.contains(web.secret.as_deref().unwrap()),
        "no secret is shown"
    );
    assert!(!out.stdout.contains("secret_hash"));
    // The running server has the client cached before the change.
    let request = AuthRequest::new(&web);
    let page = app.authorize(&request).await;
    assert_eq!(
        page.status(),
        StatusCode::OK,
        "the registered redirect URI works"
    );

    let out = app
        .cli(
            &[
                "client",
                "update",
                "erp",
                "--redirect-uri",
                "http://erp.example/cb",
            ],
            None,
        )
        .await;
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("http is only allowed for localhost"),
        "{}",
        out.stderr
    );
    let out = app
        .cli(
            &[
                "client",
                "update",
                "erp",
                "--redirect-uri",
                "https://erp.example/new",
                "--require-mfa",
                "true",
            ],
            None,
        )
        .await;
    out.assert_success("client update");
    let shown = show(&app, "erp").await;
    assert_eq!(
        shown["redirect_uris"],
        serde_json::json!(["https://erp.example/new"])
    );
    assert_eq!(shown["require_mfa"], true);
    assert_eq!(shown["public"], false);
    // The old redirect URI is refused at once by the running server.
    let resp = app.authorize(&request).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let out = app.cli(&["client", "show", "nobody"], None).await;
    assert!(!out.status.success());

    let audit = app.audit_tail(5).await;
    assert!(
        audit
            .iter()
            .any(|l| l.action == "client.updated" && l.actor.as_deref() == Some("cli"))
    );
}

#[tokio::test]
async fn a_rotated_secret_keeps_the_old_one_working_during_the_overlap_only() {
    let app = spawn_app().await;
    let svc = app.add_client(ClientSpec::service("billing")).await;
    let old = svc.secret.clone().unwrap();
    let out = app
        .cli(
            &["client", "rotate-secret", "billing", "--overlap", "2s"],
            None,
        )
        .await;
    out.assert_success("client rotate-secret");
    let new = secret_printed(&out);
    assert_ne!(new, old);
    let with = |secret: &str| ClientAuth::Basic {
        id: "billing".into(),
        secret: secret.into(),
    };
    for secret in [&old, &new] {
        assert_eq!(
            app.client_credentials(&with(secret), &[]).await.status(),
            StatusCode::OK
        );
    }
    assert!(show(&app, "billing").await["previous_secret_valid_until"].is_i64());
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(
        app.client_credentials(&with(&old), &[]).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.client_credentials(&with(&new), &[]).await.status(),
        StatusCode::OK
    );
    let out = app
        .cli(
            &["client", "rotate-secret", "billing", "--overlap", "31d"],
            None,
        )
        .await;
    assert!(!out.status.success(), "overlaps are capped");
    assert!(!out.stdout.contains("client_secret"));
}

#[tokio::test]
async fn a_disabled_clients_tokens_stop_at_once_and_enabling_it_revives_nothing_it_had() {
    let app = spawn_app().await;
    let user = app.add_user("ada@example.test").await;
    let erp = app.add_client(ClientSpec::first_party("erp")).await;
    let rs = app.add_client(ClientSpec::service("rs")).await;
    let tokens = app.tokens_for(&erp, &user).await;
    assert!(app.is_active(&rs.auth(), &tokens.access_token).await);

    let out = app.cli(&["client", "disable", "erp"], None).await;
    out.assert_success("client disable");
    assert_eq!(
        out.stdout.trim(),
        "client erp disabled; 1 refresh token(s) revoked"
    );
    assert!(!app.is_active(&rs.auth(), &tokens.access_token).await);
    let resp = app.refresh(&erp.auth(), tokens.refresh_token()).await;
    assert_eq!(
        resp.status(),
        StatusCode::UNAUTHORIZED,
        "a disabled client cannot authenticate"
    );
    let resp = app.authorize(&AuthRequest::new(&erp)).await;
    assert_eq!(
        resp.status(),
        StatusCode::BAD_REQUEST,
        "nor start a sign-in"
    );
    assert!(show(&app, "erp").await["disabled_at"].is_i64());

    // Tokens carry whole seconds: those issued in the second of the disable stay refused, so
    // the operator's re-enable comes a second later here (docs/DESIGN.md, "Admin console").
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.cli(&["client", "enable", "erp"], None)
        .await
        .assert_success("client enable");
    assert!(!app.is_active(&rs.auth(), &tokens.access_token).await);
    app.assert_refresh_refused(
        &erp,
        tokens.refresh_token(),
        "the disabled client's refresh token",
    )
    .await;
    let fresh = app.tokens_for(&erp, &user).await;
    assert!(app.is_active(&rs.auth(), &fresh.access_token).await);
    let actions: Vec<String> = app
        .audit_tail(10)
        .await
        .into_iter()
        .map(|l| l.action)
        .collect();
    assert!(
        actions.contains(&"client.disabled".to_string())
            && actions.contains(&"client.enabled".to_string())
    );
}

#[tokio::test]
async fn a_secret_rotated_from_the_command_line_with_no_overlap_stops_at_once_on_a_running_server()
{
    let app = spawn_app().await;
    let svc = app.add_client(ClientSpec::service("billing")).await;
    let old = svc.secret.clone().unwrap();
    // The server has the client (and so its old secret's hash) cached.
    assert_eq!(
        app.client_credentials(&svc.auth(), &[]).await.status(),
        StatusCode::OK
    );
    let out = app
        .cli(
            &["client", "rotate-secret", "billing", "--overlap", "0s"],
            None,
        )
        .await;
    out.assert_success("client rotate-secret");
    let auth = ClientAuth::Basic {
        id: "billing".into(),
        secret: old,
    };
    assert_eq!(
        app.client_credentials(&auth, &[]).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // And a disable from the command line: the very next request of the cached client fails.
    let new = ClientAuth::Basic {
        id: "billing".into(),
        secret: secret_printed(&out),
    };
    assert_eq!(
        app.client_credentials(&new, &[]).await.status(),
        StatusCode::OK
    );
    app.cli(&["client", "disable", "billing"], None)
        .await
        .assert_success("client disable");
    assert_eq!(
        app.client_credentials(&new, &[]).await.status(),
        StatusCode::UNAUTHORIZED
    );
}
