//! A soul a swap cannot write: the error that names it and says what is
//! left pending.

use crate::error::{Error, Left};
use crate::vault::Vault;

/// What the owner can do after an error in the soul.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Next {
    /// Nothing was changed; the command can simply be run again.
    Restore,
    /// The journal stays pending.
    Pending,
    /// An undo stays pending.
    Abort,
}

/// Turns a failure to write inside the soul (permissions, a read-only
/// mount, an immutable attribute) into an error that names the soul
/// directory and what is left pending; other errors pass unchanged.
pub(crate) fn not_writable(vault: &Vault, e: Error, next: Next) -> Error {
    let soul = vault.soul();
    let denied = [
        rustix::io::Errno::ACCESS,
        rustix::io::Errno::PERM,
        rustix::io::Errno::ROFS,
    ];
    match e {
        Error::Io { path, source }
            if path.starts_with(&soul)
                && denied
                    .iter()
                    .any(|d| source.raw_os_error() == Some(d.raw_os_error())) =>
        {
            let left = match next {
                Next::Restore => Left::Nothing,
                Next::Pending if !vault.journal_path().exists() => Left::Nothing,
                Next::Pending => Left::Pending(
                    vault
                        .read_journal(None)
                        .ok()
                        .flatten()
                        .map_or_else(|| "restore".to_owned(), |j| j.event),
                ),
                Next::Abort => Left::Undo,
            };
            Error::SoulNotWritable {
                soul,
                path,
                source,
                left,
            }
        }
        e => e,
    }
}
