//! A lean HTTP/1.1 client for the paths whose request never changes shape (client_credentials,
//! introspection, JWKS and discovery): each worker keeps one keep-alive connection (hyper's
//! connection API, no pool, no URL parsing, no redirect or timeout layers) and sends requests
//! whose headers and body were built once. Under reqwest the generator took two thirds of the
//! CPU on the JWKS path (`perf record -a`), so those figures measured the generator more than
//! the server. Both servers are driven by this same client.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::Mutex;

/// A request built once and sent many times.
#[derive(Clone)]
pub struct Fixed {
    method: Method,
    path: String,
    authorization: Option<HeaderValue>,
    form: Option<Bytes>,
}

impl Fixed {
    pub fn get(path: &str) -> Self {
        Self {
            method: Method::GET,
            path: path.to_string(),
            authorization: None,
            form: None,
        }
    }

    /// A form POST with an `Authorization` header.
    pub fn post_form(path: &str, authorization: &str, form: &[(&str, &str)]) -> Self {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        Self {
            method: Method::POST,
            path: path.to_string(),
            authorization: HeaderValue::from_str(authorization).ok(),
            form: Some(Bytes::from(body)),
        }
    }
}

/// One worker's connection, opened at its first request and again after a failure.
pub struct Conn {
    authority: String,
    sender: Mutex<Option<SendRequest<Full<Bytes>>>>,
}

impl Conn {
    /// `base` is `http://host:port`.
    pub fn new(base: &str) -> Self {
        Self {
            authority: base.trim_start_matches("http://").to_string(),
            sender: Mutex::new(None),
        }
    }

    async fn open(&self) -> Option<SendRequest<Full<Bytes>>> {
        let stream = tokio::net::TcpStream::connect(&self.authority).await.ok()?;
        stream.set_nodelay(true).ok()?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.ok()?;
        tokio::spawn(connection);
        Some(sender)
    }

    /// Sends `r`; the status and the whole body, or `None` when the connection failed (it is
    /// reopened for the next request).
    pub async fn send(&self, r: &Fixed) -> Option<(StatusCode, Bytes)> {
        let mut slot = self.sender.lock().await;
        if slot.is_none() {
            *slot = self.open().await;
        }
        let sender = slot.as_mut()?;
        let result = async {
            sender.ready().await.ok()?;
            let mut req = Request::builder()
                .method(r.method.clone())
                .uri(r.path.as_str())
                .header(HOST, self.authority.as_str());
            if let Some(auth) = &r.authorization {
                req = req.header(AUTHORIZATION, auth.clone());
            }
            if r.form.is_some() {
                req = req.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
            }
            let req = req
                .body(Full::new(r.form.clone().unwrap_or_default()))
                .ok()?;
            let resp = sender.send_request(req).await.ok()?;
            let status = resp.status();
            let body = resp.into_body().collect().await.ok()?.to_bytes();
            Some((status, body))
        }
        .await;
        if result.is_none() {
            *slot = None;
        }
        result
    }
}

/// One connection per worker.
pub fn connections(base: &str, workers: usize) -> std::sync::Arc<Vec<Conn>> {
    std::sync::Arc::new((0..workers).map(|_| Conn::new(base)).collect())
}

/// A 2xx answer, its body read.
pub fn ok(answer: &Option<(StatusCode, Bytes)>) -> bool {
    matches!(answer, Some((status, _)) if status.is_success())
}

/// An introspection answer saying the token is active (both servers answer compact JSON).
pub fn active(answer: &Option<(StatusCode, Bytes)>) -> bool {
    match answer {
        Some((status, body)) if status.is_success() => body
            .windows(br#""active":true"#.len())
            .any(|w| w == br#""active":true"#),
        _ => false,
    }
}
