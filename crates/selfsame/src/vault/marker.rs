//! `run/awake`, the awake marker: written by a wake that lets the agent
//! start, removed by a `rest` seal. A valid marker for the head at the
//! next wake means the last run did not stop cleanly (`drifted`).

use std::fs;
use std::path::PathBuf;

use super::{atomic, read, StoredCheckpoint, Vault};
use crate::crypto::Keys;
use crate::error::{Error, IoContext, Result};
use crate::format::marker::{self, Marker};
use crate::format::time::rfc3339;

impl Vault {
    fn marker_path(&self) -> PathBuf {
        self.run_dir().join("awake")
    }

    /// Writes `run/awake` for `head`: its seq, its file hash, the time and
    /// the pid, signed with the checkpoint key.
    pub(crate) fn write_marker(&self, keys: &Keys, head: &StoredCheckpoint) -> Result<()> {
        self.write_marker_for(keys, head, None)
    }

    /// Writes `run/awake` valid for `head` and also for the checkpoint
    /// `next` (seq, file hash) that a seal is about to write, so a crash
    /// between the checkpoint and the marker's move still reads as a crash.
    pub(crate) fn write_marker_ahead(
        &self,
        keys: &Keys,
        head: &StoredCheckpoint,
        next: (u64, &str),
    ) -> Result<()> {
        self.write_marker_for(keys, head, Some(next))
    }

    fn write_marker_for(
        &self,
        keys: &Keys,
        head: &StoredCheckpoint,
        next: Option<(u64, &str)>,
    ) -> Result<()> {
        let m = Marker {
            head: (head.ckpt.seq, head.file_hash.clone()),
            next: next.map(|(seq, hash)| (seq, hash.to_owned())),
            at: rfc3339(self.now()),
            pid: std::process::id(),
        };
        let text = keys.sign_marker(m.fields());
        atomic::write_replace(&self.marker_path(), text.as_bytes())
    }

    /// Whether a valid awake marker for `head` is present. A marker with a
    /// bad MAC, or naming another checkpoint, counts as absent; one that
    /// cannot be read (a failing disk) fails the caller.
    pub(crate) fn marker_valid(&self, keys: &Keys, head: &StoredCheckpoint) -> Result<bool> {
        // A marker that is not a regular file (or too big) counts as
        // absent here; the checks report it.
        let bytes = match read::read_capped(&self.marker_path(), read::MAX_RUN_FILE) {
            Ok(Some(bytes)) => bytes,
            Ok(None) | Err(Error::Corrupt { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        Ok(marker::parse(&bytes).is_some_and(|f| {
            keys.marker_valid(&f) && marker::names(&f, head.ckpt.seq, &head.file_hash)
        }))
    }

    /// Whether any `run/awake` file exists (valid or not).
    pub fn marker_present(&self) -> bool {
        read::present(&self.marker_path())
    }

    /// The damage of `run/awake` when it is there but is not a regular
    /// file or is too big to be a marker.
    pub(crate) fn marker_problem(&self) -> Option<Error> {
        match read::read_capped(&self.marker_path(), read::MAX_RUN_FILE) {
            Err(e @ Error::Corrupt { .. }) => Some(e),
            _ => None,
        }
    }

    /// Removes the awake marker.
    pub(crate) fn remove_marker(&self) -> Result<()> {
        match fs::remove_file(self.marker_path()) {
            Ok(()) => atomic::sync_dir(&self.run_dir()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).at(&self.marker_path()),
        }
    }
}
