//! Bind: move the vault to another platform or bot. With the credential
//! the vault verifies under and the new one, bind checks the whole vault
//! under the old, then seals a `bind` checkpoint of the head's state with
//! the new `platform` and `bot_id`: `hash` is its MAC under the new token,
//! `prev_key_hash` the MAC under the old one (as a rekey's), and the
//! identity key signs it and is re-sealed under the new token. The new
//! `config.toml` (its `platform`, `token_env` and `bot_id` rewritten) is
//! the one the checkpoint binds. From then on the new token verifies the
//! vault, the bind vouches for everything before it, and the old token
//! gets `identity-mismatch` naming the move.

use serde::Serialize;

use super::handover::verified_head;
use super::rekey::hand_over;
use crate::crypto::{Credential, Keys};
use crate::error::{Error, Refusal, Result};
use crate::format::checkpoint::Reason;
use crate::format::identity::display_public;
use crate::vault::config::with_account;
use crate::vault::identity::checkpoint_identity;
use crate::vault::{Config, StoredCheckpoint, Vault};

/// What a bind did.
#[derive(Debug, Clone, Serialize)]
pub struct BindReport {
    /// The `bind` checkpoint.
    pub seq: u64,
    /// The platform and bot the vault belonged to.
    pub from_platform: String,
    /// The bot id it belonged to.
    pub from_bot_id: u64,
    /// The platform it belongs to now.
    pub platform: String,
    /// The bot id it belongs to now.
    pub bot_id: u64,
    /// The env var `config.toml` now names for the token.
    pub token_env: String,
    /// The identity that signed the bind (and every checkpoint before it
    /// since it was added).
    pub identity: String,
    /// Checkpoints sealed under the old token, vouched for by `seq`.
    pub vouched: u64,
    /// Whether this finished a bind that was interrupted after its
    /// checkpoint.
    pub finished: bool,
}

/// Moves the vault from `old` (its current credential) to `new`, whose
/// token the env var `token_env` will hold. Takes the vault lock.
pub fn bind(
    vault: &Vault,
    old: &Credential,
    new: &Credential,
    token_env: &str,
) -> Result<BindReport> {
    let _lock = vault.lock()?;
    if old.platform() == new.platform() && old.account_id() == new.account_id() {
        return Err(Error::Refused(Refusal::BindSameBot));
    }
    if let Some(r) = finish_interrupted(vault, old, new)? {
        return Ok(r);
    }
    let head = verified_head(vault, old)?;
    // The new config is the one the head binds, moved: a change to
    // config.toml that no checkpoint vouches for is adopted first.
    if head.ckpt.config().is_some_and(|c| c != vault.config_hash()) {
        return Err(Error::Refused(Refusal::BindConfigChanged(head.ckpt.seq)));
    }
    let identity = checkpoint_identity(&head).ok_or(Error::Refused(Refusal::NoIdentity))?;
    let text = String::from_utf8_lossy(vault.config_bytes()).into_owned();
    let moved = with_account(&text, new.platform(), new.account_id(), token_env);
    // Checked as any config.toml is read, and stored for the owner.
    Config::parse(&moved, &vault.config_path())?;
    let hash = crate::crypto::sha256(moved.as_bytes());
    vault.objects().put(&hash, moved.as_bytes())?;
    let stored = hand_over(
        vault,
        old,
        new,
        &head,
        Reason::Bind,
        hex::encode(hash),
        Some(moved.as_bytes()),
    )?;
    Ok(report(
        old,
        &stored,
        token_env,
        &identity,
        head.ckpt.seq,
        false,
    ))
}

fn report(
    old: &Credential,
    stored: &StoredCheckpoint,
    token_env: &str,
    identity: &[u8; 32],
    vouched: u64,
    finished: bool,
) -> BindReport {
    BindReport {
        seq: stored.ckpt.seq,
        from_platform: old.platform().as_str().to_owned(),
        from_bot_id: old.account_id(),
        platform: stored.ckpt.platform.clone(),
        bot_id: stored.ckpt.bot_id,
        token_env: token_env.to_owned(),
        identity: display_public(identity),
        vouched,
        finished,
    }
}

/// A bind stopped after its checkpoint (before `config.toml`, the
/// identity file or its events were written) is finished: the newest
/// checkpoint is a bind whose MAC verifies under `new` and whose
/// `prev_key_hash` verifies under `old`. Then `config.toml` gets the
/// config it binds, the identity sealed for `new` is put in place, and
/// the events are logged if they are not.
fn finish_interrupted(
    vault: &Vault,
    old: &Credential,
    new: &Credential,
) -> Result<Option<BindReport>> {
    let Some(&newest) = vault.checkpoint_seqs()?.last() else {
        return Ok(None);
    };
    let stored = vault.read_checkpoint(newest)?;
    let (old_keys, new_keys) = (Keys::of(old), Keys::of(new));
    let ours = stored.ckpt.is_bind()
        && new_keys.verifies(&stored.ckpt)
        && old_keys.retired_by(&stored.ckpt)
        && stored.ckpt.platform == new.platform().as_str()
        && stored.ckpt.bot_id == new.account_id();
    if !ours {
        return Ok(None);
    }
    let Some(config) = stored.ckpt.config() else {
        return Ok(None);
    };
    let mut hash = [0u8; 32];
    hex::decode_to_slice(config, &mut hash).map_err(|_| {
        Error::corrupt(
            &vault.checkpoint_path(newest),
            crate::error::Damage::ConfigHashInvalid(newest),
        )
    })?;
    let bytes = vault.objects().read(&hash)?;
    let text = String::from_utf8(bytes.clone()).map_err(|_| Error::Config {
        path: vault.objects().locate(&hash),
        message: "not UTF-8".into(),
    })?;
    let moved = Config::parse(&text, &vault.objects().locate(&hash))?;
    if vault.config_bytes() != bytes.as_slice() {
        crate::vault::atomic::write_replace(&vault.config_path(), &bytes)?;
    }
    vault.settle_identity_next()?;
    #[cfg(feature = "remote")]
    vault.settle_remote_key_next(new)?;
    let logged =
        vault.history().read_all()?.lines.iter().any(|l| {
            l.event.event == Reason::Bind.as_str() && l.event.get_u64("seq") == Some(newest)
        });
    if !logged {
        super::handover::log_seal(vault, &new_keys, &stored)?;
        super::rekey::log_handover(vault, &new_keys, old, &stored, newest - 1)?;
    }
    let identity = checkpoint_identity(&stored).unwrap_or_default();
    Ok(Some(report(
        old,
        &stored,
        &moved.token_env,
        &identity,
        newest - 1,
        true,
    )))
}
