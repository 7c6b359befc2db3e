//! Hashing many files at the machine's SHA-256 speed.
//!
//! Every thread of the pool runs one worker with two **lanes**, each
//! hashing one file, and feeds both lanes' blocks to SHA-256 together
//! ([`selfsame_sha256x2::update_pair`]): with SHA-NI one message's rounds
//! wait on each other, two messages' rounds do not, so a core hashes about
//! 1.4 times as many bytes. Files are taken biggest first from one shared
//! list, so no big file starts last and runs alone.
//!
//! Reads go through a 128 KiB buffer per lane: it stays in the core's L2
//! cache, where a whole-file buffer of a megabyte would not (measured: 1.5×
//! slower). A file of [`READ_AHEAD`] bytes or more is read by a thread of
//! its own while its lane hashes, so one big file alone still hashes at
//! SHA-256 speed instead of SHA-256 plus the copy out of the page cache.
//!
//! Each file is read from one descriptor whose stat is taken before and
//! after reading; when they differ (the file changed under the reader) it
//! is read again, up to [`TRIES`] times.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Mutex;

use selfsame_sha256x2::{update_pair, Lane, BLOCK};

use super::statcache::FileStat;
use crate::error::{Error, IoContext, Result};
use crate::progress::Progress;
use crate::vault::objects::{ObjectWriter, Objects, Stored, SMALL};

/// Bytes read at a time into a lane.
const CHUNK: usize = 128 * 1024;
/// Files at least this big are read ahead by a thread of their own.
pub const READ_AHEAD: u64 = 8 << 20;
/// How many times a file that changes under the reader is read.
pub const TRIES: u32 = 3;

/// One file to hash.
#[derive(Debug, Clone)]
pub struct Job {
    /// Where it is.
    pub path: PathBuf,
    /// Its size as last seen (for ordering).
    pub size: u64,
    /// Its stat as the walk saw it, if it did: then the first read needs no
    /// stat of its own (the one after reading must still match it).
    pub seen: Option<FileStat>,
    /// The hash it is expected to have, if known (a restore's target, a
    /// stat cache record too recent to trust): when that object is stored
    /// already, the file is only hashed, not copied into the store, and
    /// read a second time to store it only if it turns out different.
    pub expect: Option<[u8; 32]>,
    /// Read only the first `seen.size` bytes, and let the file grow
    /// meanwhile (a SQLite WAL, which writers only append to while the
    /// scan holds its locks: what lies beyond was committed later).
    pub prefix: bool,
    /// The content the file had at the last scan, when it was smaller
    /// (hash and size): if the file only grew by appending, its stored
    /// chunks are kept and only the new end is chunked (the prefix is
    /// checked against that hash while the file is hashed).
    pub grew: Option<([u8; 32], u64)>,
}

/// A hashed file.
#[derive(Debug, Clone, Copy)]
pub struct Hashed {
    /// SHA-256 of the bytes read.
    pub hash: [u8; 32],
    /// How many bytes that was.
    pub size: u64,
    /// Whether the bytes were stored as a new object.
    pub new: bool,
    /// The bytes that storing them added to the store.
    pub stored: u64,
    /// The stat the bytes were read under.
    pub stat: FileStat,
}

/// Hashes every job; with `store`, also puts each file's bytes into it as
/// they are read (whole files up to [`SMALL`] after hashing, so an object
/// already stored is not written again; bigger ones through a temp file).
/// Results are in job order. Once `stop` is set no file is started, and
/// the files not started get [`Error::Stopped`].
pub fn hash_files(
    jobs: &[Job],
    store: Option<&Objects>,
    progress: &dyn Progress,
    stop: &AtomicBool,
) -> Vec<Result<Hashed>> {
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(jobs[i].size));
    let shared = Shared {
        jobs,
        order,
        next: AtomicUsize::new(0),
        store,
        progress,
        stop,
        results: Mutex::new((0..jobs.len()).map(|_| None).collect()),
    };
    if !jobs.is_empty() {
        rayon::broadcast(|_| Worker::new(&shared).run());
    }
    shared
        .results
        .into_inner()
        .expect("no worker panicked holding the results")
        .into_iter()
        .map(|r| r.unwrap_or(Err(Error::Stopped)))
        .collect()
}

struct Shared<'a> {
    jobs: &'a [Job],
    order: Vec<usize>,
    next: AtomicUsize,
    store: Option<&'a Objects>,
    progress: &'a dyn Progress,
    stop: &'a AtomicBool,
    results: Mutex<Vec<Option<Result<Hashed>>>>,
}

impl Shared<'_> {
    fn take(&self) -> Option<usize> {
        if self.stop.load(Ordering::Relaxed) {
            return None;
        }
        let at = self.next.fetch_add(1, Ordering::Relaxed);
        self.order.get(at).copied()
    }

    fn done(&self, job: usize, result: Result<Hashed>) {
        self.results.lock().expect("results")[job] = Some(result);
    }
}

struct Worker<'s, 'a> {
    shared: &'s Shared<'a>,
    lanes: [Option<Open<'a>>; 2],
    /// Buffers of idle lanes, kept for the next file.
    spare: Vec<Vec<u8>>,
}

impl<'s, 'a> Worker<'s, 'a> {
    fn new(shared: &'s Shared<'a>) -> Self {
        Worker {
            shared,
            lanes: [None, None],
            spare: Vec::new(),
        }
    }

    fn run(mut self) {
        loop {
            for slot in 0..2 {
                self.ready(slot);
            }
            let progress = self.shared.progress;
            match &mut self.lanes {
                [Some(a), Some(b)] => {
                    let n = a.ready().min(b.ready());
                    let (x, y) = (&a.buf[a.pos..a.pos + n], &b.buf[b.pos..b.pos + n]);
                    update_pair(&mut a.lane, x, &mut b.lane, y);
                    (a.pos, b.pos) = (a.pos + n, b.pos + n);
                    progress.advance(2 * n as u64);
                }
                [Some(a), None] | [None, Some(a)] => {
                    let n = a.ready();
                    a.lane.update_blocks(&a.buf[a.pos..a.pos + n]);
                    a.pos += n;
                    progress.advance(n as u64);
                }
                [None, None] => return,
            }
        }
    }

    /// Brings lane `slot` to a state with whole blocks to hash, finishing
    /// files and starting new ones as needed; leaves it empty when no job
    /// is left.
    fn ready(&mut self, slot: usize) {
        loop {
            let Some(open) = &mut self.lanes[slot] else {
                let Some(job) = self.shared.take() else {
                    return;
                };
                let buf = self.spare.pop().unwrap_or_default();
                match Open::start(self.shared, job, buf) {
                    Ok(o) => self.lanes[slot] = Some(o),
                    Err((e, buf)) => {
                        self.spare.push(buf);
                        self.shared.done(job, Err(e));
                    }
                }
                continue;
            };
            match open.check_append(self.shared) {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    self.close(slot, Err(e));
                    continue;
                }
            }
            if open.ready() > 0 {
                return;
            }
            let step = if open.eof {
                open.finish(self.shared)
            } else {
                open.refill(self.shared.store).map(|()| None)
            };
            match step {
                Ok(None) => {}
                Ok(Some(hashed)) => self.close(slot, Ok(hashed)),
                Err(e) => self.close(slot, Err(e)),
            }
        }
    }

    fn close(&mut self, slot: usize, result: Result<Hashed>) {
        let open = self.lanes[slot].take().expect("lane is open");
        self.shared.done(open.job, result);
        self.spare.push(open.into_buf());
    }
}

/// Where a lane's bytes come from.
enum Source {
    /// Read on the lane's thread.
    Inline(File),
    /// Read by a thread of its own, a few chunks ahead.
    Ahead(ReadAhead),
}

/// How one read of a file goes: its stat before, where the bytes come
/// from, and where they go.
struct Reading<'a> {
    before: FileStat,
    source: Source,
    /// Keep the whole file in the buffer, to store it once hashed.
    whole: bool,
    writer: Option<ObjectWriter<'a>>,
    /// Not copied into the store, since the object this hash names is
    /// there: the file is expected to have it.
    expected: Option<[u8; 32]>,
    /// Only the first `before.size` bytes are read (see [`Job::prefix`]).
    prefix: bool,
    /// The file is taken to have grown by appending: the writer is given
    /// its bytes from `resume_at` on, and the old end is checked.
    append: Option<Append>,
}

/// What the scan knows of a file before reading it.
#[derive(Debug, Clone, Copy, Default)]
struct Hints {
    expect: Option<[u8; 32]>,
    prefix: bool,
    grew: Option<([u8; 32], u64)>,
}

/// A file read as its previous content plus appended bytes.
#[derive(Debug, Clone, Copy)]
struct Append {
    /// The previous content's hash and size.
    hash: [u8; 32],
    size: u64,
    /// Where the writer wants the bytes from.
    resume_at: u64,
    /// The previous content's first chunk: id and size.
    first: ([u8; 32], u64),
    /// Whether the first `size` bytes were found to hash to `hash`.
    checked: bool,
}

impl<'a> Reading<'a> {
    fn new(
        path: &Path,
        file: File,
        seen: Option<FileStat>,
        store: Option<&'a Objects>,
        hints: Hints,
    ) -> Result<Self> {
        let Hints {
            expect,
            prefix,
            grew,
        } = hints;
        let prefix = prefix && seen.is_some();
        let before = match seen {
            Some(stat) => stat,
            None => {
                let meta = file.metadata().at(path)?;
                if !meta.is_file() {
                    return Err(changing(path));
                }
                FileStat::of(&meta)
            }
        };
        let whole = store.is_some() && before.size <= SMALL;
        // Hash first, store only if needed: an object that exists is never
        // copied again (a restore's final seal, on a nearly full disk).
        let expected = match (store, expect) {
            (Some(s), Some(h)) if !whole && s.size_of(&h)? == Some(before.size) => Some(h),
            _ => None,
        };
        // A file that grew since the last scan: keep its stored chunks up
        // to the old end, if that part turns out unchanged.
        let append = match (store, grew) {
            (Some(s), Some((hash, old)))
                if !whole && !prefix && expected.is_none() && old < before.size =>
            {
                s.append_writer(&hash, old).map(|w| (w, hash, old))
            }
            _ => None,
        };
        let (writer, append) = match (store, append) {
            (_, Some((w, hash, size))) => (
                Some(w.writer),
                Some(Append {
                    hash,
                    size,
                    resume_at: w.resume_at,
                    first: w.first,
                    checked: false,
                }),
            ),
            (Some(s), None) if !whole && expected.is_none() => (Some(s.writer()?), None),
            _ => (None, None),
        };
        let source = if !whole && !prefix && before.size >= READ_AHEAD {
            match ReadAhead::start(file) {
                Ok(ahead) => Source::Ahead(ahead),
                Err(file) => Source::Inline(file),
            }
        } else {
            Source::Inline(file)
        };
        Ok(Reading {
            before,
            source,
            whole,
            writer,
            expected,
            prefix,
            append,
        })
    }

    fn stat_after(&self, path: &Path) -> Result<FileStat> {
        let file = match &self.source {
            Source::Inline(f) => f,
            Source::Ahead(a) => &a.file,
        };
        Ok(FileStat::of(&file.metadata().at(path)?))
    }
}

/// One file open in a lane.
struct Open<'a> {
    job: usize,
    path: &'a Path,
    tries: u32,
    reading: Reading<'a>,
    lane: Lane,
    /// Read bytes are `buf[..end]`; `buf` only grows, so it is zeroed once.
    buf: Vec<u8>,
    end: usize,
    pos: usize,
    eof: bool,
    read: u64,
}

impl<'a> Open<'a> {
    fn start(
        shared: &Shared<'a>,
        job: usize,
        buf: Vec<u8>,
    ) -> std::result::Result<Self, (Error, Vec<u8>)> {
        let path = shared.jobs[job].path.as_path();
        let Job {
            seen,
            expect,
            prefix,
            grew,
            ..
        } = shared.jobs[job];
        let hints = Hints {
            expect,
            prefix,
            grew,
        };
        let reading =
            open_file(path).and_then(|f| Reading::new(path, f, seen, shared.store, hints));
        match reading {
            Ok(reading) => Ok(Open {
                job,
                path,
                tries: 0,
                reading,
                lane: Lane::new(),
                buf,
                end: 0,
                pos: 0,
                eof: false,
                read: 0,
            }),
            Err(e) => Err((e, buf)),
        }
    }

    /// Bytes of whole blocks read and not hashed yet.
    fn ready(&self) -> usize {
        let whole = (self.end - self.pos) / BLOCK * BLOCK;
        match self.reading.append {
            // Stop at the old end, to check what was read up to it.
            Some(a) if !a.checked => {
                let at = a.size / BLOCK as u64 * BLOCK as u64;
                whole.min(at.saturating_sub(self.lane.compressed()) as usize)
            }
            _ => whole,
        }
    }

    /// For a file read as its previous content plus appended bytes: at the
    /// old end, checks that the bytes so far hash to the previous content
    /// (a clone of the lane, finished there, costs a block); if they do
    /// not, the file was not only appended to, and it is read again with
    /// all of it chunked. Returns whether it did either.
    fn check_append(&mut self, shared: &Shared<'a>) -> Result<bool> {
        let Some(a) = self.reading.append.filter(|a| !a.checked) else {
            return Ok(false);
        };
        let at = a.size / BLOCK as u64 * BLOCK as u64;
        if self.lane.compressed() < at {
            return Ok(false);
        }
        let tail = (a.size - at) as usize;
        let have = self.end - self.pos;
        if have < tail && !self.eof {
            // The next read brings the rest of the old content.
            return Ok(false);
        }
        let same = have >= tail
            && self
                .lane
                .clone()
                .finish(&self.buf[self.pos..self.pos + tail])
                == a.hash;
        if same {
            if let Some(a) = &mut self.reading.append {
                a.checked = true;
            }
        } else {
            self.read_again(shared)?;
        }
        Ok(true)
    }

    /// Starts reading the file again from its start, storing all of it.
    fn read_again(&mut self, shared: &Shared<'a>) -> Result<()> {
        self.reading = Reading::new(
            self.path,
            open_file(self.path)?,
            None,
            shared.store,
            Hints::default(),
        )?;
        self.lane = Lane::new();
        (self.end, self.pos, self.read, self.eof) = (0, 0, 0, false);
        Ok(())
    }

    /// Reads the next chunk (the whole file, when it is to be stored whole).
    /// Chunks are whole blocks but for the last, so a lane never carries a
    /// partial block from one chunk to the next.
    fn refill(&mut self, store: Option<&'a Objects>) -> Result<()> {
        debug_assert!(self.pos == self.end, "whole blocks are hashed first");
        let path = self.path;
        let r = &mut self.reading;
        let n = match &mut r.source {
            Source::Inline(file) => {
                // One byte more than the file had, to see it grow; a
                // prefix stops where it ends.
                let left = r.before.size.saturating_sub(self.read) as usize;
                let want = match (r.prefix, r.whole) {
                    (true, true) => left,
                    (true, false) => left.min(CHUNK),
                    (false, true) => r.before.size as usize + 1,
                    (false, false) => CHUNK,
                };
                if self.buf.len() < want {
                    self.buf.resize(want, 0);
                }
                let n = read_full(file, &mut self.buf[..want]).map_err(|e| read_failed(path, e))?;
                self.eof = r.whole || n < want || (r.prefix && n == left);
                n
            }
            Source::Ahead(ahead) => {
                let n = ahead
                    .next(&mut self.buf)
                    .map_err(|e| read_failed(path, e))?;
                self.eof = n < ahead.chunk;
                n
            }
        };
        self.pos = 0;
        self.end = n;
        self.read += n as u64;
        if let (Some(a), Some(s)) = (r.append, store) {
            // The first read shows whether the file still starts as it
            // did; if not (a database's header page changes with every
            // commit) it is chunked whole from here, without a second read.
            let (id, len) = a.first;
            let start = self.read - n as u64;
            if start == 0
                && (len as usize > n || crate::crypto::sha256(&self.buf[..len as usize]) != id)
            {
                r.append = None;
                r.writer = Some(s.writer()?);
            }
        }
        if let Some(w) = &mut r.writer {
            // An appended file's writer wants only the bytes from where it
            // resumes.
            let start = self.read - n as u64;
            let skip = r
                .append
                .map_or(0, |a| a.resume_at.saturating_sub(start))
                .min(n as u64) as usize;
            if skip < n {
                w.write(&self.buf[skip..n])?;
            }
        }
        Ok(())
    }

    /// Ends the file: the hash, the stat check, the object. `None` when the
    /// file changed under the reader and is being read again.
    fn finish(&mut self, shared: &Shared<'a>) -> Result<Option<Hashed>> {
        if self.reading.append.is_some_and(|a| !a.checked) {
            // It ended before its old end: not an append.
            self.read_again(shared)?;
            return Ok(None);
        }
        let tail = &self.buf[self.pos..self.end];
        let hash = std::mem::take(&mut self.lane).finish(tail);
        shared.progress.advance(tail.len() as u64);
        let before = self.reading.before;
        let after = self.reading.stat_after(self.path)?;
        let same = if self.reading.prefix {
            after.ino == before.ino && after.size >= before.size
        } else {
            before.same_version(&after)
        };
        if self.read == before.size && same {
            if self.reading.expected.is_some_and(|e| e != hash) {
                // Not the expected content after all: read it again, this
                // time into the store.
                self.read_again(shared)?;
                return Ok(None);
            }
            let stored = match (self.reading.writer.take(), shared.store) {
                (Some(w), _) => w.finish(&hash)?,
                (None, Some(s)) if self.reading.whole => {
                    s.store_bytes(&hash, &self.buf[..self.end])?
                }
                _ => Stored::default(),
            };
            return Ok(Some(Hashed {
                hash,
                size: self.read,
                new: stored.new,
                stored: stored.bytes,
                stat: before,
            }));
        }
        // The bytes moved under us; what was read may be a mix. Read again
        // (a prefix only its caller can take again).
        self.tries += 1;
        if self.tries >= TRIES || self.reading.prefix {
            return Err(changing(self.path));
        }
        self.read_again(shared)?;
        Ok(None)
    }

    fn into_buf(self) -> Vec<u8> {
        self.buf
    }
}

fn changing(path: &Path) -> Error {
    Error::FileChanging {
        path: path.to_owned(),
        tries: TRIES,
    }
}

fn open_file(path: &Path) -> Result<File> {
    use rustix::fs::OFlags;
    // Never follow a symlink put where the walk saw a file, and never wait
    // on a FIFO put there (it reads as empty or would block; either way the
    // stat after reading tells it from the file the walk saw). Regular
    // files ignore NONBLOCK.
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                changing(path)
            } else {
                super::walk::read_error(path, e)
            }
        })
}

/// A read error on `path`; one that would block means a FIFO or the like
/// stands where a file was, which is a file changing under the reader.
fn read_failed(path: &Path, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::WouldBlock {
        changing(path)
    } else {
        Error::Io {
            path: path.to_owned(),
            source: e,
        }
    }
}

/// Fills `buf` unless the file ends first; returns the bytes read.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// A thread that reads a file into a few buffers ahead of its consumer.
struct ReadAhead {
    /// A second descriptor of the same file, for the final stat.
    file: File,
    chunk: usize,
    full: Option<mpsc::Receiver<io::Result<Vec<u8>>>>,
    empty: Option<mpsc::Sender<Vec<u8>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ReadAhead {
    /// Starts the thread; gives the file back if it cannot (no second
    /// descriptor for the final stat).
    fn start(mut file: File) -> std::result::Result<Self, File> {
        let Ok(stat_fd) = file.try_clone() else {
            return Err(file);
        };
        let chunk = CHUNK * 2;
        let (full_tx, full) = mpsc::sync_channel::<io::Result<Vec<u8>>>(2);
        let (empty, empty_rx) = mpsc::channel::<Vec<u8>>();
        for _ in 0..3 {
            empty.send(vec![0; chunk]).expect("receiver alive");
        }
        let thread = std::thread::spawn(move || {
            while let Ok(mut buf) = empty_rx.recv() {
                buf.resize(chunk, 0);
                let result = read_full(&mut file, &mut buf).map(|n| {
                    buf.truncate(n);
                    buf
                });
                let last = !matches!(&result, Ok(b) if b.len() == chunk);
                if full_tx.send(result).is_err() || last {
                    return;
                }
            }
        });
        Ok(ReadAhead {
            file: stat_fd,
            chunk,
            full: Some(full),
            empty: Some(empty),
            thread: Some(thread),
        })
    }

    /// Swaps the next chunk into `buf`; returns its length.
    fn next(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        let full = self.full.as_ref().expect("open until dropped");
        let got = full
            .recv()
            .map_err(|_| io::Error::other("the read-ahead thread stopped"))??;
        let old = std::mem::replace(buf, got);
        if old.capacity() >= self.chunk {
            let _ = self.empty.as_ref().expect("open until dropped").send(old);
        }
        Ok(buf.len())
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        // Closing both channels stops the thread wherever it waits.
        self.full.take();
        self.empty.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;
    use sha2::{Digest, Sha256};
    use std::sync::atomic::AtomicU64;

    /// Deterministic bytes that differ from file to file.
    fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Sizes around block and chunk edges, a file for whole-file storing
    /// and one big enough to be read ahead.
    const SIZES: &[usize] = &[
        0,
        1,
        55,
        63,
        64,
        65,
        CHUNK - 1,
        CHUNK,
        CHUNK + 1,
        SMALL as usize + 3,
        3 * CHUNK + 17,
        READ_AHEAD as usize + 2 * CHUNK + 5,
    ];

    fn files(dir: &Path) -> (Vec<Job>, Vec<Vec<u8>>) {
        let mut jobs = Vec::new();
        let mut contents = Vec::new();
        for (i, &n) in SIZES.iter().enumerate() {
            let path = dir.join(format!("f{i}"));
            let b = bytes(i as u64, n);
            std::fs::write(&path, &b).unwrap();
            jobs.push(Job {
                path,
                size: n as u64,
                seen: None,
                expect: None,
                prefix: false,
                grew: None,
            });
            contents.push(b);
        }
        (jobs, contents)
    }

    struct Count(AtomicU64);
    impl Progress for Count {
        fn advance(&self, n: u64) {
            self.0.fetch_add(n, Ordering::Relaxed);
        }
    }

    #[test]
    fn every_size_hashes_as_sha256_does() {
        let dir = tempfile::tempdir().unwrap();
        let (jobs, contents) = files(dir.path());
        let count = Count(AtomicU64::new(0));
        let got = hash_files(&jobs, None, &count, &AtomicBool::new(false));
        for ((r, b), n) in got.into_iter().zip(&contents).zip(SIZES) {
            let h = r.unwrap();
            assert_eq!(h.hash, <[u8; 32]>::from(Sha256::digest(b)), "size {n}");
            assert_eq!(h.size, *n as u64);
            assert!(!h.new);
        }
        let total: usize = SIZES.iter().sum();
        assert_eq!(
            count.0.into_inner(),
            total as u64,
            "progress counts every byte once"
        );
    }

    #[test]
    fn stored_objects_hold_the_bytes_and_are_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let (jobs, contents) = files(dir.path());
        let store = Objects::local(dir.path().join("objects"));
        let never = AtomicBool::new(false);
        for (r, b) in hash_files(&jobs, Some(&store), &Silent, &never)
            .into_iter()
            .zip(&contents)
        {
            let h = r.unwrap();
            assert!(h.new);
            assert_eq!(store.read(&h.hash).unwrap(), *b);
        }
        // Again: every object is already there, none is new.
        for r in hash_files(&jobs, Some(&store), &Silent, &never) {
            assert!(!r.unwrap().new);
        }
    }

    #[test]
    fn a_fifo_put_where_the_walk_saw_a_file_is_refused_not_waited_on() {
        use rustix::fs::{FileType, Mode, CWD};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"was a file").unwrap();
        let seen = FileStat::of(&std::fs::metadata(&path).unwrap());
        std::fs::remove_file(&path).unwrap();
        rustix::fs::mknodat(CWD, &path, FileType::Fifo, Mode::RUSR | Mode::WUSR, 0).unwrap();
        let job = Job {
            path: path.clone(),
            size: seen.size,
            seen: Some(seen),
            expect: None,
            prefix: false,
            grew: None,
        };
        // On another thread, so that a hang fails the test instead of
        // stalling it (a FIFO with no writer blocks a plain open forever).
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let r = hash_files(&[job], None, &Silent, &AtomicBool::new(false)).remove(0);
            let _ = tx.send(r);
        });
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("hashing a FIFO returned");
        match got {
            Err(Error::FileChanging { path: p, .. }) => assert_eq!(p, path),
            other => panic!("expected FileChanging, got {other:?}"),
        }
    }

    #[test]
    fn a_stale_stat_from_the_walk_means_a_second_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"now").unwrap();
        let stale = FileStat {
            size: 3,
            ..FileStat::of(&std::fs::metadata(&path).unwrap())
        };
        let stale = FileStat {
            mtime: (stale.mtime.0 - 100, 0),
            ..stale
        };
        let job = Job {
            path: path.clone(),
            size: 3,
            seen: Some(stale),
            expect: None,
            prefix: false,
            grew: None,
        };
        let h = hash_files(&[job], None, &Silent, &AtomicBool::new(false))
            .remove(0)
            .unwrap();
        assert_eq!(h.hash, <[u8; 32]>::from(Sha256::digest(b"now")));
        assert_eq!(h.stat, FileStat::of(&std::fs::metadata(&path).unwrap()));
    }

    #[test]
    fn a_file_that_keeps_changing_is_refused() {
        // A writer appends all the time; each of the reads takes long
        // enough (megabytes) that the writer runs during it, whatever the
        // scheduler does. Rounds until one is refused, in case a loaded
        // machine leaves the writer unscheduled for a whole read.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("growing");
        std::fs::write(&path, bytes(1, 6 << 20)).unwrap();
        let job = Job {
            path: path.clone(),
            size: 0,
            seen: None,
            expect: None,
            prefix: false,
            grew: None,
        };
        let refused = (0..50).any(|_| {
            let (done, writing) = (AtomicBool::new(false), AtomicBool::new(false));
            std::thread::scope(|s| {
                s.spawn(|| {
                    use std::io::Write;
                    let mut f = std::fs::OpenOptions::new()
                        .append(true)
                        .open(&path)
                        .unwrap();
                    while !done.load(Ordering::Relaxed) {
                        f.write_all(b"more").unwrap();
                        writing.store(true, Ordering::Relaxed);
                    }
                });
                while !writing.load(Ordering::Relaxed) {
                    std::thread::yield_now();
                }
                let got = hash_files(
                    std::slice::from_ref(&job),
                    None,
                    &Silent,
                    &AtomicBool::new(false),
                );
                done.store(true, Ordering::Relaxed);
                match &got[0] {
                    Err(Error::FileChanging { path: p, tries }) => {
                        assert_eq!(p, &path);
                        assert_eq!(*tries, TRIES);
                        true
                    }
                    Ok(_) => false,
                    Err(other) => panic!("expected FileChanging, got {other:?}"),
                }
            })
        });
        assert!(refused, "a file growing under every read was hashed");
    }

    #[test]
    fn a_prefix_is_what_was_there_however_the_file_grows() {
        // A WAL under the scan's locks: only appended to. Small enough to
        // be stored whole, and big enough to be read in chunks.
        let dir = tempfile::tempdir().unwrap();
        let store = Objects::local(dir.path().join("objects"));
        for len in [100, 3 * CHUNK + 17] {
            let path = dir.path().join(format!("wal{len}"));
            let b = bytes(7, len);
            std::fs::write(&path, &b).unwrap();
            let seen = FileStat::of(&std::fs::metadata(&path).unwrap());
            std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .and_then(|mut f| std::io::Write::write_all(&mut f, b"frames committed later"))
                .unwrap();
            let job = Job {
                path: path.clone(),
                size: seen.size,
                seen: Some(seen),
                expect: None,
                prefix: true,
                grew: None,
            };
            let h = hash_files(
                std::slice::from_ref(&job),
                Some(&store),
                &Silent,
                &AtomicBool::new(false),
            )
            .remove(0)
            .unwrap();
            assert_eq!(h.hash, <[u8; 32]>::from(Sha256::digest(&b)), "{len}");
            assert_eq!((h.size, h.stat), (len as u64, seen));
            assert_eq!(store.read(&h.hash).unwrap(), b);
            // Shorter than it was, or another file: not what was there.
            std::fs::write(&path, &b[..len / 2]).unwrap();
            let got = hash_files(&[job], None, &Silent, &AtomicBool::new(false)).remove(0);
            assert!(matches!(got, Err(Error::FileChanging { .. })), "{got:?}");
        }
    }

    #[test]
    fn errors_name_the_file_and_stop_leaves_the_rest_unread() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Job {
            path: dir.path().join("gone"),
            size: 1,
            seen: None,
            expect: None,
            prefix: false,
            grew: None,
        };
        match &hash_files(
            std::slice::from_ref(&missing),
            None,
            &Silent,
            &AtomicBool::new(false),
        )[0]
        {
            Err(Error::Io { path, source }) => {
                assert_eq!(path, &missing.path);
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }
        let (jobs, _) = files(dir.path());
        let got = hash_files(&jobs, None, &Silent, &AtomicBool::new(true));
        assert!(got.iter().all(|r| matches!(r, Err(Error::Stopped))));
    }
}
