//! Soul format migrations and token rotation, through the real binary:
//! `migrate`, `wake --reads`, `run` with migrations, and `rekey`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

const TOKEN: &str = "123456:old-secret-AAAA";
const NEW_TOKEN: &str = "123456:new-secret-BBBB";
const WRONG_SECRET: &str = "123456:not-the-secret";
const OTHER_BOT: &str = "654321:other-bot-CCCC";

/// v1 → v2: rename `name` to `full_name`.
const V2: &str = r#"#!/usr/bin/env python3
import json, os
p = os.path.join(os.environ["SELFSAME_SOUL"], "memory.json")
m = json.load(open(p))
assert os.environ["SELFSAME_FROM"] == "v1" and os.environ["SELFSAME_TO"] == "v2"
m["full_name"] = m.pop("name")
json.dump(m, open(p, "w"), sort_keys=True)
"#;

/// v2 → v3: facts become objects.
const V3: &str = r#"#!/usr/bin/env python3
import json, os
p = os.path.join(os.environ["SELFSAME_SOUL"], "memory.json")
m = json.load(open(p))
m["facts"] = [{"text": f} for f in m["facts"]]
json.dump(m, open(p, "w"), sort_keys=True)
"#;

/// A v3 that writes half its work, then fails.
const V3_FAILS: &str = "#!/bin/sh\necho '{\"half\":' > \"$SELFSAME_SOUL/memory.json\"\necho 'v3: schema mismatch' >&2\nexit 3\n";

struct Bot {
    dir: tempfile::TempDir,
}

impl Bot {
    /// A v1 soul with a few top-level entries, sealed at checkpoint 1.
    fn new() -> Bot {
        let dir = tempfile::tempdir().unwrap();
        let soul = dir.path().join("soul");
        fs::create_dir_all(soul.join("notes")).unwrap();
        fs::write(
            soul.join("memory.json"),
            r#"{"facts": ["likes tea", "born 1815"], "name": "Ada"}"#,
        )
        .unwrap();
        fs::write(soul.join("notes/a.txt"), "first note\n").unwrap();
        fs::write(soul.join("z.txt"), "last entry\n").unwrap();
        let bot = Bot { dir };
        bot.ok(&["init", "soul", "--shell-version", "1.0"]);
        bot
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("selfsame").unwrap();
        c.current_dir(self.dir.path())
            .env("TELEGRAM_BOT_TOKEN", TOKEN)
            .env_remove("SELFSAME_VAULT")
            .env_remove("SELFSAME_READS")
            .env_remove("SELFSAME_FAILPOINT")
            .env_remove("SELFSAME_SHELL_VERSION");
        c
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.run_with(args, &[])
    }

    fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let mut c = self.cmd();
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.args(args).output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (
            out.status.code().unwrap_or(-1),
            text(&out.stdout),
            text(&out.stderr),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "{args:?}\nstdout: {out}\nstderr: {err}");
        out
    }

    fn json(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, Value) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let (code, out, err) = self.run_with(&all, env);
        let v = serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("{args:?}: {e}\nstdout: {out}\nstderr: {err}"));
        (code, v)
    }

    fn migration(&self, name: &str, text: &str) {
        let dir = self.path("migrations");
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn soul_tree(&self) -> BTreeMap<String, Vec<u8>> {
        tree(&self.path("soul"))
    }

    fn memory(&self) -> Value {
        serde_json::from_slice(&fs::read(self.path("soul/memory.json")).unwrap()).unwrap()
    }

    /// The head checkpoint's fields.
    fn head(&self) -> BTreeMap<String, String> {
        let seq = fs::read_to_string(self.path(".selfsame/HEAD")).unwrap();
        self.checkpoint(seq.trim().parse().unwrap())
    }

    fn checkpoint(&self, seq: u64) -> BTreeMap<String, String> {
        let text =
            fs::read_to_string(self.path(&format!(".selfsame/checkpoints/{seq:08}.ckpt"))).unwrap();
        text.trim_end()
            .split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_owned(), v.to_owned())
            })
            .collect()
    }

    fn history(&self, event: &str) -> Vec<Value> {
        fs::read_to_string(self.path(".selfsame/history.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v["event"] == event)
            .collect()
    }

    /// The vault's record: checkpoints, HEAD, history.
    fn record(&self) -> BTreeMap<String, Vec<u8>> {
        let mut t = tree(&self.path(".selfsame/checkpoints"));
        t.insert(
            "HEAD".into(),
            fs::read(self.path(".selfsame/HEAD")).unwrap(),
        );
        t.insert(
            "history".into(),
            fs::read(self.path(".selfsame/history.jsonl")).unwrap(),
        );
        t
    }

    fn quarantined(&self, suffix: &str) -> Vec<PathBuf> {
        fs::read_dir(self.path(".selfsame/quarantine"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(suffix))
            .collect()
    }

    fn set_config(&self, line_prefix: &str, line: &str) {
        let p = self.path(".selfsame/config.toml");
        let text = fs::read_to_string(&p).unwrap();
        let text: Vec<String> = text
            .lines()
            .map(|l| {
                if l.starts_with(line_prefix) {
                    line.to_owned()
                } else {
                    l.to_owned()
                }
            })
            .collect();
        fs::write(&p, text.join("\n") + "\n").unwrap();
    }
}

/// Every entry below `root`: files by content, directories and symlinks
/// marked, modes included.
fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let meta = fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                walk(root, &p, out);
            } else if meta.file_type().is_symlink() {
                out.insert(
                    rel,
                    fs::read_link(&p)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned()
                        .into_bytes(),
                );
            } else {
                let mut bytes = fs::read(&p).unwrap();
                bytes.extend(format!("\0mode={:o}", meta.permissions().mode() & 0o111).bytes());
                out.insert(rel, bytes);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

// --- must hold 1 ----------------------------------------------------------

#[test]
fn migrations_run_once_in_order_each_checkpointed() {
    let bot = Bot::new();
    bot.migration("v2-rename-name", V2);
    bot.migration("v3-facts-as-objects", V3);
    bot.migration("README.md", "not a migration: ignored\n");

    let before = bot.record();
    let (code, dry) = bot.json(&["migrate", "--dry-run"], &[]);
    assert_eq!(code, 0);
    assert_eq!(dry["pending"][0], "v2-rename-name");
    assert_eq!(dry["pending"][1], "v3-facts-as-objects");
    assert_eq!(bot.record(), before, "a dry run writes nothing");

    let (code, r) = bot.json(&["migrate"], &[]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["format"], "v3");
    assert_eq!(r["applied"].as_array().unwrap().len(), 2);

    // The soul is at v3, and two `migrate` checkpoints say so.
    let m = bot.memory();
    assert_eq!(m["full_name"], "Ada");
    assert_eq!(m["facts"][1]["text"], "born 1815");
    let (c2, c3) = (bot.checkpoint(2), bot.checkpoint(3));
    assert_eq!(
        (c2["reason"].as_str(), c2["format"].as_str()),
        ("migrate", "v2")
    );
    assert_eq!(
        (c3["reason"].as_str(), c3["format"].as_str()),
        ("migrate", "v3")
    );
    assert_eq!(bot.head()["seq"], "3");

    // One history event per migration, with its duration and changes.
    let events = bot.history("migrate");
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["migration"], "v2-rename-name");
    assert_eq!(events[1]["to"], "v3");
    for e in &events {
        assert_eq!(e["ok"], true);
        assert!(e["duration_ms"].is_u64());
        assert_eq!(e["changes"]["modified"], 1, "{e}");
    }
    assert!(bot.ok(&["verify"]).starts_with("ok:"));
    let (code, w) = bot.json(&["wake", "--reads", "v3"], &[]);
    assert_eq!((code, w["verdict"].as_str()), (0, Some("verified")), "{w}");
    bot.ok(&["seal"]);

    // Again: nothing pending, nothing written.
    let before = bot.record();
    let soul = bot.soul_tree();
    let out = bot.ok(&["migrate"]);
    assert!(out.contains("no migration pending"), "{out}");
    assert_eq!(bot.record(), before);
    assert_eq!(bot.soul_tree(), soul);
}

// --- must hold 2 ----------------------------------------------------------

#[test]
fn a_failing_migration_leaves_the_soul_untouched_and_exits_6() {
    let bot = Bot::new();
    bot.migration("v2-rename-name", V2);
    bot.migration("v3-broken", V3_FAILS);
    bot.ok(&["migrate", "--to", "v2"]);
    let soul = bot.soul_tree();

    let (code, out, err) = bot.run(&["migrate"]);
    assert_eq!(code, 6, "{out}\n{err}");
    assert!(out.contains("v3-broken") && out.contains("failed"), "{out}");
    assert_eq!(bot.soul_tree(), soul, "the soul is byte for byte unchanged");
    assert_eq!(bot.head()["format"], "v2");

    // The staging dir is kept for inspection, with the migration's output.
    let staged = bot.quarantined("-migrate-v3-failed");
    assert_eq!(staged.len(), 1);
    assert_eq!(
        fs::read_to_string(staged[0].join("memory.json")).unwrap(),
        "{\"half\":\n"
    );
    let failed = bot.history("migrate").pop().unwrap();
    assert_eq!(failed["ok"], false);
    assert!(failed["error"].as_str().unwrap().contains("exit status: 3"));
    bot.ok(&["verify"]);
    let (code, w) = bot.json(&["wake"], &[]);
    assert_eq!((code, w["verdict"].as_str()), (0, Some("verified")));
}

#[test]
fn a_migration_past_its_timeout_is_killed_and_the_soul_untouched() {
    let bot = Bot::new();
    bot.migration(
        "v2-slow",
        "#!/bin/sh\necho x > \"$SELFSAME_SOUL/z.txt\"\nexec sleep 30\n",
    );
    let soul = bot.soul_tree();
    let started = std::time::Instant::now();
    let (code, r) = bot.json(&["migrate", "--timeout", "1s"], &[]);
    assert!(started.elapsed().as_secs() < 20);
    assert_eq!(code, 6);
    assert!(
        r["failed"]["error"].as_str().unwrap().contains("timed out"),
        "{r}"
    );
    assert_eq!(bot.soul_tree(), soul);
    assert_eq!(bot.head()["format"], "v1");
}

/// The size of `path` now and a while later: equal when nothing writes to it.
fn size_then_later(path: &Path) -> (u64, u64) {
    let size = || fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let now = size();
    std::thread::sleep(std::time::Duration::from_millis(800));
    (now, size())
}

/// A migration that starts a child which opens `ticks` in the staging dir
/// and writes a line to it every 50 ms for ten seconds (wherever the file
/// moves: into the soul, or into quarantine), then ends (or sleeps past its
/// timeout). The child's output does not hold the command's pipes open.
fn forking_migration(then: &str) -> String {
    format!(
        "#!/bin/sh\n( exec 3>>ticks; i=0; while [ $i -lt 200 ]; do echo tick >&3; i=$((i+1)); sleep 0.05; done ) >/dev/null 2>&1 &\nsleep 0.3\n{then}\n"
    )
}

#[test]
fn a_timed_out_migration_is_killed_with_every_process_it_started() {
    // Issue 13, item 11: the child kept writing into quarantine after the
    // command said "killed".
    let bot = Bot::new();
    bot.migration("v2-forks", &forking_migration("exec sleep 30"));
    let (code, r) = bot.json(&["migrate", "--timeout", "1s"], &[]);
    assert_eq!(code, 6, "{r}");
    assert!(
        r["failed"]["error"].as_str().unwrap().contains("killed"),
        "{r}"
    );
    let staged = bot.quarantined("-migrate-v2-failed");
    assert_eq!(staged.len(), 1);
    let (now, later) = size_then_later(&staged[0].join("ticks"));
    assert!(now > 0, "the child ran");
    assert_eq!(now, later, "a child of the migration still writes");
    assert_eq!(bot.head()["format"], "v1");
}

#[test]
fn a_migration_that_exits_leaves_nothing_running_that_writes_into_the_soul() {
    let bot = Bot::new();
    bot.migration("v2-forks", &forking_migration("exit 0"));
    bot.ok(&["migrate"]);
    assert_eq!(bot.head()["format"], "v2");
    let (now, later) = size_then_later(&bot.path("soul/ticks"));
    assert!(now > 0, "the child ran");
    assert_eq!(now, later, "a child of the migration still writes");
    let (code, w) = bot.json(&["wake"], &[]);
    assert_eq!((code, w["verdict"].as_str()), (0, Some("verified")), "{w}");
}

#[test]
fn ctrl_c_stops_a_running_migration_with_every_process_it_started() {
    // The migration runs in a process group of its own, which a terminal's
    // Ctrl-C does not reach: selfsame ends it, then stops by SIGINT.
    use std::os::unix::process::ExitStatusExt;
    use std::time::{Duration, Instant};
    let bot = Bot::new();
    bot.migration("v2-forks", &forking_migration("exec sleep 30"));
    let soul = bot.soul_tree();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_selfsame"))
        .current_dir(bot.dir.path())
        .args(["migrate", "--timeout", "60s"])
        .env("TELEGRAM_BOT_TOKEN", TOKEN)
        .env_remove("SELFSAME_VAULT")
        .env_remove("SELFSAME_FAILPOINT")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ticks = bot.path("soul/.selfsame-restore/new/ticks");
    // Bounds for a loaded machine, not timings: the migration starts, and
    // the signal ends the run long before the migration's own 30 s.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ticks.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(ticks.exists(), "the migration never ran");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let asked = Instant::now();
    let status = child.wait().unwrap();
    assert!(asked.elapsed() < Duration::from_secs(25), "it ran on");
    assert_eq!(
        status.signal(),
        Some(nix::sys::signal::Signal::SIGINT as i32),
        "{status:?}"
    );
    let staged = bot.quarantined("-migrate-v2-failed");
    assert_eq!(staged.len(), 1);
    let (now, later) = size_then_later(&staged[0].join("ticks"));
    assert_eq!(now, later, "a child of the migration still writes");
    assert_eq!(bot.soul_tree(), soul, "the soul is untouched");
    assert_eq!(bot.head()["format"], "v1");
    assert_eq!(bot.history("migrate").last().unwrap()["ok"], false);
}

#[test]
fn a_wake_whose_migration_fails_records_incompatible_not_verified() {
    // Issue 13, item 12: the history said `verified` though the command
    // ended `incompatible` (exit 6).
    let bot = Bot::new();
    bot.migration(
        "v2-broken",
        "#!/bin/sh\necho 'v2: schema mismatch' >&2\nexit 3\n",
    );
    let before = bot.history("wake").len();
    let (code, w) = bot.json(
        &[
            "wake",
            "--reads",
            "v2",
            "--policy",
            "needs-migration=migrate",
        ],
        &[],
    );
    assert_eq!(code, 6, "{w}");
    assert_eq!(w["verdict"], "incompatible");
    let wakes = bot.history("wake");
    let this: Vec<&Value> = wakes[before..].iter().collect();
    assert_eq!(this.len(), 1, "one wake, one event: {this:?}");
    assert_eq!(this[0]["verdict"], "incompatible", "{}", this[0]);
    assert_eq!(this[0]["action"], "halt", "{}", this[0]);
    assert!(this[0]["message"].as_str().unwrap().contains("v2-broken"));
    // The failed migration's own event comes first; the wake's is the last word.
    let all: Vec<Value> = fs::read_to_string(bot.path(".selfsame/history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(all.last().unwrap()["event"], "wake");
}

// --- must hold 3 ----------------------------------------------------------

#[test]
fn a_migration_killed_at_any_point_is_finished_or_undone_by_the_next_wake() {
    // The post-migration soul, from an undisturbed run.
    let control = Bot::new();
    control.migration("v2-rename-name", V2);
    let pre = control.soul_tree();
    control.ok(&["migrate"]);
    let post = control.soul_tree();
    assert_ne!(pre, post);

    for (failpoint, expect_post) in [
        ("migrate-after-stage", false),
        ("migrate-mid-swap", true),
        ("migrate-mid-swap-in", true),
    ] {
        let bot = Bot::new();
        bot.migration("v2-rename-name", V2);
        let (code, _, err) = bot.run_with(&["migrate"], &[("SELFSAME_FAILPOINT", failpoint)]);
        assert_eq!(code, 97, "{failpoint}: {err}");
        if failpoint != "migrate-after-stage" {
            // Killed inside the swap: the soul is a mix right now.
            let now = bot.soul_tree();
            assert!(now != pre && now != post, "{failpoint}");
        }

        let (code, w) = bot.json(&["wake"], &[]);
        assert_eq!(code, 0, "{failpoint}: {w}");
        assert_eq!(w["verdict"], "verified", "{failpoint}: {w}");
        let soul = bot.soul_tree();
        if expect_post {
            assert_eq!(soul, post, "{failpoint}: the swap was finished");
            assert_eq!(bot.head()["format"], "v2");
            assert_eq!(bot.head()["reason"], "migrate");
            assert!(w["actions"][0]
                .as_str()
                .unwrap()
                .contains("interrupted migrate"));
        } else {
            assert_eq!(soul, pre, "{failpoint}: the migration was undone");
            assert_eq!(bot.head()["format"], "v1");
            assert!(w["actions"][0].as_str().unwrap().contains("undid"));
            assert_eq!(bot.quarantined("-migrate-v2-interrupted").len(), 1);
        }
        bot.ok(&["verify"]);
        // And the migration can be run (again) to the end.
        bot.ok(&["migrate"]);
        assert_eq!(bot.soul_tree(), post, "{failpoint}");
        assert_eq!(bot.history("migrate").last().unwrap()["ok"], true);
    }
}

// --- must hold 4 ----------------------------------------------------------

#[test]
fn a_shell_that_cannot_read_a_newer_soul_is_refused() {
    let bot = Bot::new();
    bot.migration("v2-rename-name", V2);
    bot.migration("v3-facts-as-objects", V3);
    bot.ok(&["migrate"]);
    let soul = bot.soul_tree();
    let record = bot.record().len();

    for (args, env) in [
        (vec!["wake", "--reads", "v1"], vec![]),
        (vec!["wake"], vec![("SELFSAME_READS", "v1..v2")]),
    ] {
        let (code, w) = bot.json(&args, &env);
        assert_eq!(code, 6, "{w}");
        assert_eq!(w["verdict"], "incompatible");
        assert_eq!(w["may_start"], false);
        let msg = w["message"].as_str().unwrap();
        assert!(msg.contains("v3") && msg.contains("downgrade"), "{msg}");
    }
    let (_, out, _) = bot.run(&["wake", "--reads", "v1"]);
    assert!(out.starts_with("incompatible:"), "{out}");
    assert_eq!(bot.soul_tree(), soul, "nothing written to the soul");
    assert_eq!(bot.record().len(), record, "no checkpoint written");
}

#[test]
fn an_older_soul_needs_migration_and_wake_can_migrate_it() {
    let bot = Bot::new();
    bot.migration("v2-rename-name", V2);
    bot.migration("v3-facts-as-objects", V3);
    let soul = bot.soul_tree();

    // A shell that reads v1..v3 starts on v1, with the warning.
    let (code, w) = bot.json(&["wake", "--reads", "v1..v3"], &[]);
    assert_eq!((code, w["verdict"].as_str()), (0, Some("verified")));
    assert_eq!(w["warnings"][0], "needs-migration");
    bot.ok(&["seal"]);

    // A shell that reads only v3 is refused without the migrate policy…
    let (code, w) = bot.json(&["wake", "--reads", "v3"], &[]);
    assert_eq!(code, 6);
    assert_eq!(w["verdict"], "incompatible");
    assert!(w["message"].as_str().unwrap().contains("selfsame migrate"));
    assert_eq!(bot.soul_tree(), soul);

    // …and with it, wake migrates first.
    let (code, w) = bot.json(
        &[
            "wake",
            "--reads",
            "v3",
            "--policy",
            "needs-migration=migrate",
        ],
        &[],
    );
    assert_eq!(code, 0, "{w}");
    assert_eq!(w["may_start"], true);
    assert_eq!(w["format"], "v3");
    assert_eq!(w["actions"].as_array().unwrap().len(), 2, "{w}");
    assert_eq!(bot.memory()["facts"][0]["text"], "likes tea");
    bot.ok(&["verify"]);
}

#[test]
fn run_applies_migrations_before_the_agent_starts() {
    let bot = Bot::new();
    bot.migration("v2-rename-name", V2);
    bot.migration("v3-facts-as-objects", V3);
    bot.set_config("# reads =", "reads = \"v3\"");
    // An edited config is adopted by the owner before the next wake.
    bot.ok(&["accept"]);
    // The agent records the soul it finds at start, outside the soul.
    let agent = "import json; m = json.load(open('soul/memory.json')); json.dump(m, open('seen.json', 'w'))";
    // No policy flag: under `run`, needs-migration=migrate is the default.
    let (code, out, err) = bot.run(&["run", "--", "python3", "-c", agent]);
    assert_eq!(code, 0, "{out}\n{err}");
    let seen: Value = serde_json::from_slice(&fs::read(bot.path("seen.json")).unwrap()).unwrap();
    assert_eq!(seen["full_name"], "Ada", "the agent saw the migrated soul");
    assert_eq!(seen["facts"][0]["text"], "likes tea");
    assert_eq!(bot.history("migrate").len(), 2);
    assert_eq!(bot.head()["format"], "v3");
}

// --- must hold 5 ----------------------------------------------------------

#[test]
fn gaps_and_duplicates_are_config_errors_naming_the_files() {
    let gap = Bot::new();
    gap.migration("v2-add-field", V2);
    gap.migration("v4-later", V3);
    let dup = Bot::new();
    dup.migration("v2-one-way", V2);
    dup.migration("v2-another-way", V2);
    dup.migration("v3-facts-as-objects", V3);

    for (bot, names) in [
        (&gap, ["v2-add-field", "v4-later"]),
        (&dup, ["v2-one-way", "v2-another-way"]),
    ] {
        let soul = bot.soul_tree();
        for args in [vec!["migrate"], vec!["wake", "--reads", "v3"]] {
            let (code, _, err) = bot.run(&args);
            assert_eq!(code, 2, "{args:?}: {err}");
            for n in names {
                assert!(err.contains(n), "{args:?}: {err}");
            }
        }
        assert_eq!(bot.soul_tree(), soul);
        assert_eq!(bot.head()["seq"], "1");
    }
}

// --- must hold 6 ----------------------------------------------------------

#[test]
fn rekey_moves_the_vault_to_a_new_token() {
    let bot = Bot::new();
    fs::write(bot.path("soul/z.txt"), "changed\n").unwrap();
    bot.ok(&["seal"]);
    bot.ok(&["verify"]);
    let new = [("TELEGRAM_BOT_TOKEN", NEW_TOKEN)];
    let old = [("TELEGRAM_BOT_TOKEN", TOKEN)];

    // Before: the new token sees forgeries (or rotation) and says so.
    let (code, w) = bot.json(&["wake"], &new);
    assert_eq!((code, w["detail"].as_str()), (4, Some("mac-invalid")));
    assert!(w["message"].as_str().unwrap().contains("rekey"));

    // Refused: a token of another bot; an old token that does not verify.
    let record = bot.record();
    for (old_token, expect) in [(OTHER_BOT, "bot 654321"), (WRONG_SECRET, "old token")] {
        let (code, out, err) = bot.run_with(
            &["rekey", "--old-token-env", "OLD", "--new-token-env", "NEW"],
            &[("OLD", old_token), ("NEW", NEW_TOKEN)],
        );
        assert_eq!(code, 4, "{out}\n{err}");
        assert!(err.contains(expect), "{err}");
        assert_eq!(bot.record(), record, "nothing written");
    }
    let (code, _, err) = bot.run_with(
        &["rekey", "--old-token-env", "OLD", "--new-token-env", "NEW"],
        &[("OLD", TOKEN), ("NEW", OTHER_BOT)],
    );
    assert_eq!(code, 4, "{err}");
    assert_eq!(bot.record(), record);

    // Rekey, tokens from files.
    fs::write(bot.path("old.txt"), format!("{TOKEN}\n")).unwrap();
    fs::write(bot.path("new.txt"), format!("{NEW_TOKEN}\n")).unwrap();
    let (code, out, err) = bot.run(&[
        "rekey",
        "--old-token-file",
        "old.txt",
        "--new-token-file",
        "new.txt",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    for secret in ["old-secret", "new-secret"] {
        assert!(!out.contains(secret) && !err.contains(secret));
    }
    let head = bot.head();
    assert_eq!(
        (head["seq"].as_str(), head["reason"].as_str()),
        ("3", "rekey")
    );
    assert_eq!(head["prev_key_hash"].len(), 64);
    assert_ne!(head["prev_key_hash"], head["hash"]);
    assert_eq!(bot.history("rekey").len(), 1);

    // The new token verifies everything, vouching for the old checkpoints.
    let (code, out, _) = bot.run_with(&["verify"], &new);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("vouches"), "{out}");
    let (code, w) = bot.json(&["wake"], &new);
    assert_eq!((code, w["verdict"].as_str()), (0, Some("verified")), "{w}");
    assert!(w["message"]
        .as_str()
        .unwrap()
        .contains("vouched for by rekey checkpoint 3"));
    fs::write(bot.path("soul/z.txt"), "after the rekey\n").unwrap();
    let (code, _, err) = bot.run_with(&["seal"], &new);
    assert_eq!(code, 0, "{err}");
    assert_eq!(bot.run_with(&["verify"], &new).0, 0);
    // A checkpoint from before the rekey can still be restored.
    let (code, _, err) = bot.run_with(&["restore", "1"], &new);
    assert_eq!(code, 0, "{err}");
    assert_eq!(bot.run_with(&["verify"], &new).0, 0);

    // The old token is refused, with the reason.
    let (code, w) = bot.json(&["wake"], &old);
    assert_eq!(code, 4, "{w}");
    assert_eq!(w["verdict"], "identity-mismatch");
    assert_eq!(w["detail"], "mac-invalid");
    let msg = w["message"].as_str().unwrap();
    assert!(
        msg.contains("retired by the rekey at checkpoint 3"),
        "{msg}"
    );
    assert_eq!(bot.run_with(&["verify"], &old).0, 4);
}
