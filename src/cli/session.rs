//! `tessera session …`: see and end users' sessions.

use clap::Subcommand;

use super::CliError;
use crate::admin::Actor;
use crate::admin::sessions::{self, Query};
use crate::auth::account;
use crate::config::Config;
use crate::startup;
use crate::store::SessionStore;

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// List a user's live sessions.
    List { email: String },
    /// Live sessions across users, newest first (as the console lists them), one JSON object
    /// per line with --json.
    Search {
        /// A user's email or id.
        #[arg(long, default_value = "", allow_hyphen_values = true)]
        user: String,
        /// A client address, exactly.
        #[arg(long, default_value = "")]
        ip: String,
        /// A client the session gave a code or a refresh token to.
        #[arg(long, default_value = "")]
        client: String,
        #[arg(long)]
        json: bool,
    },
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

pub(super) async fn run(config: &Config, cmd: SessionCommand) -> Result<(), CliError> {
    match cmd {
        SessionCommand::List { email } => session_list(config, &email).await,
        SessionCommand::Search {
            user,
            ip,
            client,
            json,
        } => session_search(config, Query { user, ip, client }, json).await,
        SessionCommand::Revoke { id, all } => session_revoke(config, id, all).await,
    }
}

async fn session_search(config: &Config, query: Query, json: bool) -> Result<(), CliError> {
    let provider = startup::provider(config).await?;
    let mut next: Option<String> = None;
    loop {
        let page = sessions::list(&provider, &query, next.as_deref(), sessions::MAX_PAGE).await?;
        for s in &page.sessions {
            if json {
                println!("{}", serde_json::to_string(s).unwrap_or_default());
            } else {
                println!(
                    "{}\t{}\t{}\tlast_seen={}\tip={}\tclients={}\t{}",
                    s.id,
                    s.email,
                    s.started_at,
                    s.last_seen_at,
                    s.ip.as_deref().unwrap_or("-"),
                    s.clients.join(","),
                    s.device
                );
            }
        }
        match page.next {
            Some(n) => next = Some(n),
            None => return Ok(()),
        }
    }
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
    sessions::revoke(&provider, &Actor::Cli, &id)
        .await
        .map_err(|e| match e {
            crate::admin::AdminError::NotFound(_) => CliError::Invalid(format!("no session {id}")),
            other => other.into(),
        })?;
    println!("session {id} ended");
    Ok(())
}
