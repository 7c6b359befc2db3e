//! The soul: walking the state directory, fingerprinting it into a
//! [`Manifest`], and the change summary between two manifests.
//!
//! [`walk`] lists the soul in manifest order, [`hash`] reads the files that
//! need reading at SHA-256 speed, and [`changes`] compares two manifests.

pub(crate) mod changes;
pub(crate) mod hash;
pub(crate) mod sqlite;
pub(crate) mod statcache;
pub(crate) mod walk;

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use rayon::prelude::*;

pub use changes::{changes, Changes};
pub use walk::walk;

use crate::error::{Error, IoContext, Result};
use crate::format::excludes::Excludes;
use crate::format::manifest::{Version, MODE_BITS};
use crate::format::{Entry, Kind, Manifest};
use crate::progress::{Phase, Progress};
use crate::vault::objects::{Objects, Stored};
use statcache::{Comparison, FileStat, Seen, StatCache};

/// A fingerprinted soul.
#[derive(Debug, Clone)]
pub struct Fingerprint {
    /// The manifest.
    pub manifest: Manifest,
    /// Files and symlinks whose content was newly stored (0 when not
    /// storing).
    pub new_objects: u64,
    /// Bytes those added to the store (compressed, and without the chunks
    /// they share with content stored before).
    pub new_bytes: u64,
    /// The soul hash, when the stat cache vouched for this very manifest
    /// (same entries, every file's record trusted or read again with the
    /// recorded hash and size); `None` means compute it from the manifest.
    pub known_soul: Option<[u8; 32]>,
}

impl Fingerprint {
    /// The soul hash (raw), computed unless known.
    pub fn soul_hash(&self) -> [u8; 32] {
        self.known_soul
            .unwrap_or_else(|| self.manifest.soul_hash_raw())
    }

    /// The soul hash of this soul in manifest `version` (wake judges a
    /// soul in the version of the head's manifest).
    pub fn soul_hash_as(&self, version: Version) -> [u8; 32] {
        if version == self.manifest.version {
            self.soul_hash()
        } else {
            self.manifest.soul_hash_as(version)
        }
    }
}

/// A fingerprint and what the next scan's stat cache needs.
#[derive(Debug, Clone)]
pub struct Scan {
    /// The fingerprint.
    pub fingerprint: Fingerprint,
    /// Per manifest entry, the stat its content was read under (the
    /// walk's for symlinks and directories).
    pub stats: Vec<Option<FileStat>>,
    /// Whether the stat cache already records exactly this scan.
    pub cache_current: bool,
    /// The stat cache as read and this scan's comparison with it, for
    /// [`StatCache::update`].
    pub cache: Option<(StatCache, Comparison)>,
}

/// Fingerprints the soul, hashing files in parallel and streaming. With
/// `store`, every file's bytes are also put into the object store as they
/// are hashed, so a recorded hash always names bytes that were stored.
pub fn fingerprint(
    root: &Path,
    excludes: &Excludes,
    skip: &[PathBuf],
    store: Option<&Objects>,
    progress: &dyn Progress,
) -> Result<Fingerprint> {
    let never = AtomicBool::new(false);
    fingerprint_until(root, excludes, skip, store, None, progress, &never).map(|s| s.fingerprint)
}

/// [`fingerprint`], trusting the stat cache at `cache` (see [`StatCache`])
/// for files whose stat matches (the cache is read while the soul is
/// walked), and giving up with [`crate::error::Error::Stopped`] once `stop` is set
/// (files being read when it is set are finished).
pub fn fingerprint_until(
    root: &Path,
    excludes: &Excludes,
    skip: &[PathBuf],
    store: Option<&Objects>,
    cache: Option<&Path>,
    progress: &dyn Progress,
    stop: &AtomicBool,
) -> Result<Scan> {
    let sources = Sources { store, cache };
    fingerprint_expecting(root, excludes, skip, sources, None, progress, stop)
}

/// Where a scan stores objects and finds its stat cache.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sources<'a> {
    /// The object store to put every file's bytes into, if any.
    pub store: Option<&'a Objects>,
    /// The stat cache to trust, if any.
    pub cache: Option<&'a Path>,
}

/// [`fingerprint_until`], where the soul is expected to equal `expect` (a
/// restore's target): a file of the size and path it lists, whose object
/// is stored, is hashed without being copied into the store (and copied
/// only if it turns out different). Racy stat cache records give the same
/// expectation for their files.
///
/// A file that the agent deletes between the walk listing it and the scan
/// reading it (a temporary file, a SQLite `-journal` at a commit) makes
/// the scan start again from the walk: the soul as it now is has no such
/// file. After [`VANISHED_TRIES`] scans that each lost a file so (an agent
/// that never stops making and deleting files), the last one reads every
/// file without the stat cache and leaves out what vanished.
pub(crate) fn fingerprint_expecting(
    root: &Path,
    excludes: &Excludes,
    skip: &[PathBuf],
    sources: Sources<'_>,
    expect: Option<&Manifest>,
    progress: &dyn Progress,
    stop: &AtomicBool,
) -> Result<Scan> {
    for _ in 1..VANISHED_TRIES {
        match scan_once(root, excludes, skip, sources, expect, progress, stop, false) {
            Err(e) if vanished(&e, root) => continue,
            r => return r,
        }
    }
    let sources = Sources {
        cache: None,
        ..sources
    };
    scan_once(root, excludes, skip, sources, expect, progress, stop, true)
}

/// How many times a scan starts again because a file it listed was gone
/// when it came to read it.
const VANISHED_TRIES: u32 = 5;

/// Whether `e` says that something under `root` the scan had listed is
/// no longer there.
fn vanished(e: &crate::error::Error, root: &Path) -> bool {
    matches!(e, crate::error::Error::Io { path, source }
        if source.kind() == std::io::ErrorKind::NotFound && path.starts_with(root) && path != root)
}

/// One scan: walk, compare with the stat cache, read what must be read.
/// With `leave_out_vanished` (and no stat cache, whose comparison is by
/// index), a file gone by the time it is read is left out of the manifest
/// instead of failing the scan.
// Long: the scan's steps share the walk's entries by index.
#[allow(clippy::too_many_arguments)]
fn scan_once(
    root: &Path,
    excludes: &Excludes,
    skip: &[PathBuf],
    sources: Sources<'_>,
    expect: Option<&Manifest>,
    progress: &dyn Progress,
    stop: &AtomicBool,
    leave_out_vanished: bool,
) -> Result<Scan> {
    let Sources { store, cache } = sources;
    let leave_out_vanished = leave_out_vanished && cache.is_none();
    let (found, cache) = std::thread::scope(|threads| {
        let loading = cache.map(|path| threads.spawn(move || StatCache::open(path)));
        let found = walk(root, excludes, skip);
        let cache = loading.map(|l| l.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        (found, cache)
    });
    let cache = cache.transpose()?;
    let mut found = found?;
    let total: u64 = found.iter().map(|f| f.size).sum();
    let files = found.iter().filter(|f| f.kind != Kind::Dir).count() as u64;
    progress.start(Phase::Hash, files, total);
    let compare = |found: &[walk::Found]| match &cache {
        Some(c) => c.compare(found.iter().map(|f| (f.kind, f.rel.as_str(), &f.stat))),
        None => Comparison::nothing(found.len()),
    };
    let plan = Plan { root, expect };
    // SQLite databases first, each read under its locks.
    let (cmp, early) = read_databases(
        root, excludes, &mut found, &compare, &plan, store, progress, stop,
    )?;
    let seen = &cmp.seen;

    // A trusted record needs no object check: the cache is written only
    // after its objects were published durably, and prune keeps every
    // object the cache names.
    progress.advance(
        found
            .iter()
            .zip(seen)
            .filter(|(_, s)| matches!(s, Seen::Trusted(_)))
            .map(|(f, _)| f.size)
            .sum(),
    );
    let (job_of, jobs): (Vec<usize>, Vec<hash::Job>) = plan
        .jobs(&found, &cmp)
        .into_iter()
        .filter(|(i, _)| early.binary_search_by_key(i, |(j, _)| *j).is_err())
        .unzip();
    let links: Vec<(usize, Result<Linked>)> = found
        .par_iter()
        .enumerate()
        .filter(|(_, f)| f.kind == Kind::Symlink)
        .map(|(i, f)| (i, hash_link(&f.abs(root), store)))
        .collect();
    progress.advance(
        links
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok())
            .map(|l| l.1)
            .sum(),
    );
    let hashed = hash::hash_files(&jobs, store, progress, stop);
    progress.finish();
    let (job_of, hashed): (Vec<usize>, Vec<Result<hash::Hashed>>) = early
        .into_iter()
        .chain(job_of.into_iter().zip(hashed))
        .unzip();

    // The manifest, with each trusted record's hash; hashed files and
    // symlinks are filled in below.
    let mut stats = Vec::with_capacity(found.len());
    let mut entries: Vec<Entry> = found
        .into_iter()
        .zip(seen)
        .map(|(f, seen)| {
            stats.push(Some(f.stat));
            Entry {
                kind: f.kind,
                mode: f.stat.mode & MODE_BITS,
                hash: match seen {
                    Seen::Trusted(h) => *h,
                    _ => [0; 32],
                },
                size: f.size,
                path: f.rel,
            }
        })
        .collect();
    // The first failure in manifest order, so the error names the same
    // path every time.
    let mut first_err: Option<(usize, crate::error::Error)> = None;
    let mut left_out = Vec::new();
    let mut fail = |i: usize, e| {
        if leave_out_vanished && vanished(&e, root) {
            left_out.push(i);
        } else if first_err.as_ref().is_none_or(|(j, _)| i < *j) {
            first_err = Some((i, e));
        }
    };
    let (mut new_objects, mut new_bytes) = (0, 0);
    let mut put = |i: usize, hash, size, stored: Stored| {
        entries[i].hash = hash;
        entries[i].size = size;
        if stored.new {
            new_objects += 1;
        }
        new_bytes += stored.bytes;
    };
    for (&i, r) in job_of.iter().zip(hashed) {
        match r {
            Ok(h) => {
                let stored = Stored {
                    new: h.new,
                    bytes: h.stored,
                };
                put(i, h.hash, h.size, stored);
                stats[i] = Some(h.stat);
            }
            Err(e) => fail(i, e),
        }
    }
    for (i, r) in links {
        match r {
            Ok((h, n, new)) => put(i, h, n, new),
            Err(e) => fail(i, e),
        }
    }
    if let Some((_, e)) = first_err {
        return Err(e);
    }
    left_out.sort_unstable();
    for &i in left_out.iter().rev() {
        entries.remove(i);
        stats.remove(i);
    }
    // The walk is in manifest order, so the entries already are. A scan
    // always lists the newest version; wake renders it in the head's.
    let manifest = Manifest::of(Version::NEWEST, entries);
    // The cache's manifest is this very one when every entry has a record
    // of its kind and each entry read again (racy records, symlinks) came
    // out as recorded: a seal right after the agent wrote a file, which
    // leaves that file's record racy, still finds the whole manifest.
    // A cache that recorded another manifest version vouches for no hash
    // of this one.
    let vouched = cmp.matched
        && cache
            .as_ref()
            .is_some_and(|c| c.version() == manifest.version)
        && cmp.prior.iter().all(|p| {
            let e = &manifest.entries[p.index];
            e.hash == p.hash && e.size == p.size && e.mode == p.mode
        });
    let known_soul = cache.as_ref().filter(|_| vouched).map(StatCache::manifest);
    Ok(Scan {
        fingerprint: Fingerprint {
            manifest,
            new_objects,
            new_bytes,
            known_soul,
        },
        stats,
        // Aligned: every file trusted, so only symlinks were read again.
        cache_current: cmp.aligned && vouched,
        cache: cache.map(|c| (c, cmp)),
    })
}

/// Which files of a scan must be read, and what each is expected to hold.
struct Plan<'a> {
    root: &'a Path,
    /// A restore's target: a file it lists with the same size likely has
    /// its hash.
    expect: Option<&'a Manifest>,
}

impl Plan<'_> {
    /// Every file without a trusted record, by index in `found`, with its
    /// job: racy records and a restore's target say what it likely holds.
    fn jobs(&self, found: &[walk::Found], cmp: &Comparison) -> Vec<(usize, hash::Job)> {
        let expected = |f: &walk::Found| -> Option<[u8; 32]> {
            let e = self.expect?.find(&f.rel)?;
            (e.kind.has_content() && e.kind != Kind::Symlink && e.size == f.size).then_some(e.hash)
        };
        let mut likely = cmp.likely.iter().peekable();
        let mut prior = cmp.prior.iter().peekable();
        let mut jobs = Vec::new();
        for (i, f) in found.iter().enumerate() {
            if matches!(f.kind, Kind::File | Kind::Exec) && !matches!(cmp.seen[i], Seen::Trusted(_))
            {
                let racy = likely.next_if(|(j, _)| *j == i).map(|(_, h)| *h);
                // The file's previous content, when it was smaller: it may
                // have grown by appending.
                while prior.next_if(|p| p.index < i).is_some() {}
                let grew = prior
                    .next_if(|p| p.index == i)
                    .filter(|p| matches!(p.kind, Kind::File | Kind::Exec) && p.size < f.size)
                    .map(|p| (p.hash, p.size));
                jobs.push((
                    i,
                    hash::Job {
                        path: f.abs(self.root),
                        size: f.size,
                        seen: Some(f.stat),
                        expect: expected(f).or(racy),
                        prefix: false,
                        grew,
                    },
                ));
            }
        }
        jobs
    }
}

/// Files read under a database's locks: their index in `found` and what
/// reading them gave.
type Read = Vec<(usize, Result<hash::Hashed>)>;

/// Reads the files of every SQLite database this scan must read (see
/// [`sqlite`]) while holding its locks, after bringing `found` up to date
/// under them; then lets go. Returns the stat cache comparison of `found`
/// as it now is, and what was read, by index. A database without locks to
/// hold (no `-shm` yet) that changed while read, or one whose journal a
/// writer took up meanwhile, is read again, up to [`sqlite::TRIES`] times.
// Long: one loop of lock, refresh, read, check; its state is all local.
#[allow(clippy::too_many_arguments)]
fn read_databases(
    root: &Path,
    excludes: &Excludes,
    found: &mut Vec<walk::Found>,
    compare: &dyn Fn(&[walk::Found]) -> Comparison,
    plan: &Plan<'_>,
    store: Option<&Objects>,
    progress: &dyn Progress,
    stop: &AtomicBool,
) -> Result<(Comparison, Read)> {
    let mut tries = 0;
    loop {
        let cmp = compare(found);
        let dbs = sqlite::databases(root, found, |i| !matches!(cmp.seen[i], Seen::Trusted(_)));
        if dbs.is_empty() {
            return Ok((cmp, Vec::new()));
        }
        let held = sqlite::Held::take(root, dbs, sqlite::WAIT)?;
        let cmp = if held.refresh(root, excludes, found)? {
            compare(found)
        } else {
            cmp
        };
        let (at, jobs): (Vec<usize>, Vec<hash::Job>) = plan
            .jobs(found, &cmp)
            .into_iter()
            .filter(|(i, _)| held.covers(&found[*i].rel))
            .map(|(i, mut job)| {
                job.prefix = held.prefix(&found[i].rel);
                (i, job)
            })
            .unzip();
        let hashed = hash::hash_files(&jobs, store, progress, stop);
        let read: Read = at.into_iter().zip(hashed).collect();
        let moved = match read.iter().find_map(|(_, r)| r.as_ref().err()) {
            // A file that changed while read counts as moved: it is read
            // again (a writer's journal, now left out).
            Some(Error::FileChanging { path, .. }) => Some(path.display().to_string()),
            Some(_) => return Ok((cmp, read)),
            None => {
                let read_as = |rel: &str| {
                    let i = found
                        .binary_search_by(|f| f.rel.as_bytes().cmp(rel.as_bytes()))
                        .ok()
                        .filter(|&i| matches!(found[i].kind, Kind::File | Kind::Exec))?;
                    match read.binary_search_by_key(&i, |(j, _)| *j) {
                        Ok(k) => read[k].1.as_ref().ok().map(|h| h.stat),
                        Err(_) => Some(found[i].stat),
                    }
                };
                held.moved(root, excludes, read_as)?
            }
        };
        let Some(rel) = moved else {
            return Ok((cmp, read));
        };
        tries += 1;
        if tries >= sqlite::TRIES {
            return Err(sqlite::changing(root, &rel));
        }
    }
}

/// A symlink's target: its hash, length, and what storing it did.
type Linked = ([u8; 32], u64, Stored);

fn hash_link(path: &Path, store: Option<&Objects>) -> Result<Linked> {
    let target = std::fs::read_link(path).at(path)?;
    let bytes = target.as_os_str().as_bytes();
    let hash = crate::crypto::sha256(bytes);
    let stored = match store {
        Some(s) => s.store_bytes(&hash, bytes)?,
        None => Stored::default(),
    };
    Ok((hash, bytes.len() as u64, stored))
}
