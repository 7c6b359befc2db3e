//! Show: a checkpoint's fields, decoded, and whether its MAC verifies.

use std::path::PathBuf;

use crate::crypto::{Credential, Keys};
use crate::error::{Error, Result};
use crate::vault::Vault;

/// A checkpoint as stored.
#[derive(Debug, Clone)]
pub struct Shown {
    /// Its seq.
    pub seq: u64,
    /// Its file.
    pub file: PathBuf,
    /// Hex SHA-256 of the file's bytes.
    pub file_hash: String,
    /// Every field, in file order, as stored.
    pub fields: Vec<(String, String)>,
    /// Whether its MAC verifies under the credential.
    pub mac_valid: bool,
}

/// Checkpoint `seq`, or the newest.
pub fn show(vault: &Vault, cred: &Credential, seq: Option<u64>) -> Result<Shown> {
    let seq = match seq {
        Some(s) => s,
        None => *vault
            .checkpoint_seqs()?
            .last()
            .ok_or_else(|| Error::NoSuchCheckpoint("(none in the vault)".into()))?,
    };
    let stored = vault.read_checkpoint(seq)?;
    Ok(Shown {
        seq,
        file: vault.checkpoint_path(seq),
        file_hash: stored.file_hash.clone(),
        fields: stored
            .ckpt
            .fields
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        mac_valid: Keys::of(cred).verifies(&stored.ckpt),
    })
}
