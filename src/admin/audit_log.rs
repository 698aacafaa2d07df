//! Operator actions on the audit log: read it filtered and page by page, newest first, and
//! check its hash chain (the console's "verify chain", `tessera audit verify`).

use serde::Serialize;

use super::AdminError;
use crate::audit::{AuditRecord, ChainBreak, ChainVerifier, Pin};
use crate::crypto::ct_eq;
use crate::oauth::Provider;
use crate::store::{AuditFilter, AuditStore};

/// The most entries one page holds.
pub const MAX_PAGE: i64 = 200;

/// An entry as operators read it (its MACs are the chain's business, not the reader's).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EntryView {
    pub seq: i64,
    pub at: i64,
    pub action: String,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The entry's details, as JSON.
    pub detail: serde_json::Value,
}

impl From<AuditRecord> for EntryView {
    fn from(r: AuditRecord) -> Self {
        Self {
            seq: r.seq,
            at: r.at,
            action: r.action,
            actor: r.actor,
            subject: r.subject,
            ip: r.ip,
            user_agent: r.user_agent,
            detail: serde_json::from_str(&r.detail).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// One page of entries, and where the next (older) one starts.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    pub entries: Vec<EntryView>,
    /// Pass as `before` for the next page; `None` on the last.
    pub next_before: Option<i64>,
}

/// Entries matching `filter`, newest first, older than `before` (the previous page's
/// `next_before`; `None` from the newest), at most `limit` (capped at [`MAX_PAGE`]).
pub async fn search(
    p: &Provider,
    filter: &AuditFilter,
    before: Option<i64>,
    limit: i64,
) -> Result<Page, AdminError> {
    if filter.actor.len() > 300 || filter.subject.len() > 300 || filter.action.len() > 100 {
        return Err(AdminError::Invalid("a filter is too long".into()));
    }
    if let (Some(since), Some(until)) = (filter.since, filter.until)
        && since > until
    {
        return Err(AdminError::Invalid("the start is after the end".into()));
    }
    let limit = limit.clamp(1, MAX_PAGE);
    // One more than asked tells whether another page follows.
    let mut rows = p
        .store
        .search_audit(filter, before.unwrap_or(i64::MAX), limit + 1)
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_before = if more {
        rows.last().map(|r| r.seq)
    } else {
        None
    };
    Ok(Page {
        entries: rows.into_iter().map(EntryView::from).collect(),
        next_before,
    })
}

/// The result of checking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every entry up to the head chains, the head's MAC holds, and every pin is found.
    Intact {
        entries: i64,
        /// The head as a pin (`SEQ:MAC`) to record outside the database.
        head: Option<String>,
    },
    /// Altered, removed or reordered entries, a forged or rolled-back head, or a missing pin.
    Broken(String),
}

/// Walks the whole chain from the first entry to the head read at the start (entries
/// appended meanwhile are not judged), checking `pins` recorded earlier.
pub async fn verify(p: &Provider, pins: &[Pin]) -> Result<Verdict, AdminError> {
    let (head_seq, head_hash, head_mac) = p.store.audit_head().await?;
    let broken = |b: ChainBreak| Ok(Verdict::Broken(b.to_string()));
    if let Some(gone) = pins.iter().find(|pin| pin.seq > head_seq) {
        return broken(ChainBreak::Pin(gone.seq));
    }
    let mut verifier = ChainVerifier::new(&p.crypto);
    let mut after = 0;
    'walk: loop {
        let page = p.store.audit_after(after, 1000).await?;
        if page.is_empty() {
            break;
        }
        for r in &page {
            if r.seq > head_seq {
                break 'walk;
            }
            if let Err(b) = verifier.next(r) {
                return broken(b);
            }
            if let Some(pin) = pins.iter().find(|pin| pin.seq == r.seq)
                && !ct_eq(&pin.hash, &r.hash)
            {
                return broken(ChainBreak::Pin(pin.seq));
            }
            after = r.seq;
        }
    }
    match verifier.finish(head_seq, &head_hash, head_mac.as_deref()) {
        Ok(entries) => Ok(Verdict::Intact {
            entries,
            head: (entries > 0).then(|| {
                Pin {
                    seq: head_seq,
                    hash: head_hash,
                }
                .to_string()
            }),
        }),
        Err(b) => broken(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditEvent;
    use crate::testkit::Kit;

    #[tokio::test]
    async fn the_log_is_searched_by_actor_subject_action_and_time_page_by_page() {
        let kit = Kit::new().await;
        let p = &kit.p;
        for i in 0..5 {
            p.audit(
                AuditEvent::new("client.updated")
                    .actor("admin:u1")
                    .subject(format!("c{}", i % 2)),
            )
            .await;
            kit.advance(10);
        }
        p.audit(AuditEvent::new("signin.success").subject("c0"))
            .await;
        let all = |f: AuditFilter| async move { search(p, &f, None, 100).await.unwrap().entries };
        assert_eq!(all(AuditFilter::default()).await.len(), 6);
        let by_admin = all(AuditFilter {
            actor: "admin:".into(),
            ..Default::default()
        })
        .await;
        assert_eq!(by_admin.len(), 5);
        assert!(
            by_admin.windows(2).all(|w| w[0].seq > w[1].seq),
            "newest first"
        );
        let c0 = all(AuditFilter {
            subject: "c0".into(),
            action: "client.".into(),
            ..Default::default()
        })
        .await;
        assert_eq!(c0.len(), 3);
        let t0 = by_admin.last().unwrap().at;
        let window = all(AuditFilter {
            since: Some(t0 + 10),
            until: Some(t0 + 20),
            ..Default::default()
        })
        .await;
        assert_eq!(window.len(), 2);
        // Pages of two: 2 + 2 + 2, then no further page.
        let first = search(p, &AuditFilter::default(), None, 2).await.unwrap();
        let second = search(p, &AuditFilter::default(), first.next_before, 2)
            .await
            .unwrap();
        let third = search(p, &AuditFilter::default(), second.next_before, 2)
            .await
            .unwrap();
        assert_eq!(third.entries.len(), 2);
        assert_eq!(third.next_before, None);
        let mut seqs: Vec<i64> = [first, second, third]
            .into_iter()
            .flat_map(|p| p.entries.into_iter().map(|e| e.seq))
            .collect();
        seqs.dedup();
        assert_eq!(seqs.len(), 6);
        let inverted = AuditFilter {
            since: Some(10),
            until: Some(5),
            ..Default::default()
        };
        assert!(matches!(
            search(p, &inverted, None, 10).await,
            Err(AdminError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn verify_reports_an_intact_chain_and_a_tampered_one() {
        let kit = Kit::new().await;
        // As `serve` does at its start: the empty log's head gets its MAC.
        kit.p.store.seal_audit_head(&kit.p.crypto).await.unwrap();
        for _ in 0..3 {
            kit.p.audit(AuditEvent::new("signin.success")).await;
        }
        let verdict = verify(&kit.p, &[]).await.unwrap();
        let Verdict::Intact { entries, head } = verdict else {
            panic!("intact: {verdict:?}")
        };
        assert_eq!(entries, 3);
        let pin = Pin::parse(&head.unwrap()).unwrap();
        assert!(matches!(
            verify(&kit.p, &[pin]).await.unwrap(),
            Verdict::Intact { .. }
        ));
        sqlx::query("UPDATE audit_events SET action = 'nothing' WHERE seq = 2")
            .execute(&kit.p.store.pool)
            .await
            .unwrap();
        assert!(matches!(
            verify(&kit.p, &[]).await.unwrap(),
            Verdict::Broken(_)
        ));
    }
}
