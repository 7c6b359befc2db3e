//! A file that grows by appending stores its new end, not itself again
//! (issue 15, must-hold 2, the bytes part; bench/append measures the time
//! on a 2 GiB file): one MiB appended to an 8 MiB file adds about one MiB
//! to the store. A file that grew but was also changed before its old end
//! (its first bytes, like a database's header page, or its middle) is
//! stored whole and reads back as it is.

mod common;

use std::fs;
use std::io::Write;

use common::noise;
use selfsame::ops::init::{init, InitOptions};
use selfsame::ops::seal::{seal, Reason, SealOptions};
use selfsame::ops::verify::verify;
use selfsame::progress::Silent;
use selfsame::testing::VaultFiles;
use selfsame::{Credential, Platform};

const MIB: usize = 1 << 20;

fn token() -> Credential {
    Credential::parse(Platform::Telegram, "5151:append-test-token").unwrap()
}

#[test]
fn one_mib_appended_stores_about_one_mib_and_edits_store_what_they_touch() {
    let dir = tempfile::tempdir().unwrap();
    let soul = dir.path().join("soul");
    fs::create_dir(&soul).unwrap();
    let log = soul.join("big.log");
    let mut content = noise(1, 8 * MIB);
    fs::write(&log, &content).unwrap();
    let vault = init(dir.path(), &token(), &InitOptions::new("soul")).unwrap();
    let opts = SealOptions::new(Reason::Manual);
    let read_back = |content: &[u8]| {
        let hash = selfsame::testing::sha256(content);
        assert_eq!(vault.objects().read(&hash).unwrap(), content);
    };

    // Appended: the new MiB, the old last chunk (at most 64 KiB) again,
    // the list and the manifest.
    let more = noise(2, MIB);
    fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(&more)
        .unwrap();
    content.extend_from_slice(&more);
    let s = seal(&vault, &token(), &opts, &Silent).unwrap();
    assert_eq!(s.new_objects, 1);
    assert!(
        s.new_bytes >= MIB as u64 && s.new_bytes <= (MIB + 128 * 1024) as u64,
        "{} bytes stored for one MiB appended",
        s.new_bytes
    );
    read_back(&content);

    // Grown, and its first bytes changed: not an append.
    content[10] ^= 0xff;
    content.extend_from_slice(&noise(3, 1000));
    fs::write(&log, &content).unwrap();
    let s = seal(&vault, &token(), &opts, &Silent).unwrap();
    assert!(s.new_bytes < 256 * 1024, "{}", s.new_bytes);
    read_back(&content);

    // Grown, and changed in the middle: read again whole, stored right.
    content[5 * MIB] ^= 0xff;
    content.extend_from_slice(&noise(4, 1000));
    fs::write(&log, &content).unwrap();
    let s = seal(&vault, &token(), &opts, &Silent).unwrap();
    assert!(s.new_bytes < 256 * 1024, "{}", s.new_bytes);
    read_back(&content);

    let report = verify(&vault, &token(), true, &Silent).unwrap();
    assert_eq!(report.exit_code, 0, "{:?}", report.problems);
}
