//! Ls: the entries of a checkpoint (`selfsame ls [SEQ] [PATH]`), as its
//! manifest records them.

use serde::Serialize;

use crate::crypto::Credential;

use super::head::readable;
use crate::error::{Error, Result};
use crate::format::{Entry, Kind};
use crate::vault::Vault;

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    /// The path, relative to the soul.
    pub path: String,
    /// `file`, `symlink` or `dir`.
    pub kind: &'static str,
    /// Permission bits as four octal digits; `None` for a symlink, and for
    /// a directory of a version 1 manifest (which records none).
    pub mode: Option<String>,
    /// Content size (`None` for a directory).
    pub size: Option<u64>,
    /// SHA-256 of the content, hex (`None` for a directory).
    pub hash: Option<String>,
    /// A symlink's target.
    pub target: Option<String>,
}

/// What `ls` found.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    /// The checkpoint.
    pub seq: u64,
    /// Its manifest's version (1 or 2).
    pub manifest: u8,
    /// The path listed (`None`: the soul's top level, or all of it).
    pub path: Option<String>,
    /// The entries, in manifest order.
    pub entries: Vec<Listed>,
}

/// Lists checkpoint `seq` (the head when `None`), which must be trusted
/// under `cred`: the entries directly in directory `path` (the soul when
/// `None`), or everything below it when `recursive`; a `path` that is a
/// file or symlink lists itself.
pub fn ls(
    vault: &Vault,
    cred: &Credential,
    seq: Option<u64>,
    path: Option<&str>,
    recursive: bool,
) -> Result<Listing> {
    let (stored, manifest) = readable(vault, cred, seq)?;
    let seq = stored.ckpt.seq;
    let prefix = match path {
        None => String::new(),
        Some(p) => match manifest.find(p) {
            None => {
                return Err(Error::NoSuchPath {
                    seq,
                    path: p.to_owned(),
                })
            }
            Some(e) if e.kind != Kind::Dir => {
                let one = listed(vault, e, manifest.version.has_modes())?;
                return Ok(Listing {
                    seq,
                    manifest: manifest.version.number(),
                    path: Some(p.to_owned()),
                    entries: vec![one],
                });
            }
            Some(_) => format!("{p}/"),
        },
    };
    let modes = manifest.version.has_modes();
    let entries = manifest
        .entries
        .iter()
        .filter(|e| {
            e.path
                .strip_prefix(&prefix)
                .is_some_and(|rest| recursive || !rest.contains('/'))
        })
        .map(|e| listed(vault, e, modes))
        .collect::<Result<_>>()?;
    Ok(Listing {
        seq,
        manifest: manifest.version.number(),
        path: path.map(str::to_owned),
        entries,
    })
}

/// One entry as listed; a symlink's target is read from the store.
fn listed(vault: &Vault, e: &Entry, modes: bool) -> Result<Listed> {
    let content = e.kind.has_content();
    let target = match e.kind {
        Kind::Symlink => {
            Some(String::from_utf8_lossy(&vault.objects().read(&e.hash)?).into_owned())
        }
        _ => None,
    };
    let mode = match e.kind {
        Kind::Symlink => None,
        Kind::Dir if !modes => None,
        _ => Some(format!("{:04o}", e.mode)),
    };
    Ok(Listed {
        path: e.path.clone(),
        kind: match e.kind {
            Kind::File | Kind::Exec => "file",
            Kind::Symlink => "symlink",
            Kind::Dir => "dir",
        },
        mode,
        size: content.then_some(e.size),
        hash: content.then(|| hex::encode(e.hash)),
        target,
    })
}
