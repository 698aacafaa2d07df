//! A relying party's back-channel logout endpoint: a small HTTP/1.1 listener that records every
//! POST (path, content type, body) and answers as a test scripts it (a status, a redirect, or
//! an answer held back for a while).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    Status(u16),
    /// 302 to this location.
    Redirect(String),
    /// Waits this long, then answers with the status.
    Slow(Duration, u16),
}

#[derive(Debug, Clone)]
pub struct ReceivedPost {
    pub path: String,
    pub content_type: String,
    pub body: String,
    pub at: Instant,
}

impl ReceivedPost {
    /// The `logout_token` form field.
    pub fn logout_token(&self) -> String {
        url::form_urlencoded::parse(self.body.as_bytes())
            .find(|(k, _)| k == "logout_token")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("no logout_token in the POST body: {}", self.body))
    }
}

#[derive(Default)]
struct State {
    posts: Vec<ReceivedPost>,
    /// Per path, the next answers (then 200).
    script: HashMap<String, VecDeque<Reply>>,
}

#[derive(Clone)]
pub struct LogoutReceiver {
    pub port: u16,
    state: Arc<Mutex<State>>,
}

impl LogoutReceiver {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the logout receiver");
        let port = listener.local_addr().expect("its address").port();
        let state: Arc<Mutex<State>> = Arc::default();
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, shared.clone()));
            }
        });
        LogoutReceiver { port, state }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The next answers to requests for `path` (afterwards: 200).
    pub fn script(&self, path: &str, replies: &[Reply]) {
        let mut state = self.state.lock().unwrap();
        state
            .script
            .entry(path.to_owned())
            .or_default()
            .extend(replies.iter().cloned());
    }

    pub fn posts(&self) -> Vec<ReceivedPost> {
        self.state.lock().unwrap().posts.clone()
    }

    /// The POSTs received so far once there are at least `n` matching `which`; panics after
    /// `within`.
    pub async fn wait_for(
        &self,
        n: usize,
        within: Duration,
        which: impl Fn(&ReceivedPost) -> bool,
    ) -> Vec<ReceivedPost> {
        let deadline = Instant::now() + within;
        loop {
            let found: Vec<ReceivedPost> = self.posts().into_iter().filter(|p| which(p)).collect();
            if found.len() >= n {
                return found;
            }
            if Instant::now() > deadline {
                panic!(
                    "expected {n} back-channel logout POST(s) within {within:?}, got {}: {:?}",
                    found.len(),
                    self.posts()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default().to_owned();
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let mut content_length = 0;
    let mut content_type = String::new();
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => content_length = value.trim().parse().unwrap_or(0),
                "content-type" => content_type = value.trim().to_owned(),
                _ => {}
            }
        }
    }
    while buf.len() < header_end + content_length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = String::from_utf8_lossy(&buf[header_end..]).to_string();
    let reply = {
        let mut state = state.lock().unwrap();
        if request_line.starts_with("POST ") {
            state.posts.push(ReceivedPost {
                path: path.clone(),
                content_type,
                body,
                at: Instant::now(),
            });
        }
        state
            .script
            .get_mut(&path)
            .and_then(VecDeque::pop_front)
            .unwrap_or(Reply::Status(200))
    };
    let answer = match reply {
        Reply::Status(status) => {
            format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        }
        Reply::Redirect(location) => format!(
            "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        Reply::Slow(wait, status) => {
            tokio::time::sleep(wait).await;
            format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        }
    };
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}
