//! `tessera user …`: create, block, reset a user.

use clap::{Args, Subcommand};

use super::{CliError, read_stdin_line};
use crate::audit::AuditEvent;
use crate::auth::account;
use crate::auth::email::Email;
use crate::config::Config;
use crate::crypto::{SecretString, random_id};
use crate::startup::{self, StartupError};
use crate::store::{StoreError, User, UserStore};

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

pub(super) async fn run(config: &Config, cmd: UserCommand) -> Result<(), CliError> {
    match cmd {
        UserCommand::Add(args) => user_add(config, args).await,
        UserCommand::Disable { email } => user_set_disabled(config, &email, true).await,
        UserCommand::Enable { email } => user_set_disabled(config, &email, false).await,
        UserCommand::SetPassword { email, .. } => user_set_password(config, &email).await,
        UserCommand::ResetMfa { email } => user_reset_mfa(config, &email).await,
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
