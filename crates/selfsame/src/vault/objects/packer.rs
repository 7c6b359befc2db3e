//! Writing packs: blobs are compressed where it pays and appended to the
//! pack being written, which is closed with its index once it passes
//! [`PACK_TARGET`] bytes (or when the batch ends). Every pack is written
//! through the store's batch, so none is visible before the commit.

use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use sha2::Digest;

use crate::error::Result;
use crate::format::pack::{self, BlobKind, Codec, PackEntry};
use crate::vault::store::{EntryWriter, Name, Store};

/// A pack is closed once its blobs pass this many bytes.
pub const PACK_TARGET: u64 = 16 << 20;
/// The zstd level blobs are compressed at.
pub const ZSTD_LEVEL: i32 = 3;
/// Blobs shorter than this are stored as they are (a frame's overhead
/// eats what compression would save).
const COMPRESS_MIN: usize = 64;

/// The packs of one batch.
pub struct Packer {
    store: Arc<dyn Store>,
    open: Mutex<Option<OpenPack>>,
    /// Blobs written in this batch, by kind and id.
    written: Mutex<HashSet<([u8; 32], BlobKind)>>,
    /// Packs closed in this batch, with their entries.
    closed: Mutex<Vec<([u8; 32], Vec<PackEntry>)>>,
}

impl std::fmt::Debug for Packer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Packer")
    }
}

struct OpenPack {
    writer: Box<dyn EntryWriter>,
    offset: u64,
    entries: Vec<PackEntry>,
}

/// A blob ready to be packed.
pub struct Blob<'a> {
    /// What it is.
    pub kind: BlobKind,
    /// Its id.
    pub id: [u8; 32],
    /// Its bytes, decoded.
    pub plain: &'a [u8],
    /// The content it stands for.
    pub size: u64,
}

thread_local! {
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
}

/// `plain` compressed with zstd, when that saves at least a 32nd of it.
pub fn compress(plain: &[u8]) -> Option<Vec<u8>> {
    if plain.len() < COMPRESS_MIN {
        return None;
    }
    let limit = plain.len() - plain.len() / 32;
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = zstd::bulk::Compressor::new(ZSTD_LEVEL).ok();
        }
        let out = c.as_mut()?.compress(plain).ok()?;
        (out.len() <= limit).then_some(out)
    })
}

impl Packer {
    /// The packs of a batch of `store` (a store in batch mode).
    pub fn new(store: Arc<dyn Store>) -> Self {
        Packer {
            store,
            open: Mutex::new(None),
            written: Mutex::default(),
            closed: Mutex::default(),
        }
    }

    /// Whether this batch wrote the blob already.
    pub fn has(&self, kind: BlobKind, id: &[u8; 32]) -> bool {
        self.written.lock().expect("written").contains(&(*id, kind))
    }

    /// Packs `blob` (compressed, when `try_compress` and it pays) unless
    /// this batch wrote it already; returns the bytes it took.
    pub fn add(&self, blob: &Blob<'_>, try_compress: bool) -> Result<Option<u64>> {
        if !self
            .written
            .lock()
            .expect("written")
            .insert((blob.id, blob.kind))
        {
            return Ok(None);
        }
        let packed = if try_compress {
            compress(blob.plain)
        } else {
            None
        };
        let (codec, bytes) = match &packed {
            Some(z) => (Codec::Zstd, z.as_slice()),
            None => (Codec::Plain, blob.plain),
        };
        let mut open = self.open.lock().expect("open pack");
        if open.is_none() {
            let mut writer = self.store.create()?;
            writer.write(pack::MAGIC)?;
            *open = Some(OpenPack {
                writer,
                offset: pack::MAGIC.len() as u64,
                entries: Vec::new(),
            });
        }
        let p = open.as_mut().expect("opened above");
        p.writer.write(bytes)?;
        p.entries.push(PackEntry {
            kind: blob.kind,
            codec,
            id: blob.id,
            offset: p.offset,
            stored: bytes.len() as u32,
            plain: blob.plain.len() as u32,
            size: blob.size,
        });
        p.offset += bytes.len() as u64;
        if p.offset >= PACK_TARGET {
            let full = open.take().expect("open");
            drop(open);
            self.close(full)?;
        }
        Ok(Some(bytes.len() as u64))
    }

    /// Writes the pack's index and footer and names it.
    fn close(&self, mut p: OpenPack) -> Result<()> {
        let index: Vec<u8> = p.entries.iter().flat_map(|e| e.to_bytes()).collect();
        p.writer.write(&index)?;
        p.writer.write(&pack::footer(&index))?;
        let name: [u8; 32] = sha2::Sha256::digest(&index).into();
        p.writer.finish(&Name::Pack(name))?;
        self.closed
            .lock()
            .expect("closed")
            .push((name, std::mem::take(&mut p.entries)));
        Ok(())
    }

    /// Closes the pack being written, if any; returns every pack of the
    /// batch (to be committed, then learnt by the index).
    pub fn finish(&self) -> Result<Vec<([u8; 32], Vec<PackEntry>)>> {
        let open = self.open.lock().expect("open pack").take();
        if let Some(p) = open {
            self.close(p)?;
        }
        Ok(std::mem::take(&mut *self.closed.lock().expect("closed")))
    }
}
