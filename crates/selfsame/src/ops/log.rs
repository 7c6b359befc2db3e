//! Log: the history as stored, every event in order, and what is wrong
//! with its chain.

pub use crate::format::HistoryLine;

use crate::error::Result;
use crate::vault::Vault;

/// The history as read.
#[derive(Debug, Clone)]
pub struct Log {
    /// The events that parsed, in order.
    pub entries: Vec<Entry>,
    /// What is wrong: unreadable lines, broken `prev` links, bad numbering.
    pub problems: Vec<String>,
}

/// One event of the history.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The event.
    pub line: HistoryLine,
    /// The line's bytes, exactly as stored, without the newline.
    pub raw: String,
}

/// Reads the whole history (no lock: appends are whole lines).
pub fn log(vault: &Vault) -> Result<Log> {
    let read = vault.history().read_all()?;
    Ok(Log {
        entries: read
            .lines
            .into_iter()
            .map(|l| Entry {
                line: l.event,
                raw: l.raw,
            })
            .collect(),
        problems: read.problems,
    })
}
