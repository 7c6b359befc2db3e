//! Issue 13, items 4, 5, 13, 15, 18 and 19: the vault's own files. Every
//! vault file is read without following a symlink or waiting on a FIFO and
//! no further than it can be; the vault is private; checkpoint files are
//! exactly their canonical bytes under their canonical names; readers
//! without a lock never take a seal in progress for damage; temp files of
//! dead writers are removed; a restore's seal copies nothing that is
//! stored. Every test ends with the token-leak scan.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// Seconds a command that must not hang gets (generous: the machine is
/// shared; a hang is forever).
const DEADLINE: u64 = 30;

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(ok.success());
}

// --- item 4: no vault file is followed, waited on, or read without end ----

#[test]
fn a_fifo_for_head_fails_wake_status_and_verify_at_once() {
    let env = Env::at_rest();
    let head = env.vault().join("HEAD");
    fs::remove_file(&head).unwrap();
    mkfifo(&head);
    for args in [
        &["--json", "wake"][..],
        &["--json", "status"][..],
        &["--json", "verify"][..],
    ] {
        let out = env.run_within(DEADLINE, env.base(), args).expect_code(5);
        assert!(
            out.stdout.contains("HEAD is a FIFO"),
            "{args:?}: {}",
            out.stdout
        );
    }
    fs::remove_file(&head).unwrap();
    fs::write(&head, "2\n").unwrap();
    // The awake marker, the history and the restore journal alike.
    for (name, detail) in [
        ("run/awake", "bad-file"),
        ("history.jsonl", "history-broken"),
        ("run/restore.journal", "bad-journal"),
    ] {
        let path = env.vault().join(name);
        let saved = fs::read(&path).ok();
        let _ = fs::remove_file(&path);
        mkfifo(&path);
        let out = env
            .run_within(DEADLINE, env.base(), &["--json", "wake"])
            .expect_code(5);
        assert_eq!(out.json()["detail"], detail, "{name}: {}", out.stdout);
        fs::remove_file(&path).unwrap();
        if let Some(bytes) = saved {
            fs::write(&path, bytes).unwrap();
        }
    }
    env.verify_clean();
}

#[test]
fn a_fifo_for_the_stat_cache_fails_seal_at_once() {
    let env = Env::at_rest();
    let cache = env.vault().join("cache/stat");
    fs::remove_file(&cache).unwrap();
    mkfifo(&cache);
    let out = env
        .run_within(DEADLINE, env.base(), &["seal"])
        .expect_code(5);
    assert!(
        out.stderr.contains("cache/stat is a FIFO"),
        "{}",
        out.stderr
    );
    // It is only a cache: removed, the seal works again.
    fs::remove_file(&cache).unwrap();
    env.run(&["seal"]).expect_code(0);
    env.verify_clean();
}

#[test]
fn an_object_symlinked_to_dev_zero_is_corrupted_and_never_read() {
    let env = Env::at_rest();
    // A file object: restore would copy it without end.
    let content = fs::read(env.soul().join("notes/a.md")).unwrap();
    let obj = object_path(&env.vault(), &sha256_hex(&content));
    fs::remove_file(&obj).unwrap();
    symlink("/dev/zero", &obj).unwrap();
    fs::write(env.soul().join("notes/a.md"), "edited\n").unwrap();
    let before = tree(&env.soul());
    let out = env
        .run_within(DEADLINE, env.base(), &["restore", "head"])
        .expect_code(5);
    assert!(out.stderr.contains("a symbolic link"), "{}", out.stderr);
    assert_eq!(tree(&env.soul()), before, "the soul is untouched");
    let out = env
        .run_within(DEADLINE, env.base(), &["--json", "verify", "--read-data"])
        .expect_code(5);
    let v = out.json();
    assert_eq!(
        v["problems"][0]["detail"], "object-corrupt",
        "{}",
        out.stdout
    );

    // The head's manifest object: wake would read it until out of memory.
    let manifest = object_path(&env.vault(), &env.checkpoint_field(2, "soul"));
    fs::remove_file(&manifest).unwrap();
    symlink("/dev/zero", &manifest).unwrap();
    let out = env
        .run_within(DEADLINE, env.base(), &["--json", "wake"])
        .expect_code(5);
    let v = out.json();
    assert_eq!(v["verdict"], "corrupted", "{}", out.stdout);
    assert!(
        v["message"].as_str().unwrap().contains("a symbolic link"),
        "{}",
        out.stdout
    );
}

// --- item 5: the private vault -------------------------------------------

/// Every directory and file under the vault with a mode other than 0700
/// (directories) or 0600 (files); the entries of `quarantine/` keep the
/// soul's modes and are left out.
fn not_private(vault: &Path) -> Vec<String> {
    fn walk(dir: &Path, quarantine: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let meta = fs::symlink_metadata(&p).unwrap();
            let mode = meta.mode() & 0o7777;
            if meta.is_dir() {
                if mode != 0o700 {
                    out.push(format!("{} {mode:o}", p.display()));
                }
                if p != quarantine {
                    walk(&p, quarantine, out);
                }
            } else if meta.is_file() && mode != 0o600 {
                out.push(format!("{} {mode:o}", p.display()));
            }
        }
    }
    let mut out = Vec::new();
    let mode = fs::metadata(vault).unwrap().mode() & 0o7777;
    if mode != 0o700 {
        out.push(format!("{} {mode:o}", vault.display()));
    }
    walk(vault, &vault.join("quarantine"), &mut out);
    out
}

#[test]
fn a_new_vault_is_private_and_an_older_one_is_tightened_by_its_next_writer() {
    let env = Env::at_rest();
    // Soul files of every mode are stored; none of their objects is
    // readable by another user.
    assert_eq!(not_private(&env.vault()), Vec::<String>::new());
    let obj = object_path(&env.vault(), &sha256_hex(b"#!/bin/sh\necho awake\n"));
    assert_eq!(fs::metadata(&obj).unwrap().mode() & 0o777, 0o600);

    // A vault as an older selfsame left it: 0755 directories, 0644 files.
    let status = Command::new("chmod")
        .args(["-R", "u=rwX,go=rX"])
        .arg(env.vault())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(!not_private(&env.vault()).is_empty());
    // Older versions put an object's temp file beside the object.
    let legacy = obj.with_file_name(format!(".tmp-{}-7-{}", dead_pid(), "partial"));
    fs::write(&legacy, b"half an object").unwrap();
    // A reader changes nothing.
    env.run(&["verify"]).expect_code(0);
    assert_eq!(fs::metadata(env.vault()).unwrap().mode() & 0o777, 0o755);
    assert!(legacy.exists());
    // The next writer tightens everything, and removes what a dead writer
    // left among the objects.
    env.wake(&[]).expect_code(0);
    assert_eq!(not_private(&env.vault()), Vec::<String>::new());
    assert!(!legacy.exists());

    // A restore puts soul files back with their own modes, and moves the
    // old ones to a private quarantine.
    fs::write(env.soul().join("notes/a.md"), "edited\n").unwrap();
    let sealed = {
        let mut t = tree(&env.soul());
        t.insert(
            "notes/a.md".into(),
            Node::File {
                mode: 0o644,
                bytes: b"# who I am\n\nI remember.\n".to_vec(),
            },
        );
        t
    };
    env.run(&["restore", "head"]).expect_code(0);
    assert_eq!(tree(&env.soul()), sealed);
    assert_eq!(not_private(&env.vault()), Vec::<String>::new());
    env.verify_clean();
}

// --- item 13: checkpoint names -------------------------------------------

#[test]
fn a_checkpoint_under_any_name_but_its_own_is_corrupted() {
    let env = Env::at_rest();
    let nine = env.vault().join("checkpoints/000000001.ckpt");
    // Beside seq 1's own file: another copy of seq 1.
    fs::copy(env.checkpoint(1), &nine).unwrap();
    for args in [&["--json", "wake"][..], &["--json", "verify"][..]] {
        let out = env.run(args).expect_code(5);
        let v = out.json();
        assert_eq!(v["problems"][0]["detail"], "unreadable-checkpoint");
        assert!(
            v["problems"][0]["message"]
                .as_str()
                .unwrap()
                .contains("000000001.ckpt"),
            "{}",
            out.stdout
        );
    }
    fs::remove_file(&nine).unwrap();
    // In place of the head's own file.
    let own = env.checkpoint(2);
    let nine = env.vault().join("checkpoints/000000002.ckpt");
    fs::rename(&own, &nine).unwrap();
    let out = env.wake(&[]).expect_code(5);
    assert!(out.stdout.contains("000000002.ckpt"), "{}", out.stdout);
    fs::rename(&nine, &own).unwrap();

    // Something else is named, not damage.
    fs::write(env.vault().join("checkpoints/README"), "notes\n").unwrap();
    let out = env.run(&["--json", "verify"]).expect_code(0);
    let notes = out.json()["notes"].to_string();
    assert!(notes.contains("checkpoints/README"), "{notes}");
    fs::remove_file(env.vault().join("checkpoints/README")).unwrap();
    env.verify_clean();
}

// --- item 15: readers beside a writer -------------------------------------

#[test]
fn verify_beside_a_seal_loop_never_reports_damage() {
    let env = Env::at_rest();
    // A seal always runs while verify runs: each finished one is followed
    // by the next at once.
    let mut sealer = env.spawn(&["seal", "--reason", "manual"]);
    let mut seals = 0;
    let mut bad = Vec::new();
    for _ in 0..150 {
        if let Ok(Some(_)) = sealer.try_wait() {
            env.finish(sealer).expect_code(0);
            seals += 1;
            sealer = env.spawn(&["seal", "--reason", "manual"]);
        }
        let out = env.run(&["--json", "verify"]);
        if out.code != 0 {
            bad.push(out.stdout);
        }
    }
    env.finish(sealer).expect_code(0);
    assert!(seals > 5, "only {seals} seals ran alongside");
    assert!(
        bad.is_empty(),
        "{} of 150 verify runs failed: {bad:?}",
        bad.len()
    );
    env.verify_clean();
}

// --- item 18: temp files ---------------------------------------------------

/// A pid that no process has (a child that has exited and was reaped).
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn temps_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let meta = fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            out.extend(temps_under(&p));
        } else if p
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".tmp-")
        {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn temp_files_of_killed_writers_are_removed_by_the_next_writer() {
    let env = Env::at_rest();
    // Big enough that a seal is still streaming it when it is killed.
    let big: Vec<u8> = (0..96u32 << 20)
        .map(|i| i.wrapping_mul(2654435761) as u8)
        .collect();
    fs::write(env.soul().join("big.bin"), &big).unwrap();
    let mut seal = env.spawn(&["seal"]);
    let tmp = env.vault().join("objects/tmp");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while temps_under(&env.vault()).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the seal wrote no temp file"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    seal.kill().unwrap();
    let _ = env.finish(seal);
    let killed = temps_under(&env.vault());
    assert!(!killed.is_empty());

    // Beside them, temp files of a dead writer where each kind is written,
    // and one of a live process (this test), which is not ours to remove.
    let dead = dead_pid();
    let planted: Vec<PathBuf> = [
        format!("{dead}-0-HEAD"),
        format!("checkpoints/.tmp-{dead}-1-00000003.ckpt"),
        format!("run/.tmp-{dead}-2-awake"),
        format!("cache/.tmp-{dead}-3-stat"),
    ]
    .iter()
    .map(|n| match n.split_once('/') {
        Some(_) => env.vault().join(n),
        None => env.vault().join(format!(".tmp-{n}")),
    })
    .collect();
    for p in &planted {
        fs::write(p, b"partial").unwrap();
    }
    let live = tmp.join(format!(".tmp-{}-0-stream", std::process::id()));
    fs::write(&live, b"being written").unwrap();

    // verify names each one with its size, and is not alarmed.
    let out = env.run(&["--json", "verify"]).expect_code(0);
    let notes = out.json()["notes"].to_string();
    for p in killed.iter().chain(&planted) {
        let size = fs::metadata(p).unwrap().len();
        let name = p.file_name().unwrap().to_string_lossy();
        assert!(
            notes.contains(&format!("{name} ({size} bytes)")),
            "{name}: {notes}"
        );
    }
    assert!(!notes.contains(&live.file_name().unwrap().to_string_lossy().to_string()));

    fs::remove_file(env.soul().join("big.bin")).unwrap();
    env.run(&["seal"]).expect_code(0);
    assert_eq!(temps_under(&env.vault()), vec![live.clone()]);
    fs::remove_file(&live).unwrap();
    env.verify_clean();
}

#[test]
fn a_restores_seal_writes_nothing_into_the_object_store() {
    // Without a small disk to show it (see the next test): the seal that
    // ends a restore creates no file in the store, not even a temp file
    // (any would move the mtime of objects/tmp/).
    let env = Env::at_rest();
    let big: Vec<u8> = (0..3u32 << 20)
        .map(|i| i.wrapping_mul(40503) as u8)
        .collect();
    fs::write(env.soul().join("big.bin"), &big).unwrap();
    env.run(&["seal"]).expect_code(0);
    let edited: Vec<u8> = big.iter().map(|b| !b).collect();
    fs::write(env.soul().join("big.bin"), edited).unwrap();
    fs::write(env.soul().join("notes/a.md"), "edited\n").unwrap();
    let tmp = env.vault().join("objects/tmp");
    let stamp = |p: &Path| {
        let m = fs::metadata(p).unwrap();
        (m.mtime(), m.mtime_nsec())
    };
    let before = (stamp(&tmp), files_under(&env.vault().join("objects")));
    std::thread::sleep(Duration::from_millis(20));
    let out = env.run(&["--json", "restore", "head"]).expect_code(0);
    assert_eq!(out.json()["target"], 3);
    assert_eq!(fs::read(env.soul().join("big.bin")).unwrap(), big);
    let after = (stamp(&tmp), files_under(&env.vault().join("objects")));
    assert_eq!(after, before, "the restore's seal wrote into the store");
    env.verify_clean();
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// A tmpfs of `mib` MiB mounted at `at` for as long as it lives.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` when this process may not mount (not root).
    fn mount(at: &Path, mib: u32) -> Option<Tmpfs> {
        fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(at)
            .status()
            .ok()?
            .success();
        ok.then(|| Tmpfs(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_restore_on_a_nearly_full_disk_copies_nothing_into_the_store() {
    // The disk holds the object of a 4 MiB file, the soul's edited copy and
    // the restore's staged copy, and not one copy more.
    let env = Env::bare();
    let disk = env.base().join("disk");
    let Some(_tmpfs) = Tmpfs::mount(&disk, 14) else {
        // Only root with CAP_SYS_ADMIN mounts (CI runs as root);
        // `a_restores_seal_writes_nothing_into_the_object_store` shows the
        // same without a mount.
        eprintln!("skipped: this process cannot mount a tmpfs");
        return;
    };
    let soul = disk.join("soul");
    fs::create_dir(&soul).unwrap();
    let content: Vec<u8> = (0..4u32 << 20)
        .map(|i| i.wrapping_mul(2246822519) as u8)
        .collect();
    fs::write(soul.join("memory.db"), &content).unwrap();
    fs::write(soul.join("notes.md"), "who I am\n").unwrap();
    env.run_within(DEADLINE, &disk, &["init", "soul"])
        .expect_code(0);
    env.run_within(DEADLINE, &disk, &["wake"]).expect_code(0);
    env.run_within(DEADLINE, &disk, &["seal"]).expect_code(0);
    let edited: Vec<u8> = content.iter().map(|b| b ^ 0x5a).collect();
    fs::write(soul.join("memory.db"), &edited).unwrap();

    let out = env
        .run_within(DEADLINE, &disk, &["--json", "restore", "head"])
        .expect_code(0);
    assert_eq!(out.json()["target"], 2, "{}", out.stdout);
    assert_eq!(fs::read(soul.join("memory.db")).unwrap(), content);
    let v: Value = env
        .run_within(DEADLINE, &disk, &["--json", "wake"])
        .expect_code(0)
        .json();
    assert_eq!(v["verdict"], "verified");
    env.run_within(DEADLINE, &disk, &["verify", "--read-data"])
        .expect_code(0);
    env.assert_no_secret_anywhere();
}

/// On a full disk, prune still frees what it can: a pack that keeps
/// nothing is removed before anything is written, and with the room it
/// frees the kept blobs of a mixed pack are written anew; the vault
/// verifies, and every kept file reads back.
#[test]
fn prune_on_a_full_disk_removes_dead_packs_first() {
    let env = Env::bare();
    let disk = env.base().join("disk");
    let Some(_tmpfs) = Tmpfs::mount(&disk, 8) else {
        eprintln!("skipped: this process cannot mount a tmpfs");
        return;
    };
    let soul = disk.join("soul");
    fs::create_dir(&soul).unwrap();
    let noise = |seed: u32, i: u32| -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x85eb_ca6b) ^ i.wrapping_mul(0x9e37_79b9) ^ 1;
        (0..100_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    };
    for i in 0..20 {
        fs::write(soul.join(format!("f{i}.bin")), noise(0, i)).unwrap();
    }
    let run = |args: &[&str]| env.run_within(DEADLINE, &disk, args);
    run(&["init", "soul"]).expect_code(0);
    for seed in 1..=2 {
        for i in 0..10 {
            fs::write(soul.join(format!("f{i}.bin")), noise(seed, i)).unwrap();
        }
        run(&["seal"]).expect_code(0);
    }
    run(&["forget", "--keep-last", "1"]).expect_code(0);
    run(&["seal", "--reason", "manual"]).expect_code(0);
    // The disk is full but for 16 KiB: room for prune's history event,
    // none for a pack.
    let reserve = disk.join("reserve");
    fs::write(&reserve, vec![0u8; 16 << 10]).unwrap();
    let filler = disk.join("filler");
    let mut f = fs::File::create(&filler).unwrap();
    let block = vec![0xa5u8; 64 << 10];
    use std::io::Write;
    while f.write_all(&block).is_ok() {}
    let _ = f.write_all(&[0u8; 1]);
    drop(f);
    fs::remove_file(&reserve).unwrap();

    let out = run(&["--json", "prune"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let v = out.json();
    assert!(v["bytes_removed"].as_u64().unwrap() > 500_000, "{v}");
    fs::remove_file(&filler).unwrap();
    run(&["verify", "--read-data"]).expect_code(0);
    // The kept checkpoint puts every file back.
    for i in 0..20 {
        fs::remove_file(soul.join(format!("f{i}.bin"))).unwrap();
    }
    run(&["restore", "head"]).expect_code(0);
    for i in 0..20 {
        let seed = if i < 10 { 2 } else { 0 };
        assert_eq!(
            fs::read(soul.join(format!("f{i}.bin"))).unwrap(),
            noise(seed, i),
            "f{i}.bin"
        );
    }
}

// --- item 19 ----------------------------------------------------------------

/// A path a few bytes under PATH_MAX opens, but a restore stages it under
/// `.selfsame-restore/new/`, past PATH_MAX: such a soul is refused at the
/// seal (named), not sealed into a checkpoint that can never be put back;
/// 30 bytes shorter, it seals and restores.
#[test]
fn a_soul_path_a_restore_could_not_stage_is_refused_at_the_seal() {
    use rustix::fs::{mkdirat, openat, Mode, OFlags};
    let env = Env::at_rest();
    let root = env.soul().canonicalize().unwrap();
    let make = |total: usize| -> String {
        // Directories of 200 bytes, then a file name to reach `total`
        // bytes of absolute path.
        let mut dir = openat(
            rustix::fs::CWD,
            &root,
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        let mut rel = String::new();
        let top = format!("t{total}");
        for i in 0.. {
            let seg = if i == 0 { top.clone() } else { "d".repeat(200) };
            if root.as_os_str().len() + 1 + rel.len() + seg.len() + 1 + 60 > total {
                break;
            }
            mkdirat(&dir, seg.as_str(), Mode::from_raw_mode(0o755)).unwrap();
            dir = openat(
                &dir,
                seg.as_str(),
                OFlags::RDONLY | OFlags::DIRECTORY,
                Mode::empty(),
            )
            .unwrap();
            rel.push_str(&seg);
            rel.push('/');
        }
        let left = total - (root.as_os_str().len() + 1 + rel.len());
        let name = "f".repeat(left);
        let f = openat(
            &dir,
            name.as_str(),
            OFlags::WRONLY | OFlags::CREATE,
            Mode::from_raw_mode(0o644),
        )
        .unwrap();
        rustix::io::write(&f, b"deep\n").unwrap();
        rel.push_str(&name);
        assert_eq!(root.as_os_str().len() + 1 + rel.len(), total);
        top
    };
    let rm = |top: &str| {
        assert!(Command::new("rm")
            .args(["-r", &format!("soul/{top}")])
            .current_dir(env.base())
            .status()
            .unwrap()
            .success());
    };
    let near = make(4085);
    let out = env.run(&["seal"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("PATH_MAX") && out.stderr.contains(".selfsame-restore"),
        "{}",
        out.stderr
    );
    rm(&near);
    let fits = make(4060);
    env.run(&["seal"]).expect_code(0);
    rm(&fits);
    env.run(&["restore", "head"]).expect_code(0);
    let back = Command::new("find")
        .args([&format!("soul/{fits}"), "-type", "f"])
        .current_dir(env.base())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&back.stdout).lines().count(),
        1,
        "restored"
    );
}

#[test]
fn a_soul_path_longer_than_path_max_is_named_in_a_verdict() {
    let env = Env::at_rest();
    // Made a step at a time from a directory descriptor: no absolute path
    // this long can be opened.
    use rustix::fs::{mkdirat, openat, Mode, OFlags};
    let segment = "d".repeat(200);
    let mut dir = openat(
        rustix::fs::CWD,
        env.soul(),
        OFlags::RDONLY | OFlags::DIRECTORY,
        Mode::empty(),
    )
    .unwrap();
    for _ in 0..22 {
        mkdirat(&dir, segment.as_str(), Mode::from_raw_mode(0o755)).unwrap();
        dir = openat(
            &dir,
            segment.as_str(),
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
    }
    let f = openat(
        &dir,
        "f",
        OFlags::WRONLY | OFlags::CREATE,
        Mode::from_raw_mode(0o644),
    )
    .unwrap();
    drop(f);
    let out = env.wake(&[]);
    let v = out.json();
    assert_eq!(out.code, 3, "{}", out.stdout);
    assert_eq!(v["verdict"], "tampered");
    let message = v["message"].as_str().unwrap();
    assert!(message.contains("PATH_MAX"), "{message}");
    // Named by its start and end (and length), not by 4 KB of it.
    assert!(message.contains("soul entry dddd"), "{message}");
    assert!(message.contains("…"), "{message}");
    assert!(out.stdout.len() < 3000, "{} bytes", out.stdout.len());
    let out = env.run(&["seal"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("PATH_MAX"), "{}", out.stderr);
    assert!(out.stderr.len() < 1500, "{} bytes", out.stderr.len());
    // `rm -r` removes it step by step too.
    let removed = Command::new("rm")
        .args(["-r", &format!("soul/{segment}")])
        .current_dir(env.base())
        .status()
        .unwrap();
    assert!(removed.success());
    assert_eq!(env.wake(&[]).json()["verdict"], "verified");
}

/// The head checkpoint's file with `edit` applied to its one line.
fn edit_head(env: &Env, edit: impl Fn(&str) -> String) -> String {
    let path = env.checkpoint(2);
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, edit(text.trim_end()) + "\n").unwrap();
    text
}

#[test]
fn a_checkpoint_must_be_its_fields_canonical_bytes() {
    let env = Env::at_rest();
    fn lowercase_escape(t: &str) -> String {
        t.replacen("%3A", "%3a", 1)
    }
    fn fields_swapped(t: &str) -> String {
        let mut f: Vec<&str> = t.split('&').collect();
        f.swap(1, 2);
        f.join("&")
    }
    fn empty_signature(t: &str) -> String {
        t.replacen("&hash=", "&signature=&hash=", 1)
    }
    type Edit = fn(&str) -> String;
    let cases: [(&str, Edit); 3] = [
        ("a lowercase escape", lowercase_escape),
        ("two fields swapped", fields_swapped),
        ("an empty signature outside the MAC", empty_signature),
    ];
    for (what, edit) in cases {
        let original = edit_head(&env, edit);
        let out = env.wake(&[]);
        let v = out.json();
        assert_eq!(out.code, 5, "{what}: {}", out.stdout);
        assert_eq!(v["detail"], "unreadable-checkpoint", "{what}");
        env.run(&["verify"]).expect_code(5);
        fs::write(env.checkpoint(2), original).unwrap();
    }
    env.verify_clean();
}

#[test]
fn a_missing_format_or_checkpoints_dir_and_a_bad_head_are_corrupted() {
    let env = Env::at_rest();
    let format = env.vault().join("format");
    fs::remove_file(&format).unwrap();
    let out = env.run(&["wake"]).expect_code(5);
    assert!(out.stderr.contains("format is missing"), "{}", out.stderr);
    fs::write(&format, "1\n").unwrap();

    let checkpoints = env.vault().join("checkpoints");
    let aside = env.base().join("checkpoints-aside");
    fs::rename(&checkpoints, &aside).unwrap();
    let out = env.run(&["status"]).expect_code(5);
    assert!(
        out.stderr.contains("checkpoints is missing"),
        "{}",
        out.stderr
    );
    fs::rename(&aside, &checkpoints).unwrap();

    let head = env.vault().join("HEAD");
    fs::write(&head, b"\xff\xfe2\n").unwrap();
    let out = env.run(&["--json", "wake"]).expect_code(5);
    assert_eq!(out.json()["verdict"], "corrupted");
    fs::write(&head, "2\n").unwrap();

    let config = env.vault().join("config.toml");
    let text = fs::read(&config).unwrap();
    fs::write(&config, [&text[..], b"# \xff\n"].concat()).unwrap();
    let out = env.run(&["wake"]).expect_code(2);
    assert!(out.stderr.contains("config.toml"), "{}", out.stderr);
    fs::write(&config, text).unwrap();
    env.verify_clean();
}

#[test]
fn a_token_file_that_is_not_a_regular_file_is_refused_at_once() {
    let env = Env::at_rest();
    let fifo = env.base().join("token.fifo");
    mkfifo(&fifo);
    for file in [Path::new("/dev/zero"), fifo.as_path()] {
        let file = file.to_str().unwrap();
        let out = env
            .run_within(DEADLINE, env.base(), &["--token-file", file, "status"])
            .expect_code(2);
        assert!(out.stderr.contains(file), "{}", out.stderr);
        assert!(out.stderr.contains("not a regular file"), "{}", out.stderr);
    }
    let big = env.base().join("token.big");
    fs::write(&big, vec![b'1'; 5000]).unwrap();
    env.run(&["--token-file", big.to_str().unwrap(), "status"])
        .expect_code(2);
    let file = env.base().join("token.txt");
    fs::write(&file, format!("{TOKEN}\n")).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    env.run(&["--token-file", file.to_str().unwrap(), "status"])
        .expect_code(0);
    fs::remove_file(&file).unwrap();
}
