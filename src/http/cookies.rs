//! Cookies and CSRF. Under https the names carry the `__Host-` prefix (Secure, Path=/, no
//! Domain), so no sibling host can plant them. CSRF: a random cookie plus a form field holding its
//! MAC (signed double submit).

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};

use crate::crypto::{b64, b64_decode, random_token};
use crate::oauth::Provider;

pub struct CookieNames {
    pub session: &'static str,
    pub csrf: &'static str,
}

pub fn names(secure: bool) -> CookieNames {
    if secure {
        CookieNames {
            session: "__Host-tessera_session",
            csrf: "__Host-tessera_csrf",
        }
    } else {
        CookieNames {
            session: "tessera_session",
            csrf: "tessera_csrf",
        }
    }
}

fn build(name: &'static str, value: String, secure: bool, max_age: Option<i64>) -> Cookie<'static> {
    let mut c = Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .finish();
    if let Some(secs) = max_age {
        c.set_max_age(CookieDuration::seconds(secs));
    }
    c
}

pub fn session_cookie(value: String, secure: bool, max_age: i64) -> Cookie<'static> {
    build(names(secure).session, value, secure, Some(max_age))
}

pub fn clear_session_cookie(secure: bool) -> Cookie<'static> {
    build(names(secure).session, String::new(), secure, Some(0))
}

pub fn session_value(req: &HttpRequest, secure: bool) -> Option<String> {
    req.cookie(names(secure).session)
        .map(|c| c.value().to_string())
}

/// The browser's CSRF secret, and a cookie to set when it had none.
pub struct Csrf {
    pub token: String,
    pub set_cookie: Option<Cookie<'static>>,
}

fn tag(p: &Provider, secret: &str) -> String {
    b64(&p.crypto.mac("csrf", secret.as_bytes()))
}

pub fn csrf(p: &Provider, req: &HttpRequest, secure: bool) -> Csrf {
    match req.cookie(names(secure).csrf) {
        Some(c) if !c.value().is_empty() && c.value().len() <= 64 => Csrf {
            token: tag(p, c.value()),
            set_cookie: None,
        },
        _ => {
            let secret = random_token();
            Csrf {
                token: tag(p, &secret),
                set_cookie: Some(build(names(secure).csrf, secret, secure, None)),
            }
        }
    }
}

/// True when the form's token is the MAC of this browser's CSRF cookie.
pub fn csrf_ok(p: &Provider, req: &HttpRequest, secure: bool, form_token: &str) -> bool {
    let Some(cookie) = req.cookie(names(secure).csrf) else {
        return false;
    };
    let Some(given) = b64_decode(form_token) else {
        return false;
    };
    p.crypto
        .verify_mac("csrf", cookie.value().as_bytes(), &given)
}
