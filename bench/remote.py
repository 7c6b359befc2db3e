#!/usr/bin/env python3
"""`selfsame push` beside `restic backup` to the same local S3 server.

  bench/remote.py [--scale N] [--runs R]

Generates soul a (bench/gen_soul.py, 1 GiB in 10,000 files; --scale 10:
100 MiB in 1,000), starts moto (the S3 server the tests use, from their
venv under target/, made when missing) on a free port, and times, R runs
each (median):

  1. into an empty bucket: `selfsame push` of a sealed vault, `selfsame
     seal` + `selfsame push` (restic's backup reads and hashes the soul;
     a push does not, the seal did), and `restic backup` into a fresh
     repository (`restic init` is not timed);
  2. after one file changed: `selfsame seal` + `selfsame push`, and
     `restic backup`.

Writes bench/REMOTE-RESULTS.md (REMOTE-RESULTS-scale-N.md for a scale).
Needs a release build of selfsame (bench/run builds one) and restic.
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "selfsame")
TOKEN = "123456:bench-token-not-a-secret"
ENV = dict(os.environ, TELEGRAM_BOT_TOKEN=TOKEN, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
           RESTIC_PASSWORD="bench", AWS_DEFAULT_REGION="us-east-1")


def sh(cmd, cwd=None):
    subprocess.run(cmd, shell=True, check=True, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL)


def timed(cmd, cwd=None):
    start = time.perf_counter()
    sh(cmd, cwd)
    return time.perf_counter() - start


def moto_venv():
    venv = os.path.join(ROOT, "target", "tmp", "moto-5.2.5")
    if not os.path.exists(os.path.join(venv, "installed")):
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "moto[s3]==5.2.5", "flask", "flask-cors"],
                       check=True)
        open(os.path.join(venv, "installed"), "w").write("moto[s3]==5.2.5")
    return venv


def start_moto():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.Popen([os.path.join(moto_venv(), "bin", "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    return proc, port


def make_bucket(port, name):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/{name}", method="PUT")
    urllib.request.urlopen(req).read()


def change_one(soul):
    first = next(os.path.join(d, fs[0]) for d, _, fs in sorted(os.walk(soul)) if fs)
    with open(first, "a") as f:
        f.write(f"{time.time_ns()}\n")
    time.sleep(0.02)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "selfsame-bench-remote"))
    a = ap.parse_args()
    soul = os.path.join(a.work, f"soul-a-scale-{a.scale}")
    if not os.path.exists(os.path.join(soul, ".generated")):
        shutil.rmtree(soul, ignore_errors=True)
        os.makedirs(soul)
        print(f"generating soul a (scale 1/{a.scale}) …", flush=True)
        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gen_soul.py"), soul, "a", "--scale", str(a.scale)],
                       check=True)
        open(os.path.join(soul, ".generated"), "w").close()
    files = sum(len(fs) for _, _, fs in os.walk(soul)) - 1
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(soul) for f in fs)
    print(f"soul a: {files} files, {size / 2**20:.0f} MiB", flush=True)
    sh(f"find {soul} -type f -print0 | xargs -0 cat >/dev/null")
    load_before = os.getloadavg()
    proc, port = start_moto()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        make_bucket(port, "selfsame-bench")
        make_bucket(port, "restic-bench")
        r = {k: [] for k in ["push_fresh", "seal_push_fresh", "restic_fresh", "seal_push_one", "push_one",
                             "restic_one"]}
        for i in range(a.runs):
            # selfsame: a vault beside a link to the soul, a new prefix each run.
            base = tempfile.mkdtemp(dir=a.work)
            os.symlink(soul, os.path.join(base, "soul"))
            sh(f"{BIN} init soul >/dev/null", base)
            with open(os.path.join(base, ".selfsame", "config.toml"), "a") as f:
                f.write(f'\n[remote]\nurl = "s3://selfsame-bench/run{i}"\nendpoint = "{endpoint}"\n')
            sh(f"{BIN} accept", base)
            r["push_fresh"].append(timed(f"{BIN} push", base))
            # The same, with the seal that reads and hashes the soul: a new
            # vault and prefix.
            base2 = tempfile.mkdtemp(dir=a.work)
            os.symlink(soul, os.path.join(base2, "soul"))
            with open(os.path.join(base2, "config-extra"), "w") as f:
                f.write(f'\n[remote]\nurl = "s3://selfsame-bench/sealed{i}"\nendpoint = "{endpoint}"\n')
            start = time.perf_counter()
            sh(f"{BIN} init soul >/dev/null && cat config-extra >> .selfsame/config.toml && {BIN} accept && {BIN} push",
               base2)
            r["seal_push_fresh"].append(time.perf_counter() - start)
            repo = f"s3:{endpoint}/restic-bench/run{i}"
            sh(f"restic -q -r {repo} init")
            cache = tempfile.mkdtemp(dir=a.work)
            r["restic_fresh"].append(timed(f"restic -q -r {repo} --cache-dir {cache} backup {soul}"))
            # One file changed.
            change_one(soul)
            r["seal_push_one"].append(timed(f"{BIN} seal --reason manual && {BIN} push", base))
            r["restic_one"].append(timed(f"restic -q -r {repo} --cache-dir {cache} backup {soul}"))
            change_one(soul)
            sh(f"{BIN} seal --reason manual", base)
            r["push_one"].append(timed(f"{BIN} push", base))
            for d in (base, base2, cache):
                shutil.rmtree(d, ignore_errors=True)
            print(f"run {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in r.items()), flush=True)
    finally:
        proc.kill()
        proc.wait()
    load_after = os.getloadavg()
    m = {k: statistics.median(v) for k, v in r.items()}
    cpu = subprocess.run("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2", shell=True, capture_output=True,
                         text=True).stdout.strip()
    restic = subprocess.run(["restic", "version"], capture_output=True, text=True).stdout.strip()
    name = "REMOTE-RESULTS.md" if a.scale == 1 else f"REMOTE-RESULTS-scale-{a.scale}.md"
    rows = [
        ("into an empty bucket", "selfsame push (vault sealed before)", m["push_fresh"], m["restic_fresh"]),
        ("into an empty bucket", "selfsame seal + push", m["seal_push_fresh"], m["restic_fresh"]),
        ("one file changed", "selfsame push (sealed before)", m["push_one"], m["restic_one"]),
        ("one file changed", "selfsame seal + push", m["seal_push_one"], m["restic_one"]),
    ]
    out = [
        f"# selfsame push beside restic backup (soul a, scale 1/{a.scale})",
        "",
        f"`bench/remote.py --scale {a.scale} --runs {a.runs}`: soul a, {files} files, {size / 2**20:.0f} MiB; "
        f"both to the same moto 5.2.5 server on 127.0.0.1; {os.cpu_count()} cores, {cpu}; {restic}. "
        f"Medians of {a.runs} runs. Load average (1, 5, 15 min) of the shared machine: "
        f"{' '.join(f'{x:.2f}' for x in load_before)} before, {' '.join(f'{x:.2f}' for x in load_after)} after.",
        "",
        "| case | selfsame | s | restic backup, s | ratio |",
        "|---|---|---|---|---|",
    ]
    for case, what, ours, theirs in rows:
        out.append(f"| {case} | {what} | {ours:.2f} | {theirs:.2f} | {ours / theirs:.2f}× |")
    with open(os.path.join(ROOT, "bench", name), "w") as f:
        f.write("\n".join(out) + "\n")
    print("\n".join(out))


if __name__ == "__main__":
    main()
