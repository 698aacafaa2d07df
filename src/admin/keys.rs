//! Operator actions on signing keys: what is published and in which state, and rotation
//! (scheduled, or an emergency that withdraws every older key at once).

use serde::Serialize;

use super::{Actor, AdminError};
use crate::audit::AuditEvent;
use crate::clock::Timestamp;
use crate::keys::keyring::Keyring;
use crate::keys::rotation::{self, Rotated, RotationError, RotationPolicy};
use crate::oauth::Provider;
use crate::store::{KeyStore, SigningKeyRecord};

/// Where a published key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Published, not signing yet (verifiers fetch it before it signs).
    Next,
    /// Signs new tokens.
    Active,
    /// Superseded: still published until every token it signed has expired.
    Retiring,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Active => "active",
            Self::Retiring => "retiring",
        }
    }
}

/// A published key as operators see it (never its private part).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KeyView {
    pub kid: String,
    pub alg: String,
    pub state: KeyState,
    pub created_at: Timestamp,
    pub activate_at: Timestamp,
    /// When it leaves the JWKS (retiring keys).
    pub expire_at: Option<Timestamp>,
    /// For the active key: when the schedule replaces it.
    pub rotation_due_at: Option<Timestamp>,
}

fn state_of(k: &SigningKeyRecord, active_kid: Option<&str>, now: Timestamp) -> KeyState {
    if k.activate_at > now {
        KeyState::Next
    } else if Some(k.kid.as_str()) == active_kid && k.expire_at.is_none() {
        KeyState::Active
    } else {
        KeyState::Retiring
    }
}

impl From<RotationError> for AdminError {
    fn from(e: RotationError) -> Self {
        match e {
            RotationError::Store(e) => AdminError::Store(e),
            RotationError::Key(e) => AdminError::Keys(e.to_string()),
        }
    }
}

/// The published keys, oldest first, with their state; the active one is the newest whose
/// activation has come.
pub async fn list(p: &Provider, policy: &RotationPolicy) -> Result<Vec<KeyView>, AdminError> {
    let now = p.now();
    let mut keys = p.store.live_keys(now).await?;
    keys.sort_by(|a, b| (a.activate_at, &a.kid).cmp(&(b.activate_at, &b.kid)));
    let active = keys
        .iter()
        .filter(|k| k.activate_at <= now)
        .max_by_key(|k| k.activate_at)
        .map(|k| k.kid.clone());
    Ok(keys
        .iter()
        .map(|k| {
            let state = state_of(k, active.as_deref(), now);
            KeyView {
                kid: k.kid.clone(),
                alg: k.alg.clone(),
                state,
                created_at: k.created_at,
                activate_at: k.activate_at,
                expire_at: k.expire_at,
                rotation_due_at: (state == KeyState::Active)
                    .then_some(k.activate_at + policy.interval),
            }
        })
        .collect())
}

/// Rotates now: a new key is published and signs after the publish lead (verifiers have time
/// to fetch it), or, in an emergency, signs at once while every older key is withdrawn (their
/// tokens stop verifying). This process signs with the new keyring at once; other replicas
/// follow at their next key check.
pub async fn rotate(
    p: &Provider,
    actor: &Actor,
    policy: &RotationPolicy,
    emergency: bool,
) -> Result<Rotated, AdminError> {
    let outcome = rotation::rotate(&p.store, &p.crypto, policy, p.now(), emergency).await?;
    let records = p.store.live_keys(p.now()).await?;
    let ring = Keyring::load(&records, &p.crypto).map_err(|e| AdminError::Keys(e.to_string()))?;
    p.replace_keys(ring);
    let (action, kid) = match &outcome {
        Rotated::Scheduled { kid, .. } => ("keys.rotated", kid),
        Rotated::AlreadyPending { kid, .. } => ("keys.rotation_pending", kid),
        Rotated::Emergency { kid, .. } => ("keys.rotated_emergency", kid),
    };
    let mut event = AuditEvent::new(action)
        .actor(actor.audit_name())
        .subject(kid.as_str());
    if let Rotated::Emergency { withdrawn, .. } = &outcome {
        event = event.detail("withdrawn", withdrawn.clone());
    }
    p.audit(event).await;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{Kit, rotation_policy};

    #[tokio::test]
    async fn a_rotation_publishes_the_next_key_and_an_emergency_withdraws_the_rest() {
        let kit = Kit::new().await;
        let policy = rotation_policy(&kit.p.settings);
        let before = list(&kit.p, &policy).await.unwrap();
        assert_eq!(before.len(), 1);
        assert_eq!(before[0].state, KeyState::Active);
        assert_eq!(
            before[0].rotation_due_at,
            Some(before[0].activate_at + policy.interval)
        );

        let Rotated::Scheduled { kid, activate_at } =
            rotate(&kit.p, &Actor::Cli, &policy, false).await.unwrap()
        else {
            panic!("a scheduled rotation")
        };
        let states: Vec<(String, KeyState)> = list(&kit.p, &policy)
            .await
            .unwrap()
            .into_iter()
            .map(|k| (k.kid, k.state))
            .collect();
        assert_eq!(
            states,
            vec![
                (before[0].kid.clone(), KeyState::Active),
                (kid.clone(), KeyState::Next)
            ]
        );
        assert!(
            kit.p.keys().kids().contains(&kid),
            "published by this process at once"
        );
        assert!(matches!(
            rotate(&kit.p, &Actor::Cli, &policy, false).await.unwrap(),
            Rotated::AlreadyPending { .. }
        ));

        kit.set(activate_at);
        let states: Vec<KeyState> = list(&kit.p, &policy)
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.state)
            .collect();
        assert_eq!(states, vec![KeyState::Retiring, KeyState::Active]);

        let Rotated::Emergency {
            kid: urgent,
            withdrawn,
        } = rotate(&kit.p, &Actor::Admin("u1".into()), &policy, true)
            .await
            .unwrap()
        else {
            panic!("an emergency rotation")
        };
        assert_eq!(withdrawn.len(), 2);
        let left = list(&kit.p, &policy).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(
            (left[0].kid.as_str(), left[0].state),
            (urgent.as_str(), KeyState::Active)
        );
        assert_eq!(kit.p.keys().kids(), vec![urgent]);
    }
}
