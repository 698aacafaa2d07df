//! The revocation feed's adapters (`crate::oauth::feed`): `GET /ssf/events` and the SSF
//! transmitter metadata.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::AppState;
use super::errors::OAuthJson;
use super::protocol::bearer;
use crate::oauth::feed;

/// One page of SETs for the client whose token authenticates the request. A page that is not
/// the tail never changes for its cursor, so it may be cached a little longer.
pub async fn events(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, OAuthJson> {
    let p = &state.provider;
    let client_id = feed::reader(p, Some(bearer(&req)?)).await?;
    let page = feed::poll(p, &client_id, req.query_string()).await?;
    let cache = if page.more_available {
        "private, max-age=10"
    } else {
        "private, max-age=1"
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::VARY, "Authorization"))
        .json(page.body))
}

pub async fn configuration(state: web::Data<AppState>) -> HttpResponse {
    let p = &state.provider;
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .json(feed::metadata(&p.settings.issuer, feed::retention(p)))
}
