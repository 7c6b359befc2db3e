//! Issue 15, build 4: the quarantine can be looked at and let go of, by
//! the owner only — `selfsame quarantine list`, `drop ID`, `prune
//! --older-than DURATION` — and by `selfsame run` only when `[retention]
//! quarantine_older_than` says so. What a pending restore needs is never
//! removed; every removal is a history event.

mod common;

use std::fs;

use common::*;

/// At rest, then the soul edited and `restore head` run at `now`: the
/// edited state goes to quarantine. Returns the entry's name.
fn restore_at(env: &Env, now: &str, note: &str) -> String {
    write(&env.soul(), "memory.jsonl", note.as_bytes(), 0o644);
    let before: Vec<_> = env.quarantined();
    env.run_env(&["restore", "head"], &[("SELFSAME_NOW", now)])
        .expect_code(0);
    let after = env.quarantined();
    let new: Vec<_> = after.iter().filter(|p| !before.contains(p)).collect();
    assert_eq!(new.len(), 1, "{after:?}");
    new[0].file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn list_shows_what_a_restore_moved_aside_and_drop_removes_it_with_a_history_event() {
    let env = Env::at_rest();
    assert_eq!(
        env.run(&["quarantine", "list"]).expect_code(0).stdout,
        "quarantine is empty\n"
    );
    let id = restore_at(&env, "2030-01-02T03:04:05.678Z", "{\"said\":\"edited\"}\n");
    assert!(
        id.starts_with("2030-01-02T030405678Z-restore-from-"),
        "{id}"
    );
    let v = env
        .run(&["--json", "quarantine", "list"])
        .expect_code(0)
        .json();
    let e = &v["entries"][0];
    assert_eq!(e["id"], id.as_str());
    assert_eq!(e["at"], "2030-01-02T03:04:05.678Z");
    assert_eq!(e["kind"], "dir");
    // The whole soul as it was: every file of the rich soul.
    let soul_files = tree(&env.soul())
        .values()
        .filter(|n| matches!(n, Node::File { .. }))
        .count();
    assert_eq!(e["files"], soul_files as u64, "{v}");
    assert_eq!(e["pending"], false);
    let human = env.run(&["quarantine", "list"]).expect_code(0).stdout;
    assert!(
        human.starts_with(&format!("{id}  2030-01-02T03:04:05.678Z  ")),
        "{human}"
    );

    // An unknown id, or none, is a usage error and removes nothing.
    let out = env.run(&["quarantine", "drop", &id, "no-such-entry"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("no-such-entry"), "{}", out.stderr);
    // A 5,000-character id is named by its ends, not echoed whole.
    let long = "x".repeat(5000);
    let out = env.run(&["quarantine", "drop", &long]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.len() < 1000, "{} bytes", out.stderr.len());
    env.run(&["quarantine", "drop"]).expect_code(2);
    assert_eq!(env.quarantined().len(), 1);
    // Only the owner's token lets anything go.
    env.run_as(OTHER_BOT, &["quarantine", "drop", &id], &[])
        .expect_code(4);
    assert_eq!(env.quarantined().len(), 1);

    let out = env.run(&["quarantine", "drop", &id]).expect_code(0);
    assert!(
        out.stdout.contains(&format!("dropped {id}")),
        "{}",
        out.stdout
    );
    assert!(env.quarantined().is_empty());
    let event = env.history().pop().unwrap();
    assert_eq!(event["event"], "quarantine-drop");
    assert_eq!(event["ids"], serde_json::json!([id]));
    assert_eq!(event["bytes"], e["bytes"]);
    env.verify_clean();
    // The next seal anchors the event like any other.
    env.run(&["seal", "--reason", "manual"]).expect_code(0);
    env.verify_clean();
}

#[test]
fn prune_drops_only_entries_older_than_the_duration() {
    let env = Env::at_rest();
    let old = restore_at(&env, "2030-01-01T00:00:00Z", "old\n");
    let newer = restore_at(&env, "2030-01-20T00:00:00Z", "newer\n");
    let now = [("SELFSAME_NOW", "2030-01-31T00:00:00Z")];
    let out = env
        .run_env(
            &["quarantine", "prune", "--older-than", "14d", "--dry-run"],
            &now,
        )
        .expect_code(0);
    assert!(
        out.stdout.contains(&format!("would drop {old}")),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains(&newer), "{}", out.stdout);
    assert_eq!(env.quarantined().len(), 2, "a dry run removes nothing");
    let lines = env.history().len();
    let v = env
        .run_env(
            &["--json", "quarantine", "prune", "--older-than", "14d"],
            &now,
        )
        .expect_code(0)
        .json();
    assert_eq!(v["dropped"][0]["id"], old.as_str());
    assert_eq!(v["dropped"].as_array().unwrap().len(), 1);
    let left: Vec<String> = env
        .quarantined()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec![newer.clone()]);
    assert_eq!(env.history().len(), lines + 1);
    // Nothing old enough: nothing removed, nothing logged.
    env.run_env(&["quarantine", "prune", "--older-than", "14d"], &now)
        .expect_code(0);
    assert_eq!(env.history().len(), lines + 1);
    env.run(&["quarantine", "prune", "--older-than", "soon"])
        .expect_code(2);
    env.verify_clean();
}

#[test]
fn what_a_pending_restore_needs_is_never_dropped() {
    let env = Env::at_rest();
    write(&env.soul(), "memory.jsonl", b"edited\n", 0o644);
    let out = env.run_env(
        &["restore", "head"],
        &[("SELFSAME_FAILPOINT", "restore-before-seal")],
    );
    assert_eq!(out.code, 97, "{}", out.stderr);
    let v = env
        .run(&["--json", "quarantine", "list"])
        .expect_code(0)
        .json();
    let e = &v["entries"][0];
    assert_eq!(e["pending"], true, "{v}");
    let id = e["id"].as_str().unwrap().to_owned();
    let out = env.run(&["quarantine", "drop", &id]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("pending"), "{}", out.stderr);
    env.run_env(
        &["quarantine", "prune", "--older-than", "1s"],
        &[("SELFSAME_NOW", "2099-01-01T00:00:00Z")],
    )
    .expect_code(0);
    assert_eq!(env.quarantined().len(), 1);
    // The restore is finished as if nothing had happened.
    env.wake(&[]).expect_code(0);
    env.verify_clean();
}

#[test]
fn a_dropped_entry_is_removed_whatever_its_own_modes() {
    let env = Env::at_rest();
    let id = restore_at(&env, "2030-01-02T00:00:00Z", "edited\n");
    // A soul state keeps its own modes in quarantine: a directory its
    // owner cannot write, holding a read-only file.
    let dir = env.vault().join("quarantine").join(&id).join("notes");
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir.join("a.md"), fs::Permissions::from_mode(0o400)).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o500)).unwrap();
    env.give_to_nobody(env.base());
    let out = env.run_as_nobody(&["quarantine", "drop", &id]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(env.quarantined().is_empty());
}

#[test]
fn run_drops_old_quarantine_entries_only_when_retention_says_so() {
    let env = Env::at_rest();
    let old = restore_at(&env, "2030-01-01T00:00:00Z", "old\n");
    let now = [("SELFSAME_NOW", "2030-03-01T00:00:00Z")];
    env.run_env(&["run", "--", "true"], &now).expect_code(0);
    assert_eq!(
        env.quarantined().len(),
        1,
        "never automatic unless configured"
    );

    let config = env.vault().join("config.toml");
    let mut text = fs::read_to_string(&config).unwrap();
    text.push_str("\n[retention]\nquarantine_older_than = \"30d\"\n");
    fs::write(&config, text).unwrap();
    env.run(&["accept"]).expect_code(0);
    let fresh = restore_at(&env, "2030-02-20T00:00:00Z", "fresh\n");
    env.run_env(&["run", "--", "true"], &now).expect_code(0);
    let left: Vec<String> = env
        .quarantined()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec![fresh], "only what is older than 30 days goes");
    let drops: Vec<_> = env
        .history()
        .into_iter()
        .filter(|e| e["event"] == "quarantine-drop")
        .collect();
    assert_eq!(drops.len(), 1);
    assert_eq!(drops[0]["ids"], serde_json::json!([old]));
    env.verify_clean();
}

/// Entries the agent could shape: a name that is not UTF-8 (listed
/// lossily, dropped by that id, gone from disk), a symlink inside an entry
/// that points outside the vault (removed, its target untouched), and a
/// tree deeper than PATH_MAX (listed, measured and dropped through
/// descriptors, not paths).
#[test]
fn odd_entries_are_listed_and_dropped_without_reaching_outside() {
    use std::os::unix::ffi::OsStrExt;
    let env = Env::at_rest();
    let q = env.vault().join("quarantine");
    let odd = q.join(std::ffi::OsStr::from_bytes(
        b"2020-01-01T000000000Z-restore-from-1-\xff",
    ));
    fs::create_dir(&odd).unwrap();
    fs::write(odd.join("a"), "x").unwrap();
    let outside = env.base().join("precious");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("keep.md"), "mine\n").unwrap();
    std::os::unix::fs::symlink(&outside, odd.join("link")).unwrap();
    let deep = q.join("2020-01-02T000000000Z-restore-from-1");
    fs::create_dir(&deep).unwrap();
    // 20 levels of 250 bytes: past PATH_MAX, made through descriptors.
    let made = std::process::Command::new("python3")
        .args([
            "-c",
            "import os,sys\nfd=os.open(sys.argv[1],os.O_RDONLY)\nfor i in range(20):\n    n='d'*250\n    os.mkdir(n,dir_fd=fd)\n    fd=os.open(n,os.O_RDONLY,dir_fd=fd)\nf=os.open('leaf',os.O_WRONLY|os.O_CREAT,0o600,dir_fd=fd)\nos.write(f,b'deep')",
            deep.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(made.success());

    let v = env
        .run(&["--json", "quarantine", "list"])
        .expect_code(0)
        .json();
    let entries = v["entries"].as_array().unwrap();
    let ids: Vec<String> = entries
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2, "{v}");
    assert!(ids[0].ends_with("-1-\u{fffd}"), "{ids:?}");
    let deep_entry = entries
        .iter()
        .find(|e| e["id"] == "2020-01-02T000000000Z-restore-from-1")
        .unwrap()
        .clone();
    assert_eq!(
        (deep_entry["files"].as_u64(), deep_entry["bytes"].as_u64()),
        (Some(1), Some(4))
    );

    env.run(&["quarantine", "drop", &ids[0], &ids[1]])
        .expect_code(0);
    assert!(!odd.exists() && !deep.exists(), "both gone from disk");
    assert_eq!(
        fs::read_to_string(outside.join("keep.md")).unwrap(),
        "mine\n"
    );
    assert!(env.quarantined().is_empty());
}

/// A mount point inside an entry (a bind mount of the owner's files) is
/// not descended into: drop stops, exit 1, and the mounted files are all
/// there. Needs root to mount; elsewhere it says so and checks nothing.
#[test]
fn a_mount_point_inside_an_entry_is_not_emptied() {
    let env = Env::at_rest();
    let id = restore_at(&env, "2030-01-02T00:00:00Z", "edited\n");
    let target = env.vault().join("quarantine").join(&id).join("mnt");
    fs::create_dir(&target).unwrap();
    let outside = env.base().join("mounted");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("keep.md"), "mine\n").unwrap();
    let mounted = std::process::Command::new("mount")
        .arg("--bind")
        .arg(&outside)
        .arg(&target)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("cannot bind-mount here (not root?): nothing checked");
        return;
    }
    let out = env.run(&["quarantine", "drop", &id]);
    let unmounted = std::process::Command::new("umount")
        .arg(&target)
        .status()
        .unwrap();
    assert!(unmounted.success());
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("mount point"), "{}", out.stderr);
    assert_eq!(
        fs::read_to_string(outside.join("keep.md")).unwrap(),
        "mine\n"
    );
    // Unmounted, the entry drops.
    env.run(&["quarantine", "drop", &id]).expect_code(0);
    assert!(env.quarantined().is_empty());
}
