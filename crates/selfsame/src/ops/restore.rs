//! Restore: put a checkpoint's soul back, through the journaled swap;
//! finish an interrupted one (`--resume`) or undo it (`--abort`).

use std::ffi::OsStr;

use crate::crypto::Credential;
use serde_json::Map;

use super::head::{forgotten_now, manifest_of, not_forgotten, require_head, trusted};
use super::swap::config::{put_back, sealed};
use super::swap::engine::{drop_work_unless_journaled, finish};
use super::swap::tree::{check_movable, clear_work, kept_collision, top_level_keep};
use super::swap::workdir::{self, WorkDirs};
use super::swap::writable::{not_writable, Next};
use super::swap::{self, undo};
use crate::crypto::Keys;
use crate::error::{Damage, Error, Result};
use crate::format::journal::Journal;
use crate::format::time::{rfc3339, stamp};
use crate::format::Manifest;
use crate::progress::Progress;
use crate::vault::{StoredCheckpoint, Vault};

pub use super::swap::engine::RestoreReport;
pub use super::swap::{Pending, WakeWill};

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

/// The newest checkpoint marked good by a healthy run, else the head. Only
/// `good` events that can be trusted count: vouched for by the head's
/// anchor through the chain, or carrying a valid MAC (History v2).
pub(crate) fn last_good(
    vault: &Vault,
    cred: &Credential,
    head: &StoredCheckpoint,
) -> Result<StoredCheckpoint> {
    let keys = &Keys::of(cred);
    let history = vault.history().read_all()?;
    let forgotten = forgotten_now(vault, keys, head)?;
    let mut marked: Vec<u64> = history
        .trusted_lines(&head.ckpt.log, keys)
        .into_iter()
        .filter(|l| l.event.event == "good")
        .filter_map(|l| l.event.get_u64("seq"))
        .filter(|&s| s <= head.ckpt.seq && !forgotten.contains_key(&s))
        .collect();
    marked.sort_unstable();
    for seq in marked.into_iter().rev() {
        if let Ok(s) = vault.read_checkpoint(seq) {
            if trusted(vault, keys, &s)? && manifest_of(vault, &s).is_ok() {
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
    cred: &Credential,
    target: Target,
    progress: &dyn Progress,
) -> Result<RestoreReport> {
    // Not while `selfsame run` supervises the vault (busy, exit 75): the
    // agent would run during a restore done in its soul. The supervisor
    // rolls back itself, with nothing of the agent left running.
    let _supervisor = crate::vault::lock::acquire(
        &vault.run_dir().join("supervisor.lock"),
        std::time::Duration::ZERO,
        crate::error::LockName::Supervisor,
    )?;
    let _lock = vault.lock()?;
    if let Some(j) = vault.pending_swap()? {
        return Err(Error::SwapPending(j));
    }
    restore_locked(vault, cred, target, "restore", progress)
}

/// Restore with the vault lock held. It acts on the config the head was
/// sealed with (soul path, excludes), and writes that config back over a
/// `config.toml` that differs from it, the changed file going to
/// quarantine.
pub(crate) fn restore_locked(
    vault: &Vault,
    cred: &Credential,
    target: Target,
    event: &str,
    progress: &dyn Progress,
) -> Result<RestoreReport> {
    let keys = Keys::of(cred);
    let head = require_head(vault, cred)?;
    // From here on `vault` is the sealed config's: `config.toml` as it is
    // now is obeyed only if a checkpoint vouches for it.
    let vault = &sealed(vault, head.ckpt.seq, head.ckpt.config())?;
    // Refused before anything is touched: the seal that ends the restore
    // would refuse to anchor history lines that are not selfsame's.
    vault.history_for(&keys).check_after(&head.ckpt.log)?;
    let stored = match target {
        Target::Head => head.clone(),
        Target::LastGood => last_good(vault, cred, &head)?,
        Target::Seq(n) => {
            let s = vault.read_checkpoint(n)?;
            if !trusted(vault, &keys, &s)? {
                return Err(Error::corrupt(
                    &vault.checkpoint_path(n),
                    Damage::NotTrusted(n),
                ));
            }
            not_forgotten(vault, &keys, n)?;
            s
        }
    };
    let manifest = manifest_of(vault, &stored)?;
    refuse_unswappable(vault, &stored, &manifest)?;
    let quarantine = format!("{}-{}-from-{}", stamp(vault.now()), event, head.ckpt.seq);
    let mut j = begin(vault, &keys, event, &stored, head.ckpt.seq, quarantine)?;
    finish(vault, cred, &mut j, Some(manifest), progress, false)
        .map_err(|e| not_writable(vault, e, Next::Pending))
}

/// Refused before anything is touched: the swap would move the soul into
/// a quarantine that leads out of the vault, or have to put a checkpoint
/// entry where the soul keeps one in place, or copy something that cannot
/// be copied into a quarantine on another filesystem.
fn refuse_unswappable(vault: &Vault, stored: &StoredCheckpoint, manifest: &Manifest) -> Result<()> {
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
    check_movable(vault, &keep)
}

/// Makes the work dir and writes the first journal, phase `stage`: from
/// here a crash is finished or undone by the next command. Nothing in the
/// soul changes before the work dir exists, so a soul that cannot be
/// written is refused with nothing done.
fn begin(
    vault: &Vault,
    keys: &Keys,
    event: &str,
    stored: &StoredCheckpoint,
    head_before: u64,
    quarantine: String,
) -> Result<Journal> {
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
        if let Some(q) = put_back(vault, &quarantine)? {
            data.insert("quarantine_config".into(), q.into());
        }
        let started = rfc3339(vault.now());
        let j = Journal {
            soul: stored.ckpt.soul.clone(),
            data,
            config: Some(vault.config_hash()),
            ..Journal::begin(
                event,
                stored.ckpt.seq,
                head_before,
                quarantine,
                started,
                work_dir,
            )
        };
        vault.write_journal(keys, &j)?;
        Ok(j)
    })();
    if prepared.is_err() {
        drop_work_unless_journaled(vault, &dirs);
    }
    prepared
}

/// Finishes an interrupted restore, taking the vault lock.
pub fn resume(
    vault: &Vault,
    cred: &Credential,
    progress: &dyn Progress,
) -> Result<Option<RestoreReport>> {
    let _lock = vault.lock()?;
    swap::resume_locked(vault, cred, progress)
}

/// Undoes an interrupted restore or migration that has not sealed yet
/// (`restore --abort`), taking the vault lock: the soul goes back to how it
/// was before it began. `None` when nothing is pending.
pub fn abort(
    vault: &Vault,
    cred: &Credential,
    _progress: &dyn Progress,
) -> Result<Option<RestoreReport>> {
    let _lock = vault.lock()?;
    undo::begin(vault, cred)
}
