//! Passkeys and security keys (WebAuthn Level 3, through webauthn-rs): adding one to a
//! signed-in account, signing in with a passkey alone (discoverable credentials, conditional
//! mediation), and a passkey or security key as the second step after a password.
//!
//! The relying-party id is the issuer's host and the only accepted origin is the issuer's
//! origin (WebAuthn §5.1.4.1 and §7.1 step 9), so `http://localhost:8080` in development.
//! User verification is required for every credential (a PIN or biometric on the
//! authenticator), which is why a passkey alone counts as multi-factor: `amr` is
//! `["hwk"|"swk", "user", "mfa"]`.
//!
//! Every ceremony's state (the challenge and what is expected back) lives on the server in
//! [`ceremony`] under a handle the browser keeps in a cookie: bound to that browser, taken
//! once, five minutes at most. The challenge is never trusted from the client.

use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{
    CreationChallengeResponse, CredentialID, DiscoverableAuthentication, Passkey,
    PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, Url, Uuid, Webauthn, WebauthnBuilder,
};

use super::ceremony::{self, CeremonyKind};
use super::level::with_mfa;
use super::second_step::{self, Browser, Completed, Keys, SecondStepError};
use super::{Amr, FactorName, MfaError};
use crate::audit::AuditEvent;
use crate::auth::session::{self, DeviceInfo, Room};
use crate::auth::signin::SignInRules;
use crate::auth::signin::SignedIn;
use crate::auth::throttle;
use crate::config::SessionLimitPolicy;
use crate::crypto::{random_id, sha256};
use crate::mail::{Mail, Mailer};
use crate::metrics::inc;
use crate::oauth::Provider;
use crate::secret::SecretString;
use crate::store::{
    FactorKind, MfaFactor, MfaStore, StepProof, StoreError, Transient, User, UserStore,
};

#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// No ceremony under this browser's handle: never begun, already finished (a replay),
    /// expired, or begun for another user or step.
    #[error("this request expired or was already used; try again")]
    CeremonyGone,
    /// The authenticator's answer did not verify, or names no usable credential. One answer
    /// for all, so a failure tells nothing about which.
    #[error("the passkey was not accepted")]
    Refused,
    /// The credential is already registered (to this account or another).
    #[error("this passkey or security key is already registered")]
    AlreadyRegistered,
    #[error("{0}")]
    InvalidName(&'static str),
    /// The issuer cannot be a relying party (an IP address, a malformed URL).
    #[error("WebAuthn is not available with this issuer: {0}")]
    Config(String),
    #[error("stored passkey data cannot be read")]
    Corrupt,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<MfaError> for PasskeyError {
    fn from(e: MfaError) -> Self {
        match e {
            MfaError::Store(e) => Self::Store(e),
            MfaError::InvalidName(m) => Self::InvalidName(m),
            MfaError::InvalidCode | MfaError::EnrolmentGone => Self::CeremonyGone,
            MfaError::Corrupt => Self::Corrupt,
        }
    }
}

impl Transient for PasskeyError {
    fn is_transient(&self) -> bool {
        matches!(self, Self::Store(e) if e.is_transient())
    }
}

/// What a new credential is for, as the user chose when adding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CredentialStyle {
    /// A discoverable credential that signs in alone (the authenticator keeps the account).
    Passkey,
    /// A key used only as the second step after a password (not discoverable).
    SecurityKey,
}

impl CredentialStyle {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "passkey" => Some(Self::Passkey),
            "security_key" => Some(Self::SecurityKey),
            _ => None,
        }
    }

    fn default_name(self) -> &'static str {
        match self {
            Self::Passkey => "Passkey",
            Self::SecurityKey => "Security key",
        }
    }
}

/// The relying party for `issuer`: its id is the issuer's host, its one origin the issuer's
/// origin. Browsers refuse an IP address as a relying-party id, hence `localhost` in
/// development.
pub fn relying_party(issuer: &str) -> Result<Webauthn, PasskeyError> {
    let url = Url::parse(issuer).map_err(|e| PasskeyError::Config(e.to_string()))?;
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_string(),
        _ => {
            return Err(PasskeyError::Config(
                "the issuer's host must be a name (e.g. localhost), not an IP address".into(),
            ));
        }
    };
    let origin = Url::parse(&url.origin().ascii_serialization())
        .map_err(|e| PasskeyError::Config(e.to_string()))?;
    WebauthnBuilder::new(&host, &origin)
        .and_then(|b| b.rp_name("Tessera").build())
        .map_err(|e| PasskeyError::Config(e.to_string()))
}

fn rp(p: &Provider) -> Result<Webauthn, PasskeyError> {
    relying_party(&p.settings.issuer)
}

/// The WebAuthn user handle of a user: 16 bytes derived from the (random, non-personal) user
/// id. Authenticators store it with a passkey and return it at sign-in; it identifies nobody
/// outside Tessera (WebAuthn §14.6.1).
pub fn user_handle(user_id: &str) -> Uuid {
    let digest = sha256(format!("tessera/v1/webauthn-user-handle\0{user_id}").as_bytes());
    let mut bytes = [0u8; 16];
    for (b, d) in bytes.iter_mut().zip(digest) {
        *b = d;
    }
    Uuid::from_bytes(bytes)
}

/// The user's WebAuthn credentials with their factor ids.
async fn credentials(
    p: &Provider,
    user_id: &str,
) -> Result<Vec<(MfaFactor, Passkey)>, PasskeyError> {
    let mut out = Vec::new();
    for f in p.store.list_factors(user_id).await? {
        if f.kind != FactorKind::WebAuthn {
            continue;
        }
        let passkey = parse_credential(&f)?;
        out.push((f, passkey));
    }
    Ok(out)
}

fn parse_credential(f: &MfaFactor) -> Result<Passkey, PasskeyError> {
    let json = f.credential.as_deref().ok_or(PasskeyError::Corrupt)?;
    serde_json::from_str(json).map_err(|_| PasskeyError::Corrupt)
}

/// The user's passkeys and security keys (no other kind of factor), oldest first.
pub async fn listed(p: &Provider, user_id: &str) -> Result<Vec<super::FactorInfo>, MfaError> {
    Ok(super::factors(p, user_id)
        .await?
        .into_iter()
        .filter(|f| f.kind == FactorKind::WebAuthn)
        .collect())
}

/// Options for the browser (`navigator.credentials.create/get`, as JSON) and the handle of the
/// server-side state (for a cookie).
#[derive(Debug)]
pub struct Begun {
    pub options: serde_json::Value,
    pub handle: SecretString,
}

#[derive(Serialize, Deserialize)]
struct RegistrationState {
    registration: PasskeyRegistration,
    style: CredentialStyle,
}

/// Starts adding a passkey or security key to `user` (already signed in, and re-authenticated
/// recently: the caller's rule). Credentials the user has are excluded, so one authenticator
/// is not registered twice.
pub async fn begin_registration(
    p: &Provider,
    user: &User,
    style: CredentialStyle,
) -> Result<Begun, PasskeyError> {
    let existing: Vec<CredentialID> = credentials(p, &user.id)
        .await?
        .iter()
        .map(|(_, k)| k.cred_id().clone())
        .collect();
    let display = user.name.as_deref().unwrap_or(&user.email);
    let (challenge, registration) = rp(p)?
        .start_passkey_registration(
            user_handle(&user.id),
            &user.email,
            display,
            Some(existing).filter(|e| !e.is_empty()),
        )
        .map_err(|e| PasskeyError::Config(e.to_string()))?;
    let options = creation_options(challenge, style)?;
    let state = RegistrationState {
        registration,
        style,
    };
    let handle = ceremony::begin(
        p,
        CeremonyKind::WebAuthnRegistration,
        Some(&user.id),
        &state,
    )
    .await?;
    Ok(Begun { options, handle })
}

/// webauthn-rs asks for a non-discoverable credential; a passkey must be discoverable (the
/// authenticator keeps the account, so sign-in needs no email), a security key need not be
/// (WebAuthn §5.4.6). Registration verification does not depend on this choice.
fn creation_options(
    challenge: CreationChallengeResponse,
    style: CredentialStyle,
) -> Result<serde_json::Value, PasskeyError> {
    let mut options = serde_json::to_value(challenge).map_err(|_| PasskeyError::Corrupt)?;
    let selection = options
        .get_mut("publicKey")
        .and_then(|pk| pk.get_mut("authenticatorSelection"))
        .and_then(|s| s.as_object_mut())
        .ok_or(PasskeyError::Corrupt)?;
    let (resident, required) = match style {
        CredentialStyle::Passkey => ("required", true),
        CredentialStyle::SecurityKey => ("discouraged", false),
    };
    selection.insert("residentKey".into(), resident.into());
    selection.insert("requireResidentKey".into(), required.into());
    Ok(options)
}

/// A credential just added.
#[derive(Debug, Clone)]
pub struct Registered {
    pub factor_id: String,
    pub name: String,
    pub style: CredentialStyle,
}

/// Finishes adding a credential: verifies the authenticator's answer against the state begun
/// for this browser and `user_id` (taken once), and stores the credential as a factor named
/// `name`.
pub async fn finish_registration(
    p: &Provider,
    user_id: &str,
    handle: &str,
    name: &str,
    response: &RegisterPublicKeyCredential,
) -> Result<Registered, PasskeyError> {
    let Some(taken) =
        ceremony::finish::<RegistrationState>(p, CeremonyKind::WebAuthnRegistration, handle)
            .await?
            .filter(|t| t.user_id.as_deref() == Some(user_id))
    else {
        return Err(PasskeyError::CeremonyGone);
    };
    let style = taken.state.style;
    let name = FactorName::parse(name, style.default_name())?;
    let passkey = rp(p)?
        .finish_passkey_registration(response, &taken.state.registration)
        .map_err(|e| {
            tracing::info!(error = %e, "a WebAuthn registration did not verify");
            PasskeyError::Refused
        })?;
    let now = p.now();
    let factor = MfaFactor {
        id: random_id(),
        user_id: user_id.to_string(),
        kind: FactorKind::WebAuthn,
        name: name.as_str().to_string(),
        created_at: now,
        last_used_at: None,
        secret_enc: None,
        last_step: None,
        credential_id: Some(passkey.cred_id().to_vec()),
        credential: Some(serde_json::to_string(&passkey).map_err(|_| PasskeyError::Corrupt)?),
        passwordless: style == CredentialStyle::Passkey,
    };
    match p.store.insert_factor(&factor).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => return Err(PasskeyError::AlreadyRegistered),
        Err(e) => return Err(e.into()),
    }
    Ok(Registered {
        factor_id: factor.id,
        name: factor.name,
        style,
    })
}

/// Who changes a factor, from where: for the audit trail, the notice and the other sessions.
pub struct Change<'a> {
    pub user: &'a User,
    /// The session making the change: it stays, the user's other sessions end.
    pub session_id: &'a str,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// [`finish_registration`] and what follows a new factor: the user's other sessions end, the
/// change is audited (`mfa.factor_added`) and a security notice is mailed.
pub async fn add_credential(
    p: &Provider,
    mailer: &Mailer,
    change: &Change<'_>,
    handle: &str,
    name: &str,
    response: &RegisterPublicKeyCredential,
) -> Result<Registered, PasskeyError> {
    let registered = finish_registration(p, &change.user.id, handle, name, response).await?;
    let ended = p
        .revoke_user_sessions(&change.user.id, Some(change.session_id))
        .await?;
    p.audit(
        AuditEvent::new("mfa.factor_added")
            .actor(&change.user.id)
            .subject(&change.user.id)
            .from_device(change.ip.clone(), change.user_agent.clone())
            .detail("factor", registered.factor_id.clone())
            .detail("kind", style_label(registered.style))
            .detail("other_sessions_ended", ended),
    )
    .await;
    notify(
        p,
        mailer,
        change.user,
        &format!(
            "A {} was added to your account",
            style_label(registered.style)
        ),
        &format!(
            "A {} named \"{}\" was added to your account {}, and your other devices were \
             signed out.",
            style_label(registered.style),
            registered.name,
            change.user.email
        ),
    );
    Ok(registered)
}

/// Removes one of the user's passkeys or security keys (never another kind of factor, never
/// another user's): the user's other sessions end, the change is audited
/// (`mfa.factor_removed`) and a security notice is mailed. False when there was none.
pub async fn remove_credential(
    p: &Provider,
    mailer: &Mailer,
    change: &Change<'_>,
    factor_id: &str,
) -> Result<bool, PasskeyError> {
    let Some(factor) = p
        .store
        .find_factor(&change.user.id, factor_id)
        .await?
        .filter(|f| f.kind == FactorKind::WebAuthn)
    else {
        return Ok(false);
    };
    if !p.store.remove_factor(&change.user.id, &factor.id).await? {
        return Ok(false);
    }
    let ended = p
        .revoke_user_sessions(&change.user.id, Some(change.session_id))
        .await?;
    let label = if factor.passwordless {
        style_label(CredentialStyle::Passkey)
    } else {
        style_label(CredentialStyle::SecurityKey)
    };
    p.audit(
        AuditEvent::new("mfa.factor_removed")
            .actor(&change.user.id)
            .subject(&change.user.id)
            .from_device(change.ip.clone(), change.user_agent.clone())
            .detail("factor", factor.id.clone())
            .detail("kind", label)
            .detail("other_sessions_ended", ended),
    )
    .await;
    notify(
        p,
        mailer,
        change.user,
        &format!("A {label} was removed from your account"),
        &format!(
            "The {label} named \"{}\" was removed from your account {}, and your other devices \
             were signed out. It can no longer be used to sign in.",
            factor.name, change.user.email
        ),
    );
    Ok(true)
}

fn style_label(style: CredentialStyle) -> &'static str {
    match style {
        CredentialStyle::Passkey => "passkey",
        CredentialStyle::SecurityKey => "security key",
    }
}

fn notify(p: &Provider, mailer: &Mailer, user: &User, subject: &str, what: &str) {
    mailer.send_later(Mail {
        to: user.email.clone(),
        subject: subject.to_string(),
        text: SecretString::new(format!(
            "{what}\n\nIf this was not you, reset your password at {}/password/forgot and \
             review your account's security at {}/account.\n",
            p.settings.issuer, p.settings.issuer
        )),
    });
}

fn request_options(challenge: RequestChallengeResponse) -> Result<serde_json::Value, PasskeyError> {
    serde_json::to_value(challenge).map_err(|_| PasskeyError::Corrupt)
}

/// Starts a passkey sign-in (the user is not known yet): a challenge for any discoverable
/// credential of this relying party. The options ask for conditional mediation (autofill);
/// the page's button uses the same options without it.
pub async fn begin_sign_in(p: &Provider) -> Result<Begun, PasskeyError> {
    let (challenge, state) = rp(p)?
        .start_discoverable_authentication()
        .map_err(|e| PasskeyError::Config(e.to_string()))?;
    let options = request_options(challenge)?;
    let handle = ceremony::begin(p, CeremonyKind::PasskeySignIn, None, &state).await?;
    Ok(Begun { options, handle })
}

/// Who a passkey or security key proved to be, and how.
#[derive(Debug, Clone)]
pub struct Asserted {
    pub user: User,
    pub factor_id: String,
    pub factor_name: String,
    /// `hwk` (device-bound) or `swk` (synced, backup-eligible), then `user` (verified).
    pub methods: Vec<Amr>,
}

/// Finishes a passkey sign-in: takes the state begun for this browser (once), finds the
/// passkey by its credential id, checks that the user handle the authenticator returned is
/// that passkey's user, verifies the signature with user verification, and records the use
/// (counter and backup state, last used). A security key registered for the second step only,
/// or a disabled account, is refused like a wrong signature.
pub async fn finish_sign_in(
    p: &Provider,
    handle: &str,
    response: &PublicKeyCredential,
) -> Result<Asserted, PasskeyError> {
    let Some(taken) =
        ceremony::finish::<DiscoverableAuthentication>(p, CeremonyKind::PasskeySignIn, handle)
            .await?
    else {
        return Err(PasskeyError::CeremonyGone);
    };
    let webauthn = rp(p)?;
    let (handle_uuid, credential_id) = webauthn
        .identify_discoverable_authentication(response)
        .map_err(|_| PasskeyError::Refused)?;
    let factor = p
        .store
        .find_factor_by_credential(credential_id)
        .await?
        .filter(|f| f.kind == FactorKind::WebAuthn && f.passwordless)
        .filter(|f| user_handle(&f.user_id) == handle_uuid)
        .ok_or(PasskeyError::Refused)?;
    let mut passkey = parse_credential(&factor)?;
    let result = webauthn
        .finish_discoverable_authentication_v2(response, taken.state, &passkey)
        .map_err(|e| {
            tracing::info!(error = %e, "a passkey sign-in did not verify");
            PasskeyError::Refused
        })?;
    let user = p
        .store
        .find_user(&factor.user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or(PasskeyError::Refused)?;
    record_use(p, &factor, &mut passkey, &result).await?;
    Ok(Asserted {
        user,
        factor_id: factor.id,
        factor_name: factor.name,
        methods: methods(&result),
    })
}

/// What a passkey sign-in needs beyond the authenticator's answer.
pub struct PasskeySignIn<'a> {
    /// The ceremony handle from this browser's cookie.
    pub handle: &'a str,
    pub response: &'a PublicKeyCredential,
    pub device: DeviceInfo,
    /// The session this browser holds now; it ends when the new one starts.
    pub previous_session: Option<String>,
    pub max_sessions: u32,
    pub session_policy: SessionLimitPolicy,
}

#[derive(Debug, thiserror::Error)]
pub enum PasskeySignInError {
    #[error(transparent)]
    Passkey(#[from] PasskeyError),
    #[error("too many sessions")]
    TooManySessions,
}

impl From<StoreError> for PasskeySignInError {
    fn from(e: StoreError) -> Self {
        Self::Passkey(e.into())
    }
}

impl Transient for PasskeySignInError {
    fn is_transient(&self) -> bool {
        matches!(self, Self::Passkey(e) if e.is_transient())
    }
}

/// Signs in with a passkey alone: [`finish_sign_in`], then a new session (the browser's old
/// one ends, the session limit applies as for a password) whose `amr` is the passkey's
/// methods plus `mfa` (`["hwk", "user", "mfa"]`: user verification makes it two factors).
/// Audited as `mfa.signed_in`; a refused answer as `mfa.challenge_failed`.
pub async fn sign_in_with_passkey(
    p: &Provider,
    r: PasskeySignIn<'_>,
) -> Result<SignedIn, PasskeySignInError> {
    let asserted = match finish_sign_in(p, r.handle, r.response).await {
        Ok(a) => a,
        Err(e) => {
            if matches!(e, PasskeyError::Refused) {
                inc(&p.metrics.signins_failed);
                p.audit(
                    AuditEvent::new("mfa.challenge_failed")
                        .from_device(r.device.ip.clone(), r.device.user_agent.clone())
                        .detail("method", "passkey")
                        .detail("step", "passwordless"),
                )
                .await;
            }
            return Err(e.into());
        }
    };
    let user = &asserted.user;
    let now = p.now();
    if let Some(old) = &r.previous_session {
        p.revoke_session(old).await?;
    }
    match session::make_room(p, user, r.max_sessions, r.session_policy, now).await? {
        Room::Available => {}
        Room::Evicted(ended) => {
            p.audit(
                AuditEvent::new("session.evicted")
                    .subject(&user.id)
                    .detail("sessions", ended),
            )
            .await;
        }
        Room::Refused => return Err(PasskeySignInError::TooManySessions),
    }
    let amr = with_mfa(&asserted.methods);
    let (ip, user_agent) = (r.device.ip.clone(), r.device.user_agent.clone());
    let (cookie_value, active) = session::start(p, user, amr.clone(), r.device, now).await?;
    inc(&p.metrics.signins_ok);
    tracing::info!(outcome = "success", user_id = %user.id, session_id = %active.session.id, "passkey sign-in");
    p.audit(
        AuditEvent::new("mfa.signed_in")
            .subject(&user.id)
            .from_device(ip, user_agent)
            .detail("session", active.session.id.clone())
            .detail("factor", asserted.factor_id.clone())
            .detail("amr", amr.join(" ")),
    )
    .await;
    Ok(SignedIn {
        cookie_value: cookie_value.into(),
        active,
    })
}

fn methods(result: &webauthn_rs::prelude::AuthenticationResult) -> Vec<Amr> {
    let key = if result.backup_eligible() {
        Amr::Swk
    } else {
        Amr::Hwk
    };
    if result.user_verified() {
        vec![key, Amr::User]
    } else {
        vec![key]
    }
}

/// Stores what the authenticator reported (signature counter, backup state: WebAuthn §7.2
/// steps 21-22; webauthn-rs refuses a counter that went backwards) and when it was used.
async fn record_use(
    p: &Provider,
    factor: &MfaFactor,
    passkey: &mut Passkey,
    result: &webauthn_rs::prelude::AuthenticationResult,
) -> Result<(), PasskeyError> {
    let updated = match passkey.update_credential(result) {
        Some(true) => Some(serde_json::to_string(&*passkey).map_err(|_| PasskeyError::Corrupt)?),
        _ => None,
    };
    p.store
        .touch_factor(&factor.user_id, &factor.id, updated.as_deref(), p.now())
        .await?;
    Ok(())
}

/// Starts a WebAuthn second step for `user_id` (whose password was right): a challenge for
/// any of the user's passkeys and security keys. `None` when the user has none.
pub async fn begin_second_step(p: &Provider, user_id: &str) -> Result<Option<Begun>, PasskeyError> {
    let keys: Vec<Passkey> = credentials(p, user_id)
        .await?
        .into_iter()
        .map(|(_, k)| k)
        .collect();
    if keys.is_empty() {
        return Ok(None);
    }
    let (challenge, state) = rp(p)?
        .start_passkey_authentication(&keys)
        .map_err(|e| PasskeyError::Config(e.to_string()))?;
    let options = request_options(challenge)?;
    let handle =
        ceremony::begin(p, CeremonyKind::WebAuthnSecondStep, Some(user_id), &state).await?;
    Ok(Some(Begun { options, handle }))
}

/// Finishes a WebAuthn second step for `user_id`: the state must have been begun for this
/// browser and this user; the credential must be one of theirs. Returns the methods to add to
/// the session's `amr` (`hwk`/`swk`, `user`).
pub async fn finish_second_step(
    p: &Provider,
    user_id: &str,
    handle: &str,
    response: &PublicKeyCredential,
) -> Result<Asserted, PasskeyError> {
    let Some(taken) =
        ceremony::finish::<PasskeyAuthentication>(p, CeremonyKind::WebAuthnSecondStep, handle)
            .await?
            .filter(|t| t.user_id.as_deref() == Some(user_id))
    else {
        return Err(PasskeyError::CeremonyGone);
    };
    let factor = p
        .store
        .find_factor_by_credential(response.get_credential_id())
        .await?
        .filter(|f| f.kind == FactorKind::WebAuthn && f.user_id == user_id)
        .ok_or(PasskeyError::Refused)?;
    let mut passkey = parse_credential(&factor)?;
    let result = rp(p)?
        .finish_passkey_authentication(response, &taken.state)
        .map_err(|e| {
            tracing::info!(error = %e, "a WebAuthn second step did not verify");
            PasskeyError::Refused
        })?;
    if result.cred_id() != passkey.cred_id() {
        return Err(PasskeyError::Refused);
    }
    let user = p
        .store
        .find_user(user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or(PasskeyError::Refused)?;
    record_use(p, &factor, &mut passkey, &result).await?;
    Ok(Asserted {
        user,
        factor_id: factor.id,
        factor_name: factor.name,
        methods: methods(&result),
    })
}

/// Why a security key did not complete the second step (the pending step stays, unchanged).
#[derive(Debug, thiserror::Error)]
pub enum KeyStepError {
    #[error(transparent)]
    Step(#[from] SecondStepError),
    /// The key's answer did not verify, or is no key of this user: a failure on the second
    /// step's throttle, like a wrong code.
    #[error("the security key was not accepted")]
    Refused,
    /// The key's own ceremony (not the pending step) expired or was used: begin it again.
    #[error("the security key request expired")]
    Expired,
}

impl From<StoreError> for KeyStepError {
    fn from(e: StoreError) -> Self {
        Self::Step(e.into())
    }
}

impl From<MfaError> for KeyStepError {
    fn from(e: MfaError) -> Self {
        Self::Step(e.into())
    }
}

impl Transient for KeyStepError {
    fn is_transient(&self) -> bool {
        matches!(self, Self::Step(e) if e.is_transient())
    }
}

/// Begins the key ceremony of a pending second step: the step is looked at (read, left as
/// it is), and a challenge for the user's keys is begun. `None` when the browser
/// has no pending step or the user no key.
pub async fn begin_key_step(
    p: &Provider,
    second_step_handle: &str,
) -> Result<Option<Begun>, KeyStepError> {
    let Some(pending) = second_step::live_pending(p, second_step_handle).await? else {
        return Ok(None);
    };
    begin_second_step(p, &pending.user_id)
        .await
        .map_err(|e| match e {
            PasskeyError::Store(e) => e.into(),
            other => KeyStepError::Step(SecondStepError::Internal(other.to_string())),
        })
}

/// Completes a pending second step with a security key or passkey: the step is looked at
/// while the key's answer is checked, then taken in the transaction of
/// [`second_step::finish`]. A refused key counts on the second step's own throttle keys like a
/// wrong code and leaves the step pending; a locked user's keys are not checked. On success
/// the session opens (or is raised) with `amr` e.g. `["pwd", "hwk", "mfa"]`.
pub async fn complete_second_step_with_key(
    p: &Provider,
    rules: &SignInRules<'_>,
    browser: Browser,
    key_handle: &str,
    response: &PublicKeyCredential,
) -> Result<Completed, KeyStepError> {
    let Some(pending) = second_step::pending(p, &browser.handle).await? else {
        return Err(SecondStepError::Gone.into());
    };
    let user_id = pending.user_id.clone();
    let keys = Keys::new(&user_id, browser.ip_key.as_deref());
    let attempt = keys.attempt();
    second_step::admit(p, rules, &pending, &attempt, &browser).await?;
    let asserted = match finish_second_step(p, &user_id, key_handle, response).await {
        Ok(a) => a,
        Err(PasskeyError::Refused) => {
            let reason = "security_key_refused";
            second_step::refuse_answer(p, rules, &pending, &attempt, &browser, reason).await?;
            return Err(KeyStepError::Refused);
        }
        Err(PasskeyError::CeremonyGone) => {
            // The step itself may be the one that is gone: say that, as the code path does.
            if second_step::surely_gone(p, &pending).await {
                return Err(SecondStepError::Gone.into());
            }
            return Err(KeyStepError::Expired);
        }
        Err(e) => {
            return Err(match e {
                PasskeyError::Store(e) => e.into(),
                other => SecondStepError::Internal(other.to_string()).into(),
            });
        }
    };
    let key = asserted.methods.first().copied().unwrap_or(Amr::Hwk);
    let completed = second_step::finish(
        p,
        rules,
        pending,
        StepProof::Verified,
        key,
        "security_key",
        &browser,
    )
    .await?;
    throttle::succeeded(&p.fleet, &attempt).await;
    Ok(completed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::mfa::ceremony::CEREMONY_TTL;
    use crate::testkit::Kit;

    #[test]
    fn the_relying_party_is_the_issuer_host_and_origin() {
        let rp = relying_party("http://localhost:8080").unwrap();
        let origins: Vec<String> = rp
            .get_allowed_origins()
            .iter()
            .map(|u| u.to_string())
            .collect();
        assert_eq!(origins, vec!["http://localhost:8080/".to_string()]);
        assert!(relying_party("https://id.example.com/tenant").is_ok());
    }

    #[test]
    fn an_ip_address_cannot_be_a_relying_party() {
        assert!(matches!(
            relying_party("http://127.0.0.1:8080"),
            Err(PasskeyError::Config(_))
        ));
    }

    /// An assertion shaped like an authenticator's, signed by nobody.
    fn forged_assertion() -> PublicKeyCredential {
        serde_json::from_value(serde_json::json!({
            "id": "AAAAAAAAAAAAAAAAAAAAAA",
            "rawId": "AAAAAAAAAAAAAAAAAAAAAA",
            "type": "public-key",
            "response": {
                "authenticatorData": "AAAA",
                "clientDataJSON": "AAAA",
                "signature": "AAAA",
                "userHandle": null
            },
            "extensions": {}
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn a_passkey_sign_in_answered_within_five_minutes_reaches_the_check_of_the_answer() {
        let kit = Kit::new().await;
        let begun = begin_sign_in(&kit.p).await.unwrap();
        kit.advance(CEREMONY_TTL - 1);
        let result = finish_sign_in(&kit.p, begun.handle.expose(), &forged_assertion()).await;
        assert!(matches!(result, Err(PasskeyError::Refused)), "{result:?}");
    }

    #[tokio::test]
    async fn a_passkey_sign_in_answered_after_five_minutes_has_expired() {
        let kit = Kit::new().await;
        let begun = begin_sign_in(&kit.p).await.unwrap();
        kit.advance(CEREMONY_TTL);
        let result = finish_sign_in(&kit.p, begun.handle.expose(), &forged_assertion()).await;
        assert!(
            matches!(result, Err(PasskeyError::CeremonyGone)),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_ceremony_is_used_up_by_its_first_answer_even_a_wrong_one() {
        let kit = Kit::new().await;
        let begun = begin_sign_in(&kit.p).await.unwrap();
        let handle = begun.handle.expose();
        let first = finish_sign_in(&kit.p, handle, &forged_assertion()).await;
        assert!(matches!(first, Err(PasskeyError::Refused)), "{first:?}");
        let replay = finish_sign_in(&kit.p, handle, &forged_assertion()).await;
        assert!(
            matches!(replay, Err(PasskeyError::CeremonyGone)),
            "{replay:?}"
        );
    }

    #[tokio::test]
    async fn a_ceremony_begun_for_a_passkey_sign_in_is_no_second_step() {
        let kit = Kit::new().await;
        let ann = kit.user("ann@example.com").await;
        // Ann has no key: there is no second step by key to begin.
        assert!(begin_second_step(&kit.p, &ann.id).await.unwrap().is_none());
        let begun = begin_sign_in(&kit.p).await.unwrap();
        let result =
            finish_second_step(&kit.p, &ann.id, begun.handle.expose(), &forged_assertion()).await;
        assert!(
            matches!(result, Err(PasskeyError::CeremonyGone)),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn registration_options_ask_passkeys_to_be_discoverable_and_security_keys_not() {
        let kit = Kit::new().await;
        let ann = kit.user("ann@example.com").await;
        for (style, resident) in [
            (CredentialStyle::Passkey, "required"),
            (CredentialStyle::SecurityKey, "discouraged"),
        ] {
            let begun = begin_registration(&kit.p, &ann, style).await.unwrap();
            let selection = &begun.options["publicKey"]["authenticatorSelection"];
            assert_eq!(selection["residentKey"], resident);
            assert_eq!(selection["userVerification"], "required");
            assert_eq!(begun.options["publicKey"]["rp"]["id"], "id.example.test");
        }
    }

    #[test]
    fn a_user_handle_is_stable_and_differs_between_users() {
        assert_eq!(user_handle("u1"), user_handle("u1"));
        assert_ne!(user_handle("u1"), user_handle("u2"));
    }
}
