//! `run/restore.journal`: the record of a journaled swap (restore,
//! rollback, migrate) in progress. A line with the MAC, then the JSON body
//! (see [`split`]); the MAC is [`crate::crypto`]'s.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The work dir a swap makes inside the soul (same filesystem), with its
/// `new/` and `old/`.
pub const WORK_DIR: &str = ".selfsame-restore";

/// The journal event of a migration.
pub const MIGRATE: &str = "migrate";
/// The events a journal may record.
pub const EVENTS: [&str; 3] = ["restore", "rollback", MIGRATE];

/// The phases of a swap, in order; each is written to the journal before
/// it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SwapPhase {
    /// Write the target's tree into `new/`.
    Stage,
    /// Move the soul's entries into `old/`.
    SwapOut,
    /// Move `new/`'s entries into the soul.
    SwapIn,
    /// Move `old/` into quarantine, remove the work dirs.
    Quarantine,
    /// Seal the soul and log the event.
    Seal,
}

impl SwapPhase {
    /// Every phase with its name in the journal.
    pub const ALL: [(SwapPhase, &'static str); 5] = [
        (SwapPhase::Stage, "stage"),
        (SwapPhase::SwapOut, "swap-out"),
        (SwapPhase::SwapIn, "swap-in"),
        (SwapPhase::Quarantine, "quarantine"),
        (SwapPhase::Seal, "seal"),
    ];

    /// The name in the journal.
    pub fn as_str(self) -> &'static str {
        super::name_of(&Self::ALL, self)
    }
}

/// The steps of an undo (`restore --abort`), in order; each is recorded in
/// the journal before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Undo {
    /// Move what the swap put into the soul back into `new/`.
    Out,
    /// Finish a move of `old/` into quarantine that a crash cut short, so
    /// the previous entries are whole in one place.
    Settle,
    /// Bring the previous entries from quarantine back into `old/`.
    Back,
    /// Move `old/`'s entries back into the soul.
    In,
    /// Put `new/` away, remove the work dirs, log the undo, drop the journal.
    Clean,
}

/// A directory's identity: device and inode, as `lstat` reports them, and
/// its birth time where the filesystem records one (a directory removed
/// and made again at once may get the same inode number; not the same
/// birth time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirId {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Birth time: seconds and nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub born: Option<(i64, u32)>,
}

impl DirId {
    /// Whether `other` (as found now) is this directory. A birth time
    /// missing on either side is not compared.
    pub fn same(&self, other: &DirId) -> bool {
        self.dev == other.dev
            && self.ino == other.ino
            && match (self.born, other.born) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

/// The journal's body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    /// The checkpoint restored (a migration: the one it started from).
    pub target: u64,
    /// The soul hash the swap brings in.
    pub soul: String,
    /// `restore`, `rollback` or `migrate`.
    pub event: String,
    /// The phase reached.
    pub phase: SwapPhase,
    /// The name under `quarantine/` the previous soul goes to.
    pub quarantine: String,
    /// The head before the swap.
    pub head_before: u64,
    /// When it started.
    pub started: String,
    /// A migration's new soul format (event `migrate` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Extra fields for the history event (a migration's tags, duration
    /// and change summary; a restore's quarantined config).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub data: Map<String, Value>,
    /// Hex SHA-256 of the config the operation acts on, the one the head
    /// was sealed with. Absent in journals of older versions: the head's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// The work dir `<soul>/.selfsame-restore`, as made by this operation.
    /// Absent in journals of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_dir: Option<DirId>,
    /// Its `new/`, recorded once staged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_dir: Option<DirId>,
    /// Its `old/`, recorded before the swap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_dir: Option<DirId>,
    /// Set by `restore --abort`: the step of the undo reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<Undo>,
}

/// Why journal bytes are not a journal selfsame wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    /// Not UTF-8.
    #[error("not UTF-8")]
    NotUtf8,
    /// No line break after the MAC.
    #[error("no MAC line")]
    NoMacLine,
    /// The MAC does not verify under the key.
    #[error("its MAC does not verify")]
    BadMac,
    /// The body is not the journal's JSON.
    #[error("{0}")]
    Body(String),
    /// The quarantine name could lead out of `quarantine/`.
    #[error("its quarantine name is not a plain directory name")]
    Quarantine,
    /// An event a journal does not record.
    #[error("unknown event")]
    Event,
}

impl Journal {
    /// The journal of a swap about to stage, whose work dir is made:
    /// nothing staged or swapped yet. The caller sets the soul it brings
    /// in, a migration's format, the event's data and the config.
    pub fn begin(
        event: &str,
        target: u64,
        head_before: u64,
        quarantine: String,
        started: String,
        work_dir: DirId,
    ) -> Journal {
        Journal {
            target,
            soul: String::new(),
            event: event.to_owned(),
            phase: SwapPhase::Stage,
            quarantine,
            head_before,
            started,
            format: None,
            data: Map::new(),
            config: None,
            work_dir: Some(work_dir),
            new_dir: None,
            old_dir: None,
            abort: None,
        }
    }

    /// The body as written (pretty JSON).
    pub fn to_body(&self) -> String {
        serde_json::to_string_pretty(self).expect("journal serializes")
    }

    /// Parses a body and checks what it names: a quarantine name that is a
    /// plain directory name, a known event.
    pub fn parse(body: &str) -> Result<Journal, JournalError> {
        let j: Journal =
            serde_json::from_str(body).map_err(|e| JournalError::Body(e.to_string()))?;
        let plain = !j.quarantine.is_empty()
            && !j.quarantine.contains('/')
            && j.quarantine != "."
            && j.quarantine != ".."
            && !j.quarantine.chars().any(char::is_control);
        if !plain {
            return Err(JournalError::Quarantine);
        }
        if !EVENTS.contains(&j.event.as_str()) {
            return Err(JournalError::Event);
        }
        Ok(j)
    }

    /// Whether this is a migration's journal.
    pub fn migrating(&self) -> bool {
        self.event == MIGRATE
    }
}

/// The file's text: the MAC line, then the body.
pub fn join(mac: &str, body: &str) -> String {
    format!("{mac}\n{body}")
}

/// The file's MAC and body.
pub fn split(bytes: &[u8]) -> Result<(&str, &str), JournalError> {
    let text = std::str::from_utf8(bytes).map_err(|_| JournalError::NotUtf8)?;
    text.split_once('\n').ok_or(JournalError::NoMacLine)
}
