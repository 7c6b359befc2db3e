//! Random pairs of messages fed through a random mix of `update_pair`,
//! `update_blocks` and `finish`, against `sha2::Sha256`.

use proptest::prelude::*;
use selfsame_sha256x2::{update_pair, Lane, BLOCK};
use sha2::{Digest, Sha256};

/// Message lengths: anything below 5000, whole blocks, and the lengths
/// around the padding boundaries (55 is the longest tail that pads into
/// one block).
fn len() -> impl Strategy<Value = usize> {
    prop_oneof![
        3 => 0usize..5000,
        1 => (0usize..=78).prop_map(|blocks| blocks * BLOCK),
        2 => prop::sample::select(vec![55, 56, 63, 64, 65, 119, 120, 127, 128, 129]),
    ]
}

fn message() -> impl Strategy<Value = Vec<u8>> {
    len().prop_flat_map(|len| prop::collection::vec(any::<u8>(), len))
}

/// One step of feeding: some blocks to both lanes at once, or to one.
#[derive(Clone, Debug)]
enum Step {
    Pair(usize),
    X(usize),
    Y(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0usize..40).prop_map(Step::Pair),
        1 => (0usize..40).prop_map(Step::X),
        1 => (0usize..40).prop_map(Step::Y),
    ]
}

fn sha2(message: &[u8]) -> [u8; 32] {
    Sha256::digest(message).into()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn mixed_feeding_matches_sha2(
        a in message(),
        b in message(),
        steps in prop::collection::vec(step(), 0..8),
    ) {
        let (mut x, mut y) = (Lane::new(), Lane::new());
        // Bytes of `a` and `b` compressed so far.
        let (mut at, mut bt) = (0, 0);
        let blocks_left = |message: &[u8], at: usize| (message.len() - at) / BLOCK;
        for step in steps {
            match step {
                Step::Pair(n) => {
                    let n = n.min(blocks_left(&a, at)).min(blocks_left(&b, bt)) * BLOCK;
                    update_pair(&mut x, &a[at..at + n], &mut y, &b[bt..bt + n]);
                    (at, bt) = (at + n, bt + n);
                }
                Step::X(n) => {
                    let n = n.min(blocks_left(&a, at)) * BLOCK;
                    x.update_blocks(&a[at..at + n]);
                    at += n;
                }
                Step::Y(n) => {
                    let n = n.min(blocks_left(&b, bt)) * BLOCK;
                    y.update_blocks(&b[bt..bt + n]);
                    bt += n;
                }
            }
            prop_assert_eq!((x.compressed(), y.compressed()), (at as u64, bt as u64));
        }
        // The tails may still hold whole blocks: `finish` compresses them.
        prop_assert_eq!(x.finish(&a[at..]), sha2(&a), "a: {} bytes", a.len());
        prop_assert_eq!(y.finish(&b[bt..]), sha2(&b), "b: {} bytes", b.len());
    }

    /// Two lanes paired from the start over all their common whole blocks:
    /// the shape a caller hashing two files side by side produces.
    #[test]
    fn pair_then_finish_matches_sha2(a in message(), b in message()) {
        let n = a.len().min(b.len()) / BLOCK * BLOCK;
        let (mut x, mut y) = (Lane::new(), Lane::new());
        update_pair(&mut x, &a[..n], &mut y, &b[..n]);
        prop_assert_eq!(x.finish(&a[n..]), sha2(&a));
        prop_assert_eq!(y.finish(&b[n..]), sha2(&b));
    }
}

/// xorshift64*: a seeded generator, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// Two random messages of 2 to 6 MiB (any length, not whole blocks) fed in
/// random pieces — pairs of up to 1 MiB on either backend, or one lane
/// alone — then finished, against sha2; for several seeds.
#[test]
fn several_mib_in_random_pieces_match_sha2() {
    use selfsame_sha256x2::{update_pair_with, Backend};
    const MIB: usize = 1 << 20;
    for seed in [1u64, 0x5eed, 0xdead_beef, 20_261_202] {
        let mut rng = Rng(seed);
        let len = 2 * MIB + rng.below(4 * MIB);
        let a = rng.bytes(len);
        let len = 2 * MIB + rng.below(4 * MIB);
        let b = rng.bytes(len);
        let (mut x, mut y) = (Lane::new(), Lane::new());
        let (mut at, mut bt) = (0, 0);
        let blocks_left = |m: &[u8], at: usize| (m.len() - at) / BLOCK;
        while blocks_left(&a, at) + blocks_left(&b, bt) > 0 {
            // Mostly small pieces, sometimes big ones.
            let most = if rng.below(4) == 0 { MIB / BLOCK } else { 64 };
            let n = 1 + rng.below(most);
            match rng.below(4) {
                0 | 1 => {
                    let n = n.min(blocks_left(&a, at)).min(blocks_left(&b, bt)) * BLOCK;
                    let backend = if rng.below(2) == 0 {
                        Backend::detect()
                    } else {
                        Backend::Portable
                    };
                    update_pair_with(backend, &mut x, &a[at..at + n], &mut y, &b[bt..bt + n]);
                    (at, bt) = (at + n, bt + n);
                }
                2 => {
                    let n = n.min(blocks_left(&a, at)) * BLOCK;
                    x.update_blocks(&a[at..at + n]);
                    at += n;
                }
                _ => {
                    let n = n.min(blocks_left(&b, bt)) * BLOCK;
                    y.update_blocks(&b[bt..bt + n]);
                    bt += n;
                }
            }
        }
        assert_eq!((x.compressed(), y.compressed()), (at as u64, bt as u64));
        assert_eq!(
            x.finish(&a[at..]),
            sha2(&a),
            "seed {seed}: a, {} bytes",
            a.len()
        );
        assert_eq!(
            y.finish(&b[bt..]),
            sha2(&b),
            "seed {seed}: b, {} bytes",
            b.len()
        );
    }
}
