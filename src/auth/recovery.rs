//! Account links sent by mail: password reset, email verification, self-registration.
//!
//! Links are 256-bit random, stored only as keyed hashes, single use and short-lived. Every
//! answer is the same whether or not the account exists, and mail goes out in the background so
//! response times do not tell either.

use crate::audit::AuditEvent;
use crate::auth::account;
use crate::auth::email::Email;
use crate::auth::password::PasswordHasher;
use crate::auth::policy::{PasswordPolicy, PolicyViolation};
use crate::crypto::{SecretString, random_id, random_token};
use crate::mail::{Mail, Mailer};
use crate::oauth::Provider;
use crate::store::{AccountTokenKind, AccountTokenStore, StoreError, Transient, User, UserStore};

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("the link is invalid, expired or already used")]
    InvalidLink,
    #[error("{0}")]
    Policy(#[from] PolicyViolation),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("password hashing failed")]
    Hash,
}

impl Transient for RecoveryError {
    fn is_transient(&self) -> bool {
        matches!(self, RecoveryError::Store(e) if e.is_transient())
    }
}

impl From<account::AccountError> for RecoveryError {
    fn from(e: account::AccountError) -> Self {
        match e {
            account::AccountError::Store(s) => RecoveryError::Store(s),
            _ => RecoveryError::Hash,
        }
    }
}

pub struct Links<'a> {
    pub mailer: &'a Mailer,
    pub reset_ttl: i64,
    pub verification_ttl: i64,
}

fn minutes(secs: i64) -> String {
    let m = (secs + 59) / 60;
    if m >= 120 {
        format!("{} hours", m / 60)
    } else {
        format!("{m} minutes")
    }
}

/// Stores a new single-use link of `kind` for the user, valid for `ttl` seconds; returns its
/// token (only its keyed hash is stored).
pub(crate) async fn issue(
    p: &Provider,
    user: &User,
    kind: AccountTokenKind,
    ttl: i64,
) -> Result<String, StoreError> {
    let token = random_token();
    let now = p.now();
    p.store
        .insert_account_token(&p.crypto.token_hash(&token), kind, &user.id, now, now + ttl)
        .await?;
    Ok(token)
}

/// "Forgot password", answered at once: the lookup, and for an existing account the link, the
/// audit entry and the mail, run in the background for every address, so the caller's response
/// (its content, its status and its time) is the same whether or not the account exists.
/// Failures are logged.
pub fn request_password_reset_in_background(p: &Provider, links: &Links<'_>, email: &str) {
    let p = p.clone();
    let mailer = links.mailer.clone();
    let reset_ttl = links.reset_ttl;
    let email = email.to_string();
    tokio::spawn(async move {
        let links = Links {
            mailer: &mailer,
            reset_ttl,
            verification_ttl: 0,
        };
        if let Err(e) = request_password_reset(&p, &links, &email).await {
            tracing::error!(error = %e, "password reset request failed");
        }
    });
}

/// "Forgot password": mails a reset link if the account exists and is active; silent otherwise.
/// Its duration depends on the account, so it only runs in the background.
async fn request_password_reset(
    p: &Provider,
    links: &Links<'_>,
    email: &str,
) -> Result<(), StoreError> {
    let email = crate::auth::email::normalise(email);
    let Some(user) = p
        .store
        .find_user_by_email(&email)
        .await?
        .filter(|u| !u.disabled)
    else {
        return Ok(());
    };
    let token = issue(p, &user, AccountTokenKind::PasswordReset, links.reset_ttl).await?;
    let link = format!("{}/password/reset?token={token}", p.settings.issuer);
    links.mailer.send_later(Mail {
        to: user.email.clone(),
        subject: "Reset your password".into(),
        text: crate::secret::SecretString::new(format!(
            "Someone asked to reset the password of your account {}.\n\n\
             To choose a new password, open this link within {}:\n\n{link}\n\n\
             The link works once. Resetting signs you out on every device.\n\
             If you did not ask for this, ignore this mail: your password stays as it is.\n",
            user.email,
            minutes(links.reset_ttl)
        )),
    });
    p.audit(AuditEvent::new("password.reset_requested").subject(&user.id))
        .await;
    Ok(())
}

/// The links that open the "choose a password" form: a reset, and an invitation (a user an
/// operator created sets their first password through the same form).
const PASSWORD_LINKS: [AccountTokenKind; 2] = [
    AccountTokenKind::PasswordReset,
    AccountTokenKind::Invitation,
];

/// Whether a reset (or invitation) link can still be used (to show the form, without spending
/// the link).
pub async fn reset_link_usable(p: &Provider, token: &str) -> Result<bool, StoreError> {
    for kind in PASSWORD_LINKS {
        if link_usable(p, token, kind).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The kind and user of a live password link, read without spending it.
async fn password_link(
    p: &Provider,
    hash: &[u8],
    now: crate::clock::Timestamp,
) -> Result<Option<(AccountTokenKind, String)>, StoreError> {
    for kind in PASSWORD_LINKS {
        if let Some(user_id) = p.store.peek_account_token(hash, kind, now).await? {
            return Ok(Some((kind, user_id)));
        }
    }
    Ok(None)
}

/// The mail inviting a user an operator created to choose their first password.
pub fn invitation_mail(issuer: &str, user: &User, token: &str, ttl: i64) -> Mail {
    Mail {
        to: user.email.clone(),
        subject: "You are invited: choose your password".into(),
        text: crate::secret::SecretString::new(format!(
            "An administrator created an account for you ({}) at {issuer}.\n\n\
             This is an invitation: to accept it, choose your password by opening this link \
             within {}:\n\n{issuer}/password/reset?token={token}\n\n\
             The link works once. If you did not expect this invitation, ignore this mail.\n",
            user.email,
            minutes(ttl)
        )),
    }
}

/// The mail sent when an operator made a user's password unusable and asks for a new one.
pub fn forced_reset_mail(issuer: &str, user: &User, token: &str, ttl: i64) -> Mail {
    Mail {
        to: user.email.clone(),
        subject: "Choose a new password".into(),
        text: crate::secret::SecretString::new(format!(
            "An administrator asked you to choose a new password for your account {}. Your old \
             password no longer works and every device was signed out.\n\n\
             To choose a new password, open this link within {}:\n\n\
             {issuer}/password/reset?token={token}\n\n\
             The link works once. If it has expired, ask for a new one at {issuer}/password/forgot.\n",
            user.email,
            minutes(ttl)
        )),
    }
}

/// Whether a link of `kind` is live, read without spending it.
async fn link_usable(
    p: &Provider,
    token: &str,
    kind: AccountTokenKind,
) -> Result<bool, StoreError> {
    if token.len() > 128 {
        return Ok(false);
    }
    let hash = p.crypto.token_hash(token);
    Ok(p.store
        .peek_account_token(&hash, kind, p.now())
        .await?
        .is_some())
}

/// Sets the new password through a reset or invitation link; every session of the user ends.
pub async fn complete_password_reset(
    p: &Provider,
    hasher: &PasswordHasher,
    policy: &PasswordPolicy,
    token: &str,
    password: &SecretString,
) -> Result<User, RecoveryError> {
    if token.len() > 128 {
        return Err(RecoveryError::InvalidLink);
    }
    let hash = p.crypto.token_hash(token);
    let now = p.now();
    let (kind, user_id) = password_link(p, &hash, now)
        .await?
        .ok_or(RecoveryError::InvalidLink)?;
    let user = p
        .store
        .find_user(&user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or(RecoveryError::InvalidLink)?;
    // Checked before the link is spent, so a refused password can be corrected.
    policy.check(password.expose(), &user.email)?;
    if p.store
        .consume_account_token(&hash, kind, now)
        .await?
        .is_none()
    {
        return Err(RecoveryError::InvalidLink);
    }
    // `set_password` ends the user's other live password links (of both kinds) too.
    p.store.expire_account_tokens(&user.id, kind, now).await?;
    account::set_password(p, hasher, &user, password, None, &user.id).await?;
    // Receiving the link proves the mailbox: the address is verified and any lock lifted.
    p.store.set_email_verified(&user.id, now).await?;
    crate::auth::throttle::clear_account(&p.fleet, &user.email).await;
    let action = match kind {
        AccountTokenKind::Invitation => "user.invitation_accepted",
        _ => "password.reset_completed",
    };
    p.audit(AuditEvent::new(action).actor(&user.id).subject(&user.id))
        .await;
    Ok(user)
}

/// Mails an email-verification link.
pub async fn send_verification(
    p: &Provider,
    links: &Links<'_>,
    user: &User,
) -> Result<(), StoreError> {
    let token = issue(
        p,
        user,
        AccountTokenKind::EmailVerification,
        links.verification_ttl,
    )
    .await?;
    let link = format!("{}/verify-email?token={token}", p.settings.issuer);
    links.mailer.send_later(Mail {
        to: user.email.clone(),
        subject: "Confirm your email address".into(),
        text: crate::secret::SecretString::new(format!(
            "Please confirm that {} is your email address by opening this link within {}:\n\n{link}\n\n\
             If you did not create an account, ignore this mail.\n",
            user.email,
            minutes(links.verification_ttl)
        )),
    });
    Ok(())
}

/// Whether a confirmation link can still be used (to show its button, without spending it).
pub async fn verification_link_usable(p: &Provider, token: &str) -> Result<bool, StoreError> {
    link_usable(p, token, AccountTokenKind::EmailVerification).await
}

/// Confirms the address behind a confirmation link and spends the link.
pub async fn verify_email(p: &Provider, token: &str) -> Result<User, RecoveryError> {
    if token.len() > 128 {
        return Err(RecoveryError::InvalidLink);
    }
    let now = p.now();
    let user_id = p
        .store
        .consume_account_token(
            &p.crypto.token_hash(token),
            AccountTokenKind::EmailVerification,
            now,
        )
        .await?
        .ok_or(RecoveryError::InvalidLink)?;
    p.store.set_email_verified(&user_id, now).await?;
    let user = p
        .store
        .find_user(&user_id)
        .await?
        .ok_or(RecoveryError::InvalidLink)?;
    p.audit(
        AuditEvent::new("user.email_verified")
            .actor(&user.id)
            .subject(&user.id),
    )
    .await;
    Ok(user)
}

/// Self-registration. The answer is the same for a new and an existing email: a new account gets
/// a verification link, an existing one a note that someone tried to register with it.
pub async fn register(
    p: &Provider,
    hasher: &PasswordHasher,
    policy: &PasswordPolicy,
    links: &Links<'_>,
    email: &Email,
    name: Option<&str>,
    password: &SecretString,
) -> Result<(), RecoveryError> {
    policy.check(password.expose(), email.as_str())?;
    // Hash before looking the email up, so both paths cost the same.
    let hash = hasher
        .hash(password)
        .await
        .map_err(|_| RecoveryError::Hash)?;
    if let Some(existing) = p.store.find_user_by_email(email.as_str()).await? {
        links.mailer.send_later(Mail {
            to: existing.email.clone(),
            subject: "You already have an account".into(),
            text: crate::secret::SecretString::new(format!(
                "Someone tried to create an account with {}, which already has one.\n\n\
                 If it was you, sign in instead, or reset your password at {}/password/forgot.\n\
                 If it was not you, nothing changed and you can ignore this mail.\n",
                existing.email, p.settings.issuer
            )),
        });
        return Ok(());
    }
    let user = User {
        id: random_id(),
        email: email.to_string(),
        name: name
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| n.chars().take(128).collect()),
        roles: Vec::new(),
        password_hash: hash.into(),
        disabled: false,
        email_verified: false,
        created_at: p.now(),
    };
    match p.store.insert_user(&user).await {
        // A concurrent registration with the same email: same answer.
        Err(StoreError::Conflict) => return Ok(()),
        other => other?,
    }
    p.audit(
        AuditEvent::new("user.registered")
            .actor(&user.id)
            .subject(&user.id),
    )
    .await;
    send_verification(p, links, &user).await?;
    Ok(())
}
