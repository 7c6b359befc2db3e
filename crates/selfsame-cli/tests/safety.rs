//! Issue 3, must hold 4, 6 and 8: restore never writes outside the soul and
//! finishes after a crash; concurrent seals never corrupt the vault; a crash
//! at each step of a seal loses nothing. Every test ends with the
//! token-leak scan (must hold 5).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use selfsame::ops::seal::Reason;
use selfsame::testing::VaultFiles;
use selfsame::testing::{identity_key, sha256, Keys};
use selfsame::testing::{Draft, Header};
use selfsame::testing::{Entry, Kind, Manifest, ManifestVersion};
use selfsame::{Credential, Platform, Vault};
use serde_json::Value;

// --- must hold 4: restore safety ------------------------------------------

/// Signs, with the real token, a checkpoint on top of the head whose
/// manifest is `entries` as given (no path checks): what someone who holds
/// the token, or a buggy shell, could put in the vault. Returns its seq.
fn plant_checkpoint(env: &Env, entries: Vec<Entry>) -> u64 {
    let vault = Vault::open(&env.vault()).unwrap();
    let token = Credential::parse(Platform::Telegram, TOKEN).unwrap();
    let objects = vault.objects();
    let manifest = Manifest {
        version: ManifestVersion::V1,
        entries,
    };
    let bytes = manifest.to_bytes();
    let soul = sha256(&bytes);
    objects.put(&soul, &bytes).unwrap();
    let head = vault
        .read_checkpoint(vault.read_head().unwrap().unwrap())
        .unwrap();
    let draft = Draft {
        header: Header {
            seq: head.ckpt.seq + 1,
            prev: head.file_hash.clone(),
            soul: soul.iter().map(|b| format!("{b:02x}")).collect(),
            files: manifest.files(),
            bytes: manifest.bytes(),
            sealed_at: "2030-01-01T00:00:00.000Z".into(),
            reason: Reason::Manual.as_str().into(),
            shell: "hostile".into(),
            format: "v1".into(),
            log: vault.history().tail().unwrap().0,
            platform: "telegram".into(),
            bot_id: token.account_id(),
        },
        extra: Vec::new(),
    };
    let identity = identity_key(&vault, &token).unwrap();
    let ckpt = Keys::of(&token).sign(&draft, identity.as_ref());
    vault.write_checkpoint(&ckpt).unwrap();
    vault.write_head(ckpt.seq).unwrap();
    ckpt.seq
}

/// A file entry whose content is `content`, stored as an object.
fn file_entry(env: &Env, path: &str, content: &[u8]) -> Entry {
    let hash = sha256(content);
    Vault::open(&env.vault())
        .unwrap()
        .objects()
        .put(&hash, content)
        .unwrap();
    Entry {
        kind: Kind::File,
        mode: 0o644,
        hash,
        size: content.len() as u64,
        path: path.into(),
    }
}

fn link_entry(env: &Env, path: &str, target: &str) -> Entry {
    Entry {
        kind: Kind::Symlink,
        mode: 0,
        ..file_entry(env, path, target.as_bytes())
    }
}

fn dir_entry(path: &str) -> Entry {
    Entry {
        kind: Kind::Dir,
        mode: 0o755,
        hash: [0; 32],
        size: 0,
        path: path.into(),
    }
}

/// Everything in the temp dir outside the soul and the vault.
fn outside(env: &Env) -> BTreeMap<String, Node> {
    tree(env.base())
        .into_iter()
        .filter(|(p, _)| !p.starts_with("soul/") && p != "soul" && !p.starts_with(".selfsame"))
        .collect()
}

/// Plants a hostile checkpoint, runs `selfsame restore N`, and checks that
/// it failed and wrote nothing anywhere: not outside, not in the soul.
fn hostile_restore_refused(env: &Env, entries: Vec<Entry>, also_absent: &[PathBuf]) {
    fs::create_dir(env.base().join("sentinel")).unwrap();
    fs::write(env.base().join("sentinel/keep"), "untouched\n").unwrap();
    let seq = plant_checkpoint(env, entries);
    let soul_before = tree(&env.soul());
    let outside_before = outside(env);
    let out = env.run(&["restore", &seq.to_string()]);
    assert_ne!(
        out.code, 0,
        "a hostile manifest was restored: {}",
        out.stdout
    );
    assert_ne!(out.code, 97);
    // Refused by the manifest's path checks, not by something unrelated.
    assert!(out.stderr.contains("manifest"), "{}", out.stderr);
    for p in also_absent {
        let existed = fs::symlink_metadata(p).is_ok();
        let _ = fs::remove_file(p);
        assert!(!existed, "restore wrote {}", p.display());
    }
    assert_eq!(
        outside(env),
        outside_before,
        "restore wrote outside the soul"
    );
    assert_eq!(
        tree(&env.soul()),
        soul_before,
        "a refused restore changed the soul"
    );
    assert!(env.quarantined().is_empty());
    assert!(!env.vault().join("run/restore.journal").exists());
}

#[test]
fn restore_of_a_manifest_with_dotdot_paths_writes_nothing_outside_the_soul() {
    let env = Env::at_rest();
    let entries = vec![
        file_entry(&env, "../escaped", b"pwned\n"),
        file_entry(&env, "../../escaped2", b"pwned\n"),
        file_entry(&env, "../../../escaped3", b"pwned\n"),
        file_entry(&env, "../sentinel/keep", b"overwritten\n"),
        file_entry(&env, "notes/../../escaped4", b"pwned\n"),
    ];
    let base = env.base().to_owned();
    hostile_restore_refused(
        &env,
        entries,
        &[
            base.join("escaped"),
            base.parent().unwrap().join("escaped3"),
            base.join("escaped4"),
        ],
    );
}

#[test]
fn restore_of_a_manifest_with_absolute_paths_writes_nothing_outside_the_soul() {
    let env = Env::at_rest();
    let abs = env.base().join("sentinel/abs");
    // `/etc/x` itself, with a name no system has, and an absolute path into
    // the sentinel directory next to the soul.
    let etc = PathBuf::from(format!("/etc/selfsame-test-{}", std::process::id()));
    let entries = vec![
        file_entry(&env, etc.to_str().unwrap(), b"pwned\n"),
        file_entry(&env, abs.to_str().unwrap(), b"pwned\n"),
    ];
    hostile_restore_refused(&env, entries, &[etc, abs]);
}

#[test]
fn restore_of_a_manifest_with_a_file_under_a_symlinked_parent_writes_nothing_outside_the_soul() {
    let env = Env::at_rest();
    let sentinel = env.base().join("sentinel");
    let entries = vec![
        link_entry(&env, "door", sentinel.to_str().unwrap()),
        file_entry(&env, "door/planted", b"pwned\n"),
        link_entry(&env, "up", ".."),
        file_entry(&env, "up/planted", b"pwned\n"),
    ];
    let also = [sentinel.join("planted"), env.base().join("planted")];
    hostile_restore_refused(&env, entries, &also);
}

#[test]
fn restore_of_a_manifest_listing_a_dir_and_a_symlink_at_one_path_is_refused() {
    let env = Env::at_rest();
    let sentinel = env.base().join("sentinel");
    let entries = vec![
        dir_entry("door"),
        link_entry(&env, "door", sentinel.to_str().unwrap()),
        file_entry(&env, "door/planted", b"pwned\n"),
    ];
    hostile_restore_refused(&env, entries, &[sentinel.join("planted")]);
}

#[test]
fn restore_through_a_planted_staging_symlink_writes_nothing_outside_the_soul() {
    // Someone who can write the soul points the restore work dir elsewhere.
    let env = Env::at_rest();
    let sentinel = env.base().join("sentinel");
    fs::create_dir(&sentinel).unwrap();
    std::os::unix::fs::symlink(&sentinel, env.soul().join(".selfsame-restore")).unwrap();
    let sealed = tree(&env.soul());
    let out = env.run(&["restore", "2"]).expect_code(0);
    assert!(
        out.stdout.contains("restored checkpoint 2"),
        "{}",
        out.stdout
    );
    assert_eq!(
        tree(&sentinel),
        BTreeMap::new(),
        "restore wrote into the link target"
    );
    let mut expected = sealed.clone();
    expected.remove(".selfsame-restore");
    assert_eq!(tree(&env.soul()), expected);
    env.verify_clean();
}

#[test]
fn library_stage_refuses_a_hostile_manifest_that_never_went_through_parse() {
    // `stage` is public: a library caller may hand it a manifest built in
    // memory. It must not trust those paths either.
    let env = Env::at_rest();
    let sentinel = env.base().join("sentinel");
    fs::create_dir(&sentinel).unwrap();
    let objects = Vault::open(&env.vault()).unwrap().objects();
    let cases: Vec<Vec<Entry>> = vec![
        vec![file_entry(
            &env,
            sentinel.join("abs").to_str().unwrap(),
            b"x",
        )],
        vec![file_entry(&env, "../sentinel/up", b"x")],
        vec![
            link_entry(&env, "door", sentinel.to_str().unwrap()),
            file_entry(&env, "door/planted", b"x"),
        ],
        vec![
            dir_entry("a"),
            link_entry(&env, "a/door", sentinel.to_str().unwrap()),
            dir_entry("a/door/sub"),
            file_entry(&env, "a/door/sub/planted", b"x"),
        ],
    ];
    for (i, entries) in cases.into_iter().enumerate() {
        let dest = env.base().join(format!("stage-{i}"));
        let manifest = Manifest {
            version: ManifestVersion::V1,
            entries,
        };
        let r = selfsame::testing::stage(&objects, &manifest, &dest, &selfsame::progress::Silent);
        assert!(r.is_err(), "case {i}: staged {manifest:?}");
        assert_eq!(tree(&sentinel), BTreeMap::new(), "case {i} wrote outside");
        let _ = fs::remove_dir_all(&dest);
    }
}

/// Checkpoint 1 is the rich soul; checkpoint 2 a changed one; then the soul
/// changes again, unsealed. Returns (tree of checkpoint 1, current tree).
fn two_states(env: &Env) -> (BTreeMap<String, Node>, BTreeMap<String, Node>) {
    let first = tree(&env.soul());
    env.wake(&[]).expect_code(0);
    let s = env.soul();
    fs::write(s.join("memory.jsonl"), "{\"said\":\"later\"}\n").unwrap();
    fs::remove_dir_all(s.join("notes/deep")).unwrap();
    write(&s, "new.txt", b"new\n", 0o600);
    env.run(&["seal"]).expect_code(0);
    write(&s, "unsealed.txt", b"written after the seal\n", 0o644);
    fs::remove_file(s.join(NON_ASCII)).unwrap();
    let current = tree(&env.soul());
    (first, current)
}

fn crashed_restore_finishes(failpoint: &str, finish: &[&str]) -> Env {
    let env = Env::new();
    let (target, current) = two_states(&env);
    let out = env.run_env(&["restore", "1"], &[("SELFSAME_FAILPOINT", failpoint)]);
    assert_eq!(
        out.code, 97,
        "failpoint {failpoint} did not fire: {}",
        out.stderr
    );
    assert_ne!(
        tree(&env.soul()),
        target,
        "the crash came before the restore ended"
    );
    // The vault is not damaged by the crash; verify notes the pending work.
    let out = env.run(&["--json", "verify"]).expect_code(0);
    assert!(out.stdout.contains("interrupted restore"), "{}", out.stdout);
    // Nothing else may write while a restore is half done.
    assert_ne!(
        env.run(&["seal"]).code,
        0,
        "seal ran over a half-done restore"
    );

    let out = env.run(finish);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let mut expected = target.clone();
    expected.retain(|p, _| !p.starts_with(".selfsame-restore"));
    assert_eq!(tree(&env.soul()), expected, "soul is not checkpoint 1");
    let q = env.quarantined();
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(
        tree(&q[0]),
        current,
        "quarantine is not the exact previous soul"
    );
    assert!(!env.vault().join("run/restore.journal").exists());
    assert_eq!(env.head(), 3, "a restore checkpoint was sealed");
    assert_eq!(env.checkpoint_field(3, "reason"), "restore");
    assert_eq!(
        env.checkpoint_field(3, "soul"),
        env.checkpoint_field(1, "soul")
    );
    env.verify_clean();
    env
}

#[test]
fn restore_crash_mid_swap_then_wake_ends_with_the_target_soul_and_the_old_in_quarantine() {
    let env = crashed_restore_finishes("restore-mid-swap", &["--json", "wake"]);
    let h = env.history();
    let restore = h
        .iter()
        .find(|e| e["event"] == "restore")
        .expect("restore event");
    assert_eq!(restore["resumed"], true);
    // The wake that finished it is verified: the soul is the new head.
    let wake = h.iter().rev().find(|e| e["event"] == "wake").unwrap();
    assert_eq!(wake["verdict"], "verified");
    let v: Value = env.wake(&[]).expect_code(0).json();
    assert_eq!(v["verdict"], "verified");
}

#[test]
fn restore_crash_after_stage_then_wake_finishes_it() {
    crashed_restore_finishes("restore-after-stage", &["wake"]);
}

#[test]
fn restore_crash_mid_swap_then_restore_resume_finishes_it() {
    crashed_restore_finishes("restore-mid-swap", &["restore", "--resume"]);
}

#[test]
fn restore_moves_a_non_utf8_top_level_name_to_quarantine_whole() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let env = Env::at_rest();
    let sealed = tree(&env.soul());
    // `caf\xe9`: Latin-1, not UTF-8. A lossy name would be `caf\u{fffd}`.
    let cafe = env.soul().join(OsStr::from_bytes(b"caf\xe9"));
    fs::write(&cafe, "not UTF-8\n").unwrap();
    let dir = env.soul().join(OsStr::from_bytes(b"d\xff"));
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("inner"), "inside\n").unwrap();

    let out = env.run(&["restore", "2"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(!env.vault().join("run/restore.journal").exists());
    assert!(!env.soul().join(".selfsame-restore").exists());
    assert_eq!(tree(&env.soul()), sealed, "soul is not checkpoint 2");
    let q = env.quarantined();
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(
        fs::read_to_string(q[0].join(OsStr::from_bytes(b"caf\xe9"))).unwrap(),
        "not UTF-8\n"
    );
    assert_eq!(
        fs::read_to_string(q[0].join(OsStr::from_bytes(b"d\xff/inner"))).unwrap(),
        "inside\n"
    );
    let v = env.wake(&[]).expect_code(0).json();
    assert_eq!(v["verdict"], "verified");
    env.verify_clean();
}

#[test]
fn restore_refuses_a_checkpoint_entry_that_an_exclude_keeps_in_place() {
    // Checkpoint 2 has `memory.jsonl` and `notes/`; both are excluded
    // afterwards (the owner adopts that config: checkpoint 3), and the live
    // soul holds newer versions. A swap would keep them in place and then
    // have to put the checkpoint's over them.
    let env = Env::at_rest();
    let cfg = env.vault().join("config.toml");
    let text = fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("exclude = []"), "{text}");
    fs::write(
        &cfg,
        text.replace("exclude = []", "exclude = [\"memory.jsonl\", \"notes\"]"),
    )
    .unwrap();
    env.run(&["accept"]).expect_code(0);
    write(&env.soul(), "memory.jsonl", b"live memory\n", 0o644);
    write(&env.soul(), "notes/live.md", b"a live note\n", 0o644);
    let before = tree(&env.soul());

    let out = env.run(&["restore", "2"]);
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("memory.jsonl"), "{}", out.stderr);
    assert!(out.stderr.contains("exclude"), "{}", out.stderr);
    assert_eq!(
        tree(&env.soul()),
        before,
        "a refused restore touched the soul"
    );
    assert!(!env.vault().join("run/restore.journal").exists());
    assert!(env.quarantined().is_empty());
    assert_eq!(env.head(), 3);
    // Nothing is left half done: the vault still works.
    env.run(&["seal"]).expect_code(0);
}

// --- must hold 6: concurrent seals ----------------------------------------

#[test]
fn concurrent_seals_never_corrupt_the_vault() {
    let env = Env::at_rest();
    let mut expected_head = env.head();
    for round in 0..4 {
        write(
            &env.soul(),
            "memory.jsonl",
            format!("round {round}\n").as_bytes(),
            0o644,
        );
        let reasons = if round % 2 == 0 {
            ["rest", "rest"]
        } else {
            ["manual", "rest"]
        };
        let a = env.spawn(&["--json", "seal", "--reason", reasons[0]]);
        let b = env.spawn(&["--json", "seal", "--reason", reasons[1]]);
        let (a, b) = (env.finish(a), env.finish(b));
        for o in [&a, &b] {
            assert_eq!(o.code, 0, "round {round}: {}\n{}", o.stdout, o.stderr);
        }
        let (sa, sb) = (
            a.json()["seq"].as_u64().unwrap(),
            b.json()["seq"].as_u64().unwrap(),
        );
        assert_ne!(sa, sb, "two seals claimed one seq");
        expected_head += 2;
        assert_eq!(sa.max(sb), expected_head);
        assert_eq!(env.head(), expected_head);
        env.verify_clean();
    }
    for seq in 1..=expected_head {
        assert!(env.checkpoint(seq).exists(), "checkpoint {seq}");
    }
    let seals = env
        .history()
        .iter()
        .filter(|e| e["event"] == "seal")
        .count() as u64;
    assert_eq!(seals, expected_head);
    assert_eq!(env.wake(&[]).expect_code(0).json()["verdict"], "verified");
}

#[test]
fn a_writer_that_cannot_get_the_lock_exits_75_naming_the_holder() {
    let env = Env::at_rest();
    let lock = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(env.vault().join("run/lock"))
        .unwrap();
    lock.lock().unwrap();
    // The holder (this test) writes its pid, as selfsame does; a waiter
    // names only a pid that is alive.
    let holder = std::process::id().to_string();
    fs::write(env.vault().join("run/lock"), &holder).unwrap();
    let before = fs::read_dir(env.vault().join("checkpoints"))
        .unwrap()
        .count();
    let out = env.run_env(&["seal"], &[("SELFSAME_LOCK_WAIT", "300ms")]);
    assert_eq!(out.code, 75, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("pid {holder}")),
        "{}",
        out.stderr
    );
    assert_eq!(
        fs::read_dir(env.vault().join("checkpoints"))
            .unwrap()
            .count(),
        before
    );
    drop(lock);
    env.run(&["seal"]).expect_code(0);
}

// --- must hold 8: crash safety of seal ------------------------------------

/// The bytes of every checkpoint file, by name.
fn checkpoint_bytes(vault: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(vault.join("checkpoints"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// The agent is awake on checkpoint 2 and changes its soul; the rest seal
/// at stop crashes at `failpoint`. Then wake and verify.
fn seal_crash(failpoint: &str) -> (Env, Value) {
    let env = Env::at_rest();
    env.wake(&[]).expect_code(0);
    let sealed = checkpoint_bytes(&env.vault());
    write(
        &env.soul(),
        "memory.jsonl",
        b"{\"said\":\"before stop\"}\n",
        0o644,
    );
    write(&env.soul(), "notes/c.md", b"a new note\n", 0o644);
    let state = tree(&env.soul());
    let out = env.run_env(&["seal"], &[("SELFSAME_FAILPOINT", failpoint)]);
    assert_eq!(
        out.code, 97,
        "failpoint {failpoint} did not fire: {}",
        out.stderr
    );
    // A crash is not damage: verify is clean before wake repairs anything.
    env.run(&["verify", "--read-data"]).expect_code(0);

    let out = env.wake(&[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let v = out.json();
    env.verify_clean();
    // Nothing sealed before is lost, byte for byte, and the soul is as the
    // agent left it.
    let after = checkpoint_bytes(&env.vault());
    for (name, bytes) in &sealed {
        assert_eq!(after.get(name), Some(bytes), "{name} changed or vanished");
    }
    assert_eq!(tree(&env.soul()), state);
    // Whatever happened, the head now holds the agent's last state.
    let head = env.head();
    let soul = env.checkpoint_field(head, "soul");
    assert_eq!(v["soul"], soul);
    assert_eq!(env.wake(&[]).expect_code(0).json()["verdict"], "verified");
    (env, v)
}

#[test]
fn seal_crash_after_objects_then_wake_is_drifted_and_accepted() {
    // The rest seal never wrote a checkpoint, so the marker stayed: drift.
    let (env, v) = seal_crash("seal-after-objects");
    assert_eq!(v["verdict"], "drifted");
    assert_eq!(v["action"], "accept");
    assert_eq!(v["seq"], 2);
    assert_eq!(v["head"], 3);
    assert_eq!(env.checkpoint_field(3, "reason"), "recover");
}

#[test]
fn seal_crash_after_manifest_then_wake_is_drifted_and_accepted() {
    let (env, v) = seal_crash("seal-after-manifest");
    assert_eq!(v["verdict"], "drifted");
    assert_eq!(v["head"], 3);
    assert_eq!(env.checkpoint_field(3, "reason"), "recover");
}

#[test]
fn seal_crash_after_checkpoint_then_wake_is_verified_and_moves_head() {
    let (env, v) = seal_crash("seal-after-checkpoint");
    assert_eq!(v["verdict"], "verified");
    assert_eq!(v["seq"], 3);
    assert_eq!(env.checkpoint_field(3, "reason"), "rest");
    let actions = strings(&v["actions"]);
    assert!(actions.iter().any(|a| a.contains("HEAD")), "{actions:?}");
    assert!(env.history().iter().any(|e| e["event"] == "repair"));
}

#[test]
fn seal_crash_after_head_then_wake_is_verified() {
    let (env, v) = seal_crash("seal-after-head");
    assert_eq!(v["verdict"], "verified");
    assert_eq!(v["seq"], 3);
    assert_eq!(v["head"], 3);
    assert_eq!(env.checkpoint_field(3, "reason"), "rest");
}

// --- a soul the agent writes while it is sealed ----------------------------

/// The agent makes and deletes files and directories without pause (its
/// temporary files, a SQLite `-journal` at each commit): a file the walk
/// lists can be gone when the seal comes to read it, a directory gone when
/// the walk descends into it. Every heartbeat seal still succeeds and
/// records a soul that was there; at rest, the soul as sealed verifies.
#[test]
fn heartbeats_while_the_agent_makes_and_deletes_files_all_succeed() {
    let env = Env::new();
    let stop = env.base().join("stop");
    let mut agent = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            r#"
import os, sys
soul, stop = sys.argv[1:3]
n = 0
while not os.path.exists(stop):
    n += 1
    d = os.path.join(soul, "work-%d" % (n % 7))
    os.makedirs(d, exist_ok=True)
    for i in range(20):
        with open(os.path.join(d, "t%d.tmp" % i), "wb") as f:
            f.write(os.urandom(2000))
    for i in range(20):
        os.unlink(os.path.join(d, "t%d.tmp" % i))
    os.rmdir(d)
"#,
        )
        .arg(env.soul())
        .arg(&stop)
        .spawn()
        .expect("python3");
    let failures: Vec<String> = (0..40)
        .filter_map(|_| {
            let out = env
                .command(TOKEN, &["seal", "--reason", "heartbeat"])
                .output()
                .unwrap();
            (!out.status.success()).then(|| String::from_utf8_lossy(&out.stderr).into_owned())
        })
        .collect();
    fs::write(&stop, "").unwrap();
    assert!(agent.wait().unwrap().success(), "the agent failed");
    assert!(
        failures.is_empty(),
        "{} of 40 seals failed: {:?}",
        failures.len(),
        failures.first()
    );
    env.run(&["seal"]).expect_code(0);
    let v = env.wake(&[]).expect_code(0).json();
    assert_eq!(v["verdict"], "verified", "{v}");
    env.verify_clean();
}

/// The vault's own directories are never followed out of it: a fan-out
/// directory of objects/ that is a symlink to a directory outside holding
/// a file named like an object is damage to `verify` and `prune` (exit 5,
/// naming it), and the file outside is kept; `cache/` or `run/` swapped
/// for a symlink is damage to every command that opens the vault.
#[test]
fn symlinked_vault_directories_are_damage_and_nothing_outside_is_touched() {
    let env = Env::at_rest();
    let out_dir = env.base().join("precious");
    fs::create_dir(&out_dir).unwrap();
    let victim = out_dir.join("ab".repeat(31));
    fs::write(&victim, "mine\n").unwrap();
    // A fan-out name not in use (loose objects, such as the sealed config,
    // live in others).
    let name = (0..=255u8)
        .map(|b| format!("{b:02x}"))
        .find(|n| !env.vault().join("objects").join(n).exists())
        .unwrap();
    let fanout = env.vault().join("objects").join(&name);
    std::os::unix::fs::symlink(&out_dir, &fanout).unwrap();
    for cmd in [&["verify"][..], &["prune"][..]] {
        let out = env.run(cmd);
        assert_eq!(out.code, 5, "{cmd:?}: {}{}", out.stdout, out.stderr);
        let said = format!("{}{}", out.stdout, out.stderr);
        assert!(said.contains(&format!("objects/{name}")), "{cmd:?}: {said}");
    }
    assert_eq!(fs::read_to_string(&victim).unwrap(), "mine\n");
    fs::remove_file(&fanout).unwrap();
    env.verify_clean();

    for dir in ["cache", "run"] {
        let real = env.vault().join(dir);
        let aside = env.base().join(format!("{dir}.real"));
        fs::rename(&real, &aside).unwrap();
        std::os::unix::fs::symlink(&out_dir, &real).unwrap();
        let out = env.run(&["seal"]);
        assert_eq!(out.code, 5, "{dir}: {}", out.stderr);
        assert!(
            out.stderr.contains("not a directory"),
            "{dir}: {}",
            out.stderr
        );
        fs::remove_file(&real).unwrap();
        fs::rename(&aside, &real).unwrap();
    }
    let left: Vec<_> = fs::read_dir(&out_dir).unwrap().flatten().collect();
    assert_eq!(left.len(), 1, "nothing written outside: {left:?}");
    env.verify_clean();
}

/// A FIFO at the stat cache or at the lock is damage to `verify` and
/// `wake` as to the commands that use them (exit 5, `bad-file`, naming
/// it), not fine to one and damage to another; nothing waits on it.
#[test]
fn a_fifo_at_a_working_file_is_damage_to_every_command() {
    use rustix::fs::{mknodat, FileType, Mode, CWD};
    let env = Env::at_rest();
    env.run(&["seal"]).expect_code(0);
    for rel in ["cache/stat", "run/lock"] {
        let path = env.vault().join(rel);
        let _ = fs::remove_file(&path);
        mknodat(CWD, &path, FileType::Fifo, Mode::RUSR | Mode::WUSR, 0).unwrap();
        for cmd in [&["verify"][..], &["wake"][..], &["seal"][..]] {
            let out = env.run(cmd);
            assert_eq!(out.code, 5, "{rel}, {cmd:?}: {}{}", out.stdout, out.stderr);
            let said = format!("{}{}", out.stdout, out.stderr);
            assert!(
                said.contains(rel) && said.contains("FIFO"),
                "{rel}, {cmd:?}: {said}"
            );
        }
        fs::remove_file(&path).unwrap();
    }
    env.run(&["seal"]).expect_code(0);
    env.verify_clean();
}

/// A soul entry that cannot be recorded (a name that is not UTF-8): wake
/// halts and its last line says to remove or exclude it, not to inspect
/// with `diff` and accept, which would both fail on it.
#[test]
fn wake_on_an_unrecordable_entry_says_what_works() {
    use std::os::unix::ffi::OsStrExt;
    let env = Env::at_rest();
    fs::write(
        env.soul().join(std::ffi::OsStr::from_bytes(b"bad\xff")),
        "x",
    )
    .unwrap();
    let out = env.run(&["wake"]);
    assert_eq!(out.code, 3, "{}", out.stdout);
    let last = out.stdout.lines().last().unwrap();
    assert!(
        last.contains("cannot be recorded") && last.contains("remove it"),
        "{last}"
    );
    assert!(!last.contains("selfsame diff"), "{last}");
}
