//! Restore: put a checkpoint's soul back.
//!
//! The checkpoint is materialized into `<soul>/.selfsame-restore/new` (same
//! filesystem as the soul), every object re-hashed as it is written. Then
//! the soul's *entries* are swapped — moved out to `…/old`, the new ones
//! moved in — so a soul that is a mount point works too. The old entries go
//! to `quarantine/` whole; nothing is deleted. Each phase is recorded in
//! `run/restore.journal` first, so a crash at any point is finished by the
//! next `wake` or `restore --resume`, or undone by `restore --abort`
//! ([`abort`]). The work dirs are checked to be the ones the restore made
//! before anything inside them is touched again ([`workdir`]), and the
//! restore acts on the config the head was sealed with ([`config`]).
//!
//! A migration uses the same swap and journal (event `migrate`): it stages
//! the head, lets the migration rewrite the staging dir, then hands the
//! journal to [`run`] at the swap. See [`super::migrate`].

mod abort;
mod config;
pub(crate) mod workdir;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use selfsame_telegram::{BotToken, SecretKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::seal::{current_head, manifest_of, seal_expecting, SealOptions};
use crate::clock;
use crate::crypto::{checkpoint_key, history_key};
use crate::error::{Error, IoContext, Result};
use crate::failpoint;
use crate::format::checkpoint::Reason;
use crate::format::{Kind, Manifest};
use crate::progress::{Phase as ProgressPhase, Progress};
use crate::vault::{atomic, Objects, Stored, Vault};
pub(crate) use abort::Undo;
pub use abort::{abort, abort_locked};
use workdir::{DirId, Want, WorkDirs};

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

impl Phase {
    /// The name in the journal.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Phase::Stage => "stage",
            Phase::SwapOut => "swap-out",
            Phase::SwapIn => "swap-in",
            Phase::Quarantine => "quarantine",
            Phase::Seal => "seal",
        }
    }
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
    /// and change summary; a restore's quarantined config).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub(crate) data: Map<String, Value>,
    /// Hex SHA-256 of the config the operation acts on, the one the head
    /// was sealed with. Absent in journals of older versions: the head's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) config: Option<String>,
    /// The work dir `<soul>/.selfsame-restore`, as made by this operation.
    /// Absent in journals of older versions (see [`workdir`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) work_dir: Option<DirId>,
    /// Its `new/`, recorded once staged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) new_dir: Option<DirId>,
    /// Its `old/`, recorded before the swap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) old_dir: Option<DirId>,
    /// Set by `restore --abort`: the step of the undo reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) abort: Option<Undo>,
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
    /// Whether this undid an interrupted operation (`restore --abort`):
    /// the soul is back as it was before it began, nothing was sealed.
    pub aborted: bool,
    /// Where a `config.toml` that differed from the sealed config went,
    /// relative to the vault (the sealed one was written back).
    pub quarantine_config: Option<String>,
}

/// An interrupted restore or migration, and what the next wake does about
/// it (for `status`).
#[derive(Debug, Clone, Serialize)]
pub struct Pending {
    /// `restore`, `rollback` or `migrate`.
    pub event: String,
    /// The checkpoint it restores (for a migration: the one it started
    /// from).
    pub target: u64,
    /// The phase reached: `stage`, `swap-out`, `swap-in`, `quarantine`,
    /// `seal`.
    pub phase: String,
    /// Whether `restore --abort` began undoing it.
    pub aborting: bool,
    /// What the next wake does about it.
    pub wake_will: WakeWill,
}

/// What the next wake does about a pending restore or migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WakeWill {
    /// Finish it: the soul becomes the one it seals.
    Finish,
    /// Undo it: a migration that had not run to its end; the soul was not
    /// touched.
    Undo,
    /// Finish the undo that `restore --abort` began.
    FinishAbort,
    /// Nothing: wake halts first (a changed config, a bad quarantine).
    Nothing,
}

impl Pending {
    /// One sentence for people.
    pub fn describe(&self) -> String {
        let what = format!(
            "an interrupted {} to checkpoint {} is pending (phase {}{})",
            self.event,
            self.target,
            self.phase,
            if self.aborting { ", being undone" } else { "" }
        );
        let then = match self.wake_will {
            WakeWill::Finish if self.event == MIGRATE => {
                "wake will finish it: the migrated soul is swapped in and sealed"
            }
            WakeWill::Finish => {
                "wake will finish it: the soul becomes that checkpoint's and is sealed"
            }
            WakeWill::Undo => "wake will undo it: the soul was not touched and stays at the head",
            WakeWill::FinishAbort => {
                "wake will finish undoing it (`selfsame restore --abort` began it): the soul goes back to how it was before"
            }
            WakeWill::Nothing => "wake will not act on it until the problem below is solved",
        };
        format!("{what}; {then}")
    }
}

fn journal_path(vault: &Vault) -> PathBuf {
    vault.run_dir().join(JOURNAL)
}

/// Label that separates journal MACs from checkpoint and marker MACs.
const JOURNAL_LABEL: &[u8] = b"selfsame/journal/v1\n";

/// Writes the journal: a line with its MAC under the checkpoint key, then
/// the JSON body. Only a process holding the token can write one that the
/// next wake will act on.
pub(crate) fn write_journal(vault: &Vault, key: &SecretKey, j: &Journal) -> Result<()> {
    let body = serde_json::to_string_pretty(j).expect("journal serializes");
    let mac = key.sign(&[JOURNAL_LABEL, body.as_bytes()].concat());
    let text = format!("{mac}\n{body}");
    atomic::write_replace(&journal_path(vault), text.as_bytes())
}

pub(crate) fn remove_journal(vault: &Vault) -> Result<()> {
    let path = journal_path(vault);
    fs::remove_file(&path).at(&path)?;
    atomic::sync_dir(&vault.run_dir())
}

/// Reads the journal. With `key`, its MAC must verify and its fields must
/// be sane; a journal that fails is corruption, never acted on.
fn read_journal(vault: &Vault, key: Option<&SecretKey>) -> Result<Option<Journal>> {
    let path = journal_path(vault);
    let Some(bytes) = crate::vault::read::read_capped(&path, crate::vault::read::MAX_RUN_FILE)?
    else {
        return Ok(None);
    };
    let bad = |why: &str| {
        Error::Corrupt(format!(
            "{}: {why}; it was not written by selfsame with this bot's token. Move it out of run/ (and {WORK}/ out of the soul) after checking them",
            path.display()
        ))
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| bad("not UTF-8"))?;
    let (mac, body) = text.split_once('\n').ok_or_else(|| bad("no MAC line"))?;
    if let Some(key) = key {
        if !key.verify(&[JOURNAL_LABEL, body.as_bytes()].concat(), mac) {
            return Err(bad("its MAC does not verify"));
        }
    }
    let j: Journal = serde_json::from_str(body).map_err(|e| bad(&e.to_string()))?;
    let plain = !j.quarantine.is_empty()
        && !j.quarantine.contains('/')
        && j.quarantine != "."
        && j.quarantine != ".."
        && !j.quarantine.chars().any(char::is_control);
    if !plain {
        return Err(bad("its quarantine name is not a plain directory name"));
    }
    if !matches!(j.event.as_str(), "restore" | "rollback" | MIGRATE) {
        return Err(bad("unknown event"));
    }
    Ok(Some(j))
}

/// Describes an interrupted restore, if one is pending.
pub fn pending(vault: &Vault) -> Result<Option<String>> {
    Ok(read_journal(vault, None)?.map(|j| {
        format!(
            "{} to checkpoint {}, phase {}{}",
            j.event,
            j.target,
            j.phase.as_str(),
            if j.abort.is_some() {
                ", being undone"
            } else {
                ""
            }
        )
    }))
}

/// What the next wake would do about an interrupted restore or migration,
/// changing nothing: its journal and work dirs are checked as a resume
/// checks them (a journal that fails is [`Error::Corrupt`], which wake calls
/// `bad-journal`). `blocked` says wake will not act on it at all (it halts
/// on a changed config or a bad quarantine first): then only the journal's
/// fields are read, if they can be.
pub fn plan(vault: &Vault, token: &BotToken, blocked: bool) -> Result<Option<Pending>> {
    let j = if blocked {
        // Wake will not read it either: shown when it can be read at all.
        read_journal(vault, None).ok().flatten()
    } else {
        read_journal(vault, Some(&checkpoint_key(token)))?
    };
    let Some(j) = j else { return Ok(None) };
    let wake_will = if blocked {
        WakeWill::Nothing
    } else {
        let view = journal_view(vault, token, &j)?;
        let dirs = WorkDirs::of(&view.soul());
        match j.abort {
            Some(step) => {
                dirs.check(&view, &j, abort::wants(step, &j))?;
                WakeWill::FinishAbort
            }
            None => {
                forward_check(&view, &j, &dirs)?;
                if j.event == MIGRATE && j.phase == Phase::Stage {
                    WakeWill::Undo
                } else {
                    WakeWill::Finish
                }
            }
        }
    };
    Ok(Some(Pending {
        event: j.event.clone(),
        target: j.target,
        phase: j.phase.as_str().to_owned(),
        aborting: j.abort.is_some(),
        wake_will,
    }))
}

/// The newest checkpoint marked good by a healthy run, else the head. Only
/// `good` events that can be trusted count: vouched for by the head's
/// anchor through the chain, or carrying a valid MAC (History v2).
pub fn last_good(vault: &Vault, token: &BotToken, head: &Stored) -> Result<Stored> {
    let key = &checkpoint_key(token);
    let history = vault.history().read_all()?;
    let mut marked: Vec<u64> = history
        .trusted_lines(&head.ckpt.log, &history_key(token))
        .into_iter()
        .filter(|l| l.event.event == "good")
        .filter_map(|l| l.event.get_u64("seq"))
        .filter(|&s| s <= head.ckpt.seq)
        .collect();
    marked.sort_unstable();
    for seq in marked.into_iter().rev() {
        if let Ok(s) = vault.read_checkpoint(seq) {
            if super::inspect::trusted(vault, key, &s)? && manifest_of(vault, &s).is_ok() {
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

/// Restore with the vault lock held. It acts on the config the head was
/// sealed with (soul path, excludes), and writes that config back over a
/// `config.toml` that differs from it, the changed file going to
/// quarantine.
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
    // From here on `vault` is the sealed config's: `config.toml` as it is
    // now is obeyed only if a checkpoint vouches for it.
    let vault = &config::sealed(vault, head.ckpt.seq, head.ckpt.config())?;
    // Refused before anything is touched: the seal that ends the restore
    // would refuse to anchor history lines that are not selfsame's.
    vault.history_for(token).check_after(&head.ckpt.log)?;
    let stored = match target {
        Target::Head => head.clone(),
        Target::LastGood => last_good(vault, token, &head)?,
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
    // Refused before anything is touched: the swap would move the soul into
    // a quarantine that leads out of the vault, or have to put a checkpoint
    // entry where the soul keeps one in place, or copy something that
    // cannot be copied into a quarantine on another filesystem.
    vault.quarantine()?;
    let keep = top_level_keep(vault)?;
    let top = manifest
        .entries
        .iter()
        .filter(|e| !e.path.contains('/'))
        .map(|e| OsStr::new(&e.path));
    if let Some(n) = kept_collision(&keep, top) {
        return Err(Error::Usage(format!(
            "checkpoint {} has a top-level entry {n:?}, but a restore keeps {} in place (it matches an `exclude` glob, or is the vault or the restore work dir): move it out of the soul, or drop the glob from config.toml, and restore again; nothing was changed",
            stored.ckpt.seq,
            vault.soul().join(n).display()
        )));
    }
    check_movable(vault, &keep)?;
    let quarantine = format!(
        "{}-{}-from-{}",
        clock::rfc3339(clock::now()).replace([':', '.'], ""),
        event,
        head.ckpt.seq
    );
    // Nothing in the soul changes before the work dir exists: a soul that
    // cannot be written is refused here, with nothing done.
    let dirs = WorkDirs::of(&vault.soul());
    let work_dir = clear_work(vault)
        .and_then(|()| workdir::make(&dirs.work))
        .map_err(|e| not_writable(vault, e, Next::Restore))?;
    let prepared = (|| -> Result<Journal> {
        // The journal names the config by hash: its bytes must be an object
        // (they are, unless the head predates the binding).
        let bytes = vault.config_bytes();
        vault.objects().put(&crate::crypto::sha256(bytes), bytes)?;
        let mut data = Map::new();
        if let Some(q) = config::put_back(vault, &quarantine)? {
            data.insert("quarantine_config".into(), q.into());
        }
        let j = Journal {
            target: stored.ckpt.seq,
            soul: stored.ckpt.soul.clone(),
            event: event.to_owned(),
            phase: Phase::Stage,
            quarantine,
            head_before: head.ckpt.seq,
            started: clock::rfc3339(clock::now()),
            format: None,
            data,
            config: Some(vault.config_hash()),
            work_dir: Some(work_dir),
            new_dir: None,
            old_dir: None,
            abort: None,
        };
        write_journal(vault, &key, &j)?;
        Ok(j)
    })();
    let mut j = match prepared {
        Ok(j) => j,
        Err(e) => {
            drop_work_unless_journaled(vault, &dirs);
            return Err(e);
        }
    };
    run(vault, token, &mut j, Some(manifest), progress, false)
        .map_err(|e| not_writable(vault, e, Next::Pending))
}

/// After an error writing the first journal: the empty work dir goes
/// again, unless the journal made it to its name (its directory's fsync
/// failed, say), which then records it and may be acted on.
pub(crate) fn drop_work_unless_journaled(vault: &Vault, dirs: &WorkDirs) {
    if fs::symlink_metadata(journal_path(vault)).is_err() {
        let _ = fs::remove_dir(&dirs.work);
    }
}

/// The vault acting on the config an interrupted operation acts on: the
/// one its journal names, or for a journal of an older version the head's.
fn journal_view(vault: &Vault, token: &BotToken, j: &Journal) -> Result<Vault> {
    let (seq, hash) = match &j.config {
        Some(h) => (j.head_before, Some(h.clone())),
        None => {
            let head = current_head(vault, &checkpoint_key(token), token)?;
            (
                head.as_ref().map_or(0, |h| h.ckpt.seq),
                head.and_then(|h| h.ckpt.config().map(str::to_owned)),
            )
        }
    };
    config::sealed(vault, seq, hash.as_deref())
}

/// Finishes an interrupted restore (or the undo `restore --abort` began),
/// if any, with the vault lock held. It acts on the config the journal
/// names and, finishing a restore, writes it back over a changed
/// `config.toml` like a restore does.
pub fn resume_locked(
    vault: &Vault,
    token: &BotToken,
    progress: &dyn Progress,
) -> Result<Option<RestoreReport>> {
    let key = checkpoint_key(token);
    let Some(mut j) = read_journal(vault, Some(&key))? else {
        return Ok(None);
    };
    let vault = &journal_view(vault, token, &j)?;
    if j.abort.is_some() {
        return abort::undo(vault, token, &mut j)
            .map(Some)
            .map_err(|e| not_writable(vault, e, Next::Abort));
    }
    let resumed = (|| {
        if let Some(q) = config::put_back(vault, &j.quarantine)? {
            j.data.insert("quarantine_config".into(), q.into());
            write_journal(vault, &key, &j)?;
        }
        run(vault, token, &mut j, None, progress, true)
    })();
    resumed
        .map(Some)
        .map_err(|e| not_writable(vault, e, Next::Pending))
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

/// Checks the work dirs before the forward phase `j.phase` goes on, and
/// says which of [work, new, old] are present. In phase `seal` nothing in
/// them is touched any more: not looked at.
fn forward_check(vault: &Vault, j: &Journal, dirs: &WorkDirs) -> Result<[bool; 3]> {
    use Want::{MaybeAbsent, Present};
    let made = |id: Option<DirId>| if id.is_some() { Present } else { MaybeAbsent };
    let wants = match j.phase {
        // A journal of an older version was written before its work dir.
        Phase::Stage => [made(j.work_dir), MaybeAbsent, MaybeAbsent],
        Phase::SwapOut | Phase::SwapIn => [Present, Present, made(j.old_dir)],
        Phase::Quarantine => [MaybeAbsent; 3],
        Phase::Seal => return Ok([false; 3]),
    };
    dirs.check(vault, j, wants)
}

/// The journaled swap, from the phase `j` records to the end. `vault` acts
/// on the journal's config.
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
    let dirs = WorkDirs::of(&soul);
    let (work, new, old) = (&dirs.work, &dirs.new, &dirs.old);
    let migrating = j.event == MIGRATE;
    // Before anything moves: the quarantine must be inside the vault, and
    // every work dir the one this operation made.
    vault.quarantine()?;
    let [has_work, has_new, has_old] = forward_check(vault, j, &dirs)?;
    if migrating && j.phase == Phase::Stage {
        // The migration had not finished: the soul was never touched.
        return super::migrate::abandon(vault, token, j);
    }
    // A journal of an older version recorded none of them: from here on
    // the ones found (real directories on the soul's filesystem) are held
    // to what they are now. Written with the next phase.
    if has_work && j.work_dir.is_none() {
        j.work_dir = Some(workdir::id_of(work)?);
    }
    if j.phase != Phase::Stage {
        if has_new && j.new_dir.is_none() {
            j.new_dir = Some(workdir::id_of(new)?);
        }
        if has_old && j.old_dir.is_none() {
            j.old_dir = Some(workdir::id_of(old)?);
        }
    }
    let target = vault.read_checkpoint(j.target)?;
    if !migrating && !super::inspect::trusted(vault, &key, &target)? {
        return Err(Error::Corrupt(format!(
            "checkpoint {} does not verify; it cannot be restored",
            j.target
        )));
    }
    if !migrating && target.ckpt.soul != j.soul {
        return Err(Error::Corrupt(format!(
            "the restore journal names a soul other than checkpoint {}'s",
            j.target
        )));
    }
    let manifest = match manifest {
        Some(m) => m,
        None if migrating => super::migrate::manifest_by_hash(vault, &j.soul)?,
        None => manifest_of(vault, &target)?,
    };
    let keep = top_level_keep(vault)?;

    if j.phase == Phase::Stage {
        if !has_work {
            // A journal of an older version, written before its work dir.
            j.work_dir = Some(workdir::make(work)?);
            write_journal(vault, &key, j)?;
        }
        if has_new {
            // A partial staging area of our own making, from objects.
            fs::remove_dir_all(new).at(new)?;
        }
        if has_old {
            // Made just before a crash; the swap had not begun.
            fs::remove_dir(old).at(old)?;
        }
        if let Err(e) = stage(&vault.objects(), &manifest, new, progress) {
            // Refused (a corrupt object, say) before the soul was touched:
            // drop our partial staging dir and the journal, so the refusal
            // leaves the soul as it was and blocks no later wake or seal.
            let _ = fs::remove_dir_all(new);
            let _ = fs::remove_dir(work);
            remove_journal(vault)?;
            return Err(e);
        }
        failpoint::hit("restore-after-stage");
        j.new_dir = Some(workdir::id_of(new)?);
        j.old_dir = Some(workdir::make(old)?);
        j.phase = Phase::SwapOut;
        write_journal(vault, &key, j)?;
    }
    if j.phase == Phase::SwapOut {
        if j.old_dir.is_none() {
            // A journal of an older version makes `old/` in this phase.
            j.old_dir = Some(workdir::make(old)?);
            write_journal(vault, &key, j)?;
        }
        for name in entries(&soul)? {
            if name == WORK || keep.contains(&name) {
                continue;
            }
            fs::rename(soul.join(&name), old.join(&name)).at(&soul.join(&name))?;
            failpoint::hit(if migrating {
                "migrate-mid-swap"
            } else {
                "restore-mid-swap"
            });
        }
        atomic::sync_dir(old)?;
        atomic::sync_dir(&soul)?;
        j.phase = Phase::SwapIn;
        write_journal(vault, &key, j)?;
    }
    if j.phase == Phase::SwapIn {
        for name in entries(new)? {
            rename_no_replace(&new.join(&name), &soul.join(&name), "--resume")?;
            failpoint::hit(if migrating {
                "migrate-mid-swap-in"
            } else {
                "restore-mid-swap-in"
            });
        }
        atomic::sync_dir(&soul)?;
        atomic::sync_dir(new)?;
        j.phase = Phase::Quarantine;
        write_journal(vault, &key, j)?;
    }
    if j.phase == Phase::Quarantine {
        let dest = vault.quarantine()?.join(&j.quarantine);
        // Checked above, or made by this run.
        if fs::symlink_metadata(old).is_ok() {
            move_tree(old, &dest)?;
        }
        failpoint::hit("restore-mid-quarantine");
        if fs::symlink_metadata(new).is_ok() {
            fs::remove_dir(new).at(new)?;
        }
        if fs::symlink_metadata(work).is_ok() {
            fs::remove_dir(work).at(work)?;
        }
        atomic::sync_dir(&soul)?;
        j.phase = Phase::Seal;
        write_journal(vault, &key, j)?;
        failpoint::hit("restore-before-seal");
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
        let report = seal_expecting(vault, token, &so, progress, Some(&manifest))?;
        if report.soul != j.soul {
            return Err(Error::Corrupt(format!(
                "the restored soul does not match checkpoint {} (something wrote to the soul during the restore?)",
                j.target
            )));
        }
        report.seq
    };
    let mut data = Map::new();
    if !migrating {
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
    vault.history_for(token).append(&j.event, data)?;
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
        aborted: false,
        quarantine_config: j
            .data
            .get("quarantine_config")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// What the owner can do after an error in the soul.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Next {
    /// Nothing was changed; the command can simply be run again.
    Restore,
    /// The journal stays pending.
    Pending,
    /// An undo stays pending.
    Abort,
}

/// Turns a failure to write inside the soul (permissions, a read-only
/// mount, an immutable attribute) into an error that names the soul
/// directory and says what to do next; other errors pass unchanged.
pub(crate) fn not_writable(vault: &Vault, e: Error, next: Next) -> Error {
    let soul = vault.soul();
    let denied = [
        rustix::io::Errno::ACCESS,
        rustix::io::Errno::PERM,
        rustix::io::Errno::ROFS,
    ];
    match e {
        Error::Io { path, source }
            if path.starts_with(&soul)
                && denied
                    .iter()
                    .any(|d| source.raw_os_error() == Some(d.raw_os_error())) =>
        {
            let fix = "make it writable (its permissions, a read-only mount, `chattr -i`)";
            let next = match next {
                Next::Restore => format!("nothing was changed: {fix}, then run the command again"),
                Next::Pending if !journal_path(vault).exists() => {
                    format!("nothing was changed: {fix}, then run the command again")
                }
                Next::Pending => format!(
                    "the interrupted {} stays pending: {fix}, then run `selfsame wake` (or `selfsame restore --resume`) to finish it, or `selfsame restore --abort` to undo it",
                    read_journal(vault, None)
                        .ok()
                        .flatten()
                        .map_or_else(|| "restore".to_owned(), |j| j.event)
                ),
                Next::Abort => format!(
                    "the undo stays pending: {fix}, then run `selfsame restore --abort` again (or `selfsame wake`, which finishes it)"
                ),
            };
            Error::SoulNotWritable {
                soul,
                path,
                source,
                next,
            }
        }
        e => e,
    }
}

/// Moves a work dir left over from something else out of the soul, into
/// quarantine (nothing is deleted).
pub(crate) fn clear_work(vault: &Vault) -> Result<()> {
    let work = vault.soul().join(WORK);
    if fs::symlink_metadata(&work).is_ok() {
        let dest = unique(&vault.quarantine()?, "leftover-restore-dir");
        move_tree(&work, &dest)?;
    }
    Ok(())
}

/// Top-level names in the soul that a restore leaves in place: the vault
/// (when inside the soul) and excluded entries.
pub(crate) fn top_level_keep(vault: &Vault) -> Result<Vec<OsString>> {
    let mut keep = Vec::new();
    let soul = vault.soul();
    let soul_real = fs::canonicalize(&soul).unwrap_or(soul.clone());
    if let Ok(rel) = vault.dir().strip_prefix(&soul_real) {
        if let Some(first) = rel.components().next() {
            keep.push(first.as_os_str().to_owned());
        }
    }
    // A soul that cannot be listed is an error, not a soul without
    // excluded entries (they would be swapped out with the rest).
    let (ex, names) = (vault.excludes()?, entries(&soul)?);
    // Globs match UTF-8 paths only; other names are never excluded.
    keep.extend(
        names
            .into_iter()
            .filter(|n| n.to_str().is_some_and(|n| ex.matches(n))),
    );
    Ok(keep)
}

/// The first of `names` that a swap leaves in place (in `keep`, or the
/// work dir): a tree that has one cannot be swapped into the soul.
pub(crate) fn kept_collision<'a>(
    keep: &[OsString],
    names: impl IntoIterator<Item = &'a OsStr>,
) -> Option<&'a OsStr> {
    names
        .into_iter()
        .find(|n| *n == OsStr::new(WORK) || keep.iter().any(|k| k == n))
}

/// The names in `dir`, exactly as on disk (not necessarily UTF-8), sorted
/// by bytes.
pub(crate) fn entries(dir: &Path) -> Result<Vec<OsString>> {
    let mut names = Vec::new();
    for item in fs::read_dir(dir).at(dir)? {
        names.push(item.at(dir)?.file_name());
    }
    names.sort();
    Ok(names)
}

/// Moves `src` to `dest`, failing instead of replacing anything at `dest`.
/// `again` is the `selfsame restore` flag that goes on after the owner moved
/// what is in the way (`--resume`, `--abort`).
fn rename_no_replace(src: &Path, dest: &Path, again: &str) -> Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, src, CWD, dest, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::EXIST => Err(taken(dest, again)),
        // A filesystem without RENAME_NOREPLACE: check, then rename.
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {
            if fs::symlink_metadata(dest).is_ok() {
                return Err(taken(dest, again));
            }
            fs::rename(src, dest).at(dest)
        }
        Err(e) => Err(std::io::Error::from(e)).at(dest),
    }
}

fn taken(dest: &Path, again: &str) -> Error {
    Error::Usage(format!(
        "restore: {} already exists, and a restore never replaces anything: move it out of the way, then run `selfsame restore {again}`",
        dest.display()
    ))
}

/// When the quarantine lies on another filesystem than the soul, the old
/// entries are copied there; devices cannot be copied, so a restore that
/// would move one is refused before it starts.
fn check_movable(vault: &Vault, keep: &[OsString]) -> Result<()> {
    let soul = vault.soul();
    let qdir = vault.quarantine_dir();
    let there = if qdir.exists() {
        qdir
    } else {
        vault.dir().to_owned()
    };
    let (Ok(a), Ok(b)) = (fs::metadata(&soul), fs::metadata(&there)) else {
        return Ok(());
    };
    if a.dev() == b.dev() {
        return Ok(());
    }
    for name in entries(&soul)? {
        if name == WORK || keep.contains(&name) {
            continue;
        }
        if let Some(p) = find_device(&soul.join(&name))? {
            return Err(Error::Usage(format!(
                "{} is a device file, and the quarantine ({}) is on another filesystem, where a restore cannot copy it: remove it from the soul and restore again; nothing was changed",
                p.display(),
                there.display()
            )));
        }
    }
    Ok(())
}

fn find_device(p: &Path) -> Result<Option<PathBuf>> {
    let meta = fs::symlink_metadata(p).at(p)?;
    let ft = meta.file_type();
    if ft.is_block_device() || ft.is_char_device() {
        return Ok(Some(p.to_owned()));
    }
    if ft.is_dir() {
        for item in fs::read_dir(p).at(p)? {
            if let Some(d) = find_device(&item.at(p)?.path())? {
                return Ok(Some(d));
            }
        }
    }
    Ok(None)
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
                    let n = objects.copy_to(&e.hash, e.size, &p, &|n| progress.advance(n))?;
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
        Err(e) if e.raw_os_error() == Some(18) => move_across(src, dest),
        Err(e) => Err(e).at(src),
    }
}

/// The EXDEV half of [`move_tree`]: copy into a partial name, rename it to
/// `dest`, then remove `src`. `dest` appears only whole (the rename), so
/// when it already exists an earlier run crashed while removing `src`:
/// only that is left to finish.
fn move_across(src: &Path, dest: &Path) -> Result<()> {
    if fs::symlink_metadata(dest).is_err() {
        let partial = dest.with_extension("partial");
        if fs::symlink_metadata(&partial).is_ok() {
            fs::remove_dir_all(&partial).at(&partial)?;
        }
        copy_tree(src, &partial)?;
        fs::rename(&partial, dest).at(dest)?;
        atomic::sync_dir(dest.parent().unwrap_or(Path::new("/")))?;
    }
    match fs::remove_dir_all(src) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r.at(src),
    }
}

/// Copies a tree without following symlinks. FIFOs and sockets are made
/// anew (never opened: reading a FIFO blocks); devices are refused.
fn copy_tree(src: &Path, dest: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(src).at(src)?;
    let ft = meta.file_type();
    if meta.is_dir() {
        fs::create_dir(dest).at(dest)?;
        for item in fs::read_dir(src).at(src)? {
            let item = item.at(src)?;
            copy_tree(&item.path(), &dest.join(item.file_name()))?;
        }
        fs::set_permissions(dest, meta.permissions()).at(dest)?;
        atomic::sync_dir(dest)
    } else if ft.is_symlink() {
        let t = fs::read_link(src).at(src)?;
        std::os::unix::fs::symlink(t, dest).at(dest)
    } else if ft.is_fifo() || ft.is_socket() {
        use rustix::fs::{mknodat, FileType, Mode, CWD};
        let kind = if ft.is_fifo() {
            FileType::Fifo
        } else {
            FileType::Socket
        };
        mknodat(
            CWD,
            dest,
            kind,
            Mode::from_raw_mode(meta.mode() & 0o7777),
            0,
        )
        .map_err(std::io::Error::from)
        .at(dest)?;
        fs::set_permissions(dest, meta.permissions()).at(dest)
    } else if ft.is_file() {
        fs::copy(src, dest).at(dest)?;
        fs::File::open(dest).and_then(|f| f.sync_all()).at(dest)
    } else {
        Err(Error::Usage(format!(
            "{} is a device file and cannot be copied to another filesystem: remove it",
            src.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn move_across_resumed_after_the_rename_only_finishes_removing_the_source() {
        // A crash during `remove_dir_all(src)`: `dest` is whole, `src` is
        // partly removed. Resuming must not copy again onto `dest`.
        let t = tempfile::tempdir().unwrap();
        let (src, dest) = (t.path().join("old"), t.path().join("q/1-restore-from-2"));
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("sub/left"), "left over\n").unwrap();
        fs::create_dir_all(dest.join("sub")).unwrap();
        fs::write(dest.join("sub/left"), "left over\n").unwrap();
        fs::write(dest.join("gone"), "already removed from src\n").unwrap();
        move_across(&src, &dest).unwrap();
        assert!(!src.exists());
        assert_eq!(
            fs::read_to_string(dest.join("gone")).unwrap(),
            "already removed from src\n"
        );
        assert!(!dest.with_extension("partial").exists());
        // And once more, with `src` already gone.
        move_across(&src, &dest).unwrap();
    }

    #[test]
    fn move_across_recreates_fifos_instead_of_opening_them() {
        use rustix::fs::{mkfifoat, Mode, CWD};
        let t = tempfile::tempdir().unwrap();
        let (src, dest) = (t.path().join("old"), t.path().join("q"));
        fs::create_dir(&src).unwrap();
        mkfifoat(CWD, src.join("pipe"), Mode::from_raw_mode(0o640)).unwrap();
        fs::set_permissions(src.join("pipe"), fs::Permissions::from_mode(0o640)).unwrap();
        fs::write(src.join("file"), "bytes\n").unwrap();
        // Opening a FIFO with no writer blocks forever: run with a deadline.
        let (tx, rx) = std::sync::mpsc::channel();
        let (s, d) = (src.clone(), dest.clone());
        std::thread::spawn(move || tx.send(move_across(&s, &d).map_err(|e| e.to_string())));
        let r = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("move_across blocked on a FIFO");
        r.unwrap();
        let meta = fs::symlink_metadata(dest.join("pipe")).unwrap();
        assert!(meta.file_type().is_fifo());
        assert_eq!(meta.mode() & 0o7777, 0o640);
        assert_eq!(fs::read_to_string(dest.join("file")).unwrap(), "bytes\n");
        assert!(!src.exists());
    }

    #[test]
    fn kept_collision_compares_raw_names() {
        let keep = vec![
            OsString::from("cache"),
            OsStr::from_bytes(b"caf\xe9").to_owned(),
        ];
        let lossy = OsStr::new("caf\u{fffd}");
        assert_eq!(kept_collision(&keep, [OsStr::new("notes"), lossy]), None);
        assert_eq!(
            kept_collision(&keep, [OsStr::from_bytes(b"caf\xe9")]),
            Some(OsStr::from_bytes(b"caf\xe9"))
        );
        assert_eq!(
            kept_collision(&[], [OsStr::new(WORK)]),
            Some(OsStr::new(WORK))
        );
    }
}
