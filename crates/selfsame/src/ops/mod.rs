//! One module per operation; each reads like its command. What several
//! commands share lives below them all: the head and manifest lookups
//! ([`head`]), the vault checks ([`checks`]) and the journaled swap
//! ([`swap`]).

pub mod accept;
pub mod checks;
pub mod diff;
pub mod head;
pub mod init;
pub mod migrate;
pub mod rekey;
pub mod restore;
pub mod seal;
pub mod swap;
pub mod verify;
pub mod wake;
