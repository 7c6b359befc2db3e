//! Cat: one file of a checkpoint, read back from the store and checked
//! against its hash (`selfsame cat [SEQ:]PATH`).

use serde::Serialize;

use crate::crypto::Credential;

use super::head::readable;
use crate::error::{Error, Result};
use crate::format::Kind;
use crate::vault::Vault;

/// What `cat` read.
#[derive(Debug, Clone, Serialize)]
pub struct CatReport {
    /// The checkpoint.
    pub seq: u64,
    /// The path, relative to the soul.
    pub path: String,
    /// Bytes given to the sink.
    pub size: u64,
}

/// Parses `[SEQ:]PATH`: a checkpoint (`N` or `head`; the head when left
/// out) and a path relative to the soul. A prefix that is not a seq is
/// part of the path (`a:b` is the file `a:b` of the head).
pub fn parse_spec(text: &str) -> Result<(Option<u64>, String)> {
    let (seq, path) = match text.split_once(':') {
        Some(("head" | "HEAD", path)) => (None, path),
        Some((n, path)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            let n = n
                .parse()
                .map_err(|_| Error::Usage(format!("{n:?} is not a checkpoint seq")))?;
            (Some(n), path)
        }
        _ => (None, text),
    };
    Ok((seq, soul_path(path)?))
}

/// A path relative to the soul as a manifest lists it: `./` and trailing
/// `/` dropped; empty, absolute or `..` paths refused.
pub(crate) fn soul_path(text: &str) -> Result<String> {
    let trimmed = text.trim_end_matches('/');
    let trimmed = trimmed.strip_prefix("./").unwrap_or(trimmed);
    crate::format::manifest::check_path(trimmed).map_err(|why| {
        Error::Usage(format!(
            "{text:?} is not a path in the soul ({why}): give it relative to the soul, e.g. notes/a.md"
        ))
    })?;
    Ok(trimmed.to_owned())
}

/// Streams the content of `path` in checkpoint `seq` (the head when
/// `None`) into `sink`: a file's bytes, a symlink's target. The
/// checkpoint must be trusted under `cred`. The bytes are checked against
/// the recorded hash as they end: on [`Error::Corrupt`] the pieces already
/// given are not the checkpoint's.
pub fn cat(
    vault: &Vault,
    cred: &Credential,
    seq: Option<u64>,
    path: &str,
    sink: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<CatReport> {
    let (stored, manifest) = readable(vault, cred, seq)?;
    let seq = stored.ckpt.seq;
    let entry = manifest.find(path).ok_or_else(|| Error::NoSuchPath {
        seq,
        path: path.to_owned(),
    })?;
    if entry.kind == Kind::Dir {
        return Err(Error::NotAFile {
            seq,
            path: path.to_owned(),
            what: "directory",
        });
    }
    let size = vault.objects().stream(&entry.hash, entry.size, sink)?;
    Ok(CatReport {
        seq,
        path: path.to_owned(),
        size,
    })
}
