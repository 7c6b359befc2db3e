//! `selfsame forget`

use std::time::Duration;

use selfsame::ops::forget::{forget, seq_runs, ForgetOptions, ForgetReport, Policy};
use selfsame::{Error, Result};

use crate::context::Context;
use crate::output::outln;

/// Release old checkpoints' snapshots by a retention policy (restic's
/// meanings), so that `selfsame prune` can remove what only they needed.
///
/// Checkpoints are never deleted: they are the identity chain, a few hundred
/// bytes each. A forget releases a checkpoint's snapshot (its manifest and
/// files) and records which, in a signed `forget` history event. It takes
/// effect once the next checkpoint anchors the event (`selfsame seal
/// --reason manual` writes one; a heartbeat that finds the soul unchanged
/// writes none): from then on `verify` says "forgotten
/// by retention" for the snapshot instead of reporting missing objects,
/// `restore N` of it says so (exit 2), and `selfsame prune` removes what
/// only it needed. So a replica pushed from the vault always has the
/// events that explain what it lacks.
///
/// A snapshot is kept when any rule keeps it; the rest are forgotten:
///   --keep-last N      the N newest
///   --keep-hourly N    the newest of each of the last N hours that have one
///   --keep-daily N     ... days (also --keep-weekly, --keep-monthly,
///                      --keep-yearly; weeks run Monday to Sunday, UTC)
///   --keep-within D    every one sealed less than D before the newest
/// Never forgotten, whatever the policy: the head, the newest checkpoint a
/// healthy run marked good, the newest that approved protected paths, and
/// what a pending restore or migration names.
///
/// Without a --keep rule, the [retention] table of config.toml gives the
/// policy (the one `selfsame run` applies after its seals); an edit of
/// config.toml counts only once `selfsame accept` has adopted it (until
/// then forget refuses, exit 2).
///
/// Examples:
///   selfsame forget --keep-last 12 --keep-hourly 24 --dry-run
///   selfsame forget --keep-daily 7 --keep-weekly 4
///   selfsame seal --reason manual && selfsame prune
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Keep the N newest snapshots.
    #[arg(long, value_name = "N")]
    keep_last: Option<u64>,
    /// Keep the newest snapshot of each of the last N hours that have one.
    #[arg(long, value_name = "N")]
    keep_hourly: Option<u64>,
    /// Keep the newest snapshot of each of the last N days that have one.
    #[arg(long, value_name = "N")]
    keep_daily: Option<u64>,
    /// Keep the newest snapshot of each of the last N weeks that have one.
    #[arg(long, value_name = "N")]
    keep_weekly: Option<u64>,
    /// Keep the newest snapshot of each of the last N months that have one.
    #[arg(long, value_name = "N")]
    keep_monthly: Option<u64>,
    /// Keep the newest snapshot of each of the last N years that have one.
    #[arg(long, value_name = "N")]
    keep_yearly: Option<u64>,
    /// Keep every snapshot sealed less than this before the newest (`2h`, `7d`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    keep_within: Option<Duration>,
    /// Say what would be forgotten; write nothing.
    #[arg(long)]
    dry_run: bool,
}

fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 2h, 7d)"))
}

impl Args {
    /// The policy the flags give, if any.
    fn policy(&self) -> Option<Policy> {
        let p = Policy {
            last: self.keep_last.unwrap_or(0),
            hourly: self.keep_hourly.unwrap_or(0),
            daily: self.keep_daily.unwrap_or(0),
            weekly: self.keep_weekly.unwrap_or(0),
            monthly: self.keep_monthly.unwrap_or(0),
            yearly: self.keep_yearly.unwrap_or(0),
            within: self.keep_within,
        };
        let given = [
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ]
        .iter()
        .any(Option::is_some)
            || self.keep_within.is_some();
        given.then_some(p)
    }
}

pub fn run(args: Args, ctx: &Context) -> Result<i32> {
    let vault = ctx.open_vault()?;
    let from_config = args.policy().is_none();
    let policy = match args.policy() {
        Some(p) => p,
        None => vault
            .config
            .retention
            .as_ref()
            .map(|r| r.policy(&vault.config_path()))
            .transpose()?
            .flatten()
            .ok_or_else(|| {
                Error::Usage(
                    "no retention policy: give a --keep-* rule, or set one under [retention] in config.toml (see `selfsame forget --help`)".into(),
                )
            })?,
    };
    let token = ctx.vault_token(&vault)?;
    let progress = ctx.progress();
    let opts = ForgetOptions {
        policy,
        dry_run: args.dry_run,
        from_config,
    };
    let report = forget(&vault, &token, &opts, &progress)?;
    if ctx.json {
        ctx.print_json(&report);
        return Ok(0);
    }
    print(&report);
    Ok(0)
}

fn print(r: &ForgetReport) {
    for k in &r.kept {
        outln!(
            "keep {:>8}  {}  {}",
            k.seq,
            k.sealed_at,
            k.reasons.join(", ")
        );
    }
    let verb = if r.dry_run { "would forget" } else { "forgot" };
    if r.forgotten.is_empty() {
        outln!(
            "kept {} snapshots; nothing to forget ({} forgotten before)",
            r.kept.len(),
            r.forgotten_before
        );
    } else {
        outln!(
            "kept {} snapshots; {verb} {}: checkpoints {}",
            r.kept.len(),
            r.forgotten.len(),
            seq_runs(&r.forgotten)
        );
        if !r.dry_run {
            outln!(
                "  in effect from the next checkpoint on (`selfsame seal --reason manual` writes one); `selfsame prune` after it removes what only they needed"
            );
        }
    }
}
