//! Issue 13, items 1, 2, 6 and 16: an interrupted restore is finished or
//! undone only inside the directories it made, under the config a
//! checkpoint vouches for, never into a quarantine outside the vault; the
//! owner sees it pending and can undo it. Every test ends with the
//! token-leak scan.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::*;
use selfsame::testing::checkpoint_key;
use selfsame::{Credential, Platform};
use serde_json::Value;

const JOURNAL: &str = "run/restore.journal";
const WORK: &str = ".selfsame-restore";

/// At rest on checkpoint 2, then the soul is edited (unsealed): a file
/// changed, one added, one removed. Returns the sealed tree and the edited
/// one.
fn edited_at_rest() -> (Env, BTreeMap<String, Node>, BTreeMap<String, Node>) {
    let env = Env::at_rest();
    let sealed = tree(&env.soul());
    let s = env.soul();
    write(
        &s,
        "memory.jsonl",
        b"{\"said\":\"edited at rest\"}\n",
        0o644,
    );
    write(&s, "unsealed.txt", b"written after the seal\n", 0o600);
    fs::remove_file(s.join(NON_ASCII)).unwrap();
    let edited = tree(&env.soul());
    (env, sealed, edited)
}

/// Runs `selfsame restore ARGS` until the failpoint fires.
fn crash(env: &Env, args: &[&str], failpoint: &str) {
    let out = env.run_env(args, &[("SELFSAME_FAILPOINT", failpoint)]);
    assert_eq!(
        out.code, 97,
        "failpoint {failpoint} did not fire: {}",
        out.stderr
    );
}

fn journal(env: &Env) -> PathBuf {
    env.vault().join(JOURNAL)
}

fn quarantine_names(env: &Env) -> Vec<String> {
    env.quarantined()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

// --- item 1: the work dir of a resumed restore --------------------------------

/// Crashes `restore head` after staging, then lets `plant` replace part of
/// the work dir. A wake must touch nothing — neither outside the soul nor in
/// it — and say `corrupted` (`bad-journal`), the same every time, with a
/// message that says what to move where and what to run.
fn planted_work_dir_is_refused(plant: impl FnOnce(&Env, &Path)) {
    let (env, _sealed, _edited) = edited_at_rest();
    crash(&env, &["restore", "head"], "restore-after-stage");
    let outside = env.base().join("v2");
    fs::create_dir_all(outside.join("new")).unwrap();
    fs::create_dir_all(outside.join("old")).unwrap();
    fs::write(outside.join("new/p.txt"), "precious\n").unwrap();
    fs::write(outside.join("old/q.txt"), "precious too\n").unwrap();
    plant(&env, &outside);
    let outside_before = tree(&outside);
    let soul_before = tree(&env.soul());

    for _ in 0..2 {
        let out = env.wake(&[]);
        assert_eq!(out.code, 5, "{}\n{}", out.stdout, out.stderr);
        let v = out.json();
        assert_eq!(v["verdict"], "corrupted", "{v}");
        assert_eq!(v["detail"], "bad-journal", "{v}");
        assert_eq!(v["may_start"], false);
        let msg = v["message"].as_str().unwrap();
        let work = env.soul().join(WORK);
        assert!(msg.contains(&work.display().to_string()), "{msg}");
        assert!(msg.contains("quarantine"), "{msg}");
        assert!(msg.contains("selfsame wake"), "{msg}");
        assert_eq!(tree(&outside), outside_before, "a wake touched {outside:?}");
        assert_eq!(tree(&env.soul()), soul_before, "a wake touched the soul");
    }
    assert_eq!(
        env.history().last().unwrap()["verdict"],
        "corrupted",
        "the wake is recorded"
    );
    // Restore --resume refuses the same way.
    let out = env.run(&["restore", "--resume"]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert_eq!(tree(&outside), outside_before);

    // The owner does what the message says, and the vault works again.
    let aside = env.base().join("aside");
    fs::create_dir(&aside).unwrap();
    if fs::symlink_metadata(env.soul().join(WORK)).is_ok() {
        fs::rename(env.soul().join(WORK), aside.join("work")).unwrap();
    }
    fs::rename(
        journal(&env),
        env.vault().join("quarantine/restore.journal"),
    )
    .unwrap();
    let v = env.wake(&[]).expect_code(3).json();
    assert_eq!(v["verdict"], "tampered", "the soul was never swapped: {v}");
    env.run(&["restore", "head"]).expect_code(0);
    assert_eq!(env.wake(&[]).expect_code(0).json()["verdict"], "verified");
    assert_eq!(tree(&outside), outside_before);
    env.verify_clean();
}

#[test]
fn a_resumed_restore_never_follows_a_symlinked_work_dir_out_of_the_soul() {
    planted_work_dir_is_refused(|env, outside| {
        let work = env.soul().join(WORK);
        fs::remove_dir_all(&work).unwrap();
        symlink(outside, &work).unwrap();
    });
}

#[test]
fn a_resumed_restore_refuses_a_work_dir_that_was_replaced_by_another_directory() {
    planted_work_dir_is_refused(|env, _| {
        let work = env.soul().join(WORK);
        fs::remove_dir_all(&work).unwrap();
        fs::create_dir_all(work.join("new")).unwrap();
        fs::create_dir_all(work.join("old")).unwrap();
    });
}

#[test]
fn a_resumed_restore_refuses_a_work_dir_that_is_gone() {
    planted_work_dir_is_refused(|env, _| {
        fs::remove_dir_all(env.soul().join(WORK)).unwrap();
    });
}

#[test]
fn a_resumed_restore_never_follows_a_symlinked_staging_dir() {
    planted_work_dir_is_refused(|env, outside| {
        let new = env.soul().join(WORK).join("new");
        fs::remove_dir_all(&new).unwrap();
        symlink(outside.join("new"), &new).unwrap();
    });
}

#[test]
fn a_resumed_restore_never_follows_a_symlinked_old_dir() {
    planted_work_dir_is_refused(|env, outside| {
        let old = env.soul().join(WORK).join("old");
        let _ = fs::remove_dir(&old);
        symlink(outside.join("old"), &old).unwrap();
    });
}

/// Rewrites the pending journal as a selfsame without the work-dir
/// identities wrote it (signed with the token, as it would be).
fn make_journal_legacy(env: &Env) {
    let text = fs::read_to_string(journal(env)).unwrap();
    let (_, body) = text.split_once('\n').unwrap();
    let mut j: serde_json::Map<String, Value> = serde_json::from_str(body).unwrap();
    for k in ["work_dir", "new_dir", "old_dir", "config"] {
        assert!(j.remove(k).is_some() || k == "config", "no {k} in {body}");
    }
    let body = serde_json::to_string_pretty(&j).unwrap();
    let key = checkpoint_key(&Credential::parse(Platform::Telegram, TOKEN).unwrap());
    let mac = key.sign(&[b"selfsame/journal/v1\n".as_slice(), body.as_bytes()].concat());
    fs::write(journal(env), format!("{mac}\n{body}")).unwrap();
}

#[test]
fn a_journal_without_work_dir_identities_is_resumed_only_inside_real_directories() {
    // A real work dir inside the soul: finished.
    let (env, sealed, edited) = edited_at_rest();
    crash(&env, &["restore", "head"], "restore-mid-swap");
    make_journal_legacy(&env);
    let v = env.wake(&[]).expect_code(0).json();
    assert_eq!(v["verdict"], "verified", "{v}");
    assert_eq!(tree(&env.soul()), sealed);
    assert_eq!(tree(&env.quarantined()[0]), edited);

    // A symlinked one: refused, nothing touched.
    let (env, _, _) = edited_at_rest();
    crash(&env, &["restore", "head"], "restore-mid-swap");
    make_journal_legacy(&env);
    let outside = env.base().join("v2");
    fs::rename(env.soul().join(WORK), &outside).unwrap();
    symlink(&outside, env.soul().join(WORK)).unwrap();
    let (soul_before, outside_before) = (tree(&env.soul()), tree(&outside));
    let v = env.wake(&[]).expect_code(5).json();
    assert_eq!(v["detail"], "bad-journal", "{v}");
    assert_eq!(tree(&env.soul()), soul_before);
    assert_eq!(tree(&outside), outside_before);
}

// --- item 2: the sealed config ------------------------------------------------

/// Points `soul =` in config.toml at `victim`; returns the sealed bytes
/// and the edited ones.
fn point_config_at(env: &Env, victim: &Path) -> (Vec<u8>, Vec<u8>) {
    let cfg = env.vault().join("config.toml");
    let sealed = fs::read_to_string(&cfg).unwrap();
    assert!(sealed.contains("soul = \"soul\""), "{sealed}");
    let edited = sealed.replace("soul = \"soul\"", &format!("soul = {victim:?}"));
    fs::write(&cfg, &edited).unwrap();
    (sealed.into_bytes(), edited.into_bytes())
}

fn victim(env: &Env) -> (PathBuf, BTreeMap<String, Node>) {
    let victim = env.base().join("victim");
    fs::create_dir(&victim).unwrap();
    write(&victim, "important.db", b"someone else's data\n", 0o644);
    fs::create_dir(victim.join("sub")).unwrap();
    write(&victim, "sub/more.txt", b"more\n", 0o644);
    let t = tree(&victim);
    (victim, t)
}

/// The file in quarantine/ that holds `bytes`.
fn quarantined_file_with(env: &Env, bytes: &[u8]) -> PathBuf {
    env.quarantined()
        .into_iter()
        .find(|p| p.is_file() && fs::read(p).unwrap() == bytes)
        .unwrap_or_else(|| panic!("no quarantined file holds it: {:?}", env.quarantined()))
}

#[test]
fn restore_puts_back_the_sealed_config_and_never_obeys_an_edited_one() {
    let (env, sealed_soul, edited_soul) = edited_at_rest();
    let (victim, victim_before) = victim(&env);
    let (sealed_cfg, edited_cfg) = point_config_at(&env, &victim);

    let out = env.run(&["restore", "head"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("config"), "{}", out.stdout);
    assert_eq!(tree(&victim), victim_before, "the restore obeyed the edit");
    assert_eq!(
        fs::read(env.vault().join("config.toml")).unwrap(),
        sealed_cfg
    );
    quarantined_file_with(&env, &edited_cfg);
    assert_eq!(tree(&env.soul()), sealed_soul);
    let old = env
        .quarantined()
        .into_iter()
        .find(|p| p.is_dir())
        .expect("the edited soul is in quarantine");
    assert_eq!(tree(&old), edited_soul);
    let restore = env.history().into_iter().rfind(|e| e["event"] == "restore");
    assert!(
        restore.unwrap()["quarantine_config"]
            .as_str()
            .unwrap()
            .starts_with("quarantine/"),
        "the history names the quarantined config"
    );
    assert_eq!(env.wake(&[]).expect_code(0).json()["verdict"], "verified");
    env.verify_clean();
}

#[test]
fn a_resumed_restore_acts_on_the_sealed_config_not_an_edited_one() {
    let (env, sealed_soul, edited_soul) = edited_at_rest();
    crash(&env, &["restore", "head"], "restore-mid-swap");
    let (victim, victim_before) = victim(&env);
    let (sealed_cfg, edited_cfg) = point_config_at(&env, &victim);

    // Wake does not resume under an edited config: it reports the edit,
    // and status says so.
    let v = env.wake(&[]).expect_code(3).json();
    assert_eq!(v["detail"], "config-changed", "{v}");
    assert_eq!(tree(&victim), victim_before);
    let v = env.run(&["--json", "status"]).expect_code(3).json();
    assert_eq!(v["wake"]["pending"]["wake_will"], "nothing", "{v}");
    assert_eq!(v["wake"]["detail"], "config-changed", "{v}");

    let out = env.run(&["restore", "--resume"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(tree(&victim), victim_before, "the resume obeyed the edit");
    assert_eq!(
        fs::read(env.vault().join("config.toml")).unwrap(),
        sealed_cfg
    );
    quarantined_file_with(&env, &edited_cfg);
    assert_eq!(tree(&env.soul()), sealed_soul);
    let old = env.quarantined().into_iter().find(|p| p.is_dir()).unwrap();
    assert_eq!(tree(&old), edited_soul);
    assert_eq!(env.wake(&[]).expect_code(0).json()["verdict"], "verified");
    env.verify_clean();
}

#[test]
fn restore_abort_acts_on_the_sealed_config_and_leaves_config_toml_alone() {
    let (env, _, edited_soul) = edited_at_rest();
    crash(&env, &["restore", "head"], "restore-mid-swap-in");
    let (victim, victim_before) = victim(&env);
    let (_, edited_cfg) = point_config_at(&env, &victim);
    let out = env.run(&["restore", "--abort"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(tree(&victim), victim_before, "the undo obeyed the edit");
    assert_eq!(tree(&env.soul()), edited_soul);
    assert_eq!(
        fs::read(env.vault().join("config.toml")).unwrap(),
        edited_cfg
    );
    // The edit is still the owner's to adopt or undo.
    assert_eq!(
        env.wake(&[]).expect_code(3).json()["detail"],
        "config-changed"
    );
}

// --- item 6: quarantine -------------------------------------------------------

#[test]
fn a_quarantine_that_is_not_a_real_directory_is_corrupted_and_nothing_moves() {
    for kind in ["symlink", "file"] {
        let (env, _, edited) = edited_at_rest();
        let elsewhere = env.base().join("elsewhere");
        fs::create_dir(&elsewhere).unwrap();
        let q = env.vault().join("quarantine");
        fs::remove_dir(&q).unwrap();
        match kind {
            "symlink" => symlink(&elsewhere, &q).unwrap(),
            _ => fs::write(&q, "not a directory\n").unwrap(),
        }

        let out = env.run(&["restore", "head"]);
        assert_eq!(out.code, 5, "{kind}: {}\n{}", out.stdout, out.stderr);
        assert!(out.stderr.contains("quarantine"), "{}", out.stderr);
        assert_eq!(tree(&env.soul()), edited, "{kind}: the soul was touched");
        assert_eq!(tree(&elsewhere), BTreeMap::new(), "{kind}");
        assert!(!journal(&env).exists());

        for args in [&[][..], &["--policy", "tampered=rollback"][..]] {
            let v = env.wake(args).expect_code(5).json();
            assert_eq!(v["verdict"], "corrupted", "{kind}: {v}");
            assert_eq!(v["detail"], "quarantine-invalid", "{kind}: {v}");
            assert_eq!(tree(&env.soul()), edited, "{kind}: {args:?}");
            assert_eq!(tree(&elsewhere), BTreeMap::new(), "{kind}: {args:?}");
        }
        assert_eq!(env.run(&["verify"]).code, 5, "{kind}");
    }

    // A restore interrupted mid-swap is neither finished nor undone into
    // it.
    let (env, _, _) = edited_at_rest();
    crash(&env, &["restore", "head"], "restore-mid-swap");
    let elsewhere = env.base().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let q = env.vault().join("quarantine");
    fs::remove_dir(&q).unwrap();
    symlink(&elsewhere, &q).unwrap();
    let soul = tree(&env.soul());
    let v = env.wake(&[]).expect_code(5).json();
    assert_eq!(v["detail"], "quarantine-invalid", "{v}");
    for args in [&["restore", "--resume"][..], &["restore", "--abort"][..]] {
        let out = env.run(args);
        assert_eq!(out.code, 5, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("quarantine"), "{}", out.stderr);
    }
    assert_eq!(tree(&env.soul()), soul);
    assert_eq!(tree(&elsewhere), BTreeMap::new());
    assert!(journal(&env).exists(), "still pending");

    // Nor does a migration stage anything.
    let env = Env::at_rest();
    let dir = env.base().join("migrations");
    fs::create_dir(&dir).unwrap();
    write(
        &dir,
        "v2-touch",
        b"#!/bin/sh\necho v2 > format.txt\n",
        0o755,
    );
    let elsewhere = env.base().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let q = env.vault().join("quarantine");
    fs::remove_dir(&q).unwrap();
    symlink(&elsewhere, &q).unwrap();
    let soul = tree(&env.soul());
    let out = env.run(&["migrate"]);
    assert_eq!(out.code, 5, "{}", out.stderr);
    assert_eq!(tree(&env.soul()), soul);
    assert_eq!(tree(&elsewhere), BTreeMap::new());
    assert!(!journal(&env).exists());
}

// --- item 16: pending restores ------------------------------------------------

#[test]
fn status_reports_a_pending_restore_and_that_wake_will_finish_it() {
    let (env, sealed, _) = edited_at_rest();
    crash(&env, &["restore", "head"], "restore-mid-swap");
    let mixed = tree(&env.soul());

    let out = env.run(&["--json", "status"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let v = out.json();
    let p = &v["wake"]["pending"];
    assert_eq!(p["event"], "restore", "{v}");
    assert_eq!(p["target"], 2);
    assert_eq!(p["phase"], "swap-out");
    assert_eq!(p["wake_will"], "finish", "{v}");
    assert_ne!(v["wake"]["verdict"], "tampered", "{v}");
    let out = env.run(&["status"]).expect_code(0);
    assert!(out.stdout.contains("pending"), "{}", out.stdout);
    assert!(out.stdout.contains("finish"), "{}", out.stdout);
    assert!(!out.stdout.contains("tampered"), "{}", out.stdout);
    assert_eq!(tree(&env.soul()), mixed, "status changed nothing");

    // And wake does what status said.
    let v = env.wake(&[]).expect_code(0).json();
    assert_eq!(v["verdict"], "verified");
    assert_eq!(tree(&env.soul()), sealed);
}

#[test]
fn status_reports_a_pending_migration_that_wake_will_undo() {
    let env = Env::at_rest();
    let soul = tree(&env.soul());
    let dir = env.base().join("migrations");
    fs::create_dir(&dir).unwrap();
    write(
        &dir,
        "v2-touch",
        b"#!/bin/sh\necho v2 > format.txt\n",
        0o755,
    );
    crash(&env, &["migrate"], "migrate-after-stage");
    let out = env.run(&["--json", "status"]);
    let v = out.json();
    assert_eq!(v["wake"]["pending"]["event"], "migrate", "{v}");
    assert_eq!(v["wake"]["pending"]["wake_will"], "undo", "{v}");
    assert_eq!(v["wake"]["verdict"], "verified", "{v}");
    assert_eq!(out.code, 0);
    let v = env.wake(&[]).expect_code(0).json();
    assert_eq!(v["verdict"], "verified");
    assert_eq!(tree(&env.soul()), soul);
}

/// Crashes `restore head` of an edited soul at `failpoint`, then `restore
/// --abort` must put the edited soul back exactly, seal nothing, and leave
/// nothing behind.
fn abort_after(failpoint: &str) -> Env {
    let (env, _sealed, edited) = edited_at_rest();
    let head = env.head();
    crash(&env, &["restore", "head"], failpoint);
    let out = env.run(&["restore", "--abort"]);
    assert_eq!(out.code, 0, "{failpoint}: {}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("abort") || out.stdout.contains("undid"));
    abort_finished(&env, &edited, head, failpoint);
    env
}

fn abort_finished(env: &Env, edited: &BTreeMap<String, Node>, head: u64, why: &str) {
    assert_eq!(&tree(&env.soul()), edited, "{why}: not the soul before");
    assert!(!journal(env).exists(), "{why}");
    assert!(!env.soul().join(WORK).exists(), "{why}");
    assert_eq!(env.head(), head, "{why}: an aborted restore seals nothing");
    let e = env
        .history()
        .into_iter()
        .rfind(|e| e["event"] == "restore")
        .unwrap_or_else(|| panic!("{why}: no restore event"));
    assert_eq!(e["aborted"], true, "{why}: {e}");
    env.verify_clean();
    // The soul is as before: edited at rest, so wake says so.
    let v = env.wake(&[]).expect_code(3).json();
    assert_eq!(v["verdict"], "tampered", "{why}: {v}");
    assert_eq!(
        strings(&v["changes"]["added"]),
        vec!["unsealed.txt".to_owned()],
        "{why}"
    );
}

#[test]
fn restore_abort_after_staging_puts_nothing_back_because_nothing_moved() {
    let env = abort_after("restore-after-stage");
    assert!(quarantine_names(&env).is_empty(), "{:?}", env.quarantined());
}

#[test]
fn restore_abort_mid_swap_out_puts_the_soul_back() {
    abort_after("restore-mid-swap");
}

#[test]
fn restore_abort_mid_swap_in_puts_the_soul_back() {
    abort_after("restore-mid-swap-in");
}

#[test]
fn restore_abort_after_the_old_soul_went_to_quarantine_brings_it_back() {
    let env = abort_after("restore-mid-quarantine");
    // What had been swapped in is kept, not deleted.
    let kept = env.quarantined();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(quarantine_names(&env)[0].ends_with("-aborted"), "{kept:?}");
}

#[test]
fn restore_abort_before_the_seal_brings_the_old_soul_back() {
    abort_after("restore-before-seal");
}

#[test]
fn an_interrupted_abort_is_finished_by_the_next_abort_or_wake() {
    for (abort_failpoint, finish) in [
        ("restore-abort-mid-out", "restore"),
        ("restore-abort-after-back", "wake"),
        ("restore-abort-mid-in", "wake"),
    ] {
        let (env, _, edited) = edited_at_rest();
        let head = env.head();
        crash(&env, &["restore", "head"], "restore-before-seal");
        crash(&env, &["restore", "--abort"], abort_failpoint);
        // Status says what wake will do about it.
        let v = env.run(&["--json", "status"]).json();
        assert_eq!(v["wake"]["pending"]["wake_will"], "finish-abort", "{v}");
        if finish == "restore" {
            env.run(&["restore", "--abort"]).expect_code(0);
        } else {
            let v = env.wake(&[]).expect_code(3).json();
            let actions = strings(&v["actions"]);
            assert!(
                actions.iter().any(|a| a.contains("undo")),
                "{abort_failpoint}: {actions:?}"
            );
        }
        abort_finished(&env, &edited, head, abort_failpoint);
    }
}

#[test]
fn restore_abort_refuses_when_nothing_is_pending_or_it_already_sealed() {
    let env = Env::at_rest();
    let out = env.run(&["restore", "--abort"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("no interrupted restore"),
        "{}",
        out.stderr
    );

    let (env, sealed, _) = edited_at_rest();
    crash(&env, &["restore", "head"], "seal-after-head");
    let out = env.run(&["restore", "--abort"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("selfsame wake"), "{}", out.stderr);
    assert_eq!(tree(&env.soul()), sealed, "nothing undone");
    env.wake(&[]).expect_code(0);
}

#[test]
fn seal_and_accept_over_a_pending_restore_name_the_ways_out() {
    let (env, _, _) = edited_at_rest();
    crash(&env, &["restore", "head"], "restore-mid-swap");
    for args in [&["seal"][..], &["accept"][..], &["restore", "1"][..]] {
        let out = env.run(args);
        assert_ne!(out.code, 0, "{args:?}");
        for way in ["selfsame wake", "selfsame restore --abort"] {
            assert!(out.stderr.contains(way), "{args:?}: {}", out.stderr);
        }
    }
}

#[test]
fn an_unwritable_soul_names_the_soul_directory_and_says_what_to_do() {
    let (env, _, edited) = edited_at_rest();
    // nobody may write everything but the soul directory itself (root's).
    env.give_to_nobody(env.base());
    std::os::unix::fs::lchown(env.soul(), Some(0), Some(0)).unwrap();
    let soul = env.soul().display().to_string();

    // A restore that cannot start changes nothing and blocks nothing.
    let out = env.run_as_nobody(&["restore", "head"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains(&soul), "{}", out.stderr);
    assert!(out.stderr.contains("not writable"), "{}", out.stderr);
    assert!(out.stderr.contains("nothing was changed"), "{}", out.stderr);
    assert!(!journal(&env).exists());
    assert_eq!(tree(&env.soul()), edited);
    assert_eq!(env.run_as_nobody(&["--json", "wake"]).code, 3, "tampered");

    // A restore interrupted mid-swap that cannot be finished or undone:
    // every command says why and what to do, and no way is blocked for good.
    crash(&env, &["restore", "head"], "restore-mid-swap");
    env.give_to_nobody(&env.vault());
    let mixed = tree(&env.soul());
    for args in [&["wake"][..], &["restore", "--resume"][..]] {
        let out = env.run_as_nobody(args);
        assert_eq!(out.code, 1, "{args:?}: {}\n{}", out.stdout, out.stderr);
        for needle in [soul.as_str(), "not writable", "selfsame restore --abort"] {
            assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
        }
    }
    let out = env.run_as_nobody(&["restore", "--abort"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains(&soul), "{}", out.stderr);
    assert!(out.stderr.contains("not writable"), "{}", out.stderr);
    assert_eq!(tree(&env.soul()), mixed, "a failed command moved something");
    let out = env.run_as_nobody(&["accept"]);
    assert!(
        out.stderr.contains("selfsame restore --abort"),
        "{}",
        out.stderr
    );

    // Once the soul is writable (here: by root), the abort goes through.
    env.run(&["restore", "--abort"]).expect_code(0);
    assert_eq!(tree(&env.soul()), edited);
}
