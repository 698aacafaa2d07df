//! The admin JSON API (`/admin/api/v1/…`): the console's operations for automation.
//!
//! - Every endpoint is one line of [`ENDPOINTS`]; [`routes`] registers that table and the
//!   OpenAPI test checks it against `docs/admin-api/openapi.json` (served at `openapi.json`),
//!   both ways, so neither can drift.
//! - A handler takes an [`ApiAdmin`]: the bearer token checked by `admin::access::api_actor`
//!   (a Tessera access token with `tessera:admin`), giving the [`Actor`] for the audit log.
//! - Errors are [`ApiError`]: one JSON shape, `{"error", "error_description"}`, mapped once
//!   (from `AdminError` too).
//! - Lists page with cursors: [`Paging`] reads `cursor` and `limit`, [`page_json`] answers
//!   `{"items": [...], "next_cursor": ...}` (`admin::paging`).
//! - Outside `admin_allowed_networks` every path is a 404; every answer is `no-store`.

mod error;
mod operations;
mod users;

use std::future::Future;
use std::pin::Pin;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use serde::{Deserialize, Serialize};

pub use self::error::ApiError;
use super::AppState;
use crate::admin::Actor;
use crate::admin::paging::{self, Page, PageRequest};

/// Where the API lives.
pub const PREFIX: &str = "/admin/api/v1";

/// The OpenAPI 3.1 document of this API, kept in the repository.
pub const OPENAPI: &str = include_str!("../../../docs/admin-api/openapi.json");

/// One endpoint: its method, its path under [`PREFIX`] (as OpenAPI writes it, `{id}` for a
/// parameter, which actix reads the same way), and its handler.
pub struct Endpoint {
    pub method: Method,
    pub path: &'static str,
    pub handler: fn(actix_web::Route) -> actix_web::Route,
}

/// Every endpoint of the API. A section adds its lines here and its paths to the OpenAPI file.
pub const ENDPOINTS: &[Endpoint] = &[
    Endpoint {
        method: Method::GET,
        path: "/openapi.json",
        handler: |r| r.to(openapi),
    },
    Endpoint {
        method: Method::GET,
        path: "/overview",
        handler: |r| r.to(overview),
    },
    Endpoint {
        method: Method::GET,
        path: "/clients",
        handler: |r| r.to(operations::list_clients),
    },
    Endpoint {
        method: Method::POST,
        path: "/clients",
        handler: |r| r.to(operations::create_client),
    },
    Endpoint {
        method: Method::GET,
        path: "/clients/{id}",
        handler: |r| r.to(operations::get_client),
    },
    Endpoint {
        method: Method::PATCH,
        path: "/clients/{id}",
        handler: |r| r.to(operations::update_client),
    },
    Endpoint {
        method: Method::POST,
        path: "/clients/{id}/rotate-secret",
        handler: |r| r.to(operations::rotate_client_secret),
    },
    Endpoint {
        method: Method::POST,
        path: "/clients/{id}/disable",
        handler: |r| r.to(operations::disable_client),
    },
    Endpoint {
        method: Method::POST,
        path: "/clients/{id}/enable",
        handler: |r| r.to(operations::enable_client),
    },
    Endpoint {
        method: Method::GET,
        path: "/sessions",
        handler: |r| r.to(operations::list_sessions),
    },
    Endpoint {
        method: Method::POST,
        path: "/sessions/revoke",
        handler: |r| r.to(operations::revoke_sessions),
    },
    Endpoint {
        method: Method::POST,
        path: "/sessions/{id}/revoke",
        handler: |r| r.to(operations::revoke_session),
    },
    Endpoint {
        method: Method::GET,
        path: "/keys",
        handler: |r| r.to(operations::list_keys),
    },
    Endpoint {
        method: Method::POST,
        path: "/keys/rotate",
        handler: |r| r.to(operations::rotate_keys),
    },
    Endpoint {
        method: Method::GET,
        path: "/audit",
        handler: |r| r.to(operations::search_audit),
    },
    Endpoint {
        method: Method::POST,
        path: "/audit/verify",
        handler: |r| r.to(operations::verify_audit),
    },
    Endpoint {
        method: Method::GET,
        path: "/users",
        handler: |r| r.to(users::list),
    },
    Endpoint {
        method: Method::POST,
        path: "/users",
        handler: |r| r.to(users::create),
    },
    Endpoint {
        method: Method::GET,
        path: "/users/{id}",
        handler: |r| r.to(users::get),
    },
    Endpoint {
        method: Method::PATCH,
        path: "/users/{id}",
        handler: |r| r.to(users::patch),
    },
    Endpoint {
        method: Method::POST,
        path: "/users/{id}/disable",
        handler: |r| r.to(users::disable),
    },
    Endpoint {
        method: Method::POST,
        path: "/users/{id}/enable",
        handler: |r| r.to(users::enable),
    },
    Endpoint {
        method: Method::POST,
        path: "/users/{id}/unlock",
        handler: |r| r.to(users::unlock),
    },
    Endpoint {
        method: Method::POST,
        path: "/users/{id}/force-password-reset",
        handler: |r| r.to(users::force_password_reset),
    },
    Endpoint {
        method: Method::POST,
        path: "/users/{id}/reset-mfa",
        handler: |r| r.to(users::reset_mfa),
    },
    Endpoint {
        method: Method::POST,
        path: "/users/{id}/sign-out-everywhere",
        handler: |r| r.to(users::sign_out_everywhere),
    },
];

/// Registers the API's scope.
pub fn routes(cfg: &mut web::ServiceConfig) {
    // actix's own extractors (query strings, JSON bodies) answer in the API's error shape too.
    let query = web::QueryConfig::default()
        .error_handler(|e, _| ApiError::BadRequest(format!("the query is malformed: {e}")).into());
    let json = web::JsonConfig::default()
        .limit(super::MAX_BODY)
        .error_handler(|e, _| ApiError::BadRequest(format!("the body is malformed: {e}")).into());
    let mut scope = web::scope(PREFIX)
        .app_data(query)
        .app_data(json)
        .wrap(actix_web::middleware::from_fn(api_frame));
    for e in ENDPOINTS {
        scope = scope.route(e.path, (e.handler)(web::route().method(e.method.clone())));
    }
    cfg.service(scope.default_service(web::to(no_such_endpoint)));
}

async fn no_such_endpoint() -> HttpResponse {
    ApiError::NoSuchEndpoint.error_response()
}

/// Hides the API outside the allowed networks (the same JSON 404 as an unknown path) and
/// makes every answer `no-store`.
async fn api_frame(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if !super::admin::from_allowed_network(req.request()) {
        let res = ApiError::NoSuchEndpoint.error_response();
        return Ok(req.into_response(res).map_into_right_body());
    }
    let mut res = next.call(req).await?;
    super::admin::never_cached(res.headers_mut());
    Ok(res.map_into_left_body())
}

/// The caller of an API request, admitted by its bearer token.
pub struct ApiAdmin {
    pub actor: Actor,
}

fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequest for ApiAdmin {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let Some(state) = req.app_data::<web::Data<AppState>>() else {
                return Err(ApiError::Internal);
            };
            if !super::admin::from_allowed_network(&req) {
                return Err(ApiError::NoSuchEndpoint);
            }
            let actor = crate::admin::access::api_actor(&state.provider, bearer(&req)).await?;
            Ok(ApiAdmin { actor })
        })
    }
}

/// `?cursor=…&limit=…` of a list endpoint.
#[derive(Debug, Default, Deserialize)]
pub struct Paging {
    pub cursor: Option<String>,
    pub limit: Option<String>,
}

impl Paging {
    /// The page request for the list named `list` (a bad cursor or limit is a 400).
    pub fn request<K: serde::de::DeserializeOwned>(
        &self,
        state: &AppState,
        list: &str,
    ) -> Result<PageRequest<K>, ApiError> {
        Ok(paging::page_request(
            &state.provider,
            list,
            self.cursor.as_deref(),
            self.limit.as_deref(),
        )?)
    }
}

/// A page as JSON: `{"items": [...], "next_cursor": "…" or null}`.
pub fn page_json<T: Serialize, K: Serialize>(
    state: &AppState,
    list: &str,
    page: &Page<T, K>,
) -> Result<HttpResponse, ApiError> {
    let next_cursor = match &page.next {
        Some(k) => Some(paging::seal_cursor(&state.provider, list, k)?),
        None => None,
    };
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "items": page.items,
        "next_cursor": next_cursor,
    })))
}

/// GET /admin/api/v1/openapi.json
async fn openapi(_: ApiAdmin) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI)
}

/// GET /admin/api/v1/overview
async fn overview(_: ApiAdmin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let settings = super::admin::overview_settings(&state);
    let o = crate::admin::overview::overview(&state.provider, settings).await?;
    Ok(HttpResponse::Ok().json(o))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn documented() -> BTreeSet<(String, String)> {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..4]), Some("3.1."));
        let servers = doc["servers"].as_array().unwrap();
        assert!(
            servers.iter().any(|s| s["url"] == PREFIX),
            "servers names {PREFIX}"
        );
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                    out.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn every_endpoint_is_in_the_openapi_document_and_every_documented_one_is_routed() {
        let routed: BTreeSet<(String, String)> = ENDPOINTS
            .iter()
            .map(|e| (e.method.as_str().to_string(), e.path.to_string()))
            .collect();
        assert_eq!(routed.len(), ENDPOINTS.len(), "no endpoint listed twice");
        let documented = documented();
        let missing: Vec<_> = routed.difference(&documented).collect();
        assert!(missing.is_empty(), "routed but not documented: {missing:?}");
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            unrouted.is_empty(),
            "documented but not routed: {unrouted:?}"
        );
    }

    #[test]
    fn every_documented_operation_names_its_errors_and_needs_the_admin_scope() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for status in ["401", "403"] {
                    assert!(
                        op["responses"].get(status).is_some(),
                        "{method} {path} documents {status}"
                    );
                }
                assert!(
                    op["operationId"].is_string(),
                    "{method} {path} has an operationId"
                );
            }
        }
        assert_eq!(
            doc["security"][0]["bearer"][0],
            crate::admin::access::ADMIN_SCOPE
        );
    }
}
