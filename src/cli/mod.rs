//! Subcommands. Operators and tests bootstrap through these; they read the same configuration
//! as `serve`.

use std::io::Read;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::auth::account::AccountError;
use crate::config::Config;
use crate::startup::{self, StartupError};
use crate::store::StoreError;

mod audit;
mod client;
mod keys;
mod session;
mod user;

pub use crate::admin::clients::{GRANTS, MIN_CLIENT_SECRET_CHARS};
pub use audit::AuditCommand;
pub use client::{ClientAdd, ClientCommand};
pub use keys::KeysCommand;
pub use session::SessionCommand;
pub use user::{UserAdd, UserCommand};

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
    Tampered(String),
}

impl From<crate::admin::AdminError> for CliError {
    fn from(e: crate::admin::AdminError) -> Self {
        use crate::admin::AdminError;
        match e {
            AdminError::NotFound(what) => CliError::Invalid(format!("no such {what}")),
            AdminError::Invalid(message) => CliError::Invalid(message),
            AdminError::Conflict(what) => CliError::Exists(what),
            AdminError::Store(e) => CliError::Store(e),
            AdminError::Keys(message) => CliError::Invalid(message),
        }
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        CliError::Store(e)
    }
}

pub(crate) fn read_stdin_line() -> Result<String, CliError> {
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
        Command::User(cmd) => user::run(&config, cmd).await,
        Command::Client(cmd) => client::run(&config, cmd).await,
        Command::Keys(cmd) => keys::run(&config, cmd).await,
        Command::Session(cmd) => session::run(&config, cmd).await,
        Command::Audit(cmd) => audit::run(&config, cmd).await,
    }
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
