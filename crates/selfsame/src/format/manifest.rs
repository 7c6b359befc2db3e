//! Manifest v1: the canonical listing of a soul whose SHA-256 is the soul
//! hash.
//!
//! ```text
//! selfsame-manifest 1
//! <kind> <sha256-hex> <size> <path>
//! ```
//!
//! Kinds: `f` file, `x` file with an execute bit, `l` symlink (hash and size
//! of the target's bytes), `d` directory (hash and size `-`). Paths are
//! relative, `/`-separated and sorted by raw bytes.

/// First line of every manifest.
pub const HEADER: &str = "selfsame-manifest 1";

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A regular file.
    File,
    /// A regular file with an execute bit.
    Exec,
    /// A symbolic link (never followed).
    Symlink,
    /// A directory.
    Dir,
}

impl Kind {
    /// The one-letter code.
    pub fn code(self) -> char {
        match self {
            Kind::File => 'f',
            Kind::Exec => 'x',
            Kind::Symlink => 'l',
            Kind::Dir => 'd',
        }
    }

    fn from_code(c: &str) -> Option<Kind> {
        match c.as_bytes() {
            &[b] => Kind::from_byte(b),
            _ => None,
        }
    }

    /// The kind whose code is the byte `b`.
    pub(crate) fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            b'f' => Kind::File,
            b'x' => Kind::Exec,
            b'l' => Kind::Symlink,
            b'd' => Kind::Dir,
            _ => return None,
        })
    }

    /// Whether the entry has content (and so an object).
    pub fn has_content(self) -> bool {
        !matches!(self, Kind::Dir)
    }
}

/// One line of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The kind.
    pub kind: Kind,
    /// SHA-256 of the content (file bytes or link target); zero for dirs.
    pub hash: [u8; 32],
    /// Content size in bytes; 0 for dirs.
    pub size: u64,
    /// Path relative to the soul root.
    pub path: String,
}

/// Why manifest bytes are not a valid manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("manifest line {line}: {reason}")]
pub struct ManifestError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// A soul listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Entries sorted by the raw bytes of their paths.
    pub entries: Vec<Entry>,
}

impl Manifest {
    /// Builds a manifest, sorting the entries.
    #[cfg(test)]
    pub fn new(mut entries: Vec<Entry>) -> Self {
        entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        Manifest { entries }
    }

    /// The canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let len: usize = self.entries.iter().map(|e| e.path.len() + 90).sum();
        let mut out = Vec::with_capacity(HEADER.len() + 1 + len);
        self.write_chunks(|chunk| {
            out.extend_from_slice(chunk);
            Ok::<(), std::convert::Infallible>(())
        })
        .unwrap_or_else(|never| match never {});
        out
    }

    /// The canonical bytes, handed to `sink` a chunk of about 64 KiB at a
    /// time: a manifest of 100,000 entries is hashed and written without
    /// ever being whole in memory (a fresh buffer of megabytes costs a page
    /// fault per 4 KiB).
    pub fn write_chunks<E>(&self, mut sink: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        const CHUNK: usize = 64 * 1024;
        let mut out = Vec::with_capacity(CHUNK + 4096);
        out.extend_from_slice(HEADER.as_bytes());
        out.push(b'\n');
        let mut size = itoa::Buffer::new();
        for e in &self.entries {
            // Written byte by byte: `format!` machinery is most of the cost
            // for a soul of 100,000 entries.
            if e.kind == Kind::Dir {
                out.extend_from_slice(b"d - - ");
            } else {
                out.push(e.kind.code() as u8);
                out.push(b' ');
                out.extend_from_slice(&hex64(&e.hash));
                out.push(b' ');
                out.extend_from_slice(size.format(e.size).as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(e.path.as_bytes());
            out.push(b'\n');
            if out.len() >= CHUNK {
                sink(&out)?;
                out.clear();
            }
        }
        if !out.is_empty() {
            sink(&out)?;
        }
        Ok(())
    }

    /// The soul hash, raw: SHA-256 of the canonical bytes.
    pub fn soul_hash_raw(&self) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        self.write_chunks(|chunk| {
            h.update(chunk);
            Ok::<(), std::convert::Infallible>(())
        })
        .unwrap_or_else(|never| match never {});
        h.finalize().into()
    }

    /// The soul hash: SHA-256 of the canonical bytes, hex.
    pub fn soul_hash(&self) -> String {
        hex::encode(self.soul_hash_raw())
    }

    /// Count of file and symlink entries.
    pub fn files(&self) -> u64 {
        self.entries.iter().filter(|e| e.kind.has_content()).count() as u64
    }

    /// Sum of file and symlink sizes.
    pub fn bytes(&self) -> u64 {
        self.entries
            .iter()
            .filter(|e| e.kind.has_content())
            .map(|e| e.size)
            .sum()
    }

    /// Parses manifest bytes strictly: header, well-formed lines, safe
    /// relative paths, strictly increasing order, and every parent of an
    /// entry listed as a directory. Paths from a manifest are never trusted
    /// further than this.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let err = |line: usize, reason: &str| ManifestError {
            line,
            reason: reason.to_owned(),
        };
        let text = std::str::from_utf8(bytes).map_err(|_| err(0, "not UTF-8"))?;
        let body = text
            .strip_prefix(HEADER)
            .and_then(|rest| rest.strip_prefix('\n'))
            .ok_or_else(|| err(1, "missing `selfsame-manifest 1` header"))?;
        if !body.is_empty() && !body.ends_with('\n') {
            return Err(err(0, "last line is not LF-terminated"));
        }
        let mut entries: Vec<Entry> = Vec::with_capacity(body.len() / 80);
        // Directories in the order listed, which is sorted: a parent is
        // found by binary search.
        let mut dirs: Vec<&str> = Vec::new();
        // Split by hand: `lines` and `splitn` cost most of the time of
        // parsing 100,000 short lines. (A `\r` stays in the path, where
        // `check_path` refuses it.)
        let lines = body.strip_suffix('\n').map(|b| b.split('\n'));
        for (i, line) in lines.into_iter().flatten().enumerate() {
            let n = i + 2;
            let Some((kind, hash, size, path)) = fields(line) else {
                return Err(err(n, "expected `<kind> <hash> <size> <path>`"));
            };
            let kind = Kind::from_code(kind).ok_or_else(|| err(n, "unknown kind"))?;
            let (hash, size) = if kind == Kind::Dir {
                if hash != "-" || size != "-" {
                    return Err(err(n, "a directory has `-` for hash and size"));
                }
                ([0u8; 32], 0)
            } else {
                let mut h = [0u8; 32];
                if hash.len() != 64 || hash.bytes().any(|b| b.is_ascii_uppercase()) {
                    return Err(err(n, "hash is not 64 lowercase hex digits"));
                }
                hex::decode_to_slice(hash, &mut h).map_err(|_| err(n, "hash is not hex"))?;
                if size.is_empty()
                    || !size.bytes().all(|b| b.is_ascii_digit())
                    || (size.len() > 1 && size.starts_with('0'))
                {
                    return Err(err(n, "size is not a decimal number"));
                }
                let size = size.parse().map_err(|_| err(n, "size out of range"))?;
                (h, size)
            };
            check_path(path).map_err(|reason| err(n, reason))?;
            if let Some(prev) = entries.last() {
                if prev.path.as_bytes() >= path.as_bytes() {
                    return Err(err(n, "paths are not strictly sorted"));
                }
            }
            if let Some((parent, _)) = path.rsplit_once('/') {
                if dirs
                    .binary_search_by(|d| d.as_bytes().cmp(parent.as_bytes()))
                    .is_err()
                {
                    return Err(err(n, "parent directory is not listed as a `d` entry"));
                }
            }
            if kind == Kind::Dir {
                dirs.push(path);
            }
            entries.push(Entry {
                kind,
                hash,
                size,
                path: path.to_owned(),
            });
        }
        Ok(Manifest { entries })
    }
}

/// A manifest line's four space-separated fields, the last one the rest of
/// the line (as `splitn(4, ' ')` would give them).
fn fields(line: &str) -> Option<(&str, &str, &str, &str)> {
    let mut rest = line;
    let mut next = || {
        let at = rest.bytes().position(|b| b == b' ')?;
        let (field, tail) = (&rest[..at], &rest[at + 1..]);
        rest = tail;
        Some(field)
    };
    let (kind, hash, size) = (next()?, next()?, next()?);
    Some((kind, hash, size, rest))
}

/// Lowercase hex of a hash, two digits per table lookup: the `hex` crate's
/// encoder is most of the time of writing a manifest of 100,000 entries.
fn hex64(hash: &[u8; 32]) -> [u8; 64] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    const PAIRS: [[u8; 2]; 256] = {
        let mut t = [[0u8; 2]; 256];
        let mut i = 0;
        while i < 256 {
            t[i] = [DIGITS[i >> 4], DIGITS[i & 15]];
            i += 1;
        }
        t
    };
    let mut out = [0u8; 64];
    for (pair, &b) in out.chunks_exact_mut(2).zip(hash) {
        pair.copy_from_slice(&PAIRS[b as usize]);
    }
    out
}

/// Checks that a manifest path is a safe relative path: non-empty `/`-
/// separated segments, none `.` or `..`, no leading `/`, no control
/// characters.
pub fn check_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("empty path");
    }
    let control = if path.is_ascii() {
        path.bytes().any(|b| b.is_ascii_control())
    } else {
        path.chars().any(char::is_control)
    };
    if control {
        return Err("path has control characters");
    }
    for seg in path.split('/') {
        match seg {
            "" => return Err("path is absolute or has an empty segment"),
            "." | ".." => return Err("path has a `.` or `..` segment"),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let m = Manifest::new(vec![
            Entry {
                kind: Kind::File,
                hash: [1; 32],
                size: 3,
                path: "b".into(),
            },
            Entry {
                kind: Kind::Dir,
                hash: [0; 32],
                size: 0,
                path: "a".into(),
            },
            Entry {
                kind: Kind::Symlink,
                hash: [2; 32],
                size: 1,
                path: "a/l".into(),
            },
        ]);
        assert_eq!(Manifest::parse(&m.to_bytes()).unwrap(), m);
    }

    #[test]
    fn hostile_paths_are_refused() {
        let h = "0".repeat(64);
        for path in ["../x", "/etc/x", "a/../../x", "a//b", "./a", "a\nb"] {
            let text = format!("{HEADER}\nf {h} 1 {path}\n");
            assert!(
                Manifest::parse(text.as_bytes()).is_err(),
                "{path:?} accepted"
            );
        }
        // A file under a symlink: its parent is not a listed directory.
        let text = format!("{HEADER}\nl {h} 1 a\nf {h} 1 a/x\n");
        assert!(Manifest::parse(text.as_bytes()).is_err());
    }

    proptest::proptest! {
        #[test]
        fn hex64_is_lowercase_hex(hash in proptest::array::uniform32(proptest::num::u8::ANY)) {
            proptest::prop_assert_eq!(hex64(&hash).to_vec(), hex::encode(hash).into_bytes());
        }

        /// Any valid manifest parses back to itself, through the
        /// hand-split line parser.
        #[test]
        fn parse_reads_back_what_to_bytes_writes(
            leaves in proptest::collection::btree_map(
                "[a-c ]{1,3}(/[a-cé]{1,2}){0,2}",
                (0u8..3, proptest::num::u8::ANY, 0u64..100_000_000_000),
                0..30,
            )
        ) {
            let mut entries = std::collections::BTreeMap::new();
            for path in leaves.keys() {
                let mut parent = path.as_str();
                while let Some((p, _)) = parent.rsplit_once('/') {
                    entries.insert(p.to_owned(), Entry { kind: Kind::Dir, hash: [0; 32], size: 0, path: p.to_owned() });
                    parent = p;
                }
            }
            for (path, (k, h, size)) in leaves {
                entries.entry(path.clone()).or_insert(Entry {
                    kind: [Kind::File, Kind::Exec, Kind::Symlink][k as usize],
                    hash: [h; 32],
                    size,
                    path,
                });
            }
            let m = Manifest::new(entries.into_values().collect());
            proptest::prop_assert_eq!(Manifest::parse(&m.to_bytes()), Ok(m));
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let mut input = HEADER.as_bytes().to_vec();
            input.push(b'\n');
            input.extend(bytes);
            let _ = Manifest::parse(&input);
        }
    }
}
