//! Second factors: authenticator apps (TOTP), recovery codes, WebAuthn ceremony state, and the
//! authentication level they reach. The use cases below are what pages and the sign-in's
//! second step call; each takes the [`Provider`] and reads the time from its clock.
//!
//! What they leave to the caller, who knows the request: re-authentication before a change
//! (the issue: when the last one is older than 5 minutes), throttling of second-step failures
//! (`verify_one_time_code` must sit behind its own counter), the audit entry with the device,
//! the security notice by mail, and ending the user's other sessions after a factor is added
//! or removed. [`reset_mfa`], the operator's command, is complete on its own.
//!
//! Storage, replay protection and ceremonies: docs/DESIGN.md, "Second factors".

pub mod ceremony;
pub mod level;
pub mod manage;
pub mod recovery_codes;
pub mod second_step;
pub mod totp;
pub mod webauthn;

use crate::audit::AuditEvent;
use crate::clock::Timestamp;
use crate::crypto::random_id;
use crate::oauth::Provider;
use crate::secret::SecretString;
use crate::store::{FactorKind, MfaStore, PendingTotp, StepProof, StoreError, Transient, User};

pub use level::{Acr, Amr};
use recovery_codes::RecoveryCode;
use totp::TotpSecret;

/// How long an authenticator-app enrolment waits for its first code.
pub const ENROLMENT_TTL: i64 = 600;

#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    /// Wrong, malformed, replayed or already used: one answer for all, so a failure tells
    /// nothing about which.
    #[error("the code is not valid")]
    InvalidCode,
    #[error("this setup has expired or was already completed; start again")]
    EnrolmentGone,
    #[error("{0}")]
    InvalidName(&'static str),
    /// A stored secret or ceremony state did not decrypt or parse (wrong master key, tampering).
    #[error("stored second-factor data cannot be read")]
    Corrupt,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Transient for MfaError {
    fn is_transient(&self) -> bool {
        matches!(self, MfaError::Store(e) if e.is_transient())
    }
}

/// The label a user gives a factor ("Phone", "YubiKey"): trimmed, at most
/// [`FactorName::MAX_CHARS`] characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactorName(String);

impl FactorName {
    pub const MAX_CHARS: usize = 64;

    /// Parses a name typed by the user; an empty one becomes `default`.
    pub fn parse(text: &str, default: &str) -> Result<Self, MfaError> {
        let text = match text.trim() {
            "" => default.trim(),
            t => t,
        };
        if text.chars().count() > Self::MAX_CHARS {
            return Err(MfaError::InvalidName("Use at most 64 characters."));
        }
        if text.chars().any(char::is_control) {
            return Err(MfaError::InvalidName("Use letters, digits and spaces."));
        }
        Ok(Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A factor as pages show it (no secret, no credential).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactorInfo {
    pub id: String,
    pub kind: FactorKind,
    pub name: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    /// A passkey that signs in alone.
    pub passwordless: bool,
}

/// An authenticator-app enrolment to show: the QR code, the key as text beside it, and the id
/// the confirmation form sends back.
#[derive(Debug, Clone)]
pub struct TotpEnrolment {
    pub id: String,
    /// The key, base32 in groups of four (`JBSW Y3DP ...`), for typing into an app.
    pub key: SecretString,
    /// The `otpauth://` URI the QR code holds.
    pub uri: SecretString,
    /// The QR code: an inline `<svg>` element.
    pub qr_svg: String,
    pub expires_at: Timestamp,
}

/// A confirmed authenticator app.
#[derive(Debug, Clone)]
pub struct ConfirmedTotp {
    pub factor_id: String,
    /// The user's first recovery codes (`xxxx-xxxx`), when they had none: to show once.
    pub recovery_codes: Option<Vec<SecretString>>,
}

/// How a one-time code was accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OneTimeCode {
    /// A code of this authenticator app.
    Totp { factor_id: String },
    /// A recovery code; `left` unused ones remain.
    RecoveryCode { left: i64 },
}

impl OneTimeCode {
    /// The method to record (RFC 8176): `otp` for both, a recovery code being a one-time
    /// password too.
    pub fn amr(&self) -> Amr {
        Amr::Otp
    }
}

/// Starts adding an authenticator app: a new secret, kept encrypted for [`ENROLMENT_TTL`]
/// (replacing any enrolment the user had not finished), shown as a QR code and as text.
/// Nothing counts as a factor until [`confirm_totp_enrolment`].
pub async fn begin_totp_enrolment(p: &Provider, user: &User) -> Result<TotpEnrolment, MfaError> {
    let secret = TotpSecret::generate();
    let id = random_id();
    let now = p.now();
    let uri =
        totp::otpauth_uri(&secret, &p.settings.issuer, &user.email).ok_or(MfaError::Corrupt)?;
    let qr_svg = totp::qr_svg(&uri).ok_or(MfaError::Corrupt)?;
    let pending = PendingTotp {
        id: id.clone(),
        user_id: user.id.clone(),
        secret_enc: p.crypto.encrypt(secret.expose(), &totp::aad(&user.id, &id)),
        created_at: now,
        expires_at: now + ENROLMENT_TTL,
    };
    p.store.insert_pending_totp(&pending).await?;
    Ok(TotpEnrolment {
        id,
        key: secret.base32_grouped(),
        uri,
        qr_svg,
        expires_at: pending.expires_at,
    })
}

/// Finishes adding an authenticator app with a code from it: the enrolment becomes a factor
/// named `name`, and the code's step counts as used (it cannot also sign in). The user's first
/// factor also brings their first recovery codes, returned to be shown once.
pub async fn confirm_totp_enrolment(
    p: &Provider,
    user_id: &str,
    enrolment_id: &str,
    name: &FactorName,
    code: &str,
) -> Result<ConfirmedTotp, MfaError> {
    let now = p.now();
    let pending = p
        .store
        .find_pending_totp(user_id, enrolment_id, now)
        .await?
        .ok_or(MfaError::EnrolmentGone)?;
    let secret = decrypt_secret(p, user_id, &pending.id, &pending.secret_enc)?;
    let step = secret.verify(code, now).ok_or(MfaError::InvalidCode)?;
    if !p
        .store
        .confirm_pending_totp(user_id, enrolment_id, name.as_str(), step, now)
        .await?
    {
        return Err(MfaError::EnrolmentGone);
    }
    let (_, ever_issued) = p.store.count_recovery_codes(user_id).await?;
    let recovery_codes = if ever_issued == 0 {
        Some(regenerate_recovery_codes(p, user_id).await?)
    } else {
        None
    };
    Ok(ConfirmedTotp {
        factor_id: pending.id,
        recovery_codes,
    })
}

fn decrypt_secret(
    p: &Provider,
    user_id: &str,
    id: &str,
    sealed: &[u8],
) -> Result<TotpSecret, MfaError> {
    p.crypto
        .decrypt(sealed, &totp::aad(user_id, id))
        .map(TotpSecret::from_bytes)
        .map_err(|_| MfaError::Corrupt)
}

/// Checks a one-time code the user typed at the second step: a code of any of their
/// authenticator apps (at the current step or one either side, each step accepted once), or
/// one of their unused recovery codes (spent by this call). Every refusal is
/// [`MfaError::InvalidCode`]. Call it behind the second step's throttle.
pub async fn verify_one_time_code(
    p: &Provider,
    user_id: &str,
    code: &str,
) -> Result<OneTimeCode, MfaError> {
    // The same match as the second step's (`one_time_code_proof`), spent here on its own.
    let now = p.now();
    match one_time_code_proof(p, user_id, code).await? {
        StepProof::TotpStep { factor_id, step } => {
            if !p
                .store
                .accept_totp_step(user_id, &factor_id, step, now)
                .await?
            {
                return Err(MfaError::InvalidCode);
            }
            Ok(OneTimeCode::Totp { factor_id })
        }
        StepProof::RecoveryCode { hash } => {
            if !p.store.consume_recovery_code(user_id, &hash, now).await? {
                return Err(MfaError::InvalidCode);
            }
            let (left, _) = p.store.count_recovery_codes(user_id).await?;
            Ok(OneTimeCode::RecoveryCode { left })
        }
        StepProof::Verified => Err(MfaError::InvalidCode),
    }
}

/// What a one-time code typed at the second step would spend, found without writing
/// anything: the step of one of the user's authenticator apps it matches (the current step or
/// one either side, later than the app's last accepted step), or a well-formed recovery code's
/// keyed hash. The spend itself is part of the second step's transaction
/// (`MfaStore::complete_second_step`), which refuses a replay that raced this check and an
/// unknown or spent recovery code. Every refusal here is [`MfaError::InvalidCode`].
pub async fn one_time_code_proof(
    p: &Provider,
    user_id: &str,
    code: &str,
) -> Result<StepProof, MfaError> {
    let now = p.now();
    let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() == totp::DIGITS {
        for f in p.store.list_factors(user_id).await? {
            let Some(sealed) = f
                .secret_enc
                .as_deref()
                .filter(|_| f.kind == FactorKind::Totp)
            else {
                continue;
            };
            let secret = decrypt_secret(p, user_id, &f.id, sealed)?;
            if let Some(step) = secret.verify(&digits, now)
                && f.last_step.is_none_or(|last| last < step)
            {
                return Ok(StepProof::TotpStep {
                    factor_id: f.id,
                    step,
                });
            }
        }
        return Err(MfaError::InvalidCode);
    }
    let code = RecoveryCode::parse(code).ok_or(MfaError::InvalidCode)?;
    Ok(StepProof::RecoveryCode {
        hash: code.hash(&p.crypto, user_id),
    })
}

/// A new set of recovery codes for the user, replacing the old set (used or not) at once.
/// Returned as shown (`xxxx-xxxx`): this is the only time they can be read.
pub async fn regenerate_recovery_codes(
    p: &Provider,
    user_id: &str,
) -> Result<Vec<SecretString>, MfaError> {
    let set = recovery_codes::generate_set();
    let hashes: Vec<Vec<u8>> = set.iter().map(|c| c.hash(&p.crypto, user_id)).collect();
    p.store
        .replace_recovery_codes(user_id, &hashes, p.now())
        .await?;
    Ok(set.iter().map(RecoveryCode::display).collect())
}

/// How many of the user's recovery codes are still unused.
pub async fn recovery_codes_left(p: &Provider, user_id: &str) -> Result<i64, MfaError> {
    Ok(p.store.count_recovery_codes(user_id).await?.0)
}

/// The user's factors, oldest first.
pub async fn factors(p: &Provider, user_id: &str) -> Result<Vec<FactorInfo>, MfaError> {
    Ok(p.store
        .list_factors(user_id)
        .await?
        .into_iter()
        .map(|f| FactorInfo {
            id: f.id,
            kind: f.kind,
            name: f.name,
            created_at: f.created_at,
            last_used_at: f.last_used_at,
            passwordless: f.passwordless,
        })
        .collect())
}

/// Whether the user has a second factor (then the sign-in asks for it).
pub async fn has_second_factor(p: &Provider, user_id: &str) -> Result<bool, MfaError> {
    Ok(!p.store.list_factors(user_id).await?.is_empty())
}

/// Removes one of the user's factors; false when the user has none with that id (another
/// user's factor is never touched). Recovery codes stay: they are the user's, not the
/// factor's.
pub async fn remove_factor(p: &Provider, user_id: &str, id: &str) -> Result<bool, MfaError> {
    Ok(p.store.remove_factor(user_id, id).await?)
}

/// `tessera user reset-mfa`: removes every factor, recovery code, unfinished enrolment and
/// ceremony of the user, ends all their sessions (with their tokens), and audits it with
/// `actor`. Returns how many factors were removed.
pub async fn reset_mfa(p: &Provider, user_id: &str, actor: &str) -> Result<u64, MfaError> {
    let removed = p.store.delete_all_factors(user_id).await?;
    let sessions = p.revoke_user_sessions(user_id, None).await?;
    p.audit(
        AuditEvent::new("user.mfa_reset")
            .actor(actor)
            .subject(user_id)
            .detail("factors", removed)
            .detail("sessions", sessions),
    )
    .await;
    Ok(removed)
}

#[cfg(test)]
mod tests;
