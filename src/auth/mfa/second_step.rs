//! The second step of a sign-in, and the step-up of a live session (docs/DESIGN.md, "Second
//! factors").
//!
//! A right password of a user with a factor opens no session: [`begin`] keeps a *pending
//! second step* on the server (a ceremony of kind `second_step`: the user, the methods so far,
//! the authorization request to resume, or the live session to raise), bound to the browser by
//! a random handle in a cookie and gone after five minutes. A wrong code does not spend it (it
//! is only looked at while the code is checked, so neither spent nor extended) but counts on
//! the second step's own throttle keys, per user and per address, never on the password's; the
//! first right code takes it for good and opens the session (a new cookie), or raises the live
//! session to multi-factor and gives it a new cookie (a privilege change), all in one
//! transaction ([`finish`]). A step created before the second in which all the user's sessions
//! were ended is gone.

use serde::{Deserialize, Serialize};

use super::MfaError;
use super::ceremony::{self, CeremonyKind, Peeked};
use super::level::{self, Amr};
use crate::audit::AuditEvent;
use crate::auth::session::{self, ActiveSession, DeviceInfo, Room};
use crate::auth::signin::{SecondStepMethods, SignInError, SignInRules};
use crate::auth::throttle::{self, Attempt, Factor, Gate};
use crate::crypto::random_token;
use crate::metrics::inc;
use crate::oauth::Provider;
use crate::oauth::params::Params;
use crate::secret::SecretString;
use crate::store::{
    FactorKind, MfaStore, SecondStepCompletion, StepOutcome, StepProof, StepSession, StoreError,
    Transient, User, UserStore,
};

/// What the server keeps between the password and the second factor (encrypted, see
/// [`ceremony`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingSecondStep {
    /// The methods already used (`pwd`, or the raised session's).
    #[serde(rename = "a")]
    pub amr: Vec<String>,
    /// The authorization request to resume afterwards; `None` for a plain sign-in.
    #[serde(rename = "r", default)]
    pub request: Option<Vec<(String, String)>>,
    /// A step-up: the live session to raise instead of opening a new one.
    #[serde(rename = "s", default)]
    pub raise: Option<String>,
}

/// Whether one of the user's roles is in `mfa_required_roles`.
pub fn required_by_role(p: &Provider, user: &User) -> bool {
    user.roles
        .iter()
        .any(|r| p.settings.mfa_required_roles.contains(r))
}

/// Starts a pending second step for `user_id`, who has used `amr` so far; returns the handle
/// the browser keeps. `raise` names the live session a step-up raises.
pub async fn begin(
    p: &Provider,
    user_id: &str,
    amr: &[String],
    request: Option<&Params>,
    raise: Option<&str>,
) -> Result<SecretString, MfaError> {
    let state = PendingSecondStep {
        amr: amr.to_vec(),
        request: request.map(|r| r.pairs().to_vec()),
        raise: raise.map(String::from),
    };
    ceremony::begin(p, CeremonyKind::SecondStep, Some(user_id), &state).await
}

/// What the second step can offer `user_id` besides a one-time code (a step-up asks this; a
/// sign-in learns it with the password).
pub async fn methods(p: &Provider, user_id: &str) -> Result<SecondStepMethods, MfaError> {
    Ok(SecondStepMethods {
        security_key: super::factors(p, user_id)
            .await?
            .iter()
            .any(|f| f.kind == FactorKind::WebAuthn),
    })
}

/// What the pending second step behind `handle` can offer (for its page, after a reload or a
/// wrong answer); `None` when the browser has no pending step. Reads it without taking it, so a
/// concurrent answer is never turned away.
pub async fn pending_methods(
    p: &Provider,
    handle: &str,
) -> Result<Option<SecondStepMethods>, MfaError> {
    let Some(pending) =
        ceremony::peek::<PendingSecondStep>(p, CeremonyKind::SecondStep, handle).await?
    else {
        return Ok(None);
    };
    match pending.taken.user_id {
        Some(user_id) => Ok(Some(methods(p, &user_id).await?)),
        None => Ok(None),
    }
}

/// Where a completed second step leaves the browser.
#[derive(Debug)]
pub struct Completed {
    /// The new cookie value of the session (a new session, or the raised one).
    pub cookie_value: SecretString,
    pub active: ActiveSession,
    /// The authorization request to resume; `None` for a plain sign-in.
    pub request: Option<Params>,
    /// True for a step-up: the session was raised, not opened by a sign-in on this request.
    pub raised: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SecondStepError {
    /// No pending second step for this browser: none begun, another browser's handle, expired,
    /// or already completed. The person starts again.
    #[error("no pending second step")]
    Gone,
    /// Wrong, malformed, replayed or spent: one answer for all.
    #[error("the code is not valid")]
    InvalidCode,
    /// The user's second step is locked for this many seconds (codes are not even checked).
    #[error("locked for {0}s")]
    Locked(i64),
    /// This address failed too often; retry after this many seconds.
    #[error("rate limited for {0}s")]
    Limited(i64),
    #[error("too many sessions")]
    TooManySessions,
    #[error("internal: {0}")]
    Internal(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl From<StoreError> for SecondStepError {
    fn from(e: StoreError) -> Self {
        if e.is_transient() {
            Self::Unavailable(e.to_string())
        } else {
            Self::Internal(e.to_string())
        }
    }
}

impl From<MfaError> for SecondStepError {
    fn from(e: MfaError) -> Self {
        match e {
            MfaError::InvalidCode => Self::InvalidCode,
            MfaError::Store(e) => e.into(),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<SignInError> for SecondStepError {
    fn from(e: SignInError) -> Self {
        match e {
            SignInError::TooManySessions => Self::TooManySessions,
            SignInError::Unavailable(m) => Self::Unavailable(m),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl Transient for SecondStepError {
    fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// The browser behind a second-step attempt.
pub struct Browser {
    /// The handle from the second step's cookie.
    pub handle: String,
    pub ip: Option<String>,
    /// The key per-address limits count it under (IPv6: its /64).
    pub ip_key: Option<String>,
    pub user_agent: Option<String>,
    /// The session this browser holds now; it ends when a new one starts.
    pub previous_session: Option<String>,
}

/// The second step's throttle keys: per user (`mfa:acct:user:{id}`) and per address
/// (`fail:ip:mfa:{ip}`), apart from the password's, so a locked second step never locks a
/// password step, and one user's failures never fail another's.
pub(super) struct Keys {
    account: String,
    ip: Option<String>,
}

impl Keys {
    pub(super) fn new(user_id: &str, ip_key: Option<&str>) -> Self {
        Self {
            account: format!("user:{user_id}"),
            ip: ip_key.map(|k| format!("mfa:{k}")),
        }
    }

    pub(super) fn attempt(&self) -> Attempt<'_> {
        Attempt {
            account: &self.account,
            device: None,
            ip: self.ip.as_deref(),
            factor: Factor::SecondFactor,
        }
    }
}

/// Completes the pending second step with a one-time code (an authenticator app's or a
/// recovery code). The step is only looked at while the code is checked; a wrong code leaves
/// it untouched (neither spent nor extended) and counts a failure; a locked user's codes are
/// not checked at all. A right one is spent with everything else in one transaction
/// ([`finish`]).
pub async fn complete_with_code(
    p: &Provider,
    rules: &SignInRules<'_>,
    browser: Browser,
    code: &str,
) -> Result<Completed, SecondStepError> {
    let Some(pending) =
        ceremony::peek::<PendingSecondStep>(p, CeremonyKind::SecondStep, &browser.handle).await?
    else {
        return Err(SecondStepError::Gone);
    };
    let Some(user_id) = pending.taken.user_id.clone() else {
        return Err(SecondStepError::Gone);
    };
    let now = p.now();
    let keys = Keys::new(&user_id, browser.ip_key.as_deref());
    let attempt = keys.attempt();
    let refused = match throttle::check(&p.fleet, &rules.throttle, &attempt, now).await {
        Gate::Open => None,
        Gate::Locked(s) => Some(("locked", SecondStepError::Locked(s))),
        Gate::Limited(s) => Some(("ip_limited", SecondStepError::Limited(s))),
    };
    if let Some((reason, err)) = refused {
        audit_failure(p, &user_id, &browser, reason).await;
        return Err(err);
    }
    let proof = match super::one_time_code_proof(p, &user_id, code).await {
        Ok(proof) => proof,
        Err(MfaError::InvalidCode) => {
            return Err(wrong_code(p, rules, &attempt, &user_id, &browser).await);
        }
        Err(e) => return Err(e.into()),
    };
    let detail = match &proof {
        StepProof::TotpStep { .. } => "totp",
        StepProof::RecoveryCode { .. } => "recovery_code",
        StepProof::Verified => "verified",
    };
    match finish(p, rules, pending, proof, Amr::Otp, detail, &browser).await {
        // A replay that raced the check above, or an unknown or spent recovery code.
        Err(SecondStepError::InvalidCode) => {
            Err(wrong_code(p, rules, &attempt, &user_id, &browser).await)
        }
        Err(e) => Err(e),
        Ok(done) => {
            throttle::succeeded(&p.fleet, &attempt).await;
            Ok(done)
        }
    }
}

/// A wrong code: counted on the second step's throttle keys and audited.
async fn wrong_code(
    p: &Provider,
    rules: &SignInRules<'_>,
    attempt: &Attempt<'_>,
    user_id: &str,
    browser: &Browser,
) -> SecondStepError {
    let lock = throttle::failed(&p.fleet, &rules.throttle, attempt, p.now()).await;
    audit_failure(p, user_id, browser, "invalid_code").await;
    if lock > 0 {
        p.audit(
            AuditEvent::new("mfa.locked")
                .subject(user_id)
                .detail("seconds", lock),
        )
        .await;
    }
    SecondStepError::InvalidCode
}

/// Completes a pending second step whose factor was just checked (`method`: `otp`, `hwk` or
/// `swk`, described as `detail` in the audit log; `proof`: what it spends): opens the session,
/// or raises the live one. The durable writes are ONE transaction
/// (`MfaStore::complete_second_step`): the step taken, the proof spent, the session opened or
/// raised, one audit entry (`signin.success` with the `second_step` method for a sign-in,
/// `mfa.signed_in` for a step-up). A refused proof is [`SecondStepError::InvalidCode`] and
/// writes nothing. A step created before the second the user's sessions were all ended is
/// [`SecondStepError::Gone`]. The security-key step calls this too.
pub async fn finish(
    p: &Provider,
    rules: &SignInRules<'_>,
    pending: Peeked<PendingSecondStep>,
    proof: StepProof,
    method: Amr,
    detail: &str,
    browser: &Browser,
) -> Result<Completed, SecondStepError> {
    let Some(user_id) = pending.taken.user_id.clone() else {
        return Err(SecondStepError::Gone);
    };
    let state = pending.taken.state;
    let mut methods = level::parse_all(&state.amr);
    methods.push(method);
    let amr = level::with_mfa(&methods);
    let now = p.now();
    let request = state
        .request
        .map(Params::from_pairs)
        .transpose()
        .map_err(|_| SecondStepError::Internal("a stored request did not parse".into()))?;
    let event = |action: &str| {
        AuditEvent::new(action)
            .subject(&user_id)
            .from_device(browser.ip.clone(), browser.user_agent.clone())
            .detail("amr", amr.join(" "))
    };
    if let Some(session_id) = state.raise {
        let cookie = random_token();
        let completion = SecondStepCompletion {
            user_id: user_id.clone(),
            ceremony_hash: pending.id_hash,
            proof,
            session: StepSession::Raise {
                id: session_id.clone(),
                token_hash: p.crypto.token_hash(&cookie),
                amr: amr.clone(),
            },
            audit: event("mfa.signed_in")
                .detail("session", session_id)
                .detail("method", detail)
                .detail("step_up", true),
            now,
        };
        completed(p.store.complete_second_step(&p.crypto, &completion).await?)?;
        let Some(active) = session::resolve(p, &cookie, now).await? else {
            return Err(SecondStepError::Gone);
        };
        if active.user.id != user_id {
            return Err(SecondStepError::Gone);
        }
        return Ok(Completed {
            cookie_value: SecretString::new(cookie),
            active,
            request,
            raised: true,
        });
    }
    let Some(user) = p.store.find_user(&user_id).await?.filter(|u| !u.disabled) else {
        return Err(SecondStepError::Gone);
    };
    let previous = browser.previous_session.as_deref();
    let evicted = match session::plan_room(
        p,
        &user,
        rules.max_sessions,
        rules.session_policy,
        previous,
        now,
    )
    .await?
    {
        Room::Available => Vec::new(),
        Room::Evicted(ids) => ids,
        Room::Refused => {
            p.audit(
                event("signin.refused")
                    .detail("reason", "session_limit")
                    .detail("second_step", detail),
            )
            .await;
            return Err(SecondStepError::TooManySessions);
        }
    };
    let end: Vec<String> = previous
        .map(String::from)
        .into_iter()
        .chain(evicted.iter().cloned())
        .collect();
    let device = DeviceInfo {
        user_agent: browser.user_agent.clone(),
        ip: browser.ip.clone(),
    };
    let (cookie, new) = session::new_session(p, &user, amr.clone(), device, now);
    let completion = SecondStepCompletion {
        user_id: user_id.clone(),
        ceremony_hash: pending.id_hash,
        proof,
        session: StepSession::Open {
            session: new.clone(),
            end: end.clone(),
        },
        audit: event("signin.success")
            .detail("session", new.id.clone())
            .detail("second_step", detail),
        now,
    };
    completed(p.store.complete_second_step(&p.crypto, &completion).await?)?;
    for id in &end {
        p.announce_session_ended(id).await?;
    }
    if !evicted.is_empty() {
        p.audit(
            AuditEvent::new("session.evicted")
                .subject(&user.id)
                .detail("sessions", evicted),
        )
        .await;
    }
    tracing::info!(outcome = "success", user_id = %user.id, session_id = %new.id, "sign-in");
    inc(&p.metrics.signins_ok);
    Ok(Completed {
        cookie_value: SecretString::new(cookie),
        active: ActiveSession { session: new, user },
        request,
        raised: false,
    })
}

fn completed(outcome: StepOutcome) -> Result<(), SecondStepError> {
    match outcome {
        StepOutcome::Done => Ok(()),
        StepOutcome::Gone => Err(SecondStepError::Gone),
        StepOutcome::Refused => Err(SecondStepError::InvalidCode),
    }
}

pub(super) async fn audit_failure(p: &Provider, user_id: &str, b: &Browser, reason: &str) {
    tracing::info!(outcome = "failure", reason, "second step failed");
    p.audit(
        AuditEvent::new("mfa.challenge_failed")
            .subject(user_id)
            .from_device(b.ip.clone(), b.user_agent.clone())
            .detail("reason", reason),
    )
    .await;
}

#[cfg(test)]
mod tests;
