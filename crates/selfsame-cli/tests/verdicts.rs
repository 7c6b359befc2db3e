//! Issue 3, must hold 1, 2 and 7: every wake verdict and detail through the
//! real binary (verdict, exit code and `--json` fields), the `tampered` and
//! `drifted` policies, and an awake marker that cannot be forged or
//! replayed. Every test ends with the token-leak scan (must hold 5).

mod common;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};

use common::*;
use serde_json::{json, Value};

/// Checks the fields every wake report carries.
fn assert_wake(out: &Out, verdict: &str, detail: Option<&str>, exit: i32, action: &str) -> Value {
    let v = out.json();
    assert_eq!(v["verdict"], verdict, "verdict in {}", out.stdout);
    assert_eq!(
        v["detail"],
        detail.map_or(Value::Null, |d| json!(d)),
        "detail in {}",
        out.stdout
    );
    assert_eq!(v["exit_code"], exit, "exit_code in {}", out.stdout);
    assert_eq!(v["action"], action, "action in {}", out.stdout);
    assert_eq!(
        v["may_start"],
        matches!(action, "start" | "accept" | "rollback"),
        "may_start in {}",
        out.stdout
    );
    for key in [
        "message", "seq", "format", "soul", "changes", "actions", "warnings", "problems", "head",
        "molt",
    ] {
        assert!(
            v.get(key).is_some(),
            "--json has no `{key}`: {}",
            out.stdout
        );
    }
    assert!(!v["message"].as_str().unwrap().is_empty());
    assert_eq!(out.code, exit, "process exit\nstderr: {}", out.stderr);
    v
}

fn changes(added: &[&str], removed: &[&str], modified: &[&str], mode_changed: &[&str]) -> Value {
    json!({"added": added, "removed": removed, "modified": modified, "mode_changed": mode_changed})
}

/// The last history event, which must be this wake's.
fn last_wake_event(env: &Env, verdict: &str) -> Value {
    let h = env.history();
    let last = h.last().expect("history").clone();
    assert_eq!(last["event"], "wake", "last event: {last}");
    assert_eq!(last["verdict"], verdict, "last event: {last}");
    last
}

// --- must hold 5: the scan itself can fail -------------------------------

#[test]
fn leak_scan_finds_a_token_secret_written_into_the_vault() {
    let env = Env::new();
    let secret = TOKEN.split_once(':').unwrap().1;
    let leak = env.vault().join("run/leak.txt");
    fs::write(&leak, format!("oops {secret}\n")).unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        env.assert_no_secret_anywhere()
    }));
    assert!(caught.is_err(), "the scan missed a secret in run/");
    fs::remove_file(&leak).unwrap();
}

#[test]
fn malformed_token_is_exit_2_and_never_printed() {
    let env = Env::bare();
    // The secret part alone is not a token (no `<digits>:`); the scan at the
    // end of the test fails if any output repeats it.
    let secret = TOKEN.split_once(':').unwrap().1;
    let out = env.run_as(secret, &["init", "soul"], &[]).expect_code(2);
    assert!(out.stderr.contains("TELEGRAM_BOT_TOKEN"), "{}", out.stderr);
    let out = env
        .run_as(secret, &["--json", "init", "soul"], &[])
        .expect_code(2);
    assert_eq!(out.json()["exit_code"], 2);
    assert!(!env.vault().exists());
}

// --- must hold 1: one test per verdict and detail ------------------------

#[test]
fn verified_after_init() {
    let env = Env::new();
    let out = env.wake(&["--shell-version", "1.0.0"]);
    let v = assert_wake(&out, "verified", None, 0, "start");
    assert_eq!(v["seq"], 1);
    assert_eq!(v["head"], 1);
    assert_eq!(v["format"], "v1");
    assert_eq!(v["soul"], env.checkpoint_field(1, "soul"));
    assert_eq!(v["changes"], changes(&[], &[], &[], &[]));
    assert_eq!(v["warnings"], json!([]));
    assert_eq!(v["problems"], json!([]));
    assert_eq!(v["molt"], Value::Null);
    assert!(
        env.marker().exists(),
        "wake that starts leaves the awake marker"
    );
    last_wake_event(&env, "verified");
}

#[test]
fn verified_after_a_molt_names_both_shells() {
    let env = Env::at_rest();
    let out = env.wake(&["--shell-version", "2.0.0"]);
    let v = assert_wake(&out, "verified", None, 0, "start");
    assert_eq!(v["molt"], json!({"from": "1.0.0", "to": "2.0.0"}));
}

#[test]
fn drifted_after_a_crash_is_accepted_with_a_recover_checkpoint() {
    let env = Env::new();
    env.wake(&[]).expect_code(0);
    // The agent runs, writes, and dies without a rest seal.
    fs::write(env.soul().join("memory.jsonl"), "{\"said\":\"crash\"}\n").unwrap();
    let out = env.wake(&[]);
    let v = assert_wake(&out, "drifted", None, 0, "accept");
    assert_eq!(v["seq"], 1);
    assert_eq!(v["head"], 2);
    assert_eq!(v["changes"], changes(&[], &[], &["memory.jsonl"], &[]));
    assert_eq!(strings(&v["actions"]).len(), 1, "{}", out.stdout);
    assert_eq!(env.checkpoint_field(2, "reason"), "recover");
    assert_eq!(env.head(), 2);
    assert!(env.marker().exists());
    let h = env.history();
    let wake = h.iter().rev().find(|e| e["event"] == "wake").unwrap();
    assert_eq!(wake["verdict"], "drifted");
    assert_eq!(wake["changes"]["modified"], 1);
    // The accepted soul now verifies.
    assert_wake(&env.wake(&[]), "verified", None, 0, "start");
    env.verify_clean();
}

/// At rest (checkpoint 2), `mutate` the soul, wake: tampered, halted.
fn tampered_case(mutate: impl FnOnce(&std::path::Path), expected: Value) {
    let env = Env::at_rest();
    let before = tree(&env.soul());
    mutate(&env.soul());
    assert_ne!(tree(&env.soul()), before, "the mutation changed nothing");
    let out = env.wake(&[]);
    let v = assert_wake(&out, "tampered", None, 3, "halt");
    assert_eq!(v["seq"], 2);
    assert_eq!(v["head"], 2);
    assert_eq!(v["changes"], expected);
    assert_eq!(v["actions"], json!([]));
    assert!(
        !env.marker().exists(),
        "a halted wake must not mark the agent awake"
    );
    assert_eq!(env.head(), 2, "a halted wake seals nothing");
    let ev = last_wake_event(&env, "tampered");
    assert_eq!(ev["action"], "halt");
    // Halting again gives the same answer: the soul was not adopted.
    assert_wake(&env.wake(&[]), "tampered", None, 3, "halt");
}

#[test]
fn tampered_one_byte_changed() {
    tampered_case(
        |s| flip_byte(&s.join("notes/a.md"), 3),
        changes(&[], &[], &["notes/a.md"], &[]),
    );
}

#[test]
fn tampered_file_added() {
    tampered_case(
        |s| write(s, "notes/new.txt", b"planted\n", 0o644),
        changes(&["notes/new.txt"], &[], &[], &[]),
    );
}

#[test]
fn tampered_file_removed() {
    tampered_case(
        |s| fs::remove_file(s.join("memory.jsonl")).unwrap(),
        changes(&[], &["memory.jsonl"], &[], &[]),
    );
}

#[test]
fn tampered_exec_bit_flipped() {
    tampered_case(
        |s| fs::set_permissions(s.join("run.sh"), fs::Permissions::from_mode(0o644)).unwrap(),
        changes(&[], &[], &[], &["run.sh"]),
    );
}

#[test]
fn tampered_symlink_retargeted() {
    tampered_case(
        |s| {
            fs::remove_file(s.join("link")).unwrap();
            symlink("memory.jsonl", s.join("link")).unwrap();
        },
        changes(&[], &[], &["link"], &[]),
    );
}

#[test]
fn tampered_empty_dir_added() {
    tampered_case(
        |s| fs::create_dir(s.join("empty/inner")).unwrap(),
        changes(&["empty/inner"], &[], &[], &[]),
    );
}

fn mkfifo(path: &std::path::Path) {
    let st = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(st.success(), "mkfifo {}", path.display());
}

#[test]
fn tampered_when_an_unrecordable_fifo_appears_at_rest_names_it_and_halts() {
    // selfsame cannot record a FIFO, but it is still a change at rest: a
    // verdict, a history event and exit 3, not an error (exit 1).
    let env = Env::at_rest();
    mkfifo(&env.soul().join("notes/pipe"));
    let out = env.wake(&[]);
    let v = assert_wake(&out, "tampered", None, 3, "halt");
    assert_eq!(v["changes"], changes(&["notes/pipe"], &[], &[], &[]));
    let msg = v["message"].as_str().unwrap();
    assert!(msg.contains("notes/pipe"), "{msg}");
    assert!(msg.contains("exclude"), "{msg}");
    assert_eq!(v["head"], 2);
    assert!(!env.marker().exists());
    let ev = last_wake_event(&env, "tampered");
    assert_eq!(ev["action"], "halt");
    assert_eq!(ev["changes"]["added"], 1, "{ev}");
    // `status` says the same, without writing.
    let n = env.history().len();
    let st = env.run(&["--json", "status"]);
    assert_eq!(st.json()["wake"]["verdict"], "tampered", "{}", st.stdout);
    assert_eq!(env.history().len(), n);

    // A rollback quarantines the FIFO like any other entry.
    let out = env.wake(&["--policy", "tampered=rollback"]);
    assert_wake(&out, "tampered", None, 0, "rollback");
    let q = env.quarantined();
    assert_eq!(q.len(), 1, "{q:?}");
    let meta = fs::symlink_metadata(q[0].join("notes/pipe")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()));
    assert!(!env.soul().join("notes/pipe").exists());
    assert_wake(&env.wake(&[]), "verified", None, 0, "start");
}

#[test]
fn drifted_with_an_unrecordable_fifo_halts_instead_of_accepting() {
    let env = Env::new();
    env.wake(&[]).expect_code(0);
    // The agent crashes and leaves a FIFO behind: drift that no seal can
    // adopt, so the default `accept` becomes a halt that says what to do.
    mkfifo(&env.soul().join("pipe"));
    let out = env.wake(&[]);
    let v = assert_wake(&out, "drifted", None, 3, "halt");
    assert_eq!(v["changes"], changes(&["pipe"], &[], &[], &[]));
    let msg = v["message"].as_str().unwrap();
    assert!(msg.contains("pipe") && msg.contains("exclude"), "{msg}");
    assert_eq!(env.head(), 1, "nothing sealed");
    last_wake_event(&env, "drifted");
    // Removing it, as the message says, lets the agent start again.
    fs::remove_file(env.soul().join("pipe")).unwrap();
    assert_wake(&env.wake(&[]), "verified", None, 0, "start");
}

#[test]
fn tampered_by_a_non_utf8_name_rolls_back_when_asked() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let env = Env::at_rest();
    let sealed = tree(&env.soul());
    fs::write(env.soul().join(OsStr::from_bytes(b"caf\xe9")), "x\n").unwrap();
    let out = env.wake(&[]);
    let v = assert_wake(&out, "tampered", None, 3, "halt");
    assert_eq!(strings(&v["changes"]["added"]).len(), 1, "{}", out.stdout);
    let out = env.wake(&["--policy", "tampered=rollback"]);
    assert_wake(&out, "tampered", None, 0, "rollback");
    assert_eq!(tree(&env.soul()), sealed);
    let q = env.quarantined();
    assert_eq!(q.len(), 1, "{q:?}");
    assert!(q[0].join(OsStr::from_bytes(b"caf\xe9")).exists());
    assert_wake(&env.wake(&[]), "verified", None, 0, "start");
    env.verify_clean();
}

#[test]
fn identity_mismatch_different_bot() {
    let env = Env::at_rest();
    let out = env.run_as(OTHER_BOT, &["--json", "wake"], &[]);
    let v = assert_wake(&out, "identity-mismatch", Some("different-bot"), 4, "halt");
    assert_eq!(v["problems"][0]["detail"], "different-bot");
    assert!(!env.marker().exists());
    // No policy can let another bot's token start the agent.
    let out = env.run_as(
        OTHER_BOT,
        &["--json", "wake", "--policy", "tampered=accept"],
        &[],
    );
    assert_wake(&out, "identity-mismatch", Some("different-bot"), 4, "halt");
    let out = env.run_as(
        OTHER_BOT,
        &["wake", "--policy", "identity-mismatch=accept"],
        &[],
    );
    assert_eq!(out.code, 2, "a policy for identity-mismatch is refused");
}

#[test]
fn identity_mismatch_mac_invalid_for_a_rotated_token() {
    let env = Env::at_rest();
    let out = env.run_as(ROTATED, &["--json", "wake"], &[]);
    let v = assert_wake(&out, "identity-mismatch", Some("mac-invalid"), 4, "halt");
    assert!(
        v["message"].as_str().unwrap().contains("rekey"),
        "{}",
        out.stdout
    );
    assert!(!env.marker().exists());
    // The real token still verifies: nothing was changed.
    assert_wake(&env.wake(&[]), "verified", None, 0, "start");
}

#[test]
fn corrupted_manifest_object_byte_flip_is_found_by_wake() {
    let env = Env::at_rest();
    let soul = env.checkpoint_field(2, "soul");
    flip_byte(&object_path(&env.vault(), &soul), 30);
    let out = env.wake(&[]);
    assert_wake(&out, "corrupted", Some("object-corrupt"), 5, "halt");
    assert!(!env.marker().exists());
    let out = env.run(&["--json", "verify"]).expect_code(5);
    assert_eq!(out.json()["problems"][0]["detail"], "object-corrupt");
}

#[test]
fn corrupted_file_object_byte_flip_is_found_by_verify_read_data_and_restore() {
    let env = Env::at_rest();
    let content = fs::read(env.soul().join("notes/a.md")).unwrap();
    let obj = object_path(&env.vault(), &sha256_hex(&content));
    flip_byte(&obj, 0);
    // Presence and size are what wake checks; both still hold. Verify
    // re-reads the data.
    env.run(&["verify"]).expect_code(0);
    let out = env.run(&["--json", "verify", "--read-data"]).expect_code(5);
    let v = out.json();
    assert_eq!(v["exit_code"], 5);
    let problems = v["problems"].as_array().unwrap();
    assert!(
        problems.iter().any(|p| p["detail"] == "object-corrupt"
            && p["message"].as_str().unwrap().contains("notes/a.md")),
        "{}",
        out.stdout
    );
    // Restore re-hashes every object it writes: it refuses, the soul stays.
    fs::write(env.soul().join("memory.jsonl"), "changed\n").unwrap();
    let before = tree(&env.soul());
    let out = env.run(&["restore", "2"]);
    assert_ne!(out.code, 0, "restore used a corrupt object: {}", out.stdout);
    assert!(
        out.stderr.contains("does not match its hash"),
        "{}",
        out.stderr
    );
    assert_eq!(
        tree(&env.soul()),
        before,
        "a refused restore changed the soul"
    );
    assert!(env.quarantined().is_empty());
    // The refused restore left nothing pending that blocks the next start.
    let out = env.wake(&[]);
    assert_wake(&out, "tampered", None, 3, "halt");
}

#[test]
fn corrupted_edited_checkpoint() {
    let env = Env::at_rest();
    let path = env.checkpoint(2);
    let text = fs::read_to_string(&path).unwrap();
    let edited = text.replace("reason=rest", "reason=heartbeat");
    assert_ne!(edited, text);
    fs::write(&path, edited).unwrap();
    let out = env.wake(&[]);
    let v = assert_wake(&out, "corrupted", Some("mac-mismatch"), 5, "halt");
    assert!(
        v["message"].as_str().unwrap().contains("00000002.ckpt"),
        "{}",
        out.stdout
    );
    env.run(&["verify"]).expect_code(5);
}

#[test]
fn corrupted_checkpoint_deleted_from_the_middle() {
    let env = Env::at_rest();
    fs::write(env.soul().join("memory.jsonl"), "more\n").unwrap();
    env.run(&["seal", "--reason", "manual"]).expect_code(0);
    assert_eq!(env.head(), 3);
    fs::remove_file(env.checkpoint(2)).unwrap();
    let out = env.wake(&[]);
    assert_wake(&out, "corrupted", Some("chain-broken"), 5, "halt");
    env.run(&["verify"]).expect_code(5);
}

#[test]
fn corrupted_edited_history_line() {
    let env = Env::at_rest();
    let path = env.vault().join("history.jsonl");
    let text = fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    assert!(lines.len() >= 4);
    let edited = lines[2].replacen("\"wake\"", "\"wakE\"", 1);
    assert_ne!(edited, lines[2], "line 3 is the first wake");
    lines[2] = edited;
    fs::write(&path, lines.join("\n") + "\n").unwrap();
    let out = env.wake(&[]);
    assert_wake(&out, "corrupted", Some("history-broken"), 5, "halt");
    env.run(&["verify"]).expect_code(5);
}

#[test]
fn rolled_back_when_the_newest_checkpoint_is_removed_while_head_names_it() {
    let env = Env::at_rest();
    assert_eq!(env.head(), 2);
    fs::remove_file(env.checkpoint(2)).unwrap();
    let out = env.wake(&[]);
    let v = assert_wake(&out, "rolled-back", Some("head-ahead"), 5, "halt");
    assert_eq!(v["problems"][0]["detail"], "head-ahead");
    assert!(!env.marker().exists());
    // Sealing on top of a rolled-back vault is refused too.
    let out = env.run(&["seal"]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert!(!env.checkpoint(2).exists());
}

#[test]
fn stale_warning_with_an_injected_clock() {
    let env = Env::bare();
    let sealed = [("SELFSAME_NOW", "2030-01-01T00:00:00Z")];
    env.run_env(&["init", "soul"], &sealed).expect_code(0);
    assert_eq!(
        env.checkpoint_field(1, "sealed_at"),
        "2030-01-01T00%3A00%3A00.000Z"
    );

    let day6 = [("SELFSAME_NOW", "2030-01-07T00:00:00Z")];
    let v = assert_wake(
        &env.run_env(&["--json", "wake"], &day6),
        "verified",
        None,
        0,
        "start",
    );
    assert_eq!(v["warnings"], json!([]));

    // Eight days later, given as unix seconds: stale, still verified.
    let day8_plus = [("SELFSAME_NOW", "1894147200")]; // 2030-01-09T00:00:00Z
    let out = env.run_env(&["--json", "wake"], &day8_plus);
    let v = assert_wake(&out, "verified", None, 0, "start");
    assert_eq!(v["warnings"], json!(["stale"]));
    let ev = last_wake_event(&env, "verified");
    assert_eq!(ev["warnings"], json!(["stale"]));

    let out = env.run_env(&["--json", "wake", "--max-age", "30d"], &day8_plus);
    assert_eq!(
        assert_wake(&out, "verified", None, 0, "start")["warnings"],
        json!([])
    );
    let out = env.run_env(&["--json", "wake", "--max-age", "0"], &day8_plus);
    assert_eq!(
        assert_wake(&out, "verified", None, 0, "start")["warnings"],
        json!([])
    );
}

// --- must hold 2: policies ----------------------------------------------

#[test]
fn tampered_rollback_restores_the_head_byte_for_byte_and_quarantines_the_exact_previous_state() {
    let env = Env::at_rest();
    let sealed = tree(&env.soul());
    let s = env.soul();
    flip_byte(&s.join("notes/deep/b.bin"), 4);
    write(&s, "planted.txt", b"not mine\n", 0o600);
    fs::remove_file(s.join(NON_ASCII)).unwrap();
    fs::set_permissions(s.join("run.sh"), fs::Permissions::from_mode(0o644)).unwrap();
    fs::remove_file(s.join("link")).unwrap();
    symlink("/etc/passwd", s.join("link")).unwrap();
    fs::create_dir(s.join("empty/new-dir")).unwrap();
    let tampered = tree(&env.soul());
    assert_ne!(tampered, sealed);

    let out = env.wake(&["--policy", "tampered=rollback"]);
    let v = assert_wake(&out, "tampered", None, 0, "rollback");
    assert_eq!(v["seq"], 2);
    assert_eq!(v["head"], 3, "a rollback ends with a restore checkpoint");
    assert_eq!(
        v["changes"],
        changes(
            &["empty/new-dir", "planted.txt"],
            &[NON_ASCII],
            &["link", "notes/deep/b.bin"],
            &["run.sh"]
        )
    );
    assert_eq!(strings(&v["actions"]).len(), 1, "{}", out.stdout);
    assert_eq!(tree(&env.soul()), sealed, "the soul is not the sealed one");
    let q = env.quarantined();
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(
        tree(&q[0]),
        tampered,
        "quarantine is not the exact previous state"
    );
    assert_eq!(env.checkpoint_field(3, "reason"), "restore");
    assert_eq!(
        env.checkpoint_field(3, "soul"),
        env.checkpoint_field(2, "soul")
    );
    assert!(
        env.marker().exists(),
        "after a rollback the agent may start"
    );
    assert!(env.history().iter().any(|e| e["event"] == "rollback"));
    assert_wake(&env.wake(&[]), "verified", None, 0, "start");
    env.verify_clean();
}

#[test]
fn drifted_halt_policy_halts_with_a_nonzero_exit() {
    let env = Env::new();
    env.wake(&[]).expect_code(0);
    fs::write(env.soul().join("memory.jsonl"), "crash\n").unwrap();
    let changed = tree(&env.soul());
    let out = env.wake(&["--policy", "drifted=halt"]);
    let v = out.json();
    assert_eq!(v["verdict"], "drifted");
    assert_eq!(v["action"], "halt");
    assert_eq!(v["may_start"], false);
    assert_ne!(out.code, 0, "a halt must stop `selfsame wake || exit $?`");
    assert_eq!(v["exit_code"], out.code);
    assert_eq!(v["head"], 1, "nothing sealed");
    assert_eq!(env.head(), 1);
    assert_eq!(tree(&env.soul()), changed, "nothing restored");
    last_wake_event(&env, "drifted");
    // The same policy from config.toml: the owner edits it and adopts the
    // edit with `accept` (which seals the soul too, moving the awake marker
    // along); then the agent crashes again.
    let cfg = env.vault().join("config.toml");
    let text = fs::read_to_string(&cfg).unwrap();
    fs::write(
        &cfg,
        text.replace("drifted = \"accept\"", "drifted = \"halt\""),
    )
    .unwrap();
    env.run(&["accept"]).expect_code(0);
    fs::write(env.soul().join("memory.jsonl"), "crash again\n").unwrap();
    let out = env.wake(&[]);
    let v = out.json();
    assert_eq!(v["verdict"], "drifted", "{}", out.stdout);
    assert_eq!(v["action"], "halt");
    assert_ne!(out.code, 0);
}

// --- must hold 7: the awake marker cannot be forged or replayed ----------

/// At rest, tampered, with `marker` bytes put in `run/awake`: tampered.
fn tampered_despite_marker(make: impl FnOnce(&Env) -> Vec<u8>) {
    let env = Env::new();
    env.wake(&[]).expect_code(0);
    let bytes = make(&env);
    env.run(&["seal"]).expect_code(0);
    fs::write(env.soul().join("memory.jsonl"), "edited at rest\n").unwrap();
    fs::write(env.marker(), bytes).unwrap();
    let out = env.wake(&[]);
    assert_wake(&out, "tampered", None, 3, "halt");
}

#[test]
fn awake_marker_garbage_still_gives_tampered() {
    tampered_despite_marker(|_| b"seq=2&head=whatever&hash=00\n".to_vec());
}

#[test]
fn awake_marker_replayed_from_before_the_rest_seal_still_gives_tampered() {
    tampered_despite_marker(|env| fs::read(env.marker()).expect("marker while awake"));
}

#[test]
fn awake_marker_edited_to_name_the_new_head_still_gives_tampered() {
    // A copy from before the seal, rewritten to name checkpoint 2 and its
    // file hash: the MAC no longer verifies.
    let env = Env::new();
    env.wake(&[]).expect_code(0);
    let old = fs::read_to_string(env.marker()).unwrap();
    env.run(&["seal"]).expect_code(0);
    let head2 = sha256_hex(&fs::read(env.checkpoint(2)).unwrap());
    let forged: Vec<String> = old
        .trim_end()
        .split('&')
        .map(|p| match p.split_once('=') {
            Some(("seq", _)) => "seq=2".to_owned(),
            Some(("head", _)) => format!("head={head2}"),
            _ => p.to_owned(),
        })
        .collect();
    fs::write(env.soul().join("memory.jsonl"), "edited at rest\n").unwrap();
    fs::write(env.marker(), forged.join("&") + "\n").unwrap();
    assert_wake(&env.wake(&[]), "tampered", None, 3, "halt");
}

#[test]
fn awake_marker_from_a_wake_that_halted_is_not_written() {
    // A halted wake leaves no marker, so a later crash cannot turn a
    // tampering into drift either.
    let env = Env::at_rest();
    fs::write(env.soul().join("memory.jsonl"), "edited at rest\n").unwrap();
    env.wake(&[]).expect_code(3);
    assert!(!env.marker().exists());
    assert_wake(&env.wake(&[]), "tampered", None, 3, "halt");
}
