//! `tessera session …`: see and end users' sessions.

use clap::Subcommand;

use super::CliError;
use crate::audit::AuditEvent;
use crate::auth::account;
use crate::config::Config;
use crate::startup;
use crate::store::SessionStore;

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

pub(super) async fn run(config: &Config, cmd: SessionCommand) -> Result<(), CliError> {
    match cmd {
        SessionCommand::List { email } => session_list(config, &email).await,
        SessionCommand::Revoke { id, all } => session_revoke(config, id, all).await,
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
