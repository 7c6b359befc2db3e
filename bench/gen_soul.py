#!/usr/bin/env python3
"""Generate a benchmark soul deterministically from a seed.

  gen_soul.py DIR a   1 GiB in 10,000 files of mixed sizes in nested dirs
  gen_soul.py DIR b   100,000 files averaging 4 KiB
  gen_soul.py DIR c   one 2 GiB file
  --scale N           divide sizes and counts by N (bench/run --quick uses 10)

The same seed always gives the same bytes, so runs are comparable.
"""
import argparse
import os
import random


def write(path, rng, size):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 22)
            f.write(rng.randbytes(n))
            left -= n


def soul_a(root, rng, scale):
    total = (1 << 30) // scale
    count = 10_000 // scale
    # Mixed sizes: many small, some medium, a few large (log-uniform),
    # rescaled to the total.
    raw = [2 ** rng.uniform(8, 24) for _ in range(count)]
    k = total / sum(raw)
    for i, r in enumerate(raw):
        d = f"d{i % 17:02}/e{i % 7}/f{i % 3}"
        write(os.path.join(root, d, f"file{i:05}.bin"), rng, max(1, int(r * k)))


def soul_b(root, rng, scale):
    count = 100_000 // scale
    for i in range(count):
        size = int(rng.expovariate(1 / 4096)) + 1
        write(os.path.join(root, f"m{i % 100:02}", f"n{i % 10}", f"rec{i:06}.json"), rng, size)


def soul_c(root, rng, scale):
    write(os.path.join(root, "big.bin"), rng, (2 << 30) // scale)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("kind", choices="abc")
    ap.add_argument("--scale", type=int, default=1)
    ap.add_argument("--seed", type=int, default=42)
    a = ap.parse_args()
    rng = random.Random(f"{a.seed}-{a.kind}")
    {"a": soul_a, "b": soul_b, "c": soul_c}[a.kind](a.dir, rng, a.scale)


if __name__ == "__main__":
    main()
