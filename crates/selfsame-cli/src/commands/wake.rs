//! `selfsame wake`

use selfsame::ops::migrate::Reads;
use selfsame::ops::wake::{wake_with_progress, WakeOptions, WakeReport};
use selfsame::{Config, Error, MigrationPolicy, Result, Vault};
use std::time::Duration;

use crate::context::Context;
use crate::output::outln;

/// Check the soul and vault on start; say whether the agent may start.
///
/// Re-hashes the whole soul, verifies every checkpoint's MAC, the chain,
/// HEAD and history, then names a verdict and acts by policy:
///
///   verdict            default action                  exit
///   verified           start                           0
///   drifted            accept (seal `recover`), start  0 (3 if halted)
///   tampered           halt                            3
///     protected-changed  revert (the approved versions    0 (3 if halted)
///                        back, the changed in quarantine)
///   identity-mismatch  halt (no policy overrides)      4
///   corrupted          halt                            5
///   rolled-back        halt                            5
///   incompatible       halt (soul format unreadable)   6
///
/// drifted = the soul changed and the last run did not stop cleanly (normal
/// after a crash); tampered = it changed while the agent was at rest, or
/// .selfsame/config.toml changed since the newest checkpoint
/// (`config-changed`: always halts, whatever the policies say; `selfsame
/// accept` adopts an intended change), or a path listed in `protect` changed
/// (`protected-changed`, whatever the last stop was: `[policy] protected`
/// reverts it by default; only `selfsame approve` adopts it).
/// With an accept or rollback policy the exit code is 0: the agent may start.
///
/// Examples:
///   selfsame wake || exit $?                   # in a start script
///   selfsame wake --policy tampered=rollback   # restore instead of halting
///   selfsame wake --json | jq .verdict
///   selfsame wake --reads v2..v3 --policy needs-migration=migrate
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(flatten)]
    flags: WakeFlags,
}

/// The flags that shape a wake; `selfsame run` takes the same ones.
#[derive(clap::Args, Debug)]
pub struct WakeFlags {
    /// VERDICT=ACTION (drifted|tampered = accept|rollback|halt;
    /// protected = revert|halt; needs-migration = migrate|warn); repeatable.
    #[arg(long, value_name = "VERDICT=ACTION")]
    policy: Vec<String>,
    /// This shell's version (default: $SELFSAME_SHELL_VERSION).
    #[arg(long, value_name = "V")]
    shell_version: Option<String>,
    /// Warn `stale` when the head is older than this (e.g. 7d; 0 = never).
    #[arg(long, value_name = "DURATION")]
    max_age: Option<String>,
    /// Trust the stat cache (size, mtime, ctime, inode, mode) instead of
    /// re-hashing unchanged files. Faster, but weaker: a change that forges
    /// all of those goes unseen. The default re-hashes every byte.
    #[arg(long)]
    fast: bool,
    /// Soul formats this shell reads: v3, v2..v4 or a list (default: config
    /// `reads`; unset = not checked).
    #[arg(long, env = "SELFSAME_READS", value_name = "FORMATS")]
    reads: Option<String>,
}

impl WakeFlags {
    /// The wake options these flags ask for, over the vault's config.
    /// `migrate_by_default` makes a pending migration run unless the config
    /// or a flag says `needs-migration = warn` (the default under `run`).
    pub fn options(self, vault: &Vault, migrate_by_default: bool) -> Result<WakeOptions> {
        let mut policies = vault.config.policies(&vault.config_path())?;
        if migrate_by_default && vault.config.policy.needs_migration.is_none() {
            policies.needs_migration = MigrationPolicy::Migrate;
        }
        for p in &self.policy {
            policies.set(p).map_err(Error::Usage)?;
        }
        let max_age = match &self.max_age {
            Some(t) => Some(Config::parse_max_age(t).map_err(Error::Usage)?),
            None => None,
        };
        Ok(WakeOptions {
            policies: Some(policies),
            shell: super::shell_version(self.shell_version),
            max_age,
            dry_run: false,
            fast: self.fast,
            reads: self
                .reads
                .as_deref()
                .map(Reads::parse)
                .transpose()
                .map_err(|e| Error::Usage(format!("--reads: {e}")))?,
            #[cfg(feature = "remote")]
            witness: witness(vault),
        })
    }
}

/// The remote witness of `[remote]`, when configured: reachable through
/// the AWS credentials of the environment, or unavailable for want of them.
#[cfg(feature = "remote")]
pub fn witness(vault: &Vault) -> Option<selfsame::ops::wake::Witness> {
    use selfsame::ops::wake::Witness;
    let r = vault.config.remote.as_ref()?;
    Some(
        match crate::context::access(&r.url, r.endpoint.as_deref(), r.region.as_deref()) {
            Ok(a) => Witness::Remote(a),
            Err(e) => Witness::Unavailable {
                url: r.url.clone(),
                reason: e.to_string(),
            },
        },
    )
}

pub fn run(args: Args, ctx: &Context) -> Result<i32> {
    let vault = ctx.open_vault()?;
    let token = ctx.vault_token(&vault)?;
    let opts = args.flags.options(&vault, false)?;
    let mut report = wake_with_progress(&vault, &token, &opts, &ctx.progress())?;
    crate::porcelain::wake(&mut report);
    print_report(&report, ctx);
    Ok(report.exit_code)
}

/// The `stale` warning for people: how old the head is, and the threshold
/// (`max_age`: the flag's when given, else the config's).
fn stale(r: &WakeReport) -> String {
    match &r.stale {
        Some(s) => format!(
            "stale: checkpoint {} was sealed {} ago, longer than max_age {}; seal more often (e.g. `selfsame seal --reason heartbeat`), or raise max_age in config.toml",
            s.seq,
            rough(s.age),
            humantime::format_duration(s.max_age)
        ),
        None => "stale".into(),
    }
}

/// A duration to its two largest units (`8days 3h`, `5h 12m`, `40s`).
fn rough(d: Duration) -> humantime::FormattedDuration {
    let s = d.as_secs();
    let kept = match s {
        86_400.. => s - s % 3_600,
        3_600.. => s - s % 60,
        _ => s,
    };
    humantime::format_duration(Duration::from_secs(kept))
}

pub fn print_report(r: &WakeReport, ctx: &Context) {
    if ctx.json {
        ctx.print_json(r);
        return;
    }
    let detail = r.detail.map(|d| format!(" ({d})")).unwrap_or_default();
    outln!("{}{detail}: {}", r.verdict, r.message);
    if let Some(m) = &r.molt {
        outln!("  molt: shell {} -> {}", m.from, m.to);
    }
    for p in r.problems.iter().skip(1) {
        outln!("  also: {} ({})", p.message, p.detail);
    }
    for w in &r.warnings {
        match w.as_str() {
            "stale" => outln!("  warning: {}", stale(r)),
            "witness-unreachable" => outln!(
                "  warning: witness-unreachable: {}{}",
                r.remote
                    .as_ref()
                    .and_then(|w| w.error.as_deref())
                    .unwrap_or("the remote witness cannot be reached"),
                if r.exit_code == 1 {
                    ""
                } else {
                    "; a rollback cannot be ruled out until it answers ([policy] witness = \"halt\" stops the agent instead)"
                }
            ),
            _ => outln!("  warning: {w}"),
        }
    }
    for a in &r.actions {
        outln!("  {a}");
    }
    let next = match (r.may_start, r.verdict) {
        (true, _) => "the agent may start".to_owned(),
        (false, _) if r.detail == Some(selfsame::Detail::ProtectedChanged) => {
            "halted: a protected path changed. `selfsame approve --dry-run` shows the diff; then `selfsame approve` to adopt it, or `selfsame wake --policy protected=revert` to put the approved version back".to_owned()
        }
        (false, _) if r.detail == Some(selfsame::Detail::ConfigChanged) => {
            "halted: no policy of the changed config was applied. Check .selfsame/config.toml; then `selfsame accept` to adopt it, or put the sealed config back".to_owned()
        }
        // The soul could not be fingerprinted: an entry it cannot record.
        (false, selfsame::Verdict::Tampered | selfsame::Verdict::Drifted)
            if r.soul.is_none() =>
        {
            "halted: the entry named above cannot be recorded (nor diffed, sealed or accepted); remove it, or exclude it and `selfsame accept`, then wake again".to_owned()
        }
        (false, selfsame::Verdict::Tampered) => {
            "halted. Inspect with `selfsame diff`; then `selfsame accept` to adopt the soul, or `selfsame restore head` to put the sealed state back".to_owned()
        }
        (false, selfsame::Verdict::Incompatible) => {
            "halted: the agent was not started and nothing was written to the soul".to_owned()
        }
        (false, selfsame::Verdict::IdentityMismatch) => {
            "halted. Check that the token belongs to this bot".to_owned()
        }
        (false, _) => "halted. `selfsame verify` lists every problem; `selfsame restore last-good` puts a good state back".to_owned(),
    };
    outln!("  {next}");
}
