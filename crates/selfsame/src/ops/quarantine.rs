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

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{json, Map};

use super::head::require_head;
use crate::crypto::{Credential, Keys};
use crate::error::{Damage, Error, IoContext, Result};
use crate::format::time::{parse_stamp, rfc3339};
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
    let items = match fs::read_dir(&dir) {
        Ok(items) => items,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).at(&dir),
    };
    let mut out = Vec::new();
    for item in items {
        let item = item.at(&dir)?;
        let name = item.file_name().to_string_lossy().into_owned();
        let path = item.path();
        let meta = fs::symlink_metadata(&path).at(&path)?;
        let (files, bytes) = measure(&path, &meta)?;
        let time = parse_stamp(&name)
            .unwrap_or_else(|| UNIX_EPOCH + Duration::from_secs(meta.mtime().max(0) as u64));
        out.push(Entry {
            pending: pending.as_deref().is_some_and(|p| name.starts_with(p)),
            id: name,
            at: rfc3339(time),
            kind: if meta.is_dir() {
                "dir"
            } else if meta.file_type().is_symlink() {
                "symlink"
            } else {
                "file"
            },
            files,
            bytes,
            time,
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
                "quarantine has no entry {id:?} (in {})",
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
    for e in &report.dropped {
        remove_tree(&dir.join(&e.id))?;
    }
    crate::vault::atomic::sync_dir(&dir)?;
    Ok(report)
}

/// Files and bytes below `path` (never following a symlink).
fn measure(path: &Path, meta: &fs::Metadata) -> Result<(u64, u64)> {
    if !meta.is_dir() {
        return Ok(if meta.is_file() {
            (1, meta.len())
        } else {
            (0, 0)
        });
    }
    let (mut files, mut bytes) = (0, 0);
    for item in fs::read_dir(path).at(path)? {
        let p = item.at(path)?.path();
        let m = fs::symlink_metadata(&p).at(&p)?;
        let (f, b) = measure(&p, &m)?;
        files += f;
        bytes += b;
    }
    Ok((files, bytes))
}

/// Removes `path` and everything below it, never following a symlink. A
/// soul state keeps its own modes in quarantine; a directory its owner
/// cannot write is made writable first (inside the private quarantine).
fn remove_tree(path: &Path) -> Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).at(path),
    };
    if !meta.is_dir() {
        return match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e).at(path),
            _ => Ok(()),
        };
    }
    if meta.permissions().mode() & 0o700 != 0o700 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o700)).at(path)?;
    }
    for item in fs::read_dir(path).at(path)? {
        remove_tree(&item.at(path)?.path())?;
    }
    match fs::remove_dir(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e).at(path),
        _ => Ok(()),
    }
}
