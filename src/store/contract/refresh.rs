//! Refresh tokens: rotations with one winner, in batches or alone, and grants read whole.
use super::*;

contract!(
    concurrent_rotations_of_one_refresh_token_have_exactly_one_winner,
    |s: SqlStore| async move {
        let old = refresh("fam", None);
        s.insert_refresh(&old).await.unwrap();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let s = s.clone();
            let old_hash = old.token_hash.clone();
            tasks.push(tokio::spawn(async move {
                let next = refresh("fam", None);
                s.rotate_refresh(&old_hash, &next, b"sealed", 200)
                    .await
                    .unwrap()
            }));
        }
        let mut winners = 0;
        for t in tasks {
            winners += usize::from(t.await.unwrap());
        }
        assert_eq!(winners, 1);
        let stored = s.find_refresh(&old.token_hash).await.unwrap().unwrap();
        assert_eq!(stored.rotated_at, Some(200));
        let successor = s
            .find_refresh(stored.successor_hash.as_ref().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(successor.family_id, "fam");
        assert_eq!(stored.successor_enc.as_deref(), Some(&b"sealed"[..]));
    }
);

contract!(
    a_refresh_grant_is_read_with_its_user_and_session_state,
    |s: SqlStore| async move {
        let u = user("grant@example.com");
        s.insert_user(&u).await.unwrap();
        let sess = session(&u.id);
        s.insert_session(&sess).await.unwrap();
        let mut with_session = refresh("fg1", Some(&sess.id));
        with_session.user_id = Some(u.id.clone());
        let mut without_session = refresh("fg2", None);
        without_session.user_id = Some(u.id.clone());
        let mut orphan = refresh("fg3", Some("no-such-session"));
        orphan.user_id = Some("no-such-user".into());
        for t in [&with_session, &without_session, &orphan] {
            s.insert_refresh(t).await.unwrap();
        }

        let g = s
            .find_refresh_grant(&with_session.token_hash)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(g.token, with_session);
        assert_eq!(g.user.as_ref(), Some(&u));
        assert_eq!(g.session_active, Some(true));

        let g = s
            .find_refresh_grant(&without_session.token_hash)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(g.user.as_ref(), Some(&u));
        assert_eq!(g.session_active, None);

        let g = s
            .find_refresh_grant(&orphan.token_hash)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(g.user, None);
        assert_eq!(g.session_active, Some(false));

        s.revoke_session(&sess.id, 300).await.unwrap();
        s.set_user_disabled(&u.id, true, 300).await.unwrap();
        let g = s
            .find_refresh_grant(&with_session.token_hash)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(g.session_active, Some(false));
        assert!(g.user.unwrap().disabled);
        assert_eq!(s.find_refresh_grant(&[7; 32]).await.unwrap(), None);
    }
);

contract!(
    concurrent_rotations_of_many_tokens_all_commit_and_a_revoked_one_loses,
    |s: SqlStore| async move {
        let mut tasks = Vec::new();
        for i in 0..60 {
            let mut old = refresh(&format!("many{i}"), None);
            if i == 0 {
                old.revoked_at = Some(150);
            }
            s.insert_refresh(&old).await.unwrap();
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let next = refresh(&old.family_id, None);
                let won = s
                    .rotate_refresh(&old.token_hash, &next, b"sealed", 200)
                    .await
                    .unwrap();
                (old, next, won)
            }));
        }
        for t in tasks {
            let (old, next, won) = t.await.unwrap();
            let stored_next = s.find_refresh(&next.token_hash).await.unwrap();
            let stored_old = s.find_refresh(&old.token_hash).await.unwrap().unwrap();
            if old.revoked_at.is_some() {
                assert!(!won);
                assert_eq!(stored_next, None);
                assert_eq!(stored_old.rotated_at, None);
            } else {
                assert!(won, "{}", old.family_id);
                assert_eq!(stored_next, Some(next.clone()));
                assert_eq!(stored_old.rotated_at, Some(200));
                assert_eq!(stored_old.successor_hash, Some(next.token_hash));
            }
        }
    }
);

contract!(
    a_rotation_that_fails_changes_nothing,
    |s: SqlStore| async move {
        let existing = refresh("fx", None);
        let old = refresh("fy", None);
        s.insert_refresh(&existing).await.unwrap();
        s.insert_refresh(&old).await.unwrap();
        // A successor whose hash is already stored violates the primary key.
        let mut clash = refresh("fy", None);
        clash.token_hash = existing.token_hash.clone();
        assert!(
            s.rotate_refresh(&old.token_hash, &clash, b"sealed", 200)
                .await
                .is_err()
        );
        assert_eq!(
            s.find_refresh(&old.token_hash).await.unwrap(),
            Some(old.clone())
        );
        assert_eq!(
            s.find_refresh(&existing.token_hash).await.unwrap(),
            Some(existing)
        );
        // The store still works, and the token can still rotate.
        let next = refresh("fy", None);
        assert!(
            s.rotate_refresh(&old.token_hash, &next, b"sealed", 201)
                .await
                .unwrap()
        );
    }
);

contract!(
    a_one_statement_rotation_happens_only_for_a_current_live_grant,
    |s: SqlStore| async move {
        let u = user("fast@example.com");
        s.insert_user(&u).await.unwrap();
        let sess = session(&u.id);
        s.insert_session(&sess).await.unwrap();
        let token = |family: &str| {
            let mut t = refresh(family, Some(&sess.id));
            t.user_id = Some(u.id.clone());
            t
        };
        let rotation = |old: &'static [u8], now: Timestamp| CurrentRotation {
            old_hash: old,
            client_id: "app",
            successor_hash: b"successor-hash",
            successor_enc: b"sealed",
            now,
            idle_ttl: 100,
        };
        let leak = |t: &RefreshToken| -> &'static [u8] {
            Box::leak(t.token_hash.clone().into_boxed_slice())
        };

        // Refused (None, nothing written): wrong client, rotated, revoked, expired, idle.
        let mut refused = Vec::new();
        let mut rotated = token("r1");
        rotated.rotated_at = Some(150);
        let mut revoked = token("r2");
        revoked.revoked_at = Some(150);
        let mut idle = token("r3");
        idle.idle_expires_at = 200;
        for t in [rotated, revoked, idle] {
            s.insert_refresh(&t).await.unwrap();
            refused.push((t, "app"));
        }
        let other = token("r4");
        s.insert_refresh(&other).await.unwrap();
        refused.push((other, "someone-else"));
        for (t, client) in &refused {
            let mut r = rotation(leak(t), 200);
            r.client_id = client;
            assert_eq!(
                s.rotate_if_current(&r).await.unwrap(),
                None,
                "{}",
                t.family_id
            );
            assert_eq!(
                s.find_refresh(&t.token_hash).await.unwrap().as_ref(),
                Some(t)
            );
        }
        assert_eq!(s.find_refresh(b"successor-hash").await.unwrap(), None);

        // A current token: rotated with the same grant.
        let current = token("live");
        s.insert_refresh(&current).await.unwrap();
        match s
            .rotate_if_current(&rotation(leak(&current), 200))
            .await
            .unwrap()
        {
            None => panic!("a current, live token rotates"),
            Some(grant) => {
                assert_eq!(grant.user.as_ref(), Some(&u));
                assert_eq!(grant.token.family_id, "live");
                assert_eq!(grant.token.rotated_at, Some(200));
                let next = s.find_refresh(b"successor-hash").await.unwrap().unwrap();
                assert_eq!(next.family_id, "live");
                assert_eq!(next.session_id.as_deref(), Some(sess.id.as_str()));
                assert_eq!(next.user_id, current.user_id);
                assert_eq!(
                    (next.scope.as_str(), next.audience.as_str()),
                    ("openid", "api")
                );
                assert_eq!(next.amr, current.amr);
                assert_eq!(next.auth_time, current.auth_time);
                assert_eq!(next.created_at, 200);
                assert_eq!(next.idle_expires_at, 300);
                assert_eq!(next.expires_at, current.expires_at);
                assert_eq!(next.rotated_at, None);
                // Once rotated it is no longer current.
                let again = CurrentRotation {
                    successor_hash: b"another",
                    ..rotation(leak(&current), 201)
                };
                assert_eq!(s.rotate_if_current(&again).await.unwrap(), None);
            }
        }

        // A disabled user or an ended session refuses too.
        let a = token("d1");
        s.insert_refresh(&a).await.unwrap();
        s.set_user_disabled(&u.id, true, 210).await.unwrap();
        let r = CurrentRotation {
            successor_hash: b"s-d1",
            ..rotation(leak(&a), 210)
        };
        assert_eq!(s.rotate_if_current(&r).await.unwrap(), None);
        s.set_user_disabled(&u.id, false, 211).await.unwrap();
        s.revoke_session(&sess.id, 212).await.unwrap();
        let b = token("d2");
        s.insert_refresh(&b).await.unwrap();
        let r = CurrentRotation {
            successor_hash: b"s-d2",
            ..rotation(leak(&b), 212)
        };
        assert_eq!(s.rotate_if_current(&r).await.unwrap(), None);
        assert_eq!(s.find_refresh(b"s-d1").await.unwrap(), None);
        assert_eq!(s.find_refresh(b"s-d2").await.unwrap(), None);
    }
);

contract!(
    concurrent_one_statement_rotations_have_one_winner_per_token,
    |s: SqlStore| async move {
        let (u, _, tokens) = live_tokens(&s, "race", 30).await;
        let mut orphan = refresh("race-orphan", Some("no-such-session"));
        orphan.user_id = Some(u.id.clone());
        s.insert_refresh(&orphan).await.unwrap();
        // Three racing rotations of every token, all queued at once (so they share batches).
        let mut tasks = Vec::new();
        for (i, t) in tokens.iter().chain([&orphan]).enumerate() {
            for k in 0..3 {
                let successor = format!("succ-{i}-{k}").into_bytes();
                let task = spawn_rotation(&s, t, successor.clone());
                tasks.push((t.family_id.clone(), successor, task));
            }
        }
        let mut winners = std::collections::HashMap::new();
        for (family, successor, task) in tasks {
            if let Some(grant) = task.await.unwrap().unwrap() {
                assert_eq!(grant.token.family_id, family);
                assert_eq!(grant.token.successor_hash.as_ref(), Some(&successor));
                assert_eq!(grant.user.as_ref(), Some(&u));
                let earlier = winners.insert(family.clone(), successor);
                assert!(earlier.is_none(), "two winners for {family}");
            }
        }
        assert_eq!(winners.len(), tokens.len(), "every live token rotates once");
        for t in &tokens {
            let stored = s.find_refresh(&t.token_hash).await.unwrap().unwrap();
            let successor = winners.get(&t.family_id).unwrap();
            assert_eq!(stored.successor_hash.as_ref(), Some(successor));
            let next = s.find_refresh(successor).await.unwrap().unwrap();
            assert_eq!(
                (next.family_id.as_str(), next.rotated_at),
                (t.family_id.as_str(), None)
            );
        }
        let untouched = s.find_refresh(&orphan.token_hash).await.unwrap();
        assert_eq!(untouched.as_ref(), Some(&orphan));
    }
);

contract!(
    a_failing_one_statement_rotation_fails_alone,
    |s: SqlStore| async move {
        let (_, _, tokens) = live_tokens(&s, "lone", 11).await;
        let (bad, good) = tokens.split_first().unwrap();
        // The bad rotation's successor collides with an existing token: its statement fails.
        let collide = spawn_rotation(&s, bad, good[0].token_hash.clone());
        let fine: Vec<_> = good
            .iter()
            .map(|t| spawn_rotation(&s, t, format!("next-{}", t.family_id).into_bytes()))
            .collect();
        let collided = collide.await.unwrap();
        let results: Vec<_> = futures_util::future::join_all(fine).await;
        assert!(
            collided.is_err(),
            "the colliding rotation reports its failure"
        );
        for (t, r) in good.iter().zip(results) {
            let grant = r.unwrap().unwrap().expect("the others rotate");
            assert_eq!(grant.token.family_id, t.family_id);
        }
        // Nothing of the failed rotation was written.
        let stored = s.find_refresh(&bad.token_hash).await.unwrap();
        assert_eq!(stored.as_ref(), Some(bad));
    }
);

/// On PostgreSQL each refresh-token page keeps room (migration 5), so a rotation's mark of the
/// old token is an in-place (HOT) update: the row stays on its page and no index gains an entry.
/// On full pages the new row version moved to another page and every index grew.
///
/// PostgreSQL only, so ignored by default: a run without PostgreSQL must not report a check it
/// never made. The PostgreSQL step of `.ci/run` runs every `…_on_postgresql` test with
/// `--include-ignored`, and without `TESSERA_TEST_BACKEND=postgres` this one fails.
#[tokio::test]
#[ignore = "PostgreSQL only: TESSERA_TEST_BACKEND=postgres cargo test --lib on_postgresql -- --include-ignored"]
async fn a_rotation_marks_the_old_token_on_its_own_page_on_postgresql() {
    let s = postgres()
        .await
        .expect("this check runs on PostgreSQL only: set TESSERA_TEST_BACKEND=postgres");
    let (_, _, tokens) = live_tokens(&s, "page", 300).await;
    let page = |hash: Vec<u8>| {
        let pool = s.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT (ctid::text::point)[0]::bigint FROM refresh_tokens WHERE token_hash = $1",
            )
            .bind(hash)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    for (i, t) in tokens.iter().enumerate().step_by(10) {
        let before = page(t.token_hash.clone()).await;
        let successor = format!("page-succ-{i}").into_bytes();
        let grant = spawn_rotation(&s, t, successor).await.unwrap().unwrap();
        assert!(grant.is_some(), "token {i} rotates");
        assert_eq!(
            page(t.token_hash.clone()).await,
            before,
            "token {i} was rewritten to another page"
        );
    }
}
