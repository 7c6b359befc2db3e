//! Manifests: the canonical listing of a soul whose SHA-256 is the soul
//! hash, in two versions.
//!
//! ```text
//! selfsame-manifest 1
//! <kind> <sha256-hex> <size> <path>
//!
//! selfsame-manifest 2
//! <kind> <mode> <sha256-hex|-> <size|-> <path>
//! ```
//!
//! Version 1 kinds: `f` file, `x` file with an execute bit, `l` symlink
//! (hash and size of the target's bytes), `d` directory (hash and size
//! `-`). Version 2 has `f`, `l` and `d`, and records each file's and
//! directory's permission bits (`st_mode & 07777`) as four octal digits
//! (`-` for a symlink). Paths are relative, `/`-separated and sorted by
//! raw bytes. A seal writes [`Version::NEWEST`]; wake fingerprints a soul
//! in the version of the head's manifest.

/// First line of every version 1 manifest.
pub const HEADER: &str = "selfsame-manifest 1";
/// First line of every version 2 manifest.
pub const HEADER_V2: &str = "selfsame-manifest 2";

/// A manifest version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Version {
    /// `selfsame-manifest 1`: kinds `f`/`x`/`l`/`d`, only the exec bit.
    V1,
    /// `selfsame-manifest 2`: kinds `f`/`l`/`d` with permission bits.
    #[default]
    V2,
}

impl Version {
    /// The version a seal writes.
    pub const NEWEST: Version = Version::V2;

    /// The header line, without its newline.
    pub fn header(self) -> &'static str {
        match self {
            Version::V1 => HEADER,
            Version::V2 => HEADER_V2,
        }
    }

    /// The version number: 1 or 2.
    pub fn number(self) -> u8 {
        match self {
            Version::V1 => 1,
            Version::V2 => 2,
        }
    }

    /// The version numbered `n`.
    pub fn from_number(n: u8) -> Option<Version> {
        match n {
            1 => Some(Version::V1),
            2 => Some(Version::V2),
            _ => None,
        }
    }

    /// Whether entries of this version record permission bits.
    pub fn has_modes(self) -> bool {
        self == Version::V2
    }
}

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

    /// The mode a version 1 entry of this kind is restored with (and
    /// carries in memory): version 1 records nothing else.
    pub fn v1_mode(self) -> u32 {
        match self {
            Kind::File => 0o644,
            Kind::Exec | Kind::Dir => 0o755,
            Kind::Symlink => 0,
        }
    }
}

/// One line of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The kind. A version 2 file is [`Kind::Exec`] when its mode has an
    /// execute bit.
    pub kind: Kind,
    /// Permission bits (`st_mode & 07777`); 0 for a symlink. In a version 1
    /// manifest only the exec bit is recorded, and entries carry the modes
    /// a restore gives them: `0644` for `f`, `0755` for `x` and `d`.
    pub mode: u32,
    /// SHA-256 of the content (file bytes or link target); zero for dirs.
    pub hash: [u8; 32],
    /// Content size in bytes; 0 for dirs.
    pub size: u64,
    /// Path relative to the soul root.
    pub path: String,
}

/// Permission bits of a mode: `st_mode & 07777`.
pub const MODE_BITS: u32 = 0o7777;

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
    /// The version its bytes are written in.
    pub version: Version,
    /// Entries sorted by the raw bytes of their paths.
    pub entries: Vec<Entry>,
}

impl Manifest {
    /// Builds a manifest, sorting the entries.
    #[cfg(test)]
    pub fn new(mut entries: Vec<Entry>) -> Self {
        entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        Manifest::of(Version::NEWEST, entries)
    }

    /// A manifest of `version` from entries in manifest order. A version 1
    /// manifest records no modes: its entries get their kind's
    /// [`Kind::v1_mode`], so that it equals what its bytes parse to.
    /// Symlinks carry no mode in either version.
    pub fn of(version: Version, mut entries: Vec<Entry>) -> Self {
        for e in &mut entries {
            e.mode = match (version, e.kind) {
                (_, Kind::Symlink) => 0,
                (Version::V1, kind) => kind.v1_mode(),
                (Version::V2, _) => e.mode & MODE_BITS,
            };
        }
        Manifest { version, entries }
    }

    /// The header line followed by the lines of the entries `keep`
    /// selects, in manifest order: the canonical bytes of a part of the
    /// soul (the protected manifest).
    pub fn part_bytes(&self, keep: impl FnMut(&Entry) -> bool) -> Vec<u8> {
        self.part_bytes_as(self.version, keep)
    }

    /// [`Manifest::part_bytes`] of the same entries written in `version`
    /// (wake judges a soul in the version of the head's manifest).
    pub fn part_bytes_as(&self, version: Version, mut keep: impl FnMut(&Entry) -> bool) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(version.header().as_bytes());
        out.push(b'\n');
        let mut size = itoa::Buffer::new();
        for e in self.entries.iter().filter(|e| keep(e)) {
            write_line(version, e, &mut out, &mut size);
        }
        out
    }

    /// The canonical bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let len: usize = self.entries.iter().map(|e| e.path.len() + 95).sum();
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
    pub fn write_chunks<E>(&self, sink: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        self.write_chunks_as(self.version, sink)
    }

    /// [`Manifest::write_chunks`] of the same entries written in `version`.
    fn write_chunks_as<E>(
        &self,
        version: Version,
        mut sink: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        const CHUNK: usize = 64 * 1024;
        let mut out = Vec::with_capacity(CHUNK + 4096);
        out.extend_from_slice(version.header().as_bytes());
        out.push(b'\n');
        let mut size = itoa::Buffer::new();
        for e in &self.entries {
            write_line(version, e, &mut out, &mut size);
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
        self.soul_hash_as(self.version)
    }

    /// The soul hash of the same entries written in `version` (wake
    /// judges a soul in the version of the head's manifest).
    pub fn soul_hash_as(&self, version: Version) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        self.write_chunks_as(version, |chunk| {
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

    /// The entry at `path`, if listed.
    pub fn find(&self, path: &str) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.path.as_bytes().cmp(path.as_bytes()))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// Parses manifest bytes of either version strictly: header,
    /// well-formed lines, safe relative paths, strictly increasing order,
    /// and every parent of an entry listed as a directory. Paths from a
    /// manifest are never trusted further than this.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let err = |line: usize, reason: &str| ManifestError {
            line,
            reason: reason.to_owned(),
        };
        let text = std::str::from_utf8(bytes).map_err(|_| err(0, "not UTF-8"))?;
        let (version, body) = [Version::V1, Version::V2]
            .into_iter()
            .find_map(|v| {
                text.strip_prefix(v.header())
                    .and_then(|rest| rest.strip_prefix('\n'))
                    .map(|body| (v, body))
            })
            .ok_or_else(|| {
                err(
                    1,
                    "missing `selfsame-manifest 1` or `selfsame-manifest 2` header",
                )
            })?;
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
            let (kind, mode, hash, size, path) =
                parse_line(version, line).map_err(|reason| err(n, reason))?;
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
                mode,
                hash,
                size,
                path: path.to_owned(),
            });
        }
        Ok(Manifest { version, entries })
    }
}

/// One parsed line: kind, mode, hash, size, path.
type Line<'a> = (Kind, u32, [u8; 32], u64, &'a str);

/// Parses one line of a manifest of `version` (the path is checked by the
/// caller).
fn parse_line(version: Version, line: &str) -> Result<Line<'_>, &'static str> {
    let (kind, mode, hash, size, path) = match version {
        Version::V1 => {
            let (kind, hash, size, path) =
                fields(line).ok_or("expected `<kind> <hash> <size> <path>`")?;
            let kind = Kind::from_code(kind).ok_or("unknown kind")?;
            (kind, kind.v1_mode(), hash, size, path)
        }
        Version::V2 => {
            let (kind, mode, rest) =
                two_fields(line).ok_or("expected `<kind> <mode> <hash> <size> <path>`")?;
            let (hash, size, path) =
                two_fields(rest).ok_or("expected `<kind> <mode> <hash> <size> <path>`")?;
            let (kind, mode) = match (kind, mode) {
                ("l", "-") => (Kind::Symlink, 0),
                ("l", _) => return Err("a symlink has `-` for its mode"),
                ("f" | "d", m) => {
                    let mode = parse_mode(m).ok_or("mode is not four octal digits")?;
                    let kind = match kind {
                        "d" => Kind::Dir,
                        _ if mode & 0o111 != 0 => Kind::Exec,
                        _ => Kind::File,
                    };
                    (kind, mode)
                }
                _ => return Err("unknown kind"),
            };
            (kind, mode, hash, size, path)
        }
    };
    if kind == Kind::Dir {
        if hash != "-" || size != "-" {
            return Err("a directory has `-` for hash and size");
        }
        return Ok((kind, mode, [0u8; 32], 0, path));
    }
    let mut h = [0u8; 32];
    if hash.len() != 64 || hash.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("hash is not 64 lowercase hex digits");
    }
    hex::decode_to_slice(hash, &mut h).map_err(|_| "hash is not hex")?;
    if size.is_empty()
        || !size.bytes().all(|b| b.is_ascii_digit())
        || (size.len() > 1 && size.starts_with('0'))
    {
        return Err("size is not a decimal number");
    }
    let size = size.parse().map_err(|_| "size out of range")?;
    Ok((kind, mode, h, size, path))
}

/// Exactly four octal digits.
fn parse_mode(text: &str) -> Option<u32> {
    let b = text.as_bytes();
    if b.len() != 4 || !b.iter().all(|d| (b'0'..=b'7').contains(d)) {
        return None;
    }
    Some(b.iter().fold(0, |m, d| m * 8 + u32::from(d - b'0')))
}

/// Whether `a` and `b` are written as the same line in `version` (a
/// version 1 line records no mode but a file's execute bit).
pub fn same_line(version: Version, a: &Entry, b: &Entry) -> bool {
    let kind = |e: &Entry| match (version, e.kind) {
        (Version::V2, Kind::Exec) => Kind::File,
        (_, k) => k,
    };
    let mode = |e: &Entry| match (version, e.kind) {
        (Version::V1, _) | (_, Kind::Symlink) => 0,
        (Version::V2, _) => e.mode & MODE_BITS,
    };
    a.path == b.path
        && kind(a) == kind(b)
        && mode(a) == mode(b)
        && a.hash == b.hash
        && a.size == b.size
}

/// Appends one entry's line as `version` writes it. Written byte by byte:
/// `format!` machinery is most of the cost for a soul of 100,000 entries.
fn write_line(version: Version, e: &Entry, out: &mut Vec<u8>, size: &mut itoa::Buffer) {
    match version {
        Version::V1 => out.push(e.kind.code() as u8),
        Version::V2 => {
            let (code, mode) = match e.kind {
                Kind::Symlink => (b'l', None),
                Kind::Dir => (b'd', Some(e.mode)),
                Kind::File | Kind::Exec => (b'f', Some(e.mode)),
            };
            out.push(code);
            out.push(b' ');
            match mode {
                Some(m) => out.extend_from_slice(&octal4(m)),
                None => out.push(b'-'),
            }
        }
    }
    if e.kind == Kind::Dir {
        out.extend_from_slice(b" - - ");
    } else {
        out.push(b' ');
        out.extend_from_slice(&hex64(&e.hash));
        out.push(b' ');
        out.extend_from_slice(size.format(e.size).as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(e.path.as_bytes());
    out.push(b'\n');
}

/// A mode's permission bits as four octal digits.
fn octal4(mode: u32) -> [u8; 4] {
    let m = mode & MODE_BITS;
    [9, 6, 3, 0].map(|shift| b'0' + ((m >> shift) & 7) as u8)
}

/// The first two space-separated fields of `line` and the rest.
fn two_fields(line: &str) -> Option<(&str, &str, &str)> {
    let (a, rest) = line.split_once(' ')?;
    let (b, rest) = rest.split_once(' ')?;
    Some((a, b, rest))
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

    fn entry(kind: Kind, mode: u32, h: u8, size: u64, path: &str) -> Entry {
        Entry {
            kind,
            mode,
            hash: [h; 32],
            size,
            path: path.into(),
        }
    }

    #[test]
    fn round_trip() {
        for version in [Version::V1, Version::V2] {
            let m = Manifest::of(
                version,
                vec![
                    entry(Kind::Dir, 0o700, 0, 0, "a"),
                    entry(Kind::Symlink, 0o777, 2, 1, "a/l"),
                    entry(Kind::File, 0o600, 1, 3, "b"),
                    entry(Kind::Exec, 0o4755, 1, 3, "c"),
                ],
            );
            assert_eq!(Manifest::parse(&m.to_bytes()).unwrap(), m);
        }
    }

    #[test]
    fn version_2_lines_are_as_designed() {
        let h = "ab".repeat(32);
        let m = Manifest::of(
            Version::V2,
            vec![
                entry(Kind::Dir, 0o700, 0, 0, "d"),
                entry(Kind::File, 0o600, 0xab, 5, "d/private"),
                entry(Kind::Exec, 0o4755, 0xab, 5, "d/suid"),
                entry(Kind::Symlink, 0o777, 0xab, 7, "link"),
            ],
        );
        let want = format!(
            "selfsame-manifest 2\nd 0700 - - d\nf 0600 {h} 5 d/private\nf 4755 {h} 5 d/suid\nl - {h} 7 link\n"
        );
        assert_eq!(String::from_utf8(m.to_bytes()).unwrap(), want);
        assert_eq!(
            m.part_bytes(|e| e.path == "link"),
            format!("selfsame-manifest 2\nl - {h} 7 link\n").into_bytes()
        );
        // The same soul in version 1: only the exec bit.
        let v1 = Manifest::of(Version::V1, m.entries.clone());
        assert_eq!(
            String::from_utf8(v1.to_bytes()).unwrap(),
            format!(
                "selfsame-manifest 1\nd - - d\nf {h} 5 d/private\nx {h} 5 d/suid\nl {h} 7 link\n"
            )
        );
    }

    #[test]
    fn malformed_version_2_lines_are_refused() {
        let h = "0".repeat(64);
        for line in [
            format!("x 0755 {h} 1 a"),
            format!("f 644 {h} 1 a"),
            format!("f 0648 {h} 1 a"),
            format!("f 00644 {h} 1 a"),
            format!("f - {h} 1 a"),
            format!("l 0777 {h} 1 a"),
            format!("f {h} 1 a"),
            "d 0755 - 1 a".to_string(),
            "d - - - a".to_string(),
            format!("f 0644 {h} 01 a"),
        ] {
            let text = format!("{HEADER_V2}\n{line}\n");
            assert!(
                Manifest::parse(text.as_bytes()).is_err(),
                "{line:?} accepted"
            );
        }
        // A version 1 line under a version 2 header and the reverse.
        assert!(Manifest::parse(format!("{HEADER_V2}\nf {h} 1 a\n").as_bytes()).is_err());
        assert!(Manifest::parse(format!("{HEADER}\nf 0644 {h} 1 a\n").as_bytes()).is_err());
        assert!(
            Manifest::parse(format!("selfsame-manifest 3\nf 0644 {h} 1 a\n").as_bytes()).is_err()
        );
    }

    #[test]
    fn hostile_paths_are_refused() {
        let h = "0".repeat(64);
        for path in ["../x", "/etc/x", "a/../../x", "a//b", "./a", "a\nb"] {
            for text in [
                format!("{HEADER}\nf {h} 1 {path}\n"),
                format!("{HEADER_V2}\nf 0644 {h} 1 {path}\n"),
            ] {
                assert!(
                    Manifest::parse(text.as_bytes()).is_err(),
                    "{path:?} accepted"
                );
            }
        }
        // A file under a symlink: its parent is not a listed directory.
        let text = format!("{HEADER}\nl {h} 1 a\nf {h} 1 a/x\n");
        assert!(Manifest::parse(text.as_bytes()).is_err());
        let text = format!("{HEADER_V2}\nl - {h} 1 a\nf 0644 {h} 1 a/x\n");
        assert!(Manifest::parse(text.as_bytes()).is_err());
    }

    proptest::proptest! {
        #[test]
        fn hex64_is_lowercase_hex(hash in proptest::array::uniform32(proptest::num::u8::ANY)) {
            proptest::prop_assert_eq!(hex64(&hash).to_vec(), hex::encode(hash).into_bytes());
        }

        /// Any valid manifest of either version parses back to itself,
        /// through the hand-split line parser.
        #[test]
        fn parse_reads_back_what_to_bytes_writes(
            v2 in proptest::bool::ANY,
            leaves in proptest::collection::btree_map(
                "[a-c ]{1,3}(/[a-cé ]{1,2}){0,2}",
                (0u8..3, proptest::num::u8::ANY, 0u64..100_000_000_000, 0u32..0o10000),
                0..30,
            ),
            dir_mode in 0u32..0o10000,
        ) {
            let mut entries = std::collections::BTreeMap::new();
            for path in leaves.keys() {
                let mut parent = path.as_str();
                while let Some((p, _)) = parent.rsplit_once('/') {
                    entries.insert(p.to_owned(), entry(Kind::Dir, dir_mode, 0, 0, p));
                    parent = p;
                }
            }
            for (path, (k, h, size, mode)) in leaves {
                let kind = match k {
                    0 if mode & 0o111 != 0 => Kind::Exec,
                    0 => Kind::File,
                    1 => Kind::Exec,
                    _ => Kind::Symlink,
                };
                let mode = if kind == Kind::Exec { mode | 0o100 } else { mode };
                entries.entry(path.clone()).or_insert(entry(kind, mode, h, size, &path));
            }
            let version = if v2 { Version::V2 } else { Version::V1 };
            let m = Manifest::of(version, entries.into_values().collect());
            let bytes = m.to_bytes();
            proptest::prop_assert_eq!(Manifest::parse(&bytes), Ok(m.clone()));
            // The whole soul as a part is the manifest, and each entry is
            // written as the same line as itself only.
            proptest::prop_assert_eq!(m.part_bytes(|_| true), bytes);
            for (i, a) in m.entries.iter().enumerate() {
                for (j, b) in m.entries.iter().enumerate() {
                    proptest::prop_assert_eq!(same_line(version, a, b), i == j);
                }
            }
        }

        /// A version 2 line whose mode field is anything but four octal
        /// digits (or `-` for a symlink) is refused; one that is parses to
        /// exactly that mode.
        #[test]
        fn version_2_modes_are_four_octal_digits(mode in "[-0-9a-f]{0,6}", kind in "[fdl]") {
            let h = "0".repeat(64);
            let (hash, size) = if kind == "d" { ("-", "-") } else { (h.as_str(), "1") };
            let text = format!("{HEADER_V2}\n{kind} {mode} {hash} {size} a\n");
            let parsed = Manifest::parse(text.as_bytes());
            let octal = mode.len() == 4 && mode.bytes().all(|b| (b'0'..=b'7').contains(&b));
            match kind.as_str() {
                "l" => proptest::prop_assert_eq!(parsed.is_ok(), mode == "-"),
                _ => {
                    proptest::prop_assert_eq!(parsed.is_ok(), octal);
                    if let Ok(m) = parsed {
                        proptest::prop_assert_eq!(m.entries[0].mode, u32::from_str_radix(&mode, 8).unwrap());
                        proptest::prop_assert_eq!(m.to_bytes(), text.into_bytes());
                    }
                }
            }
        }

        #[test]
        fn parse_never_panics(
            v2 in proptest::bool::ANY,
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400),
        ) {
            let mut input = if v2 { HEADER_V2 } else { HEADER }.as_bytes().to_vec();
            input.push(b'\n');
            input.extend(bytes);
            let _ = Manifest::parse(&input);
        }

        /// Lines made of manifest-like tokens: parsing never panics, and
        /// whatever parses writes back to the same bytes.
        #[test]
        fn what_parses_is_canonical(
            lines in proptest::collection::vec(
                ("[fdlx-]", "(-|[0-7]{4}|[0-9]{1,5})", "(-|0{64}|a{64})", "(-|0|7|[0-9]{1,3})", "[ab]{1,2}(/[ab])?"),
                0..6,
            )
        ) {
            let mut text = format!("{HEADER_V2}\n");
            for (k, m, h, s, p) in &lines {
                text.push_str(&format!("{k} {m} {h} {s} {p}\n"));
            }
            if let Ok(m) = Manifest::parse(text.as_bytes()) {
                proptest::prop_assert_eq!(m.to_bytes(), text.into_bytes());
            }
        }
    }
}
