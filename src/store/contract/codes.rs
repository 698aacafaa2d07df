//! Authorization codes: redeemed exactly once, and a replay reaches what the first use issued.
use super::*;

contract!(
    a_code_is_redeemed_exactly_once_and_the_replay_sees_the_first_redemption,
    |s: SqlStore| async move {
        let code = AuthCode {
            code_hash: vec![9; 32],
            client_id: "app".into(),
            user_id: "u".into(),
            session_id: "s".into(),
            redirect_uri: "https://a/cb".into(),
            scope: "openid".into(),
            nonce: Some("n".into()),
            code_challenge: "c".into(),
            resource: None,
            auth_time: 1,
            amr: vec!["pwd".into()],
            created_at: 1,
            expires_at: 61,
        };
        s.insert_code(&code).await.unwrap();
        let first = CodeRedemption {
            family_id: "f1".into(),
            access_jti: "j1".into(),
            access_expires_at: 600,
        };
        let second = CodeRedemption {
            family_id: "f2".into(),
            access_jti: "j2".into(),
            access_expires_at: 600,
        };
        assert_eq!(
            s.redeem_code(&code.code_hash, &first, None, 10)
                .await
                .unwrap(),
            CodeOutcome::Redeemed(code.clone())
        );
        assert_eq!(
            s.redeem_code(&code.code_hash, &second, None, 11)
                .await
                .unwrap(),
            CodeOutcome::Replayed(code.clone(), first)
        );
        assert_eq!(
            s.redeem_code(&[0; 32], &second, None, 11).await.unwrap(),
            CodeOutcome::NotFound
        );
    }
);

contract!(
    a_codes_first_refresh_token_is_stored_by_its_redemption_so_a_replay_revokes_it,
    |s: SqlStore| async move {
        let code = a_code();
        s.insert_code(&code).await.unwrap();
        let token = refresh("f1", None);
        // The first use spends the code and stores its refresh token in one step...
        assert!(matches!(
            s.redeem_code(&code.code_hash, &redemption("f1"), Some(&token), 10)
                .await
                .unwrap(),
            CodeOutcome::Redeemed(_)
        ));
        assert_eq!(
            s.find_refresh(&token.token_hash).await.unwrap(),
            Some(token.clone())
        );
        // ...so a replay, whenever it comes, finds the family with the token in it. A replay
        // stores nothing of its own.
        let replayed_token = refresh("f2", None);
        let CodeOutcome::Replayed(_, first) = s
            .redeem_code(
                &code.code_hash,
                &redemption("f2"),
                Some(&replayed_token),
                11,
            )
            .await
            .unwrap()
        else {
            panic!("the second use is a replay");
        };
        assert_eq!(first, redemption("f1"));
        assert_eq!(
            s.find_refresh(&replayed_token.token_hash).await.unwrap(),
            None
        );
        s.revoke_family(&first.family_id, 11).await.unwrap();
        assert!(
            s.find_refresh(&token.token_hash)
                .await
                .unwrap()
                .unwrap()
                .revoked_at
                .is_some(),
            "the replay revoked the refresh token the first use issued"
        );
    }
);

contract!(
    concurrent_uses_of_one_code_leave_no_token_alive_that_a_replay_should_have_revoked,
    |s: SqlStore| async move {
        for round in 0..10 {
            let code = a_code();
            s.insert_code(&code).await.unwrap();
            let mut uses = Vec::new();
            for i in 0..8 {
                let (s, hash) = (s.clone(), code.code_hash.clone());
                uses.push(tokio::spawn(async move {
                    let family = format!("r{round}-f{i}");
                    let token = refresh(&family, None);
                    let outcome = s
                        .redeem_code(&hash, &redemption(&family), Some(&token), 10)
                        .await
                        .unwrap();
                    if let CodeOutcome::Replayed(_, first) = &outcome {
                        s.revoke_family(&first.family_id, 11).await.unwrap();
                    }
                    (outcome, token)
                }));
            }
            let mut done = Vec::new();
            for u in uses {
                done.push(u.await.unwrap());
            }
            // Every use has answered: look at what is stored.
            let mut winners = Vec::new();
            for (outcome, token) in done {
                let stored = s.find_refresh(&token.token_hash).await.unwrap();
                match outcome {
                    CodeOutcome::Redeemed(_) => winners.push(stored),
                    _ => assert_eq!(stored, None, "round {round}: a replay stores no token"),
                }
            }
            assert_eq!(winners.len(), 1, "round {round}: exactly one use wins");
            assert!(
                winners[0].as_ref().is_some_and(|t| t.revoked_at.is_some()),
                "round {round}: the winner's refresh token is revoked by the replays"
            );
        }
    }
);
