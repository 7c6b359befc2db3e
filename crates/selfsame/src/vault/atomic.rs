//! Crash-safe file writes: temp file in the same directory → write → fsync
//! → rename (or link, for create-only) → fsync the directory. Files are
//! created `0600` and directories `0700`: the vault is private.
//!
//! Temp files are named `.tmp-<pid>-<counter>-<name>`, so a writer holding
//! the vault lock can tell the temp files of a writer that died (its pid is
//! gone) and remove them ([`sweep_temps`]).

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{IoContext, Result};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Permission bits of every file selfsame creates in the vault.
pub const FILE_MODE: u32 = 0o600;
/// Permission bits of every directory selfsame creates in the vault.
pub const DIR_MODE: u32 = 0o700;

/// The prefix of every temp file's name.
pub const TEMP_PREFIX: &str = ".tmp-";

/// A temp path beside `target`, unique within this process and across
/// processes (pid + counter).
pub fn temp_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    temp_in(parent(target), &name)
}

/// A temp path in `dir` for a file to be named `name`, unique within this
/// process and across processes (pid + counter).
pub fn temp_in(dir: &Path, name: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(
        "{TEMP_PREFIX}{}-{}-{}",
        std::process::id(),
        n,
        name
    ))
}

/// Opens a new file for writing, `0600`, failing if the name exists (so a
/// symlink planted at the name is never followed).
pub fn create_new(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
        .at(path)
}

/// The pid in a temp file's name, when `name` is one.
pub fn temp_owner(name: &[u8]) -> Option<u32> {
    let rest = name.strip_prefix(TEMP_PREFIX.as_bytes())?;
    let end = rest.iter().position(|&b| b == b'-')?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// Whether the temp file named `name` belongs to no live process: its pid
/// is gone (a writer killed mid-write), or the name carries no pid at all.
/// Our own temp files and those of a live process are never stale.
fn stale(name: &[u8]) -> bool {
    match temp_owner(name) {
        Some(pid) if pid == std::process::id() => false,
        Some(pid) => !pid_alive(pid),
        None => name.starts_with(TEMP_PREFIX.as_bytes()),
    }
}

/// Whether a process with this pid exists (ours or anyone's).
pub(crate) fn pid_alive(pid: u32) -> bool {
    match i32::try_from(pid) {
        Ok(p) if p > 0 => !matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None),
            Err(nix::errno::Errno::ESRCH)
        ),
        _ => false,
    }
}

/// The temp files in `dir` that no live writer owns, with their sizes.
pub fn stale_temps(dir: &Path) -> Vec<(PathBuf, u64)> {
    list_stale(dir).unwrap_or_default()
}

/// [`stale_temps`], or why `dir` could not be listed (a missing one has
/// none).
fn list_stale(dir: &Path) -> io::Result<Vec<(PathBuf, u64)>> {
    use std::os::unix::ffi::OsStrExt;
    let items = match fs::read_dir(dir) {
        Ok(items) => items,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out: Vec<(PathBuf, u64)> = items
        .flatten()
        .filter(|e| stale(e.file_name().as_bytes()))
        .map(|e| {
            let size = e.metadata().map_or(0, |m| m.len());
            (e.path(), size)
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Removes the temp file at `path` if no live writer owns it; returns
/// whether it did.
pub fn sweep_one(path: &Path) -> Result<bool> {
    use std::os::unix::ffi::OsStrExt;
    let name = path.file_name().map(|n| n.as_bytes()).unwrap_or_default();
    if !stale(name) {
        return Ok(false);
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e).at(path),
    }
}

/// Removes the temp files in `dir` that no live writer owns (the caller
/// holds the vault lock, so no other writer is live; a process that writes
/// without the lock is still running and keeps its own). Returns how many.
pub fn sweep_temps(dir: &Path) -> Result<usize> {
    let stale = list_stale(dir).at(dir)?;
    for (path, _) in &stale {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).at(path),
        }
    }
    Ok(stale.len())
}

/// fsyncs a directory so that renames and creations in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

fn write_temp(target: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let tmp = temp_path(target);
    let mut f = create_new(&tmp)?;
    // A full disk or an I/O error leaves no temp file behind.
    if let Err(e) = f.write_all(bytes).and_then(|()| f.sync_all()) {
        drop(f);
        let _ = fs::remove_file(&tmp);
        return Err(e).at(&tmp);
    }
    Ok(tmp)
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Replaces `target` with `bytes` atomically and durably.
pub fn write_replace(target: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = write_temp(target, bytes)?;
    if let Err(e) = fs::rename(&tmp, target) {
        let _ = fs::remove_file(&tmp);
        return Err(e).at(target);
    }
    sync_dir(parent(target))
}

/// Creates `target` with `bytes`, never overwriting: if it exists the call
/// fails with `AlreadyExists` and the existing file is untouched.
pub fn write_create_only(target: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = write_temp(target, bytes)?;
    let linked = fs::hard_link(&tmp, target);
    let _ = fs::remove_file(&tmp);
    linked.at(target)?;
    sync_dir(parent(target))
}

/// Creates `target` with `bytes` through the temp file `tmp` (in another
/// directory of the same filesystem), never overwriting; an existing
/// `target` is success, `Ok(false)` (for content-addressed objects, whose
/// name is their content).
pub fn write_if_absent_via(tmp: &Path, target: &Path, bytes: &[u8]) -> Result<bool> {
    let mut f = create_new(tmp)?;
    if let Err(e) = f.write_all(bytes).and_then(|()| f.sync_all()) {
        drop(f);
        let _ = fs::remove_file(tmp);
        return Err(e).at(tmp);
    }
    let linked = fs::hard_link(tmp, target);
    let _ = fs::remove_file(tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(e).at(target),
    }
    sync_dir(parent(target))?;
    Ok(true)
}

/// Creates a directory (and parents), `0700`, and fsyncs its parent.
pub fn create_dir_all(dir: &Path) -> Result<()> {
    if fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    private_dir(dir)?;
    sync_dir(parent(dir))
}

/// Creates a directory (and parents) `0700`, without an fsync.
pub fn private_dir(dir: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .at(dir)
}
