//! The admin console's frame (`/admin`): one scope whose every response is `no-store`, hidden
//! (404) outside `admin_allowed_networks`, and whose pages take an [`Admin`] (or an
//! [`AdminForm`]) argument: the gate of `admin::access` runs in the extractor, so a handler
//! cannot forget it. A POST is also refused (403) when the browser says it came from another
//! site (`Sec-Fetch-Site`, `Origin`), before its CSRF token is even read.
//!
//! A section adds a module here, its routes in [`routes`], a template extending
//! `templates/admin/layout.html` with an [`AdminFrame`] in its view; see
//! `/work/briefs/admin-core-guide.md` (and docs/DESIGN.md, "Admin console").

mod audit;
mod clients;
pub mod confirm;
mod overview;
mod reauth;
mod sessions;
mod users;

pub(crate) use audit::EMERGENCY_PHRASE;

pub(crate) use overview::settings as overview_settings;

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};

use super::AppState;
use super::browser::{CsrfForm, checked_form, see_other};
use super::client_addr::AllowedNetworks;
use super::cookies::{self, Csrf};
use super::errors::{failure_page, page};
use crate::admin::Actor;
use crate::admin::access::{self, Verdict};
use crate::auth::session::ActiveSession;

/// Registers the console (after the API's scope, which is more specific).
pub fn routes(cfg: &mut web::ServiceConfig) {
    let scope = web::scope("/admin")
        .route("", web::get().to(overview::page))
        .route("/", web::get().to(overview::page))
        .route("/reauth", web::post().to(reauth::confirm_password))
        .route("/lock", web::get().to(lock_page))
        .route("/lock", web::post().to(lock));
    let scope = audit::routes(sessions::routes(clients::routes(users::routes(scope))));
    cfg.service(
        scope
            .wrap(actix_web::middleware::from_fn(console_frame))
            .default_service(web::to(super::errors::not_found)),
    );
}

/// Whether the request's client address may reach the console and the API.
pub(crate) fn from_allowed_network(req: &HttpRequest) -> bool {
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return false;
    };
    let ip = super::client_addr::client_addr(req).map(|a| a.ip());
    network_allowed(&state.config.admin_allowed_networks, ip)
}

/// Whether a client at `ip` may reach the console and the API: anywhere when `networks` is
/// empty, otherwise only from inside one of them (an unknown address never).
fn network_allowed(networks: &AllowedNetworks, ip: Option<IpAddr>) -> bool {
    networks.is_empty() || ip.is_some_and(|ip| networks.contains(ip))
}

/// `Cache-Control: no-store` and `Pragma: no-cache` on a response (admin pages and API).
pub(crate) fn never_cached(headers: &mut actix_web::http::header::HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// Wraps the console: outside the allowed networks every path is the ordinary 404; every
/// response is never cached.
async fn console_frame(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if !from_allowed_network(req.request()) {
        let res = super::errors::not_found().await;
        return Ok(req.into_response(res).map_into_right_body());
    }
    let mut res = next.call(req).await?;
    never_cached(res.headers_mut());
    Ok(res.map_into_left_body())
}

/// The issuer's origin (`scheme://host[:port]`), which every console POST must come from.
fn issuer_origin(issuer: &str) -> &str {
    match issuer.find("://") {
        Some(i) => match issuer[i + 3..].find('/') {
            Some(j) => &issuer[..i + 3 + j],
            None => issuer,
        },
        None => issuer,
    }
}

/// Whether a state-changing request may have come from another site.
///
/// `Sec-Fetch-Site` (Fetch Metadata, set by the browser and not by pages) decides when
/// present: anything but `same-origin` (or `none`: typed by the person) is refused. It must
/// win over `Origin`: under this site's `Referrer-Policy: no-referrer` a browser sends
/// `Origin: null` with its own same-origin form posts (Fetch, "serializing a request origin"),
/// so `Origin` alone would refuse every console form of a real browser. Without
/// `Sec-Fetch-Site`, an `Origin` other than the issuer's (`null` included) is refused. A
/// browser that sends neither still needs the CSRF token.
pub(crate) fn cross_site(req: &HttpRequest, issuer: &str) -> bool {
    let headers = req.headers();
    if let Some(site) = headers.get("sec-fetch-site") {
        return !matches!(site.to_str(), Ok("same-origin" | "none"));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        return origin.to_str().ok() != Some(issuer_origin(issuer));
    }
    false
}

fn cross_site_refused() -> HttpResponse {
    page(
        StatusCode::FORBIDDEN,
        "Please try again",
        "This form was not sent from this site. Go back, reload the page and try again.",
    )
}

/// A signed-in admin allowed in by the gate: who they are (the audit log's actor) and their
/// session. Taking it as a handler argument is what puts a page behind the gate.
pub struct Admin {
    pub actor: Actor,
    pub active: ActiveSession,
}

impl Admin {
    /// The frame every console page shows (nav, the admin, sign-out), with the CSRF token of
    /// this browser; `section` is the nav entry to mark as current.
    pub fn frame(
        &self,
        state: &AppState,
        req: &HttpRequest,
        section: Section,
    ) -> (AdminFrame, Csrf) {
        let csrf = cookies::csrf(&state.provider, req, state.secure_cookies());
        let frame = AdminFrame {
            email: self.active.user.email.clone(),
            csrf_token: csrf.token.clone(),
            section,
        };
        (frame, csrf)
    }
}

/// The console's sections, in nav order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Users,
    Sessions,
    Clients,
    Keys,
    Audit,
}

impl Section {
    pub const ALL: [Section; 6] = [
        Section::Overview,
        Section::Users,
        Section::Sessions,
        Section::Clients,
        Section::Keys,
        Section::Audit,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Section::Overview => "Overview",
            Section::Users => "Users",
            Section::Sessions => "Sessions",
            Section::Clients => "Clients",
            Section::Keys => "Keys",
            Section::Audit => "Audit",
        }
    }

    pub fn href(self) -> &'static str {
        match self {
            Section::Overview => "/admin",
            Section::Users => "/admin/users",
            Section::Sessions => "/admin/sessions",
            Section::Clients => "/admin/clients",
            Section::Keys => "/admin/keys",
            Section::Audit => "/admin/audit",
        }
    }
}

/// What `templates/admin/layout.html` needs: every console view holds one as `frame`.
pub struct AdminFrame {
    pub email: String,
    pub csrf_token: String,
    pub section: Section,
}

impl AdminFrame {
    pub fn sections(&self) -> [Section; 6] {
        Section::ALL
    }

    pub fn is_current(&self, s: &Section) -> bool {
        *s == self.section
    }
}

/// The gate for one request: the admin, or the answer to give instead (sign-in, the
/// re-authentication page, the 404 page, or the 403 of a cross-site POST).
async fn gate(req: &HttpRequest) -> Result<Admin, HttpResponse> {
    let Some(state) = req.app_data::<web::Data<AppState>>() else {
        return Err(super::errors::server_error_page());
    };
    if !from_allowed_network(req) {
        return Err(super::errors::not_found().await);
    }
    if req.method() != Method::GET
        && req.method() != Method::HEAD
        && cross_site(req, &state.config.issuer)
    {
        return Err(cross_site_refused());
    }
    let active = super::browser::current_session(state, req).await?;
    let idle = idle_timeout(state);
    match access::console(&state.provider, active.as_ref(), idle).await {
        Verdict::Allowed(actor) => match active {
            Some(active) => Ok(Admin { actor, active }),
            None => Err(super::errors::server_error_page()),
        },
        Verdict::SignIn => Err(to_sign_in(state)),
        Verdict::Hidden => Err(super::errors::not_found().await),
        Verdict::Reauth => match active {
            Some(active) => Err(reauth::page(state, req, &active, StatusCode::OK, None).await),
            None => Err(to_sign_in(state)),
        },
    }
}

fn then_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-tessera_then_admin"
    } else {
        "tessera_then_admin"
    }
}

fn then_cookie(secure: bool, max_age: i64) -> actix_web::cookie::Cookie<'static> {
    let mut c = actix_web::cookie::Cookie::build(then_cookie_name(secure), "1")
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(actix_web::cookie::SameSite::Lax)
        .finish();
    c.set_max_age(actix_web::cookie::time::Duration::seconds(max_age));
    c
}

/// To the sign-in page, remembering (in a short-lived cookie holding no address, so never an
/// open redirect) to come back to the console afterwards.
fn to_sign_in(state: &AppState) -> HttpResponse {
    let mut res = see_other("/login");
    if res
        .add_cookie(&then_cookie(state.secure_cookies(), 900))
        .is_err()
    {
        return super::errors::server_error_page();
    }
    res
}

/// Where a plain sign-in (no authorization request) lands: the console when the console sent
/// the browser to sign in, otherwise the account page.
pub(crate) fn after_sign_in(state: &AppState, req: &HttpRequest) -> HttpResponse {
    let secure = state.secure_cookies();
    if req.cookie(then_cookie_name(secure)).is_none() {
        return see_other("/account");
    }
    let mut res = see_other("/admin");
    if res.add_cookie(&then_cookie(secure, 0)).is_err() {
        return super::errors::server_error_page();
    }
    res
}

pub(crate) fn idle_timeout(state: &AppState) -> i64 {
    i64::try_from(state.config.admin_idle_timeout.as_secs()).unwrap_or(access::DEFAULT_IDLE_TIMEOUT)
}

fn answer(res: HttpResponse) -> actix_web::Error {
    InternalError::from_response("admin console", res).into()
}

impl FromRequest for Admin {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { gate(&req).await.map_err(answer) })
    }
}

/// A console form: the gate (with the cross-site check) first, then the form read and its
/// CSRF token checked (`browser::checked_form`: a 403 page when missing or wrong).
pub struct AdminForm<T> {
    pub admin: Admin,
    pub form: T,
}

impl<T: CsrfForm + 'static> FromRequest for AdminForm<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let body = web::Payload::from_request(&req, payload);
        Box::pin(async move {
            let admin = gate(&req).await.map_err(answer)?;
            let body = body.await?;
            let Some(state) = req.app_data::<web::Data<AppState>>() else {
                return Err(answer(super::errors::server_error_page()));
            };
            let form = checked_form::<T>(state, &req, body).await.map_err(answer)?;
            Ok(AdminForm { admin, form })
        })
    }
}

/// GET /admin/lock: "Lock the console?" (the confirmation every console action goes through).
async fn lock_page(admin: Admin, state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    confirm::render(
        &state,
        &req,
        &admin,
        Section::Overview,
        confirm::Confirm {
            title: "Lock the console?".into(),
            message: "You stay signed in to your account; the console will ask for your password \
                      and second factor before it opens again."
                .into(),
            action: "/admin/lock".into(),
            fields: vec![],
            button: "Lock".into(),
            cancel: "/admin".into(),
        },
    )
}

/// POST /admin/lock: closes this session's console window now.
async fn lock(f: AdminForm<confirm::CsrfOnly>, state: web::Data<AppState>) -> HttpResponse {
    access::lock(&state.provider, &f.admin.actor, &f.admin.active).await;
    see_other("/account")
}

/// The page for an operator action that failed on our side (logged by the caller's engine).
pub(crate) fn admin_failure(e: &crate::admin::AdminError) -> HttpResponse {
    use crate::admin::AdminError;
    match e {
        AdminError::NotFound(what) => page(
            StatusCode::NOT_FOUND,
            "Not found",
            &format!("That {what} does not exist (any more)."),
        ),
        AdminError::Invalid(message) => page(StatusCode::BAD_REQUEST, "Not done", message),
        AdminError::Conflict(what) => page(
            StatusCode::CONFLICT,
            "Not done",
            &format!("{what} already exists."),
        ),
        AdminError::Store(e) => {
            tracing::error!(error = %e, "admin action failed");
            failure_page(e)
        }
        AdminError::Keys(e) => {
            tracing::error!(error = %e, "admin action on keys failed");
            super::errors::server_error_page()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_networks_empty_means_anywhere_and_an_unknown_address_is_never_inside() {
        let any = AllowedNetworks::default();
        assert!(network_allowed(&any, Some("203.0.113.9".parse().unwrap())));
        assert!(network_allowed(&any, None));
        let office = AllowedNetworks::parse("10.0.0.0/8, 2001:db8::/32").unwrap();
        assert!(network_allowed(&office, Some("10.9.8.7".parse().unwrap())));
        assert!(network_allowed(
            &office,
            Some("2001:db8::1".parse().unwrap())
        ));
        assert!(!network_allowed(
            &office,
            Some("203.0.113.9".parse().unwrap())
        ));
        assert!(!network_allowed(&office, None));
    }

    #[test]
    fn fetch_metadata_decides_over_the_null_origin_of_a_no_referrer_page() {
        use actix_web::test::TestRequest;
        let issuer = "http://localhost:8080";
        let req = |headers: &[(&str, &str)]| {
            let mut r = TestRequest::post();
            for (k, v) in headers {
                r = r.insert_header((*k, *v));
            }
            r.to_http_request()
        };
        // What Chromium sends for a form of this site under `Referrer-Policy: no-referrer`.
        let own = req(&[("Sec-Fetch-Site", "same-origin"), ("Origin", "null")]);
        assert!(!cross_site(&own, issuer));
        assert!(!cross_site(&req(&[("Origin", issuer)]), issuer));
        assert!(!cross_site(&req(&[]), issuer));
        for refused in [
            req(&[("Sec-Fetch-Site", "cross-site"), ("Origin", issuer)]),
            req(&[("Sec-Fetch-Site", "same-site")]),
            req(&[("Origin", "null")]),
            req(&[("Origin", "https://evil.example")]),
        ] {
            assert!(cross_site(&refused, issuer), "{:?}", refused.headers());
        }
    }

    #[test]
    fn the_issuer_origin_drops_the_path() {
        assert_eq!(
            issuer_origin("https://id.example.com"),
            "https://id.example.com"
        );
        assert_eq!(
            issuer_origin("https://id.example.com:8443/tenant"),
            "https://id.example.com:8443"
        );
    }
}
