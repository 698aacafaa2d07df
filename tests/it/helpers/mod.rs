//! The harness every test shares.
//!
//! Each test runs its own Tessera process (`spawn_app`), with its own database,
//! data directory, port and master key, and talks to it as the outside world
//! does: over HTTP, through the command-line tool, and by reading the HTML pages
//! and JWTs it hands out.
//!
//! One module per subject; everything is re-exported here, so a test file needs only
//! `use crate::helpers::*;`.

#![allow(dead_code)]

/// The devices-and-sessions page.
mod account_sessions;
/// The admin console and its API: an admin with a second factor, a `tessera:admin` token.
mod admin;
/// Starting and stopping a server (and its replicas), its settings, its clients.
mod app;
/// The endpoints a relying party calls directly: token, revocation, introspection, ...
mod back_channel;
/// The `tessera` command line and the operator's commands.
mod cli;
/// The browser side of the authorization code flow.
mod code_flow;
/// `Set-Cookie` headers.
mod cookies;
/// SQLite or PostgreSQL (+ Redis) for this run; a database per test; SQL behind the server's back.
mod database;
/// Start tags, attributes and visible text of HTML (html5gum).
mod html;
/// JWT headers and claims; verification against the JWKS.
mod jwt;
/// A relying party's back-channel logout endpoint that records what it is sent.
mod logout_receiver;
/// The sign-in, consent and error pages.
mod pages;
/// `/metrics` in the Prometheus text format.
mod prometheus;
/// Random tokens and names.
mod random;
/// Checks on HTTP answers: headers, JSON, RFC 6749 errors.
mod responses;
/// Authenticator apps, recovery codes and the second-step page.
mod second_factors;
/// A software security key (WebAuthn) that answers Tessera's options.
mod security_key;
/// Test users and OAuth clients, and how a client authenticates.
mod users_and_clients;

pub use account_sessions::*;
pub use admin::*;
pub use app::*;
pub use back_channel::*;
pub use cli::*;
pub use code_flow::*;
pub use cookies::*;
pub use database::*;
pub use html::*;
pub use jwt::*;
pub use logout_receiver::*;
pub use pages::*;
pub use prometheus::*;
pub use random::*;
pub use responses::*;
pub use second_factors::*;
pub use security_key::*;
pub use users_and_clients::*;
