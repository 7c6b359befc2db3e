//! Reading vault files safely. Every vault file is opened without following
//! a symlink and without blocking (a FIFO or a device put in its place
//! would otherwise hang the reader or feed it without end), must then be a
//! regular file, and is read no further than it can plausibly be.
//! Anything else is damage: [`Error::Corrupt`], naming the file.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{Damage, Error, IoContext, Result};

/// Longest plausible `HEAD` (a seq and a newline).
pub const MAX_HEAD: u64 = 64;
/// Longest plausible `format` file.
pub const MAX_FORMAT: u64 = 64;
/// Longest plausible checkpoint file: a few hundred bytes of fields, a
/// shell string and a few extra fields.
pub const MAX_CHECKPOINT: u64 = 16 * 1024;
/// Longest plausible `config.toml`.
pub const MAX_CONFIG: u64 = 1 << 20;
/// Longest plausible small file in `run/` (the awake marker, the restore
/// journal, the boot assessment).
pub const MAX_RUN_FILE: u64 = 1 << 20;

/// The open flags for every read of a vault file: no symlink followed, no
/// wait on a FIFO (or a device), closed on exec.
fn flags() -> i32 {
    use rustix::fs::OFlags;
    (OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC).bits() as i32
}

/// Opens the vault file `path` for reading: `None` when it does not exist,
/// [`Error::Corrupt`] when it is not a regular file.
pub fn open(path: &Path) -> Result<Option<(File, u64)>> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(flags())
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(not_regular(path, "a symbolic link"));
        }
        Err(e) => return Err(e).at(path),
    };
    let meta = file.metadata().at(path)?;
    let ft = meta.file_type();
    if !ft.is_file() {
        return Err(not_regular(path, kind(ft)));
    }
    Ok(Some((file, meta.len())))
}

/// What something that is not a regular file is, for messages.
pub(crate) fn kind(ft: std::fs::FileType) -> &'static str {
    if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() || ft.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// The error for a vault file that is not a regular file.
pub fn not_regular(path: &Path, what: &'static str) -> Error {
    Error::corrupt(path, Damage::NotRegular(what))
}

/// Reads the vault file `path` whole, refusing one larger than `cap`
/// bytes; `None` when it does not exist.
pub fn read_capped(path: &Path, cap: u64) -> Result<Option<Vec<u8>>> {
    let Some((file, len)) = open(path)? else {
        return Ok(None);
    };
    if len > cap {
        return Err(too_big(path, len, cap));
    }
    // Sized by the file's length when opened: one read, not a dozen
    // growing ones (a cache of megabytes is read on every seal).
    let mut out = Vec::with_capacity(len as usize + 1);
    file.take(cap + 1).read_to_end(&mut out).at(path)?;
    if out.len() as u64 > cap {
        return Err(too_big(path, out.len() as u64, cap));
    }
    Ok(Some(out))
}

/// Reads a regular vault file whole: its size when opened bounds the read
/// (a file that grows meanwhile is read up to that size, plus what an
/// append added, never without end); `None` when it does not exist.
pub fn read_all(path: &Path) -> Result<Option<Vec<u8>>> {
    let Some((file, len)) = open(path)? else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(len as usize);
    file.take(len)
        .read_to_end(&mut out)
        .map(|_| Some(out))
        .at(path)
}

fn too_big(path: &Path, len: u64, cap: u64) -> Error {
    Error::corrupt(path, Damage::TooBig { len, cap })
}

/// Whether something (of any kind) is at `path`, without following a
/// symlink.
pub fn present(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Checks that `path`, when it exists, is a regular file (a symlink, a
/// FIFO or a device there is damage), without opening it.
pub(crate) fn own_file(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(m) => Err(not_regular(path, kind(m.file_type()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).at(path),
    }
}

/// Checks that `dir`, when it exists, is a directory and not a symlink to
/// one: the vault's directories are never followed out of the vault.
pub(crate) fn own_dir(dir: &Path) -> Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(m) => Err(Error::corrupt(
            dir,
            Damage::NotADirectory(if m.file_type().is_symlink() {
                "a symbolic link"
            } else {
                "a file"
            }),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).at(dir),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::{mknodat, FileType, Mode, CWD};

    #[test]
    fn a_fifo_a_symlink_and_a_big_file_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        mknodat(CWD, &fifo, FileType::Fifo, Mode::RUSR | Mode::WUSR, 0).unwrap();
        let damage = |r: Result<Option<Vec<u8>>>| match r {
            Err(Error::Corrupt { damage, .. }) => Some(*damage),
            _ => None,
        };
        assert_eq!(
            damage(read_capped(&fifo, 10)),
            Some(Damage::NotRegular("a FIFO"))
        );
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert_eq!(
            damage(read_all(&link)),
            Some(Damage::NotRegular("a symbolic link"))
        );
        let big = dir.path().join("big");
        std::fs::write(&big, [7u8; 11]).unwrap();
        assert_eq!(
            damage(read_capped(&big, 10)),
            Some(Damage::TooBig { len: 11, cap: 10 })
        );
        assert_eq!(read_capped(&big, 11).unwrap().unwrap(), vec![7u8; 11]);
        assert_eq!(read_capped(&dir.path().join("none"), 10).unwrap(), None);
        assert_eq!(
            damage(read_all(Path::new("/dev/zero"))),
            Some(Damage::NotRegular("a device"))
        );
    }
}
