//! The audit chain.
use super::*;

contract!(
    the_audit_chain_links_every_append,
    |s: SqlStore| async move {
        use crate::audit::{AuditEvent, ChainVerifier};
        use crate::crypto::{Crypto, MasterKey};
        let crypto = std::sync::Arc::new(Crypto::new(&MasterKey::generate()));
        assert_eq!(s.seal_audit_head(&crypto).await.unwrap(), Some(0));
        assert_eq!(s.seal_audit_head(&crypto).await.unwrap(), None);
        for i in 0..3 {
            s.append_audit(
                &crypto,
                100 + i,
                &AuditEvent::new("signin.success").subject("u"),
            )
            .await
            .unwrap();
        }
        let (head, hash, mac) = s.audit_head().await.unwrap();
        assert_eq!(head, 3);
        let mut v = ChainVerifier::new(&crypto);
        for r in s.audit_after(0, 10).await.unwrap() {
            v.next(&r).unwrap();
        }
        assert_eq!(v.finish(head, &hash, mac.as_deref()).unwrap(), 3);
        assert_eq!(s.audit_tail(1).await.unwrap()[0].seq, 3);
    }
);

/// Two processes (two stores on one database) appending in turn and at once keep one unbroken
/// chain. On PostgreSQL a process appends in one statement after the head it last saw, and
/// falls back to the locked append when another process moved the head meanwhile.
#[tokio::test]
async fn two_processes_appending_to_the_audit_log_keep_one_chain() {
    let url = sqlite_url();
    two_appenders(open(&url, 2).await, open(&url, 2).await).await;
    if let Some(url) = postgres_url().await {
        two_appenders(open(&url, 4).await, open(&url, 4).await).await;
    }
}

async fn two_appenders(a: SqlStore, b: SqlStore) {
    use crate::audit::{AuditEvent, ChainVerifier};
    use crate::crypto::{Crypto, MasterKey};
    let crypto = std::sync::Arc::new(Crypto::new(&MasterKey::generate()));
    let event = |i: i64| AuditEvent::new("signin.success").subject(format!("u{i}"));
    a.seal_audit_head(&crypto).await.unwrap();
    let mut seqs = Vec::new();
    // In turn: a, a, b, a, a, b, ...
    for i in 0..9 {
        let s = if i % 3 == 2 { &b } else { &a };
        seqs.push(s.append_audit(&crypto, 100 + i, &event(i)).await.unwrap());
    }
    // At once.
    let tasks: Vec<_> = (9..40)
        .map(|i| {
            let (s, crypto) = (
                if i % 2 == 0 { a.clone() } else { b.clone() },
                crypto.clone(),
            );
            tokio::spawn(async move { s.append_audit(&crypto, 100 + i, &event(i)).await })
        })
        .collect();
    for t in tasks {
        seqs.push(t.await.unwrap().unwrap());
    }
    seqs.sort();
    assert_eq!(
        seqs,
        (1..=40).collect::<Vec<i64>>(),
        "each append got its own number"
    );
    if a.backend() == Backend::Postgres {
        // The one-statement append takes effect only right after the head it names.
        let (seq, hash, _) = a.audit_head().await.unwrap();
        let head = (seq, hash);
        let stale = (head.0 - 1, head.1.clone());
        let refused = a.append_audit_after(&crypto, stale, 200, &event(40)).await;
        assert_eq!(refused.unwrap(), None);
        let after = a
            .append_audit_after(&crypto, head.clone(), 200, &event(40))
            .await;
        assert_eq!(after.unwrap().map(|(seq, _)| seq), Some(head.0 + 1));
    }
    let (head, hash, mac) = b.audit_head().await.unwrap();
    let mut v = ChainVerifier::new(&crypto);
    for r in b.audit_after(0, 100).await.unwrap() {
        v.next(&r).unwrap();
    }
    assert_eq!(v.finish(head, &hash, mac.as_deref()).unwrap(), head);
    assert!(head >= 40);
}

contract!(
    audit_counts_group_entries_by_action_and_bucket_from_a_time_on,
    |s: SqlStore| async move {
        use crate::audit::AuditEvent;
        use crate::crypto::{Crypto, MasterKey};
        let crypto = std::sync::Arc::new(Crypto::new(&MasterKey::generate()));
        s.seal_audit_head(&crypto).await.unwrap();
        // Before the window (not counted), then two buckets of 100 s from t = 1000.
        for (at, action) in [
            (999, "signin.failure"),
            (1000, "signin.failure"),
            (1050, "signin.failure"),
            (1099, "signin.success"),
            (1100, "signin.failure"),
            (1250, "refresh.reuse_detected"),
        ] {
            s.append_audit(&crypto, at, &AuditEvent::new(action))
                .await
                .unwrap();
        }
        let mut counts = s.audit_counts(1000, 100).await.unwrap();
        counts.sort();
        assert_eq!(
            counts,
            vec![
                ("refresh.reuse_detected".to_string(), 2, 1),
                ("signin.failure".to_string(), 0, 2),
                ("signin.failure".to_string(), 1, 1),
                ("signin.success".to_string(), 0, 1),
            ]
        );
        assert!(s.audit_counts(2000, 100).await.unwrap().is_empty());
    }
);
