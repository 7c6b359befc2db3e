//! A stored object that disappears is named as missing, by wake and by
//! verify, with the `object-missing` detail (not as a corrupt object).

use std::fs;

use selfsame::ops::init::{init, InitOptions};
use selfsame::ops::verify::verify;
use selfsame::ops::wake::{wake, WakeOptions};
use selfsame::progress::Silent;
use selfsame::{Credential, Detail, Platform, Verdict};

#[test]
fn a_missing_object_is_object_missing_for_wake_and_verify() {
    let token = Credential::parse(Platform::Telegram, "6161:objects-test-token").unwrap();
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("soul")).unwrap();
    fs::write(dir.path().join("soul/memory.txt"), "remember me").unwrap();
    let vault = init(dir.path(), &token, &InitOptions::new("soul")).unwrap();
    let hash = selfsame::testing::sha256(b"remember me");
    let object = selfsame::testing::loose_object(&vault, &hash).unwrap();
    fs::remove_file(&object).unwrap();

    let r = wake(&vault, &token, &WakeOptions::default()).unwrap();
    assert_eq!(r.verdict, Verdict::Corrupted);
    assert_eq!(r.detail, Some(Detail::ObjectMissing));
    assert_eq!(r.exit_code, 5);
    assert!(r.message.contains("memory.txt"), "{}", r.message);

    let v = verify(&vault, &token, true, &Silent).unwrap();
    assert_eq!(v.exit_code, 5);
    let missing: Vec<_> = v
        .problems
        .iter()
        .filter(|p| p.detail == Detail::ObjectMissing)
        .collect();
    assert_eq!(missing.len(), 1, "named once: {:?}", v.problems);
    assert!(
        v.problems.iter().all(|p| p.detail != Detail::ObjectCorrupt),
        "{:?}",
        v.problems
    );
}
