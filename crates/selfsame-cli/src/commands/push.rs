//! `selfsame push`

use selfsame::ops::push::push_with_progress;
use selfsame::Result;

use crate::context::Context;
use crate::output::outln;

/// Send the encrypted replica what it lacks.
///
/// Uploads, to the remote in `[remote]` of config.toml (`url =
/// "s3://BUCKET/PREFIX"`, optional `endpoint` and `region`), the objects
/// the remote lacks, then each new checkpoint with its history lines
/// (create-only), then moves the remote HEAD by compare-and-swap. Every
/// record is encrypted before it leaves the machine and named by a keyed
/// hash (docs/REMOTE.md).
///
/// Credentials come only from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
/// (and AWS_SESSION_TOKEN, AWS_REGION); they are never stored or printed.
///
/// Refused, with nothing moved, when the remote is ahead of this vault
/// (exit 5: an older vault was put back here) or holds another checkpoint
/// under a seq this vault sealed (exit 5, forked: the agent also runs
/// elsewhere). An unreachable remote is exit 1; run it again later.
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {}

pub fn run(_args: Args, ctx: &Context) -> Result<i32> {
    let vault = ctx.open_vault()?;
    let token = ctx.vault_token(&vault)?;
    let access = ctx.remote_access(&vault)?;
    let report = push_with_progress(&vault, &token, &access, &ctx.progress())?;
    if ctx.json {
        ctx.print_json(&report);
    } else if report.checkpoints == 0 {
        outln!("{} is up to date (checkpoint {})", report.url, report.head);
    } else {
        outln!(
            "pushed checkpoints {}-{} to {}: {} objects, {} bytes sent",
            report.remote_before.map_or(1, |r| r + 1),
            report.head,
            report.url,
            report.objects,
            report.bytes
        );
    }
    Ok(0)
}
