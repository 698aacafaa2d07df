//! Tessera: an OAuth 2.0 / OpenID Connect identity provider.
//!
//! The crate reads like a map: `oauth` is the protocol engine (no HTTP, no SQL), `auth` holds
//! passwords and browser sessions, `keys` the signing keyring, `store` the persistence traits and
//! their SQL implementation, and `http` the thin actix-web adapters.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod admin;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod fleet;
pub mod http;
pub mod keys;
pub mod mail;
pub mod metrics;
pub mod oauth;
pub mod revocation;
pub mod secret;
pub mod startup;
pub mod store;
pub mod telemetry;
#[cfg(test)]
pub mod testkit;
