//! The private vault: `.selfsame/` is `0700`, every directory in it `0700`,
//! every file `0600`, so nothing in it (the soul's objects included) is
//! readable by another local user.
//!
//! New files and directories are created so ([`super::atomic`]). A vault
//! made by an older selfsame is tightened by its next writer: once, while
//! the vault directory itself is not yet `0700` (it is made `0700` last, so
//! an interrupted tightening is taken up again by the next writer, and a
//! private vault costs one `stat` per writer, not a walk of its objects).
//! The same walk removes temp files that writers killed by older versions
//! left beside objects.
//!
//! Not changed: the entries inside `quarantine/` (soul states moved aside,
//! whose modes are the soul's; the `0700` quarantine directory keeps them
//! private), and anything that is not a directory or a regular file
//! (symlinks are never followed; the checks report what does not belong).

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use super::atomic::{DIR_MODE, FILE_MODE};
use crate::error::{Error, IoContext, Result};

/// Whether the vault directory `dir` is private (`0700`).
pub fn is_private(dir: &Path) -> Result<bool> {
    let meta = std::fs::symlink_metadata(dir).at(dir)?;
    Ok(meta.permissions().mode() & 0o7777 == DIR_MODE)
}

/// Makes the vault at `dir` private if it is not yet: every directory
/// `0700`, every regular file `0600`, the vault directory itself last.
/// Returns whether it walked.
pub fn tighten(dir: &Path) -> Result<bool> {
    if is_private(dir)? {
        return Ok(false);
    }
    let fd = rustix::fs::open(dir, dir_flags(), Mode::empty()).map_err(|e| io(dir, e))?;
    walk(&fd, dir, true)?;
    chmod(&fd, dir, DIR_MODE)?;
    Ok(true)
}

/// Opens a directory without following a symlink at its last component.
pub(crate) fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// An error of a system call on `path`.
pub(crate) fn io(path: &Path, e: rustix::io::Errno) -> Error {
    Error::Io {
        path: path.to_owned(),
        source: std::io::Error::from(e),
    }
}

fn chmod(fd: &OwnedFd, path: &Path, mode: u32) -> Result<()> {
    rustix::fs::fchmod(fd, Mode::from_raw_mode(mode)).map_err(|e| io(path, e))
}

/// Tightens everything below the directory `fd` at `path`; `top` is the
/// vault directory itself (whose `quarantine/` keeps its entries' modes).
fn walk(fd: &OwnedFd, path: &Path, top: bool) -> Result<()> {
    for name in names(fd, path)? {
        let child = path.join(std::ffi::OsStr::from_bytes(name.to_bytes()));
        tighten_child(fd, &name, &child, top)?;
    }
    Ok(())
}

/// The names in the directory `fd` (at `path`, for messages), but `.`
/// and `..`.
pub(crate) fn names(fd: &OwnedFd, path: &Path) -> Result<Vec<CString>> {
    let mut dir = rustix::fs::Dir::read_from(fd).map_err(|e| io(path, e))?;
    let mut out = Vec::new();
    while let Some(item) = dir.read() {
        let item = item.map_err(|e| io(path, e))?;
        let name = item.file_name();
        if !matches!(name.to_bytes(), b"." | b"..") {
            out.push(name.to_owned());
        }
    }
    Ok(out)
}

fn tighten_child(parent: &OwnedFd, name: &CStr, path: &Path, top: bool) -> Result<()> {
    let st = match rustix::fs::statat(parent.as_fd(), name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(io(path, e)),
    };
    match FileType::from_raw_mode(st.st_mode as _) {
        FileType::Directory => {
            let fd = rustix::fs::openat(parent.as_fd(), name, dir_flags(), Mode::empty())
                .map_err(|e| io(path, e))?;
            if st.st_mode as u32 & 0o7777 != DIR_MODE {
                chmod(&fd, path, DIR_MODE)?;
            }
            if top && name.to_bytes() == b"quarantine" {
                return Ok(());
            }
            walk(&fd, path, false)
        }
        FileType::RegularFile => {
            if super::atomic::temp_owner(name.to_bytes()).is_some()
                && super::atomic::sweep_one(path)?
            {
                return Ok(());
            }
            if st.st_mode as u32 & 0o7777 == FILE_MODE {
                return Ok(());
            }
            // Opened without following or blocking, and checked again, so
            // a name swapped for something else meanwhile is left alone.
            let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
            let fd = match rustix::fs::openat(parent.as_fd(), name, flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::NOENT | rustix::io::Errno::LOOP) => return Ok(()),
                Err(e) => return Err(io(path, e)),
            };
            let again = rustix::fs::fstat(&fd).map_err(|e| io(path, e))?;
            if FileType::from_raw_mode(again.st_mode as _) == FileType::RegularFile {
                chmod(&fd, path, FILE_MODE)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}
