//! A vault written before packs keeps working: read, verified, restored;
//! the next seal stores what is new in packs and marks the vault format 2.
//!
//! `fixtures/vault-before-packs.tar.gz` holds a soul and its vault as the
//! selfsame of the commit before packs wrote them (`selfsame init`, two
//! seals; format 1, every object loose, manifest v2), with the test
//! token.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::*;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/vault-before-packs.tar.gz"
);

/// The first checkpoint's `notes/a.md` and `private.key`.
const A_MD_1: &str = "# who I am\n\nI remember.\n";
const KEY: &str = "secret key\n";

fn unpack() -> Env {
    let env = Env::bare();
    fs::remove_dir_all(env.soul()).unwrap();
    let status = std::process::Command::new("tar")
        .args(["-xzf", FIXTURE, "-C"])
        .arg(env.base())
        .status()
        .unwrap();
    assert!(status.success());
    env
}

fn packs(env: &Env) -> usize {
    fs::read_dir(env.vault().join("objects/packs")).map_or(0, |d| d.count())
}

#[test]
fn a_vault_from_before_packs_is_read_verified_and_restored() {
    let env = unpack();
    assert_eq!(
        fs::read_to_string(env.vault().join("format")).unwrap(),
        "1\n"
    );
    let v = env.run(&["--json", "status"]).expect_code(0).json();
    assert_eq!(v["wake"]["verdict"], "verified", "{v}");
    env.verify_clean();
    let out = env.run(&["cat", "1:notes/a.md"]).expect_code(0);
    assert_eq!(out.stdout, A_MD_1);
    let out = env.run(&["cat", "memory.jsonl"]).expect_code(0);
    assert_eq!(
        out.stdout.as_bytes(),
        fs::read(env.soul().join("memory.jsonl")).unwrap()
    );
    // Reading changes nothing: still format 1, no pack.
    assert_eq!(
        fs::read_to_string(env.vault().join("format")).unwrap(),
        "1\n"
    );
    assert_eq!(packs(&env), 0);

    env.run(&["restore", "1"]).expect_code(0);
    assert_eq!(
        fs::read_to_string(env.soul().join("notes/a.md")).unwrap(),
        A_MD_1
    );
    let key = env.soul().join("private.key");
    assert_eq!(fs::read_to_string(&key).unwrap(), KEY);
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    assert!(!env.soul().join("notes/day2.md").exists());
    env.verify_clean();
}

#[test]
fn the_first_seal_after_packs_packs_what_is_new_and_the_old_stays_readable() {
    let env = unpack();
    let mut memory = fs::read(env.soul().join("memory.jsonl")).unwrap();
    memory.extend_from_slice(b"{\"n\":2501,\"said\":\"after the upgrade\"}\n");
    fs::write(env.soul().join("memory.jsonl"), &memory).unwrap();
    let out = env.run(&["--json", "seal"]).expect_code(0).json();
    assert_eq!(out["new_objects"], 1, "{out}");
    // The vault may now hold packs: an older selfsame refuses it.
    assert_eq!(
        fs::read_to_string(env.vault().join("format")).unwrap(),
        "2\n"
    );
    assert!(packs(&env) >= 1);
    // The old version was loose, so its chunks are new; compressed, they
    // take less than the file.
    let first = out["new_bytes"].as_u64().unwrap();
    assert!(first > 0 && first < memory.len() as u64, "{first}");
    // Another line: its last chunk and a list, not the whole file again.
    memory.extend_from_slice(b"{\"n\":2502,\"said\":\"and another\"}\n");
    fs::write(env.soul().join("memory.jsonl"), &memory).unwrap();
    let out = env.run(&["--json", "seal"]).expect_code(0).json();
    let second = out["new_bytes"].as_u64().unwrap();
    assert!(
        second * 4 < first,
        "{second} bytes stored for one line ({first} for all)"
    );
    env.verify_clean();
    let head = env.head();
    let out = env
        .run(&["cat", &format!("{head}:memory.jsonl")])
        .expect_code(0);
    assert_eq!(out.stdout.as_bytes(), memory);
    // The old checkpoints still read from their loose objects.
    env.run(&["restore", "1"]).expect_code(0);
    assert_eq!(
        fs::read_to_string(env.soul().join("notes/a.md")).unwrap(),
        A_MD_1
    );
    env.run(&["restore", &head.to_string()]).expect_code(0);
    assert_eq!(fs::read(env.soul().join("memory.jsonl")).unwrap(), memory);
    env.verify_clean();
}

/// Issue 15, must hold 5 (retention): a vault from before packs (and
/// before retention) is forgotten and pruned like any other; what a kept
/// checkpoint needs, loose or packed, stays.
#[test]
fn a_vault_from_before_packs_is_forgotten_and_pruned() {
    let env = unpack();
    let old_head = env.head();
    let before = tree(&env.soul());
    write(&env.soul(), "notes/new.md", b"after the upgrade\n", 0o644);
    env.run(&["seal", "--reason", "manual"]).expect_code(0);
    let v = env
        .run(&["--json", "forget", "--keep-last", "2"])
        .expect_code(0)
        .json();
    let forgotten: Vec<u64> = v["forgotten"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_u64().unwrap())
        .collect();
    assert_eq!(forgotten, (1..old_head).collect::<Vec<_>>(), "{v}");
    // In effect once a checkpoint anchors it.
    env.run(&["seal", "--reason", "manual"]).expect_code(0);
    let v = env.run(&["--json", "prune"]).expect_code(0).json();
    assert!(v["objects_removed"].as_u64().unwrap() > 0, "{v}");
    env.verify_clean();
    // The old head, all loose objects, restores byte for byte.
    env.run(&["restore", &old_head.to_string()]).expect_code(0);
    assert_eq!(tree(&env.soul()), before);
    let out = env.run(&["cat", "1:notes/a.md"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("forgotten by retention"),
        "{}",
        out.stderr
    );
    env.verify_clean();
}
