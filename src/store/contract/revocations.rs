//! The revocation log.
use super::*;

contract!(
    revocations_are_replayed_in_order_until_they_expire,
    |s: SqlStore| async move {
        use crate::revocation::{Revocation, RevocationKind};
        let r = |subject: &str, expires_at| Revocation {
            kind: RevocationKind::Session,
            subject: subject.into(),
            at: 10,
            expires_at,
        };
        let a = s.append_revocation(&r("a", 100)).await.unwrap();
        let b = s.append_revocation(&r("b", 200)).await.unwrap();
        assert!(b > a);
        let all = s.revocations_after(0, 50, 10).await.unwrap();
        assert_eq!(
            all.iter()
                .map(|(_, r)| r.subject.as_str())
                .collect::<Vec<_>>(),
            vec!["a", "b"]
        );
        assert_eq!(s.revocations_after(a, 50, 10).await.unwrap().len(), 1);
        assert_eq!(
            s.revocations_after(0, 150, 10).await.unwrap()[0].1.subject,
            "b"
        );
    }
);
