//! Published SHA-256 test vectors through every entry point, and the
//! length checks.

use selfsame_sha256x2::{digest, interleaved, update_pair, Lane, BLOCK};

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

#[test]
fn interleaved_exactly_when_cpu_has_sha_ni() {
    #[cfg(target_arch = "x86_64")]
    let has = std::arch::is_x86_feature_detected!("sha")
        && std::arch::is_x86_feature_detected!("sse2")
        && std::arch::is_x86_feature_detected!("ssse3")
        && std::arch::is_x86_feature_detected!("sse4.1");
    #[cfg(not(target_arch = "x86_64"))]
    let has = false;
    assert_eq!(interleaved(), has);
    if !has {
        eprintln!("no SHA-NI here: the interleaved path is not exercised");
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
