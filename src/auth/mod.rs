//! People: password hashing and browser (SSO) sessions.

pub mod account;
pub mod password;
pub mod session;
