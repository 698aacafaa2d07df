//! `Set-Cookie` headers, split into name, value and attributes.

use reqwest::Response;
use reqwest::header;

/// One `Set-Cookie` header, split up.
#[derive(Debug, Clone)]
pub struct SetCookie {
    pub name: String,
    pub value: String,
    /// Attribute names lower-cased, with their values.
    pub attributes: Vec<(String, String)>,
}

impl SetCookie {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub fn set_cookies(resp: &Response) -> Vec<SetCookie> {
    resp.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|raw| {
            let mut parts = raw.split(';');
            let (name, value) = parts
                .next()
                .unwrap_or_default()
                .split_once('=')
                .unwrap_or_default();
            let attributes = parts
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (k.trim().to_ascii_lowercase(), v.trim().to_owned())
                })
                .collect();
            SetCookie {
                name: name.trim().to_owned(),
                value: value.trim().to_owned(),
                attributes,
            }
        })
        .collect()
}
