//! Migrations as executables `v<N>-<slug>` in any language, each run in a
//! process group of its own that is ended with it.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::migration::{Migration, MigrationContext, MigrationError};

/// An executable `v<N>-<slug>` in the migrations directory, in any
/// language. It runs with `SELFSAME_SOUL` (the staging dir, also its working
/// directory), `SELFSAME_FROM` and `SELFSAME_TO` set, the token's env var
/// removed, stdin closed and stdout sent to stderr.
#[derive(Debug, Clone)]
pub struct Script {
    pub(super) path: PathBuf,
    pub(super) to: u32,
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
    fn apply(&self, soul: &std::path::Path, ctx: &MigrationContext) -> Result<(), MigrationError> {
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
        let mut child = cmd.spawn().map_err(|source| MigrationError::Spawn {
            path: self.path.clone(),
            source,
        })?;
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
                        Ok(status) => Err(MigrationError::Exit {
                            name: self.name(),
                            status,
                        }),
                        Err(source) => Err(MigrationError::Wait {
                            name: self.name(),
                            source,
                        }),
                    };
                }
                Err(e) => {
                    let _ = end_group(group, &mut child);
                    return Err(MigrationError::Wait {
                        name: self.name(),
                        source: e.into(),
                    });
                }
            }
            if Instant::now() >= deadline {
                let _ = end_group(group, &mut child);
                return Err(MigrationError::Timeout {
                    name: self.name(),
                    after: ctx.timeout,
                });
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn ctx() -> MigrationContext {
        MigrationContext {
            from: "v1".into(),
            to: "v2".into(),
            timeout: Duration::from_secs(1),
            hide_env: Vec::new(),
        }
    }

    #[test]
    fn a_script_says_how_it_failed_by_type() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Script {
            path: dir.path().join("v2-missing"),
            to: 2,
        };
        assert!(matches!(
            missing.apply(dir.path(), &ctx()),
            Err(MigrationError::Spawn { .. })
        ));
        let path = dir.path().join("v2-fails");
        fs::write(&path, "#!/bin/sh\nexit 3\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        let fails = Script { path, to: 2 };
        match fails.apply(dir.path(), &ctx()) {
            Err(MigrationError::Exit { name, status }) => {
                assert_eq!((name.as_str(), status.code()), ("v2-fails", Some(3)))
            }
            other => panic!("{other:?}"),
        }
        let path = dir.path().join("v2-sleeps");
        fs::write(&path, "#!/bin/sh\nexec sleep 30\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        let sleeps = Script { path, to: 2 };
        assert!(matches!(
            sleeps.apply(dir.path(), &ctx()),
            Err(MigrationError::Timeout { .. })
        ));
    }
}
