//! One module per operation; each reads like its command. What several
//! commands share lives below them all: the head and manifest lookups
//! (`head`), the vault checks (`checks`) and the journaled swap that
//! restore and migrate use (`swap`).

pub mod accept;
pub mod approve;
pub mod attest;
pub mod bind;
pub mod cat;
pub(crate) mod checks;
#[cfg(feature = "remote")]
pub mod clone;
pub mod diff;
pub mod forget;
pub(crate) mod handover;
pub(crate) mod head;
pub mod identity;
pub mod init;
pub mod log;
pub mod ls;
pub mod migrate;
pub mod protect;
pub mod prune;
#[cfg(feature = "remote")]
pub mod push;
pub mod quarantine;
pub mod rekey;
pub mod restore;
pub mod seal;
pub mod show;
pub(crate) mod swap;
pub mod verify;
pub mod wake;
