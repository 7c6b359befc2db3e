//! Packs and lists as bytes (docs/STORAGE.md has the same, for other
//! tools): a pack is many stored blobs followed by an index of them; a
//! list is the parts a piece of content is made of.
//!
//! ```text
//! pack   = MAGIC blob* entry* footer
//! entry  = kind u8 | codec u8 | id [32] | offset u64 | stored u32 | plain u32 | size u64   (58 bytes, LE)
//! footer = count u32 | sha256(entries) [32] | INDEX_MAGIC                                  (44 bytes)
//! list   = LIST_MAGIC part*
//! part   = kind u8 | id [32] | size u64                                                    (41 bytes, LE)
//! ```

use std::fmt;

/// The first bytes of every pack.
pub const MAGIC: &[u8; 8] = b"SSPACK\x00\x01";
/// The last bytes of every pack.
pub const INDEX_MAGIC: &[u8; 8] = b"SSPACKIX";
/// The first bytes of every list.
pub const LIST_MAGIC: &[u8; 4] = b"SSL1";
/// Bytes of one index entry.
pub const ENTRY_LEN: usize = 58;
/// Bytes of the footer.
pub const FOOTER_LEN: usize = 44;
/// Bytes of one part of a list.
pub const PART_LEN: usize = 41;

/// What a blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BlobKind {
    /// Bytes of content; its id is their SHA-256.
    Data,
    /// A list whose parts, in order, make the content whose SHA-256 is
    /// its id (a chunked file, a chunked manifest).
    File,
    /// A list inside another list; its id is the SHA-256 of the list's
    /// own bytes.
    Node,
}

impl BlobKind {
    fn byte(self) -> u8 {
        match self {
            BlobKind::Data => 0,
            BlobKind::File => 1,
            BlobKind::Node => 2,
        }
    }

    fn of(byte: u8) -> Option<BlobKind> {
        Some(match byte {
            0 => BlobKind::Data,
            1 => BlobKind::File,
            2 => BlobKind::Node,
            _ => return None,
        })
    }
}

/// How a blob's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// As they are.
    Plain,
    /// One zstd frame.
    Zstd,
}

/// One blob in a pack's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PackEntry {
    /// What it is.
    pub kind: BlobKind,
    /// How its bytes are stored.
    pub codec: Codec,
    /// Its id.
    pub id: [u8; 32],
    /// Where its stored bytes start in the pack.
    pub offset: u64,
    /// How many bytes it takes in the pack.
    pub stored: u32,
    /// How many bytes it has once decoded (a list's own bytes for a list).
    pub plain: u32,
    /// The content it stands for, in bytes (for a list, the sum of its
    /// parts').
    pub size: u64,
}

/// Why a pack's index or a list does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackError {
    /// The pack is shorter than its magic and footer.
    TooShort,
    /// The footer or the magic is not a pack's.
    BadMagic,
    /// The index does not fit in the pack, or is not the pack's name.
    BadIndex,
    /// An entry has an unknown kind or codec, or points outside the blobs.
    BadEntry(usize),
    /// A list is not whole parts after its magic, or a part is bad.
    BadList,
}

impl fmt::Display for PackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackError::TooShort => f.write_str("too short to be a pack"),
            PackError::BadMagic => f.write_str("not a pack (bad magic)"),
            PackError::BadIndex => f.write_str("its index does not match its name"),
            PackError::BadEntry(i) => write!(f, "index entry {i} is invalid"),
            PackError::BadList => f.write_str("not a list of parts"),
        }
    }
}

impl PackEntry {
    /// The entry's 58 bytes.
    pub fn to_bytes(self) -> [u8; ENTRY_LEN] {
        let mut out = [0u8; ENTRY_LEN];
        out[0] = self.kind.byte();
        out[1] = match self.codec {
            Codec::Plain => 0,
            Codec::Zstd => 1,
        };
        out[2..34].copy_from_slice(&self.id);
        out[34..42].copy_from_slice(&self.offset.to_le_bytes());
        out[42..46].copy_from_slice(&self.stored.to_le_bytes());
        out[46..50].copy_from_slice(&self.plain.to_le_bytes());
        out[50..58].copy_from_slice(&self.size.to_le_bytes());
        out
    }

    /// The entry in `b` ([`ENTRY_LEN`] bytes), when well-formed.
    pub fn parse(b: &[u8]) -> Option<PackEntry> {
        let kind = BlobKind::of(b[0])?;
        let codec = match b[1] {
            0 => Codec::Plain,
            1 => Codec::Zstd,
            _ => return None,
        };
        let entry = PackEntry {
            kind,
            codec,
            id: b[2..34].try_into().ok()?,
            offset: u64::from_le_bytes(b[34..42].try_into().ok()?),
            stored: u32::from_le_bytes(b[42..46].try_into().ok()?),
            plain: u32::from_le_bytes(b[46..50].try_into().ok()?),
            size: u64::from_le_bytes(b[50..58].try_into().ok()?),
        };
        // Plain blobs are stored as they are; data is its own content.
        let consistent = (codec == Codec::Zstd || entry.stored == entry.plain)
            && (kind != BlobKind::Data || entry.size == u64::from(entry.plain));
        consistent.then_some(entry)
    }
}

/// The footer of a pack whose index is `entries` (already encoded).
pub fn footer(entries: &[u8]) -> [u8; FOOTER_LEN] {
    let mut out = [0u8; FOOTER_LEN];
    let count = (entries.len() / ENTRY_LEN) as u32;
    out[..4].copy_from_slice(&count.to_le_bytes());
    out[4..36].copy_from_slice(&sha2_of(entries));
    out[36..].copy_from_slice(INDEX_MAGIC);
    out
}

fn sha2_of(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// From a pack's last [`FOOTER_LEN`] bytes and its length: how many
/// entries its index has, and the index's hash (the pack's name).
pub fn parse_footer(footer: &[u8], pack_len: u64) -> Result<(usize, [u8; 32]), PackError> {
    if pack_len < (MAGIC.len() + FOOTER_LEN) as u64 || footer.len() != FOOTER_LEN {
        return Err(PackError::TooShort);
    }
    if &footer[36..] != INDEX_MAGIC {
        return Err(PackError::BadMagic);
    }
    let count = u32::from_le_bytes(footer[..4].try_into().expect("4 bytes")) as u64;
    let index_len = count * ENTRY_LEN as u64;
    if index_len > pack_len - (MAGIC.len() + FOOTER_LEN) as u64 {
        return Err(PackError::BadIndex);
    }
    Ok((count as usize, footer[4..36].try_into().expect("32 bytes")))
}

/// Parses a pack's index (`count` entries read just before its footer),
/// checking it against the pack's `name` and that every blob lies between
/// the magic and the index.
pub fn parse_index(
    index: &[u8],
    name: &[u8; 32],
    pack_len: u64,
) -> Result<Vec<PackEntry>, PackError> {
    if !index.len().is_multiple_of(ENTRY_LEN) || sha2_of(index) != *name {
        return Err(PackError::BadIndex);
    }
    let blobs_end = pack_len - (index.len() + FOOTER_LEN) as u64;
    index
        .chunks_exact(ENTRY_LEN)
        .enumerate()
        .map(|(i, b)| {
            let e = PackEntry::parse(b).ok_or(PackError::BadEntry(i))?;
            let end = e.offset.checked_add(u64::from(e.stored));
            if e.offset < MAGIC.len() as u64 || end.is_none_or(|end| end > blobs_end) {
                return Err(PackError::BadEntry(i));
            }
            Ok(e)
        })
        .collect()
}

/// One part of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Part {
    /// A [`BlobKind::Data`] blob or a [`BlobKind::Node`] list.
    pub kind: BlobKind,
    /// Its id.
    pub id: [u8; 32],
    /// The bytes of content it stands for.
    pub size: u64,
}

/// A list's bytes.
pub fn list_bytes(parts: &[Part]) -> Vec<u8> {
    let mut out = Vec::with_capacity(LIST_MAGIC.len() + parts.len() * PART_LEN);
    out.extend_from_slice(LIST_MAGIC);
    for p in parts {
        out.push(p.kind.byte());
        out.extend_from_slice(&p.id);
        out.extend_from_slice(&p.size.to_le_bytes());
    }
    out
}

/// Parses a list: its parts are data blobs or nodes, each of at least one
/// byte, and together no more than `u64::MAX` bytes.
pub fn parse_list(bytes: &[u8]) -> Result<Vec<Part>, PackError> {
    let body = bytes.strip_prefix(LIST_MAGIC).ok_or(PackError::BadList)?;
    if !body.len().is_multiple_of(PART_LEN) {
        return Err(PackError::BadList);
    }
    let mut total: u64 = 0;
    body.chunks_exact(PART_LEN)
        .map(|b| {
            let kind = BlobKind::of(b[0]).filter(|k| *k != BlobKind::File);
            let size = u64::from_le_bytes(b[33..41].try_into().expect("8 bytes"));
            total = total.checked_add(size).ok_or(PackError::BadList)?;
            match kind {
                Some(kind) if size > 0 => Ok(Part {
                    kind,
                    id: b[1..33].try_into().expect("32 bytes"),
                    size,
                }),
                _ => Err(PackError::BadList),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(i: u8, offset: u64, stored: u32) -> PackEntry {
        PackEntry {
            kind: BlobKind::Data,
            codec: Codec::Zstd,
            id: [i; 32],
            offset,
            stored,
            plain: stored * 2,
            size: u64::from(stored) * 2,
        }
    }

    fn pack(entries: &[PackEntry], blobs: usize) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.resize(MAGIC.len() + blobs, 7);
        let index: Vec<u8> = entries.iter().flat_map(|e| e.to_bytes()).collect();
        out.extend_from_slice(&index);
        out.extend_from_slice(&footer(&index));
        out
    }

    fn read(pack: &[u8]) -> Result<Vec<PackEntry>, PackError> {
        let len = pack.len() as u64;
        let foot = &pack[pack.len().saturating_sub(FOOTER_LEN)..];
        let (count, name) = parse_footer(foot, len)?;
        let start = pack.len() - FOOTER_LEN - count * ENTRY_LEN;
        parse_index(&pack[start..pack.len() - FOOTER_LEN], &name, len)
    }

    #[test]
    fn a_pack_reads_back_and_a_blob_outside_it_is_refused() {
        let entries = [entry(1, 8, 10), entry(2, 18, 5)];
        assert_eq!(read(&pack(&entries, 15)).unwrap(), entries);
        assert_eq!(read(&pack(&entries, 14)), Err(PackError::BadEntry(1)));
        let mut edited = pack(&entries, 15);
        let at = edited.len() - FOOTER_LEN - 3;
        edited[at] ^= 1;
        assert_eq!(read(&edited), Err(PackError::BadIndex));
    }

    #[test]
    fn a_list_reads_back() {
        let parts = vec![
            Part {
                kind: BlobKind::Data,
                id: [3; 32],
                size: 4096,
            },
            Part {
                kind: BlobKind::Node,
                id: [4; 32],
                size: 1 << 40,
            },
        ];
        assert_eq!(parse_list(&list_bytes(&parts)).unwrap(), parts);
        let mut bad = list_bytes(&parts);
        bad[4] = 1; // a file inside a list
        assert_eq!(parse_list(&bad), Err(PackError::BadList));
    }

    proptest! {
        #[test]
        fn any_bytes_as_a_pack_or_a_list_are_refused_or_in_bounds(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            tail in proptest::collection::vec(any::<u8>(), 0..3),
        ) {
            // Whatever a damaged pack holds, its entries point inside it.
            let mut with_footer = bytes.clone();
            let index_len = (bytes.len() / ENTRY_LEN).saturating_sub(1) * ENTRY_LEN;
            let index = bytes[bytes.len() - index_len..].to_vec();
            with_footer.extend_from_slice(&footer(&index));
            for p in [&bytes, &with_footer] {
                if let Ok(entries) = read(p) {
                    for e in entries {
                        prop_assert!(e.offset + u64::from(e.stored) <= p.len() as u64);
                    }
                }
            }
            let mut list = LIST_MAGIC.to_vec();
            list.extend_from_slice(&bytes);
            list.extend_from_slice(&tail);
            if let Ok(parts) = parse_list(&list) {
                prop_assert_eq!(list_bytes(&parts), list);
            }
        }
    }
}
