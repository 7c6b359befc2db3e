//! The content-addressed object store: `objects/ab/cdef…`, named by the
//! SHA-256 of the bytes, create-only, re-hashed on read.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::atomic;
use crate::error::{Error, IoContext, Result};

/// Files up to this size are read whole; larger ones are streamed.
pub const SMALL: u64 = 1 << 20;
/// Read buffer for streaming.
pub const CHUNK: usize = 256 * 1024;

/// The object store of one vault.
#[derive(Debug, Clone)]
pub struct Objects {
    root: PathBuf,
    deferred: bool,
}

impl Objects {
    /// The store rooted at `root` (`.selfsame/objects`).
    pub fn new(root: PathBuf) -> Self {
        Objects {
            root,
            deferred: false,
        }
    }

    /// A store whose writes are made durable together by [`Objects::sync`]
    /// (one `syncfs`) instead of one fsync per file and directory. Objects
    /// still appear under their name only when complete (temp file, then
    /// link); the caller must call `sync` before anything refers to them.
    pub fn deferred(mut self) -> Self {
        self.deferred = true;
        self
    }

    /// Makes every object written so far durable (deferred mode).
    pub fn sync(&self) -> Result<()> {
        if !self.deferred || !self.root.is_dir() {
            return Ok(());
        }
        let dir = File::open(&self.root).at(&self.root)?;
        rustix::fs::syncfs(&dir)
            .map_err(std::io::Error::from)
            .at(&self.root)
    }

    fn make_dir(&self, dir: &Path) -> Result<()> {
        if self.deferred {
            fs::create_dir_all(dir).at(dir)
        } else {
            atomic::create_dir_all(dir)
        }
    }

    /// Where the object `hash` lives.
    pub fn path(&self, hash: &[u8; 32]) -> PathBuf {
        let hex = hex::encode(hash);
        self.root.join(&hex[..2]).join(&hex[2..])
    }

    /// Whether the object exists, and its size if so.
    pub fn size_of(&self, hash: &[u8; 32]) -> Option<u64> {
        fs::metadata(self.path(hash))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    }

    /// Stores `bytes` whose hash the caller computed. Returns whether a new
    /// object was written; an existing one is never rewritten.
    pub fn put(&self, hash: &[u8; 32], bytes: &[u8]) -> Result<bool> {
        let path = self.path(hash);
        if path.is_file() {
            return Ok(false);
        }
        self.make_dir(path.parent().expect("object paths have a parent"))?;
        if !self.deferred {
            return atomic::write_if_absent(&path, bytes);
        }
        let tmp = atomic::temp_path(&path);
        let written =
            fs::write(&tmp, bytes)
                .at(&tmp)
                .and_then(|()| match fs::hard_link(&tmp, &path) {
                    Ok(()) => Ok(true),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                    Err(e) => Err(e).at(&path),
                });
        let _ = fs::remove_file(&tmp);
        written
    }

    /// Streams `reader` into the store while hashing it. Returns the hash,
    /// the byte count and whether a new object was written.
    pub fn put_stream(
        &self,
        reader: &mut dyn Read,
        on_bytes: &dyn Fn(u64),
    ) -> Result<([u8; 32], u64, bool)> {
        let tmp_dir = self.root.join("tmp");
        self.make_dir(&tmp_dir)?;
        let tmp = atomic::temp_path(&tmp_dir.join("stream"));
        let result = (|| {
            let mut out = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .at(&tmp)?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; CHUNK];
            let mut total = 0u64;
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e).at(&tmp),
                };
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n]).at(&tmp)?;
                total += n as u64;
                on_bytes(n as u64);
            }
            let hash: [u8; 32] = hasher.finalize().into();
            let path = self.path(&hash);
            if path.is_file() {
                return Ok((hash, total, false));
            }
            if !self.deferred {
                out.sync_all().at(&tmp)?;
            }
            let dir = path.parent().expect("object paths have a parent");
            self.make_dir(dir)?;
            match fs::hard_link(&tmp, &path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Ok((hash, total, false))
                }
                Err(e) => return Err(e).at(&path),
            }
            if !self.deferred {
                atomic::sync_dir(dir)?;
            }
            Ok((hash, total, true))
        })();
        let _ = fs::remove_file(&tmp);
        result
    }

    /// Reads a whole object, checking its hash.
    pub fn read(&self, hash: &[u8; 32]) -> Result<Vec<u8>> {
        let path = self.path(hash);
        let bytes = fs::read(&path).map_err(|e| self.missing(hash, &path, e))?;
        if crate::crypto::sha256(&bytes) != *hash {
            return Err(Error::Corrupt(format!(
                "object {} does not match its hash",
                path.display()
            )));
        }
        Ok(bytes)
    }

    /// Opens an object for streaming; the caller must check the hash of
    /// what it read (see [`Objects::copy_to`]).
    pub fn open(&self, hash: &[u8; 32]) -> Result<File> {
        let path = self.path(hash);
        File::open(&path).map_err(|e| self.missing(hash, &path, e))
    }

    /// Copies an object into `dest` (created new), re-hashing as it goes;
    /// fails without leaving `dest` complete if the bytes do not match.
    pub fn copy_to(&self, hash: &[u8; 32], dest: &Path, on_bytes: &dyn Fn(u64)) -> Result<u64> {
        let mut src = self.open(hash)?;
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dest)
            .at(dest)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0;
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).at(&self.path(hash)),
            };
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).at(dest)?;
            total += n as u64;
            on_bytes(n as u64);
        }
        if <[u8; 32]>::from(hasher.finalize()) != *hash {
            return Err(Error::Corrupt(format!(
                "object {} does not match its hash",
                self.path(hash).display()
            )));
        }
        out.sync_all().at(dest)?;
        Ok(total)
    }

    /// Re-hashes an object without keeping it; returns its size.
    pub fn check(&self, hash: &[u8; 32], on_bytes: &dyn Fn(u64)) -> Result<u64> {
        let mut src = self.open(hash)?;
        let (got, size) = hash_reader(&mut src, on_bytes).at(&self.path(hash))?;
        if got != *hash {
            return Err(Error::Corrupt(format!(
                "object {} does not match its hash",
                self.path(hash).display()
            )));
        }
        Ok(size)
    }

    fn missing(&self, hash: &[u8; 32], path: &Path, e: io::Error) -> Error {
        if e.kind() == io::ErrorKind::NotFound {
            Error::Corrupt(format!("object {} is missing", hex::encode(hash)))
        } else {
            Error::Io {
                path: path.to_owned(),
                source: e,
            }
        }
    }
}

/// SHA-256 of everything `reader` yields, streaming.
pub fn hash_reader(reader: &mut dyn Read, on_bytes: &dyn Fn(u64)) -> io::Result<([u8; 32], u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
        on_bytes(n as u64);
    }
    Ok((hasher.finalize().into(), total))
}
