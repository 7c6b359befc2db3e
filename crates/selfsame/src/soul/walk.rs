//! Walking the soul: every entry with its kind and stat, in manifest order.
//!
//! Directories are read through their own descriptors (`openat`, `getdents`,
//! `fstatat` by name), subdirectories in parallel, and each directory's
//! listing is sorted on its own and merged into its parent's, so the whole
//! walk comes out sorted by raw path bytes without one big sort. Stat calls
//! are most of the cost of an unchanged seal; nothing here allocates per
//! entry beyond its path.

use std::cmp::Ordering;
use std::ffi::CStr;
use std::io;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use super::statcache::FileStat;
use crate::error::{Error, Result};
use crate::format::excludes::{Excludes, Protect, Root};
use crate::format::Kind;

/// One entry found on disk, before hashing.
#[derive(Debug, Clone)]
pub struct Found {
    /// Kind.
    pub kind: Kind,
    /// Path relative to the soul root.
    pub rel: String,
    /// File size, or the link target's length; 0 for directories.
    pub size: u64,
    /// The entry's own stat (symlinks not followed).
    pub stat: FileStat,
}

impl Found {
    /// The entry's absolute path under `root`.
    pub fn abs(&self, root: &Path) -> PathBuf {
        root.join(&self.rel)
    }
}

/// Longest absolute path the system opens, with its terminating NUL.
const PATH_MAX: usize = 4096;
/// What a restore's staging adds to a soul path: `/.selfsame-restore/new`.
const STAGING: usize = 1 + crate::format::journal::WORK_DIR.len() + "/new".len();

struct Walk<'a> {
    root: &'a Path,
    excludes: &'a Excludes,
    /// Paths relative to the root that are left out (the vault).
    skip: Vec<String>,
}

/// Walks the soul. `skip` lists absolute paths left out (the vault, when it
/// lies inside the soul). Refuses non-UTF-8 names, control characters,
/// sockets, FIFOs and devices, naming the path. The result is sorted by the
/// raw bytes of the relative paths, as a manifest is.
pub fn walk(root: &Path, excludes: &Excludes, skip: &[PathBuf]) -> Result<Vec<Found>> {
    let (w, fd) = Walk::open(root, excludes, skip)?;
    w.dir(fd, "")
}

impl<'a> Walk<'a> {
    /// A walk of the soul at `root` and its directory opened: refuses a
    /// soul that is not a directory. The soul itself may be a symlink to
    /// its directory; nothing below it is followed.
    fn open(root: &'a Path, excludes: &'a Excludes, skip: &[PathBuf]) -> Result<(Self, OwnedFd)> {
        let meta = std::fs::metadata(root).map_err(|e| read_error(root, e))?;
        if !meta.is_dir() {
            return Err(Error::Usage(format!(
                "soul {} is not a directory",
                root.display()
            )));
        }
        let skip = skip
            .iter()
            .filter_map(|s| s.strip_prefix(root).ok())
            .filter_map(|rel| rel.to_str().map(str::to_owned))
            .filter(|rel| !rel.is_empty())
            .collect();
        let w = Walk {
            root,
            excludes,
            skip,
        };
        let fd = rustix::fs::open(root, dir_flags() - OFlags::NOFOLLOW, Mode::empty())
            .map_err(|e| read_error(root, io::Error::from(e)))?;
        Ok((w, fd))
    }
}

/// The protected part of the soul: every entry the walk would list that
/// `protect` covers, in manifest order, found without walking the rest of
/// the soul where the patterns allow it (a literal pattern is one look; a
/// glob walks the directory below its literal leading segments). Also
/// returns the directories a new protected entry would appear in, but for
/// those already listed: with the protected entries and the literal
/// patterns' paths, what a stat-based check looks at.
pub fn walk_protected(
    root: &Path,
    protect: &Protect,
    excludes: &Excludes,
    skip: &[PathBuf],
) -> Result<(Vec<Found>, Vec<String>)> {
    let (w, root_fd) = Walk::open(root, excludes, skip)?;
    let mut found: std::collections::BTreeMap<Vec<u8>, Found> = Default::default();
    let mut dirs: Vec<String> = Vec::new();
    for r in protect.roots() {
        let (rel, glob) = match r {
            Root::Path(p) => (p, false),
            Root::Below(d) => (d, true),
        };
        let Some((entry, fd)) = w.look_up(root_fd.as_fd(), &rel)? else {
            continue;
        };
        let prefix = if rel.is_empty() {
            String::new()
        } else {
            format!("{rel}/")
        };
        let below = match fd {
            Some(fd) => w.dir(fd, &prefix)?,
            None => Vec::new(),
        };
        for f in entry.into_iter().chain(below) {
            if glob && f.kind == Kind::Dir {
                dirs.push(f.rel.clone());
            }
            if !glob || protect.covers(&f.rel) {
                found.insert(f.rel.as_bytes().to_vec(), f);
            }
        }
        if glob && rel.is_empty() {
            dirs.push(String::new());
        }
    }
    dirs.retain(|d| !found.contains_key(d.as_bytes()));
    dirs.sort();
    dirs.dedup();
    Ok((found.into_values().collect(), dirs))
}

impl Walk<'_> {
    /// The entry at `rel` as the walk would list it (`None` inside: `rel`
    /// is the soul itself), reached one component at a time without
    /// following a symlink, and when it is a directory, its descriptor.
    /// `None` when the walk would not list it: absent, below something
    /// that is not a directory, or left out.
    #[allow(clippy::type_complexity)]
    fn look_up(
        &self,
        root: BorrowedFd<'_>,
        rel: &str,
    ) -> Result<Option<(Option<Found>, Option<OwnedFd>)>> {
        if rel.is_empty() {
            let fd = rustix::fs::openat(root, ".", dir_flags(), Mode::empty())
                .map_err(|e| self.io_err("", e))?;
            return Ok(Some((None, Some(fd))));
        }
        let mut fd: Option<OwnedFd> = None;
        let mut prefix = String::new();
        let names: Vec<&str> = rel.split('/').collect();
        for (i, name) in names.iter().enumerate() {
            let here = fd.as_ref().map_or(root, |f| f.as_fd());
            let Ok(cname) = std::ffi::CString::new(*name) else {
                return Ok(None);
            };
            let child = match self.child(here, &prefix, &cname) {
                Ok(c) => c,
                Err(Error::Io { source, .. })
                    if matches!(
                        source.raw_os_error(),
                        Some(e) if e == rustix::io::Errno::NOENT.raw_os_error()
                            || e == rustix::io::Errno::NOTDIR.raw_os_error()
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(e),
            };
            let Some(child) = child else { return Ok(None) };
            let last = i + 1 == names.len();
            if !child.descend {
                return Ok(if last {
                    Some((Some(child.found), None))
                } else {
                    None
                });
            }
            let sub = match rustix::fs::openat(here, &cname, dir_flags(), Mode::empty()) {
                Ok(sub) => sub,
                // Replaced since the stat: as if absent.
                Err(e) if e == rustix::io::Errno::NOENT || e == rustix::io::Errno::LOOP => {
                    return Ok(None)
                }
                Err(e) => return Err(self.io_err(&child.found.rel, e)),
            };
            prefix = format!("{}/", child.found.rel);
            if last {
                return Ok(Some((Some(child.found), Some(sub))));
            }
            fd = Some(sub);
        }
        Ok(None)
    }
}

/// An error reading a soul entry; one the process is not permitted names
/// the entry and says how to get past it.
pub(crate) fn read_error(path: &Path, source: io::Error) -> Error {
    if source.kind() == io::ErrorKind::PermissionDenied {
        Error::Unreadable {
            path: path.to_owned(),
        }
    } else {
        Error::Io {
            path: path.to_owned(),
            source,
        }
    }
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW
}

/// One child of a directory being listed.
struct Child {
    found: Found,
    /// For a directory: whether to descend.
    descend: bool,
}

impl Walk<'_> {
    fn io_err(&self, rel: &str, e: rustix::io::Errno) -> Error {
        read_error(&self.root.join(rel), io::Error::from(e))
    }

    /// Lists `fd` (the directory at `prefix`, which is empty or ends in
    /// `/`), then its subdirectories in parallel; returns everything below
    /// it in manifest order.
    fn dir(&self, fd: OwnedFd, prefix: &str) -> Result<Vec<Found>> {
        let here = prefix.trim_end_matches('/');
        let mut dir = rustix::fs::Dir::new(fd).map_err(|e| self.io_err(here, e))?;
        let mut children = Vec::new();
        while let Some(item) = dir.read() {
            let item = item.map_err(|e| self.io_err(here, e))?;
            let name = item.file_name();
            if matches!(name.to_bytes(), b"." | b"..") {
                continue;
            }
            let fd = dir.fd().map_err(|e| self.io_err(here, e))?;
            if let Some(child) = self.child(fd, prefix, name)? {
                children.push(child);
            }
        }
        children.sort_unstable_by(|a, b| a.found.rel.as_bytes().cmp(b.found.rel.as_bytes()));

        // Each subdirectory's listing goes where `name/` sorts among its
        // siblings, which is not always right after `name` itself
        // (`a` < `a-b` < `a/c`).
        let dir_fd = dir.fd().map_err(|e| self.io_err(here, e))?;
        let mut subdirs: Vec<String> = children
            .iter()
            .filter(|c| c.descend)
            .map(|c| c.found.rel.clone())
            .collect();
        subdirs.sort_unstable_by(|a, b| subtree_key_cmp(a, b));
        let below: Vec<Option<Vec<Found>>> = subdirs
            .par_iter()
            .map(|rel| {
                match rustix::fs::openat(dir_fd, &rel[prefix.len()..], dir_flags(), Mode::empty()) {
                    Ok(fd) => self.dir(fd, &format!("{rel}/")).map(Some),
                    // Deleted since it was listed: not in the soul any more.
                    Err(rustix::io::Errno::NOENT) => Ok(None),
                    Err(e) => Err(self.io_err(rel, e)),
                }
            })
            .collect::<Result<_>>()?;
        let (subdirs, below): (Vec<String>, Vec<Vec<Found>>) = subdirs
            .into_iter()
            .zip(below)
            .filter_map(|(rel, listing)| match listing {
                Some(l) => Some((rel, l)),
                None => {
                    children.retain(|c| c.found.rel != rel);
                    None
                }
            })
            .unzip();

        let total = children.len() + below.iter().map(Vec::len).sum::<usize>();
        let mut out = Vec::with_capacity(total);
        let mut subtrees = subdirs.into_iter().zip(below).peekable();
        for child in children {
            while let Some((sub, _)) = subtrees.peek() {
                if subtree_vs_entry(sub, &child.found.rel) == Ordering::Less {
                    out.extend(subtrees.next().expect("peeked").1);
                } else {
                    break;
                }
            }
            out.push(child.found);
        }
        for (_, listing) in subtrees {
            out.extend(listing);
        }
        Ok(out)
    }

    /// Stats one entry of the directory `fd`; `None` when it is left out.
    fn child(&self, fd: BorrowedFd<'_>, prefix: &str, name: &CStr) -> Result<Option<Child>> {
        let Ok(name_str) = std::str::from_utf8(name.to_bytes()) else {
            return Err(Error::Unsupported {
                path: format!("{prefix}{}", String::from_utf8_lossy(name.to_bytes())),
                reason: "the name is not valid UTF-8",
            });
        };
        let rel = format!("{prefix}{name_str}");
        // Every entry is later opened (hashed, restored) by its absolute
        // path, which the system refuses from PATH_MAX bytes on; a restore
        // stages it under `.selfsame-restore/new/` in the soul, which adds
        // STAGING bytes. Longer, it could be sealed but never put back.
        if self.root.as_os_str().len() + 1 + rel.len() + STAGING >= PATH_MAX {
            return Err(Error::Unsupported {
                path: crate::error::shorten(&rel),
                reason: "its path, staged by a restore under .selfsame-restore/new/, would be longer than PATH_MAX (4096 bytes), the longest path the system opens",
            });
        }
        if name_str.chars().any(char::is_control) {
            return Err(Error::Unsupported {
                path: rel.escape_debug().to_string(),
                reason: "the name has control characters",
            });
        }
        if self.excludes.matches(&rel) || self.skip.contains(&rel) {
            return Ok(None);
        }
        let st = match rustix::fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            // Deleted since the directory was listed (a temporary file, a
            // SQLite `-journal` at a commit): not in the soul any more.
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(self.io_err(&rel, e)),
        };
        let stat = FileStat::of_stat(&st);
        let kind = match FileType::from_raw_mode(st.st_mode as _) {
            FileType::Directory => Kind::Dir,
            FileType::RegularFile if stat.mode & 0o111 != 0 => Kind::Exec,
            FileType::RegularFile => Kind::File,
            FileType::Symlink => Kind::Symlink,
            other => {
                let reason = match other {
                    FileType::Socket => "sockets cannot be sealed",
                    FileType::Fifo => "FIFOs cannot be sealed",
                    _ => "devices cannot be sealed",
                };
                return Err(Error::Unsupported { path: rel, reason });
            }
        };
        let size = if kind == Kind::Dir { 0 } else { stat.size };
        Ok(Some(Child {
            descend: kind == Kind::Dir,
            found: Found {
                kind,
                rel,
                size,
                stat,
            },
        }))
    }
}

/// Orders two subtrees by where their contents sort: `a/…` against `b/…`.
fn subtree_key_cmp(a: &str, b: &str) -> Ordering {
    a.as_bytes()
        .iter()
        .chain(b"/")
        .cmp(b.as_bytes().iter().chain(b"/"))
}

/// Where the subtree `sub/…` sorts against the sibling entry `entry`. A
/// sibling's name has no `/`, so comparing with `sub/` decides it.
fn subtree_vs_entry(sub: &str, entry: &str) -> Ordering {
    sub.as_bytes()
        .iter()
        .chain(b"/")
        .cmp(entry.as_bytes().iter())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn walk_is_in_raw_byte_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in ["a", "a/c", "a-b", "b", "a.d", "z"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in ["a/c/x", "a/0", "a-b/y", "a0", "a.d/q", "b/é", "b/E", "z/z"] {
            fs::write(root.join(f), f).unwrap();
        }
        std::os::unix::fs::symlink("a", root.join("link")).unwrap();
        let got: Vec<String> = walk(root, &Excludes::none(), &[])
            .unwrap()
            .into_iter()
            .map(|f| f.rel)
            .collect();
        let mut want = got.clone();
        want.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        assert_eq!(got, want);
        assert_eq!(got.len(), 15, "{got:?}");
    }

    #[test]
    fn a_soul_that_is_a_symlink_is_walked_through_it() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs::create_dir_all(real.join("sub")).unwrap();
        fs::write(real.join("sub/f"), "f").unwrap();
        fs::write(real.join("g"), "g").unwrap();
        let link = dir.path().join("soul");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let rels = |root: &Path| -> Vec<String> {
            walk(root, &Excludes::none(), &[])
                .unwrap()
                .into_iter()
                .map(|f| f.rel)
                .collect()
        };
        assert_eq!(rels(&link), vec!["g", "sub", "sub/f"]);
        assert_eq!(rels(&link), rels(&real));
    }

    #[test]
    fn excluded_and_skipped_entries_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("cache/deep")).unwrap();
        fs::create_dir_all(root.join(".selfsame")).unwrap();
        fs::write(root.join("cache/deep/x"), "x").unwrap();
        fs::write(root.join("keep.tmp"), "x").unwrap();
        fs::write(root.join("keep"), "x").unwrap();
        let ex = Excludes::new(&["cache".into(), "*.tmp".into()]).unwrap();
        let got: Vec<String> = walk(root, &ex, &[root.join(".selfsame")])
            .unwrap()
            .into_iter()
            .map(|f| f.rel)
            .collect();
        assert_eq!(got, vec!["keep".to_string()]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// The protected part found without walking the whole soul is the
        /// whole walk's entries that the patterns cover, in the same order
        /// — literal patterns, globs, directories, excluded paths and
        /// symlinks standing where a directory is expected included.
        #[test]
        fn the_protected_walk_is_the_covered_part_of_the_whole_walk(
            paths in proptest::collection::vec("[ab]{1,2}(/[ab.]{1,2}){0,2}", 1..12),
            links in proptest::collection::vec("[ab]{1,2}", 0..2),
            patterns in proptest::collection::vec("[ab*]{1,2}(/[ab*]{1,2}){0,2}|\\*\\*/[ab]", 1..4),
            exclude in proptest::collection::vec("[ab]/[ab]", 0..2),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path();
            for p in &paths {
                let p = root.join(p);
                if let Some(parent) = p.parent() {
                    if fs::create_dir_all(parent).is_err() {
                        continue;
                    }
                }
                let _ = fs::write(&p, "x");
            }
            for l in &links {
                let _ = std::os::unix::fs::symlink("b", root.join(l));
            }
            let (Ok(protect), Ok(ex)) = (Protect::new(&patterns), Excludes::new(&exclude)) else {
                return Ok(());
            };
            let whole: Vec<String> = walk(root, &ex, &[])
                .unwrap()
                .into_iter()
                .map(|f| f.rel)
                .filter(|r| protect.covers(r))
                .collect();
            let part: Vec<String> = walk_protected(root, &protect, &ex, &[])
                .unwrap()
                .0
                .into_iter()
                .map(|f| f.rel)
                .collect();
            proptest::prop_assert_eq!(part, whole);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        /// Any tree of names made of characters around `/` in byte order
        /// walks out sorted.
        #[test]
        fn any_tree_walks_sorted(paths in proptest::collection::vec("[-./0a]{1,3}(/[-.0a]{1,3}){0,2}", 1..20)) {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path();
            for p in &paths {
                let p = root.join(p);
                if p.components().any(|c| matches!(c, std::path::Component::ParentDir | std::path::Component::CurDir)) {
                    continue;
                }
                if let Some(parent) = p.parent() {
                    if fs::create_dir_all(parent).is_err() {
                        continue;
                    }
                }
                let _ = fs::write(&p, "x");
            }
            let got: Vec<String> = walk(root, &Excludes::none(), &[]).unwrap().into_iter().map(|f| f.rel).collect();
            let mut want = got.clone();
            want.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            proptest::prop_assert_eq!(got, want);
        }
    }
}
