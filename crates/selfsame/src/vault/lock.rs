//! Vault locks: OS file locks that the kernel releases when the holder
//! dies, so a `kill -9` never leaves a lock to clean up by hand.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, IoContext, Result};

/// A held lock; released on drop.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// How long a writer waits for the vault lock before giving up
/// (`SELFSAME_LOCK_WAIT`, a duration such as `10s`; default 5 s).
pub fn default_wait() -> Duration {
    std::env::var("SELFSAME_LOCK_WAIT")
        .ok()
        .and_then(|t| humantime::parse_duration(&t).ok())
        .unwrap_or(Duration::from_secs(5))
}

/// Takes the exclusive lock on `path`, waiting up to `wait`. The holder's
/// pid is written into the file so a busy error can name it.
pub fn acquire(path: &Path, wait: Duration, what: &str) -> Result<Lock> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .at(path)?;
    let deadline = Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(25));
            }
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(Error::Busy {
                    holder: if holder.is_empty() {
                        format!("{what} is held by another process")
                    } else {
                        format!("{what} is held by pid {holder}")
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(e).at(path),
        }
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{}", std::process::id());
    Ok(Lock { _file: file })
}
