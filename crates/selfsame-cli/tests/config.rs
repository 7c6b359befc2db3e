//! `.selfsame/config.toml` is bound to the checkpoints: every checkpoint
//! records the SHA-256 of the config it was sealed with (`config`, covered
//! by the MAC). Someone who can write the vault but has no token cannot
//! downgrade a policy or point `soul =` elsewhere unseen: wake says
//! `tampered` (`config-changed`), halts whatever the policies say, and
//! leaves the soul alone until the owner runs `selfsame accept`.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use serde_json::Value;

fn edit_config(env: &Env, from: &str, to: &str) {
    let cfg = env.vault().join("config.toml");
    let text = fs::read_to_string(&cfg).unwrap();
    assert!(text.contains(from), "{text}");
    fs::write(&cfg, text.replace(from, to)).unwrap();
}

/// Asserts a `config-changed` halt of wake or status (whose report is under
/// `wake`) naming checkpoint `seq`.
fn assert_config_changed(out: &Out, seq: u64) -> Value {
    let mut v = out.json();
    if v.get("wake").is_some() {
        v = v["wake"].clone();
    }
    assert_eq!(v["verdict"], "tampered", "{}", out.stdout);
    assert_eq!(v["detail"], "config-changed", "{}", out.stdout);
    assert_eq!(v["action"], "halt", "{}", out.stdout);
    assert_eq!(v["may_start"], false, "{}", out.stdout);
    assert_eq!(v["exit_code"], 3, "{}", out.stdout);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!(
            "config.toml changed since checkpoint {seq}; if you made the change, run `selfsame accept` to adopt it"
        )),
        "{msg}"
    );
    v
}

fn last_event(env: &Env) -> Value {
    env.history().last().expect("history").clone()
}

#[test]
fn every_checkpoint_records_the_config_hash() {
    let env = Env::at_rest();
    let hash = sha256_hex(&fs::read(env.vault().join("config.toml")).unwrap());
    for seq in 1..=env.head() {
        assert_eq!(
            env.checkpoint_field(seq, "config"),
            hash,
            "checkpoint {seq}"
        );
    }
    // The sealed config is kept as an object.
    assert_eq!(
        fs::read(object_path(&env.vault(), &hash)).unwrap(),
        fs::read(env.vault().join("config.toml")).unwrap()
    );
    env.verify_clean();
}

#[test]
fn policy_downgrade_without_accept_is_tampered_and_halts() {
    let env = Env::at_rest();
    let head = env.head();
    // Someone without the token edits the soul at rest and tells wake to
    // adopt tampering silently.
    fs::write(env.soul().join("memory.jsonl"), "edited at rest\n").unwrap();
    edit_config(&env, "tampered = \"halt\"", "tampered = \"accept\"");
    let before = tree(&env.soul());

    // status (dry run) says the same and writes nothing.
    let lines = env.history().len();
    assert_config_changed(&env.run(&["--json", "status"]), head);
    assert_eq!(env.history().len(), lines, "status wrote history");

    let out = env.wake(&[]);
    assert_config_changed(&out, head);
    // The changed config's policy was not applied: nothing adopted, the
    // soul untouched, no checkpoint, no awake marker.
    assert_eq!(tree(&env.soul()), before);
    assert_eq!(env.head(), head, "nothing sealed");
    assert!(!env.marker().exists(), "the agent was not let start");
    let e = last_event(&env);
    assert_eq!(e["event"], "wake", "{e}");
    assert_eq!(e["verdict"], "tampered", "{e}");
    assert_eq!(e["detail"], "config-changed", "{e}");
    assert_eq!(e["action"], "halt", "{e}");

    // Not even a policy flag overrides it.
    let out = env.wake(&["--policy", "tampered=accept"]);
    assert_config_changed(&out, head);
    let out = env.wake(&["--policy", "tampered=rollback"]);
    assert_config_changed(&out, head);
    assert_eq!(tree(&env.soul()), before);
    assert_eq!(env.head(), head);

    // verify lists it too.
    let out = env.run(&["--json", "verify"]);
    assert_eq!(out.code, 3, "{}", out.stdout);
    let problems = out.json()["problems"].as_array().unwrap().clone();
    assert!(
        problems.iter().any(|p| p["detail"] == "config-changed"),
        "{}",
        out.stdout
    );

    // Human output says what to do.
    let out = env.run(&["wake"]);
    assert_eq!(out.code, 3);
    assert!(
        out.stdout.contains("tampered (config-changed)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("selfsame accept"), "{}", out.stdout);
}

#[test]
fn after_accept_the_changed_config_is_verified_and_its_policy_applies() {
    let env = Env::at_rest();
    edit_config(&env, "tampered = \"halt\"", "tampered = \"accept\"");
    assert_config_changed(&env.wake(&[]), env.head());
    // The owner made the change: accept adopts it.
    env.run(&["accept"]).expect_code(0);
    let head = env.head();
    let hash = sha256_hex(&fs::read(env.vault().join("config.toml")).unwrap());
    assert_eq!(env.checkpoint_field(head, "config"), hash);
    assert_eq!(env.checkpoint_field(head, "reason"), "manual");
    let v = env.wake(&[]).expect_code(0).json();
    assert_eq!(v["verdict"], "verified", "{v}");
    env.verify_clean();
    // Now the adopted policy is in force.
    env.run(&["seal"]).expect_code(0);
    fs::write(env.soul().join("memory.jsonl"), "edited at rest\n").unwrap();
    let v = env.wake(&[]).expect_code(0).json();
    assert_eq!(v["verdict"], "tampered", "{v}");
    assert_eq!(v["detail"], Value::Null, "{v}");
    assert_eq!(v["action"], "accept", "{v}");
}

#[test]
fn putting_the_sealed_config_back_verifies_again() {
    let env = Env::at_rest();
    let original = fs::read(env.vault().join("config.toml")).unwrap();
    edit_config(&env, "tampered = \"halt\"", "tampered = \"accept\"");
    let v = assert_config_changed(&env.wake(&[]), env.head());
    // The message names where the sealed config is kept.
    let saved = fs::canonicalize(object_path(&env.vault(), &sha256_hex(&original))).unwrap();
    let msg = v["message"].as_str().unwrap();
    assert!(msg.contains(&*saved.to_string_lossy()), "{msg}");
    fs::copy(&saved, env.vault().join("config.toml")).unwrap();
    let v = env.wake(&[]).expect_code(0).json();
    assert_eq!(v["verdict"], "verified", "{v}");
}

#[test]
fn soul_redirected_to_a_pristine_copy_is_tampered() {
    let env = Env::at_rest();
    let head = env.head();
    // A pristine copy of the sealed soul, then the real soul is edited and
    // the config pointed at the copy: without the binding, wake would say
    // `verified` while the bot reads the edited soul.
    copy_tree(&env.soul(), &env.base().join("pristine"));
    fs::write(env.soul().join("memory.jsonl"), "edited at rest\n").unwrap();
    edit_config(&env, "soul = \"soul\"", "soul = \"pristine\"");
    let before = tree(&env.soul());
    assert_config_changed(&env.run(&["--json", "status"]), head);
    assert_config_changed(&env.wake(&[]), head);
    assert_eq!(tree(&env.soul()), before);
    assert_eq!(env.head(), head);
}

#[test]
fn config_change_while_awake_is_not_drift() {
    // The agent crashed (valid awake marker) and the config changed: the
    // config is not the agent's to change, so it is tampered, not drift.
    let env = Env::new();
    env.wake(&[]).expect_code(0);
    assert!(env.marker().exists());
    fs::write(env.soul().join("memory.jsonl"), "crash\n").unwrap();
    edit_config(&env, "exclude = []", "exclude = [\"memory.jsonl\"]");
    let before = tree(&env.soul());
    assert_config_changed(&env.wake(&[]), 1);
    assert_eq!(tree(&env.soul()), before);
    assert_eq!(env.head(), 1, "drift was not accepted");
}

#[test]
fn migrate_refuses_a_changed_config() {
    let env = Env::at_rest();
    let head = env.head();
    edit_config(
        &env,
        "# migrations = \"migrations\"",
        "migrations = \"elsewhere\"",
    );
    let out = env.run(&["migrate"]);
    assert_eq!(out.code, 2, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("config.toml changed"), "{}", out.stderr);
    assert_eq!(env.head(), head);
}

fn copy_tree(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}
