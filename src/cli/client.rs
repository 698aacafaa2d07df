//! `tessera client …`: register, list, show, edit, rotate the secret of, disable and enable
//! OAuth clients, through the same engine functions as the admin console (`admin::clients`).

use clap::{ArgAction, Args, Subcommand};

use super::{CliError, read_stdin_line};
use crate::admin::Actor;
use crate::admin::clients::{self, ClientSettings, ClientView, SecretChoice};
use crate::config::Config;
use crate::oauth::Provider;
use crate::secret::SecretString;
use crate::startup;

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client. Without --secret-stdin or --public, a 256-bit secret is generated and
    /// printed once.
    Add(ClientAdd),
    /// List the clients.
    List {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one client (never its secret).
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Change a client's settings: each list given replaces the current one; what is not
    /// given stays.
    Update(ClientUpdate),
    /// Give a confidential client a new generated secret, printed once; the old one stays
    /// valid for --overlap (default 24h; 0s ends it now) so services roll without downtime.
    RotateSecret {
        id: String,
        #[arg(long, default_value = "24h", value_parser = parse_overlap)]
        overlap: i64,
    },
    /// Disable a client: it gets no more tokens, its refresh tokens are revoked and its access
    /// tokens introspect as inactive at once.
    Disable { id: String },
    /// Enable a disabled client (what it had before stays revoked).
    Enable { id: String },
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
    /// OpenID Connect Back-Channel Logout: where a signed logout token is POSTed when a session
    /// this client took part in ends (https; http only while the issuer is http).
    #[arg(long = "backchannel-logout-uri")]
    pub backchannel_logout_uri: Option<String>,
}

#[derive(Debug, Args)]
pub struct ClientUpdate {
    pub id: String,
    /// Replace the redirect URIs (repeatable).
    #[arg(long = "redirect-uri")]
    pub redirect_uris: Option<Vec<String>>,
    /// Replace the post-logout redirect URIs (repeatable).
    #[arg(long = "post-logout-redirect-uri")]
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// Replace the grants (repeatable).
    #[arg(long = "grant")]
    pub grants: Option<Vec<String>>,
    /// Replace the scopes (repeatable).
    #[arg(long = "scope")]
    pub scopes: Option<Vec<String>>,
    /// Replace the audiences (repeatable).
    #[arg(long = "audience")]
    pub audiences: Option<Vec<String>>,
    /// true or false.
    #[arg(long, action = ArgAction::Set)]
    pub first_party: Option<bool>,
    /// true or false.
    #[arg(long, action = ArgAction::Set)]
    pub require_mfa: Option<bool>,
    /// Replace the back-channel logout URI (an empty value removes it).
    #[arg(long = "backchannel-logout-uri")]
    pub backchannel_logout_uri: Option<String>,
}

fn parse_overlap(text: &str) -> Result<i64, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| e.to_string())
        .and_then(|d| i64::try_from(d.as_secs()).map_err(|e| e.to_string()))
}

pub(super) async fn run(config: &Config, cmd: ClientCommand) -> Result<(), CliError> {
    if let ClientCommand::Add(args) = cmd {
        return client_add(config, args).await;
    }
    let p = startup::provider(config).await?;
    match cmd {
        ClientCommand::Add(_) => Ok(()),
        ClientCommand::List { json } => {
            for c in clients::list(&p).await? {
                print_client(&c, json);
            }
            Ok(())
        }
        ClientCommand::Show { id, json } => {
            print_client(&clients::show(&p, &id).await?, json);
            Ok(())
        }
        ClientCommand::Update(args) => client_update(&p, args).await,
        ClientCommand::RotateSecret { id, overlap } => {
            let r = clients::rotate_secret(&p, &Actor::Cli, &id, overlap).await?;
            println!("client_secret: {}", r.secret.expose());
            eprintln!(
                "Store this secret now: it is shown only once. The previous secret stays valid \
                 until {} (unix time).",
                r.previous_valid_until
            );
            Ok(())
        }
        ClientCommand::Disable { id } => {
            let revoked = clients::disable(&p, &Actor::Cli, &id).await?;
            println!("client {id} disabled; {revoked} refresh token(s) revoked");
            Ok(())
        }
        ClientCommand::Enable { id } => {
            clients::enable(&p, &Actor::Cli, &id).await?;
            println!("client {id} enabled");
            Ok(())
        }
    }
}

fn print_client(c: &ClientView, json: bool) {
    if json {
        println!("{}", serde_json::to_string(c).unwrap_or_default());
        return;
    }
    println!(
        "{}\t{}\t{}\tgrants={}\tscopes={}\tredirect_uris={}{}{}",
        c.id,
        if c.public { "public" } else { "confidential" },
        if c.disabled_at.is_some() {
            "disabled"
        } else {
            "enabled"
        },
        c.grants.join(","),
        c.scopes.join(","),
        c.redirect_uris.join(","),
        if c.require_mfa { "\trequire_mfa" } else { "" },
        c.backchannel_logout_uri
            .as_deref()
            .map(|u| format!("\tbackchannel_logout_uri={u}"))
            .unwrap_or_default(),
    );
}

async fn client_update(p: &Provider, args: ClientUpdate) -> Result<(), CliError> {
    let now = clients::show(p, &args.id).await?;
    let settings = ClientSettings {
        redirect_uris: args.redirect_uris.unwrap_or(now.redirect_uris),
        post_logout_redirect_uris: args
            .post_logout_redirect_uris
            .unwrap_or(now.post_logout_redirect_uris),
        grants: args.grants.unwrap_or(now.grants),
        scopes: args.scopes.unwrap_or(now.scopes),
        audiences: args.audiences.unwrap_or(now.audiences),
        first_party: args.first_party.unwrap_or(now.first_party),
        require_mfa: args.require_mfa.unwrap_or(now.require_mfa),
        backchannel_logout_uri: args.backchannel_logout_uri.or(now.backchannel_logout_uri),
    };
    let updated = clients::update(p, &Actor::Cli, &args.id, settings).await?;
    print_client(&updated, false);
    Ok(())
}

async fn client_add(config: &Config, args: ClientAdd) -> Result<(), CliError> {
    let secret = if args.public {
        SecretChoice::Public
    } else if args.secret_stdin {
        SecretChoice::Given(SecretString::new(read_stdin_line()?))
    } else {
        SecretChoice::Generate
    };
    let settings = ClientSettings {
        redirect_uris: args.redirect_uris,
        post_logout_redirect_uris: args.post_logout_redirect_uris,
        grants: args.grants,
        scopes: args.scopes,
        audiences: args.audiences,
        first_party: args.first_party,
        require_mfa: args.require_mfa,
        backchannel_logout_uri: args.backchannel_logout_uri,
    };
    // Checked before the store is opened, so a typo costs no database connection.
    clients::validate(settings.clone(), args.public, config.is_https())?;
    let p = startup::provider(config).await?;
    let created = clients::create(&p, &Actor::Cli, &args.id, secret, settings).await?;
    println!("client_id: {}", created.client.id);
    if let Some(s) = created.secret {
        println!("client_secret: {}", s.expose());
        eprintln!("Store this secret now: it is shown only once and kept only as a hash.");
    }
    Ok(())
}
