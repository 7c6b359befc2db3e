//! A seal whose store fails at any step — a full disk, a torn write, a
//! failed flush or rename — leaves a vault that verifies, byte for byte
//! (`verify --read-data`), and the next seal goes through.
//!
//! The vault keeps its objects in the in-memory store of the test hooks,
//! which numbers every write, flush and publish and fails the one armed.

mod common;

use std::fs;
use std::path::Path;
use std::sync::Arc;

use common::{copy_tree, noise};
use selfsame::ops::init::{init, InitOptions};
use selfsame::ops::seal::{seal, Reason, SealOptions};
use selfsame::ops::verify::verify;
use selfsame::progress::Silent;
use selfsame::testing::{with_store, Fault, LocalStore, MemoryStore, NameKind, Store};
use selfsame::{Credential, Platform, Vault};

fn token() -> Credential {
    Credential::parse(Platform::Telegram, "6262:store-faults-token").unwrap()
}

/// A sealed vault whose objects were moved into a memory store, and a soul
/// changed since (a new big file, an edited small one, a new symlink).
fn scene() -> (tempfile::TempDir, MemoryStore) {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    let soul = base.join("soul");
    fs::create_dir_all(soul.join("memory")).unwrap();
    fs::write(soul.join("SOUL.md"), "I am the same.\n").unwrap();
    fs::write(soul.join("memory/2026-06-01.md"), noise(1, 30_000)).unwrap();
    fs::write(soul.join("state.db"), noise(2, 300_000)).unwrap();
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
    fs::write(soul.join("SOUL.md"), "I am the same, and I remember.\n").unwrap();
    fs::write(soul.join("big.bin"), noise(3, 1_500_000)).unwrap();
    let mut db = noise(2, 300_000);
    db.extend(noise(4, 70_000));
    fs::write(soul.join("state.db"), db).unwrap();
    std::os::unix::fs::symlink("memory/2026-06-01.md", soul.join("today")).unwrap();
    (dir, memory)
}

fn open(base: &Path, store: &MemoryStore) -> Vault {
    let vault = Vault::open(&base.join(".selfsame")).unwrap();
    with_store(vault, Arc::new(store.clone()))
}

fn assert_verifies(vault: &Vault, what: &str) {
    let report = verify(vault, &token(), true, &Silent).unwrap();
    assert_eq!(report.exit_code, 0, "{what}: {:?}", report.problems);
}

#[test]
fn a_fault_at_any_step_of_a_seal_leaves_a_vault_that_verifies() {
    let (dir, memory) = scene();
    let base = dir.path().join("base");
    // How many steps a seal of this change takes, without a fault.
    let steps = {
        let store = memory.fork();
        let trial = dir.path().join("trial");
        copy_tree(&base, &trial);
        let vault = open(&trial, &store);
        let report = seal(&vault, &token(), &SealOptions::new(Reason::Manual), &Silent).unwrap();
        assert!(report.written && report.new_objects > 0, "{report:?}");
        assert_verifies(&vault, "no fault");
        store.steps()
    };
    assert!(steps >= 6, "a seal of four new objects takes {steps} steps");
    let mut failed = 0;
    for fault in [Fault::NoSpace, Fault::Torn, Fault::Sync, Fault::Rename] {
        for n in 0..steps {
            let what = format!("{fault:?} at step {n}");
            let store = memory.fork();
            let copy = dir.path().join(format!("{fault:?}-{n}"));
            copy_tree(&base, &copy);
            let vault = open(&copy, &store);
            let head = vault_head(&copy);
            store.arm(n, fault);
            let sealed = seal(&vault, &token(), &SealOptions::new(Reason::Manual), &Silent);
            store.disarm();
            if store.fired() {
                assert!(sealed.is_err(), "{what}: the seal said it succeeded");
                assert_eq!(vault_head(&copy), head, "{what}: a checkpoint was written");
                failed += 1;
            } else {
                sealed.unwrap_or_else(|e| panic!("{what}: {e}"));
            }
            assert_verifies(&vault, &what);
            // The next seal, on a store that works again, goes through.
            let again = seal(&vault, &token(), &SealOptions::new(Reason::Manual), &Silent)
                .unwrap_or_else(|e| panic!("{what}, then a seal: {e}"));
            assert!(again.written);
            assert_verifies(&vault, &format!("{what}, then a seal"));
            fs::remove_dir_all(&copy).unwrap();
        }
    }
    assert!(
        failed >= steps,
        "faults fired {failed} times in {steps} steps × 4"
    );
}

fn vault_head(base: &Path) -> String {
    fs::read_to_string(base.join(".selfsame/HEAD")).unwrap()
}
