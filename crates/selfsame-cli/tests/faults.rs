//! Fault injection (issue 13): `seal` (at a stop and as a heartbeat),
//! `restore`, `migrate`, `prune` and `quarantine prune` (issue 15) run
//! under `strace`, which fails one system call
//! with `ENOSPC` or `EIO`, as a full or failing disk would. After each
//! fault, with the fault gone:
//!
//! * the command exited 1 with a message naming a file the failed call was
//!   on; or 0, only when every failed call was one it may do without
//!   ([`may_fail_quietly`]: removing a temp file of its own, writing the
//!   pack index cache), and then it
//!   did all its work; never a panic or another code (when the failed call
//!   is the write of the message itself, only the exit code can tell);
//! * every checkpoint that existed before is byte for byte the same;
//! * `selfsame verify --read-data` finds no problem;
//! * the next `wake` names the right verdict: `verified` when the new
//!   checkpoint was written, else `drifted` (a seal while the agent was
//!   awake) or `tampered` (a restore that never started, of a soul edited
//!   at rest); an interrupted restore or migration is finished (or, for a
//!   migration that had not swapped, undone) by that wake;
//! * nothing is lost: the soul is the one before or the one after the
//!   command, and a restored-over soul is in `quarantine/`;
//! * no temp file is left in the vault once that wake (a writer) has run.
//!
//! Which calls fail. `-e inject=SYSCALL:error=E:when=N` fails the N-th call
//! of SYSCALL in each traced thread: strace counts per syscall and per
//! thread, and selfsame hashes, stores and stages on several. Each command
//! is first run once without a fault under `strace -f -ff`, which logs
//! every thread's calls to a file of its own. N is a candidate for a
//! syscall when the main thread's N-th call is on a file or directory of
//! the test (the vault or the soul) and so is the N-th call of every other
//! thread that makes N (not the dynamic loader's libraries, /proc or
//! stdout). The main thread's calls are the same in every run (which worker
//! makes which call is not), so each case fails at least that call. Of the
//! candidates, the first and the last are always tried, and [`BETWEEN`]
//! more drawn from those between by a xorshift generator seeded with
//! [`SEED`] and the command, syscall and error, so every run tries the same
//! cases. Every syscall of [`SYSCALLS`] that the clean run makes is tried,
//! with both errors: the variants (`openat` and `open`, `rename` and
//! `renameat2`, `unlink` and `rmdir`, …) count separately. `-b execve`
//! lets go of a migration's process when it starts, so the faults are
//! selfsame's own, not the migration script's. Each case starts from a
//! fresh copy of its command's set-up (`cp -a`), about 230 cases in all.
//!
//! strace must be installed (`.ci/run` installs it): without it the test
//! fails and says so, rather than passing without having run.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use common::*;

/// The calls that write the vault and the soul, with every variant a libc
/// may use for them (not every architecture has each: the clean run traces
/// them as `?name`, and only those it saw are failed).
const SYSCALLS: &[&str] = &[
    "write",
    "pwrite64",
    "writev",
    "pwritev",
    "pwritev2",
    "fsync",
    "fdatasync",
    "syncfs",
    "link",
    "linkat",
    "rename",
    "renameat",
    "renameat2",
    "open",
    "openat",
    "openat2",
    "creat",
    "mkdir",
    "mkdirat",
    "unlink",
    "unlinkat",
    "rmdir",
];

/// A full disk and a failing one.
const ERRORS: &[&str] = &["ENOSPC", "EIO"];

/// How many N values are tried between the first and the last candidate,
/// per command, syscall and error.
const BETWEEN: usize = 2;

/// Seeds the choice of those N values.
const SEED: u64 = 0x5e1f_5a4e_0013;

/// The migration the `migrate` cases run: adds a file.
const MIGRATION: &str =
    "#!/bin/sh\nset -e\nprintf 'migrated to v2\\n' > \"$SELFSAME_SOUL/notes/v2.md\"\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `selfsame seal` when the agent stops.
    Seal,
    /// `selfsame seal --reason heartbeat` while the agent runs, which moves
    /// the awake marker along.
    Heartbeat,
    Restore,
    Migrate,
    /// `selfsame prune` after a forget released all but the newest
    /// snapshots.
    Prune,
    /// `selfsame quarantine prune` of the soul a restore moved aside.
    QuarantinePrune,
}

impl Op {
    fn args(self) -> &'static [&'static str] {
        match self {
            Op::Seal => &["seal"],
            Op::Heartbeat => &["seal", "--reason", "heartbeat"],
            Op::Restore => &["restore", "head"],
            Op::Migrate => &["migrate"],
            Op::Prune => &["prune"],
            Op::QuarantinePrune => &["quarantine", "prune", "--older-than", "0s"],
        }
    }
}

/// What every case of one command starts from, set up once.
struct Start {
    op: Op,
    env: Env,
    /// The checkpoint files before the command, by seq.
    checkpoints: BTreeMap<u64, Vec<u8>>,
    /// The soul before the command.
    before: BTreeMap<String, Node>,
    /// The soul after a run without a fault.
    after: BTreeMap<String, Node>,
    /// The main thread's calls in the run without a fault, then every
    /// other thread's.
    clean: Vec<Vec<String>>,
    /// The base dir of the env the clean run had.
    clean_base: PathBuf,
}

impl Start {
    fn new(op: Op) -> Start {
        let mut sealed = None;
        let env = match op {
            // The agent is awake and has written since checkpoint 1; it
            // stops, and `seal` records where it stopped (or it goes on,
            // and a heartbeat does).
            Op::Seal | Op::Heartbeat => {
                let env = Env::new();
                env.wake(&[]).expect_code(0);
                append(&env.soul().join("memory.jsonl"), b"{\"said\":\"bye\"}\n");
                write(&env.soul(), "notes/new.md", b"written while awake\n", 0o644);
                env
            }
            // Edited at rest; the owner puts the sealed soul back.
            Op::Restore => {
                let env = Env::at_rest();
                sealed = Some(tree(&env.soul()));
                write(
                    &env.soul(),
                    "memory.jsonl",
                    b"{\"said\":\"not me\"}\n",
                    0o644,
                );
                write(&env.soul(), "intruder.txt", b"planted\n", 0o644);
                env
            }
            Op::Migrate => {
                let env = Env::at_rest();
                fs::create_dir(env.base().join("migrations")).unwrap();
                write(
                    &env.base().join("migrations"),
                    "v2-add-note",
                    MIGRATION.as_bytes(),
                    0o755,
                );
                env
            }
            // Seals of a soul that changes, then all but the newest
            // forgotten: prune has objects to remove.
            Op::Prune => {
                let env = Env::at_rest();
                for i in 0..4 {
                    write(
                        &env.soul(),
                        &format!("notes/day-{i}.md"),
                        format!("day {i}\n").as_bytes(),
                        0o644,
                    );
                    env.run(&["seal", "--reason", "manual"]).expect_code(0);
                }
                env.run(&["forget", "--keep-last", "1"]).expect_code(0);
                // The checkpoint that puts the forget in effect.
                env.run(&["seal", "--reason", "manual"]).expect_code(0);
                env
            }
            // A soul edited at rest and restored over: one entry in
            // quarantine, of a file and a directory.
            Op::QuarantinePrune => {
                let env = Env::at_rest();
                fs::create_dir_all(env.soul().join("notes/planted")).unwrap();
                write(&env.soul(), "notes/planted/a.md", b"planted\n", 0o644);
                env.run(&["restore", "head"]).expect_code(0);
                assert_eq!(quarantine_drops(&env), 0);
                assert!(holds(&env.vault().join("quarantine"), b"planted\n"));
                env
            }
        };
        let checkpoints = checkpoints(&env);
        let before = tree(&env.soul());
        let clean_env = env.copy();
        // execve too: the thread that starts the binary is the main one.
        let trace = SYSCALLS
            .iter()
            .map(|s| format!("?{s}"))
            .chain(["execve".to_owned()])
            .collect::<Vec<_>>()
            .join(",");
        let (out, mut clean) = traced(&clean_env, op.args(), &trace, None);
        out.expect_code(0);
        let bin = format!("execve(\"{}\"", env!("CARGO_BIN_EXE_selfsame"));
        let main = clean
            .iter()
            .position(|t| t.first().is_some_and(|l| l.starts_with(&bin)))
            .expect("the main thread's log starts with its execve");
        let main = clean.remove(main);
        clean.insert(0, main);
        let after = tree(&clean_env.soul());
        match op {
            Op::Seal | Op::Heartbeat => assert_eq!(after, before, "a seal never writes the soul"),
            Op::Restore => assert_eq!(Some(&after), sealed.as_ref(), "restore puts the head back"),
            Op::Migrate => assert!(after.contains_key("notes/v2.md"), "the migration ran"),
            Op::Prune | Op::QuarantinePrune => {
                assert_eq!(after, before, "a prune never writes the soul")
            }
        }
        Start {
            op,
            env,
            checkpoints,
            before,
            after,
            clean,
            clean_base: clean_env.base().to_owned(),
        }
    }

    /// The newest checkpoint before the command.
    fn head(&self) -> u64 {
        *self.checkpoints.keys().last().expect("a checkpoint")
    }
}

fn append(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

/// Every checkpoint file's bytes, by seq.
fn checkpoints(env: &Env) -> BTreeMap<u64, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in fs::read_dir(env.vault().join("checkpoints")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        if let Some(seq) = name.strip_suffix(".ckpt").and_then(|n| n.parse().ok()) {
            out.insert(seq, fs::read(e.path()).unwrap());
        }
    }
    out
}

/// Fails the test, with what to do, unless strace can trace here.
fn require_strace() {
    match Command::new("strace")
        .args(["-qq", "-o", "/dev/null", "true"])
        .stderr(Stdio::piped())
        .output()
    {
        Err(e) => panic!(
            "this test needs strace, which cannot be run ({e}): install it (`apt-get install -y strace`; .ci/run does)"
        ),
        Ok(o) if !o.status.success() => panic!(
            "strace cannot trace here ({}): it needs ptrace (in a container, CAP_SYS_PTRACE)",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Ok(_) => {}
    }
}

/// Runs `selfsame ARGS` in `env` under `strace -f`, logging each thread's
/// calls of `trace` to a file of its own, with `inject` (an `-e inject=`
/// spec) if given. Returns the output and each thread's logged calls.
fn traced(env: &Env, args: &[&str], trace: &str, inject: Option<&str>) -> (Out, Vec<Vec<String>>) {
    let logs = tempfile::tempdir().expect("log dir");
    let inner = env.command(TOKEN, args);
    let mut c = Command::new("strace");
    // -qq: no attach and exit notes; -y: the path of every descriptor.
    c.args(["-f", "-b", "execve", "-qq", "-y", "-ff", "-o"])
        .arg(logs.path().join("t"))
        .arg("-e")
        .arg(format!("trace={trace}"));
    if let Some(spec) = inject {
        c.arg("-e").arg(format!("inject={spec}"));
    }
    c.arg("--").arg(inner.get_program()).args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.current_dir(env.base())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = env.finish(c.spawn().expect("run strace"));
    let mut threads = Vec::new();
    for e in fs::read_dir(logs.path()).unwrap() {
        let text = fs::read_to_string(e.unwrap().path()).unwrap();
        let calls: Vec<String> = text
            .lines()
            .filter(|l| SYSCALLS.contains(&name(l)) || name(l) == "execve")
            .map(str::to_owned)
            .collect();
        threads.push(calls);
    }
    (out, threads)
}

/// The syscall an strace line is about.
fn name(line: &str) -> &str {
    line.split_once('(').map_or("", |(n, _)| n)
}

/// Whether an strace line's call is on a path under `base` (the working
/// directory, which `-y` shows for every `AT_FDCWD`, does not count).
fn on_test_files(line: &str, base: &Path) -> bool {
    let base = base.to_string_lossy();
    let mut rest = line;
    let mut cleaned = String::new();
    while let Some(i) = rest.find("AT_FDCWD<") {
        cleaned.push_str(&rest[..i]);
        rest = &rest[i..];
        rest = rest.find('>').map_or("", |j| &rest[j + 1..]);
    }
    cleaned.push_str(rest);
    cleaned.contains(&*base)
}

/// The N values at which `syscall` fails, in the clean run, in the main
/// thread on a test file and in no thread on anything else. (Which worker
/// thread makes which call varies from run to run; the main thread's
/// calls do not, so each of these N fails at least one call.)
fn candidates(start: &Start, syscall: &str) -> Vec<u32> {
    let calls: Vec<Vec<&String>> = start
        .clean
        .iter()
        .map(|t| t.iter().filter(|l| name(l) == syscall).collect())
        .collect();
    (1..=calls[0].len())
        .filter(|&n| {
            calls.iter().all(|t| {
                t.get(n - 1)
                    .is_none_or(|l| on_test_files(l, &start.clean_base))
            })
        })
        .map(|n| n as u32)
        .collect()
}

/// The first and last candidate, and [`BETWEEN`] drawn from the others.
fn sample(candidates: &[u32], seed: u64) -> Vec<u32> {
    if candidates.len() <= 2 + BETWEEN {
        return candidates.to_vec();
    }
    let mut rest = candidates[1..candidates.len() - 1].to_vec();
    let mut out = vec![candidates[0], candidates[candidates.len() - 1]];
    let mut x = seed | 1;
    for _ in 0..BETWEEN {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(rest.remove((x % rest.len() as u64) as usize));
    }
    out.sort_unstable();
    out
}

/// A seed for one command, syscall and error (FNV-1a over their names).
fn seed(op: Op, syscall: &str, errno: &str) -> u64 {
    format!("{op:?}/{syscall}/{errno}")
        .bytes()
        .fold(SEED ^ 0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        })
}

/// The paths an strace line names: each descriptor's (`-y`: `3</path>`)
/// and each quoted string, a relative one joined to the directory
/// descriptor before it (`openat(4</soul>, "notes", …)`).
fn named_paths(line: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dir: Option<PathBuf> = None;
    let mut chars = line.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '<' => {
                let end = line[i..].find('>').map_or(line.len(), |j| i + j);
                let p = &line[i + 1..end];
                while chars.next().is_some_and(|(k, _)| k < end) {}
                if p.starts_with('/') {
                    let p = PathBuf::from(std::ffi::OsString::from_vec(unescape(p)));
                    out.push(p.clone());
                    dir = Some(p);
                }
            }
            '"' => {
                let mut raw = String::new();
                let mut escaped = false;
                for (_, c) in chars.by_ref() {
                    if escaped {
                        raw.push('\\');
                        raw.push(c);
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        break;
                    } else {
                        raw.push(c);
                    }
                }
                let p = PathBuf::from(std::ffi::OsString::from_vec(unescape(&raw)));
                if p.is_absolute() {
                    out.push(p);
                } else if let Some(d) = dir.take() {
                    out.push(d.join(p));
                }
            }
            _ => {}
        }
    }
    out
}

/// Decodes strace's escapes (`\303`, `\x0a`, `\n`, `\\`, `\"`).
fn unescape(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 == b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        i += 1;
        match b[i] {
            b'x' => {
                let hex = std::str::from_utf8(&b[i + 1..(i + 3).min(b.len())]).unwrap_or("");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'0'..=b'7' => {
                let end = (i..(i + 3).min(b.len()))
                    .take_while(|&k| (b'0'..=b'7').contains(&b[k]))
                    .last()
                    .map_or(i + 1, |k| k + 1);
                let oct = std::str::from_utf8(&b[i..end]).unwrap();
                out.push(u8::from_str_radix(oct, 8).unwrap_or(b'?'));
                i = end;
            }
            c => {
                out.push(match c {
                    b'n' => b'\n',
                    b't' => b'\t',
                    b'r' => b'\r',
                    b'v' => 0x0b,
                    b'f' => 0x0c,
                    other => other,
                });
                i += 1;
            }
        }
    }
    out
}

/// Calls whose failure a command may shrug off: removing a temp file of
/// its own once its content is linked under its name, noting its pid in
/// the lock file (only the busy message of another process reads it), and
/// writing the pack index cache or the head hint (only caches: the next
/// command reads the packs' indexes instead, and writes them).
fn may_fail_quietly(line: &str) -> bool {
    let cache = ["packs", "head"].iter().any(|c| {
        line.contains(&format!("/.selfsame/cache/{c}"))
            || (line.contains("/.selfsame/cache/.tmp-") && line.contains(&format!("-{c}")))
    });
    if cache {
        return true;
    }
    match name(line) {
        "unlink" | "unlinkat" => line.contains("/.tmp-"),
        "write" => line.starts_with("write(") && line.contains("/.selfsame/run/lock>"),
        _ => false,
    }
}

/// How many `quarantine-drop` events the history holds.
fn quarantine_drops(env: &Env) -> usize {
    env.history()
        .iter()
        .filter(|e| e["event"] == "quarantine-drop")
        .count()
}

/// Whether the journal of an interrupted restore or migration is there.
fn journal_pending(env: &Env) -> bool {
    env.vault().join("run/restore.journal").exists()
}

/// The `format` of the newest checkpoint.
fn newest_format(env: &Env) -> String {
    let newest = *checkpoints(env).keys().last().unwrap();
    env.checkpoint_field(newest, "format")
}

/// Whether some file under `dir` holds exactly `bytes`.
fn holds(dir: &Path, bytes: &[u8]) -> bool {
    tree(dir)
        .values()
        .any(|n| matches!(n, Node::File { bytes: b, .. } if b == bytes))
}

/// Temp files left in the vault (`.tmp-*` names, `objects/tmp/*`).
fn leftovers(env: &Env) -> Vec<String> {
    tree(&env.vault())
        .into_iter()
        .filter(|(p, n)| {
            matches!(n, Node::File { .. })
                && (p.rsplit('/').next().is_some_and(|f| f.starts_with(".tmp-"))
                    || p.starts_with("objects/tmp/"))
        })
        .map(|(p, _)| p)
        .collect()
}

/// One fault: `syscall` fails with `errno` at its `n`-th call in each
/// thread. Checks everything the module doc lists; returns a line for the
/// summary.
fn case(start: &Start, syscall: &str, errno: &str, n: u32) -> String {
    let op = start.op;
    let env = start.env.copy();
    let spec = format!("{syscall}:error={errno}:when={n}");
    let (out, threads) = traced(&env, op.args(), syscall, Some(&spec));
    let injected: Vec<&String> = threads
        .iter()
        .flatten()
        .filter(|l| l.contains("(INJECTED)"))
        .collect();
    let what = format!(
        "{op:?} with {syscall} failing {errno} at call {n}: exit {}\nstderr: {}\ninjected: {injected:#?}",
        out.code, out.stderr
    );
    assert!(!injected.is_empty(), "no call failed: {what}");

    // The command's own verdict on the fault.
    assert!(!out.stderr.contains("panicked"), "a panic: {what}");
    match out.code {
        0 => assert!(
            injected.iter().all(|l| may_fail_quietly(l)),
            "exit 0 though a call it needs failed: {what}"
        ),
        // The message itself could not be written.
        1 if injected.iter().any(|l| l.starts_with("write(2<")) => {}
        1 => {
            let named = injected
                .iter()
                .flat_map(|l| named_paths(l))
                .filter(|p| p.starts_with(env.base()) && p != env.base())
                .any(|p| out.stderr.contains(&*p.to_string_lossy()));
            assert!(
                named,
                "the message names no file the failed call was on: {what}"
            );
        }
        _ => panic!("exit code other than 0 or 1: {what}"),
    }
    let intact = |when: &str| {
        let now = checkpoints(&env);
        for (seq, bytes) in &start.checkpoints {
            assert_eq!(now.get(seq), Some(bytes), "checkpoint {seq} {when}: {what}");
        }
    };
    intact("after the fault");
    let newest = *checkpoints(&env).keys().last().unwrap();
    let wrote = newest > start.head();
    match op {
        Op::Seal | Op::Heartbeat => {
            assert_eq!(tree(&env.soul()), start.before, "the soul: {what}");
            if out.code == 0 {
                assert!(wrote, "exit 0 without a new checkpoint: {what}");
            }
        }
        Op::Prune => {
            assert_eq!(tree(&env.soul()), start.before, "the soul: {what}");
            assert!(!wrote, "a prune wrote a checkpoint: {what}");
        }
        // Nothing goes off the record: an entry that is not whole any
        // more is named by a quarantine-drop event.
        Op::QuarantinePrune => {
            assert_eq!(tree(&env.soul()), start.before, "the soul: {what}");
            assert!(!wrote, "a prune wrote a checkpoint: {what}");
            let q = env.vault().join("quarantine");
            if tree(&q) != tree(&start.env.vault().join("quarantine")) {
                assert_eq!(quarantine_drops(&env), 1, "removed off the record: {what}");
            }
            if out.code == 0 {
                assert!(tree(&q).is_empty(), "exit 0, entry left: {what}");
            }
        }
        Op::Restore | Op::Migrate if out.code == 0 => {
            assert!(wrote, "exit 0 without a new checkpoint: {what}");
            assert_eq!(tree(&env.soul()), start.after, "the soul: {what}");
            assert!(!journal_pending(&env), "exit 0 with a journal: {what}");
        }
        _ => {}
    }
    env.verify_clean();

    // The next wake, without the fault.
    let pending = journal_pending(&env);
    let v = env.wake(&[]);
    let verdict = v.json()["verdict"].as_str().unwrap_or_default().to_owned();
    let woke = format!("{what}\nwake: {}", v.stdout);
    match op {
        // Never `tampered`: the agent was awake.
        Op::Seal | Op::Heartbeat => {
            let expected = if wrote { "verified" } else { "drifted" };
            assert_eq!(verdict, expected, "{woke}");
            v.expect_code(0);
            assert_eq!(tree(&env.soul()), start.before, "the soul: {woke}");
        }
        Op::Restore => {
            if out.code == 0 || pending || wrote {
                // Done, or finished by this wake.
                assert_eq!(verdict, "verified", "{woke}");
                v.expect_code(0);
            } else {
                // Stopped before the journal: the soul was never touched.
                assert_eq!(tree(&env.soul()), start.before, "the soul: {woke}");
                assert_eq!(verdict, "tampered", "{woke}");
                v.expect_code(3);
                env.run(&["restore", "head"]).expect_code(0);
            }
            assert_eq!(tree(&env.soul()), start.after, "the soul: {woke}");
            // The edits restored over are kept.
            let q = env.vault().join("quarantine");
            assert!(holds(&q, b"{\"said\":\"not me\"}\n"), "{woke}");
            assert!(holds(&q, b"planted\n"), "{woke}");
        }
        // At rest on the same head: nothing a kept checkpoint needs is
        // gone, whatever the prune removed.
        Op::Prune => {
            assert_eq!(verdict, "verified", "{woke}");
            v.expect_code(0);
            assert_eq!(tree(&env.soul()), start.before, "the soul: {woke}");
            env.run(&["prune"]).expect_code(0);
        }
        // What the fault stopped, the owner's next run finishes.
        Op::QuarantinePrune => {
            assert_eq!(verdict, "verified", "{woke}");
            v.expect_code(0);
            env.run(op.args()).expect_code(0);
            assert!(tree(&env.vault().join("quarantine")).is_empty(), "{woke}");
            assert!(quarantine_drops(&env) >= 1, "{woke}");
        }
        Op::Migrate => {
            assert_eq!(verdict, "verified", "{woke}");
            v.expect_code(0);
            let soul = tree(&env.soul());
            if soul == start.before {
                assert_eq!(newest_format(&env), "v1", "{woke}");
                env.run(&["migrate"]).expect_code(0);
                assert_eq!(tree(&env.soul()), start.after, "{woke}");
            } else {
                assert_eq!(soul, start.after, "the soul: {woke}");
            }
            assert_eq!(newest_format(&env), "v2", "{woke}");
        }
    }
    assert!(!journal_pending(&env), "a journal is left: {woke}");
    env.verify_clean();
    intact("after the next wake");
    // The next writer removes what a dead writer left behind.
    let left = leftovers(&env);
    assert!(
        left.is_empty(),
        "temp files left after the next wake: {left:?}\n{woke}"
    );
    format!(
        "{syscall:>9} {errno:<6} N={n:<3} exit {} {}{}",
        out.code,
        out.stderr.lines().next().unwrap_or(""),
        if left.is_empty() {
            String::new()
        } else {
            format!(" [left: {}]", left.join(" "))
        }
    )
}

/// Every case of one command; prints a summary with the time it took.
fn inject_all(op: Op) {
    require_strace();
    let began = Instant::now();
    let start = Start::new(op);
    let mut lines = Vec::new();
    for &syscall in SYSCALLS {
        let candidates = candidates(&start, syscall);
        for &errno in ERRORS {
            for n in sample(&candidates, seed(op, syscall, errno)) {
                lines.push(case(&start, syscall, errno, n));
            }
        }
    }
    assert!(
        lines.len() >= 20,
        "too few faults tried for {op:?}: {lines:#?}"
    );
    eprintln!(
        "{op:?}: {} faults in {:.1?}\n{}",
        lines.len(),
        began.elapsed(),
        lines.join("\n")
    );
}

#[test]
fn seal_survives_enospc_and_eio_at_every_write_call() {
    inject_all(Op::Seal);
}

#[test]
fn heartbeat_survives_enospc_and_eio_at_every_write_call() {
    inject_all(Op::Heartbeat);
}

#[test]
fn restore_survives_enospc_and_eio_at_every_write_call() {
    inject_all(Op::Restore);
}

#[test]
fn migrate_survives_enospc_and_eio_at_every_write_call() {
    inject_all(Op::Migrate);
}

#[test]
fn prune_survives_enospc_and_eio_at_every_write_call() {
    inject_all(Op::Prune);
}

#[test]
fn quarantine_prune_survives_enospc_and_eio_at_every_write_call() {
    inject_all(Op::QuarantinePrune);
}

/// The fault can hit the error message itself (stderr on a full disk):
/// the exit code must still say what happened, not a panic's 101.
#[test]
fn an_error_written_to_a_full_stderr_keeps_its_exit_code() {
    let env = Env::new();
    let full = fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let child = env
        .command(TOKEN, &["restore", "99"])
        .stdout(Stdio::piped())
        .stderr(full)
        .spawn()
        .expect("run selfsame");
    let out = env.finish(child);
    assert_eq!(out.code, 2, "no checkpoint 99 is a usage error: {out:?}");
}
