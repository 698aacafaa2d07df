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
            user_id: None,
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
            user_id: None,
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

contract!(
    a_session_entry_names_its_user_and_a_user_entry_keeps_its_own,
    |s: SqlStore| async move {
        use crate::revocation::{Revocation, RevocationKind};
        let ann = user("ann@example.test");
        s.insert_user(&ann).await.unwrap();
        let sess = session(&ann.id);
        s.insert_session(&sess).await.unwrap();
        let r = |kind, subject: &str, user_id: Option<String>| Revocation {
            kind,
            subject: subject.into(),
            at: 10,
            expires_at: 100,
            user_id,
        };
        s.append_revocation(&r(RevocationKind::Session, &sess.id, None))
            .await
            .unwrap();
        s.append_revocation(&r(RevocationKind::Session, "gone", None))
            .await
            .unwrap();
        s.append_revocation(&r(RevocationKind::User, &ann.id, Some(ann.id.clone())))
            .await
            .unwrap();
        // A jti that happens to look like a session id names nobody.
        s.append_revocation(&r(RevocationKind::Jti, &sess.id, None))
            .await
            .unwrap();
        let users: Vec<Option<String>> = s
            .revocations_after(0, 50, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, r)| r.unwrap().user_id)
            .collect();
        assert_eq!(
            users,
            [Some(ann.id.clone()), None, Some(ann.id.clone()), None]
        );
    }
);

contract!(
    an_entry_that_becomes_visible_late_is_read_by_its_number,
    |s: SqlStore| async move {
        use crate::revocation::RevocationKind;
        // As two concurrent writers leave it on PostgreSQL: 11 visible before 10.
        let insert = |seq: i64, subject: &'static str| {
            let pool = s.pool.clone();
            async move {
                sqlx::query(
                    "INSERT INTO revocation_events (seq, kind, subject, at, expires_at) \
                     VALUES ($1, 'session', $2, 10, 100)",
                )
                .bind(seq)
                .bind(subject)
                .execute(&pool)
                .await
                .unwrap();
            }
        };
        insert(9, "s9").await;
        insert(11, "s11").await;
        let seqs = |page: Vec<(i64, Option<crate::revocation::Revocation>)>| {
            page.into_iter()
                .map(|(seq, r)| (seq, r.unwrap().subject))
                .collect::<Vec<_>>()
        };
        let first = s.revocations_after_or_in(8, &[], 50, 10).await.unwrap();
        assert_eq!(
            seqs(first),
            [(9, "s9".to_string()), (11, "s11".to_string())]
        );
        insert(10, "s10").await;
        insert(12, "s12").await;
        // Past 11, with 10 watched: both, in order; a watched number still missing is no error.
        let next = s
            .revocations_after_or_in(11, &[10, 7], 50, 10)
            .await
            .unwrap();
        assert_eq!(
            seqs(next),
            [(10, "s10".to_string()), (12, "s12".to_string())]
        );
        // Expired entries are not read, watched or not.
        assert!(
            s.revocations_after_or_in(11, &[10], 100, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(RevocationKind::parse("user"), Some(RevocationKind::User));
    }
);
