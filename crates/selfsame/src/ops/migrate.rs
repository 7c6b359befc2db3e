//! Migrate: move the soul from one format tag to the next (`v1` → `v2` →
//! …), each migration once, atomically, checkpointed.
//!
//! A migration never touches the live soul. The head checkpoint is staged
//! from objects into `<soul>/.selfsame-restore/new` (real copies, every
//! byte re-hashed — never hardlinks, so the migration cannot reach the
//! sealed state), the migration rewrites the staging dir, and the result is
//! swapped in by restore's journaled entry swap and sealed `reason=migrate`
//! with the new `format`. A migration that fails or times out leaves the
//! soul untouched; its staging dir goes to `quarantine/`.
//!
//! Migrations come from a [`Registry`]: executables `v<N>-<slug>` in the
//! vault's migrations directory ([`Registry::for_vault`]), or Rust values
//! implementing [`Migration`] ([`Registry::register`]).

use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use selfsame_telegram::BotToken;
use serde::Serialize;
use serde_json::{Map, Value};

use super::restore::workdir::{self, Want, WorkDirs};
use super::restore::{self, Journal, Phase, RestoreReport, MIGRATE, WORK};
use super::seal::{changes_json, current_head, manifest_of, seal_core, SealOptions};
use crate::clock;
use crate::crypto::checkpoint_key;
use crate::error::{Error, IoContext, Result};
use crate::failpoint;
use crate::format::checkpoint::{check_format_tag, Reason};
use crate::format::Manifest;
use crate::progress::Progress;
use crate::soul::{self, Changes, Excludes};
use crate::vault::{atomic, Stored, Vault};

/// How long a migration may run by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// The migrations directory, relative to the vault's parent, by default.
pub const DEFAULT_DIR: &str = "migrations";

/// The soul formats a shell reads: tags and inclusive ranges, e.g.
/// `v2..v4`, `v3`, `v1,v3..v5`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reads(Vec<(u32, u32)>);

impl Reads {
    /// Parses a comma-separated list of `vN` and `vA..vB`.
    pub fn parse(text: &str) -> std::result::Result<Reads, String> {
        let mut ranges = Vec::new();
        for item in text.split(',').map(str::trim) {
            if item.is_empty() {
                return Err("expected formats like v3, v2..v4 or v1,v3".into());
            }
            let (a, b) = match item.split_once("..") {
                Some((a, b)) => (check_format_tag(a.trim())?, check_format_tag(b.trim())?),
                None => {
                    let n = check_format_tag(item)?;
                    (n, n)
                }
            };
            if a > b {
                return Err(format!("{item:?} is an empty range"));
            }
            ranges.push((a, b));
        }
        Ok(Reads(ranges))
    }

    /// Whether the shell reads format `n`.
    pub fn contains(&self, n: u32) -> bool {
        self.0.iter().any(|&(a, b)| a <= n && n <= b)
    }

    /// The newest format read.
    pub fn newest(&self) -> u32 {
        self.0.iter().map(|&(_, b)| b).max().unwrap_or(0)
    }
}

impl fmt::Display for Reads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self
            .0
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    format!("v{a}")
                } else {
                    format!("v{a}..v{b}")
                }
            })
            .collect();
        f.write_str(&items.join(","))
    }
}

/// What a migration gets besides its staging dir.
#[derive(Debug, Clone)]
pub struct MigrationContext {
    /// The format it reads, e.g. `v1`.
    pub from: String,
    /// The format it writes, e.g. `v2`.
    pub to: String,
    /// How long it may run.
    pub timeout: Duration,
    /// Env vars not passed to a child process (the token's).
    pub hide_env: Vec<String>,
}

/// One migration: from format `to() - 1` to `to()`, a function over the
/// staging dir (a full copy of the soul). Ok means the staging dir now holds
/// the soul at `to()`; Err says why not, for history and the owner.
pub trait Migration: Send + Sync {
    /// The format tag number this migration writes (2 for `v2`).
    fn to(&self) -> u32;
    /// Its name, e.g. `v2-rename-keys`.
    fn name(&self) -> String;
    /// Rewrites the staging dir `soul` from `ctx.from` to `ctx.to`.
    fn apply(&self, soul: &Path, ctx: &MigrationContext) -> std::result::Result<(), String>;
}

/// A migration written in Rust: a name, the tag it writes, a function.
pub struct FnMigration<F> {
    to: u32,
    name: String,
    f: F,
}

/// Wraps a Rust function as a [`Migration`] writing format `v<to>`.
pub fn migration<F>(name: &str, to: u32, f: F) -> FnMigration<F>
where
    F: Fn(&Path) -> std::result::Result<(), String> + Send + Sync,
{
    FnMigration {
        to,
        name: name.to_owned(),
        f,
    }
}

impl<F> Migration for FnMigration<F>
where
    F: Fn(&Path) -> std::result::Result<(), String> + Send + Sync,
{
    fn to(&self) -> u32 {
        self.to
    }
    fn name(&self) -> String {
        self.name.clone()
    }
    fn apply(&self, soul: &Path, _ctx: &MigrationContext) -> std::result::Result<(), String> {
        (self.f)(soul)
    }
}

/// An executable `v<N>-<slug>` in the migrations directory, in any
/// language. It runs with `SELFSAME_SOUL` (the staging dir, also its working
/// directory), `SELFSAME_FROM` and `SELFSAME_TO` set, the token's env var
/// removed, stdin closed and stdout sent to stderr.
#[derive(Debug, Clone)]
pub struct Script {
    path: PathBuf,
    to: u32,
}

impl Migration for Script {
    fn to(&self) -> u32 {
        self.to
    }
    fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
    fn apply(&self, soul: &Path, ctx: &MigrationContext) -> std::result::Result<(), String> {
        let mut cmd = Command::new(&self.path);
        cmd.current_dir(soul)
            .env("SELFSAME_SOUL", soul)
            .env("SELFSAME_FROM", &ctx.from)
            .env("SELFSAME_TO", &ctx.to)
            .stdin(Stdio::null());
        for name in &ctx.hide_env {
            cmd.env_remove(name);
        }
        // Keep stdout for selfsame's own output (`--json`).
        if let Ok(fd) = std::os::fd::AsFd::as_fd(&std::io::stderr()).try_clone_to_owned() {
            cmd.stdout(Stdio::from(fd));
        }
        // Its own process group, so that whatever it starts can be ended
        // with it.
        cmd.process_group(0);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.path.display()))?;
        let group = Pid::from_raw(child.id() as i32);
        *running() = Some(group);
        let deadline = Instant::now() + ctx.timeout;
        loop {
            // Seen without reaping it: until it is reaped, its pid (the
            // group's id) cannot be reused, so the group kill below can only
            // reach its own processes.
            let exited = waitid(
                Id::Pid(group),
                WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
            );
            match exited {
                Ok(WaitStatus::StillAlive) => {}
                Ok(_) => {
                    let status = end_group(group, &mut child);
                    return match status {
                        Ok(s) if s.success() => Ok(()),
                        Ok(s) => Err(format!("{} {s}", self.name())),
                        Err(e) => Err(format!("waiting for {}: {e}", self.name())),
                    };
                }
                Err(e) => {
                    let _ = end_group(group, &mut child);
                    return Err(format!("waiting for {}: {e}", self.name()));
                }
            }
            if Instant::now() >= deadline {
                let _ = end_group(group, &mut child);
                return Err(format!(
                    "{} timed out after {} and was killed, with every process it started",
                    self.name(),
                    humantime::format_duration(ctx.timeout)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Ends a migration's process group: whatever is left of it (processes the
/// migration started in the background, or the migration itself on a
/// timeout) is killed, the migration reaped, and the call returns only once
/// no process of the group can still write (each is gone or a zombie; a
/// process that left the group with `setsid` is out of reach).
fn end_group(group: Pid, child: &mut std::process::Child) -> std::io::Result<ExitStatus> {
    {
        // Under the lock, so that `kill_running` never signals the group's
        // id once the migration is reaped (and the id may be reused).
        let mut running = running();
        let _ = killpg(group, Signal::SIGKILL);
        *running = None;
    }
    let status = child.wait();
    let deadline = Instant::now() + GROUP_GONE;
    while group_runs(group) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    status
}

/// The process group of the migration this process runs now, if any.
fn running() -> std::sync::MutexGuard<'static, Option<Pid>> {
    static RUNNING: Mutex<Option<Pid>> = Mutex::new(None);
    RUNNING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Kills the process group of the migration this process is running, if
/// one is: for a caller stopped by a signal (Ctrl-C), since a migration
/// runs in a process group of its own, which a terminal's signal does not
/// reach. The migration then fails as any killed one does (the soul is
/// untouched, its staging dir goes to quarantine) before the caller goes
/// on; a caller about to exit at once ends it with itself.
pub fn kill_running() {
    if let Some(group) = *running() {
        let _ = killpg(group, Signal::SIGKILL);
    }
}

/// How long [`end_group`] waits for the killed processes to be gone.
const GROUP_GONE: Duration = Duration::from_secs(10);

/// Whether a process of `group` is still running (not a zombie). Killed
/// orphans become zombies until init reaps them, which some containers'
/// init never does, so `/proc` is read rather than `kill(-group, 0)`.
fn group_runs(group: Pid) -> bool {
    // The usual case, a migration that left nothing behind, needs no more.
    if killpg(group, None).is_err() {
        return false;
    }
    let Ok(procs) = fs::read_dir("/proc") else {
        return true;
    };
    procs.flatten().any(|p| {
        let Ok(stat) = fs::read_to_string(p.path().join("stat")) else {
            return false;
        };
        // `pid (comm) state ppid pgrp …`; comm may hold anything but the
        // last `)`.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return false;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("Z");
        let pgrp = fields.nth(1).and_then(|g| g.parse::<i32>().ok());
        pgrp == Some(group.as_raw()) && !matches!(state, "Z" | "X")
    })
}

/// The migrations a shell knows, by the tag each writes.
pub struct Registry {
    migrations: Vec<Box<dyn Migration>>,
    origin: PathBuf,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.migrations.iter().map(|m| m.name()).collect();
        f.debug_struct("Registry")
            .field("origin", &self.origin)
            .field("migrations", &names)
            .finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    /// An empty registry, for migrations written in Rust.
    pub fn new() -> Self {
        Registry {
            migrations: Vec::new(),
            origin: PathBuf::from("(migration registry)"),
        }
    }

    /// Adds a migration.
    pub fn register(&mut self, m: impl Migration + 'static) -> &mut Self {
        self.migrations.push(Box::new(m));
        self
    }

    /// The executables `v<N>-<slug>` in `dir` (none if `dir` is absent).
    /// Hidden files and names not starting with `v<digit>` are ignored;
    /// other misnamed or non-executable entries are a config error.
    pub fn from_dir(dir: &Path) -> Result<Registry> {
        let mut reg = Registry {
            migrations: Vec::new(),
            origin: dir.to_owned(),
        };
        let items = match fs::read_dir(dir) {
            Ok(items) => items,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(reg),
            Err(e) => return Err(e).at(dir),
        };
        let bad = |message: String| Error::Config {
            path: dir.to_owned(),
            message,
        };
        for item in items {
            let item = item.at(dir)?;
            let name = item.file_name().to_string_lossy().into_owned();
            let mut chars = name.chars();
            if chars.next() != Some('v') || !chars.next().is_some_and(|c| c.is_ascii_digit()) {
                continue;
            }
            let (tag, slug) = name.split_once('-').unwrap_or((name.as_str(), ""));
            let n = check_format_tag(tag)
                .ok()
                .filter(|_| !slug.is_empty())
                .ok_or_else(|| {
                    bad(format!(
                        "migration {name:?}: name it v<N>-<slug>, e.g. v2-rename-keys"
                    ))
                })?;
            if n < 2 {
                return Err(bad(format!(
                    "migration {name}: v1 is the first format; a migration writes v2 or later"
                )));
            }
            let path = item.path();
            let meta = fs::metadata(&path).at(&path)?;
            if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
                return Err(bad(format!(
                    "migration {name} is not an executable file (chmod +x it)"
                )));
            }
            reg.migrations.push(Box::new(Script { path, to: n }));
        }
        reg.migrations.sort_by_key(|m| (m.to(), m.name()));
        Ok(reg)
    }

    /// The vault's migrations directory: config `migrations`, default
    /// `migrations/` beside `.selfsame/`.
    pub fn for_vault(vault: &Vault) -> Result<Registry> {
        Registry::from_dir(&migrations_dir(vault))
    }

    /// Checks that no two migrations write the same tag and that the tags
    /// above `current` run contiguously from `current + 1`.
    pub fn check(&self, current: u32) -> Result<()> {
        let bad = |message: String| Error::Config {
            path: self.origin.clone(),
            message,
        };
        let mut sorted: Vec<(u32, String)> =
            self.migrations.iter().map(|m| (m.to(), m.name())).collect();
        sorted.sort();
        for w in sorted.windows(2) {
            if w[0].0 == w[1].0 {
                return Err(bad(format!(
                    "migrations {} and {} both write v{}; keep one",
                    w[0].1, w[1].1, w[0].0
                )));
            }
        }
        let pending: Vec<&(u32, String)> = sorted.iter().filter(|(n, _)| *n > current).collect();
        if let Some((first, name)) = pending.first() {
            if *first != current + 1 {
                return Err(bad(format!(
                    "the soul is v{current} but the first pending migration is {name}: nothing writes v{}",
                    current + 1
                )));
            }
        }
        for w in pending.windows(2) {
            if w[1].0 != w[0].0 + 1 {
                return Err(bad(format!(
                    "migrations {} and {} leave a gap: nothing writes v{}",
                    w[0].1,
                    w[1].1,
                    w[0].0 + 1
                )));
            }
        }
        Ok(())
    }

    /// The newest tag any migration writes.
    pub fn newest(&self) -> Option<u32> {
        self.migrations.iter().map(|m| m.to()).max()
    }

    /// The migrations from `from` up to `to`, in order (after [`check`]).
    ///
    /// [`check`]: Registry::check
    pub fn path(&self, from: u32, to: u32) -> Vec<&dyn Migration> {
        let mut steps: Vec<&dyn Migration> = self
            .migrations
            .iter()
            .filter(|m| m.to() > from && m.to() <= to)
            .map(|m| m.as_ref())
            .collect();
        steps.sort_by_key(|m| m.to());
        steps
    }
}

/// The vault's migrations directory.
pub fn migrations_dir(vault: &Vault) -> PathBuf {
    vault
        .base()
        .join(vault.config.migrations.as_deref().unwrap_or(DEFAULT_DIR))
}

/// How to migrate.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// The format to reach; default the newest any migration writes.
    pub to: Option<u32>,
    /// Say what would run; write nothing.
    pub dry_run: bool,
    /// How long each migration may run.
    pub timeout: Duration,
    /// The shell version recorded on the checkpoints.
    pub shell: Option<String>,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        MigrateOptions {
            to: None,
            dry_run: false,
            timeout: DEFAULT_TIMEOUT,
            shell: None,
        }
    }
}

/// One migration applied.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Its name.
    pub migration: String,
    /// Format before.
    pub from: String,
    /// Format after.
    pub to: String,
    /// The `migrate` checkpoint sealed after it.
    pub seq: u64,
    /// How long the migration ran, in milliseconds.
    pub duration_ms: u64,
    /// What it changed.
    pub changes: Changes,
    /// Where the soul before it went, relative to the vault.
    pub quarantine: String,
}

/// A migration that failed or timed out.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// Its name.
    pub migration: String,
    /// Format it read.
    pub from: String,
    /// Format it was to write.
    pub to: String,
    /// Why it failed.
    pub error: String,
    /// How long it ran, in milliseconds.
    pub duration_ms: u64,
    /// Its staging dir, kept for inspection, relative to the vault.
    pub staging: String,
}

/// What `migrate` found and did. `--json` prints this.
#[derive(Debug, Clone, Serialize)]
pub struct MigrateReport {
    /// The soul's format at the start.
    pub from: String,
    /// The format asked for.
    pub to: String,
    /// The soul's format at the end.
    pub format: String,
    /// The migrations that were pending, in order.
    pub pending: Vec<String>,
    /// Those applied.
    pub applied: Vec<Step>,
    /// The one that failed, if any (the ones after it did not run).
    pub failed: Option<Failure>,
    /// Whether a checkpoint of a changed soul was sealed first.
    pub sealed_before: Option<u64>,
    /// Whether nothing was pending.
    pub up_to_date: bool,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// 0, or 6 when a migration failed.
    pub exit_code: i32,
}

/// The tag number of a checkpoint's `format`.
pub fn tag_of(format: &str) -> Result<u32> {
    check_format_tag(format).map_err(|e| Error::Corrupt(format!("head checkpoint: {e}")))
}

/// Where a soul at `format` stands against a shell that reads `reads`.
#[derive(Debug, Clone)]
pub struct Assessment {
    /// The soul's format number.
    pub current: u32,
    /// Whether the shell reads it as it is.
    pub readable: bool,
    /// The newest format the shell reads that migrations can reach, when
    /// newer than the soul's (the `needs-migration` warning).
    pub target: Option<u32>,
    /// The migrations to `target`.
    pub pending: Vec<String>,
}

/// Assesses the soul's `format` against `reads` and the registry.
pub fn assess(registry: &Registry, format: &str, reads: &Reads) -> Result<Assessment> {
    let current = tag_of(format)?;
    registry.check(current)?;
    let reachable = registry.newest().unwrap_or(current).max(current);
    let target = (current + 1..=reachable).rev().find(|&t| reads.contains(t));
    Ok(Assessment {
        current,
        readable: reads.contains(current),
        target,
        pending: target
            .map(|t| registry.path(current, t).iter().map(|m| m.name()).collect())
            .unwrap_or_default(),
    })
}

/// Migrates the soul, taking the vault lock.
pub fn migrate(
    vault: &Vault,
    token: &BotToken,
    registry: &Registry,
    opts: &MigrateOptions,
    progress: &dyn Progress,
) -> Result<MigrateReport> {
    let _lock = vault.lock()?;
    migrate_locked(vault, token, registry, opts, progress)
}

/// Migrates with the vault lock held: each pending migration once, in
/// order, stopping at the first failure.
pub fn migrate_locked(
    vault: &Vault,
    token: &BotToken,
    registry: &Registry,
    opts: &MigrateOptions,
    progress: &dyn Progress,
) -> Result<MigrateReport> {
    if let Some(j) = restore::pending(vault)? {
        return Err(Error::RestorePending(j));
    }
    let key = checkpoint_key(token);
    let mut head =
        current_head(vault, &key, token)?.ok_or_else(|| Error::NoSuchCheckpoint("head".into()))?;
    // Each migration ends in a seal, which anchors only selfsame's lines.
    vault.history_for(token).check_after(&head.ckpt.log)?;
    // The migrations directory comes from config.toml: run nothing from a
    // config the head was not sealed with.
    if let Some(p) = super::inspect::config_problem(vault, &head) {
        return Err(Error::Usage(format!(
            "{}; migrations run only under the config the head was sealed with",
            p.message
        )));
    }
    let current = tag_of(&head.ckpt.format)?;
    registry.check(current)?;
    let newest = registry.newest().unwrap_or(current).max(current);
    let target = match opts.to {
        Some(t) if t < current => {
            return Err(Error::Usage(format!(
                "the soul is v{current}; migrations only go up. To go back, restore a checkpoint sealed at v{t} (`selfsame log`)"
            )))
        }
        Some(t) if t > newest => {
            return Err(Error::Usage(format!(
                "no migration writes v{t}; the newest in {} writes v{newest}",
                registry.origin.display()
            )))
        }
        Some(t) => t,
        None => newest,
    };
    let steps = registry.path(current, target);
    let mut report = MigrateReport {
        from: format!("v{current}"),
        to: format!("v{target}"),
        format: format!("v{current}"),
        pending: steps.iter().map(|m| m.name()).collect(),
        applied: Vec::new(),
        failed: None,
        sealed_before: None,
        up_to_date: steps.is_empty(),
        dry_run: opts.dry_run,
        exit_code: 0,
    };
    if steps.is_empty() || opts.dry_run {
        return Ok(report);
    }

    // Migrations start from a sealed state: the head's.
    let on_disk = soul::fingerprint(
        &vault.soul(),
        &vault.excludes()?,
        &vault.skip_paths(),
        None,
        progress,
    )?;
    if on_disk.manifest.soul_hash() != head.ckpt.soul {
        if !vault.marker_valid(&key, &head) {
            return Err(Error::Usage(format!(
                "the soul changed since checkpoint {} while the agent was at rest; run `selfsame wake` (or `selfsame diff`) first: migrations start from a sealed state",
                head.ckpt.seq
            )));
        }
        // An unclean stop (drift): seal the state before, so the migration
        // starts from a checkpoint.
        let mut so = SealOptions::new(Reason::Migrate);
        so.shell = opts.shell.clone();
        so.format = Some(head.ckpt.format.clone());
        let s = seal_core(vault, token, &so, progress)?;
        report.sealed_before = Some(s.seq);
        head = vault.read_checkpoint(s.seq)?;
    }

    for m in steps {
        match step(vault, token, &head, m, opts, progress)? {
            Ok(s) => {
                report.format = s.to.clone();
                head = vault.read_checkpoint(s.seq)?;
                report.applied.push(s);
            }
            Err(f) => {
                report.failed = Some(f);
                report.exit_code = crate::Verdict::Incompatible.exit_code();
                break;
            }
        }
    }
    Ok(report)
}

/// Runs one migration on a staged copy of `head` and swaps it in.
fn step(
    vault: &Vault,
    token: &BotToken,
    head: &Stored,
    m: &dyn Migration,
    opts: &MigrateOptions,
    progress: &dyn Progress,
) -> Result<std::result::Result<Step, Failure>> {
    let ctx = MigrationContext {
        from: format!("v{}", m.to() - 1),
        to: format!("v{}", m.to()),
        timeout: opts.timeout,
        hide_env: vec![vault.config.token_env.clone()],
    };
    let before = manifest_of(vault, head)?;
    // Before anything is made: the staging dir goes to a quarantine inside
    // the vault should the migration fail.
    vault.quarantine()?;
    let dirs = WorkDirs::of(&vault.soul());
    let work_dir = restore::clear_work(vault)
        .and_then(|()| workdir::make(&dirs.work))
        .map_err(|e| restore::not_writable(vault, e, restore::Next::Restore))?;
    let stamp = clock::rfc3339(clock::now()).replace([':', '.'], "");
    let mut data = Map::new();
    data.insert("ok".into(), true.into());
    data.insert("migration".into(), m.name().into());
    data.insert("from".into(), ctx.from.clone().into());
    data.insert("to".into(), ctx.to.clone().into());
    data.insert("before".into(), head.ckpt.seq.into());
    let mut j = Journal {
        target: head.ckpt.seq,
        soul: String::new(),
        event: MIGRATE.into(),
        phase: Phase::Stage,
        quarantine: format!("{stamp}-migrate-{}-to-{}", ctx.from, ctx.to),
        head_before: head.ckpt.seq,
        started: clock::rfc3339(clock::now()),
        format: Some(ctx.to.clone()),
        data,
        config: Some(vault.config_hash()),
        work_dir: Some(work_dir),
        new_dir: None,
        old_dir: None,
        abort: None,
    };
    if let Err(e) = restore::write_journal(vault, &checkpoint_key(token), &j) {
        restore::drop_work_unless_journaled(vault, &dirs);
        return Err(e);
    }
    let (work, staging) = (&dirs.work, &dirs.new);
    if let Err(e) = restore::stage(&vault.objects(), &before, staging, progress) {
        // Refused (a corrupt object, say) before anything ran: drop the
        // partial staging dir and the journal; the soul was never touched.
        let _ = fs::remove_dir_all(staging);
        let _ = fs::remove_dir(work);
        restore::remove_journal(vault)?;
        return Err(e);
    }
    failpoint::hit("migrate-after-stage");

    let started = Instant::now();
    // The migration ran in the staging dir: it must still be a real
    // directory in the work dir this step made.
    let ran = m.apply(staging, &ctx).and_then(|()| {
        dirs.check(vault, &j, [Want::Present, Want::Present, Want::MaybeAbsent])
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    let outcome = match ran {
        Ok(()) => fingerprint_staged(vault, staging, progress)?,
        Err(e) => Err(e),
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    j.data.insert("duration_ms".into(), duration_ms.into());
    let after = match outcome {
        Ok(after) => after,
        Err(error) => return fail(vault, token, &mut j, error).map(Err),
    };
    let changes = soul::changes(&before, &after);
    j.data.insert("changes".into(), changes_json(&changes));
    j.soul = after.soul_hash();
    j.new_dir = Some(workdir::id_of(staging)?);
    j.old_dir = Some(workdir::make(&dirs.old)?);
    j.phase = Phase::SwapOut;
    restore::write_journal(vault, &checkpoint_key(token), &j)?;
    let r = restore::run(vault, token, &mut j, Some(after), progress, false)
        .map_err(|e| restore::not_writable(vault, e, restore::Next::Pending))?;
    Ok(Ok(Step {
        migration: m.name(),
        from: ctx.from,
        to: ctx.to,
        seq: r.seq,
        duration_ms,
        changes,
        quarantine: r.quarantine,
    }))
}

/// Fingerprints the staging dir after a migration, storing its objects and
/// manifest, so the swap and its resume work from durable bytes. The inner
/// error is the migration's (a tree no seal can record); an I/O error is
/// the disk's, not the migration's: it is returned as such (exit 1), and
/// the journal left in phase `stage` has the next wake undo the step.
fn fingerprint_staged(
    vault: &Vault,
    staging: &Path,
    progress: &dyn Progress,
) -> Result<std::result::Result<Manifest, String>> {
    let keep = restore::top_level_keep(vault)?;
    let names = restore::entries(staging)?;
    if let Some(n) = restore::kept_collision(&keep, names.iter().map(|n| n.as_os_str())) {
        return Ok(Err(format!(
            "the migration created {n:?}, a name the soul keeps out of checkpoints (excluded, or the vault)"
        )));
    }
    let objects = vault.objects();
    let fp = match soul::fingerprint(staging, &Excludes::none(), &[], Some(&objects), progress) {
        Ok(fp) => fp,
        Err(e @ Error::Io { .. }) => return Err(e),
        Err(e) => return Ok(Err(format!("the migrated soul cannot be sealed: {e}"))),
    };
    let bytes = fp.manifest.to_bytes();
    objects.put(&crate::crypto::sha256(&bytes), &bytes)?;
    Ok(Ok(fp.manifest))
}

/// A failed migration: its staging dir to quarantine, a history event, the
/// journal removed. The soul was never touched.
fn fail(vault: &Vault, token: &BotToken, j: &mut Journal, error: String) -> Result<Failure> {
    let to = j.format.clone().unwrap_or_default();
    let staging = quarantine_staging(vault, &format!("migrate-{to}-failed"))?;
    j.data.insert("ok".into(), false.into());
    j.data.insert("error".into(), error.clone().into());
    j.data.insert("staging".into(), staging.clone().into());
    vault.history_for(token).append(MIGRATE, j.data.clone())?;
    restore::remove_journal(vault)?;
    let text = |k: &str| {
        j.data
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Ok(Failure {
        migration: text("migration"),
        from: text("from"),
        to,
        error,
        duration_ms: j
            .data
            .get("duration_ms")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        staging,
    })
}

/// Moves the staging dir (if any) to `quarantine/<time>-<stem>` and removes
/// the work dir; returns the quarantine path relative to the vault.
fn quarantine_staging(vault: &Vault, stem: &str) -> Result<String> {
    let work = vault.soul().join(WORK);
    let staging = work.join("new");
    let dest = restore::unique(&vault.quarantine()?, stem);
    if fs::symlink_metadata(&staging).is_ok() {
        restore::move_tree(&staging, &dest)?;
    }
    if fs::symlink_metadata(&work).is_ok() {
        // Empty now, unless something else put files there: keep those too.
        if fs::remove_dir(&work).is_err() {
            restore::clear_work(vault)?;
        }
        atomic::sync_dir(&vault.soul())?;
    }
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(format!("quarantine/{name}"))
}

/// Undoes a migration interrupted before its swap (the next wake calls
/// this through restore's resume): the soul was never touched, so the
/// staging dir goes to quarantine and the soul stays at the head.
pub(crate) fn abandon(vault: &Vault, token: &BotToken, j: &mut Journal) -> Result<RestoreReport> {
    let to = j.format.clone().unwrap_or_default();
    let staging = quarantine_staging(vault, &format!("migrate-{to}-interrupted"))?;
    j.data.insert("ok".into(), false.into());
    j.data.insert("interrupted".into(), true.into());
    j.data.insert("undone".into(), true.into());
    j.data.insert("staging".into(), staging.clone().into());
    vault.history_for(token).append(MIGRATE, j.data.clone())?;
    restore::remove_journal(vault)?;
    Ok(RestoreReport {
        target: j.target,
        seq: j.head_before,
        quarantine: staging,
        files: 0,
        bytes: 0,
        resumed: true,
        event: MIGRATE.into(),
        undone: true,
        aborted: false,
        quarantine_config: None,
    })
}

/// Reads the manifest object `hex` (a migrated soul's).
pub(crate) fn manifest_by_hash(vault: &Vault, hex: &str) -> Result<Manifest> {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(hex, &mut hash)
        .map_err(|_| Error::Corrupt(format!("migration journal: bad soul hash {hex:?}")))?;
    let bytes = vault.objects().read(&hash)?;
    Manifest::parse(&bytes)
        .map_err(|e| Error::Corrupt(format!("manifest of the migrated soul: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops;

    #[test]
    fn reads_parses_tags_ranges_and_lists() {
        let r = Reads::parse("v1, v3..v5").unwrap();
        assert!(r.contains(1) && !r.contains(2) && r.contains(4) && r.contains(5));
        assert_eq!(r.newest(), 5);
        assert_eq!(r.to_string(), "v1,v3..v5");
        for bad in ["", "3", "v0", "v5..v3", "v1,", "v01"] {
            assert!(Reads::parse(bad).is_err(), "{bad:?}");
        }
    }

    fn soul_with(dir: &Path, text: &str) -> (Vault, BotToken) {
        fs::create_dir(dir.join("soul")).unwrap();
        fs::write(dir.join("soul/state.txt"), text).unwrap();
        let token = BotToken::parse("123456:test-secret").unwrap();
        let vault = ops::init::init(dir, &token, &ops::init::InitOptions::new("soul")).unwrap();
        (vault, token)
    }

    #[test]
    fn rust_migrations_share_the_engine() {
        let dir = tempfile::tempdir().unwrap();
        let (vault, token) = soul_with(dir.path(), "hello");
        let mut reg = Registry::new();
        reg.register(migration("v2-upper", 2, |soul| {
            let p = soul.join("state.txt");
            let t = fs::read_to_string(&p).map_err(|e| e.to_string())?;
            fs::write(&p, t.to_uppercase()).map_err(|e| e.to_string())
        }));
        let opts = MigrateOptions::default();
        let r = migrate(&vault, &token, &reg, &opts, &crate::progress::Silent).unwrap();
        assert_eq!(r.format, "v2");
        assert_eq!(r.applied.len(), 1);
        assert_eq!(
            fs::read_to_string(dir.path().join("soul/state.txt")).unwrap(),
            "HELLO"
        );
        assert!(!dir.path().join("soul").join(WORK).exists());
        let again = migrate(&vault, &token, &reg, &opts, &crate::progress::Silent).unwrap();
        assert!(again.up_to_date && again.applied.is_empty());
    }

    #[test]
    fn a_failing_rust_migration_leaves_the_soul_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (vault, token) = soul_with(dir.path(), "hello");
        let mut reg = Registry::new();
        reg.register(migration("v2-break", 2, |soul| {
            fs::write(soul.join("state.txt"), "half").map_err(|e| e.to_string())?;
            Err("schema mismatch".into())
        }));
        let r = migrate(
            &vault,
            &token,
            &reg,
            &MigrateOptions::default(),
            &crate::progress::Silent,
        )
        .unwrap();
        assert_eq!(r.exit_code, 6);
        assert_eq!(r.format, "v1");
        let f = r.failed.unwrap();
        assert_eq!(f.error, "schema mismatch");
        assert_eq!(
            fs::read_to_string(vault.dir().join(&f.staging).join("state.txt")).unwrap(),
            "half"
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("soul/state.txt")).unwrap(),
            "hello"
        );
    }

    #[test]
    fn gaps_and_duplicates_name_the_migrations() {
        let mut reg = Registry::new();
        reg.register(migration("v2-a", 2, |_| Ok(())));
        reg.register(migration("v4-b", 4, |_| Ok(())));
        let e = reg.check(1).unwrap_err().to_string();
        assert!(
            e.contains("v2-a") && e.contains("v4-b") && e.contains("v3"),
            "{e}"
        );
        reg.register(migration("v2-c", 2, |_| Ok(())));
        let e = reg.check(1).unwrap_err().to_string();
        assert!(e.contains("v2-a") && e.contains("v2-c"), "{e}");
    }
}
