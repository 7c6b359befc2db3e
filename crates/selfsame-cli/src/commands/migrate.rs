//! `selfsame migrate`

use selfsame::ops::migrate::DEFAULT_TIMEOUT;
use selfsame::ops::migrate::{migrate, MigrateOptions, MigrateReport, Registry};
use selfsame::{Error, Result};

use crate::context::Context;
use crate::output::outln;

/// Move the soul to a newer format: run each pending migration once, in
/// order, each on a staged copy, swapped in atomically and checkpointed.
///
/// Migrations are executables named v<N>-<slug> (any language) in the
/// migrations directory (config `migrations`, default migrations/ beside
/// .selfsame/). v<N>-… turns a soul at v<N-1> into v<N>; it runs with
///   SELFSAME_SOUL   the staging dir (also its working directory)
///   SELFSAME_FROM   e.g. v1
///   SELFSAME_TO     e.g. v2
/// and must exit 0. The soul's format is the head checkpoint's `format`.
///
/// On failure or timeout the soul is untouched, the staging dir is kept in
/// .selfsame/quarantine/, and the exit code is 6. An up-to-date soul: says
/// so and writes nothing.
///
/// Examples:
///   selfsame migrate --dry-run     # list what would run
///   selfsame migrate               # up to the newest migration
///   selfsame migrate --to v3
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The format to reach (default: the newest any migration writes).
    #[arg(long, value_name = "vN")]
    to: Option<String>,
    /// List the pending migrations; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// How long each migration may run (e.g. 30s, 10m).
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
    /// This shell's version, recorded on the checkpoints (default:
    /// $SELFSAME_SHELL_VERSION).
    #[arg(long, value_name = "V")]
    shell_version: Option<String>,
}

pub fn run(args: Args, ctx: &Context) -> Result<i32> {
    let vault = ctx.open_vault()?;
    let token = ctx.vault_token(&vault)?;
    let to = args
        .to
        .as_deref()
        .map(selfsame::ops::migrate::check_format_tag)
        .transpose()
        .map_err(|e| Error::Usage(format!("--to: {e}")))?;
    let timeout = match &args.timeout {
        Some(t) => humantime::parse_duration(t)
            .map_err(|e| Error::Usage(format!("--timeout {t:?}: {e} (e.g. 30s, 10m)")))?,
        None => DEFAULT_TIMEOUT,
    };
    let opts = MigrateOptions {
        to,
        dry_run: args.dry_run,
        timeout,
        shell: super::shell_version(args.shell_version),
    };
    let registry = Registry::for_vault(&vault)?;
    let report = migrate(&vault, &token, &registry, &opts, &ctx.progress())?;
    if ctx.json {
        ctx.print_json(&report);
    } else {
        print_report(&report);
    }
    Ok(report.exit_code)
}

fn print_report(r: &MigrateReport) {
    if r.up_to_date {
        outln!(
            "the soul is at {}: no migration pending; nothing written",
            r.from
        );
        return;
    }
    if r.dry_run {
        outln!(
            "the soul is at {}; would migrate to {}: {}",
            r.from,
            r.to,
            r.pending.join(", ")
        );
        return;
    }
    if let Some(seq) = r.sealed_before {
        outln!("sealed the soul as it was first: checkpoint {seq} (migrate)");
    }
    for s in &r.applied {
        outln!(
            "migrated {} -> {} ({}, {} ms): sealed checkpoint {} (migrate)",
            s.from,
            s.to,
            s.migration,
            s.duration_ms,
            s.seq
        );
        if !s.changes.is_empty() {
            outln!("  changes: {}", s.changes.summary());
        }
        outln!("  the soul before it is in .selfsame/{}", s.quarantine);
    }
    if let Some(f) = &r.failed {
        outln!(
            "migration {} ({} -> {}) failed: {}",
            f.migration,
            f.from,
            f.to,
            f.error
        );
        outln!(
            "  the soul is untouched at {}; the staging dir is in .selfsame/{}",
            r.format,
            f.staging
        );
    } else {
        outln!("the soul is at {}", r.format);
    }
}
