//! The signed-in person managing their own second factors (`/account/security`): what the
//! core use cases leave to the caller, decided here once for every page.
//!
//! - **Recent authentication.** Adding or removing a factor, and regenerating recovery codes,
//!   need the session's last authentication to be at most [`REAUTH_WINDOW`] seconds old: its
//!   `auth_time`, or a password typed again on this session ([`confirm_password`], recorded in
//!   the fleet's shared state for the window). Otherwise [`ChangeError::ReauthNeeded`].
//! - **Browser binding.** An authenticator-app enrolment is confirmed only by the session that
//!   began it: the confirmation form carries the enrolment id with a MAC over the session id
//!   ([`enrolment_token`]), so another session (another browser) cannot finish it.
//! - **Throttling.** Wrong codes at confirmation count on their own key per user
//!   (`mfa:acct:enrol:{user id}`), with the sign-in lock-out rules; a locked user's codes are
//!   not checked.
//! - **After a change.** The user's other sessions end (this one stays), the change is audited
//!   (`mfa.factor_added`, `mfa.factor_removed`, `mfa.recovery_codes_regenerated`) and a security
//!   notice is mailed.

use super::{
    ConfirmedTotp, FactorInfo, FactorName, MfaError, TotpEnrolment, decrypt_secret, factors, totp,
};
use crate::audit::AuditEvent;
use crate::auth::password::PasswordHasher;
use crate::auth::session::ActiveSession;
use crate::auth::throttle::{self, Attempt, Factor, Gate, ThrottlePolicy};
use crate::clock::Timestamp;
use crate::crypto::{b64, b64_decode};
use crate::mail::{Mail, Mailer};
use crate::oauth::Provider;
use crate::secret::SecretString;
use crate::store::{FactorKind, MfaStore, Session, StoreError, Transient, User};

/// How old the last authentication may be for a change to factors (the issue: 5 minutes).
pub const REAUTH_WINDOW: i64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The last authentication is older than [`REAUTH_WINDOW`]: ask for the password again.
    #[error("the password is needed again")]
    ReauthNeeded,
    #[error("the password is wrong")]
    WrongPassword,
    /// Too many wrong passwords or codes: retry after this many seconds.
    #[error("locked for {0}s")]
    Locked(i64),
    /// No factor of this user has that id (another user's, or already removed).
    #[error("no such factor")]
    NoSuchFactor,
    /// The enrolment was begun by another session (or the form was altered).
    #[error("the setup was started elsewhere")]
    OtherSession,
    #[error("password hashing failed")]
    Hash,
    #[error(transparent)]
    Mfa(#[from] MfaError),
}

impl From<StoreError> for ChangeError {
    fn from(e: StoreError) -> Self {
        ChangeError::Mfa(MfaError::Store(e))
    }
}

impl Transient for ChangeError {
    fn is_transient(&self) -> bool {
        matches!(self, ChangeError::Mfa(e) if e.is_transient())
    }
}

/// What a change needs besides the provider: the mailer for the notice, the lock-out rules,
/// and the device it came from (for the audit entry).
pub struct ChangeContext<'a> {
    pub mailer: &'a Mailer,
    pub throttle: &'a ThrottlePolicy,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

fn reauth_key(session_id: &str) -> String {
    format!("reauth:{session_id}")
}

/// When this session last proved who its user is: its sign-in (`auth_time`) or a password
/// typed again since.
pub async fn last_authenticated(p: &Provider, session: &Session) -> Timestamp {
    let recorded = p.fleet.get(&reauth_key(&session.id), p.now()).await;
    session.auth_time.max(recorded)
}

/// Whether the session may change factors now: its last authentication is at most
/// [`REAUTH_WINDOW`] seconds old.
pub async fn recently_authenticated(p: &Provider, session: &Session) -> bool {
    p.now() - last_authenticated(p, session).await <= REAUTH_WINDOW
}

async fn require_recent(p: &Provider, session: &Session) -> Result<(), ChangeError> {
    if recently_authenticated(p, session).await {
        Ok(())
    } else {
        Err(ChangeError::ReauthNeeded)
    }
}

/// The password typed again on this session: right, it opens [`REAUTH_WINDOW`] seconds of
/// changes; wrong, it counts like a wrong password at sign-in (this device's counter).
pub async fn confirm_password(
    p: &Provider,
    hasher: &PasswordHasher,
    rules: &ThrottlePolicy,
    active: &ActiveSession,
    password: &SecretString,
) -> Result<(), ChangeError> {
    let attempt = Attempt {
        account: &active.user.email,
        device: Some(&active.session.id),
        ip: None,
        factor: Factor::Password,
    };
    let now = p.now();
    if let Gate::Locked(s) | Gate::Limited(s) =
        throttle::check(&p.fleet, rules, &attempt, now).await
    {
        return Err(ChangeError::Locked(s));
    }
    let verified = hasher
        .verify(password, Some(active.user.password_hash.as_str()))
        .await
        .map_err(|_| ChangeError::Hash)?;
    if !verified.valid {
        throttle::failed(&p.fleet, rules, &attempt, now).await;
        return Err(ChangeError::WrongPassword);
    }
    throttle::succeeded(&p.fleet, &attempt).await;
    p.fleet
        .put(&reauth_key(&active.session.id), now, REAUTH_WINDOW + 1, now)
        .await;
    Ok(())
}

/// A one-time code (an authenticator app's or a recovery code) typed instead of the password,
/// by a user who has a factor: each code accepted once, behind the second step's own throttle
/// key per user (`mfa:acct:user:{id}`, the sign-in second step's), so codes cannot be guessed
/// here faster than there.
pub async fn confirm_code(
    p: &Provider,
    rules: &ThrottlePolicy,
    active: &ActiveSession,
    code: &str,
) -> Result<(), ChangeError> {
    let key = format!("user:{}", active.user.id);
    let attempt = Attempt {
        account: &key,
        device: None,
        ip: None,
        factor: Factor::SecondFactor,
    };
    let now = p.now();
    if let Gate::Locked(s) | Gate::Limited(s) =
        throttle::check(&p.fleet, rules, &attempt, now).await
    {
        return Err(ChangeError::Locked(s));
    }
    match super::verify_one_time_code(p, &active.user.id, code).await {
        Ok(_) => {}
        Err(MfaError::InvalidCode) => {
            throttle::failed(&p.fleet, rules, &attempt, now).await;
            return Err(MfaError::InvalidCode.into());
        }
        Err(e) => return Err(e.into()),
    }
    throttle::succeeded(&p.fleet, &attempt).await;
    record_reauth(p, &active.session.id).await;
    Ok(())
}

async fn record_reauth(p: &Provider, session_id: &str) {
    let now = p.now();
    p.fleet
        .put(&reauth_key(session_id), now, REAUTH_WINDOW + 1, now)
        .await;
}

/// The value the confirmation form carries: the enrolment id bound to the session that began it.
pub fn enrolment_token(p: &Provider, session_id: &str, enrolment_id: &str) -> String {
    let tag = p.crypto.mac(
        "mfa-enrolment",
        binding(session_id, enrolment_id).as_bytes(),
    );
    format!("{enrolment_id}.{}", b64(&tag))
}

fn binding(session_id: &str, enrolment_id: &str) -> String {
    format!("{session_id}\0{enrolment_id}")
}

/// The enrolment id from a confirmation form, if this session began it.
pub fn open_enrolment_token(p: &Provider, session_id: &str, token: &str) -> Option<String> {
    if token.len() > 256 {
        return None;
    }
    let (id, tag) = token.rsplit_once('.')?;
    let tag = b64_decode(tag)?;
    p.crypto
        .verify_mac("mfa-enrolment", binding(session_id, id).as_bytes(), &tag)
        .then(|| id.to_string())
}

/// Starts adding an authenticator app (after a recent authentication).
pub async fn start_totp(
    p: &Provider,
    active: &ActiveSession,
) -> Result<TotpEnrolment, ChangeError> {
    require_recent(p, &active.session).await?;
    Ok(super::begin_totp_enrolment(p, &active.user).await?)
}

/// An unfinished enrolment of this user shown again (after a wrong code): the same key.
pub async fn show_totp(
    p: &Provider,
    user: &User,
    enrolment_id: &str,
) -> Result<TotpEnrolment, MfaError> {
    let pending = p
        .store
        .find_pending_totp(&user.id, enrolment_id, p.now())
        .await?
        .ok_or(MfaError::EnrolmentGone)?;
    let secret = decrypt_secret(p, &user.id, &pending.id, &pending.secret_enc)?;
    let uri =
        totp::otpauth_uri(&secret, &p.settings.issuer, &user.email).ok_or(MfaError::Corrupt)?;
    let qr_svg = totp::qr_svg(&uri).ok_or(MfaError::Corrupt)?;
    Ok(TotpEnrolment {
        id: pending.id,
        key: secret.base32_grouped(),
        uri,
        qr_svg,
        expires_at: pending.expires_at,
    })
}

/// Finishes adding an authenticator app from the session that began it, behind the
/// confirmation throttle; then the other sessions end, the change is audited and mailed.
pub async fn finish_totp(
    p: &Provider,
    ctx: &ChangeContext<'_>,
    active: &ActiveSession,
    token: &str,
    name: &FactorName,
    code: &str,
) -> Result<ConfirmedTotp, ChangeError> {
    let enrolment_id =
        open_enrolment_token(p, &active.session.id, token).ok_or(ChangeError::OtherSession)?;
    let user_id = &active.user.id;
    let key = format!("enrol:{user_id}");
    let attempt = Attempt {
        account: &key,
        device: None,
        ip: None,
        factor: Factor::SecondFactor,
    };
    let now = p.now();
    if let Gate::Locked(s) | Gate::Limited(s) =
        throttle::check(&p.fleet, ctx.throttle, &attempt, now).await
    {
        return Err(ChangeError::Locked(s));
    }
    let confirmed = match super::confirm_totp_enrolment(p, user_id, &enrolment_id, name, code).await
    {
        Ok(c) => c,
        Err(MfaError::InvalidCode) => {
            throttle::failed(&p.fleet, ctx.throttle, &attempt, now).await;
            return Err(MfaError::InvalidCode.into());
        }
        Err(e) => return Err(e.into()),
    };
    throttle::succeeded(&p.fleet, &attempt).await;
    after_change(
        p,
        ctx,
        active,
        AuditEvent::new("mfa.factor_added")
            .detail("factor", confirmed.factor_id.clone())
            .detail("kind", FactorKind::Totp.as_str())
            .detail("recovery_codes_issued", confirmed.recovery_codes.is_some()),
        Notice {
            subject: "An authenticator app was added to your account",
            what: format!(
                "An authenticator app (\u{201c}{}\u{201d}) was added to",
                name.as_str()
            ),
        },
    )
    .await?;
    Ok(confirmed)
}

/// Removes one of the user's own factors (after a recent authentication); another user's
/// factor id is [`ChangeError::NoSuchFactor`] and nothing changes.
pub async fn remove(
    p: &Provider,
    ctx: &ChangeContext<'_>,
    active: &ActiveSession,
    factor_id: &str,
) -> Result<FactorInfo, ChangeError> {
    require_recent(p, &active.session).await?;
    let user_id = &active.user.id;
    let Some(factor) = factors(p, user_id)
        .await?
        .into_iter()
        .find(|f| f.id == factor_id)
    else {
        return Err(ChangeError::NoSuchFactor);
    };
    if !super::remove_factor(p, user_id, factor_id).await? {
        return Err(ChangeError::NoSuchFactor);
    }
    after_change(
        p,
        ctx,
        active,
        AuditEvent::new("mfa.factor_removed")
            .detail("factor", factor.id.clone())
            .detail("kind", factor.kind.as_str()),
        Notice {
            subject: match factor.kind {
                FactorKind::Totp => "An authenticator app was removed from your account",
                FactorKind::WebAuthn => "A passkey or security key was removed from your account",
            },
            what: format!(
                "{} (\u{201c}{}\u{201d}) was removed from",
                kind_phrase(factor.kind),
                factor.name
            ),
        },
    )
    .await?;
    Ok(factor)
}

/// A new set of recovery codes (after a recent authentication), the old set void at once;
/// returned to be shown this once.
pub async fn regenerate(
    p: &Provider,
    ctx: &ChangeContext<'_>,
    active: &ActiveSession,
) -> Result<Vec<SecretString>, ChangeError> {
    require_recent(p, &active.session).await?;
    let codes = super::regenerate_recovery_codes(p, &active.user.id).await?;
    after_change(
        p,
        ctx,
        active,
        AuditEvent::new("mfa.recovery_codes_regenerated").detail("codes", codes.len()),
        Notice {
            subject: "New recovery codes were made for your account",
            what: "A new set of recovery codes (the old ones no longer work) was made for".into(),
        },
    )
    .await?;
    Ok(codes)
}

fn kind_phrase(kind: FactorKind) -> &'static str {
    match kind {
        FactorKind::Totp => "An authenticator app",
        FactorKind::WebAuthn => "A passkey or security key",
    }
}

/// A security notice: its subject, and the start of its first sentence ("... your account").
pub struct Notice {
    pub subject: &'static str,
    pub what: String,
}

/// Ends the user's other sessions, audits `event` (with actor, subject and device) and mails
/// the notice. Public so the passkey pages make the same three moves.
pub async fn after_change(
    p: &Provider,
    ctx: &ChangeContext<'_>,
    active: &ActiveSession,
    event: AuditEvent,
    notice: Notice,
) -> Result<u64, ChangeError> {
    let user = &active.user;
    let ended = p
        .revoke_user_sessions(&user.id, Some(&active.session.id))
        .await?;
    p.audit(
        event
            .actor(&user.id)
            .subject(&user.id)
            .from_device(ctx.ip.clone(), ctx.user_agent.clone())
            .detail("sessions_ended", ended),
    )
    .await;
    ctx.mailer.send_later(security_notice(p, user, &notice));
    Ok(ended)
}

/// The mail telling the user what changed, and what to do if it was not them.
pub fn security_notice(p: &Provider, user: &User, notice: &Notice) -> Mail {
    let issuer = &p.settings.issuer;
    Mail {
        to: user.email.clone(),
        subject: notice.subject.into(),
        text: SecretString::new(format!(
            "{} your account {} on {}.\n\n\
             For your security, your other devices were signed out.\n\
             You can see your sign-in methods at {issuer}/account/security.\n\n\
             If this was not you, reset your password now at {issuer}/password/forgot \
             and tell your administrator.\n",
            notice.what,
            user.email,
            utc(p.now()),
        )),
    }
}

/// A time as a mail reads it: `2026-12-02 16:45 UTC`.
fn utc(t: Timestamp) -> String {
    let secs = u64::try_from(t).unwrap_or(0);
    let shown = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
    )
    .to_string();
    format!("{} UTC", shown.trim_end_matches('Z').replacen('T', " ", 1))
}

impl FactorInfo {
    /// What the factor is, as the account page names it.
    pub fn kind_label(&self) -> &'static str {
        match self.kind {
            FactorKind::Totp => "Authenticator app",
            FactorKind::WebAuthn if self.passwordless => "Passkey",
            FactorKind::WebAuthn => "Security key",
        }
    }

    /// An authenticator app (the passkey pages list the others).
    pub fn is_authenticator_app(&self) -> bool {
        self.kind == FactorKind::Totp
    }
}

#[cfg(test)]
mod tests;
