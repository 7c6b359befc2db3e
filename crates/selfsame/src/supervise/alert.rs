//! Alerts to the owner: a command (the event as JSON on stdin), a Telegram
//! message through the Bot API with the agent's own token, a webhook POST.
//!
//! The command runs as `sh -c CMD` with the supervisor's environment less
//! the token: the config's `token_env` and the variables the caller names
//! ([`Sinks::hide_env`]: the CLI names those whose value holds the token's
//! secret) are removed, as for migrations.
//!
//! Each delivery runs on its own thread with a 10 s limit and reports back
//! over a channel; the supervisor records the outcome and never waits on a
//! slow sink except, bounded, before it exits. No text that leaves this
//! module — alert, error or log — can contain the token: the Bot API URL
//! holds it, so that URL is never printed and every error is scrubbed.

use std::ffi::OsString;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use crate::crypto::Credential;
use crate::soul::changes::ChangeSummary;

/// How long one delivery may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The Bot API's address when `SELFSAME_TELEGRAM_API` is not set.
pub const TELEGRAM_API: &str = "https://api.telegram.org";

/// Where alerts go. Empty: nowhere.
#[derive(Debug, Clone, Default)]
pub struct Sinks {
    /// A shell command that reads the alert as JSON on stdin.
    pub cmd: Option<String>,
    /// A Telegram chat id to message through the Bot API.
    pub telegram: Option<String>,
    /// The Bot API base URL (default `https://api.telegram.org`).
    pub telegram_api: Option<String>,
    /// A URL to POST the alert JSON to.
    pub webhook: Option<String>,
    /// Environment variables the alert command does not get, besides the
    /// config's `token_env`: those that hold the credential's secret.
    pub hide_env: Vec<OsString>,
}

impl Sinks {
    /// Whether any sink is set.
    pub fn is_empty(&self) -> bool {
        self.cmd.is_none() && self.telegram.is_none() && self.webhook.is_none()
    }
}

/// One alert: what happened, where, and what the owner can run next.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    /// `halt`, `rollback` or `give-up`.
    pub event: String,
    /// The wake verdict behind a halt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// The verdict's detail code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The bot (the numeric id only).
    pub bot_id: u64,
    /// The vault directory.
    pub vault: String,
    /// The checkpoint concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// One sentence.
    pub message: String,
    /// What changed: counts and the first paths of each kind, the same
    /// summary history records.
    pub changes: ChangeSummary,
    /// What the owner can run next.
    pub next: String,
    /// When, RFC 3339.
    pub at: String,
}

impl Alert {
    /// The plain-text form (the Telegram message).
    pub fn text(&self) -> String {
        let what = match (&self.verdict, &self.detail) {
            (Some(v), Some(d)) => format!("{} ({v}, {d})", self.event),
            (Some(v), None) => format!("{} ({v})", self.event),
            _ => self.event.clone(),
        };
        let mut t = format!("selfsame: bot {} — {what}\n{}\n", self.bot_id, self.message);
        for line in self.changes.lines() {
            t.push_str(&line);
            t.push('\n');
        }
        t.push_str(&format!("vault: {}\nnext: {}", self.vault, self.next));
        t
    }
}

/// The outcome of one delivery.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `cmd`, `telegram` or `webhook`.
    pub sink: &'static str,
    /// The alert's event.
    pub about: String,
    /// `Err` with a message free of the token.
    pub result: Result<(), String>,
}

/// Sends alerts on background threads and collects their outcomes.
#[derive(Debug)]
pub struct Dispatcher {
    sinks: Sinks,
    cred: Credential,
    /// Environment variables the alert command does not get.
    hidden: Vec<OsString>,
    tx: Sender<Delivery>,
    rx: Receiver<Delivery>,
    pending: usize,
}

impl Dispatcher {
    /// A dispatcher for `sinks`; the credential is used for Telegram only.
    /// `token_env` (the config's) and [`Sinks::hide_env`] are left out of
    /// the alert command's environment.
    pub fn new(sinks: Sinks, cred: Credential, token_env: &str) -> Self {
        let (tx, rx) = channel();
        let mut hidden = vec![OsString::from(token_env)];
        hidden.extend(sinks.hide_env.iter().cloned());
        Dispatcher {
            sinks,
            cred,
            hidden,
            tx,
            rx,
            pending: 0,
        }
    }

    /// Starts delivering `alert` to every sink; returns at once.
    pub fn send(&mut self, alert: &Alert) {
        let json = serde_json::to_string(alert).expect("alerts serialize");
        if let Some(cmd) = self.sinks.cmd.clone() {
            let json = json.clone();
            let hidden = self.hidden.clone();
            self.spawn("cmd", alert, move || run_cmd(&cmd, &json, &hidden));
        }
        let token = self.cred.telegram_token().cloned();
        if let (Some(chat), Some(token)) = (self.sinks.telegram.clone(), token) {
            let base = self
                .sinks
                .telegram_api
                .clone()
                .unwrap_or_else(|| TELEGRAM_API.into());
            let body = json!({"chat_id": chat, "text": alert.text()}).to_string();
            self.spawn("telegram", alert, move || {
                let url = format!(
                    "{}/bot{}/sendMessage",
                    base.trim_end_matches('/'),
                    token.expose()
                );
                post(&url, &body)
            });
        }
        if let Some(url) = self.sinks.webhook.clone() {
            self.spawn("webhook", alert, move || post(&url, &json));
        }
    }

    fn spawn(
        &mut self,
        sink: &'static str,
        alert: &Alert,
        deliver: impl FnOnce() -> Result<(), String> + Send + 'static,
    ) {
        let tx = self.tx.clone();
        let cred = self.cred.clone();
        let about = alert.event.clone();
        self.pending += 1;
        thread::spawn(move || {
            let result = deliver().map_err(|e| redact(&e, &cred));
            let _ = tx.send(Delivery {
                sink,
                about,
                result,
            });
        });
    }

    /// Outcomes that have arrived, without waiting.
    pub fn ready(&mut self) -> Vec<Delivery> {
        let mut out = Vec::new();
        while let Ok(d) = self.rx.try_recv() {
            self.pending -= 1;
            out.push(d);
        }
        out
    }

    /// Waits for every delivery still under way, at most `TIMEOUT` plus a
    /// margin (each delivery stops itself at `TIMEOUT`).
    pub fn finish(&mut self) -> Vec<Delivery> {
        let deadline = Instant::now() + TIMEOUT + Duration::from_secs(2);
        let mut out = Vec::new();
        while self.pending > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(d) => {
                    self.pending -= 1;
                    out.push(d);
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        out
    }
}

/// Replaces the credential, and its secret parts alone, with `<token>`.
pub fn redact(text: &str, cred: &Credential) -> String {
    cred.secret_texts()
        .into_iter()
        .fold(text.to_owned(), |t, s| t.replace(s, "<token>"))
}

fn run_cmd(cmd: &str, json: &str, hidden: &[OsString]) -> Result<(), String> {
    let mut command = Command::new("sh");
    for name in hidden {
        command.env_remove(name);
    }
    let mut child = command
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::from(std::io::stderr()))
        .spawn()
        .map_err(|e| format!("cannot start the alert command: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that does not read stdin is fine: ignore a broken pipe.
        let _ = stdin.write_all(json.as_bytes());
        let _ = stdin.write_all(b"\n");
    }
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(s)) if s.success() => return Ok(()),
            Ok(Some(s)) => return Err(format!("the alert command failed ({s})")),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the alert command did not finish within {} s; killed",
                    TIMEOUT.as_secs()
                ));
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for the alert command: {e}")),
        }
    }
}

fn post(url: &str, body: &str) -> Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    let response = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(body.as_bytes())
        .map_err(|e| match e {
            // These variants can carry the URL (which may hold the token).
            ureq::Error::BadUri(_) | ureq::Error::Http(_) => "invalid URL".to_owned(),
            ureq::Error::Timeout(_) => format!("no answer within {} s", TIMEOUT.as_secs()),
            e => e.to_string(),
        })?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("HTTP status {status}"))
    }
}
