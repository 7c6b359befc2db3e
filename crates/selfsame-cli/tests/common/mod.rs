//! Shared by the integration tests: a temp directory with a soul that has
//! every kind of entry, the real `selfsame` binary run with a fixed token,
//! whole-tree snapshots, and the token-leak scan (issue 3, must hold 5)
//! that runs at the end of every test.

#![allow(dead_code)]

pub mod moto;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

/// The bot token every test vault belongs to. Its secret part (after `:`)
/// is made only of characters that URL and JSON encoding keep as they are,
/// so the leak scan also finds it inside a checkpoint or a JSON string.
pub const TOKEN: &str = "4815162342:AAF-leakcanary_Zq9xW7vT3sR1pN5mK8jH2gD4";
/// Another bot's token.
pub const OTHER_BOT: &str = "1000001:AAE-otherbot_canary_Lk4Jh6Gf8Ds0Aq2Ws";
/// The same bot after BotFather issued a new token (same id, new secret).
pub const ROTATED: &str = "4815162342:AAG-rotated_canary_Pm3Nb5Vc7Xz9Lk1Jh";

/// A Discord bot's token: bot 1087654321098765432 (the first segment is
/// the base64 of the id, without padding).
pub const DISCORD: &str = "MTA4NzY1NDMyMTA5ODc2NTQzMg.GxYz12.dscrd-leakcanary_Hq7Wm2Np4Rt6Vy8Zb0Cd";
/// The Discord bot id of [`DISCORD`].
pub const DISCORD_ID: u64 = 1087654321098765432;
/// Another Discord bot's token (bot 1090000000000000001, padded base64).
pub const DISCORD_OTHER: &str =
    "MTA5MDAwMDAwMDAwMDAwMDAwMQ==.HqR5t7.dscrd-otherbot_canary_Vb3Nm5Kl7Jh9";

/// Every secret a test may hand to the binary; none may ever show up.
pub const SECRETS: &[&str] = &[TOKEN, OTHER_BOT, ROTATED, DISCORD, DISCORD_OTHER];

/// The identity seed every vault made by [`Env::command`] gets (through the
/// test hook `SELFSAME_IDENTITY_SEED`): the leak scan looks for it, raw and
/// encoded, as it looks for the tokens.
pub const SEED_HEX: &str = "67401e74e8d83a9a09861c3274fc9c34764c32d23b214e4a902ba50c8f520337";
/// Another seed, for a second vault with an identity of its own.
pub const OTHER_SEED_HEX: &str = "445b93f385246903f07576001d5299912377c2d83608da4749d9b447d4ee4e7f";

/// Every form a seed could leak in: its bytes, hex (either case), base64
/// and base64url (with and without padding).
pub fn seed_needles(hex_seed: &str) -> Vec<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use base64::Engine as _;
    let raw = hex::decode(hex_seed).expect("seed hex");
    let mut out = vec![
        raw.clone(),
        hex_seed.to_lowercase().into_bytes(),
        hex_seed.to_uppercase().into_bytes(),
    ];
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        out.push(engine.encode(&raw).into_bytes());
    }
    out
}

/// The parts of a secret that must never show up either: a Telegram
/// token's secret after `:`; a Discord token's part after its id segment,
/// and its last segment.
pub fn secret_parts(token: &str) -> Vec<&str> {
    match token.split_once(':') {
        Some((_, secret)) => vec![secret],
        None => vec![
            token.split_once('.').expect("a Discord token has dots").1,
            token.rsplit_once('.').expect("a Discord token has dots").1,
        ],
    }
}

/// The uid and gid of `nobody`, the unprivileged user of
/// [`Env::run_as_nobody`].
pub const NOBODY: u32 = 65534;

/// A file's name that is not ASCII.
pub const NON_ASCII: &str = "naïve-日記.txt";

/// What one run of the binary produced.
#[derive(Debug, Clone)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// stdout as one JSON object.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON object ({e}):\nstdout: {}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    /// Panics with both streams unless the exit code is `code`.
    pub fn expect_code(self, code: i32) -> Out {
        assert_eq!(
            self.code, code,
            "exit code\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

/// A temp directory holding `soul/` and, once initialised, `.selfsame/`.
/// Every output of the binary is kept; when the test ends without a panic,
/// [`Env::assert_no_secret_anywhere`] scans it all (must hold 5).
pub struct Env {
    pub dir: tempfile::TempDir,
    outputs: RefCell<Vec<Out>>,
    /// The copy of the binary that [`Env::run_as_nobody`] runs.
    nobody_bin: RefCell<Option<tempfile::TempDir>>,
}

impl Env {
    /// A temp dir with a rich soul, not initialised.
    pub fn bare() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("selfsame-test-")
            .tempdir()
            .expect("temp dir");
        let env = Env {
            dir,
            outputs: RefCell::new(Vec::new()),
            nobody_bin: RefCell::new(None),
        };
        build_soul(&env.soul());
        env
    }

    /// A rich soul with a vault: `selfsame init soul` (checkpoint 1).
    pub fn new() -> Env {
        let env = Env::bare();
        env.run(&["init", "soul", "--shell-version", "1.0.0"])
            .expect_code(0);
        env
    }

    /// Initialised, woken (the agent runs) and sealed at rest: checkpoint 2,
    /// no awake marker. The starting point of every tampering test.
    pub fn at_rest() -> Env {
        let env = Env::new();
        env.wake(&[]).expect_code(0);
        env.run(&["seal"]).expect_code(0);
        assert!(!env.marker().exists(), "a rest seal leaves no awake marker");
        env
    }

    /// A copy of this temp dir (vault, soul and all) in a new one, made
    /// with `cp -a`: the same start for many cases, set up once.
    pub fn copy(&self) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("selfsame-test-")
            .tempdir()
            .expect("temp dir");
        let status = Command::new("cp")
            .arg("-a")
            .arg(self.base().join("."))
            .arg(dir.path())
            .status()
            .expect("run cp");
        assert!(status.success(), "cp -a {}", self.base().display());
        Env {
            dir,
            outputs: RefCell::new(Vec::new()),
            nobody_bin: RefCell::new(None),
        }
    }

    pub fn base(&self) -> &Path {
        self.dir.path()
    }

    pub fn soul(&self) -> PathBuf {
        self.base().join("soul")
    }

    pub fn vault(&self) -> PathBuf {
        self.base().join(".selfsame")
    }

    pub fn marker(&self) -> PathBuf {
        self.vault().join("run/awake")
    }

    pub fn checkpoint(&self, seq: u64) -> PathBuf {
        self.vault().join(format!("checkpoints/{seq:08}.ckpt"))
    }

    pub fn head(&self) -> u64 {
        fs::read_to_string(self.vault().join("HEAD"))
            .expect("HEAD")
            .trim()
            .parse()
            .expect("HEAD holds a seq")
    }

    /// A command for the binary in the temp dir, with `TOKEN` and none of
    /// the test hooks set.
    pub fn command(&self, token: &str, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_selfsame"));
        c.current_dir(self.base())
            .args(args)
            .env("TELEGRAM_BOT_TOKEN", token)
            .env_remove("DISCORD_BOT_TOKEN")
            .env("SELFSAME_LOCK_WAIT", "30s")
            .env("SELFSAME_IDENTITY_SEED", SEED_HEX)
            .env_remove("SELFSAME_IDENTITY_NONCE")
            .env_remove("SELFSAME_VAULT")
            .env_remove("SELFSAME_NOW")
            .env_remove("SELFSAME_FAILPOINT")
            .env_remove("SELFSAME_SHELL_VERSION")
            .stdin(Stdio::null());
        c
    }

    /// Runs the binary with `TOKEN`.
    pub fn run(&self, args: &[&str]) -> Out {
        self.run_as(TOKEN, args, &[])
    }

    /// Runs the binary with `TOKEN` and extra env vars.
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        self.run_as(TOKEN, args, env)
    }

    /// Runs the binary with `token` and extra env vars.
    pub fn run_as(&self, token: &str, args: &[&str], env: &[(&str, &str)]) -> Out {
        let mut c = self.command(token, args);
        c.envs(env.iter().copied());
        let out = c.output().expect("run selfsame");
        self.keep(out)
    }

    /// Runs the binary with `TOKEN` as the unprivileged user `nobody`
    /// (through `setpriv`), so that file permissions bite: root ignores
    /// them. The binary runs from a copy in a directory of its own, which
    /// nobody can reach wherever the build lives (and the leak scan does not
    /// read); the caller gives nobody what it may write
    /// ([`Env::give_to_nobody`]).
    pub fn run_as_nobody(&self, args: &[&str]) -> Out {
        let bin = self
            .nobody_bin
            .borrow_mut()
            .get_or_insert_with(|| {
                let dir = tempfile::Builder::new()
                    .prefix("selfsame-bin-")
                    .tempdir()
                    .expect("temp dir");
                fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
                fs::copy(env!("CARGO_BIN_EXE_selfsame"), dir.path().join("selfsame")).unwrap();
                dir
            })
            .path()
            .join("selfsame");
        let inner = self.command(TOKEN, args);
        let mut c = Command::new("setpriv");
        c.args([
            format!("--reuid={NOBODY}"),
            format!("--regid={NOBODY}"),
            "--clear-groups".into(),
            "--".into(),
        ])
        .arg(&bin)
        .args(args)
        .current_dir(self.base())
        .stdin(Stdio::null())
        .env_clear()
        .envs(inner.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        // The copy may still be open for writing in a child another test
        // thread forked before it was closed (until that child execs): exec
        // then fails with ETXTBSY and nothing ran, so try again.
        let mut tries = 0;
        let out = loop {
            let out = c
                .output()
                .expect("run selfsame as nobody: setpriv (util-linux) is needed");
            let busy = out.status.code() == Some(126)
                && String::from_utf8_lossy(&out.stderr).contains("Text file busy");
            if !busy || tries == 50 {
                break out;
            }
            tries += 1;
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        self.keep(out)
    }

    /// Makes `path` and everything below it owned by `nobody` (symlinks
    /// themselves, never their targets).
    pub fn give_to_nobody(&self, path: &Path) {
        std::os::unix::fs::lchown(path, Some(NOBODY), Some(NOBODY)).unwrap();
        let meta = fs::symlink_metadata(path).unwrap();
        if meta.is_dir() {
            for e in fs::read_dir(path).unwrap() {
                self.give_to_nobody(&e.unwrap().path());
            }
        }
    }

    /// Starts the binary without waiting (see [`Env::finish`]).
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(TOKEN, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn selfsame")
    }

    /// Waits for a spawned run and keeps its output for the scan.
    pub fn finish(&self, child: Child) -> Out {
        self.keep(child.wait_with_output().expect("wait for selfsame"))
    }

    /// Runs the binary with `TOKEN` in `dir` (instead of the temp dir),
    /// failing the test if it has not exited within `secs` seconds (it is
    /// killed then): for runs that must not hang.
    pub fn run_within(&self, secs: u64, dir: &Path, args: &[&str]) -> Out {
        let child = self
            .command(TOKEN, args)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn selfsame");
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(std::time::Duration::from_secs(secs)) {
            Ok(out) => {
                waiter.join().expect("waiter");
                self.keep(out.expect("wait for selfsame"))
            }
            Err(_) => {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                let _ = waiter.join();
                panic!(
                    "`selfsame {}` did not finish within {secs} s",
                    args.join(" ")
                );
            }
        }
    }

    fn keep(&self, out: Output) -> Out {
        let out = Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        self.outputs.borrow_mut().push(out.clone());
        out
    }

    /// `selfsame --json wake ARGS`.
    pub fn wake(&self, args: &[&str]) -> Out {
        let mut all = vec!["--json", "wake"];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// `selfsame --json verify --read-data`, which must be clean.
    pub fn verify_clean(&self) {
        let out = self.run(&["--json", "verify", "--read-data"]);
        let v = out.json();
        assert_eq!(
            v["problems"],
            serde_json::json!([]),
            "verify found problems: {}",
            out.stdout
        );
        out.expect_code(0);
    }

    /// Parsed history lines.
    pub fn history(&self) -> Vec<Value> {
        fs::read_to_string(self.vault().join("history.jsonl"))
            .expect("history")
            .lines()
            .map(|l| serde_json::from_str(l).expect("history line is JSON"))
            .collect()
    }

    /// The `key=value` fields of a checkpoint file (values left encoded).
    pub fn checkpoint_field(&self, seq: u64, key: &str) -> String {
        let text = fs::read_to_string(self.checkpoint(seq)).expect("checkpoint");
        text.trim_end()
            .split('&')
            .find_map(|p| p.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("checkpoint {seq} has no {key}"))
            .to_owned()
    }

    /// The entries of `quarantine/`.
    pub fn quarantined(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(self.vault().join("quarantine"))
            .expect("quarantine dir")
            .map(|e| e.expect("entry").path())
            .collect();
        v.sort();
        v
    }

    /// The leak scan, must hold 5: no secret (whole token or its secret
    /// part) in any file under the temp dir — vault, history, objects,
    /// quarantine, run/, soul — nor in any stdout or stderr of this test.
    pub fn assert_no_secret_anywhere(&self) {
        let mut needles: Vec<&str> = Vec::new();
        for s in SECRETS {
            needles.push(s);
            needles.extend(secret_parts(s));
        }
        let mut files = Vec::new();
        all_files(self.base(), &mut files);
        assert!(
            files.iter().any(|f| f.ends_with("history.jsonl")) || !self.vault().exists(),
            "the scan must see the history"
        );
        let seeds: Vec<Vec<u8>> = [SEED_HEX, OTHER_SEED_HEX]
            .iter()
            .flat_map(|s| seed_needles(s))
            .collect();
        for f in &files {
            let bytes = fs::read(f).unwrap_or_default();
            for n in &needles {
                assert!(
                    !contains(&bytes, n.as_bytes()),
                    "a token secret is in {}",
                    f.display()
                );
            }
            for n in &seeds {
                assert!(
                    !contains(&bytes, n),
                    "the identity seed is in {}",
                    f.display()
                );
            }
        }
        for (i, o) in self.outputs.borrow().iter().enumerate() {
            for n in &needles {
                assert!(
                    !o.stdout.contains(n),
                    "a token secret is in stdout of run {i}"
                );
                assert!(
                    !o.stderr.contains(n),
                    "a token secret is in stderr of run {i}"
                );
            }
            for n in &seeds {
                assert!(
                    !contains(o.stdout.as_bytes(), n) && !contains(o.stderr.as_bytes(), n),
                    "the identity seed is in the output of run {i}"
                );
            }
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.assert_no_secret_anywhere();
        }
    }
}

fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).expect("read dir") {
        let p = e.expect("entry").path();
        let meta = fs::symlink_metadata(&p).expect("metadata");
        if meta.is_dir() {
            all_files(&p, out);
        } else if meta.is_file() {
            out.push(p);
        } else if meta.file_type().is_symlink() {
            // A link's target text is data too.
            let t = fs::read_link(&p).expect("link");
            assert!(
                !SECRETS.iter().any(|s| t.to_string_lossy().contains(s)),
                "a token is in the link {}",
                p.display()
            );
        }
    }
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    // A plain loop: the scan reads every vault object, and in a debug
    // build `windows().any()` costs many times more per byte.
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        if hay[i] == first && hay[i + 1..i + needle.len()] == *rest {
            return true;
        }
        i += 1;
    }
    false
}

/// Builds the test soul: a file, a subdirectory with a nested one, an
/// empty directory, an executable, a symlink and a non-ASCII name, with
/// modes set exactly (0644 files, 0755 executables) so trees compare.
pub fn build_soul(soul: &Path) {
    fs::create_dir_all(soul.join("notes/deep")).unwrap();
    fs::create_dir_all(soul.join("empty")).unwrap();
    write(
        soul,
        "memory.jsonl",
        b"{\"said\":\"hello\"}\n{\"said\":\"again\"}\n",
        0o644,
    );
    write(soul, "notes/a.md", b"# who I am\n\nI remember.\n", 0o644);
    write(
        soul,
        "notes/deep/b.bin",
        &[0u8, 1, 2, 3, 255, 254, 10, 13],
        0o644,
    );
    write(soul, "run.sh", b"#!/bin/sh\necho awake\n", 0o755);
    write(soul, NON_ASCII, "ünïcödé ✓\n".as_bytes(), 0o644);
    symlink("notes/a.md", soul.join("link")).unwrap();
}

/// Writes a file with an exact mode.
pub fn write(dir: &Path, rel: &str, bytes: &[u8], mode: u32) {
    let p = dir.join(rel);
    fs::write(&p, bytes).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

/// One entry of a tree snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir,
    File { mode: u32, bytes: Vec<u8> },
    Link(PathBuf),
}

/// Every entry under `root` (not following symlinks), by relative path,
/// with file bytes and permission bits: two snapshots are equal only if
/// the trees are equal byte for byte, mode for mode, link for link.
pub fn tree(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    walk(root, "", &mut out);
    out
}

fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Node>) {
    for e in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let e = e.unwrap();
        let rel = format!("{prefix}{}", e.file_name().to_str().expect("UTF-8 name"));
        let meta = fs::symlink_metadata(e.path()).unwrap();
        if meta.is_dir() {
            out.insert(rel.clone(), Node::Dir);
            walk(&e.path(), &format!("{rel}/"), out);
        } else if meta.file_type().is_symlink() {
            out.insert(rel, Node::Link(fs::read_link(e.path()).unwrap()));
        } else {
            out.insert(
                rel,
                Node::File {
                    mode: meta.permissions().mode() & 0o7777,
                    bytes: fs::read(e.path()).unwrap(),
                },
            );
        }
    }
}

/// Flips one bit of the byte at `at` in a file.
pub fn flip_byte(path: &Path, at: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at] ^= 0x01;
    // Objects are stored read-only in some stores; make it writable.
    let mut perm = fs::metadata(path).unwrap().permissions();
    perm.set_mode(perm.mode() | 0o200);
    fs::set_permissions(path, perm).unwrap();
    fs::write(path, bytes).unwrap();
}

/// The path of the object `hex` in the vault.
pub fn object_path(vault: &Path, hex: &str) -> PathBuf {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(hex, &mut hash).expect("a hash");
    let vault = selfsame::Vault::open(vault).expect("vault");
    selfsame::testing::loose_object(&vault, &hash).expect("the object is stored")
}

/// SHA-256 hex of bytes, via the library (a test helper, not under test).
pub fn sha256_hex(bytes: &[u8]) -> String {
    selfsame::testing::sha256_hex(bytes)
}

/// The string list at `v[key]`.
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().expect("string").to_owned())
        .collect()
}

/// A token file outside the test's directory (which the leak scan reads):
/// `<dir>/token` holding `token`. Keep the dir alive while it is used.
pub fn token_file(token: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("token");
    fs::write(&path, token).expect("write token file");
    (dir, path)
}

/// The packs in the vault, by hex name.
pub fn pack_names(vault: &Path) -> std::collections::BTreeSet<String> {
    fs::read_dir(vault.join("objects/packs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

/// The packs the pack index cache (`cache/packs`) holds, by hex name.
pub fn pack_cache_names(vault: &Path) -> std::collections::BTreeSet<String> {
    let bytes = fs::read(vault.join("cache/packs")).expect("the pack index cache");
    assert!(bytes.starts_with(b"selfsame-pkix 1\n"));
    let count = u32::from_le_bytes(bytes[16..20].try_into().unwrap());
    let mut at = 20;
    let mut out = std::collections::BTreeSet::new();
    for _ in 0..count {
        out.insert(hex::encode(&bytes[at..at + 32]));
        let n = u32::from_le_bytes(bytes[at + 32..at + 36].try_into().unwrap()) as usize;
        at += 36 + n * 58;
    }
    assert_eq!(at + 4, bytes.len(), "records then the checksum");
    out
}
