//! Issue 15, build 7 and must hold 5: permission bits are part of the soul
//! (manifest v2). A `chmod` at rest is `tampered`; a restore gives back
//! `0600` as `0600` and a directory's `0700`; a vault whose head has a
//! version 1 manifest keeps verifying, and its verified soul stays
//! verified after the upgrade. Every test ends with the token-leak scan.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use selfsame::ops::seal::Reason;
use selfsame::testing::VaultFiles;
use selfsame::testing::{identity_key, manifest_of, sha256, Keys, Manifest, ManifestVersion};
use selfsame::testing::{Draft, Header};
use selfsame::{Credential, Platform, Vault};

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// The manifest object a checkpoint names, as bytes.
fn manifest_text(env: &Env, seq: u64) -> String {
    let soul = env.checkpoint_field(seq, "soul");
    fs::read_to_string(object_path(&env.vault(), &soul)).unwrap()
}

/// A private file and a private directory, sealed at rest.
fn private_env() -> Env {
    let env = Env::bare();
    write(&env.soul(), "private.key", b"only mine\n", 0o600);
    chmod(&env.soul().join("notes"), 0o700);
    env.run(&["init", "soul", "--shell-version", "1.0.0"])
        .expect_code(0);
    env.wake(&[]).expect_code(0);
    env.run(&["seal"]).expect_code(0);
    env
}

#[test]
fn a_seal_records_permission_bits_in_manifest_v2() {
    let env = private_env();
    let text = manifest_text(&env, env.head());
    assert!(text.starts_with("selfsame-manifest 2\n"), "{text}");
    let line = |path: &str| {
        text.lines()
            .find(|l| l.ends_with(&format!(" {path}")))
            .unwrap_or_else(|| panic!("no line for {path} in {text}"))
            .to_owned()
    };
    let key = sha256_hex(b"only mine\n");
    assert_eq!(line("private.key"), format!("f 0600 {key} 10 private.key"));
    assert_eq!(line("notes"), "d 0700 - - notes");
    assert!(line("run.sh").starts_with("f 0755 "), "{}", line("run.sh"));
    assert!(line("link").starts_with("l - "), "{}", line("link"));
    env.verify_clean();
    env.assert_no_secret_anywhere();
}

#[test]
fn a_chmod_at_rest_is_tampered() {
    let base = private_env();
    for (path, new_mode) in [
        ("private.key", 0o644),
        ("notes", 0o755),
        ("memory.jsonl", 0o600),
    ] {
        let env = base.copy();
        chmod(&env.soul().join(path), new_mode);
        let out = env.wake(&[]).expect_code(3);
        let v = out.json();
        assert_eq!(v["verdict"], "tampered", "{path}: {}", out.stdout);
        assert_eq!(
            strings(&v["changes"]["mode_changed"]),
            [path],
            "{path}: {}",
            out.stdout
        );
        assert!(
            strings(&v["changes"]["modified"]).is_empty(),
            "{}",
            out.stdout
        );
        env.assert_no_secret_anywhere();
    }
    base.assert_no_secret_anywhere();
}

/// The stat cache vouches for an unchanged soul; a `chmod` alone (which
/// changes no content and, for a directory, nothing a file record holds)
/// must still reach the manifest.
#[test]
fn a_chmod_after_a_cached_seal_is_a_new_soul() {
    let env = private_env();
    // Twice, so the cache records the head and trusts every file.
    env.run(&["seal"]).expect_code(0);
    let before = env.checkpoint_field(env.head(), "soul");
    for (path, new_mode) in [("notes", 0o750), ("private.key", 0o640)] {
        chmod(&env.soul().join(path), new_mode);
        let out = env.run(&["--json", "seal"]).expect_code(0);
        let v = out.json();
        assert_eq!(
            strings(&v["changes"]["mode_changed"]),
            [path],
            "{}",
            out.stdout
        );
        let now = env.checkpoint_field(env.head(), "soul");
        assert_ne!(now, before, "{path}: the chmod was not recorded");
        assert!(manifest_text(&env, env.head()).contains(&format!(" {new_mode:04o} ")));
    }
    env.wake(&[]).expect_code(0);
    env.assert_no_secret_anywhere();
}

#[test]
fn a_restore_gives_back_0600_and_a_directorys_0700() {
    let env = private_env();
    let sealed = env.head();
    let want = tree(&env.soul());
    chmod(&env.soul().join("private.key"), 0o644);
    chmod(&env.soul().join("notes"), 0o755);
    write(&env.soul(), "memory.jsonl", b"changed\n", 0o644);
    env.run(&["seal"]).expect_code(0);
    env.run(&["restore", &sealed.to_string()]).expect_code(0);
    assert_eq!(mode(&env.soul().join("private.key")), 0o600);
    assert_eq!(mode(&env.soul().join("notes")), 0o700);
    assert_eq!(mode(&env.soul().join("notes/deep")), 0o755);
    assert_eq!(mode(&env.soul().join("run.sh")), 0o755);
    assert_eq!(tree(&env.soul()), want);
    // The restore's own checkpoint is the sealed soul, byte for byte.
    assert_eq!(
        env.checkpoint_field(env.head(), "soul"),
        env.checkpoint_field(sealed, "soul")
    );
    let v = env.wake(&[]).expect_code(0).json();
    assert_eq!(v["verdict"], "verified");
    env.verify_clean();
    env.assert_no_secret_anywhere();
}

/// A directory recorded without write permission is still filled.
#[test]
fn a_directory_recorded_read_only_is_restored_with_its_files() {
    let env = Env::new();
    chmod(&env.soul().join("notes/deep"), 0o500);
    env.run(&["seal"]).expect_code(0);
    let sealed = env.head();
    let want = tree(&env.soul());
    chmod(&env.soul().join("notes/deep"), 0o755);
    fs::remove_file(env.soul().join("notes/deep/b.bin")).unwrap();
    env.run(&["seal"]).expect_code(0);
    env.run(&["restore", &sealed.to_string()]).expect_code(0);
    assert_eq!(tree(&env.soul()), want);
    assert_eq!(mode(&env.soul().join("notes/deep")), 0o500);
    env.verify_clean();
    // Let the temp dir be removed.
    chmod(&env.soul().join("notes/deep"), 0o755);
    env.assert_no_secret_anywhere();
}

/// Root restoring a setuid file would make a setuid-root program of bytes
/// the soul's writer chose: refused before anything moves. Its owner
/// restores it as recorded.
#[test]
fn a_setuid_file_is_recorded_and_root_refuses_to_restore_it() {
    let env = Env::new();
    write(&env.soul(), "tool", b"#!/bin/sh\n", 0o4755);
    env.run(&["seal"]).expect_code(0);
    let sealed = env.head();
    assert!(
        manifest_text(&env, sealed).contains(" 4755 "),
        "{}",
        manifest_text(&env, sealed)
    );
    fs::remove_file(env.soul().join("tool")).unwrap();
    env.run(&["seal"]).expect_code(0);
    let before = tree(&env.soul());
    if is_root() {
        let out = env.run(&["restore", &sealed.to_string()]).expect_code(2);
        assert!(out.stderr.contains("tool"), "{}", out.stderr);
        assert!(out.stderr.contains("4755"), "{}", out.stderr);
        assert!(out.stderr.contains("not root"), "{}", out.stderr);
        assert_eq!(tree(&env.soul()), before, "nothing was restored");
        assert!(!env.vault().join("run/restore.journal").exists());
        let v = env.wake(&[]).expect_code(0).json();
        assert_eq!(v["verdict"], "verified");
    }
    env.assert_no_secret_anywhere();
}

fn is_root() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        == Some("0")
}

/// Signs, with the real token, a checkpoint on top of the head that
/// records the head's soul as a version 1 manifest: the head an older
/// selfsame would have written. Removes the stat cache, as an older
/// version's listing would not vouch for a version 2 manifest.
fn plant_version_1_head(env: &Env, reason: Reason) -> u64 {
    let vault = Vault::open(&env.vault()).unwrap();
    let token = Credential::parse(Platform::Telegram, TOKEN).unwrap();
    let head = vault
        .read_checkpoint(vault.read_head().unwrap().unwrap())
        .unwrap();
    let v2 = manifest_of(&vault, &head).unwrap();
    assert_eq!(v2.version, ManifestVersion::V2);
    let v1 = Manifest::of(ManifestVersion::V1, v2.entries.clone());
    let bytes = v1.to_bytes();
    assert!(bytes.starts_with(b"selfsame-manifest 1\n"));
    let soul = sha256(&bytes);
    vault.objects().put(&soul, &bytes).unwrap();
    let mut extra = Vec::new();
    if let Some(c) = head.ckpt.config() {
        extra.push(("config".to_owned(), c.to_owned()));
    }
    let draft = Draft {
        header: Header {
            seq: head.ckpt.seq + 1,
            prev: head.file_hash.clone(),
            soul: soul.iter().map(|b| format!("{b:02x}")).collect(),
            files: v1.files(),
            bytes: v1.bytes(),
            sealed_at: "2030-01-01T00:00:00.000Z".into(),
            reason: reason.as_str().into(),
            shell: head.ckpt.shell.clone(),
            format: head.ckpt.format.clone(),
            log: vault.history().tail().unwrap().0,
            platform: "telegram".into(),
            bot_id: token.account_id(),
        },
        extra,
    };
    let identity = identity_key(&vault, &token).unwrap();
    let ckpt = Keys::of(&token).sign(&draft, identity.as_ref());
    vault.write_checkpoint(&ckpt).unwrap();
    vault.write_head(ckpt.seq).unwrap();
    let _ = fs::remove_dir_all(env.vault().join("cache"));
    ckpt.seq
}

#[test]
fn a_version_1_head_stays_verified_after_the_upgrade() {
    let env = private_env();
    let v1 = plant_version_1_head(&env, Reason::Rest);
    assert!(manifest_text(&env, v1).starts_with("selfsame-manifest 1\n"));
    let at_rest = env.copy();
    // The soul holds a 0600 file and a 0700 directory, which version 1
    // never recorded: judged in the head's version, nothing changed.
    let out = env.wake(&[]).expect_code(0);
    assert_eq!(out.json()["verdict"], "verified", "{}", out.stdout);
    let out = env.run(&["--json", "status"]).expect_code(0);
    assert_eq!(out.json()["wake"]["verdict"], "verified", "{}", out.stdout);
    env.verify_clean();
    // A content change at rest is still one (in version 1's terms).
    write(&at_rest.soul(), "notes/a.md", b"edited at rest\n", 0o644);
    let out = at_rest.wake(&[]).expect_code(3);
    assert_eq!(strings(&out.json()["changes"]["modified"]), ["notes/a.md"]);
    at_rest.assert_no_secret_anywhere();

    // The next seal writes version 2; from then on modes count.
    env.run(&["seal"]).expect_code(0);
    let v2 = env.head();
    assert!(manifest_text(&env, v2).starts_with("selfsame-manifest 2\n"));
    env.wake(&[]).expect_code(0);
    env.run(&["seal"]).expect_code(0);
    chmod(&env.soul().join("private.key"), 0o644);
    assert_eq!(env.wake(&[]).expect_code(3).json()["verdict"], "tampered");
    chmod(&env.soul().join("private.key"), 0o600);

    // Restoring the version 1 checkpoint gives files the modes version 1
    // knows (0644, 0755), and its restore checkpoint stands.
    env.run(&["restore", &v1.to_string()]).expect_code(0);
    assert_eq!(mode(&env.soul().join("private.key")), 0o644);
    assert_eq!(mode(&env.soul().join("run.sh")), 0o755);
    assert_eq!(
        fs::read(env.soul().join("private.key")).unwrap(),
        b"only mine\n"
    );
    let v = env.wake(&[]).expect_code(0).json();
    assert_eq!(v["verdict"], "verified");
    env.verify_clean();
    env.assert_no_secret_anywhere();
}

/// A migration refuses a soul changed at rest; a version 1 head whose
/// soul is unchanged is not one.
#[test]
fn a_version_1_head_is_a_sealed_state_for_migrate() {
    let env = private_env();
    let v1 = plant_version_1_head(&env, Reason::Rest);
    let dir = env.base().join("migrations");
    fs::create_dir(&dir).unwrap();
    write(&dir, "v2-noop", b"#!/bin/sh\nexit 0\n", 0o755);
    let out = env.run(&["--json", "migrate"]).expect_code(0);
    let v = out.json();
    assert_eq!(v["applied"][0]["migration"], "v2-noop", "{}", out.stdout);
    assert_eq!(
        v["sealed_before"],
        serde_json::Value::Null,
        "{}",
        out.stdout
    );
    assert_eq!(env.head(), v1 + 1);
    assert_eq!(env.checkpoint_field(env.head(), "format"), "v2");
    assert!(manifest_text(&env, env.head()).starts_with("selfsame-manifest 2\n"));
    env.wake(&[]).expect_code(0);
    env.assert_no_secret_anywhere();
}
