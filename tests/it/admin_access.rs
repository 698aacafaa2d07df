//! Who gets into the admin console and its API, and how every console answer is guarded:
//! non-admins see a 404, an admin needs a second factor and a recent authentication, forms
//! need their CSRF token and must come from this site, nothing is cached, and
//! `admin_allowed_networks` hides both from other addresses.

use std::time::Duration;

use reqwest::header::{CACHE_CONTROL, PRAGMA, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::*;

fn assert_no_store(resp: &reqwest::Response, what: &str) {
    assert_eq!(
        header_str(resp.headers(), CACHE_CONTROL.as_str()),
        Some("no-store"),
        "{what}: Cache-Control"
    );
    assert_eq!(
        header_str(resp.headers(), PRAGMA.as_str()),
        Some("no-cache"),
        "{what}: Pragma"
    );
}

#[tokio::test]
async fn an_admin_signed_in_with_a_second_factor_sees_the_overview_never_cached() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let resp = app.admin_get_in(&admin.browser, "/admin").await;
    assert_no_store(&resp, "the overview");
    let html = expect_overview(resp).await;
    assert!(
        html.contains(&admin.user.email),
        "the frame names the admin"
    );
    assert!(html.contains("<svg"), "charts are inline SVG");
    assert!(!html.contains("<script"), "no script on the console");
    assert!(!html.contains("style="), "no inline style (CSP)");
    // The account page links to the console for admins.
    let (_, account) = read_html(app.admin_get_in(&admin.browser, "/account").await).await;
    assert!(account.contains("href=\"/admin\""), "{account}");
}

#[tokio::test]
async fn a_signed_in_non_admin_gets_the_ordinary_not_found_page_on_the_console_and_the_api() {
    let app = spawn_app().await;
    let user = app.add_user("ann@example.com").await;
    let browser = app.new_browser();
    app.sign_in_to_account_in(&browser, &user).await;
    let unknown = expect_error_page(
        app.admin_get_in(&browser, "/no-such-page").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    for path in ["/admin", "/admin/users"] {
        let resp = app.admin_get_in(&browser, path).await;
        assert_no_store(&resp, path);
        let page = expect_error_page(resp, StatusCode::NOT_FOUND).await;
        assert_eq!(page, unknown, "{path} looks like any unknown path");
    }
    // Their account page does not link to it.
    let (_, account) = read_html(app.admin_get_in(&browser, "/account").await).await;
    assert!(!account.contains("href=\"/admin\""), "{account}");
    // Their own access token, even with the scope, opens nothing: 404.
    let client = app
        .add_client(
            ClientSpec::first_party("erp-tools")
                .scope("openid")
                .scope(ADMIN_SCOPE),
        )
        .await;
    let request = AuthRequest::new(&client).with("scope", &format!("openid {ADMIN_SCOPE}"));
    let tokens = app.tokens_for_request(&client, &request, &user).await;
    assert!(tokens.scopes().contains(ADMIN_SCOPE));
    let resp = app
        .admin_api(Method::GET, "/overview", Some(&tokens.access_token))
        .await;
    let body = expect_json(resp, StatusCode::NOT_FOUND).await;
    assert_eq!(body["error"], "not_found");
}

#[tokio::test]
async fn without_a_session_the_console_sends_the_browser_to_sign_in() {
    let app = spawn_app().await;
    let resp = app.admin_get_in(&app.new_browser(), "/admin").await;
    assert_eq!(expect_see_other(&resp).path(), "/login");
    assert_no_store(&resp, "the redirect");
}

#[tokio::test]
async fn an_admin_without_a_second_factor_on_this_session_must_reauthenticate_and_enrol() {
    let app = spawn_app().await;
    let admin = app
        .add_user_with("root@example.com", None, &["admin"])
        .await;
    let browser = app.new_browser();
    // Admins must use a second factor: without one the sign-in leads to enrolment.
    let resp = app
        .plain_sign_in_in(&browser, &admin.email, &admin.password)
        .await;
    assert_eq!(expect_see_other(&resp).path(), "/account/security");
    let resp = app.admin_get_in(&browser, "/admin").await;
    assert_no_store(&resp, "the re-authentication page");
    let csrf = expect_admin_reauth_page(resp).await;
    // The password is right, but there is no second factor to step up with: set one up.
    let resp = browser
        .post(app.url("/admin/reauth"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("password", admin.password.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(expect_see_other(&resp).path(), "/account/security");
    expect_admin_reauth_page(app.admin_get_in(&browser, "/admin").await).await;
}

#[tokio::test]
async fn an_admin_idle_past_the_window_types_the_password_and_a_code_again() {
    let app = spawn_app_with(|c| {
        c.env("TESSERA_ADMIN_IDLE_TIMEOUT", "3s");
    })
    .await;
    let admin = app.signed_in_admin().await;
    expect_overview(app.admin_get_in(&admin.browser, "/admin").await).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let csrf = expect_admin_reauth_page(app.admin_get_in(&admin.browser, "/admin").await).await;
    // A wrong password: the page again, nothing opened.
    let resp = admin
        .browser
        .post(app.url("/admin/reauth"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("password", "wrong password!"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    expect_admin_reauth_page(resp).await;
    // The right one leads to the second step (the existing step-up page) ...
    let resp = admin
        .browser
        .post(app.url("/admin/reauth"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("password", admin.user.password.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let step = expect_second_step_page(resp).await;
    // ... and the password alone opened nothing.
    expect_admin_reauth_page(app.admin_get_in(&admin.browser, "/admin").await).await;
    let resp = app
        .post_second_step_in(&admin.browser, &step, &admin.phone.code(1))
        .await;
    assert_eq!(expect_see_other(&resp).path(), "/admin");
    expect_overview(app.admin_get_in(&admin.browser, "/admin").await).await;
    let audit = app.audit_tail(5).await;
    assert!(
        audit.iter().any(|a| a.action == "admin.reauthenticated"
            && a.actor.as_deref() == Some(&format!("admin:{}", admin.user.id))),
        "{audit:?}"
    );
}

#[tokio::test]
async fn a_console_form_without_its_csrf_token_or_from_another_site_is_refused() {
    let app = spawn_app().await;
    let admin = app.signed_in_admin().await;
    let password = admin.user.password.as_str();
    // The CSRF cookie comes with a page.
    let (_, html) = read_html(app.admin_get_in(&admin.browser, "/admin").await).await;
    let csrf = input_value(&html, "csrf_token").expect("the frame's sign-out form has a token");
    let post = |headers: &'static [(&'static str, &'static str)],
                fields: Vec<(&'static str, String)>| {
        let mut req = admin.browser.post(app.url("/admin/reauth"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.form(&fields).send()
    };
    let resp = post(&[], vec![("password", password.to_string())])
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN, "no CSRF token");
    let resp = post(
        &[],
        vec![
            ("csrf_token", "forged".into()),
            ("password", password.to_string()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN, "a wrong CSRF token");
    let resp = post(
        &[("Origin", "https://evil.example")],
        vec![
            ("csrf_token", csrf.clone()),
            ("password", password.to_string()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::FORBIDDEN,
        "Origin of another site"
    );
    assert_no_store(&resp, "the refusal");
    let resp = post(
        &[("Sec-Fetch-Site", "cross-site")],
        vec![
            ("csrf_token", csrf.clone()),
            ("password", password.to_string()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::FORBIDDEN,
        "Sec-Fetch-Site: cross-site"
    );
    let resp = post(
        &[("Sec-Fetch-Site", "same-site")],
        vec![
            ("csrf_token", csrf.clone()),
            ("password", password.to_string()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN, "a sibling site");
    // The same form from this site goes through (to the second step).
    let resp = post(
        &[("Sec-Fetch-Site", "same-origin")],
        vec![
            ("csrf_token", csrf.clone()),
            ("password", password.to_string()),
        ],
    )
    .await
    .unwrap();
    expect_second_step_page(resp).await;
}

#[tokio::test]
async fn admin_allowed_networks_hide_the_console_and_the_api_from_other_addresses() {
    let app = spawn_app_with(|c| {
        c.env("TESSERA_TRUSTED_PROXIES", "127.0.0.0/8")
            .env("TESSERA_ADMIN_ALLOWED_NETWORKS", "10.0.0.0/8");
    })
    .await;
    let token = app.admin_api_token().await;
    let from = |addr: &'static str, path: &'static str, bearer: Option<&str>| {
        let mut req = app
            .backchannel
            .get(app.url(path))
            .header("X-Forwarded-For", addr);
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    // From outside: 404, as for any unknown path.
    let resp = from("203.0.113.7", "/admin", None).await.unwrap();
    assert_no_store(&resp, "the hidden console");
    expect_error_page(resp, StatusCode::NOT_FOUND).await;
    let resp = from("203.0.113.7", "/admin/api/v1/overview", Some(&token))
        .await
        .unwrap();
    assert_eq!(
        expect_json(resp, StatusCode::NOT_FOUND).await["error"],
        "not_found"
    );
    // From inside: the console asks for a sign-in, the API answers the token.
    let resp = from("10.20.30.40", "/admin", None).await.unwrap();
    assert_eq!(expect_see_other(&resp).path(), "/login");
    let resp = from("10.20.30.40", "/admin/api/v1/overview", Some(&token))
        .await
        .unwrap();
    expect_json(resp, StatusCode::OK).await;
}

#[tokio::test]
async fn the_api_wants_a_token_with_the_admin_scope() {
    let app = spawn_app().await;
    // No token: 401 with a Bearer challenge, in the API's JSON shape.
    let resp = app.admin_api(Method::GET, "/overview", None).await;
    assert_no_store(&resp, "the 401");
    assert!(
        header_str(resp.headers(), WWW_AUTHENTICATE.as_str())
            .is_some_and(|v| v.starts_with("Bearer")),
    );
    let body = expect_json(resp, StatusCode::UNAUTHORIZED).await;
    assert_eq!(body["error"], "invalid_token");
    assert!(body["error_description"].is_string());
    let resp = app
        .admin_api(Method::GET, "/overview", Some("garbage"))
        .await;
    expect_json(resp, StatusCode::UNAUTHORIZED).await;
    // A valid token of a client without the scope: 403 insufficient_scope.
    let other = app
        .add_client(ClientSpec::service("reports").scope("reports:read"))
        .await;
    let tokens = expect_tokens(app.client_credentials(&other.auth(), &[]).await).await;
    let resp = app
        .admin_api(Method::GET, "/overview", Some(&tokens.access_token))
        .await;
    let challenge = header_str(resp.headers(), WWW_AUTHENTICATE.as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    let body = expect_json(resp, StatusCode::FORBIDDEN).await;
    assert_eq!(body["error"], "insufficient_scope");
    // That client cannot get the scope it was not registered for.
    let resp = app
        .client_credentials(&other.auth(), &[("scope", ADMIN_SCOPE)])
        .await;
    expect_oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_scope").await;
    // A client registered for it: 200 with the overview's figures.
    let token = app.admin_api_token().await;
    let resp = app.admin_api(Method::GET, "/overview", Some(&token)).await;
    assert_no_store(&resp, "the overview");
    let body: Value = expect_json(resp, StatusCode::OK).await;
    assert_eq!(
        body["last_24_hours"]["series"].as_array().map(Vec::len),
        Some(4)
    );
    assert_eq!(body["last_30_days"]["bucket_seconds"], 86400);
    assert!(body["keys"].as_array().is_some_and(|k| !k.is_empty()));
}

#[tokio::test]
async fn every_path_in_the_openapi_document_is_answered_and_unknown_ones_are_not() {
    let app = spawn_app().await;
    let token = app.admin_api_token().await;
    let resp = app
        .admin_api(Method::GET, "/openapi.json", Some(&token))
        .await;
    let doc = expect_json(resp, StatusCode::OK).await;
    assert_eq!(
        doc["openapi"].as_str().map(|v| v.starts_with("3.1")),
        Some(true)
    );
    let paths = doc["paths"].as_object().expect("paths");
    assert!(!paths.is_empty());
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let concrete = path.replace(['{', '}'], "");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let resp = app.admin_api(m, &concrete, Some(&token)).await;
            let status = resp.status();
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            if status == StatusCode::NOT_FOUND {
                let body = expect_json(resp, status).await;
                assert_ne!(
                    body["error_description"], "no such endpoint",
                    "{method} {path}"
                );
            }
        }
    }
    let resp = app
        .admin_api(Method::GET, "/no-such-thing", Some(&token))
        .await;
    let body = expect_json(resp, StatusCode::NOT_FOUND).await;
    assert_eq!(body["error_description"], "no such endpoint");
}
