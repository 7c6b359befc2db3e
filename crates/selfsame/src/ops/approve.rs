//! Approve: the owner adopts changes of protected paths, the only way one
//! enters a checkpoint.

use serde::Serialize;
use serde_json::Map;

use super::head::{manifest_of, require_head};
use super::protect;
use super::seal::{seal_locked, SealOptions, SealReport};
use crate::crypto::{Credential, Keys};
use crate::error::{Error, Result};
use crate::format::checkpoint::Reason;
use crate::progress::Progress;
use crate::soul;
use crate::vault::Vault;

/// What to approve.
#[derive(Debug, Clone, Default)]
pub struct ApproveOptions {
    /// Protected paths (and everything below them) whose changes to adopt;
    /// empty: every changed protected path.
    pub paths: Vec<String>,
    /// The shell's version for the checkpoint.
    pub shell: Option<String>,
    /// Show what would be adopted; seal nothing.
    pub dry_run: bool,
}

/// What `approve` found and did.
#[derive(Debug, Clone, Serialize)]
pub struct ApproveReport {
    /// The protected paths whose changes are (or, dry run, would be)
    /// adopted.
    pub paths: Vec<String>,
    /// The patch from the approved versions to the soul's: git's shape, a
    /// unified diff for text.
    pub patch: String,
    /// The `approve` checkpoint, when one was sealed.
    pub seal: Option<SealReport>,
}

/// Shows the patch of the changed protected paths (those `opts` names),
/// then seals the soul with `reason=approve`, adopting them, and logs an
/// `approve` event. Nothing is sealed when no protected path changed.
pub fn approve(
    vault: &Vault,
    cred: &Credential,
    opts: &ApproveOptions,
    progress: &dyn Progress,
) -> Result<ApproveReport> {
    let _lock = vault.lock()?;
    let protect = vault.config.protect_globs(&vault.config_path())?;
    if protect.is_empty() {
        return Err(Error::Usage(format!(
            "nothing is protected: {} has no `protect` list",
            vault.config_path().display()
        )));
    }
    let head = require_head(vault, cred)?;
    let head_manifest = manifest_of(vault, &head)?;
    let current = soul::fingerprint(
        &vault.soul(),
        &vault.excludes()?,
        &vault.skip_paths(),
        None,
        progress,
    )?
    .manifest;
    let pairs = protect::pairs(&head_manifest, &current.entries, &protect);
    let wanted: Vec<String> = opts
        .paths
        .iter()
        .map(|p| p.trim_end_matches('/').trim_start_matches("./").to_owned())
        .collect();
    let chosen = choose(pairs, &wanted, head.ckpt.seq)?;
    let soul_dir = vault.soul();
    let patch = protect::patch(vault, &chosen, head_manifest.version, &|e| {
        protect::read_entry(&soul_dir.join(&e.path), e)
    })?;
    let paths: Vec<String> = chosen.iter().map(|p| p.path.clone()).collect();
    if opts.dry_run || chosen.is_empty() {
        return Ok(ApproveReport {
            paths,
            patch,
            seal: None,
        });
    }
    let mut so = SealOptions::new(Reason::Approve);
    so.shell = opts.shell.clone();
    so.approve = Some(wanted);
    let report = seal_locked(vault, cred, &so, progress)?;
    let mut data = Map::new();
    data.insert("seq".into(), report.seq.into());
    data.insert("paths".into(), report.approved.clone().into());
    if !report.unapproved.is_empty() {
        data.insert("unapproved".into(), report.unapproved.clone().into());
    }
    vault.history_for(&Keys::of(cred)).append("approve", data)?;
    Ok(ApproveReport {
        paths: report.approved.clone(),
        patch,
        seal: Some(report),
    })
}

/// The changed protected paths at or below those `wanted` (all, when none
/// is named); a named path with no change there is refused.
fn choose(pairs: Vec<protect::Pair>, wanted: &[String], seq: u64) -> Result<Vec<protect::Pair>> {
    let within = |path: &str, a: &str| {
        path == a
            || path
                .strip_prefix(a)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    for w in wanted {
        if !pairs.iter().any(|p| within(&p.path, w)) {
            let changed: Vec<&str> = pairs.iter().map(|p| p.path.as_str()).collect();
            return Err(Error::Usage(if changed.is_empty() {
                format!("{w}: no protected path changed since checkpoint {seq}")
            } else {
                format!(
                    "{w}: no change of a protected path there; changed: {}",
                    changed.join(", ")
                )
            }));
        }
    }
    Ok(pairs
        .into_iter()
        .filter(|p| wanted.is_empty() || wanted.iter().any(|w| within(&p.path, w)))
        .collect())
}
