//! The file trees a swap moves: staging a manifest from objects, the
//! soul's top-level entries and what stays in place, moves that never
//! replace anything, and moves across filesystems.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rayon::prelude::*;

use crate::error::{Damage, Error, IoContext, Refusal, Result, Then};
use crate::format::journal::WORK_DIR;
use crate::format::time::stamp;
use crate::format::{Kind, Manifest};
use crate::progress::{Phase, Progress};
use crate::vault::{atomic, Objects, Vault};

/// Moves a work dir left over from something else out of the soul, into
/// quarantine (nothing is deleted).
pub(crate) fn clear_work(vault: &Vault) -> Result<()> {
    let work = vault.soul().join(WORK_DIR);
    if fs::symlink_metadata(&work).is_ok() {
        let dest = unique(&vault.quarantine()?, vault.now(), "leftover-restore-dir");
        move_tree(&work, &dest)?;
    }
    Ok(())
}

/// Top-level names in the soul that a restore leaves in place: the vault
/// (when inside the soul) and excluded entries.
pub(crate) fn top_level_keep(vault: &Vault) -> Result<Vec<OsString>> {
    let mut keep = Vec::new();
    let soul = vault.soul();
    let soul_real = fs::canonicalize(&soul).unwrap_or(soul.clone());
    if let Ok(rel) = vault.dir().strip_prefix(&soul_real) {
        if let Some(first) = rel.components().next() {
            keep.push(first.as_os_str().to_owned());
        }
    }
    // A soul that cannot be listed is an error, not a soul without
    // excluded entries (they would be swapped out with the rest).
    let (ex, names) = (vault.excludes()?, entries(&soul)?);
    // Globs match UTF-8 paths only; other names are never excluded.
    keep.extend(
        names
            .into_iter()
            .filter(|n| n.to_str().is_some_and(|n| ex.matches(n))),
    );
    Ok(keep)
}

/// The first of `names` that a swap leaves in place (in `keep`, or the
/// work dir): a tree that has one cannot be swapped into the soul.
pub(crate) fn kept_collision<'a>(
    keep: &[OsString],
    names: impl IntoIterator<Item = &'a OsStr>,
) -> Option<&'a OsStr> {
    names
        .into_iter()
        .find(|n| *n == OsStr::new(WORK_DIR) || keep.iter().any(|k| k == n))
}

/// The names in `dir`, exactly as on disk (not necessarily UTF-8), sorted
/// by bytes.
pub(crate) fn entries(dir: &Path) -> Result<Vec<OsString>> {
    let mut names = Vec::new();
    for item in fs::read_dir(dir).at(dir)? {
        names.push(item.at(dir)?.file_name());
    }
    names.sort();
    Ok(names)
}

/// Moves `src` to `dest`, failing instead of replacing anything at `dest`.
/// `then` says what goes on once the owner moved what is in the way.
pub(crate) fn rename_no_replace(src: &Path, dest: &Path, then: Then) -> Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, src, CWD, dest, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::EXIST => Err(taken(dest, then)),
        // A filesystem without RENAME_NOREPLACE: check, then rename.
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {
            if fs::symlink_metadata(dest).is_ok() {
                return Err(taken(dest, then));
            }
            fs::rename(src, dest).at(dest)
        }
        Err(e) => Err(std::io::Error::from(e)).at(dest),
    }
}

fn taken(dest: &Path, then: Then) -> Error {
    Error::InTheWay {
        path: dest.to_owned(),
        then,
    }
}

/// When the quarantine lies on another filesystem than the soul, the old
/// entries are copied there; devices cannot be copied, so a restore that
/// would move one is refused before it starts.
pub(crate) fn check_movable(vault: &Vault, keep: &[OsString]) -> Result<()> {
    let soul = vault.soul();
    let qdir = vault.quarantine_dir();
    let there = if qdir.exists() {
        qdir
    } else {
        vault.dir().to_owned()
    };
    let (Ok(a), Ok(b)) = (fs::metadata(&soul), fs::metadata(&there)) else {
        return Ok(());
    };
    if a.dev() == b.dev() {
        return Ok(());
    }
    for name in entries(&soul)? {
        if name == WORK_DIR || keep.contains(&name) {
            continue;
        }
        if let Some(p) = find_device(&soul.join(&name))? {
            return Err(Error::Usage(format!(
                "{} is a device file, and the quarantine ({}) is on another filesystem, where a restore cannot copy it: remove it from the soul and restore again; nothing was changed",
                p.display(),
                there.display()
            )));
        }
    }
    Ok(())
}

fn find_device(p: &Path) -> Result<Option<PathBuf>> {
    let meta = fs::symlink_metadata(p).at(p)?;
    let ft = meta.file_type();
    if ft.is_block_device() || ft.is_char_device() {
        return Ok(Some(p.to_owned()));
    }
    if ft.is_dir() {
        for item in fs::read_dir(p).at(p)? {
            if let Some(d) = find_device(&item.at(p)?.path())? {
                return Ok(Some(d));
            }
        }
    }
    Ok(None)
}

/// Writes a manifest's tree under `dest` (created new), from objects,
/// re-hashing every byte. Paths are checked as [`Manifest::parse`] does:
/// they are relative, have no `..`, and every parent is a directory entry
/// that this function created itself, so no write can leave `dest`.
pub fn stage(
    objects: &Objects,
    manifest: &Manifest,
    dest: &Path,
    progress: &dyn Progress,
) -> Result<()> {
    // A manifest built in memory never went through `parse`: check it the
    // same way (relative paths, no `..`, sorted, parents listed as dirs).
    if Manifest::parse(&manifest.to_bytes()).ok().as_ref() != Some(manifest) {
        return Err(Error::corrupt(dest, Damage::UnsafeManifest));
    }
    refuse_set_id_as_root(manifest)?;
    fs::create_dir(dest).at(dest)?;
    progress.start(Phase::Restore, manifest.files(), manifest.bytes());
    let dirs: Vec<_> = manifest
        .entries
        .iter()
        .filter(|e| e.kind == Kind::Dir)
        .collect();
    for d in &dirs {
        let p = dest.join(&d.path);
        fs::create_dir(&p).at(&p)?;
    }
    manifest
        .entries
        .par_iter()
        .filter(|e| e.kind != Kind::Dir)
        .try_for_each(|e| -> Result<()> {
            let p = dest.join(&e.path);
            let parent = p.parent().expect("entries are below dest");
            let meta = fs::symlink_metadata(parent).at(parent)?;
            if !meta.is_dir() {
                return Err(Error::corrupt(parent, Damage::ParentNotDir(e.path.clone())));
            }
            match e.kind {
                Kind::Symlink => {
                    let target = objects.read(&e.hash)?;
                    std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target), &p).at(&p)?;
                    progress.advance(e.size);
                }
                Kind::File | Kind::Exec => {
                    let n = objects.copy_to(&e.hash, e.size, &p, &|n| progress.advance(n))?;
                    if n != e.size {
                        return Err(Error::corrupt(
                            &objects.locate(&e.hash),
                            Damage::EntryWrongSize(e.path.clone()),
                        ));
                    }
                    // The recorded mode (a version 1 manifest's entries
                    // carry 0644 or 0755); umask plays no part.
                    fs::set_permissions(&p, fs::Permissions::from_mode(e.mode)).at(&p)?;
                }
                Kind::Dir => unreachable!("filtered out"),
            }
            Ok(())
        })?;
    for d in dirs.iter().rev() {
        let p = dest.join(&d.path);
        // Deepest first and after their contents, so a directory recorded
        // without write or search permission (`0500`) was still filled. A
        // version 1 manifest records no directory mode: they keep the one
        // they were made with.
        if manifest.version.has_modes() {
            fs::set_permissions(&p, fs::Permissions::from_mode(d.mode)).at(&p)?;
        }
        atomic::sync_dir(&p)?;
    }
    atomic::sync_dir(dest)?;
    progress.finish();
    Ok(())
}

/// The owner of the files written into the soul: the soul directory's
/// (uid, gid), when this process may give files away (root); `None`
/// otherwise (they are this process's anyway).
pub(crate) fn soul_owner(soul: &Path) -> Result<Option<(u32, u32)>> {
    if !rustix::process::geteuid().is_root() {
        return Ok(None);
    }
    let meta = fs::metadata(soul).at(soul)?;
    Ok(Some((meta.uid(), meta.gid())))
}

/// Gives everything below `dir` (not `dir` itself) to `owner`, symlinks
/// themselves rather than their targets.
pub(crate) fn give_below(dir: &Path, owner: (u32, u32)) -> Result<()> {
    for item in fs::read_dir(dir).at(dir)? {
        let p = item.at(dir)?.path();
        std::os::unix::fs::lchown(&p, Some(owner.0), Some(owner.1)).at(&p)?;
        if fs::symlink_metadata(&p).at(&p)?.is_dir() {
            give_below(&p, owner)?;
        }
    }
    Ok(())
}

/// Refuses, as root, a manifest that records a regular file with a setuid
/// or setgid bit: restored by root the file would be a setuid (setgid)
/// program owned by root, with bytes the soul's writer chose (the agent
/// can set those bits on its own files, where they grant nothing). Only
/// its owner can restore it. Directories keep theirs (setgid on a
/// directory only passes its group on).
fn refuse_set_id_as_root(manifest: &Manifest) -> Result<()> {
    if !rustix::process::geteuid().is_root() {
        return Ok(());
    }
    match manifest
        .entries
        .iter()
        .find(|e| matches!(e.kind, Kind::File | Kind::Exec) && e.mode & 0o6000 != 0)
    {
        Some(e) => Err(Error::Refused(Refusal::SetIdAsRoot {
            path: e.path.clone(),
            mode: e.mode,
        })),
        None => Ok(()),
    }
}

/// A fresh path under `dir` named `stem` after the time `now` (with a
/// counter if taken).
pub(crate) fn unique(dir: &Path, now: SystemTime, stem: &str) -> PathBuf {
    let base = format!("{}-{}", stamp(now), stem);
    let mut p = dir.join(&base);
    let mut n = 1;
    while fs::symlink_metadata(&p).is_ok() {
        n += 1;
        p = dir.join(format!("{base}-{n}"));
    }
    p
}

/// Moves a tree, across filesystems if need be (copy, fsync, then remove
/// the source). The destination must not exist.
pub(crate) fn move_tree(src: &Path, dest: &Path) -> Result<()> {
    if let Some(parent) = dest.parent() {
        atomic::create_dir_all(parent)?;
    }
    match fs::rename(src, dest) {
        Ok(()) => {
            if let Some(parent) = dest.parent() {
                atomic::sync_dir(parent)?;
            }
            Ok(())
        }
        Err(e) if e.raw_os_error() == Some(18) => move_across(src, dest),
        Err(e) => Err(e).at(src),
    }
}

/// The EXDEV half of [`move_tree`]: copy into a partial name, rename it to
/// `dest`, then remove `src`. `dest` appears only whole (the rename), so
/// when it already exists an earlier run crashed while removing `src`:
/// only that is left to finish.
fn move_across(src: &Path, dest: &Path) -> Result<()> {
    if fs::symlink_metadata(dest).is_err() {
        let partial = dest.with_extension("partial");
        if fs::symlink_metadata(&partial).is_ok() {
            fs::remove_dir_all(&partial).at(&partial)?;
        }
        copy_tree(src, &partial)?;
        fs::rename(&partial, dest).at(dest)?;
        atomic::sync_dir(dest.parent().unwrap_or(Path::new("/")))?;
    }
    match fs::remove_dir_all(src) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r.at(src),
    }
}

/// Copies a tree without following symlinks. FIFOs and sockets are made
/// anew (never opened: reading a FIFO blocks); devices are refused.
fn copy_tree(src: &Path, dest: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(src).at(src)?;
    let ft = meta.file_type();
    if meta.is_dir() {
        fs::create_dir(dest).at(dest)?;
        for item in fs::read_dir(src).at(src)? {
            let item = item.at(src)?;
            copy_tree(&item.path(), &dest.join(item.file_name()))?;
        }
        fs::set_permissions(dest, meta.permissions()).at(dest)?;
        atomic::sync_dir(dest)
    } else if ft.is_symlink() {
        let t = fs::read_link(src).at(src)?;
        std::os::unix::fs::symlink(t, dest).at(dest)
    } else if ft.is_fifo() || ft.is_socket() {
        use rustix::fs::{mknodat, FileType, Mode, CWD};
        let kind = if ft.is_fifo() {
            FileType::Fifo
        } else {
            FileType::Socket
        };
        mknodat(
            CWD,
            dest,
            kind,
            Mode::from_raw_mode(meta.mode() & 0o7777),
            0,
        )
        .map_err(std::io::Error::from)
        .at(dest)?;
        fs::set_permissions(dest, meta.permissions()).at(dest)
    } else if ft.is_file() {
        fs::copy(src, dest).at(dest)?;
        fs::File::open(dest).and_then(|f| f.sync_all()).at(dest)
    } else {
        Err(Error::Usage(format!(
            "{} is a device file and cannot be copied to another filesystem: remove it",
            src.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn move_across_resumed_after_the_rename_only_finishes_removing_the_source() {
        // A crash during `remove_dir_all(src)`: `dest` is whole, `src` is
        // partly removed. Resuming must not copy again onto `dest`.
        let t = tempfile::tempdir().unwrap();
        let (src, dest) = (t.path().join("old"), t.path().join("q/1-restore-from-2"));
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("sub/left"), "left over\n").unwrap();
        fs::create_dir_all(dest.join("sub")).unwrap();
        fs::write(dest.join("sub/left"), "left over\n").unwrap();
        fs::write(dest.join("gone"), "already removed from src\n").unwrap();
        move_across(&src, &dest).unwrap();
        assert!(!src.exists());
        assert_eq!(
            fs::read_to_string(dest.join("gone")).unwrap(),
            "already removed from src\n"
        );
        assert!(!dest.with_extension("partial").exists());
        // And once more, with `src` already gone.
        move_across(&src, &dest).unwrap();
    }

    #[test]
    fn move_across_recreates_fifos_instead_of_opening_them() {
        use rustix::fs::{mkfifoat, Mode, CWD};
        let t = tempfile::tempdir().unwrap();
        let (src, dest) = (t.path().join("old"), t.path().join("q"));
        fs::create_dir(&src).unwrap();
        mkfifoat(CWD, src.join("pipe"), Mode::from_raw_mode(0o640)).unwrap();
        fs::set_permissions(src.join("pipe"), fs::Permissions::from_mode(0o640)).unwrap();
        fs::write(src.join("file"), "bytes\n").unwrap();
        // Opening a FIFO with no writer blocks forever: run with a deadline.
        let (tx, rx) = std::sync::mpsc::channel();
        let (s, d) = (src.clone(), dest.clone());
        std::thread::spawn(move || tx.send(move_across(&s, &d).map_err(|e| e.to_string())));
        let r = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("move_across blocked on a FIFO");
        r.unwrap();
        let meta = fs::symlink_metadata(dest.join("pipe")).unwrap();
        assert!(meta.file_type().is_fifo());
        assert_eq!(meta.mode() & 0o7777, 0o640);
        assert_eq!(fs::read_to_string(dest.join("file")).unwrap(), "bytes\n");
        assert!(!src.exists());
    }

    #[test]
    fn kept_collision_compares_raw_names() {
        let keep = vec![
            OsString::from("cache"),
            OsStr::from_bytes(b"caf\xe9").to_owned(),
        ];
        let lossy = OsStr::new("caf\u{fffd}");
        assert_eq!(kept_collision(&keep, [OsStr::new("notes"), lossy]), None);
        assert_eq!(
            kept_collision(&keep, [OsStr::from_bytes(b"caf\xe9")]),
            Some(OsStr::from_bytes(b"caf\xe9"))
        );
        assert_eq!(
            kept_collision(&[], [OsStr::new(WORK_DIR)]),
            Some(OsStr::new(WORK_DIR))
        );
    }
}
