//! Embedded migrations, one folder per backend, applied in order at start and by `tessera migrate`.

use sqlx::AnyPool;

use super::{Backend, StoreResult};

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sqlite: include_str!("../../migrations/sqlite/0001_init.sql"),
        postgres: include_str!("../../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "account_recovery",
        sqlite: include_str!("../../migrations/sqlite/0002_account_recovery.sql"),
        postgres: include_str!("../../migrations/postgres/0002_account_recovery.sql"),
    },
    Migration {
        version: 3,
        name: "session_order",
        sqlite: include_str!("../../migrations/sqlite/0003_session_order.sql"),
        postgres: include_str!("../../migrations/postgres/0003_session_order.sql"),
    },
    Migration {
        version: 4,
        name: "purge_indexes",
        sqlite: include_str!("../../migrations/sqlite/0004_purge_indexes.sql"),
        postgres: include_str!("../../migrations/postgres/0004_purge_indexes.sql"),
    },
    Migration {
        version: 5,
        name: "refresh_fillfactor",
        sqlite: include_str!("../../migrations/sqlite/0005_refresh_fillfactor.sql"),
        postgres: include_str!("../../migrations/postgres/0005_refresh_fillfactor.sql"),
    },
    Migration {
        version: 6,
        name: "audit_head_mac",
        sqlite: include_str!("../../migrations/sqlite/0006_audit_head_mac.sql"),
        postgres: include_str!("../../migrations/postgres/0006_audit_head_mac.sql"),
    },
    Migration {
        version: 7,
        name: "mfa",
        sqlite: include_str!("../../migrations/sqlite/0007_mfa.sql"),
        postgres: include_str!("../../migrations/postgres/0007_mfa.sql"),
    },
    Migration {
        version: 8,
        name: "client_require_mfa",
        sqlite: include_str!("../../migrations/sqlite/0008_client_require_mfa.sql"),
        postgres: include_str!("../../migrations/postgres/0008_client_require_mfa.sql"),
    },
    Migration {
        version: 9,
        name: "sessions_ended_at",
        sqlite: include_str!("../../migrations/sqlite/0009_sessions_ended_at.sql"),
        postgres: include_str!("../../migrations/postgres/0009_sessions_ended_at.sql"),
    },
    Migration {
        version: 11,
        name: "admin_users",
        sqlite: include_str!("../../migrations/sqlite/0011_admin_users.sql"),
        postgres: include_str!("../../migrations/postgres/0011_admin_users.sql"),
    },
    Migration {
        version: 12,
        name: "admin_console",
        sqlite: include_str!("../../migrations/sqlite/0012_admin_console.sql"),
        postgres: include_str!("../../migrations/postgres/0012_admin_console.sql"),
    },
    Migration {
        version: 13,
        name: "backchannel_logout",
        sqlite: include_str!("../../migrations/sqlite/0013_backchannel_logout.sql"),
        postgres: include_str!("../../migrations/postgres/0013_backchannel_logout.sql"),
    },
    Migration {
        version: 14,
        name: "revocation_feed",
        sqlite: include_str!("../../migrations/sqlite/0014_revocation_feed.sql"),
        postgres: include_str!("../../migrations/postgres/0014_revocation_feed.sql"),
    },
    Migration {
        version: 15,
        name: "sessions_epoch",
        sqlite: include_str!("../../migrations/sqlite/0015_sessions_epoch.sql"),
        postgres: include_str!("../../migrations/postgres/0015_sessions_epoch.sql"),
    },
];

/// Applies every migration not yet applied; returns how many ran.
pub async fn run(pool: &AnyPool, backend: Backend) -> StoreResult<usize> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS tessera_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(pool)
    .await?;
    let mut applied = 0;
    for m in MIGRATIONS {
        let mut tx = pool.begin().await?;
        if backend == Backend::Postgres {
            // Replicas starting together wait for each other instead of racing.
            sqlx::query("SELECT pg_advisory_xact_lock(7352001)")
                .execute(&mut *tx)
                .await?;
        }
        let done: Option<i64> =
            sqlx::query_scalar("SELECT version FROM tessera_migrations WHERE version = $1")
                .bind(m.version)
                .fetch_optional(&mut *tx)
                .await?;
        if done.is_some() {
            tx.rollback().await?;
            continue;
        }
        let sql = match backend {
            Backend::Sqlite => m.sqlite,
            Backend::Postgres => m.postgres,
        };
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO tessera_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(m.version)
        .bind(m.name)
        .bind(crate::clock::Clock::now(&crate::clock::SystemClock))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
        applied += 1;
    }
    Ok(applied)
}
