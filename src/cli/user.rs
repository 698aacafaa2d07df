//! `tessera user …`: the operator's user actions, each one call to `admin::users` with
//! `Actor::Cli` (the console and the API call the same functions).

use clap::{Args, Subcommand, ValueEnum};

use super::{CliError, read_stdin_line};
use crate::admin::Actor;
use crate::admin::users::{self, Cursor, ListInput, NewUser, UserRules, UserSummary};
use crate::config::Config;
use crate::crypto::SecretString;
use crate::mail::Mailer;
use crate::oauth::Provider;
use crate::startup;
use crate::store::UserSort;

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input.
    Add(UserAdd),
    /// Create a user without a password and mail them an invitation link (single use,
    /// `invitation_link_ttl`) to choose their own.
    Invite(UserInvite),
    /// List users, newest first: search, filter, sort, page.
    List(UserList),
    /// A user's details: sessions, second factors, recent audit entries, consents.
    Show {
        /// EMAIL or ID (an id may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        user: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replace a user's roles (repeat --role; --none removes them all).
    SetRole {
        /// EMAIL or ID (an id may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        user: String,
        #[arg(long = "role", required_unless_present = "none")]
        roles: Vec<String>,
        /// Remove every role.
        #[arg(long, conflicts_with = "roles")]
        none: bool,
    },
    /// Set (or with --clear remove) a user's display name.
    SetName {
        /// EMAIL or ID (an id may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        user: String,
        #[arg(long, required_unless_present = "clear")]
        name: Option<String>,
        #[arg(long, conflicts_with = "name")]
        clear: bool,
    },
    /// Block a user: every session and refresh token ends, every grant fails at once.
    Disable {
        /// EMAIL or ID (an id may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        user: String,
    },
    /// Unblock a user.
    Enable {
        /// EMAIL or ID (an id may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        user: String,
    },
    /// Lift a user's lock-out after failed sign-ins (needs Redis to reach a running server's
    /// counters; without it the console's unlock does).
    Unlock {
        /// EMAIL or ID (an id may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        user: String,
    },
    /// Make the password unusable, end every session and mail a reset link.
    ForceReset {
        /// EMAIL or ID (an id may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        user: String,
    },
    /// End every session and refresh token of a user.
    SignOutAll {
        /// EMAIL or ID (an id may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        user: String,
    },
    /// Set a new password (read from standard input); every session of the user ends.
    SetPassword {
        /// EMAIL or ID (an id may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        user: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Remove every second factor and recovery code of a user (they lost them all); every
    /// session of the user ends. They sign in with their password and add new ones.
    ResetMfa {
        /// EMAIL or ID (an id may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        user: String,
    },
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

#[derive(Debug, Args)]
pub struct UserInvite {
    /// Email address (the sign-in name); the invitation goes there.
    pub email: String,
    #[arg(long)]
    pub name: Option<String>,
    /// A role (repeatable).
    #[arg(long = "role")]
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SortArg {
    Created,
    LastSignIn,
}

#[derive(Debug, Args)]
pub struct UserList {
    /// Text found in the email, name or id (any case).
    #[arg(long)]
    pub query: Option<String>,
    /// Only disabled users.
    #[arg(long)]
    pub disabled: bool,
    /// Only users locked out now.
    #[arg(long)]
    pub locked: bool,
    /// Only users without a second factor.
    #[arg(long)]
    pub without_mfa: bool,
    #[arg(long, value_enum, default_value = "created")]
    pub sort: SortArg,
    /// Users per page (at most 100).
    #[arg(long, default_value_t = users::DEFAULT_PAGE)]
    pub limit: i64,
    /// The page at this cursor (printed as `next:` / `previous:` under a page).
    #[arg(long, allow_hyphen_values = true)]
    pub cursor: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub(super) async fn run(config: &Config, cmd: UserCommand) -> Result<(), CliError> {
    let p = startup::provider(config).await?;
    let actor = Actor::Cli;
    match cmd {
        UserCommand::Add(args) => user_add(config, &p, args).await,
        UserCommand::Invite(args) => {
            let mailer = mailer(config, &p)?;
            let new = NewUser {
                email: args.email,
                name: args.name,
                roles: args.roles,
            };
            let rules = UserRules::from_config(config, &mailer);
            let invited = users::invite(&p, &actor, &rules, &new).await?;
            println!("{}", invited.user.id);
            if invited.mailed {
                eprintln!(
                    "invitation mailed to {}; the link works until {}",
                    invited.user.email, invited.expires_at
                );
            } else {
                eprintln!(
                    "the user exists but the invitation mail could not be sent (see the log)"
                );
            }
            Ok(())
        }
        UserCommand::List(args) => user_list(config, &p, args).await,
        UserCommand::Show { user, json } => {
            let user = users::find(&p, &user).await?;
            let detail = users::show(&p, &user.id).await?;
            if json {
                println!("{}", to_json(&detail)?);
                return Ok(());
            }
            print_summary_header();
            print_summary(&detail.user);
            println!("\nsessions:");
            for s in &detail.sessions {
                println!(
                    "  {}\tstarted {}\tlast seen {}\t{}\t{}\t{}",
                    s.id,
                    s.started_at,
                    s.last_seen_at,
                    s.ip.as_deref().unwrap_or("-"),
                    dash(&s.clients.join(",")),
                    s.device.as_deref().unwrap_or("-")
                );
            }
            println!("second factors:");
            for f in &detail.factors {
                println!("  {}\t{}\t{}\tadded {}", f.id, f.kind, f.name, f.created_at);
            }
            let (left, issued) = detail.recovery_codes;
            println!("recovery codes: {left} of {issued} unused");
            println!("consents:");
            for c in &detail.consents {
                println!("  {}\t{}", c.client_id, c.scopes.join(" "));
            }
            println!("recent audit entries:");
            for a in &detail.audit {
                println!(
                    "  {}\t{}\t{}\t{}",
                    a.seq,
                    a.at,
                    a.action,
                    a.actor.as_deref().unwrap_or("-")
                );
            }
            Ok(())
        }
        UserCommand::SetRole { user, roles, none } => {
            let user = users::find(&p, &user).await?;
            let roles = if none { Vec::new() } else { roles };
            let user = users::set_roles(&p, &actor, &user.id, &roles).await?;
            println!("{}: roles {}", user.email, dash(&user.roles.join(",")));
            Ok(())
        }
        UserCommand::SetName { user, name, clear } => {
            let user = users::find(&p, &user).await?;
            let name = if clear { None } else { name };
            let user = users::set_name(&p, &actor, &user.id, name.as_deref()).await?;
            println!(
                "{}: name {}",
                user.email,
                user.name.as_deref().unwrap_or("-")
            );
            Ok(())
        }
        UserCommand::Disable { user } => {
            let user = users::find(&p, &user).await?;
            users::disable(&p, &actor, &user.id).await?;
            println!("{} disabled; every session ended", user.email);
            Ok(())
        }
        UserCommand::Enable { user } => {
            let user = users::find(&p, &user).await?;
            users::enable(&p, &actor, &user.id).await?;
            println!("{} enabled", user.email);
            Ok(())
        }
        UserCommand::Unlock { user } => {
            let user = users::find(&p, &user).await?;
            let was_locked = users::unlock(&p, &actor, &user.id).await?;
            println!(
                "{} {}",
                user.email,
                if was_locked {
                    "unlocked"
                } else {
                    "was not locked"
                }
            );
            if !p.fleet.has_redis() {
                eprintln!(
                    "note: without redis_url, lock-outs live in the running server's memory, \
                     which this command cannot reach: unlock from the admin console instead"
                );
            }
            Ok(())
        }
        UserCommand::ForceReset { user } => {
            let mailer = mailer(config, &p)?;
            let user = users::find(&p, &user).await?;
            let rules = UserRules::from_config(config, &mailer);
            let done = users::force_password_reset(&p, &actor, &rules, &user.id).await?;
            println!(
                "{}: password unusable, {} session(s) ended, reset link {}",
                user.email,
                done.sessions_ended,
                if done.mailed {
                    "mailed"
                } else {
                    "NOT mailed (see the log)"
                }
            );
            Ok(())
        }
        UserCommand::SignOutAll { user } => {
            let user = users::find(&p, &user).await?;
            let ended = users::sign_out_everywhere(&p, &actor, &user.id).await?;
            println!("{}: {ended} session(s) ended", user.email);
            Ok(())
        }
        UserCommand::SetPassword { user, .. } => {
            let password = SecretString::new(read_stdin_line()?);
            let hasher = startup::password_hasher(config)?;
            let user = users::find(&p, &user).await?;
            let policy = config.password_policy();
            users::set_password(&p, &actor, &hasher, &policy, &user.id, &password).await?;
            println!("password set for {}; every session ended", user.email);
            Ok(())
        }
        UserCommand::ResetMfa { user } => {
            let user = users::find(&p, &user).await?;
            let removed = users::reset_mfa(&p, &actor, &user.id).await?;
            println!(
                "removed {removed} second factor(s) and every recovery code of {}; every session ended",
                user.email
            );
            Ok(())
        }
    }
}

/// The mailer `serve` would use; refused where `serve` would refuse to start without one.
fn mailer(config: &Config, p: &Provider) -> Result<Mailer, CliError> {
    startup::check_mail_setting(config, p.store.backend())?;
    Ok(Mailer::new(config.smtp_url.as_deref(), &config.mail_from)
        .map_err(startup::StartupError::from)?)
}

async fn user_add(config: &Config, p: &Provider, args: UserAdd) -> Result<(), CliError> {
    let password = SecretString::new(read_stdin_line()?);
    let hasher = startup::password_hasher(config)?;
    let new = NewUser {
        email: args.email,
        name: args.name,
        roles: args.roles,
    };
    let policy = config.password_policy();
    let user =
        users::create_with_password(p, &Actor::Cli, &hasher, &policy, &new, &password).await?;
    println!("{}", user.id);
    Ok(())
}

async fn user_list(config: &Config, p: &Provider, args: UserList) -> Result<(), CliError> {
    let mailer = Mailer::Log;
    let rules = UserRules::from_config(config, &mailer);
    let input = ListInput {
        query: args.query.unwrap_or_default(),
        disabled: args.disabled,
        locked: args.locked,
        without_mfa: args.without_mfa,
        sort: match args.sort {
            SortArg::Created => UserSort::Created,
            SortArg::LastSignIn => UserSort::LastSignIn,
        },
        cursor: args.cursor.as_deref().map(Cursor::parse).transpose()?,
        limit: Some(args.limit),
    };
    let page = users::list(p, &rules, &input).await?;
    let next = page.next.as_ref().map(Cursor::encode);
    let previous = page.previous.as_ref().map(Cursor::encode);
    if args.json {
        let value = serde_json::json!({
            "users": page.users,
            "next": next,
            "previous": previous,
        });
        println!("{}", to_json(&value)?);
        return Ok(());
    }
    print_summary_header();
    for u in &page.users {
        print_summary(u);
    }
    if let Some(next) = next {
        println!("next: {next}");
    }
    if let Some(previous) = previous {
        println!("previous: {previous}");
    }
    Ok(())
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, CliError> {
    serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Invalid(format!("cannot print JSON: {e}")))
}

fn dash(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

fn print_summary_header() {
    println!("id\temail\tname\troles\tstate\tcreated\tlast_sign_in\tfactors");
}

fn print_summary(u: &UserSummary) {
    let mut state = Vec::new();
    if u.disabled {
        state.push("disabled".to_string());
    }
    if let Some(until) = u.locked_until {
        state.push(format!("locked-until-{until}"));
    }
    if !u.has_password {
        state.push("no-password".to_string());
    }
    println!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
        u.id,
        u.email,
        u.name.as_deref().unwrap_or("-"),
        dash(&u.roles.join(",")),
        if state.is_empty() {
            "active".to_string()
        } else {
            state.join(",")
        },
        u.created_at,
        u.last_signin_at
            .map_or_else(|| "never".to_string(), |t| t.to_string()),
        u.factors
    );
}
