//! The browser side of the authorization code flow: authorization requests with PKCE, the
//! sign-in and consent steps, and the callbacks the client gets back.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header;
use reqwest::{Response, StatusCode};
use url::Url;

use super::{
    FormPage, RegisteredClient, TestApp, TestUser, TokenResponse, expect_sign_in_page,
    random_bytes, random_token,
};

/// The scopes a relying party asks for when a test does not say otherwise.
pub const DEFAULT_SCOPE: &str = "openid profile email offline_access";

/// The S256 PKCE challenge for a verifier (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// An authorization request as a relying party builds it: code flow, PKCE S256,
/// fresh state and nonce, the default scopes.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    pub verifier: String,
    params: Vec<(String, String)>,
}

impl AuthRequest {
    pub fn new(client: &RegisteredClient) -> Self {
        let verifier = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
        let challenge = pkce_challenge(&verifier);
        let params = [
            ("response_type", "code"),
            ("client_id", client.id.as_str()),
            ("redirect_uri", client.redirect_uri.as_str()),
            ("scope", DEFAULT_SCOPE),
            ("state", random_token().as_str()),
            ("nonce", random_token().as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        AuthRequest { verifier, params }
    }

    /// Sets a parameter, replacing any earlier value.
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.params.retain(|(k, _)| k != key);
        self.params.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn without(mut self, key: &str) -> Self {
        self.params.retain(|(k, _)| k != key);
        self
    }

    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn redirect_uri(&self) -> String {
        self.param("redirect_uri").unwrap_or_default().to_owned()
    }

    pub fn query(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.params)
            .finish()
    }
}

/// Where the server sent the browser back to the client.
#[derive(Debug, Clone)]
pub struct Callback {
    pub url: Url,
}

impl Callback {
    pub fn param(&self, name: &str) -> Option<String> {
        self.url
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    pub fn code(&self) -> String {
        assert_eq!(
            self.param("error"),
            None,
            "the callback carries an error: {}",
            self.url
        );
        self.param("code")
            .unwrap_or_else(|| panic!("the callback carries no code: {}", self.url))
    }

    pub fn error(&self) -> Option<String> {
        self.param("error")
    }
}

/// The Location of a 303 answer, resolved against the request URL.
pub fn expect_see_other(resp: &Response) -> Url {
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "expected a 303 redirect from {}, got {} (Location: {:?})",
        resp.url(),
        resp.status(),
        resp.headers().get(header::LOCATION)
    );
    let location = resp
        .headers()
        .get(header::LOCATION)
        .expect("a redirect has a Location")
        .to_str()
        .expect("the Location is ASCII");
    resp.url().join(location).expect("the Location is a URL")
}

/// A 303 back to the given redirect URI (exactly: same origin and path).
pub fn expect_callback(resp: &Response, redirect_uri: &str) -> Callback {
    let url = expect_see_other(resp);
    let registered = Url::parse(redirect_uri).expect("the redirect URI is a URL");
    assert!(
        url.origin() == registered.origin() && url.path() == registered.path(),
        "expected a redirect to {redirect_uri}, got {url}"
    );
    Callback { url }
}

/// The error callback for a request: a 303 to its redirect URI with `error`, `state` and `iss`.
pub fn expect_error_callback(
    app: &TestApp,
    resp: &Response,
    request: &AuthRequest,
    error: &str,
) -> Callback {
    let callback = expect_callback(resp, &request.redirect_uri());
    assert_eq!(
        callback.error().as_deref(),
        Some(error),
        "wrong error in {}",
        callback.url
    );
    assert_eq!(
        callback.param("code"),
        None,
        "an error callback carries no code: {}",
        callback.url
    );
    app.assert_state_and_issuer(&callback, request);
    callback
}

impl TestApp {
    /// The browser visits the authorization endpoint.
    pub async fn authorize(&self, request: &AuthRequest) -> Response {
        self.authorize_in(&self.client, request).await
    }

    pub async fn authorize_in(&self, browser: &reqwest::Client, request: &AuthRequest) -> Response {
        browser
            .get(self.url(&format!("/authorize?{}", request.query())))
            .send()
            .await
            .expect("GET /authorize")
    }

    /// The browser submits the sign-in form.
    pub async fn post_login(&self, page: &FormPage, email: &str, password: &str) -> Response {
        self.post_login_in(&self.client, page, email, password)
            .await
    }

    pub async fn post_login_in(
        &self,
        browser: &reqwest::Client,
        page: &FormPage,
        email: &str,
        password: &str,
    ) -> Response {
        let form = [
            ("csrf_token", page.csrf_token.as_str()),
            ("request", page.request.as_str()),
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

    /// The browser answers the consent page with `allow` or `deny`.
    pub async fn post_consent(&self, page: &FormPage, decision: &str) -> Response {
        let form = [
            ("csrf_token", page.csrf_token.as_str()),
            ("request", page.request.as_str()),
            ("decision", decision),
        ];
        self.client
            .post(self.url("/consent"))
            .form(&form)
            .send()
            .await
            .expect("POST /consent")
    }

    /// From a browser without a session: authorize, see the sign-in page, sign in,
    /// and come back to the client with a code (first-party clients only).
    pub async fn sign_in(&self, request: &AuthRequest, user: &TestUser) -> Callback {
        let page = expect_sign_in_page(self.authorize(request).await).await;
        let resp = self.post_login(&page, &user.email, &user.password).await;
        let callback = expect_callback(&resp, &request.redirect_uri());
        self.assert_state_and_issuer(&callback, request);
        callback
    }

    /// Gets a code for a first-party client, signing in only if the browser has no session.
    pub async fn obtain_code(&self, request: &AuthRequest, user: &TestUser) -> String {
        self.obtain_code_in(&self.client, request, user).await
    }

    /// `obtain_code` from another browser (see `new_browser`).
    pub async fn obtain_code_in(
        &self,
        browser: &reqwest::Client,
        request: &AuthRequest,
        user: &TestUser,
    ) -> String {
        let resp = self.authorize_in(browser, request).await;
        let callback = if resp.status() == StatusCode::OK {
            let page = expect_sign_in_page(resp).await;
            let resp = self
                .post_login_in(browser, &page, &user.email, &user.password)
                .await;
            expect_callback(&resp, &request.redirect_uri())
        } else {
            expect_callback(&resp, &request.redirect_uri())
        };
        self.assert_state_and_issuer(&callback, request);
        callback.code()
    }

    pub fn assert_state_and_issuer(&self, callback: &Callback, request: &AuthRequest) {
        assert_eq!(
            callback.param("state").as_deref(),
            request.param("state"),
            "the client gets its state back: {}",
            callback.url
        );
        assert_eq!(
            callback.param("iss").as_deref(),
            Some(self.issuer.as_str()),
            "the response names the issuer (RFC 9207): {}",
            callback.url
        );
    }

    /// The whole code flow for a first-party client: tokens for `user`.
    pub async fn tokens_for(&self, client: &RegisteredClient, user: &TestUser) -> TokenResponse {
        let request = AuthRequest::new(client);
        self.tokens_for_request(client, &request, user).await
    }

    pub async fn tokens_for_request(
        &self,
        client: &RegisteredClient,
        request: &AuthRequest,
        user: &TestUser,
    ) -> TokenResponse {
        let code = self.obtain_code(request, user).await;
        self.exchange_code(client, request, &code).await
    }

    /// The whole code flow for a first-party client, in the given browser.
    pub async fn tokens_for_in(
        &self,
        browser: &reqwest::Client,
        client: &RegisteredClient,
        user: &TestUser,
    ) -> TokenResponse {
        let request = AuthRequest::new(client);
        let code = self.obtain_code_in(browser, &request, user).await;
        self.exchange_code(client, &request, &code).await
    }

    /// Whether the browser has a live SSO session, as a relying party finds out: prompt=none.
    pub async fn is_signed_in_in(
        &self,
        browser: &reqwest::Client,
        client: &RegisteredClient,
    ) -> bool {
        let request = AuthRequest::new(client).with("prompt", "none");
        let resp = self.authorize_in(browser, &request).await;
        let callback = expect_callback(&resp, &client.redirect_uri);
        self.assert_state_and_issuer(&callback, &request);
        match callback.error().as_deref() {
            None => {
                callback.code();
                true
            }
            Some("login_required") => false,
            Some(other) => panic!("prompt=none answered {other}: {}", callback.url),
        }
    }
}
