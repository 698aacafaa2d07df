//! Account-wide actions shared by the CLI, the account pages and (later) the admin pages. Each
//! one is audited with who did it.

use crate::audit::AuditEvent;
use crate::auth::password::PasswordHasher;
use crate::crypto::SecretString;
use crate::oauth::Provider;
use crate::store::{AccountTokenKind, AccountTokenStore, StoreError, Transient, User, UserStore};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("no such user")]
    NoSuchUser,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("password hashing failed")]
    Hash,
}

pub async fn find_by_email(p: &Provider, email: &str) -> Result<User, AccountError> {
    p.store
        .find_user_by_email(&crate::auth::email::normalise(email))
        .await?
        .ok_or(AccountError::NoSuchUser)
}

/// Signs the user out everywhere except `keep` (the session making the request, if any).
pub async fn sign_out_everywhere(
    p: &Provider,
    user: &User,
    keep: Option<&str>,
    actor: &str,
) -> Result<u64, AccountError> {
    let ended = p.revoke_user_sessions(&user.id, keep).await?;
    p.audit(
        AuditEvent::new("sessions.revoked_all")
            .actor(actor)
            .subject(&user.id)
            .detail("ended", ended)
            .detail("kept_current", keep.is_some()),
    )
    .await;
    Ok(ended)
}

/// Sets a new password and ends every other session (NIST SP 800-63B §6.1.2.3 spirit).
pub async fn set_password(
    p: &Provider,
    hasher: &PasswordHasher,
    user: &User,
    password: &SecretString,
    keep: Option<&str>,
    actor: &str,
) -> Result<(), AccountError> {
    let hash = hasher
        .hash(password)
        .await
        .map_err(|_| AccountError::Hash)?;
    let now = p.now();
    p.store.set_password_hash(&user.id, &hash, now).await?;
    // A live reset or invitation link would set another password over this one: whoever
    // holds that mail could take the account back later.
    for kind in [
        AccountTokenKind::PasswordReset,
        AccountTokenKind::Invitation,
    ] {
        p.store.expire_account_tokens(&user.id, kind, now).await?;
    }
    let ended = p.revoke_user_sessions(&user.id, keep).await?;
    p.audit(
        AuditEvent::new("user.password_changed")
            .actor(actor)
            .subject(&user.id)
            .detail("sessions_ended", ended),
    )
    .await;
    Ok(())
}

impl Transient for AccountError {
    fn is_transient(&self) -> bool {
        matches!(self, AccountError::Store(e) if e.is_transient())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("locked for {0}s")]
    Locked(i64),
    #[error("{0}")]
    Policy(#[from] crate::auth::policy::PolicyViolation),
    #[error(transparent)]
    Account(#[from] AccountError),
}

impl Transient for ChangeError {
    fn is_transient(&self) -> bool {
        matches!(self, ChangeError::Account(e) if e.is_transient())
    }
}

/// What a password change is checked against.
pub struct ChangeRules<'a> {
    pub hasher: &'a PasswordHasher,
    pub policy: &'a crate::auth::policy::PasswordPolicy,
    pub throttle: &'a crate::auth::throttle::ThrottlePolicy,
}

/// Changes a signed-in user's password: the current one is required (and its failures count
/// like sign-in failures), the new one must pass the policy, every other session ends, and this
/// session gets a new cookie (no fixation across a privilege change). Returns the new cookie
/// value (`None` if this session ended meanwhile).
pub async fn change_password(
    p: &Provider,
    rules: &ChangeRules<'_>,
    user: &User,
    current: &SecretString,
    new: &SecretString,
    keep_session: &str,
) -> Result<Option<String>, ChangeError> {
    use crate::auth::throttle::{self, Attempt, Factor, Gate};
    let attempt = Attempt {
        account: &user.email,
        device: Some(keep_session),
        ip: None,
        factor: Factor::Password,
    };
    let now = p.now();
    if let Gate::Locked(s) | Gate::Limited(s) =
        throttle::check(&p.fleet, rules.throttle, &attempt, now).await
    {
        return Err(ChangeError::Locked(s));
    }
    let verified = rules
        .hasher
        .verify(current, Some(user.password_hash.as_str()))
        .await
        .map_err(|_| AccountError::Hash)?;
    if !verified.valid {
        throttle::failed(&p.fleet, rules.throttle, &attempt, now).await;
        return Err(ChangeError::WrongPassword);
    }
    throttle::succeeded(&p.fleet, &attempt).await;
    rules.policy.check(new.expose(), &user.email)?;
    set_password(p, rules.hasher, user, new, Some(keep_session), &user.id).await?;
    let cookie = crate::auth::session::renew_cookie(p, keep_session)
        .await
        .map_err(AccountError::Store)?;
    Ok(cookie)
}
