//! `tessera audit …`: read and check the tamper-evident audit log.

use clap::Subcommand;

use super::CliError;
use crate::admin::audit_log::{self, Verdict};
use crate::audit::Pin;
use crate::config::Config;
use crate::startup;
use crate::store::{AuditFilter, AuditStore};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Show the most recent entries, oldest first.
    Tail {
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: i64,
    },
    /// Entries filtered as on the console's audit page, newest first, one JSON object per line.
    Search {
        /// Actor prefix (`cli`, `admin:`, `admin:<user id>`, `api:<client id>`).
        #[arg(long, default_value = "")]
        actor: String,
        /// Subject (a user id, a client id), exactly.
        #[arg(long, default_value = "", allow_hyphen_values = true)]
        subject: String,
        /// Action prefix (`client.`, `signin.failure`).
        #[arg(long, default_value = "")]
        action: String,
        /// From this unix time on.
        #[arg(long)]
        since: Option<i64>,
        /// Up to this unix time.
        #[arg(long)]
        until: Option<i64>,
        #[arg(short = 'n', long, default_value_t = 50)]
        limit: i64,
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

pub(super) async fn run(config: &Config, cmd: AuditCommand) -> Result<(), CliError> {
    match cmd {
        AuditCommand::Tail { lines } => audit_tail(config, lines).await,
        AuditCommand::Verify { pin } => audit_verify(config, &pin).await,
        AuditCommand::Search {
            actor,
            subject,
            action,
            since,
            until,
            limit,
        } => {
            let provider = startup::provider(config).await?;
            let filter = AuditFilter {
                actor,
                subject,
                action,
                since,
                until,
            };
            let page = audit_log::search(&provider, &filter, None, limit).await?;
            for e in page.entries {
                println!("{}", serde_json::to_string(&e).unwrap_or_default());
            }
            Ok(())
        }
    }
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
    let pins = pins
        .iter()
        .map(|p| Pin::parse(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(CliError::Invalid)?;
    // The head is judged as found: an unsealed one fails instead of being sealed here.
    let provider = startup::provider_with(config, startup::HeadSealing::Leave).await?;
    match audit_log::verify(&provider, &pins).await? {
        Verdict::Intact { entries, head } => {
            println!("audit log intact: {entries} entries verified");
            if let Some(pin) = head {
                println!(
                    "head: --pin={pin}\n  (record it outside the database; `tessera audit verify --pin={pin}` \
                     later fails if the log was rolled back before it)"
                );
            }
            Ok(())
        }
        Verdict::Broken(why) => Err(CliError::Tampered(why)),
    }
}
