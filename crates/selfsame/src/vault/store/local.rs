//! The local store: each entry a file under `.selfsame/objects/` —
//! `ab/cdef…` for a loose object, `packs/<hex>` for a pack — written as a
//! temp file in `objects/tmp/`, flushed, and hard-linked under its name
//! (create-only).
//!
//! In batch mode ([`Store::begin`]) new entries are written to temp files
//! without an fsync each; [`Store::commit`] flushes them all with one
//! `syncfs` (or, for a few, an fsync each), then links each under its
//! name and flushes again. An entry therefore never appears under its name
//! before its bytes are durable.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use super::{EntryReader, EntryWriter, Name, NameKind, Store};
use crate::error::{IoContext, Result};
use crate::vault::{atomic, read};

/// Up to this many new entries, a commit flushes each one instead of the
/// whole filesystem.
const FEW: usize = 16;

/// The store of one vault's `objects/` directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
    deferred: Option<Arc<Pending>>,
}

/// Temp file → final name, for each entry not yet published.
type Unpublished = Vec<(PathBuf, PathBuf)>;

/// Entries written in batch mode whose final names do not exist yet.
#[derive(Debug, Default)]
struct Pending {
    list: Mutex<(Unpublished, HashSet<Name>)>,
    writeback: Mutex<Option<Writeback>>,
}

/// A thread that has the kernel start writing each new entry to the
/// device as soon as it is complete, while hashing goes on, so that the one
/// flush of the commit has little left to wait for (git's
/// `core.fsyncMethod=batch` starts writeback per file the same way).
#[derive(Debug)]
struct Writeback {
    files: mpsc::SyncSender<File>,
    thread: JoinHandle<()>,
}

/// Complete entries waiting for their writeback to be started.
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
                    // written). Only a hint: the commit flushes regardless.
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
    /// Hands a complete entry to the writeback thread, started on first
    /// use; when it is behind, the entry is left to the final flush.
    fn write_back(&self, file: File) {
        let mut wb = self.writeback.lock().expect("writeback");
        if wb.is_none() {
            *wb = Writeback::start();
        }
        if let Some(wb) = wb.as_ref() {
            let _ = wb.files.try_send(file);
        }
    }

    /// Waits until writeback has been started for every entry handed over.
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
        // Never linked (the batch was not committed): the temp files are
        // only ours.
        let list = self.list.get_mut().map(|l| std::mem::take(&mut l.0));
        for (tmp, _) in list.unwrap_or_default() {
            let _ = fs::remove_file(tmp);
        }
    }
}

impl LocalStore {
    /// The store rooted at `root` (`.selfsame/objects`).
    pub fn new(root: PathBuf) -> Self {
        LocalStore {
            root,
            deferred: None,
        }
    }

    /// Where the entry `name` lives.
    pub fn path(&self, name: &Name) -> PathBuf {
        match name {
            Name::Object(hash) => {
                let hex = hex::encode(hash);
                self.root.join(&hex[..2]).join(&hex[2..])
            }
            Name::Pack(hash) => self.root.join("packs").join(hex::encode(hash)),
        }
    }

    /// Flushes the temp files of `list`, links each under its name, and
    /// flushes the links.
    fn publish(&self, list: &Unpublished) -> Result<()> {
        // A few entries (a seal after a small change) are cheaper to flush
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
            dirs.insert(path.parent().expect("entry paths have a parent"));
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

    /// `objects/tmp/`, where every new entry is written before it is
    /// linked under its name (so that a writer that dies leaves its temp
    /// files in one place, for the next writer to remove).
    fn tmp_dir(&self) -> Result<PathBuf> {
        let dir = self.root.join("tmp");
        self.make_dir(&dir)?;
        Ok(dir)
    }

    /// Records a batch entry written to `file` at `tmp`; false if the same
    /// name is already pending.
    fn defer(&self, name: &Name, file: File, tmp: PathBuf, path: PathBuf) -> bool {
        let pending = self.deferred.as_ref().expect("batch mode");
        let mut list = pending.list.lock().expect("pending list");
        if !list.1.insert(*name) {
            drop(list);
            let _ = fs::remove_file(tmp);
            return false;
        }
        list.0.push((tmp, path));
        drop(list);
        pending.write_back(file);
        true
    }

    /// Whether the entry is stored: `Ok(true)` for a regular file at its
    /// name; something else there is damage.
    fn stored(&self, path: &Path) -> Result<bool> {
        match fs::symlink_metadata(path) {
            Ok(m) if m.is_file() => Ok(true),
            Ok(_) => Err(read::not_regular(path, "not a regular file")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).at(path),
        }
    }

    /// The loose objects, from directory listings alone (one `getdents`
    /// per fan-out directory, no stat per object).
    fn list_objects(&self) -> Result<Vec<Name>> {
        let mut out = Vec::new();
        let Some(dirs) = listing(&self.root)? else {
            return Ok(out);
        };
        for dir in dirs.flatten() {
            let prefix = dir.file_name();
            let mut first = [0u8; 1];
            if hex::decode_to_slice(prefix.as_encoded_bytes(), &mut first).is_err() {
                continue;
            }
            let Some(items) = listing(&dir.path())? else {
                continue;
            };
            for item in items.flatten() {
                let mut hash = [0u8; 32];
                hash[0] = first[0];
                let name = item.file_name();
                if hex::decode_to_slice(name.as_encoded_bytes(), &mut hash[1..]).is_ok() {
                    out.push(Name::Object(hash));
                }
            }
        }
        Ok(out)
    }

    fn list_packs(&self) -> Result<Vec<Name>> {
        let Some(items) = listing(&self.root.join("packs"))? else {
            return Ok(Vec::new());
        };
        Ok(items
            .flatten()
            .filter_map(|item| {
                let mut hash = [0u8; 32];
                hex::decode_to_slice(item.file_name().as_encoded_bytes(), &mut hash).ok()?;
                Some(Name::Pack(hash))
            })
            .collect())
    }
}

impl Store for LocalStore {
    fn put(&self, name: &Name, bytes: &[u8]) -> Result<bool> {
        let path = self.path(name);
        if self.stored(&path)? {
            return Ok(false);
        }
        let tmp = atomic::temp_in(&self.tmp_dir()?, &hex::encode(name.hash()));
        self.make_dir(path.parent().expect("entry paths have a parent"))?;
        if self.deferred.is_none() {
            return atomic::write_if_absent_via(&tmp, &path, bytes);
        }
        let mut file = atomic::create_new(&tmp)?;
        if let Err(e) = file.write_all(bytes) {
            drop(file);
            let _ = fs::remove_file(&tmp);
            return Err(e).at(&tmp);
        }
        Ok(self.defer(name, file, tmp, path))
    }

    fn create(&self) -> Result<Box<dyn EntryWriter>> {
        let tmp = atomic::temp_in(&self.tmp_dir()?, "stream");
        let file = atomic::create_new(&tmp)?;
        Ok(Box::new(LocalWriter {
            store: self.clone(),
            tmp,
            file: Some(file),
        }))
    }

    fn open(&self, name: &Name) -> Result<Option<(EntryReader, u64)>> {
        Ok(read::open(&self.path(name))?.map(|(f, len)| (Box::new(f) as EntryReader, len)))
    }

    fn read_at(&self, name: &Name, offset: u64, len: usize) -> Result<Vec<u8>> {
        let path = self.path(name);
        let Some((mut file, _)) = read::open(&path)? else {
            return Err(io::Error::from(io::ErrorKind::NotFound)).at(&path);
        };
        file.seek(SeekFrom::Start(offset)).at(&path)?;
        let mut out = Vec::with_capacity(len);
        file.take(len as u64).read_to_end(&mut out).at(&path)?;
        Ok(out)
    }

    fn size(&self, name: &Name) -> Option<u64> {
        fs::symlink_metadata(self.path(name))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    }

    fn exists(&self, name: &Name) -> bool {
        read::present(&self.path(name))
    }

    fn list(&self, kind: NameKind) -> Result<Vec<Name>> {
        let mut out = match kind {
            NameKind::Object => self.list_objects()?,
            NameKind::Pack => self.list_packs()?,
        };
        out.sort_unstable();
        Ok(out)
    }

    fn delete(&self, name: &Name) -> Result<bool> {
        let path = self.path(name);
        match fs::remove_file(&path) {
            Ok(()) => {
                atomic::sync_dir(path.parent().expect("entry paths have a parent"))?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e).at(&path),
        }
    }

    fn begin(&self) -> Arc<dyn Store> {
        Arc::new(LocalStore {
            root: self.root.clone(),
            deferred: Some(Arc::new(Pending::default())),
        })
    }

    fn commit(&self) -> Result<()> {
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

    fn locate(&self, name: &Name) -> PathBuf {
        self.path(name)
    }
}

/// The entries of `dir`; `None` when it is not there (nothing stored yet).
/// A directory that cannot be listed fails the caller.
fn listing(dir: &Path) -> Result<Option<fs::ReadDir>> {
    // A vault directory is never followed out of the vault: prune would
    // delete what a symlink here points at.
    super::super::read::own_dir(dir)?;
    match fs::read_dir(dir) {
        Ok(items) => Ok(Some(items)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).at(dir),
    }
}

/// A new entry being written to a temp file.
#[derive(Debug)]
struct LocalWriter {
    store: LocalStore,
    tmp: PathBuf,
    file: Option<File>,
}

impl EntryWriter for LocalWriter {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let file = self.file.as_mut().expect("open until finished");
        file.write_all(bytes).at(&self.tmp)
    }

    fn flusher(&self) -> Option<Box<dyn Fn() + Send>> {
        let file = self.file.as_ref()?.try_clone().ok()?;
        // Errors here are the final flush's to report.
        Some(Box::new(move || drop(file.sync_data())))
    }

    fn finish(mut self: Box<Self>, name: &Name) -> Result<bool> {
        let file = self.file.take().expect("open until finished");
        let store = &self.store;
        let path = store.path(name);
        if store.stored(&path)? {
            return Ok(false);
        }
        let dir = path.parent().expect("entry paths have a parent");
        store.make_dir(dir)?;
        if store.deferred.is_some() {
            // Published by the commit, after one flush for all of them.
            let tmp = std::mem::take(&mut self.tmp);
            return Ok(store.defer(name, file, tmp, path));
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

impl Drop for LocalWriter {
    fn drop(&mut self) {
        // Finished into the batch, the temp file is no longer ours.
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
    fn batch_entries_appear_only_once_committed() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().join("objects")).begin();
        let small = Name::Object([1; 32]);
        assert!(store.put(&small, b"small").unwrap());
        assert!(!store.put(&small, b"small").unwrap(), "one name, one entry");
        let big = Name::Pack([2; 32]);
        let mut w = store.create().unwrap();
        w.write(&[7u8; 100_000]).unwrap();
        assert!(w.finish(&big).unwrap());
        assert_eq!((store.size(&small), store.size(&big)), (None, None));
        store.commit().unwrap();
        assert_eq!(store.get(&small, 100).unwrap().unwrap(), b"small");
        assert_eq!(store.read_at(&big, 99_998, 10).unwrap(), vec![7u8; 2]);
        assert_eq!(store.list(NameKind::Pack).unwrap(), vec![big]);
        assert_eq!(store.list(NameKind::Object).unwrap(), vec![small]);
        let temps: Vec<_> = files_under(&dir.path().join("objects"))
            .into_iter()
            .filter(|p| p.to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(temps.is_empty(), "{temps:?}");
        assert!(store.delete(&small).unwrap());
        assert!(!store.exists(&small));
    }

    #[test]
    fn an_abandoned_batch_leaves_no_entry_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("objects");
        {
            let store = LocalStore::new(root.clone()).begin();
            store
                .put(&Name::Object([3; 32]), b"never published")
                .unwrap();
            let mut w = store.create().unwrap();
            w.write(&[1u8; 1000]).unwrap();
            w.finish(&Name::Object([4; 32])).unwrap();
            let mut abandoned = store.create().unwrap();
            abandoned.write(b"never finished").unwrap();
        }
        assert!(files_under(&root).is_empty(), "{:?}", files_under(&root));
    }
}
