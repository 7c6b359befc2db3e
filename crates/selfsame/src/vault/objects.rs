//! The vault's objects: content named by its SHA-256, create-only,
//! checked on read, kept in a [`Store`].
//!
//! "Object `H`" is the bytes that hash to `H`, whatever form they are
//! stored in; a manifest entry, a checkpoint's `soul` and its `config`
//! name objects so. Every form a vault ever held stays readable.

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::store::{EntryWriter, LocalStore, Name, NameKind, Store};
use crate::error::{Damage, Error, IoContext, Result};

/// Files up to this size are read whole; larger ones are streamed.
pub const SMALL: u64 = 1 << 20;
/// Read buffer for streaming.
pub const CHUNK: usize = 256 * 1024;

/// One stored object, as prune sees it: what it can keep or delete. Opaque:
/// [`Objects::ids`] lists them, [`Objects::reaches`] says which ones a
/// piece of content needs.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ObjectId(Name);

impl ObjectId {
    /// The hash that names it.
    pub fn hash(&self) -> &[u8; 32] {
        self.0.hash()
    }
}

/// The object store of one vault.
#[derive(Debug, Clone)]
pub struct Objects {
    store: Arc<dyn Store>,
}

impl Objects {
    /// The objects in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Objects { store }
    }

    /// The objects of the local directory `root` (`.selfsame/objects`).
    pub fn local(root: PathBuf) -> Self {
        Objects::new(Arc::new(LocalStore::new(root)))
    }

    /// The store the objects are kept in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// A view whose writes become durable together: new objects are
    /// visible to no one until [`Objects::sync`], which makes them durable
    /// and then visible (the store's batch, [`Store::begin`]).
    pub fn deferred(&self) -> Self {
        Objects::new(self.store.begin())
    }

    /// Publishes the objects written so far through a deferred view,
    /// durably.
    pub fn sync(&self) -> Result<()> {
        self.store.commit()
    }

    /// Where the object `hash` is, for messages that name it.
    pub fn locate(&self, hash: &[u8; 32]) -> PathBuf {
        self.store.locate(&Name::Object(*hash))
    }

    /// The objects present, for presence checks by hash.
    pub fn list(&self) -> Result<Present> {
        let mut out: Vec<[u8; 32]> = self
            .store
            .list(NameKind::Object)?
            .iter()
            .map(|n| *n.hash())
            .collect();
        out.sort_unstable();
        Ok(Present(out))
    }

    /// The size of the content `hash` when it is stored, readable as an
    /// object (`None` for something else at its name: see
    /// [`Objects::present`]).
    pub fn size_of(&self, hash: &[u8; 32]) -> Option<u64> {
        self.store.size(&Name::Object(*hash))
    }

    /// Whether anything at all is stored under the hash.
    pub fn present(&self, hash: &[u8; 32]) -> bool {
        self.store.exists(&Name::Object(*hash))
    }

    /// Stores `bytes` whose hash the caller computed. Returns whether a new
    /// object was written; an existing one is never rewritten.
    pub fn put(&self, hash: &[u8; 32], bytes: &[u8]) -> Result<bool> {
        self.store.put(&Name::Object(*hash), bytes)
    }

    /// Starts a new object whose hash is known only once all its bytes are
    /// written (a file being hashed as it is read).
    pub fn writer(&self) -> Result<ObjectWriter<'_>> {
        Ok(ObjectWriter {
            entry: self.store.create()?,
            _objects: std::marker::PhantomData,
        })
    }

    /// Reads a whole object, checking its hash. It is read no further than
    /// its size.
    pub fn read(&self, hash: &[u8; 32]) -> Result<Vec<u8>> {
        let name = Name::Object(*hash);
        let bytes = self
            .store
            .get(&name, u64::MAX)
            .map_err(|e| self.unreadable(hash, e))?
            .ok_or_else(|| missing(hash))?;
        if crate::crypto::sha256(&bytes) != *hash {
            return Err(self.mismatch(hash));
        }
        Ok(bytes)
    }

    /// Streams the content `hash` of `size` bytes (its manifest entry's)
    /// into `sink`, a piece at a time in order, re-hashing as it goes: the
    /// stable way to read a file of a checkpoint back (`cat`, `diff -p`,
    /// restore, verify). The content is checked only when it ends, so on an
    /// error the pieces already given to `sink` must not be trusted. Never
    /// reads past `size` and one byte more. Errors from `sink` come back as
    /// they are.
    pub fn stream(
        &self,
        hash: &[u8; 32],
        size: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<u64> {
        let name = Name::Object(*hash);
        let (src, len) = self
            .store
            .open(&name)
            .map_err(|e| self.unreadable(hash, e))?
            .ok_or_else(|| missing(hash))?;
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
                Err(e) => return Err(e).at(&self.locate(hash)),
            };
            hasher.update(&buf[..n]);
            total += n as u64;
            if total > size {
                return Err(self.wrong_size(hash, total, size));
            }
            sink(&buf[..n])?;
        }
        if total != size {
            return Err(self.wrong_size(hash, total, size));
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
        let mut out = std::fs::OpenOptions::new()
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

    /// Every stored object, for prune.
    pub fn ids(&self) -> Result<Vec<ObjectId>> {
        Ok(self
            .store
            .list(NameKind::Object)?
            .into_iter()
            .map(ObjectId)
            .collect())
    }

    /// The stored objects the content `hash` needs to be read back (the
    /// content's own, and whatever it is made of): what prune keeps for a
    /// manifest entry, a manifest or a config a kept checkpoint names.
    /// Missing objects are left out (verify names them).
    pub fn reaches(&self, hash: &[u8; 32]) -> Result<Vec<ObjectId>> {
        let name = Name::Object(*hash);
        Ok(if self.store.exists(&name) {
            vec![ObjectId(name)]
        } else {
            Vec::new()
        })
    }

    /// The bytes an object takes in the store.
    pub fn stored_size(&self, id: &ObjectId) -> Option<u64> {
        self.store.size(&id.0)
    }

    /// Deletes stored objects (an owner's or a retention policy's decision:
    /// prune, never a seal). Returns the bytes freed.
    pub fn delete(&self, ids: &BTreeSet<ObjectId>) -> Result<u64> {
        let mut freed = 0;
        for id in ids {
            let size = self.store.size(&id.0).unwrap_or(0);
            if self.store.delete(&id.0)? {
                freed += size;
            }
        }
        Ok(freed)
    }

    /// The error for object `hash` whose stored size is not the manifest's.
    fn wrong_size(&self, hash: &[u8; 32], len: u64, size: u64) -> Error {
        Error::corrupt(&self.locate(hash), Damage::ObjectSize { len, size })
    }

    /// The error for object `hash` that could not be opened or read: a
    /// missing entry is [`Error::ObjectMissing`], the rest as it came.
    fn unreadable(&self, hash: &[u8; 32], e: Error) -> Error {
        match e {
            Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => missing(hash),
            e => e,
        }
    }

    /// The error for object `hash`, whose bytes hash to something else.
    pub(crate) fn mismatch(&self, hash: &[u8; 32]) -> Error {
        Error::corrupt(&self.locate(hash), Damage::ObjectMismatch)
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

/// A new object being written; [`ObjectWriter::finish`] names it. Dropped
/// unfinished, it leaves nothing behind.
pub struct ObjectWriter<'a> {
    entry: Box<dyn EntryWriter>,
    _objects: std::marker::PhantomData<&'a Objects>,
}

impl std::fmt::Debug for ObjectWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ObjectWriter")
    }
}

impl ObjectWriter<'_> {
    /// Appends bytes.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.entry.write(bytes)
    }

    /// Something another thread may call to flush what is written so far
    /// while writing goes on (see [`EntryWriter::flusher`]).
    pub fn flusher(&self) -> Option<Box<dyn Fn() + Send>> {
        self.entry.flusher()
    }

    /// Names what was written `hash` (the caller hashed the same bytes).
    /// Returns whether a new object was stored: an existing object is never
    /// rewritten.
    pub fn finish(self, hash: &[u8; 32]) -> Result<bool> {
        self.entry.finish(&Name::Object(*hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_gives_the_bytes_in_order_and_refuses_a_wrong_object() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("objects");
        let store = Objects::local(root.clone());
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
        std::fs::write(store.locate(&hash), &edited).unwrap();
        let bad = store.stream(&hash, bytes.len() as u64, &mut |_| Ok(()));
        assert!(matches!(bad, Err(Error::Corrupt { .. })), "{bad:?}");
    }

    #[test]
    fn deferred_objects_appear_only_once_synced() {
        let dir = tempfile::tempdir().unwrap();
        let store = Objects::local(dir.path().join("objects")).deferred();
        let small = b"small object".to_vec();
        let hash = crate::crypto::sha256(&small);
        assert!(store.put(&hash, &small).unwrap());
        let big = vec![7u8; (SMALL + 10) as usize];
        let big_hash = crate::crypto::sha256(&big);
        let mut w = store.writer().unwrap();
        w.write(&big).unwrap();
        assert!(w.finish(&big_hash).unwrap());
        assert_eq!(
            (store.size_of(&hash), store.size_of(&big_hash)),
            (None, None)
        );
        store.sync().unwrap();
        assert_eq!(store.read(&hash).unwrap(), small);
        assert_eq!(store.read(&big_hash).unwrap(), big);
        let ids = store.ids().unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(store.reaches(&hash).unwrap().len(), 1);
        let freed = store.delete(&ids.into_iter().collect()).unwrap();
        assert_eq!(freed, small.len() as u64 + big.len() as u64);
        assert!(matches!(
            store.read(&hash),
            Err(Error::ObjectMissing { .. })
        ));
    }
}
