//! Diff: what changed between two checkpoints, or a checkpoint and the
//! current soul.

use crate::crypto::Credential;

use super::head::{manifest_of, require_head};
use crate::crypto::Keys;
use crate::error::{Error, Mismatch, Result};
use crate::format::Manifest;
use crate::progress::Progress;
use crate::soul::{self, Changes};
use crate::vault::Vault;

/// One side of a diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// A checkpoint by seq.
    Seq(u64),
    /// The newest checkpoint.
    Head,
    /// The soul on disk now.
    Current,
}

impl Side {
    /// Parses `N`, `head` or `current`.
    pub fn parse(text: &str) -> Result<Side> {
        match text {
            "head" | "HEAD" => Ok(Side::Head),
            "current" | "soul" => Ok(Side::Current),
            n => n.parse().map(Side::Seq).map_err(|_| {
                Error::Usage(format!(
                    "{n:?} is not a checkpoint: give a seq, `head` or `current`"
                ))
            }),
        }
    }
}

/// Resolves a side to a manifest (MAC-checked for checkpoints).
pub(crate) fn manifest(
    vault: &Vault,
    cred: &Credential,
    side: Side,
    progress: &dyn Progress,
) -> Result<Manifest> {
    let keys = Keys::of(cred);
    match side {
        Side::Current => Ok(soul::fingerprint(
            &vault.soul(),
            &vault.excludes()?,
            &vault.skip_paths(),
            None,
            progress,
        )?
        .manifest),
        Side::Head => manifest_of(vault, &require_head(vault, cred)?),
        Side::Seq(n) => {
            let s = vault.read_checkpoint(n)?;
            if !keys.verifies(&s.ckpt) {
                return Err(Error::Identity(Mismatch::Unverified(n)));
            }
            manifest_of(vault, &s)
        }
    }
}

/// Changes from `a` to `b`.
pub fn diff(
    vault: &Vault,
    cred: &Credential,
    a: Side,
    b: Side,
    progress: &dyn Progress,
) -> Result<Changes> {
    let old = manifest(vault, cred, a, progress)?;
    let new = manifest(vault, cred, b, progress)?;
    Ok(soul::changes(&old, &new))
}
