//! Security headers on every page and JSON answer.

use super::*;

#[track_caller]
fn assert_security_headers(what: &str, headers: &HeaderMap, page: bool) {
    let get = |name: &str| {
        header_str(headers, name)
            .unwrap_or_else(|| panic!("{what} lacks the {name} header; headers: {headers:?}"))
    };
    let csp = get("content-security-policy");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{what}: the CSP allows no inline or eval'd script: {csp}"
    );
    assert!(
        csp.split(';')
            .any(|d| d.split_whitespace().collect::<Vec<_>>() == ["frame-ancestors", "'none'"]),
        "{what}: the CSP forbids framing (frame-ancestors 'none'): {csp}"
    );
    assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(get("referrer-policy"), "no-referrer", "{what}");
    assert!(
        !get("permissions-policy").trim().is_empty(),
        "{what}: Permissions-Policy is set"
    );
    assert_eq!(get("x-frame-options"), "DENY", "{what}");
    assert!(
        headers.get("strict-transport-security").is_none(),
        "{what}: no HSTS over plain http"
    );
    if page {
        assert!(
            get("cache-control").contains("no-store"),
            "{what}: pages are not cached"
        );
    }
}

#[tokio::test]
async fn every_page_and_json_answer_carries_the_security_headers() {
    let _turn = share_the_machine().await;
    let app = spawn_app_with(|c| {
        c.env("TESSERA_SELF_REGISTRATION", "true");
    })
    .await;
    let user = app.add_user("rosa@example.test").await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;
    let visitor = app.new_browser();
    let member = app.new_browser();
    app.sign_in_to_account_in(&member, &user).await;

    let pages = [
        (&visitor, "/login", StatusCode::OK),
        (&visitor, "/password/forgot", StatusCode::OK),
        (&visitor, "/password/reset?token=x", StatusCode::BAD_REQUEST),
        (&visitor, "/register", StatusCode::OK),
        (&visitor, "/no/such/page", StatusCode::NOT_FOUND),
        (&member, "/account", StatusCode::OK),
        (&member, "/account/sessions", StatusCode::OK),
        (&member, "/account/password", StatusCode::OK),
    ];
    for (browser, path, status) in pages {
        let page = open(&app, browser, path).await;
        assert_eq!(page.status, status, "{path}: {}", page.text());
        assert_security_headers(path, &page.headers, true);
    }

    let discovery = app
        .backchannel
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .expect("GET discovery");
    assert_eq!(discovery.status(), StatusCode::OK);
    assert_security_headers("the discovery document", discovery.headers(), false);

    let token_error = app
        .token(
            &client.wrong_secret_auth(),
            &[("grant_type", "refresh_token")],
        )
        .await;
    let headers = token_error.headers().clone();
    expect_oauth_error(token_error, StatusCode::UNAUTHORIZED, "invalid_client").await;
    assert_security_headers("a /token error", &headers, true);
}
