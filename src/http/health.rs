//! Liveness, readiness and the embedded static assets.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

use super::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// Ready when the database (and Redis, when configured) answers.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if let Err(e) = state.provider.store.ping().await {
        tracing::warn!(error = %e, "readiness check failed: database");
        return HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("database unavailable");
    }
    if let Err(e) = state.provider.fleet.ping().await {
        tracing::warn!(error = %e, "readiness check failed: redis");
        return HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("redis unavailable");
    }
    HttpResponse::Ok().content_type("text/plain").body("ready")
}

/// Prometheus text exposition of the counters in `crate::metrics`.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let p = &state.provider;
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(p.metrics.render(p.fleet.revocations_in_memory()))
}

const CSS: &str = include_str!("../../static/tessera.css");

pub async fn static_file(path: web::Path<String>) -> HttpResponse {
    match path.as_str() {
        "tessera.css" => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .content_type("text/css; charset=utf-8")
            .body(CSS),
        _ => super::errors::not_found().await,
    }
}
