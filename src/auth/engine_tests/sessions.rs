//! Browser sessions: the idle limit (and how activity moves it), the absolute limit, and the
//! session limit's view of idle sessions.

use crate::auth::session::{Room, make_room};
use crate::config::SessionLimitPolicy;
use crate::testkit::{Kit, T0};

const EDGES: [i64; 3] = [-1, 0, 1];

/// Whether a session started at `T0` and left alone is alive `secs` later.
async fn alive_after_idling(secs: i64) -> bool {
    let k = Kit::new().await;
    let user = k.user("ada@example.test").await;
    let (cookie, _) = k.session(&user).await;
    k.advance(secs);
    k.resolve(&cookie).await.is_some()
}

#[tokio::test]
async fn a_session_left_alone_lives_until_one_second_before_its_idle_limit() {
    let idle = crate::testkit::settings().session_idle_ttl;
    for edge in EDGES {
        assert_eq!(
            alive_after_idling(idle + edge).await,
            edge < 0,
            "{edge}s from the idle limit"
        );
    }
}

#[tokio::test]
async fn activity_moves_the_idle_limit_only_once_a_minute_has_passed_since_the_last_recorded_use() {
    let k = Kit::new().await;
    let idle = k.p.settings.session_idle_ttl;
    let user = k.user("ada@example.test").await;

    // Used 59 s after the last recorded use: not written, the limit stays at T0 + idle.
    let (cookie, _) = k.session(&user).await;
    k.advance(59);
    assert!(k.resolve(&cookie).await.is_some());
    k.set(T0 + idle);
    assert!(k.resolve(&cookie).await.is_none(), "the limit did not move");

    // Used 60 s after: written, the limit moves to that use + idle. Every check is a use, so
    // each side of the new limit is checked on a session of its own.
    let (before, _) = k.session(&user).await;
    let (at, _) = k.session(&user).await;
    k.advance(60);
    let used = k.now();
    assert!(k.resolve(&before).await.is_some());
    assert!(k.resolve(&at).await.is_some());
    k.set(used + idle - 1);
    assert!(k.resolve(&before).await.is_some(), "the limit moved");
    k.set(used + idle);
    assert!(
        k.resolve(&at).await.is_none(),
        "one idle lifetime after the use"
    );
}

/// Whether a session used every 1000 s from `T0` (idle limit 1800 s, absolute limit 7200 s) is
/// alive at `at`.
async fn busy_session_alive_at(at: i64) -> bool {
    let k = Kit::with(|s| {
        s.session_idle_ttl = 1800;
        s.session_absolute_ttl = 7200;
    })
    .await;
    let user = k.user("ada@example.test").await;
    let (cookie, _) = k.session(&user).await;
    for _ in 0..7 {
        k.advance(1000);
        assert!(k.resolve(&cookie).await.is_some(), "in use at {}", k.now());
    }
    k.set(at);
    k.resolve(&cookie).await.is_some()
}

#[tokio::test]
async fn a_session_in_use_ends_at_its_absolute_limit_to_the_second() {
    for edge in EDGES {
        assert_eq!(
            busy_session_alive_at(T0 + 7200 + edge).await,
            edge < 0,
            "{edge}s from the absolute limit"
        );
    }
}

#[tokio::test]
async fn an_idle_session_stops_counting_against_the_session_limit_at_its_idle_limit() {
    let idle = crate::testkit::settings().session_idle_ttl;
    for edge in EDGES {
        let k = Kit::new().await;
        let user = k.user("ada@example.test").await;
        k.session(&user).await;
        k.advance(idle + edge);
        let room = make_room(&k.p, &user, 1, SessionLimitPolicy::Refuse, k.now())
            .await
            .unwrap();
        let expected = if edge < 0 {
            Room::Refused
        } else {
            Room::Available
        };
        assert_eq!(room, expected, "{edge}s from the idle limit");
    }
}

#[tokio::test]
async fn a_session_past_its_absolute_limit_stops_counting_against_the_session_limit() {
    for edge in EDGES {
        let k = Kit::with(|s| {
            s.session_idle_ttl = 1800;
            s.session_absolute_ttl = 600;
        })
        .await;
        let user = k.user("ada@example.test").await;
        k.session(&user).await;
        k.advance(600 + edge);
        let room = make_room(&k.p, &user, 1, SessionLimitPolicy::Refuse, k.now())
            .await
            .unwrap();
        let expected = if edge < 0 {
            Room::Refused
        } else {
            Room::Available
        };
        assert_eq!(room, expected, "{edge}s from the absolute limit");
    }
}
