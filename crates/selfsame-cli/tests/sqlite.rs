//! Issue 15, build 5 and must hold 4: a seal of a soul whose SQLite
//! database is being written stores only committed states. A real SQLite
//! (python3's `sqlite3`) writes transactions without pause, in each journal
//! mode, while `selfsame seal` runs 50 times (20 with a `persist` or
//! `truncate` journal); every checkpoint's database, read back with
//! `selfsame cat` together with the `-journal` or `-wal` it sealed, passes
//! `PRAGMA integrity_check` and holds exactly one committed transaction's
//! rows. A writer that dies mid-commit leaves a hot journal, which is
//! sealed and rolls the dead transaction back.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;
use serde_json::Value;

/// The agent: writes transaction after transaction until `stop` exists.
/// Transaction `n` rewrites all 200 rows (about 80 KiB over some 25
/// pages) to carry `n` and bytes derived from `n`, and records `n` and the
/// digest of the rows in `meta`: a mix of two transactions cannot pass
/// for either. A table of half a megabyte that never changes makes reading
/// the database take a while, so a reader that does not lock would see
/// writes land.
const WRITER: &str = r#"
import hashlib, os, sqlite3, sys
path, mode, stop, ready = sys.argv[1:5]
ROWS = 200
def payload(n, i):
    return hashlib.sha256(b"%d:%d" % (n, i)).digest() * 12
con = sqlite3.connect(path, timeout=60, isolation_level=None)
con.execute("PRAGMA journal_mode=" + mode)
con.execute("CREATE TABLE rows(id INTEGER PRIMARY KEY, n INTEGER, payload BLOB)")
con.execute("CREATE TABLE meta(k INTEGER PRIMARY KEY, n INTEGER, digest TEXT)")
con.execute("CREATE TABLE ballast(b BLOB)")
con.execute("BEGIN")
for i in range(128):
    con.execute("INSERT INTO ballast VALUES(?)", (os.urandom(4000),))
con.execute("COMMIT")
n = 0
while True:
    n += 1
    con.execute("BEGIN IMMEDIATE")
    h = hashlib.sha256()
    for i in range(ROWS):
        p = payload(n, i)
        h.update(p)
        con.execute("INSERT OR REPLACE INTO rows VALUES(?,?,?)", (i, n, p))
    con.execute("INSERT OR REPLACE INTO meta VALUES(0,?,?)", (n, h.hexdigest()))
    con.execute("COMMIT")
    if n == 3:
        open(ready, "w").close()
    if os.path.exists(stop):
        break
con.close()
print(n)
"#;

/// Checks each directory given: opens `db` there (SQLite rolls a hot
/// journal back or reads the WAL, as the agent would after a restore), runs
/// `PRAGMA integrity_check`, and prints per directory the committed `n`
/// the rows hold, or what is wrong.
const CHECKER: &str = r#"
import hashlib, json, sqlite3, sys
def payload(n, i):
    return hashlib.sha256(b"%d:%d" % (n, i)).digest() * 12
out = []
for d in sys.argv[1:]:
    try:
        con = sqlite3.connect(d + "/db", isolation_level=None)
        ok = con.execute("PRAGMA integrity_check").fetchall()
        if ok != [("ok",)]:
            out.append({"dir": d, "error": "integrity_check: %r" % ok[:3]})
            continue
        meta = con.execute("SELECT n, digest FROM meta").fetchall()
        rows = con.execute("SELECT id, n, payload FROM rows ORDER BY id").fetchall()
        con.close()
        if not meta:
            out.append({"dir": d, "n": 0, "rows": len(rows)})
            continue
        n, digest = meta[0]
        h = hashlib.sha256()
        for r in rows:
            h.update(r[2])
        good = (len(rows) == 200 and all(r[1] == n and r[2] == payload(n, r[0]) for r in rows)
                and h.hexdigest() == digest)
        out.append({"dir": d, "n": n} if good else
                   {"dir": d, "error": "rows of transactions %s under meta %d"
                    % (sorted(set(r[1] for r in rows)), n)})
    except Exception as e:
        out.append({"dir": d, "error": repr(e)})
print(json.dumps(out))
"#;

/// A vault whose soul holds nothing but the database directory `data/`.
fn database_env() -> Env {
    let env = Env::bare();
    fs::remove_dir_all(env.soul()).unwrap();
    fs::create_dir_all(env.soul().join("data")).unwrap();
    fs::write(env.soul().join("notes.md"), "# me\n").unwrap();
    env.run(&["init", "soul", "--shell-version", "1.0.0"])
        .expect_code(0);
    env
}

struct Writer {
    child: Child,
    stop: PathBuf,
}

impl Writer {
    /// Starts the writer on `soul/data/db` and waits until it commits.
    fn start(env: &Env, mode: &str) -> Writer {
        let stop = env.base().join("stop");
        let ready = env.base().join("ready");
        let child = Command::new("python3")
            .arg("-c")
            .arg(WRITER)
            .arg(env.soul().join("data/db"))
            .arg(mode)
            .arg(&stop)
            .arg(&ready)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let writer = Writer { child, stop };
        let start = std::time::Instant::now();
        while !ready.exists() {
            assert!(start.elapsed().as_secs() < 60, "the writer never committed");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        writer
    }

    /// Stops the writer; returns the last transaction it committed.
    fn stop(mut self) -> u64 {
        use std::io::Read;
        fs::write(&self.stop, "").unwrap();
        let status = self.child.wait().expect("writer");
        assert!(status.success(), "the writer failed");
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .expect("piped")
            .read_to_string(&mut out)
            .unwrap();
        out.trim().parse().expect("the writer prints its last n")
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // A failed test must not leave the writer behind (its own pid).
        let _ = fs::write(&self.stop, "");
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The files of `data/` that checkpoint `seq` records, written into `to`
/// byte for byte with `selfsame cat`.
fn read_back(env: &Env, seq: u64, to: &Path) -> BTreeSet<String> {
    fs::create_dir_all(to).unwrap();
    let listing = env
        .run(&["--json", "ls", &seq.to_string(), "data"])
        .expect_code(0)
        .json();
    let mut names = BTreeSet::new();
    for e in listing["entries"].as_array().expect("entries") {
        let path = e["path"].as_str().unwrap();
        let name = path.strip_prefix("data/").unwrap();
        let out = env
            .command(TOKEN, &["cat", &format!("{seq}:{path}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "cat {seq}:{path}");
        fs::write(to.join(name), &out.stdout).unwrap();
        names.insert(name.to_owned());
    }
    names
}

fn check(dirs: &[PathBuf]) -> Vec<Value> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(CHECKER)
        .args(dirs)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// `seals` seals while the writer writes; every checkpoint holds a
/// committed state. Returns the env, and the database's siblings that any
/// checkpoint recorded.
fn seals_while_writing(mode: &str, seals: u64) -> (Env, BTreeSet<String>) {
    let env = database_env();
    let writer = Writer::start(&env, mode);
    // A heartbeat that finds nothing changed writes no checkpoint: on a
    // loaded machine the writer can miss its turn between two seals. Seal
    // until `seals` checkpoints were written.
    let mut tries = 0;
    while env.head() < 1 + seals {
        tries += 1;
        assert!(tries <= 10 * seals, "{mode}: the writer stopped writing");
        env.run(&["seal", "--reason", "heartbeat"]).expect_code(0);
    }
    let last = writer.stop();
    let head = env.head();
    assert_eq!(head, 1 + seals);

    let back = env.base().join("back");
    let mut dirs = Vec::new();
    let mut siblings = BTreeSet::new();
    for seq in 2..=head {
        let dir = back.join(seq.to_string());
        let names = read_back(&env, seq, &dir);
        assert!(names.contains("db"), "checkpoint {seq} has no database");
        siblings.extend(names.into_iter().filter(|n| n != "db"));
        dirs.push(dir);
    }
    let results = check(&dirs);
    fs::remove_dir_all(&back).unwrap();
    let mut committed = BTreeSet::new();
    for r in results {
        assert!(r.get("error").is_none(), "{mode}: {r}");
        let n = r["n"].as_u64().unwrap();
        assert!(n <= last, "{mode}: {r} is after the last commit {last}");
        committed.insert(n);
    }
    // The seals raced the writer: they caught many different states.
    assert!(
        committed.len() >= 10,
        "{mode}: only {committed:?} of {last} transactions were sealed"
    );

    // At rest, the soul as sealed is the soul as it is.
    env.run(&["seal"]).expect_code(0);
    let v = env.wake(&[]).expect_code(0).json();
    assert_eq!(v["verdict"], "verified", "{v}");
    env.verify_clean();
    (env, siblings)
}

// Each test ends with the token-leak scan (`Env`'s drop).

#[test]
fn every_seal_of_a_database_in_rollback_mode_is_a_committed_state() {
    let (_env, siblings) = seals_while_writing("delete", 50);
    // Under the locks no writer holds a journal, so none is ever sealed:
    // SQLite deletes it at each commit.
    assert!(siblings.is_empty(), "{siblings:?}");
}

#[test]
fn every_seal_of_a_database_in_wal_mode_is_a_committed_state() {
    let (_env, siblings) = seals_while_writing("wal", 50);
    // The WAL holds most committed transactions; it is sealed with the
    // database. The wal-index is the open connection's, never sealed.
    assert_eq!(siblings, BTreeSet::from(["db-wal".to_string()]));
}

#[test]
fn every_seal_of_a_database_with_a_persistent_journal_is_a_committed_state() {
    let (env, _) = seals_while_writing("persist", 20);
    // At rest the spent journal (its header zeroed) is part of the soul.
    let rest = env.run(&["ls", "data"]).expect_code(0).stdout;
    assert!(rest.contains("data/db-journal"), "{rest}");
}

#[test]
fn every_seal_of_a_database_with_a_truncated_journal_is_a_committed_state() {
    let (_env, siblings) = seals_while_writing("truncate", 20);
    // The spent journal is cut to nothing at each commit, and left: a
    // seal may find it empty, never holding a transaction.
    assert!(siblings.iter().all(|s| s == "db-journal"), "{siblings:?}");
}

/// The agent dies in the middle of a commit: a transaction too big for
/// its page cache (two pages), whose pages already went into the database
/// file, with the journal that undoes them left hot.
const DIES_MID_COMMIT: &str = r#"
import os, sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("PRAGMA cache_size=2")
con.execute("BEGIN IMMEDIATE")
con.execute("UPDATE ballast SET b=zeroblob(4000)")
os._exit(0)
"#;

/// How many ballast rows the dead transaction's `zeroblob`s are, in the
/// database of each directory given, and whether it passes
/// `integrity_check` (as JSON, one object per directory).
const DEAD_ROWS: &str = r#"
import json, sqlite3, sys
out = []
for d in sys.argv[1:]:
    try:
        con = sqlite3.connect(d + "/db", isolation_level=None)
        ok = con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        dead = con.execute("SELECT count(*) FROM ballast WHERE b = zeroblob(4000)").fetchone()[0]
        out.append({"ok": ok, "dead": dead})
    except Exception as e:
        out.append({"ok": False, "error": repr(e)})
print(json.dumps(out))
"#;

#[test]
fn a_hot_journal_is_sealed_and_rolls_the_dead_transaction_back_when_opened() {
    let env = database_env();
    let last = Writer::start(&env, "delete").stop();
    let db = env.soul().join("data/db");
    let died = Command::new("python3")
        .arg("-c")
        .arg(DIES_MID_COMMIT)
        .arg(&db)
        .status()
        .expect("python3");
    assert!(died.success());
    let journal = env.soul().join("data/db-journal");
    assert!(
        fs::metadata(&journal).map(|m| m.len()).unwrap_or(0) > 0,
        "the dead writer left a hot journal"
    );
    env.run(&["seal", "--reason", "heartbeat"]).expect_code(0);
    let seq = env.head();
    let back = env.base().join("back");
    let names = read_back(&env, seq, &back);
    assert_eq!(
        names,
        BTreeSet::from(["db".to_string(), "db-journal".to_string()])
    );
    // The database file alone holds pages of the dead transaction: a
    // snapshot without its journal would not be a committed state.
    let alone = env.base().join("alone");
    fs::create_dir_all(&alone).unwrap();
    fs::copy(back.join("db"), alone.join("db")).unwrap();
    let out = Command::new("python3")
        .arg("-c")
        .arg(DEAD_ROWS)
        .arg(&alone)
        .output()
        .expect("python3");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v[0]["ok"] == false || v[0]["dead"].as_u64() > Some(0),
        "the dead transaction never reached the database file: {v}"
    );
    // Opened with the journal it was sealed with, SQLite rolls it back:
    // the last committed state, whole.
    let got = check(std::slice::from_ref(&back));
    assert!(got[0].get("error").is_none(), "{:?}", got[0]);
    assert_eq!(got[0]["n"].as_u64(), Some(last), "{:?}", got[0]);
    let out = Command::new("python3")
        .arg("-c")
        .arg(DEAD_ROWS)
        .arg(&back)
        .output()
        .expect("python3");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0], serde_json::json!({"ok": true, "dead": 0}), "{v}");
}

/// A writer that holds its transaction open (EXCLUSIVE, its pages in the
/// database file) until `stop` exists.
const HOLDS_ITS_TRANSACTION: &str = r#"
import os, sqlite3, sys, time
path, stop, ready = sys.argv[1:4]
con = sqlite3.connect(path, isolation_level=None)
con.execute("PRAGMA cache_size=2")
con.execute("BEGIN EXCLUSIVE")
con.execute("UPDATE ballast SET b=zeroblob(4000)")
open(ready, "w").close()
while not os.path.exists(stop):
    time.sleep(0.02)
con.execute("ROLLBACK")
"#;

#[test]
fn a_seal_gives_up_on_a_database_a_writer_keeps_locked_and_the_next_one_seals() {
    let env = database_env();
    let last = Writer::start(&env, "delete").stop();
    env.run(&["seal", "--reason", "heartbeat"]).expect_code(0);
    let head = env.head();
    let (stop, ready) = (env.base().join("stop"), env.base().join("ready"));
    let _ = fs::remove_file(&stop);
    let _ = fs::remove_file(&ready);
    let mut holder = Command::new("python3")
        .arg("-c")
        .arg(HOLDS_ITS_TRANSACTION)
        .arg(env.soul().join("data/db"))
        .arg(&stop)
        .arg(&ready)
        .spawn()
        .expect("python3");
    let started = std::time::Instant::now();
    while !ready.exists() {
        assert!(started.elapsed().as_secs() < 60, "the writer never locked");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    fs::write(env.soul().join("notes.md"), "# me, later\n").unwrap();
    let out = env.run(&["seal", "--reason", "heartbeat"]);
    fs::write(&stop, "").unwrap();
    assert!(holder.wait().expect("writer").success());
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("stayed locked by a writer")
            && out
                .stderr
                .contains(&*env.soul().join("data/db").to_string_lossy()),
        "names the database: {}",
        out.stderr
    );
    assert_eq!(env.head(), head, "no checkpoint of a half-written database");
    // The writer let go: the next heartbeat seals its committed state.
    env.run(&["seal", "--reason", "heartbeat"]).expect_code(0);
    assert_eq!(env.head(), head + 1);
    let back = env.base().join("back");
    read_back(&env, head + 1, &back);
    let got = check(std::slice::from_ref(&back));
    assert_eq!(got[0]["n"].as_u64(), Some(last), "{:?}", got[0]);
}

#[test]
fn a_restored_checkpoint_of_a_live_database_opens_as_a_committed_state() {
    let env = database_env();
    let writer = Writer::start(&env, "wal");
    for _ in 0..5 {
        env.run(&["seal", "--reason", "heartbeat"]).expect_code(0);
    }
    writer.stop();
    env.run(&["seal"]).expect_code(0);
    env.run(&["restore", "4"]).expect_code(0);
    let got = check(&[env.soul().join("data")]);
    assert!(got[0].get("error").is_none(), "{:?}", got[0]);
    // Opening it replayed the WAL into the database: a change to the soul
    // that the next seal records, like any the agent makes.
    env.run(&["seal"]).expect_code(0);
    env.verify_clean();
}
