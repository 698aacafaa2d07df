//! The server's HTML pages as a browser meets them: the sign-in, consent and error pages, and
//! a plain sign-in to Tessera itself.

use reqwest::header;
use reqwest::{Response, StatusCode};

use super::{TestApp, TestUser, expect_see_other, header_str, input_value, tags};

/// A page with a form that carries `csrf_token` and `request` (sign-in or consent).
#[derive(Debug, Clone)]
pub struct FormPage {
    pub status: StatusCode,
    pub csrf_token: String,
    pub request: String,
    pub html: String,
}

pub async fn read_html(resp: Response) -> (StatusCode, String) {
    let status = resp.status();
    let content_type = header_str(resp.headers(), "content-type")
        .unwrap_or("")
        .to_owned();
    let html = resp.text().await.expect("read the page");
    assert!(
        content_type.starts_with("text/html"),
        "expected an HTML page, got {content_type:?} ({status}): {html}"
    );
    (status, html)
}

fn form_page(status: StatusCode, html: String, action: &str) -> FormPage {
    let form = tags(&html, "form")
        .into_iter()
        .find(|f| f.attr("action") == Some(action))
        .unwrap_or_else(|| panic!("the page has no <form action=\"{action}\">:\n{html}"));
    assert!(
        form.attr("method")
            .is_some_and(|m| m.eq_ignore_ascii_case("post")),
        "the {action} form is posted: {form:?}"
    );
    let hidden = |name: &str| {
        let input = tags(&html, "input")
            .into_iter()
            .find(|t| t.attr("name") == Some(name))
            .unwrap_or_else(|| panic!("the page has no `{name}` input:\n{html}"));
        assert_eq!(
            input.attr("type"),
            Some("hidden"),
            "`{name}` is a hidden input"
        );
        let value = input.attr("value").unwrap_or_default().to_owned();
        assert!(!value.is_empty(), "`{name}` carries a value:\n{html}");
        value
    };
    FormPage {
        status,
        csrf_token: hidden("csrf_token"),
        request: hidden("request"),
        html,
    }
}

/// Parses a sign-in page with any status (the caller checks it).
pub async fn sign_in_page_with_status(resp: Response) -> FormPage {
    let (status, html) = read_html(resp).await;
    let page = form_page(status, html, "/login");
    let inputs = tags(&page.html, "input");
    let field = |name: &str| {
        inputs
            .iter()
            .find(|t| t.attr("name") == Some(name))
            .unwrap_or_else(|| panic!("the sign-in page has no `{name}` field:\n{}", page.html))
            .clone()
    };
    assert_eq!(
        field("email").attr("autocomplete"),
        Some("username webauthn"),
        "password managers can fill the email, and passkeys are offered there (autofill)"
    );
    assert_eq!(
        field("password").attr("type"),
        Some("password"),
        "the password is masked"
    );
    assert_eq!(
        field("password").attr("autocomplete"),
        Some("current-password"),
        "password managers can fill the password"
    );
    page
}

/// A 200 sign-in page: `<form method="post" action="/login">` with the hidden
/// `csrf_token` and `request`, an `email` and a `password` field.
pub async fn expect_sign_in_page(resp: Response) -> FormPage {
    let page = sign_in_page_with_status(resp).await;
    assert_eq!(
        page.status,
        StatusCode::OK,
        "the sign-in page is a 200:\n{}",
        page.html
    );
    page
}

/// A 200 consent page: `<form method="post" action="/consent">` with allow and deny buttons.
pub async fn expect_consent_page(resp: Response) -> FormPage {
    let (status, html) = read_html(resp).await;
    assert_eq!(status, StatusCode::OK, "the consent page is a 200:\n{html}");
    let page = form_page(status, html, "/consent");
    let choices: Vec<String> = tags(&page.html, "button")
        .into_iter()
        .chain(tags(&page.html, "input"))
        .filter(|t| t.attr("name") == Some("decision"))
        .map(|t| t.attr("value").unwrap_or_default().to_owned())
        .collect();
    assert!(
        choices.iter().any(|c| c == "allow") && choices.iter().any(|c| c == "deny"),
        "the consent page offers allow and deny, offers {choices:?}:\n{}",
        page.html
    );
    page
}

/// An HTML error page with this status and no redirect anywhere.
pub async fn expect_error_page(resp: Response, status: StatusCode) -> String {
    assert!(
        resp.headers().get(header::LOCATION).is_none(),
        "an error page must not redirect, but Location is {:?}",
        resp.headers().get(header::LOCATION)
    );
    let (actual, html) = read_html(resp).await;
    assert_eq!(actual, status, "{html}");
    html
}

impl TestApp {
    /// Signs in to Tessera itself (no application): GET /login, then POST it with an empty
    /// `request`. Returns the answer to the POST.
    pub async fn plain_sign_in_in(
        &self,
        browser: &reqwest::Client,
        email: &str,
        password: &str,
    ) -> Response {
        let resp = browser
            .get(self.url("/login"))
            .send()
            .await
            .expect("GET /login");
        let (status, html) = read_html(resp).await;
        assert_eq!(status, StatusCode::OK, "GET /login is a 200:\n{html}");
        assert!(
            tags(&html, "form")
                .iter()
                .any(|f| f.attr("action") == Some("/login")),
            "GET /login shows the sign-in form:\n{html}"
        );
        let csrf_token = input_value(&html, "csrf_token").unwrap_or_default();
        assert!(
            !csrf_token.is_empty(),
            "the sign-in form carries a csrf_token:\n{html}"
        );
        assert_eq!(
            input_value(&html, "request").as_deref(),
            Some(""),
            "a plain sign-in carries no authorization request:\n{html}"
        );
        let form = [
            ("csrf_token", csrf_token.as_str()),
            ("request", ""),
            ("email", email),
            ("password", password),
        ];
        browser
            .post(self.url("/login"))
            .form(&form)
            .send()
            .await
            .expect("POST /login")
    }

    /// A plain sign-in that must succeed: a 303 to /account.
    pub async fn sign_in_to_account_in(&self, browser: &reqwest::Client, user: &TestUser) {
        let resp = self
            .plain_sign_in_in(browser, &user.email, &user.password)
            .await;
        let location = expect_see_other(&resp);
        assert_eq!(
            location.path(),
            "/account",
            "a plain sign-in lands on /account"
        );
    }
}
