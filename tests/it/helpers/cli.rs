//! Running the `tessera` command line with an app's settings, and the operator's commands
//! (users, sessions, keys, audit log) parsed.

use std::collections::BTreeSet;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

use super::TestApp;

const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// What a finished command printed.
#[derive(Debug)]
pub struct CliOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    pub fn assert_success(&self, what: &str) {
        assert!(
            self.status.success(),
            "`{what}` failed ({}):\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
    }
}

impl TestApp {
    /// Runs `tessera serve` expecting it to refuse to start; returns what it printed.
    pub async fn serve_expecting_exit(&self) -> CliOutput {
        let mut cmd = self.command();
        cmd.arg("serve");
        let output = self.run(cmd, None, Duration::from_secs(20)).await;
        output.unwrap_or_else(|| {
            panic!(
                "`tessera serve` was still running after 20 s, but it should have refused to start"
            )
        })
    }

    async fn run(
        &self,
        mut cmd: Command,
        stdin: Option<&str>,
        limit: Duration,
    ) -> Option<CliOutput> {
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run the tessera command");
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("a stdin pipe");
            // A command that exits without reading its input closes the pipe:
            // that is for its exit status to tell, not for a write error.
            let _ = pipe.write_all(format!("{input}\n").as_bytes()).await;
            drop(pipe);
        }
        let output = tokio::time::timeout(limit, child.wait_with_output())
            .await
            .ok()?;
        let output = output.expect("wait for the tessera command");
        Some(CliOutput {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    /// Runs `tessera <args>` with this app's environment, feeding `stdin` if given.
    pub async fn cli(&self, args: &[&str], stdin: Option<&str>) -> CliOutput {
        let mut cmd = self.command();
        cmd.args(args);
        self.run(cmd, stdin, CLI_TIMEOUT).await.unwrap_or_else(|| {
            panic!(
                "`tessera {}` did not finish within {CLI_TIMEOUT:?}",
                args.join(" ")
            )
        })
    }

    /// `tessera keys rotate`, or `tessera keys rotate --emergency`.
    pub async fn rotate_keys(&self, emergency: bool) {
        let mut args = vec!["keys", "rotate"];
        if emergency {
            args.push("--emergency");
        }
        self.cli(&args, None)
            .await
            .assert_success(&format!("tessera {}", args.join(" ")));
    }

    /// `tessera user disable EMAIL`
    pub async fn disable_user(&self, email: &str) {
        self.cli(&["user", "disable", email], None)
            .await
            .assert_success("tessera user disable");
    }

    /// `tessera user enable EMAIL`
    pub async fn enable_user(&self, email: &str) {
        self.cli(&["user", "enable", email], None)
            .await
            .assert_success("tessera user enable");
    }

    /// `tessera user set-password EMAIL --password-stdin`
    pub async fn set_password(&self, email: &str, password: &str) {
        self.cli(
            &["user", "set-password", email, "--password-stdin"],
            Some(password),
        )
        .await
        .assert_success("tessera user set-password");
    }

    /// `tessera session list EMAIL`, parsed (the header line is checked).
    pub async fn cli_sessions(&self, email: &str) -> Vec<SessionRow> {
        let out = self.cli(&["session", "list", email], None).await;
        out.assert_success("tessera session list");
        let mut lines = out.stdout.lines();
        assert_eq!(
            lines.next(),
            Some("id\tcreated\tlast_seen\texpires\tip\tclients\tdevice"),
            "`tessera session list` starts with its header:\n{}",
            out.stdout
        );
        lines
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let f: Vec<&str> = line.splitn(7, '\t').collect();
                assert_eq!(f.len(), 7, "a session line has 7 columns: {line:?}");
                SessionRow {
                    id: f[0].to_owned(),
                    created: f[1].to_owned(),
                    last_seen: f[2].to_owned(),
                    expires: f[3].to_owned(),
                    ip: f[4].to_owned(),
                    clients: match f[5] {
                        "-" => BTreeSet::new(),
                        list => list.split(',').map(|c| c.trim().to_owned()).collect(),
                    },
                    device: f[6].to_owned(),
                }
            })
            .collect()
    }

    /// `tessera session revoke ID`
    pub async fn cli_revoke_session(&self, id: &str) {
        self.cli(&["session", "revoke", id], None)
            .await
            .assert_success("tessera session revoke ID");
    }

    /// `tessera session revoke --all EMAIL`
    pub async fn cli_revoke_all_sessions(&self, email: &str) {
        self.cli(&["session", "revoke", "--all", email], None)
            .await
            .assert_success("tessera session revoke --all");
    }

    /// `tessera audit tail -n N`, parsed, oldest first.
    pub async fn audit_tail(&self, lines: usize) -> Vec<AuditLine> {
        let n = lines.to_string();
        let out = self.cli(&["audit", "tail", "-n", &n], None).await;
        out.assert_success("tessera audit tail");
        out.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(AuditLine::parse)
            .collect()
    }

    /// `tessera audit verify`, whatever it answers.
    pub async fn audit_verify(&self) -> CliOutput {
        self.cli(&["audit", "verify"], None).await
    }
}

/// One line of `tessera session list`.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: String,
    pub created: String,
    pub last_seen: String,
    pub expires: String,
    pub ip: String,
    /// The client ids that got a code or tokens from the session.
    pub clients: BTreeSet<String>,
    pub device: String,
}

/// One line of `tessera audit tail`.
#[derive(Debug, Clone)]
pub struct AuditLine {
    pub seq: i64,
    pub at: i64,
    pub action: String,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub ip: Option<String>,
    pub detail: Value,
}

impl AuditLine {
    fn parse(line: &str) -> Self {
        let fields: Vec<&str> = line.splitn(7, '\t').collect();
        assert_eq!(
            fields.len(),
            7,
            "an audit line is `seq at action actor= subject= ip= detail`: {line:?}"
        );
        let labelled = |field: &str, label: &str| -> Option<String> {
            let value = field
                .strip_prefix(label)
                .unwrap_or_else(|| panic!("expected `{label}...` in the audit line {line:?}"));
            (value != "-").then(|| value.to_owned())
        };
        AuditLine {
            seq: fields[0]
                .parse()
                .unwrap_or_else(|_| panic!("the audit line starts with its number: {line:?}")),
            at: fields[1]
                .parse()
                .unwrap_or_else(|_| panic!("the audit line carries a unix time: {line:?}")),
            action: fields[2].to_owned(),
            actor: labelled(fields[3], "actor="),
            subject: labelled(fields[4], "subject="),
            ip: labelled(fields[5], "ip="),
            detail: serde_json::from_str(fields[6])
                .unwrap_or_else(|e| panic!("the audit detail is JSON ({e}): {line:?}")),
        }
    }
}
