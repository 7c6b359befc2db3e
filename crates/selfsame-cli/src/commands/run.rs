//! `selfsame run`

use std::ffi::OsString;
use std::process::Command;
use std::time::Duration;

use selfsame::supervise::{self, Log, Options, RunAs, Sinks};
use selfsame::{Credential, Error, Platform, Result};

use crate::context::Context;
use crate::output::errln;

/// Supervise the agent: wake, start, seal, restart after a crash.
///
///   selfsame run -- python bot.py
///   selfsame run --alert-telegram 123456789 -- node bot.js
///
/// Wakes first; a halting verdict (tampered, identity-mismatch, corrupted,
/// rolled-back, incompatible) alerts and exits with wake's code without
/// starting the agent. Otherwise the agent starts with SELFSAME_SOUL,
/// SELFSAME_VAULT, SELFSAME_SEQ and SELFSAME_VERDICT set, and:
///
///   every --heartbeat      seal `heartbeat` (nothing written when unchanged)
///   every --protect-interval  look at the protected paths: a change is put
///                          back (the changed version to quarantine) and the
///                          owner alerted with the diff; under
///                          `protected = "halt"` the agent is stopped, exit 3
///   exit status 0          seal `rest`, exit 0
///   SIGTERM/SIGINT         forwarded; SIGKILL after --stop-timeout; if the
///                          agent then exits 0: seal `rest`, exit 0 (exit 3
///                          if a protected change is found then, under halt)
///   SIGHUP                 forwarded
///   crash                  history `crash`, wake again (drifted → accept),
///                          restart after 1 s, doubling up to 5 min
///   alive past probation   its checkpoint is marked good
///
/// Boot assessment: a start that dies within --probation is a failed try
/// (counted in .selfsame/run/, across supervisor restarts). After --tries
/// failed tries following an accepted drift or a new shell version, the
/// soul is rolled back to the last checkpoint followed by a healthy run
/// (the current soul goes to quarantine) and the agent is tried again; if
/// that fails too, the supervisor halts.
///
/// Migrations: with --reads (or `reads` in config), a soul in an older
/// format is migrated before the agent starts, unless `needs-migration =
/// warn` is set in config or by --policy.
///
/// Alerts (halt, rollback, give-up, revert; a rollback by a wake policy too;
/// push-refused, when the remote holds checkpoints this vault lacks or
/// another under a seq it sealed) go to every sink given, 10 s each, in the background; the outcome is recorded
/// in history as `alert`.
///
/// Privilege separation: with --user NAME (started as root) the agent runs
/// as NAME and cannot write the vault: it cannot forge history, replay the
/// awake marker or turn protection off; what it can change is its soul,
/// which seals judge. Give NAME the soul directory (chown -R NAME soul);
/// keep .selfsame/ root's (it is 0700). Under --user the agent cannot run
/// `selfsame seal` itself: heartbeats are the supervisor's.
///
/// Exit codes: 0 clean stop, 1 gave up or failed, 2 usage, 3–6 wake's
/// halting verdicts, 75 another `selfsame run` holds this vault.
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Seal `heartbeat` this often (0 = never).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = duration)]
    heartbeat: Duration,
    /// Look at the protected paths (config `protect`) this often, by their
    /// stat: a change is put back, or under `protected = "halt"` the agent
    /// is stopped (0 = only at heartbeats and at the stop).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = duration)]
    protect_interval: Duration,
    /// A start that dies sooner is a failed try; a longer run marks its
    /// checkpoint good.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = duration)]
    probation: Duration,
    /// Failed tries before rolling back (and, after that, before halting).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    tries: u32,
    /// How long a stopping agent gets before SIGKILL.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration)]
    stop_timeout: Duration,
    /// Give up after N restarts within --restart-window (default: never).
    #[arg(long, value_name = "N")]
    max_restarts: Option<u32>,
    /// The window for --max-restarts.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = duration)]
    restart_window: Duration,
    /// The first restart delay; it doubles up to 5 min and resets after a
    /// run longer than probation.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = duration)]
    restart_delay: Duration,
    /// Run this shell command on an alert, with the alert as JSON on stdin
    /// and this process's environment less the token (and, with a remote,
    /// less the AWS credentials).
    #[arg(long, value_name = "CMD")]
    alert_cmd: Option<String>,
    /// Send alerts to this Telegram chat through the Bot API, with the bot's
    /// own token (base URL: $SELFSAME_TELEGRAM_API, default Telegram's).
    #[arg(long, value_name = "CHAT_ID")]
    alert_telegram: Option<String>,
    /// POST alerts as JSON to this URL.
    #[arg(long, value_name = "URL")]
    alert_webhook: Option<String>,
    /// Run the agent as this user (with its groups); selfsame itself runs
    /// as root. Refused when NAME could write the vault or anything in it
    /// (the message names the file and the chown/chmod that fixes it).
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// With a remote witness ([remote]): tries of the background push
    /// after each seal before it waits for the next seal (or 1 min).
    #[cfg(feature = "remote")]
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    push_tries: u32,
    /// The first wait between those tries; it doubles (up to 30 s).
    #[cfg(feature = "remote")]
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = duration)]
    push_backoff: Duration,
    /// Wake flags (see `selfsame wake --help`). Under `run`, a soul that
    /// needs a migration is migrated before the agent starts unless
    /// `needs-migration = warn` is set.
    #[command(flatten)]
    wake: super::wake::WakeFlags,
    /// The agent's command line, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<OsString>,
}

fn duration(text: &str) -> std::result::Result<Duration, String> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text).map_err(|e| format!("{text:?}: {e} (e.g. 30s, 5m, 1h)"))
}

/// Supervisor lines: stderr, one a fact, with a UTC timestamp.
struct Stderr;

impl Log for Stderr {
    fn line(&self, text: &str) {
        let now = humantime::format_rfc3339_millis(std::time::SystemTime::now());
        errln!("{now} selfsame run: {text}");
    }

    fn unsent(&self, message: &str) {
        self.line(&format!(
            "no alert sink is set (--alert-cmd, --alert-telegram, --alert-webhook): {message}"
        ));
    }
}

pub fn run(args: Args, ctx: &Context) -> Result<i32> {
    let vault = ctx.open_vault()?;
    let token = ctx.vault_token(&vault)?;
    if args.alert_telegram.is_some() && token.platform() != Platform::Telegram {
        return Err(Error::Usage(format!(
            "--alert-telegram sends through the Telegram Bot API with the bot's token, but this vault's bot is on {}: use --alert-cmd or --alert-webhook",
            token.platform()
        )));
    }
    let wake = args.wake.options(&vault, true)?;
    let mut opts = Options::new(args.command);
    opts.heartbeat = Some(args.heartbeat).filter(|d| !d.is_zero());
    opts.protect_interval = Some(args.protect_interval).filter(|d| !d.is_zero());
    opts.probation = args.probation;
    opts.tries = args.tries;
    opts.stop_timeout = args.stop_timeout;
    opts.max_restarts = args.max_restarts;
    opts.restart_window = args.restart_window;
    opts.restart_delay = args.restart_delay;
    opts.wake = wake;
    opts.alerts = Sinks {
        cmd: args.alert_cmd,
        telegram: args.alert_telegram,
        telegram_api: std::env::var("SELFSAME_TELEGRAM_API")
            .ok()
            .filter(|s| !s.is_empty()),
        webhook: args.alert_webhook,
        hide_env: holding_secret(&token),
    };
    opts.user = args.user.as_deref().map(user).transpose()?;
    opts.prepare = Some(die_with_supervisor);
    #[cfg(feature = "remote")]
    if vault.config.remote.is_some() {
        // The AWS credentials are the vault's, not the agent's: neither
        // the agent nor the alert command gets them.
        opts.prepare = Some(die_with_supervisor_without_aws);
        opts.alerts
            .hide_env
            .extend(AWS_VARS.iter().map(OsString::from));
        opts.push_retry.tries = args.push_tries;
        opts.push_retry.backoff = args.push_backoff;
    }
    opts.advise = Some(crate::porcelain::next);
    let outcome = supervise::run(&vault, &token, &opts, &Stderr)?;
    Stderr.line(&outcome.message);
    if ctx.json {
        ctx.print_json(&serde_json::json!({
            "exit_code": outcome.exit_code,
            "message": outcome.message,
        }));
    }
    Ok(outcome.exit_code)
}

/// The environment variables whose value holds the token's secret (the
/// token exported under another name too): the alert command does not get
/// them.
fn holding_secret(token: &Credential) -> Vec<OsString> {
    std::env::vars_os()
        .filter(|(_, value)| token.is_in(value.as_encoded_bytes()))
        .map(|(name, _)| name)
        .collect()
}

/// The user NAME, its primary and supplementary groups and home, from the
/// system's user database.
fn user(name: &str) -> Result<RunAs> {
    let found = nix::unistd::User::from_name(name)
        .map_err(|e| selfsame::Error::Usage(format!("--user {name}: {e}")))?
        .ok_or_else(|| {
            selfsame::Error::Usage(format!("--user {name}: no such user (see /etc/passwd)"))
        })?;
    let cname = std::ffi::CString::new(name)
        .map_err(|_| selfsame::Error::Usage(format!("--user {name:?}: not a user name")))?;
    let groups = nix::unistd::getgrouplist(&cname, found.gid)
        .map_err(|e| selfsame::Error::Usage(format!("--user {name}: its groups: {e}")))?;
    Ok(RunAs {
        name: name.to_owned(),
        uid: found.uid.as_raw(),
        gid: found.gid.as_raw(),
        groups: groups.iter().map(|g| g.as_raw()).collect(),
        home: Some(found.dir),
    })
}

/// On Linux the agent gets SIGKILL when the supervisor dies, so a
/// `kill -9` of the supervisor never leaves an unsupervised agent writing
/// to the soul while the next `selfsame run` starts another. With a user,
/// the agent first becomes that user, with its groups.
#[cfg(target_os = "linux")]
fn die_with_supervisor(cmd: &mut Command, user: Option<&RunAs>) {
    use rustix::process::{Gid, Uid};
    use std::os::unix::process::CommandExt;
    // Made here, before the fork: nothing below allocates.
    let ids = user.map(|u| {
        let groups: Vec<Gid> = u.groups.iter().map(|&g| Gid::from_raw(g)).collect();
        (Uid::from_raw(u.uid), Gid::from_raw(u.gid), groups)
    });
    // SAFETY: between fork and exec only async-signal-safe calls are
    // allowed; setgroups, setresgid, setresuid (rustix's raw system calls,
    // for this one thread, the child's only one), prctl and getppid are
    // plain system calls, and nothing here allocates.
    let parent = std::process::id() as i32;
    unsafe {
        cmd.pre_exec(move || {
            if let Some((uid, gid, groups)) = &ids {
                // Groups and group before the user: after it, no more
                // changes are allowed.
                rustix::thread::set_thread_groups(groups)?;
                rustix::thread::set_thread_res_gid(*gid, *gid, *gid)?;
                rustix::thread::set_thread_res_uid(*uid, *uid, *uid)?;
            }
            // After the switch: a change of credentials clears it.
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            // The supervisor may have died before prctl took effect.
            if nix::unistd::getppid().as_raw() != parent {
                return Err(nix::errno::Errno::ESRCH.into());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_supervisor(cmd: &mut Command, user: Option<&RunAs>) {
    use std::os::unix::process::CommandExt;
    if let Some(u) = user {
        cmd.uid(u.uid).gid(u.gid);
    }
}

/// The variables that hold the remote's AWS credentials.
#[cfg(feature = "remote")]
const AWS_VARS: [&str; 3] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// [`die_with_supervisor`], and the agent does not get the AWS credentials.
#[cfg(feature = "remote")]
fn die_with_supervisor_without_aws(cmd: &mut Command, user: Option<&RunAs>) {
    for v in AWS_VARS {
        cmd.env_remove(v);
    }
    die_with_supervisor(cmd, user);
}
