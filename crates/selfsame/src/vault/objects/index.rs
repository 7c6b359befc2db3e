//! Where each packed blob is: the packs' indexes, read from their ends
//! and kept in memory for the life of the vault value. A pack another
//! process added (or removed) since is found by [`Index::refresh`], which
//! lists the packs and reads the index of each new one — from the pack
//! index cache ([`super::packcache`]) when the vault has one and it holds
//! the pack's index, else from the pack.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;

use crate::error::{Damage, Error, Result};
use crate::format::pack::{self, BlobKind, PackEntry, ENTRY_LEN, FOOTER_LEN};
use crate::vault::store::{Name, NameKind, Store};

/// A blob's pack and entry.
#[derive(Debug, Clone, Copy)]
pub struct Located {
    /// The pack.
    pub pack: [u8; 32],
    /// Its entry in the pack's index.
    pub entry: PackEntry,
}

/// The packs known, and their blobs.
#[derive(Debug, Default)]
pub struct Index {
    /// Each pack known (`None` once gone), by number.
    packs: Vec<Option<([u8; 32], Vec<PackEntry>)>>,
    numbers: HashMap<[u8; 32], u32>,
    /// Each blob's pack number and entry number.
    blobs: HashMap<([u8; 32], BlobKind), (u32, u32), IdHash>,
    /// Packs whose index does not read, with why.
    damaged: Vec<(Name, Error)>,
    /// The pack index cache, when the vault keeps one.
    cache: Option<Cache>,
    /// Pack indexes read from packs (not the cache), for the test hooks.
    #[cfg(any(test, feature = "test-hooks"))]
    indexes_read: u64,
}

/// The pack index cache as this index uses it.
#[derive(Debug)]
struct Cache {
    path: PathBuf,
    /// Whether the file was read (by the first refresh).
    loaded: bool,
    /// Whether the packs known differ from what the file holds.
    dirty: bool,
}

impl Index {
    /// An index that keeps the pack index cache at `path`.
    pub fn cached(path: PathBuf) -> Self {
        Index {
            cache: Some(Cache {
                path,
                loaded: false,
                dirty: false,
            }),
            ..Index::default()
        }
    }

    /// The blob `(kind, id)`, if a known pack holds it.
    pub fn find(&self, kind: BlobKind, id: &[u8; 32]) -> Option<Located> {
        let (p, e) = *self.blobs.get(&(*id, kind))?;
        let (pack, entries) = self.packs.get(p as usize)?.as_ref()?;
        Some(Located {
            pack: *pack,
            entry: *entries.get(e as usize)?,
        })
    }

    /// The blob `(kind, id)`, with how many entries its pack has and which
    /// of them is the blob's (for a [`super::hint::Hint`]).
    pub fn find_numbered(&self, kind: BlobKind, id: &[u8; 32]) -> Option<(Located, usize, usize)> {
        let (p, e) = *self.blobs.get(&(*id, kind))?;
        let (pack, entries) = self.packs.get(p as usize)?.as_ref()?;
        let located = Located {
            pack: *pack,
            entry: *entries.get(e as usize)?,
        };
        Some((located, entries.len(), e as usize))
    }

    /// Learns a pack (written by this process, or listed).
    pub fn add(&mut self, pack: [u8; 32], entries: Vec<PackEntry>) {
        if self.learn(pack, entries) {
            if let Some(c) = &mut self.cache {
                c.dirty = true;
            }
        }
    }

    /// Learns a pack; whether it was new.
    fn learn(&mut self, pack: [u8; 32], entries: Vec<PackEntry>) -> bool {
        if self.numbers.contains_key(&pack) {
            return false;
        }
        let no = self.packs.len() as u32;
        for (i, e) in entries.iter().enumerate() {
            self.blobs.entry((e.id, e.kind)).or_insert((no, i as u32));
        }
        self.packs.push(Some((pack, entries)));
        self.numbers.insert(pack, no);
        true
    }

    /// Writes the pack index cache when the packs known are not what it
    /// holds. A cache that cannot be written is left as it is: it is only
    /// a cache.
    pub fn save(&mut self) {
        let Some(cache) = &self.cache else { return };
        if !cache.dirty {
            return;
        }
        let bytes = super::packcache::encode(self.packs());
        let cache = self.cache.as_mut().expect("checked");
        // Tried once for what changed: a failed write (a full disk) is
        // not retried until the packs change again.
        let _ = super::packcache::save(&cache.path, &bytes);
        cache.dirty = false;
    }

    /// Pack indexes this index read from packs rather than the cache.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn indexes_read(&self) -> u64 {
        self.indexes_read
    }

    /// Lists the store's packs: reads the index of each new one and forgets
    /// those that are gone.
    pub fn refresh(&mut self, store: &dyn Store) -> Result<()> {
        let mut new = Vec::new();
        let read = self.read_new(store, &mut new);
        // Every process that opens a vault reads every pack's index: one
        // growth of the map instead of a dozen rehashes of it.
        self.blobs.reserve(new.iter().map(|(_, e)| e.len()).sum());
        for (hash, entries) in new {
            self.learn(hash, entries);
        }
        self.save();
        read
    }

    /// Forgets the packs that are gone and reads the index of each new one
    /// into `new` (those read before a failure too), from the cache when it
    /// holds it.
    fn read_new(
        &mut self,
        store: &dyn Store,
        new: &mut Vec<([u8; 32], Vec<PackEntry>)>,
    ) -> Result<()> {
        let names = store.list(NameKind::Pack)?;
        let present: HashSet<[u8; 32]> = names.iter().map(|n| *n.hash()).collect();
        let mut cached = match &self.cache {
            Some(c) if !c.loaded => Some(super::packcache::load(&c.path)),
            _ => None,
        };
        let gone: Vec<[u8; 32]> = self
            .numbers
            .keys()
            .filter(|p| !present.contains(*p))
            .copied()
            .collect();
        if !gone.is_empty() {
            for p in gone {
                if let Some(no) = self.numbers.remove(&p) {
                    self.packs[no as usize] = None;
                }
                if let Some(c) = &mut self.cache {
                    c.dirty = true;
                }
            }
            // Blobs of a removed pack that another pack also holds.
            self.blobs.clear();
            for (no, slot) in self.packs.iter().enumerate() {
                if let Some((_, entries)) = slot {
                    for (i, e) in entries.iter().enumerate() {
                        self.blobs
                            .entry((e.id, e.kind))
                            .or_insert((no as u32, i as u32));
                    }
                }
            }
        }
        self.damaged.retain(|(n, _)| present.contains(n.hash()));
        for name in names {
            let hash = *name.hash();
            if self.numbers.contains_key(&hash) || self.damaged.iter().any(|(n, _)| *n == name) {
                continue;
            }
            let known = cached
                .as_mut()
                .and_then(|c| c.remove(&hash))
                .and_then(|raw| super::packcache::entries(&hash, &raw));
            if let Some(entries) = known {
                new.push((hash, entries));
                continue;
            }
            #[cfg(any(test, feature = "test-hooks"))]
            {
                self.indexes_read += 1;
            }
            match read_index(store, &name) {
                Ok(entries) => {
                    new.push((hash, entries));
                    if let Some(c) = &mut self.cache {
                        c.dirty = true;
                    }
                }
                // A pack that is not one is damage for verify to name; a
                // disk that fails to read it fails the caller.
                Err(e @ Error::Corrupt { .. }) => self.damaged.push((name, e)),
                Err(e) => return Err(e),
            }
        }
        if let (Some(c), Some(left)) = (&mut self.cache, cached) {
            c.loaded = true;
            // The file named packs that are gone, or lied about one.
            c.dirty |= !left.is_empty();
        }
        Ok(())
    }

    /// Packs whose index does not read.
    pub fn damaged(&self) -> &[(Name, Error)] {
        &self.damaged
    }

    /// Every pack known and its entries.
    pub fn packs(&self) -> impl Iterator<Item = (&[u8; 32], &Vec<PackEntry>)> {
        self.packs.iter().flatten().map(|(p, e)| (p, e))
    }
}

/// The hasher of the blob map: blob ids are SHA-256 values, so a few
/// multiplications mix them as well as SipHash does, at a fraction of its
/// cost (SipHash was most of the time of reading a large vault's indexes).
/// Its keys are drawn per map from the standard library's random source,
/// so content chosen to collide in one process's map does not collide in
/// another's.
#[derive(Debug, Clone, Copy)]
struct IdHash {
    seed: u64,
    key: u64,
}

impl Default for IdHash {
    fn default() -> Self {
        let random = RandomState::new();
        IdHash {
            seed: random.hash_one(0u8),
            key: random.hash_one(1u8) | 1,
        }
    }
}

impl BuildHasher for IdHash {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher {
            state: self.seed,
            key: self.key,
        }
    }
}

/// The state of [`IdHash`] over one key.
#[derive(Debug)]
struct IdHasher {
    state: u64,
    key: u64,
}

impl IdHasher {
    /// Folds one word into the state: the high and low halves of a
    /// 128-bit product, xored, so every bit of the word moves every bit of
    /// the result.
    fn fold(&mut self, word: u64) {
        let product = u128::from(self.state ^ word) * u128::from(self.key);
        self.state = (product as u64) ^ ((product >> 64) as u64);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.fold(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.fold(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.fold(n as u64);
    }

    fn write_isize(&mut self, n: isize) {
        self.fold(n as u64);
    }

    fn finish(&self) -> u64 {
        self.state
    }
}

/// Reads and checks the index at the end of the pack `name`.
pub fn read_index(store: &dyn Store, name: &Name) -> Result<Vec<PackEntry>> {
    let path = store.locate(name);
    let bad = |e: pack::PackError| Error::corrupt(&path, Damage::Pack(e.to_string()));
    let len = store
        .size(name)
        .ok_or_else(|| Error::corrupt(&path, Damage::NotRegular("not a regular file")))?;
    if len < FOOTER_LEN as u64 {
        return Err(bad(pack::PackError::TooShort));
    }
    let footer = store.read_at(name, len - FOOTER_LEN as u64, FOOTER_LEN)?;
    let (count, hash) = pack::parse_footer(&footer, len).map_err(bad)?;
    if hash != *name.hash() {
        return Err(bad(pack::PackError::BadIndex));
    }
    let index_len = count * ENTRY_LEN;
    let at = len - (FOOTER_LEN + index_len) as u64;
    let index = store.read_at(name, at, index_len)?;
    pack::parse_index(&index, name.hash(), len).map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    /// Every bit of an id, and its kind, moves the hash: ids that differ
    /// anywhere (not only in their first bytes) land apart in the map.
    #[test]
    fn every_bit_of_an_id_and_its_kind_moves_the_hash() {
        let build = IdHash::default();
        let id: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37));
        let base = build.hash_one((id, BlobKind::Data));
        for byte in 0..32 {
            for bit in 0..8 {
                let mut other = id;
                other[byte] ^= 1 << bit;
                assert_ne!(
                    build.hash_one((other, BlobKind::Data)),
                    base,
                    "byte {byte} bit {bit}"
                );
            }
        }
        assert_ne!(build.hash_one((id, BlobKind::File)), base);
        assert_ne!(build.hash_one((id, BlobKind::Node)), base);
    }

    /// Two maps draw their own keys: the same id hashes differently in each.
    #[test]
    fn each_map_draws_its_own_keys() {
        let id = [7u8; 32];
        let hashes: HashSet<u64> = (0..8)
            .map(|_| IdHash::default().hash_one((id, BlobKind::Data)))
            .collect();
        assert!(hashes.len() > 1);
    }
}
