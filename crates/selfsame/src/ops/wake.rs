//! Wake: on start, check the vault and the soul, name a verdict, act by
//! policy. `status` is the same check with no side effects.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::crypto::Credential;
use serde::Serialize;
use serde_json::Map;

pub use super::checks::Problem;
use super::checks::{config_problem, inspect, inspect_consistent, Inspection, ObjectScope};
use super::migrate::{migrate_locked, migrations_dir, standing, MigrateOptions, Registry};
use super::protect::{self, Pair, Reverted};
use super::restore::{restore_locked, Target};
use super::seal::{joined, seal_locked, SealOptions};
use super::swap;
use super::swap::engine::RestoreReport;
pub use super::swap::{Pending, WakeWill};
use crate::crypto::Keys;
use crate::error::{Error, Result};
use crate::format::checkpoint::Reason;
use crate::format::journal::{MIGRATE, WORK_DIR};
use crate::format::tags::Reads;
use crate::format::Manifest;
use crate::progress::{Progress, Silent};
use crate::soul::statcache::StatCache;
use crate::soul::{self, Changes};
use crate::vault::{StoredCheckpoint, Vault};
use crate::verdict::{Action, Advice, Detail, MigrationPolicy, Policies, ProtectPolicy, Verdict};

/// How to wake.
#[derive(Debug, Clone, Default)]
pub struct WakeOptions {
    /// Policies; `None` takes the config's.
    pub policies: Option<Policies>,
    /// This shell's version, recorded in history (and on an accept seal).
    pub shell: Option<String>,
    /// Stale threshold; `None` takes the config's, `Some(None)` never.
    pub max_age: Option<Option<Duration>>,
    /// Check only: no lock, no repair, no history, no marker, no action.
    pub dry_run: bool,
    /// Trust the stat cache for files whose size, times, inode and mode are
    /// unchanged, instead of re-hashing them. Weaker: someone who can forge
    /// all of those is not detected. Off by default.
    pub fast: bool,
    /// The soul formats this shell reads; `None` takes the config's
    /// `reads`, and when that is unset too the format is not checked.
    pub reads: Option<Reads>,
    /// The remote witness to compare the head with (`[remote]`); `None`:
    /// no witness.
    #[cfg(feature = "remote")]
    pub witness: Option<Witness>,
}

/// How wake reaches the remote witness.
#[cfg(feature = "remote")]
#[derive(Debug, Clone)]
pub enum Witness {
    /// Through this access.
    Remote(super::push::Access),
    /// Not at all: the caller could not build the access (no AWS
    /// credentials in the environment). Counts as unreachable.
    Unavailable {
        /// `s3://BUCKET/PREFIX`.
        url: String,
        /// Why, in words for the owner.
        reason: String,
    },
}

/// The remote witness's part in a wake (`--json`: `remote`).
#[derive(Debug, Clone, Serialize)]
pub struct WitnessReport {
    /// `s3://BUCKET/PREFIX`.
    pub url: String,
    /// `same`, `pushed` (it was behind; wake pushed), `behind` (status: it
    /// lacks checkpoints), `remote-ahead`, `forked` or `unreachable`.
    pub state: &'static str,
    /// The remote head's seq, when read.
    pub remote_seq: Option<u64>,
    /// How many checkpoints the remote lacks now.
    pub behind: u64,
    /// Why it could not be reached.
    pub error: Option<String>,
}

/// What wake found and did. `--json` prints this.
#[derive(Debug, Clone, Serialize)]
pub struct WakeReport {
    /// The verdict.
    #[serde(serialize_with = "ser_verdict")]
    pub verdict: Verdict,
    /// Its detail code, when there is one.
    #[serde(serialize_with = "ser_detail")]
    pub detail: Option<Detail>,
    /// One sentence for people.
    pub message: String,
    /// The head checkpoint's seq at wake.
    pub seq: Option<u64>,
    /// The head's soul format.
    pub format: Option<String>,
    /// The soul hash on disk (when it was computed).
    pub soul: Option<String>,
    /// What changed against the head.
    pub changes: Changes,
    /// The protected paths that differ from the head (`protected-changed`).
    pub protected: Vec<String>,
    /// What a `revert` action put back, and where the changed versions went.
    pub reverted: Option<Reverted>,
    /// The action chosen.
    #[serde(serialize_with = "ser_action")]
    pub action: Action,
    /// What was done, in order.
    pub actions: Vec<String>,
    /// Warning codes: `stale`, …
    pub warnings: Vec<String>,
    /// Everything the vault checks found.
    pub problems: Vec<Problem>,
    /// Whether the agent may start.
    pub may_start: bool,
    /// The process exit code.
    pub exit_code: i32,
    /// The head after the actions (e.g. the `recover` checkpoint).
    pub head: Option<u64>,
    /// The shell of the head checkpoint, when this wake brings a new one.
    pub molt: Option<Molt>,
    /// `status` only: an interrupted restore or migration that wake acts
    /// on before it looks at the soul, and what it will do.
    pub pending: Option<Pending>,
    /// With the `stale` warning: how old the head is, and the threshold.
    #[serde(skip)]
    pub stale: Option<Stale>,
    /// What the owner can do about the verdict, for the caller to word
    /// after `message`.
    #[serde(skip)]
    pub advice: Option<Advice>,
    /// The remote witness, when one is configured.
    pub remote: Option<WitnessReport>,
}

/// The head is older than `max_age` (the `stale` warning).
#[derive(Debug, Clone, Copy)]
pub struct Stale {
    /// The head checkpoint.
    pub seq: u64,
    /// How long ago it was sealed.
    pub age: Duration,
    /// The threshold it passed.
    pub max_age: Duration,
}

/// A shell change between the head and this wake.
#[derive(Debug, Clone, Serialize)]
pub struct Molt {
    /// The head's shell.
    pub from: String,
    /// This wake's shell.
    pub to: String,
}

fn ser_verdict<S: serde::Serializer>(v: &Verdict, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(v.as_str())
}
fn ser_detail<S: serde::Serializer>(
    d: &Option<Detail>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(d.as_str()),
        None => s.serialize_none(),
    }
}
fn ser_action<S: serde::Serializer>(a: &Action, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(a.as_str())
}

/// Wakes with no progress reporting.
pub fn wake(vault: &Vault, cred: &Credential, opts: &WakeOptions) -> Result<WakeReport> {
    wake_with_progress(vault, cred, opts, &Silent)
}

/// Wakes: resumes an interrupted restore, repairs a torn history line and a
/// lagging HEAD, runs the checks, hashes the soul, names the verdict, acts.
pub fn wake_with_progress(
    vault: &Vault,
    cred: &Credential,
    opts: &WakeOptions,
    progress: &dyn Progress,
) -> Result<WakeReport> {
    let _lock = if opts.dry_run {
        None
    } else {
        Some(vault.lock()?)
    };
    let prepared = prepare(vault, cred, opts, progress)?;

    // The soul is walked and hashed while the vault is checked: the two
    // read different things, and the checks would otherwise add their time
    // to every wake. When the checks end the wake early (identity, damage,
    // format), the scan is stopped and its result never looked at.
    let stop = AtomicBool::new(false);
    let cache = opts.fast.then(|| StatCache::path(vault.dir()));
    let mut skip = vault.skip_paths();
    if prepared.pending.is_some() {
        // Status: the work dir of a pending restore is not the soul's.
        skip.push(vault.soul().join(WORK_DIR));
    }
    let scan = || {
        soul::fingerprint_until(
            &vault.soul(),
            &vault.excludes()?,
            &skip,
            None,
            cache.as_deref(),
            progress,
            &stop,
        )
    };
    std::thread::scope(|threads| {
        let scan = threads.spawn(scan);
        let _stop = StopOnDrop(&stop);
        let scan = || joined(scan);
        judge(vault, cred, opts, progress, prepared, scan)
    })
}

/// Sets its flag when dropped: stops the soul scan however `judge` ends.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// What wake settled before the checks: actions taken (a resumed restore,
/// a repaired history), a journal problem, and the policies.
struct Prepared {
    actions: Vec<String>,
    journal_problem: Option<Problem>,
    /// Status only: an interrupted restore the wake would act on first.
    pending: Option<Pending>,
    policies: Policies,
    max_age: Option<Duration>,
}

/// Before the checks: finish (or, for status, plan) an interrupted
/// restore or migration, repair a torn history line, and settle the
/// policies.
fn prepare(
    vault: &Vault,
    cred: &Credential,
    opts: &WakeOptions,
    progress: &dyn Progress,
) -> Result<Prepared> {
    let mut prepared = Prepared {
        actions: Vec::new(),
        journal_problem: None,
        pending: None,
        policies: match opts.policies {
            Some(p) => p,
            None => vault.config.policies(&vault.config_path())?,
        },
        max_age: match opts.max_age {
            Some(m) => m,
            None => vault.config.max_age(&vault.config_path())?,
        },
    };
    if !vault.belongs_to(cred) {
        return Ok(prepared);
    }
    // An interrupted restore or migration is finished only under the
    // config the vault was sealed with (the soul path and excludes come
    // from it), and never into a quarantine that leads out of the vault;
    // otherwise the checks below halt first.
    let blocked = config_changed(vault, cred) || vault.quarantine_problem().is_some();
    // A journal this token did not sign, or whose work dirs are not the
    // ones it made, is never acted on: the checks report it.
    let bad_journal = |e| Problem::of_damage(Detail::BadJournal, e);
    if opts.dry_run {
        match swap::plan(vault, cred, blocked) {
            Ok(p) => prepared.pending = p,
            Err(e) => prepared.journal_problem = Some(bad_journal(e)?),
        }
        return Ok(prepared);
    }
    let resumed = if blocked {
        Ok(None)
    } else {
        swap::resume_locked(vault, cred, progress)
    };
    match resumed {
        Ok(Some(r)) => prepared.actions.push(resumed_action(&r)),
        Ok(None) => {}
        Err(e) => prepared.journal_problem = Some(bad_journal(e)?),
    }
    // A history that is not a regular file is the checks' to report.
    let repaired = vault.may_sign_history(cred)
        && match vault.history_for(&Keys::of(cred)).repair_torn() {
            Ok(repaired) => repaired,
            Err(Error::Corrupt { .. }) => false,
            Err(e) => return Err(e),
        };
    if repaired {
        prepared
            .actions
            .push("moved a torn history line to run/ and logged a repair".into());
    }
    if vault.may_sign_history(cred) {
        protect::finish_interrupted(vault, &Keys::of(cred))?;
    }
    Ok(prepared)
}

/// What finishing (or undoing) an interrupted restore or migration did.
fn resumed_action(r: &RestoreReport) -> String {
    if r.aborted {
        format!(
            "finished undoing an interrupted {}, which an abort had begun: the soul is back as it was before it{}",
            r.event,
            if r.quarantine.is_empty() {
                String::new()
            } else {
                format!("; what it had swapped in is in {}", r.quarantine)
            }
        )
    } else if r.undone {
        format!(
            "undid an interrupted migration: the soul stays at checkpoint {} (staging dir in {})",
            r.seq, r.quarantine
        )
    } else {
        format!(
            "finished an interrupted {} (sealed checkpoint {}; previous soul in {})",
            r.event, r.seq, r.quarantine
        )
    }
}

/// The checks, the verdict and the action, row by row of DESIGN.md's
/// table; `scan` gives the soul's fingerprint.
// Long: the table's rows in order, the remote witness's among them; each
// row is a call, and splitting the walk would hide its order.
fn judge(
    vault: &Vault,
    cred: &Credential,
    opts: &WakeOptions,
    progress: &dyn Progress,
    prepared: Prepared,
    scan: impl FnOnce() -> Result<soul::Scan>,
) -> Result<WakeReport> {
    // `status` holds no lock: it must not take a seal in progress for
    // damage.
    let mut insp = if opts.dry_run {
        inspect_consistent(vault, cred, ObjectScope::Head)?
    } else {
        inspect(vault, cred, ObjectScope::Head)?
    };
    if let Some(p) = prepared.journal_problem {
        insp.problems.insert(0, p);
    }
    let mut report = WakeReport::new(&insp, prepared.actions, prepared.pending);
    // Rows identity-mismatch, corrupted, rolled-back: the first problem.
    if halted_by_checks(&insp, &mut report) {
        return halted(vault, cred, opts, report);
    }
    // Row rolled-back (remote-ahead) and corrupted (forked): the witness.
    let Some(witness_halt) = witness(vault, cred, opts, progress, &insp, &mut report)?.halts()
    else {
        return halted(vault, cred, opts, report);
    };
    let head = insp.head.clone().expect("no problems implies a head");
    let head_manifest = insp
        .head_manifest
        .clone()
        .expect("no problems implies a readable manifest");
    if insp.head_behind() && !opts.dry_run {
        repair_head(vault, &insp.keys, &head, &mut report)?;
    }
    warn(vault, opts, &head, prepared.max_age, &mut report);
    // Row incompatible: refuse a soul this shell cannot read before
    // anything writes.
    let policies = prepared.policies;
    let migrate_to = match judge_format(vault, opts, &head, &policies, &mut report)? {
        Format::Unreadable => return halted(vault, cred, opts, report),
        Format::Readable(migrate_to) => migrate_to,
    };
    if let Some(p) = report
        .pending
        .clone()
        .filter(|p| p.wake_will == WakeWill::Finish)
    {
        // Status: wake would first finish it, and the soul would then be
        // the one it seals. Comparing the half-swapped soul would say
        // nothing about what wake will say.
        report.message = format!(
            "once wake has finished the pending {}, the soul is the one it seals ({})",
            p.event,
            if p.event == MIGRATE {
                "the migrated soul".to_owned()
            } else {
                format!("checkpoint {}'s", p.target)
            }
        );
        report.may_start = true;
        return Ok(report);
    }
    // Rows verified, drifted, tampered: the soul against the head.
    let judged = judge_soul(vault, &insp, &head, &head_manifest, scan(), &mut report)?;
    choose_action(&judged, &policies, &mut report);
    halt_for_witness(&mut report, witness_halt);
    if opts.dry_run {
        return Ok(report);
    }
    let plan = Plan {
        head,
        migrate_to,
        protected: judged.protected,
    };
    act_and_record(vault, cred, opts, progress, report, plan)
}

/// The action the policies name for the verdict, the exit code, and
/// whether the agent may start.
fn choose_action(judged: &Judged, policies: &Policies, report: &mut WakeReport) {
    report.action = match &judged.protected {
        Some(g) => g.action(policies),
        None => policies.action(report.verdict),
    };
    if judged.protected.is_some() && report.action != Action::Halt {
        // Nothing for the owner to choose: the action says what was done.
        report.advice = None;
    }
    if judged.unrecordable && report.action == Action::Accept {
        // A seal would refuse the same entry: halt instead of failing.
        report.action = Action::Halt;
    }
    report.exit_code = match report.action {
        Action::Halt => report.verdict.exit_code(),
        _ => 0,
    };
    report.may_start = report.action != Action::Halt;
}

/// What wake acts on: the head, the migrations the policy asks for, and
/// the protected paths that changed.
struct Plan {
    head: StoredCheckpoint,
    migrate_to: Option<u32>,
    protected: Option<Guard>,
}

/// What the soul comparison found.
struct Judged {
    /// An entry no seal can record.
    unrecordable: bool,
    /// Protected paths that changed.
    protected: Option<Guard>,
}

/// Changed protected paths, and what else changed.
struct Guard {
    pairs: Vec<Pair>,
    /// The head manifest's version.
    version: crate::format::manifest::Version,
    /// Whether the rest of the soul differs from the head too.
    rest_changed: bool,
    /// Whether the last run did not stop cleanly (a valid marker).
    crashed: bool,
}

impl Guard {
    /// The action on `protected-changed`: the `protected` policy; a revert
    /// goes on only if the rest of the soul, once the protected paths are
    /// back, is one the `drifted` (after a crash) or `tampered` policy lets
    /// start: a halt there halts, a rollback restores the whole head.
    fn action(&self, policies: &Policies) -> Action {
        if policies.protected == ProtectPolicy::Halt {
            return Action::Halt;
        }
        if !self.rest_changed {
            return Action::Revert;
        }
        let rest = if self.crashed {
            Verdict::Drifted
        } else {
            Verdict::Tampered
        };
        match policies.action(rest) {
            Action::Halt => Action::Halt,
            Action::Rollback => Action::Rollback,
            _ => Action::Revert,
        }
    }
}

impl WakeReport {
    /// The report of the checks, before the soul is compared: verified so
    /// far, the agent not yet allowed to start.
    fn new(insp: &Inspection, actions: Vec<String>, pending: Option<Pending>) -> Self {
        WakeReport {
            verdict: Verdict::Verified,
            detail: None,
            message: String::new(),
            seq: insp.head.as_ref().map(|h| h.ckpt.seq),
            format: insp.head.as_ref().map(|h| h.ckpt.format.clone()),
            soul: None,
            changes: Changes::default(),
            protected: Vec::new(),
            reverted: None,
            action: Action::Start,
            actions,
            warnings: Vec::new(),
            problems: insp.problems.clone(),
            may_start: false,
            exit_code: 0,
            head: insp.head.as_ref().map(|h| h.ckpt.seq),
            molt: None,
            pending,
            stale: None,
            advice: None,
            remote: None,
        }
    }
}

/// Whether the checks found a problem, which then names the verdict:
/// the agent does not start, whatever the policies.
fn halted_by_checks(insp: &Inspection, report: &mut WakeReport) -> bool {
    let Some((verdict, detail)) = insp.failure() else {
        return false;
    };
    report.verdict = verdict;
    report.detail = Some(detail);
    report.message = insp.problems[0].message.clone();
    report.advice = insp.problems[0].advice.clone();
    if detail == Detail::MacInvalid && insp.retired_at.is_none() {
        report.advice = Some(Advice::RekeyWithOld);
    }
    true
}

/// A report that halts before the soul is compared: recorded (but for
/// status), returned.
fn halted(
    vault: &Vault,
    cred: &Credential,
    opts: &WakeOptions,
    mut report: WakeReport,
) -> Result<WakeReport> {
    report.action = Action::Halt;
    report.exit_code = report.verdict.exit_code();
    if !opts.dry_run {
        record(vault, cred, &report, opts)?;
    }
    Ok(report)
}

/// Moves HEAD to the newest checkpoint after a seal interrupted between
/// writing the checkpoint and HEAD, and logs the repair.
fn repair_head(
    vault: &Vault,
    keys: &Keys,
    head: &StoredCheckpoint,
    report: &mut WakeReport,
) -> Result<()> {
    vault.write_head(head.ckpt.seq)?;
    let mut data = Map::new();
    data.insert(
        "what".into(),
        "HEAD pointed at an older checkpoint (interrupted seal); moved it to the newest".into(),
    );
    data.insert("seq".into(), head.ckpt.seq.into());
    vault.history_for(keys).append("repair", data)?;
    report.actions.push(format!(
        "moved HEAD to checkpoint {} (an interrupted seal)",
        head.ckpt.seq
    ));
    Ok(())
}

/// The warnings that do not change the verdict: `stale`, and a new shell
/// (`molt`).
fn warn(
    vault: &Vault,
    opts: &WakeOptions,
    head: &StoredCheckpoint,
    max_age: Option<Duration>,
    report: &mut WakeReport,
) {
    if let Some(max) = max_age {
        let age = vault
            .now()
            .duration_since(head.ckpt.sealed_time())
            .unwrap_or_default();
        if age > max {
            report.warnings.push("stale".into());
            report.stale = Some(Stale {
                seq: head.ckpt.seq,
                age,
                max_age: max,
            });
        }
    }
    if let Some(shell) = opts.shell.as_ref().filter(|s| **s != head.ckpt.shell) {
        report.molt = Some(Molt {
            from: head.ckpt.shell.clone(),
            to: shell.clone(),
        });
    }
}

/// Whether the shell reads the soul's format.
enum Format {
    /// It does, or will once the migrations to this format ran.
    Readable(Option<u32>),
    /// It does not: `incompatible`.
    Unreadable,
}

/// Row incompatible: the head's format against what the shell reads
/// (`reads`), and the `needs-migration` warning.
fn judge_format(
    vault: &Vault,
    opts: &WakeOptions,
    head: &StoredCheckpoint,
    policies: &Policies,
    report: &mut WakeReport,
) -> Result<Format> {
    let reads = match &opts.reads {
        Some(r) => Some(r.clone()),
        None => vault.config.reads(&vault.config_path())?,
    };
    let Some(reads) = &reads else {
        return Ok(Format::Readable(None));
    };
    let registry = Registry::for_vault(vault)?;
    let a = standing(vault, &registry, head, reads)?;
    let mut migrate_to = None;
    if let Some(t) = a.target {
        report.warnings.push("needs-migration".into());
        if policies.needs_migration == MigrationPolicy::Migrate {
            migrate_to = Some(t);
        }
    }
    if a.readable || migrate_to.is_some() {
        return Ok(Format::Readable(migrate_to));
    }
    report.verdict = Verdict::Incompatible;
    report.advice = a.target.map(|_| Advice::Migrate);
    report.message = match a.target {
        Some(t) => format!(
            "the soul is format {}; this shell reads {reads}. Migrations {} lead to v{t}",
            head.ckpt.format,
            a.pending.join(", ")
        ),
        None if a.current > reads.newest() => format!(
            "the soul is format {}, newer than this shell reads ({reads}): a downgrade. Run a shell that reads {}",
            head.ckpt.format, head.ckpt.format
        ),
        None => format!(
            "the soul is format {}; this shell reads {reads}, and no migration in {} leads there",
            head.ckpt.format,
            migrations_dir(vault).display()
        ),
    };
    Ok(Format::Unreadable)
}

/// Rows verified, drifted and tampered: the soul as walked against the
/// head; a valid awake marker tells a crash (drifted) from a change at
/// rest (tampered). An entry selfsame cannot record (a FIFO, a socket, a
/// device, a name that is not UTF-8 or has control characters) is a change
/// like any other, but one no seal can adopt. A change of a protected path
/// is `tampered` (`protected-changed`) whatever the marker says.
fn judge_soul(
    vault: &Vault,
    insp: &Inspection,
    head: &StoredCheckpoint,
    head_manifest: &Manifest,
    walked: Result<soul::Scan>,
    report: &mut WakeReport,
) -> Result<Judged> {
    let (fp, unrecordable) = match walked {
        Ok(scan) => (Some(scan.fingerprint), None),
        Err(Error::Unsupported { path, reason }) => (None, Some((path, reason))),
        Err(e) => return Err(e),
    };
    // Judged in the version of the head's manifest: upgrading selfsame
    // never turns a verified soul into a tampered one.
    let soul_hash = fp
        .as_ref()
        .map(|fp| hex::encode(fp.soul_hash_as(head_manifest.version)));
    report.soul = soul_hash.clone();
    let seq = head.ckpt.seq;
    let changed = if let Some((path, reason)) = &unrecordable {
        report.changes.added.push(path.clone());
        report.advice = Some(Advice::RemoveOrExclude);
        Some(format!("soul entry {path} cannot be recorded ({reason})"))
    } else if soul_hash.as_deref() == Some(head.ckpt.soul.as_str()) {
        report.verdict = Verdict::Verified;
        report.message = format!("soul matches checkpoint {seq} ({} files)", head.ckpt.files);
        None
    } else {
        let fp = fp.as_ref().expect("walked unless unrecordable");
        report.changes = soul::changes(head_manifest, &fp.manifest);
        Some(report.changes.summary())
    };
    if let (Some(fp), Some(_)) = (&fp, &changed) {
        if let Some(g) = judge_protected(vault, insp, head, head_manifest, &fp.manifest, report)? {
            return Ok(Judged {
                unrecordable: false,
                protected: Some(g),
            });
        }
    }
    if let Some(what) = changed {
        let crashed = vault.marker_valid(&insp.keys, head)?;
        let adoptable = unrecordable.is_none();
        (report.verdict, report.message) = match (crashed, adoptable) {
            (true, true) => (
                Verdict::Drifted,
                format!("soul changed since checkpoint {seq} and the last run did not stop cleanly: {what}"),
            ),
            (true, false) => (
                Verdict::Drifted,
                format!("soul changed since checkpoint {seq} and the last run did not stop cleanly, but it cannot be accepted: {what}"),
            ),
            (false, _) => (
                Verdict::Tampered,
                format!("soul changed while the agent was at rest (checkpoint {seq}): {what}"),
            ),
        };
    }
    if let (Some((r, reason)), Some(first), Some(last)) =
        (insp.voucher(), insp.vouched.first(), insp.vouched.last())
    {
        report.message.push_str(&format!(
            "; checkpoints {first}-{last} were sealed under the previous token and are vouched for by {reason} checkpoint {r}"
        ));
    }
    Ok(Judged {
        unrecordable: unrecordable.is_some(),
        protected: None,
    })
}

/// The protected paths of the soul against the head's, before anything
/// else about the soul: a difference is `tampered` (`protected-changed`),
/// whatever the awake marker says.
fn judge_protected(
    vault: &Vault,
    insp: &Inspection,
    head: &StoredCheckpoint,
    head_manifest: &Manifest,
    current: &Manifest,
    report: &mut WakeReport,
) -> Result<Option<Guard>> {
    let protect = vault.config.protect_globs(&vault.config_path())?;
    let pairs = protect::pairs(head_manifest, &current.entries, &protect);
    if pairs.is_empty() {
        return Ok(None);
    }
    let seq = head.ckpt.seq;
    let merged = protect::merged(head_manifest, current, &pairs, |_| false);
    let rest_changed = hex::encode(merged.soul_hash_as(head_manifest.version)) != head.ckpt.soul;
    let crashed = vault.marker_valid(&insp.keys, head)?;
    report.verdict = Verdict::Tampered;
    report.detail = Some(Detail::ProtectedChanged);
    report.protected = pairs.iter().map(|p| p.path.clone()).collect();
    report.advice = Some(Advice::ApproveOrRevert);
    report.message = format!(
        "protected paths changed since checkpoint {seq}: {}",
        protect::changes_of(&pairs).summary()
    );
    if rest_changed {
        let rest = soul::changes(head_manifest, &merged);
        report.message.push_str(&format!(
            "; the rest of the soul changed too{}: {}",
            if crashed {
                " (the last run did not stop cleanly)"
            } else {
                ", while the agent was at rest"
            },
            rest.summary()
        ));
    }
    Ok(Some(Guard {
        pairs,
        version: head_manifest.version,
        rest_changed,
        crashed,
    }))
}

/// Takes the action, then records the one event of this wake: what the
/// command finally decided (a migration that fails turns `verified` into
/// `incompatible`).
fn act_and_record(
    vault: &Vault,
    cred: &Credential,
    opts: &WakeOptions,
    progress: &dyn Progress,
    mut report: WakeReport,
    plan: Plan,
) -> Result<WakeReport> {
    match act(vault, cred, opts, progress, &mut report, plan) {
        Ok(new_head) => {
            record(vault, cred, &report, opts)?;
            if let Some(h) = new_head {
                report.head = Some(h.ckpt.seq);
                vault.write_marker(&Keys::of(cred), &h)?;
            }
            Ok(report)
        }
        Err(e) => {
            report.message = format!(
                "{}; then taking the action ({}) failed, so the agent was not started: {e}",
                report.message,
                report.action.as_str()
            );
            report.action = Action::Halt;
            report.may_start = false;
            // The error is what the caller must see; the event is best effort.
            let _ = record(vault, cred, &report, opts);
            Err(e)
        }
    }
}

/// Takes the action the verdict's policy names, then any migrations the
/// policy asks for. Returns the head the agent starts on (`None`: halt);
/// a failed migration turns the report `incompatible`.
fn act(
    vault: &Vault,
    cred: &Credential,
    opts: &WakeOptions,
    progress: &dyn Progress,
    report: &mut WakeReport,
    plan: Plan,
) -> Result<Option<StoredCheckpoint>> {
    let Plan {
        head,
        migrate_to,
        protected,
    } = plan;
    let new_head = match report.action {
        Action::Start => Some(head),
        Action::Revert => {
            let g = protected.expect("revert is the action on protected paths only");
            Some(revert(vault, cred, opts, progress, report, head, g)?)
        }
        Action::Accept => {
            let mut so = SealOptions::new(Reason::Recover);
            so.shell = opts.shell.clone();
            let s = seal_locked(vault, cred, &so, progress)?;
            report
                .actions
                .push(format!("accepted: sealed checkpoint {} (recover)", s.seq));
            Some(vault.read_checkpoint(s.seq)?)
        }
        Action::Rollback => {
            let r = restore_locked(vault, cred, Target::Head, "rollback", progress)?;
            report.actions.push(format!(
                "rolled back to checkpoint {}: sealed checkpoint {} (restore); the changed soul is in {}",
                r.target, r.seq, r.quarantine
            ));
            Some(vault.read_checkpoint(r.seq)?)
        }
        Action::Halt => None,
    };
    let new_head = match (new_head, migrate_to) {
        (Some(h), Some(t)) => {
            let mo = MigrateOptions {
                to: Some(t),
                shell: opts.shell.clone(),
                ..Default::default()
            };
            let registry = Registry::for_vault(vault)?;
            let m = migrate_locked(vault, cred, &registry, &mo, progress)?;
            for s in &m.applied {
                report.actions.push(format!(
                    "migrated {} -> {} ({}): sealed checkpoint {}",
                    s.from, s.to, s.migration, s.seq
                ));
            }
            if let Some(f) = &m.failed {
                report.verdict = Verdict::Incompatible;
                report.message = format!(
                    "migration {} ({} -> {}) failed: {}; the soul stays at {} (staging dir in {})",
                    f.migration, f.from, f.to, f.error, m.format, f.staging
                );
                report.action = Action::Halt;
                report.may_start = false;
                report.exit_code = Verdict::Incompatible.exit_code();
                None
            } else {
                report.format = Some(m.format.clone());
                let seq = m.applied.last().map_or(h.ckpt.seq, |s| s.seq);
                Some(vault.read_checkpoint(seq)?)
            }
        }
        (h, _) => h,
    };
    Ok(new_head)
}

/// The `revert` action: the approved versions of the changed protected
/// paths back, then the rest of the soul sealed (`recover`) when it changed
/// too. Returns the head the agent starts on.
fn revert(
    vault: &Vault,
    cred: &Credential,
    opts: &WakeOptions,
    progress: &dyn Progress,
    report: &mut WakeReport,
    head: StoredCheckpoint,
    g: Guard,
) -> Result<StoredCheckpoint> {
    let r = protect::revert_locked(vault, &Keys::of(cred), head.ckpt.seq, g.version, &g.pairs)?;
    report.actions.push(format!(
        "reverted {}: the approved versions are back (checkpoint {}); the changed ones are in {}",
        r.paths.join(", "),
        r.seq,
        r.quarantine
    ));
    report.reverted = Some(r);
    if !g.rest_changed {
        return Ok(head);
    }
    let mut so = SealOptions::new(Reason::Recover);
    so.shell = opts.shell.clone();
    let s = seal_locked(vault, cred, &so, progress)?;
    report.actions.push(format!(
        "accepted the rest: sealed checkpoint {} (recover)",
        s.seq
    ));
    vault.read_checkpoint(s.seq)
}

/// Whether the newest checkpoint verifies under `token` and records a
/// config other than `config.toml`'s. Anything less certain is `false`: the
/// full checks decide then.
fn config_changed(vault: &Vault, cred: &Credential) -> bool {
    let keys = Keys::of(cred);
    let newest = vault.checkpoint_seqs().ok().and_then(|s| s.last().copied());
    newest
        .and_then(|seq| vault.read_checkpoint(seq).ok())
        .is_some_and(|h| keys.verifies(&h.ckpt) && config_problem(vault, &h).is_some())
}

fn record(vault: &Vault, cred: &Credential, r: &WakeReport, opts: &WakeOptions) -> Result<()> {
    if r.verdict == Verdict::IdentityMismatch {
        // A token that does not verify the vault cannot sign its history:
        // its line would read as forged. The attempt goes to run/ instead.
        return vault.record_refused(cred.account_id(), &r.message);
    }
    let mut data = Map::new();
    data.insert("verdict".into(), r.verdict.as_str().into());
    if let Some(d) = r.detail {
        data.insert("detail".into(), d.as_str().into());
    }
    if let Some(seq) = r.seq {
        data.insert("seq".into(), seq.into());
    }
    data.insert("action".into(), r.action.as_str().into());
    data.insert("changes".into(), r.changes.summarize().to_value());
    if !r.protected.is_empty() {
        data.insert("protected".into(), r.protected.clone().into());
    }
    if let Some(s) = &opts.shell {
        data.insert("shell".into(), s.clone().into());
    }
    if !r.warnings.is_empty() {
        data.insert("warnings".into(), r.warnings.clone().into());
    }
    data.insert("message".into(), r.message.clone().into());
    match vault.history_for(&Keys::of(cred)).append("wake", data) {
        Ok(_) => Ok(()),
        // A history that is not a regular file cannot take the line; the
        // verdict already says so.
        Err(Error::Corrupt { .. }) if r.verdict == Verdict::Corrupted => Ok(()),
        Err(e) => Err(e),
    }
}

/// `[policy] witness = "halt"` with the witness out of reach: without it
/// a rollback cannot be ruled out. The soul's verdict stands; the exit is 1.
fn halt_for_witness(report: &mut WakeReport, halt: bool) {
    if halt && report.action != Action::Halt {
        report.action = Action::Halt;
        report.may_start = false;
        report.exit_code = 1;
        report.message = format!(
            "{}; but the remote witness cannot be reached and [policy] witness = \"halt\"",
            report.message
        );
    }
}

/// What the witness said.
enum Witnessed {
    /// Nothing against starting (same head, pushed, or no witness).
    Fine,
    /// A verdict that halts: `rolled-back` (`remote-ahead`) or
    /// `corrupted` (`forked`).
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    Halt,
    /// Not reached: the `witness-unreachable` warning; `true` when the
    /// policy makes it halt.
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    Unreachable(bool),
}

impl Witnessed {
    /// `None` when the verdict halts now; else whether the policy halts
    /// once the soul's verdict is known.
    fn halts(self) -> Option<bool> {
        match self {
            Witnessed::Halt => None,
            Witnessed::Fine => Some(false),
            Witnessed::Unreachable(halt) => Some(halt),
        }
    }
}

/// Without the `remote` feature there is no witness.
#[cfg(not(feature = "remote"))]
fn witness(
    _vault: &Vault,
    _cred: &Credential,
    _opts: &WakeOptions,
    _progress: &dyn Progress,
    _insp: &Inspection,
    _report: &mut WakeReport,
) -> Result<Witnessed> {
    Ok(Witnessed::Fine)
}

/// Compares the head with the remote witness (docs/REMOTE.md): the same
/// head is fine; a remote behind is pushed to (not by status); a remote
/// ahead is `rolled-back`; another checkpoint under one seq is `forked`;
/// a remote that cannot be reached or read is a warning.
#[cfg(feature = "remote")]
fn witness(
    vault: &Vault,
    cred: &Credential,
    opts: &WakeOptions,
    progress: &dyn Progress,
    insp: &Inspection,
    report: &mut WakeReport,
) -> Result<Witnessed> {
    use super::push::{push_locked, Standing};
    use crate::error::RemoteProblem;
    let Some(w) = &opts.witness else {
        return Ok(Witnessed::Fine);
    };
    let halt = vault.config.witness_policy(&vault.config_path())?
        == crate::vault::config::WitnessPolicy::Halt;
    let (remote, rhead, standing) = match look(vault, w, cred, opts, insp)? {
        Looked::At(remote, rhead, standing) => (remote, rhead, standing),
        Looked::Empty(w) => {
            report.remote = Some(w);
            return Ok(Witnessed::Fine);
        }
        Looked::Unreachable(w) => return Ok(unreachable(report, w, halt)),
    };
    let url = remote.url().to_owned();
    let mut state = WitnessReport {
        url: url.clone(),
        state: "same",
        remote_seq: rhead.as_ref().map(|r| r.seq),
        behind: 0,
        error: None,
    };
    let outcome = match standing {
        Standing::Same => Witnessed::Fine,
        Standing::Ahead { behind, .. } if opts.dry_run => {
            state.state = "behind";
            state.behind = behind;
            Witnessed::Fine
        }
        Standing::Ahead { .. } => match push_locked(vault, cred, &remote, rhead.as_ref(), progress)
        {
            Ok(p) => {
                report.actions.push(format!(
                    "pushed checkpoints {}-{} to the remote witness {url}",
                    p.remote_before.map_or(1, |r| r + 1),
                    p.head
                ));
                state.state = "pushed";
                state.remote_seq = Some(p.head);
                Witnessed::Fine
            }
            Err(Error::Remote {
                problem: RemoteProblem::Forked { seq },
                ..
            }) => forked(report, &mut state, seq),
            Err(Error::Remote { problem, .. }) => {
                state.error = Some(problem.to_string());
                return Ok(unreachable(report, state, halt));
            }
            Err(e) => return Err(e),
        },
        Standing::Behind { remote: r } => remote_ahead(report, &mut state, r),
        Standing::Forked { seq } => forked(report, &mut state, seq),
    };
    report.remote = Some(state);
    Ok(outcome)
}

/// The remote, read.
#[cfg(feature = "remote")]
enum Looked {
    /// Its head and how the vault stands against it.
    At(
        Box<crate::remote::Remote>,
        Option<crate::remote::RemoteHead>,
        super::push::Standing,
    ),
    /// Status of a remote nothing was pushed to yet.
    Empty(WitnessReport),
    /// It could not be reached or read.
    Unreachable(WitnessReport),
}

/// Opens the remote (a wake makes its key when there is none; status does
/// not) and reads its head.
#[cfg(feature = "remote")]
fn look(
    vault: &Vault,
    w: &Witness,
    cred: &Credential,
    opts: &WakeOptions,
    insp: &Inspection,
) -> Result<Looked> {
    use crate::error::RemoteProblem;
    use crate::remote::Remote;
    let gone = |url: String, why: String| {
        Ok(Looked::Unreachable(WitnessReport {
            url,
            state: "unreachable",
            remote_seq: None,
            behind: 0,
            error: Some(why),
        }))
    };
    let access = match w {
        Witness::Remote(a) => a,
        Witness::Unavailable { url, reason } => return gone(url.clone(), reason.clone()),
    };
    let looked = (|| -> Result<_> {
        // A wake holds the lock: it keeps the keyring the remote opened
        // with (status writes nothing).
        let write = !opts.dry_run;
        let local = vault.remote_keyring(cred, write)?;
        let remote = Remote::open(access, cred, local.as_ref(), write)?;
        if write {
            vault.save_remote_keyring(remote.keyring(), cred)?;
        }
        let rhead = remote.head()?;
        let standing = super::push::standing(&remote, &insp.checkpoints, rhead.as_ref())?;
        Ok(Looked::At(Box::new(remote), rhead, standing))
    })();
    match looked {
        Err(Error::Remote {
            problem: RemoteProblem::Empty,
            ..
        }) => Ok(Looked::Empty(WitnessReport {
            url: access.url(),
            state: "behind",
            remote_seq: None,
            behind: insp.checkpoints.len() as u64,
            error: None,
        })),
        Err(Error::Remote { problem, .. }) => gone(access.url(), problem.to_string()),
        other => other,
    }
}

/// The `witness-unreachable` warning.
#[cfg(feature = "remote")]
fn unreachable(report: &mut WakeReport, mut state: WitnessReport, halt: bool) -> Witnessed {
    report.warnings.push("witness-unreachable".into());
    state.state = "unreachable";
    report.remote = Some(state);
    Witnessed::Unreachable(halt)
}

/// The `rolled-back` verdict, detail `remote-ahead`.
#[cfg(feature = "remote")]
fn remote_ahead(report: &mut WakeReport, state: &mut WitnessReport, remote: u64) -> Witnessed {
    report.verdict = Verdict::RolledBack;
    report.detail = Some(Detail::RemoteAhead);
    report.message = format!(
        "the remote witness {} is at checkpoint {remote}, but this vault only at {}: an older vault was put back, or its newest records were cut",
        state.url,
        report.seq.unwrap_or(0)
    );
    state.state = "remote-ahead";
    Witnessed::Halt
}

/// The `forked` verdict: halts whatever the policies say.
#[cfg(feature = "remote")]
fn forked(report: &mut WakeReport, state: &mut WitnessReport, seq: u64) -> Witnessed {
    report.verdict = Verdict::Corrupted;
    report.detail = Some(Detail::Forked);
    report.message = format!(
        "the remote witness {} holds another checkpoint {seq} than this vault: the agent also runs elsewhere (or ran from a copy of this vault)",
        state.url
    );
    state.state = "forked";
    Witnessed::Halt
}
