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
    pub device: &'static str,
}

pub fn names(secure: bool) -> CookieNames {
    if secure {
        CookieNames {
            session: "__Host-tessera_session",
            csrf: "__Host-tessera_csrf",
            device: "__Host-tessera_device",
        }
    } else {
        CookieNames {
            session: "tessera_session",
            csrf: "tessera_csrf",
            device: "tessera_device",
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

/// A device cookie lives this long (the most browsers keep a cookie).
const DEVICE_MAX_AGE: i64 = 400 * 86400;

/// The signed device cookie set at each sign-in: `user id . device id . MAC`. It marks a browser
/// that signed in to this account before, so failures from elsewhere do not lock it out.
pub fn device_cookie(
    p: &Provider,
    user_id: &str,
    req: &HttpRequest,
    secure: bool,
) -> Cookie<'static> {
    let device_id = match device(p, req, secure) {
        Some((uid, did)) if uid == user_id => did,
        _ => random_token(),
    };
    let body = format!("{}.{}", b64(user_id.as_bytes()), device_id);
    let tag = b64(&p.crypto.mac("device", body.as_bytes()));
    build(
        names(secure).device,
        format!("{body}.{tag}"),
        secure,
        Some(DEVICE_MAX_AGE),
    )
}

/// (user id, device id) from a valid device cookie.
pub fn device(p: &Provider, req: &HttpRequest, secure: bool) -> Option<(String, String)> {
    let cookie = req.cookie(names(secure).device)?;
    let value = cookie.value();
    if value.len() > 256 {
        return None;
    }
    let (body, tag) = value.rsplit_once('.')?;
    if !p
        .crypto
        .verify_mac("device", body.as_bytes(), &b64_decode(tag)?)
    {
        return None;
    }
    let (uid, did) = body.split_once('.')?;
    Some((String::from_utf8(b64_decode(uid)?).ok()?, did.to_string()))
}
