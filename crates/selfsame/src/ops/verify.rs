//! Verify: every checkpoint's MAC, the chain, HEAD, the history chain and
//! its anchors, every referenced object present; with `read_data`, every
//! object re-hashed.

use std::collections::HashSet;

use crate::crypto::Credential;
use serde::Serialize;

pub use super::checks::Problem;
use super::checks::{inspect_consistent, Inspection, ObjectScope};
use super::head::manifest_of;
use crate::error::{Error, Result};
use crate::format::Kind;
use crate::progress::{Phase, Progress};
use crate::vault::Vault;
use crate::verdict::{Detail, Verdict};
use rayon::prelude::*;

/// What verify found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Checkpoints whose MAC verifies.
    pub checkpoints: usize,
    /// History lines.
    pub history_lines: usize,
    /// Objects re-hashed (with `read_data`).
    pub objects_read: u64,
    /// Bytes re-hashed.
    pub bytes_read: u64,
    /// Problems, each with its detail code.
    pub problems: Vec<Problem>,
    /// Things that are not damage but worth knowing (a torn history line,
    /// HEAD behind after an interrupted seal, a pending restore).
    pub notes: Vec<String>,
    /// 0 when clean, else the exit code of the first problem's verdict.
    pub exit_code: i32,
    /// An interrupted restore or migration, pending (the next wake finishes
    /// it): what it is, for the caller to say what to do about it.
    #[serde(skip)]
    pub pending: Option<String>,
}

/// Runs every check.
pub fn verify(
    vault: &Vault,
    cred: &Credential,
    read_data: bool,
    progress: &dyn Progress,
) -> Result<VerifyReport> {
    let insp = inspect_consistent(vault, cred, ObjectScope::All)?;
    let mut problems = insp.problems.clone();
    for (path, what) in vault.objects().damaged_packs() {
        problems.push(Problem::new(
            Detail::ObjectCorrupt,
            format!("pack {} is damaged: {what}", path.display()),
        ));
    }
    let notes = notes(vault, &insp);
    let pending = vault.pending_swap()?;
    let identity_ok = problems
        .iter()
        .all(|p| p.detail.verdict() != Verdict::IdentityMismatch);
    let (objects_read, bytes_read) = if read_data && identity_ok {
        read_objects(vault, &insp, progress, &mut problems)?
    } else {
        (0, 0)
    };
    let exit_code = problems
        .first()
        .map_or(0, |p| p.detail.verdict().exit_code());
    Ok(VerifyReport {
        checkpoints: insp.checkpoints.len(),
        history_lines: insp.history.lines.len(),
        objects_read,
        bytes_read,
        problems,
        notes,
        exit_code,
        pending,
    })
}

/// What is not damage but worth knowing.
fn notes(vault: &Vault, insp: &Inspection) -> Vec<String> {
    let mut notes = Vec::new();
    if insp.history.torn.is_some() {
        notes.push("history.jsonl ends in a torn line (an interrupted append); the next wake or seal repairs it".into());
    }
    if insp.head_behind() {
        notes.push(
            "HEAD is behind the newest checkpoint (an interrupted seal); the next wake repairs it"
                .into(),
        );
    }
    if let (Some((r, reason)), Some(first), Some(last)) =
        (insp.voucher(), insp.vouched.first(), insp.vouched.last())
    {
        notes.push(format!(
            "checkpoints {first}-{last} were sealed under the previous token; {reason} checkpoint {r} vouches for them (their bytes are fixed by its `prev` chain)"
        ));
    }
    notes.extend(forgotten_notes(&insp.forgotten));
    for name in &insp.strays {
        notes.push(format!(
            "{} is not a checkpoint (selfsame ignores it)",
            vault.checkpoints_dir().join(name).display()
        ));
    }
    for (path, size) in vault.stale_temps(true) {
        notes.push(format!(
            "temp file {} ({size} bytes) was left by an interrupted writer; the next seal or wake removes it",
            path.display()
        ));
    }
    notes
}

/// What retention released, a note per `forget` event (runs of seqs),
/// the last few of them when there are many.
fn forgotten_notes(forgotten: &std::collections::BTreeMap<u64, String>) -> Vec<String> {
    let mut by_time: Vec<(String, Vec<u64>)> = Vec::new();
    for (&seq, at) in forgotten {
        match by_time.iter_mut().find(|(t, _)| t == at) {
            Some((_, seqs)) => seqs.push(seq),
            None => by_time.push((at.clone(), vec![seq])),
        }
    }
    by_time.sort();
    const SHOWN: usize = 5;
    let mut notes = Vec::new();
    if by_time.len() > SHOWN {
        let earlier: usize = by_time[..by_time.len() - SHOWN]
            .iter()
            .map(|(_, s)| s.len())
            .sum();
        notes.push(format!(
            "{earlier} more checkpoints were forgotten by retention in {} earlier events: their snapshots are released",
            by_time.len() - SHOWN
        ));
        by_time.drain(..by_time.len() - SHOWN);
    }
    for (at, seqs) in by_time {
        let word = if seqs.len() == 1 {
            "checkpoint"
        } else {
            "checkpoints"
        };
        notes.push(format!(
            "{word} {} forgotten by retention at {at}: snapshot released",
            super::forget::seq_runs(&seqs)
        ));
    }
    notes
}

/// Re-hashes every object every trusted checkpoint names, once; returns
/// how many objects and bytes were read.
fn read_objects(
    vault: &Vault,
    insp: &Inspection,
    progress: &dyn Progress,
    problems: &mut Vec<Problem>,
) -> Result<(u64, u64)> {
    let objects = vault.objects();
    let mut seen = HashSet::new();
    let mut souls = HashSet::new();
    let mut todo = Vec::new();
    // Checkpoints of the same soul share a manifest: read it once. A
    // snapshot released by retention is not read.
    for s in insp
        .checkpoints
        .iter()
        .filter(|s| !insp.forgotten.contains_key(&s.ckpt.seq))
        .filter(|s| souls.insert(&s.ckpt.soul))
    {
        let Ok(m) = manifest_of(vault, s) else {
            continue;
        };
        // An object of the wrong size (or not a regular file) is a problem
        // already; it is not read (it could be endless).
        for e in m.entries.into_iter().filter(|e| e.kind != Kind::Dir) {
            if seen.insert(e.hash) && objects.size_of(&e.hash)? == Some(e.size) {
                todo.push((s.ckpt.seq, e));
            }
        }
    }
    let total: u64 = todo.iter().map(|(_, e)| e.size).sum();
    progress.start(Phase::Verify, todo.len() as u64, total);
    // Each content streamed from the store and re-hashed, several at once.
    let read: Vec<Result<u64>> = todo
        .par_iter()
        .map(|(_, e)| {
            objects.stream(&e.hash, e.size, &mut |piece| {
                progress.advance(piece.len() as u64);
                Ok(())
            })
        })
        .collect();
    progress.finish();
    let (mut objects_read, mut bytes_read) = (0, 0);
    for ((seq, e), checked) in todo.iter().zip(read) {
        match checked {
            Ok(n) => {
                objects_read += 1;
                bytes_read += n;
            }
            Err(Error::ObjectMissing { hash }) => {
                // The presence check already named it; say it once.
                if !insp.missing_objects.contains(&e.hash) {
                    problems.push(Problem::new(
                        Detail::ObjectMissing,
                        format!("checkpoint {seq}: {} (object {hash} is missing)", e.path),
                    ));
                }
            }
            Err(Error::Corrupt { path, damage }) => problems.push(Problem::new(
                Detail::ObjectCorrupt,
                format!("checkpoint {seq}: {} ({})", e.path, damage.describe(&path)),
            )),
            Err(other) => return Err(other),
        }
    }
    Ok((objects_read, bytes_read))
}
