//! Liveness, readiness and the embedded static assets.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::AppState;
use crate::oauth::NotReady;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// Ready when the database (and Redis, when configured) answers.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let unavailable = match state.provider.ready().await {
        Ok(()) => return HttpResponse::Ok().content_type("text/plain").body("ready"),
        Err(e @ NotReady::Database(_)) => {
            tracing::warn!(error = %e, "readiness check failed: database");
            "database unavailable"
        }
        Err(e @ NotReady::Redis(_)) => {
            tracing::warn!(error = %e, "readiness check failed: redis");
            "redis unavailable"
        }
    };
    HttpResponse::ServiceUnavailable()
        .content_type("text/plain")
        .body(unavailable)
}

/// `/metrics` on the public listener: not there (404) unless `metrics_token` is set, and then
/// only to that bearer token. Operators who prefer a private address use `metrics_listen`.
pub async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if state.config.metrics_token.is_none() {
        return super::errors::not_found().await;
    }
    metrics_private(req, state).await
}

/// `/metrics` on `metrics_listen`: to anyone who reaches that address, or to the bearer token
/// when one is set.
pub async fn metrics_private(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(token) = &state.config.metrics_token {
        let given = super::protocol::bearer(&req).unwrap_or("");
        if !crate::crypto::ct_eq(given.as_bytes(), token.as_str().as_bytes()) {
            return HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"metrics\""))
                .content_type("text/plain")
                .body("a bearer token is required (setting `metrics_token`)");
        }
    }
    let p = &state.provider;
    let mut body = p.metrics.render(p.fleet.revocations_in_memory());
    match p.backchannel_pending().await {
        Ok(n) => body.push_str(&crate::metrics::Metrics::render_backchannel_pending(n)),
        Err(e) => tracing::warn!(error = %e, "could not count back-channel logouts"),
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(body)
}

const CSS: &str = include_str!("../../static/tessera.css");
const PASSKEY_JS: &str = include_str!("../../static/passkey.js");
const ADMIN_CSS: &str = include_str!("../../static/admin.css");

pub async fn static_file(path: web::Path<String>) -> HttpResponse {
    match path.as_str() {
        "tessera.css" => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .content_type("text/css; charset=utf-8")
            .body(CSS),
        "admin.css" => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .content_type("text/css; charset=utf-8")
            .body(ADMIN_CSS),
        "passkey.js" => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .content_type("text/javascript; charset=utf-8")
            .body(PASSKEY_JS),
        _ => super::errors::not_found().await,
    }
}
