//! Operator actions on users, shared by the console, the JSON API and `tessera user …`: the
//! list (search, filters, keyset pages) and a user's page; create (with a password, or by
//! invitation), name and roles, disable / enable, unlock, force a password reset, reset the
//! second factors, sign out everywhere. Each change is validated here and audited with the
//! actor's [`Actor::audit_name`].
//!
//! The last-admin rule: no change may leave no enabled user with the `admin` role (the store
//! serialises the check with the change), and an admin in the console may not take the role
//! from themselves nor disable themselves.

use serde::Serialize;

use super::{Actor, AdminError};
use crate::audit::{AuditEvent, AuditRecord};
use crate::auth::email::{self, Email};
use crate::auth::password::{self, PasswordHasher};
use crate::auth::policy::PasswordPolicy;
use crate::auth::recovery;
use crate::auth::throttle::{self, ThrottlePolicy};
use crate::clock::Timestamp;
use crate::config::Config;
use crate::crypto::{SecretString, random_id};
use crate::mail::Mailer;
use crate::oauth::Provider;
use crate::store::{
    AccountTokenKind, AccountTokenStore, AdminUserStore, Guarded, MfaStore, SessionStore,
    StoreError, User, UserQuery, UserRow, UserStore,
};

pub use crate::store::{PageDirection, UserSort};

/// The role that opens the console.
pub const ADMIN_ROLE: &str = "admin";
/// Rows per page unless asked otherwise, and the most a page holds.
pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 100;
/// Audit entries on a user's page.
pub const AUDIT_ENTRIES: i64 = 20;
const MAX_ROLES: usize = 16;
const MAX_NAME_CHARS: usize = 128;
const MAX_SEARCH_CHARS: usize = 254;

/// What operator actions on users need beyond the provider.
#[derive(Clone)]
pub struct UserRules<'a> {
    /// Invitations and forced resets are mailed.
    pub mailer: &'a Mailer,
    /// Where lock-outs are kept and how long they last.
    pub throttle: ThrottlePolicy,
    /// Seconds an invitation link works (`invitation_link_ttl`).
    pub invitation_ttl: i64,
    /// Seconds a reset link works (`reset_link_ttl`).
    pub reset_ttl: i64,
}

impl<'a> UserRules<'a> {
    pub fn from_config(config: &Config, mailer: &'a Mailer) -> Self {
        Self {
            mailer,
            throttle: config.throttle_policy(),
            invitation_ttl: config.invitation_link_ttl.as_secs() as i64,
            reset_ttl: config.reset_link_ttl.as_secs() as i64,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The list

/// Where a page starts: next to the row with this sort key and id, in `direction`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub key: i64,
    pub id: String,
    pub direction: PageDirection,
}

impl Cursor {
    /// Text form, `a.KEY.ID` (the rows after) or `b.KEY.ID` (the rows before). It only says
    /// where a page starts: a forged one shows another page of the same list, nothing more.
    pub fn encode(&self) -> String {
        let d = match self.direction {
            PageDirection::After => "a",
            PageDirection::Before => "b",
        };
        format!("{d}.{}.{}", self.key, self.id)
    }

    pub fn parse(text: &str) -> Result<Self, AdminError> {
        let bad = || AdminError::Invalid("the page cursor is malformed".into());
        if text.len() > 128 {
            return Err(bad());
        }
        let mut parts = text.splitn(3, '.');
        let direction = match parts.next() {
            Some("a") => PageDirection::After,
            Some("b") => PageDirection::Before,
            _ => return Err(bad()),
        };
        let key = parts
            .next()
            .and_then(|k| k.parse::<i64>().ok())
            .ok_or_else(bad)?;
        let id = parts.next().filter(|id| !id.is_empty()).ok_or_else(bad)?;
        Ok(Self {
            key,
            id: id.to_string(),
            direction,
        })
    }
}

/// A search of the user list.
#[derive(Debug, Clone)]
pub struct ListInput {
    /// Found anywhere (so also as a prefix) in the email, the name or the id, whatever the case.
    pub query: String,
    pub disabled: bool,
    /// Locked out now (password or second step).
    pub locked: bool,
    pub without_mfa: bool,
    pub sort: UserSort,
    pub cursor: Option<Cursor>,
    /// Rows per page: [`DEFAULT_PAGE`] when `None`, at most [`MAX_PAGE`].
    pub limit: Option<i64>,
}

impl Default for ListInput {
    fn default() -> Self {
        Self {
            query: String::new(),
            disabled: false,
            locked: false,
            without_mfa: false,
            sort: UserSort::Created,
            cursor: None,
            limit: None,
        }
    }
}

/// A user as the list and the user's page show them: never their password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserSummary {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub roles: Vec<String>,
    pub disabled: bool,
    pub email_verified: bool,
    /// False while invited and not accepted, or after a forced reset until a new password.
    pub has_password: bool,
    pub created_at: Timestamp,
    pub last_signin_at: Option<Timestamp>,
    /// Second factors.
    pub factors: i64,
    /// Locked out until then (password or second step).
    pub locked_until: Option<Timestamp>,
}

impl UserSummary {
    fn new(row: UserRow, locked_until: Option<Timestamp>) -> Self {
        let u = row.user;
        Self {
            has_password: password::is_usable(u.password_hash.as_str()),
            id: u.id,
            email: u.email,
            name: u.name,
            roles: u.roles,
            disabled: u.disabled,
            email_verified: u.email_verified,
            created_at: u.created_at,
            last_signin_at: row.last_signin_at,
            factors: row.factors,
            locked_until,
        }
    }
}

/// One page of the list, with the cursors of its neighbours.
#[derive(Debug, Clone)]
pub struct UserPage {
    pub users: Vec<UserSummary>,
    /// The older rows, if any.
    pub next: Option<Cursor>,
    /// The newer rows, if this page does not start the list.
    pub previous: Option<Cursor>,
}

/// One page of users matching `input`, newest first by `input.sort`.
///
/// "Locked" is the throttle's state: the store narrows the list to users with a lock-out
/// recorded in the audit log within the longest lock (`throttle.max`), and the shared counters
/// say whose still holds; only those rows count toward the page.
pub async fn list(
    p: &Provider,
    rules: &UserRules<'_>,
    input: &ListInput,
) -> Result<UserPage, AdminError> {
    let query = input.query.trim().to_lowercase();
    if query.chars().count() > MAX_SEARCH_CHARS {
        return Err(AdminError::Invalid("the search is too long".into()));
    }
    let limit = input.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(AdminError::Invalid(format!(
            "a page holds 1 to {MAX_PAGE} users"
        )));
    }
    let now = p.now();
    let direction = input
        .cursor
        .as_ref()
        .map_or(PageDirection::After, |c| c.direction);
    let mut q = UserQuery {
        search: query,
        disabled: input.disabled,
        without_mfa: input.without_mfa,
        recently_locked: input.locked,
        locks_since: now - rules.throttle.max,
        sort: input.sort,
        cursor: input.cursor.as_ref().map(|c| (c.key, c.id.clone())),
        direction,
        limit: limit + 1,
    };
    // Rows in the list's order, one more than a page when there are more.
    let mut found: Vec<UserSummary> = Vec::new();
    loop {
        let rows = p.store.list_users(&q).await?;
        let fetched = rows.len() as i64;
        let (first, last) = match (rows.first(), rows.last()) {
            (Some(f), Some(l)) => (f.clone(), l.clone()),
            _ => break,
        };
        let mut batch = Vec::with_capacity(rows.len());
        for row in rows {
            let locked_until = locked_until(p, &row, now).await;
            if input.locked && locked_until.is_none() {
                continue;
            }
            batch.push(UserSummary::new(row, locked_until));
        }
        // Further rows lie past the batch's far end: its last row going down the list, its
        // first going up.
        let far = match direction {
            PageDirection::After => {
                found.extend(batch);
                last
            }
            PageDirection::Before => {
                batch.extend(found);
                found = batch;
                first
            }
        };
        if fetched < q.limit || found.len() as i64 > limit {
            break;
        }
        q.cursor = Some((far.sort_key(input.sort), far.user.id.clone()));
    }
    let more = found.len() as i64 > limit;
    let cursor = |u: &UserSummary, direction| Cursor {
        key: match input.sort {
            UserSort::Created => u.created_at,
            UserSort::LastSignIn => u.last_signin_at.unwrap_or(0),
        },
        id: u.id.clone(),
        direction,
    };
    let (next, previous);
    match direction {
        PageDirection::After => {
            found.truncate(limit as usize);
            next = more
                .then(|| found.last().map(|u| cursor(u, PageDirection::After)))
                .flatten();
            previous = input
                .cursor
                .as_ref()
                .and(found.first().map(|u| cursor(u, PageDirection::Before)));
        }
        PageDirection::Before => {
            if more {
                found.drain(..found.len() - limit as usize);
            }
            previous = more
                .then(|| found.first().map(|u| cursor(u, PageDirection::Before)))
                .flatten();
            next = found.last().map(|u| cursor(u, PageDirection::After));
        }
    }
    Ok(UserPage {
        users: found,
        next,
        previous,
    })
}

/// Until when the row's user is locked out, asking the shared counters only about users with a
/// recent lock-out in the audit log.
async fn locked_until(p: &Provider, row: &UserRow, now: Timestamp) -> Option<Timestamp> {
    if !row.recently_locked {
        return None;
    }
    throttle::account_locked_until(&p.fleet, &row.user.email, &row.user.id, now).await
}

// ---------------------------------------------------------------------------------------------
// A user's page

/// A live session as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionSummary {
    pub id: String,
    /// The browser's user agent.
    pub device: Option<String>,
    pub ip: Option<String>,
    /// The clients that received codes or tokens through it.
    pub clients: Vec<String>,
    pub started_at: Timestamp,
    pub last_seen_at: Timestamp,
    /// How the user signed in (RFC 8176 `amr`).
    pub methods: Vec<String>,
}

/// A second factor: its name and kind, never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FactorSummary {
    pub id: String,
    pub name: String,
    /// `totp` or `webauthn`.
    pub kind: &'static str,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

/// An audit entry about the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditSummary {
    pub seq: i64,
    pub at: Timestamp,
    pub action: String,
    pub actor: Option<String>,
    pub ip: Option<String>,
    /// JSON.
    pub detail: String,
}

impl From<AuditRecord> for AuditSummary {
    fn from(r: AuditRecord) -> Self {
        Self {
            seq: r.seq,
            at: r.at,
            action: r.action,
            actor: r.actor,
            ip: r.ip,
            detail: r.detail,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsentSummary {
    pub client_id: String,
    pub scopes: Vec<String>,
    pub granted_at: Timestamp,
}

/// Everything a user's page shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserDetail {
    pub user: UserSummary,
    pub sessions: Vec<SessionSummary>,
    pub factors: Vec<FactorSummary>,
    /// (unused, issued) recovery codes.
    pub recovery_codes: (i64, i64),
    /// The newest [`AUDIT_ENTRIES`] entries whose subject is the user, newest first.
    pub audit: Vec<AuditSummary>,
    pub consents: Vec<ConsentSummary>,
}

/// A user by id, or by email (anything with an `@`).
pub async fn find(p: &Provider, email_or_id: &str) -> Result<User, AdminError> {
    let key = email_or_id.trim();
    if key.is_empty() || key.len() > 254 {
        return Err(AdminError::NotFound("user"));
    }
    let found = if key.contains('@') {
        p.store.find_user_by_email(&email::normalise(key)).await?
    } else {
        p.store.find_user(key).await?
    };
    found.ok_or(AdminError::NotFound("user"))
}

/// The user's page: who they are, their live sessions, factors, recent audit entries and
/// consents.
pub async fn show(p: &Provider, user_id: &str) -> Result<UserDetail, AdminError> {
    let user = p
        .store
        .find_user(user_id)
        .await?
        .ok_or(AdminError::NotFound("user"))?;
    let now = p.now();
    let last_signin_at = p.store.last_signin(&user.id).await?;
    let factors = p.store.list_factors(&user.id).await?;
    let locked_until = throttle::account_locked_until(&p.fleet, &user.email, &user.id, now).await;
    let sessions = p
        .store
        .list_user_sessions_with_clients(&user.id, now)
        .await?
        .into_iter()
        .map(|(s, clients)| SessionSummary {
            id: s.id,
            device: s.user_agent,
            ip: s.ip,
            clients,
            started_at: s.created_at,
            last_seen_at: s.last_seen_at,
            methods: s.amr,
        })
        .collect();
    let recovery_codes = p.store.count_recovery_codes(&user.id).await?;
    let audit = p
        .store
        .audit_about(&user.id, AUDIT_ENTRIES)
        .await?
        .into_iter()
        .map(AuditSummary::from)
        .collect();
    let consents = p
        .store
        .user_consents(&user.id)
        .await?
        .into_iter()
        .map(|c| ConsentSummary {
            client_id: c.client_id,
            scopes: c.scopes,
            granted_at: c.granted_at,
        })
        .collect();
    let row = UserRow {
        last_signin_at,
        factors: factors.len() as i64,
        recently_locked: locked_until.is_some(),
        user,
    };
    Ok(UserDetail {
        user: UserSummary::new(row, locked_until),
        sessions,
        factors: factors
            .into_iter()
            .map(|f| FactorSummary {
                id: f.id,
                name: f.name,
                kind: f.kind.as_str(),
                created_at: f.created_at,
                last_used_at: f.last_used_at,
            })
            .collect(),
        recovery_codes,
        audit,
        consents,
    })
}

// ---------------------------------------------------------------------------------------------
// Validation

/// A display name: trimmed, at most 128 characters, no control characters; empty is none.
pub fn parse_name(name: Option<&str>) -> Result<Option<String>, AdminError> {
    let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(AdminError::Invalid(format!(
            "a name has at most {MAX_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(AdminError::Invalid(
            "a name cannot contain control characters".into(),
        ));
    }
    Ok(Some(name.to_string()))
}

/// Roles: each 1 to 32 of `a-z 0-9 _ -`, at most 16, duplicates dropped (first kept).
pub fn parse_roles<S: AsRef<str>>(roles: &[S]) -> Result<Vec<String>, AdminError> {
    let mut parsed: Vec<String> = Vec::new();
    for role in roles {
        let role = role.as_ref().trim();
        let valid = (1..=32).contains(&role.len())
            && role
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !valid {
            return Err(AdminError::Invalid(format!(
                "`{}` is not a role: use 1 to 32 of a-z, 0-9, _ and -",
                role.chars().take(40).collect::<String>()
            )));
        }
        if !parsed.iter().any(|r| r == role) {
            parsed.push(role.to_string());
        }
    }
    if parsed.len() > MAX_ROLES {
        return Err(AdminError::Invalid(format!(
            "a user holds at most {MAX_ROLES} roles"
        )));
    }
    Ok(parsed)
}

fn parse_email(text: &str) -> Result<Email, AdminError> {
    Email::parse(text).map_err(|e| AdminError::Invalid(e.to_string()))
}

async fn existing(p: &Provider, user_id: &str) -> Result<User, AdminError> {
    p.store
        .find_user(user_id)
        .await?
        .ok_or(AdminError::NotFound("user"))
}

fn guarded(outcome: Guarded, what: &str) -> Result<(), AdminError> {
    match outcome {
        Guarded::Done => Ok(()),
        Guarded::NotFound => Err(AdminError::NotFound("user")),
        Guarded::LastAdmin => Err(AdminError::Invalid(format!(
            "refused: {what} would leave no enabled admin; make another user an admin first"
        ))),
    }
}

/// Whether `actor` is the console's admin `user_id` (an API token of the user's own counts too).
fn is_self(actor: &Actor, user_id: &str) -> bool {
    match actor {
        Actor::Admin(id) => id == user_id,
        Actor::Api {
            user_id: Some(id), ..
        } => id == user_id,
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Changes

/// A new user.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub name: Option<String>,
    pub roles: Vec<String>,
}

struct Checked {
    email: Email,
    name: Option<String>,
    roles: Vec<String>,
}

fn check_new(new: &NewUser) -> Result<Checked, AdminError> {
    Ok(Checked {
        email: parse_email(&new.email)?,
        name: parse_name(new.name.as_deref())?,
        roles: parse_roles(&new.roles)?,
    })
}

async fn insert(
    p: &Provider,
    actor: &Actor,
    new: Checked,
    password_hash: String,
    how: &str,
) -> Result<User, AdminError> {
    let user = User {
        id: random_id(),
        email: new.email.to_string(),
        name: new.name,
        roles: new.roles,
        password_hash: password_hash.into(),
        disabled: false,
        email_verified: false,
        created_at: p.now(),
    };
    match p.store.insert_user(&user).await {
        Err(StoreError::Conflict) => {
            return Err(AdminError::Conflict(format!(
                "a user with email {}",
                user.email
            )));
        }
        other => other?,
    }
    p.audit(
        AuditEvent::new("user.created")
            .actor(actor.audit_name())
            .subject(&user.id)
            .detail("roles", user.roles.clone())
            .detail("by", how),
    )
    .await;
    Ok(user)
}

/// Creates a user with a password the operator typed (`tessera user add`); the password must
/// pass the policy.
pub async fn create_with_password(
    p: &Provider,
    actor: &Actor,
    hasher: &PasswordHasher,
    policy: &PasswordPolicy,
    new: &NewUser,
    password: &SecretString,
) -> Result<User, AdminError> {
    let checked = check_new(new)?;
    policy
        .check(password.expose(), checked.email.as_str())
        .map_err(|v| AdminError::Invalid(v.to_string()))?;
    let hash = hasher
        .hash(password)
        .await
        .map_err(|_| AdminError::Invalid("the password could not be hashed".into()))?;
    insert(p, actor, checked, hash, "password").await
}

/// What an invitation did.
#[derive(Debug, Clone)]
pub struct Invited {
    pub user: User,
    /// When the link stops working.
    pub expires_at: Timestamp,
    /// The mail went out (false: the user exists, the link is stored, delivery failed; it is
    /// logged, and `invite_again` sends a new one).
    pub mailed: bool,
}

/// Creates a user without a usable password and mails them an invitation: a single-use link,
/// valid `invitation_ttl`, to choose their own password (the reset form accepts it).
pub async fn invite(
    p: &Provider,
    actor: &Actor,
    rules: &UserRules<'_>,
    new: &NewUser,
) -> Result<Invited, AdminError> {
    let checked = check_new(new)?;
    let user = insert(
        p,
        actor,
        checked,
        password::UNUSABLE.to_string(),
        "invitation",
    )
    .await?;
    send_invitation(p, actor, rules, user).await
}

/// Mails a new invitation to a user who has not chosen a password yet; earlier invitation
/// links stop working.
pub async fn invite_again(
    p: &Provider,
    actor: &Actor,
    rules: &UserRules<'_>,
    user_id: &str,
) -> Result<Invited, AdminError> {
    let user = existing(p, user_id).await?;
    if password::is_usable(user.password_hash.as_str()) {
        return Err(AdminError::Invalid(
            "this user has a password already; force a password reset instead".into(),
        ));
    }
    p.store
        .expire_account_tokens(&user.id, AccountTokenKind::Invitation, p.now())
        .await?;
    send_invitation(p, actor, rules, user).await
}

async fn send_invitation(
    p: &Provider,
    actor: &Actor,
    rules: &UserRules<'_>,
    user: User,
) -> Result<Invited, AdminError> {
    let ttl = rules.invitation_ttl;
    let token = recovery::issue(p, &user, AccountTokenKind::Invitation, ttl).await?;
    let mail = recovery::invitation_mail(&p.settings.issuer, &user, &token, ttl);
    let mailed = deliver(rules.mailer, mail).await;
    p.audit(
        AuditEvent::new("user.invited")
            .actor(actor.audit_name())
            .subject(&user.id)
            .detail("mailed", mailed),
    )
    .await;
    Ok(Invited {
        expires_at: p.now() + ttl,
        user,
        mailed,
    })
}

/// Sends a mail and waits for it (an operator's action: its time tells nobody anything, and the
/// CLI must not exit before it is sent). A failure is logged without the mail's body.
async fn deliver(mailer: &Mailer, mail: crate::mail::Mail) -> bool {
    match mailer.send(mail).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, "could not send an operator's mail");
            false
        }
    }
}

/// Sets or clears the display name.
pub async fn set_name(
    p: &Provider,
    actor: &Actor,
    user_id: &str,
    name: Option<&str>,
) -> Result<User, AdminError> {
    let name = parse_name(name)?;
    if !p
        .store
        .set_user_name(user_id, name.as_deref(), p.now())
        .await?
    {
        return Err(AdminError::NotFound("user"));
    }
    p.audit(
        AuditEvent::new("user.name_changed")
            .actor(actor.audit_name())
            .subject(user_id),
    )
    .await;
    existing(p, user_id).await
}

/// Replaces the user's roles. Refused: an admin taking `admin` from themselves, and any change
/// that leaves no enabled admin.
pub async fn set_roles<S: AsRef<str>>(
    p: &Provider,
    actor: &Actor,
    user_id: &str,
    roles: &[S],
) -> Result<User, AdminError> {
    let roles = parse_roles(roles)?;
    let before = existing(p, user_id).await?;
    let keeps_admin = roles.iter().any(|r| r == ADMIN_ROLE);
    if is_self(actor, user_id) && !keeps_admin && before.roles.iter().any(|r| r == ADMIN_ROLE) {
        return Err(AdminError::Invalid(
            "refused: you cannot remove your own admin role; another admin can".into(),
        ));
    }
    guarded(
        p.store.set_user_roles(user_id, &roles, p.now()).await?,
        "removing this admin role",
    )?;
    p.audit(
        AuditEvent::new("user.roles_changed")
            .actor(actor.audit_name())
            .subject(user_id)
            .detail("before", before.roles)
            .detail("roles", roles),
    )
    .await;
    existing(p, user_id).await
}

/// Blocks a user: every session and refresh token ends at once, and every grant fails because
/// the user is disabled (access tokens introspect inactive). Refused for an admin's own account
/// and for the last enabled admin.
pub async fn disable(p: &Provider, actor: &Actor, user_id: &str) -> Result<u64, AdminError> {
    if is_self(actor, user_id) {
        return Err(AdminError::Invalid(
            "refused: you cannot disable your own account".into(),
        ));
    }
    guarded(
        p.store
            .set_user_disabled_guarded(user_id, true, p.now())
            .await?,
        "disabling this user",
    )?;
    let ended = p.revoke_user_sessions(user_id, None).await?;
    p.audit(
        AuditEvent::new("user.disabled")
            .actor(actor.audit_name())
            .subject(user_id)
            .detail("sessions_ended", ended),
    )
    .await;
    Ok(ended)
}

/// Unblocks a user.
pub async fn enable(p: &Provider, actor: &Actor, user_id: &str) -> Result<(), AdminError> {
    if !p.store.set_user_disabled(user_id, false, p.now()).await? {
        return Err(AdminError::NotFound("user"));
    }
    p.audit(
        AuditEvent::new("user.enabled")
            .actor(actor.audit_name())
            .subject(user_id),
    )
    .await;
    Ok(())
}

/// Lifts the user's lock-out (password and second step, account-wide): their failure counts
/// start again from zero. Returns whether a lock was in force. Without Redis the counters live
/// in the server's memory, so only the server's own console reaches them.
pub async fn unlock(p: &Provider, actor: &Actor, user_id: &str) -> Result<bool, AdminError> {
    let user = existing(p, user_id).await?;
    let now = p.now();
    let was_locked = throttle::account_locked_until(&p.fleet, &user.email, &user.id, now)
        .await
        .is_some();
    throttle::clear_account_locks(&p.fleet, &user.email, &user.id).await;
    p.audit(
        AuditEvent::new("user.unlocked")
            .actor(actor.audit_name())
            .subject(&user.id)
            .detail("was_locked", was_locked),
    )
    .await;
    Ok(was_locked)
}

/// What a forced reset did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForcedReset {
    pub sessions_ended: u64,
    pub mailed: bool,
}

/// Makes the password unusable, ends every session and refresh token, and mails a reset link
/// (valid `reset_ttl`). Earlier reset links stop working.
pub async fn force_password_reset(
    p: &Provider,
    actor: &Actor,
    rules: &UserRules<'_>,
    user_id: &str,
) -> Result<ForcedReset, AdminError> {
    let user = existing(p, user_id).await?;
    let now = p.now();
    p.store
        .set_password_hash(&user.id, password::UNUSABLE, now)
        .await?;
    let sessions_ended = p.revoke_user_sessions(&user.id, None).await?;
    // An invitation link opens the same password form: it goes too.
    for kind in [
        AccountTokenKind::PasswordReset,
        AccountTokenKind::Invitation,
    ] {
        p.store.expire_account_tokens(&user.id, kind, now).await?;
    }
    let ttl = rules.reset_ttl;
    let token = recovery::issue(p, &user, AccountTokenKind::PasswordReset, ttl).await?;
    let mailed = deliver(
        rules.mailer,
        recovery::forced_reset_mail(&p.settings.issuer, &user, &token, ttl),
    )
    .await;
    p.audit(
        AuditEvent::new("user.password_reset_forced")
            .actor(actor.audit_name())
            .subject(&user.id)
            .detail("sessions_ended", sessions_ended)
            .detail("mailed", mailed),
    )
    .await;
    Ok(ForcedReset {
        sessions_ended,
        mailed,
    })
}

/// Sets a password the operator typed (`tessera user set-password`); it must pass the policy,
/// and every session of the user ends.
pub async fn set_password(
    p: &Provider,
    actor: &Actor,
    hasher: &PasswordHasher,
    policy: &PasswordPolicy,
    user_id: &str,
    new: &SecretString,
) -> Result<(), AdminError> {
    let user = existing(p, user_id).await?;
    policy
        .check(new.expose(), &user.email)
        .map_err(|v| AdminError::Invalid(v.to_string()))?;
    crate::auth::account::set_password(p, hasher, &user, new, None, &actor.audit_name())
        .await
        .map_err(|e| match e {
            crate::auth::account::AccountError::Store(e) => AdminError::Store(e),
            other => AdminError::Invalid(other.to_string()),
        })
}

/// Removes every second factor and recovery code of the user (who lost them); every session
/// ends. Returns how many factors went.
pub async fn reset_mfa(p: &Provider, actor: &Actor, user_id: &str) -> Result<u64, AdminError> {
    let user = existing(p, user_id).await?;
    crate::auth::mfa::reset_mfa(p, &user.id, &actor.audit_name())
        .await
        .map_err(|e| match e {
            crate::auth::mfa::MfaError::Store(e) => AdminError::Store(e),
            other => AdminError::Invalid(format!("could not reset the second factors: {other}")),
        })
}

/// Ends every session and refresh token of the user. Returns how many sessions ended.
pub async fn sign_out_everywhere(
    p: &Provider,
    actor: &Actor,
    user_id: &str,
) -> Result<u64, AdminError> {
    let user = existing(p, user_id).await?;
    crate::auth::account::sign_out_everywhere(p, &user, None, &actor.audit_name())
        .await
        .map_err(|e| match e {
            crate::auth::account::AccountError::Store(e) => AdminError::Store(e),
            other => AdminError::Invalid(other.to_string()),
        })
}

#[cfg(test)]
mod tests;
