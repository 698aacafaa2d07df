//! OAuth 2.0 errors: one variant per RFC error code (RFC 6749 §4.1.2.1, §5.2; RFC 6750 §3.1;
//! RFC 8707 §2; OIDC Core §3.1.2.6). The description is for the client developer and never
//! carries internal detail; that goes to the log where the error is created.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    #[error("invalid_client: {0}")]
    InvalidClient(String),
    #[error("invalid_grant: {0}")]
    InvalidGrant(String),
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(String),
    #[error("unsupported_grant_type")]
    UnsupportedGrantType(String),
    #[error("unsupported_response_type")]
    UnsupportedResponseType(String),
    #[error("invalid_scope: {0}")]
    InvalidScope(String),
    #[error("invalid_target: {0}")]
    InvalidTarget(String),
    #[error("access_denied")]
    AccessDenied(String),
    #[error("login_required")]
    LoginRequired,
    #[error("consent_required")]
    ConsentRequired,
    #[error("request_not_supported")]
    RequestNotSupported,
    #[error("request_uri_not_supported")]
    RequestUriNotSupported,
    /// RFC 6750: the bearer token is missing, expired, revoked or malformed.
    #[error("invalid_token: {0}")]
    InvalidToken(String),
    #[error("insufficient_scope: {0}")]
    InsufficientScope(String),
    /// Something failed on our side; details were logged where it happened.
    #[error("server_error")]
    ServerError,
    #[error("temporarily_unavailable")]
    TemporarilyUnavailable,
    /// Too many requests: answered with 429 and `Retry-After` (RFC 6585 §4).
    #[error("rate limited")]
    RateLimited(i64),
}

impl OAuthError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_) => "invalid_request",
            Self::InvalidClient(_) => "invalid_client",
            Self::InvalidGrant(_) => "invalid_grant",
            Self::UnauthorizedClient(_) => "unauthorized_client",
            Self::UnsupportedGrantType(_) => "unsupported_grant_type",
            Self::UnsupportedResponseType(_) => "unsupported_response_type",
            Self::InvalidScope(_) => "invalid_scope",
            Self::InvalidTarget(_) => "invalid_target",
            Self::AccessDenied(_) => "access_denied",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::RequestNotSupported => "request_not_supported",
            Self::RequestUriNotSupported => "request_uri_not_supported",
            Self::InvalidToken(_) => "invalid_token",
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable | Self::RateLimited(_) => "temporarily_unavailable",
        }
    }

    pub fn description(&self) -> String {
        match self {
            Self::InvalidRequest(d)
            | Self::InvalidClient(d)
            | Self::InvalidGrant(d)
            | Self::UnauthorizedClient(d)
            | Self::UnsupportedGrantType(d)
            | Self::UnsupportedResponseType(d)
            | Self::InvalidScope(d)
            | Self::InvalidTarget(d)
            | Self::AccessDenied(d)
            | Self::InvalidToken(d)
            | Self::InsufficientScope(d) => d.clone(),
            Self::LoginRequired => "the user must sign in".into(),
            Self::ConsentRequired => "the user must consent".into(),
            Self::RequestNotSupported => "request objects are not supported".into(),
            Self::RequestUriNotSupported => "request_uri is not supported".into(),
            Self::ServerError => "the server could not complete the request".into(),
            Self::TemporarilyUnavailable => "the server is temporarily unavailable".into(),
            Self::RateLimited(s) => format!("too many requests; retry after {s} seconds"),
        }
    }

    /// HTTP status at the token, revocation and introspection endpoints (RFC 6749 §5.2).
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidClient(_) | Self::InvalidToken(_) => 401,
            Self::InsufficientScope(_) => 403,
            Self::ServerError => 500,
            Self::TemporarilyUnavailable => 503,
            Self::RateLimited(_) => 429,
            _ => 400,
        }
    }
}

impl From<crate::store::StoreError> for OAuthError {
    /// A database that cannot be reached for a moment is `temporarily_unavailable` (503 with
    /// `Retry-After`), never a refusal of the request nor a `server_error`.
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::Transient as _;
        if e.is_transient() {
            tracing::warn!(error = %e, "store unavailable");
            OAuthError::TemporarilyUnavailable
        } else {
            tracing::error!(error = %e, "store failure");
            OAuthError::ServerError
        }
    }
}

impl crate::store::Transient for OAuthError {
    fn is_transient(&self) -> bool {
        matches!(self, OAuthError::TemporarilyUnavailable)
    }
}

impl From<crate::keys::KeyError> for OAuthError {
    fn from(e: crate::keys::KeyError) -> Self {
        tracing::error!(error = %e, "signing failure");
        OAuthError::ServerError
    }
}
