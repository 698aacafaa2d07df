//! The revocation feed for offline verifiers (`GET /ssf/events`, docs/DESIGN.md "Revocation
//! feed"): the revocation log (`crate::revocation`) as Security Event Tokens (RFC 8417), one per
//! entry, signed with the current signing key, in the shape of an RFC 8936 poll response plus a
//! cursor. A resource server that holds only the JWKS follows it and refuses a revoked user's
//! access token within seconds, without calling introspection per request.
//!
//! **Who reads it.** A client's own token (client_credentials) carrying
//! [`FEED_SCOPE`], from a client still registered for that scope. A person's token is refused
//! even with the scope: the feed names every user whose sessions end.
//!
//! **The cursor.** Sequence numbers are handed out in order but, on PostgreSQL, may become
//! visible out of order (an insert holding 10 commits after one holding 11). A cursor is
//! therefore the highest number handed out plus the numbers it passed over while they were
//! not visible (each with when that was noticed): the next poll asks for both, so an entry
//! that commits late is still delivered, exactly once. A passed-over number is watched for
//! [`SETTLE`] seconds (an entry is one autocommitted insert: milliseconds in flight); after
//! that it was rolled back or purged. Only a run of at most [`MAX_GAPS`] numbers next to a
//! recent entry is watched: no more inserts than that can be in flight at once.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::error::OAuthError;
use super::introspect::check_access_token;
use super::params::Params;
use super::{Provider, scope};
use crate::clock::Timestamp;
use crate::crypto::{b64, b64_decode};
pub use crate::revocation::{LogCursor as Cursor, MAX_GAPS, SETTLE};
use crate::revocation::{Revocation, RevocationKind, advance};
use crate::store::RevocationStore;

/// The scope a client's token needs to read the feed.
pub const FEED_SCOPE: &str = "tessera:revocations";
/// CAEP 1.0 "session revoked": used for one session and for all of a user's sessions.
pub const SESSION_REVOKED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
/// Tessera's own event type: one access token revoked (RFC 7009), by `jti`.
pub const TOKEN_REVOKED: &str = "urn:tessera:secevent:access-token-revoked";
/// The delivery method: an authenticated `GET` with a cursor (RFC 8936's response shape).
pub const DELIVERY_METHOD: &str = "urn:tessera:ssf:delivery:cursor-poll";
pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 500;
/// The longest cursor accepted (a full gap list is well under it).
const MAX_CURSOR_LEN: usize = 2048;
const CURSOR_VERSION: &str = "1.";

impl Cursor {
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        format!("{CURSOR_VERSION}{}", b64(&json))
    }

    /// A cursor this feed handed out (any other text is `invalid_request`).
    pub fn decode(text: &str, now: Timestamp) -> Result<Self, OAuthError> {
        let bad =
            || OAuthError::InvalidRequest("the cursor is not one this feed handed out".into());
        if text.len() > MAX_CURSOR_LEN {
            return Err(bad());
        }
        let body = text.strip_prefix(CURSOR_VERSION).ok_or_else(bad)?;
        let json = b64_decode(body).ok_or_else(bad)?;
        let c: Cursor = serde_json::from_slice(&json).map_err(|_| bad())?;
        let sane = c.after >= 0
            && c.gaps.len() <= MAX_GAPS
            && c.gaps
                .iter()
                .all(|(seq, at)| *seq > 0 && *seq < c.after && *at <= now + SETTLE);
        if !sane {
            return Err(bad());
        }
        Ok(c)
    }
}

/// One page of the feed.
#[derive(Debug)]
pub struct Page {
    pub body: Value,
    /// More entries are waiting: poll again at once.
    pub more_available: bool,
    /// Entries in this page (SETs; entries of kinds the feed does not carry are passed over).
    pub sets: usize,
}

/// The client behind a feed request's bearer token, if it may read the feed.
pub async fn reader(p: &Provider, bearer: Option<&str>) -> Result<String, OAuthError> {
    let token = bearer
        .filter(|t| !t.is_empty() && t.len() <= 8192)
        .ok_or_else(|| OAuthError::InvalidToken("a bearer access token is required".into()))?;
    let claims = check_access_token(p, token).await?;
    if !scope::contains(&claims.scope, FEED_SCOPE) {
        return Err(OAuthError::InsufficientScope(format!(
            "the access token lacks the {FEED_SCOPE} scope"
        )));
    }
    if claims.sid.is_some() || claims.sub != claims.client_id {
        return Err(OAuthError::InsufficientScope(
            "the feed is read with a client's own token (client_credentials)".into(),
        ));
    }
    // Still registered for the scope (it may have been taken away since the token was issued).
    let registered = p
        .client(&claims.client_id)
        .await?
        .is_some_and(|c| c.scopes.iter().any(|s| s == FEED_SCOPE));
    if !registered {
        return Err(OAuthError::InsufficientScope(format!(
            "the client is not registered for the {FEED_SCOPE} scope"
        )));
    }
    Ok(claims.client_id)
}

/// Answers `GET /ssf/events?cursor=…&limit=…` for an authenticated reader.
pub async fn poll(p: &Provider, client_id: &str, query: &str) -> Result<Page, OAuthError> {
    let params = Params::parse(query)?;
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                OAuthError::InvalidRequest(format!("limit must be from 1 to {MAX_LIMIT}"))
            })?,
    };
    let now = p.now();
    let cursor = match params.get("cursor") {
        None | Some("") => Cursor::default(),
        Some(text) => Cursor::decode(text, now)?,
    };
    let watched: Vec<(i64, Timestamp)> = cursor
        .gaps
        .iter()
        .copied()
        .filter(|(_, noticed)| noticed + SETTLE >= now)
        .collect();
    let also: Vec<i64> = watched.iter().map(|(seq, _)| *seq).collect();
    let mut rows = p
        .store
        .revocations_after_or_in(cursor.after, &also, now, limit + 1)
        .await?;
    let more_available = rows.len() as i64 > limit;
    rows.truncate(limit as usize);

    let (next, delivered) = advance(&cursor.after, watched, &rows, now);
    let keys = p.keys();
    let signer = keys.signer(now)?;
    let issuer = &p.settings.issuer;
    let mut sets = BTreeMap::new();
    for (seq, r) in &delivered {
        if let Some(claims) = set_claims(issuer, client_id, *seq, r) {
            let jti = set_jti(*seq);
            sets.insert(
                jti,
                Value::String(signer.sign_jwt("secevent+jwt", &claims)?),
            );
        }
    }
    let count = sets.len();
    crate::metrics::inc(&p.metrics.feed_polls);
    Ok(Page {
        body: json!({
            "sets": sets,
            "moreAvailable": more_available,
            "cursor": next.encode(),
            "retention": retention(p),
        }),
        more_available,
        sets: count,
    })
}

/// A SET's `jti`: stable per log entry, so a verifier may deduplicate by it.
pub fn set_jti(seq: i64) -> String {
    format!("rev-{seq}")
}

/// How long a verifier must keep an entry after its `event_timestamp`: one access-token
/// lifetime plus the leeway the log keeps it for.
pub fn retention(p: &Provider) -> i64 {
    p.settings.access_token_ttl + 60
}

/// The claims of the SET for one log entry; `None` for kinds the feed does not carry (a
/// client's changes concern no verifier: it sees a disabled client's tokens expire or checks
/// `client_id` itself).
pub fn set_claims(issuer: &str, aud: &str, seq: i64, r: &Revocation) -> Option<Value> {
    let user = |sub: &str| json!({"format": "iss_sub", "iss": issuer, "sub": sub});
    let (sub_id, event_type, event) = match r.kind {
        RevocationKind::Session => {
            let mut sub_id = json!({
                "format": "complex",
                "session": {"format": "opaque", "id": r.subject},
            });
            if let (Some(uid), Some(map)) = (&r.user_id, sub_id.as_object_mut()) {
                map.insert("user".into(), user(uid));
            }
            (sub_id, SESSION_REVOKED, json!({"event_timestamp": r.at}))
        }
        // "Every token issued at or before T": T is the last second wholly before the event.
        // Tokens of the event's own second are named by their ended sessions' events, and a
        // sign-in right after it (within that second) must not be refused.
        RevocationKind::User => (
            user(&r.subject),
            SESSION_REVOKED,
            json!({"event_timestamp": r.at - 1}),
        ),
        RevocationKind::Jti => (
            json!({"format": "opaque", "id": r.subject}),
            TOKEN_REVOKED,
            json!({"event_timestamp": r.at, "jti": r.subject, "exp": r.expires_at}),
        ),
        RevocationKind::Client | RevocationKind::ClientChanged => return None,
    };
    Some(json!({
        "iss": issuer,
        "iat": r.at,
        "jti": set_jti(seq),
        "aud": aud,
        "sub_id": sub_id,
        "events": { event_type: event },
    }))
}

/// SSF transmitter metadata (`/.well-known/ssf-configuration`).
pub fn metadata(issuer: &str, retention: i64) -> Value {
    json!({
        "spec_version": "1_0",
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/jwks.json"),
        "delivery_methods_supported": [DELIVERY_METHOD],
        "events_endpoint": format!("{issuer}/ssf/events"),
        "events_supported": [SESSION_REVOKED, TOKEN_REVOKED],
        "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6749"}],
        "events_scope": FEED_SCOPE,
        "retention": retention,
    })
}

impl Provider {
    /// After every session of a user ended (`keep` is `None`), records that each token of the
    /// user issued until now is revoked: what an offline verifier refuses by `sub` and `iat`,
    /// whatever session (or none) the token names. With a kept session, the ended sessions'
    /// own entries say it all.
    pub async fn announce_user_revoked(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> crate::store::StoreResult<()> {
        if keep.is_some() {
            return Ok(());
        }
        let mut r = self.revocation(RevocationKind::User, user_id);
        r.user_id = Some(user_id.to_string());
        self.fleet.revoke(&self.store, r).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(kind: RevocationKind, subject: &str, at: i64) -> Option<Revocation> {
        Some(Revocation {
            kind,
            subject: subject.into(),
            at,
            expires_at: at + 600,
            user_id: None,
        })
    }

    #[test]
    fn a_cursor_round_trips_and_anything_else_is_refused() {
        let c = Cursor {
            after: 12,
            gaps: vec![(10, 1000)],
        };
        assert_eq!(Cursor::decode(&c.encode(), 1000).unwrap(), c);
        for bad in [
            "",
            "x",
            "1.",
            "1.!!!",
            "2.eyJhIjoxfQ",
            &format!("1.{}", b64(br#"{"a":-1}"#)),
            &format!("1.{}", b64(br#"{"a":5,"g":[[7,1000]]}"#)),
            &format!("1.{}", b64(br#"{"a":5,"g":[[3,99999]]}"#)),
            &"1.".repeat(2000),
        ] {
            assert!(Cursor::decode(bad, 1000).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_number_passed_over_next_to_a_recent_entry_is_watched_then_delivered_once() {
        let now = 1000;
        // 10 is in flight while 9 and 11 are visible.
        let rows = vec![
            (9, rev(RevocationKind::Session, "s9", now)),
            (11, rev(RevocationKind::Session, "s11", now)),
        ];
        let (c, delivered) = advance(&8, vec![], &rows, now);
        assert_eq!(delivered.len(), 2);
        assert_eq!(
            c,
            Cursor {
                after: 11,
                gaps: vec![(10, now)]
            }
        );
        // 10 commits: it comes back with 12, and is watched no more.
        let rows = vec![
            (10, rev(RevocationKind::Session, "s10", now)),
            (12, rev(RevocationKind::User, "u", now + 1)),
        ];
        let (c, delivered) = advance(&11, c.gaps, &rows, now + 1);
        assert_eq!(
            delivered.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            [10, 12]
        );
        assert_eq!(
            c,
            Cursor {
                after: 12,
                gaps: vec![]
            }
        );
    }

    #[test]
    fn old_or_long_runs_of_missing_numbers_are_not_watched() {
        let now = 1000;
        // Purged long ago: the entry after them is old.
        let rows = vec![(20, rev(RevocationKind::Session, "s", now - SETTLE - 1))];
        assert!(advance(&10, vec![], &rows, now).0.gaps.is_empty());
        // More than could be in flight at once.
        let rows = vec![(200, rev(RevocationKind::Session, "s", now))];
        assert!(advance(&0, vec![], &rows, now).0.gaps.is_empty());
    }

    #[test]
    fn each_kind_becomes_one_event_and_client_entries_none() {
        let mut s = rev(RevocationKind::Session, "sid1", 50).unwrap();
        s.user_id = Some("u1".into());
        let c = set_claims("https://id", "rs", 7, &s).unwrap();
        assert_eq!(c["jti"], "rev-7");
        assert_eq!(c["aud"], "rs");
        assert_eq!(c["sub_id"]["session"]["id"], "sid1");
        assert_eq!(c["sub_id"]["user"]["sub"], "u1");
        assert_eq!(c["events"][SESSION_REVOKED]["event_timestamp"], 50);
        s.user_id = None;
        let c = set_claims("https://id", "rs", 7, &s).unwrap();
        assert!(c["sub_id"].get("user").is_none());
        let u = rev(RevocationKind::User, "u1", 60).unwrap();
        let c = set_claims("https://id", "rs", 8, &u).unwrap();
        assert_eq!(
            c["sub_id"],
            json!({"format": "iss_sub", "iss": "https://id", "sub": "u1"})
        );
        assert_eq!(c["events"][SESSION_REVOKED]["event_timestamp"], 59);
        assert_eq!(c["events"].as_object().unwrap().len(), 1);
        assert!(set_claims("i", "a", 1, &rev(RevocationKind::Client, "c", 1).unwrap()).is_none());
        assert!(
            set_claims(
                "i",
                "a",
                1,
                &rev(RevocationKind::ClientChanged, "c", 1).unwrap()
            )
            .is_none()
        );
    }

    mod with_a_provider {
        use super::*;
        use crate::store::ClientStore;
        use crate::testkit::{Kit, claims as jwt_claims};

        /// A service client registered for the feed and a token of it.
        async fn feed_reader(k: &Kit) -> (String, String) {
            let mut client = k.service_client("rs", "s3cret-s3cret").await;
            client.scopes.push(FEED_SCOPE.into());
            k.p.store.update_client(&client).await.unwrap();
            k.p.caches.forget_client("rs");
            let t = k
                .client_credentials(&client, "s3cret-s3cret")
                .await
                .unwrap();
            (client.id, t.access_token.expose().clone())
        }

        async fn page(k: &Kit, cursor: &str) -> Page {
            poll(&k.p, "rs", &format!("cursor={cursor}")).await.unwrap()
        }

        #[tokio::test]
        async fn signing_out_everywhere_yields_session_and_user_events_and_introspection_follows() {
            let k = Kit::new().await;
            let (id, token) = feed_reader(&k).await;
            assert_eq!(reader(&k.p, Some(&token)).await.unwrap(), id);
            let ada = k.signed_in().await;
            let access = ada.tokens.access_token.expose().clone();
            assert!(check_access_token(&k.p, &access).await.is_ok());

            k.advance(5);
            k.p.revoke_user_sessions(&ada.user.id, None).await.unwrap();
            let first = poll(&k.p, "rs", "").await.unwrap();
            assert!(!first.more_available);
            let sets = first.body["sets"].as_object().unwrap();
            let events: Vec<Value> = sets
                .values()
                .map(|s| jwt_claims(s.as_str().unwrap()))
                .collect();
            assert_eq!(events.len(), 2, "{events:?}");
            assert_eq!(
                events[0]["sub_id"]["session"]["id"],
                ada.session.session.id.as_str()
            );
            assert_eq!(events[0]["sub_id"]["user"]["sub"], ada.user.id.as_str());
            assert_eq!(events[1]["sub_id"]["format"], "iss_sub");
            assert_eq!(events[1]["sub_id"]["sub"], ada.user.id.as_str());
            assert_eq!(
                events[1]["events"][SESSION_REVOKED]["event_timestamp"],
                k.now() - 1
            );
            assert!(events.iter().all(|e| e["aud"] == "rs"));

            // The user kind alone refuses a token of the user issued until then: a token with
            // no session, as another path could issue.
            let mut c: crate::oauth::tokens::AccessClaims =
                serde_json::from_value(jwt_claims(&access)).unwrap();
            c.sid = None;
            assert!(k.p.fleet.is_revoked(&c));
            // A sign-in in the event's own second is not caught by it.
            let (_, session) = k.session(&ada.user).await;
            let code = k.code(&ada.client, &session).await;
            let again = k.redeem(&ada.client, &code).await.unwrap();
            let fresh = again.access_token.expose().clone();
            assert!(check_access_token(&k.p, &fresh).await.is_ok());

            // Nothing new: an empty tail, same position.
            let cursor = first.body["cursor"].as_str().unwrap().to_string();
            let again = page(&k, &cursor).await;
            assert_eq!(again.sets, 0);
            assert_eq!(again.body["cursor"], cursor.as_str());

            // Once every token they could concern has expired, the entries are gone.
            k.advance(retention(&k.p) + 1);
            let late = poll(&k.p, "rs", "").await.unwrap();
            assert_eq!(late.sets, 0, "{}", late.body);
        }

        #[tokio::test]
        async fn keeping_the_current_session_writes_no_user_event() {
            let k = Kit::new().await;
            feed_reader(&k).await;
            let ada = k.signed_in().await;
            let (_, other) = k.session(&ada.user).await;
            k.p.revoke_user_sessions(&ada.user.id, Some(&ada.session.session.id))
                .await
                .unwrap();
            let first = poll(&k.p, "rs", "").await.unwrap();
            let events: Vec<Value> = first.body["sets"]
                .as_object()
                .unwrap()
                .values()
                .map(|s| jwt_claims(s.as_str().unwrap()))
                .collect();
            assert_eq!(events.len(), 1, "{events:?}");
            assert_eq!(
                events[0]["sub_id"]["session"]["id"],
                other.session.id.as_str()
            );
        }

        #[tokio::test]
        async fn pages_hand_out_each_entry_once_and_an_out_of_order_commit_is_not_lost() {
            let k = Kit::new().await;
            feed_reader(&k).await;
            for i in 0..5 {
                k.p.announce_session_ended(&format!("s{i}")).await.unwrap();
            }
            let mut seen = Vec::new();
            let mut cursor = String::new();
            loop {
                let p = poll(&k.p, "rs", &format!("limit=2&cursor={cursor}"))
                    .await
                    .unwrap();
                seen.extend(p.body["sets"].as_object().unwrap().keys().cloned());
                cursor = p.body["cursor"].as_str().unwrap().to_string();
                if !p.more_available {
                    break;
                }
            }
            assert_eq!(seen, ["rev-1", "rev-2", "rev-3", "rev-4", "rev-5"]);

            // 7 is visible before 6 (as concurrent writers can leave it on PostgreSQL).
            let insert = |seq: i64| {
                sqlx::query(
                    "INSERT INTO revocation_events (seq, kind, subject, at, expires_at) \
                     VALUES ($1, 'session', 'late', $2, $3)",
                )
                .bind(seq)
                .bind(k.now())
                .bind(k.now() + 600)
                .execute(&k.p.store.pool)
            };
            insert(7).await.unwrap();
            let p = page(&k, &cursor).await;
            assert_eq!(
                p.body["sets"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .collect::<Vec<_>>(),
                ["rev-7"]
            );
            let cursor = p.body["cursor"].as_str().unwrap().to_string();
            insert(6).await.unwrap();
            k.advance(SETTLE - 1);
            let p = page(&k, &cursor).await;
            assert_eq!(
                p.body["sets"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .collect::<Vec<_>>(),
                ["rev-6"]
            );
            let cursor = p.body["cursor"].as_str().unwrap().to_string();
            assert_eq!(page(&k, &cursor).await.sets, 0);
        }

        #[tokio::test]
        async fn only_a_client_registered_for_the_scope_reads_with_its_own_token() {
            let k = Kit::new().await;
            let refused = |r: Result<String, OAuthError>| match r {
                Err(OAuthError::InsufficientScope(_)) => {}
                other => panic!("expected insufficient_scope, got {other:?}"),
            };
            // A service token without the scope.
            let plain = k.service_client("plain", "s3cret-s3cret").await;
            let t = k.client_credentials(&plain, "s3cret-s3cret").await.unwrap();
            refused(reader(&k.p, Some(t.access_token.expose())).await);
            // A person's token, even of a client registered for the scope.
            let ada = k.signed_in().await;
            let mut webapp = ada.client.clone();
            webapp.scopes.push(FEED_SCOPE.into());
            k.p.store.update_client(&webapp).await.unwrap();
            k.p.caches.forget_client("webapp");
            let forged_scope =
                k.p.mint_access_token(&webapp, None, "x", FEED_SCOPE, "j".into(), k.now() + 60)
                    .unwrap();
            // (A token minted for the client itself is a client token: allowed.)
            assert!(reader(&k.p, Some(&forged_scope)).await.is_ok());
            let user_grant = crate::oauth::tokens::UserGrant {
                user: &ada.user,
                session_id: Some(&ada.session.session.id),
                auth_time: Some(k.now()),
                amr: &[],
            };
            let person =
                k.p.mint_access_token(
                    &webapp,
                    Some(&user_grant),
                    "x",
                    FEED_SCOPE,
                    "j2".into(),
                    k.now() + 60,
                )
                .unwrap();
            refused(reader(&k.p, Some(&person)).await);
            // A client whose scope was taken away since.
            let (_, token) = feed_reader(&k).await;
            let mut rs = k.p.store.find_client("rs").await.unwrap().unwrap();
            rs.scopes.retain(|s| s != FEED_SCOPE);
            k.p.store.update_client(&rs).await.unwrap();
            k.p.caches.forget_client("rs");
            refused(reader(&k.p, Some(&token)).await);
            // No token, garbage, expired.
            assert!(matches!(
                reader(&k.p, None).await,
                Err(OAuthError::InvalidToken(_))
            ));
            assert!(matches!(
                reader(&k.p, Some("a.b.c")).await,
                Err(OAuthError::InvalidToken(_))
            ));
            k.advance(k.p.settings.access_token_ttl + 120);
            assert!(matches!(
                reader(&k.p, Some(&forged_scope)).await,
                Err(OAuthError::InvalidToken(_))
            ));
        }

        #[tokio::test]
        async fn a_bad_cursor_or_limit_is_invalid_request() {
            let k = Kit::new().await;
            for q in [
                "cursor=nope",
                "limit=0",
                "limit=501",
                "limit=x",
                "cursor=1.e30",
                "limit=1&limit=2",
            ] {
                assert!(
                    matches!(
                        poll(&k.p, "rs", q).await,
                        Err(OAuthError::InvalidRequest(_))
                    ),
                    "{q}"
                );
            }
        }
    }
}
