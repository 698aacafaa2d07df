//! Links sent by mail (password reset, address confirmation): usable until one second before
//! their end, refused from it, whether opened, posted or spent.

use crate::auth::policy::PasswordPolicy;
use crate::auth::recovery::{
    RecoveryError, complete_password_reset, reset_link_usable, verification_link_usable,
    verify_email,
};
use crate::crypto::random_token;
use crate::secret::SecretString;
use crate::store::{AccountTokenKind, AccountTokenStore};
use crate::testkit::Kit;

const EDGES: [i64; 3] = [-1, 0, 1];
const TTL: i64 = 1800;

/// A link of `kind` made now, as `auth::recovery` makes them (a random value, stored as its
/// keyed hash, ending `TTL` seconds from now).
async fn link(k: &Kit, kind: AccountTokenKind) -> String {
    let user = k.user("ada@example.test").await;
    let token = random_token();
    let now = k.now();
    k.p.store
        .insert_account_token(
            &k.p.crypto.token_hash(&token),
            kind,
            &user.id,
            now,
            now + TTL,
        )
        .await
        .unwrap();
    token
}

#[tokio::test]
async fn a_reset_link_opens_and_resets_until_one_second_before_its_end() {
    let hasher = Kit::cheap_hasher();
    let policy = PasswordPolicy {
        min_chars: 12,
        max_chars: 256,
    };
    let new_password = SecretString::new("a brand new passphrase here");
    for edge in EDGES {
        let k = Kit::new().await;
        let token = link(&k, AccountTokenKind::PasswordReset).await;
        k.advance(TTL + edge);

        let opens = reset_link_usable(&k.p, &token).await.unwrap();
        let reset = complete_password_reset(&k.p, &hasher, &policy, &token, &new_password).await;

        assert_eq!(opens, edge < 0, "{edge}s from the link's end: opens");
        if edge < 0 {
            assert!(reset.is_ok(), "{edge}s from the link's end: {reset:?}");
        } else {
            assert!(
                matches!(reset, Err(RecoveryError::InvalidLink)),
                "{edge}s from the link's end: {reset:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_confirmation_link_confirms_until_one_second_before_its_end() {
    for edge in EDGES {
        let k = Kit::new().await;
        let token = link(&k, AccountTokenKind::EmailVerification).await;
        k.advance(TTL + edge);

        let opens = verification_link_usable(&k.p, &token).await.unwrap();
        let confirmed = verify_email(&k.p, &token).await;

        assert_eq!(opens, edge < 0, "{edge}s from the link's end: opens");
        if edge < 0 {
            assert!(
                confirmed.is_ok(),
                "{edge}s from the link's end: {confirmed:?}"
            );
        } else {
            assert!(
                matches!(confirmed, Err(RecoveryError::InvalidLink)),
                "{edge}s from the link's end: {confirmed:?}"
            );
        }
    }
}
