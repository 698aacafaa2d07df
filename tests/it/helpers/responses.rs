//! Checks on HTTP answers: headers, JSON bodies and RFC 6749 error answers.

use reqwest::header::HeaderMap;
use reqwest::{Response, StatusCode};
use serde_json::Value;

pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Asserts the status and a JSON body; returns the body.
pub async fn expect_json(resp: Response, status: StatusCode) -> Value {
    let url = resp.url().clone();
    let actual = resp.status();
    let content_type = header_str(resp.headers(), "content-type")
        .unwrap_or("")
        .to_owned();
    let body = resp.text().await.expect("read the response body");
    assert_eq!(actual, status, "{url} answered {actual}: {body}");
    assert!(
        content_type.starts_with("application/json"),
        "{url} should answer JSON, answered {content_type:?}: {body}"
    );
    serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{url} answered invalid JSON ({e}): {body}"))
}

/// Asserts an RFC 6749 error answer: status, JSON `error` code and a textual
/// `error_description`. Returns the body.
pub async fn expect_oauth_error(resp: Response, status: StatusCode, error: &str) -> Value {
    let www_authenticate = header_str(resp.headers(), "www-authenticate").map(str::to_owned);
    let body = expect_json(resp, status).await;
    assert_eq!(body["error"], error, "wrong error code: {body}");
    assert!(
        body["error_description"].is_string(),
        "errors carry an error_description: {body}"
    );
    if error == "invalid_client" {
        assert!(
            www_authenticate.is_some(),
            "a 401 invalid_client carries a WWW-Authenticate challenge: {body}"
        );
    }
    body
}
