//! The agent process: started in its own process group, signalled as a
//! group (so `sh -c …` wrappers and their children hear it too), polled
//! without blocking.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

use super::privilege::RunAs;

/// A running agent.
#[derive(Debug)]
pub struct Agent {
    child: std::process::Child,
    pid: Pid,
}

/// Changes the agent's [`Command`] before it is started (the CLI uses it to
/// tie the agent's life to the supervisor's, and to switch it to the user
/// given, with its supplementary groups: that needs code between fork and
/// exec, which this crate does not run).
pub type Prepare = fn(&mut Command, Option<&RunAs>);

impl Agent {
    /// Starts `argv` with `env` added to the inherited environment, its
    /// stdin, stdout and stderr inherited; as `user` when given (then its
    /// credentials are checked once it runs, and it is killed if they are
    /// not that user's).
    pub fn spawn(
        argv: &[OsString],
        env: &[(&str, String)],
        prepare: Option<Prepare>,
        user: Option<&RunAs>,
    ) -> io::Result<Agent> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no command to run"))?;
        let mut cmd = Command::new(program);
        cmd.args(args).process_group(0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        if let Some(u) = user {
            cmd.env("USER", &u.name).env("LOGNAME", &u.name);
            if let Some(home) = &u.home {
                cmd.env("HOME", home);
            }
            if prepare.is_none() {
                // The user and its primary group (std drops every other).
                cmd.uid(u.uid).gid(u.gid);
            }
        }
        if let Some(p) = prepare {
            p(&mut cmd, user);
        }
        let child = cmd.spawn()?;
        let pid = Pid::from_raw(child.id() as i32);
        let mut agent = Agent { child, pid };
        if let Some(u) = user {
            // The program has been exec'd by now: these are its credentials
            // for good (it cannot regain root).
            if let Err(why) = super::privilege::runs_as(agent.pid(), u) {
                agent.signal(Signal::SIGKILL);
                let _ = agent.child.wait();
                return Err(io::Error::other(format!(
                    "the agent did not run as {}: {why}; it was killed",
                    u.name
                )));
            }
        }
        Ok(agent)
    }

    /// The agent's pid (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the agent's process group, or to the agent alone
    /// when the group is gone.
    pub fn signal(&self, signal: Signal) {
        if killpg(self.pid, signal).is_err() {
            let _ = kill(self.pid, signal);
        }
    }

    /// Whether the agent has exited, without reaping it: until it is
    /// reaped its pid, which is its process group's id, cannot be reused.
    pub fn has_exited(&self) -> bool {
        use rustix::process::{waitid, Pid as RPid, WaitId, WaitIdOptions};
        let Some(pid) = RPid::from_raw(self.pid.as_raw()) else {
            return false;
        };
        let opts = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
        matches!(waitid(WaitId::Pid(pid), opts), Ok(Some(_)))
    }

    /// Kills what is left of the agent's process group (what it started and
    /// left running), once the agent itself has exited but is not reaped.
    pub fn kill_leftovers(&self) {
        let _ = killpg(self.pid, Signal::SIGKILL);
    }

    /// The exit status, if the agent has exited.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }
}

/// How an agent ended, for history and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It exited with this status code.
    Exit(i32),
    /// A signal killed it.
    Signal(i32),
}

impl Ended {
    /// Reads an [`ExitStatus`].
    pub fn from_status(status: ExitStatus) -> Ended {
        match (status.code(), status.signal()) {
            (Some(c), _) => Ended::Exit(c),
            (None, Some(s)) => Ended::Signal(s),
            (None, None) => Ended::Exit(-1),
        }
    }

    /// Exit status 0.
    pub fn is_clean(self) -> bool {
        self == Ended::Exit(0)
    }
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Ended::Exit(c) => write!(f, "exit status {c}"),
            Ended::Signal(s) => match Signal::try_from(s) {
                Ok(sig) => write!(f, "signal {}", sig.as_str()),
                Err(_) => write!(f, "signal {s}"),
            },
        }
    }
}
