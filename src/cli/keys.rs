//! `tessera keys …`: publish, rotate and list signing keys.

use clap::Subcommand;

use super::CliError;
use crate::admin::{Actor, keys};
use crate::config::Config;
use crate::keys::rotation::Rotated;
use crate::startup;

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

pub(super) async fn run(config: &Config, cmd: KeysCommand) -> Result<(), CliError> {
    match cmd {
        KeysCommand::Rotate { emergency } => keys_rotate(config, emergency).await,
        KeysCommand::List => keys_list(config).await,
    }
}

async fn keys_rotate(config: &Config, emergency: bool) -> Result<(), CliError> {
    let provider = startup::provider(config).await?;
    let policy = startup::rotation_policy(config);
    match keys::rotate(&provider, &Actor::Cli, &policy, emergency).await? {
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
    let policy = startup::rotation_policy(config);
    for k in keys::list(&provider, &policy).await? {
        println!(
            "{}\t{}\t{}\tactivates {}\texpires {}{}",
            k.kid,
            k.alg,
            k.state.as_str(),
            k.activate_at,
            k.expire_at.map_or("-".to_string(), |e| e.to_string()),
            k.rotation_due_at
                .map_or(String::new(), |d| format!("\trotation due {d}")),
        );
    }
    Ok(())
}
