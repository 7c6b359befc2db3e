//! `selfsame restore`

use selfsame::ops::restore::{restore, resume, Target};
use selfsame::{Error, Result};

use crate::context::Context;
use crate::output::outln;

/// Put a checkpoint's soul back; the current soul goes to quarantine whole.
///
///   selfsame restore            the newest checkpoint (head)
///   selfsame restore 3          checkpoint 3
///   selfsame restore last-good  the newest checkpoint a healthy run marked good
///   selfsame restore --resume   finish a restore that was interrupted
///
/// The checkpoint is written into a staging directory inside the soul,
/// every object re-hashed, then swapped in entry by entry (so a soul that is
/// a mount point works). Nothing is deleted: the previous soul is kept in
/// .selfsame/quarantine/. Ends with a `restore` checkpoint.
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// A seq, `head` or `last-good`.
    target: Option<String>,
    /// Finish an interrupted restore instead.
    #[arg(long, conflicts_with = "target")]
    resume: bool,
}

pub fn run(args: Args, ctx: &Context) -> Result<i32> {
    let vault = ctx.open_vault()?;
    let token = ctx.vault_token(&vault)?;
    let progress = ctx.progress();
    let report = if args.resume {
        resume(&vault, &token, &progress)?
            .ok_or_else(|| Error::Usage("no interrupted restore to resume".into()))?
    } else {
        let target = Target::parse(args.target.as_deref().unwrap_or("head"))?;
        restore(&vault, &token, target, &progress)?
    };
    if ctx.json {
        ctx.print_json(&report);
    } else {
        outln!(
            "restored checkpoint {} ({} files, {} bytes); sealed checkpoint {} (restore)",
            report.target,
            report.files,
            report.bytes,
            report.seq
        );
        outln!("  the previous soul is in .selfsame/{}", report.quarantine);
    }
    Ok(0)
}
