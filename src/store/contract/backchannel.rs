//! Back-channel logout deliveries: the clients a session issued codes to are recorded by the
//! store; a session's end queues one delivery per such client with a URI (once); claims are
//! exclusive and leased; the session's purge takes its client list along.
use super::*;

fn rp(id: &str, uri: Option<&str>) -> Client {
    Client {
        id: id.into(),
        secret_hash: Some(crate::secret::Secret::wrap(vec![1])),
        redirect_uris: vec![format!("https://{id}.example/cb")],
        post_logout_redirect_uris: vec![],
        grant_types: vec!["authorization_code".into()],
        scopes: vec!["openid".into()],
        audiences: vec![],
        first_party: true,
        require_mfa: false,
        created_at: 1,
        disabled_at: None,
        previous_secret_hash: None,
        previous_secret_expires_at: None,
        backchannel_logout_uri: uri.map(String::from),
    }
}

/// A user with one session that issued codes to `clients` (twice to the first).
async fn session_with_codes(s: &SqlStore, email: &str, clients: &[&str]) -> (User, Session) {
    let u = user(email);
    s.insert_user(&u).await.unwrap();
    let sess = session(&u.id);
    s.insert_session(&sess).await.unwrap();
    for (i, c) in clients.iter().chain(clients.first()).enumerate() {
        let mut code = a_code();
        code.client_id = (*c).into();
        code.user_id = u.id.clone();
        code.session_id = sess.id.clone();
        code.created_at = i as i64;
        s.insert_code(&code).await.unwrap();
    }
    (u, sess)
}

contract!(
    a_session_end_queues_one_delivery_per_client_of_the_session_that_has_a_uri,
    |s: SqlStore| async move {
        s.insert_client(&rp("erp", Some("https://erp.example/bcl")))
            .await
            .unwrap();
        s.insert_client(&rp("crm", Some("https://crm.example/bcl")))
            .await
            .unwrap();
        s.insert_client(&rp("wiki", None)).await.unwrap();
        s.insert_client(&rp("off", Some("https://off.example/bcl")))
            .await
            .unwrap();
        s.insert_client(&rp("bystander", Some("https://by.example/bcl")))
            .await
            .unwrap();
        s.set_client_disabled("off", Some(5)).await.unwrap();
        let (u, sess) =
            session_with_codes(&s, "a@example.com", &["erp", "crm", "wiki", "off"]).await;
        let (_, other) = session_with_codes(&s, "b@example.com", &["bystander"]).await;
        assert_eq!(s.session_clients(&sess.id).await.unwrap().len(), 4);

        let queued = s
            .enqueue_logout_deliveries(std::slice::from_ref(&sess.id), 300, 300_000)
            .await
            .unwrap();
        assert_eq!(queued, 2, "erp and crm: wiki has no URI, off is disabled");
        assert_eq!(s.pending_logout_deliveries().await.unwrap(), 2);
        // Ending it again (another trigger, another replica) queues nothing more.
        assert_eq!(
            s.enqueue_logout_deliveries(std::slice::from_ref(&sess.id), 301, 301_000)
                .await
                .unwrap(),
            0
        );
        // Not due yet.
        assert!(
            s.claim_logout_deliveries(299_999, 1000, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let claimed = s
            .claim_logout_deliveries(300_000, 60_000, 10)
            .await
            .unwrap();
        let mut who: Vec<_> = claimed.iter().map(|d| d.client_id.as_str()).collect();
        who.sort();
        assert_eq!(who, ["crm", "erp"]);
        for d in &claimed {
            assert_eq!(d.session_id, sess.id);
            assert_eq!(d.user_id, u.id);
            assert_eq!(d.created_at, 300);
            assert_eq!(d.attempts, 1);
            assert_eq!(
                d.uri.as_deref(),
                Some(format!("https://{}.example/bcl", d.client_id).as_str())
            );
        }
        // Leased: nobody else gets them until the lease ends.
        assert!(
            s.claim_logout_deliveries(359_999, 60_000, 10)
                .await
                .unwrap()
                .is_empty()
        );
        // The other user's session was not touched.
        assert_eq!(
            s.enqueue_logout_deliveries(std::slice::from_ref(&other.id), 302, 302_000)
                .await
                .unwrap(),
            1
        );
        assert_eq!(s.pending_logout_deliveries().await.unwrap(), 3);
    }
);

contract!(
    a_delivery_is_finished_retried_or_given_up,
    |s: SqlStore| async move {
        for id in ["a", "b", "c"] {
            s.insert_client(&rp(id, Some(&format!("https://{id}.example/bcl"))))
                .await
                .unwrap();
        }
        let (_, sess) = session_with_codes(&s, "a@example.com", &["a", "b", "c"]).await;
        s.enqueue_logout_deliveries(std::slice::from_ref(&sess.id), 10, 10_000)
            .await
            .unwrap();
        let claimed = s.claim_logout_deliveries(10_000, 1_000, 10).await.unwrap();
        assert_eq!(claimed.len(), 3);
        let by = |c: &str| claimed.iter().find(|d| d.client_id == c).unwrap().id;
        s.finish_logout_delivery(by("a")).await.unwrap();
        s.retry_logout_delivery(by("b"), 12_000).await.unwrap();
        s.fail_logout_delivery(by("c"), 11).await.unwrap();
        assert_eq!(s.pending_logout_deliveries().await.unwrap(), 1);
        // The lease of the others does not matter any more; b is due at its retry time only.
        assert!(
            s.claim_logout_deliveries(11_999, 1_000, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let again = s.claim_logout_deliveries(12_000, 1_000, 10).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].client_id, "b");
        assert_eq!(again[0].attempts, 2);
        // A given-up delivery is never claimed again, and not queued again by a second end.
        assert!(
            s.claim_logout_deliveries(99_000_000, 1_000, 10)
                .await
                .unwrap()
                .iter()
                .all(|d| d.client_id == "b")
        );
        assert_eq!(
            s.enqueue_logout_deliveries(std::slice::from_ref(&sess.id), 20, 20_000)
                .await
                .unwrap(),
            0,
            "a session ends once: a, delivered before, is not queued again"
        );
    }
);

contract!(
    a_client_that_lost_its_uri_or_was_disabled_is_claimed_without_one,
    |s: SqlStore| async move {
        s.insert_client(&rp("erp", Some("https://erp.example/bcl")))
            .await
            .unwrap();
        let (_, sess) = session_with_codes(&s, "a@example.com", &["erp"]).await;
        s.enqueue_logout_deliveries(std::slice::from_ref(&sess.id), 10, 10_000)
            .await
            .unwrap();
        s.set_client_disabled("erp", Some(11)).await.unwrap();
        let claimed = s.claim_logout_deliveries(10_000, 1_000, 10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].uri, None);
    }
);

contract!(
    two_concurrent_claims_never_get_the_same_delivery,
    |s: SqlStore| async move {
        s.insert_client(&rp("erp", Some("https://erp.example/bcl")))
            .await
            .unwrap();
        let mut sessions = Vec::new();
        for i in 0..40 {
            let (_, sess) = session_with_codes(&s, &format!("u{i}@example.com"), &["erp"]).await;
            sessions.push(sess.id);
        }
        s.enqueue_logout_deliveries(&sessions, 10, 10_000)
            .await
            .unwrap();
        let mut claims = Vec::new();
        for _ in 0..8 {
            let s = s.clone();
            claims.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let got = s.claim_logout_deliveries(10_000, 60_000, 3).await.unwrap();
                    if got.is_empty() {
                        return mine;
                    }
                    mine.extend(got.into_iter().map(|d| d.id));
                }
            }));
        }
        let mut all = Vec::new();
        for c in claims {
            all.extend(c.await.unwrap());
        }
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "a delivery was claimed twice");
        assert_eq!(n, 40, "every delivery was claimed once");
    }
);

contract!(
    the_purge_of_a_session_takes_its_client_list_along,
    |s: SqlStore| async move {
        s.insert_client(&rp("erp", Some("https://erp.example/bcl")))
            .await
            .unwrap();
        let (_, sess) = session_with_codes(&s, "a@example.com", &["erp"]).await;
        s.revoke_session(&sess.id, 200).await.unwrap();
        // A day after the revocation, and everything else expired.
        while s.purge_expired(1_000_000, 100).await.unwrap() > 0 {}
        assert_eq!(s.find_session(&sess.id).await.unwrap(), None);
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM session_clients")
            .fetch_one(&s.pool)
            .await
            .unwrap();
        assert_eq!(left, 0);
    }
);

contract!(
    a_session_ended_again_after_its_logouts_were_delivered_queues_nothing,
    |s: SqlStore| async move {
        // A replayed rotated refresh token ends its (already ended) session once per replay:
        // each must not send the session's clients another logout token.
        s.insert_client(&rp("erp", Some("https://erp.example/bcl")))
            .await
            .unwrap();
        let (_, sess) = session_with_codes(&s, "a@example.com", &["erp"]).await;
        let ids = std::slice::from_ref(&sess.id);
        assert_eq!(
            s.enqueue_logout_deliveries(ids, 300, 300_000)
                .await
                .unwrap(),
            1
        );
        for d in s
            .claim_logout_deliveries(300_000, 60_000, 10)
            .await
            .unwrap()
        {
            s.finish_logout_delivery(d.id).await.unwrap();
        }
        assert_eq!(s.pending_logout_deliveries().await.unwrap(), 0);
        for at in 301..305 {
            assert_eq!(
                s.enqueue_logout_deliveries(ids, at, at * 1000)
                    .await
                    .unwrap(),
                0,
                "ended again at {at}"
            );
        }
        assert_eq!(s.pending_logout_deliveries().await.unwrap(), 0);
    }
);
