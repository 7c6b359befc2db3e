//! SQLite databases in the soul, read the way SQLite reads them: only
//! committed states.
//!
//! A database that the agent writes while a seal reads it would otherwise
//! be stored half-written: some pages of a transaction and not others, a
//! `-journal` from another moment than the database. Before the files of a
//! database are read, the scan takes the locks SQLite's own readers take
//! (<https://www.sqlite.org/lockingv3.html>,
//! <https://www.sqlite.org/walformat.html>; see [`lock`]), as open file
//! description locks, which conflict with SQLite's POSIX locks and are not
//! dropped when another descriptor of the file is closed. Every lock is a
//! read lock: the scan needs no write permission, and it conflicts only
//! with what would change the files it reads.
//!
//! What is stored are the live bytes, the database and whatever committed
//! state lies beside it (a hot `-journal`, which SQLite rolls back, or the
//! WAL, which it replays, when it next opens the restored files), so a
//! clean wake still compares the soul with what was stored. A lock that is
//! busy (a writer committing) makes the scan let go of every lock and try
//! again shortly, so no writer waits on a lock held while the scan waits;
//! after [`WAIT`] the seal gives up with [`Error::DatabaseBusy`].
//!
//! A database is a regular file that begins with the 16-byte header
//! `SQLite format 3\0`, or an empty file with a `-journal` or `-wal`
//! beside it (a database being created). Its `-journal`, `-wal` and
//! `-shm` siblings are the files SQLite names so; which of them exist is
//! looked at again under the locks, and the scan's entries are brought up
//! to date.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use rustix::fs::{AtFlags, FileType, OFlags, CWD};

use super::statcache::FileStat;
use super::walk::{read_error, Found};
use crate::error::{Error, Result};
use crate::format::excludes::Excludes;
use crate::format::Kind;

/// The first bytes of every SQLite 3 database file.
const MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// The files SQLite keeps beside a database `X`: `X-journal`, `X-wal`,
/// `X-shm`.
pub(crate) const SIBLINGS: [&str; 3] = ["-journal", "-wal", "-shm"];
/// The smallest page, and so the unit of every database file's size.
const PAGE_MIN: u64 = 512;
/// How long a seal waits for a database's writers to let it read.
pub(crate) const WAIT: Duration = Duration::from_secs(10);
/// How many times the files of a database are read when a writer began
/// to write beside them while they were read.
pub(crate) const TRIES: u32 = 10;

/// The lock bytes of the rollback protocol, in the database file.
const PENDING_BYTE: i64 = 0x4000_0000;
const RESERVED_BYTE: i64 = PENDING_BYTE + 1;
const SHARED_FIRST: i64 = PENDING_BYTE + 2;
const SHARED_SIZE: i64 = 510;
/// Lock bytes of the WAL protocol, in the `-shm` file: `WAL_CKPT_LOCK`,
/// `WAL_READ_LOCK(1)`, and the dead-man switch every connection holds.
const SHM_CKPT_LOCK: i64 = 121;
const SHM_READ_LOCK_1: i64 = 124;
const SHM_DMS: i64 = 128;

/// The databases among `found` that must be locked for this scan: those
/// with an entry (the database or a sibling) for which `read` says it will
/// be read. Relative paths, in manifest order.
pub(crate) fn databases(root: &Path, found: &[Found], read: impl Fn(usize) -> bool) -> Vec<String> {
    let is_file = |f: &Found| matches!(f.kind, Kind::File | Kind::Exec);
    let find = |rel: &str| {
        found
            .binary_search_by(|f| f.rel.as_bytes().cmp(rel.as_bytes()))
            .ok()
            .filter(|&i| is_file(&found[i]))
    };
    let mut candidates: Vec<usize> = Vec::new();
    for (i, f) in found.iter().enumerate() {
        if !is_file(f) || !read(i) {
            continue;
        }
        let base = SIBLINGS
            .iter()
            .find_map(|s| f.rel.strip_suffix(s))
            .and_then(find);
        match base {
            Some(b) => candidates.push(b),
            None if f.size >= PAGE_MIN && f.size % PAGE_MIN == 0 => candidates.push(i),
            None if f.size == 0 => candidates.push(i),
            None => {}
        }
    }
    candidates.sort_unstable();
    candidates.dedup();
    candidates
        .into_par_iter()
        .filter(|&i| {
            let f = &found[i];
            if f.size == 0 {
                // Being created: a writer has begun its first transaction.
                ["-journal", "-wal"]
                    .iter()
                    .any(|s| find(&format!("{}{s}", f.rel)).is_some())
            } else {
                has_magic(&f.abs(root))
            }
        })
        .map(|i| found[i].rel.clone())
        .collect()
}

/// Whether the file begins with the SQLite header. Opened as every soul
/// file is (no symlink followed, never waiting on a FIFO); anything that
/// cannot be read is no database.
fn has_magic(path: &Path) -> bool {
    let mut head = [0u8; 16];
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32)
        .open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| &head == MAGIC)
}

/// What a snapshot takes of one of a database's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// All of it, which must hold still while it is read.
    Whole,
    /// Its first bytes, as many as there were when the locks were taken: a
    /// WAL, which writers go on appending to (see [`lock`]).
    Prefix,
    /// Nothing: a live writer's `-journal` (its transaction is not
    /// committed), the `-shm` of a database that connections have open
    /// (SQLite rebuilds it from the WAL when the first connection opens
    /// a restored database).
    Out,
}

/// The locks of one database, held until dropped: closing the descriptors
/// releases them.
#[derive(Debug)]
struct Locked {
    rel: String,
    journal: Role,
    wal: Role,
    shm: Role,
    _db: Option<File>,
    _shm: Option<File>,
}

impl Locked {
    /// Every file of the database with what the snapshot takes of it.
    fn members(&self) -> [(String, Role); 4] {
        [
            (self.rel.clone(), Role::Whole),
            (format!("{}-journal", self.rel), self.journal),
            (format!("{}-wal", self.rel), self.wal),
            (format!("{}-shm", self.rel), self.shm),
        ]
    }
}

/// The locks of every database a scan reads. Dropping it lets go of them.
#[derive(Debug)]
pub(crate) struct Held {
    dbs: Vec<Locked>,
}

/// What one attempt to lock a database found.
enum Attempt {
    Locked(Locked),
    /// A writer holds a conflicting lock.
    Busy,
}

impl Held {
    /// Takes the locks of every database in `dbs` (relative to `root`), all
    /// or none: when one is busy, every lock is let go of before waiting,
    /// so that no writer waits on a lock held while this scan waits. Gives
    /// up after `wait` with [`Error::DatabaseBusy`].
    pub(crate) fn take(root: &Path, dbs: Vec<String>, wait: Duration) -> Result<Held> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            let mut held = Held { dbs: Vec::new() };
            let mut busy = None;
            for rel in &dbs {
                match lock(root, rel)? {
                    Attempt::Locked(l) => held.dbs.push(l),
                    Attempt::Busy => {
                        busy = Some(rel);
                        break;
                    }
                }
            }
            let Some(rel) = busy else {
                return Ok(held);
            };
            drop(held);
            if start.elapsed() >= wait {
                return Err(Error::DatabaseBusy {
                    path: root.join(rel),
                    waited: wait,
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// Whether `rel` is one of the held databases or one of its siblings.
    pub(crate) fn covers(&self, rel: &str) -> bool {
        self.dbs.iter().any(|d| {
            rel == d.rel
                || rel
                    .strip_prefix(d.rel.as_str())
                    .is_some_and(|s| SIBLINGS.contains(&s))
        })
    }

    /// Whether only a prefix of `rel` is read (a WAL under the locks).
    pub(crate) fn prefix(&self, rel: &str) -> bool {
        self.dbs
            .iter()
            .any(|d| d.wal == Role::Prefix && rel.strip_prefix(d.rel.as_str()) == Some("-wal"))
    }

    /// The files of every held database that the scan lists (not
    /// excluded), with what it takes of each.
    fn members(&self, excludes: &Excludes) -> Vec<(String, Role)> {
        self.dbs
            .iter()
            .flat_map(|d| {
                d.members()
                    .into_iter()
                    .filter(|(rel, _)| rel == &d.rel || !excludes.matches(rel))
            })
            .collect()
    }

    /// Looks at the held databases and their siblings again, now that
    /// nobody can write what the snapshot takes of them, and brings `found`
    /// up to date: a file the walk saw that is gone, or that the snapshot
    /// leaves out, is removed, one that appeared is added, and every stat
    /// is the current one. Returns whether anything changed.
    pub(crate) fn refresh(
        &self,
        root: &Path,
        excludes: &Excludes,
        found: &mut Vec<Found>,
    ) -> Result<bool> {
        let mut changed = false;
        for (rel, role) in self.members(excludes) {
            let now = match role {
                Role::Out => None,
                Role::Whole | Role::Prefix => file_stat(root, &rel)?,
            };
            let at = found.binary_search_by(|f| f.rel.as_bytes().cmp(rel.as_bytes()));
            match (at, now) {
                (Ok(i), now) if matches!(found[i].kind, Kind::File | Kind::Exec) => match now {
                    None => {
                        found.remove(i);
                        changed = true;
                    }
                    Some(Some(stat)) => {
                        let f = &mut found[i];
                        if f.stat != stat {
                            *f = file(rel, stat);
                            changed = true;
                        }
                    }
                    // A file the walk saw is now something else.
                    Some(None) => return Err(changing(root, &rel)),
                },
                (Err(i), Some(Some(stat))) => {
                    found.insert(i, file(rel, stat));
                    changed = true;
                }
                // Not a file, then or now: not SQLite's; as the walk saw it.
                _ => {}
            }
        }
        Ok(changed)
    }

    /// The first file of the held databases that is no longer as `read`
    /// says it was read (`None`: not listed), if any: checked after
    /// reading, while the locks are held. Where the locks are held this
    /// never happens but for a file the snapshot reads whole that a writer
    /// began to write after the locks were taken (a `-journal`: read again,
    /// it is left out). It also catches a database whose locks could not
    /// be held (no `-shm` to lock yet, a filesystem without locks) being
    /// written meanwhile.
    pub(crate) fn moved(
        &self,
        root: &Path,
        excludes: &Excludes,
        read: impl Fn(&str) -> Option<FileStat>,
    ) -> Result<Option<String>> {
        for d in &self.dbs {
            // A writer that began after the locks were taken: its journal
            // holds no committed state, and it cannot commit before the
            // locks are let go of.
            let writing = || {
                d._db
                    .as_ref()
                    .is_some_and(|db| conflicts(db, RESERVED_BYTE).unwrap_or(false))
            };
            for (rel, role) in d.members() {
                if rel != d.rel && excludes.matches(&rel) {
                    continue;
                }
                let journal = role == Role::Whole && rel.ends_with("-journal");
                let now = || file_stat(root, &rel).map(Option::flatten);
                let same = match (role, read(&rel)) {
                    (Role::Out, _) => true,
                    // Likewise a WAL made after the locks were taken.
                    (Role::Prefix, None) => true,
                    (Role::Prefix, Some(a)) => {
                        now()?.is_some_and(|b| b.ino == a.ino && b.size >= a.size)
                    }
                    // Such a writer's journal, whatever it held when read
                    // (read again, it is left out)...
                    (Role::Whole, Some(_)) if journal && writing() => false,
                    (Role::Whole, a) => match (a, now()?) {
                        (None, None) => true,
                        (Some(a), Some(b)) => a.same_version(&b),
                        // ... or that appeared since it was not read.
                        (None, Some(_)) => journal && writing(),
                        (Some(_), None) => false,
                    },
                };
                if !same {
                    return Ok(Some(rel));
                }
            }
        }
        Ok(None)
    }
}

/// The error for a database whose files would not hold still.
pub(crate) fn changing(root: &Path, rel: &str) -> Error {
    Error::FileChanging {
        path: root.join(rel),
        tries: TRIES,
    }
}

/// An entry for a regular file found under the locks.
fn file(rel: String, stat: FileStat) -> Found {
    Found {
        kind: if stat.mode & 0o111 != 0 {
            Kind::Exec
        } else {
            Kind::File
        },
        rel,
        size: stat.size,
        stat,
    }
}

/// `None` when nothing is at `rel`, `Some(None)` when something other than
/// a regular file is, else its stat.
fn file_stat(root: &Path, rel: &str) -> Result<Option<Option<FileStat>>> {
    let path = root.join(rel);
    match rustix::fs::statat(CWD, &path, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(
            (FileType::from_raw_mode(st.st_mode as _) == FileType::RegularFile)
                .then(|| FileStat::of_stat(&st)),
        )),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(read_error(&path, io::Error::from(e))),
    }
}

/// Opens a database file or sibling for locking: read-only, never through
/// a symlink, never waiting on a FIFO; `None` when it is not there or not a
/// regular file.
fn open(path: &Path) -> Result<Option<File>> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC).bits() as i32)
        .open(path);
    match f {
        Ok(f) => match f.metadata() {
            Ok(m) if m.is_file() => Ok(Some(f)),
            Ok(_) => Ok(None),
            Err(e) => Err(read_error(path, e)),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => Ok(None),
        Err(e) => Err(read_error(path, e)),
    }
}

/// One attempt to take a database's locks, without waiting. The scan
/// becomes one more reader, and never keeps a writer from writing, only
/// (in rollback mode) from committing while it reads:
///
/// * `SHARED` on the database, taken through the pending byte as SQLite
///   does: nobody can reach `EXCLUSIVE`, so nobody writes the database
///   file, plays a hot journal back, deletes a WAL on close or changes the
///   journal mode. It is busy only while a writer commits.
/// * In the `-shm` file, `WAL_CKPT_LOCK` (byte 121) and `WAL_READ_LOCK(1)`
///   (byte 124) shared: no checkpoint copies frames into the database or
///   truncates the WAL, and no writer restarts the WAL from its start
///   (which needs every read mark but the first). Writers go on appending
///   to the WAL, so the snapshot takes the WAL's bytes up to its size now:
///   SQLite's recovery uses the frames up to the last commit among them.
/// * Who else holds what: a writer holding `RESERVED` is in a rollback
///   transaction, so the `-journal` is its (left out: the database file is
///   the last committed state); otherwise any `-journal` is hot (a writer
///   died mid-commit) or spent, and it goes with the database, for SQLite
///   to roll back. Connections holding the `-shm`'s dead-man switch (byte
///   128) have the database open, so the `-shm` is theirs (left out).
fn lock(root: &Path, rel: &str) -> Result<Attempt> {
    let unlocked = |db, shm| {
        // Without locks, every file must hold still while it is read.
        Attempt::Locked(Locked {
            rel: rel.to_owned(),
            journal: Role::Whole,
            wal: Role::Whole,
            shm: Role::Whole,
            _db: db,
            _shm: shm,
        })
    };
    let Some(db) = open(&root.join(rel))? else {
        // Gone, or replaced by something else: refresh sees to it.
        return Ok(unlocked(None, None));
    };
    let shared = [
        (Range::Read, PENDING_BYTE, 1),
        (Range::Read, SHARED_FIRST, SHARED_SIZE),
        (Range::Unlock, PENDING_BYTE, 1),
    ];
    for (how, start, len) in shared {
        match range_lock(&db, how, start, len) {
            Ok(true) => {}
            Ok(false) => return Ok(Attempt::Busy),
            Err(_) => return Ok(unlocked(Some(db), None)),
        }
    }
    let Ok(writing) = conflicts(&db, RESERVED_BYTE) else {
        return Ok(unlocked(Some(db), None));
    };
    let journal = if writing { Role::Out } else { Role::Whole };
    let Some(shm) = open(&root.join(format!("{rel}-shm")))? else {
        // No connection has the database open in WAL mode (or the first is
        // opening it): the WAL, if any, must hold still.
        return Ok(Attempt::Locked(Locked {
            rel: rel.to_owned(),
            journal,
            wal: Role::Whole,
            shm: Role::Whole,
            _db: Some(db),
            _shm: None,
        }));
    };
    for byte in [SHM_CKPT_LOCK, SHM_READ_LOCK_1] {
        match range_lock(&shm, Range::Read, byte, 1) {
            Ok(true) => {}
            Ok(false) => return Ok(Attempt::Busy),
            Err(_) => return Ok(unlocked(Some(db), Some(shm))),
        }
    }
    let Ok(open_by_others) = conflicts(&shm, SHM_DMS) else {
        return Ok(unlocked(Some(db), Some(shm)));
    };
    Ok(Attempt::Locked(Locked {
        rel: rel.to_owned(),
        journal,
        wal: Role::Prefix,
        shm: if open_by_others {
            Role::Out
        } else {
            Role::Whole
        },
        _db: Some(db),
        _shm: Some(shm),
    }))
}

#[derive(Debug, Clone, Copy)]
enum Range {
    Read,
    Unlock,
}

#[cfg(target_os = "linux")]
fn flock(l_type: i32, start: i64, len: i64) -> nix::libc::flock {
    use nix::libc;
    libc::flock {
        l_type: l_type as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: start,
        l_len: len,
        // Open file description locks require 0 here.
        l_pid: 0,
    }
}

/// Sets an open file description lock on `len` bytes from `start`:
/// `Ok(false)` when another process holds a conflicting one, an error when
/// the filesystem has no such locks.
#[cfg(target_os = "linux")]
fn range_lock(file: &File, how: Range, start: i64, len: i64) -> io::Result<bool> {
    use nix::errno::Errno;
    use nix::fcntl::{fcntl, FcntlArg};
    use nix::libc;
    let l_type = match how {
        Range::Read => libc::F_RDLCK,
        Range::Unlock => libc::F_UNLCK,
    };
    match fcntl(file, FcntlArg::F_OFD_SETLK(&flock(l_type, start, len))) {
        Ok(_) => Ok(true),
        Err(Errno::EAGAIN | Errno::EACCES) => Ok(false),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// Whether another process holds any lock on the byte at `at`.
#[cfg(target_os = "linux")]
fn conflicts(file: &File, at: i64) -> io::Result<bool> {
    use nix::fcntl::{fcntl, FcntlArg};
    use nix::libc;
    let mut probe = flock(libc::F_WRLCK, at, 1);
    fcntl(file, FcntlArg::F_OFD_GETLK(&mut probe)).map_err(io::Error::from)?;
    Ok(probe.l_type != libc::F_UNLCK as libc::c_short)
}

/// Elsewhere there are no open file description locks: nothing is held,
/// and every file of a database must hold still while it is read.
#[cfg(not(target_os = "linux"))]
fn range_lock(_file: &File, _how: Range, _start: i64, _len: i64) -> io::Result<bool> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

#[cfg(not(target_os = "linux"))]
fn conflicts(_file: &File, _at: i64) -> io::Result<bool> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soul::walk::walk;
    use std::fs;

    fn db_bytes(pages: usize) -> Vec<u8> {
        let mut b = vec![0u8; 4096 * pages];
        b[..16].copy_from_slice(MAGIC);
        b
    }

    #[test]
    fn databases_are_known_by_their_header_or_as_empty_files_being_created() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("state.db"), db_bytes(2)).unwrap();
        fs::write(root.join("not.db"), vec![7u8; 8192]).unwrap();
        fs::write(root.join("odd.db"), b"SQLite format 3\0 but cut").unwrap();
        fs::write(root.join("new.db"), b"").unwrap();
        fs::write(root.join("new.db-journal"), b"journal").unwrap();
        fs::write(root.join("empty"), b"").unwrap();
        let found = walk(root, &Excludes::none(), &[]).unwrap();
        let got = databases(root, &found, |_| true);
        assert_eq!(got, vec!["new.db".to_string(), "state.db".to_string()]);
    }

    #[test]
    fn a_database_read_only_through_a_sibling_is_locked_too() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("state.db"), db_bytes(1)).unwrap();
        fs::write(root.join("state.db-wal"), b"frames").unwrap();
        let found = walk(root, &Excludes::none(), &[]).unwrap();
        let wal = found.iter().position(|f| f.rel == "state.db-wal").unwrap();
        assert_eq!(databases(root, &found, |i| i == wal), vec!["state.db"]);
        assert!(databases(root, &found, |_| false).is_empty());
    }

    #[test]
    fn refresh_follows_the_siblings_as_they_are_under_the_locks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("state.db"), db_bytes(1)).unwrap();
        fs::write(root.join("state.db-journal"), b"was here").unwrap();
        let mut found = walk(root, &Excludes::none(), &[]).unwrap();
        fs::remove_file(root.join("state.db-journal")).unwrap();
        fs::write(root.join("state.db-wal"), b"new").unwrap();
        fs::write(root.join("state.db"), db_bytes(2)).unwrap();
        let held = Held::take(root, vec!["state.db".into()], WAIT).unwrap();
        // A writer may begin (RESERVED) but not write the database
        // (EXCLUSIVE).
        let writer = File::open(root.join("state.db")).unwrap();
        assert!(write_lock(&writer, RESERVED_BYTE, 1));
        assert!(!write_lock(&writer, SHARED_FIRST, SHARED_SIZE));
        assert!(held.covers("state.db-shm") && !held.covers("state.dbx"));
        assert!(held.refresh(root, &Excludes::none(), &mut found).unwrap());
        let rels: Vec<&str> = found.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rels, vec!["state.db", "state.db-wal"]);
        assert_eq!(found[0].size, 8192);
        assert!(!held.refresh(root, &Excludes::none(), &mut found).unwrap());
        let stat_of = |rel: &str| found.iter().find(|f| f.rel == rel).map(|f| f.stat);
        assert_eq!(held.moved(root, &Excludes::none(), stat_of).unwrap(), None);
        fs::write(root.join("state.db-journal"), b"again").unwrap();
        assert_eq!(
            held.moved(root, &Excludes::none(), stat_of).unwrap(),
            Some("state.db-journal".into())
        );
        // An excluded sibling is none of the scan's business.
        let ex = Excludes::new(&["*-journal".into()]).unwrap();
        assert_eq!(held.moved(root, &ex, stat_of).unwrap(), None);
        drop(held);
        assert!(write_lock(&writer, SHARED_FIRST, SHARED_SIZE));
    }

    #[test]
    fn a_live_writers_journal_and_a_live_wal_index_are_left_out() {
        use nix::fcntl::{fcntl, FcntlArg};
        use nix::libc;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("state.db"), db_bytes(1)).unwrap();
        fs::write(root.join("state.db-journal"), b"uncommitted").unwrap();
        fs::write(root.join("state.db-wal"), b"frames").unwrap();
        fs::write(root.join("state.db-shm"), vec![0u8; 32768]).unwrap();
        let mut found = walk(root, &Excludes::none(), &[]).unwrap();
        // As a writer in a transaction and a connection would: locks on
        // RESERVED and on the dead-man switch (open file description locks
        // here, since closing any descriptor of a file drops the POSIX
        // locks this process holds on it; SQLite's are another process's).
        let (db, shm) = (
            File::options()
                .read(true)
                .write(true)
                .open(root.join("state.db"))
                .unwrap(),
            File::options()
                .read(true)
                .write(true)
                .open(root.join("state.db-shm"))
                .unwrap(),
        );
        let set = |f: &File, t: i32, at: i64| {
            fcntl(f, FcntlArg::F_OFD_SETLK(&flock(t, at, 1))).unwrap();
        };
        set(&db, libc::F_WRLCK, RESERVED_BYTE);
        set(&shm, libc::F_RDLCK, SHM_DMS);
        let held = Held::take(root, vec!["state.db".into()], WAIT).unwrap();
        assert!(held.refresh(root, &Excludes::none(), &mut found).unwrap());
        let rels: Vec<&str> = found.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rels, vec!["state.db", "state.db-wal"]);
        assert!(held.prefix("state.db-wal") && !held.prefix("state.db"));
        // The WAL may grow; what was there is what the snapshot holds.
        let stat_of = |rel: &str| found.iter().find(|f| f.rel == rel).map(|f| f.stat);
        fs::OpenOptions::new()
            .append(true)
            .open(root.join("state.db-wal"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"more"))
            .unwrap();
        assert_eq!(held.moved(root, &Excludes::none(), stat_of).unwrap(), None);
        drop(held);
        // Without them, both are the database's.
        set(&db, libc::F_UNLCK, RESERVED_BYTE);
        set(&shm, libc::F_UNLCK, SHM_DMS);
        let held = Held::take(root, vec!["state.db".into()], WAIT).unwrap();
        assert!(held.refresh(root, &Excludes::none(), &mut found).unwrap());
        assert_eq!(found.len(), 4);
        let stat_of = |rel: &str| found.iter().find(|f| f.rel == rel).map(|f| f.stat);
        assert_eq!(held.moved(root, &Excludes::none(), stat_of).unwrap(), None);
        // A writer that begins now owns the journal, even one that did not
        // change while it was read: read again, it is left out.
        set(&db, libc::F_WRLCK, RESERVED_BYTE);
        assert_eq!(
            held.moved(root, &Excludes::none(), stat_of).unwrap(),
            Some("state.db-journal".into())
        );
    }

    #[test]
    fn a_committing_writer_makes_the_scan_wait_and_then_give_up() {
        use nix::fcntl::{fcntl, FcntlArg};
        use nix::libc;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("state.db"), db_bytes(1)).unwrap();
        let db = File::options()
            .read(true)
            .write(true)
            .open(root.join("state.db"))
            .unwrap();
        // EXCLUSIVE, as a committing writer holds it (an open file
        // description lock: see above).
        let range = |t| flock(t, PENDING_BYTE, 512);
        fcntl(&db, FcntlArg::F_OFD_SETLK(&range(libc::F_WRLCK))).unwrap();
        let wait = Duration::from_millis(100);
        match Held::take(root, vec!["state.db".into()], wait) {
            Err(Error::DatabaseBusy { path, waited }) => {
                assert_eq!(path, root.join("state.db"));
                assert_eq!(waited, wait);
            }
            other => panic!("{other:?}"),
        }
        fcntl(&db, FcntlArg::F_OFD_SETLK(&range(libc::F_UNLCK))).unwrap();
        Held::take(root, vec!["state.db".into()], wait).unwrap();
    }

    /// Whether a process-associated write lock, as SQLite's writers take
    /// them, can be had (and then let go of).
    fn write_lock(file: &File, start: i64, len: i64) -> bool {
        use nix::fcntl::{fcntl, FcntlArg};
        use nix::libc;
        let mut lock = libc::flock {
            l_type: libc::F_WRLCK as libc::c_short,
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start: start,
            l_len: len,
            l_pid: 0,
        };
        // F_GETLK answers for another process's locks too: an OFD lock
        // held by this process conflicts with a POSIX lock of it.
        fcntl(file, FcntlArg::F_GETLK(&mut lock)).unwrap();
        lock.l_type == libc::F_UNLCK as libc::c_short
    }
}
