//! Sessions: revoked with their tokens, activity recorded, cookies replaced, listed.
use super::*;

contract!(
    revoking_a_family_or_a_session_revokes_its_refresh_tokens,
    |s: SqlStore| async move {
        let u = user("bob@example.com");
        s.insert_user(&u).await.unwrap();
        let sess = session(&u.id);
        s.insert_session(&sess).await.unwrap();
        let a = refresh("fa", Some(&sess.id));
        let b = refresh("fb", None);
        s.insert_refresh(&a).await.unwrap();
        s.insert_refresh(&b).await.unwrap();
        s.revoke_family("fb", 300).await.unwrap();
        assert_eq!(
            s.find_refresh(&b.token_hash)
                .await
                .unwrap()
                .unwrap()
                .revoked_at,
            Some(300)
        );
        assert_eq!(
            s.find_refresh(&a.token_hash)
                .await
                .unwrap()
                .unwrap()
                .revoked_at,
            None
        );
        s.revoke_session(&sess.id, 301).await.unwrap();
        assert_eq!(
            s.find_refresh(&a.token_hash)
                .await
                .unwrap()
                .unwrap()
                .revoked_at,
            Some(301)
        );
        assert_eq!(
            s.find_session(&sess.id).await.unwrap().unwrap().revoked_at,
            Some(301)
        );
        // Idempotent: the first revocation time stays.
        s.revoke_session(&sess.id, 400).await.unwrap();
        assert_eq!(
            s.find_session(&sess.id).await.unwrap().unwrap().revoked_at,
            Some(301)
        );
        assert_eq!(
            s.find_session_by_token(&sess.token_hash)
                .await
                .unwrap()
                .unwrap()
                .id,
            sess.id
        );
    }
);

contract!(
    sessions_record_activity_only_forwards,
    |s: SqlStore| async move {
        let u = user("cy@example.com");
        s.insert_user(&u).await.unwrap();
        let sess = session(&u.id);
        s.insert_session(&sess).await.unwrap();
        s.touch_session(&sess.id, 150).await.unwrap();
        s.touch_session(&sess.id, 120).await.unwrap();
        assert_eq!(
            s.find_session(&sess.id)
                .await
                .unwrap()
                .unwrap()
                .last_seen_at,
            150
        );
    }
);

contract!(
    a_session_given_a_new_cookie_is_no_longer_found_by_the_old_one,
    |s: SqlStore| async move {
        let u = user("cy2@example.com");
        s.insert_user(&u).await.unwrap();
        let sess = session(&u.id);
        s.insert_session(&sess).await.unwrap();
        let new_hash = random_id().into_bytes();
        assert!(s.replace_session_token(&sess.id, &new_hash).await.unwrap());
        assert!(
            s.find_session_by_token(&sess.token_hash)
                .await
                .unwrap()
                .is_none()
        );
        let found = s.find_session_by_token(&new_hash).await.unwrap().unwrap();
        assert_eq!(found.id, sess.id);
        s.revoke_session(&sess.id, 200).await.unwrap();
        assert!(
            !s.replace_session_token(&sess.id, &random_id().into_bytes())
                .await
                .unwrap()
        );
    }
);

contract!(
    a_raised_session_has_the_new_methods_and_cookie_and_keeps_its_id_and_auth_time,
    |s: SqlStore| async move {
        let u = user("raise@example.com");
        s.insert_user(&u).await.unwrap();
        let sess = session(&u.id);
        s.insert_session(&sess).await.unwrap();
        let new_hash = random_id().into_bytes();
        let amr: Vec<String> = ["pwd", "otp", "mfa"].map(String::from).into();
        assert!(s.raise_session(&sess.id, &new_hash, &amr).await.unwrap());
        assert!(
            s.find_session_by_token(&sess.token_hash)
                .await
                .unwrap()
                .is_none()
        );
        let found = s.find_session_by_token(&new_hash).await.unwrap().unwrap();
        assert_eq!((found.id.as_str(), &found.amr), (sess.id.as_str(), &amr));
        assert_eq!(found.auth_time, sess.auth_time);
        s.revoke_session(&sess.id, 200).await.unwrap();
        assert!(
            !s.raise_session(&sess.id, &random_id().into_bytes(), &amr)
                .await
                .unwrap()
        );
    }
);

contract!(
    a_users_sessions_are_listed_with_their_clients_as_one_at_a_time_and_no_one_elses,
    |s: SqlStore| async move {
        const NOW: Timestamp = 200;
        let (ann, bob) = (user("list-ann@example.com"), user("list-bob@example.com"));
        s.insert_user(&ann).await.unwrap();
        s.insert_user(&bob).await.unwrap();
        let started = |user: &User, ms: i64| Session {
            created_ms: ms,
            ..session(&user.id)
        };
        let (older, quiet, newer) = (
            started(&ann, 100_000),
            started(&ann, 150_000),
            started(&ann, 180_000),
        );
        let revoked = Session {
            revoked_at: Some(150),
            ..started(&ann, 190_000)
        };
        let ending_now = Session {
            expires_at: NOW,
            ..started(&ann, 195_000)
        };
        let bobs = started(&bob, 170_000);
        for sess in [&older, &quiet, &newer, &revoked, &ending_now, &bobs] {
            s.insert_session(sess).await.unwrap();
        }
        // Clients reach a session through codes, refresh tokens or both.
        for (sess, client) in [
            (&newer, "web"),
            (&older, "cli"),
            (&revoked, "gone"),
            (&ending_now, "gone"),
            (&bobs, "bobs-app"),
        ] {
            let code = AuthCode {
                session_id: sess.id.clone(),
                client_id: client.into(),
                ..a_code()
            };
            s.insert_code(&code).await.unwrap();
        }
        for (sess, client) in [
            (&newer, "web"),
            (&newer, "mobile"),
            (&older, "api"),
            (&bobs, "bobs-app"),
        ] {
            let token = RefreshToken {
                client_id: client.into(),
                ..refresh(&random_id(), Some(&sess.id))
            };
            s.insert_refresh(&token).await.unwrap();
        }

        let listed = s
            .list_user_sessions_with_clients(&ann.id, NOW)
            .await
            .unwrap();
        let mut one_at_a_time = Vec::new();
        for sess in s.list_user_sessions(&ann.id, NOW).await.unwrap() {
            let clients = s.session_clients(&sess.id).await.unwrap();
            one_at_a_time.push((sess, clients));
        }
        assert_eq!(listed, one_at_a_time);
        let ids_and_clients: Vec<(&str, Vec<&str>)> = listed
            .iter()
            .map(|(sess, clients)| {
                (
                    sess.id.as_str(),
                    clients.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            ids_and_clients,
            vec![
                (newer.id.as_str(), vec!["mobile", "web"]),
                (quiet.id.as_str(), vec![]),
                (older.id.as_str(), vec!["api", "cli"]),
            ],
            "newest first; a revoked session and one ending now are not listed"
        );
        assert_eq!(
            s.list_user_sessions_with_clients(&bob.id, NOW)
                .await
                .unwrap(),
            vec![(bobs, vec!["bobs-app".to_string()])],
            "another user's list holds only their own session"
        );
        assert!(
            s.list_user_sessions_with_clients("nobody", NOW)
                .await
                .unwrap()
                .is_empty()
        );
    }
);

contract!(
    live_sessions_are_counted_without_revoked_ended_or_idle_ones,
    |s: SqlStore| async move {
        let u = user(&format!("{}@example.com", random_id()));
        s.insert_user(&u).await.unwrap();
        // expires_at 1000, last seen at 100 (the fixture).
        let live = session(&u.id);
        let revoked = session(&u.id);
        let mut idle = session(&u.id);
        idle.last_seen_at = 10;
        for x in [&live, &revoked, &idle] {
            s.insert_session(x).await.unwrap();
        }
        s.revoke_session(&revoked.id, 200).await.unwrap();
        assert_eq!(s.count_live_sessions(300, 50).await.unwrap(), 1);
        // Past the absolute end, none.
        assert_eq!(s.count_live_sessions(1000, 50).await.unwrap(), 0);
        // Idle since 100: none seen after 100.
        assert_eq!(s.count_live_sessions(300, 100).await.unwrap(), 0);
    }
);
