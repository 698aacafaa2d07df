//! `tessera keys …`: publish, rotate and list signing keys.

use clap::Subcommand;

use super::CliError;
use crate::audit::AuditEvent;
use crate::config::Config;
use crate::keys::rotation::{self, Rotated};
use crate::startup::{self, StartupError};

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
