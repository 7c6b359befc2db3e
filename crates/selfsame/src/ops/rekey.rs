//! Rekey: token rotation. BotFather can revoke a token; the bot id stays,
//! the secret changes, and every checkpoint then fails its MAC under the
//! new token.
//!
//! With both tokens in hand, rekey checks that the whole vault verifies
//! under the old one, then seals a `rekey` checkpoint of the head's state:
//! `hash` is its MAC under the new token, `prev_key_hash` the MAC of the
//! same data-check-string under the old one, and the identity key (if the
//! vault has one) signs it and is re-sealed under the new token. Under the
//! new token that checkpoint vouches for every earlier one through the
//! `prev` chain (the vault checks); under the old token its
//! `prev_key_hash` says the token was retired.

use crate::crypto::Credential;
use serde::Serialize;
use serde_json::Map;

use super::handover::{head_config, log_seal, resign_head, verified_head, Resign};
use crate::crypto::Keys;
use crate::error::{Error, Mismatch, Result};
use crate::format::checkpoint::Reason;
use crate::vault::{StoredCheckpoint, Vault};

/// What a rekey did.
#[derive(Debug, Clone, Serialize)]
pub struct RekeyReport {
    /// The `rekey` checkpoint.
    pub seq: u64,
    /// The bot id (unchanged).
    pub bot_id: u64,
    /// Checkpoints sealed under the old token, now vouched for by `seq`.
    pub vouched: u64,
}

/// Rotates the vault from `old` to `new`, taking the vault lock.
pub fn rekey(vault: &Vault, old: &Credential, new: &Credential) -> Result<RekeyReport> {
    let _lock = vault.lock()?;
    if old.platform() != new.platform() || old.account_id() != new.account_id() {
        return Err(Error::Identity(Mismatch::RekeyAccounts {
            old: old.account_id(),
            new: new.account_id(),
        }));
    }
    if old.key_material() == new.key_material() {
        return Err(Error::Usage(
            "the old and the new token are the same; nothing to rotate".into(),
        ));
    }
    let head = verified_head(vault, old)?;
    let config = head_config(vault, &head)?;
    let stored = hand_over(vault, old, new, &head, Reason::Rekey, config, None)?;
    Ok(RekeyReport {
        seq: stored.ckpt.seq,
        bot_id: new.account_id(),
        vouched: head.ckpt.seq,
    })
}

/// Moves a vault that verifies under `old` (its head is `head`) to `new`:
/// a checkpoint `reason` with the MAC under `new`, `prev_key_hash` under
/// `old`, binding `config` (and `new_config`'s bytes written to
/// `config.toml` once it is sealed), signed by the identity key, which is
/// re-sealed under `new` (as is the copy of the remote's keyring). Logs the `seal` event and the `rekey` or `bind`
/// event under the new keys. Call with the lock held.
pub(crate) fn hand_over(
    vault: &Vault,
    old: &Credential,
    new: &Credential,
    head: &StoredCheckpoint,
    reason: Reason,
    config: String,
    new_config: Option<&[u8]>,
) -> Result<StoredCheckpoint> {
    // The old token verifies the vault: a torn line's repair is signed
    // with its key, and anchored below like the lines before it.
    let (old_keys, new_keys) = (Keys::of(old), Keys::of(new));
    vault.history_for(&old_keys).repair_torn()?;
    if vault.read_head()? != Some(head.ckpt.seq) {
        vault.write_head(head.ckpt.seq)?;
    }
    let marker_was_valid = vault.marker_valid(&old_keys, head)?;
    let identity = vault.signing_identity(old_keys.wrap(), Some(head))?;
    if let Some(id) = &identity {
        // Sealed for the new token before any checkpoint verifies under
        // it, put in place once one does (see `vault::identity`).
        let nonce = vault.settings().new_nonce().map_err(|e| Error::Io {
            path: vault.identity_next_path(),
            source: e,
        })?;
        vault.write_identity_next(&id.seal(new_keys.wrap(), &nonce))?;
    }
    // The remote's keyring, likewise: the first push under the new token
    // opens the remote's records with it (docs/REMOTE.md).
    #[cfg(feature = "remote")]
    vault.rewrap_remote_key_next(old, new)?;
    let r = Resign {
        reason,
        keys: &new_keys,
        retired: Some(&old_keys),
        account: (new.platform().as_str(), new.account_id()),
        identity: identity.as_ref(),
        config,
        log: vault.history().tail()?.0,
    };
    let stored = resign_head(vault, head, &r)?;
    vault.failpoint("handover-after-head");
    if let Some(bytes) = new_config {
        crate::vault::atomic::write_replace(&vault.config_path(), bytes)?;
    }
    vault.settle_identity_next()?;
    #[cfg(feature = "remote")]
    vault.settle_remote_key_next(new)?;
    log_seal(vault, &new_keys, &stored)?;
    log_handover(vault, &new_keys, old, &stored, head.ckpt.seq)?;
    if marker_was_valid {
        // The agent is awake: re-sign its marker, or a crash now would
        // look like tampering under the new token.
        vault.write_marker(&new_keys, &stored)?;
    }
    Ok(stored)
}

/// The `rekey` or `bind` event of a handover checkpoint, signed with the
/// new keys: its seq, the bot (and for a bind the platform and account it
/// moved from), and the last checkpoint it vouches for.
pub(crate) fn log_handover(
    vault: &Vault,
    new_keys: &Keys,
    old: &Credential,
    stored: &StoredCheckpoint,
    vouches: u64,
) -> Result<()> {
    let ckpt = &stored.ckpt;
    let mut data = Map::new();
    data.insert("seq".into(), ckpt.seq.into());
    if ckpt.is_bind() {
        data.insert("from_platform".into(), old.platform().as_str().into());
        data.insert("from_bot_id".into(), old.account_id().into());
        data.insert("platform".into(), ckpt.platform.clone().into());
    }
    data.insert("bot_id".into(), ckpt.bot_id.into());
    data.insert("vouches".into(), vouches.into());
    vault.history_for(new_keys).append(&ckpt.reason, data)?;
    Ok(())
}
