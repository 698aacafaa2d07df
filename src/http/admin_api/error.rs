//! The admin API's one error type and its one JSON shape: `{"error": code,
//! "error_description": text}` with the status it implies, `no-store`, and for 401/403 a
//! `WWW-Authenticate: Bearer` challenge (RFC 6750 §3). Internal detail goes to the log only.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};

use crate::admin::AdminError;
use crate::admin::access::{ADMIN_SCOPE, ApiDenied};
use crate::http::errors::RETRY_AFTER_SECONDS;
use crate::store::Transient;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed input (a bad cursor or limit, an invalid field): 400 `invalid_request`.
    #[error("{0}")]
    BadRequest(String),
    /// No token, or an invalid, expired or revoked one: 401 `invalid_token`.
    #[error("{0}")]
    InvalidToken(String),
    /// A token without `tessera:admin`: 403 `insufficient_scope`.
    #[error("{0}")]
    InsufficientScope(String),
    /// The named thing does not exist: 404 `not_found`.
    #[error("{0} not found")]
    NotFound(String),
    /// No such endpoint (also what a non-admin's token and a foreign network get): 404.
    #[error("no such endpoint")]
    NoSuchEndpoint,
    /// It would duplicate something that exists: 409 `conflict`.
    #[error("{0} already exists")]
    Conflict(String),
    /// The store is briefly unreachable: 503 with Retry-After.
    #[error("temporarily unavailable")]
    Unavailable,
    #[error("server error")]
    Internal,
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "invalid_request",
            Self::InvalidToken(_) => "invalid_token",
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::NotFound(_) | Self::NoSuchEndpoint => "not_found",
            Self::Conflict(_) => "conflict",
            Self::Unavailable => "temporarily_unavailable",
            Self::Internal => "server_error",
        }
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::NotFound(what) => Self::NotFound(what.to_string()),
            AdminError::Invalid(message) => Self::BadRequest(message),
            AdminError::Conflict(what) => Self::Conflict(what),
            AdminError::Store(e) => {
                tracing::error!(error = %e, "admin API: store failure");
                if e.is_transient() {
                    Self::Unavailable
                } else {
                    Self::Internal
                }
            }
        }
    }
}

impl From<ApiDenied> for ApiError {
    fn from(e: ApiDenied) -> Self {
        match e {
            ApiDenied::Unauthenticated(m) => Self::InvalidToken(m),
            ApiDenied::InsufficientScope(m) => Self::InsufficientScope(m),
            ApiDenied::Hidden => Self::NoSuchEndpoint,
            ApiDenied::Failed { transient: true } => Self::Unavailable,
            ApiDenied::Failed { transient: false } => Self::Internal,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) | Self::NoSuchEndpoint => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"));
        let challenge = match self {
            // RFC 6750 §3.1: no error code when no token was sent at all.
            Self::InvalidToken(d) => Some(format!(
                "Bearer realm=\"tessera-admin\", error=\"invalid_token\", error_description=\"{}\"",
                d.replace('"', "'")
            )),
            Self::InsufficientScope(_) => Some(format!(
                "Bearer realm=\"tessera-admin\", error=\"insufficient_scope\", scope=\"{ADMIN_SCOPE}\""
            )),
            _ => None,
        };
        if let Some(v) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            res.insert_header((header::WWW_AUTHENTICATE, v));
        }
        if matches!(self, Self::Unavailable) {
            res.insert_header((header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS)));
        }
        res.json(serde_json::json!({
            "error": self.code(),
            "error_description": self.to_string(),
        }))
    }
}
