//! Which failures are transient: the database (or Redis) could not be reached for a moment, as
//! in a restart, a fail-over or a full pool. Such a failure says nothing about the request, so it
//! must not read as a refusal (`invalid_grant` would make a client sign its user out) nor as a
//! bug (`500`): clients get 503 `temporarily_unavailable` with `Retry-After`, people a "try
//! again" page, and `/readyz` reports not ready. The classification lives here and nowhere else.

use std::io::ErrorKind;

use super::StoreError;

/// A failure that may go away if the same request is simply sent again later.
pub trait Transient {
    fn is_transient(&self) -> bool;
}

impl Transient for StoreError {
    fn is_transient(&self) -> bool {
        match self {
            StoreError::Unavailable(_) => true,
            StoreError::Database(e) => sqlx_is_transient(e),
            StoreError::Conflict | StoreError::Corrupt(_) => false,
        }
    }
}

/// PostgreSQL SQLSTATEs (Appendix A of its manual) that mean "not now" rather than "not this".
fn postgres_code_is_transient(code: &str) -> bool {
    // Class 08: connection exception (refused, broken, lost during a restart).
    code.starts_with("08")
        || matches!(
            code,
            // Class 57: admin_shutdown (a terminated backend, a fast shutdown), crash_shutdown,
            // cannot_connect_now (starting up or shutting down), idle_session_timeout.
            "57P01" | "57P02" | "57P03" | "57P05"
            // too_many_connections, and for a database: CONNECTION LIMIT reached.
            | "53300"
            // object_not_in_prerequisite_state: raised at connection time for a database that
            // does not accept connections (ALLOW_CONNECTIONS false, as during maintenance);
            // Tessera's statements do not raise it otherwise.
            | "55000"
            // serialization_failure, deadlock_detected: the same statement may succeed again.
            | "40001" | "40P01"
        )
}

/// SQLite result codes: SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes.
fn sqlite_code_is_transient(code: &str) -> bool {
    code.parse::<i64>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
}

/// The one place an `sqlx::Error` is classified.
pub fn sqlx_is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        sqlx::Error::Io(io) => !matches!(
            io.kind(),
            ErrorKind::InvalidInput | ErrorKind::InvalidData | ErrorKind::PermissionDenied
        ),
        sqlx::Error::Database(db) => {
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                postgres_code_is_transient(pg.code())
            } else if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                db.code().is_some_and(|c| sqlite_code_is_transient(&c))
            } else {
                false
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_databases_are_transient_and_bad_data_is_not() {
        assert!(StoreError::Database(sqlx::Error::PoolTimedOut).is_transient());
        assert!(StoreError::Database(sqlx::Error::PoolClosed).is_transient());
        for kind in [
            ErrorKind::ConnectionRefused,
            ErrorKind::ConnectionReset,
            ErrorKind::BrokenPipe,
            ErrorKind::UnexpectedEof,
        ] {
            let e = sqlx::Error::Io(std::io::Error::from(kind));
            assert!(StoreError::Database(e).is_transient(), "{kind:?}");
        }
        assert!(StoreError::Unavailable("writer stopped".into()).is_transient());

        assert!(!StoreError::Conflict.is_transient());
        assert!(!StoreError::Corrupt("x".into()).is_transient());
        assert!(!StoreError::Database(sqlx::Error::RowNotFound).is_transient());
        assert!(!StoreError::Database(sqlx::Error::Protocol("x".into())).is_transient());
    }

    #[test]
    fn postgres_and_sqlite_codes_are_told_apart() {
        for code in [
            "08006", "08001", "57P01", "57P03", "53300", "55000", "40001",
        ] {
            assert!(postgres_code_is_transient(code), "{code}");
        }
        for code in ["23505", "42P01", "22001", "42501"] {
            assert!(!postgres_code_is_transient(code), "{code}");
        }
        // SQLITE_BUSY, SQLITE_BUSY_SNAPSHOT (517), SQLITE_LOCKED.
        for code in ["5", "517", "6"] {
            assert!(sqlite_code_is_transient(code), "{code}");
        }
        // SQLITE_CONSTRAINT_UNIQUE (2067), SQLITE_CORRUPT (11).
        for code in ["2067", "11"] {
            assert!(!sqlite_code_is_transient(code), "{code}");
        }
    }
}
