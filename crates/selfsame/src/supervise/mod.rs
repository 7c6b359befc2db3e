//! Supervise: wake, start the agent, seal on a heartbeat, seal `rest` at a
//! clean exit; on a crash record it, wake again and restart with backoff;
//! assess boots and roll back a soul the agent cannot start on; alert the
//! owner on every halt, rollback and give-up.
//!
//! Plumbing: [`run`] reports through a [`Log`] and returns an exit code;
//! the CLI prints. The supervisor holds `run/supervisor.lock` for its life
//! and the short vault lock only while it writes, so the agent may seal
//! (`selfsame seal --reason heartbeat`) while supervised.

pub(crate) mod alert;
pub(crate) mod boot;
pub(crate) mod child;
mod guard;
mod privilege;
#[cfg(feature = "remote")]
pub(crate) mod push;

use std::collections::VecDeque;
use std::ffi::OsString;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::{Map, Value};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::crypto::{Credential, Keys};
use crate::error::{Error, LockName, Result};
use crate::format::checkpoint::Reason;
use crate::format::time::rfc3339;
use crate::ops::forget::{forget, ForgetOptions, Policy};
use crate::ops::prune::prune;
use crate::ops::quarantine;
use crate::ops::restore::{restore_locked, Target};
use crate::ops::seal::{seal, SealOptions};
use crate::ops::wake::{wake_with_progress, WakeOptions, WakeReport};
use crate::progress::Silent;
use crate::vault::{lock, Vault};
use crate::verdict::{Action, Detail, Verdict};
pub use alert::{Alert, Sinks};
use alert::{Delivery, Dispatcher};
use boot::{Decision, State};
pub use child::Prepare;
use child::{Agent, Ended};
pub use privilege::RunAs;
#[cfg(feature = "remote")]
pub use push::PushRetry;

/// The longest wait between restarts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Exit code when the supervisor gives up (too many restarts, or boot
/// assessment found nothing left to try).
pub const EXIT_GAVE_UP: i32 = 1;
const TICK: Duration = Duration::from_millis(20);

/// How to supervise.
#[derive(Debug, Clone)]
pub struct Options {
    /// The agent's command line.
    pub command: Vec<OsString>,
    /// Seal `heartbeat` this often; `None`: never.
    pub heartbeat: Option<Duration>,
    /// Look at the protected paths this often (stat-based); `None`: only
    /// at heartbeats and at the stop.
    pub protect_interval: Option<Duration>,
    /// A start that dies sooner is a failed try; a run that lives longer
    /// marks its checkpoint good.
    pub probation: Duration,
    /// Failed tries before a rollback (and, after it, before halting).
    pub tries: u32,
    /// How long a stopping agent gets before SIGKILL.
    pub stop_timeout: Duration,
    /// Give up after this many restarts within `restart_window`.
    pub max_restarts: Option<u32>,
    /// The window for `max_restarts`.
    pub restart_window: Duration,
    /// The first restart delay; it doubles up to [`MAX_BACKOFF`] and resets
    /// after a run longer than probation.
    pub restart_delay: Duration,
    /// How to wake (policies, shell version, max age).
    pub wake: WakeOptions,
    /// Where alerts go.
    pub alerts: Sinks,
    /// Changes the agent's command before each start. With `user` set, it
    /// must switch the agent to that user (and its groups); without one,
    /// the agent gets the user and its primary group only.
    pub prepare: Option<Prepare>,
    /// Run the agent as this user: the supervisor (root) refuses to start
    /// when the user could write the vault or anything in it, and checks
    /// each start's credentials.
    pub user: Option<RunAs>,
    /// Words what the owner can do next, for alerts (the CLI names its
    /// commands); `None` says it without naming any.
    pub advise: Option<fn(&Next) -> String>,
    /// How the background push to the remote witness (`wake.witness`)
    /// retries.
    #[cfg(feature = "remote")]
    pub push_retry: PushRetry,
}

/// What the owner can do after an alert, for [`Options::advise`] to word.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Next {
    /// The supervisor stopped on an error; the agent is not running.
    Error,
    /// Boot assessment gave up: nothing left to roll back to.
    GaveUp,
    /// Boot assessment rolled back; the soul it could not start on is in
    /// `quarantine` (relative to the vault).
    RolledBack {
        /// Where the soul went.
        quarantine: String,
    },
    /// Too many restarts in the window.
    TooManyRestarts,
    /// Wake halted with this verdict and detail.
    Halted(Verdict, Option<Detail>),
    /// A wake policy rolled the soul back before the agent started.
    RolledBackOnWake,
    /// Protected paths changed and were put back; the changed versions are
    /// in `quarantine` (relative to the vault).
    Reverted {
        /// Where the changed versions went.
        quarantine: String,
    },
}

impl Next {
    /// What the owner can do, naming no command.
    pub fn plain(&self) -> String {
        match self {
            Next::Error => {
                "check the vault and its history; fix the cause, then start the supervisor again"
                    .into()
            }
            Next::GaveUp => {
                "fix the agent, then start it again; the history shows the crashes".into()
            }
            Next::RolledBack { quarantine } => {
                format!("inspect {quarantine}; the history shows the crashes")
            }
            Next::TooManyRestarts => {
                "fix the agent, then start the supervisor again; the history shows the crashes"
                    .into()
            }
            Next::Halted(..) => "see the verdict's message; the agent was not started".into(),
            Next::RolledBackOnWake => {
                "inspect the changed soul in quarantine (the history names it)".into()
            }
            Next::Reverted { quarantine } => format!(
                "nothing, if the change was not the owner's; if it was, copy it back from {quarantine} while the agent is stopped and approve it"
            ),
        }
    }
}

impl Options {
    /// Options for `command` with the documented defaults.
    pub fn new(command: Vec<OsString>) -> Self {
        Options {
            command,
            heartbeat: Some(Duration::from_secs(300)),
            protect_interval: Some(Duration::from_secs(2)),
            probation: Duration::from_secs(60),
            tries: 3,
            stop_timeout: Duration::from_secs(30),
            max_restarts: None,
            restart_window: Duration::from_secs(3600),
            restart_delay: Duration::from_secs(1),
            wake: WakeOptions::default(),
            alerts: Sinks::default(),
            prepare: None,
            user: None,
            advise: None,
            #[cfg(feature = "remote")]
            push_retry: PushRetry::default(),
        }
    }
}

/// Receives the supervisor's lines for people.
pub trait Log {
    /// One fact, one line.
    fn line(&self, text: &str);

    /// An alert that went nowhere, since no sink is set.
    fn unsent(&self, message: &str) {
        self.line(&format!("no alert sink is set: {message}"));
    }
}

/// How supervision ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The process exit code.
    pub exit_code: i32,
    /// Why, for people.
    pub message: String,
}

/// Supervises the agent until it exits cleanly, is stopped, or cannot be
/// started; see the module docs. Errors are failures of selfsame itself
/// (I/O, a busy supervisor lock: exit 75).
pub fn run(vault: &Vault, cred: &Credential, opts: &Options, log: &dyn Log) -> Result<Outcome> {
    // Before wake writes its history line and the awake marker: an agent
    // that can never start must not leave the vault saying it is awake.
    if opts
        .command
        .first()
        .is_none_or(|program| program.is_empty())
    {
        return Err(Error::NoCommand);
    }
    if let Some(user) = &opts.user {
        let migrations = crate::ops::migrate::migrations_dir(vault);
        privilege::check_out_of_reach(vault, &migrations, user)?;
    }
    let _supervisor = lock::acquire(
        &vault.run_dir().join("supervisor.lock"),
        Duration::ZERO,
        LockName::Supervisor,
    )?;
    let signals = Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| Error::Usage(format!("cannot install signal handlers: {e}")))?;
    let mut s = Supervisor {
        vault,
        cred,
        opts,
        log,
        signals,
        alerts: Dispatcher::new(opts.alerts.clone(), cred.clone(), &vault.config.token_env),
        state: State::load(vault),
        restarts: VecDeque::new(),
        delay: opts.restart_delay,
        stop: None,
        watch: None,
        halt: None,
        unpruned: std::cell::Cell::new(true),
        #[cfg(feature = "remote")]
        pusher: None,
    };
    let outcome = s.supervise();
    if let Err(e) = &outcome {
        // selfsame itself failed (I/O, a damaged vault mid-run, a command
        // that cannot start): the agent is not running, so say so.
        s.alert(Alert {
            event: "halt".into(),
            message: format!("the supervisor stopped on an error; the agent is not running: {e}"),
            changes: Default::default(),
            next: s.next(&Next::Error),
            ..s.alert_base()
        });
    }
    #[cfg(feature = "remote")]
    if let Some(p) = s.pusher.take() {
        for r in p.finish() {
            s.pushed(r);
        }
    }
    s.record_deliveries_until_done();
    outcome
}

struct Supervisor<'a> {
    vault: &'a Vault,
    cred: &'a Credential,
    opts: &'a Options,
    log: &'a dyn Log,
    signals: Signals,
    alerts: Dispatcher,
    state: State,
    restarts: VecDeque<Instant>,
    delay: Duration,
    /// The stop signal received, if any.
    stop: Option<Signal>,
    /// The watch on the protected paths, while the agent runs.
    watch: Option<crate::ops::protect::Watch>,
    /// Why the supervisor is stopping the agent itself (a protected path
    /// changed under `protected = "halt"`).
    halt: Option<String>,
    /// The background push to the remote witness, once the agent started.
    #[cfg(feature = "remote")]
    pusher: Option<push::Pusher>,
    /// Whether a forget may have released snapshots that are not pruned
    /// yet (at the start: unknown, so the first retention prunes).
    unpruned: std::cell::Cell<bool>,
}

impl Supervisor<'_> {
    /// Under `--user`: kills every process of the agent's user, before a
    /// wake (which may restore or roll back) and after the agent ended.
    fn sweep(&self) {
        if let Some(u) = &self.opts.user {
            if let Err(e) = privilege::kill_all_of(u) {
                self.log
                    .line(&format!("could not kill what {} left running: {e}", u.name));
            }
        }
    }

    fn supervise(&mut self) -> Result<Outcome> {
        loop {
            self.sweep();
            let wake = wake_with_progress(self.vault, self.cred, &self.opts.wake, &Silent)?;
            self.log
                .line(&format!("wake: {}: {}", wake.verdict, wake.message));
            for a in &wake.actions {
                self.log.line(&format!("wake: {a}"));
            }
            if !wake.may_start {
                return Ok(self.halt_on_wake(&wake));
            }
            if wake.action == Action::Rollback {
                self.alert_rollback_on_wake(&wake);
            }
            if let Some(r) = &wake.reverted {
                self.alert_reverted(r, "while the agent was stopped; put back before it started");
            }
            #[cfg(feature = "remote")]
            self.start_pushing();
            if (wake.verdict == Verdict::Drifted && wake.action == Action::Accept)
                || wake.molt.is_some()
            {
                self.state.suspect = true;
                self.save_state();
            }
            if let Some(out) = self.stop_requested("before the agent started") {
                return Ok(out);
            }
            let head = wake.head.unwrap_or(0);
            self.watch_protected();
            let started = Instant::now();
            let ended = self.run_agent(&wake, head)?;
            let ran = started.elapsed();
            self.sweep();

            if let Some(why) = self.halt.take() {
                return Ok(self.halted(why, ended, head, ran));
            }
            if let Some(sig) = self.stop {
                return Ok(self.stopped(sig, ended, head, ran));
            }
            if ended.is_clean() {
                let halted = self.check_protected();
                self.seal_rest()?;
                if let Some(why) = halted.then(|| self.halt.take()).flatten() {
                    return Ok(Outcome {
                        exit_code: Verdict::Tampered.exit_code(),
                        message: format!("halted: {why}"),
                    });
                }
                return Ok(Outcome {
                    exit_code: 0,
                    message: "the agent exited cleanly; sealed `rest`".into(),
                });
            }
            self.record_crash(ended, head, ran, None);
            if ran < self.opts.probation {
                self.state.failed += 1;
                self.save_state();
                self.log.line(&format!(
                    "boot assessment: failed try {} of {} (died within probation {})",
                    self.state.failed,
                    self.opts.tries,
                    humantime::format_duration(self.opts.probation)
                ));
                if let Some(out) = self.after_failed_try()? {
                    return Ok(out);
                }
            } else {
                self.delay = self.opts.restart_delay;
            }
            if let Some(out) = self.count_restart() {
                return Ok(out);
            }
            if let Some(out) = self.backoff() {
                return Ok(out);
            }
        }
    }

    /// Starts the agent and watches it until it exits: forwards signals,
    /// seals heartbeats, marks the checkpoint good after probation.
    fn run_agent(&mut self, wake: &WakeReport, head: u64) -> Result<Ended> {
        let mut env = vec![
            ("SELFSAME_SOUL", self.vault.soul().display().to_string()),
            ("SELFSAME_VAULT", self.vault.dir().display().to_string()),
            ("SELFSAME_SEQ", head.to_string()),
            ("SELFSAME_VERDICT", wake.verdict.as_str().to_owned()),
        ];
        if let Some(shell) = &self.opts.wake.shell {
            env.push(("SELFSAME_SHELL_VERSION", shell.clone()));
        }
        let user = self.opts.user.as_ref();
        let mut agent =
            Agent::spawn(&self.opts.command, &env, self.opts.prepare, user).map_err(|e| {
                Error::Usage(format!(
                    "cannot start {:?}: {e}",
                    self.opts.command[0].to_string_lossy()
                ))
            })?;
        self.log.line(&format!(
            "started the agent (pid {}) on checkpoint {head}",
            agent.pid()
        ));
        let started = Instant::now();
        let mut next_heartbeat = self.opts.heartbeat.map(|h| started + h);
        let mut next_look = self.opts.protect_interval.map(|i| started + i);
        let mut marked_good = false;
        let mut kill_at: Option<Instant> = None;
        loop {
            let pending: Vec<i32> = self.signals.pending().collect();
            for raw in pending {
                let Ok(sig) = Signal::try_from(raw) else {
                    continue;
                };
                agent.signal(sig);
                if raw != SIGHUP && self.stop.is_none() {
                    self.stop = Some(sig);
                    kill_at = Some(Instant::now() + self.opts.stop_timeout);
                    self.log.line(&format!(
                        "{}: stopping the agent (SIGKILL in {})",
                        sig.as_str(),
                        humantime::format_duration(self.opts.stop_timeout)
                    ));
                } else {
                    self.log
                        .line(&format!("forwarded {} to the agent", sig.as_str()));
                }
            }
            if agent.has_exited() {
                // Nothing the agent started outlives it: a child left
                // running would write the soul unsupervised, or race a
                // restore.
                agent.kill_leftovers();
            }
            if let Some(status) = agent.try_wait().map_err(|e| {
                Error::Usage(format!(
                    "cannot wait for the agent (pid {}): {e}",
                    agent.pid()
                ))
            })? {
                let ended = Ended::from_status(status);
                self.log
                    .line(&format!("the agent (pid {}) ended: {ended}", agent.pid()));
                return Ok(ended);
            }
            let now = Instant::now();
            if kill_at.is_some_and(|t| now >= t) {
                self.log
                    .line("the agent did not stop in time: sending SIGKILL");
                agent.signal(Signal::SIGKILL);
                kill_at = None;
            }
            if !marked_good && self.stop.is_none() && now - started >= self.opts.probation {
                marked_good = true;
                self.mark_good(head, now - started);
            }
            let busy = self.stop.is_some() || self.halt.is_some();
            let look = next_look.is_some_and(|t| now >= t);
            let beat = next_heartbeat.is_some_and(|t| now >= t);
            if !busy && (look || beat) && self.check_protected() {
                // A protected path changed under `protected = "halt"`.
                agent.signal(Signal::SIGTERM);
                kill_at = Some(Instant::now() + self.opts.stop_timeout);
                self.log.line(&format!(
                    "stopping the agent (SIGKILL in {})",
                    humantime::format_duration(self.opts.stop_timeout)
                ));
            }
            if look {
                next_look = self.opts.protect_interval.map(|i| Instant::now() + i);
            }
            if !busy && self.halt.is_none() && beat {
                self.heartbeat();
                next_heartbeat = self.opts.heartbeat.map(|h| Instant::now() + h);
            }
            #[cfg(feature = "remote")]
            self.record_pushes();
            self.record_deliveries();
            thread::sleep(TICK);
        }
    }

    fn heartbeat(&self) {
        match seal(
            self.vault,
            self.cred,
            &self.seal_options(Reason::Heartbeat),
            &Silent,
        ) {
            Ok(r) if r.written => {
                self.log.line(&format!(
                    "heartbeat: sealed checkpoint {} ({})",
                    r.seq,
                    r.changes.summary()
                ));
                self.retain();
                #[cfg(feature = "remote")]
                if let Some(p) = &self.pusher {
                    p.sealed();
                }
            }
            Ok(_) => {}
            // The next heartbeat tries again; a crash now still wakes
            // `drifted` from the last checkpoint.
            Err(e) => self.log.line(&format!("heartbeat seal failed: {e}")),
        }
    }

    /// Starts the background push when a remote witness is configured.
    #[cfg(feature = "remote")]
    fn start_pushing(&mut self) {
        if let (None, Some(crate::ops::wake::Witness::Remote(access))) =
            (&self.pusher, &self.opts.wake.witness)
        {
            self.pusher = Some(push::Pusher::start(
                self.vault,
                self.cred,
                access,
                self.opts.push_retry,
            ));
        }
    }

    /// Logs what the background push reported; a refused push (the
    /// remote is ahead, or forked) alerts the owner.
    #[cfg(feature = "remote")]
    fn record_pushes(&mut self) {
        let reports = self
            .pusher
            .as_ref()
            .map(|p| p.reports())
            .unwrap_or_default();
        for r in reports {
            self.pushed(r);
        }
    }

    #[cfg(feature = "remote")]
    fn pushed(&mut self, r: push::Report) {
        match r {
            push::Report::Line(l) => self.log.line(&l),
            push::Report::Refused(message) => self.alert(Alert {
                event: "push-refused".into(),
                message,
                next: self.next(&Next::Halted(Verdict::Corrupted, Some(Detail::Forked))),
                ..self.alert_base()
            }),
        }
    }

    fn seal_options(&self, reason: Reason) -> SealOptions {
        let mut o = SealOptions::new(reason);
        o.shell = self.opts.wake.shell.clone();
        o
    }

    fn seal_rest(&self) -> Result<()> {
        let r = seal(
            self.vault,
            self.cred,
            &self.seal_options(Reason::Rest),
            &Silent,
        )?;
        self.log.line(&format!(
            "sealed checkpoint {} (rest); the awake marker is removed",
            r.seq
        ));
        self.retain();
        Ok(())
    }

    /// After a seal: what `[retention]` asks for, if anything. A failure
    /// is logged; the next seal tries again.
    fn retain(&self) {
        let Some(r) = &self.vault.config.retention else {
            return;
        };
        let path = self.vault.config_path();
        match r.policy(&path) {
            Ok(Some(policy)) => self.forget_and_prune(policy),
            Ok(None) => {}
            Err(e) => self.log.line(&format!("retention: {e}")),
        }
        match r.quarantine_older_than(&path) {
            Ok(Some(age)) => match quarantine::prune(self.vault, self.cred, age, false) {
                Ok(d) if !d.dropped.is_empty() => self.log.line(&format!(
                    "retention: dropped {} quarantine entries older than {} ({} bytes)",
                    d.dropped.len(),
                    humantime::format_duration(age),
                    d.bytes
                )),
                Ok(_) => {}
                Err(e) => self
                    .log
                    .line(&format!("retention: quarantine prune failed: {e}")),
            },
            Ok(None) => {}
            Err(e) => self.log.line(&format!("retention: {e}")),
        }
    }

    /// Prunes what the forgets this seal anchored released (a forget takes
    /// effect once a checkpoint anchors it), then forgets by `policy`.
    fn forget_and_prune(&self, policy: Policy) {
        if self.unpruned.get() {
            match prune(self.vault, self.cred, false, &Silent) {
                Ok(p) => {
                    self.unpruned.set(false);
                    if p.objects_removed > 0 {
                        self.log.line(&format!(
                            "retention: pruned {} objects ({} bytes)",
                            p.objects_removed, p.bytes_removed
                        ));
                    }
                }
                Err(e) => self.log.line(&format!("retention: prune failed: {e}")),
            }
        }
        let opts = ForgetOptions {
            policy,
            dry_run: false,
            // The config this supervisor read at start, which its wake
            // found sealed.
            from_config: false,
        };
        match forget(self.vault, self.cred, &opts, &Silent) {
            Ok(f) if !f.forgotten.is_empty() => {
                self.unpruned.set(true);
                self.log.line(&format!(
                    "retention: forgot {} snapshots (pruned after the next seal)",
                    f.forgotten.len()
                ));
            }
            Ok(_) => {}
            Err(e) => self.log.line(&format!("retention: forget failed: {e}")),
        }
    }

    fn mark_good(&mut self, seq: u64, ran: Duration) {
        let mut data = Map::new();
        data.insert("seq".into(), seq.into());
        data.insert("ran_ms".into(), (ran.as_millis() as u64).into());
        self.record("good", data);
        self.log
            .line(&format!("passed probation: checkpoint {seq} marked good"));
        self.state = State::default();
        self.save_state();
        self.delay = self.opts.restart_delay;
    }

    fn record_crash(&self, ended: Ended, seq: u64, ran: Duration, during: Option<&str>) {
        let mut data = Map::new();
        match ended {
            Ended::Exit(c) => data.insert("status".into(), c.into()),
            Ended::Signal(s) => data.insert("signal".into(), s.into()),
        };
        data.insert("seq".into(), seq.into());
        data.insert("ran_ms".into(), (ran.as_millis() as u64).into());
        if let Some(d) = during {
            data.insert("during".into(), d.into());
        }
        self.record("crash", data);
    }

    /// A stop signal was handled: seal `rest` when the agent exited 0.
    fn stopped(&mut self, sig: Signal, ended: Ended, seq: u64, ran: Duration) -> Outcome {
        if ended.is_clean() {
            // A protected change is put back first (or, under `halt`,
            // reported and the stop ends as a halt, exit 3: the rest seal
            // keeps the approved version).
            if self.check_protected() {
                if let Some(why) = self.halt.take() {
                    return self.halted(why, ended, seq, ran);
                }
            }
            return match self.seal_rest() {
                Ok(()) => Outcome {
                    exit_code: 0,
                    message: format!("stopped on {}", sig.as_str()),
                },
                Err(e) => Outcome {
                    exit_code: e.exit_code(),
                    message: format!("stopped on {}, but the rest seal failed: {e}", sig.as_str()),
                },
            };
        }
        self.record_crash(ended, seq, ran, Some("stop"));
        Outcome {
            exit_code: 1,
            message: format!(
                "stopped on {}, but the agent did not exit cleanly ({ended}); nothing was sealed, and the next wake will see the changes as drift. Make the agent exit 0 on SIGTERM",
                sig.as_str()
            ),
        }
    }

    /// After a failed try: roll back, halt, or carry on.
    fn after_failed_try(&mut self) -> Result<Option<Outcome>> {
        match boot::decide(self.vault, self.cred, &self.state, self.opts.tries)? {
            Decision::Retry => Ok(None),
            Decision::Halt(why) => {
                let mut data = Map::new();
                data.insert("why".into(), why.clone().into());
                data.insert("tries".into(), self.state.failed.into());
                self.record("give-up", data);
                let head = self.vault.read_head().ok().flatten();
                self.alert(Alert {
                    event: "give-up".into(),
                    verdict: None,
                    detail: None,
                    seq: head,
                    message: why.clone(),
                    changes: Default::default(),
                    next: self.next(&Next::GaveUp),
                    ..self.alert_base()
                });
                Ok(Some(Outcome {
                    exit_code: EXIT_GAVE_UP,
                    message: format!("halted: {why}"),
                }))
            }
            Decision::Rollback(good) => {
                let target = good.ckpt.seq;
                self.log.line(&format!(
                    "boot assessment: {} failed tries; rolling back to checkpoint {target}, the last one followed by a healthy run",
                    self.state.failed
                ));
                let report = {
                    let _l = self.vault.lock()?;
                    restore_locked(
                        self.vault,
                        self.cred,
                        Target::Seq(target),
                        "rollback",
                        &Silent,
                    )?
                };
                self.log.line(&format!(
                    "rolled back to checkpoint {target}: sealed checkpoint {} (restore); the previous soul is in {}",
                    report.seq, report.quarantine
                ));
                self.state = State {
                    failed: 0,
                    suspect: false,
                    rolled_back_to: Some(target),
                };
                self.save_state();
                self.alert(Alert {
                    event: "rollback".into(),
                    verdict: None,
                    detail: None,
                    seq: Some(target),
                    message: format!(
                        "the agent died within probation {} times; rolled back to checkpoint {target} (the last one followed by a healthy run) and restarted it. The soul it could not start on is in {}",
                        self.opts.tries, report.quarantine
                    ),
                    changes: Default::default(),
                    next: self.next(&Next::RolledBack {
                        quarantine: report.quarantine.clone(),
                    }),
                    ..self.alert_base()
                });
                self.delay = self.opts.restart_delay;
                Ok(None)
            }
        }
    }

    /// Counts a restart; gives up past `max_restarts` in the window.
    fn count_restart(&mut self) -> Option<Outcome> {
        let max = self.opts.max_restarts?;
        let now = Instant::now();
        self.restarts.push_back(now);
        while self
            .restarts
            .front()
            .is_some_and(|t| now - *t > self.opts.restart_window)
        {
            self.restarts.pop_front();
        }
        if self.restarts.len() as u32 <= max {
            return None;
        }
        let why = format!(
            "the agent crashed {} times within {}; giving up (max restarts {max})",
            self.restarts.len(),
            humantime::format_duration(self.opts.restart_window)
        );
        let mut data = Map::new();
        data.insert("why".into(), why.clone().into());
        data.insert("restarts".into(), self.restarts.len().into());
        self.record("give-up", data);
        self.alert(Alert {
            event: "give-up".into(),
            verdict: None,
            detail: None,
            seq: self.vault.read_head().ok().flatten(),
            message: why.clone(),
            changes: Default::default(),
            next: self.next(&Next::TooManyRestarts),
            ..self.alert_base()
        });
        Some(Outcome {
            exit_code: EXIT_GAVE_UP,
            message: why,
        })
    }

    /// Waits before a restart, doubling the next wait.
    fn backoff(&mut self) -> Option<Outcome> {
        self.log.line(&format!(
            "restarting in {}",
            humantime::format_duration(self.delay)
        ));
        let until = Instant::now() + self.delay;
        self.delay = (self.delay * 2).min(MAX_BACKOFF);
        while Instant::now() < until {
            if let Some(out) = self.stop_requested("while waiting to restart the agent") {
                return Some(out);
            }
            #[cfg(feature = "remote")]
            self.record_pushes();
            self.record_deliveries();
            thread::sleep(TICK);
        }
        None
    }

    /// A stop signal with no agent running.
    fn stop_requested(&mut self, when: &str) -> Option<Outcome> {
        let sig = self
            .signals
            .pending()
            .filter(|&s| s != SIGHUP)
            .last()
            .and_then(|s| Signal::try_from(s).ok())?;
        self.stop = Some(sig);
        Some(Outcome {
            exit_code: 0,
            message: format!("stopped on {} {when}", sig.as_str()),
        })
    }

    fn halt_on_wake(&mut self, wake: &WakeReport) -> Outcome {
        let next = self.next(&Next::Halted(wake.verdict, wake.detail));
        self.alert(Alert {
            event: "halt".into(),
            verdict: Some(wake.verdict.as_str().into()),
            detail: wake.detail.map(|d| d.as_str().into()),
            seq: wake.seq,
            message: if wake.actions.is_empty() {
                format!("the agent was not started: {}", wake.message)
            } else {
                format!(
                    "the agent was not started: {} (done first: {})",
                    wake.message,
                    wake.actions.join("; ")
                )
            },
            changes: wake.changes.summarize(),
            next,
            ..self.alert_base()
        });
        Outcome {
            exit_code: wake.exit_code,
            message: format!("halted: {} (the agent was not started)", wake.verdict),
        }
    }

    /// A wake policy (`tampered` or `drifted` = `rollback`) put the head's
    /// soul back before the agent starts: the owner hears of it like any
    /// other rollback.
    fn alert_rollback_on_wake(&mut self, wake: &WakeReport) {
        self.alert(Alert {
            event: "rollback".into(),
            verdict: Some(wake.verdict.as_str().into()),
            detail: wake.detail.map(|d| d.as_str().into()),
            seq: wake.seq,
            message: format!(
                "{}; by the `{}` policy: {}. The agent was started on the restored soul",
                wake.message,
                wake.verdict,
                wake.actions.join("; ")
            ),
            changes: wake.changes.summarize(),
            next: self.next(&Next::RolledBackOnWake),
            ..self.alert_base()
        });
    }

    fn alert_base(&self) -> Alert {
        Alert {
            event: String::new(),
            verdict: None,
            detail: None,
            bot_id: self.vault.config.bot_id,
            vault: self.vault.dir().display().to_string(),
            seq: None,
            message: String::new(),
            changes: Default::default(),
            next: String::new(),
            at: rfc3339(self.vault.now()),
            diff: None,
            diff_cut: false,
            diff_file: None,
        }
    }

    /// What the owner can do next, in the caller's words.
    fn next(&self, next: &Next) -> String {
        match self.opts.advise {
            Some(advise) => advise(next),
            None => next.plain(),
        }
    }

    fn alert(&mut self, alert: Alert) {
        if self.opts.alerts.is_empty() {
            self.log.unsent(&alert.message);
            return;
        }
        self.log
            .line(&format!("alert: {}: {}", alert.event, alert.message));
        self.alerts.send(&alert);
    }

    fn record_deliveries(&mut self) {
        for d in self.alerts.ready() {
            self.record_delivery(d);
        }
    }

    fn record_deliveries_until_done(&mut self) {
        for d in self.alerts.finish() {
            self.record_delivery(d);
        }
    }

    fn record_delivery(&self, d: Delivery) {
        let mut data = Map::new();
        data.insert("sink".into(), d.sink.into());
        data.insert("about".into(), d.about.clone().into());
        data.insert("ok".into(), d.result.is_ok().into());
        match &d.result {
            Ok(()) => self.log.line(&format!("alert sent ({})", d.sink)),
            Err(e) => {
                self.log
                    .line(&format!("alert could not be sent ({}): {e}", d.sink));
                data.insert("error".into(), e.clone().into());
            }
        }
        self.record("alert", data);
    }

    /// Appends a history event under the short vault lock. A vault whose
    /// token does not match is left alone, as wake does.
    fn record(&self, event: &str, data: Map<String, Value>) {
        if !self.vault.may_sign_history(self.cred) {
            return;
        }
        let r = self.vault.lock().and_then(|_l| {
            self.vault
                .history_for(&Keys::of(self.cred))
                .append(event, data)
        });
        if let Err(e) = r {
            self.log
                .line(&format!("could not record `{event}` in history: {e}"));
        }
    }

    fn save_state(&self) {
        if let Err(e) = self.state.save(self.vault) {
            self.log
                .line(&format!("could not save the boot assessment: {e}"));
        }
    }
}
