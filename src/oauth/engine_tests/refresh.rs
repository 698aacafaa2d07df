//! Refresh tokens: idle and absolute lifetimes, the reuse grace window, reuse detection, and how
//! the session behind a grant bounds it.

use crate::oauth::OAuthError;
use crate::oauth::introspect::check_access_token;
use crate::oauth::tokens::TokenResponse;
use crate::store::{RefreshTokenStore, SessionStore};
use crate::testkit::{Kit, SignedIn, T0, invalid_grant, refresh_token};

/// Which side of an edge a check stands on.
const EDGES: [i64; 3] = [-1, 0, 1];

/// A fresh grant whose first refresh token is presented `secs` after it was issued.
async fn first_refresh_after(secs: i64) -> Result<TokenResponse, OAuthError> {
    let k = Kit::new().await;
    let s = k.signed_in().await;
    k.advance(secs);
    k.refresh(&s.client, &s.refresh_token()).await
}

#[tokio::test]
async fn a_refresh_token_is_honoured_up_to_one_second_before_its_idle_limit_and_refused_from_it() {
    let idle = crate::testkit::settings().refresh_idle_ttl;
    for edge in EDGES {
        let result = first_refresh_after(idle + edge).await;
        if edge < 0 {
            assert!(result.is_ok(), "{edge}s from the idle limit: {result:?}");
        } else {
            let e = result.unwrap_err();
            assert!(
                invalid_grant(&e, "expired after inactivity"),
                "{edge}s from the idle limit: {e:?}"
            );
        }
    }
}

#[tokio::test]
async fn each_refresh_moves_the_idle_limit_to_one_idle_lifetime_after_it() {
    let k = Kit::new().await;
    let idle = k.p.settings.refresh_idle_ttl;
    let s = k.signed_in().await;

    k.advance(idle - 1);
    let second = k.refresh(&s.client, &s.refresh_token()).await.unwrap();
    k.advance(idle - 1);
    let third = k
        .refresh(&s.client, &refresh_token(&second))
        .await
        .expect("the successor's idle limit counts from its own issue");

    k.advance(idle);
    let e = k
        .refresh(&s.client, &refresh_token(&third))
        .await
        .unwrap_err();
    assert!(invalid_grant(&e, "expired after inactivity"), "{e:?}");
}

/// A family refreshed every 30 s (idle limit 40 s) from `T0`, whose absolute end is `T0 + 100`.
/// Its newest token, issued at `T0 + 90`, is presented at `at`.
async fn busy_family_presented_at(at: i64) -> Result<TokenResponse, OAuthError> {
    let k = Kit::with(|s| {
        s.refresh_idle_ttl = 40;
        s.refresh_absolute_ttl = 100;
    })
    .await;
    let s = k.signed_in().await;
    let mut current = s.refresh_token();
    for _ in 0..3 {
        k.advance(30);
        current = refresh_token(&k.refresh(&s.client, &current).await.unwrap());
    }
    assert_eq!(k.now(), T0 + 90);
    k.set(at);
    k.refresh(&s.client, &current).await
}

#[tokio::test]
async fn a_family_in_daily_use_ends_at_its_absolute_lifetime_to_the_second() {
    for edge in EDGES {
        let result = busy_family_presented_at(T0 + 100 + edge).await;
        if edge < 0 {
            assert!(result.is_ok(), "{edge}s from the family's end: {result:?}");
        } else {
            let e = result.unwrap_err();
            assert!(
                invalid_grant(&e, "maximum lifetime"),
                "{edge}s from the family's end: {e:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_successor_never_gets_an_idle_limit_past_its_familys_end() {
    let k = Kit::with(|s| {
        s.refresh_idle_ttl = 40;
        s.refresh_absolute_ttl = 100;
    })
    .await;
    let s = k.signed_in().await;
    let mut last = s.tokens.clone();
    for _ in 0..3 {
        k.advance(30);
        last = k.refresh(&s.client, &refresh_token(&last)).await.unwrap();
    }
    let record =
        k.p.store
            .find_refresh(&k.p.crypto.token_hash(&refresh_token(&last)))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(record.expires_at, T0 + 100);
    assert_eq!(record.idle_expires_at, T0 + 100, "not T0 + 90 + 40");
}

/// A grant whose first token was rotated at `T0`, the rotated one then replayed `after` seconds
/// later. Returns the kit, the grant, the successor and the replay's answer.
async fn replayed_after(
    after: i64,
) -> (
    Kit,
    SignedIn,
    TokenResponse,
    Result<TokenResponse, OAuthError>,
) {
    let k = Kit::new().await;
    let s = k.signed_in().await;
    let successor = k.refresh(&s.client, &s.refresh_token()).await.unwrap();
    k.advance(after);
    let replay = k.refresh(&s.client, &s.refresh_token()).await;
    (k, s, successor, replay)
}

#[tokio::test]
async fn a_rotated_token_replayed_until_the_last_second_of_the_grace_window_gets_the_same_successor()
 {
    let grace = crate::testkit::settings().refresh_reuse_grace;
    for edge in [-1, 0] {
        let (k, s, successor, replay) = replayed_after(grace + edge).await;
        let replay = replay.unwrap_or_else(|e| panic!("{edge}s from the grace end: {e:?}"));
        assert_eq!(
            refresh_token(&replay),
            refresh_token(&successor),
            "{edge}s from the grace end: the same successor, not a fork"
        );
        k.refresh(&s.client, &refresh_token(&successor))
            .await
            .expect("the successor still works");
        assert!(k.resolve(&s.cookie).await.is_some(), "the session lives on");
    }
}

#[tokio::test]
async fn a_rotated_token_replayed_one_second_after_the_grace_window_ends_the_family_and_the_session()
 {
    let grace = crate::testkit::settings().refresh_reuse_grace;
    let (k, s, successor, replay) = replayed_after(grace + 1).await;

    let e = replay.unwrap_err();
    assert!(invalid_grant(&e, "already used"), "{e:?}");
    let e = k
        .refresh(&s.client, &refresh_token(&successor))
        .await
        .unwrap_err();
    assert!(invalid_grant(&e, "revoked"), "the successor too: {e:?}");
    let session =
        k.p.store
            .find_session(&s.session.session.id)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(session.revoked_at, Some(k.now()), "the session ended");
    assert!(k.resolve(&s.cookie).await.is_none());
    let e = check_access_token(&k.p, successor.access_token.expose())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, OAuthError::InvalidToken(m) if m.contains("revoked")),
        "the successor's access token: {e:?}"
    );
}

#[tokio::test]
async fn a_token_two_rotations_old_is_reuse_even_inside_the_grace_window() {
    let k = Kit::new().await;
    let s = k.signed_in().await;
    let b = k.refresh(&s.client, &s.refresh_token()).await.unwrap();
    let c = k.refresh(&s.client, &refresh_token(&b)).await.unwrap();

    let e = k.refresh(&s.client, &s.refresh_token()).await.unwrap_err();
    assert!(invalid_grant(&e, "already used"), "{e:?}");
    let e = k.refresh(&s.client, &refresh_token(&c)).await.unwrap_err();
    assert!(invalid_grant(&e, "revoked"), "the newest token too: {e:?}");
}

#[tokio::test]
async fn a_refresh_token_outlives_the_idle_end_of_the_session_it_came_from() {
    // Today a grant is bound to its session's revocation, not to its session's lifetimes.
    let k = Kit::new().await;
    let idle = k.p.settings.session_idle_ttl;
    assert!(idle < k.p.settings.refresh_idle_ttl);
    let s = k.signed_in().await;

    k.advance(idle + 1);
    assert!(k.resolve(&s.cookie).await.is_none(), "the session is idle");
    k.refresh(&s.client, &s.refresh_token())
        .await
        .expect("the refresh token still works");
}

#[tokio::test]
async fn a_refresh_token_outlives_the_absolute_end_of_the_session_it_came_from() {
    let k = Kit::with(|s| {
        s.session_absolute_ttl = 600;
        s.refresh_idle_ttl = 3600;
    })
    .await;
    let s = k.signed_in().await;

    k.advance(601);
    assert!(
        k.resolve(&s.cookie).await.is_none(),
        "the session has ended"
    );
    k.refresh(&s.client, &s.refresh_token())
        .await
        .expect("the refresh token still works");
}

#[tokio::test]
async fn a_refresh_token_stops_at_once_when_its_session_is_revoked() {
    let k = Kit::new().await;
    let s = k.signed_in().await;
    k.advance(1);
    k.p.revoke_session(&s.session.session.id).await.unwrap();

    let e = k.refresh(&s.client, &s.refresh_token()).await.unwrap_err();
    assert!(invalid_grant(&e, "revoked"), "{e:?}");
}
