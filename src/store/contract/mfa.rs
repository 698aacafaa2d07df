//! Second factors: each user's own, a TOTP step accepted once, recovery codes spent once,
//! ceremonies taken once.
use super::*;

fn totp_factor(user_id: &str, name: &str, created_at: Timestamp) -> MfaFactor {
    MfaFactor {
        id: random_id(),
        user_id: user_id.into(),
        kind: FactorKind::Totp,
        name: name.into(),
        created_at,
        last_used_at: None,
        secret_enc: Some(vec![1, 2, 3]),
        last_step: None,
        credential_id: None,
        credential: None,
        passwordless: false,
    }
}

fn passkey(user_id: &str, credential_id: &[u8]) -> MfaFactor {
    MfaFactor {
        id: random_id(),
        user_id: user_id.into(),
        kind: FactorKind::WebAuthn,
        name: "Laptop".into(),
        created_at: 300,
        last_used_at: None,
        secret_enc: None,
        last_step: None,
        credential_id: Some(credential_id.to_vec()),
        credential: Some("{\"cred\":1}".into()),
        passwordless: true,
    }
}

async fn two_users(s: &SqlStore) -> (User, User) {
    let ann = user(&format!("ann-{}@example.com", random_id()));
    let bob = user(&format!("bob-{}@example.com", random_id()));
    s.insert_user(&ann).await.unwrap();
    s.insert_user(&bob).await.unwrap();
    (ann, bob)
}

fn pending(user_id: &str, expires_at: Timestamp) -> PendingTotp {
    PendingTotp {
        id: random_id(),
        user_id: user_id.into(),
        secret_enc: vec![9, 9, 9],
        created_at: 100,
        expires_at,
    }
}

fn ceremony(user_id: Option<&str>, expires_at: Timestamp) -> Ceremony {
    Ceremony {
        user_id: user_id.map(String::from),
        kind: "passkey_registration".into(),
        state: "sealed-state".into(),
        created_at: 100,
        expires_at,
    }
}

contract!(
    factors_are_listed_oldest_first_and_only_to_their_owner,
    |s: SqlStore| async move {
        let (ann, bob) = two_users(&s).await;
        let phone = totp_factor(&ann.id, "Phone", 200);
        let tablet = totp_factor(&ann.id, "Tablet", 100);
        let key = passkey(&ann.id, b"cred-1");
        for f in [&phone, &tablet, &key] {
            s.insert_factor(f).await.unwrap();
        }
        assert_eq!(
            s.list_factors(&ann.id).await.unwrap(),
            vec![tablet.clone(), phone.clone(), key.clone()]
        );
        assert_eq!(s.list_factors(&bob.id).await.unwrap(), vec![]);
        assert_eq!(
            s.find_factor(&ann.id, &phone.id).await.unwrap(),
            Some(phone.clone())
        );
        assert_eq!(s.find_factor(&bob.id, &phone.id).await.unwrap(), None);
        assert_eq!(
            s.find_factor_by_credential(b"cred-1").await.unwrap(),
            Some(key.clone())
        );
        assert_eq!(s.find_factor_by_credential(b"cred-2").await.unwrap(), None);
    }
);

contract!(
    a_credential_id_belongs_to_one_factor_only,
    |s: SqlStore| async move {
        let (ann, bob) = two_users(&s).await;
        s.insert_factor(&passkey(&ann.id, b"same")).await.unwrap();
        assert!(matches!(
            s.insert_factor(&passkey(&bob.id, b"same")).await,
            Err(StoreError::Conflict)
        ));
    }
);

contract!(
    a_user_removes_only_their_own_factors,
    |s: SqlStore| async move {
        let (ann, bob) = two_users(&s).await;
        let phone = totp_factor(&ann.id, "Phone", 200);
        s.insert_factor(&phone).await.unwrap();
        assert!(!s.remove_factor(&bob.id, &phone.id).await.unwrap());
        assert_eq!(s.list_factors(&ann.id).await.unwrap(), vec![phone.clone()]);
        assert!(s.remove_factor(&ann.id, &phone.id).await.unwrap());
        assert!(!s.remove_factor(&ann.id, &phone.id).await.unwrap());
        assert_eq!(s.list_factors(&ann.id).await.unwrap(), vec![]);
    }
);

contract!(
    a_totp_step_is_accepted_once_and_never_an_older_one,
    |s: SqlStore| async move {
        let (ann, bob) = two_users(&s).await;
        let phone = totp_factor(&ann.id, "Phone", 200);
        s.insert_factor(&phone).await.unwrap();
        assert!(
            s.accept_totp_step(&ann.id, &phone.id, 1000, 500)
                .await
                .unwrap()
        );
        // The same code again, and the code before it: refused.
        assert!(
            !s.accept_totp_step(&ann.id, &phone.id, 1000, 501)
                .await
                .unwrap()
        );
        assert!(
            !s.accept_totp_step(&ann.id, &phone.id, 999, 502)
                .await
                .unwrap()
        );
        // Another user cannot spend ann's steps.
        assert!(
            !s.accept_totp_step(&bob.id, &phone.id, 1001, 503)
                .await
                .unwrap()
        );
        assert!(
            s.accept_totp_step(&ann.id, &phone.id, 1001, 530)
                .await
                .unwrap()
        );
        let stored = s.find_factor(&ann.id, &phone.id).await.unwrap().unwrap();
        assert_eq!(stored.last_step, Some(1001));
        assert_eq!(stored.last_used_at, Some(530));
    }
);

contract!(
    of_concurrent_accepts_of_one_step_exactly_one_wins,
    |s: SqlStore| async move {
        let (ann, _) = two_users(&s).await;
        let phone = totp_factor(&ann.id, "Phone", 200);
        s.insert_factor(&phone).await.unwrap();
        for step in 1..=5 {
            let accept = || s.accept_totp_step(&ann.id, &phone.id, step, 500);
            let (a, b, c, d) = tokio::join!(accept(), accept(), accept(), accept());
            let winners = [a, b, c, d]
                .into_iter()
                .filter(|r| *r.as_ref().unwrap())
                .count();
            assert_eq!(winners, 1, "step {step}");
        }
    }
);

contract!(
    touching_a_factor_records_its_use_and_its_updated_credential,
    |s: SqlStore| async move {
        let (ann, bob) = two_users(&s).await;
        let key = passkey(&ann.id, b"cred-t");
        s.insert_factor(&key).await.unwrap();
        assert!(!s.touch_factor(&bob.id, &key.id, None, 400).await.unwrap());
        assert!(s.touch_factor(&ann.id, &key.id, None, 400).await.unwrap());
        let stored = s.find_factor(&ann.id, &key.id).await.unwrap().unwrap();
        assert_eq!(stored.last_used_at, Some(400));
        assert_eq!(stored.credential, key.credential);
        assert!(
            s.touch_factor(&ann.id, &key.id, Some("{\"cred\":2}"), 450)
                .await
                .unwrap()
        );
        let stored = s.find_factor(&ann.id, &key.id).await.unwrap().unwrap();
        assert_eq!(stored.credential.as_deref(), Some("{\"cred\":2}"));
    }
);

contract!(
    a_pending_enrolment_becomes_a_factor_once_and_only_while_unexpired,
    |s: SqlStore| async move {
        let (ann, bob) = two_users(&s).await;
        let p = pending(&ann.id, 400);
        s.insert_pending_totp(&p).await.unwrap();
        assert_eq!(
            s.find_pending_totp(&ann.id, &p.id, 300).await.unwrap(),
            Some(p.clone())
        );
        assert_eq!(
            s.find_pending_totp(&bob.id, &p.id, 300).await.unwrap(),
            None
        );
        assert_eq!(
            s.find_pending_totp(&ann.id, &p.id, 400).await.unwrap(),
            None
        );
        // Not a factor before it is confirmed.
        assert_eq!(s.list_factors(&ann.id).await.unwrap(), vec![]);
        assert!(
            !s.confirm_pending_totp(&bob.id, &p.id, "Phone", 10, 300)
                .await
                .unwrap()
        );
        assert!(
            !s.confirm_pending_totp(&ann.id, &p.id, "Phone", 10, 400)
                .await
                .unwrap()
        );
        let confirm = || s.confirm_pending_totp(&ann.id, &p.id, "Phone", 10, 300);
        let (a, b) = tokio::join!(confirm(), confirm());
        assert_eq!(
            [a.unwrap(), b.unwrap()].into_iter().filter(|w| *w).count(),
            1
        );
        let factors = s.list_factors(&ann.id).await.unwrap();
        assert_eq!(factors.len(), 1);
        let f = &factors[0];
        assert_eq!(
            (f.id.as_str(), f.kind, f.name.as_str()),
            (p.id.as_str(), FactorKind::Totp, "Phone")
        );
        assert_eq!(f.secret_enc, Some(p.secret_enc.clone()));
        // The code that confirmed it cannot sign in.
        assert_eq!(f.last_step, Some(10));
        assert!(!s.accept_totp_step(&ann.id, &f.id, 10, 310).await.unwrap());
        assert_eq!(
            s.find_pending_totp(&ann.id, &p.id, 300).await.unwrap(),
            None
        );
    }
);

contract!(
    a_new_enrolment_replaces_the_users_earlier_one,
    |s: SqlStore| async move {
        let (ann, _) = two_users(&s).await;
        let first = pending(&ann.id, 400);
        let second = pending(&ann.id, 400);
        s.insert_pending_totp(&first).await.unwrap();
        s.insert_pending_totp(&second).await.unwrap();
        assert_eq!(
            s.find_pending_totp(&ann.id, &first.id, 300).await.unwrap(),
            None
        );
        assert!(
            s.find_pending_totp(&ann.id, &second.id, 300)
                .await
                .unwrap()
                .is_some()
        );
    }
);

contract!(
    recovery_codes_are_spent_once_and_regenerating_replaces_the_set,
    |s: SqlStore| async move {
        let (ann, bob) = two_users(&s).await;
        assert_eq!(s.count_recovery_codes(&ann.id).await.unwrap(), (0, 0));
        let old: Vec<Vec<u8>> = (0..3).map(|i| vec![i; 32]).collect();
        s.replace_recovery_codes(&ann.id, &old, 100).await.unwrap();
        assert_eq!(s.count_recovery_codes(&ann.id).await.unwrap(), (3, 3));
        assert!(
            !s.consume_recovery_code(&bob.id, &old[0], 200)
                .await
                .unwrap()
        );
        let spend = || s.consume_recovery_code(&ann.id, &old[0], 200);
        let (a, b) = tokio::join!(spend(), spend());
        assert_eq!(
            [a.unwrap(), b.unwrap()].into_iter().filter(|w| *w).count(),
            1
        );
        assert_eq!(s.count_recovery_codes(&ann.id).await.unwrap(), (2, 3));

        let new: Vec<Vec<u8>> = (10..14).map(|i| vec![i; 32]).collect();
        s.replace_recovery_codes(&ann.id, &new, 300).await.unwrap();
        assert!(
            !s.consume_recovery_code(&ann.id, &old[1], 400)
                .await
                .unwrap()
        );
        assert!(
            s.consume_recovery_code(&ann.id, &new[1], 400)
                .await
                .unwrap()
        );
        assert_eq!(s.count_recovery_codes(&ann.id).await.unwrap(), (3, 4));
    }
);

contract!(
    a_ceremony_is_taken_once_only_as_its_kind_and_never_after_it_expires,
    |s: SqlStore| async move {
        let (ann, _) = two_users(&s).await;
        let c = ceremony(Some(&ann.id), 400);
        s.put_ceremony(b"handle-1", &c).await.unwrap();
        assert!(matches!(
            s.put_ceremony(b"handle-1", &c).await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(
            s.take_ceremony(b"handle-1", "passkey_login", 300)
                .await
                .unwrap(),
            None
        );
        let take = || s.take_ceremony(b"handle-1", "passkey_registration", 300);
        let (a, b) = tokio::join!(take(), take());
        let taken: Vec<Ceremony> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
        assert_eq!(taken, vec![c.clone()]);

        let anonymous = ceremony(None, 400);
        s.put_ceremony(b"handle-2", &anonymous).await.unwrap();
        assert_eq!(
            s.take_ceremony(b"handle-2", "passkey_registration", 400)
                .await
                .unwrap(),
            None
        );
        // Refused once expired, and gone: the same handle finds nothing later either.
        assert_eq!(
            s.take_ceremony(b"handle-2", "passkey_registration", 300)
                .await
                .unwrap(),
            None
        );
    }
);

contract!(
    a_peek_reads_an_unexpired_ceremony_of_its_kind_and_leaves_it_to_be_taken,
    |s: SqlStore| async move {
        let (ann, _) = two_users(&s).await;
        let c = ceremony(Some(&ann.id), 400);
        s.put_ceremony(b"handle-1", &c).await.unwrap();
        assert_eq!(
            s.peek_ceremony(b"handle-1", "passkey_login", 300)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            s.peek_ceremony(b"handle-9", "passkey_registration", 300)
                .await
                .unwrap(),
            None
        );
        for _ in 0..2 {
            assert_eq!(
                s.peek_ceremony(b"handle-1", "passkey_registration", 399)
                    .await
                    .unwrap(),
                Some(c.clone())
            );
        }
        assert_eq!(
            s.peek_ceremony(b"handle-1", "passkey_registration", 400)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            s.take_ceremony(b"handle-1", "passkey_registration", 300)
                .await
                .unwrap(),
            Some(c)
        );
        assert_eq!(
            s.peek_ceremony(b"handle-1", "passkey_registration", 300)
                .await
                .unwrap(),
            None
        );
    }
);

contract!(
    resetting_mfa_removes_every_factor_code_enrolment_and_ceremony_of_the_user_only,
    |s: SqlStore| async move {
        let (ann, bob) = two_users(&s).await;
        for u in [&ann, &bob] {
            s.insert_factor(&totp_factor(&u.id, "Phone", 100))
                .await
                .unwrap();
            s.insert_factor(&passkey(&u.id, u.id.as_bytes()))
                .await
                .unwrap();
            s.insert_pending_totp(&pending(&u.id, 400)).await.unwrap();
            s.replace_recovery_codes(&u.id, &[u.id.as_bytes().to_vec()], 100)
                .await
                .unwrap();
            s.put_ceremony(u.id.as_bytes(), &ceremony(Some(&u.id), 400))
                .await
                .unwrap();
        }
        assert_eq!(s.delete_all_factors(&ann.id).await.unwrap(), 2);
        assert_eq!(s.list_factors(&ann.id).await.unwrap(), vec![]);
        assert_eq!(s.count_recovery_codes(&ann.id).await.unwrap(), (0, 0));
        assert_eq!(
            s.take_ceremony(ann.id.as_bytes(), "passkey_registration", 300)
                .await
                .unwrap(),
            None
        );
        assert_eq!(s.list_factors(&bob.id).await.unwrap().len(), 2);
        assert_eq!(s.count_recovery_codes(&bob.id).await.unwrap(), (1, 1));
        assert!(
            s.take_ceremony(bob.id.as_bytes(), "passkey_registration", 300)
                .await
                .unwrap()
                .is_some()
        );
    }
);

contract!(
    deleting_a_user_deletes_their_second_factors,
    |s: SqlStore| async move {
        let (ann, _) = two_users(&s).await;
        s.insert_factor(&totp_factor(&ann.id, "Phone", 100))
            .await
            .unwrap();
        s.replace_recovery_codes(&ann.id, &[vec![1; 32]], 100)
            .await
            .unwrap();
        s.insert_pending_totp(&pending(&ann.id, 400)).await.unwrap();
        s.put_ceremony(b"h", &ceremony(Some(&ann.id), 400))
            .await
            .unwrap();
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(&ann.id)
            .execute(&s.pool)
            .await
            .unwrap();
        for table in [
            "mfa_factors",
            "recovery_codes",
            "mfa_pending",
            "mfa_ceremonies",
        ] {
            let left: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM {table} WHERE user_id = $1"
            )))
            .bind(&ann.id)
            .fetch_one(&s.pool)
            .await
            .unwrap();
            assert_eq!(left, 0, "{table}");
        }
    }
);

contract!(
    purging_removes_expired_ceremonies_and_enrolments,
    |s: SqlStore| async move {
        let (ann, bob) = two_users(&s).await;
        s.put_ceremony(b"old", &ceremony(None, 50)).await.unwrap();
        s.put_ceremony(b"live", &ceremony(None, 500)).await.unwrap();
        let old = pending(&ann.id, 50);
        let live = pending(&bob.id, 500);
        s.insert_pending_totp(&old).await.unwrap();
        s.insert_pending_totp(&live).await.unwrap();
        while s.purge_expired(100, 10).await.unwrap() > 0 {}
        let ceremonies: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mfa_ceremonies")
            .fetch_one(&s.pool)
            .await
            .unwrap();
        assert_eq!(ceremonies, 1);
        assert!(
            s.find_pending_totp(&bob.id, &live.id, 100)
                .await
                .unwrap()
                .is_some()
        );
        let pending_left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM mfa_pending")
            .fetch_one(&s.pool)
            .await
            .unwrap();
        assert_eq!(pending_left, 1);
    }
);

contract!(
    deleting_a_users_ceremonies_of_one_kind_leaves_other_kinds_and_other_users,
    |s: SqlStore| async move {
        let (ann, bob) = two_users(&s).await;
        let step = |u: &User| Ceremony {
            kind: "second_step".into(),
            ..ceremony(Some(&u.id), 400)
        };
        s.put_ceremony(b"ann-step", &step(&ann)).await.unwrap();
        s.put_ceremony(b"ann-reg", &ceremony(Some(&ann.id), 400))
            .await
            .unwrap();
        s.put_ceremony(b"bob-step", &step(&bob)).await.unwrap();
        assert_eq!(
            s.delete_user_ceremonies(&ann.id, "second_step")
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            s.take_ceremony(b"ann-step", "second_step", 300)
                .await
                .unwrap(),
            None
        );
        for (handle, kind) in [
            (&b"ann-reg"[..], "passkey_registration"),
            (&b"bob-step"[..], "second_step"),
        ] {
            assert!(
                s.take_ceremony(handle, kind, 300).await.unwrap().is_some(),
                "{kind}"
            );
        }
    }
);
