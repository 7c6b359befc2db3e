//! The identity key: `init` gives a vault one (a vault from before
//! identity keys is unsigned until then), `show` names its public key,
//! `export` writes it for the owner's offline copy, `import` puts one
//! back or brings one to another vault.
//!
//! Adding or replacing the key seals an `identity` checkpoint that
//! re-signs the head's state: from it on every checkpoint is signed by the
//! key, so an attestation that starts there verifies.

use serde::Serialize;
use serde_json::Map;

use super::handover::{head_config, log_seal, resign_head, Resign};
use super::head::require_head;
use super::init::create_identity;
use crate::crypto::{Credential, IdentityKey, Keys, Passphrase};
use crate::error::{Error, Refusal, Result};
use crate::format::checkpoint::Reason;
use crate::format::identity::{display_public, IdentityFile};
use crate::vault::identity::checkpoint_identity;
use crate::vault::{StoredCheckpoint, Vault};

/// What `identity init` or `identity import` did.
#[derive(Debug, Clone, Serialize)]
pub struct IdentityReport {
    /// The vault's identity key now: `selfsame:ed25519:<base64url>`.
    pub identity: String,
    /// The `identity` checkpoint sealed, if one was (none when an import
    /// only put back the key the head already names).
    pub seq: Option<u64>,
    /// The key it replaced, if any.
    pub replaced: Option<String>,
}

/// The vault's identity key as people publish it
/// (`selfsame:ed25519:<base64url>`), from the identity file; no token
/// needed. `None` when the vault has none.
pub fn show(vault: &Vault) -> Result<Option<String>> {
    Ok(vault.read_identity()?.map(|f| display_public(&f.public)))
}

/// Gives a vault without an identity key one, and seals an `identity`
/// checkpoint signed by it. Refused when the vault has one.
pub fn init(vault: &Vault, cred: &Credential) -> Result<IdentityReport> {
    let _lock = vault.lock()?;
    let (keys, head, log) = writable_head(vault, cred)?;
    let key = match vault.signing_identity(keys.wrap(), Some(&head))? {
        Some(k) if checkpoint_identity(&head).is_some() => {
            return Err(Error::Refused(Refusal::HasIdentity(display_public(
                &k.public(),
            ))))
        }
        // Made by an `identity init` that stopped before its checkpoint.
        Some(k) => k,
        None => create_identity(vault, &keys)?,
    };
    let stored = seal_identity(vault, cred, &keys, &head, &key, log, None)?;
    Ok(IdentityReport {
        identity: display_public(&key.public()),
        seq: Some(stored.ckpt.seq),
        replaced: None,
    })
}

/// The vault's identity key as an age file encrypted to `passphrase`.
pub fn export(vault: &Vault, cred: &Credential, passphrase: &Passphrase) -> Result<Vec<u8>> {
    let head = require_head(vault, cred)?;
    let key = vault
        .identity_for(Keys::of(cred).wrap(), Some(&head), false)?
        .ok_or(Error::Refused(Refusal::NoIdentity))?;
    Ok(key.export(passphrase))
}

/// Imports an exported identity key (`bytes`, opened with `passphrase`).
/// The key the head names is simply put back (a lost or damaged identity
/// file). A vault without one gets it, as with [`init`]. A vault with
/// another key gets it only with `replace`; either way an `identity`
/// checkpoint signed by it is sealed.
pub fn import(
    vault: &Vault,
    cred: &Credential,
    bytes: &[u8],
    passphrase: &Passphrase,
    replace: bool,
) -> Result<IdentityReport> {
    let key = IdentityKey::import(bytes, passphrase).map_err(Error::Import)?;
    let imported = display_public(&key.public());
    let _lock = vault.lock()?;
    let (keys, head, log) = writable_head(vault, cred)?;
    let nonce = vault.settings().new_nonce().map_err(|e| Error::Io {
        path: vault.identity_path(),
        source: e,
    })?;
    let sealed = key.seal(keys.wrap(), &nonce);
    let named = checkpoint_identity(&head);
    if named == Some(key.public()) {
        vault.write_identity(&sealed)?;
        return Ok(IdentityReport {
            identity: imported,
            seq: None,
            replaced: None,
        });
    }
    // The vault's key: the head's, or one an interrupted init made.
    let current = named.or(vault.read_identity()?.map(|f| f.public));
    if let Some(current) = current.filter(|_| !replace) {
        return Err(Error::Refused(Refusal::OtherIdentity {
            current: display_public(&current),
            imported,
        }));
    }
    let stored = seal_identity(vault, cred, &keys, &head, &key, log, Some(&sealed))?;
    Ok(IdentityReport {
        identity: imported,
        seq: Some(stored.ckpt.seq),
        replaced: current.map(|c| display_public(&c)),
    })
}

/// The head a new checkpoint may follow, with the keys and the history
/// line it will anchor (the lines after the head's anchor checked).
fn writable_head(vault: &Vault, cred: &Credential) -> Result<(Keys, StoredCheckpoint, String)> {
    if let Some(j) = vault.pending_swap()? {
        return Err(Error::SwapPending(j));
    }
    let keys = Keys::of(cred);
    let head = require_head(vault, cred)?;
    let history = vault.history_for(&keys);
    history.repair_torn()?;
    let log = history.anchor_after(&head.ckpt.log)?;
    Ok((keys, head, log))
}

/// Seals the `identity` checkpoint after `head`, signed by `key`, and logs
/// it. A replacement key (`next`, sealed) goes to `run/identity.next`
/// first and in place after the checkpoint, so a crash in between leaves
/// the file that matches the head.
fn seal_identity(
    vault: &Vault,
    cred: &Credential,
    keys: &Keys,
    head: &StoredCheckpoint,
    key: &IdentityKey,
    log: String,
    next: Option<&IdentityFile>,
) -> Result<StoredCheckpoint> {
    if let Some(file) = next {
        vault.write_identity_next(file)?;
    }
    let marker_was_valid = vault.marker_valid(keys, head)?;
    let r = Resign {
        reason: Reason::Identity,
        keys,
        retired: None,
        account: (cred.platform().as_str(), cred.account_id()),
        identity: Some(key),
        config: head_config(vault, head)?,
        log,
    };
    let stored = resign_head(vault, head, &r)?;
    vault.settle_identity_next()?;
    if marker_was_valid {
        // The agent is awake: its marker moves to the new head, or a crash
        // now would look like tampering.
        vault.write_marker(keys, &stored)?;
    }
    log_seal(vault, keys, &stored)?;
    let mut data = Map::new();
    data.insert("seq".into(), stored.ckpt.seq.into());
    data.insert("identity".into(), display_public(&key.public()).into());
    vault.history_for(keys).append("identity", data)?;
    Ok(stored)
}
