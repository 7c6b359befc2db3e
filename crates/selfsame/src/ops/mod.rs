//! One module per operation; each reads like its command.

pub mod accept;
pub mod diff;
pub mod init;
pub mod inspect;
pub mod migrate;
pub mod rekey;
pub mod restore;
pub mod seal;
pub mod verify;
pub mod wake;
