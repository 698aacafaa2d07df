//! The machine-facing endpoints: token, revocation, introspection, userinfo, discovery, JWKS.

use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use futures_util::StreamExt;

use super::errors::OAuthJson;
use super::{AppState, MAX_BODY};
use crate::oauth::{
    OAuthError, grants, introspect as introspection, params, revoke as revocation,
    userinfo as user_info,
};

/// Reads a bounded `application/x-www-form-urlencoded` body as text: at most [`MAX_BODY`] bytes
/// and [`params::MAX_PARAMS`] parameters. Serves the protocol endpoints and every page's form.
pub async fn form_body(req: &HttpRequest, mut payload: web::Payload) -> Result<String, OAuthError> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(OAuthError::InvalidRequest(
            "the body must be application/x-www-form-urlencoded".into(),
        ));
    }
    let mut body = web::BytesMut::new();
    let mut separators = 0;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|_| OAuthError::InvalidRequest("the request body could not be read".into()))?;
        if body.len() + chunk.len() > MAX_BODY {
            return Err(OAuthError::InvalidRequest(
                "the request body is too large".into(),
            ));
        }
        // The parameter cap, checked as the body arrives and before anything is decoded.
        separators += params::separators(&chunk);
        if separators >= params::MAX_PARAMS {
            return Err(params::too_many());
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body.to_vec())
        .map_err(|_| OAuthError::InvalidRequest("the request body is not UTF-8".into()))
}

fn authorization(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
}

fn no_store_json(body: impl serde::Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body)
}

pub async fn token(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthJson> {
    let body = form_body(&req, payload).await?;
    if let Some(grant) = url::form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "grant_type")
        .and_then(|(_, v)| crate::metrics::token_grant(&v))
    {
        req.extensions_mut().insert(super::TimedGrant(grant));
    }
    let ip = super::client_addr::client_addr(&req).map(|a| a.limit_key());
    let response =
        grants::exchange(&state.provider, authorization(&req), &body, ip.as_deref()).await?;
    Ok(no_store_json(response))
}

pub async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthJson> {
    let body = form_body(&req, payload).await?;
    revocation::revoke(&state.provider, authorization(&req), &body).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

pub async fn introspect(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthJson> {
    let body = form_body(&req, payload).await?;
    let answer = introspection::introspect(&state.provider, authorization(&req), &body).await?;
    Ok(no_store_json(answer))
}

/// RFC 6750 §2.1: the bearer token from the Authorization header.
pub(crate) fn bearer(req: &HttpRequest) -> Result<&str, OAuthError> {
    let missing = || OAuthError::InvalidToken("a bearer access token is required".into());
    let value = authorization(req).ok_or_else(missing)?;
    let (scheme, token) = value.split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(missing());
    }
    Ok(token.trim())
}

pub async fn userinfo(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, OAuthJson> {
    let token = bearer(&req)?;
    let claims = user_info::userinfo(&state.provider, token).await?;
    Ok(no_store_json(claims))
}

pub async fn discovery(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .content_type("application/json")
        .body(state.discovery.clone())
}

/// The JWKS, from memory, with `ETag` and a max-age shorter than the key publish lead.
pub async fn jwks(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let keys = state.provider.keys();
    let cache = format!("public, max-age={}", state.jwks_max_age);
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == keys.etag()));
    let mut res = if matches {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::ETAG, keys.etag().to_string()));
    if matches {
        return res.finish();
    }
    res.content_type("application/jwk-set+json")
        .body(keys.jwks().to_string())
}
