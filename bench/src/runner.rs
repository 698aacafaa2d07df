//! A closed-loop load runner: N workers, each sends its next request when the previous one
//! answered, for a fixed time. Latencies go into an HDR histogram (microseconds).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

pub struct Outcome {
    pub name: String,
    pub ok: u64,
    pub errors: u64,
    pub seconds: f64,
    pub hist: Histogram<u64>,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.seconds
    }
    pub fn ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 60 s, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).expect("histogram"))
}

/// Runs `workers` loops of `request(worker, iteration)` for `duration`.
pub async fn closed_loop<F, Fut>(
    name: &str,
    workers: usize,
    duration: Duration,
    request: F,
) -> Outcome
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let request = Arc::new(request);
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(workers);
    for w in 0..workers {
        let request = request.clone();
        let errors = errors.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = histogram();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let ok = request(w, i).await;
                let micros = t0.elapsed().as_micros().max(1) as u64;
                if ok {
                    let _ = hist.record(micros.min(60_000_000));
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
            hist
        }));
    }
    let mut hist = histogram();
    for t in tasks {
        if let Ok(h) = t.await {
            let _ = hist.add(&h);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    Outcome {
        name: name.to_string(),
        ok: hist.len(),
        errors: errors.load(Ordering::Relaxed),
        seconds,
        hist,
    }
}

/// The machine's argon2id limit at Tessera's default (OWASP) parameters: hashes per second with
/// one hashing thread per core and nothing else running, each thread reusing its memory as
/// Tessera's hashing pool does.
pub fn argon2_limit(duration: Duration) -> f64 {
    use argon2::{Algorithm, Argon2, Block, Params, Version};
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                let params = Params::new(19456, 2, 1, Some(32)).expect("argon2 params");
                let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
                let mut blocks = vec![Block::new(); 19456];
                let mut out = [0u8; 32];
                let mut n = 0u64;
                while start.elapsed() < duration {
                    argon
                        .hash_password_into_with_memory(
                            b"correct horse battery staple",
                            b"sixteen byte salt",
                            &mut out,
                            &mut blocks,
                        )
                        .expect("argon2");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    total as f64 / start.elapsed().as_secs_f64()
}
