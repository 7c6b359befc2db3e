//! The journaled swap that restore, rollback and migrate share: the
//! target is written into `<soul>/.selfsame-restore/new` (same filesystem
//! as the soul), every object re-hashed as it is written ([`tree`]). Then
//! the soul's *entries* are swapped — moved out to `…/old`, the new ones
//! moved in — so a soul that is a mount point works too. The old entries
//! go to `quarantine/` whole; nothing is deleted. Each phase is recorded in
//! `run/restore.journal` first ([`crate::vault::journal`]), so a crash at
//! any point is finished by the next `wake` or `restore --resume`
//! ([`engine`]), or undone by `restore --abort` ([`undo`]). The work dirs
//! are checked to be the ones the swap made before anything inside them is
//! touched again ([`workdir`]), and the swap acts on the config the head
//! was sealed with ([`config`]).
//!
//! A migration stages the head, lets the migration rewrite the staging dir,
//! then hands its journal to the engine at the swap.

pub(crate) mod config;
pub(crate) mod engine;
pub(crate) mod tree;
pub(crate) mod undo;
pub(crate) mod workdir;
pub(crate) mod writable;

use crate::crypto::Credential;
use serde::Serialize;

use crate::crypto::Keys;
use crate::error::Result;
use crate::format::journal::SwapPhase;
use crate::progress::Progress;
use crate::vault::Vault;
use config::{journal_view, put_back};
use engine::{finish, forward_check, RestoreReport};
use workdir::WorkDirs;
use writable::{not_writable, Next};

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

/// What the next wake would do about an interrupted restore or migration,
/// changing nothing: its journal and work dirs are checked as a resume
/// checks them (a journal that fails is [`Error::Corrupt`], which wake calls
/// `bad-journal`). `blocked` says wake will not act on it at all (it halts
/// on a changed config or a bad quarantine first): then only the journal's
/// fields are read, if they can be.
pub(crate) fn plan(vault: &Vault, cred: &Credential, blocked: bool) -> Result<Option<Pending>> {
    let j = if blocked {
        // Wake will not read it either: shown when it can be read at all.
        vault.read_journal(None).ok().flatten()
    } else {
        vault.read_journal(Some(&Keys::of(cred)))?
    };
    let Some(j) = j else { return Ok(None) };
    let wake_will = if blocked {
        WakeWill::Nothing
    } else {
        let view = journal_view(vault, cred, &j)?;
        let dirs = WorkDirs::of(&view.soul());
        match j.abort {
            Some(step) => {
                dirs.check(&view, &j, undo::wants(step, &j))?;
                WakeWill::FinishAbort
            }
            None => {
                forward_check(&view, &j, &dirs)?;
                if j.migrating() && j.phase == SwapPhase::Stage {
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

/// Finishes an interrupted restore (or the undo `restore --abort` began),
/// if any, with the vault lock held. It acts on the config the journal
/// names and, finishing a restore, writes it back over a changed
/// `config.toml` like a restore does.
pub(crate) fn resume_locked(
    vault: &Vault,
    cred: &Credential,
    progress: &dyn Progress,
) -> Result<Option<RestoreReport>> {
    let keys = Keys::of(cred);
    let Some(mut j) = vault.read_journal(Some(&keys))? else {
        return Ok(None);
    };
    let vault = &journal_view(vault, cred, &j)?;
    if j.abort.is_some() {
        return undo::undo(vault, cred, &mut j)
            .map(Some)
            .map_err(|e| not_writable(vault, e, Next::Abort));
    }
    let resumed = (|| {
        if let Some(q) = put_back(vault, &j.quarantine)? {
            j.data.insert("quarantine_config".into(), q.into());
            vault.write_journal(&keys, &j)?;
        }
        finish(vault, cred, &mut j, None, progress, true)
    })();
    resumed
        .map(Some)
        .map_err(|e| not_writable(vault, e, Next::Pending))
}
