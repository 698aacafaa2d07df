//! Builds the application from configuration: master key, store, keys, password pool, HTTP.

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use tracing_actix_web::TracingLogger;

use crate::auth::password::{PasswordError, PasswordHasher};
use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::crypto::{Crypto, MasterKey};
use crate::fleet::{Fleet, FleetError};
use crate::http::{self, AppState};
use crate::keys::rotation::{self, RotationError, RotationPolicy};
use crate::keys::{KeyError, Keyring};
use crate::mail::Mailer;
use crate::oauth::{Provider, Settings, discovery};
use crate::store::{Backend, SqlStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Config(String),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("signing keys: {0}")]
    Keys(#[from] KeyError),
    #[error("signing keys: {0}")]
    Rotation(#[from] RotationError),
    #[error("passwords: {0}")]
    Password(#[from] PasswordError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Mail(#[from] crate::mail::MailError),
    #[error("{0} (setting `redis_url`)")]
    Fleet(#[from] FleetError),
}

/// The master key: configured, or (embedded SQLite only) generated into the data folder.
pub fn master_key(config: &Config, backend: Backend) -> Result<MasterKey, StartupError> {
    if let Some(k) = &config.master_key {
        return Ok(k.clone());
    }
    if backend == Backend::Postgres {
        return Err(StartupError::Config(
            "TESSERA_MASTER_KEY is required with PostgreSQL (32 random bytes, base64url; e.g. `openssl rand -base64 32 | tr '+/' '-_' | tr -d '='`)".into(),
        ));
    }
    let path = config.data_dir.join("master.key");
    if path.exists() {
        let text = std::fs::read_to_string(&path)?;
        return MasterKey::parse(&text)
            .map_err(|e| StartupError::Config(format!("{}: {e}", path.display())));
    }
    std::fs::create_dir_all(&config.data_dir)?;
    let key = MasterKey::generate();
    write_private(&path, &key.encode())?;
    tracing::warn!(
        path = %path.display(),
        "DEVELOPMENT MASTER KEY GENERATED. It encrypts the signing keys and keys every token hash. \
         In production set TESSERA_MASTER_KEY from a secret store and keep this file out of backups you share."
    );
    eprintln!(
        "\n  WARNING: no TESSERA_MASTER_KEY set; generated a development master key at {}\n  Set TESSERA_MASTER_KEY in production.\n",
        path.display()
    );
    Ok(key)
}

fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(content.as_bytes())
}

/// Connects to the database and applies migrations.
pub async fn open_store(config: &Config) -> Result<SqlStore, StartupError> {
    let store = SqlStore::connect(&config.database_url(), config.database_max_connections).await?;
    store.migrate().await?;
    Ok(store)
}

/// Seals an audit head that has no MAC yet: a new database, or the first start after the
/// upgrade that added head MACs. Only a missing MAC is sealed, never a wrong one, and appends
/// never seal: removing the MAC is thus noticed (verify fails) until the next start, which says
/// so in the log. See docs/DESIGN.md ("Audit log") for why this, and how an operator pins.
async fn seal_audit_head(store: &SqlStore, crypto: &Crypto) -> Result<(), StartupError> {
    use crate::store::AuditStore;
    match store.seal_audit_head(crypto).await? {
        Some(0) | None => {}
        Some(seq) => tracing::warn!(
            entry = seq,
            "the audit log's head had no MAC (first start after an upgrade, or it was removed): \
             sealed it as it stands. Run `tessera audit verify` and compare its pin with one \
             recorded earlier"
        ),
    }
    Ok(())
}

pub fn rotation_policy(config: &Config) -> RotationPolicy {
    RotationPolicy {
        alg: config.signing_alg,
        publish_lead: config.key_publish_lead.as_secs() as i64,
        interval: config.key_rotation_interval.as_secs() as i64,
        max_token_ttl: config.max_signed_token_ttl().as_secs() as i64,
    }
}

/// Everything but the HTTP server: used by `serve` and by the CLI.
pub async fn provider(config: &Config) -> Result<Provider, StartupError> {
    provider_with(config, HeadSealing::SealMissing).await
}

/// Whether opening the store seals an audit head that has no MAC (see [`seal_audit_head`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadSealing {
    /// `serve` and the CLI commands that act on the database.
    SealMissing,
    /// `tessera audit verify`: it judges the head as it finds it. Sealing first would bless a
    /// head whose MAC a database writer removed after moving it back over a deleted tail.
    Leave,
}

/// [`provider`], choosing whether an audit head without a MAC is sealed.
pub async fn provider_with(
    config: &Config,
    sealing: HeadSealing,
) -> Result<Provider, StartupError> {
    let store = open_store(config).await?;
    let master = master_key(config, store.backend())?;
    let crypto = Arc::new(Crypto::new(&master));
    if sealing == HeadSealing::SealMissing {
        seal_audit_head(&store, &crypto).await?;
    }
    let clock: SharedClock = Arc::new(SystemClock);
    let now = clock.now();
    let keys = rotation::reconcile(&store, &crypto, &rotation_policy(config), now).await?;
    let keyring = Keyring::load(&keys, &crypto)?.shared();
    let fleet = Arc::new(Fleet::connect(config.redis_url.as_deref(), &config.redis_prefix).await?);
    fleet.sync(&store, now).await?;
    Ok(Provider {
        store,
        keyring,
        crypto,
        clock,
        settings: Arc::new(Settings::from_config(config)),
        fleet,
        metrics: Arc::default(),
        caches: Arc::default(),
        backchannel: Arc::default(),
    })
}

pub fn password_hasher(config: &Config) -> Result<PasswordHasher, StartupError> {
    Ok(PasswordHasher::new(
        config.password_hash_memory_kib,
        config.password_hash_iterations,
        config.password_hash_parallelism,
        config.password_hash_concurrency,
    )?)
}

/// Keeps the in-memory keyring in step with the database and the rotation schedule.
async fn key_maintenance(provider: Provider, policy: RotationPolicy, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = provider.now();
        match rotation::reconcile(&provider.store, &provider.crypto, &policy, now).await {
            Ok(records) => {
                let current = provider.keys().kids();
                let mut fresh: Vec<String> = records.iter().map(|r| r.kid.clone()).collect();
                fresh.sort();
                let mut old = current.clone();
                old.sort();
                if fresh != old {
                    match Keyring::load(&records, &provider.crypto) {
                        Ok(ring) => {
                            tracing::info!(kids = ?ring.kids(), "keyring reloaded");
                            provider.replace_keys(ring);
                        }
                        Err(e) => tracing::error!(error = %e, "could not load signing keys"),
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "key maintenance failed"),
        }
    }
}

/// Replays the revocation log: the safety net behind Redis pub/sub, and the only path without it.
async fn revocation_sync(provider: Provider, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = provider.fleet.sync(&provider.store, provider.now()).await {
            tracing::warn!(error = %e, "could not read the revocation log");
        }
    }
}

/// Deletes dead rows in small batches with pauses between them, so the table never stays locked
/// long and requests keep flowing (SQLite has one writer). Each pause is at least four times
/// what the batch took, so the purge holds the writer at most a fifth of the time however slow a
/// batch gets: with batches of 500 and fixed 20 ms pauses, purging half a million expired rows
/// took refresh rotation from 5.4k/s p99 18 ms to 2.9k/s p99 89 ms on SQLite.
async fn purge(provider: Provider, every: Duration) {
    use crate::store::PurgeStore;
    const BATCH: i64 = 100;
    const MIN_PAUSE: Duration = Duration::from_millis(20);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut total = 0;
        loop {
            let started = std::time::Instant::now();
            match provider.store.purge_expired(provider.now(), BATCH).await {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) => {
                    tracing::warn!(error = %e, "purge of expired rows failed");
                    break;
                }
            }
            tokio::time::sleep(MIN_PAUSE.max(started.elapsed() * 4)).await;
        }
        if total > 0 {
            tracing::info!(rows = total, "purged expired rows");
        }
    }
}

/// Without `smtp_url`, mails (and the reset and verification links in them) go to the log. That
/// is the embedded development default's convenience; with PostgreSQL or an https issuer it
/// must be chosen explicitly (`mail_to_log = true`).
pub(crate) fn check_mail_setting(config: &Config, backend: Backend) -> Result<(), StartupError> {
    let production = backend == Backend::Postgres || config.is_https();
    if config.smtp_url.is_none() && production && !config.mail_to_log {
        return Err(StartupError::Config(
            "no `smtp_url` set: password-reset and verification links would be written to the log. \
             Set `smtp_url` (TESSERA_SMTP_URL), or set `mail_to_log = true` (TESSERA_MAIL_TO_LOG) \
             to accept links in the log"
                .into(),
        ));
    }
    Ok(())
}

/// Runs the server until it is stopped.
pub async fn serve(config: Config) -> Result<(), StartupError> {
    let provider = provider(&config).await?;
    let passwords = password_hasher(&config)?;
    check_mail_setting(&config, provider.store.backend())?;
    let mailer = Mailer::new(config.smtp_url.as_deref(), &config.mail_from)?;
    let listener = TcpListener::bind(&config.listen).map_err(|e| {
        StartupError::Config(format!(
            "cannot listen on {} (setting `listen`): {e}",
            config.listen
        ))
    })?;
    let address = listener.local_addr()?;
    let lead = config.key_publish_lead.as_secs();
    let jwks_max_age = config.jwks_max_age.as_secs().min(lead / 2);
    let algs = provider.keys().algorithms();
    let mut algs = algs;
    if !algs.contains(&config.signing_alg.as_str()) {
        algs.push(config.signing_alg.as_str());
    }
    let discovery = discovery::metadata(&config.issuer, &algs).to_string();
    let https = config.is_https();
    let workers = config.workers;
    let config = Arc::new(config);
    let state = web::Data::new(AppState {
        provider: provider.clone(),
        passwords,
        mailer,
        config: config.clone(),
        discovery,
        jwks_max_age,
    });
    let metrics_state = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(http::security_headers(https))
            .wrap(TracingLogger::<crate::telemetry::RequestSpan>::new())
            .wrap(actix_web::middleware::from_fn(http::timed))
            .configure(http::routes)
    })
    .workers(workers)
    .listen(listener)?
    .run();
    if let Some(addr) = &config.metrics_listen {
        let listener = TcpListener::bind(addr).map_err(|e| {
            StartupError::Config(format!(
                "cannot listen on {addr} (setting `metrics_listen`): {e}"
            ))
        })?;
        let metrics = HttpServer::new(move || {
            App::new()
                .app_data(metrics_state.clone())
                .route("/metrics", web::get().to(http::health::metrics_private))
                .default_service(web::to(http::errors::not_found))
        })
        .workers(1)
        .listen(listener)?
        .run();
        actix_web::rt::spawn(metrics);
    }
    actix_web::rt::spawn(key_maintenance(
        provider.clone(),
        rotation_policy(&config),
        config.key_reload_interval,
    ));
    actix_web::rt::spawn(revocation_sync(
        provider.clone(),
        config.revocation_poll_interval,
    ));
    actix_web::rt::spawn(provider.fleet.clone().listen());
    actix_web::rt::spawn(purge(provider.clone(), config.purge_interval));
    let policy = crate::oauth::backchannel::DeliveryPolicy::from_config(&config);
    let sender = crate::oauth::backchannel::http_client(&policy)
        .map_err(|e| StartupError::Config(format!("back-channel logout HTTP client: {e}")))?;
    actix_web::rt::spawn(crate::oauth::backchannel::run(
        provider.clone(),
        policy,
        sender,
    ));
    print_welcome(&config, &address.to_string(), provider.store.backend());
    server.await?;
    provider.store.close().await;
    Ok(())
}

fn print_welcome(config: &Config, address: &str, backend: Backend) {
    let issuer = &config.issuer;
    let db = match backend {
        Backend::Sqlite => format!("SQLite ({})", config.database_url()),
        Backend::Postgres => "PostgreSQL".to_string(),
    };
    println!(
        "Tessera is listening on http://{address}\n\
         \x20 issuer:    {issuer}\n\
         \x20 database:  {db}\n\
         \x20 discovery: {issuer}/.well-known/openid-configuration\n\n\
         Next steps:\n\
         \x20 1. Create a user:   echo 'a long passphrase' | tessera user add --email you@example.com --password-stdin\n\
         \x20 2. Register an app: tessera client add --id erp --redirect-uri http://localhost:3000/callback --first-party\n\
         \x20 3. Point your app at the discovery URL above."
    );
}
