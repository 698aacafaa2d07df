//! The token endpoint's windows: failed requests per address (a fixed minute from the first
//! failure) and failed client authentications per address (`client_auth_failure_window`).

use crate::oauth::OAuthError;
use crate::testkit::{Kit, T0};

const EDGES: [i64; 3] = [-1, 0, 1];
const SECRET: &str = "s3cret-s3cret";

/// A kit whose token endpoint refuses an address after three failed requests a minute.
async fn strict() -> Kit {
    Kit::with(|s| s.token_failure_limit = 3).await
}

async fn fail_with_unknown_codes(k: &Kit, times: usize) {
    let client = match k.p.client("webapp").await.unwrap() {
        Some(c) => c,
        None => k.public_client("webapp").await,
    };
    for _ in 0..times {
        let e = k.redeem(&client, "no-such-code").await.unwrap_err();
        assert!(matches!(e, OAuthError::InvalidGrant(_)), "{e:?}");
    }
}

#[tokio::test]
async fn an_address_over_its_failed_request_quota_is_refused_until_the_minute_from_its_first_failure_ends()
 {
    for edge in EDGES {
        let k = strict().await;
        let service = k.service_client("reporter", SECRET).await;
        fail_with_unknown_codes(&k, 3).await;
        k.set(T0 + 60 + edge);
        let r = k.client_credentials(&service, SECRET).await;
        if edge < 0 {
            assert_eq!(r.unwrap_err(), OAuthError::RateLimited(1), "{edge}s");
        } else {
            assert!(r.is_ok(), "{edge}s from the minute's end: {r:?}");
        }
    }
}

#[tokio::test]
async fn an_address_over_its_quota_may_still_refresh_a_live_token() {
    let k = strict().await;
    let s = k.signed_in().await;
    fail_with_unknown_codes(&k, 3).await;
    k.advance(30);

    k.refresh(&s.client, &s.refresh_token())
        .await
        .expect("a live refresh token goes through");
    let e = k.refresh(&s.client, "junk").await.unwrap_err();
    assert_eq!(e, OAuthError::RateLimited(30), "junk does not");
}

#[tokio::test]
async fn an_address_that_failed_client_authentication_too_often_is_refused_until_its_window_ends() {
    let window = 900;
    for edge in EDGES {
        let k = Kit::with(|s| {
            s.client_auth_failure_limit = 3;
            s.client_auth_failure_window = window;
        })
        .await;
        let service = k.service_client("reporter", SECRET).await;
        for _ in 0..3 {
            let e = k
                .client_credentials(&service, "wrong-wrong")
                .await
                .unwrap_err();
            assert!(matches!(e, OAuthError::InvalidClient(_)), "{e:?}");
        }
        k.advance(window + edge);
        let r = k.client_credentials(&service, SECRET).await;
        if edge < 0 {
            // Today the answer names the whole window, not the second that is left of it.
            assert_eq!(r.unwrap_err(), OAuthError::RateLimited(window), "{edge}s");
        } else {
            assert!(r.is_ok(), "{edge}s from the window's end: {r:?}");
        }
    }
}
