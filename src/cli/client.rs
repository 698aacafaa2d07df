//! `tessera client …`: register OAuth clients.

use clap::{Args, Subcommand};

use super::{CliError, read_stdin_line};
use crate::audit::AuditEvent;
use crate::config::Config;
use crate::crypto::random_token;
use crate::oauth::client_id::ClientId;
use crate::startup;
use crate::store::{Client, ClientStore, StoreError};

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

pub const GRANTS: &[&str] = &["authorization_code", "refresh_token", "client_credentials"];
pub const MIN_CLIENT_SECRET_CHARS: usize = 32;

pub(super) async fn run(config: &Config, cmd: ClientCommand) -> Result<(), CliError> {
    match cmd {
        ClientCommand::Add(args) => client_add(config, args).await,
    }
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
