//! `selfsame verify`

use selfsame::ops::verify::verify;
use selfsame::Result;

use crate::context::Context;
use crate::output::{out, outln};

/// Check the whole vault: every checkpoint's MAC, the `prev` chain, HEAD,
/// the history chain and its anchors, every referenced object present, and
/// that .selfsame/config.toml is the one the newest checkpoint was sealed
/// with.
///
/// With --read-data every object a kept checkpoint names (each file of
/// each snapshot, each manifest, each sealed config) is read back and
/// re-hashed; objects nothing names are prune's to remove, not read.
/// Exit 0 when clean; otherwise each problem is listed and the exit code is
/// the first problem's verdict's (3 config changed, 4 identity, 5 corrupted
/// or rolled back).
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Re-hash every object a kept checkpoint names.
    #[arg(long)]
    read_data: bool,
}

pub fn run(args: Args, ctx: &Context) -> Result<i32> {
    let vault = ctx.open_vault()?;
    let token = ctx.vault_token(&vault)?;
    let mut report = verify(&vault, &token, args.read_data, &ctx.progress())?;
    crate::porcelain::verify(&mut report);
    if ctx.json {
        ctx.print_json(&report);
        return Ok(report.exit_code);
    }
    for p in &report.problems {
        outln!("problem ({}): {}", p.detail, p.message);
    }
    for n in &report.notes {
        outln!("note: {n}");
    }
    if report.problems.is_empty() {
        out!(
            "ok: {} checkpoints, {} history lines",
            report.checkpoints,
            report.history_lines
        );
        if args.read_data {
            out!(
                ", {} objects ({} bytes) re-hashed",
                report.objects_read,
                report.bytes_read
            );
        }
        outln!();
    } else {
        outln!("{} problems", report.problems.len());
    }
    Ok(report.exit_code)
}
