//! Crash-safe file writes: temp file in the same directory → write → fsync
//! → rename (or link, for create-only) → fsync the directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{IoContext, Result};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temp path beside `target`, unique within this process and across
/// processes (pid + counter).
pub fn temp_path(target: &Path) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".tmp-{}-{}-{}", std::process::id(), n, name))
}

/// fsyncs a directory so that renames and creations in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

fn write_temp(target: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let tmp = temp_path(target);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .at(&tmp)?;
    f.write_all(bytes).at(&tmp)?;
    f.sync_all().at(&tmp)?;
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

/// Like [`write_create_only`] but an existing file is success (for
/// content-addressed objects, whose name is their content).
pub fn write_if_absent(target: &Path, bytes: &[u8]) -> Result<bool> {
    match write_create_only(target, bytes) {
        Ok(()) => Ok(true),
        Err(crate::Error::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Creates a directory (and parents) and fsyncs its parent.
pub fn create_dir_all(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).at(dir)?;
    sync_dir(parent(dir))
}
