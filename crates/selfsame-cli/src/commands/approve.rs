//! `selfsame approve`

use selfsame::ops::approve::{approve, ApproveOptions};
use selfsame::Result;

use crate::context::Context;
use crate::output::{out, outln};

/// Adopt changes of protected paths: show their diff, then seal
/// (reason=approve) and log an `approve` event.
///
/// Paths listed in `protect` (config.toml) are the agent's identity — its
/// SOUL.md, IDENTITY.md, AGENTS.md. No other seal adopts a change of them:
/// `seal`, `accept` and heartbeats keep the approved version in the
/// checkpoint, `wake` calls the change `tampered` (protected-changed) and
/// reverts it (or halts, with `protected = "halt"`), and `selfsame run`
/// reverts it within --protect-interval. This is the one way to adopt one.
///
///   selfsame approve --dry-run     show the diff, seal nothing
///   selfsame approve               adopt every changed protected path
///   selfsame approve SOUL.md       adopt only SOUL.md's change
///
/// Under `selfsame run`, an edit to a protected file is reverted within
/// seconds (the edit goes to quarantine): stop the agent to edit, then
/// approve.
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Protected paths to adopt (and everything below them); default: all
    /// that changed.
    #[arg(value_name = "PATH")]
    paths: Vec<String>,
    /// Show the diff only.
    #[arg(long, short = 'n')]
    dry_run: bool,
    /// The shell's version (default: $SELFSAME_SHELL_VERSION, else the head's).
    #[arg(long, value_name = "V")]
    shell_version: Option<String>,
}

pub fn run(args: Args, ctx: &Context) -> Result<i32> {
    let vault = ctx.open_vault()?;
    let token = ctx.vault_token(&vault)?;
    let opts = ApproveOptions {
        paths: args.paths,
        shell: super::shell_version(args.shell_version),
        dry_run: args.dry_run,
    };
    let report = approve(&vault, &token, &opts, &ctx.progress())?;
    if ctx.json {
        ctx.print_json(&report);
        return Ok(0);
    }
    if report.paths.is_empty() {
        outln!("no protected path changed: nothing to approve");
        return Ok(0);
    }
    out!("{}", report.patch);
    match &report.seal {
        Some(seal) => {
            out!("approved {}: ", report.paths.join(", "));
            super::print_seal(seal);
        }
        None => outln!(
            "would approve {} (dry run: nothing sealed)",
            report.paths.join(", ")
        ),
    }
    Ok(0)
}
