//! The console's Clients, Sessions, Keys and Audit sections and their API endpoints, driven as
//! an admin does (pages and forms, JavaScript off) and as automation does (a `tessera:admin`
//! token): what each action does to tokens already out there, and what it leaves in the log.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

use crate::helpers::{console_page as page, console_post as post};

/// The value of the read-only secret field of the "shown once" page.
fn shown_secret(html: &str) -> String {
    tags(html, "input")
        .into_iter()
        .find(|t| t.attr("id") == Some("client-secret"))
        .and_then(|t| t.attr("value").map(unescape_html))
        .unwrap_or_else(|| panic!("the secret is shown once:\n{html}"))
}

fn basic(id: &str, secret: &str) -> ClientAuth {
    ClientAuth::Basic {
        id: id.into(),
        secret: secret.into(),
    }
}

#[tokio::test]
async fn an_admin_registers_a_client_rotates_its_secret_with_an_overlap_disables_it_and_reads_the_log()
 {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let b = &admin.browser;

    // Register a service; a wrong redirect URI comes back inline with what was typed.
    let form = page(&app, b, "/admin/clients/new").await;
    let resp = post(
        &app,
        b,
        &form,
        "/admin/clients/new",
        &[
            ("id", "billing"),
            ("kind", "confidential"),
            ("redirect_uris", "http://billing.example/cb"),
            ("grant_authorization_code", "on"),
            ("scopes", "openid invoices.read"),
        ],
    )
    .await;
    let (status, html) = read_html(resp).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        html.contains("http is only allowed for localhost"),
        "{html}"
    );
    assert!(
        html.contains("http://billing.example/cb"),
        "the typed value is kept"
    );
    let resp = post(
        &app,
        b,
        &form,
        "/admin/clients/new",
        &[
            ("id", "billing"),
            ("kind", "confidential"),
            ("grant_client_credentials", "on"),
            ("scopes", "invoices.read"),
            ("audiences", "https://api.erp.example"),
        ],
    )
    .await;
    let (status, html) = read_html(resp).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let first = shown_secret(&html);
    assert_eq!(
        app.client_credentials(&basic("billing", &first), &[])
            .await
            .status(),
        StatusCode::OK
    );
    let list = page(&app, b, "/admin/clients").await;
    assert!(list.contains("href=\"/admin/clients/billing\""), "{list}");
    assert!(!list.contains(&first), "the list never shows a secret");

    // Rotate with a two-second overlap (the page asks first).
    let confirm = page(&app, b, "/admin/clients/billing/rotate-secret?overlap=2").await;
    assert!(
        confirm.contains("Rotate the secret of billing?"),
        "{confirm}"
    );
    let resp = post(
        &app,
        b,
        &confirm,
        "/admin/clients/billing/rotate-secret",
        &[("overlap", "2")],
    )
    .await;
    let (status, html) = read_html(resp).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let second = shown_secret(&html);
    assert_ne!(first, second);
    for secret in [&first, &second] {
        assert_eq!(
            app.client_credentials(&basic("billing", secret), &[])
                .await
                .status(),
            StatusCode::OK
        );
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        app.client_credentials(&basic("billing", &first), &[])
            .await
            .status(),
        StatusCode::UNAUTHORIZED,
        "the old secret ends with the overlap"
    );
    let resp = app
        .client_credentials(&basic("billing", &second), &[])
        .await;
    let token = expect_tokens(resp).await.access_token;
    let rs = app.add_client(ClientSpec::service("rs")).await;
    assert!(app.is_active(&rs.auth(), &token).await);

    // Disable: its token introspects inactive at once, and it gets no new one.
    let confirm = page(&app, b, "/admin/clients/billing/disable").await;
    let resp = post(&app, b, &confirm, "/admin/clients/billing/disable", &[]).await;
    assert_eq!(expect_see_other(&resp).path(), "/admin/clients/billing");
    assert!(!app.is_active(&rs.auth(), &token).await);
    assert_eq!(
        app.client_credentials(&basic("billing", &second), &[])
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let shown = page(&app, b, "/admin/clients/billing").await;
    assert!(shown.contains("disabled</strong>"), "{shown}");

    // The log holds all of it, with this admin as the actor.
    let audit = page(&app, b, "/admin/audit?subject=billing").await;
    let actor = format!("admin:{}", admin.user.id);
    for action in ["client.created", "client.secret_rotated", "client.disabled"] {
        assert!(audit.contains(action), "{action} is logged:\n{audit}");
    }
    assert!(audit.contains(&actor), "{audit}");
    assert!(!audit.contains(&second), "no secret in the log");
    let only_rotations = page(&app, b, "/admin/audit?subject=billing&action=client.secret").await;
    assert!(!only_rotations.contains("client.disabled"));
    let resp = app.admin_get_in(b, "/admin/audit?since=yesterday").await;
    assert_eq!(
        resp.status(),
        StatusCode::BAD_REQUEST,
        "a bad date is said, not a 500"
    );

    // Verify chain.
    let resp = post(&app, b, &audit, "/admin/audit/verify", &[]).await;
    let (status, html) = read_html(resp).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("Intact:"), "{html}");
}

#[tokio::test]
async fn an_admin_finds_sessions_by_user_and_ends_a_selection_whose_tokens_stop() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let b = &admin.browser;
    let user = app.add_user("ada@example.test").await;
    let erp = app.add_client(ClientSpec::first_party("erp")).await;
    let tokens = app.tokens_for(&erp, &user).await;
    let rs = app.add_client(ClientSpec::service("rs")).await;

    let html = page(&app, b, "/admin/sessions?user=ada%40example.test").await;
    assert!(html.contains("ada@example.test"), "{html}");
    let ids: Vec<String> = tags(&html, "input")
        .into_iter()
        .filter(|t| t.attr("name") == Some("id"))
        .filter_map(|t| t.attr("value").map(String::from))
        .collect();
    assert_eq!(ids.len(), 1, "{html}");
    let by_client = page(&app, b, "/admin/sessions?client=erp").await;
    assert!(by_client.contains(&ids[0]));

    // The checkboxes submit to a confirmation; the confirmation's POST ends them.
    let confirm = page(&app, b, &format!("/admin/sessions/revoke?id={}", ids[0])).await;
    assert!(confirm.contains("End 1 session?"), "{confirm}");
    let resp = post(
        &app,
        b,
        &confirm,
        "/admin/sessions/revoke",
        &[("ids", &ids[0])],
    )
    .await;
    let (status, done) = read_html(resp).await;
    assert_eq!(status, StatusCode::OK);
    assert!(done.contains("1 session ended."), "{done}");
    assert!(!app.is_active(&rs.auth(), &tokens.access_token).await);
    app.assert_refresh_refused(&erp, tokens.refresh_token(), "the ended session's")
        .await;
    let html = page(&app, b, "/admin/sessions?user=ada%40example.test").await;
    assert!(html.contains("No live session matches."), "{html}");
    let resp = app.admin_get_in(b, "/admin/sessions?cursor=forged").await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn keys_rotate_on_the_console_and_an_emergency_needs_the_typed_phrase() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let b = &admin.browser;
    let before = app.published_kids().await;
    let html = page(&app, b, "/admin/keys").await;
    assert!(html.contains(">active<"), "{html}");

    let confirm = page(&app, b, "/admin/keys/rotate").await;
    let resp = post(&app, b, &confirm, "/admin/keys/rotate", &[]).await;
    let (status, html) = read_html(resp).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(">next<"),
        "the new key waits for its lead:\n{html}"
    );
    let after = app.published_kids().await;
    assert_eq!(after.len(), before.len() + 1, "published at once");

    let form = page(&app, b, "/admin/keys/emergency").await;
    let resp = post(
        &app,
        b,
        &form,
        "/admin/keys/emergency",
        &[("confirmation", "yes")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(app.published_kids().await, after, "nothing was withdrawn");
    let resp = post(
        &app,
        b,
        &form,
        "/admin/keys/emergency",
        &[("confirmation", "withdraw every key")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let now = app.published_kids().await;
    assert_eq!(now.len(), 1);
    assert!(now.is_disjoint(&after), "every older key is withdrawn");
}

#[tokio::test]
async fn every_section_page_and_form_is_the_ordinary_404_for_a_signed_in_non_admin() {
    let app = spawn_app().await;
    let user = app.add_user("ann@example.com").await;
    app.add_client(ClientSpec::service("billing")).await;
    let browser = app.new_browser();
    app.sign_in_to_account_in(&browser, &user).await;
    let gets = [
        "/admin/clients",
        "/admin/clients/new",
        "/admin/clients/billing",
        "/admin/clients/billing/rotate-secret",
        "/admin/clients/billing/disable",
        "/admin/clients/billing/enable",
        "/admin/sessions",
        "/admin/sessions/revoke?id=x",
        "/admin/sessions/user/x/revoke",
        "/admin/keys",
        "/admin/keys/rotate",
        "/admin/keys/emergency",
        "/admin/audit",
    ];
    for path in gets {
        let resp = app.admin_get_in(&browser, path).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "GET {path}");
    }
    let csrf = app.csrf_token_in(&browser).await;
    let posts = [
        "/admin/clients/new",
        "/admin/clients/billing",
        "/admin/clients/billing/rotate-secret",
        "/admin/clients/billing/disable",
        "/admin/sessions/revoke",
        "/admin/keys/rotate",
        "/admin/keys/emergency",
        "/admin/audit/verify",
    ];
    for path in posts {
        let resp = browser
            .post(app.url(path))
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("overlap", "0"),
                ("confirmation", "withdraw every key"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "POST {path}");
    }
    // Nothing happened: the client still has its one secret and is enabled.
    let out = app
        .cli(&["client", "show", "billing", "--json"], None)
        .await;
    let shown: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(shown["disabled_at"], Value::Null);
    assert_eq!(shown["previous_secret_valid_until"], Value::Null);
}

async fn api_json(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = app
        .backchannel
        .request(method, app.url(&format!("/admin/api/v1{path}")))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("an admin API request");
    assert_no_store(&resp, path);
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON from {path}: {text}"));
    (status, value)
}

#[tokio::test]
async fn the_api_does_the_same_with_a_tessera_admin_token() {
    let app = spawn_app().await;
    let token = app.admin_api_token().await;
    let (status, created) = api_json(
        &app,
        Method::POST,
        "/clients",
        &token,
        Some(json!({ "id": "billing", "grants": ["client_credentials"], "scopes": ["invoices.read"] })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let first = created["client_secret"].as_str().unwrap().to_owned();
    let (status, err) = api_json(
        &app,
        Method::POST,
        "/clients",
        &token,
        Some(json!({ "id": "billing", "grants": ["client_credentials"] })),
    )
    .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );
    let (status, err) = api_json(
        &app,
        Method::PATCH,
        "/clients/billing",
        &token,
        Some(json!({ "redirect_uris": ["http://evil.example/cb"], "grants": ["authorization_code"] })),
    )
    .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let (status, err) = api_json(
        &app,
        Method::PATCH,
        "/clients/billing",
        &token,
        Some(json!({ "public": true })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    let (status, updated) = api_json(
        &app,
        Method::PATCH,
        "/clients/billing",
        &token,
        Some(json!({ "require_mfa": true })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(updated["require_mfa"], true);
    assert_eq!(
        updated["scopes"],
        json!(["invoices.read"]),
        "what is absent stays"
    );

    let (status, rotated) = api_json(
        &app,
        Method::POST,
        "/clients/billing/rotate-secret",
        &token,
        Some(json!({ "overlap_seconds": 0 })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let second = rotated["client_secret"].as_str().unwrap();
    assert_eq!(
        app.client_credentials(&basic("billing", &first), &[])
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.client_credentials(&basic("billing", second), &[])
            .await
            .status(),
        StatusCode::OK
    );
    let (status, _) = api_json(&app, Method::POST, "/clients/billing/disable", &token, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.client_credentials(&basic("billing", second), &[])
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let (status, listed) = api_json(&app, Method::GET, "/clients", &token, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == "billing" && c["disabled_at"].is_i64())
    );
    let (status, err) = api_json(&app, Method::GET, "/clients/nobody", &token, None).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );

    // Sessions: a user's session found and ended; a selection of unknown ids ends nothing.
    let user = app.add_user("ada@example.test").await;
    let erp = app.add_client(ClientSpec::first_party("erp")).await;
    let tokens = app.tokens_for(&erp, &user).await;
    let (status, page) = api_json(
        &app,
        Method::GET,
        "/sessions?user=ada%40example.test&limit=1",
        &token,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let id = page["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(page["items"][0]["clients"], json!(["erp"]));
    let (_, none) = api_json(
        &app,
        Method::POST,
        "/sessions/revoke",
        &token,
        Some(json!({ "ids": ["x", "y"] })),
    )
    .await;
    assert_eq!(none["ended"], 0);
    let (status, _) = api_json(
        &app,
        Method::POST,
        &format!("/sessions/{id}/revoke"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    app.assert_refresh_refused(&erp, tokens.refresh_token(), "the ended session's")
        .await;
    let (status, _) = api_json(&app, Method::GET, "/sessions?limit=0", &token, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Keys and the audit log.
    let (_, keys) = api_json(&app, Method::GET, "/keys", &token, None).await;
    assert_eq!(keys["items"][0]["state"], "active");
    let (status, err) = api_json(
        &app,
        Method::POST,
        "/keys/rotate",
        &token,
        Some(json!({ "emergency": true })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    let (status, rotated) = api_json(&app, Method::POST, "/keys/rotate", &token, None).await;
    assert_eq!(
        (status, rotated["outcome"].as_str()),
        (StatusCode::OK, Some("scheduled"))
    );
    let (status, entries) = api_json(
        &app,
        Method::GET,
        "/audit?subject=billing&limit=2",
        &token,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let items = entries["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["action"], "client.disabled");
    assert!(items[0]["actor"].as_str().unwrap().starts_with("api:"));
    let next = entries["next_cursor"].as_str().unwrap();
    let (_, older) = api_json(
        &app,
        Method::GET,
        &format!("/audit?subject=billing&cursor={next}"),
        &token,
        None,
    )
    .await;
    assert!(
        older["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "client.created")
    );
    let (status, _) = api_json(&app, Method::GET, "/audit?cursor=abc", &token, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, verdict) = api_json(&app, Method::POST, "/audit/verify", &token, None).await;
    assert_eq!(
        (status, verdict["intact"].as_bool()),
        (StatusCode::OK, Some(true))
    );
}

#[tokio::test]
async fn section_forms_without_their_csrf_token_or_from_another_site_change_nothing() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let b = &admin.browser;
    let svc = app.add_client(ClientSpec::service("billing")).await;
    let kids = app.published_kids().await;
    let html = page(&app, b, "/admin/clients/billing/disable").await;
    let csrf = input_value(&html, "csrf_token").unwrap();
    let actions: [(&str, &[(&str, &str)]); 4] = [
        ("/admin/clients/billing/disable", &[]),
        ("/admin/clients/billing/rotate-secret", &[("overlap", "0")]),
        (
            "/admin/keys/emergency",
            &[("confirmation", "withdraw every key")],
        ),
        (
            "/admin/clients/new",
            &[
                ("id", "evil"),
                ("kind", "confidential"),
                ("grant_client_credentials", "on"),
            ],
        ),
    ];
    for (action, fields) in actions {
        // No CSRF token.
        let resp = b.post(app.url(action)).form(fields).send().await.unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::FORBIDDEN,
            "POST {action} without its token"
        );
        // The right token, but the browser says the form came from another site.
        let mut form: Vec<(&str, &str)> = vec![("csrf_token", csrf.as_str())];
        form.extend_from_slice(fields);
        let resp = b
            .post(app.url(action))
            .header("Origin", "https://evil.example")
            .header("Sec-Fetch-Site", "cross-site")
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            StatusCode::FORBIDDEN,
            "POST {action} from another site"
        );
    }
    // Nothing happened: the secret still works, the keys are the same, no client was added.
    assert_eq!(
        app.client_credentials(&svc.auth(), &[]).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.published_kids().await, kids);
    let out = app.cli(&["client", "show", "evil"], None).await;
    assert!(!out.status.success(), "no client was registered");
}
