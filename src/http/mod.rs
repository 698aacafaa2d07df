//! Thin actix-web adapters: extract, call one function of the engine, render.

/// Declares that forms carry a `csrf_token` field checked by `browser::checked_form`.
macro_rules! csrf_forms {
    ($($form:ty),+ $(,)?) => {
        $(impl crate::http::browser::CsrfForm for $form {
            fn csrf_token(&self) -> &str {
                &self.csrf_token
            }
        })+
    };
}

pub mod account;
pub mod account_security;
pub mod admin;
pub mod admin_api;
pub mod browser;
pub mod client_addr;
pub mod cookies;
pub mod errors;
pub mod feed;
pub mod health;
#[cfg(test)]
mod layering;
pub mod logout;
pub mod passkeys;
pub mod password;
pub mod protocol;
pub mod second_step;
pub mod views;
pub mod views_mfa;

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{DefaultHeaders, Next};
use actix_web::{HttpMessage, web};

use crate::auth::password::PasswordHasher;
use crate::config::Config;
use crate::oauth::Provider;

/// Shared by every worker.
pub struct AppState {
    pub provider: Provider,
    pub passwords: PasswordHasher,
    pub mailer: crate::mail::Mailer,
    pub config: Arc<Config>,
    /// Pre-serialised discovery document.
    pub discovery: String,
    /// `Cache-Control` max-age of the JWKS; always shorter than the key publish lead.
    pub jwks_max_age: u64,
}

impl AppState {
    pub fn secure_cookies(&self) -> bool {
        self.config.is_https()
    }
}

/// The largest request body any endpoint accepts.
pub const MAX_BODY: usize = 64 * 1024;

/// Security headers on every response (OWASP ASVS V14.4).
pub fn security_headers(https: bool) -> DefaultHeaders {
    let mut h = DefaultHeaders::new()
        .add((
            "Content-Security-Policy",
            "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; connect-src 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()"))
        .add(("Cross-Origin-Opener-Policy", "same-origin"));
    if https {
        h = h.add((
            "Strict-Transport-Security",
            "max-age=63072000; includeSubDomains",
        ));
    }
    h
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/.well-known/openid-configuration",
        web::get().to(protocol::discovery),
    )
    .route("/jwks.json", web::get().to(protocol::jwks))
    .route(
        "/.well-known/ssf-configuration",
        web::get().to(feed::configuration),
    )
    .route("/ssf/events", web::get().to(feed::events))
    .route("/token", web::post().to(protocol::token))
    .route("/revoke", web::post().to(protocol::revoke))
    .route("/introspect", web::post().to(protocol::introspect))
    .route("/userinfo", web::get().to(protocol::userinfo))
    .route("/userinfo", web::post().to(protocol::userinfo))
    .route("/authorize", web::get().to(browser::authorize))
    .route("/login", web::get().to(browser::login_page))
    .route("/login", web::post().to(browser::login))
    .route(
        "/login/passkey/begin",
        web::post().to(passkeys::begin_sign_in),
    )
    .route("/login/passkey", web::post().to(passkeys::sign_in))
    .route(
        "/login/second-step/key/begin",
        web::post().to(passkeys::begin_key_step),
    )
    .route("/login/second-step/key", web::post().to(passkeys::key_step))
    .route("/account/passkeys", web::get().to(passkeys::passkeys_page))
    .route(
        "/account/passkeys/begin",
        web::post().to(passkeys::begin_registration),
    )
    .route(
        "/account/passkeys/finish",
        web::post().to(passkeys::finish_registration),
    )
    .route("/account/passkeys/remove", web::post().to(passkeys::remove))
    .route(
        "/login/second-step",
        web::get().to(second_step::second_step_page),
    )
    .route(
        "/login/second-step",
        web::post().to(second_step::second_step),
    )
    .route("/consent", web::post().to(browser::consent))
    .route("/logout", web::get().to(logout::logout_get))
    .route("/logout", web::post().to(logout::logout_post))
    .route("/", web::get().to(browser::home))
    .route("/account", web::get().to(account::account_page))
    .route("/account/sessions", web::get().to(account::sessions_page))
    .route(
        "/account/security",
        web::get().to(account_security::security_page),
    )
    .route(
        "/account/security/totp",
        web::post().to(account_security::add_app),
    )
    .route(
        "/account/security/totp/confirm",
        web::post().to(account_security::confirm_app),
    )
    .route(
        "/account/security/remove",
        web::post().to(account_security::remove),
    )
    .route(
        "/account/security/recovery-codes",
        web::post().to(account_security::regenerate_codes),
    )
    .route(
        "/account/security/confirm-password",
        web::post().to(account_security::confirm_password),
    )
    .route("/account/password", web::get().to(password::change_page))
    .route("/account/password", web::post().to(password::change))
    .route(
        "/account/verify-email",
        web::post().to(password::send_verification),
    )
    .route("/password/forgot", web::get().to(password::forgot_page))
    .route("/password/forgot", web::post().to(password::forgot))
    .route("/password/reset", web::get().to(password::reset_page))
    .route("/password/reset", web::post().to(password::reset))
    .route("/register", web::get().to(password::register_page))
    .route("/register", web::post().to(password::register))
    .route("/verify-email", web::get().to(password::verify_email_page))
    .route("/verify-email", web::post().to(password::verify_email))
    .route(
        "/account/sessions/revoke",
        web::post().to(account::revoke_one),
    )
    .route(
        "/account/sessions/revoke-all",
        web::post().to(account::revoke_all),
    )
    .route("/healthz", web::get().to(health::healthz))
    .route("/readyz", web::get().to(health::readyz))
    .route("/metrics", web::get().to(health::metrics))
    .route("/static/{file}", web::get().to(health::static_file))
    // The API's scope first: `/admin` would also match its paths.
    .configure(admin_api::routes)
    .configure(admin::routes)
    .default_service(web::to(errors::not_found));
}

/// Set by the token endpoint: the grant type a `/token` request asked for (its index in
/// [`crate::metrics::TOKEN_GRANTS`]), so [`timed`] records it per grant as well.
#[derive(Clone, Copy, Debug)]
pub struct TimedGrant(pub usize);

/// Records how long each request took to answer, by endpoint, and `/token` requests also by
/// grant type (`/metrics`).
pub async fn timed(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    let endpoint = crate::metrics::endpoint(req.path());
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.provider.metrics.clone());
    let response = next.call(req).await;
    if let Some(metrics) = metrics {
        let took = started.elapsed();
        metrics.observe_request(endpoint, took);
        let grant = response
            .as_ref()
            .ok()
            .and_then(|r| r.request().extensions().get::<TimedGrant>().copied());
        if let Some(TimedGrant(grant)) = grant {
            metrics.observe_token(grant, took);
        }
    }
    response
}
