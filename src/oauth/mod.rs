//! The protocol engine: OAuth 2.0 and OpenID Connect rules, with no HTTP framework and no SQL.
//! HTTP adapters in `crate::http` call one function here per request.

pub mod authorize;
pub mod backchannel;
pub mod cache;
pub mod client_auth;
pub mod client_id;
pub mod discovery;
pub mod error;
pub mod feed;
pub mod grants;
pub mod introspect;
pub mod logout;
pub mod params;
pub mod pkce;
pub mod revoke;
pub mod scope;
pub mod tokens;
pub mod userinfo;

#[cfg(test)]
mod engine_tests;

use std::sync::Arc;

use crate::clock::{SharedClock, Timestamp};
use crate::config::Config;
use crate::crypto::Crypto;
use crate::keys::{Keyring, SharedKeyring};
use crate::revocation::{Revocation, RevocationKind};
use crate::store::{SessionStore, SqlStore, StoreError, StoreResult};

pub use error::OAuthError;

/// Lifetimes and identity of this provider, in seconds.
#[derive(Debug, Clone)]
pub struct Settings {
    pub issuer: String,
    pub access_token_ttl: i64,
    pub id_token_ttl: i64,
    pub auth_code_ttl: i64,
    pub refresh_reuse_grace: i64,
    pub refresh_idle_ttl: i64,
    pub refresh_absolute_ttl: i64,
    pub session_idle_ttl: i64,
    pub session_absolute_ttl: i64,
    /// Token requests per minute per authenticated confidential client (0 = unlimited).
    pub token_rate_limit: i64,
    /// Failed token requests per minute per client address before 429 (0 = unlimited).
    pub token_failure_limit: i64,
    /// Failed client authentications per IP within `ip_failure_window` before 429.
    pub client_auth_failure_limit: i64,
    pub client_auth_failure_window: i64,
    /// Roles whose holders must reach acr "2" (`mfa_required_roles`).
    pub mfa_required_roles: Vec<String>,
}

impl Settings {
    pub fn from_config(c: &Config) -> Self {
        let s = |d: std::time::Duration| d.as_secs() as i64;
        Self {
            issuer: c.issuer.clone(),
            access_token_ttl: s(c.access_token_ttl),
            id_token_ttl: s(c.id_token_ttl),
            auth_code_ttl: s(c.auth_code_ttl),
            refresh_reuse_grace: s(c.refresh_reuse_grace),
            refresh_idle_ttl: s(c.refresh_idle_ttl),
            refresh_absolute_ttl: s(c.refresh_absolute_ttl),
            session_idle_ttl: s(c.session_idle_ttl),
            session_absolute_ttl: s(c.session_absolute_ttl),
            token_rate_limit: c.token_rate_limit,
            token_failure_limit: c.token_failure_limit,
            client_auth_failure_limit: c.ip_failure_limit,
            client_auth_failure_window: s(c.ip_failure_window),
            mfa_required_roles: c.mfa_required_roles.clone(),
        }
    }
}

/// Why the provider cannot serve requests now (`/readyz`).
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    #[error("database unavailable: {0}")]
    Database(StoreError),
    #[error("redis unavailable: {0}")]
    Redis(crate::fleet::FleetError),
}

/// Everything the protocol needs, shared by all requests.
#[derive(Clone)]
pub struct Provider {
    pub store: SqlStore,
    pub keyring: SharedKeyring,
    pub crypto: Arc<Crypto>,
    pub clock: SharedClock,
    pub settings: Arc<Settings>,
    pub fleet: Arc<crate::fleet::Fleet>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub caches: Arc<cache::Caches>,
    /// Wakes the back-channel logout sender.
    pub backchannel: Arc<backchannel::Outbox>,
}

impl Provider {
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Ready to serve when the database answers, and Redis too when one is configured.
    pub async fn ready(&self) -> Result<(), NotReady> {
        self.store.ping().await.map_err(NotReady::Database)?;
        self.fleet.ping().await.map_err(NotReady::Redis)
    }

    /// The current keyring (cheap: clones an `Arc`).
    pub fn keys(&self) -> Arc<Keyring> {
        match self.keyring.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn revocation(&self, kind: RevocationKind, subject: &str) -> Revocation {
        let at = self.now();
        Revocation {
            kind,
            subject: subject.to_string(),
            at,
            // Tokens are only issued before `at`, so all are gone one lifetime (plus skew) later.
            expires_at: at + self.settings.access_token_ttl + 60,
            user_id: None,
        }
    }

    /// Ends one SSO session: its refresh tokens stop working and its access tokens introspect
    /// as inactive on every replica.
    pub async fn revoke_session(&self, session_id: &str) -> StoreResult<()> {
        self.store.revoke_session(session_id, self.now()).await?;
        let r = self.revocation(RevocationKind::Session, session_id);
        self.fleet.revoke(&self.store, r).await?;
        self.logout_notices(&[session_id.to_string()]).await
    }

    /// Disables a client at once on every replica: it gets no token (`client` no longer finds
    /// it), its refresh tokens are revoked and the access tokens it got so far introspect as
    /// inactive. Returns how many refresh tokens were revoked; `None` if no such client.
    ///
    /// Every step is idempotent, so a disable that failed half-way is completed by running it
    /// again.
    pub async fn disable_client(&self, client_id: &str) -> StoreResult<Option<u64>> {
        use crate::store::{ClientStore, RefreshTokenStore};
        let now = self.now();
        if !self.store.set_client_disabled(client_id, Some(now)).await? {
            return Ok(None);
        }
        self.caches.forget_client(client_id);
        let revoked = self.store.revoke_client_grants(client_id, now).await?;
        let r = self.revocation(RevocationKind::Client, client_id);
        self.fleet.revoke(&self.store, r).await?;
        Ok(Some(revoked))
    }

    /// Enables a disabled client again. What it was given before stays revoked: its refresh
    /// tokens and codes are revoked once more first (any a replica still issued in the moment
    /// of the disable), then it is enabled. False if no such client.
    pub async fn enable_client(&self, client_id: &str) -> StoreResult<bool> {
        use crate::store::{ClientStore, RefreshTokenStore};
        self.store
            .revoke_client_grants(client_id, self.now())
            .await?;
        let found = self.store.set_client_disabled(client_id, None).await?;
        if found {
            self.client_changed(client_id).await?;
        }
        Ok(found)
    }

    /// Tells every replica that a client changed (settings, secret, enabled), so none keeps
    /// using its cached copy; revokes nothing.
    pub async fn client_changed(&self, client_id: &str) -> StoreResult<()> {
        self.caches.forget_client(client_id);
        let mut r = self.revocation(RevocationKind::ClientChanged, client_id);
        // Only cached copies (kept 5 s) can be older than the change.
        r.expires_at = r.at + 30;
        self.fleet.revoke(&self.store, r).await
    }

    /// Tells every replica that a session ended in the store (its access tokens introspect as
    /// inactive): what [`Provider::revoke_session`] does after its write, for a session ended
    /// inside another transaction (a completed second step ending the browser's previous one).
    pub async fn announce_session_ended(&self, session_id: &str) -> StoreResult<()> {
        let r = self.revocation(RevocationKind::Session, session_id);
        self.fleet.revoke(&self.store, r).await?;
        self.logout_notices(&[session_id.to_string()]).await
    }

    /// Ends every session of a user except `keep`, with their tokens, and every pending second
    /// step of theirs (a sign-in half done with a password is no less a way in: signing out
    /// everywhere or a new password must end it too), and marks the user's sessions as ended
    /// now, so a pending step held at this moment (being checked) can neither be completed nor
    /// put back afterwards. Returns how many sessions ended.
    /// Each ended session is revoked by id, so a sign-in right after (even within the same
    /// second) is not caught by it.
    pub async fn revoke_user_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> StoreResult<u64> {
        use crate::auth::mfa::ceremony::CeremonyKind;
        use crate::store::MfaStore;
        self.store
            .delete_user_ceremonies(user_id, CeremonyKind::SecondStep.as_str())
            .await?;
        let ended = self
            .store
            .revoke_user_sessions(user_id, keep, self.now())
            .await?;
        for sid in &ended {
            let r = self.revocation(RevocationKind::Session, sid);
            self.fleet.revoke(&self.store, r).await?;
        }
        self.announce_user_revoked(user_id, keep).await?;
        self.logout_notices(&ended).await?;
        Ok(ended.len() as u64)
    }

    /// Denies one access token until it expires.
    pub async fn deny_access_token(&self, jti: &str, expires_at: Timestamp) -> StoreResult<()> {
        let mut r = self.revocation(RevocationKind::Jti, jti);
        r.expires_at = expires_at;
        self.fleet.revoke(&self.store, r).await
    }

    /// Appends to the audit log; a failure is logged, never shown to the caller.
    pub async fn audit(&self, event: crate::audit::AuditEvent) {
        use crate::store::AuditStore;
        if let Err(e) = self
            .store
            .append_audit(&self.crypto, self.now(), &event)
            .await
        {
            tracing::error!(error = %e, action = %event.action, "could not write the audit log");
        }
    }

    /// A client that may use the protocol, by id, from a short-lived cache in front of the
    /// store: a disabled client is `None` here, as if unknown, on every path (authorization,
    /// token, introspection, logout).
    pub async fn client(&self, id: &str) -> StoreResult<Option<crate::store::Client>> {
        use crate::store::ClientStore;
        let now_ms = self.clock.now_millis();
        // A change made by another process (the CLI, another replica) reaches this one before
        // its cached copy is trusted: with Redis it has already arrived, without it this is at
        // most one primary-key lookup every few milliseconds (as for introspection).
        self.fleet.catch_up(&self.store, self.now(), now_ms).await?;
        let stale_until_ms = self
            .fleet
            .client_changed_at(id)
            .map_or(i64::MIN, |at| at.saturating_mul(1000).saturating_add(999));
        let found = match self.caches.client(id, now_ms, stale_until_ms) {
            Some(c) => Some(c),
            None => {
                let found = self.store.find_client(id).await?;
                if let Some(c) = &found {
                    self.caches.put_client(c, now_ms);
                }
                found
            }
        };
        Ok(found.filter(|c| c.disabled_at.is_none()))
    }

    pub fn replace_keys(&self, keyring: Keyring) {
        self.caches.forget_verified();
        let new = Arc::new(keyring);
        match self.keyring.write() {
            Ok(mut guard) => *guard = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }
}
