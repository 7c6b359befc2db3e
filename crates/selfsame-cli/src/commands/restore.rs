//! `selfsame restore`

use selfsame::ops::restore::{abort, restore, resume, Target};
use selfsame::{Error, Result};

use crate::context::Context;
use crate::output::outln;

/// Put a checkpoint's soul back; the current soul goes to quarantine whole.
///
///   selfsame restore            the newest checkpoint (head)
///   selfsame restore 3          checkpoint 3
///   selfsame restore last-good  the newest checkpoint a healthy run marked good
///                               (the head when no trusted `good` event names one)
///   selfsame restore --resume   finish a restore that was interrupted
///   selfsame restore --abort    undo it instead: the soul goes back to how it
///                               was before that restore began
///
/// The checkpoint is written into a staging directory inside the soul,
/// every object re-hashed, then swapped in entry by entry (so a soul that is
/// a mount point works). Nothing is deleted: the previous soul is kept in
/// .selfsame/quarantine/. Ends with a `restore` checkpoint.
///
/// A restore acts on the config the newest checkpoint was sealed with: a
/// changed .selfsame/config.toml is moved to quarantine and the sealed one
/// written back (`selfsame accept` adopts a config change instead).
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// A seq, `head` or `last-good`.
    target: Option<String>,
    /// Finish an interrupted restore instead.
    #[arg(long, conflicts_with_all = ["target", "abort"])]
    resume: bool,
    /// Undo an interrupted restore (or migration) that has not sealed yet.
    #[arg(long, conflicts_with = "target")]
    abort: bool,
}

pub fn run(args: Args, ctx: &Context) -> Result<i32> {
    let vault = ctx.open_vault()?;
    let token = ctx.vault_token(&vault)?;
    let progress = ctx.progress();
    let nothing = || Error::Usage("no interrupted restore is pending".into());
    let report = if args.resume {
        resume(&vault, &token, &progress)?.ok_or_else(nothing)?
    } else if args.abort {
        abort(&vault, &token, &progress)?.ok_or_else(nothing)?
    } else {
        let target = Target::parse(args.target.as_deref().unwrap_or("head"))?;
        restore(&vault, &token, target, &progress)?
    };
    if ctx.json {
        ctx.print_json(&report);
        return Ok(0);
    }
    if report.aborted {
        outln!(
            "undid the interrupted {} to checkpoint {}: the soul is back as it was before it; nothing was sealed (head: checkpoint {})",
            report.event, report.target, report.seq
        );
        if !report.quarantine.is_empty() {
            outln!(
                "  what it had swapped in is in .selfsame/{}",
                report.quarantine
            );
        }
    } else if report.undone {
        outln!(
            "undid an interrupted migration: the soul stays at checkpoint {} (staging dir in .selfsame/{})",
            report.seq, report.quarantine
        );
    } else {
        outln!(
            "restored checkpoint {} ({} files, {} bytes); sealed checkpoint {} ({})",
            report.target,
            report.files,
            report.bytes,
            report.seq,
            report.event
        );
        outln!("  the previous soul is in .selfsame/{}", report.quarantine);
    }
    if let Some(q) = &report.quarantine_config {
        outln!(
            "  config.toml differed from the sealed config: the sealed one was written back; the changed one is in .selfsame/{q}"
        );
    }
    Ok(0)
}
