//! Key rotation. A new key is published `publish_lead` before it starts signing, so resource
//! servers that cache the JWKS (for less than the lead) know it before they ever see its `kid`;
//! a superseded key stays published until every token it signed has expired. Rotation runs on a
//! schedule with no operator action; an emergency rotation withdraws the old keys at once.

use super::signer::{KeyError, Signer, SigningAlg, generate};
use crate::clock::Timestamp;
use crate::crypto::{Crypto, random_id};
use crate::store::{KeyStore, SigningKeyRecord, StoreError};

#[derive(Debug, Clone, Copy)]
pub struct RotationPolicy {
    pub alg: SigningAlg,
    pub publish_lead: i64,
    pub interval: i64,
    pub max_token_ttl: i64,
}

/// Clock skew allowance added before a superseded key is withdrawn.
const RETIRE_MARGIN: i64 = 60;

/// The earliest activation that leaves a full `lead` after `now`. Timestamps are whole seconds
/// (rounded down), so one more second guarantees the lead is never cut short.
fn after_lead(now: Timestamp, lead: i64) -> Timestamp {
    now + lead + 1
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create { activate_at: Timestamp },
    Expire { kid: String, expire_at: Timestamp },
}

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What must change at `now` for the live keys to follow the policy. Pure.
pub fn plan(keys: &[SigningKeyRecord], now: Timestamp, p: &RotationPolicy) -> Vec<Action> {
    let mut active: Vec<&SigningKeyRecord> = keys.iter().filter(|k| k.activate_at <= now).collect();
    active.sort_by_key(|k| k.activate_at);
    let Some(current) = active.last() else {
        return vec![Action::Create { activate_at: now }];
    };
    let mut actions = Vec::new();
    for pair in active.windows(2) {
        let (old, next) = (pair[0], pair[1]);
        if old.expire_at.is_none() {
            actions.push(Action::Expire {
                kid: old.kid.clone(),
                expire_at: next.activate_at + p.max_token_ttl + RETIRE_MARGIN,
            });
        }
    }
    let pending = keys.iter().any(|k| k.activate_at > now);
    let due = current.activate_at + p.interval;
    if !pending && after_lead(now, p.publish_lead) >= due {
        actions.push(Action::Create {
            activate_at: due.max(after_lead(now, p.publish_lead)),
        });
    }
    actions
}

fn new_key(
    crypto: &Crypto,
    alg: SigningAlg,
    now: Timestamp,
    activate_at: Timestamp,
) -> Result<SigningKeyRecord, KeyError> {
    let kid = random_id();
    let der = generate(alg)?;
    let signer = Signer::from_pkcs8(&kid, alg, &der)?;
    Ok(SigningKeyRecord {
        private_enc: crypto.encrypt(&der, kid.as_bytes()),
        public_jwk: signer.public_jwk().to_string(),
        kid,
        alg: alg.as_str().to_string(),
        created_at: now,
        activate_at,
        expire_at: None,
        revoked_at: None,
    })
}

/// Applies [`plan`] and returns the live keys afterwards.
pub async fn reconcile<S: KeyStore>(
    store: &S,
    crypto: &Crypto,
    p: &RotationPolicy,
    now: Timestamp,
) -> Result<Vec<SigningKeyRecord>, RotationError> {
    let keys = store.live_keys(now).await?;
    let actions = plan(&keys, now, p);
    if actions.is_empty() {
        return Ok(keys);
    }
    for action in actions {
        match action {
            Action::Create { activate_at } => {
                let key = new_key(crypto, p.alg, now, activate_at)?;
                tracing::info!(kid = %key.kid, activate_at, "created signing key");
                store.insert_key(&key).await?;
            }
            Action::Expire { kid, expire_at } => {
                tracing::info!(%kid, expire_at, "scheduled withdrawal of superseded signing key");
                store.set_key_expiry(&kid, expire_at).await?;
            }
        }
    }
    Ok(store.live_keys(now).await?)
}

#[derive(Debug)]
pub enum Rotated {
    /// A new key is published and signs from `activate_at`.
    Scheduled { kid: String, activate_at: Timestamp },
    /// A key was already waiting to take over.
    AlreadyPending { kid: String, activate_at: Timestamp },
    /// The new key signs now; these keys were withdrawn.
    Emergency { kid: String, withdrawn: Vec<String> },
}

/// Operator-requested rotation (`tessera keys rotate [--emergency]`).
pub async fn rotate<S: KeyStore>(
    store: &S,
    crypto: &Crypto,
    p: &RotationPolicy,
    now: Timestamp,
    emergency: bool,
) -> Result<Rotated, RotationError> {
    let keys = store.live_keys(now).await?;
    if emergency {
        let key = new_key(crypto, p.alg, now, now)?;
        store.insert_key(&key).await?;
        let mut withdrawn = Vec::new();
        for old in keys {
            store.revoke_key(&old.kid, now).await?;
            withdrawn.push(old.kid);
        }
        tracing::warn!(kid = %key.kid, ?withdrawn, "emergency key rotation");
        return Ok(Rotated::Emergency {
            kid: key.kid,
            withdrawn,
        });
    }
    if let Some(pending) = keys.iter().find(|k| k.activate_at > now) {
        return Ok(Rotated::AlreadyPending {
            kid: pending.kid.clone(),
            activate_at: pending.activate_at,
        });
    }
    let key = new_key(crypto, p.alg, now, after_lead(now, p.publish_lead))?;
    store.insert_key(&key).await?;
    let rotated = Rotated::Scheduled {
        kid: key.kid.clone(),
        activate_at: key.activate_at,
    };
    reconcile(store, crypto, p, now).await?;
    Ok(rotated)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: RotationPolicy = RotationPolicy {
        alg: SigningAlg::Es256,
        publish_lead: 3600,
        interval: 90 * 86400,
        max_token_ttl: 600,
    };

    fn key(kid: &str, activate_at: i64, expire_at: Option<i64>) -> SigningKeyRecord {
        SigningKeyRecord {
            kid: kid.into(),
            alg: "ES256".into(),
            private_enc: vec![],
            public_jwk: String::new(),
            created_at: activate_at,
            activate_at,
            expire_at,
            revoked_at: None,
        }
    }

    #[test]
    fn the_first_start_creates_a_key_that_signs_at_once() {
        assert_eq!(
            plan(&[], 1000, &P),
            vec![Action::Create { activate_at: 1000 }]
        );
    }

    #[test]
    fn nothing_happens_while_the_current_key_is_young() {
        assert!(plan(&[key("a", 0, None)], 86400, &P).is_empty());
    }

    #[test]
    fn the_next_key_is_published_one_lead_before_the_interval_ends() {
        let due = P.interval;
        assert!(plan(&[key("a", 0, None)], due - P.publish_lead - 2, &P).is_empty());
        assert_eq!(
            plan(&[key("a", 0, None)], due - P.publish_lead - 1, &P),
            vec![Action::Create { activate_at: due }]
        );
        // A server that was down past the due date still publishes before signing.
        assert_eq!(
            plan(&[key("a", 0, None)], due + 500, &P),
            vec![Action::Create {
                activate_at: due + 500 + P.publish_lead + 1
            }]
        );
    }

    #[test]
    fn a_pending_key_prevents_a_second_one() {
        let keys = [key("a", 0, None), key("b", P.interval, None)];
        assert!(plan(&keys, P.interval - 10, &P).is_empty());
    }

    #[test]
    fn a_superseded_key_stays_published_until_its_last_token_expires() {
        let keys = [key("a", 0, None), key("b", 5000, None)];
        assert_eq!(
            plan(&keys, 5000, &P),
            vec![Action::Expire {
                kid: "a".into(),
                expire_at: 5000 + 600 + RETIRE_MARGIN
            }]
        );
        let keys = [key("a", 0, Some(5660)), key("b", 5000, None)];
        assert!(plan(&keys, 5001, &P).is_empty());
    }
}
