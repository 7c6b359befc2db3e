//! Accept: the owner adopts the current soul after a halt.

use crate::crypto::Credential;
use serde_json::Map;

use super::seal::{seal_locked, SealOptions, SealReport};
use crate::crypto::Keys;
use crate::error::Result;
use crate::format::checkpoint::Reason;
use crate::progress::Progress;
use crate::vault::Vault;

/// Seals the current soul with `reason=manual` and records an `accept`
/// event.
pub fn accept(
    vault: &Vault,
    cred: &Credential,
    shell: Option<String>,
    progress: &dyn Progress,
) -> Result<SealReport> {
    let _lock = vault.lock()?;
    let mut opts = SealOptions::new(Reason::Manual);
    opts.shell = shell;
    let report = seal_locked(vault, cred, &opts, progress)?;
    let mut data = Map::new();
    data.insert("seq".into(), report.seq.into());
    data.insert("soul".into(), report.soul.clone().into());
    data.insert("changes".into(), report.changes.summarize().to_value());
    vault.history_for(&Keys::of(cred)).append("accept", data)?;
    Ok(report)
}
