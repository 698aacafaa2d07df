//! Password sign-in as one use case: throttling, the argon2 check (with equal work for unknown
//! accounts), hash upgrade, then either the session (session limit, new session, audit trail)
//! or, for a user with a second factor, the pending second step (`auth::mfa::second_step`),
//! which opens the session only when it succeeds. The HTTP handler only extracts the form and
//! renders the outcome.

use crate::audit::AuditEvent;
use crate::auth::mfa::{self, second_step};
use crate::auth::password::PasswordHasher;
use crate::auth::session::{self, ActiveSession, DeviceInfo, Room};
use crate::auth::throttle::{self, Attempt, Factor, Gate, ThrottlePolicy};
use crate::clock::Timestamp;
use crate::config::SessionLimitPolicy;
use crate::crypto::SecretString;
use crate::metrics::inc;
use crate::oauth::Provider;
use crate::oauth::params::Params;
use crate::store::{FactorKind, StoreError, Transient, User, UserStore};

pub struct SignInRequest<'a> {
    pub email: &'a str,
    pub password: SecretString,
    /// The client's address, as stored with the session and in the audit log.
    pub ip: Option<String>,
    /// The key it is counted under by per-address limits (IPv6: its /64).
    pub ip_key: Option<String>,
    pub user_agent: Option<String>,
    /// (user id, device id) from a valid signed device cookie, if the browser sent one.
    pub trusted_device: Option<(String, String)>,
    /// The session this browser holds now; it ends when the new one starts.
    pub previous_session: Option<String>,
    /// The request asks for a second factor whoever signs in (its client's `require_mfa`, or
    /// `acr_values` asking for "2"); roles in `mfa_required_roles` are checked here.
    pub wants_mfa: bool,
    /// The authorization request to resume after a second step (`None`: a plain sign-in).
    pub resume: Option<&'a Params>,
}

pub struct SignInRules<'a> {
    pub hasher: &'a PasswordHasher,
    pub throttle: ThrottlePolicy,
    pub max_sessions: u32,
    pub session_policy: SessionLimitPolicy,
}

#[derive(Debug)]
pub struct SignedIn {
    pub cookie_value: SecretString,
    pub active: ActiveSession,
}

/// What the second step offers a user besides a one-time code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecondStepMethods {
    /// The user has a security key or passkey.
    pub security_key: bool,
}

/// What a right password leads to.
#[derive(Debug)]
pub enum SignInOutcome {
    /// Signed in with the password alone (amr `pwd`).
    SignedIn(SignedIn),
    /// The user has a second factor: no session yet. The browser keeps `handle` (a cookie) for
    /// the pending second step.
    SecondStep {
        handle: SecretString,
        /// What the second step can offer besides a one-time code (always offered: recovery
        /// codes work for everyone with a factor).
        methods: SecondStepMethods,
    },
    /// A second factor is required (by role or by the request) and the user has none: signed in
    /// with the password alone, so that they can set one up now; nothing that needs the second
    /// factor is issued to this session.
    MustEnrol(SignedIn),
}

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The same answer for a wrong password, an unknown email and a disabled account.
    #[error("bad credentials")]
    BadCredentials,
    #[error("locked for {0}s")]
    Locked(i64),
    #[error("rate limited for {0}s")]
    Limited(i64),
    #[error("too many sessions")]
    TooManySessions,
    #[error("internal: {0}")]
    Internal(String),
    /// The database could not be reached for a moment (see `store::Transient`).
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl From<StoreError> for SignInError {
    fn from(e: StoreError) -> Self {
        if e.is_transient() {
            SignInError::Unavailable(e.to_string())
        } else {
            SignInError::Internal(e.to_string())
        }
    }
}

impl Transient for SignInError {
    fn is_transient(&self) -> bool {
        matches!(self, SignInError::Unavailable(_))
    }
}

pub async fn sign_in(
    p: &Provider,
    rules: &SignInRules<'_>,
    r: SignInRequest<'_>,
) -> Result<SignInOutcome, SignInError> {
    let email = crate::auth::email::normalise(r.email);
    if email.is_empty()
        || email.len() > 254
        || r.password.expose().is_empty()
        || !crate::auth::policy::within_ceiling(r.password.expose())
    {
        return Err(SignInError::BadCredentials);
    }
    let now = p.now();
    let user = p.store.find_user_by_email(&email).await?;
    // A device cookie counts only for the account it was issued for.
    let device = r
        .trusted_device
        .as_ref()
        .filter(|(uid, _)| user.as_ref().is_some_and(|u| &u.id == uid))
        .map(|(_, did)| did.as_str());
    let attempt = Attempt {
        account: &email,
        device,
        ip: r.ip_key.as_deref(),
        factor: Factor::Password,
    };
    match throttle::check(&p.fleet, &rules.throttle, &attempt, now).await {
        Gate::Open => {}
        Gate::Locked(s) => {
            audit_failure(
                p,
                user.as_ref().map(|u| u.id.as_str()),
                &email,
                &r,
                "locked",
            )
            .await;
            return Err(SignInError::Locked(s));
        }
        Gate::Limited(s) => {
            audit_failure(
                p,
                user.as_ref().map(|u| u.id.as_str()),
                &email,
                &r,
                "ip_limited",
            )
            .await;
            return Err(SignInError::Limited(s));
        }
    }
    // Unknown accounts are checked against a dummy hash: same work, same answer.
    let started = std::time::Instant::now();
    let verification = rules
        .hasher
        .verify(&r.password, user.as_ref().map(|u| u.password_hash.as_str()))
        .await
        .map_err(|e| SignInError::Internal(e.to_string()))?;
    p.metrics.observe_password_check(started.elapsed());
    let Some(user) = user.clone().filter(|u| verification.valid && !u.disabled) else {
        let reason = match &user {
            None => "unknown_account",
            Some(u) if u.disabled => "account_disabled",
            Some(_) => "wrong_password",
        };
        let lock = throttle::failed(&p.fleet, &rules.throttle, &attempt, now).await;
        if lock > 0 {
            p.audit(
                AuditEvent::new("signin.locked")
                    .subject(
                        user.as_ref()
                            .map(|u| u.id.clone())
                            .unwrap_or_else(|| email.clone()),
                    )
                    .detail("seconds", lock),
            )
            .await;
        }
        audit_failure(p, user.as_ref().map(|u| u.id.as_str()), &email, &r, reason).await;
        return Err(SignInError::BadCredentials);
    };
    throttle::succeeded(&p.fleet, &attempt).await;
    if verification.needs_rehash
        && let Ok(hash) = rules.hasher.hash(&r.password).await
        && let Err(e) = p.store.set_password_hash(&user.id, &hash, now).await
    {
        tracing::warn!(error = %e, "could not upgrade a password hash");
    }
    let factors = mfa::factors(p, &user.id)
        .await
        .map_err(|e| SignInError::Internal(e.to_string()))?;
    let required = r.wants_mfa || second_step::required_by_role(p, &user);
    if !factors.is_empty() {
        let amr = [mfa::Amr::Pwd.as_str().to_string()];
        let handle = second_step::begin(p, &user.id, &amr, r.resume, None)
            .await
            .map_err(|e| SignInError::Internal(e.to_string()))?;
        tracing::info!(outcome = "second_step", user_id = %user.id, "sign-in: password accepted");
        let methods = SecondStepMethods {
            security_key: factors.iter().any(|f| f.kind == FactorKind::WebAuthn),
        };
        return Ok(SignInOutcome::SecondStep { handle, methods });
    }
    let device = DeviceInfo {
        user_agent: r.user_agent,
        ip: r.ip,
    };
    let signed_in = open_session(
        p,
        rules,
        &user,
        vec!["pwd".into()],
        device,
        r.previous_session.as_deref(),
        now,
    )
    .await?;
    Ok(if required {
        SignInOutcome::MustEnrol(signed_in)
    } else {
        SignInOutcome::SignedIn(signed_in)
    })
}

/// Opens the session of a completed sign-in with the methods `amr`: the browser's previous
/// session ends (one browser, one session; a new id, no fixation), the user's session limit
/// is applied, and the sign-in is counted and audited.
pub async fn open_session(
    p: &Provider,
    rules: &SignInRules<'_>,
    user: &User,
    amr: Vec<String>,
    device: DeviceInfo,
    previous_session: Option<&str>,
    now: Timestamp,
) -> Result<SignedIn, SignInError> {
    if let Some(old) = previous_session {
        p.revoke_session(old).await?;
    }
    match session::make_room(p, user, rules.max_sessions, rules.session_policy, now).await? {
        Room::Available => {}
        Room::Evicted(ended) => {
            p.audit(
                AuditEvent::new("session.evicted")
                    .subject(&user.id)
                    .detail("sessions", ended),
            )
            .await;
        }
        Room::Refused => {
            p.audit(
                AuditEvent::new("signin.refused")
                    .subject(&user.id)
                    .from_device(device.ip.clone(), device.user_agent.clone())
                    .detail("reason", "session_limit"),
            )
            .await;
            return Err(SignInError::TooManySessions);
        }
    }
    let (ip, user_agent) = (device.ip.clone(), device.user_agent.clone());
    let (cookie_value, active) = session::start(p, user, amr.clone(), device, now).await?;
    tracing::info!(outcome = "success", user_id = %user.id, session_id = %active.session.id, "sign-in");
    inc(&p.metrics.signins_ok);
    p.audit(
        AuditEvent::new("signin.success")
            .subject(&user.id)
            .from_device(ip, user_agent)
            .detail("session", active.session.id.clone())
            .detail("amr", amr.join(" ")),
    )
    .await;
    Ok(SignedIn {
        cookie_value: cookie_value.into(),
        active,
    })
}

async fn audit_failure(
    p: &Provider,
    user_id: Option<&str>,
    email: &str,
    r: &SignInRequest<'_>,
    reason: &str,
) {
    tracing::info!(outcome = "failure", reason, "sign-in failed");
    inc(&p.metrics.signins_failed);
    p.audit(
        AuditEvent::new("signin.failure")
            .subject(user_id.unwrap_or(email))
            .from_device(r.ip.clone(), r.user_agent.clone())
            .detail("reason", reason),
    )
    .await;
}
