//! `run/restore.journal`: the signed record of a journaled swap in
//! progress (format: [`crate::format::journal`]). Written before each
//! phase; read by the next command, which finishes or undoes the swap.

use std::fs;
use std::path::PathBuf;

use super::{atomic, read, Vault};
use crate::crypto::Keys;
use crate::error::{Damage, Error, IoContext, Result};
use crate::format::journal::{self, Journal};

const JOURNAL: &str = "restore.journal";

impl Vault {
    /// `run/restore.journal`.
    pub(crate) fn journal_path(&self) -> PathBuf {
        self.run_dir().join(JOURNAL)
    }

    /// Writes the journal: a line with its MAC, then the JSON body.
    pub(crate) fn write_journal(&self, keys: &Keys, j: &Journal) -> Result<()> {
        let body = j.to_body();
        let text = journal::join(&keys.journal_mac(&body), &body);
        atomic::write_replace(&self.journal_path(), text.as_bytes())
    }

    /// Removes the journal: the swap is over.
    pub(crate) fn remove_journal(&self) -> Result<()> {
        let path = self.journal_path();
        fs::remove_file(&path).at(&path)?;
        atomic::sync_dir(&self.run_dir())
    }

    /// Reads the journal. With `keys`, its MAC must verify and its fields
    /// must be sane; a journal that fails is corruption, never acted on.
    pub(crate) fn read_journal(&self, keys: Option<&Keys>) -> Result<Option<Journal>> {
        let path = self.journal_path();
        let Some(bytes) = read::read_capped(&path, read::MAX_RUN_FILE)? else {
            return Ok(None);
        };
        let bad = |why| Error::corrupt(&path, Damage::Journal(why));
        let (mac, body) = journal::split(&bytes).map_err(bad)?;
        if let Some(keys) = keys {
            if !keys.journal_valid(body, mac) {
                return Err(bad(journal::JournalError::BadMac));
            }
        }
        Journal::parse(body).map(Some).map_err(bad)
    }

    /// Describes an interrupted swap, if one is pending (its journal is
    /// read, not checked).
    pub(crate) fn pending_swap(&self) -> Result<Option<String>> {
        Ok(self.read_journal(None)?.map(|j| {
            format!(
                "{} to checkpoint {}, phase {}{}",
                j.event,
                j.target,
                j.phase.as_str(),
                if j.abort.is_some() {
                    ", being undone"
                } else {
                    ""
                }
            )
        }))
    }
}
