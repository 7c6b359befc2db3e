//! Single-lane against paired SHA-256 throughput on one core.
//!
//! Hashes 256 MiB each way, in 128 KiB chunks taken from two buffers small
//! enough to stay in L2: single-lane feeds chunk `a` to one lane and then
//! chunk `b` to another; paired feeds both to `update_pair` at once. The
//! two ways alternate in eight rounds of 32 MiB, so a slow patch of the
//! machine (other work, clock changes) hits both alike. Both must end with
//! the same digests.
//!
//! `cargo run --release --example throughput`

use selfsame_sha256x2::{interleaved, update_pair, Lane};
use std::hint::black_box;
use std::time::{Duration, Instant};

const TOTAL: usize = 256 << 20;
const CHUNK: usize = 128 << 10;
const ROUNDS: usize = 8;

fn main() {
    let a: Vec<u8> = (0..CHUNK).map(|i| (i * 7 + (i >> 9)) as u8).collect();
    let b: Vec<u8> = (0..CHUNK).map(|i| (i * 13 + (i >> 11)) as u8).collect();
    // Chunk pairs per round: each pair is 2 * CHUNK bytes.
    let pairs = TOTAL / ROUNDS / (2 * CHUNK);

    let (mut x1, mut y1) = (Lane::new(), Lane::new());
    let (mut x2, mut y2) = (Lane::new(), Lane::new());
    let mut single = |pairs: usize| {
        let t = Instant::now();
        for _ in 0..pairs {
            x1.update_blocks(black_box(&a));
            y1.update_blocks(black_box(&b));
        }
        t.elapsed()
    };
    let mut paired = |pairs: usize| {
        let t = Instant::now();
        for _ in 0..pairs {
            update_pair(&mut x2, black_box(&a), &mut y2, black_box(&b));
        }
        t.elapsed()
    };

    // Warm up (caches, clocks), then alternate.
    single(pairs);
    paired(pairs);
    let (mut single_time, mut paired_time) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..ROUNDS {
        single_time += single(pairs);
        paired_time += paired(pairs);
    }
    assert_eq!(
        (x1.finish(&[]), y1.finish(&[])),
        (x2.finish(&[]), y2.finish(&[])),
        "single-lane and paired digests differ"
    );

    let mbs = |time: Duration| TOTAL as f64 / time.as_secs_f64() / 1e6;
    println!(
        "single-lane {:.0} MB/s, paired {:.0} MB/s, ratio {:.2} (interleaved: {})",
        mbs(single_time),
        mbs(paired_time),
        single_time.as_secs_f64() / paired_time.as_secs_f64(),
        interleaved()
    );
}
