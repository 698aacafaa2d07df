//! The authorization endpoint's clock: `auth_code_ttl`, and `max_age` against the sign-in time.

use crate::oauth::OAuthError;
use crate::oauth::authorize::{AuthorizationRequest, Next, next_step};
use crate::oauth::tokens::TokenResponse;
use crate::testkit::{Kit, invalid_grant};

/// A code issued now and redeemed `secs` later.
async fn redeemed_after(secs: i64) -> Result<TokenResponse, OAuthError> {
    let k = Kit::new().await;
    let user = k.user("ada@example.test").await;
    let client = k.public_client("webapp").await;
    let (_, session) = k.session(&user).await;
    let code = k.code(&client, &session).await;
    k.advance(secs);
    k.redeem(&client, &code).await
}

#[tokio::test]
async fn a_code_is_redeemable_up_to_one_second_before_its_lifetime_ends_and_refused_from_then() {
    let ttl = crate::testkit::settings().auth_code_ttl;
    for edge in [-1, 0, 1] {
        let result = redeemed_after(ttl + edge).await;
        if edge < 0 {
            assert!(result.is_ok(), "{edge}s from the code's end: {result:?}");
        } else {
            let e = result.unwrap_err();
            assert!(
                invalid_grant(&e, "has expired"),
                "{edge}s from the code's end: {e:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_code_refused_as_expired_is_spent() {
    let k = Kit::new().await;
    let user = k.user("ada@example.test").await;
    let client = k.public_client("webapp").await;
    let (_, session) = k.session(&user).await;
    let code = k.code(&client, &session).await;
    k.advance(k.p.settings.auth_code_ttl);

    let first = k.redeem(&client, &code).await.unwrap_err();
    assert!(invalid_grant(&first, "has expired"), "{first:?}");
    let again = k.redeem(&client, &code).await.unwrap_err();
    assert!(invalid_grant(&again, "already used"), "{again:?}");
}

/// What the authorization endpoint decides `secs` after sign-in for a request with `max_age`.
async fn next_step_after(secs: i64, max_age: i64) -> Next {
    let k = Kit::new().await;
    let user = k.user("ada@example.test").await;
    let client = k.public_client("webapp").await;
    let (_, session) = k.session(&user).await;
    k.advance(secs);
    let req = AuthorizationRequest {
        client_id: client.id.clone(),
        redirect_uri: crate::testkit::REDIRECT_URI.into(),
        scope: vec!["openid".into()],
        state: None,
        nonce: None,
        code_challenge: crate::testkit::challenge(crate::testkit::VERIFIER),
        prompt: vec![],
        max_age: Some(max_age),
        resource: None,
        acr_values: vec![],
    };
    next_step(&k.p, &client, &req, Some(&session), false, k.now())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_sign_in_exactly_max_age_seconds_old_is_still_recent_enough_and_one_second_more_is_not() {
    // OIDC Core §3.1.2.1: re-authenticate when the elapsed time is *greater* than max_age.
    assert_eq!(next_step_after(299, 300).await, Next::Issue);
    assert_eq!(next_step_after(300, 300).await, Next::Issue);
    assert_eq!(next_step_after(301, 300).await, Next::SignIn);
}
