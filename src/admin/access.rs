//! Who may use the admin console and its API (docs/DESIGN.md, "Admin console").
//!
//! **Console.** A browser session gets in only when its user has the `admin` role, the session
//! is multi-factor (acr "2", `auth::mfa::level`) and its *console window* is open. The window
//! opens with a multi-factor sign-in (the session's `auth_time`) or a console re-authentication
//! (the password typed again, then the second factor through the existing step-up), and stays
//! open while the console is used: every console request slides it (`admin_seen:{session id}`
//! in the fleet, so shared through Redis when Redis is configured). After `idle` seconds
//! without a console request it is closed and the console asks for the re-authentication.
//! A session of someone who is not an admin is told nothing ([`Verdict::Hidden`]: the console
//! answers as it does for an unknown path). A disabled user or a revoked session has no live
//! session at all (`auth::session::resolve`), so it is sent to the sign-in page.
//!
//! **API.** A bearer access token Tessera issued (signature, `iss`, `exp` and revocation checked
//! as for `/userinfo`), carrying [`ADMIN_SCOPE`]: either a client's own token
//! (client_credentials) from a client still registered for the scope, or a token of an admin
//! user who is not disabled and signed in with a second factor.
//!
//! **Networks.** `admin_allowed_networks`, when set, hides both from every other client address
//! (checked in `http::admin`, where the client address is known).

use super::Actor;
use crate::audit::AuditEvent;
use crate::auth::mfa::level::Acr;
use crate::auth::mfa::manage::{self, ChangeError};
use crate::auth::password::PasswordHasher;
use crate::auth::session::ActiveSession;
use crate::auth::throttle::ThrottlePolicy;
use crate::clock::Timestamp;
use crate::oauth::introspect::check_access_token;
use crate::oauth::{OAuthError, Provider, scope};
use crate::secret::SecretString;
use crate::store::{ClientStore, StoreError, Transient, User, UserStore};

/// The role that opens the console.
pub const ADMIN_ROLE: &str = "admin";
/// The scope an access token needs for the admin API.
pub const ADMIN_SCOPE: &str = "tessera:admin";
/// The console window's default length without a console request (`admin_idle_timeout`).
pub const DEFAULT_IDLE_TIMEOUT: i64 = 900;

/// Whether `user` holds the admin role.
pub fn is_admin(user: &User) -> bool {
    user.roles.iter().any(|r| r == ADMIN_ROLE)
}

/// The gate's answer for one console request.
#[derive(Debug)]
pub enum Verdict {
    /// In: the admin, as the audit log names them.
    Allowed(Actor),
    /// No live session: sign in first.
    SignIn,
    /// An admin whose session is not multi-factor, or whose window closed: re-authenticate.
    Reauth,
    /// Not an admin: the console does not exist for them.
    Hidden,
}

fn seen_key(session_id: &str) -> String {
    format!("admin_seen:{session_id}")
}

/// When the console window of `active` last moved: its multi-factor sign-in, a completed
/// console re-authentication, or its last console request.
async fn window_moved(p: &Provider, active: &ActiveSession) -> Timestamp {
    let seen = p.fleet.get(&seen_key(&active.session.id), p.now()).await;
    active.session.auth_time.max(seen)
}

async fn slide(p: &Provider, session_id: &str, idle: i64) {
    let now = p.now();
    p.fleet.put(&seen_key(session_id), now, idle + 1, now).await;
}

/// The gate for one console request by the browser session `active` (`None`: no live
/// session). An allowed request slides the window to now.
pub async fn console(p: &Provider, active: Option<&ActiveSession>, idle: i64) -> Verdict {
    let Some(active) = active else {
        return Verdict::SignIn;
    };
    if !is_admin(&active.user) {
        return Verdict::Hidden;
    }
    if Acr::of_strings(&active.session.amr) != Acr::MultiFactor {
        return Verdict::Reauth;
    }
    if p.now() - window_moved(p, active).await > idle {
        return Verdict::Reauth;
    }
    slide(p, &active.session.id, idle).await;
    Verdict::Allowed(Actor::Admin(active.user.id.clone()))
}

fn password_key(session_id: &str) -> String {
    format!("admin_password:{session_id}")
}

/// The console's re-authentication, first half: the password typed again on this session
/// (checked and throttled as `manage::confirm_password` does for the account's security
/// page). Right, it is remembered for [`manage::REAUTH_WINDOW`] seconds, for
/// [`reauthenticated`]; the second factor comes next, through the step-up.
pub async fn confirm_password(
    p: &Provider,
    hasher: &PasswordHasher,
    rules: &ThrottlePolicy,
    active: &ActiveSession,
    password: &SecretString,
) -> Result<(), ChangeError> {
    manage::confirm_password(p, hasher, rules, active, password).await?;
    let now = p.now();
    p.fleet
        .put(
            &password_key(&active.session.id),
            now,
            manage::REAUTH_WINDOW + 1,
            now,
        )
        .await;
    Ok(())
}

/// The console's re-authentication, second half, called when a step-up raised `active` to
/// multi-factor without an authorization request: opens the console window if this session
/// typed its password on the console's re-authentication page within the last
/// [`manage::REAUTH_WINDOW`] seconds and is an admin's. Returns whether it opened.
pub async fn reauthenticated(p: &Provider, active: &ActiveSession, idle: i64) -> bool {
    let now = p.now();
    let typed = p.fleet.get(&password_key(&active.session.id), now).await;
    let password_recently = typed > 0 && now - typed <= manage::REAUTH_WINDOW;
    if !is_admin(&active.user)
        || Acr::of_strings(&active.session.amr) != Acr::MultiFactor
        || !password_recently
    {
        return false;
    }
    p.fleet.clear(&[password_key(&active.session.id)]).await;
    slide(p, &active.session.id, idle).await;
    let actor = Actor::Admin(active.user.id.clone());
    super::record(
        p,
        &actor,
        AuditEvent::new("admin.reauthenticated")
            .subject(&active.user.id)
            .detail("session", active.session.id.clone()),
    )
    .await;
    true
}

/// Why an API request is refused.
#[derive(Debug, thiserror::Error)]
pub enum ApiDenied {
    /// No token, or one that is invalid, expired or revoked (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// A valid token without [`ADMIN_SCOPE`], or from a client no longer registered for it (403).
    #[error("{0}")]
    InsufficientScope(String),
    /// A user's token whose user is not an admin (or not multi-factor): hidden like the console.
    #[error("not found")]
    Hidden,
    /// Our side failed (the store, or the keyring); `transient`: try again shortly.
    #[error("the token could not be checked")]
    Failed { transient: bool },
}

impl From<StoreError> for ApiDenied {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "admin API: store failure");
        ApiDenied::Failed {
            transient: e.is_transient(),
        }
    }
}

/// The actor behind an admin API request's bearer token (see the module documentation).
pub async fn api_actor(p: &Provider, bearer: Option<&str>) -> Result<Actor, ApiDenied> {
    let Some(token) = bearer.filter(|t| !t.is_empty() && t.len() <= 8192) else {
        return Err(ApiDenied::Unauthenticated(
            "an access token is required".into(),
        ));
    };
    let claims = match check_access_token(p, token).await {
        Ok(c) => c,
        Err(OAuthError::TemporarilyUnavailable) => {
            return Err(ApiDenied::Failed { transient: true });
        }
        Err(OAuthError::ServerError) => return Err(ApiDenied::Failed { transient: false }),
        Err(e) => return Err(ApiDenied::Unauthenticated(e.description())),
    };
    if !scope::contains(&claims.scope, ADMIN_SCOPE) {
        return Err(ApiDenied::InsufficientScope(format!(
            "the access token lacks the {ADMIN_SCOPE} scope"
        )));
    }
    // The client must still be registered for the scope (it may have been changed since).
    let registered = p
        .store
        .find_client(&claims.client_id)
        .await?
        .is_some_and(|c| c.scopes.iter().any(|s| s == ADMIN_SCOPE));
    if !registered {
        return Err(ApiDenied::InsufficientScope(format!(
            "the client is not registered for the {ADMIN_SCOPE} scope"
        )));
    }
    if claims.sid.is_none() && claims.sub == claims.client_id {
        return Ok(Actor::Api {
            client_id: claims.client_id,
            user_id: None,
        });
    }
    let user = p.store.find_user(&claims.sub).await?;
    let multi_factor = claims.acr.as_deref() == Some(Acr::MultiFactor.as_str());
    match user {
        Some(u) if !u.disabled && is_admin(&u) && multi_factor => Ok(Actor::Api {
            client_id: claims.client_id,
            user_id: Some(u.id),
        }),
        Some(u) if u.disabled => Err(ApiDenied::Unauthenticated(
            "the access token was revoked".into(),
        )),
        _ => Err(ApiDenied::Hidden),
    }
}

#[cfg(test)]
mod tests;
