//! `/admin/api/v1/users…`: the Users section's operations as JSON, each one call into
//! `admin::users` with the token's actor. Bodies and query strings are read here by hand, so a
//! malformed one is the API's JSON 400, never actix's own text answer.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiAdmin, ApiError, AppState};
use crate::admin::AdminError;
use crate::admin::paging;
use crate::admin::users::{self, Cursor, ListInput, NewUser, PageDirection, UserRules, UserSort};

/// The most a JSON body of this section may be.
const MAX_BODY: usize = 16 * 1024;

fn rules(state: &AppState) -> UserRules<'_> {
    UserRules::from_config(&state.config, &state.mailer)
}

fn flag(value: Option<&str>, name: &str) -> Result<bool, ApiError> {
    match value.map(str::trim) {
        None | Some("") | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(_) => Err(ApiError::BadRequest(format!(
            "{name} must be true or false"
        ))),
    }
}

fn body<T: serde::de::DeserializeOwned>(bytes: &web::Bytes) -> Result<T, ApiError> {
    if bytes.len() > MAX_BODY {
        return Err(ApiError::BadRequest("the body is too large".into()));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("the body is not the expected JSON: {e}")))
}

/// `GET /users?q=&sort=created|last_sign_in&disabled=&locked=&without_mfa=&cursor=&limit=`
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    q: Option<String>,
    sort: Option<String>,
    disabled: Option<String>,
    locked: Option<String>,
    without_mfa: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

pub async fn list(
    _: ApiAdmin,
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query = req.query_string();
    if crate::oauth::params::check_count(query).is_err() {
        return Err(ApiError::BadRequest("too many parameters".into()));
    }
    let q: ListQuery = serde_urlencoded::from_str(query)
        .map_err(|_| ApiError::BadRequest("the query string is malformed".into()))?;
    let (sort, list_name) = match q.sort.as_deref().map(str::trim) {
        None | Some("") | Some("created") => (UserSort::Created, "users:created"),
        Some("last_sign_in") => (UserSort::LastSignIn, "users:last_sign_in"),
        Some(_) => {
            return Err(ApiError::BadRequest(
                "sort must be created or last_sign_in".into(),
            ));
        }
    };
    let request: paging::PageRequest<(i64, String)> = paging::page_request(
        &state.provider,
        list_name,
        q.cursor.as_deref(),
        q.limit.as_deref(),
    )?;
    let input = ListInput {
        query: q.q.unwrap_or_default(),
        disabled: flag(q.disabled.as_deref(), "disabled")?,
        locked: flag(q.locked.as_deref(), "locked")?,
        without_mfa: flag(q.without_mfa.as_deref(), "without_mfa")?,
        sort,
        cursor: request.after.map(|(key, id)| Cursor {
            key,
            id,
            direction: PageDirection::After,
        }),
        limit: Some(request.limit.min(users::MAX_PAGE as usize) as i64),
    };
    let page = users::list(&state.provider, &rules(&state), &input).await?;
    let next_cursor = match &page.next {
        Some(c) => Some(paging::seal_cursor(
            &state.provider,
            list_name,
            &(c.key, c.id.clone()),
        )?),
        None => None,
    };
    Ok(HttpResponse::Ok().json(json!({
        "items": page.users,
        "next_cursor": next_cursor,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    email: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
}

/// `POST /users`: creates a user and mails them an invitation.
pub async fn create(
    api: ApiAdmin,
    state: web::Data<AppState>,
    bytes: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let b: CreateBody = body(&bytes)?;
    let new = NewUser {
        email: b.email,
        name: b.name,
        roles: b.roles,
    };
    let invited = users::invite(&state.provider, &api.actor, &rules(&state), &new).await?;
    let detail = users::show(&state.provider, &invited.user.id).await?;
    Ok(HttpResponse::Created().json(json!({
        "user": detail.user,
        "invitation_expires_at": invited.expires_at,
        "invitation_mailed": invited.mailed,
    })))
}

/// `GET /users/{id}`
pub async fn get(
    _: ApiAdmin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(users::show(&state.provider, &id).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    /// Absent: unchanged; `null` or "": removed; a string: set.
    #[serde(default)]
    name: Option<Value>,
    #[serde(default)]
    roles: Option<Vec<String>>,
}

/// `PATCH /users/{id}`: the name and/or the roles.
pub async fn patch(
    api: ApiAdmin,
    state: web::Data<AppState>,
    id: web::Path<String>,
    bytes: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let b: PatchBody = body(&bytes)?;
    let p = &state.provider;
    // Checked before anything changes, so a bad field changes nothing.
    let name = match &b.name {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(users::parse_name(Some(s))?),
        Some(_) => return Err(AdminError::Invalid("name must be a string or null".into()).into()),
    };
    if let Some(roles) = &b.roles {
        users::parse_roles(roles)?;
    }
    let user = users::find(p, &id).await?;
    if let Some(roles) = &b.roles {
        users::set_roles(p, &api.actor, &user.id, roles).await?;
    }
    if let Some(name) = name {
        users::set_name(p, &api.actor, &user.id, name.as_deref()).await?;
    }
    Ok(HttpResponse::Ok().json(users::show(p, &user.id).await?.user))
}

/// `POST /users/{id}/disable`
pub async fn disable(
    api: ApiAdmin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let ended = users::disable(&state.provider, &api.actor, &id).await?;
    Ok(HttpResponse::Ok().json(json!({ "disabled": true, "sessions_ended": ended })))
}

/// `POST /users/{id}/enable`
pub async fn enable(
    api: ApiAdmin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    users::enable(&state.provider, &api.actor, &id).await?;
    Ok(HttpResponse::Ok().json(json!({ "disabled": false })))
}

/// `POST /users/{id}/unlock`
pub async fn unlock(
    api: ApiAdmin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let was_locked = users::unlock(&state.provider, &api.actor, &id).await?;
    Ok(HttpResponse::Ok().json(json!({ "was_locked": was_locked })))
}

/// `POST /users/{id}/force-password-reset`
pub async fn force_password_reset(
    api: ApiAdmin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let done =
        users::force_password_reset(&state.provider, &api.actor, &rules(&state), &id).await?;
    Ok(HttpResponse::Ok().json(json!({
        "sessions_ended": done.sessions_ended,
        "reset_link_mailed": done.mailed,
    })))
}

/// `POST /users/{id}/reset-mfa`
pub async fn reset_mfa(
    api: ApiAdmin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let removed = users::reset_mfa(&state.provider, &api.actor, &id).await?;
    Ok(HttpResponse::Ok().json(json!({ "factors_removed": removed })))
}

/// `POST /users/{id}/sign-out-everywhere`
pub async fn sign_out_everywhere(
    api: ApiAdmin,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let ended = users::sign_out_everywhere(&state.provider, &api.actor, &id).await?;
    Ok(HttpResponse::Ok().json(json!({ "sessions_ended": ended })))
}
