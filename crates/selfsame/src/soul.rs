//! The soul: walking the state directory, fingerprinting it into a
//! [`Manifest`], and the change summary between two manifests.

use std::fs::{self, File, Metadata};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::format::{Entry, Kind, Manifest};
use crate::progress::{Phase, Progress};
use crate::vault::objects::{self, Objects};
use crate::vault::statcache::{CachedStat, StatCache};

thread_local! {
    /// Each hashing thread's buffer for whole small files.
    static SMALL_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// How many times a file that changes under the reader is re-read.
const TRIES: u32 = 3;

/// The `exclude` globs of the config.
#[derive(Debug, Clone)]
pub struct Excludes(GlobSet);

impl Excludes {
    /// Compiles patterns: `*` stays within a segment, `**` crosses them.
    pub fn new(patterns: &[String]) -> std::result::Result<Self, String> {
        let mut set = GlobSetBuilder::new();
        for p in patterns {
            let glob = GlobBuilder::new(p)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| format!("exclude pattern {p:?}: {e}"))?;
            set.add(glob);
        }
        set.build().map(Excludes).map_err(|e| e.to_string())
    }

    /// No exclusions.
    pub fn none() -> Self {
        Excludes(GlobSet::empty())
    }

    /// Whether a relative path is excluded.
    pub fn matches(&self, rel: &str) -> bool {
        self.0.is_match(rel)
    }
}

/// One entry found on disk, before hashing.
#[derive(Debug, Clone)]
pub struct Found {
    /// Kind.
    pub kind: Kind,
    /// Relative path.
    pub rel: String,
    /// Absolute path.
    pub abs: PathBuf,
    /// Size from the walk (files) or the link target's length.
    pub size: u64,
    /// The entry's own metadata (symlinks not followed).
    pub meta: Metadata,
}

/// Walks the soul. `skip` lists absolute paths left out (the vault, when it
/// lies inside the soul). Refuses non-UTF-8 names, control characters,
/// sockets, FIFOs and devices, naming the path.
pub fn walk(root: &Path, excludes: &Excludes, skip: &[PathBuf]) -> Result<Vec<Found>> {
    let meta = fs::metadata(root).at(root)?;
    if !meta.is_dir() {
        return Err(Error::Usage(format!(
            "soul {} is not a directory",
            root.display()
        )));
    }
    let out = walk_dir(root, "", excludes, skip)?;
    // Sort indices, not the entries: moving ~200-byte entries around in a
    // sort of 100k of them shows in an unchanged seal.
    let mut order: Vec<u32> = (0..out.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| {
        out[a as usize]
            .rel
            .as_bytes()
            .cmp(out[b as usize].rel.as_bytes())
    });
    let mut slots: Vec<Option<Found>> = out.into_iter().map(Some).collect();
    Ok(order
        .into_iter()
        .map(|i| slots[i as usize].take().expect("each index once"))
        .collect())
}

/// Lists one directory, then its subdirectories in parallel (stat calls
/// dominate the walk, and they run well on several cores).
fn walk_dir(dir: &Path, prefix: &str, excludes: &Excludes, skip: &[PathBuf]) -> Result<Vec<Found>> {
    let mut out = Vec::new();
    let mut subdirs = Vec::new();
    for item in fs::read_dir(dir).at(dir)? {
        let item = item.at(dir)?;
        let name = item.file_name();
        let Some(name) = name.to_str() else {
            return Err(Error::Unsupported {
                path: format!("{prefix}{}", name.to_string_lossy()),
                reason: "the name is not valid UTF-8",
            });
        };
        let rel = format!("{prefix}{name}");
        if name.chars().any(char::is_control) {
            return Err(Error::Unsupported {
                path: rel.escape_debug().to_string(),
                reason: "the name has control characters",
            });
        }
        let abs = item.path();
        if excludes.matches(&rel) || skip.iter().any(|s| s.as_os_str() == abs.as_os_str()) {
            continue;
        }
        // Relative to the open directory, symlinks not followed.
        let meta = item.metadata().at(&abs)?;
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            if meta.mode() & 0o111 != 0 {
                Kind::Exec
            } else {
                Kind::File
            }
        } else if ft.is_symlink() {
            Kind::Symlink
        } else {
            let reason = if ft.is_socket() {
                "sockets cannot be sealed"
            } else if ft.is_fifo() {
                "FIFOs cannot be sealed"
            } else {
                "devices cannot be sealed"
            };
            return Err(Error::Unsupported { path: rel, reason });
        };
        let size = if kind == Kind::Dir { 0 } else { meta.len() };
        if kind == Kind::Dir {
            subdirs.push((abs.clone(), format!("{rel}/")));
        }
        out.push(Found {
            kind,
            rel,
            abs,
            size,
            meta,
        });
    }
    let below: Result<Vec<Vec<Found>>> = subdirs
        .par_iter()
        .map(|(abs, prefix)| walk_dir(abs, prefix, excludes, skip))
        .collect();
    for v in below? {
        out.extend(v);
    }
    Ok(out)
}

/// A fingerprinted soul.
#[derive(Debug, Clone)]
pub struct Fingerprint {
    /// The manifest.
    pub manifest: Manifest,
    /// Objects newly written to the store (0 when not storing).
    pub new_objects: u64,
    /// Bytes of those objects.
    pub new_bytes: u64,
    /// Files whose hash came from the stat cache.
    pub cache_hits: u64,
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
    fingerprint_cached(root, excludes, skip, store, None, progress).map(|(fp, _)| fp)
}

/// [`fingerprint`], trusting `cache` for files whose stat matches (see
/// [`StatCache`]). Returns the cache entries for the files it saw, to be
/// saved for the next scan.
pub fn fingerprint_cached(
    root: &Path,
    excludes: &Excludes,
    skip: &[PathBuf],
    store: Option<&Objects>,
    cache: Option<&StatCache>,
    progress: &dyn Progress,
) -> Result<(Fingerprint, Vec<(String, CachedStat)>)> {
    let found = walk(root, excludes, skip)?;
    let total: u64 = found
        .iter()
        .filter(|f| f.kind != Kind::Dir)
        .map(|f| f.size)
        .sum();
    let files = found.iter().filter(|f| f.kind != Kind::Dir).count() as u64;
    progress.start(Phase::Hash, files, total);
    let new_objects = AtomicU64::new(0);
    let new_bytes = AtomicU64::new(0);
    let cache_hits = AtomicU64::new(0);
    let hits = match cache {
        Some(c) => c.lookup_sorted(found.iter().map(|f| (f.rel.as_str(), &f.meta))),
        None => Vec::new(),
    };
    // Big files first, so one large file does not start last and run alone.
    let mut order: Vec<usize> = (0..found.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(found[i].size));
    let hashed: Result<Vec<(usize, Entry, Option<CachedStat>)>> = order
        .par_iter()
        .map(|&i| {
            let f = &found[i];
            let dir = |f: &Found| Entry {
                kind: Kind::Dir,
                hash: [0; 32],
                size: 0,
                path: f.rel.clone(),
            };
            if f.kind == Kind::Dir {
                return Ok((i, dir(f), None));
            }
            // A cache hit needs no object check: the cache is written only
            // after its objects were published durably, and selfsame never
            // deletes objects.
            let hit = hits
                .get(i)
                .copied()
                .flatten()
                .filter(|_| f.kind != Kind::Symlink);
            if let Some(hash) = hit {
                progress.advance(f.size);
                cache_hits.fetch_add(1, Ordering::Relaxed);
                let entry = Entry {
                    kind: f.kind,
                    hash,
                    size: f.size,
                    path: f.rel.clone(),
                };
                return Ok((i, entry, Some(CachedStat::new(&f.meta, hash))));
            }
            let (hash, size, new, stat) = match f.kind {
                Kind::Symlink => {
                    let (h, n, new) = hash_link(&f.abs, store)?;
                    progress.advance(n);
                    (h, n, new, None)
                }
                _ => {
                    let (h, n, new, meta) = hash_file_meta(&f.abs, store, progress)?;
                    (h, n, new, Some(CachedStat::new(&meta, h)))
                }
            };
            if new {
                new_objects.fetch_add(1, Ordering::Relaxed);
                new_bytes.fetch_add(size, Ordering::Relaxed);
            }
            Ok((
                i,
                Entry {
                    kind: f.kind,
                    hash,
                    size,
                    path: f.rel.clone(),
                },
                stat,
            ))
        })
        .collect();
    progress.finish();
    let mut hashed = hashed?;
    hashed.sort_unstable_by_key(|(i, _, _)| *i);
    let mut stats = Vec::new();
    let mut entries = Vec::with_capacity(hashed.len());
    for (_, e, stat) in hashed {
        if let Some(st) = stat {
            stats.push((e.path.clone(), st));
        }
        entries.push(e);
    }
    Ok((
        Fingerprint {
            // `found` was sorted by path, so the entries already are.
            manifest: Manifest { entries },
            new_objects: new_objects.into_inner(),
            new_bytes: new_bytes.into_inner(),
            cache_hits: cache_hits.into_inner(),
        },
        stats,
    ))
}

fn hash_link(path: &Path, store: Option<&Objects>) -> Result<([u8; 32], u64, bool)> {
    let target = fs::read_link(path).at(path)?;
    let bytes = target.as_os_str().as_bytes();
    let hash = crate::crypto::sha256(bytes);
    let new = match store {
        Some(s) => s.put(&hash, bytes)?,
        None => false,
    };
    Ok((hash, bytes.len() as u64, new))
}

fn same_version(a: &Metadata, b: &Metadata) -> bool {
    a.len() == b.len()
        && a.mtime() == b.mtime()
        && a.mtime_nsec() == b.mtime_nsec()
        && a.ctime() == b.ctime()
        && a.ctime_nsec() == b.ctime_nsec()
        && a.ino() == b.ino()
}

/// Hashes (and stores) one file; re-reads it if it changed under the
/// reader, and fails after [`TRIES`] reads that each saw a change.
pub fn hash_file(
    path: &Path,
    store: Option<&Objects>,
    progress: &dyn Progress,
) -> Result<([u8; 32], u64, bool)> {
    hash_file_meta(path, store, progress).map(|(h, n, new, _)| (h, n, new))
}

/// [`hash_file`], also returning the metadata the bytes were read under.
fn hash_file_meta(
    path: &Path,
    store: Option<&Objects>,
    progress: &dyn Progress,
) -> Result<([u8; 32], u64, bool, Metadata)> {
    for _ in 0..TRIES {
        let before = fs::symlink_metadata(path).at(path)?;
        if !before.is_file() {
            break;
        }
        let mut file = File::open(path).at(path)?;
        let counted = AtomicU64::new(0);
        let on_bytes = |n: u64| {
            counted.fetch_add(n, Ordering::Relaxed);
            progress.advance(n);
        };
        let (hash, size, new) = if before.len() <= objects::SMALL {
            // One buffer per thread, reused: a fresh allocation per file
            // costs a page fault per 4 KiB, which shows at hashing speed.
            SMALL_BUF.with_borrow_mut(|bytes| -> Result<_> {
                bytes.clear();
                file.read_to_end(bytes).at(path)?;
                let hash = crate::crypto::sha256(bytes);
                on_bytes(bytes.len() as u64);
                let new = match store {
                    Some(s) if before.len() == bytes.len() as u64 => s.put(&hash, bytes)?,
                    _ => false,
                };
                Ok((hash, bytes.len() as u64, new))
            })?
        } else {
            match store {
                Some(s) => s.put_stream(&mut file, &on_bytes)?,
                None => {
                    let (h, n) = if before.len() >= objects::OVERLAP {
                        objects::hash_file_overlapped(&mut file, &on_bytes)
                    } else {
                        objects::hash_reader(&mut file, &on_bytes)
                    }
                    .at(path)?;
                    (h, n, false)
                }
            }
        };
        let after = file.metadata().at(path)?;
        if size == before.len() && same_version(&before, &after) {
            return Ok((hash, size, new, before));
        }
        // The bytes moved under us; what was read may be a mix. Read again.
    }
    Err(Error::FileChanging {
        path: path.to_owned(),
        tries: TRIES,
    })
}

/// Added, removed, modified and mode-changed paths between two manifests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    /// Paths only in the new manifest.
    pub added: Vec<String>,
    /// Paths only in the old manifest.
    pub removed: Vec<String>,
    /// Paths whose content or kind changed.
    pub modified: Vec<String>,
    /// Files whose execute bit changed, content equal.
    pub mode_changed: Vec<String>,
}

impl Changes {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.modified.is_empty()
            && self.mode_changed.is_empty()
    }

    /// Total number of changed paths.
    pub fn len(&self) -> usize {
        self.added.len() + self.removed.len() + self.modified.len() + self.mode_changed.len()
    }

    /// A one-line summary such as `+2 -1 ~3 (memory.jsonl, notes/a.md, …)`.
    pub fn summary(&self) -> String {
        if self.is_empty() {
            return "no changes".into();
        }
        let mut first: Vec<&str> = Vec::new();
        for list in [
            &self.modified,
            &self.added,
            &self.removed,
            &self.mode_changed,
        ] {
            first.extend(list.iter().map(String::as_str));
        }
        let more = first.len() > 3;
        first.truncate(3);
        let mut s = format!(
            "{} added, {} removed, {} modified",
            self.added.len(),
            self.removed.len(),
            self.modified.len()
        );
        if !self.mode_changed.is_empty() {
            s.push_str(&format!(", {} mode changed", self.mode_changed.len()));
        }
        s.push_str(&format!(
            " ({}{})",
            first.join(", "),
            if more { ", …" } else { "" }
        ));
        s
    }
}

/// Compares two manifests.
pub fn changes(old: &Manifest, new: &Manifest) -> Changes {
    let mut c = Changes::default();
    let (mut i, mut j) = (0, 0);
    let (a, b) = (&old.entries, &new.entries);
    while i < a.len() || j < b.len() {
        let ord = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.path.as_bytes().cmp(y.path.as_bytes()),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match ord {
            std::cmp::Ordering::Less => {
                c.removed.push(a[i].path.clone());
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                c.added.push(b[j].path.clone());
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (x, y) = (&a[i], &b[j]);
                if x.kind == y.kind && x.hash == y.hash && x.size == y.size {
                } else if matches!(
                    (x.kind, y.kind),
                    (Kind::File, Kind::Exec) | (Kind::Exec, Kind::File)
                ) && x.hash == y.hash
                {
                    c.mode_changed.push(x.path.clone());
                } else {
                    c.modified.push(x.path.clone());
                }
                i += 1;
                j += 1;
            }
        }
    }
    c
}
