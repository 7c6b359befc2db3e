//! Where the vault's objects live: a [`Store`] holds named, immutable
//! entries — create-only, never rewritten — and knows nothing of what they
//! mean. [`crate::vault::objects::Objects`] gives them meaning (content
//! addressed by SHA-256, chunked, compressed, packed) on top of any store.
//!
//! The trait names no local path, hard link or `syncfs`: an object-store
//! backend (S3 and the like) can implement it. What makes many new entries
//! durable together cheaply is the local store's business, behind
//! [`Store::begin`] and [`Store::commit`].
//!
//! [`LocalStore`] keeps entries as files under `.selfsame/objects/`; the
//! in-memory store of the test hooks (`memory`) injects faults.

pub(crate) mod local;
#[cfg(feature = "test-hooks")]
pub(crate) mod memory;

use std::fmt;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::Result;

pub use local::LocalStore;

/// The name of an entry in a store.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Name {
    /// A loose object: the bytes of one piece of content, named by their
    /// SHA-256 (every object of a vault written before packs, and the
    /// config bytes a checkpoint binds).
    Object([u8; 32]),
    /// A pack: many stored blobs and an index of them, named by the
    /// SHA-256 of that index.
    Pack([u8; 32]),
}

impl Name {
    /// The hash in the name.
    pub fn hash(&self) -> &[u8; 32] {
        match self {
            Name::Object(h) | Name::Pack(h) => h,
        }
    }

    /// The kind of the name.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn kind(&self) -> NameKind {
        match self {
            Name::Object(_) => NameKind::Object,
            Name::Pack(_) => NameKind::Pack,
        }
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Name::Object(h) => write!(f, "object {}", hex::encode(h)),
            Name::Pack(h) => write!(f, "pack {}", hex::encode(h)),
        }
    }
}

/// The kinds of names, for [`Store::list`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NameKind {
    /// [`Name::Object`].
    Object,
    /// [`Name::Pack`].
    Pack,
}

/// A streaming reader of an entry.
pub type EntryReader = Box<dyn Read + Send>;

/// Named, immutable entries. Every method may be called from many threads.
///
/// Durability: [`Store::put`] and [`EntryWriter::finish`] return once the
/// entry is durable under its name — unless the store was made by
/// [`Store::begin`], where new entries become durable and visible together
/// at [`Store::commit`] (until then they are visible to no reader, so no
/// name ever stands for bytes a crash could lose). An entry is never
/// visible with part of its bytes.
pub trait Store: Send + Sync + fmt::Debug {
    /// Stores `bytes` as `name` unless an entry of that name exists:
    /// returns whether it wrote. An existing entry is never rewritten.
    fn put(&self, name: &Name, bytes: &[u8]) -> Result<bool>;

    /// Starts a new entry whose name is known only once all its bytes are
    /// written ([`EntryWriter::finish`]). Dropped unfinished, it leaves
    /// nothing.
    fn create(&self) -> Result<Box<dyn EntryWriter>>;

    /// Opens an entry for reading a piece at a time, with its size; `None`
    /// when there is none. Something at the name that is not an entry (a
    /// directory, a symlink, a FIFO in a local store) is damage
    /// ([`crate::error::Error::Corrupt`]), refused at once.
    fn open(&self, name: &Name) -> Result<Option<(EntryReader, u64)>>;

    /// Reads `len` bytes of an entry from `offset`; fewer only where it
    /// ends.
    fn read_at(&self, name: &Name, offset: u64, len: usize) -> Result<Vec<u8>>;

    /// The entry's size when it is there as an entry.
    fn size(&self, name: &Name) -> Option<u64>;

    /// Whether anything at all is at the name (an entry, or something in
    /// its place that [`Store::size`] does not count as one).
    fn exists(&self, name: &Name) -> bool;

    /// The names of every entry of `kind`, sorted.
    fn list(&self, kind: NameKind) -> Result<Vec<Name>>;

    /// Removes an entry (an owner's or a retention policy's decision,
    /// never the store's); returns whether it was there.
    fn delete(&self, name: &Name) -> Result<bool>;

    /// This store in batch mode: entries written through the store
    /// returned are durable and visible only after its
    /// [`Store::commit`]; dropped without one, they are gone.
    fn begin(&self) -> Arc<dyn Store>;

    /// Makes the batch's entries durable, then visible, together. Nothing
    /// to do for a store not made by [`Store::begin`].
    fn commit(&self) -> Result<()>;

    /// Where the entry is, for messages that name it (a path under the
    /// vault for the local store).
    fn locate(&self, name: &Name) -> PathBuf;

    /// Reads a whole entry of at most `cap` bytes; `None` when there is
    /// none. A bigger one is damage. (Part of the contract every store
    /// keeps; the vault itself streams or reads at offsets.)
    #[allow(dead_code)]
    fn get(&self, name: &Name, cap: u64) -> Result<Option<Vec<u8>>> {
        let Some((reader, len)) = self.open(name)? else {
            return Ok(None);
        };
        let path = self.locate(name);
        if len > cap {
            return Err(crate::error::Error::corrupt(
                &path,
                crate::error::Damage::TooBig { len, cap },
            ));
        }
        let mut out = Vec::with_capacity(len as usize);
        use crate::error::IoContext;
        reader.take(len).read_to_end(&mut out).at(&path)?;
        Ok(Some(out))
    }

    /// Whether an entry is at the name.
    fn has(&self, name: &Name) -> bool {
        self.size(name).is_some()
    }
}

/// A new entry being written ([`Store::create`]).
pub trait EntryWriter: Send {
    /// Appends bytes.
    fn write(&mut self, bytes: &[u8]) -> Result<()>;

    /// Something another thread may call to make what was written so far
    /// durable while writing goes on, so that the final flush has little
    /// left to wait for; `None` when the store has no such thing.
    fn flusher(&self) -> Option<Box<dyn Fn() + Send>> {
        None
    }

    /// Names what was written `name` (durable, or pending the batch's
    /// commit). Returns whether a new entry was stored: when the name
    /// exists, what was written is dropped instead.
    fn finish(self: Box<Self>, name: &Name) -> Result<bool>;
}
