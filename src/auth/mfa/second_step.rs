//! The second step of a sign-in, and the step-up of a live session (docs/DESIGN.md, "Second
//! factors").
//!
//! A right password of a user with a factor opens no session and writes nothing: [`begin`]
//! seals a *pending second step* (the user, the methods so far, the authorization request to
//! resume or the live session to raise, a random id, the user's `sessions_epoch`, five minutes
//! of life) under the master key into a cookie, so the browser that passed the password holds
//! it and nobody can read or alter it. A step too large for a cookie (a very long
//! authorization request) is kept on the server instead, as a ceremony of kind `second_step`
//! under the keyed hash of a random handle in that cookie. A wrong code does not spend it (so
//! it is neither spent nor extended) but counts on the second step's own throttle keys, per
//! user and per address, never on the password's; the first right code spends it for good and
//! opens the session (a new cookie), or raises the live session to multi-factor and gives it a
//! new cookie (a privilege change), all in one transaction ([`finish`]): a sealed step leaves
//! a mark under its id's keyed hash that a second completion collides with, a stored one is
//! deleted. Ending all the user's sessions ends their pending steps: a sealed one began under
//! an older `sessions_epoch`, a stored one is deleted or, held at that moment, was created
//! before the second of `sessions_ended_at`.

use serde::{Deserialize, Serialize};

use super::MfaError;
use super::ceremony::{self, CEREMONY_TTL, CeremonyKind};
use super::level::{self, Amr};
use crate::audit::AuditEvent;
use crate::auth::session::{self, ActiveSession, DeviceInfo, Room};
use crate::auth::signin::{SecondStepMethods, SignInError, SignInRules};
use crate::auth::throttle::{self, Attempt, Factor, Gate};
use crate::crypto::{b64, b64_decode, random_token};
use crate::metrics::inc;
use crate::oauth::Provider;
use crate::oauth::params::Params;
use crate::secret::SecretString;
use crate::store::{
    FactorKind, MfaStore, SecondStepCompletion, StepOutcome, StepProof, StepSession, StepTake,
    StoreError, Transient, User, UserStore,
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

/// The cookie value of a sealed pending step starts with this (a stored step's handle is
/// base64url, which has no dot).
const SEALED: &str = "s1.";
/// The longest cookie value a pending step may have; a longer sealed one is stored instead.
const COOKIE_ROOM: usize = 3000;
/// The context a sealed pending step is encrypted under (AES-GCM's associated data): this, then
/// the issuer, so a deployment sharing the master key (a staging copy) cannot use it.
const SEALED_AAD: &str = "tessera/v1/second-step";

fn sealed_aad(p: &Provider) -> Vec<u8> {
    format!("{SEALED_AAD}\0{}", p.settings.issuer).into_bytes()
}

/// A pending second step as the browser holds it, before sealing.
#[derive(Debug, Serialize, Deserialize)]
struct SealedStep {
    /// Random; its keyed hash marks the step spent.
    #[serde(rename = "i")]
    id: String,
    #[serde(rename = "u")]
    user_id: String,
    /// The user's `sessions_epoch` when the step began.
    #[serde(rename = "e")]
    epoch: i64,
    #[serde(rename = "x")]
    expires_at: i64,
    #[serde(rename = "p")]
    step: PendingSecondStep,
}

/// A pending second step, read from the browser's cookie.
#[derive(Debug)]
pub struct Pending {
    pub user_id: String,
    pub step: PendingSecondStep,
    /// How its completion takes it.
    pub take: StepTake,
}

/// Starts a pending second step for `user_id`, who has used `amr` so far; returns the value
/// of the browser's cookie. `raise` names the live session a step-up raises. Nothing is
/// written unless the step is too large for a cookie.
pub async fn begin(
    p: &Provider,
    user_id: &str,
    amr: &[String],
    request: Option<&Params>,
    raise: Option<&str>,
) -> Result<SecretString, MfaError> {
    let step = PendingSecondStep {
        amr: amr.to_vec(),
        request: request.map(|r| r.pairs().to_vec()),
        raise: raise.map(String::from),
    };
    // A user deleted meanwhile has no epoch; the completion finds no user and refuses.
    let epoch = p.store.sessions_epoch(user_id).await?.unwrap_or_default();
    let sealed = SealedStep {
        id: random_token(),
        user_id: user_id.to_string(),
        epoch,
        expires_at: p.now() + CEREMONY_TTL,
        step,
    };
    let json = serde_json::to_vec(&sealed).map_err(|_| MfaError::Corrupt)?;
    let value = format!("{SEALED}{}", b64(&p.crypto.encrypt(&json, &sealed_aad(p))));
    if value.len() <= COOKIE_ROOM {
        return Ok(SecretString::new(value));
    }
    ceremony::begin(p, CeremonyKind::SecondStep, Some(user_id), &sealed.step).await
}

/// The pending second step the browser's cookie `value` holds: `None` when there is none
/// (no such step, expired, tampered with, or, kept on the server, already completed). A
/// sealed step's other ends (completed, the user's sessions ended since) are told by
/// [`live`] or by the completion itself.
pub async fn pending(p: &Provider, value: &str) -> Result<Option<Pending>, MfaError> {
    if let Some(sealed) = value.strip_prefix(SEALED) {
        return Ok(open_sealed(p, sealed));
    }
    let Some(peeked) =
        ceremony::peek::<PendingSecondStep>(p, CeremonyKind::SecondStep, value).await?
    else {
        return Ok(None);
    };
    let Some(user_id) = peeked.taken.user_id else {
        return Ok(None);
    };
    Ok(Some(Pending {
        user_id,
        step: peeked.taken.state,
        take: StepTake::Stored {
            ceremony_hash: peeked.id_hash,
        },
    }))
}

fn open_sealed(p: &Provider, text: &str) -> Option<Pending> {
    if text.len() > COOKIE_ROOM {
        return None;
    }
    let json = p.crypto.decrypt(&b64_decode(text)?, &sealed_aad(p)).ok()?;
    let s: SealedStep = serde_json::from_slice(&json).ok()?;
    if s.expires_at <= p.now() {
        return None;
    }
    Some(Pending {
        take: StepTake::Sealed {
            id_hash: p.crypto.token_hash(&s.id),
            epoch: s.epoch,
            expires_at: s.expires_at,
        },
        user_id: s.user_id,
        step: s.step,
    })
}

/// Whether `pending` could still complete (read only). A sealed step is checked against the
/// database: not completed, the user not disabled, their sessions not ended since it began; a
/// stored one was just read from there. Asked where a dead step must not count as a failure
/// or start anything: before a wrong answer counts, for the page, for a key ceremony.
pub async fn live(p: &Provider, pending: &Pending) -> Result<bool, MfaError> {
    match &pending.take {
        StepTake::Stored { .. } => Ok(true),
        StepTake::Sealed { id_hash, epoch, .. } => Ok(p
            .store
            .sealed_step_live(&pending.user_id, id_hash, *epoch)
            .await?),
    }
}

/// Whether `pending` surely can no longer complete, asked before a wrong answer counts and
/// before a lock is told and audited (a dead step is only "gone"). A failed read answers no,
/// so the answer still counts: a failing database never buys a guess that is checked but not
/// counted.
pub(super) async fn surely_gone(p: &Provider, pending: &Pending) -> bool {
    match live(p, pending).await {
        Ok(live) => !live,
        Err(e) => {
            tracing::warn!(error = %e, "could not read whether a pending second step is live");
            false
        }
    }
}

/// The pending step behind cookie `value`, if it could still complete (for its page, and
/// before a key ceremony begins for it).
pub async fn live_pending(p: &Provider, value: &str) -> Result<Option<Pending>, MfaError> {
    match pending(p, value).await? {
        Some(step) if live(p, &step).await? => Ok(Some(step)),
        _ => Ok(None),
    }
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
/// wrong answer); `None` when the browser has no live pending step. Reads it without taking
/// it, so a concurrent answer is never turned away.
pub async fn pending_methods(
    p: &Provider,
    handle: &str,
) -> Result<Option<SecondStepMethods>, MfaError> {
    match live_pending(p, handle).await? {
        Some(step) => Ok(Some(methods(p, &step.user_id).await?)),
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
    let Some(pending) = pending(p, &browser.handle).await? else {
        return Err(SecondStepError::Gone);
    };
    let user_id = pending.user_id.clone();
    let keys = Keys::new(&user_id, browser.ip_key.as_deref());
    let attempt = keys.attempt();
    admit(p, rules, &pending, &attempt, &browser).await?;
    let proof = match super::one_time_code_proof(p, &user_id, code).await {
        Ok(proof) => proof,
        Err(MfaError::InvalidCode) => {
            refuse_answer(p, rules, &pending, &attempt, &browser, "invalid_code").await?;
            return Err(SecondStepError::InvalidCode);
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
            count_failure(p, rules, &attempt, &user_id, &browser, "invalid_code").await;
            Err(SecondStepError::InvalidCode)
        }
        Err(e) => Err(e),
        Ok(done) => {
            throttle::succeeded(&p.fleet, &attempt).await;
            Ok(done)
        }
    }
}

/// The gate before an answer (a code or a key) is checked: a locked user or a limited address
/// is refused and audited, unless the step is surely gone, which is all a dead cookie learns.
pub(super) async fn admit(
    p: &Provider,
    rules: &SignInRules<'_>,
    pending: &Pending,
    attempt: &Attempt<'_>,
    browser: &Browser,
) -> Result<(), SecondStepError> {
    let (reason, refused) = match throttle::check(&p.fleet, &rules.throttle, attempt, p.now()).await
    {
        Gate::Open => return Ok(()),
        Gate::Locked(s) => ("locked", SecondStepError::Locked(s)),
        Gate::Limited(s) => ("ip_limited", SecondStepError::Limited(s)),
    };
    if surely_gone(p, pending).await {
        return Err(SecondStepError::Gone);
    }
    audit_failure(p, &pending.user_id, browser, reason).await;
    Err(refused)
}

/// A refused answer (`reason`: `invalid_code`, `security_key_refused`) to a step that may
/// still complete: counted and audited ([`count_failure`]). To a step that is surely gone:
/// [`SecondStepError::Gone`], and nothing counts, so an old cookie cannot lock the owner out.
pub(super) async fn refuse_answer(
    p: &Provider,
    rules: &SignInRules<'_>,
    pending: &Pending,
    attempt: &Attempt<'_>,
    browser: &Browser,
    reason: &str,
) -> Result<(), SecondStepError> {
    if surely_gone(p, pending).await {
        return Err(SecondStepError::Gone);
    }
    count_failure(p, rules, attempt, &pending.user_id, browser, reason).await;
    Ok(())
}

/// A refused answer, counted on the second step's throttle keys and audited (with the lock it
/// brings, if any).
async fn count_failure(
    p: &Provider,
    rules: &SignInRules<'_>,
    attempt: &Attempt<'_>,
    user_id: &str,
    browser: &Browser,
    reason: &str,
) {
    let lock = throttle::failed(&p.fleet, &rules.throttle, attempt, p.now()).await;
    audit_failure(p, user_id, browser, reason).await;
    // The operator's "locked" list starts from it.
    if lock > 0 {
        p.audit(
            AuditEvent::new("mfa.locked")
                .subject(user_id)
                .detail("seconds", lock),
        )
        .await;
    }
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
    pending: Pending,
    proof: StepProof,
    method: Amr,
    detail: &str,
    browser: &Browser,
) -> Result<Completed, SecondStepError> {
    let Pending {
        user_id,
        step: state,
        take,
    } = pending;
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
            take,
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
        take,
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

async fn audit_failure(p: &Provider, user_id: &str, b: &Browser, reason: &str) {
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
