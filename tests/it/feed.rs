//! The revocation feed for offline verifiers (`/ssf/events`): each way a session or a user's
//! tokens end produces the right signed event, and only a client registered for
//! `tessera:revocations` reads it, with its own token.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

const FEED_SCOPE: &str = "tessera:revocations";
const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";

/// An API following the feed: a client registered for the scope through the CLI, and its token.
struct Follower {
    client: RegisteredClient,
    token: String,
    cursor: Option<String>,
}

async fn follower(app: &TestApp) -> Follower {
    let client = app
        .add_client(ClientSpec::service("erp-api").scope(FEED_SCOPE))
        .await;
    let resp = app
        .client_credentials(&client.auth(), &[("scope", FEED_SCOPE)])
        .await;
    let token = expect_tokens(resp).await.access_token;
    Follower {
        client,
        token,
        cursor: None,
    }
}

async fn get_feed(app: &TestApp, token: Option<&str>, query: &str) -> reqwest::Response {
    let mut req = app.backchannel.get(app.url(&format!("/ssf/events{query}")));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("GET /ssf/events")
}

impl Follower {
    /// Polls until the tail; returns every SET's verified claims by jti, each checked against
    /// the JWKS with its `typ`, `iss` and `aud`.
    async fn poll(&mut self, app: &TestApp, limit: Option<u32>) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        loop {
            let mut query = String::from("?");
            if let Some(c) = &self.cursor {
                query.push_str(&format!("cursor={c}&"));
            }
            if let Some(l) = limit {
                query.push_str(&format!("limit={l}"));
            }
            let resp = get_feed(app, Some(&self.token), &query).await;
            assert_eq!(resp.status(), StatusCode::OK);
            let cache = resp.headers()[reqwest::header::CACHE_CONTROL]
                .to_str()
                .unwrap()
                .to_string();
            let body: Value = resp.json().await.unwrap();
            assert!(body["retention"].as_i64().unwrap() > 0, "{body}");
            for (jti, set) in body["sets"].as_object().unwrap() {
                let set = set.as_str().unwrap();
                assert_eq!(jwt_header(set).typ.as_deref(), Some("secevent+jwt"));
                let claims = app
                    .verify_set(set, &self.client.id)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(claims["jti"], jti.as_str());
                assert_eq!(claims["events"].as_object().unwrap().len(), 1);
                assert!(
                    out.insert(jti.clone(), claims).is_none(),
                    "{jti} handed out twice"
                );
            }
            self.cursor = Some(body["cursor"].as_str().unwrap().to_string());
            if body["moreAvailable"] != true {
                assert_eq!(cache, "private, max-age=1");
                return out;
            }
        }
    }

    /// The new events since the last poll.
    async fn events(&mut self, app: &TestApp) -> Vec<Value> {
        self.poll(app, None).await.into_values().collect()
    }
}

impl TestApp {
    /// A SET verified against the JWKS: signature, `iss`, `aud` (no `exp` in a SET).
    async fn verify_set(&self, set: &str, audience: &str) -> Result<Value, String> {
        use jsonwebtoken::{DecodingKey, Validation};
        let header = jsonwebtoken::decode_header(set).map_err(|e| e.to_string())?;
        let kid = header.kid.clone().ok_or("no kid")?;
        let jwks = self.jwks().await;
        let jwk = jwks.find(&kid).ok_or("unknown kid")?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[audience]);
        v.set_required_spec_claims(&["iss", "aud"]);
        v.validate_exp = false;
        jsonwebtoken::decode::<Value>(set, &key, &v)
            .map(|d| d.claims)
            .map_err(|e| format!("the SET does not verify: {e}"))
    }
}

fn session_event<'a>(events: &'a [Value], sid: &str) -> Option<&'a Value> {
    events
        .iter()
        .find(|e| e["sub_id"]["session"]["id"] == sid && e["events"][SESSION_REVOKED].is_object())
}

fn user_event<'a>(events: &'a [Value], sub: &str) -> Option<&'a Value> {
    events
        .iter()
        .find(|e| e["sub_id"]["format"] == "iss_sub" && e["sub_id"]["sub"] == sub)
}

fn sid_of(tokens: &TokenResponse) -> String {
    jwt_claims(&tokens.access_token)["sid"]
        .as_str()
        .unwrap()
        .to_string()
}

fn sub_of(tokens: &TokenResponse) -> String {
    jwt_claims(&tokens.access_token)["sub"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The verifier's rule from DESIGN.md, applied to a token's claims.
fn refused_by(events: &[Value], access_token: &str) -> bool {
    let c = jwt_claims(access_token);
    let iat = c["iat"].as_i64().unwrap();
    session_event(events, c["sid"].as_str().unwrap_or("-")).is_some()
        || user_event(events, c["sub"].as_str().unwrap()).is_some_and(|e| {
            iat <= e["events"][SESSION_REVOKED]["event_timestamp"]
                .as_i64()
                .unwrap()
        })
}

#[tokio::test]
async fn rp_logout_yields_a_session_revoked_event_naming_session_and_user() {
    let app = spawn_app().await;
    let mut feed = follower(&app).await;
    assert!(feed.events(&app).await.is_empty());
    let user = app.add_user("ada@example.test").await;
    let webapp = app.add_client(ClientSpec::first_party("webapp")).await;
    let tokens = app.tokens_for(&webapp, &user).await;
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("id_token_hint", tokens.id_token())
        .finish();
    app.get(&format!("/logout?{query}")).await;

    let events = feed.events(&app).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let e = session_event(&events, &sid_of(&tokens)).expect("a session event");
    assert_eq!(e["sub_id"]["format"], "complex");
    assert_eq!(e["sub_id"]["user"]["sub"], sub_of(&tokens).as_str());
    assert_eq!(e["sub_id"]["user"]["iss"], app.issuer.as_str());
    assert!(refused_by(&events, &tokens.access_token));
    // Polled again from the returned cursor: nothing new.
    assert!(feed.events(&app).await.is_empty());
}

#[tokio::test]
async fn signing_out_all_devices_from_the_account_page_yields_a_user_event() {
    let app = spawn_app().await;
    let mut feed = follower(&app).await;
    let user = app.add_user("ada@example.test").await;
    let webapp = app.add_client(ClientSpec::first_party("webapp")).await;
    let browser = app.new_browser();
    let tokens = app.tokens_for_in(&browser, &webapp, &user).await;
    let page = app.sessions_page_in(&browser).await;
    app.revoke_all_sessions_in(&browser, &page, false).await;

    let events = feed.events(&app).await;
    assert!(
        session_event(&events, &sid_of(&tokens)).is_some(),
        "{events:?}"
    );
    let u = user_event(&events, &sub_of(&tokens)).expect("a user event");
    let t = u["events"][SESSION_REVOKED]["event_timestamp"]
        .as_i64()
        .unwrap();
    // The last second wholly before the event (that second's tokens: by their sessions).
    assert!(t + 1 >= jwt_claims(&tokens.access_token)["iat"].as_i64().unwrap());
    assert!(refused_by(&events, &tokens.access_token));
    // Introspection agrees.
    app.assert_inactive(&webapp, &tokens.access_token, "after sign out everywhere")
        .await;
    // A sign-in right after (within the same second, as like as not) is not caught by it.
    let after = app.tokens_for_in(&app.new_browser(), &webapp, &user).await;
    assert!(!refused_by(&events, &after.access_token));
    app.assert_active(&webapp, &after.access_token, "the new sign-in's token")
        .await;
}

#[tokio::test]
async fn admin_session_revoke_user_disable_and_password_reset_each_reach_the_feed() {
    let app = spawn_app().await;
    let mut feed = follower(&app).await;
    let webapp = app.add_client(ClientSpec::first_party("webapp")).await;

    let ada = app.add_user("ada@example.test").await;
    let t1 = app.tokens_for_in(&app.new_browser(), &webapp, &ada).await;
    app.cli_revoke_session(&sid_of(&t1)).await;
    let events = feed.events(&app).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(session_event(&events, &sid_of(&t1)).is_some());

    let bob = app.add_user("bob@example.test").await;
    let t2 = app.tokens_for_in(&app.new_browser(), &webapp, &bob).await;
    app.disable_user(&bob.email).await;
    let events = feed.events(&app).await;
    assert!(session_event(&events, &sid_of(&t2)).is_some(), "{events:?}");
    assert!(user_event(&events, &sub_of(&t2)).is_some(), "{events:?}");
    assert!(refused_by(&events, &t2.access_token));

    let cy = app.add_user("cy@example.test").await;
    let t3 = app.tokens_for_in(&app.new_browser(), &webapp, &cy).await;
    app.set_password(&cy.email, "a-brand-new-passphrase-42")
        .await;
    let events = feed.events(&app).await;
    assert!(user_event(&events, &sub_of(&t3)).is_some(), "{events:?}");
    assert!(refused_by(&events, &t3.access_token));
    // Cy's user event concerns Cy only.
    assert!(!refused_by(&events, &t1.access_token));
}

#[tokio::test]
async fn refresh_reuse_ends_the_session_in_the_feed() {
    let app = spawn_app_with(|c| {
        c.env("TESSERA_REFRESH_REUSE_GRACE", "1h");
    })
    .await;
    let mut feed = follower(&app).await;
    let user = app.add_user("ada@example.test").await;
    let webapp = app.add_client(ClientSpec::first_party("webapp")).await;
    let a = app.tokens_for(&webapp, &user).await;
    let b = expect_tokens(app.refresh(&webapp.auth(), a.refresh_token()).await).await;
    let _c = expect_tokens(app.refresh(&webapp.auth(), b.refresh_token()).await).await;
    app.assert_refresh_refused(&webapp, a.refresh_token(), "A, two rotations old")
        .await;
    let events = feed.events(&app).await;
    assert!(session_event(&events, &sid_of(&a)).is_some(), "{events:?}");
    assert!(refused_by(&events, &b.access_token));
}

#[tokio::test]
async fn pages_hand_out_each_event_exactly_once() {
    let app = spawn_app().await;
    let mut feed = follower(&app).await;
    let webapp = app.add_client(ClientSpec::first_party("webapp")).await;
    let user = app.add_user("ada@example.test").await;
    let mut sids = Vec::new();
    for _ in 0..5 {
        let t = app.tokens_for_in(&app.new_browser(), &webapp, &user).await;
        sids.push(sid_of(&t));
        app.cli_revoke_session(&sid_of(&t)).await;
    }
    // `poll` asserts no jti comes twice; a full page answers with a longer max-age.
    let first = get_feed(&app, Some(&feed.token), "?limit=2").await;
    assert_eq!(
        first.headers()[reqwest::header::CACHE_CONTROL],
        "private, max-age=10"
    );
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["moreAvailable"], true);
    assert_eq!(body["sets"].as_object().unwrap().len(), 2);
    let all: Vec<Value> = feed.poll(&app, Some(2)).await.into_values().collect();
    assert_eq!(all.len(), 5);
    for sid in &sids {
        assert!(session_event(&all, sid).is_some(), "{sid} missing");
    }
    assert!(feed.events(&app).await.is_empty());
    let metrics = app.metrics().await;
    assert!(metrics.get("tessera_feed_polls_total") >= 5);
}

async fn expect_refused(resp: reqwest::Response, status: StatusCode, code: &str, what: &str) {
    assert_eq!(resp.status(), status, "{what}");
    if status != StatusCode::BAD_REQUEST {
        let challenge = resp.headers()[reqwest::header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .to_string();
        assert!(challenge.starts_with("Bearer "), "{what}: {challenge}");
        assert!(
            challenge.contains(&format!("error=\"{code}\"")),
            "{what}: {challenge}"
        );
    }
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], code, "{what}: {body}");
}

#[tokio::test]
async fn only_a_registered_clients_own_live_token_reads_the_feed() {
    let app = spawn_app().await;
    let feed = follower(&app).await;
    let unauthorized = StatusCode::UNAUTHORIZED;
    expect_refused(
        get_feed(&app, None, "").await,
        unauthorized,
        "invalid_token",
        "no token",
    )
    .await;
    expect_refused(
        get_feed(&app, Some("not.a.token"), "").await,
        unauthorized,
        "invalid_token",
        "garbage",
    )
    .await;
    // Another service's token, without the scope.
    let plain = app
        .add_client(ClientSpec::service("billing").scope("api.read"))
        .await;
    let other = expect_tokens(app.client_credentials(&plain.auth(), &[]).await).await;
    expect_refused(
        get_feed(&app, Some(&other.access_token), "").await,
        StatusCode::FORBIDDEN,
        "insufficient_scope",
        "no scope",
    )
    .await;
    // A person's token carrying the scope (the client may request it on their behalf).
    let webapp = app
        .add_client(
            ClientSpec::first_party("webapp")
                .scope("openid")
                .scope(FEED_SCOPE),
        )
        .await;
    let user = app.add_user("ada@example.test").await;
    let request = AuthRequest::new(&webapp).with("scope", &format!("openid {FEED_SCOPE}"));
    let personal = app.tokens_for_request(&webapp, &request, &user).await;
    assert!(personal.scopes().contains(FEED_SCOPE));
    expect_refused(
        get_feed(&app, Some(&personal.access_token), "").await,
        StatusCode::FORBIDDEN,
        "insufficient_scope",
        "a person's token",
    )
    .await;
    // A bad cursor or limit: 400 JSON, never a 500.
    for q in [
        "?cursor=garbage",
        "?cursor=1.AAAA",
        "?limit=0",
        "?limit=9999",
        "?limit=%FF",
    ] {
        expect_refused(
            get_feed(&app, Some(&feed.token), q).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            q,
        )
        .await;
    }
    // The follower's own token, revoked (RFC 7009).
    let resp = app
        .revoke(&feed.client.auth(), &feed.token, Some("access_token"))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    expect_refused(
        get_feed(&app, Some(&feed.token), "").await,
        unauthorized,
        "invalid_token",
        "revoked",
    )
    .await;
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let app = spawn_app_with(|c| {
        c.env("TESSERA_ACCESS_TOKEN_TTL", "2s");
    })
    .await;
    let feed = follower(&app).await;
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    expect_refused(
        get_feed(&app, Some(&feed.token), "").await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        "expired",
    )
    .await;
}

#[tokio::test]
async fn the_ssf_configuration_points_to_the_feed_and_the_jwks() {
    let app = spawn_app().await;
    let resp = app.get("/.well-known/ssf-configuration").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let m: Value = resp.json().await.unwrap();
    assert_eq!(m["issuer"], app.issuer.as_str());
    assert_eq!(m["jwks_uri"], format!("{}/jwks.json", app.issuer));
    assert_eq!(m["events_endpoint"], format!("{}/ssf/events", app.issuer));
    assert!(m["delivery_methods_supported"].as_array().unwrap().len() == 1);
    assert!(m["retention"].as_i64().unwrap() > 0);
}
