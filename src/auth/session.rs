//! Browser SSO sessions: a random cookie value, stored only as a keyed hash, with idle and
//! absolute limits. A new session (and cookie) is made at every sign-in: no fixation.

use crate::clock::Timestamp;
use crate::config::SessionLimitPolicy;
use crate::crypto::{random_id, random_token};
use crate::oauth::Provider;
use crate::store::{Session, SessionStore, StoreResult, User, UserStore};

/// A session that is alive now, with its user.
#[derive(Debug, Clone)]
pub struct ActiveSession {
    pub session: Session,
    pub user: User,
}

/// Activity is written at most this often, not on every request.
const TOUCH_EVERY: i64 = 60;

/// When `session` ends if it is not used again: at its absolute end, or `idle_ttl` seconds after
/// it was last seen, whichever comes first.
pub fn ends_at(session: &Session, idle_ttl: i64) -> Timestamp {
    session.expires_at.min(session.last_seen_at + idle_ttl)
}

/// Whether `session` is alive at `now`: not ended by anyone, and neither past its absolute end
/// nor idle for `idle_ttl` seconds or more. The one place the idle rule is written.
pub fn is_alive(session: &Session, idle_ttl: i64, now: Timestamp) -> bool {
    session.revoked_at.is_none() && ends_at(session, idle_ttl) > now
}

pub struct DeviceInfo {
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// Starts a session for `user`; returns the cookie value and the session.
pub async fn start(
    p: &Provider,
    user: &User,
    amr: Vec<String>,
    device: DeviceInfo,
    now: Timestamp,
) -> StoreResult<(String, ActiveSession)> {
    let (cookie, session) = new_session(p, user, amr, device, now);
    p.store.insert_session(&session).await?;
    Ok((
        cookie,
        ActiveSession {
            session,
            user: user.clone(),
        },
    ))
}

/// A new session for `user` and its cookie value, not stored yet (a completed second step
/// stores it in its own transaction).
pub fn new_session(
    p: &Provider,
    user: &User,
    amr: Vec<String>,
    device: DeviceInfo,
    now: Timestamp,
) -> (String, Session) {
    let cookie = random_token();
    let session = Session {
        id: random_id(),
        token_hash: p.crypto.token_hash(&cookie),
        user_id: user.id.clone(),
        created_at: now,
        created_ms: p.clock.now_millis(),
        last_seen_at: now,
        expires_at: now + p.settings.session_absolute_ttl,
        auth_time: now,
        amr,
        user_agent: device.user_agent.map(|ua| ua.chars().take(256).collect()),
        ip: device.ip,
        revoked_at: None,
    };
    (cookie, session)
}

/// Gives a live session a new cookie value after a privilege change (a new password): the old
/// cookie stops working, the session and what is bound to it (its `sid`, refresh tokens, limits)
/// stay. Returns the new cookie value, or `None` if the session has ended meanwhile.
pub async fn renew_cookie(p: &Provider, session_id: &str) -> StoreResult<Option<String>> {
    let cookie = random_token();
    let renewed = p
        .store
        .replace_session_token(session_id, &p.crypto.token_hash(&cookie))
        .await?;
    Ok(renewed.then_some(cookie))
}

/// Outcome of applying the per-user session limit before a new sign-in.
#[derive(Debug, PartialEq, Eq)]
pub enum Room {
    Available,
    /// These sessions were ended to make room.
    Evicted(Vec<String>),
    Refused,
}

/// Makes room for one more session under `max` (0 = unlimited).
pub async fn make_room(
    p: &Provider,
    user: &User,
    max: u32,
    policy: SessionLimitPolicy,
    now: Timestamp,
) -> StoreResult<Room> {
    let room = plan_room(p, user, max, policy, None, now).await?;
    if let Room::Evicted(ended) = &room {
        for id in ended {
            p.revoke_session(id).await?;
        }
    }
    Ok(room)
}

/// What [`make_room`] would do, without doing it: the sessions to end (newest kept), or a
/// refusal. `ending` (the browser's previous session, ended by the caller anyway) does not
/// count. The caller ends them.
pub async fn plan_room(
    p: &Provider,
    user: &User,
    max: u32,
    policy: SessionLimitPolicy,
    ending: Option<&str>,
    now: Timestamp,
) -> StoreResult<Room> {
    if max == 0 {
        return Ok(Room::Available);
    }
    let live: Vec<Session> = p
        .store
        .list_user_sessions(&user.id, now)
        .await?
        .into_iter()
        .filter(|s| is_alive(s, p.settings.session_idle_ttl, now))
        .filter(|s| Some(s.id.as_str()) != ending)
        .collect();
    let max = max as usize;
    if live.len() < max {
        return Ok(Room::Available);
    }
    if policy == SessionLimitPolicy::Refuse {
        return Ok(Room::Refused);
    }
    // Newest first: keep the newest max-1, end the rest.
    let evicted = live.iter().skip(max - 1).map(|s| s.id.clone()).collect();
    Ok(Room::Evicted(evicted))
}

/// The live session behind a cookie value, if any.
pub async fn resolve(
    p: &Provider,
    cookie: &str,
    now: Timestamp,
) -> StoreResult<Option<ActiveSession>> {
    if cookie.len() > 128 {
        return Ok(None);
    }
    let Some(session) = p
        .store
        .find_session_by_token(&p.crypto.token_hash(cookie))
        .await?
    else {
        return Ok(None);
    };
    if !is_alive(&session, p.settings.session_idle_ttl, now) {
        return Ok(None);
    }
    let Some(user) = p.store.find_user(&session.user_id).await? else {
        return Ok(None);
    };
    if user.disabled {
        return Ok(None);
    }
    if now - session.last_seen_at >= TOUCH_EVERY {
        p.store.touch_session(&session.id, now).await?;
    }
    Ok(Some(ActiveSession { session, user }))
}

/// A short human label for a User-Agent ("Firefox on Linux"), for the sessions pages.
pub fn device_label(user_agent: Option<&str>) -> String {
    let Some(ua) = user_agent else {
        return "Unknown device".into();
    };
    let browser = if ua.contains("Edg/") {
        "Edge"
    } else if ua.contains("Firefox/") {
        "Firefox"
    } else if ua.contains("Chrome/") || ua.contains("Chromium/") {
        "Chrome"
    } else if ua.contains("Safari/") {
        "Safari"
    } else if ua.starts_with("curl/") {
        "curl"
    } else {
        "Browser"
    };
    let os = if ua.contains("iPhone") || ua.contains("iPad") {
        "iOS"
    } else if ua.contains("Android") {
        "Android"
    } else if ua.contains("Windows") {
        "Windows"
    } else if ua.contains("Mac OS X") || ua.contains("Macintosh") {
        "macOS"
    } else if ua.contains("Linux") || ua.contains("X11") {
        "Linux"
    } else {
        ""
    };
    if os.is_empty() {
        browser.to_string()
    } else {
        format!("{browser} on {os}")
    }
}

#[cfg(test)]
mod tests {
    use super::{device_label, ends_at, is_alive};
    use crate::store::Session;

    const IDLE: i64 = 600;

    /// A session last seen at 1_000, with its absolute end at `expires_at`.
    fn session(expires_at: i64) -> Session {
        Session {
            id: "s".into(),
            token_hash: Vec::new(),
            user_id: "u".into(),
            created_at: 0,
            created_ms: 0,
            last_seen_at: 1_000,
            expires_at,
            auth_time: 0,
            amr: Vec::new(),
            user_agent: None,
            ip: None,
            revoked_at: None,
        }
    }

    #[test]
    fn an_unused_session_ends_when_its_idle_time_is_up() {
        let s = session(100_000);
        assert_eq!(ends_at(&s, IDLE), 1_600);
        assert!(is_alive(&s, IDLE, 1_599));
        assert!(!is_alive(&s, IDLE, 1_600));
        assert!(!is_alive(&s, IDLE, 1_601));
    }

    #[test]
    fn a_busy_session_still_ends_at_its_absolute_end() {
        let s = session(1_300);
        assert_eq!(ends_at(&s, IDLE), 1_300);
        assert!(is_alive(&s, IDLE, 1_299));
        assert!(!is_alive(&s, IDLE, 1_300));
        assert!(!is_alive(&s, IDLE, 1_301));
    }

    #[test]
    fn an_ended_session_is_not_alive_however_recent() {
        let mut s = session(100_000);
        s.revoked_at = Some(1_000);
        assert!(!is_alive(&s, IDLE, 1_001));
    }

    #[test]
    fn devices_are_labelled_from_the_user_agent() {
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
        assert_eq!(device_label(Some(chrome)), "Chrome on Linux");
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Mobile Safari/604.1";
        assert_eq!(device_label(Some(iphone)), "Safari on iOS");
        assert_eq!(device_label(None), "Unknown device");
    }
}
