//! OpenID Connect Back-Channel Logout 1.0: when a session ends, each client that took part in
//! it and registered a `backchannel_logout_uri` is sent a signed `logout_token` naming the
//! session (`sid`) and the user (`sub`).
//!
//! Ending a session only queues the deliveries (one INSERT…SELECT in
//! [`Provider::logout_notices`]) and wakes the sender; the user never waits for an RP. The
//! sender ([`run`], a task started with the server) claims due deliveries from the database,
//! signs a fresh token with the current key at send time, POSTs it, and deletes the delivery on
//! 200/204; anything else is retried with exponential back-off and jitter until a bound, then
//! given up (audited). The state is the database's only, so a restart loses nothing, and claims
//! are exclusive, so replicas never send one delivery twice at once.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{StatusCode, header};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tokio::sync::{Notify, Semaphore};

use super::Provider;
use crate::audit::AuditEvent;
use crate::metrics::inc;
use crate::store::{BackchannelStore, LogoutDelivery, StoreResult};

/// The event a logout token carries (§2.4).
pub const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// The JOSE `typ` of a logout token (§2.4, §4).
pub const LOGOUT_TOKEN_TYPE: &str = "logout+jwt";
/// A logout token's lifetime: it is signed just before it is sent.
pub const LOGOUT_TOKEN_TTL: i64 = 120;
/// The most of an RP's answer that is read (and then discarded).
const ANSWER_LIMIT: usize = 4096;
/// Deliveries sent at once by one process.
const CONCURRENCY: usize = 32;

/// Wakes the sender when this process queues deliveries (others' are found by polling).
#[derive(Debug, Default)]
pub struct Outbox {
    wake: Notify,
}

impl Outbox {
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// How the sender behaves (settings `backchannel_logout_*`).
#[derive(Debug, Clone)]
pub struct DeliveryPolicy {
    /// How often the queue is read when nothing woke the sender.
    pub poll_interval: Duration,
    /// The first retry's delay; each next one doubles, up to `retry_max`.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// A delivery not done this long after the session ended is given up.
    pub give_up_after: Duration,
    pub connect_timeout: Duration,
    /// For the whole request, answer included.
    pub timeout: Duration,
    /// The issuer is `https`: only `https` URIs are called.
    pub https_only: bool,
}

impl DeliveryPolicy {
    pub fn from_config(c: &crate::config::Config) -> Self {
        Self {
            poll_interval: c.backchannel_logout_poll_interval,
            retry_min: c.backchannel_logout_retry_min,
            retry_max: c.backchannel_logout_retry_max,
            give_up_after: c.backchannel_logout_give_up_after,
            connect_timeout: c.backchannel_logout_connect_timeout,
            timeout: c.backchannel_logout_timeout,
            https_only: c.is_https(),
        }
    }

    /// How long a claimed delivery is kept from other senders: past any attempt's end.
    fn lease(&self) -> Duration {
        self.timeout + self.connect_timeout + Duration::from_secs(30)
    }
}

/// The delay before attempt `attempts + 1`: `min · 2^(attempts-1)`, at most `max`, of which a
/// random part (up to half) is taken off so that RPs that failed together do not retry together.
pub fn backoff(attempts: i64, min: Duration, max: Duration, random: u32) -> Duration {
    let exponent = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let full = min.saturating_mul(1u32 << exponent).min(max);
    let fraction = f64::from(random) / f64::from(u32::MAX);
    full.mul_f64(1.0 - fraction / 2.0)
}

/// The claims of a logout token (§2.4): never a `nonce`.
pub fn logout_claims(
    issuer: &str,
    d: &LogoutDelivery,
    now: crate::clock::Timestamp,
    jti: &str,
) -> serde_json::Value {
    json!({
        "iss": issuer,
        "aud": d.client_id,
        "iat": now,
        "exp": now + LOGOUT_TOKEN_TTL,
        "jti": jti,
        "sub": d.user_id,
        "sid": d.session_id,
        "events": { LOGOUT_EVENT: {} },
    })
}

/// Whether the sender may call `uri`: `https`, or `http` while the issuer is `http`.
pub fn callable(uri: &str, https_only: bool) -> bool {
    match url::Url::parse(uri) {
        Ok(u) => match u.scheme() {
            "https" => true,
            "http" => !https_only,
            _ => false,
        },
        Err(_) => false,
    }
}

impl Provider {
    /// How many back-channel logouts are still to deliver.
    pub async fn backchannel_pending(&self) -> StoreResult<i64> {
        self.store.pending_logout_deliveries().await
    }

    /// Queues a back-channel logout for every client of these ended sessions that asked for
    /// one, and wakes the sender. Never waits for an RP.
    pub async fn logout_notices(&self, session_ids: &[String]) -> StoreResult<()> {
        if session_ids.is_empty() {
            return Ok(());
        }
        let queued = self
            .store
            .enqueue_logout_deliveries(session_ids, self.now(), self.clock.now_millis())
            .await?;
        if queued > 0 {
            self.metrics
                .backchannel_queued
                .fetch_add(queued, std::sync::atomic::Ordering::Relaxed);
            self.backchannel.wake();
        }
        Ok(())
    }
}

/// The HTTP client deliveries are sent with: HTTP/1.1, no redirects followed (hyper follows
/// none), short timeouts, rustls with the aws-lc-rs provider and the system's roots, and only
/// `https` when the issuer is `https`.
#[derive(Clone)]
pub struct Sender {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

pub fn http_client(policy: &DeliveryPolicy) -> Result<Sender, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A certificate the store cannot use is skipped, as every TLS client does.
        let _ = roots.add(cert);
    }
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(policy.connect_timeout));
    let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls);
    let https = if policy.https_only {
        https.https_only()
    } else {
        https.https_or_http()
    };
    let connector = https.enable_http1().wrap_connector(http);
    Ok(Sender {
        client: Client::builder(TokioExecutor::new()).build(connector),
        timeout: policy.timeout,
    })
}

impl Sender {
    /// POSTs the form; the answer's status, its body read no further than [`ANSWER_LIMIT`].
    async fn post_form(&self, uri: &str, form: &[(&str, &str)]) -> Result<StatusCode, String> {
        let body = serde_urlencoded::to_string(form).map_err(|_| "encoding the form")?;
        let request = hyper::Request::post(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::USER_AGENT, "Tessera back-channel logout")
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| "not a usable URI".to_string())?;
        let exchange = async {
            // Without the URI or the error's details: only the kind of failure is logged.
            let answer = self.client.request(request).await.map_err(|e| {
                if e.is_connect() {
                    "could not connect"
                } else {
                    "request failed"
                }
            })?;
            let status = answer.status();
            let mut body = answer.into_body();
            let mut read = 0;
            while read < ANSWER_LIMIT {
                match body.frame().await {
                    Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len()),
                    _ => break,
                }
            }
            Ok::<_, &str>(status)
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(r) => r.map_err(String::from),
            Err(_) => Err("timed out".into()),
        }
    }
}

/// Sends due deliveries until the process ends.
pub async fn run(p: Provider, policy: DeliveryPolicy, client: Sender) {
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    let policy = Arc::new(policy);
    loop {
        let free = slots.available_permits();
        let mut claimed = 0;
        if free > 0 {
            let lease = i64::try_from(policy.lease().as_millis()).unwrap_or(i64::MAX);
            match p
                .store
                .claim_logout_deliveries(p.clock.now_millis(), lease, free as i64)
                .await
            {
                Ok(due) => {
                    claimed = due.len();
                    for d in due {
                        let Ok(slot) = slots.clone().acquire_owned().await else {
                            return;
                        };
                        let (p, policy, client) = (p.clone(), policy.clone(), client.clone());
                        tokio::spawn(async move {
                            deliver(&p, &policy, &client, d).await;
                            drop(slot);
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not read back-channel logouts"),
            }
        }
        if claimed > 0 && claimed == free {
            // Perhaps more are due.
            continue;
        }
        tokio::select! {
            _ = p.backchannel.wake.notified() => {}
            _ = tokio::time::sleep(policy.poll_interval) => {}
        }
    }
}

/// What an attempt came to.
enum Attempt {
    Delivered,
    /// Worth retrying (the reason, for the log).
    Failed(String),
    /// Never to be sent (the reason).
    Refused(String),
}

async fn deliver(p: &Provider, policy: &DeliveryPolicy, client: &Sender, d: LogoutDelivery) {
    let outcome = match &d.uri {
        // The client has no URI any more, or is disabled: nothing to tell.
        None => {
            finish(p, &d).await;
            return;
        }
        Some(uri) if !callable(uri, policy.https_only) => {
            Attempt::Refused("the URI is not https while the issuer is".into())
        }
        Some(uri) => attempt(p, client, uri, &d).await,
    };
    match outcome {
        Attempt::Delivered => {
            inc(&p.metrics.backchannel_delivered);
            finish(p, &d).await;
        }
        Attempt::Failed(why) => {
            let given_up = p.now() - d.created_at
                >= i64::try_from(policy.give_up_after.as_secs()).unwrap_or(i64::MAX);
            if given_up {
                give_up(p, &d, &why).await;
            } else {
                let random = u32::from_le_bytes(crate::crypto::random_bytes::<4>());
                let delay = backoff(d.attempts, policy.retry_min, policy.retry_max, random);
                let due =
                    p.clock.now_millis() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
                tracing::info!(client_id = %d.client_id, attempt = d.attempts, reason = %why,
                    retry_in_ms = delay.as_millis() as u64, "back-channel logout not delivered; will retry");
                inc(&p.metrics.backchannel_retried);
                if let Err(e) = p.store.retry_logout_delivery(d.id, due).await {
                    tracing::warn!(error = %e, "could not reschedule a back-channel logout");
                }
            }
        }
        Attempt::Refused(why) => give_up(p, &d, &why).await,
    }
}

async fn finish(p: &Provider, d: &LogoutDelivery) {
    if let Err(e) = p.store.finish_logout_delivery(d.id).await {
        tracing::warn!(error = %e, "could not remove a finished back-channel logout");
    }
}

async fn give_up(p: &Provider, d: &LogoutDelivery, why: &str) {
    tracing::warn!(client_id = %d.client_id, attempts = d.attempts, reason = %why,
        "back-channel logout given up");
    inc(&p.metrics.backchannel_failed);
    if let Err(e) = p.store.fail_logout_delivery(d.id, p.now()).await {
        tracing::warn!(error = %e, "could not mark a back-channel logout as failed");
    }
    p.audit(
        AuditEvent::new("backchannel_logout.failed")
            .actor("tessera")
            .subject(d.client_id.as_str())
            .detail("sid", d.session_id.as_str())
            .detail("user_id", d.user_id.as_str())
            .detail("attempts", d.attempts)
            .detail("reason", why),
    )
    .await;
}

/// One POST of a freshly signed logout token.
async fn attempt(p: &Provider, client: &Sender, uri: &str, d: &LogoutDelivery) -> Attempt {
    let now = p.now();
    let keys = p.keys();
    let token = match keys.signer(now) {
        Ok(signer) => {
            let claims = logout_claims(&p.settings.issuer, d, now, &crate::crypto::random_id());
            match signer.sign_jwt(LOGOUT_TOKEN_TYPE, &claims) {
                Ok(t) => t,
                Err(e) => return Attempt::Failed(format!("signing: {e}")),
            }
        }
        Err(e) => return Attempt::Failed(format!("signing: {e}")),
    };
    match client
        .post_form(uri, &[("logout_token", token.as_str())])
        .await
    {
        Ok(StatusCode::OK | StatusCode::NO_CONTENT) => Attempt::Delivered,
        Ok(status) => Attempt::Failed(format!("answered {}", status.as_u16())),
        Err(why) => Attempt::Failed(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_minimum_up_to_the_maximum_less_at_most_half_for_jitter() {
        let (min, max) = (Duration::from_secs(5), Duration::from_secs(3600));
        assert_eq!(backoff(1, min, max, 0), Duration::from_secs(5));
        assert_eq!(backoff(2, min, max, 0), Duration::from_secs(10));
        assert_eq!(backoff(4, min, max, 0), Duration::from_secs(40));
        assert_eq!(backoff(20, min, max, 0), max);
        assert_eq!(backoff(i64::MAX, min, max, 0), max);
        assert_eq!(backoff(3, min, max, u32::MAX), Duration::from_secs(10));
        let jittered = backoff(3, min, max, u32::MAX / 3);
        assert!(jittered > Duration::from_secs(10) && jittered < Duration::from_secs(20));
    }

    #[test]
    fn only_https_is_called_when_the_issuer_is_https() {
        assert!(callable("https://rp.example/bcl", true));
        assert!(!callable("http://rp.example/bcl", true));
        assert!(callable("http://localhost:3000/bcl", false));
        assert!(!callable("ftp://rp.example/bcl", false));
        assert!(!callable("not a uri", false));
    }

    #[test]
    fn a_logout_token_names_the_session_and_user_for_the_client_and_has_no_nonce() {
        let d = LogoutDelivery {
            id: 1,
            session_id: "s1".into(),
            client_id: "erp".into(),
            user_id: "u1".into(),
            created_at: 10,
            attempts: 1,
            uri: Some("https://erp.example/bcl".into()),
        };
        let c = logout_claims("https://id.example", &d, 1000, "j1");
        assert_eq!(c["iss"], "https://id.example");
        assert_eq!(c["aud"], "erp");
        assert_eq!(c["sub"], "u1");
        assert_eq!(c["sid"], "s1");
        assert_eq!(c["iat"], 1000);
        assert_eq!(c["exp"], 1000 + LOGOUT_TOKEN_TTL);
        assert_eq!(c["jti"], "j1");
        assert_eq!(c["events"], json!({ LOGOUT_EVENT: {} }));
        assert!(c.get("nonce").is_none());
    }
}
