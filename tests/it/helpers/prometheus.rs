//! `/metrics` in the Prometheus text format, read by metric name.

use reqwest::StatusCode;

use super::{METRICS_TOKEN, TestApp};

/// What `/metrics` reports, by metric name.
#[derive(Debug, Clone)]
pub struct MetricsSnapshot {
    values: std::collections::BTreeMap<String, f64>,
    pub text: String,
}

impl MetricsSnapshot {
    fn parse(text: String) -> Self {
        let values = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                Some((name.trim().to_owned(), value.trim().parse().ok()?))
            })
            .collect();
        MetricsSnapshot { values, text }
    }

    /// A counter or gauge by name; it must be reported.
    pub fn get(&self, name: &str) -> u64 {
        let value = self
            .values
            .get(name)
            .unwrap_or_else(|| panic!("/metrics does not report {name}:\n{}", self.text));
        assert!(
            *value >= 0.0 && value.fract() == 0.0,
            "{name} is a whole number: {value}"
        );
        *value as u64
    }
}

impl TestApp {
    /// GET /metrics (Prometheus text).
    pub async fn metrics(&self) -> MetricsSnapshot {
        let resp = self
            .backchannel
            .get(self.url("/metrics"))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .expect("GET /metrics");
        let status = resp.status();
        let text = resp.text().await.expect("read /metrics");
        assert_eq!(status, StatusCode::OK, "/metrics answered {status}: {text}");
        MetricsSnapshot::parse(text)
    }
}
