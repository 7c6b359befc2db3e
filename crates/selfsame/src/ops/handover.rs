//! What rekey, bind and the identity commands share: a new checkpoint that
//! re-signs the head's state (the soul, its files, shell and format) under
//! keys or an identity that change, and the check that the whole vault
//! verifies under the credential that hands it over.

use serde_json::Map;

use super::checks::{inspect, ObjectScope};
use crate::crypto::{Credential, IdentityKey, Keys};
use crate::error::{Damage, Error, Mismatch, Result};
use crate::format::checkpoint::{Draft, Header, Reason, CONFIG, PROTECTED};
use crate::format::time::rfc3339;
use crate::vault::{StoredCheckpoint, Vault};
use crate::verdict::{Detail, Verdict};

/// The head, once the whole vault verifies under `cred` — exactly what
/// verify checks, but for a changed `config.toml` (the new checkpoint
/// carries the head's config binding over, so wake still reports it) —
/// and no restore or migration is pending.
pub(crate) fn verified_head(vault: &Vault, cred: &Credential) -> Result<StoredCheckpoint> {
    if let Some(j) = vault.pending_swap()? {
        return Err(Error::SwapPending(j));
    }
    let insp = inspect(vault, cred, ObjectScope::All)?;
    if let Some(p) = insp
        .problems
        .iter()
        .find(|p| p.detail != Detail::ConfigChanged)
    {
        let why = format!("{}: {}", p.detail, p.message);
        return Err(match p.detail.verdict() {
            Verdict::IdentityMismatch => Error::Identity(Mismatch::RekeyUnverified(why)),
            _ => Error::corrupt(vault.dir(), Damage::RekeyUnverified(why)),
        });
    }
    insp.head
        .ok_or_else(|| Error::NoSuchCheckpoint("head".into()))
}

/// A checkpoint that re-signs the head's state.
pub(crate) struct Resign<'a> {
    /// Why: `rekey`, `bind`, `identity`.
    pub reason: Reason,
    /// The keys whose MAC is `hash` (the new ones on a rekey or bind).
    pub keys: &'a Keys,
    /// The keys a rekey or bind retires: `prev_key_hash` is their MAC.
    pub retired: Option<&'a Keys>,
    /// The platform and account the checkpoint binds.
    pub account: (&'a str, u64),
    /// The identity key that signs it.
    pub identity: Option<&'a IdentityKey>,
    /// The hex SHA-256 of the config it binds (stored as an object).
    pub config: String,
    /// The history line it anchors.
    pub log: String,
}

/// Writes the checkpoint after `head` that `r` describes, then HEAD.
pub(crate) fn resign_head(
    vault: &Vault,
    head: &StoredCheckpoint,
    r: &Resign,
) -> Result<StoredCheckpoint> {
    let mut draft = Draft {
        header: Header {
            seq: head.ckpt.seq + 1,
            prev: head.file_hash.clone(),
            sealed_at: rfc3339(vault.now()),
            reason: r.reason.as_str().to_owned(),
            log: r.log.clone(),
            platform: r.account.0.to_owned(),
            bot_id: r.account.1,
            ..head.ckpt.header.clone()
        },
        extra: vec![(CONFIG.to_owned(), r.config.clone())],
    };
    // The head's protected state is the state re-signed, too.
    if let Some(p) = head.ckpt.fields.get(PROTECTED) {
        draft.extra.push((PROTECTED.to_owned(), p.to_owned()));
    }
    let ckpt = match r.retired {
        Some(old) => r.keys.sign_rekey(&draft, old, r.identity),
        None => r.keys.sign(&draft, r.identity),
    };
    let file_hash = vault.write_checkpoint(&ckpt)?;
    vault.failpoint("resign-after-checkpoint");
    vault.write_head(ckpt.seq)?;
    Ok(StoredCheckpoint { ckpt, file_hash })
}

/// The config the head binds, carried over (a head of an older vault that
/// records none binds `config.toml` as it is now, stored as an object).
pub(crate) fn head_config(vault: &Vault, head: &StoredCheckpoint) -> Result<String> {
    match head.ckpt.config() {
        Some(c) => Ok(c.to_owned()),
        None => {
            let bytes = vault.config_bytes();
            vault.objects().put(&crate::crypto::sha256(bytes), bytes)?;
            Ok(vault.config_hash())
        }
    }
}

/// The `seal` event of a re-signed checkpoint.
pub(crate) fn log_seal(vault: &Vault, keys: &Keys, stored: &StoredCheckpoint) -> Result<()> {
    let ckpt = &stored.ckpt;
    let mut data = Map::new();
    data.insert("seq".into(), ckpt.seq.into());
    data.insert("reason".into(), ckpt.reason.clone().into());
    data.insert("soul".into(), ckpt.soul.clone().into());
    data.insert("format".into(), ckpt.format.clone().into());
    vault.history_for(keys).append("seal", data)?;
    Ok(())
}
