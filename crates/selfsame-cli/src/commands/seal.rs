//! `selfsame seal`

use selfsame::ops::seal::{seal, Reason, SealOptions};
use selfsame::Result;

use crate::context::Context;

/// Fingerprint the soul, store its snapshot and write a signed checkpoint.
///
/// Reasons:
///   rest       a clean stop (default): always writes a checkpoint and
///              removes the awake marker, so the next wake expects no change
///   heartbeat  a periodic seal while running: writes nothing when the soul
///              is unchanged
///   manual     the owner seals by hand
///
/// Call it from the agent's stop script, or at a quiescent point while it
/// runs (`--reason heartbeat`). A file that keeps changing while it is read
/// makes the seal fail rather than record bytes it did not store.
///
/// Ctrl-C lets the seal finish first (it says so on stderr), then stops the
/// process by SIGINT, so a script around it stops too; a second Ctrl-C
/// stops it at once, which loses nothing sealed either.
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Why: rest, heartbeat or manual.
    #[arg(long, default_value = "rest", value_parser = ["rest", "heartbeat", "manual"])]
    reason: String,
    /// The shell's version (default: $SELFSAME_SHELL_VERSION, else the head's).
    #[arg(long, value_name = "V")]
    shell_version: Option<String>,
}

pub fn run(args: Args, ctx: &Context) -> Result<i32> {
    let vault = ctx.open_vault()?;
    let token = ctx.vault_token(&vault)?;
    let mut opts = SealOptions::new(Reason::parse(&args.reason).expect("clap checked the reason"));
    opts.shell = super::shell_version(args.shell_version);
    let report = seal(&vault, &token, &opts, &ctx.progress())?;
    if ctx.json {
        ctx.print_json(&report);
    } else {
        super::print_seal(&report);
    }
    Ok(0)
}
