//! The API's clients, sessions, keys and audit endpoints: the console's operations as JSON,
//! through the same engine functions (`admin::{clients, sessions, keys, audit_log}`).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::{ApiAdmin, ApiError};
use crate::admin::clients::{self, ClientSettings, SecretChoice};
use crate::admin::sessions::{self, Query};
use crate::admin::{audit_log, keys};
use crate::http::AppState;
use crate::keys::rotation::Rotated;
use crate::store::AuditFilter;

fn limit(text: Option<&str>) -> Result<i64, ApiError> {
    match text {
        None => Ok(crate::admin::paging::DEFAULT_LIMIT as i64),
        Some(t) => t
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=crate::admin::paging::MAX_LIMIT as i64).contains(n))
            .ok_or_else(|| ApiError::BadRequest("limit must be between 1 and 200".into())),
    }
}

/// GET /clients
pub async fn list_clients(
    _: ApiAdmin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let items = clients::list(&state.provider).await?;
    Ok(HttpResponse::Ok().json(json!({ "items": items, "next_cursor": null })))
}

/// A client's settings in JSON; on PATCH, what is absent stays.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientBody {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    public: Option<bool>,
    #[serde(default)]
    redirect_uris: Option<Vec<String>>,
    #[serde(default)]
    post_logout_redirect_uris: Option<Vec<String>>,
    #[serde(default)]
    grants: Option<Vec<String>>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    audiences: Option<Vec<String>>,
    #[serde(default)]
    first_party: Option<bool>,
    #[serde(default)]
    require_mfa: Option<bool>,
    /// On PATCH, an empty string removes it.
    #[serde(default)]
    backchannel_logout_uri: Option<String>,
}

fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.len() > 64 * 1024 {
        return Err(ApiError::BadRequest("the body is too large".into()));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("the body is not the expected JSON: {e}")))
}

/// POST /clients: registers a client; a confidential one's generated secret is in the answer,
/// once.
pub async fn create_client(
    admin: ApiAdmin,
    state: web::Data<AppState>,
    bytes: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let b: ClientBody = body(&bytes)?;
    let Some(id) = b.id else {
        return Err(ApiError::BadRequest("id is required".into()));
    };
    let public = b.public.unwrap_or(false);
    let settings = ClientSettings {
        redirect_uris: b.redirect_uris.unwrap_or_default(),
        post_logout_redirect_uris: b.post_logout_redirect_uris.unwrap_or_default(),
        grants: b.grants.unwrap_or_default(),
        scopes: b.scopes.unwrap_or_default(),
        audiences: b.audiences.unwrap_or_default(),
        first_party: b.first_party.unwrap_or(false),
        require_mfa: b.require_mfa.unwrap_or(false),
        backchannel_logout_uri: b.backchannel_logout_uri,
    };
    let secret = if public {
        SecretChoice::Public
    } else {
        SecretChoice::Generate
    };
    let created = clients::create(&state.provider, &admin.actor, &id, secret, settings).await?;
    Ok(HttpResponse::Created().json(json!({
        "client": created.client,
        "client_secret": created.secret.as_ref().map(|s| s.expose().to_string()),
    })))
}

/// GET /clients/{id}
pub async fn get_client(
    _: ApiAdmin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(clients::show(&state.provider, &id).await?))
}

/// PATCH /clients/{id}: the settings given replace the current ones.
pub async fn update_client(
    admin: ApiAdmin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    bytes: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let b: ClientBody = body(&bytes)?;
    if b.id.is_some() || b.public.is_some() {
        return Err(ApiError::BadRequest(
            "a client's id and kind cannot change".into(),
        ));
    }
    let now = clients::show(&state.provider, &id).await?;
    let settings = ClientSettings {
        redirect_uris: b.redirect_uris.unwrap_or(now.redirect_uris),
        post_logout_redirect_uris: b
            .post_logout_redirect_uris
            .unwrap_or(now.post_logout_redirect_uris),
        grants: b.grants.unwrap_or(now.grants),
        scopes: b.scopes.unwrap_or(now.scopes),
        audiences: b.audiences.unwrap_or(now.audiences),
        first_party: b.first_party.unwrap_or(now.first_party),
        require_mfa: b.require_mfa.unwrap_or(now.require_mfa),
        backchannel_logout_uri: b.backchannel_logout_uri.or(now.backchannel_logout_uri),
    };
    let updated = clients::update(&state.provider, &admin.actor, &id, settings).await?;
    Ok(HttpResponse::Ok().json(updated))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    #[serde(default)]
    overlap_seconds: Option<i64>,
}

/// POST /clients/{id}/rotate-secret
pub async fn rotate_client_secret(
    admin: ApiAdmin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    bytes: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let b: RotateBody = if bytes.is_empty() {
        RotateBody::default()
    } else {
        body(&bytes)?
    };
    let overlap = b.overlap_seconds.unwrap_or_else(|| {
        i64::try_from(state.config.client_secret_overlap.as_secs())
            .unwrap_or(clients::DEFAULT_SECRET_OVERLAP)
    });
    let r = clients::rotate_secret(&state.provider, &admin.actor, &id, overlap).await?;
    Ok(HttpResponse::Ok().json(json!({
        "client_secret": r.secret.expose(),
        "previous_secret_valid_until": r.previous_valid_until,
    })))
}

/// POST /clients/{id}/disable
pub async fn disable_client(
    admin: ApiAdmin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let revoked = clients::disable(&state.provider, &admin.actor, &id).await?;
    Ok(HttpResponse::Ok().json(json!({ "disabled": true, "refresh_tokens_revoked": revoked })))
}

/// POST /clients/{id}/enable
pub async fn enable_client(
    admin: ApiAdmin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    clients::enable(&state.provider, &admin.actor, &id).await?;
    Ok(HttpResponse::Ok().json(json!({ "disabled": false })))
}

#[derive(Debug, Default, Deserialize)]
pub struct SessionsQuery {
    #[serde(default)]
    user: String,
    #[serde(default)]
    ip: String,
    #[serde(default)]
    client: String,
    cursor: Option<String>,
    limit: Option<String>,
}

/// GET /sessions
pub async fn list_sessions(
    _: ApiAdmin,
    state: web::Data<AppState>,
    q: web::Query<SessionsQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = Query {
        user: q.user.clone(),
        ip: q.ip.clone(),
        client: q.client.clone(),
    };
    let limit = limit(q.limit.as_deref())?;
    let page = sessions::list(&state.provider, &query, q.cursor.as_deref(), limit).await?;
    Ok(HttpResponse::Ok().json(json!({ "items": page.sessions, "next_cursor": page.next })))
}

/// POST /sessions/{id}/revoke
pub async fn revoke_session(
    admin: ApiAdmin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    sessions::revoke(&state.provider, &admin.actor, &id).await?;
    Ok(HttpResponse::Ok().json(json!({ "ended": 1 })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    ids: Vec<String>,
}

/// POST /sessions/revoke: a selection, `{"ids": [...]}`.
pub async fn revoke_sessions(
    admin: ApiAdmin,
    state: web::Data<AppState>,
    bytes: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let b: RevokeBody = body(&bytes)?;
    let ended = sessions::revoke_many(&state.provider, &admin.actor, &b.ids).await?;
    Ok(HttpResponse::Ok().json(json!({ "ended": ended })))
}

/// GET /keys
pub async fn list_keys(_: ApiAdmin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let policy = crate::startup::rotation_policy(&state.config);
    let items = keys::list(&state.provider, &policy).await?;
    Ok(HttpResponse::Ok().json(json!({ "items": items, "next_cursor": null })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRotateBody {
    #[serde(default)]
    emergency: bool,
    /// For an emergency: the console's phrase, typed.
    #[serde(default)]
    confirmation: String,
}

/// POST /keys/rotate: `{"emergency": true, "confirmation": "withdraw every key"}` for an
/// emergency rotation.
pub async fn rotate_keys(
    admin: ApiAdmin,
    state: web::Data<AppState>,
    bytes: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let b: KeyRotateBody = if bytes.is_empty() {
        KeyRotateBody::default()
    } else {
        body(&bytes)?
    };
    if b.emergency && b.confirmation != crate::http::admin::EMERGENCY_PHRASE {
        return Err(ApiError::BadRequest(format!(
            "an emergency rotation needs \"confirmation\": \"{}\"",
            crate::http::admin::EMERGENCY_PHRASE
        )));
    }
    let policy = crate::startup::rotation_policy(&state.config);
    let answer = match keys::rotate(&state.provider, &admin.actor, &policy, b.emergency).await? {
        Rotated::Scheduled { kid, activate_at } => {
            json!({ "outcome": "scheduled", "kid": kid, "activate_at": activate_at })
        }
        Rotated::AlreadyPending { kid, activate_at } => {
            json!({ "outcome": "already_pending", "kid": kid, "activate_at": activate_at })
        }
        Rotated::Emergency { kid, withdrawn } => {
            json!({ "outcome": "emergency", "kid": kid, "withdrawn": withdrawn })
        }
    };
    Ok(HttpResponse::Ok().json(answer))
}

#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    action: String,
    since: Option<i64>,
    until: Option<i64>,
    cursor: Option<String>,
    limit: Option<String>,
}

/// GET /audit: newest first; `next_cursor` is the sequence number to continue before.
pub async fn search_audit(
    _: ApiAdmin,
    state: web::Data<AppState>,
    q: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let before = match q.cursor.as_deref() {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| ApiError::BadRequest("that cursor is not valid".into()))?,
        ),
    };
    let filter = AuditFilter {
        actor: q.actor.clone(),
        subject: q.subject.clone(),
        action: q.action.clone(),
        since: q.since,
        until: q.until,
    };
    let limit = limit(q.limit.as_deref())?;
    let page = audit_log::search(&state.provider, &filter, before, limit).await?;
    Ok(HttpResponse::Ok().json(json!({
        "items": page.entries,
        "next_cursor": page.next_before.map(|b| b.to_string()),
    })))
}

/// POST /audit/verify
pub async fn verify_audit(
    _: ApiAdmin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(
        HttpResponse::Ok().json(match audit_log::verify(&state.provider, &[]).await? {
            audit_log::Verdict::Intact { entries, head } => {
                json!({ "intact": true, "entries": entries, "head_pin": head })
            }
            audit_log::Verdict::Broken(problem) => json!({ "intact": false, "problem": problem }),
        }),
    )
}
