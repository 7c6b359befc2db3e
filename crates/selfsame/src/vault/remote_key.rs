//! `.selfsame/remote-key`, the vault's copy of the remote replica's
//! keyring, wrapped under the token as the remote's key file is
//! (docs/REMOTE.md), and `run/remote-key.next`, the same keyring wrapped
//! under the next token while a rekey or a bind moves the vault to it:
//! written before the checkpoint that changes the keys and put in place
//! after it. With it, the first push under the new token can open the
//! remote's records and add a generation of keys the new token opens.
//!
//! The copy is a cache of what the remote holds: one that is missing or
//! does not open under the token is no damage (the remote's key file
//! decides), and push, wake and clone write it again.

use std::path::{Path, PathBuf};

use super::{atomic, read, Vault};
use crate::crypto::remote::Keyring;
use crate::crypto::Credential;
use crate::error::{IoContext, Result};

/// The largest key file read: a thousand generations fit.
const MAX_LEN: u64 = 64 * 1024;

impl Vault {
    /// `.selfsame/remote-key`.
    pub(crate) fn remote_key_path(&self) -> PathBuf {
        self.dir().join("remote-key")
    }

    /// `run/remote-key.next`.
    pub(crate) fn remote_key_next_path(&self) -> PathBuf {
        self.run_dir().join("remote-key.next")
    }

    fn remote_key_at(&self, path: &Path, cred: &Credential) -> Option<Keyring> {
        let bytes = read::read_capped(path, MAX_LEN).ok()??;
        Keyring::unwrap(&bytes, cred).ok()
    }

    /// The keyring copy that opens under `cred`: the file's, or the
    /// pending one a rekey or a bind interrupted after its checkpoint left
    /// — which `settle` (with the lock held) then puts in place.
    pub(crate) fn remote_keyring(
        &self,
        cred: &Credential,
        settle: bool,
    ) -> Result<Option<Keyring>> {
        if let Some(ring) = self.remote_key_at(&self.remote_key_path(), cred) {
            return Ok(Some(ring));
        }
        let next = self.remote_key_at(&self.remote_key_next_path(), cred);
        if next.is_some() && settle {
            self.settle_remote_key_next(cred)?;
        }
        Ok(next)
    }

    /// Keeps `ring` (opened under `cred`) as the vault's copy, unless the
    /// copy already holds it. Call with the lock held.
    pub(crate) fn save_remote_keyring(&self, ring: &Keyring, cred: &Credential) -> Result<()> {
        if self.remote_keyring(cred, true)?.as_ref() != Some(ring) {
            atomic::write_replace(&self.remote_key_path(), ring.wrap(cred).as_bytes())?;
        }
        Ok(())
    }

    /// Writes `run/remote-key.next`: the copy re-wrapped under `new`,
    /// when the vault has one that opens under `old`. Call with the lock
    /// held, before the checkpoint that moves the vault to `new`.
    pub(crate) fn rewrap_remote_key_next(&self, old: &Credential, new: &Credential) -> Result<()> {
        if let Some(ring) = self.remote_keyring(old, true)? {
            atomic::private_dir(&self.run_dir())?;
            atomic::write_replace(&self.remote_key_next_path(), ring.wrap(new).as_bytes())?;
        }
        Ok(())
    }

    /// Puts `run/remote-key.next` in place of the copy when it opens under
    /// `cred` (the keys have moved to its token). Call with the lock held.
    pub(crate) fn settle_remote_key_next(&self, cred: &Credential) -> Result<()> {
        let next = self.remote_key_next_path();
        if let Some(ring) = self.remote_key_at(&next, cred) {
            atomic::write_replace(&self.remote_key_path(), ring.wrap(cred).as_bytes())?;
            std::fs::remove_file(&next).at(&next)?;
            atomic::sync_dir(&self.run_dir())?;
        }
        Ok(())
    }
}
