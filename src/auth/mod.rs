//! People: password hashing, second factors and browser (SSO) sessions.

pub mod account;
pub mod devices;
pub mod email;
pub mod mfa;
pub mod password;
pub mod policy;
pub mod recovery;
pub mod session;
pub mod signin;
pub mod throttle;

#[cfg(test)]
mod engine_tests;
