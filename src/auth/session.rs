//! Browser SSO sessions: a random cookie value, stored only as a keyed hash, with idle and
//! absolute limits. A new session (and cookie) is made at every sign-in: no fixation.

use crate::clock::Timestamp;
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
    let cookie = random_token();
    let session = Session {
        id: random_id(),
        token_hash: p.crypto.token_hash(&cookie),
        user_id: user.id.clone(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + p.settings.session_absolute_ttl,
        auth_time: now,
        amr,
        user_agent: device.user_agent.map(|ua| ua.chars().take(256).collect()),
        ip: device.ip,
        revoked_at: None,
    };
    p.store.insert_session(&session).await?;
    Ok((cookie, ActiveSession { session, user: user.clone() }))
}

/// The live session behind a cookie value, if any.
pub async fn resolve(p: &Provider, cookie: &str, now: Timestamp) -> StoreResult<Option<ActiveSession>> {
    if cookie.len() > 128 {
        return Ok(None);
    }
    let Some(session) = p.store.find_session_by_token(&p.crypto.token_hash(cookie)).await? else {
        return Ok(None);
    };
    let alive = session.revoked_at.is_none()
        && session.expires_at > now
        && session.last_seen_at + p.settings.session_idle_ttl > now;
    if !alive {
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
