//! The supervisor's look at the protected paths between heartbeats, every
//! couple of seconds, without walking or re-hashing the soul.
//!
//! A check stats what it looked at last — each protected entry, each
//! literal pattern's path (present or not), each directory a glob pattern
//! could gain an entry in — and compares with the stats it recorded: when
//! nothing moved, that is the whole check. When something did, it lists
//! the protected part again ([`walk_protected`]), re-hashes only the files
//! whose stat changed, and compares with the approved entries. A stat
//! taken within [`RACY`] of the file's last change is not trusted (a
//! second write in the same clock tick leaves the stat as it was): the
//! next check looks again.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::compare::{changes_of, differing, patch, read_entry, Pair};
use super::revert::{revert_locked, Reverted};
use crate::crypto::{Credential, Keys};
use crate::error::{Error, Result};
use crate::format::excludes::{Excludes, Protect, Root};
use crate::format::manifest::{Version, MODE_BITS};
use crate::format::{Entry, Kind};
use crate::ops::head::{current_head, manifest_of};
use crate::progress::Silent;
use crate::soul::hash::{hash_files, Job};
use crate::soul::statcache::FileStat;
use crate::soul::walk::walk_protected;
use crate::soul::Changes;
use crate::vault::{StoredCheckpoint, Vault};

/// A stat whose mtime or ctime is this close to the moment it was taken
/// is not trusted.
pub const RACY: Duration = Duration::from_secs(1);

/// Protected paths that differ from their approved versions.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The head checkpoint compared with.
    pub seq: u64,
    /// What changed, by kind.
    pub changes: Changes,
    pairs: Vec<Pair>,
    version: Version,
}

impl Finding {
    /// The changed paths, in manifest order.
    pub fn paths(&self) -> Vec<String> {
        self.pairs.iter().map(|p| p.path.clone()).collect()
    }

    /// The patch from the approved versions to those on disk now.
    pub fn patch(&self, vault: &Vault) -> Result<String> {
        let soul = vault.soul();
        patch(vault, &self.pairs, self.version, &|e: &Entry| {
            read_entry(&soul.join(&e.path), e)
        })
    }

    /// [`Finding::patch`], also saved as
    /// `quarantine/<time>-protected-changed.diff`; returns the patch and
    /// that path, relative to the vault.
    pub fn save_patch(&self, vault: &Vault) -> Result<(String, String)> {
        let text = self.patch(vault)?;
        let at = crate::ops::swap::tree::unique(
            &vault.quarantine()?,
            vault.now(),
            "protected-changed.diff",
        );
        crate::vault::atomic::write_create_only(&at, text.as_bytes())?;
        let name = at
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok((text, format!("quarantine/{name}")))
    }
}

/// A watch on the protected paths of a vault's soul (see the module
/// docs).
#[derive(Debug)]
pub struct Watch {
    soul: PathBuf,
    protect: Protect,
    excludes: Excludes,
    skip: Vec<PathBuf>,
    /// The head compared with, its manifest version and protected entries.
    seq: u64,
    version: Version,
    approved: Vec<Entry>,
    /// What the last full look saw (paths relative to the soul, `""` the
    /// soul itself) and their stats; empty: look fully next time.
    watched: Vec<(String, Option<FileStat>)>,
    /// Hashes of protected files by path, with the stat they were read
    /// under.
    hashes: HashMap<String, (FileStat, [u8; 32])>,
}

impl Watch {
    /// A watch on the head's protected paths; `None` when the config
    /// protects nothing or there is no head yet.
    pub fn new(vault: &Vault, cred: &Credential) -> Result<Option<Watch>> {
        let protect = vault.config.protect_globs(&vault.config_path())?;
        if protect.is_empty() {
            return Ok(None);
        }
        let Some(head) = current_head(vault, cred)? else {
            return Ok(None);
        };
        let mut w = Watch {
            soul: vault.soul(),
            protect,
            excludes: vault.excludes()?,
            skip: vault.skip_paths(),
            seq: 0,
            version: Version::NEWEST,
            approved: Vec::new(),
            watched: Vec::new(),
            hashes: HashMap::new(),
        };
        w.load(vault, &head)?;
        Ok(Some(w))
    }

    /// The head checkpoint the watch compares with.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    fn load(&mut self, vault: &Vault, head: &StoredCheckpoint) -> Result<()> {
        let m = manifest_of(vault, head)?;
        self.seq = head.ckpt.seq;
        self.version = m.version;
        self.approved = m
            .entries
            .into_iter()
            .filter(|e| self.protect.covers(&e.path))
            .collect();
        self.watched.clear();
        Ok(())
    }

    /// Looks at the protected paths: `None` when each is as approved.
    /// Takes no lock and writes nothing; a finding is confirmed under the
    /// lock by [`Watch::confirm`] or [`Watch::revert`].
    pub fn check(&mut self) -> Result<Option<Finding>> {
        if self.unmoved() {
            return Ok(None);
        }
        self.look()
    }

    /// Whether everything looked at last has the stat it had then.
    fn unmoved(&self) -> bool {
        !self.watched.is_empty()
            && self
                .watched
                .iter()
                .all(|(rel, was)| stat(&self.soul.join(rel)) == *was)
    }

    /// The full look: lists and hashes the protected part, compares it,
    /// and records what it looked at (nothing, when it differs or a stat
    /// was too recent to trust: the next check looks fully again).
    fn look(&mut self) -> Result<Option<Finding>> {
        let began = SystemTime::now();
        let (current, watched) = match self.current(began) {
            Ok(found) => found,
            // Something no seal can record (a FIFO, a device) at a
            // protected path: a change like any other.
            Err(Error::Unsupported { path, .. }) if self.protect.covers(&path) => {
                let placeholder = Entry {
                    kind: Kind::File,
                    mode: 0,
                    hash: [0; 32],
                    size: 0,
                    path: path.clone(),
                };
                let approved = self.approved.iter().find(|e| e.path == path).cloned();
                self.watched.clear();
                return Ok(Some(self.finding(vec![Pair {
                    path,
                    approved,
                    current: Some(placeholder),
                }])));
            }
            Err(e) => return Err(e),
        };
        let pairs = differing(self.version, self.approved.iter(), current.iter());
        if pairs.is_empty() {
            self.watched = watched.unwrap_or_default();
            Ok(None)
        } else {
            self.watched.clear();
            Ok(Some(self.finding(pairs)))
        }
    }

    fn finding(&self, pairs: Vec<Pair>) -> Finding {
        Finding {
            seq: self.seq,
            changes: changes_of(&pairs),
            pairs,
            version: self.version,
        }
    }

    /// The protected entries on disk, and what to stat next time (`None`
    /// when a stat was too recent to trust).
    #[allow(clippy::type_complexity)]
    fn current(
        &mut self,
        began: SystemTime,
    ) -> Result<(Vec<Entry>, Option<Vec<(String, Option<FileStat>)>>)> {
        let (found, dirs) = walk_protected(&self.soul, &self.protect, &self.excludes, &self.skip)?;
        let racy_before = began
            .checked_sub(RACY)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(i64::MAX, |d| d.as_secs() as i64);
        let racy = |s: &FileStat| s.mtime.0 >= racy_before || s.ctime.0 >= racy_before;
        let mut trusted = true;
        let mut read = self.read_files(&found, &racy)?;
        let mut entries = Vec::with_capacity(found.len());
        let mut watched = Vec::with_capacity(found.len() + dirs.len());
        for f in &found {
            let (hash, size, st) = match f.kind {
                Kind::Dir => ([0; 32], 0, f.stat),
                Kind::Symlink => {
                    let target = std::fs::read_link(f.abs(&self.soul)).map_err(|e| Error::Io {
                        path: f.abs(&self.soul),
                        source: e,
                    })?;
                    let bytes = target.as_os_str().as_bytes();
                    (crate::crypto::sha256(bytes), bytes.len() as u64, f.stat)
                }
                Kind::File | Kind::Exec => match read.remove(&f.abs(&self.soul)) {
                    // Not hashed (not the approved size): a change, and
                    // never cached, so that a later approval is not
                    // judged against a made-up hash.
                    Some((st, None, size)) => {
                        self.hashes.remove(&f.rel);
                        trusted = false;
                        ([0; 32], size, st)
                    }
                    Some((st, Some(hash), size)) => {
                        if racy(&st) {
                            self.hashes.remove(&f.rel);
                        } else {
                            self.hashes.insert(f.rel.clone(), (st, hash));
                        }
                        (hash, size, st)
                    }
                    None => {
                        let (st, hash) = self.hashes[&f.rel];
                        (hash, st.size, st)
                    }
                },
            };
            if racy(&st) {
                trusted = false;
            }
            entries.push(Entry {
                kind: f.kind,
                mode: st.mode & MODE_BITS,
                hash,
                size,
                path: f.rel.clone(),
            });
            watched.push((f.rel.clone(), Some(st)));
        }
        self.hashes
            .retain(|rel, _| found.iter().any(|f| f.rel == *rel));
        for r in self.protect.roots() {
            if let Root::Path(p) = r {
                if !found.iter().any(|f| f.rel == p) {
                    watched.push((p.clone(), stat(&self.soul.join(&p))));
                }
            }
        }
        for d in dirs {
            let st = stat(&self.soul.join(&d));
            if st.as_ref().is_some_and(&racy) {
                trusted = false;
            }
            watched.push((d, st));
        }
        Ok((entries, trusted.then_some(watched)))
    }

    /// Hashes the protected files whose stat is not the one a trusted hash
    /// was read under; by absolute path: the stat read under, hash, size.
    #[allow(clippy::type_complexity)]
    fn read_files(
        &self,
        found: &[crate::soul::walk::Found],
        racy: &dyn Fn(&FileStat) -> bool,
    ) -> Result<HashMap<PathBuf, (FileStat, Option<[u8; 32]>, u64)>> {
        let mut jobs = Vec::new();
        let mut read = HashMap::new();
        for f in found
            .iter()
            .filter(|f| matches!(f.kind, Kind::File | Kind::Exec))
        {
            // Not the approved size: changed, whatever its bytes; not read
            // (a sparse file of a TiB renamed over SOUL.md would take
            // hours to hash, while the agent reads it).
            let approved = self.approved.iter().find(|e| e.path == f.rel);
            if approved.is_none_or(|a| a.size != f.size) {
                read.insert(f.abs(&self.soul), (f.stat, None, f.size));
                continue;
            }
            if !matches!(self.hashes.get(&f.rel), Some((s, _)) if *s == f.stat && !racy(s)) {
                jobs.push(Job {
                    path: f.abs(&self.soul),
                    size: f.size,
                    seen: Some(f.stat),
                    expect: None,
                    prefix: false,
                    grew: None,
                });
            }
        }
        let hashed = hash_files(&jobs, None, &Silent, &AtomicBool::new(false));
        for (job, h) in jobs.iter().zip(hashed) {
            let h = h?;
            read.insert(job.path.clone(), (h.stat, Some(h.hash), h.size));
        }
        Ok(read)
    }

    /// Confirms a finding under the vault lock, against the head as it is
    /// now (the owner may just have approved the change).
    pub fn confirm(&mut self, vault: &Vault, cred: &Credential) -> Result<Option<Finding>> {
        let _lock = vault.lock()?;
        self.reload(vault, cred)?;
        self.look()
    }

    /// Puts the approved version of every changed protected path back
    /// (see [`revert_locked`]), under the vault lock and against the head
    /// as it is now. `None`: nothing differed any more.
    pub fn revert(&mut self, vault: &Vault, cred: &Credential) -> Result<Option<Reverted>> {
        let _lock = vault.lock()?;
        self.reload(vault, cred)?;
        let Some(f) = self.look()? else {
            return Ok(None);
        };
        let r = revert_locked(vault, &Keys::of(cred), f.seq, f.version, &f.pairs)?;
        self.watched.clear();
        Ok(Some(r))
    }

    /// Takes the head as it is now, when it moved.
    fn reload(&mut self, vault: &Vault, cred: &Credential) -> Result<()> {
        let head =
            current_head(vault, cred)?.ok_or_else(|| Error::NoSuchCheckpoint("head".into()))?;
        if head.ckpt.seq != self.seq {
            self.load(vault, &head)?;
        }
        Ok(())
    }
}

/// The stat of `path`, not following a symlink; `None` when absent.
fn stat(path: &std::path::Path) -> Option<FileStat> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| FileStat::of(&m))
}
