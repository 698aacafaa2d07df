//! Operator actions on sessions: live sessions across users, filtered by user, address or
//! client and paged; end one, all of a user's, or a selection.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use super::{Actor, AdminError};
use crate::audit::AuditEvent;
use crate::auth::session::{device_label, ends_at};
use crate::clock::Timestamp;
use crate::oauth::Provider;
use crate::store::{SessionFilter, SessionStore, UserStore};

/// The most sessions one page holds, and the most one bulk action ends.
pub const MAX_PAGE: i64 = 200;

/// A live session as operators see it (never its cookie).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SessionView {
    pub id: String,
    pub user_id: String,
    pub email: String,
    pub device: String,
    pub ip: Option<String>,
    /// The clients it gave a code or a refresh token to.
    pub clients: Vec<String>,
    pub started_at: Timestamp,
    pub last_seen_at: Timestamp,
    /// When it ends unless used again (idle) or at the latest (absolute).
    pub ends_at: Timestamp,
    pub amr: Vec<String>,
}

/// One page, and the cursor of the next (`None` on the last).
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    pub sessions: Vec<SessionView>,
    pub next: Option<String>,
}

fn cursor(created_ms: i64, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{created_ms}:{id}"))
}

fn parse_cursor(text: &str) -> Result<(i64, String), AdminError> {
    let bad = || AdminError::Invalid("that page link is not valid".into());
    let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (ms, id) = raw.split_once(':').ok_or_else(bad)?;
    Ok((ms.parse().map_err(|_| bad())?, id.to_string()))
}

/// What an operator types to narrow the list: a user by email or id, an address, a client.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub user: String,
    pub ip: String,
    pub client: String,
}

/// Live sessions matching `query`, newest first, `limit` a page (capped at [`MAX_PAGE`]),
/// from `cursor` (a previous page's `next`).
pub async fn list(
    p: &Provider,
    query: &Query,
    cursor_text: Option<&str>,
    limit: i64,
) -> Result<Page, AdminError> {
    let user = query.user.trim();
    let user_id = if user.is_empty() {
        String::new()
    } else if user.contains('@') {
        match p
            .store
            .find_user_by_email(&crate::auth::email::normalise(user))
            .await?
        {
            Some(u) => u.id,
            None => {
                return Ok(Page {
                    sessions: Vec::new(),
                    next: None,
                });
            }
        }
    } else {
        user.to_string()
    };
    let filter = SessionFilter {
        user_id,
        ip: query.ip.trim().to_string(),
        client_id: query.client.trim().to_string(),
    };
    let after = cursor_text.map(parse_cursor).transpose()?;
    let limit = limit.clamp(1, MAX_PAGE);
    let now = p.now();
    let idle = p.settings.session_idle_ttl;
    let mut rows = p
        .store
        .list_live_sessions(
            &filter,
            after.as_ref().map(|(ms, id)| (*ms, id.as_str())),
            limit + 1,
            now,
            now - idle,
        )
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = if more {
        rows.last().map(|(s, _)| cursor(s.created_ms, &s.id))
    } else {
        None
    };
    let mut sessions = Vec::with_capacity(rows.len());
    for (s, email) in rows {
        let clients = p.store.session_clients(&s.id).await?;
        sessions.push(SessionView {
            device: device_label(s.user_agent.as_deref()),
            ends_at: ends_at(&s, idle),
            id: s.id,
            user_id: s.user_id,
            email,
            ip: s.ip,
            clients,
            started_at: s.created_at,
            last_seen_at: s.last_seen_at,
            amr: s.amr,
        });
    }
    Ok(Page { sessions, next })
}

/// Ends one session (its refresh tokens and access tokens stop on every replica).
pub async fn revoke(p: &Provider, actor: &Actor, session_id: &str) -> Result<(), AdminError> {
    let session = p
        .store
        .find_session(session_id)
        .await?
        .filter(|s| s.revoked_at.is_none())
        .ok_or(AdminError::NotFound("session"))?;
    p.revoke_session(&session.id).await?;
    p.audit(
        AuditEvent::new("session.revoked")
            .actor(actor.audit_name())
            .subject(&session.user_id)
            .detail("session", session.id.clone()),
    )
    .await;
    Ok(())
}

/// Ends a selection of sessions (at most [`MAX_PAGE`]); unknown or already ended ones are
/// skipped. Returns how many ended.
pub async fn revoke_many(p: &Provider, actor: &Actor, ids: &[String]) -> Result<u64, AdminError> {
    if ids.len() as i64 > MAX_PAGE {
        return Err(AdminError::Invalid(format!(
            "at most {MAX_PAGE} sessions at a time"
        )));
    }
    let mut ended = 0;
    for id in ids {
        match revoke(p, actor, id).await {
            Ok(()) => ended += 1,
            Err(AdminError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(ended)
}

/// Ends every session of a user (by id), with their tokens. Returns how many ended.
pub async fn revoke_user(p: &Provider, actor: &Actor, user_id: &str) -> Result<u64, AdminError> {
    let user = p
        .store
        .find_user(user_id)
        .await?
        .ok_or(AdminError::NotFound("user"))?;
    let ended = p.revoke_user_sessions(&user.id, None).await?;
    p.audit(
        AuditEvent::new("sessions.revoked_all")
            .actor(actor.audit_name())
            .subject(&user.id)
            .detail("ended", ended)
            .detail("kept_current", false),
    )
    .await;
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Kit;

    #[tokio::test]
    async fn live_sessions_are_listed_across_users_filtered_and_paged_newest_first() {
        let kit = Kit::new().await;
        let p = &kit.p;
        let ada = kit.user("ada@example.test").await;
        let bob = kit.user("bob@example.test").await;
        let client = kit.public_client("webapp").await;
        let mut ids = Vec::new();
        for user in [&ada, &bob, &ada] {
            let (_, s) = kit.session(user).await;
            ids.push(s.session.id.clone());
            kit.advance(1);
        }
        let (_, with_code) = kit.session(&bob).await;
        kit.code(&client, &with_code).await;

        let everyone = list(p, &Query::default(), None, 50).await.unwrap();
        assert_eq!(everyone.sessions.len(), 4);
        assert_eq!(
            everyone.sessions[0].id, with_code.session.id,
            "newest first"
        );
        assert_eq!(everyone.sessions[0].clients, vec!["webapp"]);
        assert_eq!(everyone.next, None);

        let adas = |q: Query| async move { list(p, &q, None, 50).await.unwrap().sessions };
        let by_email = adas(Query {
            user: "ADA@example.test".into(),
            ..Default::default()
        })
        .await;
        assert_eq!(by_email.len(), 2);
        assert!(by_email.iter().all(|s| s.email == "ada@example.test"));
        let by_client = adas(Query {
            client: "webapp".into(),
            ..Default::default()
        })
        .await;
        assert_eq!(by_client.len(), 1);
        let nobody = adas(Query {
            user: "nobody@example.test".into(),
            ..Default::default()
        })
        .await;
        assert!(nobody.is_empty());

        // Pages of one walk all four exactly once.
        let mut seen = Vec::new();
        let mut next = None;
        loop {
            let page = list(p, &Query::default(), next.as_deref(), 1)
                .await
                .unwrap();
            seen.extend(page.sessions.into_iter().map(|s| s.id));
            match page.next {
                Some(n) => next = Some(n),
                None => break,
            }
        }
        assert_eq!(seen.len(), 4);
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 4);
        assert!(matches!(
            list(p, &Query::default(), Some("not a cursor!"), 10).await,
            Err(AdminError::Invalid(_))
        ));

        // Idle sessions are not live.
        kit.advance(p.settings.session_idle_ttl);
        assert!(
            list(p, &Query::default(), None, 50)
                .await
                .unwrap()
                .sessions
                .is_empty()
        );
    }

    #[tokio::test]
    async fn sessions_end_one_by_one_in_a_selection_or_all_of_a_user() {
        let kit = Kit::new().await;
        let p = &kit.p;
        let ada = kit.user("ada@example.test").await;
        let bob = kit.user("bob@example.test").await;
        let (c1, a1) = kit.session(&ada).await;
        let (c2, a2) = kit.session(&ada).await;
        let (c3, _) = kit.session(&bob).await;
        let actor = Actor::Admin("root".into());

        revoke(p, &actor, &a1.session.id).await.unwrap();
        assert!(matches!(
            revoke(p, &actor, &a1.session.id).await,
            Err(AdminError::NotFound(_))
        ));
        let ended = revoke_many(
            p,
            &actor,
            &[a1.session.id.clone(), a2.session.id.clone(), "nope".into()],
        )
        .await
        .unwrap();
        assert_eq!(ended, 1);
        assert_eq!(revoke_user(p, &actor, &bob.id).await.unwrap(), 1);
        assert!(
            list(p, &Query::default(), None, 50)
                .await
                .unwrap()
                .sessions
                .is_empty()
        );
        for cookie in [c1, c2, c3] {
            assert!(
                kit.resolve(&cookie).await.is_none(),
                "the cookie no longer signs in"
            );
        }
        assert!(matches!(
            revoke_user(p, &actor, "nobody").await,
            Err(AdminError::NotFound(_))
        ));
        let too_many: Vec<String> = (0..=MAX_PAGE).map(|i| i.to_string()).collect();
        assert!(matches!(
            revoke_many(p, &actor, &too_many).await,
            Err(AdminError::Invalid(_))
        ));
    }
}
