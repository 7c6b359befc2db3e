//! Seal: fingerprint the soul, store its objects, write a signed
//! checkpoint. Order: objects → manifest → checkpoint → HEAD → history, each
//! durable before the next, so a crash at any step loses nothing sealed.

use crate::crypto::Credential;
use serde::Serialize;
use serde_json::Map;
use sha2::Digest;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;

use super::head::{current_head, manifest_of};
use super::protect;
use crate::crypto::Keys;
use crate::error::{Error, Result};
use crate::format::checkpoint::{check_extra_fields, Checkpoint, Draft, Header, CONFIG, PROTECTED};
pub use crate::format::checkpoint::{FieldError, Reason, RESERVED_FIELDS};
use crate::format::excludes::Protect;
use crate::format::tags::check_format_tag;
use crate::format::time::rfc3339;
use crate::format::Manifest;
use crate::progress::Progress;
use crate::soul::statcache::{Record, Stamp, StatCache};
use crate::soul::{self, Changes};
use crate::vault::objects::MAX_WHOLE;
use crate::vault::{StoredCheckpoint, Vault};

/// Shell version recorded when none is given and there is no head.
pub const UNKNOWN_SHELL: &str = "unknown";
/// Soul format of a new vault when none is given.
pub const DEFAULT_FORMAT: &str = "v1";

/// How to seal.
#[derive(Debug, Clone)]
pub struct SealOptions {
    /// Why.
    pub reason: Reason,
    /// The shell version; defaults to the vault's
    /// [`Settings::shell`](crate::settings::Settings::shell), then the head's.
    pub shell: Option<String>,
    /// The soul format tag; defaults to the head's.
    pub format: Option<String>,
    /// Extra checkpoint fields: names of lowercase ASCII letters, digits
    /// and `_`, none of [`RESERVED_FIELDS`].
    pub extra: Vec<(String, String)>,
    /// The protected paths whose changes this seal adopts (the paths and
    /// everything below them; empty: all): `approve`'s alone.
    pub(crate) approve: Option<Vec<String>>,
}

impl SealOptions {
    /// Options for `reason` with every default.
    pub fn new(reason: Reason) -> Self {
        SealOptions {
            reason,
            shell: None,
            format: None,
            extra: Vec::new(),
            approve: None,
        }
    }

    /// Checks what the caller asked for: a format tag of the form `v1`,
    /// `v2`, …, and extra fields that are well formed and reserved by none
    /// of selfsame's own (an extra `seq` would name the checkpoint file).
    pub fn check(&self) -> Result<(), FieldError> {
        if let Some(f) = &self.format {
            check_format_tag(f).map_err(|_| FieldError::BadFormat(f.clone()))?;
        }
        check_extra_fields(&self.extra)
    }
}

/// What a seal did.
#[derive(Debug, Clone, Serialize)]
pub struct SealReport {
    /// Whether a checkpoint was written (`false`: heartbeat, nothing changed).
    pub written: bool,
    /// The head seq after the seal.
    pub seq: u64,
    /// The soul hash.
    pub soul: String,
    /// Why.
    pub reason: &'static str,
    /// Files and symlinks.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Objects newly stored.
    pub new_objects: u64,
    /// Bytes newly stored.
    pub new_bytes: u64,
    /// What changed since the previous head.
    pub changes: Changes,
    /// Changed protected paths this seal did not adopt: the checkpoint
    /// keeps their approved versions (only `approve` adopts them).
    pub unapproved: Vec<String>,
    /// Changed protected paths this seal adopted (`approve`).
    pub approved: Vec<String>,
}

/// Seals the soul, taking the vault lock.
pub fn seal(
    vault: &Vault,
    cred: &Credential,
    opts: &SealOptions,
    progress: &dyn Progress,
) -> Result<SealReport> {
    opts.check()?;
    let _lock = vault.lock()?;
    seal_locked(vault, cred, opts, progress)
}

/// Seals with the vault lock already held.
pub(crate) fn seal_locked(
    vault: &Vault,
    cred: &Credential,
    opts: &SealOptions,
    progress: &dyn Progress,
) -> Result<SealReport> {
    opts.check()?;
    if let Some(j) = vault.pending_swap()? {
        return Err(Error::SwapPending(j));
    }
    seal_core(vault, cred, opts, progress)
}

/// Seals without checking for a pending restore (the restore itself seals
/// while its journal is still in place).
pub(crate) fn seal_core(
    vault: &Vault,
    cred: &Credential,
    opts: &SealOptions,
    progress: &dyn Progress,
) -> Result<SealReport> {
    seal_expecting(vault, cred, opts, progress, None)
}

/// [`seal_core`] of a soul expected to equal `expect` (a restore's target,
/// just written from the store): its files are hashed before they are
/// copied into the store, so those whose objects exist are not copied.
/// Order: objects → manifest → checkpoint → HEAD → history, each durable
/// before the next.
pub(crate) fn seal_expecting(
    vault: &Vault,
    cred: &Credential,
    opts: &SealOptions,
    progress: &dyn Progress,
    expect: Option<&Manifest>,
) -> Result<SealReport> {
    // The format of a restore's or migration's seal comes from a checkpoint
    // and is not rechecked; extra fields never name a reserved one.
    check_extra_fields(&opts.extra)?;
    let keys = Keys::of(cred);
    let history = vault.history_for(&keys);
    // The token is checked before it signs anything (a repair line).
    let head = current_head(vault, cred)?;
    history.repair_torn()?;
    // The identity key that signs this checkpoint: the one the head names
    // (a vault from before identities has none until `identity init`).
    let identity = vault.signing_identity(keys.wrap(), head.as_ref())?;
    // The lines this seal's checkpoint will vouch for must be selfsame's;
    // checked before any hashing. (The lock keeps other writers out, so
    // the tail does not move until the checkpoint is written.)
    // What an interrupted revert left beside protected paths is moved out
    // of the soul before it is scanned.
    protect::finish_interrupted(vault, &keys)?;
    let log = history.anchor_after(head.as_ref().map_or("", |h| h.ckpt.log.as_str()))?;
    let marker_was_valid = match &head {
        Some(h) => vault.marker_valid(&keys, h)?,
        None => false,
    };

    let scanned = scan_soul(vault, expect, progress)?;
    vault.failpoint("seal-after-objects");
    let protect = vault.config.protect_globs(&vault.config_path())?;
    let guarded = guard(vault, opts, head.as_ref(), &scanned, &protect, expect)?;
    let (soul_hash, changes) = match &guarded.merged {
        Some((head_manifest, merged)) => settle_merged(vault, head_manifest, merged)?,
        None => settle_manifest(vault, head.as_ref(), &scanned, expect)?,
    };
    vault.failpoint("seal-after-manifest");
    let fp = &scanned.scan.fingerprint;
    let sealed = guarded.merged.as_ref().map_or(&fp.manifest, |(_, m)| m);
    let soul_hex = hex::encode(soul_hash);
    let report = |seq, written, changes| SealReport {
        written,
        seq,
        soul: soul_hex.clone(),
        reason: opts.reason.as_str(),
        files: sealed.files(),
        bytes: sealed.bytes(),
        new_objects: fp.new_objects,
        new_bytes: fp.new_bytes,
        changes,
        unapproved: guarded.unapproved.clone(),
        approved: guarded.approved.clone(),
    };
    if let Some(h) = head.as_ref().filter(|h| h.ckpt.soul == soul_hex) {
        if opts.reason == Reason::Heartbeat {
            return Ok(report(h.ckpt.seq, false, changes));
        }
    }
    let mut draft = draft(vault, cred, opts, head.as_ref(), sealed, &soul_hex, log)?;
    if let Some(f) = protect::field(sealed, &protect) {
        draft.extra.insert(1, (PROTECTED.to_owned(), f));
    }
    let ckpt = keys.sign(&draft, identity.as_ref());
    let awake = head.as_ref().filter(|_| marker_was_valid);
    let stored = write(vault, &keys, opts, awake, ckpt, &changes, &guarded)?;
    Ok(report(stored.ckpt.seq, true, changes))
}

/// What a seal does about protected paths.
#[derive(Debug, Default)]
struct Guarded {
    /// Changed protected paths it does not adopt.
    unapproved: Vec<String>,
    /// Changed protected paths it adopts (`approve`).
    approved: Vec<String>,
    /// When some are not adopted: the head's manifest, and the manifest
    /// sealed instead of the scan's (their approved versions kept).
    merged: Option<(Manifest, Manifest)>,
}

/// Compares the protected paths of the scan with the head's. No seal
/// adopts a change of them but the first (`init`), the seal a restore or
/// migration makes of the soul it swapped in, and `approve` (of the paths
/// it names).
fn guard(
    vault: &Vault,
    opts: &SealOptions,
    head: Option<&StoredCheckpoint>,
    scanned: &Scanned,
    protect: &Protect,
    expect: Option<&Manifest>,
) -> Result<Guarded> {
    let fp = &scanned.scan.fingerprint;
    let Some(head) = head else {
        return Ok(Guarded::default());
    };
    if protect.is_empty()
        || expect.is_some()
        || fp
            .known_soul
            .is_some_and(|k| hex::encode(k) == head.ckpt.soul)
    {
        return Ok(Guarded::default());
    }
    let head_manifest = manifest_of(vault, head)?;
    let pairs = protect::pairs(&head_manifest, &fp.manifest.entries, protect);
    if pairs.is_empty() {
        return Ok(Guarded::default());
    }
    let adopt = |p: &protect::Pair| match &opts.approve {
        None => false,
        Some(paths) => {
            paths.is_empty()
                || paths.iter().any(|a| {
                    p.path == *a
                        || p.path
                            .strip_prefix(a.as_str())
                            .is_some_and(|r| r.starts_with('/'))
                })
        }
    };
    let (approved, unapproved): (Vec<&protect::Pair>, Vec<&protect::Pair>) =
        pairs.iter().partition(|p| adopt(p));
    let names = |v: Vec<&protect::Pair>| v.into_iter().map(|p| p.path.clone()).collect();
    let merged = (!unapproved.is_empty())
        .then(|| protect::merged(&head_manifest, &fp.manifest, &pairs, adopt));
    Ok(Guarded {
        unapproved: names(unapproved),
        approved: names(approved),
        merged: merged.map(|m| (head_manifest, m)),
    })
}

/// The soul hash of a merged manifest and what changed since the head:
/// its object written, the stat cache left as it was (it records what is
/// on disk, which this manifest is not).
fn settle_merged(vault: &Vault, head: &Manifest, merged: &Manifest) -> Result<([u8; 32], Changes)> {
    let bytes = merged.to_bytes();
    let hash = crate::crypto::sha256(&bytes);
    vault.objects().put(&hash, &bytes)?;
    Ok((hash, soul::changes(head, merged)))
}

/// A scan of the soul, and what the stat cache needs of it.
struct Scanned {
    scan: soul::Scan,
    cache_path: std::path::PathBuf,
    began: Stamp,
}

/// Fingerprints the soul, storing its objects (durable together, with one
/// `syncfs` instead of two fsyncs per new object) and trusting the stat
/// cache.
fn scan_soul(vault: &Vault, expect: Option<&Manifest>, progress: &dyn Progress) -> Result<Scanned> {
    vault.allow_packs()?;
    let objects = vault.objects().deferred()?;
    let cache_path = StatCache::path(vault.dir());
    let began = StatCache::begin_scan(&vault.dir().join("cache"))?;
    let scan = soul::fingerprint_expecting(
        &vault.soul(),
        &vault.excludes()?,
        &vault.skip_paths(),
        soul::Sources {
            store: Some(&objects),
            cache: Some(&cache_path),
        },
        expect,
        progress,
        &AtomicBool::new(false),
    )?;
    objects.sync()?;
    Ok(Scanned {
        scan,
        cache_path,
        began,
    })
}

/// The soul hash of the scan and what changed since the head, with the
/// manifest object stored and the stat cache saved: as little written and
/// compared as the cache and `expect` allow.
fn settle_manifest(
    vault: &Vault,
    head: Option<&StoredCheckpoint>,
    scanned: &Scanned,
    expect: Option<&Manifest>,
) -> Result<([u8; 32], Changes)> {
    let Scanned {
        scan,
        cache_path,
        began,
    } = scanned;
    let fp = &scan.fingerprint;
    let head_soul = head.map(|h| h.ckpt.soul.as_str());
    match fp.known_soul {
        // The stat cache vouches for the head's very manifest (an unchanged
        // soul): nothing to write, nothing to compare, once a look says the
        // manifest object is still there (else it is written again). The
        // look reads one pack's footer and entry where the head hint says,
        // not every pack's index: this is every quiet heartbeat.
        Some(known)
            if head_soul == Some(hex::encode(known).as_str())
                && vault.objects().still_stored(&known)? =>
        {
            // Files read again (racy records) are recorded anew, so that
            // the next seal trusts them.
            save_cache(scan, cache_path, *began, &known)?;
            Ok((known, Changes::default()))
        }
        // The soul is the one expected (a restore's target) and that
        // manifest is stored: hashed, not written again.
        _ if match expect.map(Manifest::soul_hash_raw) {
            Some(h) => fp.manifest.soul_hash_raw() == h && vault.objects().still_stored(&h)?,
            None => false,
        } =>
        {
            let hash = fp.manifest.soul_hash_raw();
            save_cache(scan, cache_path, *began, &hash)?;
            Ok((hash, changes_since_head(vault, head, scan, &hash)))
        }
        _ => finish_scan(vault, head, scan, cache_path, *began),
    }
}

/// The new checkpoint's fields: the shell and format asked for (else the
/// settings' shell, else the head's), and the config this seal ran with.
fn draft(
    vault: &Vault,
    cred: &Credential,
    opts: &SealOptions,
    head: Option<&StoredCheckpoint>,
    manifest: &Manifest,
    soul_hex: &str,
    log: String,
) -> Result<Draft> {
    let shell = opts
        .shell
        .clone()
        .or_else(|| vault.settings().shell.clone())
        .or_else(|| head.map(|h| h.ckpt.shell.clone()))
        .unwrap_or_else(|| UNKNOWN_SHELL.into());
    let format = opts
        .format
        .clone()
        .or_else(|| head.map(|h| h.ckpt.format.clone()))
        .unwrap_or_else(|| DEFAULT_FORMAT.into());
    // Bind the config this seal ran with (soul path, excludes, policies):
    // wake calls a later change `tampered` (`config-changed`) until a seal
    // adopts it. The bytes are kept as an object so the owner can put them
    // back.
    let config_hash = crate::crypto::sha256(vault.config_bytes());
    vault
        .objects()
        .put_loose(&config_hash, vault.config_bytes())?;
    let mut extra = vec![(CONFIG.to_owned(), hex::encode(config_hash))];
    extra.extend(opts.extra.iter().cloned());
    Ok(Draft {
        header: Header {
            seq: head.map_or(1, |h| h.ckpt.seq + 1),
            prev: head.map_or(String::new(), |h| h.file_hash.clone()),
            soul: soul_hex.to_owned(),
            files: manifest.files(),
            bytes: manifest.bytes(),
            sealed_at: rfc3339(vault.now()),
            reason: opts.reason.as_str().to_owned(),
            shell,
            format,
            log,
            platform: cred.platform().as_str().to_owned(),
            bot_id: cred.account_id(),
        },
        extra,
    })
}

/// Writes the signed checkpoint, HEAD and the `seal` event, and moves the
/// awake marker: off at rest, onto the new head while the agent runs
/// (`awake` is the head its valid marker names).
fn write(
    vault: &Vault,
    keys: &Keys,
    opts: &SealOptions,
    awake: Option<&StoredCheckpoint>,
    ckpt: Checkpoint,
    changes: &Changes,
    guarded: &Guarded,
) -> Result<StoredCheckpoint> {
    if let Some(h) = awake.filter(|_| opts.reason != Reason::Rest) {
        // The agent is awake: let its marker vouch for the checkpoint about
        // to be written too, before it exists, so that dying right after
        // writing it still reads as a crash (drifted), not as tampering.
        let next = crate::crypto::sha256_hex(&ckpt.to_bytes());
        vault.write_marker_ahead(keys, h, (ckpt.seq, &next))?;
    }
    let file_hash = vault.write_checkpoint(&ckpt)?;
    vault.failpoint("seal-after-checkpoint");
    vault.write_head(ckpt.seq)?;
    vault.failpoint("seal-after-head");

    let mut data = Map::new();
    data.insert("seq".into(), ckpt.seq.into());
    data.insert("reason".into(), opts.reason.as_str().into());
    data.insert("soul".into(), ckpt.soul.clone().into());
    data.insert("files".into(), ckpt.files.into());
    data.insert("bytes".into(), ckpt.bytes.into());
    data.insert("shell".into(), ckpt.shell.clone().into());
    data.insert("format".into(), ckpt.format.clone().into());
    data.insert("changes".into(), changes.summarize().to_value());
    if !guarded.unapproved.is_empty() {
        data.insert("unapproved".into(), guarded.unapproved.clone().into());
    }
    if !guarded.approved.is_empty() {
        data.insert("approved".into(), guarded.approved.clone().into());
    }
    vault.history_for(keys).append("seal", data)?;

    let stored = StoredCheckpoint { ckpt, file_hash };
    if opts.reason == Reason::Rest {
        vault.remove_marker()?;
    } else if awake.is_some() {
        // The agent is still awake: move its marker to the new head, or a
        // crash now would look like tampering.
        vault.write_marker(keys, &stored)?;
    }
    Ok(stored)
}

/// The rest of a seal's reading and writing after the scan, side by side
/// since it is independent: the stat cache (the objects are durable, so it
/// may vouch for them now), the manifest object, and the change summary
/// against the head's manifest. Returns the soul hash and the changes.
fn finish_scan(
    vault: &Vault,
    head: Option<&StoredCheckpoint>,
    scan: &soul::Scan,
    cache_path: &std::path::Path,
    scan_began: Stamp,
) -> Result<([u8; 32], Changes)> {
    let fp = &scan.fingerprint;
    let objects = vault.objects().deferred()?;
    std::thread::scope(|threads| {
        // The manifest is built and hashed here a chunk at a time, never
        // whole in memory; another thread writes each chunk to the new
        // object, flushing to disk as it goes so that little is left for
        // the final flush.
        let (chunks, chunks_rx) = mpsc::sync_channel::<Vec<u8>>(4);
        let (hash_tx, hash_rx) = mpsc::sync_channel::<[u8; 32]>(1);
        let stored = threads.spawn(move || -> Result<()> {
            let mut writer = objects.writer()?;
            let flusher = writer.flusher();
            let (flush, flush_rx) = mpsc::sync_channel::<()>(1);
            // Errors here are the final flush's to report.
            threads.spawn(move || {
                flush_rx.iter().for_each(|()| {
                    if let Some(f) = &flusher {
                        f()
                    }
                })
            });
            let mut unflushed = 0;
            for chunk in chunks_rx {
                writer.write(&chunk)?;
                unflushed += chunk.len();
                if unflushed >= FLUSH_BEHIND {
                    // Skipped when the last flush is still running.
                    let _ = flush.try_send(());
                    unflushed = 0;
                }
            }
            drop(flush);
            match hash_rx.recv() {
                Ok(hash) => {
                    writer.finish(&hash)?;
                    objects.sync()
                }
                // The builder stopped early: the object is abandoned.
                Err(_) => Ok(()),
            }
        });
        let mut hasher = sha2::Sha256::new();
        let mut written = 0u64;
        // A send fails only when the writer stopped (`Some`); its join says
        // why. `None`: the manifest is too large to be read back.
        let sent = fp.manifest.write_chunks(|chunk| {
            written += chunk.len() as u64;
            if written > MAX_WHOLE {
                return Err(None);
            }
            hasher.update(chunk);
            chunks.send(chunk.to_vec()).map_err(Some)
        });
        drop(chunks);
        let hash: [u8; 32] = hasher.finalize().into();
        if sent.is_ok() {
            let _ = hash_tx.send(hash);
        }
        drop(hash_tx);
        // The stat cache vouches for the manifest object only once it is
        // durable (and never for one whose writing failed).
        joined(stored)?;
        if matches!(sent, Err(None)) {
            return Err(too_large(&fp.manifest));
        }
        // Where it went, for the next seal's look that it is still there.
        vault.objects().leave_hint(&hash);
        save_cache(scan, cache_path, scan_began, &hash)?;
        Ok((hash, changes_since_head(vault, head, scan, &hash)))
    })
}

/// A soul whose manifest would pass [`MAX_WHOLE`].
fn too_large(manifest: &Manifest) -> Error {
    Error::SoulTooLarge {
        files: manifest.files() as usize,
        cap: MAX_WHOLE,
    }
}

/// What changed from `head` to the scan, whose manifest hashes to `hash`.
fn changes_since_head(
    vault: &Vault,
    head: Option<&StoredCheckpoint>,
    scan: &soul::Scan,
    hash: &[u8; 32],
) -> Changes {
    let fp = &scan.fingerprint;
    match (head, &scan.cache) {
        (None, _) => soul::changes(&Manifest::default(), &fp.manifest),
        (Some(h), _) if h.ckpt.soul == hex::encode(hash) => Changes::default(),
        // The cache records the head's manifest: the scan's comparison
        // with it already says what changed.
        (Some(h), Some((cache, cmp))) if h.ckpt.soul == hex::encode(cache.manifest()) => {
            soul::changes::changes_since(cmp, &fp.manifest, cache.version().has_modes())
        }
        (Some(h), _) => match manifest_of(vault, h) {
            Ok(old) => soul::changes(&old, &fp.manifest),
            // An unreadable head manifest is wake's and verify's to report.
            Err(_) => Changes::default(),
        },
    }
}

/// Records `scan` in the stat cache, with `manifest` (durable by now) as
/// its manifest, unless the cache records exactly that scan already.
fn save_cache(
    scan: &soul::Scan,
    cache_path: &std::path::Path,
    scan_began: Stamp,
    manifest: &[u8; 32],
) -> Result<()> {
    if scan.cache_current {
        return Ok(());
    }
    let records = scan
        .fingerprint
        .manifest
        .entries
        .iter()
        .zip(&scan.stats)
        .map(|(e, s)| Record {
            kind: e.kind,
            path: &e.path,
            hash: e.hash,
            stat: s.unwrap_or_default(),
        });
    let manifest = (manifest, scan.fingerprint.manifest.version);
    match &scan.cache {
        Some((cache, cmp)) => cache.update(cache_path, scan_began, cmp, records, manifest),
        None => StatCache::save(cache_path, scan_began, records, manifest),
    }
}

/// How many bytes of a new manifest are written before they are flushed.
const FLUSH_BEHIND: usize = 1 << 20;

/// A scoped thread's result; its panic goes on in the caller.
pub(crate) fn joined<T>(thread: std::thread::ScopedJoinHandle<'_, T>) -> T {
    thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
