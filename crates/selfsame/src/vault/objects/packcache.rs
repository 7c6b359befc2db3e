//! The pack index cache, `.selfsame/cache/packs`: each pack's index as it
//! was last read, so that a command lists the packs (names only) and reads
//! the index of none it has seen before. Packs are named by the SHA-256 of
//! their index and never change, so a cached index is checked against the
//! pack's name before it is used: a cache that lies about a pack is not
//! believed for that pack, whose index is then read from the pack itself.
//! A missing, unreadable, cut short, oversized or garbled cache is no cache
//! (never an error), and is written anew.
//!
//! ```text
//! cache = MAGIC count u32 pack* crc32 u32        (LE; crc32 of everything before it)
//! pack  = name [32] | n u32 | entry*n            (entries as in the pack's own index)
//! ```

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::{IoContext, Result};
use crate::format::pack::{self, PackEntry, ENTRY_LEN, FOOTER_LEN, MAGIC as PACK_MAGIC};
use crate::vault::{atomic, read};

/// The cache's first bytes.
pub const MAGIC: &[u8; 16] = b"selfsame-pkix 1\n";
/// A bigger cache is not read (and is written anew).
pub const MAX_CACHE: u64 = 256 << 20;

/// The cached indexes, by pack name: entries as encoded in the pack, not
/// yet checked against the name.
pub type Cached = HashMap<[u8; 32], Vec<u8>>;

/// Reads the cache at `path`; anything wrong with it is an empty cache.
pub fn load(path: &Path) -> Cached {
    match read::read_capped(path, MAX_CACHE) {
        Ok(Some(bytes)) => parse(&bytes).unwrap_or_default(),
        _ => Cached::new(),
    }
}

/// The cache's packs, when `bytes` is a whole, well-formed cache.
pub fn parse(bytes: &[u8]) -> Option<Cached> {
    let body_len = bytes.len().checked_sub(4)?;
    let (body, sum) = bytes.split_at(body_len);
    if crc32fast::hash(body) != u32::from_le_bytes(sum.try_into().ok()?) {
        return None;
    }
    let mut rest = body.strip_prefix(MAGIC.as_slice())?;
    let count = take_u32(&mut rest)?;
    let mut out = Cached::new();
    for _ in 0..count {
        let name: [u8; 32] = take(&mut rest, 32)?.try_into().ok()?;
        let n = take_u32(&mut rest)? as usize;
        let entries = take(&mut rest, n.checked_mul(ENTRY_LEN)?)?;
        out.insert(name, entries.to_vec());
    }
    rest.is_empty().then_some(out)
}

/// The entries of the pack `name` from its cached index, when they are
/// its index: their hash is its name, and each entry is well-formed.
pub fn entries(name: &[u8; 32], raw: &[u8]) -> Option<Vec<PackEntry>> {
    // The length a pack holding just these blobs and this index has: the
    // entries' bounds are checked against it as a pack's own would be.
    let mut blobs_end = PACK_MAGIC.len() as u64;
    for e in raw.chunks_exact(ENTRY_LEN) {
        let offset = u64::from_le_bytes(e[34..42].try_into().ok()?);
        let stored = u32::from_le_bytes(e[42..46].try_into().ok()?);
        blobs_end = blobs_end.max(offset.checked_add(u64::from(stored))?);
    }
    let len = blobs_end.checked_add((raw.len() + FOOTER_LEN) as u64)?;
    pack::parse_index(raw, name, len).ok()
}

/// The cache's bytes for `packs` (in order of name, so that the same packs
/// make the same bytes).
pub fn encode<'a>(packs: impl Iterator<Item = (&'a [u8; 32], &'a Vec<PackEntry>)>) -> Vec<u8> {
    let mut packs: Vec<_> = packs.collect();
    packs.sort_unstable_by_key(|(name, _)| *name);
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&[0; 4]);
    let mut count = 0u32;
    for (name, entries) in packs {
        count += 1;
        out.extend_from_slice(name);
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        for e in entries {
            out.extend_from_slice(&e.to_bytes());
        }
    }
    out[MAGIC.len()..MAGIC.len() + 4].copy_from_slice(&count.to_le_bytes());
    let sum = crc32fast::hash(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// Puts `bytes` at `path` through a temp file and a rename (0600, in a
/// 0700 directory). No fsync: after a power cut the cache may be missing or
/// cut short, which its checksum refuses (only index reads are lost).
pub fn save(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic::create_dir_all(path.parent().expect("cache path has a parent"))?;
    let tmp = atomic::temp_path(path);
    let mut file = atomic::create_new(&tmp)?;
    if let Err(e) = file.write_all(bytes) {
        drop(file);
        let _ = fs::remove_file(&tmp);
        return Err(e).at(&tmp);
    }
    drop(file);
    // Removed first, as the stat cache is: renamed over an existing file,
    // ext4 would write the new one out at once.
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e).at(path);
        }
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e).at(path);
    }
    Ok(())
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if rest.len() < n {
        return None;
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Some(head)
}

fn take_u32(rest: &mut &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(take(rest, 4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pack::{BlobKind, Codec};
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    fn pack(seed: u8, n: usize) -> ([u8; 32], Vec<PackEntry>) {
        let entries: Vec<PackEntry> = (0..n)
            .map(|i| PackEntry {
                kind: BlobKind::Data,
                codec: Codec::Zstd,
                id: [seed.wrapping_add(i as u8); 32],
                offset: 8 + 100 * i as u64,
                stored: 90,
                plain: 200,
                size: 200,
            })
            .collect();
        let raw: Vec<u8> = entries.iter().flat_map(|e| e.to_bytes()).collect();
        (Sha256::digest(&raw).into(), entries)
    }

    #[test]
    fn what_is_encoded_parses_back_and_checks_against_its_name() {
        let packs = [pack(1, 3), pack(7, 1), pack(9, 0)];
        let bytes = encode(packs.iter().map(|(n, e)| (n, e)));
        let cached = parse(&bytes).expect("parses");
        assert_eq!(cached.len(), 3);
        for (name, want) in &packs {
            assert_eq!(entries(name, &cached[name]).as_ref(), Some(want));
        }
        // An index under another pack's name is not believed.
        assert_eq!(entries(&packs[1].0, &cached[&packs[0].0]), None);
    }

    #[test]
    fn a_cut_short_or_flipped_cache_is_none() {
        let packs = [pack(1, 3), pack(7, 2)];
        let bytes = encode(packs.iter().map(|(n, e)| (n, e)));
        for cut in 0..bytes.len() {
            assert!(parse(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        for at in 0..bytes.len() {
            let mut b = bytes.clone();
            b[at] ^= 0x20;
            assert!(parse(&b).is_none(), "flipped at {at}");
        }
    }

    proptest! {
        #[test]
        fn any_bytes_parse_or_not_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Some(cached) = parse(&bytes) {
                for (name, raw) in &cached {
                    let _ = entries(name, raw);
                }
            }
        }

        #[test]
        fn a_checksummed_body_of_any_bytes_never_panics(body in proptest::collection::vec(any::<u8>(), 0..512), count in 0u32..5) {
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&count.to_le_bytes());
            bytes.extend_from_slice(&body);
            let sum = crc32fast::hash(&bytes);
            bytes.extend_from_slice(&sum.to_le_bytes());
            if let Some(cached) = parse(&bytes) {
                prop_assert!(cached.len() <= count as usize);
                for (name, raw) in &cached {
                    let _ = entries(name, raw);
                }
            }
        }

        #[test]
        fn an_entry_changed_in_a_cache_is_not_believed(at in 0usize..(3 * ENTRY_LEN), bit in 0u8..8) {
            let (name, want) = pack(3, 3);
            let mut raw: Vec<u8> = want.iter().flat_map(|e| e.to_bytes()).collect();
            raw[at] ^= 1 << bit;
            prop_assert_eq!(entries(&name, &raw), None);
        }
    }
}
