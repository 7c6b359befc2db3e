//! Boot assessment, systemd-boot style: a start that dies within probation
//! is a failed try. The count lives in `run/boot-assessment.json`, so a
//! supervisor that is itself restarted (systemd, `kill -9`) carries on
//! counting instead of starting over.

use serde::{Deserialize, Serialize};

use crate::crypto::Credential;

use crate::crypto::Keys;
use crate::error::Result;
use crate::ops::head::current_head;
use crate::ops::restore::last_good;
use crate::vault::{atomic, read, StoredCheckpoint, Vault};

const FILE: &str = "boot-assessment.json";

/// The persisted assessment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Starts that died within probation since the last healthy run.
    pub failed: u32,
    /// Whether a suspect change is in play: a wake accepted a drift, or a
    /// new shell version started. Only then can a rollback help.
    pub suspect: bool,
    /// The checkpoint already rolled back to in this streak; a second
    /// exhaustion halts instead of rolling back again.
    pub rolled_back_to: Option<u64>,
}

impl State {
    /// Reads the state; a missing or unreadable file is a fresh start.
    pub fn load(vault: &Vault) -> State {
        read::read_capped(&vault.run_dir().join(FILE), read::MAX_RUN_FILE)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Writes the state atomically.
    pub fn save(&self, vault: &Vault) -> Result<()> {
        let text = serde_json::to_string(self).expect("state serializes");
        atomic::write_replace(&vault.run_dir().join(FILE), text.as_bytes())
    }
}

/// What to do after a failed try.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Tries are left (or no change is suspect): restart.
    Retry,
    /// Roll back to this checkpoint, the newest followed by a healthy run.
    Rollback(Box<StoredCheckpoint>),
    /// Nothing left to try; the reason, for people.
    Halt(String),
}

/// Decides after `state.failed` failed tries out of `tries`.
pub fn decide(vault: &Vault, cred: &Credential, state: &State, tries: u32) -> Result<Decision> {
    if state.failed < tries {
        return Ok(Decision::Retry);
    }
    if let Some(seq) = state.rolled_back_to {
        return Ok(Decision::Halt(format!(
            "the agent still dies within probation after the rollback to checkpoint {seq} ({} tries)",
            state.failed
        )));
    }
    if !state.suspect {
        // Neither the soul nor the shell changed: a rollback would undo
        // nothing that could be the cause.
        return Ok(Decision::Retry);
    }
    let Some(head) = current_head(vault, cred)? else {
        return Ok(Decision::Halt("the vault has no checkpoint".into()));
    };
    let good = last_good(vault, cred, &head)?;
    if !is_marked_good(vault, cred, &head, good.ckpt.seq)? {
        return Ok(Decision::Halt(format!(
            "the agent died within probation {} times, and no checkpoint was ever followed by a healthy run, so there is nothing to roll back to",
            state.failed
        )));
    }
    if good.ckpt.soul == head.ckpt.soul {
        return Ok(Decision::Halt(format!(
            "the agent died within probation {} times on the soul of checkpoint {}, which is already the last good one",
            state.failed, good.ckpt.seq
        )));
    }
    Ok(Decision::Rollback(Box::new(good)))
}

/// Whether history has a trusted `good` event for `seq` (`last_good` falls
/// back to the head when there is none).
fn is_marked_good(
    vault: &Vault,
    cred: &Credential,
    head: &StoredCheckpoint,
    seq: u64,
) -> Result<bool> {
    Ok(vault
        .history()
        .read_all()?
        .trusted_lines(&head.ckpt.log, &Keys::of(cred))
        .iter()
        .any(|l| l.event.event == "good" && l.event.get_u64("seq") == Some(seq)))
}
