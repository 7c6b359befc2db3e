//! Two SHA-256 compressions interleaved on SHA-NI. The crate's `unsafe`
//! code is here (entering the SHA-NI code after the CPU check, unaligned
//! loads), except the one slice cast in `compress` (see the crate docs).
//!
//! One message's `sha256rnds2` chain is latency-bound: each instruction
//! needs the result of the one before. Two independent messages give the
//! core a second chain to issue while the first waits, so the rounds of
//! message `a` and message `b` alternate below. The round structure is
//! sha2 0.10's own x86 backend (`sha2/src/sha256/x86.rs`), doubled.

use core::arch::x86_64::{
    __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_blend_epi16, _mm_extract_epi32, _mm_loadu_si128,
    _mm_set_epi32, _mm_set_epi64x, _mm_sha256msg1_epu32, _mm_sha256msg2_epu32,
    _mm_sha256rnds2_epu32, _mm_shuffle_epi32, _mm_shuffle_epi8,
};

cpufeatures::new!(shani, "sha", "sse2", "ssse3", "sse4.1");

/// Whether this CPU has SHA-NI (and the SSE levels the code below uses).
pub(crate) fn available() -> bool {
    shani::get()
}

/// Compresses `a` into `sa` and `b` into `sb`, interleaved, if the CPU has
/// SHA-NI; returns `false` (and touches nothing) if it has not.
///
/// `a` and `b` must have the same number of blocks (panics otherwise).
pub(crate) fn compress2(
    sa: &mut [u32; 8],
    a: &[[u8; 64]],
    sb: &mut [u32; 8],
    b: &[[u8; 64]],
) -> bool {
    assert_eq!(a.len(), b.len(), "compress2: lanes of different lengths");
    if !shani::get() {
        return false;
    }
    // SAFETY: `compress2_shani` only requires the target features it is
    // compiled with (sha, sse2, ssse3, sse4.1), and `shani::get()` has just
    // checked with CPUID that this CPU has all of them.
    unsafe { compress2_shani(sa, a, sb, b) };
    true
}

/// The round constants, four to a vector, in round order.
const K32X4: [[u32; 4]; 16] = [
    [0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5],
    [0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5],
    [0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3],
    [0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174],
    [0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc],
    [0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da],
    [0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7],
    [0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967],
    [0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13],
    [0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85],
    [0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3],
    [0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070],
    [0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5],
    [0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3],
    [0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208],
    [0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2],
];

/// Round constants `4 * i .. 4 * i + 4` as one vector (lane 0 first).
#[inline]
#[target_feature(enable = "sse2")]
fn k4(i: usize) -> __m128i {
    let k = K32X4[i];
    _mm_set_epi32(k[3] as i32, k[2] as i32, k[1] as i32, k[0] as i32)
}

/// Loads 16 message bytes as four big-endian words (word 0 in lane 0).
#[inline]
#[target_feature(enable = "sse2,ssse3")]
fn load_be(bytes: &[u8; 16]) -> __m128i {
    let mask = _mm_set_epi64x(
        0x0C0D_0E0F_0809_0A0Bu64 as i64,
        0x0405_0607_0001_0203u64 as i64,
    );
    // SAFETY: `bytes` is a reference to 16 initialised bytes, exactly what
    // the unaligned load `_mm_loadu_si128` reads; it needs no alignment.
    let v = unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) };
    _mm_shuffle_epi8(v, mask)
}

/// The block's 16 message words as four vectors.
#[inline]
#[target_feature(enable = "sse2,ssse3")]
fn load_block(block: &[u8; 64]) -> [__m128i; 4] {
    let (words, _) = block.as_chunks::<16>();
    [
        load_be(&words[0]),
        load_be(&words[1]),
        load_be(&words[2]),
        load_be(&words[3]),
    ]
}

/// The next four message-schedule words from the previous sixteen.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3")]
fn schedule(v0: __m128i, v1: __m128i, v2: __m128i, v3: __m128i) -> __m128i {
    let t1 = _mm_sha256msg1_epu32(v0, v1);
    let t2 = _mm_alignr_epi8(v3, v2, 4);
    let t3 = _mm_add_epi32(t1, t2);
    _mm_sha256msg2_epu32(t3, v3)
}

/// The state `a..h` as the (ABEF, CDGH) register pair SHA-NI works on.
#[inline]
#[target_feature(enable = "sse2,ssse3,sse4.1")]
fn load_state(s: &[u32; 8]) -> (__m128i, __m128i) {
    let dcba = _mm_set_epi32(s[3] as i32, s[2] as i32, s[1] as i32, s[0] as i32);
    let hgfe = _mm_set_epi32(s[7] as i32, s[6] as i32, s[5] as i32, s[4] as i32);
    let cdab = _mm_shuffle_epi32(dcba, 0xB1);
    let efgh = _mm_shuffle_epi32(hgfe, 0x1B);
    let abef = _mm_alignr_epi8(cdab, efgh, 8);
    let cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);
    (abef, cdgh)
}

/// The inverse of [`load_state`].
#[inline]
#[target_feature(enable = "sse2,ssse3,sse4.1")]
fn store_state(s: &mut [u32; 8], abef: __m128i, cdgh: __m128i) {
    let feba = _mm_shuffle_epi32(abef, 0x1B);
    let dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    let dcba = _mm_blend_epi16(feba, dchg, 0xF0);
    let hgef = _mm_alignr_epi8(dchg, feba, 8);
    *s = [
        _mm_extract_epi32(dcba, 0) as u32,
        _mm_extract_epi32(dcba, 1) as u32,
        _mm_extract_epi32(dcba, 2) as u32,
        _mm_extract_epi32(dcba, 3) as u32,
        _mm_extract_epi32(hgef, 0) as u32,
        _mm_extract_epi32(hgef, 1) as u32,
        _mm_extract_epi32(hgef, 2) as u32,
        _mm_extract_epi32(hgef, 3) as u32,
    ];
}

/// Four rounds of both lanes: `$wa`/`$wb` are the lanes' message words for
/// rounds `4 * $i ..`; the two `sha256rnds2` chains alternate.
macro_rules! rounds4 {
    ($i:expr, $abef_a:ident, $cdgh_a:ident, $wa:expr, $abef_b:ident, $cdgh_b:ident, $wb:expr) => {{
        let k = k4($i);
        let ta = _mm_add_epi32($wa, k);
        let tb = _mm_add_epi32($wb, k);
        $cdgh_a = _mm_sha256rnds2_epu32($cdgh_a, $abef_a, ta);
        $cdgh_b = _mm_sha256rnds2_epu32($cdgh_b, $abef_b, tb);
        $abef_a = _mm_sha256rnds2_epu32($abef_a, $cdgh_a, _mm_shuffle_epi32(ta, 0x0E));
        $abef_b = _mm_sha256rnds2_epu32($abef_b, $cdgh_b, _mm_shuffle_epi32(tb, 0x0E));
    }};
}

/// The interleaved compression proper.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn compress2_shani(sa: &mut [u32; 8], a: &[[u8; 64]], sb: &mut [u32; 8], b: &[[u8; 64]]) {
    let (mut abef_a, mut cdgh_a) = load_state(sa);
    let (mut abef_b, mut cdgh_b) = load_state(sb);

    for (block_a, block_b) in a.iter().zip(b) {
        let (save_abef_a, save_cdgh_a) = (abef_a, cdgh_a);
        let (save_abef_b, save_cdgh_b) = (abef_b, cdgh_b);
        let [mut w0, mut w1, mut w2, mut w3] = load_block(block_a);
        let [mut x0, mut x1, mut x2, mut x3] = load_block(block_b);

        // Rounds 0..16 use the message words as loaded.
        rounds4!(0, abef_a, cdgh_a, w0, abef_b, cdgh_b, x0);
        rounds4!(1, abef_a, cdgh_a, w1, abef_b, cdgh_b, x1);
        rounds4!(2, abef_a, cdgh_a, w2, abef_b, cdgh_b, x2);
        rounds4!(3, abef_a, cdgh_a, w3, abef_b, cdgh_b, x3);
        // Rounds 16..64: each group of four schedules its words over the
        // oldest four, which no later group needs.
        for i in (4..16).step_by(4) {
            w0 = schedule(w0, w1, w2, w3);
            x0 = schedule(x0, x1, x2, x3);
            rounds4!(i, abef_a, cdgh_a, w0, abef_b, cdgh_b, x0);
            w1 = schedule(w1, w2, w3, w0);
            x1 = schedule(x1, x2, x3, x0);
            rounds4!(i + 1, abef_a, cdgh_a, w1, abef_b, cdgh_b, x1);
            w2 = schedule(w2, w3, w0, w1);
            x2 = schedule(x2, x3, x0, x1);
            rounds4!(i + 2, abef_a, cdgh_a, w2, abef_b, cdgh_b, x2);
            w3 = schedule(w3, w0, w1, w2);
            x3 = schedule(x3, x0, x1, x2);
            rounds4!(i + 3, abef_a, cdgh_a, w3, abef_b, cdgh_b, x3);
        }

        abef_a = _mm_add_epi32(abef_a, save_abef_a);
        cdgh_a = _mm_add_epi32(cdgh_a, save_cdgh_a);
        abef_b = _mm_add_epi32(abef_b, save_abef_b);
        cdgh_b = _mm_add_epi32(cdgh_b, save_cdgh_b);
    }

    store_state(sa, abef_a, cdgh_a);
    store_state(sb, abef_b, cdgh_b);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks whose every byte differs, so word- or byte-order mistakes show.
    fn blocks(n: usize, seed: u32) -> Vec<[u8; 64]> {
        let mut x = seed.wrapping_mul(0x9E37_79B9) | 1;
        (0..n)
            .map(|_| {
                let mut block = [0u8; 64];
                for byte in &mut block {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    *byte = x as u8;
                }
                block
            })
            .collect()
    }

    #[test]
    fn compress2_matches_sha2_compress256() {
        if !available() {
            // Fail rather than pass untested, unless told this CPU lacks it.
            assert!(
                std::env::var_os("SELFSAME_NO_SHA_NI").is_some(),
                "this CPU has no SHA-NI, so the interleaved code is not tested; set SELFSAME_NO_SHA_NI=1 to run the tests on such a CPU"
            );
            return;
        }
        for n in [0, 1, 2, 3, 17] {
            let (a, b) = (blocks(n, 1), blocks(n, 2));
            let start_a = [1, 2, 3, 4, 5, 6, 7, 8];
            let start_b = [
                0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
                0x5be0cd19,
            ];
            let (mut sa, mut sb) = (start_a, start_b);
            assert!(compress2(&mut sa, &a, &mut sb, &b));
            let (mut ra, mut rb) = (start_a, start_b);
            for block in &a {
                sha2::compress256(&mut ra, &[(*block).into()]);
            }
            for block in &b {
                sha2::compress256(&mut rb, &[(*block).into()]);
            }
            assert_eq!((sa, sb), (ra, rb), "{n} blocks");
        }
    }
}
