//! `tessera audit …`: read and check the tamper-evident audit log.

use clap::Subcommand;

use super::CliError;
use crate::audit::{ChainBreak, ChainVerifier, Pin};
use crate::config::Config;
use crate::startup;
use crate::store::AuditStore;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Show the most recent entries, oldest first.
    Tail {
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: i64,
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
    let mut pins = pins
        .iter()
        .map(|p| Pin::parse(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(CliError::Invalid)?;
    pins.sort_by_key(|p| p.seq);
    // The head is judged as found: an unsealed one fails below instead of being sealed here.
    let provider = startup::provider_with(config, startup::HeadSealing::Leave).await?;
    // Read the head first: entries appended while we walk are past it and not judged.
    let (head_seq, head_hash, head_mac) = provider.store.audit_head().await?;
    if let Some(gone) = pins.iter().find(|p| p.seq > head_seq) {
        return Err(ChainBreak::Pin(gone.seq).into());
    }
    let mut verifier = ChainVerifier::new(&provider.crypto);
    let mut after = 0;
    'walk: loop {
        let page = provider.store.audit_after(after, 1000).await?;
        if page.is_empty() {
            break;
        }
        for r in &page {
            if r.seq > head_seq {
                break 'walk;
            }
            verifier.next(r)?;
            if let Some(pin) = pins.iter().find(|p| p.seq == r.seq)
                && !crate::crypto::ct_eq(&pin.hash, &r.hash)
            {
                return Err(ChainBreak::Pin(pin.seq).into());
            }
            after = r.seq;
        }
    }
    let count = verifier.finish(head_seq, &head_hash, head_mac.as_deref())?;
    println!("audit log intact: {count} entries verified");
    if count > 0 {
        let pin = Pin {
            seq: head_seq,
            hash: head_hash,
        };
        println!(
            "head: --pin={pin}\n  (record it outside the database; `tessera audit verify --pin={pin}` \
             later fails if the log was rolled back before it)"
        );
    }
    Ok(())
}
