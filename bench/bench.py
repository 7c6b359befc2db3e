#!/usr/bin/env python3
"""Driver for bench/run: generate souls, time every tool with hyperfine,
print and write the table of times and ratios."""
import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The binary measured: the release build, or SELFSAME_BIN (another build).
BIN = os.environ.get("SELFSAME_BIN") or os.path.join(ROOT, "target", "release", "selfsame")
TOKEN = "424242:bench-token-not-a-secret"


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, executable="/bin/bash", **kw)


# Warm-up runs per command; none in --quick mode, where every soul is read
# once before its commands anyway.
WARMUP = 1


def hyperfine(name, cmd, runs, prepare=None, cwd=None, warmup=None):
    if warmup is None:
        warmup = WARMUP
    out = tempfile.mktemp(suffix=".json")
    args = ["hyperfine", "--style", "none", "--warmup", str(warmup), "--runs", str(runs), "--export-json", out]
    if prepare:
        args += ["--prepare", prepare]
    args.append(cmd)
    began = time.monotonic()
    subprocess.run(args, check=True, cwd=cwd, stdout=subprocess.DEVNULL)
    took = time.monotonic() - began
    with open(out) as f:
        r = json.load(f)["results"][0]
    os.unlink(out)
    print(f"  {name:<40} {r['median']:8.3f} s   ({len(r['times'])} runs, {took:.0f} s)", flush=True)
    return r["median"]


def alternate(name, cmds, rounds, cwd=None, warmup=None):
    """Times several commands in turn, round after round, so that each ratio
    between them compares runs minutes apart by nothing: this machine's
    speed drifts by a fifth over minutes. `cmds` maps a key to (label, argvs,
    prepare): argvs are started together and waited for (a command of two
    workers); prepare, if any, runs untimed before each run. Returns the
    median of each key, in seconds."""
    if warmup is None:
        warmup = WARMUP
    times = {key: [] for key in cmds}
    began = time.monotonic()
    for round_ in range(warmup + rounds):
        for key, (_, argvs, prepare) in cmds.items():
            if prepare:
                prepare()
            t = time.perf_counter()
            procs = [subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL) for argv in argvs]
            codes = [p.wait() for p in procs]
            took = time.perf_counter() - t
            if any(codes):
                raise SystemExit(f"{name}: {cmds[key][0]} failed with {codes}")
            if round_ >= warmup:
                times[key].append(took)
    took = time.monotonic() - began
    medians = {key: statistics.median(v) for key, v in times.items()}
    print(f"  {name}, alternating ({rounds} rounds, {took:.0f} s):", flush=True)
    for key, (label, _, _) in cmds.items():
        print(f"    {label:<38} {medians[key]:8.3f} s", flush=True)
    return medians


def halves(soul, base):
    """Splits every file of `soul` between two lists by bytes (biggest
    first, each to the lighter list), written NUL-separated under `base`;
    returns their paths."""
    files = []
    for d, _, fs in os.walk(soul):
        for f in fs:
            path = os.path.join(d, f)
            files.append((os.lstat(path).st_size, path))
    files.sort(reverse=True)
    lists = [[0, []], [0, []]]
    for size, path in files:
        lighter = min(lists, key=lambda l: l[0])
        lighter[0] += size
        lighter[1].append(path)
    listings = []
    for i, (_, paths) in enumerate(lists):
        listing = os.path.join(base, f"files-{i}")
        with open(listing, "wb") as f:
            f.write(b"".join(os.fsencode(p) + b"\0" for p in paths))
        listings.append(listing)
    return listings


def two_workers(listings, tool):
    """Two argvs that run `tool` over the files of each of `listings`."""
    return [["xargs", "-0", "-r", "-a", listing] + tool for listing in listings]


# ext4 without a journal (this machine's root filesystem) skips inodes freed
# in the last minute, or the last six if their inode-table block is dirty
# again, when it allocates new ones (recently_deleted() in fs/ext4/ialloc.c):
# after `rm -rf` of a store of 10,000 files, every new file pays for scanning
# past them. A tool that stores one file per object (selfsame, git) would pay
# for the bench's own clean-up. So nothing is deleted while the many-file
# souls are measured: each run's store is moved to a trash directory, which
# is emptied before the one-file soul c and at the end. Soul c's stores are
# few files of gigabytes each: they are deleted as soon as they are done
# with, or the disk would have to hold a dozen copies of its 2 GiB.
RECENTLY_DELETED_S = 361


def fresh(name, cmd, runs, store, cwd, trash, then="", delete=False):
    """Times `cmd` against a new, empty `store`, each run's store moved
    aside (or deleted, for a soul of few files)."""
    prepare = f"rm -rf {store}" if delete else f"mv {store} {trash}/$(date +%s%N) 2>/dev/null; true"
    if then:
        prepare += f" && {then}"
    # The soul is warm already (see bench_soul); a warm-up run would only
    # be one more store written.
    return hyperfine(name, cmd, runs, prepare=prepare, cwd=cwd, warmup=0)


def clear_trash(trash):
    """Deletes what earlier runs moved aside (and what a deletion in the
    background left); true if there was any."""
    parent = os.path.dirname(trash)
    # On a fresh machine nothing of the work directory exists yet.
    os.makedirs(parent, exist_ok=True)
    leftovers = [os.path.join(parent, n) for n in os.listdir(parent) if n.startswith("trash.")]
    found = bool(leftovers) or (os.path.isdir(trash) and bool(os.listdir(trash)))
    if found:
        for path in leftovers + [trash]:
            shutil.rmtree(path, ignore_errors=True)
        sh("sync")
    os.makedirs(trash, exist_ok=True)
    return found


def clear_trash_in_background(trash):
    """Hands the trash to an `rm -rf` that outlives the bench: deleting tens
    of thousands of files takes this machine about 2 s per 10,000."""
    moved = f"{trash}.{time.time_ns()}"
    os.rename(trash, moved)
    subprocess.Popen(["rm", "-rf", moved], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"emptying {moved} in the background", flush=True)


def peak_rss_mib(cmd, cwd):
    r = subprocess.run(["/usr/bin/time", "-v", "bash", "-c", cmd], cwd=cwd, capture_output=True, text=True)
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
    return int(m.group(1)) / 1024 if m else float("nan")


def sha256_limit(seconds):
    """Single-core OpenSSL SHA-256 throughput at 16 KiB blocks, bytes/s."""
    r = subprocess.run(["openssl", "speed", "-evp", "sha256", "-bytes", "16384", "-seconds", str(seconds)],
                       capture_output=True, text=True)
    line = [l for l in r.stdout.splitlines() if l.lower().startswith("sha256")][-1]
    return float(line.split()[-1].rstrip("k")) * 1000


def soul_size(path):
    total = files = 0
    for d, _, fs in os.walk(path):
        for f in fs:
            total += os.lstat(os.path.join(d, f)).st_size
            files += 1
    return files, total


def prepare_soul(kind, work, scale, trash):
    """Generates soul `kind` at `scale` under `work` unless it is there
    already; returns its base directory, soul directory, files and bytes."""
    base = os.path.join(work, kind)
    soul = os.path.join(base, "soul")
    stamp = os.path.join(base, f"generated-scale-{scale}")
    if not os.path.exists(stamp):
        if os.path.exists(base):
            os.rename(base, os.path.join(trash, f"{kind}-{time.time_ns()}"))
        os.makedirs(soul)
        print(f"generating soul {kind} (scale 1/{scale}) …", flush=True)
        sh(f"python3 {ROOT}/bench/gen_soul.py {soul} {kind} --scale {scale}")
        open(stamp, "w").close()
    files, size = soul_size(soul)
    print(f"soul {kind}: {files} files, {size / 2**20:.0f} MiB", flush=True)
    return base, soul, files, size


def bench_soul(kind, work, scale, runs, many, trash, results):
    base, soul, files, size = prepare_soul(kind, work, scale, trash)
    sh("sync")
    # Warm page cache for every command, the first one included.
    sh(f"find {soul} -type f -print0 | xargs -0 cat >/dev/null")
    vault = os.path.join(base, ".selfsame")
    gitdir = os.path.join(base, "git")
    repo = os.path.join(base, "restic")
    git = f"git --git-dir={gitdir} --work-tree={soul}"
    r = {"files": files, "bytes": size}
    # A soul of few files creates few: deleting its stores costs the next
    # store nothing, and at full size each of them holds gigabytes.
    few = files < 1000 and scale == 1
    # Moves a store out of the way: into the trash, or gone for a soul of few files.
    away = (lambda path, name: f"rm -rf {path}") if few else (lambda path, name: f"mv {path} {trash}/{name}")
    if few:
        # A good time to free the disk, its own old stores first.
        for store in (vault, gitdir, repo):
            if os.path.exists(store):
                os.rename(store, os.path.join(trash, f"{kind}-{os.path.basename(store)}"))
        clear_trash(trash)
    # selfsame
    r["seal_fresh"] = fresh("selfsame seal (fresh vault)", f"{BIN} init soul", runs, vault, base, trash, delete=few)
    if not os.path.isdir(vault):
        sh(f"cd {base} && {BIN} init soul >/dev/null")
    first = next(os.path.join(d, fs[0]) for d, _, fs in sorted(os.walk(soul)) if fs)

    def change_one():
        with open(first, "a") as f:
            f.write(f"{time.time_ns()}\n")
        # Past the file's clock tick, so that the seal's record of it is not
        # racy and the unchanged seal after it has nothing to read again.
        time.sleep(0.02)

    # On c every changed run hashes the 2 GiB file again: few. Elsewhere
    # twice the usual rounds: this ratio is of two medians 50 ms apart, on a
    # machine whose runs of the same seal spread by 70 ms.
    r.update(alternate("seal", {
        "seal_unchanged": ("selfsame seal (unchanged)", [[BIN, "seal"]], None),
        "seal_one_changed": ("selfsame seal (one file changed)", [[BIN, "seal"]], change_one),
    }, runs if kind == "c" else 2 * many, cwd=base))
    r["seal_heartbeat"] = hyperfine("selfsame seal --reason heartbeat (unch.)", f"{BIN} seal --reason heartbeat",
                                    many, cwd=base)
    # Wake against hashing and reading the same files with two workers,
    # round after round, so that all three meet the VM in the same state.
    listings = halves(soul, base)
    r.update(alternate("wake", {
        "wake": ("selfsame wake (full re-hash)", [[BIN, "wake"]], None),
        "openssl_dgst": ("openssl dgst -sha256, 2 workers", two_workers(listings, ["openssl", "dgst", "-sha256"]),
                         None),
        "cat": ("cat >/dev/null, 2 workers", two_workers(listings, ["cat"]), None),
    }, many if kind != "c" else runs, cwd=base))
    r["wake_fast"] = hyperfine("selfsame wake --fast", f"{BIN} wake --fast", many, cwd=base)
    r["verify_read_data"] = hyperfine("selfsame verify --read-data", f"{BIN} verify --read-data", runs, cwd=base)
    r["rss_seal_fresh"] = peak_rss_mib(f"{away(vault, kind + '-rss')} && {BIN} init soul >/dev/null", base)
    r["rss_seal"] = peak_rss_mib(f"{BIN} seal >/dev/null", base)
    r["rss_wake"] = peak_rss_mib(f"{BIN} wake >/dev/null", base)
    # An identical copy (new inodes and mtimes, same bytes): every file is
    # re-hashed, but its objects are already stored, so nothing new is written.
    sh(f"cd {base} && cp -a soul soul.copy && mv soul soul.orig && mv soul.copy soul")
    out = subprocess.run([BIN, "--json", "seal", "--reason", "manual"], cwd=base, capture_output=True, text=True)
    sh(f"cd {base} && {away('soul', kind + '-soul-copy')} && mv soul.orig soul && {BIN} seal --reason manual >/dev/null")
    r["reseal_new_bytes"] = json.loads(out.stdout).get("new_bytes")
    # git
    r["git_fresh"] = fresh("git add -A && git write-tree (fresh)",
                           f"{git} init -q && {git} add -A && {git} write-tree >/dev/null", runs,
                           gitdir, base, trash, delete=few)
    r["git_unchanged"] = hyperfine("git add -A && git write-tree (unch.)",
                                   f"{git} add -A && {git} write-tree >/dev/null", runs)
    r["git_status"] = hyperfine("git status", f"{git} status --porcelain >/dev/null", many)
    # restic
    cache = os.path.join(base, "restic-cache")
    env = f"RESTIC_PASSWORD=bench RESTIC_CACHE_DIR={cache}"
    # Every fresh run starts from a copy of one empty repository (`restic
    # init` derives a key with scrypt, two seconds here), with no cache.
    empty = os.path.join(base, "restic-empty")
    if not os.path.isdir(empty):
        sh(f"{env} restic -q -r {empty} init >/dev/null")
    r["restic_fresh"] = fresh("restic backup (fresh)", f"{env} restic -q -r {repo} backup soul >/dev/null", runs,
                              repo, base, trash,
                              then=f"{{ mv {cache} {trash}/$(date +%s%N)-cache 2>/dev/null; true; }} "
                                   f"&& cp -a {empty} {repo}", delete=few)
    r["restic_unchanged"] = hyperfine("restic backup (unchanged)",
                                      f"{env} restic -q -r {repo} backup soul >/dev/null", runs, cwd=base)
    # plain hashing
    r["sha256sum"] = hyperfine("sha256sum, 2 workers",
                               "find . -type f -print0 | xargs -0 -P2 -n 64 sha256sum >/dev/null", runs, cwd=soul)
    results[kind] = r


def ratio(a, b):
    return f"{a / b:.2f}×" if b else "n/a"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="10x smaller souls, fewer runs")
    ap.add_argument("--runs", type=int)
    ap.add_argument("--souls", default="abc")
    ap.add_argument("--work", default=os.environ.get("BENCH_DIR", os.path.join(tempfile.gettempdir(), "selfsame-bench")))
    ap.add_argument("--scale", type=int, help="divide soul sizes by N (default 10 with --quick, else 1)")
    ap.add_argument("--setup-only", action="store_true",
                    help="create the work directory and generate the souls, then stop (needs python3 alone)")
    a = ap.parse_args()
    scale = a.scale or (10 if a.quick else 1)
    runs = a.runs or (1 if a.quick else 3)
    work = os.path.join(a.work, "quick") if a.quick else a.work
    trash = os.path.join(work, "trash")
    if a.setup_only:
        clear_trash(trash)
        for kind in a.souls:
            prepare_soul(kind, work, scale, trash)
        clear_trash(trash)
        print(f"set up in {work}")
        return 0
    os.environ["TELEGRAM_BOT_TOKEN"] = TOKEN
    os.environ["SELFSAME_LOCK_WAIT"] = "60s"
    cores = os.cpu_count()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    global WARMUP
    if a.quick:
        WARMUP = 0
    limit1 = sha256_limit(1 if a.quick else 3)
    limit = limit1 * cores
    print(f"{cores} cores, {cpu}; OpenSSL SHA-256: {limit1 / 1e6:.0f} MB/s per core, {limit / 1e6:.0f} MB/s all cores")
    # Commands of a second or less run more often: their medians carry the
    # ratios, and this machine's timings wander by tens of milliseconds.
    many = max(runs, 3 if a.quick else 10)
    if clear_trash(trash) and not a.quick:
        print(f"deleted the stores an earlier bench left; waiting {RECENTLY_DELETED_S} s "
              "for the filesystem to stop skipping their inodes …", flush=True)
        time.sleep(RECENTLY_DELETED_S)
    results = {}
    for kind in a.souls:
        bench_soul(kind, work, scale, runs, many, trash, results)
    if a.quick:
        clear_trash_in_background(trash)
    else:
        clear_trash(trash)

    lines = []
    lines.append(f"# Benchmark results{' (--quick, 1/10 size)' if a.quick else ''}\n")
    lines.append(f"Machine: {cores} cores, {cpu}. Medians of {runs} runs ({many} for the commands of about a "
                 f"second, {2 * many} for seal unchanged and one changed, {runs} for the commands on c that "
                 f"store or hash 2 GiB), measured side by side in one "
                 f"`bench/run` invocation, warm page cache (every soul read once first; every command but the "
                 f"fresh stores has a warm-up run). Two groups run alternately, round after round, so that "
                 f"their ratios compare runs made at the same moment: seal unchanged with seal after one "
                 f"changed file; wake with `openssl dgst` and `cat` over the same files. Fresh stores: see "
                 f"bench/README.md on the stores of earlier runs.\n")
    lines.append(f"SHA-256 limit of the machine, measured as hashing the files: `openssl dgst -sha256` "
                 f"over the soul's files, two workers each given half the bytes (row `openssl dgst`). For "
                 f"comparison, OpenSSL's in-cache figure (`openssl speed -evp sha256 -bytes 16384`): "
                 f"{limit1 / 1e6:.0f} MB/s per core × {cores} = {limit / 1e6:.0f} MB/s.\n")
    lines.append("| soul | files | MiB | command | median s | MB/s |")
    lines.append("|---|---|---|---|---|---|")
    names = [("seal_fresh", "selfsame seal, fresh vault"), ("seal_unchanged", "selfsame seal, unchanged"),
             ("seal_heartbeat", "selfsame seal --reason heartbeat, unchanged"),
             ("seal_one_changed", "selfsame seal, one file changed"), ("wake", "selfsame wake (full re-hash)"),
             ("wake_fast", "selfsame wake --fast"), ("verify_read_data", "selfsame verify --read-data"),
             ("git_fresh", "git add -A && write-tree, fresh"), ("git_unchanged", "git add -A && write-tree, unchanged"),
             ("git_status", "git status"), ("restic_fresh", "restic backup, fresh"),
             ("restic_unchanged", "restic backup, unchanged"), ("sha256sum", "sha256sum, 2 workers"),
             ("openssl_dgst", "openssl dgst -sha256, 2 workers"), ("cat", "cat >/dev/null, 2 workers")]
    for kind, r in results.items():
        for key, label in names:
            t = r[key]
            lines.append(f"| {kind} | {r['files']} | {r['bytes'] / 2**20:.0f} | {label} | {t:.3f} | {r['bytes'] / t / 1e6:.0f} |")
    lines.append("\n## Ratios\n")
    lines.append("| soul | ratio | value | target |")
    lines.append("|---|---|---|---|")
    for kind, r in results.items():
        wake_tp = r["bytes"] / r["wake"]
        rows = [
            ("wake throughput ÷ SHA-256 limit: openssl dgst over the files, 2 workers",
             f"{r['openssl_dgst'] / r['wake'] * 100:.0f} %", "≥ 80 % on a"),
            ("wake throughput ÷ OpenSSL speed × cores (one 16 KiB buffer, in cache)",
             f"{wake_tp / limit * 100:.0f} %", ""),
            ("wake throughput ÷ reading the files alone (cat, 2 workers)", f"{r['cat'] / r['wake'] * 100:.0f} %", ""),
            ("seal unchanged ÷ git status", ratio(r["seal_unchanged"], r["git_status"]), "≤ 1.0× on b"),
            ("seal --reason heartbeat unchanged ÷ git status", ratio(r["seal_heartbeat"], r["git_status"]), ""),
            ("seal one changed ÷ seal unchanged", ratio(r["seal_one_changed"], r["seal_unchanged"]), "≤ 1.2× on b"),
            ("seal fresh ÷ restic backup fresh", ratio(r["seal_fresh"], r["restic_fresh"]), "< 1 on a"),
            ("seal fresh ÷ git add+write-tree fresh", ratio(r["seal_fresh"], r["git_fresh"]), "< 1 on a"),
            ("wake ÷ sha256sum (2 workers)", ratio(r["wake"], r["sha256sum"]), ""),
            ("peak RSS seal fresh / seal / wake", f"{r['rss_seal_fresh']:.0f} / {r['rss_seal']:.0f} / {r['rss_wake']:.0f} MiB", "< 64 MiB on c"),
            ("new object bytes when re-sealing an identical soul", str(r["reseal_new_bytes"]), "0"),
        ]
        for label, value, target in rows:
            lines.append(f"| {kind} | {label} | {value} | {target} |")
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    out = os.path.join(ROOT, "bench", "RESULTS-quick.md" if a.quick else "RESULTS.md")
    with open(out, "w") as f:
        f.write(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
