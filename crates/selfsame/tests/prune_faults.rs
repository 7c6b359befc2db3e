//! Issue 15, must hold 4: a prune whose store fails at any step — a
//! removal, or a write, flush or publish of a pack written anew with the
//! blobs it keeps — leaves a vault that verifies byte for byte (`verify
//! --read-data`), every kept checkpoint readable, and the next prune
//! finishes the work.
//!
//! The vault keeps its objects in the in-memory store of the test hooks,
//! which numbers every step and fails the one armed.

mod common;

use std::fs;
use std::path::Path;
use std::sync::Arc;

use common::{copy_tree, noise};
use selfsame::ops::forget::{forget, ForgetOptions, Policy};
use selfsame::ops::init::{init, InitOptions};
use selfsame::ops::prune::prune;
use selfsame::ops::restore::{restore, Target};
use selfsame::ops::seal::{seal, Reason, SealOptions};
use selfsame::ops::verify::verify;
use selfsame::progress::Silent;
use selfsame::testing::{with_store, Fault, LocalStore, MemoryStore, NameKind, Store};
use selfsame::{Credential, Platform, Vault};

fn token() -> Credential {
    Credential::parse(Platform::Telegram, "7373:prune-faults-token").unwrap()
}

fn open(base: &Path, store: &MemoryStore) -> Vault {
    let vault = Vault::open(&base.join(".selfsame")).unwrap();
    with_store(vault, Arc::new(store.clone()))
}

fn assert_verifies(vault: &Vault, what: &str) {
    let report = verify(vault, &token(), true, &Silent).unwrap();
    assert_eq!(report.exit_code, 0, "{what}: {:?}", report.problems);
}

/// Six seals of a soul that changes each time, its objects in a memory
/// store, all but the last two forgotten. Returns the store, and the soul
/// file each kept checkpoint holds.
fn scene(dir: &Path) -> MemoryStore {
    let base = dir.join("base");
    let soul = base.join("soul");
    fs::create_dir_all(&soul).unwrap();
    fs::write(soul.join("SOUL.md"), "I am the same.\n").unwrap();
    let vault = init(&base, &token(), &InitOptions::new("soul")).unwrap();
    let memory = MemoryStore::new();
    let local = LocalStore::new(vault.dir().join("objects"));
    for kind in [NameKind::Object, NameKind::Pack] {
        for name in local.list(kind).unwrap() {
            let bytes = local.get(&name, u64::MAX).unwrap().unwrap();
            memory.put(&name, &bytes).unwrap();
            local.delete(&name).unwrap();
        }
    }
    let vault = open(&base, &memory);
    for i in 0..6u64 {
        fs::write(soul.join("day.bin"), noise(i, 50_000 + i as usize)).unwrap();
        fs::write(soul.join("memory.jsonl"), format!("{{\"n\":{i}}}\n")).unwrap();
        seal(&vault, &token(), &SealOptions::new(Reason::Manual), &Silent).unwrap();
    }
    let opts = ForgetOptions {
        policy: Policy {
            last: 2,
            ..Policy::default()
        },
        dry_run: false,
        from_config: false,
    };
    let report = forget(&vault, &token(), &opts, &Silent).unwrap();
    assert_eq!(report.forgotten, vec![1, 2, 3, 4, 5]);
    // The checkpoint that puts the forget in effect.
    seal(&vault, &token(), &SealOptions::new(Reason::Manual), &Silent).unwrap();
    memory
}

#[test]
fn a_failed_removal_at_each_step_of_a_prune_leaves_a_vault_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let memory = scene(dir.path());
    let base = dir.path().join("base");
    let (steps, kept_objects) = {
        let store = memory.fork();
        let trial = dir.path().join("trial");
        copy_tree(&base, &trial);
        let vault = open(&trial, &store);
        let report = prune(&vault, &token(), false, &Silent).unwrap();
        assert!(report.objects_removed >= 10, "{report:?}");
        assert!(report.entries_removed >= 1, "{report:?}");
        assert_verifies(&vault, "no fault");
        (store.steps(), store.entries().len())
    };
    assert!(steps >= 2, "a prune takes {steps} steps");
    let mut failed = 0;
    for fault in [
        Fault::Delete,
        Fault::NoSpace,
        Fault::Torn,
        Fault::Sync,
        Fault::Rename,
    ] {
        for n in 0..steps {
            let what = format!("{fault:?} at step {n} of a prune");
            let store = memory.fork();
            let copy = dir.path().join(format!("{fault:?}-{n}"));
            copy_tree(&base, &copy);
            let vault = open(&copy, &store);
            store.arm(n, fault);
            let pruned = prune(&vault, &token(), false, &Silent);
            store.disarm();
            if store.fired() {
                assert!(pruned.is_err(), "{what}: the prune said it succeeded");
                failed += 1;
            } else {
                pruned.unwrap_or_else(|e| panic!("{what}: {e}"));
            }
            assert_verifies(&vault, &what);
            // The next prune, on a store that works again, finishes.
            prune(&vault, &token(), false, &Silent).unwrap_or_else(|e| panic!("{what}, then: {e}"));
            assert_eq!(store.entries().len(), kept_objects, "{what}");
            assert_verifies(&vault, &format!("{what}, then a prune"));
            // A kept checkpoint puts its soul back.
            restore(&vault, &token(), Target::Seq(6), &Silent).unwrap();
            assert_eq!(
                fs::read(copy.join("soul/day.bin")).unwrap(),
                noise(4, 50_004),
                "{what}"
            );
            fs::remove_dir_all(&copy).unwrap();
        }
    }
    assert!(
        failed >= steps,
        "faults fired {failed} times in {steps} steps"
    );
}
