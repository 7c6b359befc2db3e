//! Protected paths: the parts of the soul whose changes no seal adopts
//! without the owner's approval (`protect` in config.toml).
//!
//! The **approved** version of a protected path is the head checkpoint's.
//! Every comparison is made in the version of the head's manifest, as wake
//! compares the whole soul. What this module shares with seal, wake and
//! approve: the protected paths that differ ([`Pair`]), the manifest a seal
//! writes when it keeps the approved versions ([`merged`]), the checkpoint
//! field `protected`, and the patch the owner reads. [`revert`] puts the
//! approved versions back; [`Watch`] is the supervisor's cheap, stat-based
//! look at them between heartbeats.

mod compare;
mod revert;
mod watch;

pub(crate) use compare::{changes_of, field, merged, pairs, patch, read_entry, Pair};
pub use revert::Reverted;
pub(crate) use revert::{finish_interrupted, revert_locked};
pub use watch::{Finding, Watch};
