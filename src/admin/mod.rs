//! The operator's engine: everything the admin console (`http::admin`), its JSON API
//! (`http::admin_api`) and the CLI (`cli`) can do, written once here and called by all three.
//! No HTTP and no SQL: rules, validation and audit entries live here, storage behind the store
//! traits.

pub mod access;
pub mod audit_log;
pub mod clients;
pub mod keys;
pub mod overview;
pub mod paging;
pub mod sessions;
pub mod users;

use crate::audit::AuditEvent;
use crate::oauth::Provider;
use crate::store::{StoreError, Transient};

/// Writes an operator action to the audit log with `actor` as its actor (every operator
/// action ends here, so the console, the API and the CLI name their actors the same way).
pub async fn record(p: &Provider, actor: &Actor, event: AuditEvent) {
    p.audit(event.actor(actor.audit_name())).await;
}

/// Who performed an operator action; recorded as the audit entry's actor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// `tessera …` on the server.
    Cli,
    /// An admin signed in to the console, by user id.
    Admin(String),
    /// A `tessera:admin` access token: the client it was issued to and, for a user's own
    /// token, the user.
    Api {
        client_id: String,
        user_id: Option<String>,
    },
}

impl Actor {
    /// The audit log's `actor` field: `cli`, `admin:<user id>`, `api:<client id>` or
    /// `api:<client id>:<user id>`.
    pub fn audit_name(&self) -> String {
        match self {
            Actor::Cli => "cli".to_string(),
            Actor::Admin(user_id) => format!("admin:{user_id}"),
            Actor::Api {
                client_id,
                user_id: None,
            } => format!("api:{client_id}"),
            Actor::Api {
                client_id,
                user_id: Some(user_id),
            } => format!("api:{client_id}:{user_id}"),
        }
    }
}

/// The one error type of operator actions; the console, the API and the CLI each map it once.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The user, client, session or key named does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request is malformed or breaks a rule; the message is safe to show to the admin.
    #[error("{0}")]
    Invalid(String),
    /// It would duplicate something that exists (an email, a client id).
    #[error("{0} already exists")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Transient for AdminError {
    fn is_transient(&self) -> bool {
        matches!(self, AdminError::Store(e) if e.is_transient())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_actor_has_its_own_audit_name() {
        assert_eq!(Actor::Cli.audit_name(), "cli");
        assert_eq!(Actor::Admin("u1".into()).audit_name(), "admin:u1");
        assert_eq!(
            Actor::Api {
                client_id: "ops".into(),
                user_id: None
            }
            .audit_name(),
            "api:ops"
        );
        assert_eq!(
            Actor::Api {
                client_id: "ops".into(),
                user_id: Some("u1".into())
            }
            .audit_name(),
            "api:ops:u1"
        );
    }
}
