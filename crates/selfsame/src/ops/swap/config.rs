//! The config a restore acts on. `config.toml` names the soul path, the
//! excludes and the migrations, so a restore, a rollback, a resume or an
//! undo never obeys a config that no checkpoint vouches for: they act on
//! the config the head was sealed with (its bytes are an object, named by
//! the checkpoint's `config` field), and a restore writes it back over a
//! changed `config.toml`, keeping the changed file in quarantine.

use std::fs;

use crate::crypto::Credential;

use crate::crypto::sha256;
use crate::error::{Damage, Error, IoContext, Result};
use crate::format::journal::Journal;
use crate::ops::head::current_head;
use crate::vault::{atomic, Vault};

/// `vault` acting on the config that checkpoint `seq` records as `sealed`
/// (lowercase hex SHA-256), read back from its object. When it matches
/// `config.toml` as read, or the checkpoint records none (a vault older
/// than the binding), that is `vault` itself.
pub(crate) fn sealed(vault: &Vault, seq: u64, sealed: Option<&str>) -> Result<Vault> {
    let Some(hex) = sealed.filter(|h| *h != vault.config_hash()) else {
        return Ok(vault.clone());
    };
    let mut hash = [0u8; 32];
    hex::decode_to_slice(hex, &mut hash)
        .map_err(|_| Error::corrupt(&vault.checkpoint_path(seq), Damage::ConfigHashInvalid(seq)))?;
    let objects = vault.objects();
    let bytes = objects.read(&hash).map_err(|e| match e {
        Error::ObjectMissing { .. } | Error::Corrupt { .. } => {
            Error::corrupt(&objects.locate(&hash), Damage::SealedConfigLost(seq))
        }
        e => e,
    })?;
    vault.with_config(bytes, &objects.locate(&hash))
}

/// The vault acting on the config an interrupted operation acts on: the
/// one its journal names, or for a journal of an older version the head's.
pub(crate) fn journal_view(vault: &Vault, cred: &Credential, j: &Journal) -> Result<Vault> {
    let (seq, hash) = match &j.config {
        Some(h) => (j.head_before, Some(h.clone())),
        None => {
            let head = current_head(vault, cred)?;
            (
                head.as_ref().map_or(0, |h| h.ckpt.seq),
                head.and_then(|h| h.ckpt.config().map(str::to_owned)),
            )
        }
    };
    sealed(vault, seq, hash.as_deref())
}

/// Writes the config `view` acts on back over `config.toml` when the file
/// on disk differs from it. The file's bytes are kept first, create-only,
/// as `quarantine/<stem>.config.toml` (never deleted), so a crash at any
/// point loses neither. Returns that path, relative to the vault.
pub(crate) fn put_back(view: &Vault, stem: &str) -> Result<Option<String>> {
    let path = view.config_path();
    let now = fs::read(&path).at(&path)?;
    if sha256(&now) == sha256(view.config_bytes()) {
        return Ok(None);
    }
    let qdir = view.quarantine()?;
    let mut name = format!("{stem}.config.toml");
    let mut n = 1;
    loop {
        match atomic::write_create_only(&qdir.join(&name), &now) {
            Ok(()) => break,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {
                n += 1;
                name = format!("{stem}-{n}.config.toml");
            }
            Err(e) => return Err(e),
        }
    }
    atomic::write_replace(&path, view.config_bytes())?;
    Ok(Some(format!("quarantine/{name}")))
}
