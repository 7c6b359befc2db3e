//! The stat cache: (size, mtime, ctime, inode, mode) → content hash, kept in
//! `.selfsame/cache/stat` so a seal re-reads only files that changed.
//!
//! It follows git's racy-timestamp rule: an entry is trusted only when the
//! file's mtime is strictly older than the moment the scan that recorded it
//! began, as the filesystem's own clock tells it (the mtime of a stamp file
//! touched at scan start). A file written in the same clock tick as the scan
//! is therefore always re-hashed. `wake` does not use the cache unless asked
//! (`--fast`): an attacker can forge mtimes, so the default wake re-hashes
//! everything. A rewrite that forges the mtime still changes the ctime, which
//! the cache also compares.

use std::fs::{self, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::atomic;
use crate::error::{IoContext, Result};

const HEADER: &str = "selfsame-statcache 1";

/// A timestamp as the filesystem records it.
pub type Stamp = (i64, i64);

/// What the cache remembers of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachedStat {
    /// Size in bytes.
    pub size: u64,
    /// Modification time.
    pub mtime: Stamp,
    /// Status change time.
    pub ctime: Stamp,
    /// Inode number.
    pub ino: u64,
    /// Mode bits.
    pub mode: u32,
    /// SHA-256 of the content.
    pub hash: [u8; 32],
}

impl CachedStat {
    /// The cache entry for a file with `meta` and `hash`.
    pub fn new(meta: &Metadata, hash: [u8; 32]) -> Self {
        CachedStat {
            size: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
            mode: meta.mode(),
            hash,
        }
    }
}

/// A loaded stat cache.
#[derive(Debug, Clone, Default)]
pub struct StatCache {
    scan_began: Stamp,
    /// Sorted by path bytes, for binary search.
    entries: Vec<(String, CachedStat)>,
}

impl StatCache {
    /// Where a vault keeps it.
    pub fn path(vault_dir: &Path) -> PathBuf {
        vault_dir.join("cache").join("stat")
    }

    /// Loads the cache; a missing or unreadable one is empty (it is only a
    /// cache).
    pub fn load(path: &Path) -> StatCache {
        let Ok(text) = fs::read_to_string(path) else {
            return StatCache::default();
        };
        Self::parse(&text).unwrap_or_default()
    }

    fn parse(text: &str) -> Option<StatCache> {
        let mut lines = text.lines();
        let head = lines.next()?.strip_prefix(HEADER)?.trim();
        let (s, ns) = head.split_once(' ')?;
        let mut cache = StatCache {
            scan_began: (s.parse().ok()?, ns.parse().ok()?),
            entries: Vec::new(),
        };
        for line in lines {
            let mut p = line.splitn(9, ' ');
            let mut hash = [0u8; 32];
            hex::decode_to_slice(p.next()?, &mut hash).ok()?;
            let mut num = || p.next().and_then(|t| t.parse::<i64>().ok());
            let size = num()? as u64;
            let mtime = (num()?, num()?);
            let ctime = (num()?, num()?);
            let ino = num()? as u64;
            let mode = num()? as u32;
            let path = p.next()?.to_owned();
            cache.entries.push((
                path,
                CachedStat {
                    size,
                    mtime,
                    ctime,
                    ino,
                    mode,
                    hash,
                },
            ));
        }
        // Written in manifest order already; sort only if someone else wrote it.
        if !cache
            .entries
            .is_sorted_by(|a, b| a.0.as_bytes() <= b.0.as_bytes())
        {
            cache
                .entries
                .sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        }
        Some(cache)
    }

    /// The hash of `rel` if its stat matches the cached one and the entry
    /// is not racy.
    pub fn lookup(&self, rel: &str, meta: &Metadata) -> Option<[u8; 32]> {
        let c = self.get(rel)?;
        self.lookup_stat(rel, &CachedStat::new(meta, c.hash))
    }

    /// [`StatCache::lookup`] for a stat already taken.
    pub fn lookup_stat(&self, rel: &str, now: &CachedStat) -> Option<[u8; 32]> {
        let c = self.get(rel)?;
        let same = now.size == c.size
            && now.mtime == c.mtime
            && now.ctime == c.ctime
            && now.ino == c.ino
            && now.mode == c.mode;
        // Racy: written in the same clock tick as the scan (or later).
        (same && c.mtime < self.scan_began).then_some(c.hash)
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

    /// Writes a cache with `entries`, recorded by a scan that began at
    /// `scan_began`.
    pub fn save(path: &Path, scan_began: Stamp, entries: &[(String, CachedStat)]) -> Result<()> {
        use std::fmt::Write;
        let mut out = String::with_capacity(64 + entries.len() * 140);
        let _ = writeln!(out, "{HEADER} {} {}", scan_began.0, scan_began.1);
        for (rel, c) in entries {
            let _ = writeln!(
                out,
                "{} {} {} {} {} {} {} {} {}",
                hex::encode(c.hash),
                c.size,
                c.mtime.0,
                c.mtime.1,
                c.ctime.0,
                c.ctime.1,
                c.ino,
                c.mode,
                rel
            );
        }
        atomic::create_dir_all(path.parent().expect("cache path has a parent"))?;
        // Temp file and rename, but no fsync: after a power cut the cache
        // may be missing, empty or cut short, and each of those only costs
        // re-hashing (an entry is trusted only when every stat field
        // matches). The objects it names were made durable before it was
        // written.
        let tmp = atomic::temp_path(path);
        fs::write(&tmp, out.as_bytes()).at(&tmp)?;
        fs::rename(&tmp, path).at(path)
    }

    /// [`StatCache::lookup`] for many paths at once, given sorted by raw
    /// bytes (as the walk yields them): one merge pass instead of a search
    /// per path.
    pub fn lookup_sorted<'a>(
        &self,
        items: impl Iterator<Item = (&'a str, &'a Metadata)>,
    ) -> Vec<Option<[u8; 32]>> {
        let mut at = 0;
        let mut out = Vec::new();
        for (rel, meta) in items {
            while at < self.entries.len() && self.entries[at].0.as_bytes() < rel.as_bytes() {
                at += 1;
            }
            let hit = match self.entries.get(at) {
                Some((p, c)) if p == rel => self.lookup_stat(rel, &CachedStat::new(meta, c.hash)),
                _ => None,
            };
            out.push(hit);
        }
        out
    }

    fn get(&self, rel: &str) -> Option<&CachedStat> {
        self.entries
            .binary_search_by(|(p, _)| p.as_bytes().cmp(rel.as_bytes()))
            .ok()
            .map(|i| &self.entries[i].1)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(mtime: Stamp) -> CachedStat {
        CachedStat {
            size: 5,
            mtime,
            ctime: mtime,
            ino: 7,
            mode: 0o100644,
            hash: [9; 32],
        }
    }

    #[test]
    fn racy_entries_are_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stat");
        let scan = (1000, 500);
        let old = stat((999, 0));
        let racy = stat((1000, 500));
        StatCache::save(&path, scan, &[("old".into(), old), ("racy".into(), racy)]).unwrap();
        let cache = StatCache::load(&path);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.lookup_stat("old", &old), Some([9; 32]));
        assert_eq!(
            cache.lookup_stat("racy", &racy),
            None,
            "same tick as the scan must be re-hashed"
        );
    }

    #[test]
    fn any_stat_change_misses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stat");
        let base = stat((10, 0));
        StatCache::save(&path, (20, 0), &[("a b".into(), base)]).unwrap();
        let cache = StatCache::load(&path);
        assert_eq!(cache.lookup_stat("a b", &base), Some([9; 32]));
        for changed in [
            CachedStat { size: 6, ..base },
            CachedStat {
                mtime: (10, 1),
                ..base
            },
            CachedStat {
                ctime: (11, 0),
                ..base
            },
            CachedStat { ino: 8, ..base },
            CachedStat {
                mode: 0o100755,
                ..base
            },
        ] {
            assert_eq!(cache.lookup_stat("a b", &changed), None);
        }
        assert_eq!(cache.lookup_stat("other", &base), None);
    }

    #[test]
    fn garbage_is_an_empty_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stat");
        fs::write(&path, "selfsame-statcache 1 x y\nzzz").unwrap();
        assert!(StatCache::load(&path).is_empty());
    }
}
