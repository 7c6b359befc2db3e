//! `history.jsonl`: append-only, hash-chained events, each with a MAC
//! under the history key (History v2).
//!
//! Appends write one line and fsync. A torn last line (a crash mid-append)
//! is moved to `run/` and replaced by a `repair` event — never silently
//! dropped, never taken for tampering.
//!
//! Anyone can read the history ([`History`]); only a writer holding the
//! token can add to it ([`HistoryWriter`]), and every line it adds carries
//! a MAC. Which lines can be trusted ([`HistoryRead::authenticate`]): a
//! line at or before the newest checkpoint's `log` anchor is vouched for by
//! the checkpoint's MAC through the `prev` chain; a line after it must
//! carry a valid MAC. Once a line with a MAC has been written, a later line
//! without a valid one is forged.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Deref;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{atomic, read};
use crate::crypto::{sha256_hex, Keys};
use crate::error::{Damage, Error, IoContext, Result};
use crate::format::history::signed_body;
use crate::format::time::rfc3339;
use crate::format::HistoryLine;
use crate::settings::Clock;

/// The history file of a vault, for reading.
#[derive(Debug, Clone)]
pub struct History {
    path: PathBuf,
    run_dir: PathBuf,
    clock: Clock,
}

/// The history file of a vault, for writing: every line it appends
/// carries a MAC under the history key of the token it was made with.
#[derive(Debug, Clone)]
pub struct HistoryWriter {
    history: History,
    keys: Keys,
}

/// A history line with its hash.
#[derive(Debug, Clone)]
pub struct Line {
    /// The parsed event.
    pub event: HistoryLine,
    /// Hex SHA-256 of the line's bytes without the newline.
    pub hash: String,
    /// The line's bytes without the newline, exactly as stored.
    pub raw: String,
}

impl Line {
    /// Whether the line carries a MAC (a v2 line).
    pub fn is_signed(&self) -> bool {
        signed_body(&self.raw).is_some()
    }
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

/// Which lines of a history can be trusted (see
/// [`HistoryRead::authenticate`]).
#[derive(Debug, Clone, Default)]
pub struct Authenticity {
    /// Per line of [`HistoryRead::lines`]: vouched for by the anchor's
    /// checkpoint through the chain, or carrying a valid MAC.
    pub trusted: Vec<bool>,
    /// Lines after the anchor that should carry a valid MAC and do not.
    pub forged: Vec<String>,
}

impl HistoryRead {
    /// Parses and checks the lines of a history file's bytes.
    pub fn parse(bytes: &[u8]) -> HistoryRead {
        let mut out = HistoryRead::default();
        let (body, torn) = match bytes.iter().rposition(|&b| b == b'\n') {
            Some(i) => (&bytes[..=i], &bytes[i + 1..]),
            None => (&bytes[..0], bytes),
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
            let text = std::str::from_utf8(raw).ok();
            match text.and_then(|t| HistoryLine::parse(t).ok().map(|e| (t, e))) {
                Some((text, event)) => {
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
                        raw: text.to_owned(),
                    });
                }
                None => out
                    .problems
                    .push(format!("history line {n}: not a JSON event")),
            }
            prev_hash = hash;
        }
        out
    }

    /// Which lines can be trusted, given `anchor` (the newest trusted
    /// checkpoint's `log`: empty, or the hash of a line) and the history
    /// key. A line is trusted when it is the anchor or before it with an
    /// unbroken `prev` chain up to it, or when it carries a MAC that
    /// verifies. A line after the anchor without a valid MAC is forged
    /// when it carries a MAC, or when an earlier line does (from the first
    /// v2 line on, every line is written with one); before the first v2
    /// line, such a line is neither trusted nor forged (written by an older
    /// version, after the newest checkpoint).
    pub fn authenticate(&self, anchor: &str, keys: &Keys) -> Authenticity {
        let mut out = Authenticity {
            trusted: vec![false; self.lines.len()],
            forged: Vec::new(),
        };
        let at = (!anchor.is_empty())
            .then(|| self.lines.iter().position(|l| l.hash == anchor))
            .flatten();
        if let Some(at) = at {
            out.trusted[at] = true;
            for i in (1..=at).rev() {
                let (before, line) = (&self.lines[i - 1], &self.lines[i]);
                if line.event.prev != before.hash || line.event.n != before.event.n + 1 {
                    break;
                }
                out.trusted[i - 1] = true;
            }
        }
        let first_after = at.map_or(0, |a| a + 1);
        let mut signed_seen = self.lines[..first_after].iter().any(Line::is_signed);
        for (i, line) in self.lines.iter().enumerate().skip(first_after) {
            match keys.line_valid(&line.raw) {
                Some(true) => out.trusted[i] = true,
                Some(false) => out.forged.push(format!(
                    "history line {}: its MAC does not verify under this token (a forged or edited line)",
                    line.event.n
                )),
                None if signed_seen => out.forged.push(format!(
                    "history line {}: it has no MAC, but lines before it do (a forged line, or one written by an older selfsame)",
                    line.event.n
                )),
                None => {}
            }
            signed_seen |= line.is_signed();
        }
        out
    }

    /// The lines that can be trusted (see [`HistoryRead::authenticate`]).
    pub fn trusted_lines<'a>(&'a self, anchor: &str, keys: &Keys) -> Vec<&'a Line> {
        let auth = self.authenticate(anchor, keys);
        self.lines
            .iter()
            .zip(auth.trusted)
            .filter_map(|(l, t)| t.then_some(l))
            .collect()
    }
}

impl History {
    /// The history at `path`, with `run_dir` for torn lines.
    pub fn new(path: PathBuf, run_dir: PathBuf) -> Self {
        History {
            path,
            run_dir,
            clock: Clock::default(),
        }
    }

    /// The same file, its new lines timed by `clock`.
    pub(crate) fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The same file, for writing with `keys`' history key.
    pub fn writer(self, keys: &Keys) -> HistoryWriter {
        HistoryWriter {
            history: self,
            keys: keys.clone(),
        }
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's bytes (empty when there is none); not a regular file is
    /// [`Error::Corrupt`].
    fn bytes(&self) -> Result<Vec<u8>> {
        Ok(read::read_all(&self.path)?.unwrap_or_default())
    }

    /// Reads and checks every line.
    pub fn read_all(&self) -> Result<HistoryRead> {
        Ok(HistoryRead::parse(&self.bytes()?))
    }

    /// Opens the file for reading (`None` when there is none).
    fn open(&self) -> Result<Option<(std::fs::File, u64)>> {
        read::open(&self.path)
    }

    /// The complete lines after the one whose hash is `anchor`, and that
    /// line; all of them and `None` when `anchor` is empty or not found.
    /// Reads only as much of the tail as it needs.
    pub fn lines_after(&self, anchor: &str) -> Result<(Option<String>, Vec<String>)> {
        let Some((mut f, len)) = self.open()? else {
            return Ok((None, Vec::new()));
        };
        let mut window = 64 * 1024u64;
        loop {
            let (start, buf) = self.last_bytes(&mut f, len, window)?;
            // Complete lines only: drop a torn tail, and a partial first
            // line unless the window starts the file.
            let end = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let begin = if start == 0 {
                0
            } else {
                buf.iter().position(|&b| b == b'\n').map_or(end, |i| i + 1)
            };
            let mut lines: Vec<String> = buf[begin.min(end)..end]
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| String::from_utf8_lossy(l).into_owned())
                .collect();
            if !anchor.is_empty() {
                if let Some(at) = lines
                    .iter()
                    .rposition(|l| sha256_hex(l.as_bytes()) == anchor)
                {
                    let after = lines.split_off(at + 1);
                    return Ok((lines.pop(), after));
                }
            }
            if start == 0 {
                return Ok((None, lines));
            }
            window *= 4;
        }
    }

    /// The last `window` bytes of the file `f` of `len` bytes (all of it
    /// when shorter), and where they start.
    fn last_bytes(&self, f: &mut std::fs::File, len: u64, window: u64) -> Result<(u64, Vec<u8>)> {
        let start = len.saturating_sub(window);
        f.seek(SeekFrom::Start(start)).at(&self.path)?;
        let mut buf = Vec::new();
        f.take(len - start).read_to_end(&mut buf).at(&self.path)?;
        Ok((start, buf))
    }

    /// The last complete line's hash and number, reading only the tail.
    pub fn tail(&self) -> Result<(String, u64)> {
        let Some((mut f, len)) = self.open()? else {
            return Ok((String::new(), 0));
        };
        let mut window = 64 * 1024u64;
        loop {
            let (start, buf) = self.last_bytes(&mut f, len, window)?;
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

    /// Whether the file is missing, empty or ends in `\n` (reads one byte).
    fn ends_clean(&self) -> Result<bool> {
        let Some((mut f, len)) = self.open()? else {
            return Ok(true);
        };
        if len == 0 {
            return Ok(true);
        }
        let mut last = [0u8; 1];
        f.seek(SeekFrom::Start(len - 1)).at(&self.path)?;
        f.read_exact(&mut last).at(&self.path)?;
        Ok(last[0] == b'\n')
    }
}

impl Deref for HistoryWriter {
    type Target = History;

    fn deref(&self) -> &History {
        &self.history
    }
}

impl HistoryWriter {
    /// Appends an event, chained to the last line and signed, and fsyncs.
    pub fn append(&self, event: &str, data: Map<String, Value>) -> Result<HistoryLine> {
        self.repair_torn()?;
        let (prev, n) = self.tail()?;
        let line = HistoryLine {
            n: n + 1,
            at: rfc3339(self.history.clock.now()),
            event: event.to_owned(),
            prev,
            data,
        };
        let mut text = self.keys.sign_line(&line);
        text.push('\n');
        let path = &self.history.path;
        // Never through a symlink, never waiting on a FIFO; a new file is
        // private.
        let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(atomic::FILE_MODE)
            .custom_flags(flags.bits() as i32)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(c) if c == rustix::io::Errno::LOOP.raw_os_error() => {
                    read::not_regular(path, "a symbolic link")
                }
                _ => Error::Io {
                    path: path.clone(),
                    source: e,
                },
            })?;
        if !f.metadata().at(path)?.is_file() {
            return Err(read::not_regular(path, "not a regular file"));
        }
        f.write_all(text.as_bytes()).at(path)?;
        f.sync_all().at(path)?;
        Ok(line)
    }

    /// The hash of the last line, for a new checkpoint's `log`, once the
    /// lines after `anchor` (the previous checkpoint's `log`) are checked
    /// ([`HistoryWriter::check_after`]): a checkpoint vouches for every
    /// line up to the one it anchors, so a line that is not selfsame's must
    /// not get anchored.
    pub fn anchor_after(&self, anchor: &str) -> Result<String> {
        self.check_after(anchor)?;
        Ok(self.tail()?.0)
    }

    /// Checks the lines after `anchor` (the head checkpoint's `log`), which
    /// no checkpoint vouches for yet: a line with a MAC must verify under
    /// this key; a line without one is accepted only while no line from the
    /// anchor on has one (an older version wrote it). Reads only the tail.
    pub fn check_after(&self, anchor: &str) -> Result<()> {
        let (anchored, lines) = self.lines_after(anchor)?;
        let mut signed_seen = anchored.is_some_and(|l| signed_body(&l).is_some());
        for line in &lines {
            let ok = match self.keys.line_valid(line) {
                Some(valid) => valid,
                None => !signed_seen,
            };
            if !ok {
                let n = HistoryLine::parse(line).map_or(0, |l| l.n);
                return Err(Error::corrupt(&self.history.path, Damage::LineForged(n)));
            }
            signed_seen |= signed_body(line).is_some();
        }
        Ok(())
    }

    /// If the file ends in a torn line, moves those bytes to `run/` and
    /// replaces them with a `repair` event. Returns whether it repaired.
    pub fn repair_torn(&self) -> Result<bool> {
        if self.ends_clean()? {
            return Ok(false);
        }
        let bytes = self.bytes()?;
        let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if keep == bytes.len() {
            return Ok(false);
        }
        let torn = &bytes[keep..];
        let run_dir = &self.history.run_dir;
        atomic::create_dir_all(run_dir)?;
        let saved = run_dir.join(format!(
            "torn-history-{}.bin",
            rfc3339(self.history.clock.now()).replace(':', "")
        ));
        atomic::write_replace(&saved, torn)?;
        let good = &bytes[..keep];
        let (prev, n) = match good[..good.len().saturating_sub(1)]
            .iter()
            .rposition(|&b| b == b'\n')
        {
            Some(s) => History::describe(&good[s + 1..good.len() - 1]),
            None if !good.is_empty() => History::describe(&good[..good.len() - 1]),
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
            at: rfc3339(self.history.clock.now()),
            event: "repair".into(),
            prev,
            data,
        };
        let mut new = good.to_vec();
        new.extend_from_slice(self.keys.sign_line(&line).as_bytes());
        new.push(b'\n');
        atomic::write_replace(&self.history.path, &new)?;
        Ok(true)
    }
}
