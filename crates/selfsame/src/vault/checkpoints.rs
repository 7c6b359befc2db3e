//! `checkpoints/` and `HEAD`: the signed checkpoints, create-only, named
//! by their seq, and the seq of the newest.

use std::fs;
use std::path::PathBuf;

use super::{atomic, read, Vault};
use crate::crypto::sha256_hex;
use crate::error::{Damage, Error, IoContext, Result};
use crate::format::checkpoint::Checkpoint;

/// What `checkpoints/` holds (see [`Vault::list_checkpoints`]).
#[derive(Debug, Clone, Default)]
pub struct CheckpointDir {
    /// The checkpoints, by seq, ascending.
    pub seqs: Vec<u64>,
    /// `<digits>.ckpt` names that are not the canonical name of their seq:
    /// damage, since a reader might take them for that checkpoint.
    pub misnamed: Vec<String>,
    /// Anything else that is not a temp file: not selfsame's, ignored.
    pub strays: Vec<String>,
}

/// A checkpoint as read from disk, with the hash of its file bytes.
#[derive(Debug, Clone)]
pub struct StoredCheckpoint {
    /// The parsed checkpoint.
    pub ckpt: Checkpoint,
    /// Hex SHA-256 of the file bytes: what the next checkpoint's `prev`
    /// holds.
    pub file_hash: String,
}

impl Vault {
    /// `checkpoints/`.
    pub(crate) fn checkpoints_dir(&self) -> PathBuf {
        self.dir.join("checkpoints")
    }

    /// The path of checkpoint `seq`.
    pub(crate) fn checkpoint_path(&self, seq: u64) -> PathBuf {
        self.checkpoints_dir().join(Checkpoint::file_name(seq))
    }

    /// The seqs present in `checkpoints/`, ascending: the files named
    /// exactly [`Checkpoint::file_name`] of their seq.
    pub(crate) fn checkpoint_seqs(&self) -> Result<Vec<u64>> {
        Ok(self.list_checkpoints()?.seqs)
    }

    /// What `checkpoints/` holds: the checkpoints by seq, names that look
    /// like a checkpoint's but are not its canonical name (`000000001.ckpt`
    /// beside `00000001.ckpt`), and anything else but temp files. A
    /// missing `checkpoints/` is damage.
    pub(crate) fn list_checkpoints(&self) -> Result<CheckpointDir> {
        let dir = self.checkpoints_dir();
        let items = match fs::read_dir(&dir) {
            Ok(items) => items,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::corrupt(&dir, Damage::CheckpointsMissing))
            }
            Err(e) => return Err(e).at(&dir),
        };
        let mut out = CheckpointDir::default();
        for item in items {
            let name = item.at(&dir)?.file_name();
            let Some(name) = name.to_str() else {
                out.strays.push(name.to_string_lossy().into_owned());
                continue;
            };
            if name.starts_with(atomic::TEMP_PREFIX) {
                continue;
            }
            let seq = name
                .strip_suffix(".ckpt")
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .map(|n| n.parse::<u64>().ok());
            match seq {
                Some(Some(seq)) if Checkpoint::file_name(seq) == name => out.seqs.push(seq),
                Some(_) => out.misnamed.push(name.to_owned()),
                None => out.strays.push(name.to_owned()),
            }
        }
        out.seqs.sort_unstable();
        out.misnamed.sort();
        out.strays.sort();
        Ok(out)
    }

    /// Reads checkpoint `seq`. Unparseable files are [`Error::Corrupt`].
    pub(crate) fn read_checkpoint(&self, seq: u64) -> Result<StoredCheckpoint> {
        let path = self.checkpoint_path(seq);
        let bytes = match read::read_capped(&path, read::MAX_CHECKPOINT)? {
            Some(b) => b,
            None => return Err(Error::NoSuchCheckpoint(seq.to_string())),
        };
        let ckpt =
            Checkpoint::parse(&bytes).map_err(|e| Error::corrupt(&path, Damage::Checkpoint(e)))?;
        if ckpt.seq != seq {
            return Err(Error::corrupt(&path, Damage::CheckpointSeq(ckpt.seq)));
        }
        Ok(StoredCheckpoint {
            file_hash: sha256_hex(&bytes),
            ckpt,
        })
    }

    /// Writes a checkpoint, create-only.
    pub(crate) fn write_checkpoint(&self, ckpt: &Checkpoint) -> Result<String> {
        let bytes = ckpt.to_bytes();
        let path = self.checkpoint_path(ckpt.seq);
        atomic::write_create_only(&path, &bytes).map_err(|e| match e {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists => {
                Error::corrupt(&path, Damage::CheckpointExists)
            }
            e => e,
        })?;
        Ok(sha256_hex(&bytes))
    }

    /// `HEAD`.
    pub(crate) fn head_path(&self) -> PathBuf {
        self.dir.join("HEAD")
    }

    /// The seq HEAD names, if HEAD exists. Unreadable HEAD is corruption.
    pub(crate) fn read_head(&self) -> Result<Option<u64>> {
        let path = self.head_path();
        let Some(bytes) = read::read_capped(&path, read::MAX_HEAD)? else {
            return Ok(None);
        };
        std::str::from_utf8(&bytes)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| Error::corrupt(&path, Damage::HeadInvalid))
    }

    /// Points HEAD at `seq`.
    pub(crate) fn write_head(&self, seq: u64) -> Result<()> {
        atomic::write_replace(&self.head_path(), format!("{seq}\n").as_bytes())
    }
}
