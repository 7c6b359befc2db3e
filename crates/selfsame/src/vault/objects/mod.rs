//! The vault's objects: content named by its SHA-256, create-only,
//! checked on read, kept in a [`Store`].
//!
//! "Object `H`" is the bytes that hash to `H`, whatever form they are
//! stored in; a manifest entry, a checkpoint's `soul` and its `config`
//! name objects so. Two forms, both always readable (docs/STORAGE.md):
//!
//! * **loose**: one store entry holding the bytes as they are. Every
//!   object of a vault written before packs is loose, and so are the
//!   config bytes a checkpoint binds (the owner copies them back by hand)
//!   and what is written outside a batch.
//! * **packed**: blobs in packs ([`packer`]): content of up to 64 KiB is
//!   one data blob; longer content is cut into chunks ([`chunker`]) and
//!   stored as a list of them. Blobs are compressed with zstd where it
//!   pays. A seal writes everything new in this form, in one batch.

mod chunker;
mod hint;
mod index;
mod packcache;
mod packer;

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::store::{LocalStore, Name, NameKind, Store};
use crate::error::{Damage, Error, IoContext, Result};
use crate::format::pack::{self, BlobKind, Codec, PackEntry, Part};
use chunker::Chunker;
pub use chunker::MAX_CHUNK;
use index::{Index, Located};
use packer::{Blob, Packer};

/// Files up to this size are read whole; larger ones are streamed.
pub const SMALL: u64 = 1 << 20;
/// Read buffer for streaming.
pub const CHUNK: usize = 256 * 1024;
/// How deep lists may nest (a file's list, its nodes); deeper is damage.
const MAX_DEPTH: usize = 4;
/// The largest object read whole into memory (a manifest, a config, a
/// symlink's target); one that says it is larger is damage, refused before
/// anything is read. A manifest this large lists some two million files.
pub const MAX_WHOLE: u64 = 512 << 20;
/// The largest list blob of a file (its chunks, or its nodes): enough for
/// a file of more than a TiB.
const MAX_FILE_LIST: usize = 64 << 20;
/// The largest node blob: [`chunker::NODE_PARTS`] parts.
const MAX_NODE: usize = pack::LIST_MAGIC.len() + chunker::NODE_PARTS * pack::PART_LEN;
/// Blobs next to each other in a pack are read together, up to this many
/// bytes at a time.
const READ_RUN: u64 = 4 << 20;

/// One stored object, as prune sees it: what it can keep or delete.
/// Opaque: [`Objects::ids`] lists them, [`Objects::reaches`] says which
/// ones a piece of content needs.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ObjectId(Form);

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
enum Form {
    /// A loose object.
    Loose([u8; 32]),
    /// A blob in a pack.
    Blob(BlobKind, [u8; 32]),
}

/// What storing one piece of content did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stored {
    /// Whether the content was not stored before.
    pub new: bool,
    /// Bytes added to the store for it (compressed; chunks it shares with
    /// stored content not counted).
    pub bytes: u64,
}

/// The object store of one vault.
#[derive(Debug, Clone)]
pub struct Objects {
    store: Arc<dyn Store>,
    /// The packs' indexes, shared by every view of the same vault.
    index: Arc<Mutex<Index>>,
    /// In a batch: the packs being written.
    packer: Option<Arc<Packer>>,
    /// In a batch: the store it began from, listed once at the batch's
    /// first need of the index ([`Objects::list_once`]).
    listing: Option<Arc<Listing>>,
    /// Where the head hint is kept ([`hint`]), when the vault keeps one.
    hint: Option<PathBuf>,
}

/// A batch's one listing of the packs.
#[derive(Debug)]
struct Listing {
    base: Arc<dyn Store>,
    done: AtomicBool,
}

impl Listing {
    /// Lists the packs into `index` unless this batch did.
    fn list(&self, index: &mut Index) -> Result<()> {
        if !self.done.load(Ordering::Acquire) {
            index.refresh(&*self.base)?;
            self.done.store(true, Ordering::Release);
        }
        Ok(())
    }
}

impl Objects {
    /// The objects in `store`.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn new(store: Arc<dyn Store>) -> Self {
        Objects {
            store,
            index: Arc::default(),
            packer: None,
            listing: None,
            hint: None,
        }
    }

    /// The objects of the local directory `root` (`.selfsame/objects`).
    #[cfg(test)]
    pub fn local(root: PathBuf) -> Self {
        Objects::new(Arc::new(LocalStore::new(root)))
    }

    /// The objects of the local directory `root`, keeping the pack index
    /// cache at `cache` (`.selfsame/cache/packs`).
    pub fn local_cached(root: PathBuf, cache: PathBuf) -> Self {
        Objects {
            store: Arc::new(LocalStore::new(root)),
            hint: Some(cache.with_file_name("head")),
            index: Arc::new(Mutex::new(Index::cached(cache))),
            packer: None,
            listing: None,
        }
    }

    /// Test hook: how many pack indexes were read from packs (not from the
    /// pack index cache) since these objects were made.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn indexes_read(&self) -> u64 {
        self.index.lock().expect("index").indexes_read()
    }

    /// Test hook: how many packs the index knows.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn packs_known(&self) -> usize {
        self.index.lock().expect("index").packs().count()
    }

    /// A batch: new content is packed and visible to no one until
    /// [`Objects::sync`], which makes it durable and then visible (the
    /// store's batch, [`Store::begin`]). Call it holding the vault lock
    /// until the batch ends: the packs are listed once, when the batch
    /// first stores or looks up content (a seal of an unchanged soul does
    /// neither, and reads no pack index).
    pub fn deferred(&self) -> Result<Self> {
        let store = self.store.begin();
        Ok(Objects {
            packer: Some(Arc::new(Packer::new(store.clone()))),
            store,
            index: self.index.clone(),
            hint: self.hint.clone(),
            listing: Some(Arc::new(Listing {
                base: self.store.clone(),
                done: Default::default(),
            })),
        })
    }

    /// In a batch: lists the packs, the first time only.
    fn list_once(&self) -> Result<()> {
        match &self.listing {
            Some(l) if !l.done.load(Ordering::Acquire) => {
                l.list(&mut self.index.lock().expect("index"))
            }
            _ => Ok(()),
        }
    }

    /// Publishes the content written so far in a batch, durably.
    pub fn sync(&self) -> Result<()> {
        let packs = match &self.packer {
            Some(p) => p.finish()?,
            None => Vec::new(),
        };
        if !packs.is_empty() {
            self.list_once()?;
        }
        self.store.commit()?;
        let mut index = self.index.lock().expect("index");
        for (name, entries) in packs {
            index.add(name, entries);
        }
        index.save();
        Ok(())
    }

    /// Where the object `hash` is, for messages that name it: its loose
    /// name, or the pack holding it.
    pub fn locate(&self, hash: &[u8; 32]) -> PathBuf {
        match self.find_top(hash) {
            Ok(Some(at)) => self.store.locate(&Name::Pack(at.pack)),
            _ => self.store.locate(&Name::Object(*hash)),
        }
    }

    /// The packed blob that stands for the content `hash` (its data, or its
    /// list), refreshing the index once when neither is known.
    fn find_top(&self, hash: &[u8; 32]) -> Result<Option<Located>> {
        let mut index = self.index.lock().expect("index");
        let look = |i: &Index| {
            i.find(BlobKind::Data, hash)
                .or_else(|| i.find(BlobKind::File, hash))
        };
        // A batch sees its own listing of the packs, made once (it holds
        // the lock): not what an earlier command of this process knew.
        if let Some(l) = &self.listing {
            l.list(&mut index)?;
            return Ok(look(&index));
        }
        if let Some(at) = look(&index) {
            return Ok(Some(at));
        }
        index.refresh(&*self.store)?;
        Ok(look(&index))
    }

    /// Whether the blob is stored, or written in this batch (whose packs
    /// [`Objects::list_once`] listed).
    fn has_blob(&self, kind: BlobKind, id: &[u8; 32]) -> bool {
        self.packer.as_ref().is_some_and(|p| p.has(kind, id))
            || self.index.lock().expect("index").find(kind, id).is_some()
    }

    /// Whether the content is stored in any form (or written in this
    /// batch).
    fn has_content(&self, hash: &[u8; 32]) -> bool {
        self.has_blob(BlobKind::Data, hash)
            || self.has_blob(BlobKind::File, hash)
            || self.store.has(&Name::Object(*hash))
    }

    /// Packs a blob in this batch; the bytes it took, `None` when the
    /// batch has it already.
    fn pack(&self, blob: &Blob<'_>, compress: bool) -> Result<Option<u64>> {
        let packer = self.packer.as_ref().expect("packing happens in a batch");
        packer.add(blob, compress)
    }

    /// The contents present, for presence checks by hash (one listing).
    pub fn list(&self) -> Result<Present> {
        let mut out: Vec<[u8; 32]> = self
            .store
            .list(NameKind::Object)?
            .iter()
            .map(|n| *n.hash())
            .collect();
        let mut index = self.index.lock().expect("index");
        index.refresh(&*self.store)?;
        for (_, entries) in index.packs() {
            out.extend(
                entries
                    .iter()
                    .filter(|e| matches!(e.kind, BlobKind::Data | BlobKind::File))
                    .map(|e| e.id),
            );
        }
        out.sort_unstable();
        out.dedup();
        Ok(Present(out))
    }

    /// The size of the content `hash` when it is stored and readable as an
    /// object (`None` for something else at its loose name: see
    /// [`Objects::present`]).
    pub fn size_of(&self, hash: &[u8; 32]) -> Result<Option<u64>> {
        if let Some(at) = self.find_top(hash)? {
            return Ok(Some(at.entry.size));
        }
        Ok(self.store.size(&Name::Object(*hash)))
    }

    /// Whether the content `hash` is stored now, for a seal that needs
    /// only that (the head's manifest when the soul is unchanged, a
    /// restore's target): looked for first where the head hint says (two
    /// small reads of one pack, [`hint`]), then loose, then in every pack's
    /// index as the packs are listed now (a pack that went since this
    /// process last listed them is not counted), which leaves a hint of
    /// where it was found for the next seal.
    pub fn still_stored(&self, hash: &[u8; 32]) -> Result<bool> {
        let hinted = self.hint.as_deref().and_then(hint::load);
        if hinted
            .as_ref()
            .is_some_and(|h| h.id == *hash && h.check(&*self.store).is_some())
        {
            return Ok(true);
        }
        if self.store.has(&Name::Object(*hash)) {
            return Ok(true);
        }
        {
            let mut index = self.index.lock().expect("index");
            match &self.listing {
                Some(l) => l.list(&mut index)?,
                None => index.refresh(&*self.store)?,
            }
        }
        if self.find_top(hash)?.is_none() {
            return Ok(false);
        }
        self.leave_hint(hash);
        Ok(true)
    }

    /// Writes the head hint for the content `hash` when the packs known
    /// hold it (a seal that stored a new manifest leaves it so for the
    /// next, unchanged, seal). Lists nothing; a hint that cannot be written
    /// is none.
    pub fn leave_hint(&self, hash: &[u8; 32]) {
        let Some(path) = &self.hint else { return };
        let index = self.index.lock().expect("index");
        let found = index
            .find_numbered(BlobKind::Data, hash)
            .or_else(|| index.find_numbered(BlobKind::File, hash));
        if let Some(h) = found.and_then(|(at, count, no)| hint::Hint::of(*hash, &at, count, no)) {
            hint::save(path, &h);
        }
    }

    /// Whether anything at all is stored under the hash.
    pub fn present(&self, hash: &[u8; 32]) -> Result<bool> {
        Ok(self.find_top(hash)?.is_some() || self.store.exists(&Name::Object(*hash)))
    }

    /// Stores `bytes` whose hash the caller computed: packed in a batch,
    /// loose outside one. Returns whether new content was stored; existing
    /// content is never rewritten.
    pub fn put(&self, hash: &[u8; 32], bytes: &[u8]) -> Result<bool> {
        self.store_bytes(hash, bytes).map(|s| s.new)
    }

    /// [`Objects::put`], saying how many bytes it added.
    pub fn store_bytes(&self, hash: &[u8; 32], bytes: &[u8]) -> Result<Stored> {
        self.list_once()?;
        if self.packer.is_none() {
            let new = self.store.put(&Name::Object(*hash), bytes)?;
            let bytes = if new { bytes.len() as u64 } else { 0 };
            return Ok(Stored { new, bytes });
        }
        if self.has_content(hash) {
            return Ok(Stored::default());
        }
        if bytes.len() <= MAX_CHUNK {
            let blob = Blob {
                kind: BlobKind::Data,
                id: *hash,
                plain: bytes,
                size: bytes.len() as u64,
            };
            let n = self.pack(&blob, true)?;
            return Ok(Stored {
                new: n.is_some(),
                bytes: n.unwrap_or(0),
            });
        }
        let mut chunker = Chunker::new(self);
        chunker.write(bytes)?;
        chunker.finish(hash)
    }

    /// Stores the bytes of the loose object `hash` as they are (the config
    /// a checkpoint binds: the owner may copy it back by hand).
    pub fn put_loose(&self, hash: &[u8; 32], bytes: &[u8]) -> Result<bool> {
        self.store.put(&Name::Object(*hash), bytes)
    }

    /// Starts a new object whose hash is known only once all its bytes are
    /// written (a file being hashed as it is read): chunked into packs in a
    /// batch, loose outside one.
    pub fn writer(&self) -> Result<ObjectWriter<'_>> {
        self.list_once()?;
        let to = match &self.packer {
            Some(_) => To::Chunks(Box::new(Chunker::new(self))),
            None => To::Loose(self.store.create()?, 0),
        };
        Ok(ObjectWriter { to })
    }

    /// A writer for a file that grew by appending to the content `prefix`
    /// (`prefix_size` bytes, stored as a list): the parts of `prefix` but
    /// its last are kept as they are, and the writer must be given the
    /// file's bytes from [`AppendWriter::resume_at`] on. `None` when the
    /// prefix is not a stored list, or outside a batch.
    pub fn append_writer(&self, prefix: &[u8; 32], prefix_size: u64) -> Option<AppendWriter<'_>> {
        self.packer.as_ref()?;
        // A listing that fails is the writer's to report.
        self.list_once().ok()?;
        let at = self
            .index
            .lock()
            .expect("index")
            .find(BlobKind::File, prefix)?;
        if at.entry.size != prefix_size {
            return None;
        }
        let mut parts = Vec::new();
        self.flatten(&at, 0, &mut parts).ok()?;
        let first = parts.first().map(|p| (p.id, p.size))?;
        let last = parts.pop()?;
        let kept: u64 = parts.iter().map(|p| p.size).sum();
        debug_assert_eq!(kept + last.size, prefix_size);
        Some(AppendWriter {
            resume_at: kept,
            first,
            writer: ObjectWriter {
                to: To::Chunks(Box::new(Chunker::after(self, parts))),
            },
        })
    }

    /// Reads a whole object, checking its hash. It is read no further than
    /// its size.
    pub fn read(&self, hash: &[u8; 32]) -> Result<Vec<u8>> {
        // A loose object's size is its file's, taken as it is opened (so
        // a symlink or a FIFO at its name is refused, not read).
        let size = match self.find_top(hash)? {
            Some(at) => at.entry.size,
            None => {
                let name = Name::Object(*hash);
                let opened = self
                    .store
                    .open(&name)
                    .map_err(|e| self.unreadable(hash, e))?;
                opened.ok_or_else(|| missing(hash))?.1
            }
        };
        if size > MAX_WHOLE {
            return Err(Error::corrupt(
                &self.locate(hash),
                Damage::TooBig {
                    len: size,
                    cap: MAX_WHOLE,
                },
            ));
        }
        let mut out = Vec::with_capacity(size.min(64 << 20) as usize);
        self.stream(hash, size, &mut |piece| {
            out.extend_from_slice(piece);
            Ok(())
        })?;
        Ok(out)
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
        let mut hasher = Sha256::new();
        let mut total = 0u64;
        let mut check = |piece: &[u8]| -> Result<()> {
            hasher.update(piece);
            total += piece.len() as u64;
            if total > size {
                return Err(self.wrong_size(hash, total, size));
            }
            sink(piece)
        };
        match self.find_top(hash)? {
            Some(at) => {
                if at.entry.size != size {
                    return Err(self.wrong_size(hash, at.entry.size, size));
                }
                self.stream_packed(&at, &mut check)?;
            }
            None => self.stream_loose(hash, size, &mut check)?,
        }
        if total != size {
            return Err(self.wrong_size(hash, total, size));
        }
        if <[u8; 32]>::from(hasher.finalize()) != *hash {
            return Err(self.mismatch(hash));
        }
        Ok(total)
    }

    fn stream_loose(
        &self,
        hash: &[u8; 32],
        size: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
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
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match src.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).at(&self.store.locate(&name)),
            };
            sink(&buf[..n])?;
        }
    }

    /// Streams a packed content: its data blobs in order, those next to
    /// each other in a pack read together.
    fn stream_packed(
        &self,
        top: &Located,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let data = match top.entry.kind {
            BlobKind::Data => vec![*top],
            _ => {
                let mut parts = Vec::new();
                self.flatten(top, 0, &mut parts)?;
                let index = self.index.lock().expect("index");
                parts
                    .iter()
                    .map(|p| {
                        index
                            .find(BlobKind::Data, &p.id)
                            .ok_or_else(|| self.part_missing(top, p))
                    })
                    .collect::<Result<Vec<_>>>()?
            }
        };
        let mut i = 0;
        while i < data.len() {
            // A run of blobs that follow each other in one pack.
            let mut j = i + 1;
            let start = data[i].entry.offset;
            let mut end = start + u64::from(data[i].entry.stored);
            while j < data.len()
                && data[j].pack == data[i].pack
                && data[j].entry.offset == end
                && end - start < READ_RUN
            {
                end += u64::from(data[j].entry.stored);
                j += 1;
            }
            let name = Name::Pack(data[i].pack);
            let bytes = self.store.read_at(&name, start, (end - start) as usize)?;
            if bytes.len() as u64 != end - start {
                return Err(self.pack_damage(&name, "shorter than its index says"));
            }
            for at in &data[i..j] {
                let from = (at.entry.offset - start) as usize;
                let stored = &bytes[from..from + at.entry.stored as usize];
                let plain = self.decode(&name, &at.entry, stored)?;
                sink(&plain)?;
            }
            i = j;
        }
        Ok(())
    }

    /// The parts the list (or node) `at` names, read from its pack;
    /// `depth` is how deep in a list it sits.
    fn list_parts(&self, at: &Located, depth: usize) -> Result<Vec<Part>> {
        let name = Name::Pack(at.pack);
        if depth >= MAX_DEPTH {
            return Err(self.pack_damage(&name, "lists nested too deep"));
        }
        let stored = self
            .store
            .read_at(&name, at.entry.offset, at.entry.stored as usize)?;
        let plain = self.decode(&name, &at.entry, &stored)?;
        let parts =
            pack::parse_list(&plain).map_err(|e| self.pack_damage(&name, &e.to_string()))?;
        Ok(parts)
    }

    /// The data parts of the list `at`, in order, through its nodes.
    fn flatten(&self, at: &Located, depth: usize, out: &mut Vec<Part>) -> Result<()> {
        let parts = self.list_parts(at, depth)?;
        let name = Name::Pack(at.pack);
        if parts.iter().map(|p| p.size).sum::<u64>() != at.entry.size {
            return Err(self.pack_damage(&name, "a list's parts do not add up to its size"));
        }
        for p in parts {
            match p.kind {
                BlobKind::Node => {
                    let node = self
                        .index
                        .lock()
                        .expect("index")
                        .find(BlobKind::Node, &p.id)
                        .ok_or_else(|| self.part_missing(at, &p))?;
                    if node.entry.size != p.size {
                        return Err(self.pack_damage(&name, "a node is not the size listed"));
                    }
                    self.flatten(&node, depth + 1, out)?;
                }
                _ => out.push(p),
            }
        }
        Ok(())
    }

    /// A blob's bytes, decoded.
    fn decode(&self, pack: &Name, entry: &PackEntry, stored: &[u8]) -> Result<Vec<u8>> {
        if stored.len() != entry.stored as usize {
            return Err(self.pack_damage(pack, "shorter than its index says"));
        }
        // No blob the writer makes is larger: an index that says otherwise
        // is refused before anything is allocated for it.
        let most = match entry.kind {
            BlobKind::Data => MAX_CHUNK,
            BlobKind::Node => MAX_NODE,
            BlobKind::File => MAX_FILE_LIST,
        };
        if entry.plain as usize > most {
            return Err(self.pack_damage(pack, "a blob is larger than any selfsame writes"));
        }
        let plain = match entry.codec {
            Codec::Plain => stored.to_vec(),
            Codec::Zstd => zstd::bulk::decompress(stored, entry.plain as usize)
                .map_err(|_| self.pack_damage(pack, "a blob does not decompress"))?,
        };
        if plain.len() != entry.plain as usize {
            return Err(self.pack_damage(pack, "a blob is not the size its index says"));
        }
        Ok(plain)
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

    /// Every stored object, for prune: loose objects and packed blobs.
    pub fn ids(&self) -> Result<Vec<ObjectId>> {
        let mut out: Vec<ObjectId> = self
            .store
            .list(NameKind::Object)?
            .into_iter()
            .map(|n| ObjectId(Form::Loose(*n.hash())))
            .collect();
        let mut index = self.index.lock().expect("index");
        index.refresh(&*self.store)?;
        for (_, entries) in index.packs() {
            out.extend(entries.iter().map(|e| ObjectId(Form::Blob(e.kind, e.id))));
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// The stored objects the content `hash` needs to be read back (its
    /// own, its lists and nodes, their chunks): what prune keeps for a
    /// manifest entry, a manifest or a config a kept checkpoint names.
    /// Objects that are missing are left out (verify names them).
    pub fn reaches(&self, hash: &[u8; 32]) -> Result<Vec<ObjectId>> {
        let mut out = Vec::new();
        if self.store.exists(&Name::Object(*hash)) {
            out.push(ObjectId(Form::Loose(*hash)));
        }
        if let Some(top) = self.find_top(hash)? {
            out.push(ObjectId(Form::Blob(top.entry.kind, *hash)));
            if top.entry.kind == BlobKind::File {
                self.reach_list(&top, 0, &mut out)?;
            }
        }
        Ok(out)
    }

    fn reach_list(&self, at: &Located, depth: usize, out: &mut Vec<ObjectId>) -> Result<()> {
        let parts = self.list_parts(at, depth)?;
        for p in parts {
            out.push(ObjectId(Form::Blob(p.kind, p.id)));
            if p.kind == BlobKind::Node {
                let node = self
                    .index
                    .lock()
                    .expect("index")
                    .find(BlobKind::Node, &p.id);
                if let Some(node) = node {
                    self.reach_list(&node, depth + 1, out)?;
                }
            }
        }
        Ok(())
    }

    /// The bytes an object takes in the store.
    pub fn stored_size(&self, id: &ObjectId) -> Option<u64> {
        match id.0 {
            Form::Loose(h) => self.store.size(&Name::Object(h)),
            Form::Blob(kind, h) => {
                let index = self.index.lock().expect("index");
                index.find(kind, &h).map(|at| u64::from(at.entry.stored))
            }
        }
    }

    /// Deletes stored objects (an owner's or a retention policy's decision:
    /// prune, never a seal). Returns the bytes freed. Loose objects are
    /// removed; a pack whose blobs are all deleted is removed, and a pack
    /// that keeps some is written anew with only those (durably) before
    /// the old one is removed, so a crash at any point loses no blob that
    /// is kept. Call it holding the vault lock.
    #[cfg(feature = "test-hooks")]
    pub fn delete(&self, ids: &BTreeSet<ObjectId>) -> Result<u64> {
        self.delete_each(ids, &mut |_| {})
    }

    /// [`Objects::delete`], calling `step` with the bytes freed after each
    /// entry it removes from the store (a loose object, or a pack once the
    /// blobs it keeps are written anew): where a crash can come between
    /// two removals, and how far along the work is.
    pub fn delete_each(&self, ids: &BTreeSet<ObjectId>, step: &mut dyn FnMut(u64)) -> Result<u64> {
        let mut freed = 0;
        for id in ids {
            if let Form::Loose(h) = id.0 {
                let name = Name::Object(h);
                let size = self.store.size(&name).unwrap_or(0);
                if self.store.delete(&name)? {
                    freed += size;
                    step(size);
                }
            }
        }
        let packs: Vec<([u8; 32], Vec<PackEntry>)> = {
            let mut index = self.index.lock().expect("index");
            index.refresh(&*self.store)?;
            index.packs().map(|(p, e)| (*p, e.clone())).collect()
        };
        let doomed = |e: &PackEntry| ids.contains(&ObjectId(Form::Blob(e.kind, e.id)));
        // Packs that keep nothing go first: removing them writes nothing,
        // so on a full disk they still free their space.
        for (pack, entries) in &packs {
            if !entries.is_empty() && entries.iter().all(doomed) {
                let name = Name::Pack(*pack);
                let size = self.store.size(&name).unwrap_or(0);
                if self.store.delete(&name)? {
                    freed += size;
                    step(size);
                }
            }
        }
        let batch = self.deferred()?;
        let mut emptied = Vec::new();
        for (pack, entries) in &packs {
            if !entries.iter().any(doomed) || entries.iter().all(doomed) {
                continue;
            }
            let name = Name::Pack(*pack);
            for e in entries.iter().filter(|e| !doomed(e)) {
                let stored = self.store.read_at(&name, e.offset, e.stored as usize)?;
                let plain = self.decode(&name, e, &stored)?;
                let blob = Blob {
                    kind: e.kind,
                    id: e.id,
                    plain: &plain,
                    size: e.size,
                };
                batch.pack(&blob, e.codec == Codec::Zstd)?;
            }
            emptied.push(name);
        }
        batch.sync()?;
        for name in emptied {
            let size = self.store.size(&name).unwrap_or(0);
            if self.store.delete(&name)? {
                freed += size;
                step(size);
            }
        }
        self.index.lock().expect("index").refresh(&*self.store)?;
        Ok(freed)
    }

    /// Test hook: moves the content `hash` out of its pack into a loose
    /// object (the form of a vault from before packs) and returns where
    /// that is, for tests that damage an object by hand.
    #[cfg(feature = "test-hooks")]
    pub(crate) fn loosen(&self, hash: &[u8; 32]) -> Result<PathBuf> {
        let bytes = self.read(hash)?;
        self.store.put(&Name::Object(*hash), &bytes)?;
        if let Some(top) = self.find_top(hash)? {
            let id = ObjectId(Form::Blob(top.entry.kind, *hash));
            self.delete(&BTreeSet::from([id]))?;
        }
        Ok(self.store.locate(&Name::Object(*hash)))
    }

    /// Damage to everything stored that verify should name: packs whose
    /// index does not read. Every pack's index is read from the pack, not
    /// taken from the pack index cache.
    pub fn damaged_packs(&self) -> Vec<(PathBuf, String)> {
        let mut index = Index::default();
        let _ = index.refresh(&*self.store);
        index
            .damaged()
            .iter()
            .map(|(n, e)| (self.store.locate(n), e.to_string()))
            .collect()
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

    fn pack_damage(&self, pack: &Name, what: &str) -> Error {
        Error::corrupt(&self.store.locate(pack), Damage::Pack(what.to_owned()))
    }

    fn part_missing(&self, list: &Located, part: &Part) -> Error {
        self.pack_damage(
            &Name::Pack(list.pack),
            &format!("a part it lists is missing ({})", hex::encode(part.id)),
        )
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

enum To<'a> {
    Loose(Box<dyn super::store::EntryWriter>, u64),
    Chunks(Box<Chunker<'a>>),
}

/// A new object being written; [`ObjectWriter::finish`] names it. Dropped
/// unfinished, it leaves nothing behind.
pub struct ObjectWriter<'a> {
    to: To<'a>,
}

impl std::fmt::Debug for ObjectWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ObjectWriter")
    }
}

impl ObjectWriter<'_> {
    /// Appends bytes.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        match &mut self.to {
            To::Loose(w, n) => {
                *n += bytes.len() as u64;
                w.write(bytes)
            }
            To::Chunks(c) => c.write(bytes),
        }
    }

    /// Something another thread may call to flush what is written so far
    /// while writing goes on (a loose object's; packs are flushed by the
    /// batch's commit).
    pub fn flusher(&self) -> Option<Box<dyn Fn() + Send>> {
        match &self.to {
            To::Loose(w, _) => w.flusher(),
            To::Chunks(_) => None,
        }
    }

    /// Names what was written `hash` (the caller hashed the same bytes).
    /// Returns what was stored: existing content is never rewritten.
    pub fn finish(self, hash: &[u8; 32]) -> Result<Stored> {
        match self.to {
            To::Loose(w, n) => {
                let new = w.finish(&Name::Object(*hash))?;
                let bytes = if new { n } else { 0 };
                Ok(Stored { new, bytes })
            }
            To::Chunks(c) => c.finish(hash),
        }
    }
}

/// A writer for a file that grew by appending ([`Objects::append_writer`]).
#[derive(Debug)]
pub struct AppendWriter<'a> {
    /// The offset from which the writer wants the file's bytes.
    pub resume_at: u64,
    /// The previous content's first chunk (id and size): a file whose
    /// start differs (a database's header page) was not only appended to,
    /// which the first read tells.
    pub first: ([u8; 32], u64),
    /// The writer.
    pub writer: ObjectWriter<'a>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn sha(b: &[u8]) -> [u8; 32] {
        crate::crypto::sha256(b)
    }

    fn packs(objects: &Objects) -> usize {
        objects.store.list(NameKind::Pack).unwrap().len()
    }

    /// Objects in `dir` keeping the pack index cache, as a vault does.
    fn cached(dir: &Path) -> Objects {
        Objects::local_cached(dir.join("objects"), dir.join("cache/packs"))
    }

    /// The head hint is believed for the content and pack it names, only
    /// while that pack holds that entry: a hint at another entry, for a
    /// pack of another count or for a pack that is gone is not.
    #[test]
    fn a_hint_is_believed_only_where_its_pack_holds_its_entry() {
        let dir = tempfile::tempdir().unwrap();
        let objects = cached(dir.path());
        let contents = seal_many(&objects, 3);
        let hash = sha(&contents[1]);
        // None yet: the look goes through every index and leaves one.
        assert!(objects.still_stored(&hash).unwrap());
        let path = dir.path().join("cache/head");
        let h = hint::load(&path).expect("a hint was left");
        assert_eq!(h.id, hash);
        assert!(h.check(&*objects.store).is_some());
        let fresh = cached(dir.path());
        assert!(fresh.still_stored(&hash).unwrap());
        assert_eq!(fresh.packs_known(), 0, "the hint answered");
        // Lies about where the entry is, or how many there are.
        for lie in [
            hint::Hint {
                count: h.count + 1,
                at: h.at + 1,
                ..h.clone()
            },
            hint::Hint {
                pack: [0xab; 32],
                ..h.clone()
            },
        ] {
            assert!(lie.check(&*objects.store).is_none(), "{lie:?}");
            hint::save(&path, &lie);
            let fresh = cached(dir.path());
            assert!(fresh.still_stored(&hash).unwrap());
            assert!(fresh.packs_known() > 0, "a lie is not believed");
            assert_eq!(hint::load(&path), Some(h.clone()), "written anew");
        }
        // In a pack of several entries: the right count with another
        // entry's number, or the right number with an entry changed.
        let batch = objects.deferred().unwrap();
        let three: Vec<Vec<u8>> = (0..3).map(|i| noise(100 + i, 300)).collect();
        for c in &three {
            batch.put(&sha(c), c).unwrap();
        }
        batch.sync().unwrap();
        let middle = sha(&three[1]);
        assert!(objects.still_stored(&middle).unwrap());
        let m = hint::load(&path).expect("a hint for the middle one");
        assert_eq!((m.count, m.at), (3, 1));
        assert!(m.check(&*objects.store).is_some());
        for lie in [
            hint::Hint { at: 0, ..m.clone() },
            hint::Hint {
                entry: PackEntry {
                    offset: m.entry.offset + 1,
                    ..m.entry
                },
                ..m.clone()
            },
        ] {
            assert!(lie.check(&*objects.store).is_none(), "{lie:?}");
        }
        // Another content is not answered by this content's hint.
        let other = sha(&contents[2]);
        let fresh = cached(dir.path());
        assert!(fresh.still_stored(&other).unwrap());
        assert_eq!(hint::load(&path).map(|h| h.id), Some(other));
        // Gone: not stored, whatever the hint says.
        objects.store.delete(&Name::Pack(h.pack)).unwrap();
        hint::save(&path, &h);
        assert!(!cached(dir.path()).still_stored(&hash).unwrap());
    }

    /// A pack whose index claims a 4 GiB blob, and a loose object of
    /// 50 GiB (sparse): both refused as damage before anything is
    /// allocated or read for them, not read until memory runs out.
    #[test]
    fn a_blob_or_object_that_claims_to_be_huge_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let objects = cached(dir.path());
        let stored = zstd::bulk::compress(&[0u8; 4096], 3).unwrap();
        let id = [7u8; 32];
        let entry = PackEntry {
            kind: BlobKind::Data,
            codec: Codec::Zstd,
            id,
            offset: pack::MAGIC.len() as u64,
            stored: stored.len() as u32,
            plain: u32::MAX,
            size: u64::from(u32::MAX),
        };
        let index = entry.to_bytes().to_vec();
        let mut bytes = pack::MAGIC.to_vec();
        bytes.extend_from_slice(&stored);
        bytes.extend_from_slice(&index);
        bytes.extend_from_slice(&pack::footer(&index));
        let name: [u8; 32] = sha2::Sha256::digest(&index).into();
        objects.store.put(&Name::Pack(name), &bytes).unwrap();
        let objects = cached(dir.path());
        let err = objects.read(&id).unwrap_err().to_string();
        assert!(err.contains("more than such a file can be"), "{err}");
        let err = objects
            .stream(&id, u64::from(u32::MAX), &mut |_| Ok(()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("larger than any selfsame writes"), "{err}");

        let huge = [9u8; 32];
        let path = objects.locate(&huge);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::File::create(&path)
            .unwrap()
            .set_len(50 << 30)
            .unwrap();
        let err = objects.read(&huge).unwrap_err().to_string();
        assert!(err.contains("more than such a file can be"), "{err}");
    }

    /// `n` seals of one small content each: `n` packs.
    fn seal_many(objects: &Objects, n: u64) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                let bytes = noise(100 + i, 3000);
                let batch = objects.deferred().unwrap();
                batch.store_bytes(&sha(&bytes), &bytes).unwrap();
                batch.sync().unwrap();
                bytes
            })
            .collect()
    }

    fn cache_names(dir: &Path) -> BTreeSet<[u8; 32]> {
        let bytes = std::fs::read(dir.join("cache/packs")).unwrap();
        packcache::parse(&bytes)
            .expect("the cache parses")
            .into_keys()
            .collect()
    }

    fn pack_names(objects: &Objects) -> BTreeSet<[u8; 32]> {
        let names = objects.store.list(NameKind::Pack).unwrap();
        names.iter().map(|n| *n.hash()).collect()
    }

    #[test]
    fn after_many_seals_a_command_reads_no_pack_index_it_knows() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = cached(dir.path());
        let contents = seal_many(&sealer, 40);
        assert_eq!(packs(&sealer), 40);
        // The cache names every pack, written as the seals went.
        assert_eq!(cache_names(dir.path()), pack_names(&sealer));
        let mode = std::fs::metadata(dir.path().join("cache/packs")).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
        // A later command: every content found, no pack's index read.
        let later = cached(dir.path());
        for c in &contents {
            assert_eq!(later.read(&sha(c)).unwrap(), *c);
        }
        assert_eq!(later.indexes_read(), 0);
        // One more seal by another process: only its pack is new to a
        // command that had the cache before it.
        let stale = std::fs::read(dir.path().join("cache/packs")).unwrap();
        let extra = noise(7, 3000);
        let batch = cached(dir.path()).deferred().unwrap();
        batch.store_bytes(&sha(&extra), &extra).unwrap();
        batch.sync().unwrap();
        std::fs::write(dir.path().join("cache/packs"), stale).unwrap();
        let next = cached(dir.path());
        assert_eq!(next.read(&sha(&extra)).unwrap(), extra);
        assert_eq!(next.indexes_read(), 1);
        assert_eq!(cache_names(dir.path()), pack_names(&next));
        // Without a cache every index is read.
        let uncached = Objects::local(dir.path().join("objects"));
        uncached.list().unwrap();
        assert_eq!(uncached.indexes_read(), 41);
    }

    #[test]
    fn a_garbled_cut_or_oversized_cache_is_ignored_and_written_anew() {
        let dir = tempfile::tempdir().unwrap();
        let contents = seal_many(&cached(dir.path()), 12);
        let path = dir.path().join("cache/packs");
        let good = std::fs::read(&path).unwrap();
        let mut flipped = good.clone();
        flipped[good.len() / 2] ^= 0xff;
        let mut big = good.clone();
        big.resize(packcache::MAX_CACHE as usize + 1, 0);
        let cases: [(&str, Option<Vec<u8>>); 5] = [
            ("flipped", Some(flipped)),
            ("cut short", Some(good[..good.len() - 9].to_vec())),
            ("empty", Some(Vec::new())),
            ("oversized", Some(big)),
            ("missing", None),
        ];
        for (what, bytes) in cases {
            let _ = std::fs::remove_file(&path);
            if let Some(b) = bytes {
                std::fs::write(&path, b).unwrap();
            }
            let objects = cached(dir.path());
            for c in &contents {
                assert_eq!(objects.read(&sha(c)).unwrap(), *c, "{what}");
            }
            assert_eq!(objects.indexes_read(), 12, "{what}");
            assert!(std::fs::read(&path).unwrap() == good, "{what}: rebuilt");
        }
        // A symlink in its place is not followed, and is replaced.
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        let objects = cached(dir.path());
        assert_eq!(objects.read(&sha(&contents[0])).unwrap(), contents[0]);
        assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
        assert!(std::fs::read(&path).unwrap() == good, "rebuilt");
    }

    #[test]
    fn a_cache_that_lies_about_a_pack_is_not_believed_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let contents = seal_many(&cached(dir.path()), 3);
        let path = dir.path().join("cache/packs");
        let good = std::fs::read(&path).unwrap();
        // Every entry's offset moved by one, the checksum made right.
        let mut cached_packs = packcache::parse(&good).unwrap();
        for raw in cached_packs.values_mut() {
            for e in raw.chunks_exact_mut(pack::ENTRY_LEN) {
                e[34] = e[34].wrapping_add(1);
            }
        }
        let lies: Vec<([u8; 32], Vec<PackEntry>)> = cached_packs
            .iter()
            .map(|(n, raw)| {
                let entries = raw
                    .chunks_exact(pack::ENTRY_LEN)
                    .map(|b| {
                        let mut e = PackEntry {
                            kind: BlobKind::Data,
                            codec: Codec::Plain,
                            id: [0; 32],
                            offset: 0,
                            stored: 0,
                            plain: 0,
                            size: 0,
                        };
                        e.kind = match b[0] {
                            0 => BlobKind::Data,
                            1 => BlobKind::File,
                            _ => BlobKind::Node,
                        };
                        e.codec = if b[1] == 1 { Codec::Zstd } else { Codec::Plain };
                        e.id.copy_from_slice(&b[2..34]);
                        e.offset = u64::from_le_bytes(b[34..42].try_into().unwrap());
                        e.stored = u32::from_le_bytes(b[42..46].try_into().unwrap());
                        e.plain = u32::from_le_bytes(b[46..50].try_into().unwrap());
                        e.size = u64::from_le_bytes(b[50..58].try_into().unwrap());
                        e
                    })
                    .collect();
                (*n, entries)
            })
            .collect();
        let lying = packcache::encode(lies.iter().map(|(n, e)| (n, e)));
        assert!(packcache::parse(&lying).is_some(), "a well-formed cache");
        std::fs::write(&path, &lying).unwrap();
        let objects = cached(dir.path());
        for c in &contents {
            assert_eq!(objects.read(&sha(c)).unwrap(), *c);
        }
        assert_eq!(objects.indexes_read(), 3, "each pack's own index read");
        assert!(
            std::fs::read(&path).unwrap() == good,
            "the truth written back"
        );
    }

    #[test]
    fn prune_drops_removed_packs_from_the_cache_and_adds_those_written_anew() {
        let dir = tempfile::tempdir().unwrap();
        let objects = cached(dir.path());
        let keep = noise(4, 500_000);
        let mut gone = keep[..300_000].to_vec();
        gone.extend(noise(5, 200_000));
        let batch = objects.deferred().unwrap();
        batch.store_bytes(&sha(&keep), &keep).unwrap();
        batch.store_bytes(&sha(&gone), &gone).unwrap();
        batch.sync().unwrap();
        seal_many(&objects, 2);
        let before = pack_names(&objects);
        assert_eq!(cache_names(dir.path()), before);
        let kept: BTreeSet<ObjectId> = objects.reaches(&sha(&keep)).unwrap().into_iter().collect();
        let doomed: BTreeSet<ObjectId> = objects
            .ids()
            .unwrap()
            .into_iter()
            .filter(|id| !kept.contains(id))
            .collect();
        objects.delete(&doomed).unwrap();
        let after = pack_names(&objects);
        assert_ne!(after, before);
        assert!(
            after.iter().any(|p| !before.contains(p)),
            "a pack written anew"
        );
        assert_eq!(cache_names(dir.path()), after);
        let later = cached(dir.path());
        assert_eq!(later.read(&sha(&keep)).unwrap(), keep);
        assert!(later.size_of(&sha(&gone)).unwrap().is_none());
        assert_eq!(later.indexes_read(), 0);
    }

    #[test]
    fn damage_to_a_pack_index_is_named_though_the_cache_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let contents = seal_many(&cached(dir.path()), 2);
        let objects = cached(dir.path());
        assert!(objects.damaged_packs().is_empty());
        // The last byte of every pack (its index's magic) flipped.
        for name in objects.store.list(NameKind::Pack).unwrap() {
            let path = objects.store.locate(&name);
            let mut bytes = std::fs::read(&path).unwrap();
            *bytes.last_mut().unwrap() ^= 1;
            std::fs::write(&path, bytes).unwrap();
        }
        let later = cached(dir.path());
        assert_eq!(later.read(&sha(&contents[0])).unwrap(), contents[0]);
        assert_eq!(later.indexes_read(), 0, "the blobs read through the cache");
        let damaged = later.damaged_packs();
        assert_eq!(damaged.len(), 2, "{damaged:?}");
        assert!(
            damaged.iter().all(|(_, why)| why.contains("bad magic")),
            "{damaged:?}"
        );
    }

    #[test]
    fn a_batch_packs_small_and_chunked_content_that_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::local(dir.path().join("objects"));
        let batch = objects.deferred().unwrap();
        let small = b"a small file".to_vec();
        let text: Vec<u8> = (0..40_000)
            .flat_map(|i| format!("line {i} of a long memory\n").into_bytes())
            .collect();
        let big = noise(1, 3_000_000);
        assert!(batch.put(&sha(&small), &small).unwrap());
        let stored = batch.store_bytes(&sha(&text), &text).unwrap();
        assert!(
            stored.new && stored.bytes < text.len() as u64 / 2,
            "{stored:?}"
        );
        let mut w = batch.writer().unwrap();
        for piece in big.chunks(100_000) {
            w.write(piece).unwrap();
        }
        let s = w.finish(&sha(&big)).unwrap();
        assert!(
            s.new && s.bytes >= big.len() as u64,
            "random bytes do not shrink"
        );
        // Nothing visible before the commit.
        assert_eq!(objects.size_of(&sha(&small)).unwrap(), None);
        batch.sync().unwrap();
        assert_eq!(packs(&objects), 1);
        for content in [&small, &text, &big] {
            let h = sha(content);
            assert_eq!(objects.size_of(&h).unwrap(), Some(content.len() as u64));
            assert_eq!(&objects.read(&h).unwrap(), content);
        }
        // Another view of the same directory finds it all too.
        let fresh = Objects::local(dir.path().join("objects"));
        assert_eq!(fresh.read(&sha(&big)).unwrap(), big);
        // Stored again: nothing new.
        let again = fresh.deferred().unwrap();
        assert_eq!(
            again.store_bytes(&sha(&text), &text).unwrap(),
            Stored::default()
        );
        again.sync().unwrap();
        assert_eq!(packs(&fresh), 1);
    }

    #[test]
    fn an_append_keeps_the_chunks_before_it_and_an_edit_few_more() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::local(dir.path().join("objects"));
        let v1 = noise(2, 2_000_000);
        let batch = objects.deferred().unwrap();
        batch.store_bytes(&sha(&v1), &v1).unwrap();
        batch.sync().unwrap();

        let mut v2 = v1.clone();
        v2.extend(noise(3, 100_000));
        let batch = objects.deferred().unwrap();
        let mut w = batch.append_writer(&sha(&v1), v1.len() as u64).unwrap();
        w.writer.write(&v2[w.resume_at as usize..]).unwrap();
        let s = w.writer.finish(&sha(&v2)).unwrap();
        batch.sync().unwrap();
        // The new bytes, the last old chunk again, and a list.
        assert!(s.new && s.bytes < 100_000 + 64 * 1024 + 10_000, "{s:?}");
        assert_eq!(objects.read(&sha(&v2)).unwrap(), v2);

        let mut v3 = v2.clone();
        v3[1_000_000..1_000_100].fill(0);
        let batch = objects.deferred().unwrap();
        let s = batch.store_bytes(&sha(&v3), &v3).unwrap();
        batch.sync().unwrap();
        assert!(s.bytes < 3 * 64 * 1024, "{s:?}");
        assert_eq!(objects.read(&sha(&v3)).unwrap(), v3);
    }

    #[test]
    fn deleting_what_one_content_alone_needs_keeps_the_rest_readable() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::local(dir.path().join("objects"));
        let keep = noise(4, 500_000);
        let mut gone = keep[..300_000].to_vec();
        gone.extend(noise(5, 200_000));
        let batch = objects.deferred().unwrap();
        batch.store_bytes(&sha(&keep), &keep).unwrap();
        batch.store_bytes(&sha(&gone), &gone).unwrap();
        batch.sync().unwrap();
        let before: u64 = objects
            .ids()
            .unwrap()
            .iter()
            .filter_map(|id| objects.stored_size(id))
            .sum();
        let kept: BTreeSet<ObjectId> = objects.reaches(&sha(&keep)).unwrap().into_iter().collect();
        let doomed: BTreeSet<ObjectId> = objects
            .ids()
            .unwrap()
            .into_iter()
            .filter(|id| !kept.contains(id))
            .collect();
        assert!(!doomed.is_empty());
        let freed = objects.delete(&doomed).unwrap();
        assert!(freed > 0);
        assert_eq!(objects.read(&sha(&keep)).unwrap(), keep);
        assert!(objects.size_of(&sha(&gone)).unwrap().is_none());
        let after: u64 = objects
            .ids()
            .unwrap()
            .iter()
            .filter_map(|id| objects.stored_size(id))
            .sum();
        assert!(after < before, "{after} of {before}");
        assert_eq!(
            packs(&objects),
            1,
            "the old pack is gone, the new one holds what is kept"
        );
    }
}
