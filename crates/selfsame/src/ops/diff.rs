//! Diff: what changed between two checkpoints, or a checkpoint and the
//! current soul; with [`patch`], what changed inside each file.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde::Serialize;

use crate::crypto::Credential;

use super::head::{current_head, manifest_of, readable, require_head};
use crate::error::{Error, IoContext, Result};
use crate::format::patch::{self as render, MAX_TEXT};
use crate::format::{Entry, Kind, Manifest};
use crate::progress::Progress;
use crate::soul::changes::ChangeKind;
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

/// Resolves a side to a manifest (trusted checkpoints only: a valid MAC,
/// or vouched for by a later rekey).
pub(crate) fn manifest(
    vault: &Vault,
    cred: &Credential,
    side: Side,
    progress: &dyn Progress,
) -> Result<Manifest> {
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
        Side::Seq(n) => readable(vault, cred, Some(n)).map(|(_, m)| m),
    }
}

/// The vault as a diff sees it: when one side is the soul, on the config
/// the head was sealed with (its soul path and excludes, as wake and
/// restore use), never on an edit of `config.toml` nobody has accepted.
fn view(vault: &Vault, cred: &Credential, a: Side, b: Side) -> Result<Vault> {
    if a != Side::Current && b != Side::Current {
        return Ok(vault.clone());
    }
    match current_head(vault, cred)? {
        Some(h) => super::swap::config::sealed(vault, h.ckpt.seq, h.ckpt.config()),
        None => Ok(vault.clone()),
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
    let vault = &view(vault, cred, a, b)?;
    let old = manifest(vault, cred, a, progress)?;
    let new = manifest(vault, cred, b, progress)?;
    Ok(soul::changes(&old, &new))
}

/// What changed in one entry (`diff -p`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Patch {
    /// The path, relative to the soul.
    pub path: String,
    /// `added`, `removed`, `modified` or `mode_changed`.
    pub change: &'static str,
    /// Whether its content is binary on either side (named, not shown).
    pub binary: bool,
    /// The patch: git's shape, a unified diff for text (empty for a
    /// directory added or removed).
    pub text: String,
}

/// The changes from `a` to `b` and each changed entry's patch.
#[derive(Debug, Clone, Serialize)]
pub struct PatchReport {
    /// The paths that changed, by kind.
    #[serde(flatten)]
    pub changes: Changes,
    /// One patch per changed path, in path order.
    pub patches: Vec<Patch>,
}

/// [`diff`] with a patch for each changed path: a unified diff of text
/// content, binary content named as such, mode changes as mode lines.
/// Checkpoint content comes from the store, checked against its hash; the
/// soul's from disk, which must still hash as the scan found it.
pub fn patch(
    vault: &Vault,
    cred: &Credential,
    a: Side,
    b: Side,
    progress: &dyn Progress,
) -> Result<PatchReport> {
    let vault = &view(vault, cred, a, b)?;
    let old = manifest(vault, cred, a, progress)?;
    let new = manifest(vault, cred, b, progress)?;
    let changes = soul::changes(&old, &new);
    let modes = old.version.has_modes() && new.version.has_modes();
    let mut changed: Vec<(&str, ChangeKind)> = ChangeKind::ALL
        .iter()
        .flat_map(|&k| changes.paths(k).iter().map(move |p| (p.as_str(), k)))
        .collect();
    changed.sort_by(|x, y| x.0.as_bytes().cmp(y.0.as_bytes()));
    let (from, to) = (Contents { vault, side: a }, Contents { vault, side: b });
    let mut patches = Vec::with_capacity(changed.len());
    for (path, kind) in changed {
        let (x, y) = (old.find(path), new.find(path));
        let (bx, by) = (from.load(x)?, to.load(y)?);
        let (vx, vy) = (version(x, &bx, modes), version(y, &by, modes));
        let binary = [&bx, &by]
            .iter()
            .any(|b| b.as_deref().is_some_and(|b| !render::is_text(b)));
        patches.push(Patch {
            path: path.to_owned(),
            change: kind.key(),
            binary,
            text: render::render(path, vx.as_ref(), vy.as_ref()),
        });
    }
    Ok(PatchReport { changes, patches })
}

/// One side of a patch: `e` (if present) with its content.
fn version<'a>(
    e: Option<&Entry>,
    bytes: &'a Option<Vec<u8>>,
    modes: bool,
) -> Option<render::Version<'a>> {
    e.map(|e| render::Version {
        kind: e.kind,
        mode: shown_mode(e, modes),
        hash: e.hash,
        size: e.size,
        bytes: bytes.as_deref(),
    })
}

/// The mode a patch shows: the recorded one when both sides record modes;
/// else only what version 1 records (a file's exec bit; no directory
/// mode), so that an upgrade shows no mode change.
fn shown_mode(e: &Entry, modes: bool) -> Option<u32> {
    match (modes, e.kind) {
        (true, _) => Some(e.mode),
        (false, Kind::Dir) => None,
        (false, k) => Some(k.v1_mode()),
    }
}

/// Where one side's content is read.
struct Contents<'a> {
    vault: &'a Vault,
    side: Side,
}

impl Contents<'_> {
    /// The content of `e` (empty for a directory), or `None` when it is
    /// bigger than a patch shows (not read).
    fn load(&self, e: Option<&Entry>) -> Result<Option<Vec<u8>>> {
        let Some(e) = e else {
            return Ok(Some(Vec::new()));
        };
        if e.kind == Kind::Dir {
            return Ok(Some(Vec::new()));
        }
        if e.size > MAX_TEXT as u64 {
            return Ok(None);
        }
        let bytes = match self.side {
            Side::Current => read_soul_entry(&self.vault.soul(), e)?,
            _ => {
                let mut out = Vec::with_capacity(e.size as usize);
                self.vault.objects().stream(&e.hash, e.size, &mut |piece| {
                    out.extend_from_slice(piece);
                    Ok(())
                })?;
                out
            }
        };
        Ok(Some(bytes))
    }
}

/// The bytes of `e` in the soul on disk, which must be those the scan
/// hashed: a file written since is reported as changing, not shown.
fn read_soul_entry(soul: &Path, e: &Entry) -> Result<Vec<u8>> {
    let path = soul.join(&e.path);
    let bytes = if e.kind == Kind::Symlink {
        std::fs::read_link(&path)
            .at(&path)?
            .as_os_str()
            .as_bytes()
            .to_vec()
    } else {
        let mut out = Vec::with_capacity(e.size as usize);
        std::fs::File::open(&path)
            .at(&path)?
            .take(e.size + 1)
            .read_to_end(&mut out)
            .at(&path)?;
        out
    };
    if crate::crypto::sha256(&bytes) != e.hash {
        return Err(Error::FileChanging { path, tries: 1 });
    }
    Ok(bytes)
}
