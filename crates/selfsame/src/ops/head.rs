//! The head and the manifests checkpoints name, as every command that
//! extends or reads the chain looks them up, and which checkpoints'
//! snapshots a retention policy released.

use std::collections::BTreeMap;

use crate::crypto::Credential;

use crate::crypto::identity::{check_signature, SignatureCheck};
use crate::crypto::Keys;
use crate::error::{Damage, Error, Mismatch, Result};
use crate::format::Manifest;
use crate::vault::history::{HistoryRead, Line};
use crate::vault::{StoredCheckpoint, Vault};

/// The history event that releases checkpoints' snapshots, and its field
/// listing their seqs.
pub(crate) const FORGET: &str = "forget";
pub(crate) const FORGOTTEN: &str = "forgotten";

/// The checkpoints whose snapshots a retention policy released, each with
/// when: the `forget` events that the checkpoint anchoring `anchor`
/// vouches for (at or before its line, with an unbroken chain). A forget
/// takes effect once a checkpoint anchors it: a replica that has the
/// checkpoints has the event too, and prune removes nothing the replica's
/// history does not account for. A forged or unsigned line releases
/// nothing.
pub(crate) fn forgotten(history: &HistoryRead, anchor: &str, keys: &Keys) -> BTreeMap<u64, String> {
    let Some(at) = history.lines.iter().position(|l| l.hash == anchor) else {
        return BTreeMap::new();
    };
    let trusted = history.authenticate(anchor, keys).trusted;
    forget_events(
        history.lines[..=at]
            .iter()
            .zip(trusted)
            .filter_map(|(l, t)| t.then_some(l)),
    )
}

/// [`forgotten`], and also what the `forget` events after the anchor
/// release (each carrying a valid MAC): what a new forget need not list
/// again.
pub(crate) fn released(history: &HistoryRead, anchor: &str, keys: &Keys) -> BTreeMap<u64, String> {
    forget_events(history.trusted_lines(anchor, keys).into_iter())
}

fn forget_events<'a>(lines: impl Iterator<Item = &'a Line>) -> BTreeMap<u64, String> {
    let mut out = BTreeMap::new();
    for line in lines {
        if line.event.event != FORGET {
            continue;
        }
        let seqs = line.event.data.get(FORGOTTEN).and_then(|v| v.as_array());
        for seq in seqs.into_iter().flatten().filter_map(|v| v.as_u64()) {
            out.entry(seq).or_insert_with(|| line.event.at.clone());
        }
    }
    out
}

/// [`forgotten`] of the vault's history as it is, anchored by `head`.
pub(crate) fn forgotten_now(
    vault: &Vault,
    keys: &Keys,
    head: &StoredCheckpoint,
) -> Result<BTreeMap<u64, String>> {
    let history = vault.history().read_all()?;
    Ok(forgotten(&history, &head.ckpt.log, keys))
}

/// [`Error::Forgotten`] when a retention policy released the snapshot of
/// checkpoint `seq` (never the head's).
pub(crate) fn not_forgotten(vault: &Vault, keys: &Keys, seq: u64) -> Result<()> {
    let Some(head) = vault.checkpoint_seqs()?.last().copied() else {
        return Ok(());
    };
    if seq == head {
        return Ok(());
    }
    let head = vault.read_checkpoint(head)?;
    match forgotten_now(vault, keys, &head)?.remove(&seq) {
        Some(at) => Err(Error::Forgotten { seq, at }),
        None => Ok(()),
    }
}

/// The newest checkpoint, checked enough to extend: parseable, bound to
/// this bot, MAC valid, HEAD not ahead of it.
pub fn current_head(vault: &Vault, cred: &Credential) -> Result<Option<StoredCheckpoint>> {
    if !vault.belongs_to(cred) {
        return Err(Error::Identity(Mismatch::OtherAccount {
            token_platform: cred.platform().to_string(),
            token: cred.account_id(),
            vault_platform: vault.config.platform.clone(),
            vault: vault.config.bot_id,
        }));
    }
    let newest = vault.checkpoint_seqs()?.last().copied();
    if let (Some(h), n) = (vault.read_head()?, newest) {
        if n.is_none_or(|n| h > n) {
            return Err(Error::corrupt(&vault.head_path(), Damage::HeadAhead(h)));
        }
    }
    let Some(seq) = newest else { return Ok(None) };
    let head = vault.read_checkpoint(seq)?;
    if !Keys::of(cred).verifies(&head.ckpt) {
        return Err(Error::Identity(Mismatch::HeadUnverified(seq)));
    }
    // The identity's signature is outside the MAC: a writer without the
    // token could replace it, and a checkpoint built on the head would
    // vouch for its bytes.
    match check_signature(&head.ckpt) {
        SignatureCheck::Unsigned | SignatureCheck::Valid(_) => {}
        SignatureCheck::Missing => {
            let path = vault.checkpoint_path(seq);
            return Err(Error::corrupt(
                &path,
                Damage::Signature("it names an identity but carries no signature"),
            ));
        }
        SignatureCheck::Invalid(why) => {
            return Err(Error::corrupt(
                &vault.checkpoint_path(seq),
                Damage::Signature(why),
            ));
        }
    }
    Ok(Some(head))
}

/// The head, which must exist.
pub fn require_head(vault: &Vault, cred: &Credential) -> Result<StoredCheckpoint> {
    current_head(vault, cred)?.ok_or_else(|| Error::NoSuchCheckpoint("head".into()))
}

/// Reads and parses the manifest a checkpoint names.
pub fn manifest_of(vault: &Vault, stored: &StoredCheckpoint) -> Result<Manifest> {
    let mut soul = [0u8; 32];
    hex::decode_to_slice(&stored.ckpt.soul, &mut soul).expect("checkpoint soul is hex");
    let bytes = vault.objects().read(&soul)?;
    Manifest::parse(&bytes).map_err(|e| {
        let path = vault.objects().locate(&soul);
        Error::corrupt(&path, Damage::Manifest(Some(stored.ckpt.seq), e))
    })
}

/// Reads the manifest object `hex` (a migrated soul's).
pub fn manifest_by_hash(vault: &Vault, hex: &str) -> Result<Manifest> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(hex, &mut hash)
        .map_err(|_| Error::corrupt(&vault.journal_path(), Damage::JournalSoul(hex.to_owned())))?;
    let bytes = vault.objects().read(&hash)?;
    Manifest::parse(&bytes)
        .map_err(|e| Error::corrupt(&vault.objects().locate(&hash), Damage::Manifest(None, e)))
}

/// Whether `stored` can be trusted under `keys`: its MAC verifies, or a
/// later rekey checkpoint that verifies vouches for it through an unbroken
/// `prev` chain.
pub fn trusted(vault: &Vault, keys: &Keys, stored: &StoredCheckpoint) -> Result<bool> {
    if keys.verifies(&stored.ckpt) {
        return Ok(true);
    }
    let newest = vault.checkpoint_seqs()?.last().copied().unwrap_or(0);
    let mut below = stored.file_hash.clone();
    for seq in stored.ckpt.seq + 1..=newest {
        let Ok(next) = vault.read_checkpoint(seq) else {
            return Ok(false);
        };
        if next.ckpt.prev != below {
            return Ok(false);
        }
        if next.ckpt.is_rekey() && keys.verifies(&next.ckpt) {
            return Ok(true);
        }
        below = next.file_hash;
    }
    Ok(false)
}

/// A checkpoint to read: the head (`None`) or seq `n`, which must be
/// trusted under `cred` (its MAC, or a later rekey vouching for it); with
/// its manifest.
pub(crate) fn readable(
    vault: &Vault,
    cred: &Credential,
    seq: Option<u64>,
) -> Result<(StoredCheckpoint, Manifest)> {
    let stored = match seq {
        None => require_head(vault, cred)?,
        Some(n) => {
            // The head first: under another token that is an identity
            // mismatch (exit 4); under the head's own, a checkpoint that
            // does not verify is damage (exit 5), as `verify` says.
            require_head(vault, cred)?;
            let s = vault.read_checkpoint(n)?;
            let keys = Keys::of(cred);
            if !trusted(vault, &keys, &s)? {
                return Err(Error::corrupt(
                    &vault.checkpoint_path(n),
                    Damage::CheckpointUnverified(n),
                ));
            }
            not_forgotten(vault, &keys, n)?;
            s
        }
    };
    let manifest = manifest_of(vault, &stored)?;
    Ok((stored, manifest))
}
