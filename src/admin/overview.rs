//! The overview: the first page an admin sees (and `GET /admin/api/v1/overview`). Counts over
//! the last 24 hours (per hour) and 30 days (per day) from the audit log, live sessions, the
//! signing keys and when the next one is due, and a short "needs attention" list.

use serde::Serialize;

use super::AdminError;
use crate::clock::Timestamp;
use crate::oauth::Provider;
use crate::store::{AuditStore, KeyStore, SessionStore};

/// What an overview series counts: its name and the audit actions that make it up.
pub const SERIES: &[(&str, &[&str])] = &[
    ("sign_ins", &["signin.success"]),
    (
        "failed_sign_ins",
        &["signin.failure", "mfa.challenge_failed"],
    ),
    ("lockouts", &["signin.locked", "mfa.locked"]),
    ("refresh_reuse_detections", &["refresh.reuse_detected"]),
];

const HOUR: i64 = 3600;
const DAY: i64 = 86400;

/// One counted thing over a period: the total and the count per bucket, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Series {
    pub name: &'static str,
    pub total: i64,
    pub buckets: Vec<i64>,
}

/// Every series over one period.
#[derive(Debug, Clone, Serialize)]
pub struct Period {
    /// The start of the first bucket.
    pub since: Timestamp,
    /// Seconds per bucket (3600 or 86400).
    pub bucket_seconds: i64,
    pub series: Vec<Series>,
}

impl Period {
    pub fn total(&self, name: &str) -> i64 {
        self.series
            .iter()
            .find(|s| s.name == name)
            .map_or(0, |s| s.total)
    }
}

/// A signing key as the overview lists it.
#[derive(Debug, Clone, Serialize)]
pub struct KeyLine {
    pub kid: String,
    /// `next` (published, not signing yet), `active` (signing) or `retiring` (published until
    /// the tokens it signed expire).
    pub state: &'static str,
    pub activate_at: Timestamp,
    pub expire_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub at: Timestamp,
    pub last_24_hours: Period,
    pub last_30_days: Period,
    pub live_sessions: i64,
    /// Token responses issued by this process since it started (`/metrics`).
    pub tokens_issued_since_start: u64,
    pub keys: Vec<KeyLine>,
    /// When the active key is due to be replaced (the next key starts signing).
    pub next_rotation: Option<Timestamp>,
    /// Short sentences for what an operator should look at, most serious first.
    pub attention: Vec<String>,
}

/// What the overview needs from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct OverviewSettings {
    pub key_rotation_interval: i64,
    pub session_idle_ttl: i64,
}

async fn period(
    p: &Provider,
    now: Timestamp,
    buckets: i64,
    bucket_seconds: i64,
) -> Result<Period, AdminError> {
    // Whole buckets ending with the one holding `now`.
    let end = (now / bucket_seconds + 1) * bucket_seconds;
    let since = end - buckets * bucket_seconds;
    let rows = p.store.audit_counts(since, bucket_seconds).await?;
    let series = SERIES
        .iter()
        .map(|(name, actions)| {
            let mut counts = vec![0_i64; usize::try_from(buckets).unwrap_or(0)];
            for (action, k, n) in &rows {
                if actions.contains(&action.as_str())
                    && let Some(slot) = usize::try_from(*k).ok().and_then(|k| counts.get_mut(k))
                {
                    *slot += n;
                }
            }
            Series {
                name,
                total: counts.iter().sum(),
                buckets: counts,
            }
        })
        .collect();
    Ok(Period {
        since,
        bucket_seconds,
        series,
    })
}

/// The overview at the provider's clock.
pub async fn overview(p: &Provider, settings: OverviewSettings) -> Result<Overview, AdminError> {
    let now = p.now();
    let last_24_hours = period(p, now, 24, HOUR).await?;
    let last_30_days = period(p, now, 30, DAY).await?;
    let live_sessions = p
        .store
        .count_live_sessions(now, now - settings.session_idle_ttl)
        .await?;
    let mut live = p.store.live_keys(now).await?;
    live.sort_by_key(|k| k.activate_at);
    let current = live
        .iter()
        .rfind(|k| k.activate_at <= now)
        .map(|k| k.kid.clone());
    let keys: Vec<KeyLine> = live
        .iter()
        .map(|k| KeyLine {
            kid: k.kid.clone(),
            state: if k.activate_at > now {
                "next"
            } else if Some(&k.kid) == current.as_ref() {
                "active"
            } else {
                "retiring"
            },
            activate_at: k.activate_at,
            expire_at: k.expire_at,
        })
        .collect();
    let pending = keys.iter().find(|k| k.state == "next");
    let next_rotation = match pending {
        Some(k) => Some(k.activate_at),
        None => live
            .iter()
            .find(|k| Some(&k.kid) == current.as_ref())
            .map(|k| k.activate_at + settings.key_rotation_interval),
    };
    let mut attention = Vec::new();
    if current.is_none() {
        attention.push("No signing key is active: tokens cannot be issued.".to_string());
    }
    if let Some(due) = next_rotation
        && due <= now
    {
        attention.push("The signing key is overdue for rotation.".to_string());
    }
    let reuse = last_24_hours.total("refresh_reuse_detections");
    if reuse > 0 {
        attention.push(format!(
            "{reuse} refresh token reuse detection{} in the last 24 hours: a token may have been stolen.",
            plural(reuse)
        ));
    }
    let locks = last_24_hours.total("lockouts");
    if locks > 0 {
        attention.push(format!(
            "{locks} lock-out{} in the last 24 hours.",
            plural(locks)
        ));
    }
    let failed = last_24_hours.total("failed_sign_ins");
    let succeeded = last_24_hours.total("sign_ins");
    if failed >= 20 && failed > succeeded {
        attention.push(format!(
            "More failed sign-ins ({failed}) than successful ones ({succeeded}) in the last 24 hours."
        ));
    }
    Ok(Overview {
        at: now,
        last_24_hours,
        last_30_days,
        live_sessions,
        tokens_issued_since_start: p
            .metrics
            .tokens_issued
            .load(std::sync::atomic::Ordering::Relaxed),
        keys,
        next_rotation,
        attention,
    })
}

fn plural(n: i64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditEvent;
    use crate::testkit::Kit;

    const SETTINGS: OverviewSettings = OverviewSettings {
        key_rotation_interval: 90 * DAY,
        session_idle_ttl: 8 * HOUR,
    };

    #[tokio::test]
    async fn the_overview_counts_the_audit_log_per_hour_and_per_day() {
        let kit = Kit::new().await;
        let p = &kit.p;
        p.audit(AuditEvent::new("signin.failure")).await;
        kit.advance(2 * DAY);
        p.audit(AuditEvent::new("signin.failure")).await;
        p.audit(AuditEvent::new("signin.locked")).await;
        kit.advance(2 * HOUR);
        p.audit(AuditEvent::new("signin.success")).await;
        p.audit(AuditEvent::new("refresh.reuse_detected")).await;
        p.audit(AuditEvent::new("mfa.challenge_failed")).await;
        let o = overview(p, SETTINGS).await.unwrap();
        let day = &o.last_24_hours;
        assert_eq!(day.total("failed_sign_ins"), 2);
        assert_eq!(day.total("sign_ins"), 1);
        assert_eq!(day.total("lockouts"), 1);
        assert_eq!(day.total("refresh_reuse_detections"), 1);
        let failed = day
            .series
            .iter()
            .find(|s| s.name == "failed_sign_ins")
            .unwrap();
        assert_eq!(failed.buckets.len(), 24);
        // The last bucket holds now; the earlier failure is two hours before.
        assert_eq!(failed.buckets[23], 1);
        assert_eq!(failed.buckets[21], 1);
        assert_eq!(o.last_30_days.total("failed_sign_ins"), 3);
        assert_eq!(o.last_30_days.series[0].buckets.len(), 30);
        assert!(
            o.attention.iter().any(|a| a.contains("reuse")),
            "{:?}",
            o.attention
        );
        assert!(
            o.attention.iter().any(|a| a.contains("lock-out")),
            "{:?}",
            o.attention
        );
        // 31 days later nothing is counted any more.
        kit.advance(31 * DAY);
        let later = overview(p, SETTINGS).await.unwrap();
        assert_eq!(later.last_30_days.total("failed_sign_ins"), 0);
        assert!(later.attention.iter().all(|a| !a.contains("reuse")));
    }

    #[tokio::test]
    async fn the_overview_counts_live_sessions_and_shows_the_active_key() {
        let kit = Kit::new().await;
        let u = kit.user("ada@example.com").await;
        kit.session(&u).await;
        kit.session(&u).await;
        let o = overview(&kit.p, SETTINGS).await.unwrap();
        assert_eq!(o.live_sessions, 2);
        assert_eq!(o.keys.iter().filter(|k| k.state == "active").count(), 1);
        assert!(o.next_rotation.is_some_and(|t| t > kit.now()));
        // Past the idle limit, none is live.
        kit.advance(8 * HOUR + 1);
        assert_eq!(overview(&kit.p, SETTINGS).await.unwrap().live_sessions, 0);
    }
}
