//! The restore work dir `<soul>/.selfsame-restore` and its `new/` and
//! `old/`. A restore makes them itself and records each one's device,
//! inode and birth time in the MAC'd journal; before a resume (or an undo) touches
//! anything inside them again, each is looked at without following
//! symlinks and must be the directory recorded. Anything else — a symlink
//! planted while the restore was interrupted, another directory — is never
//! acted on: the journal is refused (`bad-journal`).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Damage, Error, IoContext, Result};
use crate::format::journal::{DirId, Journal, WORK_DIR};
use crate::vault::{atomic, Vault};

/// The identity of the directory at `path`, whose `lstat` is `meta`.
fn dir_id(path: &Path, meta: &fs::Metadata) -> DirId {
    use rustix::fs::{statx, AtFlags, StatxFlags, CWD};
    let born = statx(CWD, path, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::BTIME)
        .ok()
        .filter(|x| x.stx_mask & StatxFlags::BTIME.bits() != 0)
        .map(|x| (x.stx_btime.tv_sec, x.stx_btime.tv_nsec));
    DirId {
        dev: meta.dev(),
        ino: meta.ino(),
        born,
    }
}

/// The work dir and the two inside it.
#[derive(Debug, Clone)]
pub(crate) struct WorkDirs {
    pub(crate) soul: PathBuf,
    pub(crate) work: PathBuf,
    pub(crate) new: PathBuf,
    pub(crate) old: PathBuf,
}

/// Whether a check accepts a missing directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// It must be there.
    Present,
    /// It may have been removed already (or not made yet).
    MaybeAbsent,
}

impl WorkDirs {
    pub(crate) fn of(soul: &Path) -> WorkDirs {
        let work = soul.join(WORK_DIR);
        WorkDirs {
            soul: soul.to_owned(),
            new: work.join("new"),
            old: work.join("old"),
            work,
        }
    }

    /// Checks the work dir and, when it is there, `new/` and `old/` inside
    /// it, each against what the journal recorded. A directory the journal
    /// has not recorded (a journal written by an older selfsame, or one made
    /// just before a crash) must be a real directory on the soul's
    /// filesystem. Returns which of work, new, old are present.
    pub(crate) fn check(&self, vault: &Vault, j: &Journal, want: [Want; 3]) -> Result<[bool; 3]> {
        let soul_dev = fs::metadata(&self.soul).at(&self.soul)?.dev();
        let refuse = |path: &Path, why: String| refuse(vault, j, self, path, &why);
        let work = check_one(&self.work, j.work_dir, soul_dev, want[0])
            .map_err(|why| refuse(&self.work, why))?;
        if !work {
            return Ok([false; 3]);
        }
        let new = check_one(&self.new, j.new_dir, soul_dev, want[1])
            .map_err(|why| refuse(&self.new, why))?;
        let old = check_one(&self.old, j.old_dir, soul_dev, want[2])
            .map_err(|why| refuse(&self.old, why))?;
        Ok([work, new, old])
    }
}

/// Looks at `path` without following a symlink: whether it is present, or
/// why it is not the directory wanted.
fn check_one(
    path: &Path,
    recorded: Option<DirId>,
    soul_dev: u64,
    want: Want,
) -> std::result::Result<bool, String> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return match want {
                Want::Present => Err("it is missing".into()),
                Want::MaybeAbsent => Ok(false),
            }
        }
        Err(e) => return Err(e.to_string()),
    };
    if meta.file_type().is_symlink() {
        return Err(match fs::read_link(path) {
            Ok(t) => format!("it is a symlink to {}", t.display()),
            Err(_) => "it is a symlink".into(),
        });
    }
    if !meta.is_dir() {
        return Err("it is not a directory".into());
    }
    match recorded {
        Some(id) if !id.same(&dir_id(path, &meta)) => Err(
            "it is another directory than the one the restore made (device and inode differ)"
                .into(),
        ),
        None if meta.dev() != soul_dev => {
            Err("it is on another filesystem than the soul (a mount point?)".into())
        }
        _ => Ok(true),
    }
}

/// The identity of a directory that was just checked or made.
pub(crate) fn id_of(path: &Path) -> Result<DirId> {
    let meta = fs::symlink_metadata(path).at(path)?;
    Ok(dir_id(path, &meta))
}

/// Makes a directory that must not exist yet (never following anything at
/// its name) and returns its identity, to be recorded in the journal.
/// On an error after the directory was made, it is removed again: nothing
/// records it yet.
pub(crate) fn make(path: &Path) -> Result<DirId> {
    fs::create_dir(path).at(path)?;
    let made = path
        .parent()
        .map_or(Ok(()), atomic::sync_dir)
        .and_then(|()| id_of(path));
    if made.is_err() {
        let _ = fs::remove_dir(path);
    }
    made
}

/// The refusal: what is wrong, that nothing was touched, and how the owner
/// clears it.
fn refuse(vault: &Vault, j: &Journal, dirs: &WorkDirs, path: &Path, why: &str) -> Error {
    Error::corrupt(
        path,
        Damage::WorkDir {
            event: j.event.clone(),
            why: why.to_owned(),
            work: dirs.work.clone(),
            journal: vault.journal_path(),
            quarantine: vault.quarantine_dir(),
        },
    )
}
