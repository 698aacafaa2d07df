//! Key rotation on a real [`crate::oauth::Provider`] with a hand-moved clock
//! ([`crate::testkit`]): the schedule is applied as the server's key maintenance applies it
//! (`rotation::reconcile`, then a new keyring), and what resource servers see is the keyring's
//! JWKS and the `kid` of the tokens it signs.

use crate::clock::Timestamp;
use crate::keys::Keyring;
use crate::keys::rotation::{self, RotationPolicy};
use crate::testkit::{Kit, T0, kid};

/// Added to the longest token lifetime before a superseded key is withdrawn (clock skew).
const RETIRE_MARGIN: i64 = 60;

fn policy(k: &Kit) -> RotationPolicy {
    crate::testkit::rotation_policy(&k.p.settings)
}

/// Moves the clock to `t` and runs one round of key maintenance; returns the published kids.
async fn maintain_at(k: &Kit, t: Timestamp) -> Vec<String> {
    k.set(t);
    let records = rotation::reconcile(&k.p.store, &k.p.crypto, &policy(k), t)
        .await
        .unwrap();
    k.p.replace_keys(Keyring::load(&records, &k.p.crypto).unwrap());
    let jwks: serde_json::Value = serde_json::from_str(k.p.keys().jwks()).unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap().to_string())
        .collect()
}

/// The `kid` of an access token issued now.
async fn signing_kid(k: &Kit) -> String {
    let client = match k.p.client("reporter").await.unwrap() {
        Some(c) => c,
        None => k.service_client("reporter", "s3cret-s3cret").await,
    };
    let tokens = k
        .client_credentials(&client, "s3cret-s3cret")
        .await
        .unwrap();
    kid(tokens.access_token.expose())
}

#[tokio::test]
async fn the_next_key_is_published_at_least_one_lead_before_it_signs() {
    let k = Kit::new().await;
    let p = policy(&k);
    let first = maintain_at(&k, T0).await;
    assert_eq!(first.len(), 1, "one key at the first start");
    let due = T0 + p.interval;

    // Timestamps are whole seconds: the key is published one second earlier than `lead`
    // alone would say, so that the lead is never cut short.
    let before = maintain_at(&k, due - p.publish_lead - 2).await;
    assert_eq!(before, first, "not yet published");
    let published = maintain_at(&k, due - p.publish_lead - 1).await;
    assert_eq!(published.len(), 2, "published: {published:?}");
    assert_eq!(published[0], first[0]);
    let next = published[1].clone();
    assert_eq!(
        signing_kid(&k).await,
        first[0],
        "published, not yet signing"
    );

    maintain_at(&k, due - 1).await;
    assert_eq!(
        signing_kid(&k).await,
        first[0],
        "one second before it is due"
    );
    maintain_at(&k, due).await;
    assert_eq!(signing_kid(&k).await, next, "it signs from its activation");
}

#[tokio::test]
async fn a_superseded_key_stays_published_until_every_token_it_signed_has_expired_then_leaves() {
    let k = Kit::new().await;
    let p = policy(&k);
    let old = maintain_at(&k, T0).await[0].clone();
    let due = T0 + p.interval;
    maintain_at(&k, due - p.publish_lead - 1).await;
    maintain_at(&k, due - 1).await;
    let client = k.service_client("reporter", "s3cret-s3cret").await;
    let last = k
        .client_credentials(&client, "s3cret-s3cret")
        .await
        .unwrap();
    assert_eq!(
        kid(last.access_token.expose()),
        old,
        "the old key's last token"
    );
    let last_exp = due - 1 + k.p.settings.access_token_ttl;

    maintain_at(&k, due).await;
    let withdrawn_at = due + p.max_token_ttl + RETIRE_MARGIN;
    assert!(withdrawn_at > last_exp);
    for (t, published) in [
        (last_exp - 1, true),
        (withdrawn_at - 1, true),
        (withdrawn_at, false),
        (withdrawn_at + 1, false),
    ] {
        let kids = maintain_at(&k, t).await;
        assert_eq!(
            kids.contains(&old),
            published,
            "{}s from the withdrawal: {kids:?}",
            t - withdrawn_at
        );
    }
}

#[tokio::test]
async fn a_token_signed_by_the_old_key_still_verifies_until_its_own_exp() {
    let k = Kit::new().await;
    let p = policy(&k);
    maintain_at(&k, T0).await;
    let due = T0 + p.interval;
    maintain_at(&k, due - p.publish_lead - 1).await;
    maintain_at(&k, due - 1).await;
    let client = k.service_client("reporter", "s3cret-s3cret").await;
    let last = k
        .client_credentials(&client, "s3cret-s3cret")
        .await
        .unwrap();
    let exp = due - 1 + k.p.settings.access_token_ttl;

    maintain_at(&k, due).await;
    maintain_at(&k, exp - 1).await;
    crate::oauth::introspect::check_access_token(&k.p, last.access_token.expose())
        .await
        .expect("after the rotation, before its exp");
    maintain_at(&k, exp).await;
    assert!(
        crate::oauth::introspect::check_access_token(&k.p, last.access_token.expose())
            .await
            .is_err()
    );
}
