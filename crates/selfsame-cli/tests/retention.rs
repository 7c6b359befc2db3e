//! Issue 15, builds 3 and 4, must hold 4 and 5: retention. `selfsame
//! forget` releases old snapshots by a policy with restic's meanings (the
//! checkpoints stay), `selfsame prune` removes what no kept checkpoint
//! needs; every kept checkpoint stays restorable byte for byte and the
//! vault verifies with `--read-data`, a forgotten one is named as such,
//! and 20 crashes during a prune lose nothing reachable.

mod common;

use std::collections::BTreeMap;
use std::fs;

use common::*;
use serde_json::Value;

/// Bytes that differ from seed to seed (so no two files share objects).
fn noise(seed: u64, len: usize) -> Vec<u8> {
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

/// The moment of seal `i`: every 40 minutes from 2030-01-01T00:00Z.
fn when(i: u64) -> String {
    let secs = 1_893_456_000 + i * 2400;
    humantime::format_rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .to_string()
}

/// A vault with checkpoint 1 (init, the rich soul), then `n` manual seals
/// 40 minutes apart (checkpoints 2..=n+1), each adding a file of its own
/// and rewriting `memory.jsonl`. Returns the soul tree sealed by each.
fn sealed_history(n: u64, file_size: usize) -> (Env, BTreeMap<u64, BTreeMap<String, Node>>) {
    let env = Env::new();
    let mut trees = BTreeMap::new();
    trees.insert(1, tree(&env.soul()));
    for i in 1..=n {
        write(
            &env.soul(),
            &format!("notes/day-{i:03}.bin"),
            &noise(i, file_size),
            0o600,
        );
        write(
            &env.soul(),
            "memory.jsonl",
            format!("{{\"seal\":{i}}}\n").as_bytes(),
            0o644,
        );
        env.run_env(
            &["seal", "--reason", "manual"],
            &[("SELFSAME_NOW", when(i).as_str())],
        )
        .expect_code(0);
        trees.insert(i + 1, tree(&env.soul()));
    }
    (env, trees)
}

fn objects_count(env: &Env) -> usize {
    let mut n = 0;
    let mut dirs = vec![env.vault().join("objects")];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                if e.file_name() != "tmp" {
                    dirs.push(e.path());
                }
            } else {
                n += 1;
            }
        }
    }
    n
}

/// A manual seal at `now`: the checkpoint that anchors a forget, which
/// takes effect from then on.
fn anchor(env: &Env, now: &str) {
    env.run_env(&["seal", "--reason", "manual"], &[("SELFSAME_NOW", now)])
        .expect_code(0);
}

fn seqs(v: &Value) -> Vec<u64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_u64().unwrap())
        .collect()
}

/// Restores each of `kept` and compares the soul with what it sealed, byte
/// for byte and mode for mode; then puts the newest state back.
fn restores_byte_for_byte(env: &Env, trees: &BTreeMap<u64, BTreeMap<String, Node>>, kept: &[u64]) {
    for &seq in kept {
        env.run(&["restore", &seq.to_string()]).expect_code(0);
        assert_eq!(&tree(&env.soul()), &trees[&seq], "checkpoint {seq}");
    }
    let newest = *trees.keys().last().unwrap();
    env.run(&["restore", &newest.to_string()]).expect_code(0);
}

#[test]
fn forget_and_prune_keep_every_kept_checkpoint_restorable_byte_for_byte() {
    let (env, trees) = sealed_history(12, 20_000);
    let before = objects_count(&env);

    // Dry: nothing written.
    let lines = env.history().len();
    let now = [("SELFSAME_NOW", "2030-01-01T08:30:00Z")];
    let v = env
        .run_env(
            &[
                "--json",
                "forget",
                "--keep-last",
                "3",
                "--keep-hourly",
                "2",
                "--dry-run",
            ],
            &now,
        )
        .expect_code(0)
        .json();
    assert_eq!(v["dry_run"], true);
    assert_eq!(env.history().len(), lines);

    // Seals at 00:40, 01:20, …, 08:00 (checkpoints 2..=13): the last 3 are
    // 11, 12, 13; the newest of the last 2 hours with one are 13 (08:00)
    // and 12 (07:20); checkpoint 1 is sealed at init, now.
    let v = env
        .run_env(
            &["--json", "forget", "--keep-last", "3", "--keep-hourly", "2"],
            &now,
        )
        .expect_code(0)
        .json();
    let kept: Vec<u64> = v["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["seq"].as_u64().unwrap())
        .collect();
    let forgotten = seqs(&v["forgotten"]);
    assert_eq!(kept, vec![11, 12, 13], "{v}");
    assert_eq!(forgotten, (1..=10).collect::<Vec<_>>(), "{v}");
    assert_eq!(
        v["kept"][2]["reasons"],
        serde_json::json!(["last", "hourly", "head"])
    );
    let event = env.history().pop().unwrap();
    assert_eq!(event["event"], "forget");
    assert_eq!(seqs(&event["forgotten"]), forgotten);
    assert_eq!(event["policy"]["keep_last"], 3);
    // Forgetting changes no checkpoint and removes no object; until a
    // checkpoint anchors it, it is not in effect and prune leaves it.
    assert_eq!(objects_count(&env), before);
    env.verify_clean();
    let v = env.run(&["--json", "prune"]).expect_code(0).json();
    assert_eq!(v["objects_removed"], 0, "{v}");
    assert_eq!(seqs(&v["awaiting_anchor"]), forgotten, "{v}");
    let out = env.run(&["prune"]).expect_code(0);
    assert!(
        out.stdout
            .contains("checkpoints 1-10 are forgotten, not yet in effect")
            && out.stdout.contains("selfsame seal --reason manual"),
        "prune says what to do: {}",
        out.stdout
    );
    env.run(&["cat", "2:memory.jsonl"]).expect_code(0);
    anchor(&env, "2030-01-01T08:40:00Z");

    let packs_before = pack_names(&env.vault());
    assert_eq!(pack_cache_names(&env.vault()), packs_before);
    // A dry run says what would go and removes nothing.
    let history_before = env.history().len();
    let dry = env
        .run(&["--json", "prune", "--dry-run"])
        .expect_code(0)
        .json();
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(objects_count(&env), before);
    assert_eq!(pack_names(&env.vault()), packs_before);
    assert_eq!(
        env.history().len(),
        history_before,
        "a dry run logs nothing"
    );
    let v = env.run(&["--json", "prune"]).expect_code(0).json();
    assert_eq!(v["awaiting_anchor"], serde_json::json!([]), "{v}");
    let removed = v["objects_removed"].as_u64().unwrap();
    assert_eq!(
        dry["objects_removed"], removed,
        "the dry run's count: {dry}"
    );
    assert_eq!(dry["bytes_removed"], v["bytes_removed"], "{dry}");
    // The pack index cache drops the packs prune removed and holds those
    // it wrote anew.
    let packs_after = pack_names(&env.vault());
    assert_ne!(packs_after, packs_before);
    assert_eq!(pack_cache_names(&env.vault()), packs_after);
    // Each forgotten checkpoint's own file, memory.jsonl and manifest.
    assert!(removed >= 20, "{v}");
    assert!(objects_count(&env) < before, "{v}");
    assert_eq!(env.history().pop().unwrap()["event"], "prune");
    let out = env.run(&["--json", "verify", "--read-data"]).expect_code(0);
    let v = out.json();
    assert_eq!(v["problems"], serde_json::json!([]), "{}", out.stdout);
    let notes = v["notes"].to_string();
    assert!(
        notes.contains("checkpoints 1-10 forgotten by retention at "),
        "{notes}"
    );
    // A second prune finds nothing more.
    let v = env.run(&["--json", "prune"]).expect_code(0).json();
    assert_eq!(v["objects_removed"], 0);

    restores_byte_for_byte(&env, &trees, &[11, 12, 13]);
    env.verify_clean();
}

/// The rules a new user types, as the command line reads them: which
/// checkpoints each keeps, and why (a dry run: nothing is written).
#[test]
fn every_keep_rule_of_the_command_line_keeps_what_restic_would() {
    let (env, _) = sealed_history(12, 1_000);
    let lines = env.history().len();
    let kept = |rules: &[&str]| -> BTreeMap<u64, Vec<String>> {
        let mut args = vec!["--json", "forget", "--dry-run"];
        args.extend_from_slice(rules);
        let v = env.run(&args).expect_code(0).json();
        v["kept"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                let why = k["reasons"].as_array().unwrap();
                (
                    k["seq"].as_u64().unwrap(),
                    why.iter().map(|r| r.as_str().unwrap().to_owned()).collect(),
                )
            })
            .collect()
    };
    let seqs = |m: &BTreeMap<u64, Vec<String>>| m.keys().copied().collect::<Vec<_>>();
    // Checkpoint 1 was sealed at init (today); 2..=13 on 2030-01-01,
    // 00:40 to 08:00. Within 90 minutes of the newest (08:00): 06:40,
    // 07:20, 08:00.
    let k = kept(&["--keep-within", "90m"]);
    assert_eq!(seqs(&k), vec![11, 12, 13], "{k:?}");
    assert_eq!(k[&11], vec!["within"]);
    // The newest of each of the last 2 days that have one.
    let k = kept(&["--keep-daily", "2"]);
    assert_eq!(seqs(&k), vec![1, 13], "{k:?}");
    assert_eq!(k[&1], vec!["daily"]);
    for rule in ["--keep-weekly", "--keep-monthly", "--keep-yearly"] {
        let k = kept(&[rule, "1"]);
        assert_eq!(seqs(&k), vec![13], "{rule}: {k:?}");
    }
    let k = kept(&["--keep-yearly", "5"]);
    assert_eq!(seqs(&k), vec![1, 13], "{k:?}");
    // A rule that keeps nothing is refused, naming the fix.
    let out = env.run(&["forget", "--keep-last", "0"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(
        env.history().len(),
        lines,
        "dry runs and a refusal log nothing"
    );
}

#[test]
fn a_forgotten_snapshot_is_named_as_such_and_a_missing_object_is_still_damage() {
    let (env, _trees) = sealed_history(4, 1_000);
    env.run(&["forget", "--keep-last", "2"]).expect_code(0);
    anchor(&env, "2030-01-01T04:00:00Z");
    env.run(&["prune"]).expect_code(0);
    // Checkpoints 1-3 forgotten, 4 and 5 kept.
    for args in [
        vec!["restore", "2"],
        vec!["cat", "2:memory.jsonl"],
        vec!["ls", "2"],
        vec!["diff", "2", "4"],
    ] {
        let out = env.run(&args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr
                .contains("checkpoint 2 was forgotten by retention at"),
            "{args:?}: {}",
            out.stderr
        );
    }
    let out = env.run(&["verify"]).expect_code(0);
    assert!(
        out.stdout
            .contains("checkpoints 1-3 forgotten by retention at"),
        "{}",
        out.stdout
    );
    // The checkpoints stay: the chain is whole.
    assert!(env.checkpoint(2).exists());
    // An object of a kept checkpoint removed by hand is damage, as before.
    let hash = env
        .run(&["--json", "ls", "4", "notes/day-003.bin"])
        .expect_code(0)
        .json()["entries"][0]["hash"]
        .as_str()
        .unwrap()
        .to_owned();
    fs::remove_file(object_path(&env.vault(), &hash)).unwrap();
    let v = env.run(&["--json", "verify"]).expect_code(5).json();
    assert_eq!(v["problems"][0]["detail"], "object-missing", "{v}");
    // And prune refuses to work on a damaged vault.
    let out = env.run(&["prune"]).expect_code(5);
    assert!(
        out.stderr.contains("prune changes nothing"),
        "{}",
        out.stderr
    );
}

#[test]
fn never_forgotten_the_head_the_newest_good_and_what_a_pending_restore_names() {
    let (env, _trees) = sealed_history(3, 1_000);
    // A healthy run of checkpoint 4 marks it good (then seals rest: 5).
    let later = [("SELFSAME_NOW", "2030-01-02T00:00:00Z")];
    env.run_env(&["run", "--probation", "0s", "--", "sleep", "0.5"], &later)
        .expect_code(0);
    let good: Vec<u64> = env
        .history()
        .iter()
        .filter(|e| e["event"] == "good")
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(good, vec![4]);
    for i in 0..3 {
        write(
            &env.soul(),
            "memory.jsonl",
            format!("later {i}\n").as_bytes(),
            0o644,
        );
        env.run_env(&["seal", "--reason", "manual"], &later)
            .expect_code(0);
    }
    assert_eq!(env.head(), 8);
    let v = env
        .run(&["--json", "forget", "--keep-last", "1", "--dry-run"])
        .expect_code(0)
        .json();
    let kept: BTreeMap<u64, Value> = v["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["seq"].as_u64().unwrap(), k["reasons"].clone()))
        .collect();
    assert_eq!(kept.keys().copied().collect::<Vec<_>>(), vec![4, 8], "{v}");
    assert_eq!(kept[&4], serde_json::json!(["good"]));
    assert_eq!(kept[&8], serde_json::json!(["last", "head"]));

    // A restore to 3 dies before it swaps: 3 and the head it started from
    // are what it names.
    write(&env.soul(), "memory.jsonl", b"edited\n", 0o644);
    let out = env.run_env(
        &["restore", "3"],
        &[("SELFSAME_FAILPOINT", "restore-after-stage")],
    );
    assert_eq!(out.code, 97, "{}", out.stderr);
    let v = env
        .run(&["--json", "forget", "--keep-last", "1"])
        .expect_code(0)
        .json();
    let kept: Vec<u64> = v["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(kept, vec![3, 4, 8], "{v}");
    // Prune waits for the restore to be finished.
    let out = env.run(&["prune"]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("interrupted restore is pending"),
        "{}",
        out.stderr
    );
    env.wake(&[]).expect_code(0);
    env.run(&["prune"]).expect_code(0);
    env.verify_clean();
}

#[test]
fn an_interrupted_migration_keeps_its_start_and_holds_prune_off() {
    let (env, _) = sealed_history(4, 1_000);
    let head = env.head();
    fs::create_dir(env.base().join("migrations")).unwrap();
    write(
        &env.base().join("migrations"),
        "v2-add-note",
        b"#!/bin/sh\nset -e\nprintf 'v2\\n' > \"$SELFSAME_SOUL/notes/v2.md\"\n",
        0o755,
    );
    let out = env.run_env(
        &["migrate"],
        &[("SELFSAME_FAILPOINT", "migrate-after-stage")],
    );
    assert_eq!(out.code, 97, "{}", out.stderr);
    let v = env
        .run(&["--json", "forget", "--keep-last", "1"])
        .expect_code(0)
        .json();
    // What the migration started from is the head: kept.
    assert_eq!(seqs(&v["forgotten"]), (1..head).collect::<Vec<_>>(), "{v}");
    assert_eq!(v["kept"][0]["seq"].as_u64(), Some(head), "{v}");
    let out = env.run(&["prune"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("pending"), "{}", out.stderr);
    // The next wake undoes the migration (it had not swapped the soul
    // in); then prune goes on, and the migration runs from the head.
    env.wake(&[]).expect_code(0);
    assert!(!env.soul().join("notes/v2.md").exists());
    env.run(&["prune"]).expect_code(0);
    env.run(&["seal"]).expect_code(0);
    env.run(&["migrate"]).expect_code(0);
    assert!(env.soul().join("notes/v2.md").is_file());
    env.verify_clean();
}

#[test]
fn forget_without_rules_uses_the_config_and_run_applies_it_after_its_seals() {
    let (env, _trees) = sealed_history(6, 1_000);
    let out = env.run(&["forget"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("[retention]"), "{}", out.stderr);

    let config = env.vault().join("config.toml");
    let mut text = fs::read_to_string(&config).unwrap();
    text.push_str("\n[retention]\nkeep_last = 2\n");
    fs::write(&config, text).unwrap();
    // Not yet accepted: someone who can write the vault but has no token
    // does not choose what the owner's forget releases.
    let history = env.history().len();
    let out = env.run(&["forget"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("config.toml changed") && out.stderr.contains("selfsame accept"),
        "{}",
        out.stderr
    );
    assert_eq!(env.history().len(), history, "nothing forgotten");
    // (Later than the seals: the policy goes by when each was sealed.)
    let later = [("SELFSAME_NOW", "2030-01-02T00:00:00Z")];
    env.run_env(&["accept"], &later).expect_code(0);
    let before = objects_count(&env);
    // The agent's clean exit seals `rest`; retention forgets after it...
    env.run_env(&["run", "--", "true"], &later).expect_code(0);
    let forget = env.history().pop().unwrap();
    assert_eq!(forget["event"], "forget", "{forget}");
    let head = env.head();
    assert_eq!(
        seqs(&forget["forgotten"]),
        (1..head - 1).collect::<Vec<_>>()
    );
    assert_eq!(
        objects_count(&env),
        before,
        "not in effect before a checkpoint anchors it"
    );
    // ... and prunes it after the next seal, which anchors it.
    let later = [("SELFSAME_NOW", "2030-01-02T01:00:00Z")];
    env.run_env(&["run", "--", "true"], &later).expect_code(0);
    let events: Vec<String> = env
        .history()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    assert!(events.contains(&"prune".to_owned()), "{events:?}");
    assert!(objects_count(&env) < before);
    env.verify_clean();
    // `selfsame log` says what each did.
    let log = env.run(&["log"]).expect_code(0).stdout;
    assert!(
        log.lines().any(|l| l.contains(" forget ")
            && l.contains("forgotten=[1,")
            && l.contains("keep_last")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains(" prune ") && l.contains("objects=") && l.contains("bytes=")),
        "{log}"
    );
    // `selfsame forget` alone applies the same policy: nothing more.
    let out = env.run(&["forget"]).expect_code(0);
    assert!(out.stdout.contains("nothing to forget"), "{}", out.stdout);
}

#[test]
fn twenty_crashes_during_prune_lose_nothing_reachable() {
    let (env, trees) = sealed_history(30, 2_000);
    env.run(&["forget", "--keep-last", "3"]).expect_code(0);
    anchor(&env, &when(31));
    // Each run dies right after the first entry it removes from the store
    // (the failpoint stops the process dead, as kill -9 would), with more
    // left to remove.
    for kill in 0..20 {
        let out = env.run_env(
            &["prune"],
            &[("SELFSAME_FAILPOINT", "prune-after-delete-1")],
        );
        assert_eq!(out.code, 97, "crash {kill}: {}", out.stderr);
        // Nothing a kept checkpoint needs is gone, and the vault verifies.
        env.verify_clean();
    }
    let v = env.run(&["--json", "prune"]).expect_code(0).json();
    assert!(v["objects_removed"].as_u64().unwrap() > 0, "{v}");
    let v = env.run(&["--json", "prune"]).expect_code(0).json();
    assert_eq!(v["objects_removed"], 0, "{v}");
    restores_byte_for_byte(&env, &trees, &[29, 30, 31]);
    env.verify_clean();
}

#[test]
fn prune_shows_its_progress_on_a_terminal_and_nowhere_else() {
    use std::io::Read;
    let (env, _trees) = sealed_history(12, 20_000);
    env.run(&["forget", "--keep-last", "2"]).expect_code(0);
    anchor(&env, &when(13));
    let pty = nix::pty::openpty(None, None).unwrap();
    let child = env
        .command(TOKEN, &["prune"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::from(pty.slave))
        .spawn()
        .unwrap();
    let out = env.finish(child);
    assert_eq!(out.code, 0, "{}", out.stdout);
    let mut terminal = Vec::new();
    let mut master = fs::File::from(pty.master);
    let mut buf = [0u8; 4096];
    // The terminal reads until the last writer is gone (then EIO).
    while let Ok(n @ 1..) = master.read(&mut buf) {
        terminal.extend_from_slice(&buf[..n]);
    }
    let terminal = String::from_utf8_lossy(&terminal);
    assert!(terminal.contains("reading"), "terminal: {terminal:?}");
    assert!(terminal.contains("/3"), "checkpoints kept: {terminal:?}");
    assert!(terminal.contains("deleting"), "terminal: {terminal:?}");
    assert!(!out.stdout.starts_with("removed 0 "), "{}", out.stdout);
    // Not on a terminal: no bar.
    let (env, _) = sealed_history(3, 1_000);
    env.run(&["forget", "--keep-last", "1"]).expect_code(0);
    anchor(&env, &when(4));
    let out = env.run(&["prune"]).expect_code(0);
    assert_eq!(out.stderr, "");
}

#[test]
fn a_vault_from_before_retention_is_forgotten_and_pruned() {
    // Sealed without any `forget` line, by the rules of before: prune of
    // such a vault removes nothing; once forgotten, what only old
    // checkpoints needed.
    let (env, trees) = sealed_history(5, 5_000);
    let v = env.run(&["--json", "prune"]).expect_code(0).json();
    assert_eq!(v["objects_removed"], 0, "{v}");
    env.run(&["forget", "--keep-last", "2"]).expect_code(0);
    anchor(&env, &when(6));
    env.run(&["prune"]).expect_code(0);
    env.verify_clean();
    restores_byte_for_byte(&env, &trees, &[5, 6]);
}

#[test]
fn never_forgotten_the_newest_checkpoint_that_approved_protected_paths() {
    let env = Env::new();
    write(&env.soul(), "SOUL.md", b"# who I am\n", 0o644);
    env.run(&["seal", "--reason", "manual"]).expect_code(0);
    let config = env.vault().join("config.toml");
    let text = fs::read_to_string(&config).unwrap();
    fs::write(&config, format!("protect = [\"SOUL.md\"]\n{text}")).unwrap();
    env.run(&["accept"]).expect_code(0);
    write(&env.soul(), "SOUL.md", b"# who I am, approved\n", 0o644);
    env.run(&["approve"]).expect_code(0);
    let approved = env.head();
    assert_eq!(env.checkpoint_field(approved, "reason"), "approve");
    for i in 0..3 {
        write(
            &env.soul(),
            "memory.jsonl",
            format!("later {i}\n").as_bytes(),
            0o644,
        );
        env.run(&["seal", "--reason", "manual"]).expect_code(0);
    }
    let head = env.head();
    let v = env
        .run(&["--json", "forget", "--keep-last", "1"])
        .expect_code(0)
        .json();
    env.run(&["seal", "--reason", "manual"]).expect_code(0);
    env.run(&["prune"]).expect_code(0);
    let kept: Vec<(u64, Value)> = v["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["seq"].as_u64().unwrap(), k["reasons"].clone()))
        .collect();
    assert_eq!(
        kept,
        vec![
            (approved, serde_json::json!(["approve"])),
            (head, serde_json::json!(["last", "head"]))
        ]
    );
    env.verify_clean();
    // What the owner approved can still be put back.
    env.run(&["cat", &format!("{approved}:SOUL.md")])
        .expect_code(0);
}
