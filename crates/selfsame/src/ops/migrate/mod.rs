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

mod migration;
mod registry;
mod script;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::crypto::Credential;
use serde::Serialize;
use serde_json::{Map, Value};

use super::checks::config_problem;
use super::head::{manifest_of, require_head};
use super::seal::{seal_core, SealOptions};
use super::swap::engine::{drop_work_unless_journaled, finish, quarantine_staging};
use super::swap::tree::{
    clear_work, entries, give_below, kept_collision, soul_owner, stage, top_level_keep,
};
use super::swap::workdir::{self, Want, WorkDirs};
use super::swap::writable::{not_writable, Next};
use crate::crypto::Keys;
use crate::error::{Damage, Error, Refusal, Result};
use crate::format::checkpoint::Reason;
use crate::format::excludes::Excludes;
use crate::format::journal::{Journal, SwapPhase, MIGRATE};
use crate::format::time::{rfc3339, stamp};
use crate::format::Manifest;
use crate::progress::Progress;
use crate::soul::{self, Changes};
use crate::vault::{StoredCheckpoint, Vault};
use crate::verdict::{Advice, Verdict};

pub use crate::format::tags::check_format_tag;
pub use crate::format::tags::Reads;
pub use migration::{migration, FnMigration, Migration, MigrationContext, MigrationError};
pub(crate) use registry::migrations_dir;
pub use registry::{Registry, DEFAULT_DIR};
pub use script::kill_running;

/// How long a migration may run by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

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

/// The tag number of the head's `format`.
pub(crate) fn tag_of(vault: &Vault, head: &StoredCheckpoint) -> Result<u32> {
    check_format_tag(&head.ckpt.format)
        .map_err(|e| Error::corrupt(&vault.checkpoint_path(head.ckpt.seq), Damage::FormatTag(e)))
}

/// Where a soul's format stands against a shell that reads `reads`.
#[derive(Debug, Clone)]
pub(crate) struct Standing {
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

/// Where the head's format stands against `reads` and the registry.
pub(crate) fn standing(
    vault: &Vault,
    registry: &Registry,
    head: &StoredCheckpoint,
    reads: &Reads,
) -> Result<Standing> {
    let current = tag_of(vault, head)?;
    registry.check(current)?;
    let reachable = registry.newest().unwrap_or(current).max(current);
    let target = (current + 1..=reachable).rev().find(|&t| reads.contains(t));
    Ok(Standing {
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
    cred: &Credential,
    registry: &Registry,
    opts: &MigrateOptions,
    progress: &dyn Progress,
) -> Result<MigrateReport> {
    let _lock = vault.lock()?;
    migrate_locked(vault, cred, registry, opts, progress)
}

/// Migrates with the vault lock held: each pending migration once, in
/// order, stopping at the first failure.
pub(crate) fn migrate_locked(
    vault: &Vault,
    cred: &Credential,
    registry: &Registry,
    opts: &MigrateOptions,
    progress: &dyn Progress,
) -> Result<MigrateReport> {
    let mut head = runnable_head(vault, cred)?;
    let current = tag_of(vault, &head)?;
    registry.check(current)?;
    let newest = registry.newest().unwrap_or(current).max(current);
    let target = match opts.to {
        Some(t) if t < current => {
            return Err(Error::Refused(Refusal::MigrateDown { current, to: t }))
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
    if let Some(sealed) = seal_before(vault, cred, &head, opts, progress)? {
        report.sealed_before = Some(sealed.ckpt.seq);
        head = sealed;
    }
    for m in steps {
        match step(vault, cred, &head, m, opts, progress)? {
            Ok(s) => {
                report.format = s.to.clone();
                head = vault.read_checkpoint(s.seq)?;
                report.applied.push(s);
            }
            Err(f) => {
                report.failed = Some(f);
                report.exit_code = Verdict::Incompatible.exit_code();
                break;
            }
        }
    }
    Ok(report)
}

/// The head, once migrations may run from it: nothing pending, the
/// history after its anchor selfsame's (each migration ends in a seal),
/// and `config.toml` the one it was sealed with (the migrations directory
/// comes from it).
fn runnable_head(vault: &Vault, cred: &Credential) -> Result<StoredCheckpoint> {
    if let Some(j) = vault.pending_swap()? {
        return Err(Error::SwapPending(j));
    }
    let head = require_head(vault, cred)?;
    vault
        .history_for(&Keys::of(cred))
        .check_after(&head.ckpt.log)?;
    if let Some(p) = config_problem(vault, &head) {
        let saved = match p.advice {
            Some(Advice::AdoptConfig { saved }) => saved,
            _ => None,
        };
        return Err(Error::Refused(Refusal::ConfigChanged {
            seq: head.ckpt.seq,
            saved,
        }));
    }
    Ok(head)
}

/// Migrations start from a sealed state: the head's, or after an unclean
/// stop (drift), a checkpoint of the soul as it is, sealed first (the
/// new head). A change at rest is refused.
fn seal_before(
    vault: &Vault,
    cred: &Credential,
    head: &StoredCheckpoint,
    opts: &MigrateOptions,
    progress: &dyn Progress,
) -> Result<Option<StoredCheckpoint>> {
    let on_disk = soul::fingerprint(
        &vault.soul(),
        &vault.excludes()?,
        &vault.skip_paths(),
        None,
        progress,
    )?;
    // Compared in the head manifest's version, as wake compares.
    let version = manifest_of(vault, head)?.version;
    if hex::encode(on_disk.soul_hash_as(version)) == head.ckpt.soul {
        return Ok(None);
    }
    if !vault.marker_valid(&Keys::of(cred), head)? {
        return Err(Error::Refused(Refusal::ChangedAtRest(head.ckpt.seq)));
    }
    let mut so = SealOptions::new(Reason::Migrate);
    so.shell = opts.shell.clone();
    so.format = Some(head.ckpt.format.clone());
    let s = seal_core(vault, cred, &so, progress)?;
    vault.read_checkpoint(s.seq).map(Some)
}

/// Runs one migration on a staged copy of `head` and swaps it in.
fn step(
    vault: &Vault,
    cred: &Credential,
    head: &StoredCheckpoint,
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
    let dirs = WorkDirs::of(&vault.soul());
    let mut j = begin(vault, cred, head, m, &ctx, &before, &dirs, progress)?;
    let started = Instant::now();
    // The migration ran in the staging dir: it must still be a real
    // directory in the work dir this step made.
    let staging = &dirs.new;
    let ran = m.apply(staging, &ctx).and_then(|()| {
        dirs.check(vault, &j, [Want::Present, Want::Present, Want::MaybeAbsent])
            .map(|_| ())
            .map_err(|e| MigrationError::StagingReplaced(e.to_string()))
    });
    let outcome = match ran {
        Ok(()) => fingerprint_staged(vault, staging, progress)?,
        Err(e) => Err(e),
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    j.data.insert("duration_ms".into(), duration_ms.into());
    let after = match outcome {
        Ok(after) => after,
        Err(error) => return fail(vault, cred, &mut j, error).map(Err),
    };
    let changes = soul::changes(&before, &after);
    j.data
        .insert("changes".into(), changes.summarize().to_value());
    j.soul = after.soul_hash();
    j.new_dir = Some(workdir::id_of(staging)?);
    j.old_dir = Some(workdir::make(&dirs.old)?);
    j.phase = SwapPhase::SwapOut;
    vault.write_journal(&Keys::of(cred), &j)?;
    let r = finish(vault, cred, &mut j, Some(after), progress, false)
        .map_err(|e| not_writable(vault, e, Next::Pending))?;
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

/// Makes the work dir, writes the step's journal (phase `stage`) and
/// stages `before`, the head's tree, for the migration to rewrite. The
/// staging dir goes to a quarantine inside the vault should the migration
/// fail, so that is checked first.
#[allow(clippy::too_many_arguments)] // the step's parts, each used once
fn begin(
    vault: &Vault,
    cred: &Credential,
    head: &StoredCheckpoint,
    m: &dyn Migration,
    ctx: &MigrationContext,
    before: &Manifest,
    dirs: &WorkDirs,
    progress: &dyn Progress,
) -> Result<Journal> {
    vault.quarantine()?;
    let work_dir = clear_work(vault)
        .and_then(|()| workdir::make(&dirs.work))
        .map_err(|e| not_writable(vault, e, Next::Restore))?;
    let mut data = Map::new();
    data.insert("ok".into(), true.into());
    data.insert("migration".into(), m.name().into());
    data.insert("from".into(), ctx.from.clone().into());
    data.insert("to".into(), ctx.to.clone().into());
    data.insert("before".into(), head.ckpt.seq.into());
    let quarantine = format!("{}-migrate-{}-to-{}", stamp(vault.now()), ctx.from, ctx.to);
    let started = rfc3339(vault.now());
    let seq = head.ckpt.seq;
    let j = Journal {
        format: Some(ctx.to.clone()),
        data,
        config: Some(vault.config_hash()),
        ..Journal::begin(MIGRATE, seq, seq, quarantine, started, work_dir)
    };
    if let Err(e) = vault.write_journal(&Keys::of(cred), &j) {
        drop_work_unless_journaled(vault, dirs);
        return Err(e);
    }
    if let Err(e) = stage(&vault.objects(), before, &dirs.new, progress) {
        // Refused (a corrupt object, say) before anything ran: drop the
        // partial staging dir and the journal; the soul was never touched.
        let _ = fs::remove_dir_all(&dirs.new);
        let _ = fs::remove_dir(&dirs.work);
        vault.remove_journal()?;
        return Err(e);
    }
    vault.failpoint("migrate-after-stage");
    Ok(j)
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
) -> Result<std::result::Result<Manifest, MigrationError>> {
    let keep = top_level_keep(vault)?;
    let names = entries(staging)?;
    if let Some(n) = kept_collision(&keep, names.iter().map(|n| n.as_os_str())) {
        return Ok(Err(MigrationError::KeptName(n.to_owned())));
    }
    // What the migration wrote (as root, maybe) is the soul's owner's.
    if let Some(owner) = soul_owner(&vault.soul())? {
        give_below(staging, owner)?;
    }
    let objects = vault.objects();
    let fp = match soul::fingerprint(staging, &Excludes::none(), &[], Some(&objects), progress) {
        Ok(fp) => fp,
        Err(e @ Error::Io { .. }) => return Err(e),
        Err(e) => return Ok(Err(MigrationError::Unsealable(e.to_string()))),
    };
    let bytes = fp.manifest.to_bytes();
    objects.put(&crate::crypto::sha256(&bytes), &bytes)?;
    Ok(Ok(fp.manifest))
}

/// A failed migration: its staging dir to quarantine, a history event, the
/// journal removed. The soul was never touched.
fn fail(
    vault: &Vault,
    cred: &Credential,
    j: &mut Journal,
    error: MigrationError,
) -> Result<Failure> {
    let error = error.to_string();
    let to = j.format.clone().unwrap_or_default();
    let staging = quarantine_staging(vault, &format!("migrate-{to}-failed"))?;
    j.data.insert("ok".into(), false.into());
    j.data.insert("error".into(), error.clone().into());
    j.data.insert("staging".into(), staging.clone().into());
    vault
        .history_for(&Keys::of(cred))
        .append(MIGRATE, j.data.clone())?;
    vault.remove_journal()?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Platform;
    use crate::format::journal::WORK_DIR;
    use crate::ops;

    fn soul_with(dir: &Path, text: &str) -> (Vault, Credential) {
        fs::create_dir(dir.join("soul")).unwrap();
        fs::write(dir.join("soul/state.txt"), text).unwrap();
        let cred = Credential::parse(Platform::Telegram, "123456:test-secret").unwrap();
        let vault = ops::init::init(dir, &cred, &ops::init::InitOptions::new("soul")).unwrap();
        (vault, cred)
    }

    #[test]
    fn rust_migrations_share_the_engine() {
        let dir = tempfile::tempdir().unwrap();
        let (vault, cred) = soul_with(dir.path(), "hello");
        let mut reg = Registry::new();
        reg.register(migration("v2-upper", 2, |soul| {
            let p = soul.join("state.txt");
            let t = fs::read_to_string(&p).map_err(|e| e.to_string())?;
            fs::write(&p, t.to_uppercase()).map_err(|e| e.to_string().into())
        }));
        let opts = MigrateOptions::default();
        let r = migrate(&vault, &cred, &reg, &opts, &crate::progress::Silent).unwrap();
        assert_eq!(r.format, "v2");
        assert_eq!(r.applied.len(), 1);
        assert_eq!(
            fs::read_to_string(dir.path().join("soul/state.txt")).unwrap(),
            "HELLO"
        );
        assert!(!dir.path().join("soul").join(WORK_DIR).exists());
        let again = migrate(&vault, &cred, &reg, &opts, &crate::progress::Silent).unwrap();
        assert!(again.up_to_date && again.applied.is_empty());
    }

    #[test]
    fn a_failing_rust_migration_leaves_the_soul_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (vault, cred) = soul_with(dir.path(), "hello");
        let mut reg = Registry::new();
        reg.register(migration("v2-break", 2, |soul| {
            fs::write(soul.join("state.txt"), "half").map_err(|e| e.to_string())?;
            Err("schema mismatch".into())
        }));
        let r = migrate(
            &vault,
            &cred,
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
