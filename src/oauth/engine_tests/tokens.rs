//! Access and ID tokens: their `iat`, `exp` and `auth_time`, and when the engine stops accepting
//! an access token.

use crate::oauth::OAuthError;
use crate::oauth::introspect::check_access_token;
use crate::testkit::{Kit, T0, claims};

#[tokio::test]
async fn access_and_id_tokens_expire_one_lifetime_after_the_code_is_redeemed() {
    let k = Kit::new().await;
    let user = k.user("ada@example.test").await;
    let client = k.public_client("webapp").await;
    let (_, session) = k.session(&user).await;
    k.advance(5);
    let code = k.code(&client, &session).await;
    k.advance(7);
    let tokens = k.redeem(&client, &code).await.unwrap();
    let issued = T0 + 12;

    let s = &k.p.settings;
    assert_eq!(tokens.expires_in, s.access_token_ttl);
    let access = claims(tokens.access_token.expose());
    assert_eq!(access["iat"], issued);
    assert_eq!(access["exp"], issued + s.access_token_ttl);
    assert_eq!(access["auth_time"], T0, "the sign-in, not the redemption");
    let id = claims(tokens.id_token.as_ref().unwrap().expose());
    assert_eq!(id["iat"], issued);
    assert_eq!(id["exp"], issued + s.id_token_ttl);
    assert_eq!(id["auth_time"], T0);
}

#[tokio::test]
async fn a_refresh_issues_tokens_that_expire_one_lifetime_after_the_refresh() {
    let k = Kit::new().await;
    let s = k.signed_in().await;
    k.advance(100);

    let tokens = k.refresh(&s.client, &s.refresh_token()).await.unwrap();

    let access = claims(tokens.access_token.expose());
    assert_eq!(access["iat"], T0 + 100);
    assert_eq!(access["exp"], T0 + 100 + k.p.settings.access_token_ttl);
    assert_eq!(access["auth_time"], T0, "still the original sign-in");
    let id = claims(tokens.id_token.as_ref().unwrap().expose());
    assert_eq!(id["exp"], T0 + 100 + k.p.settings.id_token_ttl);
}

#[tokio::test]
async fn a_client_credentials_token_expires_one_access_lifetime_after_issue() {
    let k = Kit::new().await;
    let client = k.service_client("reporter", "s3cret-s3cret").await;
    k.advance(3);

    let tokens = k
        .client_credentials(&client, "s3cret-s3cret")
        .await
        .unwrap();

    assert_eq!(tokens.expires_in, k.p.settings.access_token_ttl);
    let access = claims(tokens.access_token.expose());
    assert_eq!(access["iat"], T0 + 3);
    assert_eq!(access["exp"], T0 + 3 + k.p.settings.access_token_ttl);
    assert!(tokens.refresh_token.is_none() && tokens.id_token.is_none());
}

fn expired(result: &Result<crate::oauth::tokens::AccessClaims, OAuthError>) -> bool {
    matches!(result, Err(OAuthError::InvalidToken(m)) if m.contains("expired"))
}

#[tokio::test]
async fn an_access_token_is_accepted_up_to_one_second_before_its_exp_and_refused_from_it() {
    for edge in [-1, 0, 1] {
        // Checked for the first time at the edge: the signature path.
        let k = Kit::new().await;
        let s = k.signed_in().await;
        let token = s.tokens.access_token.expose().clone();
        k.advance(k.p.settings.access_token_ttl + edge);
        let first = check_access_token(&k.p, &token).await;

        // Checked when issued, then at the edge: the verified-token cache.
        let k = Kit::new().await;
        let s = k.signed_in().await;
        let token = s.tokens.access_token.expose().clone();
        check_access_token(&k.p, &token).await.unwrap();
        k.advance(k.p.settings.access_token_ttl + edge);
        let cached = check_access_token(&k.p, &token).await;

        for (path, result) in [("verified", first), ("cached", cached)] {
            if edge < 0 {
                assert!(result.is_ok(), "{path}, {edge}s from exp: {result:?}");
            } else {
                assert!(expired(&result), "{path}, {edge}s from exp: {result:?}");
            }
        }
    }
}
