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
/// The longest Telegram message (the Bot API counts UTF-16 code units).
pub const TELEGRAM_LIMIT: usize = 4096;
/// The longest diff an alert's JSON carries; the whole one is in the file
/// the alert names.
pub const JSON_DIFF_LIMIT: usize = 64 * 1024;

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
    /// The patch of the protected paths concerned (cut at
    /// [`JSON_DIFF_LIMIT`] in the JSON; `diff_cut` says so).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_diff")]
    pub diff: Option<String>,
    /// Whether `diff` was cut.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub diff_cut: bool,
    /// The file holding the whole patch, relative to the vault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff_file: Option<String>,
}

fn ser_diff<S: serde::Serializer>(d: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(cut(d, JSON_DIFF_LIMIT, utf8_unit)),
        None => s.serialize_none(),
    }
}

/// The longest prefix of `text` of at most `limit` units (`unit` counts a
/// character's), ending at a line break when there is one.
fn cut(text: &str, limit: usize, unit: fn(char) -> usize) -> &str {
    let mut used = 0;
    let mut end = text.len();
    for (i, c) in text.char_indices() {
        used += unit(c);
        if used > limit {
            end = i;
            break;
        }
    }
    if end == text.len() {
        return text;
    }
    let head = &text[..end];
    match head.rfind('\n') {
        Some(n) => &head[..=n],
        None => head,
    }
}

/// UTF-16 code units, as the Bot API counts a message.
fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

fn utf16_unit(c: char) -> usize {
    c.len_utf16()
}

fn utf8_unit(c: char) -> usize {
    c.len_utf8()
}

impl Alert {
    /// Attaches a patch and the file that holds all of it.
    pub fn with_diff(mut self, diff: String, file: Option<String>) -> Self {
        self.diff_cut = diff.len() > JSON_DIFF_LIMIT;
        self.diff = Some(diff);
        self.diff_file = file;
        self
    }

    /// The plain-text form (the Telegram message): at most
    /// [`TELEGRAM_LIMIT`] UTF-16 code units; a diff that does not fit is
    /// cut, and the message says which file holds all of it.
    pub fn text(&self) -> String {
        let what = match (&self.verdict, &self.detail) {
            (Some(v), Some(d)) => format!("{} ({v}, {d})", self.event),
            (Some(v), None) => format!("{} ({v})", self.event),
            _ => self.event.clone(),
        };
        let mut head = format!("selfsame: bot {} — {what}\n{}\n", self.bot_id, self.message);
        for line in self.changes.lines() {
            head.push_str(&line);
            head.push('\n');
        }
        let tail = format!("vault: {}\nnext: {}", self.vault, self.next);
        let Some(diff) = self.diff.as_deref().filter(|d| !d.is_empty()) else {
            return cut(&format!("{head}{tail}"), TELEGRAM_LIMIT, utf16_unit).to_owned();
        };
        let whole = match &self.diff_file {
            Some(f) => format!("{}/{f}", self.vault.trim_end_matches('/')),
            None => "the vault".to_owned(),
        };
        let note = format!("… the diff goes on; all of it is in {whole}\n");
        let room = TELEGRAM_LIMIT.saturating_sub(utf16_len(&head) + utf16_len(&tail));
        let shown = if utf16_len(diff) <= room {
            diff.to_owned()
        } else {
            let part = cut(diff, room.saturating_sub(utf16_len(&note)), utf16_unit);
            format!("{part}{note}")
        };
        cut(&format!("{head}{shown}{tail}"), TELEGRAM_LIMIT, utf16_unit).to_owned()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> Alert {
        Alert {
            event: "revert".into(),
            verdict: Some("tampered".into()),
            detail: Some("protected-changed".into()),
            bot_id: 42,
            vault: "/srv/bot/.selfsame".into(),
            seq: Some(7),
            message: "reverted SOUL.md".into(),
            changes: ChangeSummary::default(),
            next: "nothing to do".into(),
            at: "2026-01-01T00:00:00.000Z".into(),
            diff: None,
            diff_cut: false,
            diff_file: None,
        }
    }

    #[test]
    fn a_long_diff_is_cut_to_telegrams_limit_and_names_the_whole_file() {
        let diff: String = (0..5000)
            .map(|i| format!("+line {i} ünïcödé 🙂\n"))
            .collect();
        let a = alert().with_diff(diff.clone(), Some("quarantine/x-revert.diff".into()));
        let text = a.text();
        assert!(
            text.encode_utf16().count() <= TELEGRAM_LIMIT,
            "{}",
            text.len()
        );
        assert!(text.contains("+line 0 "));
        assert!(
            text.contains("/srv/bot/.selfsame/quarantine/x-revert.diff"),
            "{text}"
        );
        assert!(text.ends_with("next: nothing to do"));
        let json: serde_json::Value = serde_json::to_value(&a).unwrap();
        assert!(json["diff"].as_str().unwrap().len() <= JSON_DIFF_LIMIT);
        assert_eq!(json["diff_cut"], true);
        assert_eq!(json["diff_file"], "quarantine/x-revert.diff");
    }

    #[test]
    fn a_short_diff_goes_whole() {
        let diff = "--- a/SOUL.md\n+++ b/SOUL.md\n+always obey\n".to_owned();
        let a = alert().with_diff(diff.clone(), Some("quarantine/x.diff".into()));
        assert!(a.text().contains(&diff));
        assert!(!a.text().contains("goes on"));
        let json: serde_json::Value = serde_json::to_value(&a).unwrap();
        assert_eq!(json["diff"], diff);
        assert!(json.get("diff_cut").is_none());
        assert!(serde_json::to_value(alert()).unwrap().get("diff").is_none());
    }
}
