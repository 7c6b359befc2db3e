//! Vault locks: OS file locks that the kernel releases when the holder
//! dies, so a `kill -9` never leaves a lock to clean up by hand.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Seek, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, IoContext, LockName, Result};

/// A held lock; released on drop.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Width of the pid field in a lock file: the holder writes its pid
/// right-aligned in this many bytes at offset 0, in one write and with no
/// truncation before it, so a waiter never reads an empty or half-written
/// file (a fresh file is empty only until that one write).
const PID_WIDTH: usize = 10;

/// How long a waiter that gives up keeps trying to read the holder's pid
/// (the holder writes it right after taking the lock).
const PID_READ_WAIT: Duration = Duration::from_millis(500);

/// Takes the exclusive lock on `path`, waiting up to `wait`. The holder's
/// pid is written into the file so a busy error can name it.
pub fn acquire(path: &Path, wait: Duration, lock: LockName) -> Result<Lock> {
    let file = open_lock_file(path)?;
    wait_for(&file, path, wait, lock, File::try_lock)?;
    // One write of the whole field over the previous holder's (only a busy
    // message reads it, so a failed write is no reason to fail).
    let pid = format!("{:>PID_WIDTH$}", std::process::id());
    let mut f = &file;
    let _ = f.rewind().and_then(|()| f.write_all(pid.as_bytes()));
    let _ = file.set_len(PID_WIDTH as u64);
    Ok(Lock { _file: file })
}

/// Takes `path` shared, waiting up to `wait` for an exclusive holder:
/// readers hold it together, writers wait for them. `None` when the lock
/// file does not exist (no writer ever took it). Opened read-only, so a
/// reader that may not write the vault can take it.
pub fn acquire_shared(path: &Path, wait: Duration, lock: LockName) -> Result<Option<Lock>> {
    use rustix::fs::OFlags;
    let flags = OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).at(path),
    };
    wait_for(&file, path, wait, lock, File::try_lock_shared)?;
    Ok(Some(Lock { _file: file }))
}

/// Takes `file`'s lock with `take`, trying again until `wait` has passed;
/// then the lock is busy, and the error names its holder.
fn wait_for(
    file: &File,
    path: &Path,
    wait: Duration,
    lock: LockName,
    take: fn(&File) -> std::result::Result<(), TryLockError>,
) -> Result<()> {
    let deadline = Instant::now() + wait;
    loop {
        match take(file) {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(25));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Busy {
                    lock,
                    pid: holder_pid(file),
                })
            }
            Err(TryLockError::Error(e)) => return Err(e).at(path),
        }
    }
}

/// Opens (creating, `0600`) a lock file without following a symlink or
/// blocking on a FIFO; it must be a regular file.
fn open_lock_file(path: &Path) -> Result<File> {
    use rustix::fs::OFlags;
    let flags = OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let file = match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(super::atomic::FILE_MODE)
        .custom_flags(flags.bits() as i32)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            return Err(super::read::not_regular(path, "a symbolic link"))
        }
        Err(e) => return Err(e).at(path),
    };
    let ft = file.metadata().at(path)?.file_type();
    if !ft.is_file() {
        return Err(super::read::not_regular(path, super::read::kind(ft)));
    }
    Ok(file)
}

/// The pid the lock's holder wrote, read again for a short while when the
/// file is still empty or names a process that is gone (the holder has the
/// lock but has not written yet).
fn holder_pid(file: &File) -> Option<u32> {
    let until = Instant::now() + PID_READ_WAIT;
    loop {
        let mut buf = [0u8; 32];
        let n = file.read_at(&mut buf, 0).unwrap_or(0);
        // A pid that is gone was the previous holder's: the new one has
        // not written its own yet.
        let pid = std::str::from_utf8(&buf[..n])
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .filter(|&p| super::atomic::pid_alive(p));
        if pid.is_some() || Instant::now() >= until {
            return pid;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiter_names_the_pid_even_when_the_holder_has_not_written_it_yet() {
        // The holder's steps, with a pause between locking and writing the
        // pid that a waiter giving up at once falls into.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let holder = open_lock_file(&path).unwrap();
        holder.try_lock().unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            holder
                .write_all_at(format!("{:>10}", std::process::id()).as_bytes(), 0)
                .unwrap();
            holder
        });
        match acquire(&path, Duration::ZERO, LockName::Vault) {
            Err(Error::Busy { lock, pid }) => {
                assert_eq!((lock, pid), (LockName::Vault, Some(std::process::id())))
            }
            other => panic!("expected busy, got {other:?}"),
        }
        drop(writer.join().unwrap());
        // Released: taken, and the file then holds our pid.
        let _held = acquire(&path, Duration::ZERO, LockName::Vault).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
    }
}
