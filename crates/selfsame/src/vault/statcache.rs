//! The stat cache: what the last seal's scan saw, entry by entry, so a seal
//! re-reads only files that changed.
//!
//! Each file's record maps (size, mtime, ctime, inode, mode) to its content
//! hash. It follows git's racy-timestamp rule: a record is trusted only when
//! the file's mtime is strictly older than the moment the scan that
//! recorded it began, as the filesystem's own clock tells it (the mtime of a
//! stamp file touched at scan start). A file written in the same clock tick
//! as the scan is therefore always re-hashed. `wake` does not use the cache
//! unless asked (`--fast`): an attacker can forge mtimes, so the default
//! wake re-hashes everything. A rewrite that forges the mtime still changes
//! the ctime, which the cache also compares.
//!
//! The cache lists directories and symlinks too, and the hash of the
//! manifest the scan produced: when a new scan finds the very same entries
//! and every file's record is trusted, the manifest is the same, and the
//! seal skips writing it out and hashing it again.
//!
//! The file is binary (see docs/FORMAT.md): loading it is one read and one
//! checksum, with no allocation per entry, because an unchanged seal of a
//! soul of 100,000 files spends its time here and in `stat` calls.

use std::fs::{self, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::atomic;
use crate::error::{IoContext, Result};
use crate::format::Kind;

/// The file's first bytes.
const MAGIC: &[u8; 24] = b"selfsame-statcache 3\n\0\0\0";
/// Magic, scan start (2 × i64), entry count (u64).
const HEADER_LEN: usize = 24 + 16 + 8;
/// After the records: the manifest hash, then SHA-256 of everything before
/// the checksum.
const TRAILER_LEN: usize = 32 + 32;

/// A timestamp as the filesystem records it: seconds and nanoseconds.
pub type Stamp = (i64, i64);

/// The stat fields a cache record is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileStat {
    /// Size in bytes.
    pub size: u64,
    /// Modification time.
    pub mtime: Stamp,
    /// Status change time.
    pub ctime: Stamp,
    /// Inode number.
    pub ino: u64,
    /// Mode bits, file type included.
    pub mode: u32,
}

impl FileStat {
    /// The fields of `meta`.
    pub fn of(meta: &Metadata) -> Self {
        FileStat {
            size: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
            mode: meta.mode(),
        }
    }

    /// The fields of a `stat` result.
    // The field types differ between targets; on some the casts are no-ops.
    #[allow(clippy::unnecessary_cast)]
    pub fn of_stat(st: &rustix::fs::Stat) -> Self {
        FileStat {
            size: st.st_size as u64,
            mtime: (st.st_mtime as i64, st.st_mtime_nsec as i64),
            ctime: (st.st_ctime as i64, st.st_ctime_nsec as i64),
            ino: st.st_ino as u64,
            mode: st.st_mode as u32,
        }
    }

    /// Whether two stats describe the same version of a file (everything
    /// but the mode, which a `chmod` changes without touching content).
    pub fn same_version(&self, other: &FileStat) -> bool {
        self.size == other.size
            && self.mtime == other.mtime
            && self.ctime == other.ctime
            && self.ino == other.ino
    }
}

/// One entry of a scan, as the cache records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The entry's kind.
    pub kind: Kind,
    /// Its path relative to the soul.
    pub path: &'a str,
    /// Content hash (zero for directories).
    pub hash: [u8; 32],
    /// The stat the hash was taken under (default for directories).
    pub stat: FileStat,
}

/// What [`StatCache::compare`] found for one entry of a new scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// No trusted record: read the file.
    Unknown,
    /// A file whose record is trusted: this is its hash.
    Trusted([u8; 32]),
    /// A symlink or directory with a record of the same kind; a symlink's
    /// target is read again and compared with this hash.
    Listed([u8; 32]),
}

/// A new scan against the records: [`StatCache::compare`].
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    /// For each entry of the scan, what the records say.
    pub seen: Vec<Seen>,
    /// Whether the records list exactly the scan's paths with the same
    /// kinds, every file trusted.
    pub aligned: bool,
    /// Entries with a record at their path that does not settle them (a
    /// file not trusted, another kind, a symlink): the entry's index and
    /// the record's kind, hash and size.
    pub prior: Vec<(usize, Kind, [u8; 32], u64)>,
    /// Paths recorded that the scan did not find.
    pub gone: Vec<String>,
}

/// A loaded stat cache.
#[derive(Debug, Clone, Default)]
pub struct StatCache {
    scan_began: Stamp,
    manifest: [u8; 32],
    count: usize,
    /// The whole file, checked (records start at `HEADER_LEN`).
    bytes: Vec<u8>,
}

impl StatCache {
    /// Where a vault keeps it.
    pub fn path(vault_dir: &Path) -> PathBuf {
        vault_dir.join("cache").join("stat")
    }

    /// Loads the cache; a missing, unreadable, damaged or older-format one
    /// is empty (it is only a cache: the cost is re-hashing).
    pub fn load(path: &Path) -> StatCache {
        fs::read(path)
            .ok()
            .and_then(Self::parse)
            .unwrap_or_default()
    }

    fn parse(bytes: Vec<u8>) -> Option<StatCache> {
        if bytes.len() < HEADER_LEN + TRAILER_LEN || !bytes.starts_with(MAGIC) {
            return None;
        }
        let (summed, sum) = bytes.split_at(bytes.len() - 32);
        if crate::crypto::sha256(summed) != sum {
            return None;
        }
        let (body, manifest) = summed.split_at(summed.len() - 32);
        let manifest: [u8; 32] = manifest.try_into().ok()?;
        let mut r = Reader {
            bytes: body,
            at: MAGIC.len(),
        };
        let scan_began = (r.i64()?, r.i64()?);
        let count = usize::try_from(r.u64()?).ok()?;
        // Every record well-formed and strictly sorted (the merge in
        // `compare` relies on it), and nothing after the last.
        let mut prev: Option<&str> = None;
        for _ in 0..count {
            let rec = r.record()?;
            if prev.is_some_and(|p| p.as_bytes() >= rec.path.as_bytes()) {
                return None;
            }
            prev = Some(rec.path);
        }
        if r.at != body.len() {
            return None;
        }
        Some(StatCache {
            scan_began,
            manifest,
            count,
            bytes,
        })
    }

    fn records(&self) -> impl Iterator<Item = Record<'_>> {
        let body = &self.bytes[..self.bytes.len().saturating_sub(TRAILER_LEN)];
        let mut r = Reader {
            bytes: body,
            at: HEADER_LEN,
        };
        (0..self.count).map(move |_| r.record().expect("checked at load"))
    }

    /// The hash of the manifest the recording scan produced.
    pub fn manifest(&self) -> [u8; 32] {
        self.manifest
    }

    /// The hash for a file with `stat` if `rec` is a file record taken under
    /// the same stat and is not racy.
    fn trusted(&self, rec: &Record<'_>, stat: &FileStat) -> Option<[u8; 32]> {
        let same = rec.stat.same_version(stat) && rec.stat.mode == stat.mode;
        // Racy: written in the same clock tick as the scan (or later).
        (same && rec.stat.mtime < self.scan_began).then_some(rec.hash)
    }

    /// The hash of the file `rel` if its record matches `stat` and is not
    /// racy.
    pub fn lookup(&self, rel: &str, stat: &FileStat) -> Option<[u8; 32]> {
        let rec = self.records().find(|r| r.path == rel)?;
        matches!(rec.kind, Kind::File | Kind::Exec)
            .then(|| self.trusted(&rec, stat))
            .flatten()
    }

    /// Compares a new scan's entries (sorted by raw path bytes, as the walk
    /// yields them) with the records, in one merge pass.
    pub fn compare<'a>(
        &self,
        entries: impl Iterator<Item = (Kind, &'a str, &'a FileStat)>,
    ) -> Comparison {
        let mut records = self.records().peekable();
        let mut c = Comparison {
            seen: Vec::with_capacity(self.count),
            aligned: true,
            prior: Vec::new(),
            gone: Vec::new(),
        };
        for (i, (kind, rel, stat)) in entries.enumerate() {
            while let Some(r) = records.next_if(|r| r.path.as_bytes() < rel.as_bytes()) {
                c.gone.push(r.path.to_owned());
                c.aligned = false;
            }
            let record = records.next_if(|r| r.path == rel);
            let seen = match &record {
                Some(r) if r.kind == kind => match kind {
                    Kind::File | Kind::Exec => {
                        self.trusted(r, stat).map_or(Seen::Unknown, Seen::Trusted)
                    }
                    Kind::Symlink | Kind::Dir => Seen::Listed(r.hash),
                },
                _ => Seen::Unknown,
            };
            if let Some(r) = record.filter(|_| !matches!(seen, Seen::Trusted(_))) {
                c.prior.push((i, r.kind, r.hash, r.stat.size));
            }
            c.aligned &= !matches!(seen, Seen::Unknown);
            c.seen.push(seen);
        }
        for r in records {
            c.gone.push(r.path.to_owned());
            c.aligned = false;
        }
        c
    }

    /// Marks the start of a scan: touches a stamp file in `dir` and returns
    /// its mtime, the filesystem's "now".
    pub fn begin_scan(dir: &Path) -> Result<Stamp> {
        atomic::create_dir_all(dir)?;
        let stamp = dir.join("scan-stamp");
        fs::write(&stamp, b"").at(&stamp)?;
        let m = fs::metadata(&stamp).at(&stamp)?;
        Ok((m.mtime(), m.mtime_nsec()))
    }

    /// Writes a cache of `records` (sorted by path bytes, as a manifest is),
    /// taken by a scan that began at `scan_began`, then the hash of the
    /// manifest the scan produced, which `manifest` waits for (the manifest
    /// is written at the same time); `None` from it abandons the cache.
    /// Written and checksummed a chunk at a time, never whole in memory.
    pub fn save<'a>(
        path: &Path,
        scan_began: Stamp,
        records: impl ExactSizeIterator<Item = Record<'a>>,
        manifest: impl FnOnce() -> Option<[u8; 32]>,
    ) -> Result<()> {
        use sha2::{Digest, Sha256};
        use std::io::Write;
        const CHUNK: usize = 256 * 1024;
        atomic::create_dir_all(path.parent().expect("cache path has a parent"))?;
        // Temp file and rename, but no fsync: after a power cut the cache
        // may be missing, empty or cut short, and each of those only costs
        // re-hashing (the checksum refuses a damaged file whole). The
        // objects it names were made durable before it was written.
        let tmp = atomic::temp_path(path);
        let mut file = fs::File::create(&tmp).at(&tmp)?;
        let mut sum = Sha256::new();
        let mut out = Vec::with_capacity(CHUNK + 8192);
        let mut flush = |out: &mut Vec<u8>, file: &mut fs::File| -> Result<()> {
            sum.update(&out[..]);
            file.write_all(out).at(&tmp)?;
            out.clear();
            Ok(())
        };
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&scan_began.0.to_le_bytes());
        out.extend_from_slice(&scan_began.1.to_le_bytes());
        out.extend_from_slice(&(records.len() as u64).to_le_bytes());
        for r in records {
            let s = &r.stat;
            out.push(r.kind.code() as u8);
            out.extend_from_slice(&r.hash);
            out.extend_from_slice(&s.size.to_le_bytes());
            out.extend_from_slice(&s.mtime.0.to_le_bytes());
            out.extend_from_slice(&(s.mtime.1 as u32).to_le_bytes());
            out.extend_from_slice(&s.ctime.0.to_le_bytes());
            out.extend_from_slice(&(s.ctime.1 as u32).to_le_bytes());
            out.extend_from_slice(&s.ino.to_le_bytes());
            out.extend_from_slice(&s.mode.to_le_bytes());
            out.extend_from_slice(&(r.path.len() as u32).to_le_bytes());
            out.extend_from_slice(r.path.as_bytes());
            if out.len() >= CHUNK {
                flush(&mut out, &mut file)?;
            }
        }
        let Some(manifest) = manifest() else {
            drop(file);
            let _ = fs::remove_file(&tmp);
            return Ok(());
        };
        out.extend_from_slice(&manifest);
        flush(&mut out, &mut file)?;
        file.write_all(&sum.finalize()).at(&tmp)?;
        drop(file);
        // Renamed over an existing file, ext4 writes the new one out at once
        // (its guard against empty files after a crash): tens of
        // milliseconds for a big cache on every seal. Removed first, the
        // cache is briefly absent instead, which costs nothing but a
        // re-hash if the machine stops right then.
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).at(path),
        }
        fs::rename(&tmp, path).at(path)
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Little-endian fields from the front of a byte slice.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(out)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    /// One record: kind, hash, size, mtime, ctime, inode, mode, path length,
    /// path. The hash comes before the stat, so a file cut short (zeros
    /// after some page) loses stat fields before it could pair a good stat
    /// with a bad hash.
    fn record(&mut self) -> Option<Record<'a>> {
        let kind = match self.take(1)?[0] {
            b'f' => Kind::File,
            b'x' => Kind::Exec,
            b'l' => Kind::Symlink,
            b'd' => Kind::Dir,
            _ => return None,
        };
        let hash: [u8; 32] = self.take(32)?.try_into().ok()?;
        let size = self.u64()?;
        let mtime = (self.i64()?, i64::from(self.u32()?));
        let ctime = (self.i64()?, i64::from(self.u32()?));
        let ino = self.u64()?;
        let mode = self.u32()?;
        let len = self.u32()? as usize;
        let path = std::str::from_utf8(self.take(len)?).ok()?;
        Some(Record {
            kind,
            path,
            hash,
            stat: FileStat {
                size,
                mtime,
                ctime,
                ino,
                mode,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(mtime: Stamp) -> FileStat {
        FileStat {
            size: 5,
            mtime,
            ctime: mtime,
            ino: 7,
            mode: 0o100644,
        }
    }

    fn file(path: &str, mtime: Stamp) -> Record<'_> {
        Record {
            kind: Kind::File,
            path,
            hash: [9; 32],
            stat: stat(mtime),
        }
    }

    fn saved(dir: &Path, scan: Stamp, records: &[Record<'_>]) -> PathBuf {
        let path = dir.join("stat");
        StatCache::save(&path, scan, records.iter().copied(), || Some([3; 32])).unwrap();
        path
    }

    #[test]
    fn racy_records_are_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = saved(
            dir.path(),
            (1000, 500),
            &[file("old", (999, 0)), file("racy", (1000, 500))],
        );
        let cache = StatCache::load(&path);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.manifest(), [3; 32]);
        assert_eq!(cache.lookup("old", &stat((999, 0))), Some([9; 32]));
        assert_eq!(
            cache.lookup("racy", &stat((1000, 500))),
            None,
            "same tick as the scan must be re-hashed"
        );
    }

    #[test]
    fn any_stat_change_misses() {
        let dir = tempfile::tempdir().unwrap();
        let path = saved(dir.path(), (20, 0), &[file("a b", (10, 0))]);
        let cache = StatCache::load(&path);
        let s = stat((10, 0));
        assert_eq!(cache.lookup("a b", &s), Some([9; 32]));
        for changed in [
            FileStat { size: 6, ..s },
            FileStat {
                mtime: (10, 1),
                ..s
            },
            FileStat {
                ctime: (11, 0),
                ..s
            },
            FileStat { ino: 8, ..s },
            FileStat {
                mode: 0o100755,
                ..s
            },
        ] {
            assert_eq!(cache.lookup("a b", &changed), None);
        }
        assert_eq!(cache.lookup("other", &s), None);
    }

    #[test]
    fn compare_merges_and_tells_an_identical_listing() {
        let dir = tempfile::tempdir().unwrap();
        let d = Record {
            kind: Kind::Dir,
            path: "a",
            hash: [0; 32],
            stat: FileStat::default(),
        };
        let l = Record {
            kind: Kind::Symlink,
            path: "c",
            hash: [5; 32],
            ..file("c", (10, 0))
        };
        let path = saved(dir.path(), (20, 0), &[d, file("a/b", (10, 0)), l]);
        let cache = StatCache::load(&path);
        let s = stat((10, 0));
        let none = FileStat::default();
        let same = [
            (Kind::Dir, "a", &none),
            (Kind::File, "a/b", &s),
            (Kind::Symlink, "c", &s),
        ];
        let c = cache.compare(same.iter().copied());
        assert_eq!(
            c.seen,
            vec![
                Seen::Listed([0; 32]),
                Seen::Trusted([9; 32]),
                Seen::Listed([5; 32])
            ]
        );
        assert!(c.aligned);
        assert_eq!(c.prior.len(), 2, "the directory and the symlink");
        assert!(c.gone.is_empty());

        let other = FileStat { size: 1, ..s };
        for entries in [
            // a changed file
            vec![
                (Kind::Dir, "a", &none),
                (Kind::File, "a/b", &other),
                (Kind::Symlink, "c", &s),
            ],
            // a file that became executable
            vec![
                (Kind::Dir, "a", &none),
                (Kind::Exec, "a/b", &s),
                (Kind::Symlink, "c", &s),
            ],
        ] {
            let c = cache.compare(entries.into_iter());
            assert_eq!(c.seen[1], Seen::Unknown);
            assert_eq!(
                c.prior[1],
                (1, Kind::File, [9; 32], 5),
                "the record it replaces"
            );
            assert!(!c.aligned);
        }
        // An entry added, and one gone.
        let added = [
            (Kind::Dir, "a", &none),
            (Kind::File, "a-new", &s),
            (Kind::File, "a/b", &s),
            (Kind::Symlink, "c", &s),
        ];
        let c = cache.compare(added.iter().copied());
        assert!(!c.aligned);
        assert_eq!(c.seen[1], Seen::Unknown);
        assert!(
            c.prior.iter().all(|p| p.0 != 1),
            "no record for the new entry"
        );
        let gone = [(Kind::Dir, "a", &none), (Kind::File, "a/b", &s)];
        let c = cache.compare(gone.iter().copied());
        assert_eq!(c.seen[1], Seen::Trusted([9; 32]));
        assert_eq!(c.gone, ["c"]);
        assert!(!c.aligned, "a record without an entry is a change");
    }

    #[test]
    fn damage_of_any_byte_is_an_empty_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = saved(dir.path(), (20, 0), &[file("a", (10, 0))]);
        let good = fs::read(&path).unwrap();
        assert_eq!(StatCache::load(&path).len(), 1);
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            fs::write(&path, &bad).unwrap();
            assert!(
                StatCache::load(&path).is_empty(),
                "flip at byte {i} accepted"
            );
        }
        for cut in [0, 1, good.len() / 2, good.len() - 1] {
            fs::write(&path, &good[..cut]).unwrap();
            assert!(StatCache::load(&path).is_empty(), "cut at {cut} accepted");
        }
        fs::write(&path, "selfsame-statcache 1 1 2\nzzz").unwrap();
        assert!(StatCache::load(&path).is_empty(), "the old text format");
    }

    proptest::proptest! {
        /// A seal takes its change summary from the comparison with the
        /// cache's records of the head's manifest; that must say what
        /// comparing the manifests says.
        #[test]
        fn comparison_gives_the_changes_of_the_manifests(
            old in crate::soul::changes::tests::manifest(),
            new in crate::soul::changes::tests::manifest(),
        ) {
            use crate::soul::changes::{changes, changes_since};
            // A stat that follows the content, as on disk.
            let stat_of = |e: &crate::format::Entry| FileStat {
                size: e.size,
                mtime: (i64::from(e.hash[0]), 0),
                ctime: (i64::from(e.hash[0]), 0),
                ino: e.size,
                mode: if e.kind == Kind::Exec { 0o100755 } else { 0o100644 },
            };
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("stat");
            let records = old.entries.iter().map(|e| Record {
                kind: e.kind,
                path: &e.path,
                hash: e.hash,
                stat: stat_of(e),
            });
            StatCache::save(&path, (1000, 0), records, || Some([1; 32])).unwrap();
            let cache = StatCache::load(&path);
            proptest::prop_assert_eq!(cache.len(), old.entries.len());
            let stats: Vec<FileStat> = new.entries.iter().map(stat_of).collect();
            let cmp = cache.compare(new.entries.iter().zip(&stats).map(|(e, s)| (e.kind, e.path.as_str(), s)));
            proptest::prop_assert_eq!(changes_since(&cmp, &new), changes(&old, &new));
        }

        #[test]
        fn load_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("stat");
            let mut input = MAGIC.to_vec();
            input.extend(&bytes);
            fs::write(&path, &input).unwrap();
            let cache = StatCache::load(&path);
            let _ = cache.compare(std::iter::empty());
            // With a valid checksum too, so the parser behind it is reached.
            let sum = crate::crypto::sha256(&input);
            input.extend_from_slice(&sum);
            fs::write(&path, &input).unwrap();
            let cache = StatCache::load(&path);
            let _ = cache.compare([(Kind::File, "a", &FileStat::default())].into_iter());
        }
    }
}
