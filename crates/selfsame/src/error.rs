//! The library's error type. Messages say what failed, on which path, and
//! what to do next; none of them can contain the token.

use std::io;
use std::path::{Path, PathBuf};

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can stop a selfsame operation (as opposed to a verdict,
/// which is a finding about the soul and vault).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No `.selfsame/` here or in a parent.
    #[error("no vault found in {} or its parents; run `selfsame init` there, or pass --vault / set SELFSAME_VAULT", .start.display())]
    NoVault {
        /// Where the search started.
        start: PathBuf,
    },
    /// `init` found an existing vault.
    #[error("a vault already exists at {}; it was left untouched", .0.display())]
    VaultExists(PathBuf),
    /// An I/O operation failed on a path.
    #[error("{}: {source}", shorten(&.path.to_string_lossy()))]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The configuration is invalid.
    #[error("config {}: {message}", .path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A usage mistake the caller can fix.
    #[error("{0}")]
    Usage(String),
    /// The token is missing or malformed.
    #[error("{0}")]
    Token(String),
    /// Another process holds the vault.
    #[error("the vault is busy: {holder}; try again when it finishes")]
    Busy {
        /// Who holds it, as far as known (pid).
        holder: String,
    },
    /// A soul entry selfsame cannot record.
    #[error("soul entry {path}: {reason}; remove it, or add it to `exclude` in config.toml (then `selfsame accept`)")]
    Unsupported {
        /// The entry, relative to the soul (lossy if not UTF-8).
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A soul file or directory this process may not read.
    #[error("cannot read {}: permission denied; make it readable by the user selfsame runs as (chmod, chown), or leave it out with an `exclude` glob in config.toml (then `selfsame accept`)", .path.display())]
    Unreadable {
        /// The file or directory.
        path: PathBuf,
    },
    /// The operation was stopped before it finished (its result was no
    /// longer wanted).
    #[error("stopped before it finished")]
    Stopped,
    /// A file kept changing while selfsame read it.
    #[error("{} changed while it was being hashed ({tries} tries); seal at a quiescent point, or stop the writer", .path.display())]
    FileChanging {
        /// The file.
        path: PathBuf,
        /// How many times it was read.
        tries: u32,
    },
    /// A stored object is missing (hex hash); the vault is damaged.
    #[error("vault damaged: object {0} is missing; run `selfsame verify` for the full list")]
    ObjectMissing(String),
    /// The vault is damaged; `selfsame verify` lists the problems.
    #[error("vault damaged: {0}; run `selfsame verify` for the full list")]
    Corrupt(String),
    /// The token belongs to another bot, or does not verify the vault.
    #[error("identity mismatch: {0}")]
    Identity(String),
    /// A checkpoint asked for does not exist.
    #[error("no checkpoint {0}; `selfsame log` lists them")]
    NoSuchCheckpoint(String),
    /// Fields asked of a new checkpoint were refused (a caller's mistake;
    /// nothing was written).
    #[error("cannot seal: {0}")]
    Field(#[from] crate::format::checkpoint::FieldError),
    /// An interrupted restore must be finished or undone first.
    #[error("an interrupted restore is pending ({0}); run `selfsame wake` (or `selfsame restore --resume`) to finish it, or `selfsame restore --abort` to undo it")]
    RestorePending(String),
    /// The soul directory cannot be written: its permissions, a read-only
    /// mount or an immutable attribute.
    #[error("the soul directory {} is not writable ({}: {source}); {next}", .soul.display(), .path.display())]
    SoulNotWritable {
        /// The soul directory.
        soul: PathBuf,
        /// What could not be written.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
        /// What the owner can do.
        next: String,
    },
}

impl Error {
    /// The process exit code for this error (DESIGN.md: 2 usage or config,
    /// 4 identity, 5 damaged vault, 75 busy, 1 anything else).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::NoVault { .. }
            | Error::VaultExists(_)
            | Error::Config { .. }
            | Error::Usage(_)
            | Error::Token(_)
            | Error::NoSuchCheckpoint(_)
            | Error::Field(_) => 2,
            Error::Identity(_) => 4,
            Error::Corrupt(_) | Error::ObjectMissing(_) => 5,
            Error::Busy { .. } => 75,
            _ => 1,
        }
    }
}

/// A path as it appears in a message: whole when it is of a sensible
/// length, else its start and end around `…` with its length, so that a
/// path of kilobytes does not become a message of kilobytes.
pub fn shorten(path: &str) -> String {
    const KEEP: usize = 100;
    if path.len() <= 2 * KEEP + 40 {
        return path.to_owned();
    }
    let mut head = KEEP;
    while !path.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = path.len() - KEEP;
    while !path.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{}…{} ({} bytes)", &path[..head], &path[tail..], path.len())
}

/// Attaches a path to an I/O error.
pub trait IoContext<T> {
    /// Wraps the error as [`Error::Io`] with `path`.
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })
    }
}
