//! The seal stat cache never hides a change: a same-size rewrite with the
//! old mtime put back is still seen by seal (ctime) and by wake (which
//! re-hashes by default), and `wake --fast` still sees ordinary edits.

use std::fs;
use std::time::{Duration, SystemTime};

use selfsame::ops::init::{init, InitOptions};
use selfsame::ops::seal::Reason;
use selfsame::ops::seal::{seal, SealOptions};
use selfsame::ops::wake::{wake, WakeOptions};
use selfsame::progress::Silent;
use selfsame::testing::VaultFiles;
use selfsame::{Credential, Platform, Verdict};

fn token() -> Credential {
    Credential::parse(Platform::Telegram, "4242:stat-cache-test-token").unwrap()
}

fn setup() -> (tempfile::TempDir, selfsame::Vault) {
    let dir = tempfile::tempdir().unwrap();
    let soul = dir.path().join("soul");
    fs::create_dir(&soul).unwrap();
    fs::write(soul.join("memory.txt"), "aaaa").unwrap();
    fs::write(soul.join("other.txt"), "stays").unwrap();
    // Old mtimes, so the first seal's cache entries are not racy.
    for f in ["memory.txt", "other.txt"] {
        age(&soul.join(f));
    }
    let vault = init(dir.path(), &token(), &InitOptions::new("soul")).unwrap();
    (dir, vault)
}

#[test]
fn same_size_same_mtime_rewrite_is_detected() {
    let (dir, vault) = setup();
    let file = dir.path().join("soul/memory.txt");
    let mtime = fs::metadata(&file).unwrap().modified().unwrap();
    // Rewrite with the same size, then put the old mtime back.
    fs::write(&file, "bbbb").unwrap();
    set_mtime(&file, mtime);
    assert_eq!(fs::metadata(&file).unwrap().modified().unwrap(), mtime);

    // Default wake re-hashes: the change is seen (clean stop → tampered).
    let r = wake(&vault, &token(), &WakeOptions::default()).unwrap();
    assert_eq!(r.verdict, Verdict::Tampered);
    assert_eq!(r.changes.modified, vec!["memory.txt".to_string()]);

    // A seal re-hashes it too (its ctime moved), and stores the new bytes.
    let s = seal(&vault, &token(), &SealOptions::new(Reason::Manual), &Silent).unwrap();
    assert_eq!(s.changes.modified, vec!["memory.txt".to_string()]);
    let r = wake(&vault, &token(), &WakeOptions::default()).unwrap();
    assert_eq!(r.verdict, Verdict::Verified);
}

#[test]
fn seal_uses_the_cache_and_fast_wake_still_sees_edits() {
    let (dir, vault) = setup();
    let cache =
        selfsame::testing::StatCache::load(&selfsame::testing::StatCache::path(vault.dir()));
    assert_eq!(cache.len(), 2, "init records both files");

    let fast = WakeOptions {
        fast: true,
        ..Default::default()
    };
    assert_eq!(
        wake(&vault, &token(), &fast).unwrap().verdict,
        Verdict::Verified
    );
    seal(&vault, &token(), &SealOptions::new(Reason::Rest), &Silent).unwrap();

    fs::write(dir.path().join("soul/memory.txt"), "a longer memory").unwrap();
    let r = wake(&vault, &token(), &fast).unwrap();
    assert_eq!(r.verdict, Verdict::Tampered);
    assert_eq!(r.changes.modified, vec!["memory.txt".to_string()]);
}

#[test]
fn racy_file_written_during_the_seal_tick_is_rehashed() {
    let dir = tempfile::tempdir().unwrap();
    let soul = dir.path().join("soul");
    fs::create_dir(&soul).unwrap();
    // Written just now: its mtime is in the scan's clock tick or later, so
    // the cache entry must not be trusted by the next seal.
    fs::write(soul.join("hot.txt"), "1111").unwrap();
    let vault = init(dir.path(), &token(), &InitOptions::new("soul")).unwrap();
    fs::write(soul.join("hot.txt"), "2222").unwrap();
    let s = seal(&vault, &token(), &SealOptions::new(Reason::Manual), &Silent).unwrap();
    assert_eq!(s.changes.modified, vec!["hot.txt".to_string()]);
}

/// Sets an old mtime, so the next seal's record of the file is not racy.
fn age(path: &std::path::Path) {
    set_mtime(path, SystemTime::now() - Duration::from_secs(3600));
}

/// The manifest a checkpoint names, for comparing with what a seal said.
fn manifest_at(vault: &selfsame::Vault, seq: u64) -> selfsame::testing::Manifest {
    let stored = vault.read_checkpoint(seq).unwrap();
    selfsame::testing::manifest_of(vault, &stored).unwrap()
}

#[test]
fn a_seal_from_the_cache_names_every_kind_of_change() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let soul = dir.path().join("soul");
    fs::create_dir_all(soul.join("d")).unwrap();
    for f in ["a", "b", "c", "d/e"] {
        fs::write(soul.join(f), f).unwrap();
        age(&soul.join(f));
    }
    std::os::unix::fs::symlink("xx", soul.join("l")).unwrap();
    let vault = init(dir.path(), &token(), &InitOptions::new("soul")).unwrap();
    // A second seal: now every record is old enough to be trusted, and the
    // cache records the head's manifest.
    let s = seal(&vault, &token(), &SealOptions::new(Reason::Manual), &Silent).unwrap();
    assert_eq!(s.new_objects, 0);
    assert!(s.changes.is_empty(), "{:?}", s.changes);

    fs::write(soul.join("a"), "A, rewritten").unwrap();
    fs::remove_file(soul.join("b")).unwrap();
    fs::write(soul.join("f"), "new").unwrap();
    fs::set_permissions(soul.join("c"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::remove_file(soul.join("l")).unwrap();
    std::os::unix::fs::symlink("yy", soul.join("l")).unwrap();
    fs::remove_dir_all(soul.join("d")).unwrap();
    let s = seal(&vault, &token(), &SealOptions::new(Reason::Manual), &Silent).unwrap();
    let c = &s.changes;
    assert_eq!(c.modified, ["a", "l"]);
    assert_eq!(c.removed, ["b", "d", "d/e"]);
    assert_eq!(c.added, ["f"]);
    assert_eq!(c.mode_changed, ["c"]);
    // What comparing the two manifests says.
    let (old, new) = (manifest_at(&vault, s.seq - 1), manifest_at(&vault, s.seq));
    assert_eq!(&selfsame::testing::changes(&old, &new), c);
    assert_eq!(
        wake(&vault, &token(), &WakeOptions::default())
            .unwrap()
            .verdict,
        Verdict::Verified
    );
}

#[test]
fn a_symlink_retargeted_at_rest_is_seen_by_seal_and_wake() {
    let dir = tempfile::tempdir().unwrap();
    let soul = dir.path().join("soul");
    fs::create_dir(&soul).unwrap();
    fs::write(soul.join("a"), "a").unwrap();
    age(&soul.join("a"));
    std::os::unix::fs::symlink("one", soul.join("l")).unwrap();
    let vault = init(dir.path(), &token(), &InitOptions::new("soul")).unwrap();
    seal(&vault, &token(), &SealOptions::new(Reason::Rest), &Silent).unwrap();
    // Same length, so the size in the listing does not change.
    fs::remove_file(soul.join("l")).unwrap();
    std::os::unix::fs::symlink("two", soul.join("l")).unwrap();
    let fast = WakeOptions {
        fast: true,
        ..Default::default()
    };
    let r = wake(&vault, &token(), &fast).unwrap();
    assert_eq!(r.verdict, Verdict::Tampered);
    assert_eq!(r.changes.modified, ["l"]);
    let s = seal(&vault, &token(), &SealOptions::new(Reason::Manual), &Silent).unwrap();
    assert_eq!(s.changes.modified, ["l"]);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]
    /// Random edits between seals: what each seal reports as changed is what
    /// comparing its manifest with the previous one says, and a wake after
    /// it finds the soul it sealed.
    #[test]
    fn seal_reports_what_the_manifests_say(rounds in proptest::collection::vec(
        proptest::collection::vec((0u8..5, 0usize..6, 0u8..3), 1..6), 1..4)) {
        let dir = tempfile::tempdir().unwrap();
        let soul = dir.path().join("soul");
        fs::create_dir_all(soul.join("s")).unwrap();
        let names = ["a", "b", "s/c", "s/d", "e", "s/f"];
        for n in &names[..3] {
            fs::write(soul.join(n), n).unwrap();
            age(&soul.join(n));
        }
        let vault = init(dir.path(), &token(), &InitOptions::new("soul")).unwrap();
        seal(&vault, &token(), &SealOptions::new(Reason::Manual), &Silent).unwrap();
        for edits in rounds {
            for (op, i, v) in edits {
                let p = soul.join(names[i]);
                let _ = fs::create_dir_all(p.parent().unwrap());
                match op {
                    0 => { let _ = fs::write(&p, format!("v{v}")); }
                    1 => { let _ = fs::remove_file(&p); }
                    2 => { let _ = fs::write(&p, format!("v{v}")); age(&p); }
                    3 => {
                        use std::os::unix::fs::PermissionsExt;
                        let _ = fs::set_permissions(&p, fs::Permissions::from_mode(if v == 0 { 0o755 } else { 0o644 }));
                    }
                    _ => { let _ = fs::remove_dir_all(soul.join("s")); }
                }
            }
            let s = seal(&vault, &token(), &SealOptions::new(Reason::Manual), &Silent).unwrap();
            let (old, new) = (manifest_at(&vault, s.seq - 1), manifest_at(&vault, s.seq));
            proptest::prop_assert_eq!(&selfsame::testing::changes(&old, &new), &s.changes);
            proptest::prop_assert_eq!(wake(&vault, &token(), &WakeOptions::default()).unwrap().verdict, Verdict::Verified);
            seal(&vault, &token(), &SealOptions::new(Reason::Rest), &Silent).unwrap();
        }
    }
}

#[test]
fn an_unchanged_seal_writes_back_a_deleted_manifest_object() {
    let (_dir, vault) = setup();
    let s = seal(&vault, &token(), &SealOptions::new(Reason::Manual), &Silent).unwrap();
    let mut soul = [0u8; 32];
    hex::decode_to_slice(&s.soul, &mut soul).unwrap();
    let manifest = selfsame::testing::loose_object(&vault, &soul).unwrap();
    fs::remove_file(&manifest).unwrap();
    // The stat cache still vouches for the manifest; the seal looks anyway.
    let again = seal(&vault, &token(), &SealOptions::new(Reason::Manual), &Silent).unwrap();
    assert_eq!(again.soul, s.soul);
    assert!(
        vault.objects().size_of(&soul).unwrap().is_some(),
        "the manifest object is back (packed)"
    );
    assert_eq!(
        wake(&vault, &token(), &WakeOptions::default())
            .unwrap()
            .verdict,
        Verdict::Verified
    );
}

/// Seals `n` times, each time with a new file (one pack each), and gives
/// the last soul hash.
fn seal_packs(dir: &std::path::Path, vault: &selfsame::Vault, n: usize) -> [u8; 32] {
    let mut soul = [0u8; 32];
    for i in 0..n {
        let f = dir.join(format!("soul/note-{i}.md"));
        fs::write(&f, format!("note {i}\n").repeat(50 + i)).unwrap();
        age(&f);
        let s = seal(vault, &token(), &SealOptions::new(Reason::Manual), &Silent).unwrap();
        hex::decode_to_slice(&s.soul, &mut soul).unwrap();
    }
    soul
}

/// A heartbeat over an unchanged soul (the most frequent seal of all)
/// checks that the head's manifest is still stored where the head hint
/// (`cache/head`) says: it reads no pack's index, and the checkpoint a
/// seal then writes wakes verified.
#[test]
fn an_unchanged_seal_reads_no_pack_index() {
    let (dir, vault) = setup();
    let soul = seal_packs(dir.path(), &vault, 6);
    // The seal that stored the manifest left the hint, and it answers.
    let after_change = selfsame::Vault::open(vault.dir()).unwrap();
    seal(
        &after_change,
        &token(),
        &SealOptions::new(Reason::Heartbeat),
        &Silent,
    )
    .unwrap();
    assert_eq!(selfsame::testing::packs_known(&after_change), 0);
    // Without it, the first unchanged seal looks in every pack's index
    // and leaves one.
    fs::remove_file(vault.dir().join("cache/head")).unwrap();
    let first = selfsame::Vault::open(vault.dir()).unwrap();
    seal(
        &first,
        &token(),
        &SealOptions::new(Reason::Heartbeat),
        &Silent,
    )
    .unwrap();
    assert!(selfsame::testing::packs_known(&first) >= 6);
    assert!(vault.dir().join("cache/head").is_file());
    for reason in [Reason::Heartbeat, Reason::Manual] {
        let fresh = selfsame::Vault::open(vault.dir()).unwrap();
        let s = seal(&fresh, &token(), &SealOptions::new(reason), &Silent).unwrap();
        assert!(s.changes.is_empty());
        assert_eq!(s.soul, hex::encode(soul));
        assert_eq!(selfsame::testing::packs_known(&fresh), 0, "{reason:?}");
    }
    let all = selfsame::Vault::open(vault.dir()).unwrap();
    assert_eq!(
        wake(&all, &token(), &WakeOptions::default())
            .unwrap()
            .verdict,
        Verdict::Verified
    );
}

/// The pack holding the head's manifest is lost (deleted by hand, a disk
/// fault) while the head hint and the pack index cache still name it: the
/// unchanged seal sees that the pack is gone, writes the manifest again,
/// and the vault wakes verified.
#[test]
fn an_unchanged_seal_writes_back_a_manifest_whose_pack_is_gone() {
    let (dir, vault) = setup();
    let soul = seal_packs(dir.path(), &vault, 3);
    assert!(vault.dir().join("cache/head").is_file());
    let pack = selfsame::testing::object_location(&vault, &soul);
    assert!(pack.to_string_lossy().contains("packs"), "{pack:?}");
    fs::remove_file(&pack).unwrap();
    // The process that sealed it (a supervisor's, which knew that pack)
    // sees it gone too.
    let s = seal(
        &vault,
        &token(),
        &SealOptions::new(Reason::Heartbeat),
        &Silent,
    )
    .unwrap();
    assert_eq!(s.soul, hex::encode(soul));
    let again = selfsame::testing::object_location(&vault, &soul);
    assert!(
        again.is_file(),
        "the manifest is stored again, at {again:?}"
    );
    assert_eq!(
        wake(&vault, &token(), &WakeOptions::default())
            .unwrap()
            .verdict,
        Verdict::Verified
    );
    fs::remove_file(&again).unwrap();
    let fresh = selfsame::Vault::open(vault.dir()).unwrap();
    let s = seal(
        &fresh,
        &token(),
        &SealOptions::new(Reason::Heartbeat),
        &Silent,
    )
    .unwrap();
    assert_eq!(s.soul, hex::encode(soul));
    let again = selfsame::testing::object_location(&fresh, &soul);
    assert!(
        again.is_file(),
        "the manifest is stored again, at {again:?}"
    );
    assert_eq!(
        wake(&fresh, &token(), &WakeOptions::default())
            .unwrap()
            .verdict,
        Verdict::Verified
    );
}

/// Scans the soul against the seal's stat cache, storing nothing.
fn scan_with_cache(vault: &selfsame::Vault) -> selfsame::testing::Scan {
    let cache = selfsame::testing::StatCache::path(vault.dir());
    selfsame::testing::fingerprint_until(
        &vault.soul(),
        &vault.excludes().unwrap(),
        &vault.skip_paths(),
        None,
        Some(&cache),
        &Silent,
        &std::sync::atomic::AtomicBool::new(false),
    )
    .unwrap()
}

/// Sets `path`'s mtime to `t`.
fn set_mtime(path: &std::path::Path, t: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

#[test]
fn a_racy_record_read_again_vouches_for_the_manifest_only_when_it_comes_out_the_same() {
    let (dir, vault) = setup();
    // An mtime ahead of every scan keeps this file's record racy: each
    // seal reads the file again.
    let hot = dir.path().join("soul/hot.txt");
    fs::write(&hot, "warm").unwrap();
    let ahead = SystemTime::now() + Duration::from_secs(3600);
    set_mtime(&hot, ahead);
    let first = seal(&vault, &token(), &SealOptions::new(Reason::Manual), &Silent).unwrap();
    assert_eq!(first.changes.added, vec!["hot.txt".to_string()]);

    // Read again with the recorded hash: the cache's manifest is this one.
    let scan = scan_with_cache(&vault);
    assert!(!scan.cache_current, "the racy record is not trusted");
    assert_eq!(
        scan.fingerprint.known_soul.map(hex::encode),
        Some(first.soul.clone())
    );
    let again = seal(&vault, &token(), &SealOptions::new(Reason::Manual), &Silent).unwrap();
    assert_eq!(again.soul, first.soul);
    assert_eq!(again.changes, Default::default());

    // Same size, same mtime, other bytes: read again, it differs, and the
    // manifest is built anew.
    fs::write(&hot, "cold").unwrap();
    set_mtime(&hot, ahead);
    let scan = scan_with_cache(&vault);
    assert_eq!(scan.fingerprint.known_soul, None);
    assert_ne!(scan.fingerprint.manifest.soul_hash(), first.soul);
    let changed = seal(&vault, &token(), &SealOptions::new(Reason::Manual), &Silent).unwrap();
    assert_eq!(changed.changes.modified, vec!["hot.txt".to_string()]);
    assert_eq!(
        wake(&vault, &token(), &WakeOptions::default())
            .unwrap()
            .verdict,
        Verdict::Verified
    );
}
