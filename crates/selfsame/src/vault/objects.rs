//! The content-addressed object store: `objects/ab/cdef…`, named by the
//! SHA-256 of the bytes, create-only, re-hashed on read.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

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
    deferred: Option<Arc<Pending>>,
}

/// Temp file → final name, for each object not yet published.
type Unpublished = Vec<(PathBuf, PathBuf)>;

/// Objects written in deferred mode whose final names do not exist yet.
#[derive(Debug, Default)]
struct Pending {
    list: Mutex<(Unpublished, HashSet<[u8; 32]>)>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Never linked (the seal failed): the temp files are only ours.
        let list = self.list.get_mut().map(|l| std::mem::take(&mut l.0));
        for (tmp, _) in list.unwrap_or_default() {
            let _ = fs::remove_file(tmp);
        }
    }
}

impl Objects {
    /// The store rooted at `root` (`.selfsame/objects`).
    pub fn new(root: PathBuf) -> Self {
        Objects {
            root,
            deferred: None,
        }
    }

    /// A store that makes its writes durable together: new objects are
    /// written to temp files without an fsync each, and [`Objects::sync`]
    /// flushes them all with one `syncfs`, then links each under its final
    /// name and flushes again. An object therefore never appears under its
    /// name before its bytes are durable; until `sync`, new objects are not
    /// visible at all.
    pub fn deferred(mut self) -> Self {
        self.deferred = Some(Arc::new(Pending::default()));
        self
    }

    /// Publishes the objects written so far in deferred mode, durably.
    pub fn sync(&self) -> Result<()> {
        let Some(pending) = &self.deferred else {
            return Ok(());
        };
        let list = std::mem::take(&mut pending.list.lock().expect("pending list").0);
        if list.is_empty() {
            return Ok(());
        }
        self.syncfs()?;
        for (tmp, path) in &list {
            match fs::hard_link(tmp, path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).at(path),
            }
            let _ = fs::remove_file(tmp);
        }
        self.syncfs()
    }

    fn syncfs(&self) -> Result<()> {
        let dir = File::open(&self.root).at(&self.root)?;
        rustix::fs::syncfs(&dir)
            .map_err(std::io::Error::from)
            .at(&self.root)
    }

    fn make_dir(&self, dir: &Path) -> Result<()> {
        if self.deferred.is_some() {
            fs::create_dir_all(dir).at(dir)
        } else {
            atomic::create_dir_all(dir)
        }
    }

    /// Records a deferred object; false if the same hash is already pending.
    fn defer(&self, hash: &[u8; 32], tmp: PathBuf, path: PathBuf) -> bool {
        let pending = self.deferred.as_ref().expect("deferred mode");
        let mut list = pending.list.lock().expect("pending list");
        if !list.1.insert(*hash) {
            drop(list);
            let _ = fs::remove_file(tmp);
            return false;
        }
        list.0.push((tmp, path));
        true
    }

    /// Where the object `hash` lives.
    pub fn path(&self, hash: &[u8; 32]) -> PathBuf {
        let hex = hex::encode(hash);
        self.root.join(&hex[..2]).join(&hex[2..])
    }

    /// The hashes of every object present, from directory listings alone
    /// (one `getdents` per fan-out directory, no stat per object).
    pub fn list(&self) -> HashSet<[u8; 32]> {
        let mut out = HashSet::new();
        let Ok(dirs) = fs::read_dir(&self.root) else {
            return out;
        };
        for dir in dirs.flatten() {
            let prefix = dir.file_name();
            let Some(prefix) = prefix.to_str().filter(|p| p.len() == 2) else {
                continue;
            };
            let Ok(items) = fs::read_dir(dir.path()) else {
                continue;
            };
            for item in items.flatten() {
                let name = item.file_name();
                let Some(rest) = name.to_str().filter(|n| n.len() == 62) else {
                    continue;
                };
                let mut hash = [0u8; 32];
                if hex::decode_to_slice(format!("{prefix}{rest}"), &mut hash).is_ok() {
                    out.insert(hash);
                }
            }
        }
        out
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
        if self.deferred.is_none() {
            return atomic::write_if_absent(&path, bytes);
        }
        let tmp = atomic::temp_path(&path);
        fs::write(&tmp, bytes).at(&tmp)?;
        Ok(self.defer(hash, tmp, path))
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
            let dir = path.parent().expect("object paths have a parent");
            self.make_dir(dir)?;
            if self.deferred.is_some() {
                // Published by `sync`, after one syncfs for all of them.
                return Ok((hash, total, true));
            }
            out.sync_all().at(&tmp)?;
            match fs::hard_link(&tmp, &path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Ok((hash, total, false))
                }
                Err(e) => return Err(e).at(&path),
            }
            atomic::sync_dir(dir)?;
            Ok((hash, total, true))
        })();
        match result {
            Ok((hash, total, true)) if self.deferred.is_some() => {
                let new = self.defer(&hash, tmp, self.path(&hash));
                Ok((hash, total, new))
            }
            other => {
                let _ = fs::remove_file(&tmp);
                other
            }
        }
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
        let big = src.metadata().is_ok_and(|m| m.len() >= OVERLAP);
        let (got, size) = if big {
            hash_file_overlapped(&mut src, on_bytes)
        } else {
            hash_reader(&mut src, on_bytes)
        }
        .at(&self.path(hash))?;
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
            Error::ObjectMissing(hex::encode(hash))
        } else {
            Error::Io {
                path: path.to_owned(),
                source: e,
            }
        }
    }
}

/// Files at least this big are hashed with reading and hashing overlapped
/// on two threads ([`hash_file_overlapped`]).
pub const OVERLAP: u64 = 8 << 20;

/// SHA-256 of a whole file, with a reader thread filling 1 MiB buffers
/// while this thread hashes the previous one: one big file then hashes at
/// the speed of SHA-256 alone instead of SHA-256 plus the copy out of the
/// page cache.
pub fn hash_file_overlapped(
    file: &mut File,
    on_bytes: &dyn Fn(u64),
) -> io::Result<([u8; 32], u64)> {
    use std::sync::mpsc;
    const BUF: usize = 1 << 20;
    let (full_tx, full_rx) = mpsc::sync_channel::<io::Result<(Vec<u8>, usize)>>(2);
    let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
    for _ in 0..3 {
        empty_tx.send(vec![0u8; BUF]).expect("receiver alive");
    }
    std::thread::scope(|scope| {
        scope.spawn(move || {
            while let Ok(mut buf) = empty_rx.recv() {
                let mut filled = 0;
                let result = loop {
                    match file.read(&mut buf[filled..]) {
                        Ok(0) => break Ok(filled),
                        Ok(n) => {
                            filled += n;
                            if filled == buf.len() {
                                break Ok(filled);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                let done = !matches!(result, Ok(n) if n > 0);
                if full_tx.send(result.map(|n| (buf, n))).is_err() || done {
                    break;
                }
            }
        });
        let mut hasher = Sha256::new();
        let mut total = 0u64;
        loop {
            let (buf, n) = full_rx.recv().expect("the reader sends until it stops")?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            total += n as u64;
            on_bytes(n as u64);
            // The reader may already have stopped (end of file): fine.
            let _ = empty_tx.send(buf);
        }
        Ok((hasher.finalize().into(), total))
    })
}

thread_local! {
    /// Each thread's streaming buffer, allocated once.
    static CHUNK_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// SHA-256 of everything `reader` yields, streaming.
pub fn hash_reader(reader: &mut dyn Read, on_bytes: &dyn Fn(u64)) -> io::Result<([u8; 32], u64)> {
    CHUNK_BUF.with_borrow_mut(|buf| {
        if buf.len() < CHUNK {
            buf.resize(CHUNK, 0);
        }
        hash_reader_with(reader, on_bytes, buf)
    })
}

fn hash_reader_with(
    reader: &mut dyn Read,
    on_bytes: &dyn Fn(u64),
    buf: &mut [u8],
) -> io::Result<([u8; 32], u64)> {
    let mut hasher = Sha256::new();
    let mut total = 0;
    loop {
        let n = match reader.read(buf) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn deferred_objects_appear_only_once_durable() {
        let dir = tempfile::tempdir().unwrap();
        let store = Objects::new(dir.path().join("objects")).deferred();
        let small = b"small object".to_vec();
        let hash = crate::crypto::sha256(&small);
        assert!(store.put(&hash, &small).unwrap());
        assert!(
            !store.put(&hash, &small).unwrap(),
            "the same object twice is one object"
        );
        let big = vec![7u8; (SMALL + 10) as usize];
        let (big_hash, n, new) = store.put_stream(&mut &big[..], &|_| {}).unwrap();
        assert!(new);
        assert_eq!(n, big.len() as u64);
        // Nothing under a final name before sync.
        assert_eq!(store.size_of(&hash), None);
        assert_eq!(store.size_of(&big_hash), None);
        store.sync().unwrap();
        assert_eq!(store.read(&hash).unwrap(), small);
        assert_eq!(store.read(&big_hash).unwrap(), big);
        // No temp files left behind.
        let names: Vec<_> = files_under(&dir.path().join("objects"))
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(".tmp-")
            })
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }

    #[test]
    fn an_abandoned_deferred_store_leaves_no_object_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("objects");
        {
            let store = Objects::new(root.clone()).deferred();
            let bytes = b"never published".to_vec();
            store.put(&crate::crypto::sha256(&bytes), &bytes).unwrap();
            store
                .put_stream(&mut &vec![1u8; (SMALL + 1) as usize][..], &|_| {})
                .unwrap();
        }
        assert!(files_under(&root).is_empty(), "{:?}", files_under(&root));
    }
}
