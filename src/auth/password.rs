//! argon2id password hashing on a bounded pool, off the async executor.
//!
//! Each hash holds `m` KiB of memory for ~20 ms, so at most `concurrency` run at once (a
//! semaphore), on tokio's blocking threads. Unknown accounts are checked against a dummy hash
//! with the same parameters, so they cost the same work as real ones.

use std::sync::Arc;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::crypto::{SecretString, random_bytes, random_token};

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("hashing failed")]
    Hash,
    #[error("the hashing pool is shut down")]
    Pool,
}

/// Outcome of a password check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    pub valid: bool,
    /// The stored hash uses older parameters and should be replaced.
    pub needs_rehash: bool,
}

#[derive(Clone)]
pub struct PasswordHasher {
    argon: Arc<Argon2<'static>>,
    params: Params,
    permits: Arc<Semaphore>,
    dummy: Arc<String>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .finish()
    }
}

/// Passwords longer than this are refused before hashing (a cheap denial-of-service guard).
pub const MAX_PASSWORD_BYTES: usize = 1024;

impl PasswordHasher {
    pub fn new(
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
        concurrency: usize,
    ) -> Result<Self, PasswordError> {
        let params = Params::new(memory_kib, iterations, parallelism, None)
            .map_err(|e| PasswordError::Params(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let salt = random_bytes::<16>();
        let dummy = argon
            .hash_password_with_salt(random_token().as_bytes(), &salt)
            .map_err(|_| PasswordError::Hash)?
            .to_string();
        Ok(Self {
            argon: Arc::new(argon),
            params,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy: Arc::new(dummy),
        })
    }

    /// Hashes a new password (PHC string).
    pub async fn hash(&self, password: &SecretString) -> Result<String, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordError::Pool)?;
        let argon = self.argon.clone();
        let password = password.clone();
        tokio::task::spawn_blocking(move || {
            let salt = random_bytes::<16>();
            argon
                .hash_password_with_salt(password.expose().as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|_| PasswordError::Hash)
        })
        .await
        .map_err(|_| PasswordError::Pool)?
    }

    /// Checks a password against a stored hash, or against the dummy hash when there is none.
    pub async fn verify(
        &self,
        password: &SecretString,
        stored: Option<&str>,
    ) -> Result<Verification, PasswordError> {
        let real = stored.is_some();
        let stored = stored.unwrap_or(&self.dummy).to_string();
        if password.expose().len() > MAX_PASSWORD_BYTES {
            return Ok(Verification {
                valid: false,
                needs_rehash: false,
            });
        }
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordError::Pool)?;
        let argon = self.argon.clone();
        let password = password.clone();
        let current = self.params.clone();
        tokio::task::spawn_blocking(move || {
            let Ok(parsed) = argon2::password_hash::phc::PasswordHash::new(&stored) else {
                tracing::error!("a stored password hash is not a valid PHC string");
                return Verification {
                    valid: false,
                    needs_rehash: false,
                };
            };
            let valid = argon
                .verify_password(password.expose().as_bytes(), &parsed)
                .is_ok()
                && real;
            let needs_rehash = valid
                && (parsed.algorithm.as_str() != "argon2id"
                    || Params::try_from(&parsed)
                        .map(|p| {
                            (p.m_cost(), p.t_cost(), p.p_cost())
                                != (current.m_cost(), current.t_cost(), current.p_cost())
                        })
                        .unwrap_or(true));
            Verification {
                valid,
                needs_rehash,
            }
        })
        .await
        .map_err(|_| PasswordError::Pool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_only_its_own_password_and_unknown_accounts_never_verify() {
        let h = PasswordHasher::new(19456, 2, 1, 2).unwrap();
        let pw = SecretString::new("correct horse battery staple");
        let stored = h.hash(&pw).await.unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(h.verify(&pw, Some(&stored)).await.unwrap().valid);
        assert!(
            !h.verify(&SecretString::new("wrong"), Some(&stored))
                .await
                .unwrap()
                .valid
        );
        assert!(!h.verify(&pw, None).await.unwrap().valid);
    }

    #[tokio::test]
    async fn a_hash_with_older_parameters_asks_for_a_rehash() {
        let old = PasswordHasher::new(19456, 2, 1, 1).unwrap();
        let new = PasswordHasher::new(19456, 3, 1, 1).unwrap();
        let pw = SecretString::new("correct horse battery staple");
        let stored = old.hash(&pw).await.unwrap();
        let v = new.verify(&pw, Some(&stored)).await.unwrap();
        assert!(v.valid && v.needs_rehash, "{v:?}");
        assert!(!old.verify(&pw, Some(&stored)).await.unwrap().needs_rehash);
    }
}
