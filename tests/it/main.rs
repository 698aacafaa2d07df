//! Black-box integration tests for Tessera: each test starts its own server
//! process and talks to it over HTTP and through its command line.

mod helpers;

mod oidc_flow;

mod account_security;
mod admin_access;
mod admin_sections;
mod admin_users;
mod admin_users_api;
mod admin_users_cli;
mod audit;
mod authorize_errors;
mod backchannel_logout;
mod cli;
mod client_address;
mod client_admin;
mod client_credentials;
mod feed;
mod flow_hardening;
mod hostile_input;
mod keys;
mod mail_sink;
mod mfa_account;
mod mfa_sign_in;
mod passkeys;
mod refresh;
mod replicas;
mod review_findings;
mod revocation;
mod secrets_and_audit;
mod security_key_step;
mod session_lifecycle;
mod sessions;
mod token_errors;
