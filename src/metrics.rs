//! A few counters that matter to operators, in the Prometheus text format at `/metrics`.
//! They tell a harmless refresh race from a replay, and show sign-in outcomes.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Metrics {
    pub refresh_rotations: AtomicU64,
    pub refresh_races: AtomicU64,
    pub refresh_reuse_detected: AtomicU64,
    pub code_replays: AtomicU64,
    pub signins_ok: AtomicU64,
    pub signins_failed: AtomicU64,
    pub tokens_issued: AtomicU64,
}

pub fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
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
        out.push_str(&format!(
            "# HELP tessera_revocations_in_memory Revocations held for live access tokens.\n# TYPE tessera_revocations_in_memory gauge\ntessera_revocations_in_memory {revocations_in_memory}\n"
        ));
        out
    }
}
