//! The seal stat cache never hides a change: a same-size rewrite with the
//! old mtime put back is still seen by seal (ctime) and by wake (which
//! re-hashes by default), and `wake --fast` still sees ordinary edits.

use std::fs;
use std::time::{Duration, SystemTime};

use selfsame::format::checkpoint::Reason;
use selfsame::ops::init::{init, InitOptions};
use selfsame::ops::seal::{seal, SealOptions};
use selfsame::ops::wake::{wake, WakeOptions};
use selfsame::progress::Silent;
use selfsame::{BotToken, Verdict};

fn token() -> BotToken {
    BotToken::parse("4242:stat-cache-test-token").unwrap()
}

fn setup() -> (tempfile::TempDir, selfsame::Vault) {
    let dir = tempfile::tempdir().unwrap();
    let soul = dir.path().join("soul");
    fs::create_dir(&soul).unwrap();
    fs::write(soul.join("memory.txt"), "aaaa").unwrap();
    fs::write(soul.join("other.txt"), "stays").unwrap();
    // Old mtimes, so the first seal's cache entries are not racy.
    let old = SystemTime::now() - Duration::from_secs(3600);
    for f in ["memory.txt", "other.txt"] {
        fs::File::options()
            .write(true)
            .open(soul.join(f))
            .unwrap()
            .set_modified(old)
            .unwrap();
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
    fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
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
    let cache = selfsame::vault::statcache::StatCache::load(
        &selfsame::vault::statcache::StatCache::path(vault.dir()),
    );
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
