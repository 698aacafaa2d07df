//! People: password hashing and browser (SSO) sessions.

pub mod account;
pub mod devices;
pub mod email;
pub mod password;
pub mod policy;
pub mod recovery;
pub mod session;
pub mod signin;
pub mod throttle;

#[cfg(test)]
mod engine_tests;
