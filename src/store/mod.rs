//! Persistence: small capability traits, each with its contract in doc comments, combined into
//! [`Store`]. One implementation ([`sql::SqlStore`]) runs the same SQL on SQLite and PostgreSQL;
//! the contract suite in `tests` runs against both.
//!
//! Conventions: timestamps are Unix seconds; secrets are stored only as keyed hashes
//! (`*_hash: Vec<u8>`) or encrypted (`*_enc`); lists are stored as JSON text.

#[macro_use]
mod columns;

mod checkpoint;
mod group_commit;
mod group_commit_pg;
pub mod migrate;
pub mod sql;
mod transient;

#[cfg(test)]
mod contract;

use crate::clock::Timestamp;

pub use sql::SqlStore;
pub use transient::Transient;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint was violated (e.g. the email or client id already exists).
    #[error("already exists")]
    Conflict,
    #[error("stored data is malformed: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    /// Normalised (trimmed, lower-cased); unique.
    pub email: String,
    pub name: Option<String>,
    pub roles: Vec<String>,
    /// PHC string (argon2id).
    pub password_hash: crate::secret::SecretString,
    pub disabled: bool,
    /// The user proved they receive mail at `email`.
    pub email_verified: bool,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountTokenKind {
    PasswordReset,
    EmailVerification,
    /// An invitation: a user an operator created chooses their first password.
    Invitation,
}

impl AccountTokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PasswordReset => "password_reset",
            Self::EmailVerification => "email_verification",
            Self::Invitation => "invitation",
        }
    }
}

/// The order of the operator's user list, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserSort {
    /// By `created_at`.
    Created,
    /// By the last sign-in (never signed in: last).
    LastSignIn,
}

/// Which way a keyset page goes from its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageDirection {
    /// The rows after the cursor in the list's order (older), in that order.
    After,
    /// The rows before the cursor (newer), returned in the list's order too.
    Before,
}

/// A search of the operator's user list. Every condition given must hold.
#[derive(Debug, Clone)]
pub struct UserQuery {
    /// Lower-case text found anywhere in the email, the name (compared lower-cased) or the id;
    /// empty: every user. `%`, `_` and `\` match themselves.
    pub search: String,
    /// Only disabled users.
    pub disabled: bool,
    /// Only users without a second factor.
    pub without_mfa: bool,
    /// Only users with a lock-out recorded in the audit log (`signin.locked`, `mfa.locked`) at
    /// or after `locks_since`; whether it still holds is the throttle's to say.
    pub recently_locked: bool,
    /// Where a lock-out recorded in the audit log may still hold from.
    pub locks_since: Timestamp,
    pub sort: UserSort,
    /// The (sort key, id) of the row the page starts next to; `None`: the first page.
    pub cursor: Option<(i64, String)>,
    pub direction: PageDirection,
    pub limit: i64,
}

/// A row of the operator's user list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub user: User,
    /// `None`: never signed in.
    pub last_signin_at: Option<Timestamp>,
    /// How many second factors the user has.
    pub factors: i64,
    /// A lock-out of theirs is recorded at or after the query's `locks_since`.
    pub recently_locked: bool,
}

impl UserRow {
    /// The row's key in `sort`'s order.
    pub fn sort_key(&self, sort: UserSort) -> i64 {
        match sort {
            UserSort::Created => self.user.created_at,
            UserSort::LastSignIn => self.last_signin_at.unwrap_or(0),
        }
    }
}

/// The scopes a user granted a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub client_id: String,
    pub scopes: Vec<String>,
    pub granted_at: Timestamp,
}

/// What a change guarded by [`AdminUserStore`]'s last-admin rule did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarded {
    Done,
    NotFound,
    /// Refused: it would leave no enabled user with the `admin` role.
    LastAdmin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: String,
    /// Keyed hash of the secret; `None` for public clients.
    pub secret_hash: Option<crate::secret::Secret<Vec<u8>>>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    /// The scopes this client may ever receive.
    pub scopes: Vec<String>,
    /// Allowed RFC 8707 resources; the first is the default `aud`.
    pub audiences: Vec<String>,
    /// First-party clients skip the consent screen.
    pub first_party: bool,
    /// Everyone signing in to this client must use a second factor (acr "2").
    pub require_mfa: bool,
    pub created_at: Timestamp,
    /// Set while the client is disabled: it gets no token and its tokens are refused.
    pub disabled_at: Option<Timestamp>,
    /// After a secret rotation, the keyed hash of the previous secret, still accepted until
    /// `previous_secret_expires_at` so services roll to the new one without downtime.
    pub previous_secret_hash: Option<crate::secret::Secret<Vec<u8>>>,
    pub previous_secret_expires_at: Option<Timestamp>,
    /// OpenID Connect Back-Channel Logout: where the client is told that a session it took
    /// part in ended (a `logout_token` POSTed there).
    pub backchannel_logout_uri: Option<String>,
}

/// What an operator narrows the audit log to: `actor` and `action` match as prefixes
/// (`admin:` every admin, `client.` every client action), `subject` exactly, times inclusive;
/// empty strings match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub actor: String,
    pub subject: String,
    pub action: String,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

/// What an operator narrows a session list to; empty strings match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    pub user_id: String,
    pub ip: String,
    pub client_id: String,
}

/// A browser's single sign-on session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Public identifier (the `sid` claim); not a credential.
    pub id: String,
    /// Keyed hash of the cookie value.
    pub token_hash: Vec<u8>,
    pub user_id: String,
    pub created_at: Timestamp,
    /// Creation time in milliseconds: orders sessions started within one second.
    pub created_ms: i64,
    pub last_seen_at: Timestamp,
    /// Absolute end of the session.
    pub expires_at: Timestamp,
    pub auth_time: Timestamp,
    pub amr: Vec<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCode {
    pub code_hash: Vec<u8>,
    pub client_id: String,
    pub user_id: String,
    pub session_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub resource: Option<String>,
    pub auth_time: Timestamp,
    pub amr: Vec<String>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// What the first redemption of a code issued; used to revoke it all on replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRedemption {
    pub family_id: String,
    pub access_jti: String,
    pub access_expires_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeOutcome {
    /// First use: the code is now spent.
    Redeemed(AuthCode),
    /// The code had been redeemed before; here is what that redemption issued.
    Replayed(AuthCode, CodeRedemption),
    NotFound,
}

/// See [`RefreshTokenStore::rotate_if_current`].
#[derive(Debug)]
pub struct CurrentRotation<'a> {
    pub old_hash: &'a [u8],
    pub client_id: &'a str,
    pub successor_hash: &'a [u8],
    pub successor_enc: &'a [u8],
    pub now: Timestamp,
    pub idle_ttl: i64,
}

/// A refresh token and what its grant depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshGrant {
    pub token: RefreshToken,
    /// `None` when the user no longer exists.
    pub user: Option<User>,
    /// `None` for a token without a session; `Some(false)` when its session is gone or revoked.
    pub session_active: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub token_hash: Vec<u8>,
    /// Every token descended from one grant shares a family.
    pub family_id: String,
    pub client_id: String,
    /// `None` only for grants without a user (never issued today).
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub scope: String,
    pub audience: String,
    pub auth_time: Option<Timestamp>,
    pub amr: Vec<String>,
    pub created_at: Timestamp,
    /// Sliding idle limit of this token.
    pub idle_expires_at: Timestamp,
    /// Absolute limit of the whole family.
    pub expires_at: Timestamp,
    pub rotated_at: Option<Timestamp>,
    pub successor_hash: Option<Vec<u8>>,
    /// The successor token, encrypted under a key derived from this token.
    pub successor_enc: Option<Vec<u8>>,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub alg: String,
    /// PKCS#8 private key encrypted with the key-encryption key (AAD = kid).
    pub private_enc: Vec<u8>,
    /// The public JWK, JSON.
    pub public_jwk: String,
    pub created_at: Timestamp,
    /// When this key starts signing; it is published from `created_at`.
    pub activate_at: Timestamp,
    /// Removed from the JWKS at this time (all tokens it signed have expired).
    pub expire_at: Option<Timestamp>,
    /// Revoked keys are withdrawn from the JWKS at once (emergency rotation).
    pub revoked_at: Option<Timestamp>,
}

/// What kind of second factor a [`MfaFactor`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorKind {
    /// An authenticator app (TOTP, RFC 6238).
    Totp,
    /// A WebAuthn credential: a passkey or a security key.
    WebAuthn,
}

impl FactorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::WebAuthn => "webauthn",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "totp" => Some(Self::Totp),
            "webauthn" => Some(Self::WebAuthn),
            _ => None,
        }
    }
}

/// A user's second factor, confirmed and usable (an authenticator app waits in
/// [`PendingTotp`] until a code confirms it). The fields of the other kind are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaFactor {
    /// Random, public (shown in forms to name the factor to remove).
    pub id: String,
    pub user_id: String,
    pub kind: FactorKind,
    /// The label the user chose ("Phone", "YubiKey").
    pub name: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    /// TOTP: the secret, encrypted with the key-encryption key (AAD: `auth::mfa::totp`).
    pub secret_enc: Option<Vec<u8>>,
    /// TOTP: the last time step accepted (RFC 6238 §5.2: a code is accepted once).
    pub last_step: Option<i64>,
    /// WebAuthn: the credential id (unique across users).
    pub credential_id: Option<Vec<u8>>,
    /// WebAuthn: the serialised credential (webauthn-rs `Passkey`/`SecurityKey`, JSON).
    pub credential: Option<String>,
    /// WebAuthn: signs in alone (a passkey, user verification required) rather than only as
    /// the step after a password (a security key).
    pub passwordless: bool,
}

/// An authenticator app being enrolled: its secret is kept (encrypted) until the user types a
/// code from it; only then does it become a factor (with the same id and ciphertext).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingTotp {
    pub id: String,
    pub user_id: String,
    pub secret_enc: Vec<u8>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Server-side state of a multi-step browser ceremony (WebAuthn registration or assertion),
/// stored under the keyed hash of a random handle the browser holds (so it is bound to that
/// browser) and taken once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ceremony {
    /// `None` before the user is known (a passkey sign-in).
    pub user_id: Option<String>,
    /// What the state is for ("passkey_registration", ...): a take names the kind it expects.
    pub kind: String,
    /// Opaque to the store (`auth::mfa::ceremony` keeps it encrypted).
    pub state: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// What proved the second factor at a completed second step; spent in the same transaction
/// (see [`MfaStore::complete_second_step`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepProof {
    /// TOTP time step `step` of the user's authenticator app `factor_id`: accepted only if it
    /// is later than every step accepted before (as [`MfaStore::accept_totp_step`]).
    TotpStep { factor_id: String, step: i64 },
    /// One of the user's unused recovery codes (its keyed hash): spent (as
    /// [`MfaStore::consume_recovery_code`]).
    RecoveryCode { hash: Vec<u8> },
    /// A factor already verified and recorded by the caller (a security key, whose sign
    /// counter is stored as it is checked): nothing more to spend.
    Verified,
}

/// The session a completed second step leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepSession {
    /// A new session, after ending `end` (the browser's previous session, those evicted to
    /// make room: revoked with their refresh tokens, as [`SessionStore::revoke_session`]).
    Open { session: Session, end: Vec<String> },
    /// A step-up: the user's live session `id` gets `amr` and a new cookie hash (as
    /// [`SessionStore::raise_session`]).
    Raise {
        id: String,
        token_hash: Vec<u8>,
        amr: Vec<String>,
    },
}

/// How a completed second step's pending step is taken, so that it completes once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepTake {
    /// Kept on the server: the ceremony of kind `second_step` under this keyed hash of its
    /// handle, deleted (`DELETE ... RETURNING`) unless created before the user's
    /// `sessions_ended_at` second.
    Stored { ceremony_hash: Vec<u8> },
    /// Kept in the browser, sealed (`auth::mfa::second_step`): a ceremony row of kind
    /// [`SPENT_SECOND_STEP`] under `id_hash` is inserted to mark it spent (a second insert
    /// conflicts), and it completes only before `expires_at` and while the user's
    /// `sessions_epoch` is still `epoch`.
    Sealed {
        id_hash: Vec<u8>,
        epoch: i64,
        expires_at: Timestamp,
    },
}

/// The ceremony kind of the mark a completed sealed second step leaves (see
/// [`StepTake::Sealed`]); it goes with the purge [`SPENT_MARK_KEPT`] after the step would
/// have expired.
pub const SPENT_SECOND_STEP: &str = "second_step_spent";

/// How long a spent mark outlives its step. The completing replica's clock says whether the
/// step is still live, the purging replica's whether the mark has expired: kept only until the
/// step's own end, a mark purged by a replica whose clock runs ahead let a replica behind it
/// complete the step again. Kept a day longer, like the other rows that detect replays.
pub const SPENT_MARK_KEPT: Timestamp = 86_400;

/// Everything a successful second step writes, in one transaction.
#[derive(Debug, Clone)]
pub struct SecondStepCompletion {
    pub user_id: String,
    /// How the pending step is taken.
    pub take: StepTake,
    pub proof: StepProof,
    pub session: StepSession,
    /// The one audit entry of the completion.
    pub audit: crate::audit::AuditEvent,
    pub now: Timestamp,
}

/// How [`MfaStore::complete_second_step`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    /// Everything was written.
    Done,
    /// No such pending step (taken by someone else, expired, another user's, created at or
    /// before the user's sessions were all ended), or the session to raise has ended: nothing
    /// was written.
    Gone,
    /// The proof was refused (a step not later than the last accepted, a spent or unknown
    /// recovery code): nothing was written, and the pending step stays as it was.
    Refused,
}

#[allow(async_fn_in_trait)]
pub trait UserStore {
    /// Inserts a user; `Conflict` when the email exists.
    async fn insert_user(&self, user: &User) -> StoreResult<()>;
    /// Looks a user up by normalised email.
    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    async fn find_user(&self, id: &str) -> StoreResult<Option<User>>;
    async fn set_password_hash(&self, id: &str, hash: &str, now: Timestamp) -> StoreResult<()>;
    /// Returns false when no such user exists.
    async fn set_user_disabled(
        &self,
        id: &str,
        disabled: bool,
        now: Timestamp,
    ) -> StoreResult<bool>;
    async fn set_email_verified(&self, id: &str, now: Timestamp) -> StoreResult<()>;
}

/// Single-use links sent by mail, stored only as keyed hashes.
#[allow(async_fn_in_trait)]
pub trait AccountTokenStore {
    async fn insert_account_token(
        &self,
        token_hash: &[u8],
        kind: AccountTokenKind,
        user_id: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> StoreResult<()>;
    /// Spends a link atomically: the user id for exactly one caller, while unexpired and unused.
    async fn consume_account_token(
        &self,
        token_hash: &[u8],
        kind: AccountTokenKind,
        now: Timestamp,
    ) -> StoreResult<Option<String>>;
    /// The user id behind a still-usable link, without spending it (to show the reset form).
    async fn peek_account_token(
        &self,
        token_hash: &[u8],
        kind: AccountTokenKind,
        now: Timestamp,
    ) -> StoreResult<Option<String>>;
    /// Spends every outstanding link of this kind for the user.
    async fn expire_account_tokens(
        &self,
        user_id: &str,
        kind: AccountTokenKind,
        now: Timestamp,
    ) -> StoreResult<()>;
}

#[allow(async_fn_in_trait)]
pub trait ClientStore {
    /// Inserts a client; `Conflict` when the id exists.
    async fn insert_client(&self, client: &Client) -> StoreResult<()>;
    async fn find_client(&self, id: &str) -> StoreResult<Option<Client>>;
    /// Every client, by id (clients are few: an ERP has tens).
    async fn list_clients(&self) -> StoreResult<Vec<Client>>;
    /// Replaces what an operator may edit (redirect and post-logout URIs, grants, scopes,
    /// audiences, first-party, MFA requirement) of the client `client.id`; false if unknown.
    async fn update_client(&self, client: &Client) -> StoreResult<bool>;
    /// Gives a confidential client a new secret (its keyed hash); the current one becomes the
    /// previous one, accepted until `previous_until`. False if unknown or public.
    async fn rotate_client_secret(
        &self,
        id: &str,
        secret_hash: &[u8],
        previous_until: Timestamp,
    ) -> StoreResult<bool>;
    /// Disables (`Some(at)`) or enables (`None`) a client; false if unknown.
    async fn set_client_disabled(&self, id: &str, at: Option<Timestamp>) -> StoreResult<bool>;
}

#[allow(async_fn_in_trait)]
pub trait SessionStore {
    async fn insert_session(&self, session: &Session) -> StoreResult<()>;
    /// The session whose cookie hashes to `token_hash`, revoked or not.
    async fn find_session_by_token(&self, token_hash: &[u8]) -> StoreResult<Option<Session>>;
    async fn find_session(&self, id: &str) -> StoreResult<Option<Session>>;
    /// Records activity (sliding idle limit).
    async fn touch_session(&self, id: &str, now: Timestamp) -> StoreResult<()>;
    /// How many sessions are live at `now`: not revoked, not past their absolute end, and
    /// seen after `seen_after` (now minus the idle limit).
    async fn count_live_sessions(&self, now: Timestamp, seen_after: Timestamp) -> StoreResult<i64>;
    /// Gives a live session a new cookie (its keyed hash): the old cookie no longer finds it,
    /// everything else (id, tokens bound to it, limits) stays. False if the session is revoked
    /// or unknown.
    async fn replace_session_token(&self, id: &str, token_hash: &[u8]) -> StoreResult<bool>;
    /// A step-up: a live session that met a second factor gets the methods `amr` and a new
    /// cookie (its keyed hash) in one statement; id, `auth_time` and what is bound to it stay.
    /// False if the session is revoked or unknown.
    async fn raise_session(&self, id: &str, token_hash: &[u8], amr: &[String])
    -> StoreResult<bool>;
    /// Revokes one session and every refresh token bound to it. Idempotent.
    async fn revoke_session(&self, id: &str, now: Timestamp) -> StoreResult<()>;
    /// Live sessions across users (not revoked, before their absolute end, seen after
    /// `seen_after`), newest first (`created_ms` descending, then id), each with its user's
    /// email; at most `limit`, after the keyset position `after` (`created_ms`, id). Empty
    /// filter fields match everything; `client_id` matches sessions that gave that client a
    /// code or a refresh token.
    async fn list_live_sessions(
        &self,
        filter: &SessionFilter,
        after: Option<(i64, &str)>,
        limit: i64,
        now: Timestamp,
        seen_after: Timestamp,
    ) -> StoreResult<Vec<(Session, String)>>;
    /// The user's sessions that are neither revoked nor past their absolute end, newest first.
    async fn list_user_sessions(&self, user_id: &str, now: Timestamp) -> StoreResult<Vec<Session>>;
    /// The sessions `list_user_sessions` returns, in its order, each with the clients
    /// `session_clients` returns for it: in two queries, however many sessions there are.
    async fn list_user_sessions_with_clients(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> StoreResult<Vec<(Session, Vec<String>)>>;
    /// Revokes every session of the user except `keep`, with their refresh tokens; with no `keep`,
    /// every refresh token of the user too. Returns the ids of the sessions it ended. Marks the
    /// user's sessions as ended at `now` (`users.sessions_ended_at`) in the same transaction: a
    /// pending second step created before the mark (an earlier second) is never completed nor put back.
    async fn revoke_user_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<Vec<String>>;
    /// The clients that received codes or refresh tokens through this session.
    async fn session_clients(&self, session_id: &str) -> StoreResult<Vec<String>>;
}

#[allow(async_fn_in_trait)]
pub trait AuthCodeStore {
    async fn insert_code(&self, code: &AuthCode) -> StoreResult<()>;
    /// The code, spent or not, without spending it (to check the request before redeeming).
    async fn find_code(&self, code_hash: &[u8]) -> StoreResult<Option<AuthCode>>;
    /// Atomically spends a code. Exactly one caller ever gets `Redeemed` for a given code; in the
    /// same transaction `redemption` is recorded and `first_refresh` (the grant's first refresh
    /// token, of `redemption`'s family) is stored. Later callers get `Replayed` with that record
    /// and store nothing, and once a caller sees the code spent, the first refresh token is
    /// there too: revoking the family then revokes it (no window between the two steps).
    async fn redeem_code(
        &self,
        code_hash: &[u8],
        redemption: &CodeRedemption,
        first_refresh: Option<&RefreshToken>,
        now: Timestamp,
    ) -> StoreResult<CodeOutcome>;
}

#[allow(async_fn_in_trait)]
pub trait RefreshTokenStore {
    async fn insert_refresh(&self, token: &RefreshToken) -> StoreResult<()>;
    async fn find_refresh(&self, token_hash: &[u8]) -> StoreResult<Option<RefreshToken>>;
    /// The token with its user and the state of its session, read together (one round trip on
    /// the hot path of every refresh, and one consistent snapshot).
    async fn find_refresh_grant(&self, token_hash: &[u8]) -> StoreResult<Option<RefreshGrant>>;
    /// Compare-and-set rotation: marks `old_hash` rotated (recording the successor's hash and
    /// sealed value) and inserts `successor`, in one transaction, only if `old_hash` is neither
    /// rotated nor revoked. Returns false (and changes nothing) when another caller won.
    async fn rotate_refresh(
        &self,
        old_hash: &[u8],
        successor: &RefreshToken,
        successor_enc: &[u8],
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// The common refresh in one statement: if `old_hash` is the current, live token of a
    /// family issued to `client_id`, its user is enabled and its session (if any) active,
    /// rotates it to a successor with the same grant (created now, idle limit `now + idle_ttl`
    /// capped by the family's) and returns the predecessor with its user. `None` means "use the
    /// general path", which also says why a token is refused.
    async fn rotate_if_current(
        &self,
        rotation: &CurrentRotation<'_>,
    ) -> StoreResult<Option<RefreshGrant>>;
    /// Revokes every token of a family. Idempotent.
    async fn revoke_family(&self, family_id: &str, now: Timestamp) -> StoreResult<()>;
    /// Revokes every refresh token issued to a client and deletes its unredeemed codes (it was
    /// disabled); returns how many live (unrotated) refresh tokens it revoked. Idempotent.
    async fn revoke_client_grants(&self, client_id: &str, now: Timestamp) -> StoreResult<u64>;
}

#[allow(async_fn_in_trait)]
pub trait RevocationStore {
    /// The newest entry of the revocation log (0 when empty).
    async fn latest_revocation(&self) -> StoreResult<i64>;
    /// Appends a revocation to the log; returns its sequence number (increasing).
    async fn append_revocation(&self, r: &crate::revocation::Revocation) -> StoreResult<i64>;
    /// Entries after `after` that have not expired at `now`, in order, at most `limit`. An
    /// entry of a kind this version does not know (written by a newer one during a rolling
    /// upgrade) comes back as `None`, so a reader skips it and still moves past it.
    async fn revocations_after(
        &self,
        after: i64,
        now: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<(i64, Option<crate::revocation::Revocation>)>>;
    /// As [`RevocationStore::revocations_after`], plus the entries numbered in `also` (each
    /// below `after`: numbers a reader passed over while they were not yet visible), in order.
    async fn revocations_after_or_in(
        &self,
        after: i64,
        also: &[i64],
        now: Timestamp,
        limit: i64,
    ) -> StoreResult<Vec<(i64, Option<crate::revocation::Revocation>)>>;
}

#[allow(async_fn_in_trait)]
pub trait KeyStore {
    async fn insert_key(&self, key: &SigningKeyRecord) -> StoreResult<()>;
    /// Keys not yet expired nor revoked at `now`, oldest first.
    async fn live_keys(&self, now: Timestamp) -> StoreResult<Vec<SigningKeyRecord>>;
    async fn set_key_expiry(&self, kid: &str, expire_at: Timestamp) -> StoreResult<()>;
    async fn revoke_key(&self, kid: &str, now: Timestamp) -> StoreResult<()>;
}

#[allow(async_fn_in_trait)]
pub trait ConsentStore {
    /// Scopes the user already granted to the client.
    async fn find_consent(&self, user_id: &str, client_id: &str) -> StoreResult<Vec<String>>;
    async fn save_consent(
        &self,
        user_id: &str,
        client_id: &str,
        scopes: &[String],
        now: Timestamp,
    ) -> StoreResult<()>;
}

#[allow(async_fn_in_trait)]
pub trait AuditStore {
    /// Appends an entry, chaining it to the last one; appends are serialised. Returns its number.
    async fn append_audit(
        &self,
        crypto: &std::sync::Arc<crate::crypto::Crypto>,
        at: Timestamp,
        event: &crate::audit::AuditEvent,
    ) -> StoreResult<i64>;
    /// Entries with `seq > after`, oldest first, at most `limit`.
    async fn audit_after(
        &self,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<crate::audit::AuditRecord>>;
    /// The newest `limit` entries, newest first.
    async fn audit_tail(&self, limit: i64) -> StoreResult<Vec<crate::audit::AuditRecord>>;
    /// Entries matching `filter` with `seq < before`, newest first, at most `limit`.
    async fn search_audit(
        &self,
        filter: &AuditFilter,
        before: i64,
        limit: i64,
    ) -> StoreResult<Vec<crate::audit::AuditRecord>>;
    /// How many entries of each action were written at or after `since`, per bucket of
    /// `bucket` seconds counted from `since` (bucket `k` holds `since + k*bucket` up to the
    /// next one): `(action, k, count)` for every non-empty bucket, in no particular order.
    /// `bucket` must be positive.
    async fn audit_counts(
        &self,
        since: Timestamp,
        bucket: i64,
    ) -> StoreResult<Vec<(String, i64, i64)>>;
    /// (last sequence number, last hash, the head's MAC) as recorded by the appends. The MAC
    /// is `None` on a head never sealed (see `seal_audit_head`) and empty on one an append found
    /// forged (see `audit::head_is_authentic`).
    async fn audit_head(&self) -> StoreResult<(i64, Vec<u8>, Option<Vec<u8>>)>;
    /// Gives a head without a MAC (`NULL`: a database created or upgraded before heads were
    /// authenticated) its MAC, as it stands; returns its sequence number if it did. A head an
    /// append left unsealed (empty MAC) is never sealed here.
    async fn seal_audit_head(&self, crypto: &crate::crypto::Crypto) -> StoreResult<Option<i64>>;
}

/// Second factors, recovery codes and ceremony state. Every method that names a factor also
/// names its user, and acts only on that user's factors.
#[allow(async_fn_in_trait)]
pub trait MfaStore {
    /// The user's factors, oldest first.
    async fn list_factors(&self, user_id: &str) -> StoreResult<Vec<MfaFactor>>;
    /// One factor of the user; `None` for an unknown id or another user's factor.
    async fn find_factor(&self, user_id: &str, id: &str) -> StoreResult<Option<MfaFactor>>;
    /// The WebAuthn factor holding `credential_id`, whoever it belongs to (a passkey sign-in
    /// learns the user from it).
    async fn find_factor_by_credential(
        &self,
        credential_id: &[u8],
    ) -> StoreResult<Option<MfaFactor>>;
    /// Stores a factor; `Conflict` when its id or its credential id exists.
    async fn insert_factor(&self, factor: &MfaFactor) -> StoreResult<()>;
    /// Removes one factor of the user. False (and nothing removed) for an unknown id or a
    /// factor of another user.
    async fn remove_factor(&self, user_id: &str, id: &str) -> StoreResult<bool>;
    /// Accepts TOTP time step `step` for the user's TOTP factor `id`, in one conditional
    /// statement: true only if `step` is later than every step accepted before, so a code is
    /// accepted once (RFC 6238 §5.2) and an older one never; of concurrent accepts of the same
    /// step, on any replica, exactly one gets true. Records the use (`last_used_at = now`).
    async fn accept_totp_step(
        &self,
        user_id: &str,
        id: &str,
        step: i64,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Records a use of the factor (`last_used_at`); for WebAuthn also stores `credential` as
    /// the assertion updated it (sign counter, backup state) when given. False for an unknown
    /// id or another user's factor.
    async fn touch_factor(
        &self,
        user_id: &str,
        id: &str,
        credential: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Removes every factor, pending enrolment, recovery code and ceremony of the user, in one
    /// transaction (`tessera user reset-mfa`). Returns how many factors went.
    async fn delete_all_factors(&self, user_id: &str) -> StoreResult<u64>;
    /// Removes the user's ceremonies of `kind` (e.g. every pending second step when their
    /// sessions are ended). Returns how many went.
    async fn delete_user_ceremonies(&self, user_id: &str, kind: &str) -> StoreResult<u64>;

    /// Stores an enrolment in progress, replacing any earlier one of the user (one at a time).
    async fn insert_pending_totp(&self, pending: &PendingTotp) -> StoreResult<()>;
    /// The user's enrolment `id` while unexpired at `now`.
    async fn find_pending_totp(
        &self,
        user_id: &str,
        id: &str,
        now: Timestamp,
    ) -> StoreResult<Option<PendingTotp>>;
    /// Makes the user's unexpired enrolment `id` a TOTP factor named `name` (same id, same
    /// ciphertext), created at `now` with `step` as its last accepted step, and removes the
    /// enrolment, in one transaction: exactly one caller gets true; false when it is unknown,
    /// another user's, expired or already confirmed.
    async fn confirm_pending_totp(
        &self,
        user_id: &str,
        id: &str,
        name: &str,
        step: i64,
        now: Timestamp,
    ) -> StoreResult<bool>;

    /// Replaces the user's recovery codes (keyed hashes) with `hashes`, in one transaction: the
    /// old set, used or not, stops working.
    async fn replace_recovery_codes(
        &self,
        user_id: &str,
        hashes: &[Vec<u8>],
        now: Timestamp,
    ) -> StoreResult<()>;
    /// Spends one recovery code of the user in one conditional statement: true for exactly one
    /// caller, false for an unknown, another user's or already used code.
    async fn consume_recovery_code(
        &self,
        user_id: &str,
        hash: &[u8],
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// (unused, total) recovery codes of the user: (0, 0) when none were ever issued.
    async fn count_recovery_codes(&self, user_id: &str) -> StoreResult<(i64, i64)>;

    /// Stores ceremony state under `id_hash`; `Conflict` when the hash exists. A pending second
    /// step (kind `second_step`) created before the second its user's sessions were all ended (see
    /// [`SessionStore::revoke_user_sessions`]) is not stored (and no error): a step held while
    /// the sessions ended never comes back.
    async fn put_ceremony(&self, id_hash: &[u8], ceremony: &Ceremony) -> StoreResult<()>;
    /// The unexpired ceremony of `kind` under `id_hash`, left where it is (read only).
    async fn peek_ceremony(
        &self,
        id_hash: &[u8],
        kind: &str,
        now: Timestamp,
    ) -> StoreResult<Option<Ceremony>>;
    /// The user's `sessions_epoch`: how many times all their sessions were ended (see
    /// [`SessionStore::revoke_user_sessions`]). `None` for an unknown user.
    async fn sessions_epoch(&self, user_id: &str) -> StoreResult<Option<i64>>;
    /// Whether a sealed pending second step (see [`StepTake::Sealed`]) could still complete:
    /// the user exists, is not disabled, their `sessions_epoch` is still `epoch`, and no step
    /// was completed under `id_hash`. Read only; the completion decides again.
    async fn sealed_step_live(
        &self,
        user_id: &str,
        id_hash: &[u8],
        epoch: i64,
    ) -> StoreResult<bool>;
    /// Completes a pending second step in ONE transaction (one commit), in this order: takes
    /// the pending step as `c.take` says (a stored one: the user's unexpired `second_step`
    /// ceremony, deleted, unless it was created before the user's `sessions_ended_at` second;
    /// a sealed one: unexpired, begun under the user's present `sessions_epoch`, marked spent
    /// by an insert that a second completion conflicts with); spends
    /// `c.proof`; opens or raises the session; appends `c.audit` to the audit chain (head and
    /// MAC kept as [`AuditStore::append_audit`] keeps them). Any part refused: nothing is
    /// written ([`StepOutcome::Gone`] or [`StepOutcome::Refused`]). Of concurrent completions
    /// of one step, on any replica, at most one gets [`StepOutcome::Done`].
    async fn complete_second_step(
        &self,
        crypto: &std::sync::Arc<crate::crypto::Crypto>,
        c: &SecondStepCompletion,
    ) -> StoreResult<StepOutcome>;
    /// Takes the ceremony of `kind` stored under `id_hash`: deletes and returns it in one
    /// statement, so exactly one caller gets it. An expired one (`expires_at <= now`) is
    /// deleted too and returned to nobody; one of another kind is left alone.
    async fn take_ceremony(
        &self,
        id_hash: &[u8],
        kind: &str,
        now: Timestamp,
    ) -> StoreResult<Option<Ceremony>>;
}

/// What the operator's console, API and CLI need beyond [`UserStore`]: the user list and a
/// user's page, and the changes the last-admin rule guards. An admin is a user whose roles hold
/// `admin`; an enabled admin keeps the console open to someone.
#[allow(async_fn_in_trait)]
pub trait AdminUserStore {
    /// One page of users matching `q`, in the list's order (sort key descending, then id
    /// descending), at most `q.limit`: with a cursor, the rows strictly after it (or before it,
    /// for [`PageDirection::Before`]), so rows with equal sort keys are neither skipped nor
    /// repeated across pages.
    async fn list_users(&self, q: &UserQuery) -> StoreResult<Vec<UserRow>>;
    /// When the user last signed in (`None`: never), kept up to date by every new session.
    async fn last_signin(&self, user_id: &str) -> StoreResult<Option<Timestamp>>;
    /// Sets or clears the display name. False when no such user exists.
    async fn set_user_name(
        &self,
        id: &str,
        name: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Replaces the roles, unless that takes `admin` from the last enabled admin. Concurrent
    /// calls are serialised, so two admins demoting each other at once leave one admin.
    async fn set_user_roles(
        &self,
        id: &str,
        roles: &[String],
        now: Timestamp,
    ) -> StoreResult<Guarded>;
    /// Disables or enables a user, unless disabling the last enabled admin; serialised like
    /// [`AdminUserStore::set_user_roles`].
    async fn set_user_disabled_guarded(
        &self,
        id: &str,
        disabled: bool,
        now: Timestamp,
    ) -> StoreResult<Guarded>;
    /// The newest `limit` audit entries whose subject is `subject`, newest first.
    async fn audit_about(
        &self,
        subject: &str,
        limit: i64,
    ) -> StoreResult<Vec<crate::audit::AuditRecord>>;
    /// Every consent the user gave, by client id.
    async fn user_consents(&self, user_id: &str) -> StoreResult<Vec<Consent>>;
}

/// Housekeeping: rows nobody can use any more are deleted in small batches.
#[allow(async_fn_in_trait)]
pub trait PurgeStore {
    /// Deletes at most `batch` dead rows from one table per call, for each table in turn;
    /// returns how many went. Audit entries are never deleted.
    async fn purge_expired(&self, now: Timestamp, batch: i64) -> StoreResult<u64>;
}

/// A back-channel logout still to send: a logout token about `session_id` (of `user_id`) for
/// `client_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutDelivery {
    pub id: i64,
    pub session_id: String,
    pub client_id: String,
    pub user_id: String,
    /// When the session ended (the delivery was queued).
    pub created_at: Timestamp,
    /// Attempts so far, this one included.
    pub attempts: i64,
    /// The client's back-channel logout URI now; `None` if it has none any more, or is
    /// disabled or gone (nothing to send).
    pub uri: Option<String>,
}

/// The queue of OpenID Connect Back-Channel Logout deliveries. Which clients took part in a
/// session is recorded by the store itself as codes are issued ([`AuthCodeStore::insert_code`]).
#[allow(async_fn_in_trait)]
pub trait BackchannelStore {
    /// Queues, due at `now_ms`, one delivery for each enabled client with a back-channel logout
    /// URI that was issued a code through one of `session_ids`; a (session, client) queued
    /// before is not queued again. Returns how many were queued.
    async fn enqueue_logout_deliveries(
        &self,
        session_ids: &[String],
        now: Timestamp,
        now_ms: i64,
    ) -> StoreResult<u64>;
    /// Claims up to `limit` deliveries due at `now_ms` and not given up on, oldest due first:
    /// each one's attempts grow by one and its due time moves to `now_ms + lease_ms`, so no
    /// other caller (another replica) gets it before then. Two concurrent claims never return
    /// the same delivery.
    async fn claim_logout_deliveries(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> StoreResult<Vec<LogoutDelivery>>;
    /// Removes a delivery that is done (delivered, or nothing left to send).
    async fn finish_logout_delivery(&self, id: i64) -> StoreResult<()>;
    /// Makes a delivery due again at `due_ms`.
    async fn retry_logout_delivery(&self, id: i64, due_ms: i64) -> StoreResult<()>;
    /// Gives a delivery up: it is kept (marked failed at `now`) but never claimed again.
    async fn fail_logout_delivery(&self, id: i64, now: Timestamp) -> StoreResult<()>;
    /// How many deliveries are still to make (not given up on).
    async fn pending_logout_deliveries(&self) -> StoreResult<i64>;
}

/// Everything the server needs from persistence.
pub trait Store:
    UserStore
    + ClientStore
    + SessionStore
    + AuthCodeStore
    + RefreshTokenStore
    + RevocationStore
    + KeyStore
    + ConsentStore
    + AuditStore
    + AccountTokenStore
    + MfaStore
    + AdminUserStore
    + PurgeStore
    + BackchannelStore
{
}

impl<T> Store for T where
    T: UserStore
        + ClientStore
        + SessionStore
        + AuthCodeStore
        + RefreshTokenStore
        + RevocationStore
        + KeyStore
        + ConsentStore
        + AuditStore
        + AccountTokenStore
        + MfaStore
        + AdminUserStore
        + PurgeStore
        + BackchannelStore
{
}
