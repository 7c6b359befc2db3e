//! The content-addressed object store: `objects/ab/cdef…`, named by the
//! SHA-256 of the bytes, create-only, re-hashed on read.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use super::atomic;
use crate::error::{Damage, Error, IoContext, Result};

/// Files up to this size are read whole; larger ones are streamed.
pub const SMALL: u64 = 1 << 20;
/// Read buffer for streaming.
pub const CHUNK: usize = 256 * 1024;
/// Up to this many new objects, [`Objects::sync`] flushes each one instead
/// of the whole filesystem.
const FEW: usize = 16;

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
    writeback: Mutex<Option<Writeback>>,
}

/// A thread that has the kernel start writing each new object to the
/// device as soon as it is complete, while hashing goes on, so that the one
/// flush in [`Objects::sync`] has little left to wait for (git's
/// `core.fsyncMethod=batch` starts writeback per file the same way).
#[derive(Debug)]
struct Writeback {
    files: mpsc::SyncSender<File>,
    thread: JoinHandle<()>,
}

/// Complete objects waiting for their writeback to be started.
const WRITEBACK_QUEUE: usize = 64;

impl Writeback {
    fn start() -> Option<Self> {
        let (files, rx) = mpsc::sync_channel::<File>(WRITEBACK_QUEUE);
        let thread = std::thread::Builder::new()
            .name("selfsame-writeback".into())
            .spawn(move || {
                for file in rx {
                    // On Linux, DONTNEED starts writeback of the dirty pages
                    // without waiting for it (and keeps them cached until
                    // written). Only a hint: `sync` flushes regardless.
                    let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed);
                }
            })
            .ok()?;
        Some(Writeback { files, thread })
    }

    fn finish(self) {
        drop(self.files);
        let _ = self.thread.join();
    }
}

impl Pending {
    /// Hands a complete object to the writeback thread, started on first
    /// use; when it is behind, the object is left to the final flush.
    fn write_back(&self, file: File) {
        let mut wb = self.writeback.lock().expect("writeback");
        if wb.is_none() {
            *wb = Writeback::start();
        }
        if let Some(wb) = wb.as_ref() {
            let _ = wb.files.try_send(file);
        }
    }

    /// Waits until writeback has been started for every object handed over.
    fn writeback_started(&self) {
        let wb = self.writeback.lock().expect("writeback").take();
        if let Some(wb) = wb {
            wb.finish();
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.writeback_started();
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
    /// flushes them all with one `syncfs` (or, for a few, an fsync each),
    /// then links each under its final name and flushes again. An object
    /// therefore never appears under its name before its bytes are durable;
    /// until `sync`, new objects are not visible at all.
    pub fn deferred(mut self) -> Self {
        self.deferred = Some(Arc::new(Pending::default()));
        self
    }

    /// Publishes the objects written so far in deferred mode, durably.
    pub fn sync(&self) -> Result<()> {
        let Some(pending) = &self.deferred else {
            return Ok(());
        };
        pending.writeback_started();
        let list = std::mem::take(&mut pending.list.lock().expect("pending list").0);
        if list.is_empty() {
            return Ok(());
        }
        let published = self.publish(&list);
        if published.is_err() {
            // The temp files are only ours, linked or not.
            for (tmp, _) in &list {
                let _ = fs::remove_file(tmp);
            }
        }
        published
    }

    /// Flushes the temp files of `list`, links each under its name, and
    /// flushes the links.
    fn publish(&self, list: &Unpublished) -> Result<()> {
        // A few objects (a seal after a small change) are cheaper to flush
        // one by one than with a `syncfs`, which flushes everything dirty
        // on the filesystem, other programs' writes included.
        let few = list.len() <= FEW;
        if few {
            for (tmp, _) in list {
                File::open(tmp).and_then(|f| f.sync_all()).at(tmp)?;
            }
        } else {
            self.syncfs()?;
        }
        let mut dirs = std::collections::BTreeSet::new();
        for (tmp, path) in list {
            match fs::hard_link(tmp, path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e).at(path),
            }
            let _ = fs::remove_file(tmp);
            dirs.insert(path.parent().expect("object paths have a parent"));
        }
        if !few {
            return self.syncfs();
        }
        for dir in dirs {
            atomic::sync_dir(dir)?;
        }
        // A fan-out directory may be new.
        atomic::sync_dir(&self.root)
    }

    fn syncfs(&self) -> Result<()> {
        let dir = File::open(&self.root).at(&self.root)?;
        rustix::fs::syncfs(&dir)
            .map_err(std::io::Error::from)
            .at(&self.root)
    }

    fn make_dir(&self, dir: &Path) -> Result<()> {
        if self.deferred.is_some() {
            atomic::private_dir(dir)
        } else {
            atomic::create_dir_all(dir)
        }
    }

    /// `objects/tmp/`, where every new object is written before it is
    /// linked under its name (so that a writer that dies leaves its temp
    /// files in one place, for the next writer to remove).
    fn tmp_dir(&self) -> Result<PathBuf> {
        let dir = self.root.join("tmp");
        self.make_dir(&dir)?;
        Ok(dir)
    }

    /// Records a deferred object written to `file` at `tmp`; false if the
    /// same hash is already pending.
    fn defer(&self, hash: &[u8; 32], file: File, tmp: PathBuf, path: PathBuf) -> bool {
        let pending = self.deferred.as_ref().expect("deferred mode");
        let mut list = pending.list.lock().expect("pending list");
        if !list.1.insert(*hash) {
            drop(list);
            let _ = fs::remove_file(tmp);
            return false;
        }
        list.0.push((tmp, path));
        drop(list);
        pending.write_back(file);
        true
    }

    /// Where the object `hash` lives.
    pub fn path(&self, hash: &[u8; 32]) -> PathBuf {
        let hex = hex::encode(hash);
        self.root.join(&hex[..2]).join(&hex[2..])
    }

    /// The hashes of every object present, from directory listings alone
    /// (one `getdents` per fan-out directory, no stat per object).
    pub fn list(&self) -> Present {
        let mut out = Vec::new();
        let Ok(dirs) = fs::read_dir(&self.root) else {
            return Present(out);
        };
        for dir in dirs.flatten() {
            let prefix = dir.file_name();
            let mut first = [0u8; 1];
            if hex::decode_to_slice(prefix.as_encoded_bytes(), &mut first).is_err() {
                continue;
            }
            let Ok(items) = fs::read_dir(dir.path()) else {
                continue;
            };
            for item in items.flatten() {
                let mut hash = [0u8; 32];
                hash[0] = first[0];
                let name = item.file_name();
                if hex::decode_to_slice(name.as_encoded_bytes(), &mut hash[1..]).is_ok() {
                    out.push(hash);
                }
            }
        }
        out.sort_unstable();
        Present(out)
    }

    /// Whether the object exists as a regular file, and its size if so
    /// (a symlink or anything else at its name is not followed, and is no
    /// object: see [`Objects::present`]).
    pub fn size_of(&self, hash: &[u8; 32]) -> Option<u64> {
        fs::symlink_metadata(self.path(hash))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    }

    /// Whether anything at all is at the object's name.
    pub fn present(&self, hash: &[u8; 32]) -> bool {
        super::read::present(&self.path(hash))
    }

    /// Whether the object is already stored: `Ok(true)` for a regular file
    /// at its name; something else there is damage.
    fn stored(&self, path: &Path) -> Result<bool> {
        match fs::symlink_metadata(path) {
            Ok(m) if m.is_file() => Ok(true),
            Ok(_) => Err(super::read::not_regular(path, "not a regular file")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).at(path),
        }
    }

    /// Stores `bytes` whose hash the caller computed. Returns whether a new
    /// object was written; an existing one is never rewritten.
    pub fn put(&self, hash: &[u8; 32], bytes: &[u8]) -> Result<bool> {
        let path = self.path(hash);
        if self.stored(&path)? {
            return Ok(false);
        }
        let tmp = atomic::temp_in(&self.tmp_dir()?, &hex::encode(hash));
        self.make_dir(path.parent().expect("object paths have a parent"))?;
        if self.deferred.is_none() {
            return atomic::write_if_absent_via(&tmp, &path, bytes);
        }
        let mut file = atomic::create_new(&tmp)?;
        if let Err(e) = file.write_all(bytes) {
            drop(file);
            let _ = fs::remove_file(&tmp);
            return Err(e).at(&tmp);
        }
        Ok(self.defer(hash, file, tmp, path))
    }

    /// Starts a new object whose hash is known only once all its bytes are
    /// written (a file being hashed as it is read).
    pub fn writer(&self) -> Result<ObjectWriter<'_>> {
        let tmp = atomic::temp_in(&self.tmp_dir()?, "stream");
        let file = atomic::create_new(&tmp)?;
        Ok(ObjectWriter {
            store: self,
            tmp,
            file: Some(file),
        })
    }

    /// Reads a whole object, checking its hash. It must be a regular file
    /// (a symlink is not followed, a FIFO not waited on) and is read no
    /// further than its size.
    pub fn read(&self, hash: &[u8; 32]) -> Result<Vec<u8>> {
        let path = self.path(hash);
        let bytes = super::read::read_all(&path)
            .map_err(|e| self.unreadable(hash, e))?
            .ok_or_else(|| missing(hash))?;
        if crate::crypto::sha256(&bytes) != *hash {
            return Err(self.mismatch(hash));
        }
        Ok(bytes)
    }

    /// Opens an object for streaming, with its size; the caller must check
    /// the hash of what it read (see [`Objects::copy_to`]).
    pub fn open(&self, hash: &[u8; 32]) -> Result<(File, u64)> {
        let path = self.path(hash);
        super::read::open(&path)
            .map_err(|e| self.unreadable(hash, e))?
            .ok_or_else(|| missing(hash))
    }

    /// Streams the content `hash` of `size` bytes (its manifest entry's)
    /// into `sink`, a piece at a time in order, re-hashing as it goes: the
    /// stable way to read a file of a checkpoint back (`cat`, `diff -p`,
    /// restore). The content is checked only when it ends, so on an error
    /// the pieces already given to `sink` must not be trusted. Never reads
    /// past `size` and one byte more. Errors from `sink` come back as they
    /// are.
    pub fn stream(
        &self,
        hash: &[u8; 32],
        size: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<u64> {
        let (src, len) = self.open(hash)?;
        if len != size {
            return Err(self.wrong_size(hash, len, size));
        }
        let mut src = src.take(size + 1);
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
            total += n as u64;
            if total > size {
                return Err(self.wrong_size(hash, total, size));
            }
            sink(&buf[..n])?;
        }
        if <[u8; 32]>::from(hasher.finalize()) != *hash {
            return Err(self.mismatch(hash));
        }
        Ok(total)
    }

    /// Copies an object of `size` bytes (its manifest entry's) into `dest`
    /// (created new), re-hashing as it goes; fails without leaving `dest`
    /// complete if the bytes do not match. Never reads past `size` and one
    /// byte more.
    pub fn copy_to(
        &self,
        hash: &[u8; 32],
        size: u64,
        dest: &Path,
        on_bytes: &dyn Fn(u64),
    ) -> Result<u64> {
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dest)
            .at(dest)?;
        let total = self.stream(hash, size, &mut |piece| {
            out.write_all(piece).at(dest)?;
            on_bytes(piece.len() as u64);
            Ok(())
        })?;
        out.sync_all().at(dest)?;
        Ok(total)
    }

    /// The error for object `hash` whose file is not the manifest's size.
    fn wrong_size(&self, hash: &[u8; 32], len: u64, size: u64) -> Error {
        Error::corrupt(&self.path(hash), Damage::ObjectSize { len, size })
    }

    /// The error for object `hash` that could not be opened or read: a
    /// missing file is [`Error::ObjectMissing`], the rest as it came.
    fn unreadable(&self, hash: &[u8; 32], e: Error) -> Error {
        match e {
            Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => missing(hash),
            e => e,
        }
    }

    /// The error for object `hash`, whose bytes hash to something else.
    pub(crate) fn mismatch(&self, hash: &[u8; 32]) -> Error {
        Error::corrupt(&self.path(hash), Damage::ObjectMismatch)
    }

    /// The error for object `hash` failing to open or read at `path`.
    pub(crate) fn missing(&self, hash: &[u8; 32], path: &Path, e: io::Error) -> Error {
        if e.kind() == io::ErrorKind::NotFound {
            missing(hash)
        } else {
            Error::Io {
                path: path.to_owned(),
                source: e,
            }
        }
    }
}

/// The error for the object `hash`, which is missing.
fn missing(hash: &[u8; 32]) -> Error {
    Error::ObjectMissing {
        hash: hex::encode(hash),
    }
}

/// The objects found by [`Objects::list`].
#[derive(Debug, Clone, Default)]
pub struct Present(Vec<[u8; 32]>);

impl Present {
    /// Whether the object `hash` was there.
    pub fn contains(&self, hash: &[u8; 32]) -> bool {
        self.0.binary_search(hash).is_ok()
    }
}

/// A new object being written to a temp file; [`ObjectWriter::finish`]
/// names it. Dropped unfinished, it leaves nothing behind.
#[derive(Debug)]
pub struct ObjectWriter<'a> {
    store: &'a Objects,
    tmp: PathBuf,
    file: Option<File>,
}

impl ObjectWriter<'_> {
    /// Appends bytes.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let file = self.file.as_mut().expect("open until finished");
        file.write_all(bytes).at(&self.tmp)
    }

    /// A second descriptor of the file being written, for another thread to
    /// flush what is written so far while writing goes on, so that the
    /// flush in [`ObjectWriter::finish`] has little left to wait for.
    pub fn flusher(&self) -> Result<File> {
        let file = self.file.as_ref().expect("open until finished");
        file.try_clone().at(&self.tmp)
    }

    /// Names what was written `hash` (the caller hashed the same bytes).
    /// Returns whether a new object was stored: an existing object is never
    /// rewritten, and the temp file is dropped instead.
    pub fn finish(mut self, hash: &[u8; 32]) -> Result<bool> {
        let file = self.file.take().expect("open until finished");
        let store = self.store;
        let path = store.path(hash);
        if store.stored(&path)? {
            return Ok(false);
        }
        let dir = path.parent().expect("object paths have a parent");
        store.make_dir(dir)?;
        if store.deferred.is_some() {
            // Published by `sync`, after one flush for all of them.
            let tmp = std::mem::take(&mut self.tmp);
            return Ok(store.defer(hash, file, tmp, path));
        }
        file.sync_all().at(&self.tmp)?;
        match fs::hard_link(&self.tmp, &path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(e).at(&path),
        }
        atomic::sync_dir(dir)?;
        Ok(true)
    }
}

impl Drop for ObjectWriter<'_> {
    fn drop(&mut self) {
        // Finished into the deferred list, the temp file is no longer ours.
        if !self.tmp.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
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
        let big_hash = crate::crypto::sha256(&big);
        let mut w = store.writer().unwrap();
        w.write(&big).unwrap();
        assert!(w.finish(&big_hash).unwrap());
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
    fn stream_gives_the_bytes_in_order_and_refuses_a_wrong_object() {
        let dir = tempfile::tempdir().unwrap();
        let store = Objects::new(dir.path().join("objects"));
        let bytes: Vec<u8> = (0..3 * CHUNK + 5).map(|i| (i * 7) as u8).collect();
        let hash = crate::crypto::sha256(&bytes);
        store.put(&hash, &bytes).unwrap();
        let mut got = Vec::new();
        let n = store
            .stream(&hash, bytes.len() as u64, &mut |p| {
                got.extend_from_slice(p);
                Ok(())
            })
            .unwrap();
        assert_eq!((n, got == bytes), (bytes.len() as u64, true));
        // Another size than the entry's, and bytes that changed: refused.
        let wrong = store.stream(&hash, 5, &mut |_| Ok(()));
        assert!(matches!(wrong, Err(Error::Corrupt { .. })), "{wrong:?}");
        let mut edited = bytes.clone();
        edited[CHUNK] ^= 1;
        fs::write(store.path(&hash), &edited).unwrap();
        let bad = store.stream(&hash, bytes.len() as u64, &mut |_| Ok(()));
        assert!(matches!(bad, Err(Error::Corrupt { .. })), "{bad:?}");
    }

    #[test]
    fn an_abandoned_deferred_store_leaves_no_object_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("objects");
        {
            let store = Objects::new(root.clone()).deferred();
            let bytes = b"never published".to_vec();
            store.put(&crate::crypto::sha256(&bytes), &bytes).unwrap();
            let mut w = store.writer().unwrap();
            w.write(&[1u8; 1000]).unwrap();
            w.finish(&crate::crypto::sha256(&[1u8; 1000])).unwrap();
            let mut abandoned = store.writer().unwrap();
            abandoned.write(b"never finished").unwrap();
        }
        assert!(files_under(&root).is_empty(), "{:?}", files_under(&root));
    }
}
