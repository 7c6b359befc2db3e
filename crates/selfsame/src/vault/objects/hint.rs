//! The head hint, `.selfsame/cache/head`: where the content a seal last
//! looked for was found (the head's manifest), so that the next look reads
//! two small pieces of one pack instead of every pack's index. A seal of an
//! unchanged soul makes that one look, at every heartbeat.
//!
//! ```text
//! hint = MAGIC id [32] pack [32] count u32 at u32 entry [58] crc32 u32   (LE)
//! ```
//!
//! `count` is how many entries the pack's index has, `at` which of them is
//! `entry`. The hint is believed only when the pack is there and holds, in
//! its own index at `at`, exactly `entry`, whose id is the content's: a
//! hint that is missing, damaged, stale or lying costs the full look and is
//! written anew. Only a cache, like the pack index cache.

use std::path::Path;

use crate::format::pack::{self, BlobKind, PackEntry, ENTRY_LEN, FOOTER_LEN};
use crate::vault::read;
use crate::vault::store::{Name, Store};

use super::index::Located;

/// The hint's first bytes.
pub const MAGIC: &[u8; 16] = b"selfsame-head 1\n";
/// The hint's length.
pub const LEN: usize = MAGIC.len() + 32 + 32 + 4 + 4 + ENTRY_LEN + 4;

/// Where one content was found: its pack, the pack's entry count, and the
/// entry's number and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    /// The content.
    pub id: [u8; 32],
    /// The pack holding it.
    pub pack: [u8; 32],
    /// How many entries the pack's index has.
    pub count: u32,
    /// Which of them is the content's.
    pub at: u32,
    /// That entry.
    pub entry: PackEntry,
}

impl Hint {
    /// The hint's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&self.pack);
        out.extend_from_slice(&self.count.to_le_bytes());
        out.extend_from_slice(&self.at.to_le_bytes());
        out.extend_from_slice(&self.entry.to_bytes());
        let sum = crc32fast::hash(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// The hint in `bytes`, when they are one: whole, checksummed, its
    /// entry well-formed, at an entry number its count allows.
    pub fn parse(bytes: &[u8]) -> Option<Hint> {
        if bytes.len() != LEN {
            return None;
        }
        let (body, sum) = bytes.split_at(LEN - 4);
        if crc32fast::hash(body) != u32::from_le_bytes(sum.try_into().ok()?) {
            return None;
        }
        let rest = body.strip_prefix(MAGIC.as_slice())?;
        let u32_at = |i: usize| u32::from_le_bytes(rest[i..i + 4].try_into().expect("4 bytes"));
        let hint = Hint {
            id: rest[..32].try_into().ok()?,
            pack: rest[32..64].try_into().ok()?,
            count: u32_at(64),
            at: u32_at(68),
            entry: PackEntry::parse(&rest[72..72 + ENTRY_LEN])?,
        };
        (hint.at < hint.count && hint.entry.id == hint.id).then_some(hint)
    }

    /// The hint for content found at `at`, in a pack of `count` entries of
    /// which it is number `no`.
    pub fn of(id: [u8; 32], at: &Located, count: usize, no: usize) -> Option<Hint> {
        Some(Hint {
            id,
            pack: at.pack,
            count: count.try_into().ok()?,
            at: no.try_into().ok()?,
            entry: at.entry,
        })
    }

    /// Where the content is, when the pack the hint names is in `store`
    /// and holds the hinted entry in its index: two small reads of it.
    pub fn check(&self, store: &dyn Store) -> Option<Located> {
        if !matches!(self.entry.kind, BlobKind::Data | BlobKind::File) {
            return None;
        }
        let name = Name::Pack(self.pack);
        let len = store.size(&name)?;
        let footer = store
            .read_at(&name, len.checked_sub(FOOTER_LEN as u64)?, FOOTER_LEN)
            .ok()?;
        let (count, hash) = pack::parse_footer(&footer, len).ok()?;
        if hash != self.pack || count != self.count as usize {
            return None;
        }
        let from_end = FOOTER_LEN as u64 + (u64::from(self.count - self.at)) * ENTRY_LEN as u64;
        let raw = store
            .read_at(&name, len.checked_sub(from_end)?, ENTRY_LEN)
            .ok()?;
        (raw == self.entry.to_bytes()).then_some(Located {
            pack: self.pack,
            entry: self.entry,
        })
    }
}

/// The hint at `path`; anything wrong with it is no hint.
pub fn load(path: &Path) -> Option<Hint> {
    match read::read_capped(path, LEN as u64) {
        Ok(Some(bytes)) => Hint::parse(&bytes),
        _ => None,
    }
}

/// Writes the hint at `path` as the pack index cache is written (no fsync:
/// only a cache); a hint that cannot be written is no hint.
pub fn save(path: &Path, hint: &Hint) {
    let _ = super::packcache::save(path, &hint.encode());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pack::Codec;
    use proptest::prelude::*;

    fn hint() -> Hint {
        let id = [7u8; 32];
        Hint {
            id,
            pack: [9u8; 32],
            count: 5,
            at: 3,
            entry: PackEntry {
                kind: BlobKind::File,
                codec: Codec::Zstd,
                id,
                offset: 8,
                stored: 100,
                plain: 300,
                size: 9_000_000,
            },
        }
    }

    #[test]
    fn a_hint_parses_back_and_a_cut_or_flipped_one_is_none() {
        let bytes = hint().encode();
        assert_eq!(bytes.len(), LEN);
        assert_eq!(Hint::parse(&bytes), Some(hint()));
        for cut in 0..bytes.len() {
            assert!(Hint::parse(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        for at in 0..bytes.len() {
            let mut b = bytes.clone();
            b[at] ^= 0x10;
            assert!(Hint::parse(&b).is_none(), "flipped at {at}");
        }
    }

    #[test]
    fn a_hint_whose_entry_is_of_other_content_or_past_its_count_is_none() {
        let mut other = hint();
        other.entry.id = [8u8; 32];
        assert!(Hint::parse(&other.encode()).is_none());
        let mut past = hint();
        past.at = past.count;
        assert!(Hint::parse(&past.encode()).is_none());
    }

    proptest! {
        #[test]
        fn any_bytes_parse_or_not_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Hint::parse(&bytes);
        }

        #[test]
        fn a_checksummed_body_of_any_bytes_never_panics(body in proptest::collection::vec(any::<u8>(), LEN - 4 - MAGIC.len()..=LEN - 4 - MAGIC.len())) {
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&body);
            let sum = crc32fast::hash(&bytes);
            bytes.extend_from_slice(&sum.to_le_bytes());
            if let Some(h) = Hint::parse(&bytes) {
                prop_assert!(h.at < h.count);
                prop_assert_eq!(h.entry.id, h.id);
            }
        }
    }
}
