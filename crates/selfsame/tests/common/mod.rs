//! Helpers shared by the library's integration tests.
#![allow(dead_code)] // each test uses the helpers it needs

use std::path::Path;

/// Bytes that do not repeat, so that no two pieces of them are alike
/// (a fixed seed gives the same bytes every run).
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `cp -a from to`: a vault copied with its modes.
pub fn copy_tree(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}
