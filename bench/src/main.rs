//! Tessera's load harness. It starts Tessera (release build) itself, bootstraps it through the
//! CLI, drives each path with closed-loop workers and reports throughput, p50/p99/p99.9 latency,
//! errors and the server's RSS; with `--compare` it measures panva/oidc-provider with the same
//! load generator and prints ratios.
//!
//!   cargo build --release && cargo run --release -p tessera-bench -- --backend both --compare --scale
//!   cargo run -p tessera-bench -- --smoke          (seconds; what CI runs)

mod lean;
mod runner;
mod scenarios;
mod server_time;
mod servers;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use runner::Outcome;
use scenarios as sc;
use server_time::SignInTotals;
use servers::{Backend, OidcProvider, Tessera, rss_kib};

struct Args {
    smoke: bool,
    seconds: u64,
    backends: Vec<Backend>,
    compare: bool,
    scale: bool,
    tessera: PathBuf,
    out: Option<PathBuf>,
    /// Paths to run (`cc`, `refresh`, `introspection`, `jwks`, `signin`, `isolation`); all when empty.
    only: Vec<String>,
    /// Extra `TESSERA_*` settings for the server (`--set KEY=VALUE`, repeatable): for experiments.
    set: Vec<(String, String)>,
}

impl Args {
    fn runs(&self, path: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == path)
    }
}

fn parse_args() -> Args {
    let mut a = Args {
        smoke: false,
        seconds: 10,
        backends: vec![Backend::Sqlite],
        compare: false,
        scale: false,
        tessera: PathBuf::from(
            std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()),
        )
        .join("release/tessera"),
        out: None,
        only: Vec::new(),
        set: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--smoke" => a.smoke = true,
            "--compare" => a.compare = true,
            "--scale" => a.scale = true,
            "--seconds" => a.seconds = it.next().and_then(|s| s.parse().ok()).expect("--seconds N"),
            "--tessera" => a.tessera = PathBuf::from(it.next().expect("--tessera PATH")),
            "--out" => a.out = Some(PathBuf::from(it.next().expect("--out FILE"))),
            "--set" => {
                let kv = it.next().expect("--set TESSERA_KEY=VALUE");
                let (k, v) = kv.split_once('=').expect("--set TESSERA_KEY=VALUE");
                a.set.push((k.to_string(), v.to_string()));
            }
            "--only" => {
                a.only = it
                    .next()
                    .expect("--only cc,refresh,introspection,jwks,signin,mfa,isolation")
                    .split(',')
                    .map(String::from)
                    .collect()
            }
            "--backend" => {
                a.backends = match it.next().as_deref() {
                    Some("sqlite") => vec![Backend::Sqlite],
                    Some("postgres") => vec![Backend::Postgres],
                    Some("both") => vec![Backend::Sqlite, Backend::Postgres],
                    _ => panic!("--backend sqlite|postgres|both"),
                }
            }
            other => panic!("unknown argument {other}"),
        }
    }
    if a.smoke {
        a.seconds = 1;
    }
    a
}

struct Row {
    backend: String,
    outcome: Outcome,
    rss_mib: f64,
    /// The bucket (ms) of Tessera's own p99 over the same requests, from its `/metrics` histogram.
    server_p99: Option<(f64, f64)>,
}

/// Reads Tessera's request-duration histogram `series` before and after `work`: the
/// outcome, and Tessera's own p99 over the requests answered meanwhile.
async fn timed(
    c: &reqwest::Client,
    base: &str,
    series: server_time::Series,
    work: impl std::future::Future<Output = Outcome>,
) -> (Outcome, Option<(f64, f64)>) {
    let before = server_time::snapshot(c, base, series).await;
    let outcome = work.await;
    (outcome, p99_since(c, base, series, before).await)
}

/// Tessera's own p99 bucket for `series` over the requests answered since `before` was read.
async fn p99_since(
    c: &reqwest::Client,
    base: &str,
    series: server_time::Series,
    before: Option<server_time::Snapshot>,
) -> Option<(f64, f64)> {
    let after = server_time::snapshot(c, base, series).await;
    server_time::quantile_bucket(&before?, &after?, 0.99)
}

fn mib(kib: Option<u64>) -> f64 {
    kib.unwrap_or(0) as f64 / 1024.0
}

fn row(out: &mut String, r: &Row, baseline: Option<&Row>, argon2: Option<f64>) {
    let o = &r.outcome;
    let ratio = match (baseline, argon2) {
        (Some(b), _) => format!("{:.1}x", o.rate() / b.outcome.rate().max(1e-9)),
        (None, Some(limit)) if o.name.starts_with("password sign-in") => {
            format!(
                "{:.0}% of argon2id limit",
                100.0 * o.rate() / limit.max(1e-9)
            )
        }
        _ => String::new(),
    };
    let server = r.server_p99.map_or(String::new(), server_time::cell);
    let _ = writeln!(
        out,
        "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {:.1} | {} |",
        o.name,
        r.backend,
        o.rate(),
        o.ms(0.50),
        o.ms(0.99),
        o.ms(0.999),
        server,
        o.errors,
        r.rss_mib,
        ratio
    );
}

/// A fresh chain in every session, then 32 workers rotating them: the outcome and Tessera's own
/// p99 for the refresh grant.
async fn refresh_row(
    c: &reqwest::Client,
    base: &str,
    sessions: &[String],
    name: &str,
    d: Duration,
) -> (Outcome, Option<(f64, f64)>) {
    let tokens = sc::refresh_chains(c, base, sessions).await;
    let work = sc::refresh_rotation(name, c.clone(), base.to_string(), tokens, 32, d);
    timed(c, base, server_time::REFRESH, work).await
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    assert!(
        args.tessera.exists(),
        "{} not found: build it first (cargo build --release)",
        args.tessera.display()
    );
    let d = Duration::from_secs(args.seconds);
    let chains = if args.smoke { 64 } else { 1000 };
    let mut rows: Vec<Row> = Vec::new();
    let mut idle_rss = Vec::new();
    // The machine's argon2id limit, measured right before each sign-in run (the server idle):
    // sign-in is reported against it.
    let mut argon2_limits: Vec<(String, f64, f64)> = Vec::new();
    let mut notes: Vec<String> = Vec::new();

    for &backend in &args.backends {
        let label = backend.label().to_string();
        let set: Vec<(&str, &str)> = args
            .set
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let t = Tessera::start(&args.tessera, backend, &set).await;
        sc::bootstrap(&t).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        idle_rss.push((label.clone(), mib(rss_kib(t.pid()))));
        let c = sc::http_client(64);
        // One session per refresh chain, one user per session (signed in once, at argon2's pace).
        let needs_chains = args.runs("refresh") || args.runs("isolation") || args.scale;
        let sessions = if needs_chains {
            sc::add_chain_users(&t.database_url, chains).await;
            sc::chain_sessions(&c, &t.base, chains).await
        } else {
            Vec::new()
        };
        let push =
            |rows: &mut Vec<Row>, (o, server_p99): (Outcome, Option<(f64, f64)>), pid: u32| {
                rows.push(Row {
                    backend: label.clone(),
                    outcome: o,
                    rss_mib: mib(rss_kib(pid)),
                    server_p99,
                })
            };

        if args.runs("cc") {
            let o = timed(
                &c,
                &t.base,
                server_time::CLIENT_CREDENTIALS,
                sc::client_credentials(
                    "client_credentials (ES256 JWT)",
                    t.base.clone(),
                    None,
                    32,
                    d,
                ),
            )
            .await;
            push(&mut rows, o, t.pid());
        }

        if args.runs("refresh") {
            let name = format!("refresh rotation ({chains} sessions)");
            let o = refresh_row(&c, &t.base, &sessions, &name, d).await;
            push(&mut rows, o, t.pid());
        }

        let access = if args.runs("introspection") || args.scale {
            sc::mint_access_tokens(&c, &t.base, if args.smoke { 50 } else { 1000 }, None).await
        } else {
            Vec::new()
        };
        if args.runs("introspection") {
            let o = timed(
                &c,
                &t.base,
                server_time::INTROSPECT,
                sc::introspection(
                    "introspection (JWT + revocation check)",
                    t.base.clone(),
                    "/introspect",
                    "rs",
                    access.clone(),
                    32,
                    d,
                ),
            )
            .await;
            push(&mut rows, o, t.pid());
        }

        if args.runs("jwks") {
            let o = timed(
                &c,
                &t.base,
                server_time::JWKS_AND_DISCOVERY,
                sc::jwks_and_discovery("JWKS + discovery", t.base.clone(), 32, d),
            )
            .await;
            push(&mut rows, o, t.pid());
        }

        if args.runs("signin") {
            // The machine's speed drifts (tens of percent over minutes): the limit is measured
            // right before and right after the run, and the run is compared with their mean.
            let window = if args.smoke {
                Duration::from_secs(1)
            } else {
                d.min(Duration::from_secs(5))
            };
            let before = runner::argon2_limit(window);
            // Tessera's own figure is the sign-in POST's, the step that hashes.
            let o = timed(
                &c,
                &t.base,
                server_time::LOGIN,
                sc::password_sign_in(
                    "password sign-in (full flow)",
                    c.clone(),
                    t.base.clone(),
                    8,
                    d,
                ),
            )
            .await;
            push(&mut rows, o, t.pid());
            let after = runner::argon2_limit(window);
            argon2_limits.push((label.clone(), before, after));
        }

        if args.runs("mfa") {
            // Sign-in with a second step: users with an authenticator app. A code counts once
            // per user and 30-second step, so no user may come round again within a step: the
            // pool holds more sign-ins than 100 a second (above any argon2 pace on this kind of
            // machine) can make in the run or in one step, whichever is shorter. (A smoke run
            // lasts about a second but its workers finish what they started: 300 users.)
            // Tessera's own figure is the second step's POST: its cost beyond the password.
            let pool = if args.smoke {
                300
            } else {
                args.seconds.clamp(1, 30) as usize * 100 + 100
            };
            let users = std::sync::Arc::new(sc::add_mfa_users(&t, pool).await);
            let login_before = server_time::snapshot(&c, &t.base, server_time::LOGIN).await;
            let step_before = server_time::snapshot(&c, &t.base, server_time::SECOND_STEP).await;
            let o = timed(
                &c,
                &t.base,
                server_time::SECOND_STEP,
                sc::password_totp_sign_in(
                    "password sign-in + TOTP (full flow; server p99: second step)",
                    c.clone(),
                    t.base.clone(),
                    users,
                    8,
                    d,
                ),
            )
            .await;
            // The median inside Tessera of both POSTs of the same sign-ins, for the cost of the
            // second step beyond the password.
            let login_after = server_time::snapshot(&c, &t.base, server_time::LOGIN).await;
            let step_after = server_time::snapshot(&c, &t.base, server_time::SECOND_STEP).await;
            let median = |before: Option<server_time::Snapshot>, after| {
                before
                    .zip(after)
                    .and_then(|(b, a)| server_time::quantile_bucket(&b, &a, 0.5))
            };
            let login_median = median(login_before, login_after);
            let step_median = median(step_before, step_after);
            notes.push(format!(
                "Inside Tessera during the {label} password + TOTP run, median bucket (ms): password POST {}, second-step POST {}",
                login_median.map_or("-".into(), server_time::cell),
                step_median.map_or("-".into(), server_time::cell),
            ));
            push(&mut rows, o, t.pid());

            // The cost of the second step beyond the password, with nothing queueing: sign-ins
            // one at a time, a password-only one and a password + TOTP one in turn (so drift
            // hits both alike), each user fresh, each flow's server time less its password check.
            let pairs = if args.smoke { 5 } else { 200 };
            let plain = sc::add_users(&t.database_url, "plain", pairs).await;
            let mfa_users = sc::add_mfa_users_named(&t, "pair", pairs).await;
            let measured = sc::paired_sign_ins(&c, &t.base, t.pid(), &plain, &mfa_users).await;
            notes.push(second_step_cost(&label, &measured));
        }

        if args.runs("isolation") {
            // Isolation: a sign-in flood saturates argon2 while token paths run. The control runs
            // the same token loads without the flood first, so the flood's own cost shows.
            for flood_workers in [0, 16] {
                let (cc_name, rr_name) = if flood_workers == 0 {
                    (
                        "isolation control (no sign-ins): client_credentials",
                        "isolation control (no sign-ins): refresh rotation",
                    )
                } else {
                    (
                        "isolation: client_credentials",
                        "isolation: refresh rotation",
                    )
                };
                let chains2 = sc::refresh_chains(&c, &t.base, &sessions).await;
                let snapshot = |series| server_time::snapshot(&c, &t.base, series);
                let cc_before = snapshot(server_time::CLIENT_CREDENTIALS).await;
                let rr_before = snapshot(server_time::REFRESH).await;
                let login_before = snapshot(server_time::LOGIN).await;
                let flood = tokio::spawn(sc::password_sign_in(
                    "isolation: sign-in flood",
                    c.clone(),
                    t.base.clone(),
                    flood_workers,
                    d,
                ));
                let cc = tokio::spawn(sc::client_credentials(cc_name, t.base.clone(), None, 16, d));
                let rr =
                    sc::refresh_rotation(rr_name, c.clone(), t.base.clone(), chains2, 16, d).await;
                let (flood, cc) = (flood.await.expect("flood"), cc.await.expect("cc"));
                let cc_p99 =
                    p99_since(&c, &t.base, server_time::CLIENT_CREDENTIALS, cc_before).await;
                let rr_p99 = p99_since(&c, &t.base, server_time::REFRESH, rr_before).await;
                let login_p99 = p99_since(&c, &t.base, server_time::LOGIN, login_before).await;
                let pid = t.pid();
                push(&mut rows, (cc, cc_p99), pid);
                push(&mut rows, (rr, rr_p99), pid);
                if flood_workers > 0 {
                    push(&mut rows, (flood, login_p99), pid);
                }
            }
        }

        if args.scale && !args.smoke {
            let mut seeded = 0u64;
            for target in [1_000u64, 100_000, 1_000_000] {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0);
                sc::seed_rows(&t.database_url, backend, seeded, target, now).await;
                seeded = target;
                let name = format!("scale {target} rows: refresh");
                let o = refresh_row(&c, &t.base, &sessions, &name, d).await;
                push(&mut rows, o, t.pid());
                let o = timed(
                    &c,
                    &t.base,
                    server_time::INTROSPECT,
                    sc::introspection(
                        &format!("scale {target} rows: introspection"),
                        t.base.clone(),
                        "/introspect",
                        "rs",
                        access.clone(),
                        32,
                        d,
                    ),
                )
                .await;
                push(&mut rows, o, t.pid());
            }
        }
        t.stop().await;
    }

    let mut baseline: Vec<Row> = Vec::new();
    if args.compare {
        let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("oidc-provider");
        let p = OidcProvider::start(&folder, sc::SECRET).await;
        let c = sc::http_client(64);
        let o = sc::client_credentials(
            "client_credentials (ES256 JWT)",
            p.base.clone(),
            Some("https://api.bench"),
            32,
            d,
        )
        .await;
        baseline.push(Row {
            backend: "oidc-provider".into(),
            outcome: o,
            rss_mib: mib(rss_kib(p.pid())),
            server_p99: None,
        });
        let opaque = sc::mint_access_tokens(&c, &p.base, 1000, Some("urn:bench:opaque")).await;
        let o = sc::introspection(
            "introspection (opaque)",
            p.base.clone(),
            "/token/introspection",
            "svc",
            opaque,
            32,
            d,
        )
        .await;
        baseline.push(Row {
            backend: "oidc-provider".into(),
            outcome: o,
            rss_mib: mib(rss_kib(p.pid())),
            server_p99: None,
        });
        p.stop().await;
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        "| path | server | req/s | p50 ms | p99 ms | p99.9 ms | p99 inside Tessera, ms (bucket) | errors | RSS MiB | vs oidc-provider |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        let base = baseline.iter().find(|b| {
            (r.outcome.name.starts_with("client_credentials")
                && b.outcome.name.starts_with("client_credentials"))
                || (r.outcome.name.starts_with("introspection")
                    && b.outcome.name.starts_with("introspection"))
        });
        let limit = argon2_limits
            .iter()
            .find(|(label, _, _)| *label == r.backend)
            .map(|(_, before, after)| (before + after) / 2.0);
        row(&mut out, r, base, limit);
    }
    for b in &baseline {
        row(&mut out, b, None, None);
    }
    for (label, before, after) in &argon2_limits {
        let _ = writeln!(
            out,
            "\nargon2id limit of this machine around the {label} sign-in run (m=19456 KiB, t=2, p=1, one thread per core, server idle): {before:.1} hashes/s before, {after:.1} after; sign-in is compared with their mean"
        );
    }
    for note in &notes {
        let _ = writeln!(out, "\n{note}");
    }
    for (label, rss) in &idle_rss {
        let _ = writeln!(out, "\nIdle RSS after start-up ({label}): {rss:.1} MiB");
    }
    println!("{out}");
    if let Some(path) = &args.out {
        std::fs::write(path, &out).expect("write --out");
    }
    let failed: Vec<&Row> = rows
        .iter()
        .chain(&baseline)
        .filter(|r| r.outcome.errors > 0 || r.outcome.ok == 0)
        .collect();
    if !failed.is_empty() {
        for r in failed {
            eprintln!(
                "FAILED: {} on {}: {} ok, {} errors",
                r.outcome.name, r.backend, r.outcome.ok, r.outcome.errors
            );
        }
        std::process::exit(1);
    }
}

/// The note for [`sc::paired_sign_ins`], in milliseconds: per flow, the median server time of
/// each endpoint and of the whole sign-in apart from the password check; then the second
/// step's cost, the difference within a pair, in server time and in Tessera's CPU time.
fn second_step_cost(label: &str, measured: &[Option<(SignInTotals, SignInTotals)>]) -> String {
    let pairs: Vec<(SignInTotals, SignInTotals)> = measured.iter().flatten().copied().collect();
    let failed = measured.len() - pairs.len();
    if pairs.is_empty() {
        return format!(
            "{label}: the second step's cost could not be measured ({failed} failed pairs)"
        );
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2] * 1e3
    };
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64 * 1e3;
    let flow = |pick: fn(&(SignInTotals, SignInTotals)) -> &SignInTotals| {
        let per_endpoint: Vec<String> = server_time::SIGN_IN_ENDPOINTS
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let mut spent: Vec<f64> = pairs.iter().map(|p| pick(p).endpoints[i]).collect();
                if *e == "login" {
                    spent = pairs
                        .iter()
                        .map(|p| pick(p).endpoints[i] - pick(p).password_check)
                        .collect();
                }
                format!("{e} {:.3}", median(spent))
            })
            .collect();
        format!(
            "{:.3} ms ({})",
            median(pairs.iter().map(|p| pick(p).inside()).collect()),
            per_endpoint.join(", ")
        )
    };
    let wall: Vec<f64> = pairs.iter().map(|(p, m)| m.inside() - p.inside()).collect();
    let cpu: Vec<f64> = pairs
        .iter()
        .filter_map(|(p, m)| Some(m.cpu_apart_from_check()? - p.cpu_apart_from_check()?))
        .collect();
    let cpu_cell = if cpu.is_empty() {
        "not measured".to_string()
    } else {
        format!(
            "median {:.3} ms, mean {:.3} ms",
            median(cpu.clone()),
            mean(&cpu)
        )
    };
    format!(
        "{label}, one sign-in at a time, {n} pairs ({failed} failed). Server time apart from the password check, median per sign-in (ms): password only {}; password + TOTP {}. The second step's cost (password + TOTP less password only, within a pair): server time median {:.3} ms, mean {:.3} ms; Tessera's CPU time {cpu_cell}",
        flow(|p| &p.0),
        flow(|p| &p.1),
        median(wall.clone()),
        mean(&wall),
        n = pairs.len(),
    )
}
