//! The soul: walking the state directory, fingerprinting it into a
//! [`Manifest`], and the change summary between two manifests.
//!
//! [`walk`] lists the soul in manifest order, [`hash`] reads the files that
//! need reading at SHA-256 speed, and [`changes`] compares two manifests.

pub(crate) mod changes;
pub(crate) mod hash;
pub(crate) mod statcache;
pub(crate) mod walk;

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use rayon::prelude::*;

pub use changes::{changes, Changes};
pub use walk::walk;

use crate::error::{IoContext, Result};
use crate::format::excludes::Excludes;
use crate::format::manifest::{Version, MODE_BITS};
use crate::format::{Entry, Kind, Manifest};
use crate::progress::{Phase, Progress};
use crate::vault::objects::Objects;
use statcache::{Comparison, FileStat, Seen, StatCache};

/// A fingerprinted soul.
#[derive(Debug, Clone)]
pub struct Fingerprint {
    /// The manifest.
    pub manifest: Manifest,
    /// Objects newly written to the store (0 when not storing).
    pub new_objects: u64,
    /// Bytes of those objects.
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
pub(crate) fn fingerprint_expecting(
    root: &Path,
    excludes: &Excludes,
    skip: &[PathBuf],
    sources: Sources<'_>,
    expect: Option<&Manifest>,
    progress: &dyn Progress,
    stop: &AtomicBool,
) -> Result<Scan> {
    let Sources { store, cache } = sources;
    let (found, cache) = std::thread::scope(|threads| {
        let loading = cache.map(|path| threads.spawn(move || StatCache::open(path)));
        let found = walk(root, excludes, skip);
        let cache = loading.map(|l| l.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        (found, cache)
    });
    let cache = cache.transpose()?;
    let found = found?;
    let total: u64 = found.iter().map(|f| f.size).sum();
    let files = found.iter().filter(|f| f.kind != Kind::Dir).count() as u64;
    progress.start(Phase::Hash, files, total);
    let cmp = match &cache {
        Some(c) => c.compare(found.iter().map(|f| (f.kind, f.rel.as_str(), &f.stat))),
        None => Comparison::nothing(found.len()),
    };
    let seen = &cmp.seen;
    let mut likely = cmp.likely.iter().peekable();
    let expected = |f: &walk::Found| -> Option<[u8; 32]> {
        let e = expect?.find(&f.rel)?;
        (e.kind.has_content() && e.kind != Kind::Symlink && e.size == f.size).then_some(e.hash)
    };

    // A trusted record needs no object check: the cache is written only
    // after its objects were published durably, and selfsame never deletes
    // objects.
    let mut jobs = Vec::new();
    let mut job_of = Vec::new();
    for (i, f) in found.iter().enumerate() {
        match (f.kind, seen[i]) {
            (Kind::File | Kind::Exec, Seen::Trusted(_)) => {
                progress.advance(f.size);
            }
            (Kind::File | Kind::Exec, _) => {
                let racy = likely.next_if(|(j, _)| *j == i).map(|(_, h)| *h);
                jobs.push(hash::Job {
                    path: f.abs(root),
                    size: f.size,
                    seen: Some(f.stat),
                    expect: expected(f).or(racy),
                });
                job_of.push(i);
            }
            _ => {}
        }
    }
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
    let mut fail = |i: usize, e| {
        if first_err.as_ref().is_none_or(|(j, _)| i < *j) {
            first_err = Some((i, e));
        }
    };
    let (mut new_objects, mut new_bytes) = (0, 0);
    let mut put = |i: usize, hash, size, new| {
        entries[i].hash = hash;
        entries[i].size = size;
        if new {
            new_objects += 1;
            new_bytes += size;
        }
    };
    for (&i, r) in job_of.iter().zip(hashed) {
        match r {
            Ok(h) => {
                put(i, h.hash, h.size, h.new);
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

/// A symlink's target: its hash, length, and whether it was newly stored.
type Linked = ([u8; 32], u64, bool);

fn hash_link(path: &Path, store: Option<&Objects>) -> Result<Linked> {
    let target = std::fs::read_link(path).at(path)?;
    let bytes = target.as_os_str().as_bytes();
    let hash = crate::crypto::sha256(bytes);
    let new = match store {
        Some(s) => s.put(&hash, bytes)?,
        None => false,
    };
    Ok((hash, bytes.len() as u64, new))
}
