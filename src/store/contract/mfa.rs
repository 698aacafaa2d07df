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

/// Ann with an authenticator app whose last accepted step is 10, and a pending second step
/// (created at 100, gone at 400) under `handle`.
async fn pending_second_step(s: &SqlStore, handle: &[u8]) -> (User, MfaFactor) {
    let (ann, _) = two_users(s).await;
    let mut app = totp_factor(&ann.id, "Phone", 100);
    app.last_step = Some(10);
    s.insert_factor(&app).await.unwrap();
    put_second_step(s, &ann.id, handle, 100).await;
    (ann, app)
}

async fn put_second_step(s: &SqlStore, user_id: &str, handle: &[u8], created_at: Timestamp) {
    let mut c = ceremony(Some(user_id), 400);
    c.kind = "second_step".into();
    c.created_at = created_at;
    s.put_ceremony(handle, &c).await.unwrap();
}

fn completion(
    user_id: &str,
    handle: &[u8],
    proof: StepProof,
    end: &[&str],
    now: Timestamp,
) -> SecondStepCompletion {
    SecondStepCompletion {
        user_id: user_id.into(),
        take: StepTake::Stored {
            ceremony_hash: handle.to_vec(),
        },
        proof,
        session: StepSession::Open {
            session: session(user_id),
            end: end.iter().map(|s| s.to_string()).collect(),
        },
        audit: crate::audit::AuditEvent::new("signin.success").subject(user_id),
        now,
    }
}

fn step(factor: &MfaFactor, step: i64) -> StepProof {
    StepProof::TotpStep {
        factor_id: factor.id.clone(),
        step,
    }
}

fn audit_key() -> std::sync::Arc<crate::crypto::Crypto> {
    std::sync::Arc::new(crate::crypto::Crypto::new(
        &crate::crypto::MasterKey::generate(),
    ))
}

/// The audit chain verifies from its first entry to its (authenticated) head; returns the head.
async fn verified_head(s: &SqlStore, crypto: &crate::crypto::Crypto) -> i64 {
    let (head, hash, mac) = s.audit_head().await.unwrap();
    let mut v = crate::audit::ChainVerifier::new(crypto);
    for r in s.audit_after(0, 1000).await.unwrap() {
        v.next(&r).unwrap();
    }
    assert_eq!(v.finish(head, &hash, mac.as_deref()).unwrap(), head);
    head
}

contract!(
    a_second_step_takes_the_step_spends_the_code_opens_the_session_and_audits_at_once,
    |s: SqlStore| async move {
        let crypto = audit_key();
        s.seal_audit_head(&crypto).await.unwrap();
        let (ann, app) = pending_second_step(&s, b"step-1").await;
        let previous = session(&ann.id);
        s.insert_session(&previous).await.unwrap();
        s.append_audit(
            &crypto,
            250,
            &crate::audit::AuditEvent::new("signin.failure"),
        )
        .await
        .unwrap();

        let c = completion(&ann.id, b"step-1", step(&app, 11), &[&previous.id], 300);
        let done = s.complete_second_step(&crypto, &c).await.unwrap();
        assert_eq!(done, StepOutcome::Done);

        let StepSession::Open { session: new, .. } = &c.session else {
            unreachable!()
        };
        assert_eq!(s.find_session(&new.id).await.unwrap().as_ref(), Some(new));
        let previous = s.find_session(&previous.id).await.unwrap().unwrap();
        assert_eq!(previous.revoked_at, Some(300));
        let app = s.find_factor(&ann.id, &app.id).await.unwrap().unwrap();
        assert_eq!((app.last_step, app.last_used_at), (Some(11), Some(300)));
        assert_eq!(
            s.peek_ceremony(b"step-1", "second_step", 300)
                .await
                .unwrap(),
            None
        );
        // One entry, after the one before, and the chain and its head MAC still verify.
        assert_eq!(verified_head(&s, &crypto).await, 2);
        let last = s.audit_tail(1).await.unwrap().remove(0);
        assert_eq!(
            (last.action.as_str(), last.subject.as_deref(), last.at),
            ("signin.success", Some(ann.id.as_str()), 300)
        );
        // An append after it (this process's known head, or the locked path) extends it.
        s.append_audit(&crypto, 301, &crate::audit::AuditEvent::new("signout"))
            .await
            .unwrap();
        assert_eq!(verified_head(&s, &crypto).await, 3);

        // The same step again: gone, and nothing more is written.
        let again = completion(&ann.id, b"step-1", step(&app, 12), &[], 301);
        assert_eq!(
            s.complete_second_step(&crypto, &again).await.unwrap(),
            StepOutcome::Gone
        );
        let app = s.find_factor(&ann.id, &app.id).await.unwrap().unwrap();
        assert_eq!(app.last_step, Some(11));
        assert_eq!(verified_head(&s, &crypto).await, 3);
    }
);

contract!(
    a_refused_code_or_a_gone_step_writes_nothing_and_a_refused_code_leaves_the_step,
    |s: SqlStore| async move {
        let crypto = audit_key();
        s.seal_audit_head(&crypto).await.unwrap();
        let (ann, app) = pending_second_step(&s, b"step-2").await;
        let previous = session(&ann.id);
        s.insert_session(&previous).await.unwrap();
        let stored = s
            .peek_ceremony(b"step-2", "second_step", 300)
            .await
            .unwrap();
        assert!(stored.is_some());
        let nothing_written = |c: SecondStepCompletion| {
            let s = &s;
            let previous = previous.clone();
            async move {
                let StepSession::Open { session: new, .. } = &c.session else {
                    unreachable!()
                };
                assert_eq!(s.find_session(&new.id).await.unwrap(), None);
                assert_eq!(s.find_session(&previous.id).await.unwrap(), Some(previous));
                assert_eq!(s.audit_head().await.unwrap().0, 0);
            }
        };
        // A step not later than the last accepted one, an unknown recovery code: refused,
        // and the pending step is still there, unchanged.
        for proof in [
            step(&app, 10),
            step(&app, 9),
            StepProof::RecoveryCode {
                hash: b"no such code".to_vec(),
            },
        ] {
            let c = completion(&ann.id, b"step-2", proof, &[&previous.id], 300);
            assert_eq!(
                s.complete_second_step(&crypto, &c).await.unwrap(),
                StepOutcome::Refused
            );
            nothing_written(c).await;
            assert_eq!(
                s.peek_ceremony(b"step-2", "second_step", 300)
                    .await
                    .unwrap(),
                stored
            );
        }
        // Another user's, another kind's, an expired or an unknown step: gone, the code unspent.
        let (bob, _) = two_users(&s).await;
        let mut other_kind = ceremony(Some(&ann.id), 400);
        other_kind.kind = "webauthn_second_step".into();
        s.put_ceremony(b"other-kind", &other_kind).await.unwrap();
        for (user_id, handle, now) in [
            (bob.id.as_str(), b"step-2".as_slice(), 300),
            (ann.id.as_str(), b"other-kind".as_slice(), 300),
            (ann.id.as_str(), b"step-2".as_slice(), 400),
            (ann.id.as_str(), b"no-such-step".as_slice(), 300),
        ] {
            let c = completion(user_id, handle, step(&app, 11), &[&previous.id], now);
            assert_eq!(
                s.complete_second_step(&crypto, &c).await.unwrap(),
                StepOutcome::Gone
            );
            nothing_written(c).await;
        }
        // A step-up of a session that has ended meanwhile: gone, the step and the code kept.
        s.revoke_session(&previous.id, 250).await.unwrap();
        let mut raise = completion(&ann.id, b"step-2", step(&app, 11), &[], 300);
        raise.session = StepSession::Raise {
            id: previous.id.clone(),
            token_hash: b"new cookie".to_vec(),
            amr: vec!["pwd".into(), "otp".into(), "mfa".into()],
        };
        assert_eq!(
            s.complete_second_step(&crypto, &raise).await.unwrap(),
            StepOutcome::Gone
        );
        let app_now = s.find_factor(&ann.id, &app.id).await.unwrap().unwrap();
        assert_eq!(app_now.last_step, Some(10));
        assert!(
            s.peek_ceremony(b"step-2", "second_step", 300)
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(s.audit_head().await.unwrap().0, 0);
    }
);

/// [`completion`] of a sealed step: marked spent under `id_hash`, begun under `epoch`, gone at
/// `expires_at`.
fn sealed_completion(
    user_id: &str,
    id_hash: &[u8],
    epoch: i64,
    expires_at: Timestamp,
    proof: StepProof,
    now: Timestamp,
) -> SecondStepCompletion {
    SecondStepCompletion {
        take: StepTake::Sealed {
            id_hash: id_hash.to_vec(),
            epoch,
            expires_at,
        },
        ..completion(user_id, b"", proof, &[], now)
    }
}

contract!(
    a_sealed_second_step_completes_once_before_it_expires_and_only_under_its_epoch,
    |s: SqlStore| async move {
        let crypto = audit_key();
        s.seal_audit_head(&crypto).await.unwrap();
        let (ann, bob) = two_users(&s).await;
        let mut app = totp_factor(&ann.id, "Phone", 100);
        app.last_step = Some(10);
        s.insert_factor(&app).await.unwrap();
        assert_eq!(s.sessions_epoch(&ann.id).await.unwrap(), Some(0));
        assert_eq!(s.sessions_epoch("nobody").await.unwrap(), None);
        let app_step = |s: &SqlStore| {
            let (s, ann, app) = (s.clone(), ann.id.clone(), app.id.clone());
            async move {
                let f = s.find_factor(&ann, &app).await.unwrap().unwrap();
                f.last_step
            }
        };

        // A refused code leaves no mark: the step is still live, the code unspent.
        let c = sealed_completion(&ann.id, b"sealed-1", 0, 400, step(&app, 10), 300);
        assert_eq!(
            s.complete_second_step(&crypto, &c).await.unwrap(),
            StepOutcome::Refused
        );
        assert!(s.sealed_step_live(&ann.id, b"sealed-1", 0).await.unwrap());
        // The right one completes it, once.
        let c = sealed_completion(&ann.id, b"sealed-1", 0, 400, step(&app, 11), 300);
        assert_eq!(
            s.complete_second_step(&crypto, &c).await.unwrap(),
            StepOutcome::Done
        );
        assert!(!s.sealed_step_live(&ann.id, b"sealed-1", 0).await.unwrap());
        let again = sealed_completion(&ann.id, b"sealed-1", 0, 400, step(&app, 12), 301);
        assert_eq!(
            s.complete_second_step(&crypto, &again).await.unwrap(),
            StepOutcome::Gone
        );
        assert_eq!(app_step(&s).await, Some(11), "the replay spent nothing");

        // Expired (at `expires_at` itself), or another user's session epoch: gone.
        let expired = sealed_completion(&ann.id, b"sealed-2", 0, 301, step(&app, 12), 301);
        let bobs = sealed_completion(&bob.id, b"sealed-3", 1, 400, step(&app, 12), 301);
        for c in [expired, bobs] {
            assert_eq!(
                s.complete_second_step(&crypto, &c).await.unwrap(),
                StepOutcome::Gone
            );
        }
        assert_eq!(app_step(&s).await, Some(11));

        // Ending all of Ann's sessions ends a step begun before: her epoch moved on.
        s.revoke_user_sessions(&ann.id, None, 310).await.unwrap();
        assert_eq!(s.sessions_epoch(&ann.id).await.unwrap(), Some(1));
        assert!(!s.sealed_step_live(&ann.id, b"sealed-4", 0).await.unwrap());
        let before = sealed_completion(&ann.id, b"sealed-4", 0, 700, step(&app, 12), 320);
        assert_eq!(
            s.complete_second_step(&crypto, &before).await.unwrap(),
            StepOutcome::Gone
        );
        // One begun after it (in the same second or not) completes.
        assert!(s.sealed_step_live(&ann.id, b"sealed-5", 1).await.unwrap());
        let after = sealed_completion(&ann.id, b"sealed-5", 1, 700, step(&app, 12), 320);
        assert_eq!(
            s.complete_second_step(&crypto, &after).await.unwrap(),
            StepOutcome::Done
        );
        assert_eq!(verified_head(&s, &crypto).await, 2);

        // A disabled user's step is neither live nor completed.
        s.set_user_disabled(&ann.id, true, 330).await.unwrap();
        assert!(!s.sealed_step_live(&ann.id, b"sealed-6", 1).await.unwrap());
        let c = sealed_completion(&ann.id, b"sealed-6", 1, 700, step(&app, 13), 331);
        assert_eq!(
            s.complete_second_step(&crypto, &c).await.unwrap(),
            StepOutcome::Gone
        );

        // The marks outlive their steps (a purge by a replica whose clock runs ahead must not
        // free a step that a replica behind it still takes as live), and go with the purge
        // `SPENT_MARK_KEPT` later.
        let marks = || {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM mfa_ceremonies WHERE kind = 'second_step_spent'",
            )
            .fetch_one(&s.pool)
        };
        assert_eq!(marks().await.unwrap(), 2);
        while s.purge_expired(701, 10).await.unwrap() > 0 {}
        assert_eq!(marks().await.unwrap(), 2);
        s.set_user_disabled(&ann.id, false, 698).await.unwrap();
        let replay = sealed_completion(&ann.id, b"sealed-5", 1, 700, step(&app, 13), 699);
        assert_eq!(
            s.complete_second_step(&crypto, &replay).await.unwrap(),
            StepOutcome::Gone
        );
        // Sealed-1's step ended at 400, sealed-5's at 700.
        while s.purge_expired(700 + SPENT_MARK_KEPT, 10).await.unwrap() > 0 {}
        assert_eq!(marks().await.unwrap(), 1);
        while s.purge_expired(701 + SPENT_MARK_KEPT, 10).await.unwrap() > 0 {}
        assert_eq!(marks().await.unwrap(), 0);
    }
);

contract!(
    of_concurrent_completions_of_one_second_step_exactly_one_wins,
    |s: SqlStore| async move {
        let crypto = audit_key();
        s.seal_audit_head(&crypto).await.unwrap();
        for round in 0..8 {
            let handle = format!("step-race-{round}").into_bytes();
            let (ann, app) = pending_second_step(&s, &handle).await;
            let (a, b) = if round % 2 == 0 {
                (
                    completion(&ann.id, &handle, step(&app, 11), &[], 300),
                    completion(&ann.id, &handle, step(&app, 12), &[], 300),
                )
            } else {
                let id_hash = [&handle[..], b"-sealed"].concat();
                (
                    sealed_completion(&ann.id, &id_hash, 0, 400, step(&app, 11), 300),
                    sealed_completion(&ann.id, &id_hash, 0, 400, step(&app, 12), 300),
                )
            };
            let (ra, rb) = tokio::join!(
                s.complete_second_step(&crypto, &a),
                s.complete_second_step(&crypto, &b)
            );
            let mut outcomes = [ra.unwrap(), rb.unwrap()];
            outcomes.sort_by_key(|o| *o != StepOutcome::Done);
            assert_eq!(outcomes, [StepOutcome::Done, StepOutcome::Gone]);
            let sessions = s.list_user_sessions(&ann.id, 300).await.unwrap();
            assert_eq!(sessions.len(), 1, "one session opened");
        }
        assert_eq!(verified_head(&s, &crypto).await, 8);
    }
);

contract!(
    a_pending_step_created_before_all_sessions_ended_is_neither_completed_nor_stored,
    |s: SqlStore| async move {
        let crypto = audit_key();
        let (ann, app) = pending_second_step(&s, b"held").await;
        // The step is held (taken) while all sessions end, then put back.
        let held = s
            .take_ceremony(b"held", "second_step", 150)
            .await
            .unwrap()
            .unwrap();
        s.revoke_user_sessions(&ann.id, None, 200).await.unwrap();
        s.put_ceremony(b"held", &held).await.unwrap();
        assert_eq!(
            s.peek_ceremony(b"held", "second_step", 250).await.unwrap(),
            None
        );
        // One begun a second before the sessions ended is not stored; one begun in that second
        // (a sign-in after the change: one begun before it was deleted with the sessions) is.
        let mut raw = ceremony(Some(&ann.id), 400);
        raw.kind = "second_step".into();
        raw.created_at = 199;
        s.put_ceremony(b"before-the-mark", &raw).await.unwrap();
        assert_eq!(
            s.peek_ceremony(b"before-the-mark", "second_step", 250)
                .await
                .unwrap(),
            None,
            "created before the second the sessions ended: not stored"
        );
        put_second_step(&s, &ann.id, b"after", 200).await;
        assert!(
            s.peek_ceremony(b"after", "second_step", 250)
                .await
                .unwrap()
                .is_some()
        );
        // Other kinds are not pending steps: stored whenever they were begun.
        let mut registration = ceremony(Some(&ann.id), 400);
        registration.created_at = 200;
        s.put_ceremony(b"registration", &registration)
            .await
            .unwrap();
        assert!(
            s.take_ceremony(b"registration", "passkey_registration", 250)
                .await
                .unwrap()
                .is_some()
        );
        let c = completion(&ann.id, b"after", step(&app, 11), &[], 250);
        assert_eq!(
            s.complete_second_step(&crypto, &c).await.unwrap(),
            StepOutcome::Done
        );
    }
);

contract!(
    a_second_step_begun_before_the_mark_is_gone_even_if_its_row_survived,
    |s: SqlStore| async move {
        let crypto = audit_key();
        let (ann, app) = pending_second_step(&s, b"survivor").await;
        // The row outlives the mark (as a put-back racing the ending could leave it):
        // `revoke_user_sessions` of the store writes the mark, the engine deletes the rows.
        s.revoke_user_sessions(&ann.id, None, 200).await.unwrap();
        assert!(
            s.peek_ceremony(b"survivor", "second_step", 250)
                .await
                .unwrap()
                .is_some()
        );
        let c = completion(&ann.id, b"survivor", step(&app, 11), &[], 250);
        assert_eq!(
            s.complete_second_step(&crypto, &c).await.unwrap(),
            StepOutcome::Gone
        );
        let app = s.find_factor(&ann.id, &app.id).await.unwrap().unwrap();
        assert_eq!(app.last_step, Some(10));
        // A disabled user completes nothing either.
        put_second_step(&s, &ann.id, b"later", 201).await;
        s.set_user_disabled(&ann.id, true, 240).await.unwrap();
        let c = completion(&ann.id, b"later", step(&app, 11), &[], 250);
        assert_eq!(
            s.complete_second_step(&crypto, &c).await.unwrap(),
            StepOutcome::Gone
        );
    }
);
