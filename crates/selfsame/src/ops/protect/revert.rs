//! Putting the approved versions of changed protected paths back, one path
//! at a time, while the agent may be running.
//!
//! Each approved entry is written beside its path under a temp name
//! (`.selfsame-revert-<pid>-<n>`) from the store, re-hashed as it is
//! copied, with its recorded mode and the soul directory's owner; then it
//! is **exchanged** with what is at the path (`RENAME_EXCHANGE`: the path
//! is never missing, and whatever stood there at that instant is what goes
//! to quarantine). The changed version is moved to
//! `quarantine/<time>-revert/<path>`; nothing is deleted. Every directory
//! is reached from the soul's descriptor one component at a time, never
//! through a symlink, so an agent that swaps a directory for a symlink
//! cannot steer a write outside the soul.
//!
//! The temp names are listed in `run/revert` before the first is made and
//! the list removed at the end: after a crash, [`finish_interrupted`]
//! moves whatever is left at them to quarantine before anything scans the
//! soul.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, CWD};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};
use serde::Serialize;
use serde_json::Map;

use super::compare::{changes_of, patch, read_entry, Pair};
use crate::crypto::Keys;
use crate::error::{Error, IoContext, Refusal, Result};
use crate::format::manifest::Version;
use crate::format::{Entry, Kind};
use crate::soul::Changes;
use crate::vault::{atomic, read, Vault};

/// The prefix of the temp names a revert writes beside a protected path.
pub(crate) const TEMP_PREFIX: &str = ".selfsame-revert-";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// What a revert did.
#[derive(Debug, Clone, Serialize)]
pub struct Reverted {
    /// The head checkpoint whose versions were put back.
    pub seq: u64,
    /// The protected paths put back.
    pub paths: Vec<String>,
    /// What had changed, by kind.
    pub changes: Changes,
    /// Where the changed versions went, relative to the vault.
    pub quarantine: String,
    /// The file holding the whole patch, relative to the vault.
    pub diff_file: String,
    /// The patch from the approved to the changed version of each path.
    pub diff: String,
}

/// Puts the head's (`seq`, manifest `version`) approved entries of `pairs`
/// back, with the vault lock held; logs a `revert` event.
pub(crate) fn revert_locked(
    vault: &Vault,
    keys: &Keys,
    seq: u64,
    version: Version,
    pairs: &[Pair],
) -> Result<Reverted> {
    finish_interrupted(vault, keys)?;
    let soul = vault.soul();
    let root = rustix::fs::open(
        &soul,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(std::io::Error::from)
    .at(&soul)?;
    let owner = owner_ids(&soul)?;
    let dest = crate::ops::swap::tree::unique(&vault.quarantine()?, vault.now(), "revert");
    atomic::private_dir(&dest)?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();

    // The temp names, recorded before any is made.
    let temps = temp_names(pairs);
    let record = record_path(vault);
    let listed = list_temps(&record, pairs, &temps, &name)?;

    let r = Reverter {
        vault,
        soul: &soul,
        root: &root,
        owner,
        dest: &dest,
    };
    let mut gone: Vec<String> = Vec::new();
    let mut dir_modes: Vec<(String, u32)> = Vec::new();
    for (p, temp) in pairs.iter().zip(&temps) {
        let below_gone = gone.iter().any(|g| {
            p.path
                .strip_prefix(g.as_str())
                .is_some_and(|r| r.starts_with('/'))
        });
        if below_gone && p.approved.is_none() {
            continue;
        }
        if let Some(moved) = r.one(p, temp.as_deref())? {
            gone.push(moved);
        }
        if let Some(a) = p.approved.as_ref().filter(|a| a.kind == Kind::Dir) {
            dir_modes.push((a.path.clone(), a.mode));
        }
    }
    // Directory modes last, deepest first: one recorded without write
    // permission was still filled.
    for (path, mode) in dir_modes.iter().rev() {
        r.chmod_dir(path, *mode)?;
    }
    rustix::fs::fsync(&root)
        .map_err(std::io::Error::from)
        .at(&soul)?;
    if !listed.is_empty() {
        match std::fs::remove_file(&record) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e).at(&record),
            _ => atomic::sync_dir(&vault.run_dir())?,
        }
    }

    log_revert(vault, keys, seq, version, pairs, &dest, &name)
}

/// A temp name for each pair that writes one.
fn temp_names(pairs: &[Pair]) -> Vec<Option<String>> {
    pairs
        .iter()
        .map(|p| {
            needs_temp(p).then(|| {
                let n = COUNTER.fetch_add(1, Ordering::Relaxed);
                format!("{TEMP_PREFIX}{}-{n}", std::process::id())
            })
        })
        .collect()
}

/// Records the temp names (relative to the soul) in `record`, when there
/// are any; returns them.
fn list_temps(
    record: &Path,
    pairs: &[Pair],
    temps: &[Option<String>],
    quarantine: &str,
) -> Result<Vec<String>> {
    let listed: Vec<String> = pairs
        .iter()
        .zip(temps)
        .filter_map(|(p, t)| t.as_ref().map(|t| sibling(&p.path, t)))
        .collect();
    if !listed.is_empty() {
        let body = serde_json::json!({ "temps": listed, "quarantine": quarantine });
        atomic::write_replace(record, body.to_string().as_bytes())?;
    }
    Ok(listed)
}

/// The patch from the approved versions to those now in quarantine
/// (`dest`, named `name`), saved beside it; the `revert` event.
fn log_revert(
    vault: &Vault,
    keys: &Keys,
    seq: u64,
    version: Version,
    pairs: &[Pair],
    dest: &Path,
    name: &str,
) -> Result<Reverted> {
    let diff = patch(vault, pairs, version, &|e: &Entry| {
        read_entry(&dest.join(&e.path), e)
    })?;
    let diff_path = dest.with_file_name(format!("{name}.diff"));
    atomic::write_replace(&diff_path, diff.as_bytes())?;
    let changes = changes_of(pairs);
    let reverted = Reverted {
        seq,
        paths: pairs.iter().map(|p| p.path.clone()).collect(),
        changes: changes.clone(),
        quarantine: format!("quarantine/{name}"),
        diff_file: format!("quarantine/{name}.diff"),
        diff,
    };
    let mut data = Map::new();
    data.insert("seq".into(), seq.into());
    data.insert("paths".into(), reverted.paths.clone().into());
    data.insert("changes".into(), changes.summarize().to_value());
    data.insert("quarantine".into(), reverted.quarantine.clone().into());
    data.insert("diff".into(), reverted.diff_file.clone().into());
    vault.history_for(keys).append("revert", data)?;
    Ok(reverted)
}

/// Whether putting `p` back writes a temp entry first.
fn needs_temp(p: &Pair) -> bool {
    match (&p.approved, &p.current) {
        (Some(a), None) => a.kind != Kind::Dir,
        (Some(a), Some(c)) => !mode_only(a, c),
        _ => false,
    }
}

/// Whether only the permission bits of `a` and `c` differ.
fn mode_only(a: &Entry, c: &Entry) -> bool {
    let class = |k: Kind| if k == Kind::Exec { Kind::File } else { k };
    class(a.kind) == class(c.kind)
        && a.hash == c.hash
        && a.size == c.size
        && a.kind != Kind::Symlink
}

/// `name` in the directory that holds `path`.
fn sibling(path: &str, name: &str) -> String {
    match path.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/{name}"),
        None => name.to_owned(),
    }
}

fn record_path(vault: &Vault) -> PathBuf {
    vault.run_dir().join("revert")
}

/// The owner new soul files get: the soul directory's, when this process
/// is root.
fn owner_ids(soul: &Path) -> Result<Option<(Uid, Gid)>> {
    Ok(
        crate::ops::swap::tree::soul_owner(soul)?
            .map(|(u, g)| (Uid::from_raw(u), Gid::from_raw(g))),
    )
}

/// One revert under way.
struct Reverter<'a> {
    vault: &'a Vault,
    soul: &'a Path,
    root: &'a OwnedFd,
    owner: Option<(Uid, Gid)>,
    dest: &'a Path,
}

impl Reverter<'_> {
    /// Puts one path back. Returns the path when what stood there was a
    /// directory that went to quarantine whole (its entries with it).
    fn one(&self, p: &Pair, temp: Option<&str>) -> Result<Option<String>> {
        let (dir, name) = self.parent(&p.path)?;
        match (&p.approved, &p.current) {
            (None, Some(c)) => {
                self.quarantine(&dir, name, &p.path)?;
                Ok((c.kind == Kind::Dir).then(|| p.path.clone()))
            }
            (Some(a), None) if a.kind == Kind::Dir => {
                match rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(std::io::Error::from(e)).at(&self.soul.join(&p.path)),
                }
                self.own_dir(&dir, name, &p.path)?;
                Ok(None)
            }
            (Some(a), Some(c)) if mode_only(a, c) => {
                self.chmod(&dir, name, &p.path, a.mode)?;
                Ok(None)
            }
            (Some(a), current) => {
                let temp = temp.expect("a temp name for each entry written");
                self.stage(&dir, temp, a)?;
                self.vault.failpoint("revert-after-stage");
                let moved = current.as_ref().is_some_and(|c| c.kind == Kind::Dir);
                self.swap_in(&dir, temp, name, &p.path)?;
                Ok(moved.then(|| p.path.clone()))
            }
            (None, None) => Ok(None),
        }
    }

    /// The directory holding `rel` (opened component by component, never
    /// through a symlink) and its last component.
    fn parent<'p>(&self, rel: &'p str) -> Result<(OwnedFd, &'p str)> {
        let (dirs, name) = match rel.rsplit_once('/') {
            Some((d, n)) => (Some(d), n),
            None => (None, rel),
        };
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut fd = rustix::fs::openat(self.root, ".", flags, Mode::empty())
            .map_err(std::io::Error::from)
            .at(self.soul)?;
        let mut at = String::new();
        for part in dirs.into_iter().flat_map(|d| d.split('/')) {
            at = if at.is_empty() {
                part.to_owned()
            } else {
                format!("{at}/{part}")
            };
            fd = rustix::fs::openat(&fd, part, flags, Mode::empty())
                .map_err(std::io::Error::from)
                .at(&self.soul.join(&at))?;
        }
        Ok((fd, name))
    }

    /// Writes the approved entry `a` at `temp` in `dir`: from the store,
    /// checked against its hash, with its mode and the soul's owner, on
    /// disk before it is swapped in.
    fn stage(&self, dir: &OwnedFd, temp: &str, a: &Entry) -> Result<()> {
        let shown = self.soul.join(sibling(&a.path, temp));
        let io = |e: Errno| std::io::Error::from(e);
        match a.kind {
            Kind::File | Kind::Exec => {
                if a.mode & 0o6000 != 0 && self.owner.is_some_and(|(u, _)| u.is_root()) {
                    return Err(Error::Refused(Refusal::SetIdAsRoot {
                        path: a.path.clone(),
                        mode: a.mode,
                    }));
                }
                let flags = OFlags::WRONLY
                    | OFlags::CREATE
                    | OFlags::EXCL
                    | OFlags::NOFOLLOW
                    | OFlags::CLOEXEC;
                let fd = rustix::fs::openat(dir, temp, flags, Mode::from_raw_mode(0o600))
                    .map_err(io)
                    .at(&shown)?;
                let mut file = File::from(fd);
                self.vault.objects().stream(&a.hash, a.size, &mut |piece| {
                    file.write_all(piece).at(&shown)
                })?;
                if let Some((u, g)) = self.owner {
                    rustix::fs::fchown(&file, Some(u), Some(g))
                        .map_err(io)
                        .at(&shown)?;
                }
                rustix::fs::fchmod(&file, Mode::from_raw_mode(a.mode))
                    .map_err(io)
                    .at(&shown)?;
                file.sync_all().at(&shown)?;
            }
            Kind::Symlink => {
                let target = self.vault.objects().read(&a.hash)?;
                rustix::fs::symlinkat(target.as_slice(), dir, temp)
                    .map_err(io)
                    .at(&shown)?;
                if let Some((u, g)) = self.owner {
                    rustix::fs::chownat(dir, temp, Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(io)
                        .at(&shown)?;
                }
            }
            Kind::Dir => {
                rustix::fs::mkdirat(dir, temp, Mode::from_raw_mode(0o700))
                    .map_err(io)
                    .at(&shown)?;
                self.own_dir(dir, temp, &sibling(&a.path, temp))?;
            }
        }
        Ok(())
    }

    /// Swaps the staged `temp` with what stands at `name` (atomically,
    /// where the filesystem can), then moves that to quarantine.
    fn swap_in(&self, dir: &OwnedFd, temp: &str, name: &str, rel: &str) -> Result<()> {
        let at = self.soul.join(rel);
        match rustix::fs::renameat_with(dir, temp, dir, name, RenameFlags::EXCHANGE) {
            Ok(()) => {
                self.vault.failpoint("revert-after-exchange");
                return self.quarantine(dir, temp, rel);
            }
            // Nothing at the name (removed since the scan): move in.
            Err(Errno::NOENT) => {}
            // No RENAME_EXCHANGE here: out first, then in.
            Err(Errno::INVAL) | Err(Errno::NOSYS) => self.quarantine(dir, name, rel)?,
            Err(e) => return Err(std::io::Error::from(e)).at(&at),
        }
        loop {
            match rustix::fs::renameat_with(dir, temp, dir, name, RenameFlags::NOREPLACE) {
                Ok(()) => return Ok(()),
                // The agent put something there meanwhile: that goes too.
                Err(Errno::EXIST) => self.quarantine(dir, name, rel)?,
                Err(Errno::INVAL) | Err(Errno::NOSYS) => {
                    return rustix::fs::renameat(dir, temp, dir, name)
                        .map_err(std::io::Error::from)
                        .at(&at)
                }
                Err(e) => return Err(std::io::Error::from(e)).at(&at),
            }
        }
    }

    /// Moves the entry `name` of `dir` (a tree, if a directory) to
    /// `quarantine/…/rel`; across filesystems it is copied, then removed.
    fn quarantine(&self, dir: &OwnedFd, name: &str, rel: &str) -> Result<()> {
        let to = self.dest.join(rel);
        if let Some(parent) = to.parent() {
            atomic::create_dir_all(parent)?;
        }
        match rustix::fs::renameat_with(dir, name, CWD, &to, RenameFlags::NOREPLACE) {
            Ok(()) => {}
            Err(Errno::NOENT) => return Ok(()),
            Err(Errno::XDEV) => {
                // The directory as this descriptor holds it, never the path
                // again (a component may have been swapped since).
                let src = PathBuf::from(format!("/proc/self/fd/{}/{name}", dir.as_raw_fd()));
                crate::ops::swap::tree::move_tree(&src, &to)?;
            }
            Err(e) => return Err(std::io::Error::from(e)).at(&self.soul.join(rel)),
        }
        if let Some(parent) = to.parent() {
            atomic::sync_dir(parent)?;
        }
        Ok(())
    }

    /// Gives the directory `name` of `dir` the soul's owner.
    fn own_dir(&self, dir: &OwnedFd, name: &str, rel: &str) -> Result<()> {
        if let Some((u, g)) = self.owner {
            let d = self.open_dir(dir, name, rel)?;
            rustix::fs::fchown(&d, Some(u), Some(g))
                .map_err(std::io::Error::from)
                .at(&self.soul.join(rel))?;
        }
        Ok(())
    }

    fn open_dir(&self, dir: &OwnedFd, name: &str, rel: &str) -> Result<OwnedFd> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        rustix::fs::openat(dir, name, flags, Mode::empty())
            .map_err(std::io::Error::from)
            .at(&self.soul.join(rel))
    }

    /// Sets the approved mode of a directory, never through a symlink.
    fn chmod_dir(&self, rel: &str, mode: u32) -> Result<()> {
        let (dir, name) = self.parent(rel)?;
        let d = self.open_dir(&dir, name, rel)?;
        rustix::fs::fchmod(&d, Mode::from_raw_mode(mode))
            .map_err(std::io::Error::from)
            .at(&self.soul.join(rel))
    }

    /// Sets the approved mode of an entry whose content is the approved
    /// one, never through a symlink put at its name.
    fn chmod(&self, dir: &OwnedFd, name: &str, rel: &str, mode: u32) -> Result<()> {
        let at = self.soul.join(rel);
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        match rustix::fs::openat(dir, name, flags, Mode::empty()) {
            Ok(fd) => rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
                .map_err(std::io::Error::from)
                .at(&at),
            // Unreadable to this (unprivileged) process: its own file, which
            // it may change the mode of anyway.
            Err(Errno::ACCESS) if self.owner.is_none() => {
                rustix::fs::chmodat(dir, name, Mode::from_raw_mode(mode), AtFlags::empty())
                    .map_err(std::io::Error::from)
                    .at(&at)
            }
            Err(e) => Err(std::io::Error::from(e)).at(&at),
        }
    }
}

/// Whether `rel` (from `run/revert`) names a temp entry a revert makes,
/// inside the soul: relative, no `.` or `..` or empty segment, the last
/// one starting with [`TEMP_PREFIX`]. Nothing else is ever moved.
fn is_temp_name(rel: &str) -> bool {
    rel.rsplit('/')
        .next()
        .is_some_and(|n| n.starts_with(TEMP_PREFIX) && n.len() > TEMP_PREFIX.len())
        && !rel.starts_with('/')
        && !rel
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == ".." || s.contains('\0'))
}

/// After a revert was interrupted: whatever is left at the temp names
/// `run/revert` lists goes to quarantine, and the list is removed. Call
/// with the vault lock held, before the soul is scanned.
pub(crate) fn finish_interrupted(vault: &Vault, keys: &Keys) -> Result<()> {
    let record = record_path(vault);
    let Some(bytes) = read::read_capped(&record, read::MAX_RUN_FILE)? else {
        return Ok(());
    };
    let listed: Vec<String> = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("temps").cloned())
        .and_then(|t| serde_json::from_value(t).ok())
        .unwrap_or_default();
    let soul = vault.soul();
    let mut moved = Vec::new();
    let mut dest: Option<PathBuf> = None;
    for rel in listed {
        let at = soul.join(&rel);
        if !is_temp_name(&rel) || std::fs::symlink_metadata(&at).is_err() {
            continue;
        }
        let d = match &dest {
            Some(d) => d.clone(),
            None => {
                let d = crate::ops::swap::tree::unique(
                    &vault.quarantine()?,
                    vault.now(),
                    "revert-interrupted",
                );
                atomic::private_dir(&d)?;
                dest = Some(d.clone());
                d
            }
        };
        crate::ops::swap::tree::move_tree(&at, &d.join(&rel))?;
        moved.push(rel);
    }
    std::fs::remove_file(&record).at(&record)?;
    atomic::sync_dir(&vault.run_dir())?;
    if let Some(d) = dest {
        let mut data = Map::new();
        data.insert(
            "what".into(),
            "a revert was interrupted; moved what it left beside protected paths to quarantine"
                .into(),
        );
        data.insert("paths".into(), moved.into());
        data.insert(
            "quarantine".into(),
            format!(
                "quarantine/{}",
                d.file_name()
                    .map(|n| n.to_string_lossy())
                    .unwrap_or_default()
            )
            .into(),
        );
        vault.history_for(keys).append("repair", data)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temp_name_sits_beside_its_path() {
        assert_eq!(
            sibling("SOUL.md", ".selfsame-revert-1-0"),
            ".selfsame-revert-1-0"
        );
        assert_eq!(sibling("a/b/SOUL.md", "t"), "a/b/t");
    }

    #[test]
    fn a_record_names_only_temp_entries_inside_the_soul() {
        assert!(is_temp_name(".selfsame-revert-12-0"));
        assert!(is_temp_name("prompts/.selfsame-revert-12-0"));
        for bad in [
            "SOUL.md",
            "/etc/.selfsame-revert-1",
            "../.selfsame-revert-1",
            "a/../.selfsame-revert-1",
            "a//.selfsame-revert-1",
            ".selfsame-revert-",
            "./.selfsame-revert-1",
        ] {
            assert!(!is_temp_name(bad), "{bad}");
        }
    }

    proptest::proptest! {
        /// Whatever a record lists, what it lets through stays below the
        /// soul and is a revert's temp name.
        #[test]
        fn no_record_leads_out_of_the_soul(rel in "(\\.\\.|\\.|/|a|\\.selfsame-revert-|1|-){0,12}") {
            if is_temp_name(&rel) {
                let p = std::path::Path::new(&rel);
                proptest::prop_assert!(p.is_relative());
                proptest::prop_assert!(p.components().all(|c| matches!(c, std::path::Component::Normal(_))));
                let last = p.file_name().unwrap().to_str().unwrap();
                proptest::prop_assert!(last.starts_with(TEMP_PREFIX));
            }
        }
    }

    #[test]
    fn only_the_mode_differs_when_content_and_kind_are_the_same() {
        let e = |kind, mode, byte| Entry {
            kind,
            mode,
            hash: [byte; 32],
            size: 1,
            path: "p".into(),
        };
        assert!(mode_only(
            &e(Kind::File, 0o644, 1),
            &e(Kind::Exec, 0o755, 1)
        ));
        assert!(!mode_only(
            &e(Kind::File, 0o644, 1),
            &e(Kind::File, 0o644, 2)
        ));
        assert!(!mode_only(&e(Kind::Symlink, 0, 1), &e(Kind::Symlink, 0, 1)));
    }
}
