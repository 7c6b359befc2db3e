//! `selfsame diff`

use selfsame::ops::diff::{diff, patch, Side};
use selfsame::Result;

use crate::context::Context;
use crate::output::{out, outln};

/// Show added, removed, modified and mode-changed paths.
///
///   selfsame diff          head checkpoint vs the soul on disk now
///   selfsame diff 3        checkpoint 3 vs the soul on disk now
///   selfsame diff 3 5      checkpoint 3 vs checkpoint 5
///   selfsame diff -p 3     with what changed inside each file
///
/// A side is a seq, `head` or `current`. With -p, text files show a
/// unified diff, binary files are named as such, mode changes show the old
/// and new mode (git's patch format).
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// From (default: head).
    a: Option<String>,
    /// To (default: current).
    b: Option<String>,
    /// Show each changed file's patch (on a terminal, control characters
    /// in it are shown as ^[, ^M, …, not obeyed; piped, it is as it is).
    #[arg(short = 'p', long = "patch")]
    patch: bool,
}

pub fn run(args: Args, ctx: &Context) -> Result<i32> {
    let vault = ctx.open_vault()?;
    let token = ctx.vault_token(&vault)?;
    let a = Side::parse(args.a.as_deref().unwrap_or("head"))?;
    let b = Side::parse(args.b.as_deref().unwrap_or("current"))?;
    if args.patch {
        let report = patch(&vault, &token, a, b, &ctx.progress())?;
        if ctx.json {
            ctx.print_json(&report);
        } else if report.patches.is_empty() {
            outln!("no changes");
        } else {
            // On a terminal, control bytes of the soul are shown, not
            // obeyed; piped, the patch is as it is (for `git apply`).
            let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
            for p in &report.patches {
                if terminal {
                    out!("{}", crate::output::visible(&p.text));
                } else {
                    out!("{}", p.text);
                }
            }
        }
        return Ok(0);
    }
    let changes = diff(&vault, &token, a, b, &ctx.progress())?;
    if ctx.json {
        ctx.print_json(&changes);
        return Ok(0);
    }
    if changes.is_empty() {
        outln!("no changes");
    }
    for (mark, list) in [
        ("+", &changes.added),
        ("-", &changes.removed),
        ("M", &changes.modified),
        ("x", &changes.mode_changed),
    ] {
        for p in list {
            outln!("{mark} {p}");
        }
    }
    Ok(0)
}
