//! A real [`Provider`] for engine tests: in-memory SQLite, an in-process fleet, a keyring made by
//! the rotation schedule, and a [`ManualClock`] the test moves by hand. No server, no wall clock:
//! a lifetime rule is checked one second before, at and after its edge in milliseconds.
//!
//! The helpers call the same engine functions `crate::http` calls (`auth::session::start`,
//! `oauth::authorize::issue_code`, `oauth::grants::exchange`, ...), so what passes here is what the
//! HTTP adapters get.

use std::sync::Arc;

use crate::auth::session::{self, ActiveSession, DeviceInfo};
use crate::clock::{ManualClock, SharedClock, Timestamp};
use crate::config::Config;
use crate::crypto::{Crypto, MasterKey, b64, random_id, sha256};
use crate::fleet::Fleet;
use crate::keys::Keyring;
use crate::keys::rotation::{self, RotationPolicy};
use crate::keys::signer::SigningAlg;
use crate::oauth::authorize::{self, AuthorizationRequest};
use crate::oauth::tokens::TokenResponse;
use crate::oauth::{OAuthError, Provider, Settings, grants};
use crate::secret::Secret;
use crate::store::{Client, ClientStore, SqlStore, User, UserStore};

/// Where every kit's clock starts (2027-01-15): far from 0, so `now - ttl` never goes negative.
pub const T0: Timestamp = 1_800_000_000;

pub const ISSUER: &str = "https://id.example.test";
pub const REDIRECT_URI: &str = "https://app.example.test/callback";
/// An RFC 7636 verifier (43 unreserved characters); its S256 challenge is [`challenge`].
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// A password the kit's users have; hashed with the cheapest argon2 parameters.
pub const PASSWORD: &str = "correct horse battery staple";

pub fn challenge(verifier: &str) -> String {
    b64(&sha256(verifier.as_bytes()))
}

/// The lifetimes the kit runs with unless a test tunes them: the configuration defaults, but
/// short enough to be read at a glance.
pub fn settings() -> Settings {
    let mut s = Settings::from_config(&Config::default());
    s.issuer = ISSUER.into();
    s.access_token_ttl = 300;
    s.id_token_ttl = 600;
    s.auth_code_ttl = 60;
    s.refresh_reuse_grace = 10;
    s.refresh_idle_ttl = 3600;
    s.refresh_absolute_ttl = 86_400;
    s.session_idle_ttl = 1800;
    s.session_absolute_ttl = 43_200;
    s
}

/// The key schedule the kit starts with: the configuration defaults.
pub fn rotation_policy(s: &Settings) -> RotationPolicy {
    let c = Config::default();
    RotationPolicy {
        alg: SigningAlg::Es256,
        publish_lead: c.key_publish_lead.as_secs() as i64,
        interval: c.key_rotation_interval.as_secs() as i64,
        max_token_ttl: s.access_token_ttl.max(s.id_token_ttl),
    }
}

/// An empty store of its own: a named in-memory SQLite database in shared-cache mode, so the
/// store's reader pool and its writer connection see the same data (each connection of a plain
/// `sqlite::memory:` would be a database of its own).
pub async fn memory_store() -> SqlStore {
    let url = format!(
        "sqlite:file:tessera-kit-{}?mode=memory&cache=shared",
        random_id()
    );
    let store = SqlStore::connect(&url, 2).await.unwrap();
    store.migrate().await.unwrap();
    store
}

/// A provider, its clock, and helpers that drive the engine.
pub struct Kit {
    pub p: Provider,
    pub clock: ManualClock,
}

impl Kit {
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    /// A kit whose lifetimes `tune` adjusts first.
    pub async fn with(tune: impl FnOnce(&mut Settings)) -> Self {
        let mut s = settings();
        tune(&mut s);
        let clock = ManualClock::at(T0);
        let store = memory_store().await;
        let crypto = Arc::new(Crypto::new(&MasterKey::generate()));
        let keys = rotation::reconcile(&store, &crypto, &rotation_policy(&s), T0)
            .await
            .unwrap();
        let keyring = Keyring::load(&keys, &crypto).unwrap().shared();
        let shared: SharedClock = Arc::new(clock.clone());
        Self {
            p: Provider {
                store,
                keyring,
                crypto,
                clock: shared,
                settings: Arc::new(s),
                fleet: Arc::new(Fleet::local()),
                metrics: Arc::default(),
                caches: Arc::default(),
                backchannel: Arc::default(),
            },
            clock,
        }
    }

    pub fn now(&self) -> Timestamp {
        self.p.now()
    }

    /// Moves the clock forward by `secs`.
    pub fn advance(&self, secs: i64) {
        self.clock.advance(secs);
    }

    /// Moves the clock to `t` (never backwards).
    pub fn set(&self, t: Timestamp) {
        let now = self.now();
        assert!(t >= now, "the clock only moves forward ({now} -> {t})");
        self.clock.advance(t - now);
    }

    /// A password hasher with the cheapest argon2 parameters (tests only).
    pub fn cheap_hasher() -> crate::auth::password::PasswordHasher {
        crate::auth::password::PasswordHasher::new(8, 1, 1, 1).unwrap()
    }

    /// A user whose password is [`PASSWORD`].
    pub async fn user(&self, email: &str) -> User {
        let hasher = Self::cheap_hasher();
        let hash = hasher
            .hash(&crate::secret::SecretString::new(PASSWORD))
            .await
            .unwrap();
        let user = User {
            id: random_id(),
            email: email.into(),
            name: Some("Ada".into()),
            roles: vec![],
            password_hash: crate::secret::SecretString::new(hash),
            disabled: false,
            email_verified: true,
            created_at: self.now(),
        };
        self.p.store.insert_user(&user).await.unwrap();
        user
    }

    /// A first-party public client (PKCE, no secret) that may use codes and refresh tokens.
    pub async fn public_client(&self, id: &str) -> Client {
        let client = Client {
            id: id.into(),
            secret_hash: None,
            redirect_uris: vec![REDIRECT_URI.into()],
            post_logout_redirect_uris: vec![],
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            scopes: ["openid", "email", "profile", "offline_access"]
                .map(String::from)
                .to_vec(),
            audiences: vec![],
            first_party: true,
            require_mfa: false,
            created_at: self.now(),
            disabled_at: None,
            previous_secret_hash: None,
            previous_secret_expires_at: None,
            backchannel_logout_uri: None,
        };
        self.p.store.insert_client(&client).await.unwrap();
        client
    }

    /// A confidential client for the client credentials grant; its secret is `secret`.
    pub async fn service_client(&self, id: &str, secret: &str) -> Client {
        let client = Client {
            id: id.into(),
            secret_hash: Some(Secret::wrap(self.p.crypto.token_hash(secret))),
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["api:read".into()],
            audiences: vec!["https://api.example.test".into()],
            first_party: true,
            require_mfa: false,
            created_at: self.now(),
            disabled_at: None,
            previous_secret_hash: None,
            previous_secret_expires_at: None,
            backchannel_logout_uri: None,
        };
        self.p.store.insert_client(&client).await.unwrap();
        client
    }

    /// A browser session for `user`, started now; returns its cookie value and the session.
    pub async fn session(&self, user: &User) -> (String, ActiveSession) {
        let device = DeviceInfo {
            user_agent: Some("engine-test".into()),
            ip: Some("192.0.2.1".into()),
        };
        session::start(&self.p, user, vec!["pwd".into()], device, self.now())
            .await
            .unwrap()
    }

    /// The live session behind a cookie at the kit's clock (`None` once it has ended).
    pub async fn resolve(&self, cookie: &str) -> Option<ActiveSession> {
        session::resolve(&self.p, cookie, self.now()).await.unwrap()
    }

    /// An authorization code for `client`, issued now through the session; PKCE with [`VERIFIER`].
    pub async fn code(&self, client: &Client, session: &ActiveSession) -> String {
        let req = AuthorizationRequest {
            client_id: client.id.clone(),
            redirect_uri: REDIRECT_URI.into(),
            scope: ["openid", "email", "offline_access"]
                .map(String::from)
                .to_vec(),
            state: Some("st".into()),
            nonce: Some("n-0S6_WzA2Mj".into()),
            code_challenge: challenge(VERIFIER),
            prompt: vec![],
            max_age: None,
            resource: None,
            acr_values: vec![],
        };
        let location = authorize::issue_code(&self.p, &req, session, self.now())
            .await
            .unwrap();
        let url = url::Url::parse(&location).unwrap();
        url.query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .unwrap()
    }

    /// A token request through the token endpoint's engine function, from one fixed address.
    pub async fn token(
        &self,
        authorization: Option<&str>,
        form: &[(&str, &str)],
    ) -> Result<TokenResponse, OAuthError> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        grants::exchange(&self.p, authorization, &body, Some("192.0.2.1")).await
    }

    /// Redeems a code issued by [`Kit::code`] as the public `client`.
    pub async fn redeem(&self, client: &Client, code: &str) -> Result<TokenResponse, OAuthError> {
        self.token(
            None,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", &client.id),
                ("code", code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", VERIFIER),
            ],
        )
        .await
    }

    /// Refreshes as the public `client`.
    pub async fn refresh(
        &self,
        client: &Client,
        refresh_token: &str,
    ) -> Result<TokenResponse, OAuthError> {
        self.token(
            None,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &client.id),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    /// The client credentials grant for a client made by [`Kit::service_client`].
    pub async fn client_credentials(
        &self,
        client: &Client,
        secret: &str,
    ) -> Result<TokenResponse, OAuthError> {
        self.token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &client.id),
                ("client_secret", secret),
            ],
        )
        .await
    }

    /// A signed-in user of a public client, with the tokens of a redeemed code, all made now.
    pub async fn signed_in(&self) -> SignedIn {
        let user = self.user("ada@example.test").await;
        let client = self.public_client("webapp").await;
        let (cookie, session) = self.session(&user).await;
        let code = self.code(&client, &session).await;
        let tokens = self.redeem(&client, &code).await.unwrap();
        SignedIn {
            user,
            client,
            cookie,
            session,
            tokens,
        }
    }
}

/// What [`Kit::signed_in`] made.
pub struct SignedIn {
    pub user: User,
    pub client: Client,
    pub cookie: String,
    pub session: ActiveSession,
    pub tokens: TokenResponse,
}

impl SignedIn {
    pub fn refresh_token(&self) -> String {
        refresh_token(&self.tokens)
    }
}

/// The refresh token of a response (tests only: it must be there).
pub fn refresh_token(t: &TokenResponse) -> String {
    t.refresh_token.as_ref().unwrap().expose().clone()
}

/// The claims of a JWT, read without verifying it.
pub fn claims(jwt: &str) -> serde_json::Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&crate::crypto::b64_decode(payload).unwrap()).unwrap()
}

/// The `kid` in a JWT's header.
pub fn kid(jwt: &str) -> String {
    let header = jwt.split('.').next().unwrap();
    let header: serde_json::Value =
        serde_json::from_slice(&crate::crypto::b64_decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_string()
}

/// Whether `e` is `invalid_grant` with a description containing `says`.
pub fn invalid_grant(e: &OAuthError, says: &str) -> bool {
    matches!(e, OAuthError::InvalidGrant(m) if m.contains(says))
}
