//! Cutting content into chunks as it streams by: FastCDC (its 2020
//! algorithm) with chunks of 4 KiB at least, 16 KiB on average and 64 KiB
//! at most, so that an edit or an append changes only the chunks it
//! touches. Each chunk is a data blob named by its SHA-256 and stored once;
//! the content is a list of them ([`BlobKind::File`], named by the whole
//! content's SHA-256). A list of more than [`FLAT_PARTS`] chunks is cut
//! into nodes ([`BlobKind::Node`]) at chunks whose id ends in a zero byte
//! (one in 256, at most [`NODE_PARTS`] a node), so that a list object
//! stays small and an edit rewrites one node and the top list.

use fastcdc::v2020::{self, Normalization};
use sha2::Digest;

use super::packer::Blob;
use super::{Objects, Stored};
use crate::error::Result;
use crate::format::pack::{list_bytes, BlobKind, Part};

/// The smallest chunk (but the last of a content).
pub const MIN_CHUNK: usize = 4 << 10;
/// The average chunk.
pub const AVG_CHUNK: usize = 16 << 10;
/// The largest chunk; content up to this size is one data blob.
pub const MAX_CHUNK: usize = 64 << 10;
/// A list of up to this many chunks lists them directly.
pub const FLAT_PARTS: usize = 1024;
/// The most parts a node lists.
pub const NODE_PARTS: usize = 1024;

/// FastCDC's masks for the sizes above (normalization level 1, its
/// default).
#[derive(Debug, Clone, Copy)]
struct Masks {
    s: u64,
    l: u64,
}

impl Masks {
    fn new() -> Self {
        let (s, l) = v2020::select_masks(AVG_CHUNK, Normalization::Level1);
        Masks { s, l }
    }

    /// Where the first chunk of `bytes` ends.
    fn cut(&self, bytes: &[u8]) -> usize {
        let (_, end) = v2020::cut(
            bytes,
            MIN_CHUNK,
            AVG_CHUNK,
            MAX_CHUNK,
            self.s,
            self.l,
            self.s << 1,
            self.l << 1,
        );
        end.max(1).min(bytes.len())
    }
}

/// Whether to try compressing the next chunk: after four chunks in a row
/// that zstd could not shrink, only every sixteenth is tried (until one
/// shrinks), so that incompressible content costs little.
#[derive(Debug, Default)]
struct Guess {
    misses: u32,
    skipped: u32,
}

impl Guess {
    fn try_next(&mut self) -> bool {
        if self.misses < 4 {
            return true;
        }
        self.skipped += 1;
        if self.skipped >= 16 {
            self.skipped = 0;
            return true;
        }
        false
    }

    fn learn(&mut self, tried: bool, compressed: bool) {
        if compressed {
            self.misses = 0;
        } else if tried {
            self.misses += 1;
        }
    }
}

/// A content being cut into chunks as its bytes arrive.
#[derive(Debug)]
pub struct Chunker<'a> {
    objects: &'a Objects,
    masks: Masks,
    /// Bytes not cut yet: `buf[start..]`.
    buf: Vec<u8>,
    start: usize,
    parts: Vec<Part>,
    total: u64,
    stored: u64,
    guess: Guess,
}

impl<'a> Chunker<'a> {
    /// A chunker storing into `objects` (a batch).
    pub fn new(objects: &'a Objects) -> Self {
        Chunker {
            objects,
            masks: Masks::new(),
            buf: Vec::new(),
            start: 0,
            parts: Vec::new(),
            total: 0,
            stored: 0,
            guess: Guess::default(),
        }
    }

    /// A chunker that continues after `parts`, chunks of a content whose
    /// bytes this one is given from the end of the last part on (the
    /// previous version of a file that grew by appending).
    pub fn after(objects: &'a Objects, parts: Vec<Part>) -> Self {
        let total = parts.iter().map(|p| p.size).sum();
        Chunker {
            parts,
            total,
            ..Chunker::new(objects)
        }
    }

    /// Takes the next bytes of the content.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
        while self.buf.len() - self.start >= MAX_CHUNK {
            self.cut_one()?;
        }
        Ok(())
    }

    fn cut_one(&mut self) -> Result<()> {
        let pending = &self.buf[self.start..];
        let end = self.masks.cut(pending);
        let chunk = &pending[..end];
        let id: [u8; 32] = sha2::Sha256::digest(chunk).into();
        let size = chunk.len() as u64;
        if !self.objects.has_blob(BlobKind::Data, &id) {
            let tried = self.guess.try_next();
            let blob = Blob {
                kind: BlobKind::Data,
                id,
                plain: chunk,
                size,
            };
            if let Some(n) = self.objects.pack(&blob, tried)? {
                self.guess.learn(tried, n < size);
                self.stored += n;
            }
        }
        self.parts.push(Part {
            kind: BlobKind::Data,
            id,
            size,
        });
        self.total += size;
        self.start += end;
        Ok(())
    }

    /// Ends the content, whose SHA-256 is `hash`: cuts the rest, stores
    /// the list. Returns what was stored.
    pub fn finish(mut self, hash: &[u8; 32]) -> Result<Stored> {
        while self.start < self.buf.len() {
            self.cut_one()?;
        }
        let objects = self.objects;
        let mut stored = self.stored;
        // One chunk: the content is that data blob.
        if let [only] = self.parts.as_slice() {
            if only.id == *hash {
                return Ok(Stored {
                    new: stored > 0,
                    bytes: stored,
                });
            }
        }
        if objects.has_content(hash) {
            return Ok(Stored {
                new: false,
                bytes: stored,
            });
        }
        let top = if self.parts.len() <= FLAT_PARTS {
            self.parts
        } else {
            let mut nodes = Vec::new();
            for group in groups(&self.parts) {
                let bytes = list_bytes(group);
                let id: [u8; 32] = sha2::Sha256::digest(&bytes).into();
                let size = group.iter().map(|p| p.size).sum();
                if !objects.has_blob(BlobKind::Node, &id) {
                    let blob = Blob {
                        kind: BlobKind::Node,
                        id,
                        plain: &bytes,
                        size,
                    };
                    stored += objects.pack(&blob, true)?.unwrap_or(0);
                }
                nodes.push(Part {
                    kind: BlobKind::Node,
                    id,
                    size,
                });
            }
            nodes
        };
        let bytes = list_bytes(&top);
        let blob = Blob {
            kind: BlobKind::File,
            id: *hash,
            plain: &bytes,
            size: self.total,
        };
        let n = objects.pack(&blob, true)?;
        stored += n.unwrap_or(0);
        Ok(Stored {
            new: n.is_some(),
            bytes: stored,
        })
    }
}

/// Cuts a long list of chunks into nodes: after each chunk whose id ends
/// in a zero byte, and after [`NODE_PARTS`] chunks at most.
fn groups(parts: &[Part]) -> Vec<&[Part]> {
    let mut out = Vec::new();
    let mut from = 0;
    for (i, p) in parts.iter().enumerate() {
        if p.id[31] == 0 || i + 1 - from == NODE_PARTS {
            out.push(&parts[from..=i]);
            from = i + 1;
        }
    }
    if from < parts.len() {
        out.push(&parts[from..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_fall_between_the_bounds_and_return_after_an_edit() {
        let mut x = 0x1234_5678_u64;
        let bytes: Vec<u8> = (0..1_000_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let masks = Masks::new();
        let cuts = |b: &[u8]| {
            let mut out = Vec::new();
            let mut at = 0;
            while at < b.len() {
                let n = masks.cut(&b[at..]);
                out.push((at, n));
                at += n;
            }
            out
        };
        let before = cuts(&bytes);
        for &(at, n) in &before[..before.len() - 1] {
            assert!((MIN_CHUNK..=MAX_CHUNK).contains(&n), "chunk at {at}: {n}");
        }
        let avg = bytes.len() / before.len();
        assert!((AVG_CHUNK / 2..AVG_CHUNK * 2).contains(&avg), "{avg}");
        // Ten bytes changed in the middle: the chunks before and well after
        // stay as they were.
        let mut edited = bytes.clone();
        edited[500_000..500_010].fill(0);
        let after = cuts(&edited);
        let same = after.iter().filter(|c| before.contains(c)).count();
        assert!(same + 3 >= before.len(), "{same} of {}", before.len());
    }

    #[test]
    fn nodes_end_at_a_zero_byte_or_when_full() {
        let part = |last: u8| Part {
            kind: BlobKind::Data,
            id: [last; 32],
            size: 1,
        };
        let mut parts: Vec<Part> = (0..2500).map(|i| part(1 + (i % 200) as u8)).collect();
        parts[10] = part(0);
        let g = groups(&parts);
        let lens: Vec<usize> = g.iter().map(|g| g.len()).collect();
        assert_eq!(
            lens,
            vec![11, NODE_PARTS, NODE_PARTS, 2500 - 11 - 2 * NODE_PARTS]
        );
    }
}
