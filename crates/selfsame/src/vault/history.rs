//! `history.jsonl`: append-only, hash-chained events.
//!
//! Appends write one line and fsync. A torn last line (a crash mid-append)
//! is moved to `run/` and replaced by a `repair` event — never silently
//! dropped, never taken for tampering.

use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::atomic;
use crate::clock;
use crate::crypto::sha256_hex;
use crate::error::{IoContext, Result};
use crate::format::HistoryLine;

/// The history file of a vault.
#[derive(Debug, Clone)]
pub struct History {
    path: PathBuf,
    run_dir: PathBuf,
}

/// A history line with its hash.
#[derive(Debug, Clone)]
pub struct Line {
    /// The parsed event.
    pub event: HistoryLine,
    /// Hex SHA-256 of the line's bytes without the newline.
    pub hash: String,
}

/// The whole history as read, with what is wrong with it.
#[derive(Debug, Clone, Default)]
pub struct HistoryRead {
    /// Lines that parsed, in order.
    pub lines: Vec<Line>,
    /// Problems: unreadable lines, broken `prev` links, bad numbering.
    pub problems: Vec<String>,
    /// Bytes after the last newline (a torn append), if any.
    pub torn: Option<Vec<u8>>,
}

impl History {
    /// The history at `path`, with `run_dir` for torn lines.
    pub fn new(path: PathBuf, run_dir: PathBuf) -> Self {
        History { path, run_dir }
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads and checks every line.
    pub fn read_all(&self) -> Result<HistoryRead> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).at(&self.path),
        };
        let mut out = HistoryRead::default();
        let (body, torn) = match bytes.iter().rposition(|&b| b == b'\n') {
            Some(i) => (&bytes[..=i], &bytes[i + 1..]),
            None => (&bytes[..0], &bytes[..]),
        };
        if !torn.is_empty() {
            out.torn = Some(torn.to_vec());
        }
        let mut prev_hash = String::new();
        let lines = if body.is_empty() {
            &body[..0]
        } else {
            &body[..body.len() - 1]
        };
        for (i, raw) in lines.split(|&b| b == b'\n').enumerate() {
            if body.is_empty() {
                break;
            }
            let n = i as u64 + 1;
            let hash = sha256_hex(raw);
            match std::str::from_utf8(raw)
                .ok()
                .and_then(|t| HistoryLine::parse(t).ok())
            {
                Some(event) => {
                    if event.n != n {
                        out.problems
                            .push(format!("history line {n}: numbered {}", event.n));
                    }
                    if event.prev != prev_hash {
                        out.problems.push(format!(
                            "history line {n}: `prev` does not match line {}",
                            n - 1
                        ));
                    }
                    out.lines.push(Line {
                        event,
                        hash: hash.clone(),
                    });
                }
                None => out
                    .problems
                    .push(format!("history line {n}: not a JSON event")),
            }
            prev_hash = hash;
        }
        Ok(out)
    }

    /// The last complete line's hash and number, reading only the tail.
    pub fn tail(&self) -> Result<(String, u64)> {
        let mut f = match fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((String::new(), 0)),
            Err(e) => return Err(e).at(&self.path),
        };
        let len = f.metadata().at(&self.path)?.len();
        let mut window = 64 * 1024u64;
        loop {
            let start = len.saturating_sub(window);
            f.seek(SeekFrom::Start(start)).at(&self.path)?;
            let mut buf = Vec::new();
            f.read_to_end(&mut buf).at(&self.path)?;
            let Some(end) = buf.iter().rposition(|&b| b == b'\n') else {
                if start == 0 {
                    return Ok((String::new(), 0));
                }
                window *= 4;
                continue;
            };
            let body = &buf[..end];
            match body.iter().rposition(|&b| b == b'\n') {
                Some(s) => return Ok(Self::describe(&body[s + 1..])),
                None if start == 0 => return Ok(Self::describe(body)),
                None => window *= 4,
            }
        }
    }

    fn describe(raw: &[u8]) -> (String, u64) {
        let n = std::str::from_utf8(raw)
            .ok()
            .and_then(|t| HistoryLine::parse(t).ok())
            .map(|l| l.n)
            .unwrap_or(0);
        (sha256_hex(raw), n)
    }

    /// Appends an event, chained to the last line, and fsyncs.
    pub fn append(&self, event: &str, data: Map<String, Value>) -> Result<HistoryLine> {
        self.repair_torn()?;
        let (prev, n) = self.tail()?;
        let line = HistoryLine {
            n: n + 1,
            at: clock::rfc3339(clock::now()),
            event: event.to_owned(),
            prev,
            data,
        };
        let mut text = line.to_line();
        text.push('\n');
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .at(&self.path)?;
        f.write_all(text.as_bytes()).at(&self.path)?;
        f.sync_all().at(&self.path)?;
        Ok(line)
    }

    /// Whether the file is missing, empty or ends in `\n` (reads one byte).
    fn ends_clean(&self) -> Result<bool> {
        let mut f = match fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(e).at(&self.path),
        };
        let len = f.metadata().at(&self.path)?.len();
        if len == 0 {
            return Ok(true);
        }
        let mut last = [0u8; 1];
        f.seek(SeekFrom::Start(len - 1)).at(&self.path)?;
        f.read_exact(&mut last).at(&self.path)?;
        Ok(last[0] == b'\n')
    }

    /// If the file ends in a torn line, moves those bytes to `run/` and
    /// replaces them with a `repair` event. Returns whether it repaired.
    pub fn repair_torn(&self) -> Result<bool> {
        if self.ends_clean()? {
            return Ok(false);
        }
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e).at(&self.path),
        };
        let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if keep == bytes.len() {
            return Ok(false);
        }
        let torn = &bytes[keep..];
        atomic::create_dir_all(&self.run_dir)?;
        let saved = self.run_dir.join(format!(
            "torn-history-{}.bin",
            clock::rfc3339(clock::now()).replace(':', "")
        ));
        atomic::write_replace(&saved, torn)?;
        let good = &bytes[..keep];
        let (prev, n) = match good[..good.len().saturating_sub(1)]
            .iter()
            .rposition(|&b| b == b'\n')
        {
            Some(s) => Self::describe(&good[s + 1..good.len() - 1]),
            None if !good.is_empty() => Self::describe(&good[..good.len() - 1]),
            None => (String::new(), 0),
        };
        let mut data = Map::new();
        data.insert("what".into(), "torn last history line moved aside".into());
        data.insert(
            "saved".into(),
            saved
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .into(),
        );
        data.insert("bytes".into(), torn.len().into());
        let line = HistoryLine {
            n: n + 1,
            at: clock::rfc3339(clock::now()),
            event: "repair".into(),
            prev,
            data,
        };
        let mut new = good.to_vec();
        new.extend_from_slice(line.to_line().as_bytes());
        new.push(b'\n');
        atomic::write_replace(&self.path, &new)?;
        Ok(true)
    }
}
