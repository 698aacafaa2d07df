//! Ceremony state kept on the server between two requests of one browser (WebAuthn
//! registration and assertion: the challenge and what the relying party expects).
//!
//! [`begin`] stores the state under the keyed hash of a fresh 256-bit handle and returns the
//! handle, which the page keeps in a cookie (so the state is bound to that browser); the
//! state itself is encrypted under the master key with its kind, user and handle hash as AAD,
//! so a database writer can neither read nor swap it. [`finish`] takes it back exactly once,
//! atomically on every replica (`DELETE ... RETURNING`), and refuses it after
//! [`CEREMONY_TTL`]; expired rows are removed by the purge.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::crypto::{b64, b64_decode, random_token};
use crate::oauth::Provider;
use crate::secret::SecretString;
use crate::store::{Ceremony, MfaStore};

use super::MfaError;

/// How long a ceremony may take (the issue: five minutes).
pub const CEREMONY_TTL: i64 = 300;

/// What a ceremony is for; a take names the kind it expects, so state begun for one step is
/// never accepted by another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyKind {
    /// Adding a passkey or security key to a signed-in account.
    WebAuthnRegistration,
    /// Signing in with a passkey alone (the user is not known yet).
    PasskeySignIn,
    /// A WebAuthn credential as the second step after a password.
    WebAuthnSecondStep,
    /// The pending second step itself: who passed the password, the methods so far and the
    /// request to resume (see `auth::mfa::second_step`).
    SecondStep,
}

impl CeremonyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WebAuthnRegistration => "webauthn_registration",
            Self::PasskeySignIn => "passkey_sign_in",
            Self::WebAuthnSecondStep => "webauthn_second_step",
            Self::SecondStep => "second_step",
        }
    }
}

/// A ceremony's state as it came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken<T> {
    /// The user it was begun for (`None` for a passkey sign-in).
    pub user_id: Option<String>,
    pub state: T,
}

fn aad(kind: CeremonyKind, user_id: Option<&str>, id_hash: &[u8]) -> Vec<u8> {
    let mut aad = format!(
        "tessera/v1/ceremony\0{}\0{}\0",
        kind.as_str(),
        user_id.unwrap_or("")
    )
    .into_bytes();
    aad.extend_from_slice(id_hash);
    aad
}

/// Stores `state` (serialised, encrypted) for [`CEREMONY_TTL`] and returns the handle the
/// browser keeps (a cookie value: a secret, never logged).
pub async fn begin<T: Serialize>(
    p: &Provider,
    kind: CeremonyKind,
    user_id: Option<&str>,
    state: &T,
) -> Result<SecretString, MfaError> {
    let json = serde_json::to_vec(state).map_err(|_| MfaError::Corrupt)?;
    let handle = random_token();
    let id_hash = p.crypto.token_hash(&handle);
    let now = p.now();
    let sealed = p.crypto.encrypt(&json, &aad(kind, user_id, &id_hash));
    let ceremony = Ceremony {
        user_id: user_id.map(String::from),
        kind: kind.as_str().into(),
        state: b64(&sealed),
        created_at: now,
        expires_at: now + CEREMONY_TTL,
    };
    p.store.put_ceremony(&id_hash, &ceremony).await?;
    Ok(SecretString::new(handle))
}

/// Takes the state begun under `handle` for `kind`: once, and only before it expires. `None`
/// when there is none (unknown handle, already taken, expired, another kind).
pub async fn finish<T: DeserializeOwned>(
    p: &Provider,
    kind: CeremonyKind,
    handle: &str,
) -> Result<Option<Taken<T>>, MfaError> {
    Ok(hold(p, kind, handle).await?.map(|h| h.taken))
}

/// A ceremony taken by [`hold`]: its state, and the stored row [`put_back`] returns unchanged.
pub struct Held<T> {
    pub taken: Taken<T>,
    id_hash: Vec<u8>,
    row: Ceremony,
}

/// Takes the state like [`finish`] (atomically, once), keeping what [`put_back`] needs to
/// store it again under the same handle with the same expiry: a step that may fail and be
/// tried again (a wrong code at the second step) holds its state while it checks, so two
/// attempts never both succeed.
pub async fn hold<T: DeserializeOwned>(
    p: &Provider,
    kind: CeremonyKind,
    handle: &str,
) -> Result<Option<Held<T>>, MfaError> {
    if handle.is_empty() || handle.len() > 128 {
        return Ok(None);
    }
    let id_hash = p.crypto.token_hash(handle);
    let Some(c) = p
        .store
        .take_ceremony(&id_hash, kind.as_str(), p.now())
        .await?
    else {
        return Ok(None);
    };
    let state = open(p, kind, &c, &id_hash)?;
    Ok(Some(Held {
        taken: Taken {
            user_id: c.user_id.clone(),
            state,
        },
        id_hash,
        row: c,
    }))
}

/// A ceremony looked at by [`peek`]: its state, and the keyed hash of its handle, under which
/// a completion takes it (`MfaStore::complete_second_step`).
pub struct Peeked<T> {
    pub taken: Taken<T>,
    pub id_hash: Vec<u8>,
}

/// Reads the unexpired state begun under `handle` for `kind` without taking it: a step that
/// may fail and be tried again (a wrong code at the second step) checks the answer first and
/// then takes the state in the same transaction as its other writes, so a wrong answer
/// neither spends nor extends it, and two right ones never both succeed.
pub async fn peek<T: DeserializeOwned>(
    p: &Provider,
    kind: CeremonyKind,
    handle: &str,
) -> Result<Option<Peeked<T>>, MfaError> {
    if handle.is_empty() || handle.len() > 128 {
        return Ok(None);
    }
    let id_hash = p.crypto.token_hash(handle);
    let Some(c) = p
        .store
        .peek_ceremony(&id_hash, kind.as_str(), p.now())
        .await?
    else {
        return Ok(None);
    };
    let state = open(p, kind, &c, &id_hash)?;
    Ok(Some(Peeked {
        taken: Taken {
            user_id: c.user_id,
            state,
        },
        id_hash,
    }))
}

fn open<T: DeserializeOwned>(
    p: &Provider,
    kind: CeremonyKind,
    c: &Ceremony,
    id_hash: &[u8],
) -> Result<T, MfaError> {
    let sealed = b64_decode(&c.state).ok_or(MfaError::Corrupt)?;
    let json = p
        .crypto
        .decrypt(&sealed, &aad(kind, c.user_id.as_deref(), id_hash))
        .map_err(|_| MfaError::Corrupt)?;
    serde_json::from_slice(&json).map_err(|_| MfaError::Corrupt)
}

/// Stores a held ceremony again, unchanged: same handle, same state, same expiry (a retry
/// never extends it). A pending second step is not stored again when all its user's sessions
/// were ended since it was created (see `MfaStore::put_ceremony`).
pub async fn put_back<T>(p: &Provider, held: Held<T>) -> Result<(), MfaError> {
    p.store.put_ceremony(&held.id_hash, &held.row).await?;
    Ok(())
}
