//! Housekeeping.
use super::*;

contract!(
    purging_removes_dead_rows_in_batches_and_keeps_live_ones,
    |s: SqlStore| async move {
        let live = refresh("live", None);
        s.insert_refresh(&live).await.unwrap();
        for _ in 0..5 {
            let mut dead = refresh("dead", None);
            dead.expires_at = 50;
            s.insert_refresh(&dead).await.unwrap();
        }
        assert_eq!(s.purge_expired(100, 2).await.unwrap(), 2);
        let mut total = 2;
        loop {
            let n = s.purge_expired(100, 2).await.unwrap();
            if n == 0 {
                break;
            }
            total += n;
        }
        assert_eq!(total, 5);
        assert!(s.find_refresh(&live.token_hash).await.unwrap().is_some());
    }
);

/// Whether a row with this key is still stored (`sql` counts rows by key).
async fn stored(s: &SqlStore, sql: &'static str, key: &[u8]) -> bool {
    sqlx::query_scalar::<_, i64>(sql)
        .bind(key.to_vec())
        .fetch_one(&s.pool)
        .await
        .unwrap()
        > 0
}

const CODE_STORED: &str = "SELECT COUNT(*) FROM auth_codes WHERE code_hash = $1";
const LINK_STORED: &str = "SELECT COUNT(*) FROM account_tokens WHERE token_hash = $1";

contract!(
    purging_keeps_what_replay_detection_and_live_sign_ins_need_and_removes_the_rest,
    |s: SqlStore| async move {
        // Now, and "more than a day ago": dead rows are kept a day past their end.
        const NOW: Timestamp = 1_000_000;
        const DAYS_AGO: Timestamp = NOW - 2 * 86_400;
        let u = user("purge@example.com");
        s.insert_user(&u).await.unwrap();
        let in_family = |family: &str| {
            let mut t = refresh(family, None);
            t.created_at = NOW - 10_000;
            t.idle_expires_at = NOW + 1_000;
            t.expires_at = NOW + 50_000;
            t
        };

        // Kept: the family's current token, and its predecessors rotated long ago, idle-expired
        // or not, which a replay must still find to revoke the family.
        let current = in_family("fam");
        let mut rotated = in_family("fam");
        rotated.rotated_at = Some(NOW - 5_000);
        rotated.successor_hash = Some(current.token_hash.clone());
        let mut idle_rotated = in_family("fam");
        idle_rotated.rotated_at = Some(NOW - 9_000);
        idle_rotated.idle_expires_at = NOW - 8_000;
        // Kept: a family revoked within the day; presenting its tokens says "revoked".
        let mut revoked_lately = in_family("revoked");
        revoked_lately.revoked_at = Some(NOW - 100);
        // Purged: past the family's absolute end, and revoked more than a day ago.
        let mut expired = in_family("old");
        expired.expires_at = NOW - 1;
        let mut revoked_long_ago = in_family("revoked-long-ago");
        revoked_long_ago.revoked_at = Some(DAYS_AGO);
        for t in [
            &current,
            &rotated,
            &idle_rotated,
            &revoked_lately,
            &expired,
            &revoked_long_ago,
        ] {
            s.insert_refresh(t).await.unwrap();
        }

        let mut live_session = session(&u.id);
        live_session.expires_at = NOW + 1_000;
        let mut expired_session = session(&u.id);
        expired_session.expires_at = DAYS_AGO;
        let mut revoked_session = session(&u.id);
        revoked_session.expires_at = NOW + 1_000;
        revoked_session.revoked_at = Some(DAYS_AGO);
        for sess in [&live_session, &expired_session, &revoked_session] {
            s.insert_session(sess).await.unwrap();
        }

        let code = |hash: u8, expires_at: Timestamp| AuthCode {
            code_hash: vec![hash; 32],
            client_id: "app".into(),
            user_id: u.id.clone(),
            session_id: live_session.id.clone(),
            redirect_uri: "https://a/cb".into(),
            scope: "openid".into(),
            nonce: None,
            code_challenge: "c".into(),
            resource: None,
            auth_time: NOW - 10,
            amr: vec!["pwd".into()],
            created_at: expires_at - 60,
            expires_at,
        };
        let unexpired_code = code(1, NOW + 30);
        let spent_code = code(2, NOW + 30);
        let expired_lately = code(3, NOW - 100);
        let expired_code = code(4, DAYS_AGO);
        for c in [&unexpired_code, &spent_code, &expired_lately, &expired_code] {
            s.insert_code(c).await.unwrap();
        }
        let redemption = CodeRedemption {
            family_id: "fam".into(),
            access_jti: "j".into(),
            access_expires_at: NOW + 600,
        };
        s.redeem_code(&spent_code.code_hash, &redemption, None, NOW - 5)
            .await
            .unwrap();

        let live_link = b"live-link".to_vec();
        let expired_link = b"expired-link".to_vec();
        s.insert_account_token(
            &live_link,
            AccountTokenKind::PasswordReset,
            &u.id,
            NOW - 60,
            NOW + 3_600,
        )
        .await
        .unwrap();
        s.insert_account_token(
            &expired_link,
            AccountTokenKind::PasswordReset,
            &u.id,
            DAYS_AGO - 60,
            DAYS_AGO,
        )
        .await
        .unwrap();

        while s.purge_expired(NOW, 2).await.unwrap() > 0 {}

        for (t, what) in [
            (&current, "the current token"),
            (&rotated, "a rotated, unexpired token"),
            (
                &idle_rotated,
                "a rotated, idle-expired token of a live family",
            ),
            (&revoked_lately, "a token revoked within the day"),
        ] {
            assert_eq!(
                s.find_refresh(&t.token_hash).await.unwrap().as_ref(),
                Some(t),
                "{what} is kept"
            );
        }
        for (t, what) in [
            (&expired, "a token past its family's end"),
            (&revoked_long_ago, "a token revoked days ago"),
        ] {
            assert_eq!(
                s.find_refresh(&t.token_hash).await.unwrap(),
                None,
                "{what} is purged"
            );
        }

        assert!(
            s.find_session(&live_session.id).await.unwrap().is_some(),
            "a live session is kept"
        );
        assert_eq!(
            s.find_session(&expired_session.id).await.unwrap(),
            None,
            "an expired session is purged"
        );
        assert_eq!(
            s.find_session(&revoked_session.id).await.unwrap(),
            None,
            "a session revoked days ago is purged"
        );

        assert!(
            stored(&s, CODE_STORED, &unexpired_code.code_hash).await,
            "an unexpired code is kept"
        );
        assert!(
            stored(&s, CODE_STORED, &spent_code.code_hash).await,
            "a spent, unexpired code is kept"
        );
        assert!(
            stored(&s, CODE_STORED, &expired_lately.code_hash).await,
            "a code expired within the day is kept"
        );
        assert!(
            !stored(&s, CODE_STORED, &expired_code.code_hash).await,
            "a code expired days ago is purged"
        );
        assert_eq!(
            s.redeem_code(&spent_code.code_hash, &redemption, None, NOW)
                .await
                .unwrap(),
            CodeOutcome::Replayed(spent_code.clone(), redemption.clone()),
            "a replay of the spent code still finds what it issued"
        );

        assert!(
            stored(&s, LINK_STORED, &live_link).await,
            "an unexpired link is kept"
        );
        assert!(
            !stored(&s, LINK_STORED, &expired_link).await,
            "a link expired days ago is purged"
        );
    }
);
