//! Prune: removes the stored objects that no kept checkpoint reaches.
//!
//! A checkpoint is kept unless a `forget` event released its snapshot
//! ([`super::forget`]); the head always is. What a kept checkpoint reaches:
//! its sealed config, its manifest, and the content of every file and
//! symlink the manifest lists (with whatever that content is stored as,
//! [`crate::vault::objects::Objects::reaches`]). The stat cache's records
//! are kept too: a seal trusts them without looking at the store.
//!
//! Prune holds the vault lock, so no seal can start to rely on an object
//! while it decides to remove it, and it removes only what it found
//! unreachable: a crash at any point loses nothing reachable, and what is
//! left is a vault that verifies (the next prune removes the rest). A pack
//! that holds kept and unreachable blobs is written anew with the kept
//! ones, durably, before the old one goes. It
//! refuses a vault that does not verify under the token, and one with a
//! pending restore or migration (whose staged soul no checkpoint names
//! yet).

use std::collections::{BTreeSet, HashSet};

use serde::Serialize;
use serde_json::{json, Map};

use super::checks::ObjectScope;
use super::forget::verified;
use super::head::{manifest_of, released};
use crate::crypto::{Credential, Keys};
use crate::error::{Damage, Error, Result};
use crate::format::Kind;
use crate::progress::{Phase, Progress};
use crate::soul::statcache::StatCache;
use crate::vault::objects::ObjectId;
use crate::vault::{StoredCheckpoint, Vault};

/// What a prune did (or, dry, would do).
#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    /// Checkpoints whose snapshots are kept.
    pub checkpoints_kept: usize,
    /// Stored objects kept.
    pub objects_kept: u64,
    /// Stored objects removed (loose objects, and blobs of packs).
    pub objects_removed: u64,
    /// The bytes they took in the store.
    pub bytes_removed: u64,
    /// Entries the store removed: loose objects and packs.
    pub entries_removed: u64,
    /// Whether nothing was removed because it was a dry run.
    pub dry_run: bool,
    /// Checkpoints a `forget` released that no checkpoint anchors yet:
    /// kept by this prune, released by the one after the next seal.
    pub awaiting_anchor: Vec<u64>,
}

/// Removes every stored object no kept checkpoint reaches, taking the
/// vault lock. Logs a `prune` event when it removed anything.
pub fn prune(
    vault: &Vault,
    cred: &Credential,
    dry_run: bool,
    progress: &dyn Progress,
) -> Result<PruneReport> {
    let _lock = vault.lock()?;
    prune_locked(vault, cred, dry_run, progress)
}

/// [`prune`] with the vault lock held.
pub(crate) fn prune_locked(
    vault: &Vault,
    cred: &Credential,
    dry_run: bool,
    progress: &dyn Progress,
) -> Result<PruneReport> {
    if let Some(j) = vault.pending_swap()? {
        return Err(Error::SwapPending(j));
    }
    let insp = verified(vault, cred, "prune", ObjectScope::Head)?;
    let kept: Vec<&StoredCheckpoint> = insp
        .checkpoints
        .iter()
        .filter(|s| !insp.forgotten.contains_key(&s.ckpt.seq))
        .collect();
    let head = insp.head.as_ref().expect("a verified vault has a head");
    let awaiting_anchor: Vec<u64> = released(&insp.history, &head.ckpt.log, &insp.keys)
        .into_keys()
        .filter(|seq| !insp.forgotten.contains_key(seq) && *seq != head.ckpt.seq)
        .collect();
    let contents = reached(vault, &kept, progress)?;
    let objects = vault.objects();
    let mut reach: HashSet<ObjectId> = HashSet::new();
    for hash in &contents {
        reach.extend(objects.reaches(hash)?);
    }
    let all = objects.ids()?;
    let doomed: Vec<(ObjectId, u64)> = all
        .iter()
        .filter(|id| !reach.contains(id))
        .map(|id| (*id, objects.stored_size(id).unwrap_or(0)))
        .collect();
    let mut report = PruneReport {
        checkpoints_kept: kept.len(),
        objects_kept: (all.len() - doomed.len()) as u64,
        objects_removed: doomed.len() as u64,
        bytes_removed: doomed.iter().map(|(_, n)| n).sum(),
        entries_removed: 0,
        dry_run,
        awaiting_anchor,
    };
    if dry_run || doomed.is_empty() {
        return Ok(report);
    }
    let keys = Keys::of(cred);
    let history = vault.history_for(&keys);
    history.check_after(&head.ckpt.log)?;
    // How much the store frees is known only as it goes (a pack that
    // keeps some blobs is written anew): no total.
    progress.start(Phase::Delete, doomed.len() as u64, 0);
    let ids: BTreeSet<ObjectId> = doomed.iter().map(|(id, _)| *id).collect();
    let mut steps = 0;
    objects.delete_each(&ids, &mut |freed| {
        steps += 1;
        progress.advance(freed);
        vault.failpoint_at("prune-after-delete", steps);
    })?;
    progress.finish();
    report.entries_removed = steps;
    let mut data = Map::new();
    data.insert("objects".into(), json!(report.objects_removed));
    data.insert("bytes".into(), json!(report.bytes_removed));
    data.insert("kept".into(), json!(report.checkpoints_kept));
    history.append("prune", data)?;
    Ok(report)
}

/// The content every kept checkpoint needs, and what the stat cache
/// records. A kept checkpoint whose manifest cannot be read stops the
/// prune: what it reaches is unknown.
fn reached(
    vault: &Vault,
    kept: &[&StoredCheckpoint],
    progress: &dyn Progress,
) -> Result<HashSet<[u8; 32]>> {
    let mut contents = HashSet::new();
    let mut souls = HashSet::new();
    progress.start(Phase::Scan, kept.len() as u64, kept.len() as u64);
    for s in kept {
        if let Some(config) = s.ckpt.config() {
            let mut h = [0u8; 32];
            if hex::decode_to_slice(config, &mut h).is_ok() {
                contents.insert(h);
            }
        }
        if souls.insert(s.ckpt.soul.clone()) {
            let manifest = manifest_of(vault, s).map_err(|e| unreadable(vault, s, e))?;
            let mut soul = [0u8; 32];
            hex::decode_to_slice(&s.ckpt.soul, &mut soul).expect("checkpoint soul is hex");
            contents.insert(soul);
            contents.extend(
                manifest
                    .entries
                    .iter()
                    .filter(|e| e.kind != Kind::Dir)
                    .map(|e| e.hash),
            );
        }
        progress.advance(1);
    }
    progress.finish();
    let cache = StatCache::open_strict(&StatCache::path(vault.dir()))?;
    contents.extend(cache.contents());
    contents.insert(cache.manifest());
    Ok(contents)
}

/// The error for a kept checkpoint whose manifest could not be read.
fn unreadable(vault: &Vault, s: &StoredCheckpoint, e: Error) -> Error {
    match e {
        Error::ObjectMissing { .. } | Error::Corrupt { .. } => Error::corrupt(
            vault.dir(),
            Damage::Unverified {
                op: "prune",
                why: format!(
                    "checkpoint {}: its manifest cannot be read: {e}",
                    s.ckpt.seq
                ),
            },
        ),
        e => e,
    }
}
