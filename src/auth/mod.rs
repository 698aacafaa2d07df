//! People: password hashing and browser (SSO) sessions.

pub mod password;
pub mod session;
