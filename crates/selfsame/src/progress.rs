//! Progress reporting. The library never touches the terminal; the caller
//! implements [`Progress`] (the CLI draws a bar on a TTY).

/// What a long operation is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Hashing the soul's files (seal, wake, status, diff).
    Hash,
    /// Writing a checkpoint's files into a staging directory (restore).
    Restore,
    /// Re-hashing stored objects (verify --read-data).
    Verify,
    /// Sending objects to the remote replica (push).
    Upload,
    /// Fetching objects from the remote replica (clone).
    Download,
    /// Going through checkpoints or their manifests (forget, prune): the
    /// work is counted in checkpoints, not bytes.
    Scan,
    /// Removing objects no kept checkpoint needs (prune): the bytes the
    /// store frees, with no total known beforehand (0).
    Delete,
}

/// Receives progress. All methods have empty defaults.
pub trait Progress: Sync {
    /// A phase starts with this much work.
    fn start(&self, _phase: Phase, _files: u64, _bytes: u64) {}
    /// `bytes` more of the current phase are done.
    fn advance(&self, _bytes: u64) {}
    /// The current phase ended.
    fn finish(&self) {}
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {}
