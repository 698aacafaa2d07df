//! argon2id password hashing on a bounded pool, off the async executor.
//!
//! Each hash holds `m` KiB of memory for ~20 ms, so at most `concurrency` run at once, on
//! dedicated threads that each keep their argon2 memory: never on the request workers. Unknown accounts are checked against a dummy hash
//! with the same parameters, so they cost the same work as real ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use argon2::password_hash::PasswordVerifier as _;
use argon2::{Algorithm, Argon2, Params, Version};

use crate::crypto::{SecretString, random_bytes, random_token};

/// Stored instead of a password hash while a user has no password that works: invited and not
/// yet accepted, or an operator forced a reset. No PHC string starts with `!`, so nothing ever
/// verifies against it; [`PasswordHasher::verify`] checks the dummy hash instead (same cost).
pub const UNUSABLE: &str = "!unusable";

/// Whether a stored value is a hash a password may verify against (not [`UNUSABLE`]).
pub fn is_usable(stored: &str) -> bool {
    !stored.starts_with('!')
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("hashing failed")]
    Hash,
    #[error("the hashing pool is shut down")]
    Pool,
}

/// Outcome of a password check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    pub valid: bool,
    /// The stored hash uses older parameters and should be replaced.
    pub needs_rehash: bool,
}

/// Work for a hashing thread; the thread owns its argon2 memory and reuses it.
type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// One hashing thread's state: the argon2 instance and its block memory (m KiB), allocated once.
/// Reusing it keeps the process's memory at `concurrency × m` however many hashes run: a fresh
/// 19 MiB allocation per hash fragments the allocator's arenas and grows RSS under load.
struct Worker {
    argon: Argon2<'static>,
    blocks: Vec<argon2::Block>,
    block_count: usize,
}

impl Worker {
    fn raw(&mut self, password: &[u8], salt: &[u8], out: &mut [u8]) -> bool {
        // Allocated at the first hash, not at start: an idle server holds no argon2 memory.
        if self.blocks.is_empty() {
            self.blocks = vec![argon2::Block::new(); self.block_count];
        }
        self.argon
            .hash_password_into_with_memory(password, salt, out, &mut self.blocks)
            .is_ok()
    }
}

#[derive(Clone)]
pub struct PasswordHasher {
    jobs: tokio::sync::mpsc::Sender<Job>,
    params: Params,
    dummy: Arc<String>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .finish()
    }
}

const OUTPUT_LEN: usize = 32;

/// PHC string format of an argon2id hash.
fn phc(params: &Params, salt: &[u8], hash: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        b64.encode(salt),
        b64.encode(hash)
    )
}

/// Hashing threads run under Linux's `SCHED_IDLE` policy: they get the CPU only when request
/// workers, the database and the token paths leave it idle, and any of those preempts them on
/// wake-up. A sign-in flood then fills idle CPU instead of queueing ahead of refreshes; with no
/// other load the hashing threads still have every core. Where `SCHED_IDLE` is refused, nice 19.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: both calls take a thread id (0 = the calling thread) and only change this thread's
    // scheduling policy or nice value; `param` outlives the call.
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0 {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            let _ = libc::setpriority(libc::PRIO_PROCESS, tid, 19);
        }
    }
}

/// A hash that has waited this long for a hashing thread runs at nice 10 instead of
/// `SCHED_IDLE`: while other work keeps every core busy all the time, `SCHED_IDLE` alone would
/// starve sign-ins outright; this way they slow down (as at nice 10) but still complete.
const STARVED: std::time::Duration = std::time::Duration::from_secs(3);

/// Whether a hashing thread is running a starved job at nice 10 (one at a time).
static BOOSTED: AtomicBool = AtomicBool::new(false);

/// Back to the ordinary policy at nice 10, for a job that waited past [`STARVED`]. Linux lets a
/// thread leave `SCHED_IDLE` only with `CAP_SYS_NICE` or an `RLIMIT_NICE` of at least 10
/// (`LimitNICE=10` under systemd, `--ulimit nice=10` in a container); without either the job stays
/// under `SCHED_IDLE`, and this is said once in the log.
fn ordinary_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: as in `lower_priority`: only the calling thread's policy and nice value change.
    unsafe {
        // Nice 10 first (raising nice is always allowed): leaving SCHED_IDLE is then judged
        // against nice 10, which RLIMIT_NICE >= 10 permits.
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid, 10);
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) != 0 {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| {
                tracing::warn!(
                    "a password hash waited over 3 s but could not leave SCHED_IDLE: allow it \
                     with RLIMIT_NICE >= 10 (e.g. LimitNICE=10) or CAP_SYS_NICE"
                );
            });
        }
    }
}

/// The scheduling policy of the calling thread (for tests).
#[cfg(all(test, target_os = "linux"))]
fn current_policy() -> i32 {
    // SAFETY: reads the calling thread's policy; no memory is passed.
    unsafe { libc::sched_getscheduler(0) }
}

fn same_costs(a: &Params, b: &Params) -> bool {
    (a.m_cost(), a.t_cost(), a.p_cost()) == (b.m_cost(), b.t_cost(), b.p_cost())
}

impl PasswordHasher {
    /// Starts `concurrency` hashing threads, each holding `memory_kib` of argon2 memory.
    pub fn new(
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
        concurrency: usize,
    ) -> Result<Self, PasswordError> {
        let params = Params::new(memory_kib, iterations, parallelism, None)
            .map_err(|e| PasswordError::Params(e.to_string()))?;
        let (jobs, queue) = tokio::sync::mpsc::channel::<Job>(4096);
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for i in 0..concurrency.max(1) {
            let queue = queue.clone();
            let params = params.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    lower_priority();
                    let mut worker = Worker {
                        blocks: Vec::new(),
                        block_count: params.block_count(),
                        argon: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
                    };
                    loop {
                        // One thread waits on the queue at a time; the others wait for the lock.
                        let job = match queue.lock() {
                            Ok(mut q) => q.blocking_recv(),
                            Err(_) => None,
                        };
                        match job {
                            Some(job) => job(&mut worker),
                            None => break,
                        }
                    }
                })
                .map_err(|_| PasswordError::Pool)?;
        }
        let mut hasher = Self {
            jobs,
            params: params.clone(),
            dummy: Arc::new(String::new()),
        };
        // The dummy hash that unknown accounts are checked against: same parameters as real ones.
        let mut out = [0u8; OUTPUT_LEN];
        let salt = random_bytes::<16>();
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
            .hash_password_into(random_token().as_bytes(), &salt, &mut out)
            .map_err(|_| PasswordError::Hash)?;
        hasher.dummy = Arc::new(phc(&params, &salt, &out));
        Ok(hasher)
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Worker) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        self.run_queued_since(std::time::Instant::now(), f).await
    }

    /// Runs `f` on a hashing thread; a job that has waited longer than [`STARVED`] since
    /// `queued` runs at nice 10 instead of `SCHED_IDLE` (see [`STARVED`]).
    async fn run_queued_since<T: Send + 'static>(
        &self,
        queued: std::time::Instant,
        f: impl FnOnce(&mut Worker) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |w| {
            // At most one thread runs a starved job at nice 10 at a time: enough for sign-ins
            // to progress, while the others stay behind the token paths.
            let starved = queued.elapsed() >= STARVED
                && BOOSTED
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok();
            if starved {
                ordinary_priority();
            }
            let _ = tx.send(f(w));
            if starved {
                lower_priority();
                BOOSTED.store(false, Ordering::Release);
            }
        });
        self.jobs.send(job).await.map_err(|_| PasswordError::Pool)?;
        rx.await.map_err(|_| PasswordError::Pool)
    }

    /// Hashes a new password (PHC string).
    pub async fn hash(&self, password: &SecretString) -> Result<String, PasswordError> {
        let password = password.clone();
        let params = self.params.clone();
        self.run(move |w| {
            let salt = random_bytes::<16>();
            let mut out = [0u8; OUTPUT_LEN];
            w.raw(password.expose().as_bytes(), &salt, &mut out)
                .then(|| phc(&params, &salt, &out))
                .ok_or(PasswordError::Hash)
        })
        .await?
    }

    /// Checks a password against a stored hash, or against the dummy hash when there is none
    /// or it is [`UNUSABLE`].
    pub async fn verify(
        &self,
        password: &SecretString,
        stored: Option<&str>,
    ) -> Result<Verification, PasswordError> {
        // No stored hash, or one marked unusable: the dummy hash is checked (same cost), and
        // nothing verifies.
        let stored = stored.filter(|s| is_usable(s));
        let real = stored.is_some();
        let stored = stored.unwrap_or(&self.dummy).to_string();
        if !crate::auth::policy::within_ceiling(password.expose()) {
            return Ok(Verification {
                valid: false,
                needs_rehash: false,
            });
        }
        let password = password.clone();
        let current = self.params.clone();
        self.run(move |w| {
            let Ok(parsed) = argon2::password_hash::phc::PasswordHash::new(&stored) else {
                tracing::error!("a stored password hash is not a valid PHC string");
                return Verification {
                    valid: false,
                    needs_rehash: false,
                };
            };
            let stored_params = Params::try_from(&parsed).ok();
            let argon2id = parsed.algorithm.as_str() == "argon2id";
            let matches = match (&parsed.salt, &parsed.hash, &stored_params) {
                (Some(salt), Some(expected), Some(p)) if argon2id && same_costs(p, &current) => {
                    let expected: &[u8] = expected.as_ref();
                    let mut out = vec![0u8; expected.len()];
                    w.raw(password.expose().as_bytes(), salt.as_ref(), &mut out)
                        && crate::crypto::ct_eq(&out, expected)
                }
                // Older parameters or algorithm: verified with its own (temporary) memory.
                _ => Argon2::default()
                    .verify_password(password.expose().as_bytes(), &parsed)
                    .is_ok(),
            };
            let valid = matches && real;
            let needs_rehash =
                valid && !(argon2id && stored_params.is_some_and(|p| same_costs(&p, &current)));
            Verification {
                valid,
                needs_rehash,
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_only_its_own_password_and_unknown_accounts_never_verify() {
        let h = PasswordHasher::new(19456, 2, 1, 2).unwrap();
        let pw = SecretString::new("correct horse battery staple");
        let stored = h.hash(&pw).await.unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(h.verify(&pw, Some(&stored)).await.unwrap().valid);
        assert!(
            !h.verify(&SecretString::new("wrong"), Some(&stored))
                .await
                .unwrap()
                .valid
        );
        assert!(!h.verify(&pw, None).await.unwrap().valid);
    }

    #[tokio::test]
    async fn a_hash_with_older_parameters_asks_for_a_rehash() {
        let old = PasswordHasher::new(19456, 2, 1, 1).unwrap();
        let new = PasswordHasher::new(19456, 3, 1, 1).unwrap();
        let pw = SecretString::new("correct horse battery staple");
        let stored = old.hash(&pw).await.unwrap();
        let v = new.verify(&pw, Some(&stored)).await.unwrap();
        assert!(v.valid && v.needs_rehash, "{v:?}");
        assert!(!old.verify(&pw, Some(&stored)).await.unwrap().needs_rehash);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_yield_the_cpu_to_everything_else() {
        let h = PasswordHasher::new(19456, 2, 1, 2).unwrap();
        assert_ne!(
            current_policy(),
            libc::SCHED_IDLE,
            "the caller keeps its policy"
        );
        let policy = h.run(|_| current_policy()).await.unwrap();
        assert_eq!(policy, libc::SCHED_IDLE);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_hash_that_waited_too_long_runs_at_an_ordinary_priority_and_the_thread_goes_back() {
        let h = PasswordHasher::new(19456, 2, 1, 1).unwrap();
        let long_ago = std::time::Instant::now() - STARVED - std::time::Duration::from_millis(1);
        let policy = h
            .run_queued_since(long_ago, |_| current_policy())
            .await
            .unwrap();
        assert_eq!(
            policy,
            libc::SCHED_OTHER,
            "a starved job is not left to SCHED_IDLE"
        );
        let policy = h.run(|_| current_policy()).await.unwrap();
        assert_eq!(
            policy,
            libc::SCHED_IDLE,
            "the next job runs under SCHED_IDLE again"
        );
    }
}
