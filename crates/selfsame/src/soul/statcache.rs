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
//! Two files, binary (see docs/FORMAT.md): `stat`, the whole listing, and
//! `stat.patch`, the few records by which a later scan differs from it. A
//! seal after a small change writes a patch of a few hundred bytes instead
//! of the whole listing again; when the patch grows past a sixteenth of the
//! listing, the listing is rewritten and the patch removed. Loading is one
//! read and one checksum each, with no allocation per entry, because an
//! unchanged seal of a soul of 100,000 files spends its time here and in
//! `stat` calls.

use std::fs::{self, Metadata};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::format::manifest::{Version, MODE_BITS};
use crate::format::Kind;
use crate::vault::{atomic, read};

/// The listing's first bytes.
const MAGIC: &[u8; 24] = b"selfsame-statcache 3\n\0\0\0";
/// The patch's first bytes.
const PATCH_MAGIC: &[u8; 24] = b"selfsame-statpatch 1\n\0\0\0";
/// Magic, scan start (2 × i64), entry count (u64).
const HEADER_LEN: usize = 24 + 16 + 8;
/// After the records: the manifest hash, then the CRC-32 of everything
/// before it. A checksum against torn and damaged files, not against
/// someone who can write the vault (who could recompute any checksum).
const TRAILER_LEN: usize = 32 + 4;
/// Records written a chunk at a time.
const CHUNK: usize = 256 * 1024;

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

/// Which record settled an entry, for [`StatCache::update`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum From {
    /// A record of the listing.
    Listing,
    /// The patch's record at this index.
    Patch(u32),
    /// None: the entry needs a new record.
    Nothing,
}

/// A new scan against the records: [`StatCache::compare`].
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    /// For each entry of the scan, what the records say.
    pub seen: Vec<Seen>,
    /// Whether the records list exactly the scan's paths with the same
    /// kinds, every file trusted.
    pub aligned: bool,
    /// Whether the records list exactly the scan's paths with the same
    /// kinds, trusted or not: then the entries in [`Comparison::prior`]
    /// are all that can differ from the recorded manifest.
    pub matched: bool,
    /// Entries with a record at their path that does not settle them (a
    /// file not trusted, another kind, a symlink, a directory).
    pub prior: Vec<Prior>,
    /// Files whose record has exactly their stat but is too recent to be
    /// trusted (racy): the entry's index and the hash it most likely still
    /// has, so the file can be hashed before it is copied into the store.
    pub likely: Vec<(usize, [u8; 32])>,
    /// Paths recorded that the scan did not find.
    pub gone: Vec<String>,
    /// Per entry, the record that settled it.
    from: Vec<From>,
    /// Listing paths the scan did not find (a patch must hide them).
    hidden: Vec<String>,
}

/// A record that did not settle the scan's entry at `index`: what it says
/// the entry was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prior {
    /// The scan's entry.
    pub index: usize,
    /// The record's kind.
    pub kind: Kind,
    /// Its hash.
    pub hash: [u8; 32],
    /// Its size.
    pub size: u64,
    /// Its permission bits as a manifest records them (0 for a symlink).
    pub mode: u32,
}

impl Comparison {
    /// `entries` entries compared with no cache: nothing known.
    pub fn nothing(entries: usize) -> Self {
        Comparison {
            seen: vec![Seen::Unknown; entries],
            ..Comparison::default()
        }
    }
}

/// A patch record: one that differs from the listing, or hides one of its
/// paths (`kind` `None`). It carries the start of the scan that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Patched {
    kind: Option<Kind>,
    path: String,
    hash: [u8; 32],
    stat: FileStat,
    scan: Stamp,
}

/// A loaded stat cache.
#[derive(Debug, Clone, Default)]
pub struct StatCache {
    scan_began: Stamp,
    /// The manifest hash of the listing with the patch applied.
    manifest: [u8; 32],
    /// The version that manifest was written in.
    version: Version,
    count: usize,
    /// The CRC-32 that ends the listing file; a patch names it.
    crc: u32,
    /// The listing file, checked (records start at `HEADER_LEN`).
    bytes: Vec<u8>,
    /// Sorted by path.
    patch: Vec<Patched>,
}

/// One record of the listing as patched.
struct Effective<'a> {
    rec: Record<'a>,
    scan: Stamp,
    from: From,
    /// Whether the listing itself has this path (so a patch must hide it
    /// once the path is gone).
    listed: bool,
}

impl StatCache {
    /// Where a vault keeps it (the patch is beside it, `stat.patch`).
    pub fn path(vault_dir: &Path) -> PathBuf {
        vault_dir.join("cache").join("stat")
    }

    fn patch_path(path: &Path) -> PathBuf {
        path.with_extension("patch")
    }

    #[cfg(any(test, feature = "test-hooks"))]
    /// Loads the cache; a missing, unreadable, damaged or older-format one
    /// is empty (it is only a cache: the cost is re-hashing). A patch that
    /// is damaged or made for another listing is left out.
    pub fn load(path: &Path) -> StatCache {
        Self::open(path).unwrap_or_default()
    }

    /// [`StatCache::load`], except that a listing or patch that is not a
    /// regular file (a symlink, a FIFO: nothing selfsame writes) is
    /// [`crate::error::Error::Corrupt`], naming it. Neither is followed or waited
    /// on, and each is read no further than its size.
    pub fn open(path: &Path) -> Result<StatCache> {
        Self::open_with(path, false)
    }

    /// [`StatCache::open`], except that a listing or patch that is there
    /// but cannot be read (a failing disk) is an error naming it: for
    /// prune, which must keep every object the cache names and so cannot
    /// take a cache it failed to read for an empty one.
    pub fn open_strict(path: &Path) -> Result<StatCache> {
        Self::open_with(path, true)
    }

    fn open_with(path: &Path, strict: bool) -> Result<StatCache> {
        let read = |p: &Path| match read::read_all(p) {
            Ok(bytes) => Ok(bytes),
            Err(e @ crate::error::Error::Corrupt { .. }) => Err(e),
            Err(e) if strict => Err(e),
            // Unreadable: only a cache.
            Err(_) => Ok(None),
        };
        let Some(mut cache) = read(path)?.and_then(Self::parse) else {
            return Ok(StatCache::default());
        };
        let patch = read(&Self::patch_path(path))?.and_then(|b| parse_patch(&b, cache.crc));
        if let Some((records, manifest, version)) = patch {
            cache.patch = records;
            cache.manifest = manifest;
            cache.version = version;
        }
        Ok(cache)
    }

    fn parse(bytes: Vec<u8>) -> Option<StatCache> {
        let (body, manifest, version, crc) = checked(&bytes, MAGIC)?;
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
            version,
            count,
            crc,
            bytes,
            patch: Vec::new(),
        })
    }

    fn listing(&self) -> impl Iterator<Item = Record<'_>> {
        let body = &self.bytes[..self.bytes.len().saturating_sub(TRAILER_LEN)];
        let mut r = Reader {
            bytes: body,
            at: HEADER_LEN,
        };
        (0..self.count).map(move |_| r.record().expect("checked at load"))
    }

    /// The listing with the patch applied, in path order; a hiding patch
    /// record comes out with kind `None` (so the caller can keep it).
    fn effective(&self) -> impl Iterator<Item = (Option<Kind>, Effective<'_>)> {
        let mut listing = self.listing().peekable();
        let mut patch = self.patch.iter().enumerate().peekable();
        std::iter::from_fn(move || {
            let take_patch = match (listing.peek(), patch.peek()) {
                (None, None) => return None,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some(l), Some((_, p))) => p.path.as_bytes() <= l.path.as_bytes(),
            };
            if !take_patch {
                let rec = listing.next().expect("peeked");
                let eff = Effective {
                    rec,
                    scan: self.scan_began,
                    from: From::Listing,
                    listed: true,
                };
                return Some((Some(rec.kind), eff));
            }
            let (i, p) = patch.next().expect("peeked");
            // The patch's record replaces the listing's at the same path.
            let listed = listing.next_if(|l| l.path == p.path).is_some();
            let rec = Record {
                kind: p.kind.unwrap_or(Kind::Dir),
                path: &p.path,
                hash: p.hash,
                stat: p.stat,
            };
            let eff = Effective {
                rec,
                scan: p.scan,
                from: From::Patch(i as u32),
                listed,
            };
            Some((p.kind, eff))
        })
    }

    /// The content hashes of every file and symlink it records: objects a
    /// seal trusts to be stored without looking (prune keeps them).
    pub fn contents(&self) -> impl Iterator<Item = [u8; 32]> + '_ {
        self.effective()
            .filter(|(kind, _)| matches!(kind, Some(Kind::File | Kind::Exec | Kind::Symlink)))
            .map(|(_, e)| e.rec.hash)
    }

    /// The hash of the manifest the recording scan produced.
    pub fn manifest(&self) -> [u8; 32] {
        self.manifest
    }

    /// The version [`StatCache::manifest`] was written in.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The hash for a file with `stat` if `rec` is a file record taken under
    /// the same stat by a scan that began after the file's mtime.
    fn trusted(rec: &Record<'_>, scan: Stamp, stat: &FileStat) -> Option<[u8; 32]> {
        // Racy: written in the same clock tick as the scan (or later).
        (rec.stat == *stat && rec.stat.mtime < scan).then_some(rec.hash)
    }

    #[cfg(any(test, feature = "test-hooks"))]
    /// The hash of the file `rel` if its record matches `stat` and is not
    /// racy.
    pub fn lookup(&self, rel: &str, stat: &FileStat) -> Option<[u8; 32]> {
        let (kind, e) = self.effective().find(|(_, e)| e.rec.path == rel)?;
        matches!(kind, Some(Kind::File | Kind::Exec))
            .then(|| Self::trusted(&e.rec, e.scan, stat))
            .flatten()
    }

    /// Compares a new scan's entries (sorted by raw path bytes, as the walk
    /// yields them) with the records, in one merge pass.
    pub fn compare<'a>(
        &self,
        entries: impl Iterator<Item = (Kind, &'a str, &'a FileStat)>,
    ) -> Comparison {
        let mut records = self.effective().peekable();
        let mut c = Comparison {
            seen: Vec::with_capacity(self.count),
            aligned: true,
            matched: true,
            from: Vec::with_capacity(self.count),
            ..Comparison::default()
        };
        let skip = |c: &mut Comparison, kind: Option<Kind>, e: Effective<'_>| {
            // A path of the listing that the scan did not find: the next
            // patch hides it (again, if it was hidden already).
            if e.listed {
                c.hidden.push(e.rec.path.to_owned());
            }
            if kind.is_some() {
                c.gone.push(e.rec.path.to_owned());
                c.aligned = false;
                c.matched = false;
            }
        };
        for (i, (kind, rel, stat)) in entries.enumerate() {
            while let Some((k, e)) =
                records.next_if(|(_, e)| e.rec.path.as_bytes() < rel.as_bytes())
            {
                skip(&mut c, k, e);
            }
            let record = records.next_if(|(_, e)| e.rec.path == rel);
            let (seen, from) = match &record {
                Some((Some(k), e)) if *k == kind => {
                    let seen = match kind {
                        Kind::File | Kind::Exec => {
                            Self::trusted(&e.rec, e.scan, stat).map_or(Seen::Unknown, Seen::Trusted)
                        }
                        Kind::Symlink | Kind::Dir => Seen::Listed(e.rec.hash),
                    };
                    // A directory's record is its mode (a manifest records
                    // it): a `chmod` makes it a record to write anew.
                    let chmodded = kind == Kind::Dir
                        && manifest_mode(kind, &e.rec.stat) != manifest_mode(kind, stat);
                    if chmodded {
                        c.matched = false;
                        c.aligned = false;
                    }
                    let from = if seen == Seen::Unknown || chmodded {
                        From::Nothing
                    } else {
                        e.from
                    };
                    (seen, from)
                }
                _ => {
                    c.matched = false;
                    (Seen::Unknown, From::Nothing)
                }
            };
            if let Some((Some(k), e)) = record.filter(|_| !matches!(seen, Seen::Trusted(_))) {
                c.prior.push(Prior {
                    index: i,
                    kind: k,
                    hash: e.rec.hash,
                    // A directory's record holds its stat, whose size a
                    // manifest does not record.
                    size: if k == Kind::Dir { 0 } else { e.rec.stat.size },
                    mode: manifest_mode(k, &e.rec.stat),
                });
                if matches!(k, Kind::File | Kind::Exec) && e.rec.stat == *stat {
                    c.likely.push((i, e.rec.hash));
                }
            }
            c.aligned &= seen != Seen::Unknown;
            c.seen.push(seen);
            c.from.push(from);
        }
        for (k, e) in records {
            skip(&mut c, k, e);
        }
        c
    }

    /// Marks the start of a scan: touches a stamp file in `dir` and returns
    /// its mtime, the filesystem's "now".
    pub fn begin_scan(dir: &Path) -> Result<Stamp> {
        atomic::create_dir_all(dir)?;
        let stamp = dir.join("scan-stamp");
        // Truncating an existing stamp moves its mtime to now. Never
        // through a symlink, never waiting on a FIFO.
        let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
        let m = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(atomic::FILE_MODE)
            .custom_flags(flags.bits() as i32)
            .open(&stamp)
            .and_then(|f| f.metadata())
            .map_err(|e| match e.raw_os_error() {
                Some(c) if c == rustix::io::Errno::LOOP.raw_os_error() => {
                    read::not_regular(&stamp, "a symbolic link")
                }
                _ => crate::error::Error::Io {
                    path: stamp.clone(),
                    source: e,
                },
            })?;
        if !m.is_file() {
            return Err(read::not_regular(&stamp, "not a regular file"));
        }
        Ok((m.mtime(), m.mtime_nsec()))
    }

    /// Records a scan that began at `scan_began`, was compared with this
    /// cache as `cmp`, and found `records` (its manifest's entries and
    /// stats, in order) and the manifest whose hash is `manifest`. Few
    /// differences from the listing go to a patch; many rewrite the
    /// listing.
    pub fn update<'a>(
        &self,
        path: &Path,
        scan_began: Stamp,
        cmp: &Comparison,
        records: impl ExactSizeIterator<Item = Record<'a>> + Clone,
        manifest: (&[u8; 32], Version),
    ) -> Result<()> {
        match self.patch_for(scan_began, cmp, records.clone()) {
            Some(patch) => write_patch(&Self::patch_path(path), self.crc, &patch, manifest),
            None => Self::save(path, scan_began, records, manifest),
        }
    }

    /// The patch that makes the listing say what the scan found, or `None`
    /// when the listing should be written anew (there is none, or more than
    /// a sixteenth of it differs).
    fn patch_for<'a>(
        &self,
        scan_began: Stamp,
        cmp: &Comparison,
        records: impl ExactSizeIterator<Item = Record<'a>>,
    ) -> Option<Vec<Patched>> {
        if self.count == 0 || cmp.from.len() != records.len() {
            return None;
        }
        let limit = (self.count / 16).max(64);
        if cmp.hidden.len() > limit {
            return None;
        }
        let mut patch: Vec<Patched> = Vec::new();
        for ((rec, &from), seen) in records.zip(&cmp.from).zip(&cmp.seen) {
            let from = match seen {
                // A symlink whose target changed.
                Seen::Listed(h) if *h != rec.hash => From::Nothing,
                _ => from,
            };
            match from {
                From::Listing => {}
                From::Patch(i) => patch.push(self.patch[i as usize].clone()),
                From::Nothing => patch.push(Patched {
                    kind: Some(rec.kind),
                    path: rec.path.to_owned(),
                    hash: rec.hash,
                    stat: rec.stat,
                    scan: scan_began,
                }),
            }
            if patch.len() + cmp.hidden.len() > limit {
                return None;
            }
        }
        patch.extend(cmp.hidden.iter().map(|p| Patched {
            kind: None,
            path: p.clone(),
            hash: [0; 32],
            stat: FileStat::default(),
            scan: (0, 0),
        }));
        patch.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        Some(patch)
    }

    /// Writes a whole listing of `records` (sorted by path bytes, as a
    /// manifest is), taken by a scan that began at `scan_began` and
    /// produced the manifest whose hash is `manifest`, and removes the
    /// patch. Written and checksummed a chunk at a time, never whole in
    /// memory.
    pub fn save<'a>(
        path: &Path,
        scan_began: Stamp,
        records: impl ExactSizeIterator<Item = Record<'a>>,
        (manifest, version): (&[u8; 32], Version),
    ) -> Result<()> {
        let mut out = Checksummed::create(path)?;
        out.buf.extend_from_slice(&magic(MAGIC, version));
        out.buf.extend_from_slice(&scan_began.0.to_le_bytes());
        out.buf.extend_from_slice(&scan_began.1.to_le_bytes());
        out.buf
            .extend_from_slice(&(records.len() as u64).to_le_bytes());
        for r in records {
            put_record(&mut out.buf, Some(r.kind), r.path, &r.hash, &r.stat, None);
            out.flush_full()?;
        }
        out.buf.extend_from_slice(manifest);
        out.finish()?;
        // A patch made for the old listing no longer applies (it names the
        // old listing's checksum, so it would be left out anyway).
        let patch = Self::patch_path(path);
        match fs::remove_file(&patch) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).at(&patch),
            _ => Ok(()),
        }
    }

    #[cfg(any(test, feature = "test-hooks"))]
    /// Number of records in the listing as patched.
    pub fn len(&self) -> usize {
        self.effective().filter(|(k, _)| k.is_some()).count()
    }

    #[cfg(any(test, feature = "test-hooks"))]
    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `magic` with the byte that names the manifest version set: 0 for
/// version 1 (as every cache before version 2 manifests wrote it), else
/// the version's number.
fn magic(magic: &[u8; 24], version: Version) -> [u8; 24] {
    let mut m = *magic;
    m[VERSION_AT] = match version {
        Version::V1 => 0,
        v => v.number(),
    };
    m
}

/// Where in the header the manifest version is: the first of the three
/// bytes after the magic line.
const VERSION_AT: usize = 21;

/// The permission bits a manifest records for an entry of `kind` with
/// `stat` (none for a symlink).
fn manifest_mode(kind: Kind, stat: &FileStat) -> u32 {
    match kind {
        Kind::Symlink => 0,
        _ => stat.mode & MODE_BITS,
    }
}

/// The body, manifest hash, its version and checksum of a cache file that
/// starts with `magic` (any version byte) and whose checksum holds.
fn checked<'a>(bytes: &'a [u8], magic: &[u8; 24]) -> Option<(&'a [u8], [u8; 32], Version, u32)> {
    if bytes.len() < HEADER_LEN + TRAILER_LEN
        || bytes[..VERSION_AT] != magic[..VERSION_AT]
        || bytes[VERSION_AT + 1..24] != magic[VERSION_AT + 1..]
    {
        return None;
    }
    let version = match bytes[VERSION_AT] {
        0 => Version::V1,
        n => Version::from_number(n)?,
    };
    let (summed, sum) = bytes.split_at(bytes.len() - 4);
    let crc = u32::from_le_bytes(sum.try_into().ok()?);
    if crc32fast::hash(summed) != crc {
        return None;
    }
    let (body, manifest) = summed.split_at(summed.len() - 32);
    Some((body, manifest.try_into().ok()?, version, crc))
}

/// A patch for the listing whose checksum is `crc`: its records, sorted,
/// and the manifest hash of the patched listing.
fn parse_patch(bytes: &[u8], crc: u32) -> Option<(Vec<Patched>, [u8; 32], Version)> {
    let (body, manifest, version, _) = checked(bytes, PATCH_MAGIC)?;
    let mut r = Reader {
        bytes: body,
        at: PATCH_MAGIC.len(),
    };
    if r.u32()? != crc {
        return None;
    }
    let _ = r.take(12)?;
    let count = usize::try_from(r.u64()?).ok()?;
    let mut out: Vec<Patched> = Vec::with_capacity(count.min(body.len() / 64));
    for _ in 0..count {
        let kind = match r.take(1)?[0] {
            b'-' => None,
            k => Some(Kind::from_byte(k)?),
        };
        let rec = r.fields(Kind::Dir)?;
        let scan = (r.i64()?, i64::from(r.u32()?));
        if out
            .last()
            .is_some_and(|p| p.path.as_bytes() >= rec.path.as_bytes())
        {
            return None;
        }
        out.push(Patched {
            kind,
            path: rec.path.to_owned(),
            hash: rec.hash,
            stat: rec.stat,
            scan,
        });
    }
    (r.at == body.len()).then_some((out, manifest, version))
}

fn write_patch(
    path: &Path,
    listing_crc: u32,
    patch: &[Patched],
    (manifest, version): (&[u8; 32], Version),
) -> Result<()> {
    let mut out = Checksummed::create(path)?;
    out.buf.extend_from_slice(&magic(PATCH_MAGIC, version));
    out.buf.extend_from_slice(&listing_crc.to_le_bytes());
    // The header is as long as the listing's; these bytes are reserved.
    out.buf.extend_from_slice(&[0; 12]);
    out.buf
        .extend_from_slice(&(patch.len() as u64).to_le_bytes());
    for p in patch {
        put_record(
            &mut out.buf,
            p.kind,
            &p.path,
            &p.hash,
            &p.stat,
            Some(p.scan),
        );
        out.flush_full()?;
    }
    out.buf.extend_from_slice(manifest);
    out.finish()
}

/// One record's bytes: kind (`-` hides a path), hash, stat, path, and in a
/// patch the start of the scan that made it.
fn put_record(
    out: &mut Vec<u8>,
    kind: Option<Kind>,
    path: &str,
    hash: &[u8; 32],
    s: &FileStat,
    scan: Option<Stamp>,
) {
    out.push(kind.map_or(b'-', |k| k.code() as u8));
    out.extend_from_slice(hash);
    out.extend_from_slice(&s.size.to_le_bytes());
    out.extend_from_slice(&s.mtime.0.to_le_bytes());
    out.extend_from_slice(&(s.mtime.1 as u32).to_le_bytes());
    out.extend_from_slice(&s.ctime.0.to_le_bytes());
    out.extend_from_slice(&(s.ctime.1 as u32).to_le_bytes());
    out.extend_from_slice(&s.ino.to_le_bytes());
    out.extend_from_slice(&s.mode.to_le_bytes());
    out.extend_from_slice(&(path.len() as u32).to_le_bytes());
    out.extend_from_slice(path.as_bytes());
    if let Some(scan) = scan {
        out.extend_from_slice(&scan.0.to_le_bytes());
        out.extend_from_slice(&(scan.1 as u32).to_le_bytes());
    }
}

/// A cache file being written through a temp file, a chunk at a time, with
/// its CRC-32 kept as it goes. Dropped unfinished, it leaves nothing.
struct Checksummed {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<fs::File>,
    sum: crc32fast::Hasher,
    buf: Vec<u8>,
}

impl Checksummed {
    fn create(path: &Path) -> Result<Self> {
        atomic::create_dir_all(path.parent().expect("cache path has a parent"))?;
        let tmp = atomic::temp_path(path);
        let file = atomic::create_new(&tmp)?;
        Ok(Checksummed {
            path: path.to_owned(),
            tmp,
            file: Some(file),
            sum: crc32fast::Hasher::new(),
            buf: Vec::with_capacity(CHUNK + 8192),
        })
    }

    fn flush(&mut self) -> Result<()> {
        self.sum.update(&self.buf);
        let file = self.file.as_mut().expect("open until finished");
        file.write_all(&self.buf).at(&self.tmp)?;
        self.buf.clear();
        Ok(())
    }

    fn flush_full(&mut self) -> Result<()> {
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    /// Ends the file with its checksum and puts it in place. Temp file and
    /// rename, but no fsync: after a power cut the cache may be missing or
    /// cut short, which the checksum refuses (only a re-hash is lost). The
    /// objects it names were made durable before it was written.
    fn finish(mut self) -> Result<()> {
        self.flush()?;
        let sum = std::mem::take(&mut self.sum).finalize();
        let mut file = self.file.take().expect("open until finished");
        file.write_all(&sum.to_le_bytes()).at(&self.tmp)?;
        drop(file);
        // Renamed over an existing file, ext4 writes the new one out at once
        // (its guard against empty files after a crash): tens of
        // milliseconds for a big cache on every seal. Removed first, the
        // cache is briefly absent instead, which costs nothing but a
        // re-hash if the machine stops right then.
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).at(&self.path),
        }
        fs::rename(&self.tmp, &self.path).at(&self.path)?;
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Drop for Checksummed {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            self.file.take();
            let _ = fs::remove_file(&self.tmp);
        }
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

    /// One listing record: kind, hash, size, mtime, ctime, inode, mode,
    /// path length, path. The hash comes before the stat, so a file cut
    /// short (zeros after some page) loses stat fields before it could pair
    /// a good stat with a bad hash.
    fn record(&mut self) -> Option<Record<'a>> {
        let kind = Kind::from_byte(self.take(1)?[0])?;
        self.fields(kind)
    }

    /// A record after its kind byte.
    fn fields(&mut self, kind: Kind) -> Option<Record<'a>> {
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
        StatCache::save(
            &path,
            scan,
            records.iter().copied(),
            (&[3; 32], Version::V2),
        )
        .unwrap();
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
        assert!(c.aligned && c.matched);
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
            let exec = entries[1].0 == Kind::Exec;
            let c = cache.compare(entries.into_iter());
            assert_eq!(c.seen[1], Seen::Unknown);
            // A changed stat leaves the record to compare the new hash
            // with; another kind is a change whatever the bytes.
            assert_eq!(c.matched, !exec);
            assert_eq!(
                (
                    c.prior[1].index,
                    c.prior[1].kind,
                    c.prior[1].hash,
                    c.prior[1].size
                ),
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
        assert!(!c.aligned && !c.matched);
        assert_eq!(c.seen[1], Seen::Unknown);
        assert!(
            c.prior.iter().all(|p| p.index != 1),
            "no record for the new entry"
        );
        let gone = [(Kind::Dir, "a", &none), (Kind::File, "a/b", &s)];
        let c = cache.compare(gone.iter().copied());
        assert_eq!(c.seen[1], Seen::Trusted([9; 32]));
        assert_eq!(c.gone, ["c"]);
        assert!(!c.aligned, "a record without an entry is a change");
        assert!(!c.matched);
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

    /// A listing: (kind, path, content byte), as a scan would find it.
    type Scanned = Vec<(Kind, String, u8)>;

    fn stat_of(kind: Kind, content: u8, seconds: i64) -> FileStat {
        match kind {
            Kind::Dir => FileStat::default(),
            _ => FileStat {
                size: u64::from(content),
                mtime: (seconds, i64::from(content)),
                ctime: (seconds, i64::from(content)),
                ino: u64::from(content) + 1,
                mode: if kind == Kind::Exec {
                    0o100755
                } else {
                    0o100644
                },
            },
        }
    }

    fn record<'a>(kind: Kind, path: &'a str, content: u8) -> Record<'a> {
        Record {
            kind,
            path,
            hash: if kind == Kind::Dir {
                [0; 32]
            } else {
                [content; 32]
            },
            stat: stat_of(kind, content, 10),
        }
    }

    /// Compares `scan` with the cache at `path`, records it the way a seal
    /// does, and loads the result.
    fn seal(path: &Path, scan: &Scanned, manifest: u8) -> StatCache {
        let cache = StatCache::load(path);
        let stats: Vec<FileStat> = scan.iter().map(|(k, _, c)| stat_of(*k, *c, 10)).collect();
        let cmp = cache.compare(
            scan.iter()
                .zip(&stats)
                .map(|((k, p, _), s)| (*k, p.as_str(), s)),
        );
        let records = scan.iter().map(|(k, p, c)| record(*k, p, *c));
        cache
            .update(path, (20, 0), &cmp, records, (&[manifest; 32], Version::V2))
            .unwrap();
        StatCache::load(path)
    }

    /// Whether the loaded cache vouches for exactly `scan`.
    fn vouches_for(cache: &StatCache, scan: &Scanned) -> bool {
        let stats: Vec<FileStat> = scan.iter().map(|(k, _, c)| stat_of(*k, *c, 10)).collect();
        let cmp = cache.compare(
            scan.iter()
                .zip(&stats)
                .map(|((k, p, _), s)| (*k, p.as_str(), s)),
        );
        cmp.aligned
            && scan.iter().zip(&cmp.seen).all(|((k, _, c), seen)| match k {
                Kind::File | Kind::Exec => *seen == Seen::Trusted([*c; 32]),
                Kind::Dir => *seen == Seen::Listed([0; 32]),
                Kind::Symlink => *seen == Seen::Listed([*c; 32]),
            })
    }

    fn listing(n: usize) -> Scanned {
        (0..n)
            .map(|i| (Kind::File, format!("f{i:04}"), (i % 200) as u8))
            .collect()
    }

    #[test]
    fn a_small_change_is_a_patch_and_a_big_one_a_new_listing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stat");
        let patch = StatCache::patch_path(&path);
        let mut scan = listing(2000);
        let cache = seal(&path, &scan, 1);
        assert!(vouches_for(&cache, &scan) && !patch.exists());
        let listing_bytes = fs::read(&path).unwrap();

        // One file changed, one added, one removed: a patch; the listing is
        // left as it was.
        scan[5].2 = 201;
        scan.push((Kind::File, "g".into(), 7));
        scan.remove(9);
        let cache = seal(&path, &scan, 2);
        assert!(patch.exists());
        assert!(fs::metadata(&patch).unwrap().len() < 1000);
        assert_eq!(fs::read(&path).unwrap(), listing_bytes);
        assert!(vouches_for(&cache, &scan));
        assert_eq!(cache.manifest(), [2; 32]);
        assert_eq!(cache.len(), scan.len());

        // Unchanged since: the patch is carried as it is.
        let cache = seal(&path, &scan, 2);
        assert!(vouches_for(&cache, &scan));

        // The removed path comes back: it is listed again.
        scan.insert(9, (Kind::File, "f0009".into(), 3));
        let cache = seal(&path, &scan, 3);
        assert!(vouches_for(&cache, &scan));

        // More than a sixteenth changed: a new listing, no patch.
        for e in scan.iter_mut().take(300) {
            e.2 = e.2.wrapping_add(1);
        }
        let cache = seal(&path, &scan, 4);
        assert!(!patch.exists());
        assert_ne!(fs::read(&path).unwrap(), listing_bytes);
        assert!(vouches_for(&cache, &scan));
        assert_eq!(cache.manifest(), [4; 32]);
    }

    #[test]
    fn a_patch_for_another_listing_or_damaged_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stat");
        let patch = StatCache::patch_path(&path);
        let old = listing(100);
        seal(&path, &old, 1);
        let mut new = old.clone();
        new[0].2 = 99;
        seal(&path, &new, 2);
        let good = fs::read(&patch).unwrap();
        // Damaged anywhere: the listing alone, as it was.
        for i in [0, 30, good.len() / 2, good.len() - 1] {
            let mut bad = good.clone();
            bad[i] ^= 1;
            fs::write(&patch, &bad).unwrap();
            let cache = StatCache::load(&path);
            assert!(vouches_for(&cache, &old), "flip at {i}");
            assert_eq!(cache.manifest(), [1; 32]);
        }
        // Made for another listing: left out.
        fs::write(&patch, &good).unwrap();
        let records = old.iter().map(|(k, p, c)| record(*k, p, *c));
        StatCache::save(&path, (20, 0), records, (&[5; 32], Version::V2)).unwrap();
        assert!(!patch.exists(), "a new listing removes the patch");
        fs::write(&patch, &good).unwrap();
        let cache = StatCache::load(&path);
        assert!(vouches_for(&cache, &old));
        assert_eq!(cache.manifest(), [5; 32]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Whatever the scans, small changes or large, the cache as loaded
        /// after each seal vouches for exactly the last scan.
        #[test]
        fn the_cache_always_says_the_last_scan(scans in proptest::collection::vec(
            proptest::collection::btree_map("[a-c]{1,3}", (0u8..4, 0u8..3), 0..40), 1..6)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("stat");
            for (n, scan) in scans.iter().enumerate() {
                let scan: Scanned = scan
                    .iter()
                    .map(|(p, (k, c))| ([Kind::File, Kind::Exec, Kind::Symlink, Kind::Dir][*k as usize], p.clone(), *c))
                    .collect();
                let cache = seal(&path, &scan, n as u8);
                proptest::prop_assert!(vouches_for(&cache, &scan));
                proptest::prop_assert_eq!(cache.len(), scan.len());
                proptest::prop_assert_eq!(cache.manifest(), [n as u8; 32]);
            }
        }
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
                mode: match e.kind {
                    Kind::Dir => 0o040000 | e.mode,
                    Kind::Symlink => 0o120777,
                    _ => 0o100000 | e.mode,
                },
            };
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("stat");
            let records = old.entries.iter().map(|e| Record {
                kind: e.kind,
                path: &e.path,
                hash: e.hash,
                stat: stat_of(e),
            });
            StatCache::save(&path, (1000, 0), records, (&[1; 32], Version::V2)).unwrap();
            let cache = StatCache::load(&path);
            proptest::prop_assert_eq!(cache.len(), old.entries.len());
            let stats: Vec<FileStat> = new.entries.iter().map(stat_of).collect();
            let cmp = cache.compare(new.entries.iter().zip(&stats).map(|(e, s)| (e.kind, e.path.as_str(), s)));
            proptest::prop_assert_eq!(changes_since(&cmp, &new, true), changes(&old, &new));
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
            let sum = crc32fast::hash(&input);
            input.extend_from_slice(&sum.to_le_bytes());
            fs::write(&path, &input).unwrap();
            let cache = StatCache::load(&path);
            let _ = cache.compare([(Kind::File, "a", &FileStat::default())].into_iter());
        }
    }
}
