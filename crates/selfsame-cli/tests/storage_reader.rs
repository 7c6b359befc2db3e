//! docs/STORAGE.md says it specifies the stored form of a vault byte for
//! byte, "so that an independent tool can read any file of any checkpoint
//! back". `storage_reader.py` beside this file is such a tool, written from
//! STORAGE.md and FORMAT.md alone (standard library, and the `zstandard`
//! package for compressed blobs). Here it reads vaults shaped like a real
//! agent's — several checkpoints, a file chunked into nodes, appends, many
//! small files, a SQLite database, private and executable files, a file
//! deleted, a version 1 manifest, a forget and a prune — and every file of
//! every kept checkpoint must be what `selfsame cat` gives, what was sealed,
//! and `selfsame ls`'s mode; a forgotten checkpoint is refused, a flipped
//! byte in a pack is a hash mismatch, and the vault from before packs reads
//! too.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use common::*;
use selfsame::ops::seal::Reason;
use selfsame::testing::{identity_key, manifest_of, sha256, Keys, Manifest, ManifestVersion};
use selfsame::testing::{Draft, Header, VaultFiles};
use selfsame::{Credential, Platform, Vault};
use serde_json::Value;

const READER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/storage_reader.py");
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/vault-before-packs.tar.gz"
);
/// The PyPI package the reader decodes zstd with.
const ZSTANDARD: &str = "zstandard==0.25.0";

static PYTHON: OnceLock<PathBuf> = OnceLock::new();

/// A python3 that imports `zstandard`: the machine's when it has it, else
/// a venv under the build's temp dir, made once with pip (as
/// `common::moto` makes moto's; `installed` marks it complete and names
/// where it was made).
fn python() -> &'static Path {
    PYTHON.get_or_init(find_python)
}

fn find_python() -> PathBuf {
    let has = |py: &Path| {
        Command::new(py)
            .args(["-c", "import zstandard"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if has(Path::new("python3")) {
        return "python3".into();
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("py-zstandard");
    let py = dir.join("bin/python3");
    let mark = format!("{ZSTANDARD}\n{}\n", dir.display());
    if fs::read_to_string(dir.join("installed")).is_ok_and(|m| m == mark) && has(&py) {
        return py;
    }
    let _ = fs::remove_dir_all(&dir);
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&dir)
        .status()
        .expect("python3 -m venv (Debian: apt-get install python3-venv)")
        .success()
        && Command::new(dir.join("bin/pip"))
            .args(["install", "-q", ZSTANDARD])
            .status()
            .expect("pip install zstandard")
            .success();
    assert!(ok, "installing {ZSTANDARD} into {} failed", dir.display());
    fs::write(dir.join("installed"), mark).unwrap();
    py
}

/// What the reader's runs read, summed over the test (`--stats`).
#[derive(Default)]
struct Reader {
    stats: std::cell::RefCell<BTreeMap<String, u64>>,
}

impl Reader {
    /// Runs the reader on `vault` with the test token (every checkpoint's
    /// MAC is checked too).
    fn run(&self, vault: &Path, args: &[&str]) -> Output {
        let out = Command::new(python())
            .arg(READER)
            .args(["--stats", "--token-env", "TELEGRAM_BOT_TOKEN"])
            .arg(vault)
            .args(args)
            .env("TELEGRAM_BOT_TOKEN", TOKEN)
            .output()
            .expect("run storage_reader.py");
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err
            .lines()
            .find_map(|l| l.strip_prefix("stats: "))
            .unwrap_or_else(|| panic!("the reader printed no stats: {err}"));
        let v: BTreeMap<String, u64> = serde_json::from_str(line).unwrap();
        let mut stats = self.stats.borrow_mut();
        for (k, n) in v {
            *stats.entry(k).or_default() += n;
        }
        out
    }

    /// `ls SEQ --json`, which must succeed.
    fn ls(&self, vault: &Path, seq: u64) -> Vec<Value> {
        let out = self.run(vault, &["ls", &seq.to_string(), "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array().unwrap().clone()
    }

    /// Every file (a symlink's target) of checkpoint `seq`, by path.
    fn export(&self, vault: &Path, seq: u64) -> BTreeMap<String, Vec<u8>> {
        let dir = tempfile::tempdir().unwrap();
        let out = self.run(
            vault,
            &["export", &seq.to_string(), dir.path().to_str().unwrap()],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut files = BTreeMap::new();
        for e in self.ls(vault, seq) {
            if e["kind"] != "dir" {
                let path = e["path"].as_str().unwrap().to_owned();
                files.insert(path.clone(), fs::read(dir.path().join(&path)).unwrap());
            }
        }
        files
    }
}

/// `len` bytes that do not compress (xorshift), the same for one `seed`.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Runs a Python script on the soul (with the reader's python3).
fn py(soul: &Path, script: &str) {
    let status = Command::new(python())
        .args(["-c", script])
        .current_dir(soul)
        .status()
        .unwrap();
    assert!(status.success(), "{script}");
}

/// Signs, with the real token, a checkpoint on top of the head that
/// records the head's soul as a version 1 manifest (stored loose): the head
/// an older selfsame would have written (as in tests/modes.rs).
fn plant_version_1_head(env: &Env) -> u64 {
    let vault = Vault::open(&env.vault()).unwrap();
    let token = Credential::parse(Platform::Telegram, TOKEN).unwrap();
    let head = vault
        .read_checkpoint(vault.read_head().unwrap().unwrap())
        .unwrap();
    let v2 = manifest_of(&vault, &head).unwrap();
    let v1 = Manifest::of(ManifestVersion::V1, v2.entries.clone());
    let bytes = v1.to_bytes();
    assert!(bytes.starts_with(b"selfsame-manifest 1\n"));
    let soul = sha256(&bytes);
    vault.objects().put(&soul, &bytes).unwrap();
    let mut extra = Vec::new();
    if let Some(c) = head.ckpt.config() {
        extra.push(("config".to_owned(), c.to_owned()));
    }
    let draft = Draft {
        header: Header {
            seq: head.ckpt.seq + 1,
            prev: head.file_hash.clone(),
            soul: soul.iter().map(|b| format!("{b:02x}")).collect(),
            files: v1.files(),
            bytes: v1.bytes(),
            sealed_at: "2030-01-01T00:00:00.000Z".into(),
            reason: Reason::Manual.as_str().into(),
            shell: head.ckpt.shell.clone(),
            format: head.ckpt.format.clone(),
            log: vault.history().tail().unwrap().0,
            platform: "telegram".into(),
            bot_id: token.account_id(),
        },
        extra,
    };
    let identity = identity_key(&vault, &token).unwrap();
    let ckpt = Keys::of(&token).sign(&draft, identity.as_ref());
    vault.write_checkpoint(&ckpt).unwrap();
    vault.write_head(ckpt.seq).unwrap();
    let _ = fs::remove_dir_all(env.vault().join("cache"));
    ckpt.seq
}

/// The soul as a checkpoint of manifest `version` records it: each file's
/// bytes (a symlink's target) and mode (`None` for a symlink; a version 1
/// manifest knows only 0644 and 0755).
fn sealed(soul: &Path, version: u8) -> BTreeMap<String, (Vec<u8>, Option<String>)> {
    tree(soul)
        .into_iter()
        .filter_map(|(path, node)| match node {
            Node::Dir => None,
            Node::Link(t) => Some((path, (t.into_os_string().into_encoded_bytes(), None))),
            Node::File { mode, bytes } => {
                let mode = match version {
                    1 if mode & 0o111 != 0 => 0o755,
                    1 => 0o644,
                    _ => mode,
                };
                Some((path, (bytes, Some(format!("{mode:04o}")))))
            }
        })
        .collect()
}

/// Every file of checkpoint `seq`: the reader's bytes are `selfsame cat`'s
/// and what was sealed; its listing is `selfsame ls -R`'s, mode for mode.
fn reads_as_selfsame(
    env: &Env,
    reader: &Reader,
    seq: u64,
    want: &BTreeMap<String, (Vec<u8>, Option<String>)>,
) {
    let ours = reader.ls(&env.vault(), seq);
    let theirs = env
        .run(&["--json", "ls", &seq.to_string(), "-R"])
        .expect_code(0)
        .json();
    let theirs = theirs["entries"].as_array().unwrap();
    assert_eq!(ours.len(), theirs.len(), "checkpoint {seq}: entries");
    for (a, b) in ours.iter().zip(theirs) {
        for key in ["path", "kind", "mode", "hash"] {
            assert_eq!(a[key], b[key], "checkpoint {seq}: {key} of {a}");
        }
        if a["kind"] != "dir" {
            assert_eq!(a["size"], b["size"], "checkpoint {seq}: size of {a}");
        }
    }
    let files = reader.export(&env.vault(), seq);
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "checkpoint {seq}: the files sealed"
    );
    let mut cats = Vec::new();
    for e in &ours {
        let path = e["path"].as_str().unwrap();
        let Some((bytes, mode)) = want.get(path) else {
            continue;
        };
        let what = format!("{seq}:{path}");
        assert!(
            files[path] == *bytes,
            "{what}: the reader's bytes are not the sealed file's"
        );
        assert_eq!(e["mode"].as_str(), mode.as_deref(), "{what}: mode");
        cats.push((what, bytes));
    }
    // `selfsame cat` of each, a few at a time.
    for batch in cats.chunks(4) {
        let running: Vec<_> = batch
            .iter()
            .map(|(what, _)| {
                env.command(TOKEN, &["cat", what])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("selfsame cat")
            })
            .collect();
        for ((what, bytes), child) in batch.iter().zip(running) {
            let cat = child.wait_with_output().unwrap();
            assert_eq!(cat.status.code(), Some(0), "selfsame cat {what}");
            assert!(cat.stdout == **bytes, "{what}: selfsame cat differs");
        }
    }
    // One file through `cat`, as a user would read it.
    let (path, (bytes, _)) = want.iter().next().unwrap();
    let out = reader.run(&env.vault(), &["cat", &seq.to_string(), path]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout == *bytes, "{seq}:{path} through cat");
}

/// The packs' 58-byte index entries, with the pack's path.
fn pack_entries(vault: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for name in pack_names(vault) {
        let path = vault.join("objects/packs").join(name);
        let bytes = fs::read(&path).unwrap();
        let footer = &bytes[bytes.len() - 44..];
        let n = u32::from_le_bytes(footer[..4].try_into().unwrap()) as usize;
        let index = &bytes[bytes.len() - 44 - 58 * n..bytes.len() - 44];
        for e in index.chunks(58) {
            out.push((path.clone(), e.to_vec()));
        }
    }
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_independent_reader_reads_every_kept_checkpoint_as_selfsame_does() {
    let reader = Reader::default();
    let env = Env::bare();
    let soul = env.soul();
    // An agent's soul: besides Env's (a symlink, a non-ASCII name, an
    // executable, an empty directory), a private key, a tool, a 20 MiB
    // file (more than 1024 chunks: nodes; more than 16 MiB: two packs), a
    // log that compresses, a SQLite database and 150 small notes.
    write(&soul, "private.key", b"only mine\n", 0o600);
    write(&soul, "bin-tool", b"#!/bin/sh\nexit 0\n", 0o750);
    write(&soul, "empty.txt", b"", 0o644);
    fs::write(soul.join("big.bin"), noise(20 << 20, 7)).unwrap();
    let mut log = Vec::new();
    for i in 0..60_000 {
        log.extend_from_slice(
            format!("{i:06} the agent thought about step {}\n", i % 97).as_bytes(),
        );
    }
    fs::write(soul.join("log.txt"), &log).unwrap();
    fs::create_dir_all(soul.join("days")).unwrap();
    for i in 0..150 {
        let text = format!("# day {i}\n{}\n", "remembered. ".repeat(i % 40));
        write(&soul, &format!("days/{i:03}.md"), text.as_bytes(), 0o644);
    }
    py(
        &soul,
        "import sqlite3\n\
         c = sqlite3.connect('memory.db')\n\
         c.execute('create table m (id integer primary key, text)')\n\
         c.executemany('insert into m values (?, ?)', [(i, 'row %d ' % i * 20) for i in range(3000)])\n\
         c.commit()",
    );
    assert!(fs::read(soul.join("memory.db"))
        .unwrap()
        .starts_with(b"SQLite format 3\0"));

    let mut want = BTreeMap::new();
    env.run(&["init", "soul", "--shell-version", "1.0.0"])
        .expect_code(0);
    want.insert(1, sealed(&soul, 2));

    // 2: an edit in the middle of the big file, the log appended to, rows
    // updated, some notes changed.
    let mut big = fs::read(soul.join("big.bin")).unwrap();
    big[10 << 20..(10 << 20) + 100].fill(0xAB);
    fs::write(soul.join("big.bin"), &big).unwrap();
    log.extend_from_slice(&b"an appended line of the log\n".repeat(40_000));
    fs::write(soul.join("log.txt"), &log).unwrap();
    py(
        &soul,
        "import sqlite3\n\
         c = sqlite3.connect('memory.db')\n\
         c.execute(\"update m set text = 'changed' where id % 50 = 0\")\n\
         c.commit()",
    );
    for i in (0..150).step_by(7) {
        write(&soul, &format!("days/{i:03}.md"), b"rewritten\n", 0o644);
    }
    env.run(&["seal", "--reason", "manual"]).expect_code(0);
    want.insert(2, sealed(&soul, 2));

    // 3: a note deleted, one added.
    fs::remove_file(soul.join("days/010.md")).unwrap();
    write(&soul, "days/new.md", b"a new day\n", 0o644);
    env.run(&["seal", "--reason", "manual"]).expect_code(0);
    want.insert(3, sealed(&soul, 2));

    // 4: the same soul under a version 1 manifest, as an older selfsame
    // wrote it.
    let v1 = plant_version_1_head(&env);
    assert_eq!(v1, 4);
    want.insert(4, sealed(&soul, 1));

    // 5: more changes (a version 2 manifest again).
    big.extend_from_slice(&noise(1 << 20, 9));
    fs::write(soul.join("big.bin"), &big).unwrap();
    write(&soul, "days/001.md", b"changed again\n", 0o644);
    env.run(&["seal", "--reason", "manual"]).expect_code(0);
    want.insert(5, sealed(&soul, 2));

    // Checkpoint 1 forgotten; 6 anchors the forget.
    let v = env
        .run(&["--json", "forget", "--keep-last", "4"])
        .expect_code(0)
        .json();
    assert_eq!(v["forgotten"], serde_json::json!([1]), "{v}");
    env.run(&["seal", "--reason", "manual"]).expect_code(0);
    want.insert(6, sealed(&soul, 2));

    // Before the prune (its objects are all still there) and after, the
    // reader refuses checkpoint 1 as selfsame does: forgotten, exit 2.
    let forgotten = |reader: &Reader| {
        for args in [&["ls", "1"][..], &["cat", "1", "days/010.md"]] {
            let out = reader.run(&env.vault(), args);
            assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
            assert!(out.stdout.is_empty());
            assert!(
                stderr(&out).contains("checkpoint 1 was forgotten by retention at"),
                "{}",
                stderr(&out)
            );
        }
        env.run(&["cat", "1:days/010.md"]).expect_code(2);
    };
    forgotten(&reader);
    let v = env.run(&["--json", "prune"]).expect_code(0).json();
    assert!(v["objects_removed"].as_u64().unwrap() > 0, "{v}");
    forgotten(&reader);
    env.verify_clean();

    for (&seq, files) in want.range(2..) {
        reads_as_selfsame(&env, &reader, seq, files);
    }
    // The deleted note is in 2, not in 3; both say so.
    let out = reader.run(&env.vault(), &["cat", "3", "days/010.md"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_ne!(env.run(&["cat", "3:days/010.md"]).code, 0);
    let out = reader.run(&env.vault(), &["cat", "2", "days/010.md"]);
    assert!(out.status.success());

    eprintln!("STATS {:?}", reader.stats.borrow());
    // Every stored form STORAGE.md describes was read.
    let stats = reader.stats.borrow().clone();
    for form in [
        "packs",
        "blobs stored",
        "blobs zstd",
        "chunks",
        "nodes",
        "objects from a data blob",
        "objects from a file list",
        "objects loose",
        "manifests v1",
        "manifests v2",
        "config objects loose",
        "checkpoint MACs",
    ] {
        assert!(
            stats.get(form).is_some_and(|&n| n > 0),
            "never read: {form} ({stats:?})"
        );
    }

    // The reader can fail: a flipped byte in the stored bytes of a chunk
    // (the big file's: 4 KiB or more, stored as it is) is a hash mismatch,
    // for the reader as for selfsame. (Flipped in place, then back.)
    let vault = env.vault();
    let (pack, entry) = pack_entries(&vault)
        .into_iter()
        .find(|(_, e)| {
            let stored = u32::from_le_bytes(e[42..46].try_into().unwrap());
            e[0] == 0 && e[1] == 0 && stored >= 4096
        })
        .expect("a chunk of the big file, stored as it is");
    let at = u64::from_le_bytes(entry[34..42].try_into().unwrap()) as usize + 1000;
    flip_byte(&pack, at);
    let mut refused = 0;
    for seq in 2..=6u64 {
        let what = format!("{seq}:big.bin");
        let out = reader.run(&vault, &["cat", &seq.to_string(), "big.bin"]);
        if out.status.success() {
            assert!(out.stdout == want[&seq]["big.bin"].0, "{what}");
            continue;
        }
        refused += 1;
        assert_eq!(out.status.code(), Some(5), "{what}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("hash mismatch"),
            "{what}: {}",
            stderr(&out)
        );
        assert_eq!(env.run(&["cat", &what]).code, 5, "selfsame cat {what}");
    }
    assert!(refused > 0, "no checkpoint read the damaged chunk");
    flip_byte(&pack, at);

    // A flipped byte in a pack's index: the pack's name is no longer its
    // index's hash, and the reader reads nothing from the vault.
    let pack = vault
        .join("objects/packs")
        .join(pack_names(&vault).pop_first().unwrap());
    let at = fs::metadata(&pack).unwrap().len() as usize - 44 - 58 + 3;
    flip_byte(&pack, at);
    let out = reader.run(&vault, &["ls", "6"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("hash mismatch"), "{}", stderr(&out));
    assert_eq!(env.run(&["verify"]).code, 5);
    flip_byte(&pack, at);
    // Put right, it reads again.
    assert!(reader
        .run(&vault, &["cat", "6", "big.bin"])
        .status
        .success());
    env.verify_clean();
}

/// The vault from before packs (format 1, every object loose): the reader
/// reads its three checkpoints as selfsame does.
#[test]
fn an_independent_reader_reads_a_vault_from_before_packs() {
    let reader = Reader::default();
    let env = Env::bare();
    fs::remove_dir_all(env.soul()).unwrap();
    let status = Command::new("tar")
        .args(["-xzf", FIXTURE, "-C"])
        .arg(env.base())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(fs::read(env.vault().join("format")).unwrap(), b"1\n");
    assert_eq!(env.head(), 3);
    // The head's files are the soul's; the earlier ones are what
    // `selfsame cat` gives (checked there).
    let mut seen = BTreeSet::new();
    for seq in 1..=3u64 {
        let mut want = BTreeMap::new();
        for e in reader.ls(&env.vault(), seq) {
            if e["kind"] == "dir" {
                continue;
            }
            let path = e["path"].as_str().unwrap().to_owned();
            let cat = env
                .command(TOKEN, &["cat", &format!("{seq}:{path}")])
                .output()
                .unwrap();
            assert_eq!(cat.status.code(), Some(0));
            want.insert(path, (cat.stdout, e["mode"].as_str().map(str::to_owned)));
        }
        if seq == 3 {
            assert_eq!(want, sealed(&env.soul(), 2), "the head is the soul");
        }
        seen.extend(want.keys().cloned());
        reads_as_selfsame(&env, &reader, seq, &want);
    }
    assert!(seen.contains("notes/day2.md") && seen.contains("private.key"));
    let stats = reader.stats.borrow();
    assert!(
        stats["objects loose"] > 0 && !stats.contains_key("packs"),
        "{stats:?}"
    );
    env.verify_clean();
}
