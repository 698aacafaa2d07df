//! The protocol's lifetime rules at their edges (one second before, at, one second after), on a
//! real [`crate::oauth::Provider`] over in-memory SQLite with a hand-moved clock
//! ([`crate::testkit`]). An instant equal to an `expires_at` is already expired everywhere in
//! the engine and the SQL (`expires_at <= now`); the reuse grace window includes its last second
//! (`now - rotated_at <= grace`).

mod codes;
mod levels;
mod quotas;
mod refresh;
mod tokens;
