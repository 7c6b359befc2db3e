//! Damage to a pack (docs/STORAGE.md) is `corrupted`, as damage to a loose
//! object is: a pack replaced by something endless is refused at once, a
//! flipped byte is found by `verify --read-data` and by restore, which
//! then changes nothing.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

use common::*;

const DEADLINE: u64 = 30;

fn packs(env: &Env) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(env.vault().join("objects/packs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    out.sort();
    out
}

#[test]
fn a_seal_packs_the_soul_and_a_pack_symlinked_to_dev_zero_is_never_read() {
    let env = Env::at_rest();
    let packs = packs(&env);
    assert!(!packs.is_empty(), "the soul's objects are packed");
    // Only the sealed config is loose.
    let loose: Vec<_> = walk_files(&env.vault().join("objects"))
        .into_iter()
        .filter(|p| !p.starts_with(env.vault().join("objects/packs")))
        .collect();
    assert_eq!(loose.len(), 1, "{loose:?}");
    env.verify_clean();
    for pack in &packs {
        fs::remove_file(pack).unwrap();
        symlink("/dev/zero", pack).unwrap();
    }
    let out = env
        .run_within(DEADLINE, env.base(), &["--json", "wake"])
        .expect_code(5);
    assert_eq!(out.json()["verdict"], "corrupted", "{}", out.stdout);
    let out = env
        .run_within(DEADLINE, env.base(), &["--json", "verify", "--read-data"])
        .expect_code(5);
    let v = out.json();
    let problems = v["problems"].as_array().unwrap();
    assert!(
        problems.iter().any(|p| p["detail"] == "object-corrupt"
            && p["message"]
                .as_str()
                .unwrap()
                .contains("not a regular file")),
        "{}",
        out.stdout
    );
}

#[test]
fn a_byte_flipped_in_a_pack_is_found_by_verify_and_refused_by_restore() {
    let env = Env::at_rest();
    // The first blob of the pack: a file's content or the manifest.
    for pack in packs(&env) {
        flip_byte(&pack, 8);
    }
    let out = env.run(&["--json", "verify", "--read-data"]).expect_code(5);
    let v = out.json();
    assert!(
        v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["detail"] == "object-corrupt"),
        "{}",
        out.stdout
    );
    fs::write(env.soul().join("memory.jsonl"), "changed\n").unwrap();
    let before = tree(&env.soul());
    let out = env.run(&["restore", "2"]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert_eq!(tree(&env.soul()), before, "the soul is untouched");
}

fn walk_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}
