//! Privilege separation: the agent runs as another Unix user, which must
//! not be able to write the vault or anything in it.
//!
//! Before anything starts, every entry of the vault (and of the migrations
//! directory, whose programs the supervisor runs) is looked at without
//! following symlinks: one the user owns (it could change its mode), one
//! its group may write while the user is in that group, one anyone may
//! write. So is every directory above the vault: one the user may write
//! could have the vault moved away and replaced (a sticky directory only
//! by the owner of the entry). Access control lists are not read.
//!
//! After the agent is started, its credentials are read back from
//! `/proc/<pid>/status`: an agent that does not run as the user asked for
//! is killed.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Refusal, Result};
use crate::vault::Vault;

/// The Unix user the agent runs as (`selfsame run --user`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// The user's name.
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary group.
    pub gid: u32,
    /// Its supplementary groups.
    pub groups: Vec<u32>,
    /// Its home directory (`HOME` for the agent), when known.
    pub home: Option<PathBuf>,
}

impl RunAs {
    /// Whether the user is in group `gid`.
    fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
}

/// Kills (SIGKILL) every process that runs as `user`: what an agent left
/// running outside its process group (a daemon that called `setsid`) must
/// not write the soul unsupervised, nor race a restore or a rollback that
/// the supervisor, as root, does in the soul. A shell that has switched to
/// the user does it — `kill -9 -1` signals every process the caller may
/// signal, but itself — three times over, for what forked meanwhile. Give
/// the agent a user of its own.
pub(crate) fn kill_all_of(user: &RunAs) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    for _ in 0..3 {
        // Its status says only whether anything was left to kill.
        Command::new("/bin/sh")
            .args(["-c", "kill -9 -1"])
            .uid(user.uid)
            .gid(user.gid)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
    }
    Ok(())
}

/// Refuses to start when `user` could write the vault, anything in it, a
/// directory above it, or the migrations directory; or when the user is
/// root, or this process cannot switch users.
pub(crate) fn check_out_of_reach(vault: &Vault, migrations: &Path, user: &RunAs) -> Result<()> {
    if user.uid == 0 {
        return Err(Error::Refused(Refusal::AgentIsRoot(user.name.clone())));
    }
    if !rustix::process::geteuid().is_root() {
        return Err(Error::Refused(Refusal::CannotSwitchUser(user.name.clone())));
    }
    let dir = fs::canonicalize(vault.dir()).at(vault.dir())?;
    let refuse = |path: &Path, why: String, fix: String| {
        Error::Refused(Refusal::VaultWritable {
            user: user.name.clone(),
            path: path.to_owned(),
            why,
            fix,
        })
    };
    if let Some((path, why)) = writable_below(&dir, user)? {
        let fix = fix_for(&why, &dir, true);
        return Err(refuse(&path, why, fix));
    }
    if let Some((path, why)) = replaceable(&dir, user)? {
        let fix = fix_for(&why, &path, false);
        return Err(refuse(&path, why, fix));
    }
    if let Ok(m) = fs::canonicalize(migrations) {
        if let Some((path, why)) = writable_below(&m, user)? {
            let fix = fix_for(&why, &m, true);
            return Err(refuse(&path, why, fix));
        }
        if let Some((path, why)) = replaceable(&m, user)? {
            let fix = fix_for(&why, &path, false);
            return Err(refuse(&path, why, fix));
        }
    }
    Ok(())
}

/// The first entry at or below `dir` that `user` could write, and why.
fn writable_below(dir: &Path, user: &RunAs) -> Result<Option<(PathBuf, String)>> {
    let meta = fs::symlink_metadata(dir).at(dir)?;
    if let Some(why) = writable(&meta, user) {
        return Ok(Some((dir.to_owned(), why)));
    }
    if meta.is_dir() {
        let mut names: Vec<PathBuf> = fs::read_dir(dir)
            .at(dir)?
            .map(|e| e.map(|e| e.path()).at(dir))
            .collect::<Result<_>>()?;
        names.sort();
        for p in names {
            if let Some(found) = writable_below(&p, user)? {
                return Ok(Some(found));
            }
        }
    }
    Ok(None)
}

/// Why `user` could write the entry `meta` describes, if it could.
fn writable(meta: &fs::Metadata, user: &RunAs) -> Option<String> {
    if meta.file_type().is_symlink() {
        return None;
    }
    let mode = meta.mode();
    if meta.uid() == user.uid {
        Some(format!("{} owns it", user.name))
    } else if mode & 0o020 != 0 && user.in_group(meta.gid()) {
        Some(format!(
            "its group (gid {}), which {} is in, may write it",
            meta.gid(),
            user.name
        ))
    } else if mode & 0o002 != 0 {
        Some("anyone may write it".to_owned())
    } else {
        None
    }
}

/// The first directory above `path` that would let `user` move the entry
/// below it away (and so replace `path`), and why.
fn replaceable(path: &Path, user: &RunAs) -> Result<Option<(PathBuf, String)>> {
    let mut child = path.to_owned();
    while let Some(parent) = child.parent().map(Path::to_owned) {
        let meta = fs::symlink_metadata(&parent).at(&parent)?;
        if let Some(why) = writable(&meta, user) {
            let sticky = meta.mode() & 0o1000 != 0;
            let owns_child = fs::symlink_metadata(&child).is_ok_and(|m| m.uid() == user.uid);
            if !sticky || owns_child || meta.uid() == user.uid {
                return Ok(Some((
                    parent,
                    format!("{why}, so it could move {} away", child.display()),
                )));
            }
        }
        child = parent;
    }
    Ok(None)
}

/// How to take `path` (with everything below it, when `tree`) out of the
/// user's reach, for the reason `why`.
fn fix_for(why: &str, path: &Path, tree: bool) -> String {
    let r = if tree { "-R " } else { "" };
    if why.contains(" owns it") {
        format!("chown {r}root:root {}", path.display())
    } else {
        format!("chmod {r}go-w {}", path.display())
    }
}

/// Checks that the process `pid` runs as `user` (real, effective, saved
/// and filesystem ids; no group but the user's).
pub(crate) fn runs_as(pid: u32, user: &RunAs) -> std::result::Result<(), String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("cannot read its credentials: {e}"))?;
    let ids = |key: &str| -> Vec<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|rest| {
                rest.split_whitespace()
                    .filter_map(|n| n.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let (uids, gids, groups) = (ids("Uid:"), ids("Gid:"), ids("Groups:"));
    if uids.len() != 4 || uids.iter().any(|&u| u != user.uid) {
        return Err(format!("its uids are {uids:?}, not {}", user.uid));
    }
    if gids.len() != 4 || gids.iter().any(|&g| g != user.gid) {
        return Err(format!("its gids are {gids:?}, not {}", user.gid));
    }
    if let Some(g) = groups.iter().find(|&&g| !user.in_group(g)) {
        return Err(format!("it is in group {g}, which {} is not", user.name));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> RunAs {
        RunAs {
            name: "agent".into(),
            uid: 4242,
            gid: 4242,
            groups: vec![100],
            home: None,
        }
    }

    #[test]
    fn the_fix_says_chown_for_an_owned_entry_and_chmod_for_a_writable_one() {
        let p = Path::new("/srv/bot/.selfsame");
        assert_eq!(
            fix_for("agent owns it", p, true),
            "chown -R root:root /srv/bot/.selfsame"
        );
        assert_eq!(
            fix_for("anyone may write it", p, false),
            "chmod go-w /srv/bot/.selfsame"
        );
    }

    #[test]
    fn this_process_does_not_run_as_another_user() {
        let err = runs_as(std::process::id(), &user()).unwrap_err();
        assert!(err.contains("uids"), "{err}");
    }
}
