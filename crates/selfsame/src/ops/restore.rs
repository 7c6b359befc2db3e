//! Restore: put a checkpoint's soul back.
//!
//! The checkpoint is materialized into `<soul>/.selfsame-restore/new` (same
//! filesystem as the soul), every object re-hashed as it is written. Then
//! the soul's *entries* are swapped — moved out to `…/old`, the new ones
//! moved in — so a soul that is a mount point works too. The old entries go
//! to `quarantine/` whole; nothing is deleted. Each phase is recorded in
//! `run/restore.journal` first, so a crash at any point is finished by the
//! next `wake` or `restore --resume`.
//!
//! A migration uses the same swap and journal (event `migrate`): it stages
//! the head, lets the migration rewrite the staging dir, then hands the
//! journal to [`run`] at the swap. See [`super::migrate`].

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use selfsame_telegram::{BotToken, SecretKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::seal::{current_head, manifest_of, seal_core, SealOptions};
use crate::clock;
use crate::crypto::checkpoint_key;
use crate::error::{Error, IoContext, Result};
use crate::failpoint;
use crate::format::checkpoint::Reason;
use crate::format::{Kind, Manifest};
use crate::progress::{Phase as ProgressPhase, Progress};
use crate::vault::{atomic, Objects, Stored, Vault};

/// The work directory inside the soul.
pub const WORK: &str = ".selfsame-restore";
const JOURNAL: &str = "restore.journal";

/// Which checkpoint to restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A checkpoint by seq.
    Seq(u64),
    /// The newest checkpoint.
    Head,
    /// The newest checkpoint marked good by a healthy run (history event
    /// `good`), else the newest checkpoint.
    LastGood,
}

impl Target {
    /// Parses `N`, `head` or `last-good`.
    pub fn parse(text: &str) -> Result<Target> {
        match text {
            "last-good" => Ok(Target::LastGood),
            "head" | "HEAD" => Ok(Target::Head),
            n => n.parse().map(Target::Seq).map_err(|_| {
                Error::Usage(format!(
                    "{n:?} is not a checkpoint: give a seq, `head` or `last-good`"
                ))
            }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Phase {
    Stage,
    SwapOut,
    SwapIn,
    Quarantine,
    Seal,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Journal {
    pub(crate) target: u64,
    pub(crate) soul: String,
    pub(crate) event: String,
    pub(crate) phase: Phase,
    pub(crate) quarantine: String,
    pub(crate) head_before: u64,
    pub(crate) started: String,
    /// A migration's new soul format (event `migrate` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) format: Option<String>,
    /// Extra fields for the history event (a migration's tags, duration
    /// and change summary).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub(crate) data: Map<String, Value>,
}

/// The journal event of a migration.
pub(crate) const MIGRATE: &str = "migrate";

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// The checkpoint restored.
    pub target: u64,
    /// The `restore` checkpoint sealed afterwards.
    pub seq: u64,
    /// Where the previous soul went, relative to the vault.
    pub quarantine: String,
    /// Files and symlinks restored.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Whether this finished an interrupted restore.
    pub resumed: bool,
    /// `restore`, `rollback` or `migrate`.
    pub event: String,
    /// Whether an interrupted migration was undone (the soul was never
    /// touched; its staging dir went to quarantine) instead of finished.
    pub undone: bool,
}

fn journal_path(vault: &Vault) -> PathBuf {
    vault.run_dir().join(JOURNAL)
}

pub(crate) fn write_journal(vault: &Vault, j: &Journal) -> Result<()> {
    let text = serde_json::to_string_pretty(j).expect("journal serializes");
    atomic::write_replace(&journal_path(vault), text.as_bytes())
}

pub(crate) fn remove_journal(vault: &Vault) -> Result<()> {
    let path = journal_path(vault);
    fs::remove_file(&path).at(&path)?;
    atomic::sync_dir(&vault.run_dir())
}

fn read_journal(vault: &Vault) -> Result<Option<Journal>> {
    let path = journal_path(vault);
    match fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::Corrupt(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).at(&path),
    }
}

/// Describes an interrupted restore, if one is pending.
pub fn pending(vault: &Vault) -> Result<Option<String>> {
    Ok(read_journal(vault)?.map(|j| {
        format!(
            "{} to checkpoint {}, phase {:?}",
            j.event, j.target, j.phase
        )
    }))
}

/// The newest checkpoint marked good by a healthy run, else the head.
pub fn last_good(vault: &Vault, key: &SecretKey, head: &Stored) -> Result<Stored> {
    let history = vault.history().read_all()?;
    let mut marked: Vec<u64> = history
        .lines
        .iter()
        .filter(|l| l.event.event == "good")
        .filter_map(|l| l.event.get_u64("seq"))
        .filter(|&s| s <= head.ckpt.seq)
        .collect();
    marked.sort_unstable();
    for seq in marked.into_iter().rev() {
        if let Ok(s) = vault.read_checkpoint(seq) {
            if s.ckpt.verify(key) && manifest_of(vault, &s).is_ok() {
                return Ok(s);
            }
        }
    }
    Ok(head.clone())
}

/// Restores `target`, taking the vault lock. `event` is `restore` or
/// `rollback` (the history event written).
pub fn restore(
    vault: &Vault,
    token: &BotToken,
    target: Target,
    progress: &dyn Progress,
) -> Result<RestoreReport> {
    let _lock = vault.lock()?;
    if let Some(j) = pending(vault)? {
        return Err(Error::RestorePending(j));
    }
    restore_locked(vault, token, target, "restore", progress)
}

/// Restore with the vault lock held.
pub fn restore_locked(
    vault: &Vault,
    token: &BotToken,
    target: Target,
    event: &str,
    progress: &dyn Progress,
) -> Result<RestoreReport> {
    let key = checkpoint_key(token);
    let head =
        current_head(vault, &key, token)?.ok_or_else(|| Error::NoSuchCheckpoint("head".into()))?;
    let stored = match target {
        Target::Head => head.clone(),
        Target::LastGood => last_good(vault, &key, &head)?,
        Target::Seq(n) => {
            let s = vault.read_checkpoint(n)?;
            if !super::inspect::trusted(vault, &key, &s)? {
                return Err(Error::Corrupt(format!(
                    "checkpoint {n} does not verify; it cannot be restored"
                )));
            }
            s
        }
    };
    let manifest = manifest_of(vault, &stored)?;
    clear_work(vault)?;
    let quarantine = format!(
        "{}-{}-from-{}",
        clock::rfc3339(clock::now()).replace([':', '.'], ""),
        event,
        head.ckpt.seq
    );
    let mut j = Journal {
        target: stored.ckpt.seq,
        soul: stored.ckpt.soul.clone(),
        event: event.to_owned(),
        phase: Phase::Stage,
        quarantine,
        head_before: head.ckpt.seq,
        started: clock::rfc3339(clock::now()),
        format: None,
        data: Map::new(),
    };
    write_journal(vault, &j)?;
    run(vault, token, &mut j, Some(manifest), progress, false)
}

/// Finishes an interrupted restore, if any, with the vault lock held.
pub fn resume_locked(
    vault: &Vault,
    token: &BotToken,
    progress: &dyn Progress,
) -> Result<Option<RestoreReport>> {
    let Some(mut j) = read_journal(vault)? else {
        return Ok(None);
    };
    run(vault, token, &mut j, None, progress, true).map(Some)
}

/// Finishes an interrupted restore, taking the vault lock.
pub fn resume(
    vault: &Vault,
    token: &BotToken,
    progress: &dyn Progress,
) -> Result<Option<RestoreReport>> {
    let _lock = vault.lock()?;
    resume_locked(vault, token, progress)
}

pub(crate) fn run(
    vault: &Vault,
    token: &BotToken,
    j: &mut Journal,
    manifest: Option<Manifest>,
    progress: &dyn Progress,
    resumed: bool,
) -> Result<RestoreReport> {
    let key = checkpoint_key(token);
    let soul = vault.soul();
    let work = soul.join(WORK);
    let new = work.join("new");
    let old = work.join("old");
    let migrating = j.event == MIGRATE;
    if migrating && j.phase == Phase::Stage {
        // The migration had not finished: the soul was never touched.
        return super::migrate::abandon(vault, j);
    }
    let target = vault.read_checkpoint(j.target)?;
    if !migrating && !super::inspect::trusted(vault, &key, &target)? {
        return Err(Error::Corrupt(format!(
            "checkpoint {} does not verify; it cannot be restored",
            j.target
        )));
    }
    let manifest = match manifest {
        Some(m) => m,
        None if migrating => super::migrate::manifest_by_hash(vault, &j.soul)?,
        None => manifest_of(vault, &target)?,
    };
    let keep = top_level_keep(vault);

    if j.phase == Phase::Stage {
        if fs::symlink_metadata(&new).is_ok() {
            // A partial staging area of our own making, from objects.
            fs::remove_dir_all(&new).at(&new)?;
        }
        atomic::create_dir_all(&work)?;
        if let Err(e) = stage(&vault.objects(), &manifest, &new, progress) {
            // Refused (a corrupt object, say) before the soul was touched:
            // drop our partial staging dir and the journal, so the refusal
            // leaves the soul as it was and blocks no later wake or seal.
            let _ = fs::remove_dir_all(&new);
            let _ = fs::remove_dir(&work);
            fs::remove_file(journal_path(vault)).at(&journal_path(vault))?;
            atomic::sync_dir(&vault.run_dir())?;
            return Err(e);
        }
        failpoint::hit("restore-after-stage");
        j.phase = Phase::SwapOut;
        write_journal(vault, j)?;
    }
    if j.phase == Phase::SwapOut {
        atomic::create_dir_all(&old)?;
        for name in entries(&soul)? {
            if name == WORK || keep.iter().any(|k| k == &name) {
                continue;
            }
            fs::rename(soul.join(&name), old.join(&name)).at(&soul.join(&name))?;
            failpoint::hit(if migrating {
                "migrate-mid-swap"
            } else {
                "restore-mid-swap"
            });
        }
        atomic::sync_dir(&old)?;
        atomic::sync_dir(&soul)?;
        j.phase = Phase::SwapIn;
        write_journal(vault, j)?;
    }
    if j.phase == Phase::SwapIn {
        for name in entries(&new)? {
            fs::rename(new.join(&name), soul.join(&name)).at(&soul.join(&name))?;
            if migrating {
                failpoint::hit("migrate-mid-swap-in");
            }
        }
        atomic::sync_dir(&soul)?;
        atomic::sync_dir(&new)?;
        j.phase = Phase::Quarantine;
        write_journal(vault, j)?;
    }
    if j.phase == Phase::Quarantine {
        atomic::create_dir_all(&vault.quarantine_dir())?;
        let dest = vault.quarantine_dir().join(&j.quarantine);
        if fs::symlink_metadata(&old).is_ok() {
            move_tree(&old, &dest)?;
        }
        if new.exists() {
            fs::remove_dir(&new).at(&new)?;
        }
        if work.exists() {
            fs::remove_dir(&work).at(&work)?;
        }
        atomic::sync_dir(&soul)?;
        j.phase = Phase::Seal;
        write_journal(vault, j)?;
    }
    // Phase::Seal
    let newest = vault.checkpoint_seqs()?.last().copied().unwrap_or(0);
    let seq = if newest > j.head_before {
        newest
    } else {
        // The soul is the target's, so is its format (a restore across a
        // migration brings the older format back).
        let mut so = SealOptions::new(if migrating {
            Reason::Migrate
        } else {
            Reason::Restore
        });
        so.format = Some(j.format.clone().unwrap_or(target.ckpt.format.clone()));
        let report = seal_core(vault, token, &so, progress)?;
        if report.soul != j.soul {
            return Err(Error::Corrupt(format!(
                "the restored soul does not match checkpoint {} (something wrote to the soul during the restore?)",
                j.target
            )));
        }
        report.seq
    };
    let mut data = Map::new();
    if migrating {
        data.extend(j.data.clone());
    } else {
        data.insert("target".into(), j.target.into());
        data.insert("from".into(), j.head_before.into());
    }
    data.insert("seq".into(), seq.into());
    data.insert(
        "quarantine".into(),
        format!("quarantine/{}", j.quarantine).into(),
    );
    if resumed {
        data.insert("resumed".into(), true.into());
    }
    vault.history().append(&j.event, data)?;
    remove_journal(vault)?;
    Ok(RestoreReport {
        target: j.target,
        seq,
        quarantine: format!("quarantine/{}", j.quarantine),
        files: manifest.files(),
        bytes: manifest.bytes(),
        resumed,
        event: j.event.clone(),
        undone: false,
    })
}

/// Moves a work dir left over from something else out of the soul, into
/// quarantine (nothing is deleted).
pub(crate) fn clear_work(vault: &Vault) -> Result<()> {
    let work = vault.soul().join(WORK);
    if fs::symlink_metadata(&work).is_ok() {
        let dest = unique(&vault.quarantine_dir(), "leftover-restore-dir");
        move_tree(&work, &dest)?;
    }
    Ok(())
}

/// Top-level names in the soul that a restore leaves in place: the vault
/// (when inside the soul) and excluded entries.
pub(crate) fn top_level_keep(vault: &Vault) -> Vec<String> {
    let mut keep = Vec::new();
    let soul = vault.soul();
    let soul_real = fs::canonicalize(&soul).unwrap_or(soul.clone());
    if let Ok(rel) = vault.dir().strip_prefix(&soul_real) {
        if let Some(first) = rel.components().next() {
            keep.push(first.as_os_str().to_string_lossy().into_owned());
        }
    }
    if let (Ok(ex), Ok(names)) = (vault.excludes(), entries(&soul)) {
        keep.extend(names.into_iter().filter(|n| ex.matches(n)));
    }
    keep
}

pub(crate) fn entries(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for item in fs::read_dir(dir).at(dir)? {
        names.push(item.at(dir)?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// Writes a manifest's tree under `dest` (created new), from objects,
/// re-hashing every byte. Paths are checked as [`Manifest::parse`] does:
/// they are relative, have no `..`, and every parent is a directory entry
/// that this function created itself, so no write can leave `dest`.
pub fn stage(
    objects: &Objects,
    manifest: &Manifest,
    dest: &Path,
    progress: &dyn Progress,
) -> Result<()> {
    // A manifest built in memory never went through `parse`: check it the
    // same way (relative paths, no `..`, sorted, parents listed as dirs).
    if Manifest::parse(&manifest.to_bytes()).ok().as_ref() != Some(manifest) {
        return Err(Error::Corrupt(
            "restore: the manifest has unsafe or malformed paths".into(),
        ));
    }
    fs::create_dir(dest).at(dest)?;
    progress.start(ProgressPhase::Restore, manifest.files(), manifest.bytes());
    let dirs: Vec<_> = manifest
        .entries
        .iter()
        .filter(|e| e.kind == Kind::Dir)
        .collect();
    for d in &dirs {
        let p = dest.join(&d.path);
        fs::create_dir(&p).at(&p)?;
    }
    manifest
        .entries
        .par_iter()
        .filter(|e| e.kind != Kind::Dir)
        .try_for_each(|e| -> Result<()> {
            let p = dest.join(&e.path);
            let parent = p.parent().expect("entries are below dest");
            let meta = fs::symlink_metadata(parent).at(parent)?;
            if !meta.is_dir() {
                return Err(Error::Corrupt(format!(
                    "restore: parent of {} is not a directory",
                    e.path
                )));
            }
            match e.kind {
                Kind::Symlink => {
                    let target = objects.read(&e.hash)?;
                    std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target), &p).at(&p)?;
                    progress.advance(e.size);
                }
                Kind::File | Kind::Exec => {
                    let n = objects.copy_to(&e.hash, &p, &|n| progress.advance(n))?;
                    if n != e.size {
                        return Err(Error::Corrupt(format!(
                            "object for {} has the wrong size",
                            e.path
                        )));
                    }
                    let mode = if e.kind == Kind::Exec { 0o755 } else { 0o644 };
                    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).at(&p)?;
                }
                Kind::Dir => unreachable!("filtered out"),
            }
            Ok(())
        })?;
    for d in dirs.iter().rev() {
        atomic::sync_dir(&dest.join(&d.path))?;
    }
    atomic::sync_dir(dest)?;
    progress.finish();
    Ok(())
}

/// A fresh path under `dir` named `stem` (with a counter if taken).
pub(crate) fn unique(dir: &Path, stem: &str) -> PathBuf {
    let base = format!(
        "{}-{}",
        clock::rfc3339(clock::now()).replace([':', '.'], ""),
        stem
    );
    let mut p = dir.join(&base);
    let mut n = 1;
    while fs::symlink_metadata(&p).is_ok() {
        n += 1;
        p = dir.join(format!("{base}-{n}"));
    }
    p
}

/// Moves a tree, across filesystems if need be (copy, fsync, then remove
/// the source). The destination must not exist.
pub fn move_tree(src: &Path, dest: &Path) -> Result<()> {
    if let Some(parent) = dest.parent() {
        atomic::create_dir_all(parent)?;
    }
    match fs::rename(src, dest) {
        Ok(()) => {
            if let Some(parent) = dest.parent() {
                atomic::sync_dir(parent)?;
            }
            Ok(())
        }
        Err(e) if e.raw_os_error() == Some(18) => {
            // EXDEV: copy into a partial name, then rename, then remove.
            let partial = dest.with_extension("partial");
            if fs::symlink_metadata(&partial).is_ok() {
                fs::remove_dir_all(&partial).at(&partial)?;
            }
            copy_tree(src, &partial)?;
            fs::rename(&partial, dest).at(dest)?;
            atomic::sync_dir(dest.parent().unwrap_or(Path::new("/")))?;
            fs::remove_dir_all(src).at(src)
        }
        Err(e) => Err(e).at(src),
    }
}

fn copy_tree(src: &Path, dest: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(src).at(src)?;
    if meta.is_dir() {
        fs::create_dir(dest).at(dest)?;
        for item in fs::read_dir(src).at(src)? {
            let item = item.at(src)?;
            copy_tree(&item.path(), &dest.join(item.file_name()))?;
        }
        fs::set_permissions(dest, meta.permissions()).at(dest)?;
        atomic::sync_dir(dest)
    } else if meta.file_type().is_symlink() {
        let t = fs::read_link(src).at(src)?;
        std::os::unix::fs::symlink(t, dest).at(dest)
    } else {
        fs::copy(src, dest).at(dest)?;
        fs::File::open(dest).and_then(|f| f.sync_all()).at(dest)
    }
}
