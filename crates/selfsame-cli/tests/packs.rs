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

/// The pack index cache (docs/STORAGE.md).
fn pack_cache(env: &Env) -> PathBuf {
    env.vault().join("cache/packs")
}

/// Seals `n` small changes, as heartbeats do: a pack each.
fn heartbeats(env: &Env, n: usize) {
    for i in 0..n {
        fs::write(env.soul().join("notes/heartbeat.md"), format!("beat {i}\n")).unwrap();
        env.run(&["seal", "--reason", "heartbeat"]).expect_code(0);
    }
}

/// CRC-32 (IEEE), as the cache's last four bytes hold it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn the_pack_index_cache_names_every_pack_and_a_garbled_one_is_written_anew() {
    let env = Env::at_rest();
    heartbeats(&env, 3);
    let path = pack_cache(&env);
    let good = fs::read(&path).unwrap();
    assert!(good.starts_with(b"selfsame-pkix 1\n"));
    assert_eq!(pack_cache_names(&env.vault()), pack_names(&env.vault()));
    // Commands that add or remove no pack leave the cache as it is.
    use std::os::unix::fs::MetadataExt;
    let ino = fs::metadata(&path).unwrap().ino();
    env.run(&["status"]).expect_code(0);
    env.wake(&[]).expect_code(0);
    env.run(&["seal"]).expect_code(0);
    env.verify_clean();
    assert_eq!(fs::metadata(&path).unwrap().ino(), ino, "not rewritten");
    assert!(fs::read(&path).unwrap() == good);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x55;
    for (what, bytes) in [
        ("flipped", flipped),
        ("cut short", good[..good.len() / 3].to_vec()),
        ("empty", Vec::new()),
    ] {
        fs::write(&path, &bytes).unwrap();
        let out = env.wake(&[]).expect_code(0);
        assert_eq!(out.json()["verdict"], "verified", "{what}: {}", out.stdout);
        assert!(fs::read(&path).unwrap() == good, "{what}: written anew");
        env.verify_clean();
        env.run(&["seal"]).expect_code(0);
    }
}

#[test]
fn a_pack_index_cache_that_lies_is_not_believed_and_damage_is_still_found() {
    let env = Env::at_rest();
    heartbeats(&env, 2);
    let path = pack_cache(&env);
    let good = fs::read(&path).unwrap();
    // Every entry's offset moved by 3, the checksum made right: a
    // well-formed cache that points each blob at the wrong bytes.
    let mut lying = good[..good.len() - 4].to_vec();
    let count = u32::from_le_bytes(lying[16..20].try_into().unwrap());
    let mut at = 20;
    for _ in 0..count {
        let n = u32::from_le_bytes(lying[at + 32..at + 36].try_into().unwrap()) as usize;
        at += 36;
        for _ in 0..n {
            lying[at + 34] = lying[at + 34].wrapping_add(3);
            at += 58;
        }
    }
    assert_eq!(at, lying.len());
    let sum = crc32(&lying);
    lying.extend_from_slice(&sum.to_le_bytes());
    fs::write(&path, &lying).unwrap();
    let out = env.wake(&[]).expect_code(0);
    assert_eq!(out.json()["verdict"], "verified", "{}", out.stdout);
    assert!(fs::read(&path).unwrap() == good, "the truth written back");
    env.run(&["seal"]).expect_code(0);
    let good = fs::read(&path).unwrap();

    // The cache intact, the packs' own indexes damaged: verify names
    // every pack, whatever the cache says.
    let all = packs(&env);
    for pack in &all {
        let len = fs::metadata(pack).unwrap().len() as usize;
        flip_byte(pack, len - 1);
    }
    assert!(fs::read(&path).unwrap() == good);
    let out = env.run(&["--json", "verify"]).expect_code(5);
    let v = out.json();
    let damaged = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["detail"] == "object-corrupt" && p["message"].as_str().unwrap().contains("bad magic")
        })
        .count();
    assert_eq!(damaged, all.len(), "{}", out.stdout);
    for pack in &all {
        let len = fs::metadata(pack).unwrap().len() as usize;
        flip_byte(pack, len - 1);
    }
    env.verify_clean();

    // A blob's bytes damaged: the cache leads wake to them, and wake
    // refuses them.
    for pack in &all {
        flip_byte(pack, 8);
    }
    assert!(fs::read(&path).unwrap() == good);
    let out = env.wake(&[]).expect_code(5);
    assert_eq!(out.json()["verdict"], "corrupted", "{}", out.stdout);
    let out = env.run(&["--json", "verify", "--read-data"]).expect_code(5);
    assert!(
        out.json()["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["detail"] == "object-corrupt"),
        "{}",
        out.stdout
    );
}
