//! `selfsame status`

use selfsame::ops::wake::{wake_with_progress, WakeOptions};
use selfsame::Result;

use crate::context::Context;
use crate::output::{out, outln};

/// Show the head checkpoint and what `wake` would say, changing nothing.
///
/// No lock, no repair, no history event, no awake marker. Exit 0 when wake
/// would let the agent start, else the verdict's exit code.
///
/// An interrupted restore or migration is shown as pending, with what wake
/// will do about it (finish it, or undo a migration that had not run to its
/// end); when wake would finish it, the verdict is the one wake gives
/// afterwards, not a comparison of the half-swapped soul.
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {}

pub fn run(_args: Args, ctx: &Context) -> Result<i32> {
    let vault = ctx.open_vault()?;
    let token = ctx.vault_token(&vault)?;
    let opts = WakeOptions {
        dry_run: true,
        #[cfg(feature = "remote")]
        witness: super::wake::witness(&vault),
        ..Default::default()
    };
    let mut report = wake_with_progress(&vault, &token, &opts, &ctx.progress())?;
    crate::porcelain::wake(&mut report);
    if ctx.json {
        ctx.print_json(&serde_json::json!({
            "vault": vault.dir(),
            "soul_dir": vault.soul(),
            "head": report.seq,
            "awake_marker": vault.marker_present(),
            "wake": report,
        }));
    } else {
        outln!("vault: {}", vault.dir().display());
        outln!("soul:  {}", vault.soul().display());
        match report.seq {
            Some(seq) => outln!("head:  checkpoint {seq}"),
            None => outln!("head:  none"),
        }
        outln!(
            "awake marker: {}",
            if vault.marker_present() {
                "present (agent running or crashed)"
            } else {
                "absent (clean stop)"
            }
        );
        if let Some(w) = &report.remote {
            let at = w.remote_seq.map_or("nothing pushed yet".to_owned(), |s| {
                format!("at checkpoint {s}")
            });
            match w.state {
                "same" | "pushed" => outln!("remote: {} {at}, up to date", w.url),
                "behind" => outln!(
                    "remote: {} {at}, {} checkpoint(s) behind (`selfsame push` sends them)",
                    w.url,
                    w.behind
                ),
                "unreachable" => outln!(
                    "remote: {} unreachable: {}",
                    w.url,
                    w.error.as_deref().unwrap_or("")
                ),
                _ => outln!("remote: {} {at} ({})", w.url, w.state),
            }
        }
        if let Some(p) = &report.pending {
            outln!("pending: {}", crate::porcelain::pending(p));
        }
        out!("wake would say: ");
        super::wake::print_report(&report, ctx);
    }
    Ok(report.exit_code)
}
