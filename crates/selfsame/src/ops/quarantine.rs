//! Quarantine: the soul states that restores, rollbacks, migrations and
//! reverts moved aside, kept under `quarantine/` until the owner lets them
//! go. selfsame never deletes them on its own: [`drop`] and [`prune`] are
//! the owner's commands, and `selfsame run` prunes only when `[retention]
//! quarantine_older_than` is set. Each removal is a `quarantine-drop`
//! history event naming what goes, written before anything is removed.
//!
//! An entry's time is the one its name starts with (every name selfsame
//! gives begins with the moment it was made, `2026-11-25T010030123Z-…`),
//! else its modification time. The entries a pending restore or migration
//! still needs (its quarantine and what goes with it) are never removed.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, Stat};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{json, Map};

use super::head::require_head;
use crate::crypto::{Credential, Keys};
use crate::error::{Damage, Error, Result};
use crate::format::time::{parse_stamp, rfc3339};
use crate::vault::private::{dir_flags, io as errno, names};
use crate::vault::Vault;

/// One entry of `quarantine/`.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Its name under `quarantine/`.
    pub id: String,
    /// When it was quarantined (RFC 3339).
    pub at: String,
    /// `dir`, `file` or `symlink`.
    pub kind: &'static str,
    /// Regular files in it (1 for a file).
    pub files: u64,
    /// Bytes of those files.
    pub bytes: u64,
    /// Whether a pending restore or migration still needs it.
    pub pending: bool,
    #[serde(skip)]
    time: SystemTime,
    /// Its name as it is (`id` is this, lossily, when not UTF-8).
    #[serde(skip)]
    name: CString,
}

/// What a drop or prune removed (or, dry, would remove).
#[derive(Debug, Clone, Serialize)]
pub struct DropReport {
    /// The entries removed.
    pub dropped: Vec<Entry>,
    /// Their bytes.
    pub bytes: u64,
    /// Whether nothing was removed because it was a dry run.
    pub dry_run: bool,
}

/// Lists `quarantine/`, oldest first. Reads only; needs no token.
pub fn list(vault: &Vault) -> Result<Vec<Entry>> {
    let dir = vault.quarantine_dir();
    if let Some(what) = vault.quarantine_problem() {
        return Err(Error::corrupt(&dir, Damage::QuarantineInvalid(what)));
    }
    let pending = vault
        .read_journal(None)
        .ok()
        .flatten()
        .map(|j| j.quarantine);
    let fd = match rustix::fs::open(&dir, dir_flags(), Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(Vec::new()),
        Err(e) => return Err(errno(&dir, e)),
    };
    let mut out = Vec::new();
    for raw in names(&fd, &dir)? {
        let name = String::from_utf8_lossy(raw.to_bytes()).into_owned();
        let path = dir.join(OsStr::from_bytes(raw.to_bytes()));
        let st = match rustix::fs::statat(&fd, &raw, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(rustix::io::Errno::NOENT) => continue,
            Err(e) => return Err(errno(&path, e)),
        };
        let (files, bytes) = measure(fd.as_fd(), &raw, &path, &st)?;
        let time = parse_stamp(&name)
            .unwrap_or_else(|| UNIX_EPOCH + Duration::from_secs(st.st_mtime.max(0) as u64));
        out.push(Entry {
            pending: pending.as_deref().is_some_and(|p| name.starts_with(p)),
            id: name,
            at: rfc3339(time),
            kind: match FileType::from_raw_mode(st.st_mode as _) {
                FileType::Directory => "dir",
                FileType::Symlink => "symlink",
                _ => "file",
            },
            files,
            bytes,
            time,
            name: raw,
        });
    }
    out.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.id.cmp(&b.id)));
    Ok(out)
}

/// Removes the entries `ids` of `quarantine/`, taking the vault lock.
/// Every id must name an entry; one a pending restore or migration needs
/// is refused. Nothing is removed unless all can be.
pub fn drop(vault: &Vault, cred: &Credential, ids: &[String]) -> Result<DropReport> {
    let _lock = vault.lock()?;
    let entries = list(vault)?;
    let mut chosen = Vec::new();
    for id in ids {
        let Some(e) = entries.iter().find(|e| &e.id == id) else {
            return Err(Error::Usage(format!(
                "quarantine has no entry {:?} (in {}; `selfsame quarantine list` shows them)",
                crate::error::shorten(id),
                vault.quarantine_dir().display()
            )));
        };
        if e.pending {
            return Err(Error::Usage(format!(
                "quarantine entry {id} belongs to the pending restore or migration; finish or undo it first"
            )));
        }
        if !chosen.iter().any(|c: &Entry| &c.id == id) {
            chosen.push(e.clone());
        }
    }
    remove(vault, cred, chosen, "drop", false)
}

/// Removes every entry of `quarantine/` older than `older_than` (but those
/// a pending restore or migration needs), taking the vault lock. With
/// `dry_run`, only says which.
pub fn prune(
    vault: &Vault,
    cred: &Credential,
    older_than: Duration,
    dry_run: bool,
) -> Result<DropReport> {
    let _lock = vault.lock()?;
    prune_locked(vault, cred, older_than, dry_run)
}

/// [`prune`] with the vault lock held (after a seal of `selfsame run`).
pub(crate) fn prune_locked(
    vault: &Vault,
    cred: &Credential,
    older_than: Duration,
    dry_run: bool,
) -> Result<DropReport> {
    let now = vault.now();
    let old: Vec<Entry> = list(vault)?
        .into_iter()
        .filter(|e| !e.pending)
        .filter(|e| now.duration_since(e.time).is_ok_and(|age| age > older_than))
        .collect();
    let how = format!("older than {}", humantime::format_duration(older_than));
    remove(vault, cred, old, &how, dry_run)
}

/// Logs the removal of `entries`, then removes them, after checking the token against the
/// head (only the owner's token signs history).
fn remove(
    vault: &Vault,
    cred: &Credential,
    entries: Vec<Entry>,
    why: &str,
    dry_run: bool,
) -> Result<DropReport> {
    let bytes = entries.iter().map(|e| e.bytes).sum();
    let report = DropReport {
        dropped: entries,
        bytes,
        dry_run,
    };
    if dry_run || report.dropped.is_empty() {
        return Ok(report);
    }
    let keys = Keys::of(cred);
    let head = require_head(vault, cred)?;
    let history = vault.history_for(&keys);
    history.check_after(&head.ckpt.log)?;
    // The event first: a removal the history cannot record (a full disk)
    // does not happen, and one cut short by a crash is on record; the
    // entry is still listed, and dropping it again finishes it.
    let mut data = Map::new();
    data.insert(
        "ids".into(),
        json!(report.dropped.iter().map(|e| &e.id).collect::<Vec<_>>()),
    );
    data.insert("bytes".into(), json!(report.bytes));
    data.insert("why".into(), json!(why));
    history.append("quarantine-drop", data)?;
    let dir = vault.quarantine_dir();
    let fd = rustix::fs::open(&dir, dir_flags(), Mode::empty()).map_err(|e| errno(&dir, e))?;
    for e in &report.dropped {
        let path = dir.join(OsStr::from_bytes(e.name.to_bytes()));
        remove_at(fd.as_fd(), &e.name, &path)?;
    }
    crate::vault::atomic::sync_dir(&dir)?;
    Ok(report)
}

/// Files and bytes of `name` in the directory `parent` and below it. Only
/// descriptors are followed down, never a symlink, so no path grows past
/// `PATH_MAX` and nothing swapped in meanwhile leads outside.
fn measure_at(parent: BorrowedFd, name: &CStr, path: &Path) -> Result<(u64, u64)> {
    match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => measure(parent, name, path, &st),
        Err(rustix::io::Errno::NOENT) => Ok((0, 0)),
        Err(e) => Err(errno(path, e)),
    }
}

/// [`measure_at`] of an entry whose stat is `st`.
fn measure(parent: BorrowedFd, name: &CStr, path: &Path, st: &Stat) -> Result<(u64, u64)> {
    match FileType::from_raw_mode(st.st_mode as _) {
        FileType::RegularFile => Ok((1, st.st_size as u64)),
        FileType::Directory => {
            let fd = match rustix::fs::openat(parent, name, dir_flags(), Mode::empty()) {
                Ok(fd) => fd,
                Err(
                    rustix::io::Errno::NOENT | rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR,
                ) => return Ok((0, 0)),
                Err(e) => return Err(errno(path, e)),
            };
            let (mut files, mut bytes) = (0, 0);
            for n in names(&fd, path)? {
                let p = path.join(OsStr::from_bytes(n.to_bytes()));
                let (f, b) = measure_at(fd.as_fd(), &n, &p)?;
                files += f;
                bytes += b;
            }
            Ok((files, bytes))
        }
        _ => Ok((0, 0)),
    }
}

/// Which mount the open directory `fd` is on: its mount id (a bind mount
/// of the same file system has its own), else its device.
fn mount_of(fd: BorrowedFd, path: &Path) -> Result<(u64, u64)> {
    use rustix::fs::StatxFlags;
    match rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID) {
        Ok(x) if x.stx_mask & StatxFlags::MNT_ID.bits() != 0 => Ok((x.stx_mnt_id, 0)),
        Ok(x) => Ok((0, rustix::fs::makedev(x.stx_dev_major, x.stx_dev_minor))),
        Err(rustix::io::Errno::NOSYS) => {
            let st = rustix::fs::fstat(fd).map_err(|e| errno(path, e))?;
            Ok((0, st.st_dev))
        }
        Err(e) => Err(errno(path, e)),
    }
}

/// Removes `name` in the directory `parent` and everything below it,
/// through descriptors only: a symlink is removed, never followed, and a
/// directory swapped for a symlink meanwhile is not entered (the name is
/// looked at again). A soul state keeps its own modes in quarantine; a
/// directory its owner cannot write is made writable first, through its
/// own descriptor. A mount point inside an entry is not descended into.
fn remove_at(parent: BorrowedFd, name: &CStr, path: &Path) -> Result<()> {
    remove_below(parent, mount_of(parent, path)?, name, path)
}

/// [`remove_at`], `parent` being on the mount `mount`.
fn remove_below(parent: BorrowedFd, mount: (u64, u64), name: &CStr, path: &Path) -> Result<()> {
    use rustix::io::Errno;
    for _ in 0..8 {
        let refused = match rustix::fs::unlinkat(parent, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => return Ok(()),
            Err(e @ (Errno::ISDIR | Errno::PERM)) => e,
            Err(e) => return Err(errno(path, e)),
        };
        let fd = match rustix::fs::openat(parent, name, dir_flags(), Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(()),
            // Not a directory: a file the system would not unlink (EPERM)
            // says so; one swapped in for a directory meanwhile is
            // unlinked on the next turn.
            Err(Errno::LOOP | Errno::NOTDIR) if refused == Errno::PERM => {
                return Err(errno(path, refused))
            }
            Err(Errno::LOOP | Errno::NOTDIR) => continue,
            Err(e) => return Err(errno(path, e)),
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| errno(path, e))?;
        if mount_of(fd.as_fd(), path)? != mount {
            return Err(Error::Io {
                path: path.to_owned(),
                source: io::Error::other(
                    "a mount point inside quarantine is not descended into; unmount it, then drop the entry again",
                ),
            });
        }
        if st.st_mode as u32 & 0o700 != 0o700 {
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700)).map_err(|e| errno(path, e))?;
        }
        for n in names(&fd, path)? {
            let p = path.join(OsStr::from_bytes(n.to_bytes()));
            remove_below(fd.as_fd(), mount, &n, &p)?;
        }
        match rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => return Ok(()),
            Err(Errno::NOTDIR) => continue,
            Err(e) => return Err(errno(path, e)),
        }
    }
    Err(Error::Io {
        path: path.to_owned(),
        source: io::Error::other("it kept changing while it was being removed; drop it again"),
    })
}
