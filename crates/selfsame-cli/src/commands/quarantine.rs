//! `selfsame quarantine list|drop|prune`

use std::time::Duration;

use selfsame::ops::quarantine::{self, DropReport, Entry};
use selfsame::Result;

use crate::context::Context;
use crate::output::outln;

/// Look at and let go of what restores, rollbacks, migrations and reverts
/// moved aside.
///
/// Every restore, rollback and migration moves the soul state it replaces
/// into .selfsame/quarantine/<time>-<what>/, and a revert moves the changed
/// protected files there. selfsame never deletes them on its own: `drop`
/// and `prune` are yours, and `selfsame run` prunes only when config.toml
/// sets `quarantine_older_than` under [retention]. Each removal is a
/// `quarantine-drop` history event, written before anything goes (an
/// entry a crash left half removed is still listed: drop it again). An entry a pending restore or
/// migration still needs is never removed.
///
/// Examples:
///   selfsame quarantine list
///   selfsame quarantine drop 2026-11-25T010030123Z-restore-from-41
///   selfsame quarantine prune --older-than 30d --dry-run
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(clap::Subcommand, Debug)]
enum Sub {
    /// List the entries, oldest first: id, when, files and bytes.
    List,
    /// Remove entries by id (as `list` shows them).
    Drop {
        /// The entries to remove.
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
    },
    /// Remove every entry older than a duration.
    Prune {
        /// How old an entry must be to go (`30d`, `12h`).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        older_than: Duration,
        /// Say what would go; remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 30d, 12h)"))
}

pub fn run(args: Args, ctx: &Context) -> Result<i32> {
    let vault = ctx.open_vault()?;
    match args.command {
        Sub::List => {
            let entries = quarantine::list(&vault)?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({ "entries": entries }));
            } else if entries.is_empty() {
                outln!("quarantine is empty");
            } else {
                for e in &entries {
                    outln!("{}", line(e));
                }
            }
        }
        Sub::Drop { ids } => {
            let token = ctx.vault_token(&vault)?;
            print(ctx, &quarantine::drop(&vault, &token, &ids)?);
        }
        Sub::Prune {
            older_than,
            dry_run,
        } => {
            let token = ctx.vault_token(&vault)?;
            print(
                ctx,
                &quarantine::prune(&vault, &token, older_than, dry_run)?,
            );
        }
    }
    Ok(0)
}

fn line(e: &Entry) -> String {
    format!(
        "{}  {}  {} {}, {} bytes{}",
        e.id,
        e.at,
        e.files,
        if e.files == 1 { "file" } else { "files" },
        e.bytes,
        if e.pending {
            "  (the pending restore's)"
        } else {
            ""
        }
    )
}

fn print(ctx: &Context, r: &DropReport) {
    if ctx.json {
        ctx.print_json(r);
        return;
    }
    let verb = if r.dry_run { "would drop" } else { "dropped" };
    for e in &r.dropped {
        outln!("{verb} {}", line(e));
    }
    outln!(
        "{verb} {} {} ({} bytes)",
        r.dropped.len(),
        if r.dropped.len() == 1 {
            "entry"
        } else {
            "entries"
        },
        r.bytes
    );
}
