//! Signing keys: generation, the in-memory keyring that signs and verifies JWTs, the JWKS it
//! publishes, and the rotation schedule.

pub mod keyring;
pub mod rotation;
pub mod signer;

#[cfg(test)]
mod engine_tests;

pub use keyring::{Keyring, SharedKeyring};
pub use signer::{KeyError, SigningAlg};
