//! Subcommands. Operators and tests bootstrap through these; they read the same configuration
//! as `serve`.

use std::io::Read;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::audit::{AuditEvent, ChainBreak, ChainVerifier, Pin};
use crate::auth::account::{self, AccountError};
use crate::auth::email::Email;
use crate::config::Config;
use crate::crypto::{SecretString, random_id, random_token};
use crate::keys::rotation::{self, Rotated};
use crate::oauth::client_id::ClientId;
use crate::startup::{self, StartupError};
use crate::store::{AuditStore, Client, ClientStore, SessionStore, StoreError, User, UserStore};

#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "Tessera: an OAuth 2.0 / OpenID Connect identity provider"
)]
pub struct Cli {
    /// Configuration file (TOML); also TESSERA_CONFIG. Environment variables override it.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Defaults to `serve`.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (embedded SQLite in ./data unless configured otherwise).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage OAuth clients (applications).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// See and end users' sessions.
    #[command(subcommand)]
    Session(SessionCommand),
    /// Read and check the tamper-evident audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// List a user's live sessions.
    List { email: String },
    /// End one session by id, or every session of a user with --all EMAIL.
    Revoke {
        /// The session id (from `session list`). Ids are base64url, so one may start with `-`.
        #[arg(
            required_unless_present = "all",
            conflicts_with = "all",
            allow_hyphen_values = true
        )]
        id: Option<String>,
        /// End every session of this user, with their refresh tokens.
        #[arg(long, value_name = "EMAIL")]
        all: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Show the most recent entries, oldest first.
    Tail {
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: i64,
    },
    /// Check the whole hash chain and the head's MAC; exits non-zero if any entry was altered,
    /// removed or reordered, or the tail was deleted. Prints a pin for the head: record it
    /// outside the database and pass it later to catch a rollback of the whole log.
    Verify {
        /// An entry recorded from an earlier run (SEQ:MAC): the log must still contain it.
        #[arg(long)]
        pin: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input.
    Add(UserAdd),
    /// Block a user: every session and refresh token ends, every grant fails at once.
    Disable { email: String },
    /// Unblock a user.
    Enable { email: String },
    /// Set a new password (read from standard input); every session of the user ends.
    SetPassword {
        email: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Remove every second factor and recovery code of a user (they lost them all); every
    /// session of the user ends. They sign in with their password and add new ones.
    ResetMfa { email: String },
}

#[derive(Debug, Args)]
pub struct UserAdd {
    /// Email address (the sign-in name).
    #[arg(long)]
    pub email: String,
    /// Display name.
    #[arg(long)]
    pub name: Option<String>,
    /// A role, put in access tokens' `roles` claim (repeatable).
    #[arg(long = "role")]
    pub roles: Vec<String>,
    /// Read the password from standard input (required: passwords never go on the command line).
    #[arg(long, required = true)]
    pub password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client. Without --secret-stdin or --public, a 256-bit secret is generated and
    /// printed once.
    Add(ClientAdd),
}

#[derive(Debug, Args)]
pub struct ClientAdd {
    /// Client identifier.
    #[arg(long)]
    pub id: String,
    /// Read the client secret (at least 32 characters) from standard input.
    #[arg(long, conflicts_with = "public")]
    pub secret_stdin: bool,
    /// A public client (browser or native app) with no secret; PKCE protects its codes.
    #[arg(long)]
    pub public: bool,
    /// An allowed redirect URI, compared by exact string match (repeatable).
    #[arg(long = "redirect-uri")]
    pub redirect_uris: Vec<String>,
    /// An allowed post-logout redirect URI (repeatable).
    #[arg(long = "post-logout-redirect-uri")]
    pub post_logout_redirect_uris: Vec<String>,
    /// authorization_code, refresh_token or client_credentials (repeatable; default: the first two).
    #[arg(long = "grant")]
    pub grants: Vec<String>,
    /// A scope the client may receive (repeatable; default: openid profile email offline_access).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// A resource (RFC 8707) the client may ask tokens for; the first is the default `aud`.
    #[arg(long = "audience")]
    pub audiences: Vec<String>,
    /// A first-party application: no consent screen.
    #[arg(long)]
    pub first_party: bool,
    /// Everyone signing in to this client must use a second factor (an authenticator app, a
    /// security key or a passkey); its tokens then carry acr "2".
    #[arg(long)]
    pub require_mfa: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Publish a new signing key now; it starts signing after the publish lead time.
    /// With --emergency it signs at once and every older key is withdrawn.
    Rotate {
        #[arg(long)]
        emergency: bool,
    },
    /// List the published keys.
    List,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("{0}")]
    Invalid(String),
    #[error("{0} already exists")]
    Exists(String),
    #[error("database: {0}")]
    Store(StoreError),
    #[error("cannot read standard input: {0}")]
    Stdin(#[from] std::io::Error),
    #[error("{0}")]
    Account(#[from] AccountError),
    #[error("AUDIT LOG TAMPERED: {0}")]
    Tampered(#[from] ChainBreak),
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        CliError::Store(e)
    }
}

pub const GRANTS: &[&str] = &["authorization_code", "refresh_token", "client_credentials"];
pub const MIN_CLIENT_SECRET_CHARS: usize = 32;

fn read_stdin_line() -> Result<String, CliError> {
    let mut text = String::new();
    std::io::stdin().take(4096).read_to_string(&mut text)?;
    Ok(text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text)
        .to_string())
}

pub async fn run(cli: Cli, config: Config) -> Result<(), CliError> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => Ok(startup::serve(config).await?),
        Command::Migrate => {
            let store = startup::open_store(&config).await?;
            println!("migrations applied ({:?})", store.backend());
            Ok(())
        }
        Command::User(UserCommand::Add(args)) => user_add(&config, args).await,
        Command::Client(ClientCommand::Add(args)) => client_add(&config, args).await,
        Command::Keys(KeysCommand::Rotate { emergency }) => keys_rotate(&config, emergency).await,
        Command::Keys(KeysCommand::List) => keys_list(&config).await,
        Command::User(UserCommand::Disable { email }) => {
            user_set_disabled(&config, &email, true).await
        }
        Command::User(UserCommand::Enable { email }) => {
            user_set_disabled(&config, &email, false).await
        }
        Command::User(UserCommand::SetPassword { email, .. }) => {
            user_set_password(&config, &email).await
        }
        Command::User(UserCommand::ResetMfa { email }) => user_reset_mfa(&config, &email).await,
        Command::Session(SessionCommand::List { email }) => session_list(&config, &email).await,
        Command::Session(SessionCommand::Revoke { id, all }) => {
            session_revoke(&config, id, all).await
        }
        Command::Audit(AuditCommand::Tail { lines }) => audit_tail(&config, lines).await,
        Command::Audit(AuditCommand::Verify { pin }) => audit_verify(&config, &pin).await,
    }
}

fn check_policy(config: &Config, password: &SecretString, email: &str) -> Result<(), CliError> {
    config
        .password_policy()
        .check(password.expose(), email)
        .map_err(|v| CliError::Invalid(v.to_string()))
}

async fn user_add(config: &Config, args: UserAdd) -> Result<(), CliError> {
    let email = Email::parse(&args.email).map_err(|e| CliError::Invalid(e.to_string()))?;
    let password = SecretString::new(read_stdin_line()?);
    check_policy(config, &password, email.as_str())?;
    let provider = startup::provider(config).await?;
    let hasher = startup::password_hasher(config)?;
    let hash = hasher.hash(&password).await.map_err(StartupError::from)?;
    let user = User {
        id: random_id(),
        email: email.to_string(),
        name: args
            .name
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty()),
        roles: args.roles,
        password_hash: hash.into(),
        disabled: false,
        email_verified: false,
        created_at: provider.now(),
    };
    match provider.store.insert_user(&user).await {
        Err(StoreError::Conflict) => {
            return Err(CliError::Exists(format!("a user with email {email}")));
        }
        other => other?,
    }
    provider
        .audit(
            AuditEvent::new("user.created")
                .actor("cli")
                .subject(&user.id)
                .detail("roles", user.roles.clone()),
        )
        .await;
    println!("{}", user.id);
    Ok(())
}

/// Redirect URIs: absolute, no fragment; https, or http only on loopback (development and
/// native apps, RFC 8252 §7.3), or a private-use scheme (RFC 8252 §7.1).
fn check_redirect_uri(uri: &str) -> Result<(), CliError> {
    let bad = |why: &str| CliError::Invalid(format!("redirect URI `{uri}`: {why}"));
    let url = url::Url::parse(uri).map_err(|_| bad("not an absolute URI"))?;
    if url.fragment().is_some() {
        return Err(bad("must not contain a fragment"));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" => match url.host_str() {
            Some("localhost" | "127.0.0.1" | "[::1]") => Ok(()),
            _ => Err(bad("http is only allowed for localhost; use https")),
        },
        s if s.contains('.') => Ok(()),
        _ => Err(bad("unsupported scheme")),
    }
}

async fn client_add(config: &Config, args: ClientAdd) -> Result<(), CliError> {
    let id = ClientId::parse(&args.id).map_err(|_| {
        CliError::Invalid("--id must be 1-128 characters of A-Z a-z 0-9 - . _ :".into())
    })?;
    let grants = if args.grants.is_empty() {
        vec![
            "authorization_code".to_string(),
            "refresh_token".to_string(),
        ]
    } else {
        args.grants
    };
    if let Some(g) = grants.iter().find(|g| !GRANTS.contains(&g.as_str())) {
        return Err(CliError::Invalid(format!(
            "unknown grant `{g}` (use {})",
            GRANTS.join(", ")
        )));
    }
    if args.public && grants.iter().any(|g| g == "client_credentials") {
        return Err(CliError::Invalid(
            "a public client cannot use client_credentials".into(),
        ));
    }
    if grants.iter().any(|g| g == "authorization_code") && args.redirect_uris.is_empty() {
        return Err(CliError::Invalid(
            "the authorization_code grant needs at least one --redirect-uri".into(),
        ));
    }
    for uri in args
        .redirect_uris
        .iter()
        .chain(&args.post_logout_redirect_uris)
    {
        check_redirect_uri(uri)?;
    }
    let scopes = if args.scopes.is_empty() {
        ["openid", "profile", "email", "offline_access"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        crate::oauth::scope::parse(&args.scopes.join(" "))
            .map_err(|_| CliError::Invalid("malformed --scope".into()))?
    };
    let (secret, generated) = if args.public {
        (None, false)
    } else if args.secret_stdin {
        let s = read_stdin_line()?;
        if s.chars().count() < MIN_CLIENT_SECRET_CHARS {
            return Err(CliError::Invalid(format!(
                "a client secret must have at least {MIN_CLIENT_SECRET_CHARS} characters"
            )));
        }
        (Some(s), false)
    } else {
        (Some(random_token()), true)
    };
    let provider = startup::provider(config).await?;
    let client = Client {
        id: id.to_string(),
        secret_hash: secret
            .as_deref()
            .map(|s| crate::secret::Secret::wrap(provider.crypto.token_hash(s))),
        redirect_uris: args.redirect_uris,
        post_logout_redirect_uris: args.post_logout_redirect_uris,
        grant_types: grants,
        scopes,
        audiences: args.audiences,
        first_party: args.first_party,
        require_mfa: args.require_mfa,
        created_at: provider.now(),
    };
    match provider.store.insert_client(&client).await {
        Err(StoreError::Conflict) => return Err(CliError::Exists(format!("client {id}"))),
        other => other?,
    }
    provider
        .audit(
            AuditEvent::new("client.created")
                .actor("cli")
                .subject(id.as_str())
                .detail("grants", client.grant_types.clone())
                .detail("public", client.secret_hash.is_none())
                .detail("first_party", client.first_party)
                .detail("require_mfa", client.require_mfa),
        )
        .await;
    println!("client_id: {id}");
    if generated && let Some(s) = secret {
        println!("client_secret: {s}");
        eprintln!("Store this secret now: it is shown only once and kept only as a hash.");
    }
    Ok(())
}

async fn keys_rotate(config: &Config, emergency: bool) -> Result<(), CliError> {
    let provider = startup::provider(config).await?;
    let policy = startup::rotation_policy(config);
    let outcome = rotation::rotate(
        &provider.store,
        &provider.crypto,
        &policy,
        provider.now(),
        emergency,
    )
    .await
    .map_err(StartupError::from)?;
    provider
        .audit(
            AuditEvent::new(if emergency {
                "keys.rotated_emergency"
            } else {
                "keys.rotated"
            })
            .actor("cli")
            .detail("outcome", format!("{outcome:?}")),
        )
        .await;
    match outcome {
        Rotated::Scheduled { kid, activate_at } => {
            println!(
                "published key {kid}; it starts signing at {activate_at} (unix), after the publish lead"
            )
        }
        Rotated::AlreadyPending { kid, activate_at } => {
            println!(
                "key {kid} is already published and starts signing at {activate_at} (unix); nothing to do"
            )
        }
        Rotated::Emergency { kid, withdrawn } => {
            println!("key {kid} signs now; withdrawn: {}", withdrawn.join(", "))
        }
    }
    Ok(())
}

async fn keys_list(config: &Config) -> Result<(), CliError> {
    let provider = startup::provider(config).await?;
    let now = provider.now();
    use crate::store::KeyStore;
    for k in provider.store.live_keys(now).await? {
        let state = if k.activate_at > now {
            "pending"
        } else if k.expire_at.is_some() {
            "retiring"
        } else {
            "active"
        };
        println!(
            "{}\t{}\t{}\tactivates {}\texpires {}",
            k.kid,
            k.alg,
            state,
            k.activate_at,
            k.expire_at
                .map(|e| e.to_string())
                .unwrap_or_else(|| "-".into())
        );
    }
    Ok(())
}

async fn user_set_disabled(config: &Config, email: &str, disabled: bool) -> Result<(), CliError> {
    let provider = startup::provider(config).await?;
    let user = account::find_by_email(&provider, email).await?;
    account::set_disabled(&provider, &user, disabled, "cli").await?;
    println!(
        "{} {}",
        user.email,
        if disabled {
            "disabled; every session ended"
        } else {
            "enabled"
        }
    );
    Ok(())
}

async fn user_set_password(config: &Config, email: &str) -> Result<(), CliError> {
    let password = SecretString::new(read_stdin_line()?);
    let provider = startup::provider(config).await?;
    let hasher = startup::password_hasher(config)?;
    let user = account::find_by_email(&provider, email).await?;
    check_policy(config, &password, &user.email)?;
    account::set_password(&provider, &hasher, &user, &password, None, "cli").await?;
    println!("password set for {}; every session ended", user.email);
    Ok(())
}

async fn user_reset_mfa(config: &Config, email: &str) -> Result<(), CliError> {
    let provider = startup::provider(config).await?;
    let user = account::find_by_email(&provider, email).await?;
    let removed = crate::auth::mfa::reset_mfa(&provider, &user.id, "cli")
        .await
        .map_err(|e| match e {
            crate::auth::mfa::MfaError::Store(e) => CliError::Store(e),
            other => CliError::Invalid(format!("could not reset the second factors: {other}")),
        })?;
    println!(
        "removed {removed} second factor(s) and every recovery code of {}; every session ended",
        user.email
    );
    Ok(())
}

async fn session_list(config: &Config, email: &str) -> Result<(), CliError> {
    let provider = startup::provider(config).await?;
    let user = account::find_by_email(&provider, email).await?;
    let now = provider.now();
    println!("id\tcreated\tlast_seen\texpires\tip\tclients\tdevice");
    for (s, clients) in provider
        .store
        .list_user_sessions_with_clients(&user.id, now)
        .await?
    {
        let clients = clients.join(",");
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            s.id,
            s.created_at,
            s.last_seen_at,
            s.expires_at,
            s.ip.as_deref().unwrap_or("-"),
            if clients.is_empty() {
                "-".into()
            } else {
                clients
            },
            crate::auth::session::device_label(s.user_agent.as_deref()),
        );
    }
    Ok(())
}

async fn session_revoke(
    config: &Config,
    id: Option<String>,
    all: Option<String>,
) -> Result<(), CliError> {
    let provider = startup::provider(config).await?;
    if let Some(email) = all {
        let user = account::find_by_email(&provider, &email).await?;
        let ended = account::sign_out_everywhere(&provider, &user, None, "cli").await?;
        println!("ended {ended} session(s) of {}", user.email);
        return Ok(());
    }
    let id = id.unwrap_or_default();
    let Some(session) = provider.store.find_session(&id).await? else {
        return Err(CliError::Invalid(format!("no session {id}")));
    };
    provider.revoke_session(&id).await?;
    provider
        .audit(
            AuditEvent::new("session.revoked")
                .actor("cli")
                .subject(&session.user_id)
                .detail("session", id.clone()),
        )
        .await;
    println!("session {id} ended");
    Ok(())
}

async fn audit_tail(config: &Config, lines: i64) -> Result<(), CliError> {
    let provider = startup::provider(config).await?;
    let mut rows = provider.store.audit_tail(lines.clamp(1, 10_000)).await?;
    rows.reverse();
    for r in rows {
        println!(
            "{}\t{}\t{}\tactor={}\tsubject={}\tip={}\t{}",
            r.seq,
            r.at,
            r.action,
            r.actor.as_deref().unwrap_or("-"),
            r.subject.as_deref().unwrap_or("-"),
            r.ip.as_deref().unwrap_or("-"),
            r.detail
        );
    }
    Ok(())
}

async fn audit_verify(config: &Config, pins: &[String]) -> Result<(), CliError> {
    let mut pins = pins
        .iter()
        .map(|p| Pin::parse(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(CliError::Invalid)?;
    pins.sort_by_key(|p| p.seq);
    // The head is judged as found: an unsealed one fails below instead of being sealed here.
    let provider = startup::provider_with(config, startup::HeadSealing::Leave).await?;
    // Read the head first: entries appended while we walk are past it and not judged.
    let (head_seq, head_hash, head_mac) = provider.store.audit_head().await?;
    if let Some(gone) = pins.iter().find(|p| p.seq > head_seq) {
        return Err(ChainBreak::Pin(gone.seq).into());
    }
    let mut verifier = ChainVerifier::new(&provider.crypto);
    let mut after = 0;
    'walk: loop {
        let page = provider.store.audit_after(after, 1000).await?;
        if page.is_empty() {
            break;
        }
        for r in &page {
            if r.seq > head_seq {
                break 'walk;
            }
            verifier.next(r)?;
            if let Some(pin) = pins.iter().find(|p| p.seq == r.seq)
                && !crate::crypto::ct_eq(&pin.hash, &r.hash)
            {
                return Err(ChainBreak::Pin(pin.seq).into());
            }
            after = r.seq;
        }
    }
    let count = verifier.finish(head_seq, &head_hash, head_mac.as_deref())?;
    println!("audit log intact: {count} entries verified");
    if count > 0 {
        let pin = Pin {
            seq: head_seq,
            hash: head_hash,
        };
        println!(
            "head: --pin={pin}\n  (record it outside the database; `tessera audit verify --pin={pin}` \
             later fails if the log was rolled back before it)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revoke_id(args: &[&str]) -> Option<String> {
        match Cli::try_parse_from(args).map(|c| c.command) {
            Ok(Some(Command::Session(SessionCommand::Revoke { id, .. }))) => id,
            other => panic!("not a session revoke: {other:?}"),
        }
    }

    #[test]
    fn a_session_id_that_starts_with_a_hyphen_is_read_as_the_id() {
        assert_eq!(
            revoke_id(&["tessera", "session", "revoke", "-DkQx_3a"]).as_deref(),
            Some("-DkQx_3a")
        );
        assert_eq!(
            revoke_id(&["tessera", "session", "revoke", "--", "-DkQx_3a"]).as_deref(),
            Some("-DkQx_3a")
        );
    }

    #[test]
    fn revoke_all_still_reads_its_flag() {
        match Cli::try_parse_from(["tessera", "session", "revoke", "--all", "ann@example.com"])
            .map(|c| c.command)
        {
            Ok(Some(Command::Session(SessionCommand::Revoke { id: None, all }))) => {
                assert_eq!(all.as_deref(), Some("ann@example.com"))
            }
            other => panic!("not revoke --all: {other:?}"),
        }
    }
}
