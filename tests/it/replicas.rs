//! Two `tessera serve` replicas behind one load balancer: one database, one master key, one
//! issuer and (on the PostgreSQL run) one Redis. Whatever one replica rotates, detects or
//! revokes, the other honours.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::*;

async fn user_and_webapp(app: &TestApp) -> (TestUser, RegisteredClient) {
    let user = app.add_user("ada@example.test").await;
    let client = app.add_client(ClientSpec::first_party("webapp")).await;
    (user, client)
}

/// A token two rotations old is reuse whatever the grace window (its edges are engine tests:
/// `oauth::engine_tests::refresh`), so nothing here waits for the window to close.
#[tokio::test]
async fn a_refresh_token_rotated_on_one_replica_and_replayed_on_the_other_is_detected_as_reuse() {
    let first = spawn_app().await;
    let second = first.spawn_replica().await;
    let (user, client) = user_and_webapp(&first).await;
    let stolen = first.tokens_for(&client, &user).await;
    let once = expect_tokens(first.refresh(&client.auth(), stolen.refresh_token()).await).await;
    let rotated = expect_tokens(first.refresh(&client.auth(), once.refresh_token()).await).await;

    let replay = second.refresh(&client.auth(), stolen.refresh_token()).await;
    expect_oauth_error(replay, StatusCode::BAD_REQUEST, "invalid_grant").await;

    for (name, replica) in [
        ("the first replica", &first),
        ("the second replica", &second),
    ] {
        replica
            .assert_refresh_refused(&client, rotated.refresh_token(), name)
            .await;
        assert!(
            !replica
                .is_active(&client.auth(), rotated.refresh_token())
                .await,
            "{name}: the family's newest refresh token introspects inactive"
        );
    }
    second
        .assert_inactive(
            &client,
            &rotated.access_token,
            "where the replay was caught",
        )
        .await;
    let limit = if first.uses_redis() {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(3)
    };
    assert!(
        first
            .time_until_inactive(&client.auth(), &rotated.access_token, limit)
            .await
            .is_some(),
        "the first replica still called the session's access token active after {limit:?}"
    );
    expect_sign_in_page(first.authorize(&AuthRequest::new(&client)).await).await;
    assert_eq!(
        second
            .metrics()
            .await
            .get("tessera_refresh_reuse_detected_total"),
        1
    );
    assert!(
        first
            .audit_tail(50)
            .await
            .iter()
            .any(|l| l.action == "refresh.reuse_detected"),
        "the replay is in the shared audit log"
    );
}

#[tokio::test]
async fn a_revocation_on_one_replica_is_seen_by_introspection_on_the_other() {
    // With Redis, polling is all but switched off: only pub/sub can bring the news in time.
    let redis = redis_in_this_run();
    let first = spawn_app_with(|c| {
        c.env(
            "TESSERA_REVOCATION_POLL_INTERVAL",
            if redis { "1h" } else { "1s" },
        );
    })
    .await;
    let second = first.spawn_replica().await;
    assert_eq!(second.uses_redis(), redis);
    let limit = if redis {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(3)
    };
    let (user, client) = user_and_webapp(&first).await;
    let tokens = first.tokens_for(&client, &user).await;
    second
        .assert_active(&client, &tokens.access_token, "before any revocation")
        .await;

    let resp = first
        .revoke(&client.auth(), &tokens.access_token, Some("access_token"))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let took = second
        .time_until_inactive(&client.auth(), &tokens.access_token, limit)
        .await;
    assert!(
        took.is_some(),
        "the second replica still called a token revoked on the first active after {limit:?}"
    );

    let refreshed =
        expect_tokens(first.refresh(&client.auth(), tokens.refresh_token()).await).await;
    second
        .assert_active(&client, &refreshed.access_token, "the session's new token")
        .await;
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("id_token_hint", refreshed.id_token())
        .finish();
    let resp = first.get(&format!("/logout?{query}")).await;
    assert_eq!(resp.status(), StatusCode::OK, "the signed-out page");
    let took = second
        .time_until_inactive(&client.auth(), &refreshed.access_token, limit)
        .await;
    assert!(
        took.is_some(),
        "the second replica still called a token of a session ended on the first active after {limit:?}"
    );
}

#[tokio::test]
async fn the_same_refresh_token_refreshed_at_once_on_both_replicas_gets_the_same_successor_from_both()
 {
    const ROUNDS: u64 = 20;
    let first = spawn_app().await;
    let second = first.spawn_replica().await;
    let (user, client) = user_and_webapp(&first).await;
    let auth = client.auth();
    let mut current = first
        .tokens_for(&client, &user)
        .await
        .refresh_token()
        .to_owned();

    for round in 1..=ROUNDS {
        let (on_first, on_second) = tokio::join!(
            first.refresh(&auth, &current),
            second.refresh(&auth, &current)
        );
        let mut successors = Vec::new();
        for (name, resp) in [("first", on_first), ("second", on_second)] {
            let status = resp.status();
            if status != StatusCode::OK {
                let body = resp.text().await.unwrap_or_default();
                panic!("round {round}: the {name} replica refused the refresh ({status}): {body}");
            }
            successors.push(expect_tokens(resp).await.refresh_token().to_owned());
        }
        assert_eq!(
            successors[0], successors[1],
            "round {round}: the replicas handed out different successors, so the chain forked"
        );
        current = successors.swap_remove(0);
    }

    let (a, b) = (first.metrics().await, second.metrics().await);
    let total = |name: &str| a.get(name) + b.get(name);
    assert_eq!(total("tessera_refresh_rotations_total"), ROUNDS);
    assert_eq!(total("tessera_refresh_races_total"), ROUNDS);
    assert_eq!(total("tessera_refresh_reuse_detected_total"), 0);
    let next = expect_tokens(second.refresh(&auth, &current).await).await;
    expect_tokens(first.refresh(&auth, next.refresh_token()).await).await;
}
