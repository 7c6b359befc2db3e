//! `restore --abort`: undo an interrupted restore (or migration) that has
//! not sealed yet, putting the soul back as it was before it began.
//!
//! Where the previous soul's entries are depends on the phase reached: in
//! the soul and `old/` (swap-out), in `old/` (swap-in), in `old/` or
//! already in `quarantine/<name>` (quarantine, seal). The undo moves what
//! the swap put into the soul back into `new/`, brings the previous entries
//! back into `old/` on the soul's filesystem, moves them into the soul, and
//! puts `new/` away. Each step is written to the journal (`abort`) before it
//! starts and is safe to run again, so a crash during the undo is finished
//! by the next `restore --abort` or `wake`. Nothing is deleted that was in
//! the soul: what the swap had put there goes to `quarantine/<name>-aborted`.
//! Only a staging copy that never entered the soul (made from objects) is
//! removed. The config stays the sealed one.

use std::fs;

use crate::crypto::Credential;
use serde_json::{Map, Value};

use super::config::journal_view;
use super::engine::RestoreReport;
use super::tree::{entries, move_tree, rename_no_replace, top_level_keep};
use super::workdir::{self, Want, WorkDirs};
use super::writable::{not_writable, Next};
use crate::crypto::Keys;
use crate::error::{Damage, Error, IoContext, Refusal, Result, Then};
use crate::format::journal::{DirId, Journal, SwapPhase, Undo, WORK_DIR};
use crate::vault::{atomic, Vault};

/// Undoes the interrupted swap whose journal is in the vault, if any (the
/// vault lock held): records the first step of the undo, then runs it.
pub(crate) fn begin(vault: &Vault, cred: &Credential) -> Result<Option<RestoreReport>> {
    let keys = Keys::of(cred);
    let Some(mut j) = vault.read_journal(Some(&keys))? else {
        return Ok(None);
    };
    let vault = &journal_view(vault, cred, &j)?;
    if j.abort.is_none() {
        let newest = vault.checkpoint_seqs()?.last().copied().unwrap_or(0);
        if j.phase == SwapPhase::Seal && newest > j.head_before {
            return Err(Error::Refused(Refusal::AlreadySealed {
                event: j.event.clone(),
                sealed: newest,
                quarantined: vault.quarantine_dir().join(&j.quarantine),
                before: j.head_before,
            }));
        }
        let first = match j.phase {
            SwapPhase::Stage => Undo::Clean,
            SwapPhase::SwapOut => Undo::In,
            SwapPhase::SwapIn | SwapPhase::Quarantine | SwapPhase::Seal => Undo::Out,
        };
        // Refused before anything is recorded or moved.
        vault.quarantine()?;
        WorkDirs::of(&vault.soul()).check(vault, &j, wants(first, &j))?;
        j.abort = Some(first);
        vault.write_journal(&keys, &j)?;
    }
    undo(vault, cred, &mut j)
        .map(Some)
        .map_err(|e| not_writable(vault, e, Next::Abort))
}

/// What the work dirs must look like before `step`: [work, new, old]. A
/// directory the journal has not recorded (yet) may be absent.
pub(crate) fn wants(step: Undo, j: &Journal) -> [Want; 3] {
    use Want::{MaybeAbsent, Present};
    let made = |id: Option<DirId>| if id.is_some() { Present } else { MaybeAbsent };
    match step {
        Undo::Out | Undo::Clean => [MaybeAbsent; 3],
        Undo::Settle | Undo::Back => [Present, Present, MaybeAbsent],
        Undo::In => [Present, MaybeAbsent, made(j.old_dir)],
    }
}

/// Runs the undo from the step `j.abort` records to the end. `vault` acts
/// on the journal's config.
pub(crate) fn undo(vault: &Vault, cred: &Credential, j: &mut Journal) -> Result<RestoreReport> {
    let keys = Keys::of(cred);
    let dirs = WorkDirs::of(&vault.soul());
    let dest = vault.quarantine()?.join(&j.quarantine);
    loop {
        let step = j.abort.expect("an undo has a step");
        let found = dirs.check(vault, j, wants(step, j))?;
        let next = match step {
            Undo::Out => out(vault, &keys, j, &dirs, found)?,
            Undo::Settle => settle(j, &dirs, found, &dest)?,
            Undo::Back => back(vault, j, &dirs, found, &dest)?,
            Undo::In => back_in(vault, &dirs, found)?,
            Undo::Clean => {
                let aborted = format!("{}-aborted", j.quarantine);
                return clean(vault, cred, j, &dirs, found, &aborted);
            }
        };
        j.abort = Some(next);
        vault.write_journal(&keys, j)?;
    }
}

/// Step `out`: what the swap put into the soul goes back into `new/`
/// (made anew when the swap had removed it, each recorded before anything
/// goes in). Every previous entry is in `old/` or quarantine by now.
fn out(
    vault: &Vault,
    keys: &Keys,
    j: &mut Journal,
    dirs: &WorkDirs,
    [has_work, has_new, _]: [bool; 3],
) -> Result<Undo> {
    let WorkDirs {
        soul, work, new, ..
    } = dirs;
    if !has_work {
        // The restore had removed them: make them anew, and record each
        // before anything goes in.
        (j.work_dir, j.new_dir, j.old_dir) = (None, None, None);
        vault.write_journal(keys, j)?;
        j.work_dir = Some(workdir::make(work)?);
        vault.write_journal(keys, j)?;
    } else if j.work_dir.is_none() {
        j.work_dir = Some(workdir::id_of(work)?);
    }
    if !(has_work && has_new) {
        j.new_dir = None;
        vault.write_journal(keys, j)?;
        j.new_dir = Some(workdir::make(new)?);
        vault.write_journal(keys, j)?;
    } else if j.new_dir.is_none() {
        j.new_dir = Some(workdir::id_of(new)?);
    }
    let keep = top_level_keep(vault)?;
    for name in entries(soul)? {
        if name == WORK_DIR || keep.contains(&name) {
            continue;
        }
        rename_no_replace(&soul.join(&name), &new.join(&name), Then::Abort)?;
        vault.failpoint("restore-abort-mid-out");
    }
    atomic::sync_dir(new)?;
    atomic::sync_dir(soul)?;
    Ok(match j.phase {
        SwapPhase::Quarantine | SwapPhase::Seal => Undo::Settle,
        _ => Undo::In,
    })
}

/// Step `settle`: a move of `old/` into quarantine that a crash cut short
/// is finished, so the previous entries are whole in one place.
fn settle(
    j: &mut Journal,
    dirs: &WorkDirs,
    [_, _, has_old]: [bool; 3],
    dest: &std::path::Path,
) -> Result<Undo> {
    let old = &dirs.old;
    // `dest` appears only whole (a rename, also after a copy to another
    // filesystem), so when both are there `old/` is what a crash left of
    // removing the move's source.
    if has_old && fs::symlink_metadata(dest).is_ok() {
        fs::remove_dir_all(old).at(old)?;
    }
    let partial = dest.with_extension("partial");
    if fs::symlink_metadata(&partial).is_ok() {
        fs::remove_dir_all(&partial).at(&partial)?;
    }
    // `old/` is made anew by the next step when it comes back.
    j.old_dir = None;
    Ok(Undo::Back)
}

/// Step `back`: the previous entries come back from quarantine into
/// `old/`, on the soul's filesystem.
fn back(
    vault: &Vault,
    j: &mut Journal,
    dirs: &WorkDirs,
    [_, _, has_old]: [bool; 3],
    dest: &std::path::Path,
) -> Result<Undo> {
    let old = &dirs.old;
    if has_old {
        // `old/` too appears only whole: a crash cut short the removal of
        // the copy's source.
        if fs::symlink_metadata(dest).is_ok() {
            fs::remove_dir_all(dest).at(dest)?;
        }
    } else if fs::symlink_metadata(dest).is_ok() {
        move_tree(dest, old)?;
    } else {
        return Err(Error::corrupt(
            dest,
            Damage::PreviousSoulLost {
                event: j.event.clone(),
                old: old.clone(),
                soul: dirs.soul.clone(),
            },
        ));
    }
    vault.failpoint("restore-abort-after-back");
    j.old_dir = Some(workdir::id_of(old)?);
    Ok(Undo::In)
}

/// Step `in`: `old/`'s entries go back into the soul.
fn back_in(vault: &Vault, dirs: &WorkDirs, [_, _, has_old]: [bool; 3]) -> Result<Undo> {
    let WorkDirs { soul, old, .. } = dirs;
    if has_old {
        for name in entries(old)? {
            rename_no_replace(&old.join(&name), &soul.join(&name), Then::Abort)?;
            vault.failpoint("restore-abort-mid-in");
        }
        atomic::sync_dir(soul)?;
        atomic::sync_dir(old)?;
    }
    Ok(Undo::Clean)
}

/// The last step: `new/` put away, the work dirs removed, the undo logged,
/// the journal removed.
fn clean(
    vault: &Vault,
    cred: &Credential,
    j: &Journal,
    dirs: &WorkDirs,
    [has_work, has_new, has_old]: [bool; 3],
    aborted: &str,
) -> Result<RestoreReport> {
    let migrating = j.migrating();
    let kept_path = vault.quarantine_dir().join(aborted);
    if has_new {
        // A staging copy that never entered the soul is made from objects
        // and can go; anything that was in the soul, or a migration's
        // output, is kept.
        let discard = !migrating && matches!(j.phase, SwapPhase::Stage | SwapPhase::SwapOut);
        if discard {
            fs::remove_dir_all(&dirs.new).at(&dirs.new)?;
        } else {
            move_tree(&dirs.new, &kept_path)?;
        }
    }
    let kept = fs::symlink_metadata(&kept_path)
        .is_ok()
        .then(|| format!("quarantine/{aborted}"));
    if has_old {
        fs::remove_dir(&dirs.old).at(&dirs.old)?;
    }
    if has_work {
        fs::remove_dir(&dirs.work).at(&dirs.work)?;
    }
    atomic::sync_dir(&dirs.soul)?;
    let mut data = Map::new();
    if !migrating {
        data.insert("target".into(), j.target.into());
        data.insert("from".into(), j.head_before.into());
    }
    data.extend(j.data.clone());
    if migrating {
        data.insert("ok".into(), false.into());
    }
    data.insert("aborted".into(), true.into());
    data.insert("phase".into(), j.phase.as_str().into());
    if let Some(k) = &kept {
        data.insert("quarantine".into(), k.clone().into());
    }
    vault.history_for(&Keys::of(cred)).append(&j.event, data)?;
    vault.remove_journal()?;
    Ok(RestoreReport {
        target: j.target,
        seq: j.head_before,
        quarantine: kept.unwrap_or_default(),
        files: 0,
        bytes: 0,
        resumed: true,
        event: j.event.clone(),
        undone: false,
        aborted: true,
        quarantine_config: j
            .data
            .get("quarantine_config")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    //! The undo's answers to a move across filesystems cut short: states a
    //! crash leaves when `quarantine/` is on another filesystem than the
    //! soul, made by hand (one filesystem cannot produce them).

    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::crypto::Platform;
    use crate::ops::init::{init, InitOptions};

    fn tree(root: &Path) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for e in fs::read_dir(root).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            out.insert(name, fs::read_to_string(&p).unwrap());
        }
        out
    }

    fn files(dir: &Path, files: &[(&str, &str)]) {
        fs::create_dir_all(dir).unwrap();
        for (name, text) in files {
            fs::write(dir.join(name), text).unwrap();
        }
    }

    const SEALED: &[(&str, &str)] = &[("a.txt", "sealed\n")];
    const EDITED: &[(&str, &str)] = &[("a.txt", "edited\n"), ("c.txt", "new\n")];

    /// A vault sealed with `SEALED` and a restore of it, interrupted in
    /// phase `quarantine`: the soul holds the sealed entries, `new/` is
    /// empty, and `old` and `dest` (`quarantine/q1`) hold what the test
    /// gives. `abort` is the undo step already reached, if any.
    fn interrupted(
        dir: &Path,
        old: Option<&[(&str, &str)]>,
        dest: Option<&[(&str, &str)]>,
        abort: Option<Undo>,
    ) -> (Vault, Credential, Journal) {
        let soul = dir.join("soul");
        files(&soul, SEALED);
        let cred = Credential::parse(Platform::Telegram, "5151:undo-test-token").unwrap();
        let vault = init(dir, &cred, &InitOptions::new("soul")).unwrap();
        let head = vault.read_checkpoint(1).unwrap();
        let dirs = WorkDirs::of(&soul);
        let work_dir = Some(workdir::make(&dirs.work).unwrap());
        let new_dir = Some(workdir::make(&dirs.new).unwrap());
        let old_dir = old.map(|entries| {
            files(&dirs.old, entries);
            workdir::id_of(&dirs.old).unwrap()
        });
        if let Some(entries) = dest {
            files(&vault.quarantine().unwrap().join("q1"), entries);
        }
        let j = Journal {
            target: 1,
            soul: head.ckpt.soul.clone(),
            event: "restore".into(),
            phase: SwapPhase::Quarantine,
            quarantine: "q1".into(),
            head_before: 1,
            started: "2026-01-01T00:00:00.000Z".into(),
            format: None,
            data: Map::new(),
            config: Some(vault.config_hash()),
            work_dir,
            new_dir,
            old_dir: if abort == Some(Undo::Back) {
                None
            } else {
                old_dir
            },
            abort,
        };
        vault.write_journal(&Keys::of(&cred), &j).unwrap();
        (vault, cred, j)
    }

    fn assert_undone(dir: &Path, vault: &Vault) {
        let soul = dir.join("soul");
        let edited: BTreeMap<String, String> = EDITED
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        assert_eq!(tree(&soul), edited, "the soul is not as before the restore");
        assert!(!soul.join(WORK_DIR).exists());
        let q = vault.quarantine_dir();
        assert!(
            !q.join("q1").exists(),
            "the copy in quarantine was moved back"
        );
        assert_eq!(tree(&q.join("q1-aborted"))["a.txt"], "sealed\n");
        assert!(!vault.journal_path().exists());
    }

    #[test]
    fn an_undo_after_a_copy_to_quarantine_cut_short_while_removing_old_uses_the_whole_copy() {
        // The copy reached `quarantine/q1` whole; removing `old/` stopped
        // after `a.txt`.
        let dir = tempfile::tempdir().unwrap();
        let (vault, cred, _) = interrupted(dir.path(), Some(&EDITED[1..]), Some(EDITED), None);
        let r = begin(&vault, &cred).unwrap().unwrap();
        assert!(r.aborted);
        assert_undone(dir.path(), &vault);
    }

    #[test]
    fn an_undo_whose_copy_back_was_cut_short_while_removing_the_source_keeps_the_whole_copy() {
        // Step `back` copied `quarantine/q1` into `old/` whole; removing
        // `q1` stopped after `a.txt`. The soul's entries are in `new/`.
        let dir = tempfile::tempdir().unwrap();
        let (vault, cred, _) = interrupted(
            dir.path(),
            Some(EDITED),
            Some(&EDITED[1..]),
            Some(Undo::Back),
        );
        let soul = dir.path().join("soul");
        fs::rename(soul.join("a.txt"), soul.join(WORK_DIR).join("new/a.txt")).unwrap();
        let r = begin(&vault, &cred).unwrap().unwrap();
        assert!(r.aborted);
        assert_undone(dir.path(), &vault);
    }
}
