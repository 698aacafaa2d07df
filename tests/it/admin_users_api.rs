//! The Users section of the admin JSON API, with a `tessera:admin` token: find a user by a
//! substring of their email, disable them (their refresh fails at once, introspection says
//! inactive), enable them again, edit them, and read the audit entries with the API as actor.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::*;

async fn api_json(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    status: StatusCode,
) -> Value {
    expect_json(app.admin_api(method, path, Some(token)).await, status).await
}

async fn api_send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: &Value,
) -> reqwest::Response {
    reqwest::Client::new()
        .request(method, app.url(&format!("/admin/api/v1{path}")))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("an admin API request")
}

#[tokio::test]
async fn an_api_token_finds_a_user_by_email_substring_disables_them_at_once_and_enables_them() {
    let app = spawn_app().await;
    let token = app.admin_api_token().await;
    let user = app.add_user("dana.kowalski@example.test").await;
    app.add_user("someone@example.test").await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;
    let request = AuthRequest::new(&client);
    let code = app.obtain_code(&request, &user).await;
    let tokens = expect_tokens(app.redeem_code(&client.auth(), &request, &code).await).await;

    let found = api_json(&app, Method::GET, "/users?q=KOWAL", &token, StatusCode::OK).await;
    let items = found["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{found}");
    assert_eq!(items[0]["email"], user.email.as_str());
    let id = items[0]["id"].as_str().expect("an id").to_owned();

    let done = api_json(
        &app,
        Method::POST,
        &format!("/users/{id}/disable"),
        &token,
        StatusCode::OK,
    )
    .await;
    assert_eq!(done["sessions_ended"], 1, "{done}");
    let resp = app.refresh(&client.auth(), tokens.refresh_token()).await;
    expect_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_grant").await;
    let answer = app.introspect(&client.auth(), &tokens.access_token).await;
    assert_eq!(answer["active"], false, "{answer}");

    api_json(
        &app,
        Method::POST,
        &format!("/users/{id}/enable"),
        &token,
        StatusCode::OK,
    )
    .await;
    let code = app.obtain_code(&request, &user).await;
    expect_tokens(app.redeem_code(&client.auth(), &request, &code).await).await;

    let shown = api_json(
        &app,
        Method::GET,
        &format!("/users/{id}"),
        &token,
        StatusCode::OK,
    )
    .await;
    assert_eq!(shown["user"]["disabled"], false);
    let by_api: Vec<&str> = shown["audit"]
        .as_array()
        .expect("audit entries")
        .iter()
        .filter(|a| {
            a["actor"]
                .as_str()
                .is_some_and(|actor| actor.starts_with("api:"))
        })
        .map(|a| a["action"].as_str().unwrap_or_default())
        .collect();
    assert!(by_api.contains(&"user.disabled"), "{shown}");
    assert!(by_api.contains(&"user.enabled"), "{shown}");
}

#[tokio::test]
async fn the_api_edits_names_and_roles_pages_with_sealed_cursors_and_refuses_bad_input() {
    let app = spawn_app().await;
    let token = app.admin_api_token().await;
    for i in 0..3 {
        app.add_user(&format!("page{i}@example.test")).await;
    }
    let first = api_json(
        &app,
        Method::GET,
        "/users?q=page&limit=2",
        &token,
        StatusCode::OK,
    )
    .await;
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next cursor")
        .to_owned();
    let second = api_json(
        &app,
        Method::GET,
        &format!("/users?q=page&limit=2&cursor={cursor}"),
        &token,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        second["items"].as_array().map(Vec::len),
        Some(1),
        "{second}"
    );
    assert!(second["next_cursor"].is_null());
    // The same cursor for another order, or altered: refused.
    for bad in [
        format!("/users?sort=last_sign_in&cursor={cursor}"),
        format!("/users?cursor={}x", cursor),
        "/users?sort=sideways".to_string(),
        "/users?disabled=maybe".to_string(),
    ] {
        let resp = app.admin_api(Method::GET, &bad, Some(&token)).await;
        let body = expect_json(resp, StatusCode::BAD_REQUEST).await;
        assert!(body["error"].is_string(), "{bad}: {body}");
    }

    let id = first["items"][0]["id"].as_str().expect("an id").to_owned();
    let resp = api_send(
        &app,
        Method::PATCH,
        &format!("/users/{id}"),
        &token,
        &json!({"name": "Paula", "roles": ["ops", "ops"]}),
    )
    .await;
    let changed = expect_json(resp, StatusCode::OK).await;
    assert_eq!(changed["name"], "Paula");
    assert_eq!(changed["roles"], json!(["ops"]));
    for bad in [
        json!({"roles": ["Not A Role"]}),
        json!({"name": 7}),
        json!({"nick": "x"}),
    ] {
        let resp = api_send(&app, Method::PATCH, &format!("/users/{id}"), &token, &bad).await;
        expect_json(resp, StatusCode::BAD_REQUEST).await;
    }
    let unchanged = api_json(
        &app,
        Method::GET,
        &format!("/users/{id}"),
        &token,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        unchanged["user"]["roles"],
        json!(["ops"]),
        "a refused change changed nothing"
    );

    let resp = app
        .admin_api(Method::POST, "/users/no-such-user/disable", Some(&token))
        .await;
    expect_json(resp, StatusCode::NOT_FOUND).await;

    let resp = api_send(
        &app,
        Method::POST,
        "/users",
        &token,
        &json!({"email": "page0@example.test"}),
    )
    .await;
    expect_json(resp, StatusCode::CONFLICT).await;
}
