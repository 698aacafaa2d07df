//! Tessera's own view of a run: its request-duration histograms at `/metrics`, read before and
//! after a path is driven, so that a row can tell the time spent inside Tessera (from the parsed
//! request to its answer) from the time the request spent in the kernel, the scheduler's queues
//! and the load generator.

/// The bearer token the harness gives the Tessera it starts (`TESSERA_METRICS_TOKEN`): `/metrics`
/// is not served on the public listener without one. Other servers ignore the header.
pub const METRICS_TOKEN: &str = "tessera-bench-metrics-token";

/// One histogram's series: a metric and the values of its one label to sum.
#[derive(Debug, Clone, Copy)]
pub struct Series {
    metric: &'static str,
    label: &'static str,
    values: &'static [&'static str],
}

const BY_ENDPOINT: &str = "tessera_http_request_duration_seconds";
const BY_GRANT: &str = "tessera_token_request_duration_seconds";

const fn endpoint(values: &'static [&'static str]) -> Series {
    Series {
        metric: BY_ENDPOINT,
        label: "endpoint",
        values,
    }
}

const fn grant(values: &'static [&'static str]) -> Series {
    Series {
        metric: BY_GRANT,
        label: "grant_type",
        values,
    }
}

pub const CLIENT_CREDENTIALS: Series = grant(&["client_credentials"]);
pub const REFRESH: Series = grant(&["refresh_token"]);
pub const INTROSPECT: Series = endpoint(&["introspect"]);
pub const JWKS_AND_DISCOVERY: Series = endpoint(&["jwks", "discovery"]);
/// The sign-in POST: the step that hashes the password.
pub const LOGIN: Series = endpoint(&["login"]);
/// The second step's POST: the one-time code checked, the session opened.
pub const SECOND_STEP: Series = endpoint(&["second_step"]);

/// The endpoints a browser sign-in goes through: the authorization request (which shows the
/// sign-in page), the sign-in POST, the second-step POST and the code's redemption.
pub const SIGN_IN_ENDPOINTS: [&str; 4] = ["authorize", "login", "second_step", "token"];

/// What Tessera has spent so far on sign-ins, read from `/metrics` and `/proc`: two reads
/// around one sign-in (nothing else running) give what that sign-in cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignInTotals {
    /// Seconds answering each of [`SIGN_IN_ENDPOINTS`], in that order (the sign-in POST's with
    /// its password check in).
    pub endpoints: [f64; 4],
    /// Seconds the sign-in POSTs spent checking passwords
    /// (`tessera_password_check_duration_seconds`).
    pub password_check: f64,
    /// CPU seconds of all Tessera's threads (`/proc/PID/task/*/schedstat`); `None` off Linux.
    pub cpu: Option<f64>,
}

impl SignInTotals {
    /// What was spent between `self` and a later read `then`.
    pub fn until(&self, then: &Self) -> Self {
        Self {
            endpoints: std::array::from_fn(|i| then.endpoints[i] - self.endpoints[i]),
            password_check: then.password_check - self.password_check,
            cpu: self.cpu.zip(then.cpu).map(|(a, b)| b - a),
        }
    }

    /// Server time apart from the password check.
    pub fn inside(&self) -> f64 {
        self.endpoints.iter().sum::<f64>() - self.password_check
    }

    /// CPU time apart from the password check (its wall time, which is its CPU time when
    /// nothing else runs: argon2id on one lane).
    pub fn cpu_apart_from_check(&self) -> Option<f64> {
        self.cpu.map(|c| c - self.password_check)
    }
}

/// Reads [`SignInTotals`] of the Tessera at `base` running as `pid`. `None` when the server
/// exposes no such series. `/metrics` itself is not one of the endpoints counted.
pub async fn sign_in_totals(c: &reqwest::Client, base: &str, pid: u32) -> Option<SignInTotals> {
    let text = metrics_text(c, base).await?;
    let (endpoints, password_check) = sign_in_seconds(&text)?;
    Some(SignInTotals {
        endpoints,
        password_check,
        cpu: cpu_seconds(pid),
    })
}

fn sign_in_seconds(text: &str) -> Option<([f64; 4], f64)> {
    let sum_of = |series: &str| -> Option<f64> {
        let (_, value) = text
            .lines()
            .find_map(|line| line.strip_prefix(series)?.split_once(' '))?;
        value.trim().parse().ok()
    };
    let mut seconds = [0.0; 4];
    for (i, endpoint) in SIGN_IN_ENDPOINTS.iter().enumerate() {
        seconds[i] = sum_of(&format!("{BY_ENDPOINT}_sum{{endpoint=\"{endpoint}\"}}"))?;
    }
    let check = sum_of("tessera_password_check_duration_seconds_sum{step=\"sign_in\"}")?;
    Some((seconds, check))
}

/// The CPU time of every thread of process `pid`, in seconds: the first field of each
/// `/proc/PID/task/TID/schedstat` (nanoseconds on a CPU), summed.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let mut nanos: u64 = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(text) = std::fs::read_to_string(task.ok()?.path().join("schedstat")) else {
            continue; // a thread that ended meanwhile
        };
        nanos += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(nanos as f64 / 1e9)
}

/// Cumulative request counts by bucket upper bound (seconds; the last is `+Inf`), summed over
/// the series' label values.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot(Vec<(f64, u64)>);

/// Reads `series`. `None` when the server does not answer or exposes no such series
/// (oidc-provider, or an older Tessera).
pub async fn snapshot(c: &reqwest::Client, base: &str, series: Series) -> Option<Snapshot> {
    parse(&metrics_text(c, base).await?, series)
}

/// The exposition at `/metrics`, read with the harness's token.
async fn metrics_text(c: &reqwest::Client, base: &str) -> Option<String> {
    c.get(format!("{base}/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()
}

fn parse(text: &str, series: Series) -> Option<Snapshot> {
    let prefix = format!("{}_bucket{{", series.metric);
    let mut buckets: Vec<(f64, u64)> = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(&prefix) else {
            continue;
        };
        let (labels, count) = rest.split_once("} ")?;
        let label = |name: &str| {
            labels.split(',').find_map(|kv| {
                kv.strip_prefix(name)?
                    .strip_prefix("=\"")?
                    .strip_suffix('"')
            })
        };
        if !series.values.contains(&label(series.label)?) {
            continue;
        }
        let le = match label("le")? {
            "+Inf" => f64::INFINITY,
            bound => bound.parse().ok()?,
        };
        let count: u64 = count.trim().parse().ok()?;
        match buckets.iter_mut().find(|(b, _)| *b == le) {
            Some((_, n)) => *n += count,
            None => buckets.push((le, count)),
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    (!buckets.is_empty()).then_some(Snapshot(buckets))
}

/// The bucket, in milliseconds (lower, upper), holding the `q`-quantile of the requests
/// answered between two snapshots: as precise as the buckets are (5, 7.5, 10, 15, 20, 25, 50,
/// 100 ms ...), with no interpolation inside one. A quantile beyond the last bound reads as
/// (that bound, infinity).
pub fn quantile_bucket(before: &Snapshot, after: &Snapshot, q: f64) -> Option<(f64, f64)> {
    let delta: Vec<(f64, u64)> = after
        .0
        .iter()
        .map(|&(le, n)| {
            let earlier = before
                .0
                .iter()
                .find(|(b, _)| *b == le)
                .map_or(0, |(_, m)| *m);
            (le, n.saturating_sub(earlier))
        })
        .collect();
    let total = delta.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut lower = 0.0;
    for &(le, cumulative) in &delta {
        if cumulative as f64 >= rank {
            return Some((lower * 1e3, le * 1e3));
        }
        lower = le;
    }
    Some((lower * 1e3, f64::INFINITY))
}

/// A bucket as a table cell: `7.5-10`, or `>2500` past the last bound.
pub fn cell((lower, upper): (f64, f64)) -> String {
    if upper.is_infinite() {
        format!(">{lower}")
    } else {
        format!("{lower}-{upper}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: Series = endpoint(&["token"]);

    /// Two endpoints' series, and the same counts again per grant type (which must not mix in).
    fn exposition(token: [u64; 4], jwks: [u64; 4]) -> String {
        let mut out = String::from("# TYPE tessera_http_request_duration_seconds histogram\n");
        for (metric, label) in [
            (BY_ENDPOINT, ["endpoint=\"token\"", "endpoint=\"jwks\""]),
            (
                BY_GRANT,
                ["grant_type=\"refresh_token\"", "grant_type=\"other\""],
            ),
        ] {
            for (label, counts) in label.iter().zip([token, jwks]) {
                for (le, n) in ["0.005", "0.01", "0.025", "+Inf"].iter().zip(counts) {
                    out.push_str(&format!("{metric}_bucket{{{label},le=\"{le}\"}} {n}\n"));
                }
                out.push_str(&format!("{metric}_count{{{label}}} {}\n", counts[3]));
            }
        }
        out.push_str("tessera_refresh_rotations_total 7\n");
        out
    }

    #[test]
    fn reads_only_the_endpoints_asked_for_and_sums_them() {
        let text = exposition([1, 2, 3, 4], [10, 20, 30, 40]);
        let token = parse(&text, TOKEN).unwrap();
        assert_eq!(
            token,
            Snapshot(vec![(0.005, 1), (0.01, 2), (0.025, 3), (f64::INFINITY, 4)])
        );
        let both = parse(&text, endpoint(&["token", "jwks"])).unwrap();
        assert_eq!(both.0[3], (f64::INFINITY, 44));
        assert_eq!(parse(&text, REFRESH), Some(token));
        assert_eq!(parse(&text, INTROSPECT), None);
        assert_eq!(parse("no metrics here", TOKEN), None);
    }

    #[test]
    fn sign_in_seconds_add_the_sign_in_endpoints_and_take_away_the_password_checks() {
        let mut text = String::new();
        for (endpoint, sum) in [
            ("authorize", 0.5),
            ("login", 2.0),
            ("second_step", 0.25),
            ("token", 0.125),
            ("other", 100.0),
        ] {
            text.push_str(&format!(
                "{BY_ENDPOINT}_sum{{endpoint=\"{endpoint}\"}} {sum}\n"
            ));
        }
        assert_eq!(sign_in_seconds(&text), None, "no password checks exposed");
        text.push_str("tessera_password_check_duration_seconds_sum{step=\"sign_in\"} 1.5\n");
        assert_eq!(sign_in_seconds(&text), Some(([0.5, 2.0, 0.25, 0.125], 1.5)));
        let before = SignInTotals {
            endpoints: [0.0; 4],
            password_check: 0.0,
            cpu: Some(1.0),
        };
        let after = SignInTotals {
            endpoints: [0.5, 2.0, 0.25, 0.125],
            password_check: 1.5,
            cpu: Some(3.0),
        };
        let spent = before.until(&after);
        assert_eq!(spent.inside(), 1.375);
        assert_eq!(spent.cpu_apart_from_check(), Some(0.5));
    }

    #[test]
    fn this_process_has_spent_some_cpu_time() {
        let cpu = cpu_seconds(std::process::id()).expect("/proc on Linux");
        let mut x: u64 = 1;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_seconds(std::process::id()).expect("again") > cpu);
    }

    #[test]
    fn the_quantile_counts_only_requests_between_the_snapshots() {
        // Before: 100 fast requests. Between: 90 under 5 ms, 10 between 10 and 25 ms.
        let before = parse(&exposition([100, 100, 100, 100], [0; 4]), TOKEN).unwrap();
        let after = parse(&exposition([190, 190, 200, 200], [0; 4]), TOKEN).unwrap();
        assert_eq!(quantile_bucket(&before, &after, 0.5), Some((0.0, 5.0)));
        assert_eq!(quantile_bucket(&before, &after, 0.9), Some((0.0, 5.0)));
        assert_eq!(quantile_bucket(&before, &after, 0.99), Some((10.0, 25.0)));
        assert_eq!(cell((10.0, 25.0)), "10-25");
    }

    #[test]
    fn a_quantile_beyond_the_last_bound_is_open_ended_and_no_requests_give_none() {
        let before = parse(&exposition([0; 4], [0; 4]), TOKEN).unwrap();
        let after = parse(&exposition([0, 0, 1, 10], [0; 4]), TOKEN).unwrap();
        let beyond = quantile_bucket(&before, &after, 0.99).unwrap();
        assert_eq!(beyond, (25.0, f64::INFINITY));
        assert_eq!(cell(beyond), ">25");
        assert_eq!(quantile_bucket(&after, &after, 0.99), None);
    }
}
