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
                .map(|(_, r)| r.as_ref().unwrap().subject.as_str())
                .collect::<Vec<_>>(),
            vec!["a", "b"]
        );
        assert_eq!(s.revocations_after(a, 50, 10).await.unwrap().len(), 1);
        assert_eq!(
            s.revocations_after(0, 150, 10).await.unwrap()[0]
                .1
                .as_ref()
                .unwrap()
                .subject,
            "b"
        );
    }
);

contract!(
    a_revocation_of_an_unknown_kind_is_passed_over_not_an_error,
    |s: SqlStore| async move {
        use crate::revocation::{Revocation, RevocationKind};
        let known = Revocation {
            kind: RevocationKind::Session,
            subject: "a".into(),
            at: 10,
            expires_at: 100,
        };
        s.append_revocation(&known).await.unwrap();
        // As a newer version would write it.
        sqlx::query(
            "INSERT INTO revocation_events (kind, subject, at, expires_at) \
             VALUES ('from_the_future', 'x', 10, 100)",
        )
        .execute(&s.pool)
        .await
        .unwrap();
        s.append_revocation(&known).await.unwrap();
        let page = s.revocations_after(0, 50, 10).await.unwrap();
        let kinds: Vec<bool> = page.iter().map(|(_, r)| r.is_some()).collect();
        assert_eq!(kinds, [true, false, true]);
        assert!(page.windows(2).all(|w| w[0].0 < w[1].0));
    }
);
