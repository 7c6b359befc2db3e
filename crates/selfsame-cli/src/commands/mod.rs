//! One file per command.

pub mod accept;
pub mod approve;
pub mod attest;
pub mod bind;
pub mod cat;
#[cfg(feature = "remote")]
pub mod clone;
pub mod demo;
pub mod diff;
pub mod forget;
pub mod identity;
pub mod init;
pub mod log;
pub mod ls;
pub mod migrate;
pub mod prune;
#[cfg(feature = "remote")]
pub mod push;
pub mod quarantine;
pub mod rekey;
pub mod restore;
pub mod run;
pub mod seal;
pub mod show;
pub mod status;
pub mod telegram;
pub mod verify;
pub mod wake;

use crate::output::{errln, outln};

/// Prints a seal's outcome for people.
pub fn print_seal(r: &selfsame::ops::seal::SealReport) {
    if r.written {
        outln!(
            "sealed checkpoint {} ({}): {} files, {} bytes, soul sha256:{}",
            r.seq,
            r.reason,
            r.files,
            r.bytes,
            &r.soul[..12]
        );
        if r.reason == "init" {
            // Every path is new; the count above leaves directories out.
            let paths = r.changes.added.len() as u64;
            let dirs = paths.saturating_sub(r.files);
            outln!(
                "  all {paths} paths are new: {} files and symlinks, {dirs} {}",
                r.files,
                if dirs == 1 {
                    "directory"
                } else {
                    "directories"
                }
            );
        } else if !r.changes.is_empty() {
            outln!("  changes: {}", r.changes.summary());
        }
        if r.new_objects > 0 {
            outln!(
                "  stored {} new objects ({} bytes)",
                r.new_objects,
                r.new_bytes
            );
        }
    } else {
        outln!("unchanged since checkpoint {}: nothing written", r.seq);
    }
    if !r.unapproved.is_empty() {
        errln!(
            "selfsame: protected {} changed and was not sealed: the checkpoint keeps the approved version. `selfsame approve` adopts the change; `selfsame wake --policy protected=revert` puts the approved version back",
            r.unapproved.join(", ")
        );
    }
}

/// Parses a `--shell-version`, falling back to `SELFSAME_SHELL_VERSION`.
pub fn shell_version(arg: Option<String>) -> Option<String> {
    arg.or_else(crate::context::shell_version_env)
}
