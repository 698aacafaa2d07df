//! A few counters that matter to operators, in the Prometheus text format at `/metrics`.
//! They tell a harmless refresh race from a replay, and show sign-in outcomes; a histogram per
//! endpoint shows how long Tessera itself takes to answer, apart from the network and the client.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds, in seconds, of the request-duration buckets.
const BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The endpoints timed separately, by label and path; every other path counts as `other` (a
/// fixed set keeps the number of series bounded whatever paths clients request).
const TIMED: [(&str, &str); 9] = [
    ("token", "/token"),
    ("introspect", "/introspect"),
    ("revoke", "/revoke"),
    ("userinfo", "/userinfo"),
    ("authorize", "/authorize"),
    ("login", "/login"),
    ("second_step", "/login/second-step"),
    ("jwks", "/jwks.json"),
    ("discovery", "/.well-known/openid-configuration"),
];

/// The grant types whose `/token` requests are also timed apart: they cost very different
/// amounts (a refresh rotation writes to the database, client_credentials only signs).
pub const TOKEN_GRANTS: [&str; 3] = ["authorization_code", "refresh_token", "client_credentials"];

/// The index of a grant type in [`TOKEN_GRANTS`]; `None` for any other value.
pub fn token_grant(grant_type: &str) -> Option<usize> {
    TOKEN_GRANTS.iter().position(|g| *g == grant_type)
}

/// The histogram index of a request path: its place in [`TIMED`], or the last one (`other`).
pub fn endpoint(path: &str) -> usize {
    TIMED
        .iter()
        .position(|(_, timed)| *timed == path)
        .unwrap_or(TIMED.len())
}

#[derive(Debug, Default)]
struct Histogram {
    /// Requests per bucket (not cumulative); slower than the last bound: only in `count`.
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The series of histogram `name` whose one label is `label`, e.g. `endpoint="token"`.
    fn render(&self, name: &str, label: &str, out: &mut String) {
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            out.push_str(&format!(
                "{name}_bucket{{{label},le=\"{bound}\"}} {cumulative}\n"
            ));
        }
        // Read last, so `+Inf` and `count` are never below a bucket read before them.
        let count = self.count.load(Ordering::Relaxed).max(cumulative);
        out.push_str(&format!(
            "{name}_bucket{{{label},le=\"+Inf\"}} {count}\n\
             {name}_sum{{{label}}} {}\n\
             {name}_count{{{label}}} {count}\n",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        ));
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    pub refresh_rotations: AtomicU64,
    pub refresh_races: AtomicU64,
    pub refresh_reuse_detected: AtomicU64,
    pub code_replays: AtomicU64,
    pub signins_ok: AtomicU64,
    pub signins_failed: AtomicU64,
    pub tokens_issued: AtomicU64,
    /// Pages served by the revocation feed (`/ssf/events`).
    pub feed_polls: AtomicU64,
    /// Back-channel logouts queued, delivered, retried (one per failed attempt) and given up.
    pub backchannel_queued: AtomicU64,
    pub backchannel_delivered: AtomicU64,
    pub backchannel_retried: AtomicU64,
    pub backchannel_failed: AtomicU64,
    /// Per endpoint of [`TIMED`], in that order, then `other`.
    request_durations: [Histogram; TIMED.len() + 1],
    /// `/token` requests again, per grant type of [`TOKEN_GRANTS`].
    token_durations: [Histogram; TOKEN_GRANTS.len()],
    /// The sign-in step's password check (argon2id, or the dummy hash of an unknown account):
    /// the part of a sign-in that is hashing, so the rest of it can be told apart.
    password_checks: Histogram,
}

pub fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// Records how long Tessera took to answer a request to endpoint `index` (see [`endpoint`]).
    pub fn observe_request(&self, index: usize, took: Duration) {
        if let Some(h) = self.request_durations.get(index) {
            h.observe(took);
        }
    }

    /// Records how long a `/token` request of grant type `index` (see [`token_grant`]) took.
    pub fn observe_token(&self, index: usize, took: Duration) {
        if let Some(h) = self.token_durations.get(index) {
            h.observe(took);
        }
    }

    /// Records how long a sign-in's password check took (see `auth::signin`).
    pub fn observe_password_check(&self, took: Duration) {
        self.password_checks.observe(took);
    }

    pub fn render(&self, revocations_in_memory: usize) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::with_capacity(1024);
        let mut counter = |name: &str, help: &str, value: u64| {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
            ));
        };
        counter(
            "tessera_tokens_issued_total",
            "Token responses issued by /token.",
            g(&self.tokens_issued),
        );
        counter(
            "tessera_feed_polls_total",
            "Pages served by the revocation feed (/ssf/events).",
            g(&self.feed_polls),
        );
        counter(
            "tessera_refresh_rotations_total",
            "Refresh tokens rotated.",
            g(&self.refresh_rotations),
        );
        counter(
            "tessera_refresh_races_total",
            "A just-rotated refresh token presented again within the grace window (tabs racing); answered with the same successor.",
            g(&self.refresh_races),
        );
        counter(
            "tessera_refresh_reuse_detected_total",
            "A rotated refresh token replayed after the grace window; its family and session were revoked.",
            g(&self.refresh_reuse_detected),
        );
        counter(
            "tessera_code_replays_total",
            "Authorization codes presented twice.",
            g(&self.code_replays),
        );
        counter(
            "tessera_signins_succeeded_total",
            "Successful password sign-ins.",
            g(&self.signins_ok),
        );
        counter(
            "tessera_signins_failed_total",
            "Failed password sign-ins.",
            g(&self.signins_failed),
        );
        counter(
            "tessera_backchannel_logout_queued_total",
            "Back-channel logout deliveries queued (one per client of an ended session).",
            g(&self.backchannel_queued),
        );
        counter(
            "tessera_backchannel_logout_delivered_total",
            "Back-channel logout tokens an RP accepted (200 or 204).",
            g(&self.backchannel_delivered),
        );
        counter(
            "tessera_backchannel_logout_retried_total",
            "Back-channel logout attempts that failed and were rescheduled.",
            g(&self.backchannel_retried),
        );
        counter(
            "tessera_backchannel_logout_failed_total",
            "Back-channel logout deliveries given up (audited as backchannel_logout.failed).",
            g(&self.backchannel_failed),
        );
        out.push_str(&format!(
            "# HELP tessera_revocations_in_memory Revocations held for live access tokens.\n# TYPE tessera_revocations_in_memory gauge\ntessera_revocations_in_memory {revocations_in_memory}\n"
        ));
        out.push_str(
            "# HELP tessera_http_request_duration_seconds Time from a request's arrival to its response, by endpoint.\n\
             # TYPE tessera_http_request_duration_seconds histogram\n",
        );
        for (i, h) in self.request_durations.iter().enumerate() {
            let endpoint = TIMED.get(i).map_or("other", |(label, _)| label);
            h.render(
                "tessera_http_request_duration_seconds",
                &format!("endpoint=\"{endpoint}\""),
                &mut out,
            );
        }
        out.push_str(
            "# HELP tessera_token_request_duration_seconds Time from a /token request's arrival to its response, by grant type.\n\
             # TYPE tessera_token_request_duration_seconds histogram\n",
        );
        for (grant, h) in TOKEN_GRANTS.iter().zip(&self.token_durations) {
            h.render(
                "tessera_token_request_duration_seconds",
                &format!("grant_type=\"{grant}\""),
                &mut out,
            );
        }
        out.push_str(
            "# HELP tessera_password_check_duration_seconds Time a sign-in spent checking the password (argon2id).\n\
             # TYPE tessera_password_check_duration_seconds histogram\n",
        );
        self.password_checks.render(
            "tessera_password_check_duration_seconds",
            "step=\"sign_in\"",
            &mut out,
        );
        out
    }

    /// The gauge of back-channel logouts still to deliver (across replicas: read from the
    /// database by the caller).
    pub fn render_backchannel_pending(pending: i64) -> String {
        format!(
            "# HELP tessera_backchannel_logout_pending Back-channel logout deliveries still to make.\n\
             # TYPE tessera_backchannel_logout_pending gauge\n\
             tessera_backchannel_logout_pending {pending}\n"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts that `metrics` renders each `(series, count)` line exactly.
    fn assert_renders(metrics: &Metrics, lines: &[(&str, &str)]) {
        let text = metrics.render(0);
        for (series, value) in lines {
            let line = format!("{series} {value}\n");
            assert!(text.contains(&line), "missing {line:?} in:\n{text}");
        }
    }

    #[test]
    fn request_durations_render_as_cumulative_buckets_per_endpoint() {
        let m = Metrics::default();
        let token = endpoint("/token");
        m.observe_request(token, Duration::from_micros(300));
        m.observe_request(token, Duration::from_millis(3));
        m.observe_request(token, Duration::from_secs(5));
        m.observe_request(endpoint("/account"), Duration::from_millis(1));
        let h = "tessera_http_request_duration_seconds";
        assert_renders(
            &m,
            &[
                (
                    &format!("{h}_bucket{{endpoint=\"token\",le=\"0.0005\"}}"),
                    "1",
                ),
                (
                    &format!("{h}_bucket{{endpoint=\"token\",le=\"0.0025\"}}"),
                    "1",
                ),
                (
                    &format!("{h}_bucket{{endpoint=\"token\",le=\"0.005\"}}"),
                    "2",
                ),
                (&format!("{h}_bucket{{endpoint=\"token\",le=\"2.5\"}}"), "2"),
                (
                    &format!("{h}_bucket{{endpoint=\"token\",le=\"+Inf\"}}"),
                    "3",
                ),
                (&format!("{h}_count{{endpoint=\"token\"}}"), "3"),
                (&format!("{h}_sum{{endpoint=\"token\"}}"), "5.0033"),
                (&format!("{h}_count{{endpoint=\"other\"}}"), "1"),
                (&format!("{h}_count{{endpoint=\"jwks\"}}"), "0"),
            ],
        );
    }

    #[test]
    fn password_checks_render_as_their_own_histogram() {
        let m = Metrics::default();
        m.observe_password_check(Duration::from_millis(40));
        m.observe_password_check(Duration::from_millis(60));
        m.observe_request(endpoint("/login"), Duration::from_millis(70));
        let h = "tessera_password_check_duration_seconds";
        assert_renders(
            &m,
            &[
                (&format!("{h}_bucket{{step=\"sign_in\",le=\"0.05\"}}"), "1"),
                (&format!("{h}_bucket{{step=\"sign_in\",le=\"0.1\"}}"), "2"),
                (&format!("{h}_sum{{step=\"sign_in\"}}"), "0.1"),
                (&format!("{h}_count{{step=\"sign_in\"}}"), "2"),
                (
                    "tessera_http_request_duration_seconds_count{endpoint=\"login\"}",
                    "1",
                ),
            ],
        );
    }

    #[test]
    fn token_requests_are_also_timed_per_grant_type() {
        let m = Metrics::default();
        assert_eq!(token_grant("password"), None);
        let refresh = token_grant("refresh_token").unwrap();
        m.observe_token(refresh, Duration::from_millis(12));
        m.observe_token(refresh, Duration::from_millis(4));
        let h = "tessera_token_request_duration_seconds";
        assert_renders(
            &m,
            &[
                (
                    &format!("{h}_bucket{{grant_type=\"refresh_token\",le=\"0.005\"}}"),
                    "1",
                ),
                (
                    &format!("{h}_bucket{{grant_type=\"refresh_token\",le=\"0.01\"}}"),
                    "1",
                ),
                (
                    &format!("{h}_bucket{{grant_type=\"refresh_token\",le=\"0.015\"}}"),
                    "2",
                ),
                (&format!("{h}_count{{grant_type=\"refresh_token\"}}"), "2"),
                (
                    &format!("{h}_count{{grant_type=\"client_credentials\"}}"),
                    "0",
                ),
                (
                    &format!("{h}_count{{grant_type=\"authorization_code\"}}"),
                    "0",
                ),
            ],
        );
    }
}
