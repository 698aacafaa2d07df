//! Operator actions on clients (the relying parties and services): register, list, show,
//! edit, rotate a secret with an overlap, disable and enable. The console, the API and
//! `tessera client …` all call these.

use serde::Serialize;

use super::{Actor, AdminError};
use crate::audit::AuditEvent;
use crate::clock::Timestamp;
use crate::crypto::random_token;
use crate::oauth::Provider;
use crate::oauth::client_id::ClientId;
use crate::secret::{Secret, SecretString};
use crate::store::{Client, ClientStore, StoreError};

/// The grants a client may be registered for.
pub const GRANTS: &[&str] = &["authorization_code", "refresh_token", "client_credentials"];
/// A secret chosen by the operator must be at least this long (a generated one has 256 bits).
pub const MIN_CLIENT_SECRET_CHARS: usize = 32;
/// The scopes a client gets when none are named.
pub const DEFAULT_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];
/// The scope of Tessera's own admin API: for confidential clients only.
pub use super::access::ADMIN_SCOPE;
/// How long a rotated secret's predecessor stays valid unless the operator says otherwise.
pub const DEFAULT_SECRET_OVERLAP: i64 = 24 * 3600;
/// The longest overlap an operator may ask for (a rotation is meant to end the old secret).
pub const MAX_SECRET_OVERLAP: i64 = 30 * 24 * 3600;

/// What an operator sets on a client; empty lists take the defaults on registration.
#[derive(Debug, Clone, Default)]
pub struct ClientSettings {
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grants: Vec<String>,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub first_party: bool,
    pub require_mfa: bool,
    /// OpenID Connect Back-Channel Logout: where the client hears that a session ended.
    pub backchannel_logout_uri: Option<String>,
}

/// How a new client authenticates.
#[derive(Debug)]
pub enum SecretChoice {
    /// A browser or native app: no secret, PKCE protects its codes.
    Public,
    /// A secret the operator chose (at least [`MIN_CLIENT_SECRET_CHARS`] characters).
    Given(SecretString),
    /// A 256-bit secret generated here and shown once.
    Generate,
}

/// A client as operators see it: everything but the secrets.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ClientView {
    pub id: String,
    pub public: bool,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grants: Vec<String>,
    pub scopes: Vec<String>,
    pub audiences: Vec<String>,
    pub first_party: bool,
    pub require_mfa: bool,
    pub backchannel_logout_uri: Option<String>,
    pub created_at: Timestamp,
    pub disabled_at: Option<Timestamp>,
    /// Until when the secret before the last rotation is still accepted (only while it is).
    pub previous_secret_valid_until: Option<Timestamp>,
}

impl ClientView {
    fn of(c: &Client, now: Timestamp) -> Self {
        Self {
            id: c.id.clone(),
            public: c.secret_hash.is_none(),
            redirect_uris: c.redirect_uris.clone(),
            post_logout_redirect_uris: c.post_logout_redirect_uris.clone(),
            grants: c.grant_types.clone(),
            scopes: c.scopes.clone(),
            audiences: c.audiences.clone(),
            first_party: c.first_party,
            require_mfa: c.require_mfa,
            backchannel_logout_uri: c.backchannel_logout_uri.clone(),
            created_at: c.created_at,
            disabled_at: c.disabled_at,
            previous_secret_valid_until: c
                .previous_secret_hash
                .as_ref()
                .and(c.previous_secret_expires_at)
                .filter(|until| *until > now),
        }
    }
}

/// A registration's result: the client, and the generated secret to show once.
#[derive(Debug)]
pub struct Created {
    pub client: ClientView,
    pub secret: Option<SecretString>,
}

/// A rotation's result: the new secret (shown once) and the old one's end.
#[derive(Debug)]
pub struct Rotated {
    pub secret: SecretString,
    pub previous_valid_until: Timestamp,
}

/// Redirect URIs (and post-logout ones): absolute, no fragment; https, or http only on
/// loopback (development and native apps, RFC 8252 §7.3), or a private-use scheme with a dot
/// (RFC 8252 §7.1). Compared later by exact string match. The message names the URI.
pub fn check_redirect_uri(uri: &str) -> Result<(), AdminError> {
    let bad = |why: &str| AdminError::Invalid(format!("redirect URI `{uri}`: {why}"));
    if uri.len() > 2000 {
        return Err(bad("longer than 2000 characters"));
    }
    let url = url::Url::parse(uri).map_err(|_| bad("not an absolute URI"))?;
    if url.fragment().is_some() {
        return Err(bad("must not contain a fragment"));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" => match url.host_str() {
            Some("localhost" | "127.0.0.1" | "[::1]") => Ok(()),
            _ => Err(bad("http is only allowed for localhost; use https")),
        },
        s if s.contains('.') => Ok(()),
        _ => Err(bad("unsupported scheme")),
    }
}

/// A back-channel logout URI (OpenID Connect Back-Channel Logout 1.0 §2.2): absolute, no
/// fragment, `https`, or `http` only while the issuer itself is `http` (development): a logout
/// token is a bearer statement about a user's session and must not cross a network in clear.
pub fn check_backchannel_logout_uri(uri: &str, https_issuer: bool) -> Result<(), AdminError> {
    let bad = |why: &str| AdminError::Invalid(format!("back-channel logout URI `{uri}`: {why}"));
    if uri.len() > 2000 {
        return Err(bad("longer than 2000 characters"));
    }
    let url = url::Url::parse(uri).map_err(|_| bad("not an absolute URI"))?;
    if url.fragment().is_some() {
        return Err(bad("must not contain a fragment"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if !https_issuer => Ok(()),
        "http" => Err(bad("must use https (the issuer is https)")),
        _ => Err(bad("must be an https URI")),
    }
}

/// An audience (RFC 8707 resource): an absolute URI without a fragment.
fn check_audience(aud: &str) -> Result<(), AdminError> {
    let bad = || {
        AdminError::Invalid(format!(
            "audience `{aud}`: not an absolute URI without a fragment"
        ))
    };
    match url::Url::parse(aud) {
        Ok(u) if u.fragment().is_none() && aud.len() <= 2000 => Ok(()),
        _ => Err(bad()),
    }
}

fn dedup(items: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for i in items.into_iter().map(|s| s.trim().to_string()) {
        if !i.is_empty() && !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// Checks settings for a public or confidential client and fills in the defaults (grants:
/// authorization_code + refresh_token; scopes: [`DEFAULT_SCOPES`]).
/// `https_issuer`: the issuer is `https` (a back-channel logout URI must then be too).
pub fn validate(
    settings: ClientSettings,
    public: bool,
    https_issuer: bool,
) -> Result<ClientSettings, AdminError> {
    let mut grants = dedup(settings.grants);
    if grants.is_empty() {
        grants = vec!["authorization_code".into(), "refresh_token".into()];
    }
    if let Some(g) = grants.iter().find(|g| !GRANTS.contains(&g.as_str())) {
        return Err(AdminError::Invalid(format!(
            "unknown grant `{g}` (use {})",
            GRANTS.join(", ")
        )));
    }
    let has = |g: &str| grants.iter().any(|x| x == g);
    if public && has("client_credentials") {
        return Err(AdminError::Invalid(
            "a public client cannot use client_credentials".into(),
        ));
    }
    let redirect_uris = dedup(settings.redirect_uris);
    if has("authorization_code") && redirect_uris.is_empty() {
        return Err(AdminError::Invalid(
            "the authorization_code grant needs at least one redirect URI".into(),
        ));
    }
    let post_logout_redirect_uris = dedup(settings.post_logout_redirect_uris);
    for uri in redirect_uris.iter().chain(&post_logout_redirect_uris) {
        check_redirect_uri(uri)?;
    }
    let scopes = if settings.scopes.iter().all(|s| s.trim().is_empty()) {
        DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect()
    } else {
        crate::oauth::scope::parse(&settings.scopes.join(" "))
            .map_err(|_| AdminError::Invalid("malformed scope".into()))?
    };
    if public && scopes.iter().any(|s| s == ADMIN_SCOPE) {
        return Err(AdminError::Invalid(format!(
            "a public client cannot hold the {ADMIN_SCOPE} scope"
        )));
    }
    let audiences = dedup(settings.audiences);
    for aud in &audiences {
        check_audience(aud)?;
    }
    let backchannel_logout_uri = settings
        .backchannel_logout_uri
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty());
    if let Some(uri) = &backchannel_logout_uri {
        check_backchannel_logout_uri(uri, https_issuer)?;
    }
    Ok(ClientSettings {
        redirect_uris,
        post_logout_redirect_uris,
        grants,
        scopes,
        audiences,
        first_party: settings.first_party,
        require_mfa: settings.require_mfa,
        backchannel_logout_uri,
    })
}

fn https_issuer(p: &Provider) -> bool {
    p.settings.issuer.starts_with("https://")
}

async fn find(p: &Provider, id: &str) -> Result<Client, AdminError> {
    p.store
        .find_client(id)
        .await?
        .ok_or(AdminError::NotFound("client"))
}

/// Registers a client.
pub async fn create(
    p: &Provider,
    actor: &Actor,
    id: &str,
    secret: SecretChoice,
    settings: ClientSettings,
) -> Result<Created, AdminError> {
    let id = ClientId::parse(id).map_err(|_| {
        AdminError::Invalid("a client id is 1-128 characters of A-Z a-z 0-9 - . _ :".into())
    })?;
    let public = matches!(secret, SecretChoice::Public);
    let settings = validate(settings, public, https_issuer(p))?;
    let (secret, shown) = match secret {
        SecretChoice::Public => (None, None),
        SecretChoice::Given(s) => {
            if s.expose().chars().count() < MIN_CLIENT_SECRET_CHARS {
                return Err(AdminError::Invalid(format!(
                    "a client secret must have at least {MIN_CLIENT_SECRET_CHARS} characters"
                )));
            }
            (Some(s), None)
        }
        SecretChoice::Generate => {
            let s = random_token();
            (
                Some(SecretString::new(s.clone())),
                Some(SecretString::new(s)),
            )
        }
    };
    let client = Client {
        id: id.to_string(),
        secret_hash: secret
            .as_ref()
            .map(|s| Secret::wrap(p.crypto.token_hash(s.expose()))),
        redirect_uris: settings.redirect_uris,
        post_logout_redirect_uris: settings.post_logout_redirect_uris,
        grant_types: settings.grants,
        scopes: settings.scopes,
        audiences: settings.audiences,
        first_party: settings.first_party,
        require_mfa: settings.require_mfa,
        created_at: p.now(),
        disabled_at: None,
        previous_secret_hash: None,
        previous_secret_expires_at: None,
        backchannel_logout_uri: settings.backchannel_logout_uri,
    };
    match p.store.insert_client(&client).await {
        Err(StoreError::Conflict) => return Err(AdminError::Conflict(format!("client {id}"))),
        other => other?,
    }
    p.audit(
        AuditEvent::new("client.created")
            .actor(actor.audit_name())
            .subject(id.as_str())
            .detail("grants", client.grant_types.clone())
            .detail("public", client.secret_hash.is_none())
            .detail("first_party", client.first_party)
            .detail("require_mfa", client.require_mfa)
            .detail(
                "backchannel_logout_uri",
                client.backchannel_logout_uri.clone().unwrap_or_default(),
            ),
    )
    .await;
    Ok(Created {
        client: ClientView::of(&client, p.now()),
        secret: shown,
    })
}

/// Every client, by id.
pub async fn list(p: &Provider) -> Result<Vec<ClientView>, AdminError> {
    let now = p.now();
    Ok(p.store
        .list_clients()
        .await?
        .iter()
        .map(|c| ClientView::of(c, now))
        .collect())
}

/// One client.
pub async fn show(p: &Provider, id: &str) -> Result<ClientView, AdminError> {
    Ok(ClientView::of(&find(p, id).await?, p.now()))
}

/// Replaces a client's settings (what [`ClientSettings`] holds); a public client stays public
/// and a confidential one confidential.
pub async fn update(
    p: &Provider,
    actor: &Actor,
    id: &str,
    settings: ClientSettings,
) -> Result<ClientView, AdminError> {
    let mut client = find(p, id).await?;
    let settings = validate(settings, client.secret_hash.is_none(), https_issuer(p))?;
    client.redirect_uris = settings.redirect_uris;
    client.post_logout_redirect_uris = settings.post_logout_redirect_uris;
    client.grant_types = settings.grants;
    client.scopes = settings.scopes;
    client.audiences = settings.audiences;
    client.first_party = settings.first_party;
    client.require_mfa = settings.require_mfa;
    client.backchannel_logout_uri = settings.backchannel_logout_uri;
    if !p.store.update_client(&client).await? {
        return Err(AdminError::NotFound("client"));
    }
    p.client_changed(id).await?;
    p.audit(
        AuditEvent::new("client.updated")
            .actor(actor.audit_name())
            .subject(id)
            .detail("redirect_uris", client.redirect_uris.clone())
            .detail("grants", client.grant_types.clone())
            .detail("scopes", client.scopes.clone())
            .detail("audiences", client.audiences.clone())
            .detail("first_party", client.first_party)
            .detail("require_mfa", client.require_mfa)
            .detail(
                "backchannel_logout_uri",
                client.backchannel_logout_uri.clone().unwrap_or_default(),
            ),
    )
    .await;
    Ok(ClientView::of(&client, p.now()))
}

/// Gives a confidential client a new generated secret; the current one stays valid for
/// `overlap` seconds (0 ends it now) so services can roll without downtime. A rotation during
/// an overlap ends the older secret at once: only the last two are ever valid.
pub async fn rotate_secret(
    p: &Provider,
    actor: &Actor,
    id: &str,
    overlap: i64,
) -> Result<Rotated, AdminError> {
    if !(0..=MAX_SECRET_OVERLAP).contains(&overlap) {
        return Err(AdminError::Invalid(format!(
            "the overlap must be between 0 and {} days",
            MAX_SECRET_OVERLAP / 86400
        )));
    }
    let client = find(p, id).await?;
    if client.secret_hash.is_none() {
        return Err(AdminError::Invalid(
            "a public client has no secret to rotate".into(),
        ));
    }
    let secret = random_token();
    let until = p.now() + overlap;
    if !p
        .store
        .rotate_client_secret(id, &p.crypto.token_hash(&secret), until)
        .await?
    {
        return Err(AdminError::NotFound("client"));
    }
    p.client_changed(id).await?;
    p.audit(
        AuditEvent::new("client.secret_rotated")
            .actor(actor.audit_name())
            .subject(id)
            .detail("previous_valid_until", until),
    )
    .await;
    Ok(Rotated {
        secret: SecretString::new(secret),
        previous_valid_until: until,
    })
}

/// Disables a client: no more tokens, its refresh tokens revoked, its access tokens inactive on
/// introspection at once. Returns how many refresh tokens were revoked.
pub async fn disable(p: &Provider, actor: &Actor, id: &str) -> Result<u64, AdminError> {
    // No early return for a client already disabled: a disable that failed half-way (its
    // revocation not written) is completed by trying again.
    let revoked = p
        .disable_client(id)
        .await?
        .ok_or(AdminError::NotFound("client"))?;
    p.audit(
        AuditEvent::new("client.disabled")
            .actor(actor.audit_name())
            .subject(id)
            .detail("refresh_tokens_revoked", revoked),
    )
    .await;
    Ok(revoked)
}

/// Enables a disabled client; the tokens it had before stay revoked.
pub async fn enable(p: &Provider, actor: &Actor, id: &str) -> Result<(), AdminError> {
    let client = find(p, id).await?;
    if client.disabled_at.is_none() {
        return Ok(());
    }
    if !p.enable_client(id).await? {
        return Err(AdminError::NotFound("client"));
    }
    p.audit(
        AuditEvent::new("client.enabled")
            .actor(actor.audit_name())
            .subject(id),
    )
    .await;
    Ok(())
}

#[cfg(test)]
mod tests;
