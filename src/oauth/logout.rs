//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): what a sign-out request asks
//! for, whether it may end the browser's session without asking, and where the browser goes
//! afterwards. The HTTP adapter only renders the decision.

use serde::Deserialize;

use super::Provider;
use super::authorize::{LOGOUT_PURPOSE, open_params, seal_params, with_query};
use super::params::Params;
use crate::audit::AuditEvent;
use crate::auth::session::ActiveSession;
use crate::clock::Timestamp;
use crate::store::StoreResult;

/// The claims read from an `id_token_hint`.
#[derive(Deserialize)]
struct HintClaims {
    aud: serde_json::Value,
    #[serde(default)]
    sid: Option<String>,
}

/// A sign-out request whose parameters hold up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutRequest {
    /// Where to send the browser afterwards (a registered `post_logout_redirect_uri`, already
    /// carrying `state`); `None` shows the signed-out page.
    pub target: Option<String>,
    /// The session the relying party asked to end, from a valid `id_token_hint`.
    pub hinted_sid: Option<String>,
}

impl LogoutRequest {
    /// Whether the browser's session (if any) may end without asking the person: when there is
    /// none to protect, or when the relying party proved with a valid `id_token_hint` that it
    /// speaks for this very session. Otherwise the person confirms, so a third-party page
    /// cannot sign people out (RP-Initiated Logout 1.0 §2).
    pub fn ends_without_asking(&self, current: Option<&ActiveSession>) -> bool {
        match (current, &self.hinted_sid) {
            (None, _) => true,
            (Some(a), Some(sid)) => *sid == a.session.id,
            (Some(_), None) => false,
        }
    }
}

/// Why a sign-out request is refused (shown to the person, never redirected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutRejection {
    /// The `id_token_hint` is not an ID token signed by this provider.
    InvalidHint,
    /// `client_id` names another client than the `id_token_hint`'s audience.
    ClientMismatch,
    /// The `post_logout_redirect_uri` is not registered for the client (or no client is known).
    UnregisteredRedirect,
    /// The client could not be read.
    Internal,
}

impl LogoutRejection {
    /// The message shown to the person.
    pub fn message(self) -> &'static str {
        match self {
            Self::InvalidHint => "The sign-out request carries an invalid id_token_hint.",
            Self::ClientMismatch => "client_id does not match the id_token_hint.",
            Self::UnregisteredRedirect => {
                "The post_logout_redirect_uri is not registered for this application."
            }
            Self::Internal => "Something went wrong on our side.",
        }
    }
}

/// Reads a sign-out request: verifies the `id_token_hint` (an expired one still names its
/// session), matches it with `client_id`, and accepts a `post_logout_redirect_uri` only when it
/// is registered for that client, compared by exact string.
pub async fn understand(p: &Provider, params: &Params) -> Result<LogoutRequest, LogoutRejection> {
    let hint = match params.get("id_token_hint") {
        Some(h) => Some(
            p.keys()
                .verify_ignoring_expiry::<HintClaims>(h, None, &p.settings.issuer)
                .map_err(|_| LogoutRejection::InvalidHint)?,
        ),
        None => None,
    };
    let hinted_client = hint.as_ref().and_then(|h| match &h.aud {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(a) => a.first().and_then(|v| v.as_str()).map(String::from),
        _ => None,
    });
    let client_id = match (params.get("client_id"), hinted_client) {
        (Some(c), Some(h)) if c != h => return Err(LogoutRejection::ClientMismatch),
        (Some(c), _) => Some(c.to_string()),
        (None, h) => h,
    };
    let target = match params.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let client = match &client_id {
                Some(id) => p.client(id).await.map_err(|e| {
                    tracing::error!(error = %e, "client lookup failed");
                    LogoutRejection::Internal
                })?,
                None => None,
            };
            let registered =
                client.is_some_and(|c| c.post_logout_redirect_uris.iter().any(|r| r == uri));
            if !registered {
                return Err(LogoutRejection::UnregisteredRedirect);
            }
            let mut pairs = Vec::new();
            if let Some(s) = params.get("state") {
                pairs.push(("state", s));
            }
            Some(with_query(uri, &pairs))
        }
    };
    Ok(LogoutRequest {
        target,
        hinted_sid: hint.and_then(|h| h.sid),
    })
}

/// The request carried by the confirmation page, sealed for the logout step only.
pub fn seal(p: &Provider, params: &Params, now: Timestamp) -> String {
    seal_params(p, LOGOUT_PURPOSE, params, now)
}

/// A confirmation form that came back: `Ok(None)` when it carried no request (a plain sign-out),
/// `Err(Expired)` when its seal is too old or not ours, otherwise the request read again (the
/// client may have changed since the page was shown).
pub async fn reopen(
    p: &Provider,
    sealed: &str,
    now: Timestamp,
) -> Result<Option<LogoutRequest>, Reopened> {
    if sealed.is_empty() {
        return Ok(None);
    }
    let params = open_params(p, LOGOUT_PURPOSE, sealed, now).ok_or(Reopened::Expired)?;
    understand(p, &params)
        .await
        .map(Some)
        .map_err(Reopened::Rejected)
}

/// Why a confirmation form could not be honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reopened {
    /// The form is too old, or was not sealed for the logout step.
    Expired,
    Rejected(LogoutRejection),
}

/// Ends the browser's session with its tokens, and audits it.
pub async fn sign_out(p: &Provider, active: &ActiveSession) -> StoreResult<()> {
    p.revoke_session(&active.session.id).await?;
    tracing::info!(session_id = %active.session.id, user_id = %active.user.id, "signed out");
    p.audit(
        AuditEvent::new("session.logout")
            .actor(&active.user.id)
            .subject(&active.user.id)
            .detail("session", active.session.id.clone()),
    )
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::LogoutRequest;
    use crate::auth::session::ActiveSession;
    use crate::store::{Session, User};

    fn browser_session(id: &str) -> ActiveSession {
        ActiveSession {
            session: Session {
                id: id.into(),
                token_hash: Vec::new(),
                user_id: "u".into(),
                created_at: 0,
                created_ms: 0,
                last_seen_at: 0,
                expires_at: 100,
                auth_time: 0,
                amr: Vec::new(),
                user_agent: None,
                ip: None,
                revoked_at: None,
            },
            user: User {
                id: "u".into(),
                email: "ada@example.org".into(),
                name: None,
                roles: Vec::new(),
                password_hash: crate::secret::SecretString::new(String::new()),
                disabled: false,
                email_verified: true,
                created_at: 0,
            },
        }
    }

    fn hinting(sid: Option<&str>) -> LogoutRequest {
        LogoutRequest {
            target: None,
            hinted_sid: sid.map(String::from),
        }
    }

    #[test]
    fn a_browser_without_a_session_is_signed_out_without_asking() {
        assert!(hinting(None).ends_without_asking(None));
        assert!(hinting(Some("other")).ends_without_asking(None));
    }

    #[test]
    fn a_hint_for_this_very_session_ends_it_without_asking() {
        let mine = browser_session("mine");
        assert!(hinting(Some("mine")).ends_without_asking(Some(&mine)));
    }

    #[test]
    fn a_request_without_a_hint_or_hinting_another_session_asks_the_person() {
        let mine = browser_session("mine");
        assert!(!hinting(None).ends_without_asking(Some(&mine)));
        assert!(!hinting(Some("other")).ends_without_asking(Some(&mine)));
    }
}
