//! What a relying party calls without a browser: discovery, JWKS, token, revocation,
//! introspection and userinfo, one helper per endpoint, and the token answers.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use reqwest::header;
use reqwest::{Response, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use super::{
    AuthRequest, ClientAuth, RegisteredClient, TestApp, basic_authorization, expect_json,
    header_str,
};

impl TestApp {
    pub async fn discovery(&self) -> Value {
        let resp = self
            .backchannel
            .get(self.url("/.well-known/openid-configuration"))
            .send()
            .await
            .expect("GET the discovery document");
        expect_json(resp, StatusCode::OK).await
    }

    pub async fn jwks(&self) -> JwkSet {
        let resp = self
            .backchannel
            .get(self.url("/jwks.json"))
            .send()
            .await
            .expect("GET /jwks.json");
        let status = resp.status();
        let content_type = header_str(resp.headers(), "content-type")
            .unwrap_or("")
            .to_owned();
        let body = resp.text().await.expect("read the JWKS");
        assert_eq!(
            status,
            StatusCode::OK,
            "/jwks.json answered {status}: {body}"
        );
        assert!(
            content_type.starts_with("application/json")
                || content_type.starts_with("application/jwk-set+json"),
            "/jwks.json is served as JSON, not {content_type:?}"
        );
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("/jwks.json is not a JWK set ({e}): {body}"))
    }

    /// The key ids the JWKS publishes right now.
    pub async fn published_kids(&self) -> BTreeSet<String> {
        self.jwks()
            .await
            .keys
            .iter()
            .map(|k| {
                k.common
                    .key_id
                    .clone()
                    .expect("every published key has a kid")
            })
            .collect()
    }

    /// POSTs a form to an endpoint with the given client authentication.
    pub async fn post_as_client(
        &self,
        path: &str,
        auth: &ClientAuth,
        form: &[(&str, &str)],
    ) -> Response {
        let mut fields: Vec<(String, String)> = form
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut builder = self.backchannel.post(self.url(path));
        match auth {
            ClientAuth::Basic { id, secret } => {
                builder = builder.header(header::AUTHORIZATION, basic_authorization(id, secret));
            }
            ClientAuth::Post { id, secret } => {
                fields.push(("client_id".into(), id.clone()));
                fields.push(("client_secret".into(), secret.clone()));
            }
            ClientAuth::Public { id } => fields.push(("client_id".into(), id.clone())),
            ClientAuth::Anonymous => {}
        }
        builder
            .form(&fields)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    pub async fn token(&self, auth: &ClientAuth, form: &[(&str, &str)]) -> Response {
        self.post_as_client("/token", auth, form).await
    }

    /// Redeems a code as the client would; the exchange must succeed.
    pub async fn exchange_code(
        &self,
        client: &RegisteredClient,
        request: &AuthRequest,
        code: &str,
    ) -> TokenResponse {
        let resp = self.redeem_code(&client.auth(), request, code).await;
        expect_tokens(resp).await
    }

    /// Redeems a code and returns the raw answer.
    pub async fn redeem_code(
        &self,
        auth: &ClientAuth,
        request: &AuthRequest,
        code: &str,
    ) -> Response {
        let redirect_uri = request.redirect_uri();
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri.as_str()),
            ("code_verifier", request.verifier.as_str()),
        ];
        self.token(auth, &form).await
    }

    pub async fn refresh(&self, auth: &ClientAuth, refresh_token: &str) -> Response {
        self.token(
            auth,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    pub async fn client_credentials(&self, auth: &ClientAuth, extra: &[(&str, &str)]) -> Response {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend_from_slice(extra);
        self.token(auth, &form).await
    }

    pub async fn revoke(&self, auth: &ClientAuth, token: &str, hint: Option<&str>) -> Response {
        let mut form = vec![("token", token)];
        if let Some(hint) = hint {
            form.push(("token_type_hint", hint));
        }
        self.post_as_client("/revoke", auth, &form).await
    }

    /// Introspects a token; the call itself must succeed.
    pub async fn introspect(&self, auth: &ClientAuth, token: &str) -> Value {
        let resp = self
            .post_as_client("/introspect", auth, &[("token", token)])
            .await;
        expect_json(resp, StatusCode::OK).await
    }

    /// Whether introspection calls the token active.
    pub async fn is_active(&self, auth: &ClientAuth, token: &str) -> bool {
        let body = self.introspect(auth, token).await;
        body["active"]
            .as_bool()
            .unwrap_or_else(|| panic!("introspection answers with a boolean `active`: {body}"))
    }

    pub async fn userinfo(&self, access_token: &str) -> Response {
        self.backchannel
            .get(self.url("/userinfo"))
            .bearer_auth(access_token)
            .send()
            .await
            .expect("GET /userinfo")
    }

    /// Polls introspection every 50 ms until the token is inactive; how long that took, or
    /// `None` if it was still active after `limit`.
    pub async fn time_until_inactive(
        &self,
        auth: &ClientAuth,
        token: &str,
        limit: Duration,
    ) -> Option<Duration> {
        let start = Instant::now();
        loop {
            if !self.is_active(auth, token).await {
                return Some(start.elapsed());
            }
            if start.elapsed() > limit {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The refresh token must be refused with `invalid_grant`; `whose` says which one it is.
    pub async fn assert_refresh_refused(
        &self,
        client: &RegisteredClient,
        refresh_token: &str,
        whose: &str,
    ) {
        let resp = self.refresh(&client.auth(), refresh_token).await;
        let status = resp.status();
        let body = resp.text().await.expect("read the token response");
        let error = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned));
        let shown: String = body.chars().take(200).collect();
        assert!(
            status == StatusCode::BAD_REQUEST && error.as_deref() == Some("invalid_grant"),
            "{whose}: the refresh token should be refused with invalid_grant, but /token answered {status}: {shown}..."
        );
    }

    /// Introspection must call the token active at this moment.
    pub async fn assert_active(&self, client: &RegisteredClient, token: &str, whose: &str) {
        assert!(
            self.is_active(&client.auth(), token).await,
            "{whose}: introspection should call the token active"
        );
    }

    /// Introspection must call the token inactive at this moment, with nothing else said.
    pub async fn assert_inactive(&self, client: &RegisteredClient, token: &str, whose: &str) {
        let answer = self.introspect(&client.auth(), token).await;
        assert_eq!(
            answer,
            serde_json::json!({ "active": false }),
            "{whose}: introspection should answer {{\"active\": false}} at once"
        );
    }
}

/// What the token endpoint answers on success.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    pub scope: String,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
}

impl TokenResponse {
    pub fn refresh_token(&self) -> &str {
        self.refresh_token
            .as_deref()
            .expect("the token response has a refresh_token")
    }

    pub fn id_token(&self) -> &str {
        self.id_token
            .as_deref()
            .expect("the token response has an id_token")
    }

    pub fn scopes(&self) -> BTreeSet<String> {
        scope_set(&self.scope)
    }
}

/// A successful token response: 200, `Cache-Control: no-store`, a Bearer token.
pub async fn expect_tokens(resp: Response) -> TokenResponse {
    let cache_control = header_str(resp.headers(), "cache-control")
        .unwrap_or("")
        .to_owned();
    let body = expect_json(resp, StatusCode::OK).await;
    assert!(
        cache_control.contains("no-store"),
        "token responses must not be cached: Cache-Control is {cache_control:?}"
    );
    let tokens: TokenResponse = serde_json::from_value(body.clone())
        .unwrap_or_else(|e| panic!("not a token response ({e}): {body}"));
    assert_eq!(tokens.token_type, "Bearer", "{body}");
    assert!(tokens.expires_in > 0, "{body}");
    tokens
}

pub fn scope_set(scope: &str) -> BTreeSet<String> {
    scope.split_whitespace().map(str::to_owned).collect()
}
