//! The swap engine: from the phase a journal records to the end, each
//! phase written to the journal before it starts (see [`super`]).

use std::fs;

use crate::crypto::Credential;
use serde::Serialize;
use serde_json::{Map, Value};

use super::tree::{
    clear_work, entries, give_below, move_tree, rename_no_replace, soul_owner, stage,
    top_level_keep, unique,
};
use super::workdir::{self, Want, WorkDirs};
use crate::crypto::Keys;
use crate::error::{Damage, Error, IoContext, Result, Then};
use crate::format::checkpoint::Reason;
use crate::format::journal::{DirId, Journal, SwapPhase, MIGRATE, WORK_DIR};
use crate::format::manifest::Version as ManifestVersion;
use crate::format::Manifest;
use crate::ops::head::{manifest_by_hash, manifest_of, trusted};
use crate::ops::seal::{seal_expecting, SealOptions};
use crate::progress::Progress;
use crate::vault::{atomic, StoredCheckpoint, Vault};

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
    /// Whether this undid an interrupted operation (`restore --abort`):
    /// the soul is back as it was before it began, nothing was sealed.
    pub aborted: bool,
    /// Where a `config.toml` that differed from the sealed config went,
    /// relative to the vault (the sealed one was written back).
    pub quarantine_config: Option<String>,
}

/// After an error writing the first journal: the empty work dir goes
/// again, unless the journal made it to its name (its directory's fsync
/// failed, say), which then records it and may be acted on.
pub(crate) fn drop_work_unless_journaled(vault: &Vault, dirs: &WorkDirs) {
    if fs::symlink_metadata(vault.journal_path()).is_err() {
        let _ = fs::remove_dir(&dirs.work);
    }
}

/// Checks the work dirs before the forward phase `j.phase` goes on, and
/// says which of [work, new, old] are present. In phase `seal` nothing in
/// them is touched any more: not looked at.
pub(crate) fn forward_check(vault: &Vault, j: &Journal, dirs: &WorkDirs) -> Result<[bool; 3]> {
    use Want::{MaybeAbsent, Present};
    let made = |id: Option<DirId>| if id.is_some() { Present } else { MaybeAbsent };
    let wants = match j.phase {
        // A journal of an older version was written before its work dir.
        SwapPhase::Stage => [made(j.work_dir), MaybeAbsent, MaybeAbsent],
        SwapPhase::SwapOut | SwapPhase::SwapIn => [Present, Present, made(j.old_dir)],
        SwapPhase::Quarantine => [MaybeAbsent; 3],
        SwapPhase::Seal => return Ok([false; 3]),
    };
    dirs.check(vault, j, wants)
}

/// Runs the journaled swap from the phase `j` records to the end. `vault`
/// acts on the journal's config.
pub(crate) fn finish(
    vault: &Vault,
    cred: &Credential,
    j: &mut Journal,
    manifest: Option<Manifest>,
    progress: &dyn Progress,
    resumed: bool,
) -> Result<RestoreReport> {
    let swap = Swap {
        vault,
        keys: Keys::of(cred),
        dirs: WorkDirs::of(&vault.soul()),
        migrating: j.migrating(),
    };
    // Before anything moves: the quarantine must be inside the vault, and
    // every work dir the one this operation made.
    vault.quarantine()?;
    let found = forward_check(vault, j, &swap.dirs)?;
    if swap.migrating && j.phase == SwapPhase::Stage {
        // The migration had not finished: the soul was never touched.
        return abandon(vault, cred, j);
    }
    swap.adopt(j, found)?;
    let (target, manifest) = swap.target(j, manifest)?;
    // A soul that cannot be listed is refused here, before anything moves.
    let keep = top_level_keep(vault)?;
    if j.phase == SwapPhase::Stage {
        swap.stage(j, found, &manifest, progress)?;
    }
    if j.phase == SwapPhase::SwapOut {
        swap.swap_out(j, &keep)?;
    }
    if j.phase == SwapPhase::SwapIn {
        swap.swap_in(j)?;
    }
    if j.phase == SwapPhase::Quarantine {
        swap.quarantine(j)?;
    }
    let seq = swap.seal(cred, j, &target, &manifest, progress)?;
    swap.log(j, seq, resumed)?;
    Ok(RestoreReport {
        target: j.target,
        seq,
        quarantine: format!("quarantine/{}", j.quarantine),
        files: manifest.files(),
        bytes: manifest.bytes(),
        resumed,
        event: j.event.clone(),
        undone: false,
        aborted: false,
        quarantine_config: j
            .data
            .get("quarantine_config")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// One swap under way: its vault, keys and work dirs. Each phase writes
/// the journal for the next one before the next one starts.
struct Swap<'a> {
    vault: &'a Vault,
    keys: Keys,
    dirs: WorkDirs,
    migrating: bool,
}

impl Swap<'_> {
    /// A journal of an older version recorded no work dir: from here on the
    /// ones found (real directories on the soul's filesystem) are held to
    /// what they are now. Written with the next phase.
    fn adopt(&self, j: &mut Journal, [has_work, has_new, has_old]: [bool; 3]) -> Result<()> {
        let WorkDirs { work, new, old, .. } = &self.dirs;
        if has_work && j.work_dir.is_none() {
            j.work_dir = Some(workdir::id_of(work)?);
        }
        if j.phase != SwapPhase::Stage {
            if has_new && j.new_dir.is_none() {
                j.new_dir = Some(workdir::id_of(new)?);
            }
            if has_old && j.old_dir.is_none() {
                j.old_dir = Some(workdir::id_of(old)?);
            }
        }
        Ok(())
    }

    /// The target checkpoint, trusted (a restore's) and naming the soul
    /// the journal names, and the manifest the swap brings in.
    fn target(
        &self,
        j: &Journal,
        manifest: Option<Manifest>,
    ) -> Result<(StoredCheckpoint, Manifest)> {
        let vault = self.vault;
        let target = vault.read_checkpoint(j.target)?;
        if !self.migrating && !trusted(vault, &self.keys, &target)? {
            return Err(Error::corrupt(
                &vault.checkpoint_path(j.target),
                Damage::NotTrusted(j.target),
            ));
        }
        if !self.migrating && target.ckpt.soul != j.soul {
            return Err(Error::corrupt(
                &vault.journal_path(),
                Damage::JournalNamesOtherSoul(j.target),
            ));
        }
        let manifest = match manifest {
            Some(m) => m,
            None if self.migrating => manifest_by_hash(vault, &j.soul)?,
            None => manifest_of(vault, &target)?,
        };
        Ok((target, manifest))
    }

    /// Phase `stage`: the manifest's tree into `new/`, from objects.
    fn stage(
        &self,
        j: &mut Journal,
        [has_work, has_new, has_old]: [bool; 3],
        manifest: &Manifest,
        progress: &dyn Progress,
    ) -> Result<()> {
        let (vault, WorkDirs { work, new, old, .. }) = (self.vault, &self.dirs);
        if !has_work {
            // A journal of an older version, written before its work dir.
            j.work_dir = Some(workdir::make(work)?);
            vault.write_journal(&self.keys, j)?;
        }
        if has_new {
            // A partial staging area of our own making, from objects.
            fs::remove_dir_all(new).at(new)?;
        }
        if has_old {
            // Made just before a crash; the swap had not begun.
            fs::remove_dir(old).at(old)?;
        }
        if let Err(e) = stage(&vault.objects(), manifest, new, progress) {
            // Refused (a corrupt object, say) before the soul was touched:
            // drop our partial staging dir and the journal, so the refusal
            // leaves the soul as it was and blocks no later wake or seal.
            let _ = fs::remove_dir_all(new);
            let _ = fs::remove_dir(work);
            vault.remove_journal()?;
            return Err(e);
        }
        // The soul's files are its owner's, not the restorer's.
        if let Some(owner) = soul_owner(&vault.soul())? {
            give_below(new, owner)?;
        }
        vault.failpoint("restore-after-stage");
        j.new_dir = Some(workdir::id_of(new)?);
        j.old_dir = Some(workdir::make(old)?);
        self.next(j, SwapPhase::SwapOut)
    }

    /// Phase `swap-out`: the soul's entries into `old/`, but the vault, the
    /// work dir and the excluded ones.
    fn swap_out(&self, j: &mut Journal, keep: &[std::ffi::OsString]) -> Result<()> {
        let (vault, WorkDirs { soul, old, .. }) = (self.vault, &self.dirs);
        if j.old_dir.is_none() {
            // A journal of an older version makes `old/` in this phase.
            j.old_dir = Some(workdir::make(old)?);
            vault.write_journal(&self.keys, j)?;
        }
        for name in entries(soul)? {
            if name == WORK_DIR || keep.contains(&name) {
                continue;
            }
            fs::rename(soul.join(&name), old.join(&name)).at(&soul.join(&name))?;
            vault.failpoint(if self.migrating {
                "migrate-mid-swap"
            } else {
                "restore-mid-swap"
            });
        }
        atomic::sync_dir(old)?;
        atomic::sync_dir(soul)?;
        self.next(j, SwapPhase::SwapIn)
    }

    /// Phase `swap-in`: `new/`'s entries into the soul, never replacing
    /// anything.
    fn swap_in(&self, j: &mut Journal) -> Result<()> {
        let (vault, WorkDirs { soul, new, .. }) = (self.vault, &self.dirs);
        for name in entries(new)? {
            rename_no_replace(&new.join(&name), &soul.join(&name), Then::Resume)?;
            vault.failpoint(if self.migrating {
                "migrate-mid-swap-in"
            } else {
                "restore-mid-swap-in"
            });
        }
        atomic::sync_dir(soul)?;
        atomic::sync_dir(new)?;
        self.next(j, SwapPhase::Quarantine)
    }

    /// Phase `quarantine`: `old/` to `quarantine/<name>`, the work dirs
    /// removed.
    fn quarantine(&self, j: &mut Journal) -> Result<()> {
        let (
            vault,
            WorkDirs {
                soul,
                work,
                new,
                old,
            },
        ) = (self.vault, &self.dirs);
        let dest = vault.quarantine()?.join(&j.quarantine);
        // Checked above, or made by this run.
        if fs::symlink_metadata(old).is_ok() {
            move_tree(old, &dest)?;
        }
        vault.failpoint("restore-mid-quarantine");
        if fs::symlink_metadata(new).is_ok() {
            fs::remove_dir(new).at(new)?;
        }
        if fs::symlink_metadata(work).is_ok() {
            fs::remove_dir(work).at(work)?;
        }
        atomic::sync_dir(soul)?;
        self.next(j, SwapPhase::Seal)?;
        vault.failpoint("restore-before-seal");
        Ok(())
    }

    /// Phase `seal`: the soul, now the target's, sealed (once: a seal that
    /// got written before a crash is not written again). Returns its seq.
    fn seal(
        &self,
        cred: &Credential,
        j: &Journal,
        target: &StoredCheckpoint,
        manifest: &Manifest,
        progress: &dyn Progress,
    ) -> Result<u64> {
        let vault = self.vault;
        let newest = vault.checkpoint_seqs()?.last().copied().unwrap_or(0);
        if newest > j.head_before {
            return Ok(newest);
        }
        // The soul is the target's, so is its format (a restore across a
        // migration brings the older format back).
        let mut so = SealOptions::new(if self.migrating {
            Reason::Migrate
        } else {
            Reason::Restore
        });
        so.format = Some(j.format.clone().unwrap_or(target.ckpt.format.clone()));
        let report = seal_expecting(vault, cred, &so, progress, Some(manifest))?;
        // A seal writes the newest manifest version; the soul is the
        // target's when it lists the same in the target's version.
        let same = report.soul == j.soul
            || (manifest.version != ManifestVersion::NEWEST
                && manifest_by_hash(vault, &report.soul)?.soul_hash_as(manifest.version)
                    == manifest.soul_hash_raw()
                && manifest.soul_hash() == j.soul);
        if !same {
            return Err(Error::corrupt(
                &self.dirs.soul,
                Damage::RestoredSoulDiffers(j.target),
            ));
        }
        Ok(report.seq)
    }

    /// The event in history, then the journal removed: the swap is over.
    fn log(&self, j: &Journal, seq: u64, resumed: bool) -> Result<()> {
        let mut data = Map::new();
        if !self.migrating {
            data.insert("target".into(), j.target.into());
            data.insert("from".into(), j.head_before.into());
        }
        data.extend(j.data.clone());
        data.insert("seq".into(), seq.into());
        data.insert(
            "quarantine".into(),
            format!("quarantine/{}", j.quarantine).into(),
        );
        if resumed {
            data.insert("resumed".into(), true.into());
        }
        self.vault.history_for(&self.keys).append(&j.event, data)?;
        self.vault.remove_journal()
    }

    /// Moves on to `phase`, recorded in the journal before it starts.
    fn next(&self, j: &mut Journal, phase: SwapPhase) -> Result<()> {
        j.phase = phase;
        self.vault.write_journal(&self.keys, j)
    }
}

/// Moves the staging dir (if any) to `quarantine/<time>-<stem>` and removes
/// the work dir; returns the quarantine path relative to the vault.
pub(crate) fn quarantine_staging(vault: &Vault, stem: &str) -> Result<String> {
    let work = vault.soul().join(WORK_DIR);
    let staging = work.join("new");
    let dest = unique(&vault.quarantine()?, vault.now(), stem);
    if fs::symlink_metadata(&staging).is_ok() {
        move_tree(&staging, &dest)?;
    }
    if fs::symlink_metadata(&work).is_ok() {
        // Empty now, unless something else put files there: keep those too.
        if fs::remove_dir(&work).is_err() {
            clear_work(vault)?;
        }
        atomic::sync_dir(&vault.soul())?;
    }
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(format!("quarantine/{name}"))
}

/// Undoes a migration interrupted before its swap (the next wake's resume
/// comes here): the soul was never touched, so the staging dir goes to
/// quarantine and the soul stays at the head.
fn abandon(vault: &Vault, cred: &Credential, j: &mut Journal) -> Result<RestoreReport> {
    let to = j.format.clone().unwrap_or_default();
    let staging = quarantine_staging(vault, &format!("migrate-{to}-interrupted"))?;
    j.data.insert("ok".into(), false.into());
    j.data.insert("interrupted".into(), true.into());
    j.data.insert("undone".into(), true.into());
    j.data.insert("staging".into(), staging.clone().into());
    vault
        .history_for(&Keys::of(cred))
        .append(MIGRATE, j.data.clone())?;
    vault.remove_journal()?;
    Ok(RestoreReport {
        target: j.target,
        seq: j.head_before,
        quarantine: staging,
        files: 0,
        bytes: 0,
        resumed: true,
        event: MIGRATE.into(),
        undone: true,
        aborted: false,
        quarantine_config: None,
    })
}
