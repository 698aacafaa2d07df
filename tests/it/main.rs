//! Black-box integration tests for Tessera: each test starts its own server
//! process and talks to it over HTTP and through its command line.

mod helpers;

mod oidc_flow;

mod authorize_errors;
mod cli;
mod client_credentials;
mod keys;
mod refresh;
mod revocation;
mod sessions;
mod token_errors;
