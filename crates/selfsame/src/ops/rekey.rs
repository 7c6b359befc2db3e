//! Rekey: token rotation. BotFather can revoke a token; the bot id stays,
//! the secret changes, and every checkpoint then fails its MAC under the
//! new token.
//!
//! With both tokens in hand, rekey checks that the whole vault verifies
//! under the old one, then seals a `rekey` checkpoint of the head's state:
//! `hash` is its MAC under the new token, `prev_key_hash` the MAC of the
//! same data-check-string under the old one. Under the new token that
//! checkpoint vouches for every earlier one through the `prev` chain
//! (the vault checks); under the old token its `prev_key_hash` says the
//! token was retired.

use crate::crypto::Credential;
use serde::Serialize;
use serde_json::Map;

use super::checks::{inspect, ObjectScope};
use crate::crypto::Keys;
use crate::error::{Damage, Error, Mismatch, Result};
use crate::format::checkpoint::{Checkpoint, Draft, Header, Reason, CONFIG, PREV_KEY_HASH};
use crate::format::time::rfc3339;
use crate::vault::{StoredCheckpoint, Vault};
use crate::verdict::{Detail, Verdict};

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
    let head = verified_head(vault, old, new)?;
    // The old token verifies the vault: a torn line's repair is signed
    // with its key, and anchored below like the lines before it.
    let (old_keys, new_keys) = (Keys::of(old), Keys::of(new));
    vault.history_for(&old_keys).repair_torn()?;
    if vault.read_head()? != Some(head.ckpt.seq) {
        vault.write_head(head.ckpt.seq)?;
    }
    let marker_was_valid = vault.marker_valid(&old_keys, &head);

    // The head's state, re-signed: a rekey changes keys, not the soul, and
    // not the config it is bound to (a head of an older vault that records
    // none binds the config as it is now, like any new checkpoint).
    let config = match head.ckpt.config() {
        Some(c) => c.to_owned(),
        None => {
            let bytes = vault.config_bytes();
            vault.objects().put(&crate::crypto::sha256(bytes), bytes)?;
            vault.config_hash()
        }
    };
    let draft = Draft {
        header: Header {
            seq: head.ckpt.seq + 1,
            prev: head.file_hash.clone(),
            sealed_at: rfc3339(vault.now()),
            reason: Reason::Rekey.as_str().to_owned(),
            log: vault.history().tail()?.0,
            bot_id: new.account_id(),
            ..head.ckpt.header.clone()
        },
        extra: vec![(CONFIG.to_owned(), config)],
    };
    let ckpt = new_keys.sign_rekey(&draft, &old_keys);
    debug_assert!(ckpt.fields.get(PREV_KEY_HASH).is_some());
    let file_hash = vault.write_checkpoint(&ckpt)?;
    vault.failpoint("rekey-after-checkpoint");
    vault.write_head(ckpt.seq)?;
    log(vault, &new_keys, &ckpt, head.ckpt.seq)?;
    let seq = ckpt.seq;
    if marker_was_valid {
        // The agent is awake: re-sign its marker, or a crash now would
        // look like tampering under the new token.
        vault.write_marker(&new_keys, &StoredCheckpoint { ckpt, file_hash })?;
    }
    Ok(RekeyReport {
        seq,
        bot_id: new.account_id(),
        vouched: head.ckpt.seq,
    })
}

/// The head, once the rekey may go ahead: nothing pending, one account,
/// two different tokens, and the whole vault verifying under the old one.
fn verified_head(vault: &Vault, old: &Credential, new: &Credential) -> Result<StoredCheckpoint> {
    if let Some(j) = vault.pending_swap()? {
        return Err(Error::SwapPending(j));
    }
    if old.account_id() != new.account_id() {
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
    let insp = inspect(vault, old, ObjectScope::All)?;
    // A changed config.toml is not damage: the rekey carries the head's
    // config binding over unchanged, so wake still reports it afterwards.
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

/// The rekey checkpoint's `seal` event and the `rekey` event, signed with
/// the new key.
fn log(vault: &Vault, new_keys: &Keys, ckpt: &Checkpoint, vouches: u64) -> Result<()> {
    let history = vault.history_for(new_keys);
    let mut data = Map::new();
    data.insert("seq".into(), ckpt.seq.into());
    data.insert("reason".into(), Reason::Rekey.as_str().into());
    data.insert("soul".into(), ckpt.soul.clone().into());
    data.insert("format".into(), ckpt.format.clone().into());
    history.append("seal", data)?;
    let mut data = Map::new();
    data.insert("seq".into(), ckpt.seq.into());
    data.insert("bot_id".into(), ckpt.bot_id.into());
    data.insert("vouches".into(), vouches.into());
    history.append("rekey", data)?;
    Ok(())
}
