//! `selfsame prune`

use selfsame::ops::forget::seq_runs;
use selfsame::ops::prune::{prune, PruneReport};
use selfsame::Result;

use crate::context::Context;
use crate::output::outln;

/// Remove the stored objects that no kept checkpoint needs.
///
/// A checkpoint is kept unless `selfsame forget` released its snapshot and
/// a checkpoint written since anchors that forget; the head always is. Prune keeps everything a kept checkpoint reaches (its
/// sealed config, its manifest, every file's content) and removes the
/// rest, holding the vault lock. A crash at any point loses nothing a kept
/// checkpoint needs and leaves a vault that verifies; run it again to
/// finish. It refuses a vault whose checkpoints, history or head snapshot
/// do not verify (what `selfsame wake` checks), and one with an
/// interrupted restore or migration pending. `selfsame run` prunes after each forget
/// that [retention] in config.toml makes.
///
/// Examples:
///   selfsame prune --dry-run
///   selfsame prune
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Say what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
}

pub fn run(args: Args, ctx: &Context) -> Result<i32> {
    let vault = ctx.open_vault()?;
    let token = ctx.vault_token(&vault)?;
    let report = prune(&vault, &token, args.dry_run, &ctx.progress())?;
    if ctx.json {
        ctx.print_json(&report);
    } else {
        print(&report);
    }
    Ok(0)
}

pub fn print(r: &PruneReport) {
    let verb = if r.dry_run { "would remove" } else { "removed" };
    outln!(
        "{verb} {} objects ({} bytes); kept {} objects for {} checkpoints",
        r.objects_removed,
        r.bytes_removed,
        r.objects_kept,
        r.checkpoints_kept
    );
    if !r.awaiting_anchor.is_empty() {
        let (noun, verb) = match r.awaiting_anchor.len() {
            1 => ("checkpoint", "is"),
            _ => ("checkpoints", "are"),
        };
        outln!(
            "  {noun} {} {verb} forgotten, not yet in effect (no checkpoint anchors the forget): \
             `selfsame seal --reason manual`, then `selfsame prune` removes what only they needed",
            seq_runs(&r.awaiting_anchor)
        );
    }
}
