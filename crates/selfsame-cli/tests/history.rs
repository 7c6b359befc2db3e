//! Issue 13, item 3: History v2. Every history line carries a MAC under
//! the history key; the lines after the newest checkpoint's anchor must
//! have a valid one, so someone who can write the vault but holds no token
//! cannot add a `good` line that steers `restore last-good` or the
//! supervisor's rollback. Vaults of older versions move to v2 at their next
//! write. Every test ends with the token-leak scan.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use selfsame::testing::Checkpoint;
use selfsame::testing::HistoryLine;
use selfsame::testing::UNSIGNED_FIELDS;
use selfsame::testing::{checkpoint_key, sha256_hex};
use selfsame::{Credential, Platform};
use selfsame_telegram::SecretKey;
use serde_json::{json, Value};

// History v2 as DESIGN.md words it, computed here rather than by the
// library: key = HMAC-SHA256(key = "selfsame/history/v1", msg = token); a
// line ends with `,"mac":"<hex>"}` and its body is the line with that
// suffix replaced by `}`.

fn history_key(token: &str) -> SecretKey {
    SecretKey::derive(b"selfsame/history/v1", token.as_bytes())
}

/// `None` for a line without a MAC, else whether it verifies under `key`.
fn mac_valid(line: &str, key: &SecretKey) -> Option<bool> {
    let suffix = line.len().checked_sub(74)?;
    let mac = line[suffix..]
        .strip_prefix(",\"mac\":\"")?
        .strip_suffix("\"}")?;
    let body = format!("{}}}", &line[..suffix]);
    Some(key.verify(body.as_bytes(), mac))
}

/// The line of `event` with its MAC under `key`.
fn signed(event: &HistoryLine, key: &SecretKey) -> String {
    let mut line = event.to_line();
    let mac = key.sign(line.as_bytes());
    line.pop();
    line + &format!(",\"mac\":\"{mac}\"}}")
}

fn history_path(env: &Env) -> std::path::PathBuf {
    env.vault().join("history.jsonl")
}

fn raw_lines(env: &Env) -> Vec<String> {
    fs::read_to_string(history_path(env))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The next line of the history, chained with SHA-256 to the last one, as
/// someone who can write the vault but has no token could make it.
fn next_line(env: &Env, event: &str, data: Value) -> HistoryLine {
    let lines = raw_lines(env);
    HistoryLine {
        n: lines.len() as u64 + 1,
        at: "2030-01-01T00:00:00.000Z".into(),
        event: event.into(),
        prev: sha256_hex(lines.last().expect("a history").as_bytes()),
        data: data.as_object().unwrap().clone(),
    }
}

fn append(env: &Env, line: &str) {
    let mut text = fs::read_to_string(history_path(env)).unwrap();
    text.push_str(line);
    text.push('\n');
    fs::write(history_path(env), text).unwrap();
}

/// Appends a forged line: without a MAC, or with `mac` as its last member.
fn forge(env: &Env, event: &str, data: Value, mac: Option<&str>) {
    let mut line = next_line(env, event, data).to_line();
    if let Some(mac) = mac {
        line.pop();
        line.push_str(&format!(",\"mac\":\"{mac}\"}}"));
    }
    append(env, &line);
}

/// Cuts the history back to its first `n` lines.
fn cut(env: &Env, n: usize) {
    let lines = raw_lines(env);
    fs::write(history_path(env), lines[..n].join("\n") + "\n").unwrap();
}

#[test]
fn every_line_is_signed_and_a_forged_good_line_is_corrupted_and_never_restored() {
    let env = Env::at_rest();
    // Checkpoint 3 holds another soul than checkpoint 1.
    fs::write(env.soul().join("notes/a.md"), "grown up\n").unwrap();
    env.run(&["seal"]).expect_code(0);
    let key = history_key(TOKEN);
    for line in raw_lines(&env) {
        assert_eq!(mac_valid(&line, &key), Some(true), "{line}");
    }
    // `log --json` shows the lines exactly as stored, MACs included.
    let log = env.run(&["--json", "log"]).expect_code(0);
    assert_eq!(log.stdout, fs::read_to_string(history_path(&env)).unwrap());
    let sealed = tree(&env.soul());
    let honest = raw_lines(&env).len();

    for mac in [None, Some("0".repeat(64))] {
        forge(
            &env,
            "good",
            json!({"seq": 1, "ran_ms": 60000}),
            mac.as_deref(),
        );
        let out = env.wake(&[]).expect_code(5);
        let v = out.json();
        assert_eq!(v["verdict"], "corrupted");
        assert_eq!(v["detail"], "history-forged", "{}", out.stdout);
        let out = env.run(&["--json", "verify"]).expect_code(5);
        assert_eq!(out.json()["problems"][0]["detail"], "history-forged");
        // restore last-good does not go to checkpoint 1; nothing is touched.
        let out = env.run(&["restore", "last-good"]).expect_code(5);
        assert!(out.stderr.contains("no valid MAC"), "{}", out.stderr);
        assert_eq!(tree(&env.soul()), sealed);
        assert_eq!(env.head(), 3);
        // Nor is the forged line anchored by a seal.
        env.run(&["seal"]).expect_code(5);
        assert_eq!(env.head(), 3);
        cut(&env, honest);
    }
    let out = env.run(&["--json", "restore", "last-good"]).expect_code(0);
    assert_eq!(out.json()["target"], 3, "{}", out.stdout);
    assert_eq!(tree(&env.soul()), sealed);
    env.verify_clean();
}

#[test]
fn a_token_that_does_not_verify_the_vault_writes_no_history_line() {
    let env = Env::at_rest();
    let before = raw_lines(&env);
    env.run_as(ROTATED, &["--json", "wake"], &[]).expect_code(4);
    env.run_as(OTHER_BOT, &["--json", "wake"], &[])
        .expect_code(4);
    assert_eq!(raw_lines(&env), before);
    let refused = fs::read_to_string(env.vault().join("run/refused.jsonl")).unwrap();
    assert_eq!(refused.lines().count(), 2, "{refused}");
    assert_eq!(env.wake(&[]).expect_code(0).json()["verdict"], "verified");
    env.verify_clean();
}

/// Rewrites the vault as a selfsame before History v2 left it: history
/// lines without MACs, and checkpoints whose `log` anchors those lines
/// (re-signed, re-chained; and, older than identity keys too, with no
/// identity signature and no identity file).
fn to_history_v1(vault: &Path) {
    let path = vault.join("history.jsonl");
    let mut renamed = std::collections::HashMap::new();
    let mut prev = String::new();
    let mut out = String::new();
    for line in fs::read_to_string(&path).unwrap().lines() {
        let mut e = HistoryLine::parse(line).unwrap();
        e.prev = prev;
        let v1 = e.to_line();
        prev = sha256_hex(v1.as_bytes());
        renamed.insert(sha256_hex(line.as_bytes()), prev.clone());
        out.push_str(&v1);
        out.push('\n');
    }
    fs::write(&path, out).unwrap();
    fs::remove_file(vault.join("identity")).unwrap();
    let key = checkpoint_key(&Credential::parse(Platform::Telegram, TOKEN).unwrap());
    let mut prev_file = String::new();
    for seq in 1.. {
        let file = vault.join(format!("checkpoints/{seq:08}.ckpt"));
        let Ok(bytes) = fs::read(&file) else { break };
        let mut fields = Checkpoint::parse(&bytes).unwrap().fields;
        let log = fields.get("log").unwrap().to_owned();
        fields.push("log", renamed.get(&log).unwrap_or(&log));
        fields.push("prev", &prev_file);
        fields.remove("hash");
        fields.remove("signature");
        fields.remove("identity");
        let mac = key.sign(fields.data_check_string(UNSIGNED_FIELDS).as_bytes());
        fields.push("hash", &mac);
        let text = fields.encode() + "\n";
        prev_file = sha256_hex(text.as_bytes());
        fs::write(&file, text).unwrap();
    }
}

#[test]
fn an_older_vault_moves_to_history_v2_at_its_next_write() {
    let env = Env::new();
    to_history_v1(&env.vault());
    let key = history_key(TOKEN);
    assert!(raw_lines(&env).iter().all(|l| mac_valid(l, &key).is_none()));
    // As it is: every check passes (a line without a MAC is no damage
    // before the first line with one).
    env.verify_clean();
    // The next writer signs its line; the lines before stay as they were.
    assert_eq!(env.wake(&[]).expect_code(0).json()["verdict"], "verified");
    let lines = raw_lines(&env);
    assert_eq!(mac_valid(lines.last().unwrap(), &key), Some(true));
    assert_eq!(mac_valid(&lines[0], &key), None);
    env.run(&["seal"]).expect_code(0);
    env.verify_clean();
    // From there on, a line without a MAC is forged.
    forge(&env, "good", json!({"seq": 1, "ran_ms": 1}), None);
    let v = env.wake(&[]).expect_code(5).json();
    assert_eq!(v["detail"], "history-forged");
}

#[test]
fn after_a_rekey_the_new_token_signs_and_the_retired_one_cannot() {
    let env = Env::at_rest();
    env.run_env(
        &["rekey", "--old-token-env", "OLD", "--new-token-env", "NEW"],
        &[("OLD", TOKEN), ("NEW", ROTATED)],
    )
    .expect_code(0);
    let new = history_key(ROTATED);
    let old = history_key(TOKEN);
    let lines = raw_lines(&env);
    // The rekey's own events are signed with the new key; the lines before
    // are vouched for by the rekey checkpoint through the chain.
    for line in &lines[lines.len() - 2..] {
        assert_eq!(mac_valid(line, &new), Some(true), "{line}");
    }
    let wake = |code| {
        env.run_as(ROTATED, &["--json", "wake"], &[])
            .expect_code(code)
            .json()
    };
    assert_eq!(wake(0)["verdict"], "verified");
    env.run_as(ROTATED, &["seal"], &[]).expect_code(0);
    assert_eq!(
        env.run_as(ROTATED, &["--json", "verify"], &[])
            .expect_code(0)
            .json()["problems"],
        json!([])
    );
    // A line signed with the retired token's key is forged now.
    let line = signed(&next_line(&env, "good", json!({"seq": 1})), &old);
    append(&env, &line);
    assert_eq!(wake(5)["detail"], "history-forged");
}

#[test]
fn a_torn_line_is_replaced_by_a_signed_repair_line() {
    let env = Env::at_rest();
    let mut text = fs::read(history_path(&env)).unwrap();
    text.extend_from_slice(b"{\"n\":99,\"at\":\"2030");
    fs::write(history_path(&env), text).unwrap();
    assert_eq!(env.wake(&[]).expect_code(0).json()["verdict"], "verified");
    let key = history_key(TOKEN);
    let lines = raw_lines(&env);
    let repair = lines
        .iter()
        .find(|l| l.contains("\"event\":\"repair\""))
        .expect("a repair line");
    assert_eq!(mac_valid(repair, &key), Some(true));
    env.verify_clean();
}

/// With no `good` event at all (the agent never ran under `selfsame
/// run`), `restore last-good` restores the head, as its help says.
#[test]
fn restore_last_good_without_a_good_event_restores_the_head() {
    let env = Env::at_rest();
    fs::write(env.soul().join("memory.jsonl"), "{\"said\":\"sealed\"}\n").unwrap();
    env.run(&["seal"]).expect_code(0);
    let head = env.head();
    fs::write(env.soul().join("memory.jsonl"), "{\"said\":\"edited\"}\n").unwrap();
    let v = env
        .run(&["--json", "restore", "last-good"])
        .expect_code(0)
        .json();
    assert_eq!(v["target"], head, "{v}");
    assert_eq!(
        fs::read_to_string(env.soul().join("memory.jsonl")).unwrap(),
        "{\"said\":\"sealed\"}\n"
    );
}
