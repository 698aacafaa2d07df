//! Configuration: built-in defaults, then a TOML file, then `TESSERA_*` environment variables.
//!
//! Every setting is one line in [`SETTINGS`]; `config/tessera.toml` documents each of them. A bad
//! value stops start-up with an error naming the setting (and the environment variable it came from).

use std::path::PathBuf;
use std::time::Duration;

use crate::crypto::MasterKey;
use crate::http::client_addr::{AllowedNetworks, ForwardedHeader, TrustedProxies};
use crate::keys::SigningAlg;

/// Every setting name; the environment variable is `TESSERA_` + the upper-cased name.
pub const SETTINGS: &[&str] = &[
    "listen",
    "issuer",
    "data_dir",
    "database_url",
    "database_max_connections",
    "redis_url",
    "redis_prefix",
    "revocation_poll_interval",
    "purge_interval",
    "backchannel_logout_poll_interval",
    "backchannel_logout_retry_min",
    "backchannel_logout_retry_max",
    "backchannel_logout_give_up_after",
    "backchannel_logout_connect_timeout",
    "backchannel_logout_timeout",
    "master_key",
    "access_token_ttl",
    "id_token_ttl",
    "auth_code_ttl",
    "refresh_reuse_grace",
    "refresh_idle_ttl",
    "refresh_absolute_ttl",
    "session_idle_ttl",
    "session_absolute_ttl",
    "max_sessions_per_user",
    "session_limit_policy",
    "mfa_required_roles",
    "signing_alg",
    "key_rotation_interval",
    "key_publish_lead",
    "key_reload_interval",
    "jwks_max_age",
    "smtp_url",
    "mail_from",
    "self_registration",
    "reset_link_ttl",
    "verification_link_ttl",
    "invitation_link_ttl",
    "account_mail_rate_limit",
    "lockout_threshold",
    "lockout_base",
    "lockout_max",
    "ip_failure_limit",
    "ip_failure_window",
    "signin_rate_limit",
    "token_rate_limit",
    "token_failure_limit",
    "trusted_proxies",
    "forwarded_header",
    "admin_allowed_networks",
    "admin_idle_timeout",
    "client_secret_overlap",
    "password_min_length",
    "password_max_length",
    "password_hash_memory_kib",
    "password_hash_iterations",
    "password_hash_parallelism",
    "password_hash_concurrency",
    "workers",
    "log",
    // Logs, secrets and operator surfaces (see docs/DESIGN.md, "Logs and secrets").
    "mail_to_log",
    "metrics_listen",
    "metrics_token",
];

/// `TESSERA_*` variables that are not settings but are read on purpose.
const NOT_SETTINGS: &[&str] = &["TESSERA_CONFIG"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid setting `{setting}`{source_hint}: {message}")]
    Invalid {
        setting: String,
        source_hint: String,
        message: String,
    },
    #[error("cannot read configuration file {path}: {message}")]
    File { path: String, message: String },
}

/// What happens when a sign-in would exceed `max_sessions_per_user`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionLimitPolicy {
    /// The oldest sessions end to make room.
    EvictOldest,
    /// The new sign-in is refused with a clear message.
    Refuse,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Address the HTTP server binds, `host:port`.
    pub listen: String,
    /// The issuer identifier (RFC 8414): scheme, host, optional port and path, no trailing slash.
    pub issuer: String,
    /// Folder for the embedded database and the development master key.
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; defaults to `sqlite://<data_dir>/tessera.db`.
    pub database_url: Option<String>,
    pub database_max_connections: u32,
    /// Optional Redis; makes several replicas act as one.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and channel, so several deployments can share one Redis.
    pub redis_prefix: String,
    /// How often each replica reads the revocation log (with Redis, new entries also arrive at once).
    pub revocation_poll_interval: Duration,
    /// How often expired codes, tokens, sessions and links are deleted (in small batches).
    pub purge_interval: Duration,
    /// Back-channel logout sender: how often it reads the queue when not woken (deliveries
    /// queued by another process, retries that fell due).
    pub backchannel_logout_poll_interval: Duration,
    /// Back-channel logout retries: the first delay, doubling up to the maximum (with jitter).
    pub backchannel_logout_retry_min: Duration,
    pub backchannel_logout_retry_max: Duration,
    /// A back-channel logout not delivered this long after the session ended is given up
    /// (audited as `backchannel_logout.failed`).
    pub backchannel_logout_give_up_after: Duration,
    /// Back-channel logout requests: time to connect, and for the whole request.
    pub backchannel_logout_connect_timeout: Duration,
    pub backchannel_logout_timeout: Duration,
    /// Key-encryption key for private signing keys and the key behind every keyed hash.
    pub master_key: Option<MasterKey>,
    pub access_token_ttl: Duration,
    pub id_token_ttl: Duration,
    pub auth_code_ttl: Duration,
    pub refresh_reuse_grace: Duration,
    pub refresh_idle_ttl: Duration,
    pub refresh_absolute_ttl: Duration,
    pub session_idle_ttl: Duration,
    pub session_absolute_ttl: Duration,
    /// Concurrent sessions a user may hold; 0 means unlimited.
    pub max_sessions_per_user: u32,
    /// What a sign-in beyond the limit does.
    pub session_limit_policy: SessionLimitPolicy,
    pub signing_alg: SigningAlg,
    pub key_rotation_interval: Duration,
    pub key_publish_lead: Duration,
    pub key_reload_interval: Duration,
    pub jwks_max_age: Duration,
    /// SMTP server for password-reset and verification mail; without it mails go to the log.
    pub smtp_url: Option<String>,
    /// Sender of Tessera's mail.
    pub mail_from: String,
    /// Whether people may create their own accounts (off: administrators create users).
    pub self_registration: bool,
    pub reset_link_ttl: Duration,
    pub verification_link_ttl: Duration,
    /// How long the link in an invitation (a user an operator created) lets them choose their
    /// first password.
    pub invitation_link_ttl: Duration,
    /// Reset/verification/registration mails per hour per IP and per email (0 = unlimited).
    pub account_mail_rate_limit: i64,
    /// Users holding any of these roles must sign in with a second factor (acr "2"): one who has
    /// none is led to set one up after the password. Empty: no role requires it.
    pub mfa_required_roles: Vec<String>,
    /// Consecutive failed sign-ins before an account (or a device's view of it) is locked.
    pub lockout_threshold: i64,
    /// First lock duration; each further failure doubles it, up to `lockout_max`.
    pub lockout_base: Duration,
    pub lockout_max: Duration,
    /// Failed sign-ins from one IP address within `ip_failure_window` before it gets 429.
    pub ip_failure_limit: i64,
    pub ip_failure_window: Duration,
    /// Sign-in attempts per minute per IP address (0 = unlimited).
    pub signin_rate_limit: i64,
    /// Token requests per minute per authenticated confidential client (0 = unlimited). Public
    /// clients are never counted by their id: anyone can name them.
    pub token_rate_limit: i64,
    /// Failed token requests per minute per client address before that address gets 429
    /// (0 = unlimited). A valid refresh of a live refresh token still goes through.
    pub token_failure_limit: i64,
    /// Networks whose `X-Forwarded-For` / `Forwarded` headers are believed (see
    /// `http::client_addr`); empty: the TCP peer is the client.
    pub trusted_proxies: TrustedProxies,
    /// The one forwarding header the trusted proxies set (`x-forwarded-for` or `forwarded`); the
    /// other kind can only come from the client and is never read.
    pub forwarded_header: ForwardedHeader,
    /// Networks the admin console and API answer (client addresses as `trusted_proxies`
    /// resolves them); empty: anywhere. Others get 404.
    pub admin_allowed_networks: AllowedNetworks,
    /// The admin console's window: after this long without a console request, the admin
    /// re-authenticates (password and second factor).
    pub admin_idle_timeout: Duration,
    /// How long a client's previous secret keeps working after a rotation when the operator
    /// chooses no other overlap (console default, API default); at most 30 days.
    pub client_secret_overlap: Duration,
    /// Minimum password length in characters (NIST SP 800-63B: at least 8; 12 by default).
    pub password_min_length: usize,
    /// Maximum password length in characters (at least 128).
    pub password_max_length: usize,
    pub password_hash_memory_kib: u32,
    pub password_hash_iterations: u32,
    pub password_hash_parallelism: u32,
    pub password_hash_concurrency: usize,
    pub workers: usize,
    /// tracing filter, e.g. `info` or `tessera=debug,actix_web=info`.
    pub log: String,
    /// Without `smtp_url`, write mails (with their reset and verification links) to the log.
    /// Needed explicitly with PostgreSQL or an https issuer; implied on the embedded default.
    pub mail_to_log: bool,
    /// A separate address serving `/metrics` (e.g. `127.0.0.1:9090`); off when empty.
    pub metrics_listen: Option<String>,
    /// A bearer token for `/metrics`; when set, the public listener serves it to this token.
    pub metrics_token: Option<crate::secret::SecretString>,
}

impl Default for Config {
    fn default() -> Self {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Self {
            listen: "127.0.0.1:8080".into(),
            // A host name, not an IP address: WebAuthn refuses IP addresses as relying-party ids,
            // so passkeys work right after `cargo run` (the listener stays on 127.0.0.1).
            issuer: "http://localhost:8080".into(),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            database_max_connections: 16,
            redis_url: None,
            redis_prefix: "tessera".into(),
            revocation_poll_interval: Duration::from_secs(1),
            purge_interval: Duration::from_secs(600),
            backchannel_logout_poll_interval: Duration::from_secs(1),
            backchannel_logout_retry_min: Duration::from_secs(5),
            backchannel_logout_retry_max: Duration::from_secs(3600),
            backchannel_logout_give_up_after: Duration::from_secs(24 * 3600),
            backchannel_logout_connect_timeout: Duration::from_secs(2),
            backchannel_logout_timeout: Duration::from_secs(5),
            master_key: None,
            access_token_ttl: Duration::from_secs(600),
            id_token_ttl: Duration::from_secs(600),
            auth_code_ttl: Duration::from_secs(60),
            refresh_reuse_grace: Duration::from_secs(10),
            refresh_idle_ttl: Duration::from_secs(8 * 3600),
            refresh_absolute_ttl: Duration::from_secs(7 * 86400),
            session_idle_ttl: Duration::from_secs(8 * 3600),
            session_absolute_ttl: Duration::from_secs(7 * 86400),
            max_sessions_per_user: 0,
            session_limit_policy: SessionLimitPolicy::EvictOldest,
            signing_alg: SigningAlg::Es256,
            key_rotation_interval: Duration::from_secs(90 * 86400),
            key_publish_lead: Duration::from_secs(3600),
            key_reload_interval: Duration::from_secs(30),
            jwks_max_age: Duration::from_secs(600),
            smtp_url: None,
            mail_from: "Tessera <no-reply@localhost>".into(),
            self_registration: false,
            reset_link_ttl: Duration::from_secs(1800),
            verification_link_ttl: Duration::from_secs(86400),
            invitation_link_ttl: Duration::from_secs(72 * 3600),
            account_mail_rate_limit: 10,
            mfa_required_roles: vec!["admin".into()],
            lockout_threshold: 5,
            lockout_base: Duration::from_secs(60),
            lockout_max: Duration::from_secs(3600),
            ip_failure_limit: 50,
            ip_failure_window: Duration::from_secs(900),
            signin_rate_limit: 60,
            token_rate_limit: 6000,
            token_failure_limit: 600,
            trusted_proxies: TrustedProxies::default(),
            forwarded_header: ForwardedHeader::default(),
            admin_allowed_networks: AllowedNetworks::default(),
            admin_idle_timeout: Duration::from_secs(900),
            client_secret_overlap: Duration::from_secs(24 * 3600),
            password_min_length: 12,
            password_max_length: 256,
            password_hash_memory_kib: 19456,
            password_hash_iterations: 2,
            password_hash_parallelism: 1,
            password_hash_concurrency: cores,
            workers: cores,
            log: "info".into(),
            mail_to_log: false,
            metrics_listen: None,
            metrics_token: None,
        }
    }
}

fn boolean(v: &str) -> Result<bool, String> {
    match v.trim() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

/// `TESSERA_*` variables in `env` that name no setting (a typo is otherwise silently ignored).
/// Test and bench harness variables (`TESSERA_TEST_*`, `TESSERA_BENCH_*`) are not settings.
pub fn unknown_variables(env: &[(String, String)]) -> Vec<String> {
    let mut unknown: Vec<String> = env
        .iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("TESSERA_"))
        .filter(|k| !k.starts_with("TESSERA_TEST_") && !k.starts_with("TESSERA_BENCH_"))
        .filter(|k| !NOT_SETTINGS.contains(&k.as_str()))
        .filter(|k| {
            !SETTINGS
                .iter()
                .any(|s| format!("TESSERA_{}", s.to_uppercase()) == **k)
        })
        .cloned()
        .collect();
    unknown.sort();
    unknown
}

fn duration(v: &str) -> Result<Duration, String> {
    humantime::parse_duration(v.trim())
        .map_err(|e| format!("{e} (expected e.g. `90s`, `10m`, `8h`)"))
}

fn number<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("`{v}` is not a valid number"))
}

fn optional(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}

impl Config {
    /// Defaults, then `path` (if any), then the process environment.
    pub fn load(path: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(path, &env)
    }

    pub fn load_from(
        path: Option<&std::path::Path>,
        env: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        let mut config = Config::default();
        let path = path
            .map(PathBuf::from)
            .or_else(|| lookup(env, "TESSERA_CONFIG").map(PathBuf::from));
        if let Some(path) = path {
            let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::File {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            let table: toml::Table =
                text.parse()
                    .map_err(|e: toml::de::Error| ConfigError::File {
                        path: path.display().to_string(),
                        message: e.to_string(),
                    })?;
            for (key, value) in table {
                let text = match value {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Float(f) => f.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    // A list of strings (`trusted_proxies`, `mfa_required_roles`) is read as its comma-separated form.
                    toml::Value::Array(items) if items.iter().all(toml::Value::is_str) => items
                        .iter()
                        .filter_map(toml::Value::as_str)
                        .collect::<Vec<_>>()
                        .join(","),
                    _ => {
                        return Err(ConfigError::Invalid {
                            setting: key.clone(),
                            source_hint: format!(" in {}", path.display()),
                            message: "expected a string, number or boolean".into(),
                        });
                    }
                };
                config
                    .set(&key, &text)
                    .map_err(|message| ConfigError::Invalid {
                        setting: key.clone(),
                        source_hint: format!(" in {}", path.display()),
                        message,
                    })?;
            }
        }
        for key in SETTINGS {
            let var = format!("TESSERA_{}", key.to_uppercase());
            if let Some(value) = lookup(env, &var) {
                config
                    .set(key, value)
                    .map_err(|message| ConfigError::Invalid {
                        setting: key.to_string(),
                        source_hint: format!(" (from {var})"),
                        message,
                    })?;
            }
        }
        config.check()?;
        Ok(config)
    }

    /// Applies one setting from its text form.
    pub fn set(&mut self, key: &str, v: &str) -> Result<(), String> {
        match key {
            "listen" => self.listen = v.trim().to_string(),
            "issuer" => self.issuer = parse_issuer(v)?,
            "data_dir" => self.data_dir = PathBuf::from(v.trim()),
            "database_url" => self.database_url = optional(v),
            "database_max_connections" => self.database_max_connections = number(v)?,
            "redis_url" => self.redis_url = optional(v),
            "redis_prefix" => self.redis_prefix = v.trim().to_string(),
            "revocation_poll_interval" => self.revocation_poll_interval = duration(v)?,
            "purge_interval" => self.purge_interval = duration(v)?,
            "backchannel_logout_poll_interval" => {
                self.backchannel_logout_poll_interval = duration(v)?
            }
            "backchannel_logout_retry_min" => self.backchannel_logout_retry_min = duration(v)?,
            "backchannel_logout_retry_max" => self.backchannel_logout_retry_max = duration(v)?,
            "backchannel_logout_give_up_after" => {
                self.backchannel_logout_give_up_after = duration(v)?
            }
            "backchannel_logout_connect_timeout" => {
                self.backchannel_logout_connect_timeout = duration(v)?
            }
            "backchannel_logout_timeout" => self.backchannel_logout_timeout = duration(v)?,
            "master_key" => self.master_key = Some(MasterKey::parse(v)?),
            "access_token_ttl" => self.access_token_ttl = duration(v)?,
            "id_token_ttl" => self.id_token_ttl = duration(v)?,
            "auth_code_ttl" => self.auth_code_ttl = duration(v)?,
            "refresh_reuse_grace" => self.refresh_reuse_grace = duration(v)?,
            "refresh_idle_ttl" => self.refresh_idle_ttl = duration(v)?,
            "refresh_absolute_ttl" => self.refresh_absolute_ttl = duration(v)?,
            "session_idle_ttl" => self.session_idle_ttl = duration(v)?,
            "session_absolute_ttl" => self.session_absolute_ttl = duration(v)?,
            "max_sessions_per_user" => self.max_sessions_per_user = number(v)?,
            "session_limit_policy" => {
                self.session_limit_policy = match v.trim() {
                    "evict_oldest" => SessionLimitPolicy::EvictOldest,
                    "refuse" => SessionLimitPolicy::Refuse,
                    _ => return Err("expected `evict_oldest` or `refuse`".into()),
                }
            }
            "mfa_required_roles" => {
                self.mfa_required_roles = v
                    .split(',')
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .map(String::from)
                    .collect()
            }
            "signing_alg" => self.signing_alg = v.trim().parse()?,
            "key_rotation_interval" => self.key_rotation_interval = duration(v)?,
            "key_publish_lead" => self.key_publish_lead = duration(v)?,
            "key_reload_interval" => self.key_reload_interval = duration(v)?,
            "jwks_max_age" => self.jwks_max_age = duration(v)?,
            "smtp_url" => self.smtp_url = optional(v),
            "mail_from" => self.mail_from = v.trim().to_string(),
            "self_registration" => {
                self.self_registration = match v.trim() {
                    "true" | "1" | "yes" | "on" => true,
                    "false" | "0" | "no" | "off" => false,
                    _ => return Err("expected true or false".into()),
                }
            }
            "reset_link_ttl" => self.reset_link_ttl = duration(v)?,
            "verification_link_ttl" => self.verification_link_ttl = duration(v)?,
            "invitation_link_ttl" => self.invitation_link_ttl = duration(v)?,
            "account_mail_rate_limit" => self.account_mail_rate_limit = number(v)?,
            "lockout_threshold" => self.lockout_threshold = number(v)?,
            "lockout_base" => self.lockout_base = duration(v)?,
            "lockout_max" => self.lockout_max = duration(v)?,
            "ip_failure_limit" => self.ip_failure_limit = number(v)?,
            "ip_failure_window" => self.ip_failure_window = duration(v)?,
            "signin_rate_limit" => self.signin_rate_limit = number(v)?,
            "token_rate_limit" => self.token_rate_limit = number(v)?,
            "token_failure_limit" => self.token_failure_limit = number(v)?,
            "trusted_proxies" => self.trusted_proxies = TrustedProxies::parse(v)?,
            "forwarded_header" => self.forwarded_header = ForwardedHeader::parse(v)?,
            "admin_allowed_networks" => self.admin_allowed_networks = AllowedNetworks::parse(v)?,
            "admin_idle_timeout" => self.admin_idle_timeout = duration(v)?,
            "client_secret_overlap" => self.client_secret_overlap = duration(v)?,
            "password_min_length" => self.password_min_length = number(v)?,
            "password_max_length" => self.password_max_length = number(v)?,
            "password_hash_memory_kib" => self.password_hash_memory_kib = number(v)?,
            "password_hash_iterations" => self.password_hash_iterations = number(v)?,
            "password_hash_parallelism" => self.password_hash_parallelism = number(v)?,
            "password_hash_concurrency" => self.password_hash_concurrency = number(v)?,
            "workers" => self.workers = number(v)?,
            "log" => self.log = v.trim().to_string(),
            "mail_to_log" => self.mail_to_log = boolean(v)?,
            "metrics_listen" => self.metrics_listen = optional(v),
            "metrics_token" => {
                self.metrics_token = optional(v).map(crate::secret::SecretString::new)
            }
            other => return Err(format!("unknown setting `{other}`")),
        }
        Ok(())
    }

    fn check(&self) -> Result<(), ConfigError> {
        let bad = |setting: &str, message: &str| ConfigError::Invalid {
            setting: setting.into(),
            source_hint: String::new(),
            message: message.into(),
        };
        if self.listen.parse::<std::net::SocketAddr>().is_err() && !self.listen.contains(':') {
            return Err(bad("listen", "expected host:port"));
        }
        let secs = |d: Duration| d.as_secs();
        if secs(self.access_token_ttl) == 0 || secs(self.access_token_ttl) > 86400 {
            return Err(bad("access_token_ttl", "must be between 1s and 24h"));
        }
        // Codes are single use and redeemed within seconds (security checklist: <= 60 s).
        if secs(self.admin_idle_timeout) == 0 || secs(self.admin_idle_timeout) > 86400 {
            return Err(bad("admin_idle_timeout", "must be between 1s and 24h"));
        }
        if secs(self.client_secret_overlap) > 30 * 86400 {
            return Err(bad("client_secret_overlap", "must be at most 30 days"));
        }
        if secs(self.auth_code_ttl) == 0 || secs(self.auth_code_ttl) > 60 {
            return Err(bad("auth_code_ttl", "must be between 1s and 60s"));
        }
        if self.refresh_idle_ttl > self.refresh_absolute_ttl {
            return Err(bad(
                "refresh_idle_ttl",
                "must not exceed refresh_absolute_ttl",
            ));
        }
        if self.session_idle_ttl > self.session_absolute_ttl {
            return Err(bad(
                "session_idle_ttl",
                "must not exceed session_absolute_ttl",
            ));
        }
        if self.key_rotation_interval <= self.key_publish_lead {
            return Err(bad(
                "key_rotation_interval",
                "must be longer than key_publish_lead",
            ));
        }
        if self.password_hash_memory_kib < 19456 || self.password_hash_iterations < 2 {
            return Err(bad(
                "password_hash_memory_kib",
                "argon2id below the OWASP minimum (m=19456 KiB, t=2) is refused",
            ));
        }
        if self.password_min_length < 8 {
            return Err(bad(
                "password_min_length",
                "must be at least 8 (NIST SP 800-63B)",
            ));
        }
        let ceiling = crate::auth::policy::MAX_PASSWORD_CHARS;
        if self.password_max_length < 128.max(self.password_min_length)
            || self.password_max_length > ceiling
        {
            return Err(bad(
                "password_max_length",
                &format!("must be between 128 and {ceiling} (characters)"),
            ));
        }
        if self.password_hash_parallelism == 0 || self.password_hash_concurrency == 0 {
            return Err(bad("password_hash_concurrency", "must be at least 1"));
        }
        let ms = |d: Duration| d.as_millis();
        if ms(self.backchannel_logout_poll_interval) < 10
            || ms(self.backchannel_logout_retry_min) < 10
            || self.backchannel_logout_retry_max < self.backchannel_logout_retry_min
        {
            return Err(bad(
                "backchannel_logout_retry_min",
                "the poll interval and retry_min must be at least 10ms, retry_max at least retry_min",
            ));
        }
        if ms(self.backchannel_logout_connect_timeout) < 10
            || ms(self.backchannel_logout_timeout) < 10
            || secs(self.backchannel_logout_timeout) > 60
        {
            return Err(bad(
                "backchannel_logout_timeout",
                "the timeouts must be between 10ms and 60s",
            ));
        }
        if self.workers == 0 {
            return Err(bad("workers", "must be at least 1"));
        }
        if self
            .metrics_token
            .as_ref()
            .is_some_and(|t| t.as_str().chars().count() < 16)
        {
            return Err(bad("metrics_token", "must be at least 16 characters"));
        }
        if let Some(addr) = &self.metrics_listen
            && addr == &self.listen
        {
            return Err(bad(
                "metrics_listen",
                "must differ from `listen` (the public listener never serves /metrics without the token)",
            ));
        }
        Ok(())
    }

    /// The database URL, defaulting to the embedded SQLite file in the data folder.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}/tessera.db", self.data_dir.display()),
        }
    }

    pub fn is_https(&self) -> bool {
        self.issuer.starts_with("https://")
    }

    pub fn throttle_policy(&self) -> crate::auth::throttle::ThrottlePolicy {
        crate::auth::throttle::ThrottlePolicy {
            threshold: self.lockout_threshold.max(1),
            base: self.lockout_base.as_secs().max(1) as i64,
            max: self.lockout_max.as_secs().max(1) as i64,
            ip_limit: self.ip_failure_limit.max(1),
            ip_window: self.ip_failure_window.as_secs().max(1) as i64,
        }
    }

    pub fn password_policy(&self) -> crate::auth::policy::PasswordPolicy {
        crate::auth::policy::PasswordPolicy {
            min_chars: self.password_min_length,
            max_chars: self.password_max_length,
        }
    }

    /// The longest any token we sign stays valid: a retired key stays published this long.
    pub fn max_signed_token_ttl(&self) -> Duration {
        self.access_token_ttl.max(self.id_token_ttl)
    }
}

fn lookup<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn parse_issuer(v: &str) -> Result<String, String> {
    let v = v.trim().trim_end_matches('/');
    let url = url::Url::parse(v).map_err(|e| format!("not a URL: {e}"))?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err("the issuer must be an http(s) URL".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("the issuer must not have a query or fragment (RFC 8414)".into());
    }
    Ok(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_tessera_variables_are_named_and_known_ones_are_not() {
        let vars = env(&[
            ("TESSERA_ACESS_TOKEN_TTL", "5m"),
            ("TESSERA_ACCESS_TOKEN_TTL", "5m"),
            ("TESSERA_CONFIG", "x.toml"),
            ("TESSERA_METRICS_TOKEN", "0123456789abcdef"),
            ("TESSERA_TEST_BACKEND", "postgres"),
            ("HOME", "/root"),
            ("TESSERA_SMTP", "smtp://x"),
        ]);
        assert_eq!(
            unknown_variables(&vars),
            vec!["TESSERA_ACESS_TOKEN_TTL".to_string(), "TESSERA_SMTP".into()]
        );
    }

    #[test]
    fn the_metrics_token_is_redacted_in_debug_and_must_be_long() {
        let c = Config::load_from(
            None,
            &env(&[("TESSERA_METRICS_TOKEN", "s3cr3t-s3cr3t-s3cr3t")]),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("s3cr3t"));
        let err = Config::load_from(None, &env(&[("TESSERA_METRICS_TOKEN", "short")]));
        assert!(err.unwrap_err().to_string().contains("metrics_token"));
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_serve_the_embedded_database_on_localhost() {
        let c = Config::load_from(None, &[]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(c.issuer, "http://localhost:8080");
        assert_eq!(c.database_url(), "sqlite://./data/tessera.db");
        assert_eq!(c.access_token_ttl, Duration::from_secs(600));
    }

    #[test]
    fn environment_overrides_durations_in_humantime() {
        let c = Config::load_from(None, &env(&[("TESSERA_ACCESS_TOKEN_TTL", "90s")])).unwrap();
        assert_eq!(c.access_token_ttl, Duration::from_secs(90));
    }

    #[test]
    fn an_authorization_code_may_live_at_most_a_minute() {
        let ok = Config::load_from(None, &env(&[("TESSERA_AUTH_CODE_TTL", "60s")])).unwrap();
        assert_eq!(ok.auth_code_ttl, Duration::from_secs(60));
        let err = Config::load_from(None, &env(&[("TESSERA_AUTH_CODE_TTL", "61s")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("auth_code_ttl") && err.contains("60s"),
            "the refusal names the setting and its limit: {err}"
        );
    }

    #[test]
    fn the_client_secret_overlap_defaults_to_a_day_and_is_at_most_thirty_days() {
        let default = Config::load_from(None, &[]).unwrap();
        assert_eq!(default.client_secret_overlap, Duration::from_secs(86400));
        let short =
            Config::load_from(None, &env(&[("TESSERA_CLIENT_SECRET_OVERLAP", "4s")])).unwrap();
        assert_eq!(short.client_secret_overlap, Duration::from_secs(4));
        let err = Config::load_from(None, &env(&[("TESSERA_CLIENT_SECRET_OVERLAP", "31d")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("client_secret_overlap"), "{err}");
    }

    #[test]
    fn a_bad_setting_is_reported_by_its_variable_name() {
        let err = Config::load_from(None, &env(&[("TESSERA_REFRESH_IDLE_TTL", "banana")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("refresh_idle_ttl") && err.contains("TESSERA_REFRESH_IDLE_TTL"),
            "{err}"
        );
    }

    #[test]
    fn the_toml_file_is_read_and_the_environment_wins() {
        let dir = std::env::temp_dir().join(format!("tessera-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("t.toml");
        std::fs::write(
            &file,
            "access_token_ttl = \"5m\"\nlisten = \"0.0.0.0:9000\"\n",
        )
        .unwrap();
        let c =
            Config::load_from(Some(&file), &env(&[("TESSERA_LISTEN", "127.0.0.1:9001")])).unwrap();
        assert_eq!(c.access_token_ttl, Duration::from_secs(300));
        assert_eq!(c.listen, "127.0.0.1:9001");
        std::fs::write(&file, "no_such_setting = 1\n").unwrap();
        assert!(
            Config::load_from(Some(&file), &[])
                .unwrap_err()
                .to_string()
                .contains("no_such_setting")
        );
    }

    #[test]
    fn trusted_proxies_come_as_a_toml_list_or_a_comma_separated_variable() {
        let dir = std::env::temp_dir().join(format!("tessera-cfg-tp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("t.toml");
        std::fs::write(&file, "trusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n").unwrap();
        let c = Config::load_from(Some(&file), &[]).unwrap();
        assert_eq!(
            c.trusted_proxies,
            TrustedProxies::parse("10.0.0.0/8,::1").unwrap()
        );
        let c = Config::load_from(
            None,
            &env(&[("TESSERA_TRUSTED_PROXIES", "192.0.2.0/24, 10.0.0.1")]),
        )
        .unwrap();
        assert_eq!(
            c.trusted_proxies,
            TrustedProxies::parse("192.0.2.0/24,10.0.0.1/32").unwrap()
        );
        assert!(
            Config::load_from(None, &[])
                .unwrap()
                .trusted_proxies
                .is_empty()
        );
        let err = Config::load_from(None, &env(&[("TESSERA_TRUSTED_PROXIES", "10.0.0.0/40")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("TESSERA_TRUSTED_PROXIES"), "{err}");
    }

    #[test]
    fn admin_allowed_networks_come_as_a_toml_list_or_a_comma_separated_variable() {
        let dir = std::env::temp_dir().join(format!("tessera-cfg-an-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a.toml");
        std::fs::write(
            &file,
            "admin_allowed_networks = [\"10.1.0.0/16\", \"2001:db8::/32\"]\n",
        )
        .unwrap();
        let c = Config::load_from(Some(&file), &[]).unwrap();
        assert!(
            c.admin_allowed_networks
                .contains("10.1.2.3".parse().unwrap())
        );
        assert!(
            !c.admin_allowed_networks
                .contains("10.2.0.1".parse().unwrap())
        );
        assert!(
            c.admin_allowed_networks
                .contains("2001:db8::9".parse().unwrap())
        );
        let c = Config::load_from(
            None,
            &env(&[("TESSERA_ADMIN_ALLOWED_NETWORKS", "192.0.2.0/24, 10.0.0.1")]),
        )
        .unwrap();
        assert!(
            c.admin_allowed_networks
                .contains("192.0.2.77".parse().unwrap())
        );
        assert!(
            !c.admin_allowed_networks
                .contains("10.0.0.2".parse().unwrap())
        );
        let default = Config::load_from(None, &[]).unwrap();
        assert!(default.admin_allowed_networks.is_empty());
        assert_eq!(default.admin_idle_timeout, Duration::from_secs(900));
        let err = Config::load_from(
            None,
            &env(&[("TESSERA_ADMIN_ALLOWED_NETWORKS", "10.0.0.0/40")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("TESSERA_ADMIN_ALLOWED_NETWORKS"), "{err}");
    }

    #[test]
    fn weak_argon2_parameters_are_refused() {
        let err = Config::load_from(None, &env(&[("TESSERA_PASSWORD_HASH_MEMORY_KIB", "1024")]));
        assert!(err.is_err());
    }
}
