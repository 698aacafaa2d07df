//! The admin console and its API as an admin (and others) meet them: an admin signed in with
//! a second factor, a `tessera:admin` client and its token, console pages and forms.

use reqwest::header::{CACHE_CONTROL, PRAGMA};
use reqwest::{Response, StatusCode};

use super::pages::read_html;
use super::{
    Authenticator, ClientSpec, RegisteredClient, TestApp, TestUser, expect_second_step_page,
    expect_see_other, expect_tokens, header_str, input_value, tags,
};

fn suffix() -> String {
    super::random_bytes::<6>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The scope the admin API needs.
pub const ADMIN_SCOPE: &str = "tessera:admin";

/// An admin signed in (password and authenticator app) in their own browser.
pub struct SignedInAdmin {
    pub user: TestUser,
    pub phone: Authenticator,
    pub browser: reqwest::Client,
}

impl TestApp {
    /// `tessera user add … --role admin`, with an authenticator app enrolled.
    pub async fn add_admin(&self, email: &str) -> (TestUser, Authenticator) {
        let user = self.add_user_with(email, None, &["admin"]).await;
        let (phone, _) = self.enrol_authenticator(&user).await;
        (user, phone)
    }

    /// A new browser in which `user` signs in with the password and the app's current code
    /// (a 303 to /account).
    pub async fn sign_in_with_code(
        &self,
        user: &TestUser,
        phone: &Authenticator,
    ) -> reqwest::Client {
        let browser = self.new_browser();
        let resp = self
            .plain_sign_in_in(&browser, &user.email, &user.password)
            .await;
        let step = expect_second_step_page(resp).await;
        let resp = self
            .post_second_step_in(&browser, &step, &phone.code(0))
            .await;
        assert_eq!(
            expect_see_other(&resp).path(),
            "/account",
            "the second step completes the sign-in"
        );
        browser
    }

    /// An admin, signed in with a second factor: the console opens for them.
    pub async fn signed_in_admin(&self) -> SignedInAdmin {
        let email = format!("admin-{}@example.com", suffix());
        let (user, phone) = self.add_admin(&email).await;
        let browser = self.sign_in_with_code(&user, &phone).await;
        SignedInAdmin {
            user,
            phone,
            browser,
        }
    }

    /// GET a console path in `browser`.
    pub async fn admin_get_in(&self, browser: &reqwest::Client, path: &str) -> Response {
        browser
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// A client registered for `tessera:admin` with the client_credentials grant.
    pub async fn add_admin_api_client(&self, id: &str) -> RegisteredClient {
        self.add_client(ClientSpec::service(id).scope(ADMIN_SCOPE))
            .await
    }

    /// A `tessera:admin` access token of a new client_credentials client.
    pub async fn admin_api_token(&self) -> String {
        let client = self
            .add_admin_api_client(&format!("ops-{}", suffix()))
            .await;
        let resp = self
            .client_credentials(&client.auth(), &[("scope", ADMIN_SCOPE)])
            .await;
        expect_tokens(resp).await.access_token
    }

    /// A request to the admin API (`path` under /admin/api/v1) with `token`, if any.
    pub async fn admin_api(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> Response {
        let mut req = self
            .backchannel
            .request(method, self.url(&format!("/admin/api/v1{path}")));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("an admin API request")
    }
}

/// The console's re-authentication page (any status: the caller checks it): its CSRF token.
pub async fn expect_admin_reauth_page(resp: Response) -> String {
    let (status, html) = read_html(resp).await;
    assert!(
        tags(&html, "form")
            .iter()
            .any(|f| f.attr("action") == Some("/admin/reauth")),
        "expected the console's re-authentication page ({status}):\n{html}"
    );
    assert!(
        tags(&html, "input")
            .iter()
            .any(|i| i.attr("name") == Some("password")),
        "it asks for the password:\n{html}"
    );
    input_value(&html, "csrf_token").expect("the re-authentication form carries a csrf_token")
}

/// The console's overview page.
pub async fn expect_overview(resp: Response) -> String {
    let (status, html) = read_html(resp).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        tags(&html, "nav")
            .iter()
            .any(|n| n.attr("aria-label") == Some("Admin sections")),
        "the console's frame:\n{html}"
    );
    assert!(html.contains("<h1>Overview</h1>"), "{html}");
    html
}

/// The console and the API are never cached: `Cache-Control: no-store` and `Pragma: no-cache`.
pub fn assert_no_store(resp: &reqwest::Response, what: &str) {
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

/// GET a console page as the admin; expects 200, `no-store`, no script and no inline style, and
/// returns the HTML.
pub async fn console_page(app: &TestApp, browser: &reqwest::Client, path: &str) -> String {
    let resp = app.admin_get_in(browser, path).await;
    assert_no_store(&resp, path);
    let (status, html) = read_html(resp).await;
    assert_eq!(status, StatusCode::OK, "GET {path}:\n{html}");
    assert!(!html.contains("<script"), "no script on {path}");
    assert!(!html.contains("style="), "no inline style on {path}");
    html
}

/// Posts a console form, its CSRF token taken from `html` (the page it is on).
pub async fn console_post(
    app: &TestApp,
    browser: &reqwest::Client,
    html: &str,
    action: &str,
    fields: &[(&str, &str)],
) -> Response {
    let csrf = input_value(html, "csrf_token").expect("the page carries a CSRF token");
    let mut form: Vec<(&str, &str)> = vec![("csrf_token", csrf.as_str())];
    form.extend_from_slice(fields);
    browser
        .post(app.url(action))
        .form(&form)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {action}: {e}"))
}
