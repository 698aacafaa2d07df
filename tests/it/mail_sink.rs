//! A real SMTP sink process (tests/support/smtp_sink.py) for mail tests.
//!
//! `MailSink::start()` runs the sink on a free port; the server under test gets
//! `TESSERA_SMTP_URL=sink.smtp_url()`. Tests then wait for the next mail to an address and read
//! it as a person would: its subject and its (decoded) text, and the links in it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use url::Url;

use crate::helpers::random_token;

/// How long a test waits for a mail the server should send.
pub const MAIL_TIMEOUT: Duration = Duration::from_secs(5);

/// One received mail.
#[derive(Debug, Clone)]
pub struct Mail {
    /// The envelope recipient(s), as the sink recorded them.
    pub to: String,
    pub subject: String,
    /// The body, with the transfer encoding undone and line ends normalised to `\n`.
    pub body: String,
    /// The file the sink wrote it to.
    pub file: String,
}

impl Mail {
    /// Every link in the body that starts with `prefix` (a link ends at whitespace).
    pub fn links_starting_with(&self, prefix: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut rest = self.body.as_str();
        while let Some(at) = rest.find(prefix) {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| c.is_whitespace() || c == '>' || c == '"')
                .unwrap_or(tail.len());
            found.push(tail[..end].to_owned());
            rest = &tail[end..];
        }
        found
    }

    /// The one link that starts with `prefix`, parsed.
    pub fn link(&self, prefix: &str) -> Url {
        let links = self.links_starting_with(prefix);
        assert_eq!(
            links.len(),
            1,
            "the mail {:?} should carry exactly one link starting with {prefix}, carries {links:?}:\n{}",
            self.subject,
            self.body
        );
        Url::parse(&links[0]).unwrap_or_else(|e| panic!("{} is not a URL: {e}", links[0]))
    }
}

/// The sink process and the folder it writes to. Killed and removed on drop.
pub struct MailSink {
    pub port: u16,
    dir: PathBuf,
    _process: Child,
    _stdout: ChildStdout,
    /// Files already handed out by `next_mail_to`.
    taken: Mutex<BTreeSet<String>>,
}

impl Drop for MailSink {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl MailSink {
    /// Starts `python3 tests/support/smtp_sink.py OUTDIR` and reads the port it listens on.
    pub async fn start() -> MailSink {
        let dir = std::env::temp_dir().join(format!("tessera-mail-{}", random_token()));
        std::fs::create_dir_all(&dir).expect("create the mail sink's folder");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py");
        let mut process = Command::new("python3")
            .arg(&script)
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", script.display()));
        let stdout = process.stdout.take().expect("the sink's stdout is piped");
        let mut reader = BufReader::new(stdout);
        let mut first = String::new();
        tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut first))
            .await
            .expect("the SMTP sink prints its port within 10 s")
            .expect("read the SMTP sink's first line");
        let port = first
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                panic!("the SMTP sink should print `PORT <n>` first, printed {first:?}")
            });
        MailSink {
            port,
            dir,
            _process: process,
            _stdout: reader.into_inner(),
            taken: Mutex::new(BTreeSet::new()),
        }
    }

    /// What the server's `TESSERA_SMTP_URL` should be.
    pub fn smtp_url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every mail received so far, oldest first.
    pub fn received(&self) -> Vec<Mail> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .expect("read the mail sink's folder")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".eml"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|name| {
                let raw = std::fs::read(self.dir.join(&name))
                    .unwrap_or_else(|e| panic!("read the mail {name}: {e}"));
                parse_mail(&name, &raw)
            })
            .collect()
    }

    /// Every mail received so far whose recipient is `to` (case-insensitive).
    pub fn received_by(&self, to: &str) -> Vec<Mail> {
        self.received()
            .into_iter()
            .filter(|m| addressed_to(m, to))
            .collect()
    }

    /// Waits (up to 5 s) for the oldest mail to `to` that no earlier call returned.
    pub async fn next_mail_to(&self, to: &str) -> Mail {
        let deadline = Instant::now() + MAIL_TIMEOUT;
        loop {
            let fresh = {
                let taken = self.taken.lock().expect("the sink's bookkeeping");
                self.received()
                    .into_iter()
                    .find(|m| addressed_to(m, to) && !taken.contains(&m.file))
            };
            if let Some(mail) = fresh {
                self.taken
                    .lock()
                    .expect("the sink's bookkeeping")
                    .insert(mail.file.clone());
                return mail;
            }
            if Instant::now() > deadline {
                let all: Vec<(String, String)> = self
                    .received()
                    .into_iter()
                    .map(|m| (m.to, m.subject))
                    .collect();
                panic!(
                    "no new mail to {to} arrived within {MAIL_TIMEOUT:?}; the sink holds {all:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn addressed_to(mail: &Mail, to: &str) -> bool {
    mail.to
        .split(',')
        .any(|rcpt| rcpt.trim().eq_ignore_ascii_case(to))
}

/// Splits a stored message into the sink's recipient line, the headers and the body.
fn parse_mail(file: &str, raw: &[u8]) -> Mail {
    let text = String::from_utf8_lossy(raw).replace("\r\n", "\n");
    let (head, body) = text
        .split_once("\n\n")
        .unwrap_or_else(|| panic!("the mail {file} has no blank line after its headers:\n{text}"));
    // Unfold continuation lines (RFC 5322 §2.2.3).
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let encoding = header("content-transfer-encoding").to_ascii_lowercase();
    let body = match encoding.as_str() {
        "quoted-printable" => decode_quoted_printable(body),
        "base64" => {
            let compact: String = body.split_whitespace().collect();
            let bytes = STANDARD
                .decode(compact)
                .unwrap_or_else(|e| panic!("the body of {file} is not base64: {e}"));
            String::from_utf8_lossy(&bytes).replace("\r\n", "\n")
        }
        _ => body.to_owned(),
    };
    Mail {
        to: header("x-sink-rcpt"),
        subject: decode_encoded_words(&header("subject")),
        body,
        file: file.to_owned(),
    }
}

/// Undoes quoted-printable (RFC 2045 §6.7): soft line breaks `=\n` vanish, `=XX` is a byte.
pub fn decode_quoted_printable(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            if bytes.get(i + 1) == Some(&b'\n') {
                i += 2;
                continue;
            }
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(byte) = hex {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes RFC 2047 encoded words (`=?utf-8?b?…?=`, `=?utf-8?q?…?=`) in a header value.
fn decode_encoded_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("=?") {
        let word = &rest[start + 2..];
        let parts: Vec<&str> = word.splitn(3, '?').collect();
        let end = parts.get(2).and_then(|p| p.find("?="));
        let (Some(end), [_, encoding, _]) = (end, parts.as_slice()) else {
            break;
        };
        let payload = &parts[2][..end];
        let decoded = match encoding.to_ascii_lowercase().as_str() {
            "b" => STANDARD
                .decode(payload)
                .ok()
                .map(|b| String::from_utf8_lossy(&b).into_owned()),
            "q" => Some(decode_quoted_printable(&payload.replace('_', " "))),
            _ => None,
        };
        let Some(decoded) = decoded else { break };
        let before = &rest[..start];
        // Whitespace between two encoded words is not part of the text (RFC 2047 §6.2).
        let between_words = before.trim().is_empty() && !out.is_empty();
        if !between_words {
            out.push_str(before);
        }
        out.push_str(&decoded);
        let consumed = start + 2 + parts[0].len() + 1 + parts[1].len() + 1 + end + 2;
        rest = &rest[consumed..];
    }
    out.push_str(rest);
    out
}

#[test]
fn quoted_printable_soft_breaks_and_escapes_are_undone() {
    let encoded = "open this link:\n\nhttp://127.0.0.1:1/password/reset?token=3Dab=\ncd ends=\n here =C3=A9\n";
    assert_eq!(
        decode_quoted_printable(encoded),
        "open this link:\n\nhttp://127.0.0.1:1/password/reset?token=abcd ends here é\n"
    );
    assert_eq!(decode_quoted_printable("token=3Dabc"), "token=abc");
}

#[test]
fn encoded_word_subjects_are_decoded() {
    assert_eq!(
        decode_encoded_words("Reset your password"),
        "Reset your password"
    );
    assert_eq!(
        decode_encoded_words("=?utf-8?b?UmVzZXQgeW91ciBwYXNzd29yZA==?="),
        "Reset your password"
    );
    assert_eq!(decode_encoded_words("=?UTF-8?Q?Caf=C3=A9_ok?="), "Café ok");
}
