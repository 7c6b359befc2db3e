//! SHA-256 of two independent messages at once on one core.
//!
//! With SHA-NI, one message's rounds form a single dependency chain of
//! `sha256rnds2` instructions, so a core hashing one message mostly waits
//! on latency. [`update_pair`] interleaves the rounds of two messages, which
//! keeps the core busier and hashes both faster than one after the other.
//! Without SHA-NI (or off x86_64) it compresses the two messages one after
//! the other with [`sha2`].
//!
//! A [`Lane`] is the state of one message fed in whole 64-byte blocks; it
//! can take blocks alone ([`Lane::update_blocks`]) or beside another lane
//! ([`update_pair`]), and [`Lane::finish`] pads it and returns the digest,
//! the same as `sha2::Sha256` of the whole message.
//!
//! ```
//! use selfsame_sha256x2::{update_pair, Lane};
//!
//! let (a, b) = (vec![1u8; 4096], vec![2u8; 4096]);
//! let (mut x, mut y) = (Lane::new(), Lane::new());
//! update_pair(&mut x, &a, &mut y, &b);
//! assert_eq!(x.finish(b"tail of a"), selfsame_sha256x2::digest(&[&a[..], b"tail of a"].concat()));
//! assert_eq!(y.finish(&[]), selfsame_sha256x2::digest(&b));
//! ```
//!
//! # Unsafe code
//!
//! The crate denies `unsafe_code` and allows it in exactly two places, so
//! the compiler holds this list true: the private `x86` module (the
//! CPU-feature check before entering SHA-NI code, and unaligned 16-byte
//! loads) and the private `compress`, which casts `&[[u8; 64]]` to the
//! `&[GenericArray<u8, U64>]` that `sha2::compress256` takes. Every
//! `unsafe` block says why it is sound (`clippy::undocumented_unsafe_blocks`).
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

use sha2::digest::{consts::U64, generic_array::GenericArray};

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86;

/// Bytes in a SHA-256 block.
pub const BLOCK: usize = 64;

/// The SHA-256 initial state.
const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// The SHA-256 state of one message fed in whole 64-byte blocks.
#[derive(Clone, Debug)]
pub struct Lane {
    state: [u32; 8],
    /// Bytes compressed so far.
    compressed: u64,
}

impl Default for Lane {
    fn default() -> Lane {
        Lane::new()
    }
}

impl Lane {
    /// A lane at the start of a message.
    pub fn new() -> Lane {
        Lane {
            state: IV,
            compressed: 0,
        }
    }

    /// Compresses `blocks`; its length must be a multiple of [`BLOCK`]
    /// (panics otherwise, with a message).
    pub fn update_blocks(&mut self, blocks: &[u8]) {
        let whole = as_blocks(blocks, "Lane::update_blocks");
        compress(&mut self.state, whole);
        self.compressed = self.compressed.wrapping_add(blocks.len() as u64);
    }

    /// Bytes compressed so far.
    pub fn compressed(&self) -> u64 {
        self.compressed
    }

    /// Ends the message: `tail` (any length; whole blocks in it are
    /// compressed first) then SHA-256 padding; returns the digest.
    pub fn finish(mut self, tail: &[u8]) -> [u8; 32] {
        let (whole, rest) = tail.as_chunks::<BLOCK>();
        compress(&mut self.state, whole);
        let bits = self
            .compressed
            .wrapping_add(tail.len() as u64)
            .wrapping_mul(8);

        // `rest`, 0x80, zeros, then the 64-bit big-endian bit length: one
        // block if they fit, else two.
        let mut pad = [0u8; 2 * BLOCK];
        pad[..rest.len()].copy_from_slice(rest);
        pad[rest.len()] = 0x80;
        let len = if rest.len() < BLOCK - 8 {
            BLOCK
        } else {
            2 * BLOCK
        };
        pad[len - 8..len].copy_from_slice(&bits.to_be_bytes());
        compress(&mut self.state, pad[..len].as_chunks::<BLOCK>().0);

        let mut out = [0u8; 32];
        for (bytes, word) in out.chunks_exact_mut(4).zip(self.state) {
            bytes.copy_from_slice(&word.to_be_bytes());
        }
        out
    }
}

/// How [`update_pair`] compresses two lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The two lanes' SHA-NI rounds interleaved (x86_64 with SHA-NI).
    Interleaved,
    /// One lane after the other with `sha2::compress256`.
    Portable,
}

impl Backend {
    /// The backend this CPU runs: [`Backend::Interleaved`] when it has
    /// SHA-NI, else [`Backend::Portable`].
    pub fn detect() -> Backend {
        #[cfg(target_arch = "x86_64")]
        if x86::available() {
            return Backend::Interleaved;
        }
        Backend::Portable
    }
}

/// Compresses `a` into `x` and `b` into `y`. `a.len() == b.len()`, a
/// multiple of [`BLOCK`] (panics otherwise).
///
/// Interleaved 2-way with SHA-NI when the CPU has it, else two single-lane
/// compressions.
pub fn update_pair(x: &mut Lane, a: &[u8], y: &mut Lane, b: &[u8]) {
    update_pair_with(Backend::detect(), x, a, y, b);
}

/// [`update_pair`] on a chosen backend, for tests and benchmarks: with
/// [`Backend::Portable`] a SHA-NI machine runs the portable code too.
/// [`Backend::Interleaved`] on a CPU without SHA-NI runs the portable code.
pub fn update_pair_with(backend: Backend, x: &mut Lane, a: &[u8], y: &mut Lane, b: &[u8]) {
    assert_eq!(
        a.len(),
        b.len(),
        "update_pair: `a` and `b` must have the same length"
    );
    let (blocks_a, blocks_b) = (as_blocks(a, "update_pair"), as_blocks(b, "update_pair"));
    #[cfg(not(target_arch = "x86_64"))]
    let _ = backend;
    #[cfg(target_arch = "x86_64")]
    if backend == Backend::Interleaved
        && x86::compress2(&mut x.state, blocks_a, &mut y.state, blocks_b)
    {
        x.compressed = x.compressed.wrapping_add(a.len() as u64);
        y.compressed = y.compressed.wrapping_add(b.len() as u64);
        return;
    }
    update_pair_portable(x, blocks_a, y, blocks_b);
}

/// [`update_pair`] without SHA-NI: one lane after the other.
fn update_pair_portable(x: &mut Lane, a: &[[u8; BLOCK]], y: &mut Lane, b: &[[u8; BLOCK]]) {
    compress(&mut x.state, a);
    x.compressed = x.compressed.wrapping_add((a.len() * BLOCK) as u64);
    compress(&mut y.state, b);
    y.compressed = y.compressed.wrapping_add((b.len() * BLOCK) as u64);
}

/// Whether [`update_pair`] runs interleaved on this CPU.
pub fn interleaved() -> bool {
    Backend::detect() == Backend::Interleaved
}

/// SHA-256 of one whole message (convenience; same result as sha2).
pub fn digest(bytes: &[u8]) -> [u8; 32] {
    Lane::new().finish(bytes)
}

/// `bytes` as whole blocks; panics, naming `what`, if its length is not a
/// multiple of [`BLOCK`].
fn as_blocks<'a>(bytes: &'a [u8], what: &str) -> &'a [[u8; BLOCK]] {
    let (whole, rest) = bytes.as_chunks::<BLOCK>();
    assert!(
        rest.is_empty(),
        "{what}: length {} is not a multiple of {BLOCK}",
        bytes.len()
    );
    whole
}

/// Single-lane compression with sha2 (which picks SHA-NI itself).
///
/// One `compress256` call on the whole slice: calling it once per block
/// measured about 10% slower, copying blocks into a `GenericArray` buffer
/// about 3% slower.
#[allow(unsafe_code)]
fn compress(state: &mut [u32; 8], blocks: &[[u8; BLOCK]]) {
    // SAFETY: `GenericArray<u8, U64>` is `#[repr(transparent)]` over nested
    // `#[repr(C)]` halves of `u8`s, the same 64 bytes with alignment 1 as
    // `[u8; 64]` (generic-array's own `From<&[u8; 64]>` casts one the same
    // way; the assertion below checks size and alignment), so a slice of
    // `[u8; 64]` read as a slice of as many `GenericArray<u8, U64>` covers the
    // same initialised, immutably borrowed bytes for the same lifetime.
    let blocks: &[GenericArray<u8, U64>] =
        unsafe { core::slice::from_raw_parts(blocks.as_ptr().cast(), blocks.len()) };
    sha2::compress256(state, blocks);
}

const _: () = assert!(
    core::mem::size_of::<GenericArray<u8, U64>>() == BLOCK
        && core::mem::align_of::<GenericArray<u8, U64>>() == 1
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    fn bytes(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
            .collect()
    }

    #[test]
    fn portable_pair_known_vector() {
        // One million 'a' is exactly 15625 blocks.
        let a = vec![b'a'; 1_000_000];
        let (mut x, mut y) = (Lane::new(), Lane::new());
        let (whole, _) = a.as_chunks::<BLOCK>();
        update_pair_portable(&mut x, whole, &mut y, whole);
        assert_eq!(x.compressed(), 1_000_000);
        let want = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
        let hex = |d: [u8; 32]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(x.finish(&[])), want);
        assert_eq!(hex(y.finish(&[])), want);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The portable pair path, which a SHA-NI machine never takes
        /// through `update_pair`, against sha2.
        #[test]
        fn portable_pair_matches_sha2(
            la in 0usize..3000,
            lb in 0usize..3000,
            pair in 0usize..48,
            seed in any::<u8>(),
        ) {
            let (a, b) = (bytes(la, seed), bytes(lb, seed ^ 0x5a));
            let n = pair.min(la / BLOCK).min(lb / BLOCK) * BLOCK;
            let (mut x, mut y) = (Lane::new(), Lane::new());
            update_pair_portable(
                &mut x, a[..n].as_chunks().0,
                &mut y, b[..n].as_chunks().0,
            );
            prop_assert_eq!(x.compressed(), n as u64);
            prop_assert_eq!(x.finish(&a[n..]), <[u8; 32]>::from(Sha256::digest(&a)));
            prop_assert_eq!(y.finish(&b[n..]), <[u8; 32]>::from(Sha256::digest(&b)));
        }
    }
}
