//! Where engine errors become HTTP responses: OAuth JSON (RFC 6749 §5.2, RFC 6750 §3) for
//! clients, friendly pages for people. Mapped once, here.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;

use super::views::ErrorPage;
use crate::oauth::OAuthError;
use crate::store::Transient;

/// An OAuth error answered as JSON.
#[derive(Debug)]
pub struct OAuthJson(pub OAuthError);

impl std::fmt::Display for OAuthJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<OAuthError> for OAuthJson {
    fn from(e: OAuthError) -> Self {
        Self(e)
    }
}

impl ResponseError for OAuthJson {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::BAD_REQUEST)
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"));
        match &self.0 {
            OAuthError::InvalidClient(_) => {
                res.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"tessera\""));
            }
            OAuthError::RateLimited(wait) => {
                res.insert_header((header::RETRY_AFTER, HeaderValue::from(*wait)));
            }
            OAuthError::TemporarilyUnavailable => {
                res.insert_header((header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS)));
            }
            OAuthError::InvalidToken(_) | OAuthError::InsufficientScope(_) => {
                let value = format!(
                    "Bearer realm=\"tessera\", error=\"{}\", error_description=\"{}\"",
                    self.0.code(),
                    self.0.description().replace('"', "'")
                );
                if let Ok(v) = HeaderValue::from_str(&value) {
                    res.insert_header((header::WWW_AUTHENTICATE, v));
                }
            }
            _ => {}
        }
        res.json(serde_json::json!({
            "error": self.0.code(),
            "error_description": self.0.description(),
        }))
    }
}

/// A page for a person: never a stack trace, never a redirect.
pub fn page(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    let html = ErrorPage {
        title: title.to_string(),
        message: message.to_string(),
    }
    .render()
    .unwrap_or_else(|_| message.to_string());
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .content_type("text/html; charset=utf-8")
        .body(html)
}

pub fn server_error_page() -> HttpResponse {
    page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "We could not complete your request. Please try again in a moment.",
    )
}

/// How long a client or a person is asked to wait when a dependency is unreachable: long enough
/// for a database restart or fail-over, short enough not to matter to a person.
pub const RETRY_AFTER_SECONDS: u32 = 5;

/// 503 with `Retry-After`: the database (or Redis) cannot be reached for a moment. Nothing the
/// person did is wrong and nothing was lost (their session included), so the page says so.
pub fn unavailable_page() -> HttpResponse {
    let mut res = page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Please try again in a moment",
        "The service is briefly unavailable; nothing you did caused this. Wait a few seconds, \
         then try again.",
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    res
}

/// The page for a failure on our side: [`unavailable_page`] when it is transient (see
/// [`Transient`]), [`server_error_page`] otherwise. The caller has logged the error.
pub fn failure_page(e: &impl Transient) -> HttpResponse {
    if e.is_transient() {
        unavailable_page()
    } else {
        server_error_page()
    }
}

pub async fn not_found() -> HttpResponse {
    page(
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is nothing at this address.",
    )
}
