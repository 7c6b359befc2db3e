//! Published SHA-256 test vectors through every entry point, and the
//! length checks.

use selfsame_sha256x2::{digest, interleaved, update_pair, update_pair_with, Backend, Lane, BLOCK};

fn hex(d: [u8; 32]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// (message, SHA-256 in hex) from FIPS 180-2 appendix B and the NIST
/// examples.
fn vectors() -> Vec<(Vec<u8>, &'static str)> {
    vec![
        (
            b"".to_vec(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
        (
            b"abc".to_vec(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        (
            b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".to_vec(),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        ),
        (
            vec![b'a'; 1_000_000],
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
        ),
    ]
}

#[test]
fn digest_matches_published_vectors() {
    for (message, want) in vectors() {
        assert_eq!(hex(digest(&message)), want, "{} bytes", message.len());
    }
}

#[test]
fn lane_blocks_then_finish_matches_published_vectors() {
    for (message, want) in vectors() {
        let whole = message.len() / BLOCK * BLOCK;
        let mut lane = Lane::new();
        lane.update_blocks(&message[..whole]);
        assert_eq!(lane.compressed(), whole as u64);
        assert_eq!(
            hex(lane.finish(&message[whole..])),
            want,
            "{} bytes",
            message.len()
        );
    }
}

#[test]
fn pair_matches_published_vectors() {
    // Each vector's whole blocks beside as many blocks of a different
    // message, then both finished: a mix-up between the lanes shows in both.
    let other: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    for (message, want) in vectors() {
        let whole = message.len() / BLOCK * BLOCK;
        let (mut x, mut y) = (Lane::new(), Lane::new());
        update_pair(&mut x, &message[..whole], &mut y, &other[..whole]);
        assert_eq!(
            (x.compressed(), y.compressed()),
            (whole as u64, whole as u64)
        );
        assert_eq!(
            hex(x.finish(&message[whole..])),
            want,
            "{} bytes",
            message.len()
        );
        assert_eq!(y.finish(&[]), digest(&other[..whole]), "{whole} bytes");
    }
}

#[test]
fn default_is_new() {
    assert_eq!(hex(Lane::default().finish(b"abc")), hex(digest(b"abc")));
}

/// The interleaved code is what this crate adds, so a run that cannot test
/// it fails instead of passing: on a CPU without SHA-NI the suite passes
/// only when `SELFSAME_NO_SHA_NI` says so. CI's CPU has SHA-NI.
#[test]
fn sha_ni_is_used_unless_the_cpu_is_declared_without_it() {
    #[cfg(target_arch = "x86_64")]
    let has = std::arch::is_x86_feature_detected!("sha")
        && std::arch::is_x86_feature_detected!("sse2")
        && std::arch::is_x86_feature_detected!("ssse3")
        && std::arch::is_x86_feature_detected!("sse4.1");
    #[cfg(not(target_arch = "x86_64"))]
    let has = false;
    assert_eq!(interleaved(), has);
    assert_eq!(
        Backend::detect(),
        if has {
            Backend::Interleaved
        } else {
            Backend::Portable
        }
    );
    if std::env::var_os("SELFSAME_NO_SHA_NI").is_some() {
        assert!(!has, "SELFSAME_NO_SHA_NI is set, but this CPU has SHA-NI");
    } else {
        assert!(
            has,
            "this CPU has no SHA-NI, so the interleaved code is not tested; set SELFSAME_NO_SHA_NI=1 to run the tests on such a CPU"
        );
    }
}

/// A message of `len` bytes that differs from every other one the tests
/// use (`seed`).
fn message(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(167).wrapping_add(seed) ^ (i >> 7) as u8)
        .collect()
}

fn sha2(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// Every length from 0 to 200 bytes (every padding case: tails of 0..=63
/// bytes, one or two padding blocks, 0 to 3 whole blocks before them)
/// through every entry point, each against sha2.
#[test]
fn every_length_to_200_through_each_entry_point() {
    for len in 0..=200 {
        let m = message(len, len as u8);
        let want = sha2(&m);
        let whole = len / BLOCK * BLOCK;
        assert_eq!(digest(&m), want, "digest, {len} bytes");
        assert_eq!(Lane::new().finish(&m), want, "finish, {len} bytes");

        let mut lane = Lane::new();
        lane.update_blocks(&m[..whole]);
        assert_eq!(lane.finish(&m[whole..]), want, "update_blocks, {len} bytes");

        let mut lane = Lane::new();
        for block in m[..whole].chunks(BLOCK) {
            lane.update_blocks(block);
        }
        assert_eq!(
            lane.finish(&m[whole..]),
            want,
            "block by block, {len} bytes"
        );

        // Beside a partner of another length, paired over their common
        // blocks, on the CPU's backend and on the portable one.
        let other = message(200 - len, !(len as u8));
        let common = whole.min(other.len() / BLOCK * BLOCK);
        for backend in [Backend::detect(), Backend::Portable] {
            let (mut x, mut y) = (Lane::new(), Lane::new());
            update_pair_with(backend, &mut x, &m[..common], &mut y, &other[..common]);
            assert_eq!(x.finish(&m[common..]), want, "{backend:?}, {len} bytes");
            assert_eq!(
                y.finish(&other[common..]),
                sha2(&other),
                "{backend:?}, partner of {len} bytes"
            );
        }
        let (mut x, mut y) = (Lane::new(), Lane::new());
        update_pair(&mut x, &m[..whole], &mut y, &m[..whole]);
        assert_eq!(x.finish(&m[whole..]), want, "paired with itself, {len}");
        assert_eq!(y.finish(&m[whole..]), want, "paired with itself, {len}");
    }
}

/// The published vectors through `update_pair` forced onto the portable
/// code, which a SHA-NI machine never takes by itself.
#[test]
fn portable_backend_through_update_pair_matches_published_vectors() {
    let other: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
    for (m, want) in vectors() {
        let whole = m.len() / BLOCK * BLOCK;
        let (mut x, mut y) = (Lane::new(), Lane::new());
        update_pair_with(
            Backend::Portable,
            &mut x,
            &m[..whole],
            &mut y,
            &other[..whole],
        );
        assert_eq!(
            (x.compressed(), y.compressed()),
            (whole as u64, whole as u64)
        );
        assert_eq!(hex(x.finish(&m[whole..])), want, "{} bytes", m.len());
        assert_eq!(y.finish(&[]), sha2(&other[..whole]));
    }
}

#[test]
#[should_panic(expected = "Lane::update_blocks: length 63 is not a multiple of 64")]
fn update_blocks_rejects_partial_block() {
    Lane::new().update_blocks(&[0; 63]);
}

#[test]
#[should_panic(expected = "update_pair: `a` and `b` must have the same length")]
fn update_pair_rejects_different_lengths() {
    let (mut x, mut y) = (Lane::new(), Lane::new());
    update_pair(&mut x, &[0; 128], &mut y, &[0; 64]);
}

#[test]
#[should_panic(expected = "update_pair: length 100 is not a multiple of 64")]
fn update_pair_rejects_partial_blocks() {
    let (mut x, mut y) = (Lane::new(), Lane::new());
    update_pair(&mut x, &[0; 100], &mut y, &[0; 100]);
}
