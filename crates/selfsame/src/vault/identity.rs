//! `.selfsame/identity`, the identity key sealed under the token's wrap
//! key, and `run/identity.next`, the same key sealed under the next token
//! while a rekey or a bind moves the vault to it: written before the
//! checkpoint that changes the keys and put in place after it, so a crash
//! at any point leaves a file that opens under whichever token the
//! checkpoints then verify under.

use std::path::PathBuf;

use super::{atomic, read, StoredCheckpoint, Vault};
use crate::crypto::{IdentityKey, WrapKey};
use crate::error::{Damage, Error, IoContext, Result};
use crate::format::checkpoint::IDENTITY;
use crate::format::identity::{decode_b64url, IdentityFile, MAX_LEN};

impl Vault {
    /// `.selfsame/identity`.
    pub(crate) fn identity_path(&self) -> PathBuf {
        self.dir().join("identity")
    }

    /// `run/identity.next`: the identity sealed under the token a rekey or
    /// bind is moving the vault to.
    pub(crate) fn identity_next_path(&self) -> PathBuf {
        self.run_dir().join("identity.next")
    }

    /// Reads an identity file: `None` when absent; damage when it is not
    /// a regular file, too big, or not an identity file.
    fn read_identity_at(&self, path: &std::path::Path) -> Result<Option<IdentityFile>> {
        let Some(bytes) = read::read_capped(path, MAX_LEN)? else {
            return Ok(None);
        };
        IdentityFile::parse(&bytes)
            .map(Some)
            .map_err(|e| Error::corrupt(path, Damage::IdentityFile(e)))
    }

    /// The identity file, when there is one.
    pub(crate) fn read_identity(&self) -> Result<Option<IdentityFile>> {
        self.read_identity_at(&self.identity_path())
    }

    /// Writes the identity file (replacing it).
    pub(crate) fn write_identity(&self, file: &IdentityFile) -> Result<()> {
        atomic::write_replace(&self.identity_path(), &file.to_bytes())
    }

    /// Writes `run/identity.next`, the identity sealed for the next token.
    pub(crate) fn write_identity_next(&self, file: &IdentityFile) -> Result<()> {
        atomic::private_dir(&self.run_dir())?;
        atomic::write_replace(&self.identity_next_path(), &file.to_bytes())
    }

    /// Puts `run/identity.next` in place of the identity file (the keys
    /// have moved to its token). Call with the lock held.
    pub(crate) fn settle_identity_next(&self) -> Result<()> {
        let next = self.identity_next_path();
        if let Some(file) = self.read_identity_at(&next)? {
            self.write_identity(&file)?;
            std::fs::remove_file(&next).at(&next)?;
            atomic::sync_dir(&self.run_dir())?;
        }
        Ok(())
    }

    /// The identity key that signs the checkpoint after `head`, opened
    /// with `wrap`: `None` when the vault has no identity yet (and `head`
    /// names none). It must be the key `head` names (if it names one): the
    /// identity file's, or `run/identity.next`'s when a rekey, a bind or an
    /// import was interrupted between its checkpoint and putting the file
    /// in place — which, with `settle` (and the lock held), is then done.
    /// Damage when the vault's key is missing, another, or does not open.
    pub(crate) fn identity_for(
        &self,
        wrap: &WrapKey,
        head: Option<&StoredCheckpoint>,
        settle: bool,
    ) -> Result<Option<IdentityKey>> {
        let named = head.and_then(|h| Some((h.ckpt.seq, checkpoint_identity(h)?)));
        let fits = |f: &IdentityFile| named.is_none_or(|(_, k)| f.public == k);
        let current = self.read_identity()?;
        if let Some(key) = current
            .as_ref()
            .filter(|f| fits(f))
            .and_then(|f| IdentityKey::unseal(f, wrap))
        {
            return Ok(Some(key));
        }
        // A missing or unreadable pending file is no reason to fail here:
        // the identity file's state decides.
        if let Ok(Some(next)) = self.read_identity_at(&self.identity_next_path()) {
            if let Some(key) = Some(&next)
                .filter(|f| fits(f))
                .and_then(|f| IdentityKey::unseal(f, wrap))
            {
                if settle {
                    self.settle_identity_next()?;
                }
                return Ok(Some(key));
            }
        }
        let damage = match (current, named) {
            (None, None) => return Ok(None),
            (None, Some((seq, _))) => Damage::IdentityMissing(seq),
            (Some(f), Some((seq, k))) if f.public != k => Damage::IdentityOther(seq),
            (Some(_), _) => Damage::IdentityLocked,
        };
        Err(Error::corrupt(&self.identity_path(), damage))
    }

    /// [`Vault::identity_for`] for a writer (the lock held): settles an
    /// interrupted re-wrap.
    pub(crate) fn signing_identity(
        &self,
        wrap: &WrapKey,
        head: Option<&StoredCheckpoint>,
    ) -> Result<Option<IdentityKey>> {
        self.identity_for(wrap, head, true)
    }
}

/// The identity key a checkpoint names (its `identity` field), if any and
/// well formed.
pub(crate) fn checkpoint_identity(stored: &StoredCheckpoint) -> Option<[u8; 32]> {
    stored
        .ckpt
        .fields
        .get(IDENTITY)
        .and_then(decode_b64url::<32>)
}
