//! "Devices and sessions": a person sees their own live sessions and ends any of them. Only
//! their own: a session id belonging to someone else reads exactly like one that has ended.

use crate::audit::AuditEvent;
use crate::auth::session::{device_label, ends_at, is_alive};
use crate::clock::Timestamp;
use crate::oauth::Provider;
use crate::store::{Session, SessionStore, StoreResult, User};

/// One live session of a person, as their sessions page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub session_id: String,
    /// A short label from the User-Agent ("Firefox on Linux").
    pub label: String,
    pub ip: Option<String>,
    /// The applications that received a code or a refresh token through this session.
    pub clients: Vec<String>,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    /// When it ends if not used again (its absolute end or its idle end, whichever is first).
    pub ends_at: Timestamp,
}

/// The person's sessions alive at `now` (idle ones excluded), newest first, with the
/// applications each one signed in to. A failure to read any of it is an error, not an empty
/// list.
pub async fn list_devices(p: &Provider, user: &User, now: Timestamp) -> StoreResult<Vec<Device>> {
    let idle_ttl = p.settings.session_idle_ttl;
    // Two queries however many sessions there are (not one per session).
    let sessions = p
        .store
        .list_user_sessions_with_clients(&user.id, now)
        .await?;
    let mut devices = Vec::with_capacity(sessions.len());
    for (s, clients) in sessions
        .into_iter()
        .filter(|(s, _)| is_alive(s, idle_ttl, now))
    {
        devices.push(Device {
            label: device_label(s.user_agent.as_deref()),
            ends_at: ends_at(&s, idle_ttl),
            clients,
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            ip: s.ip,
            session_id: s.id,
        });
    }
    Ok(devices)
}

/// What [`end_own_session`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndOwn {
    /// This session of the person's ended now, with its tokens.
    Ended(Session),
    /// The id names no session of the person's (unknown, or someone else's): nothing changed.
    NotTheirs,
}

/// Ends one of `user`'s sessions by id, on their own request, and audits it. A session of
/// anyone else is left alone and answered like a session that had already ended.
pub async fn end_own_session(p: &Provider, user: &User, session_id: &str) -> StoreResult<EndOwn> {
    let session = match p.store.find_session(session_id).await? {
        Some(s) if s.user_id == user.id => s,
        _ => return Ok(EndOwn::NotTheirs),
    };
    p.revoke_session(&session.id).await?;
    p.audit(
        AuditEvent::new("session.revoked")
            .actor(&user.id)
            .subject(&user.id)
            .detail("session", session.id.clone()),
    )
    .await;
    Ok(EndOwn::Ended(session))
}
