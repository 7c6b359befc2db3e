#!/usr/bin/env python3
"""Driver for bench/life: a day in an agent's life.

Generates an OpenClaw-shaped agent workspace from a seed (SOUL.md,
IDENTITY.md, AGENTS.md, USER.md, MEMORY.md, skills/, memory/YYYY-MM-DD.md,
sessions/*.jsonl and a SQLite memory index), then runs STEPS steps of five
simulated minutes each. Every step changes the workspace as an agent's
heartbeat would (an entry in today's memory file, turns appended to the
current session, 0.05 % of the index's rows re-embedded and 100 rows
inserted, committed and closed), then seals it with selfsame and backs it
up with restic, side by side, each timed:

  keep-all   `selfsame seal --reason heartbeat` into a vault that keeps
             everything, and `restic backup` into a repository of its own
  retained   the same, each followed by forgetting with keep-last 12,
             keep-hourly 24 and pruning (`selfsame forget` + `selfsame
             prune`, `restic forget --prune`); the selfsame half is skipped
             when the binary has no `forget` command

Simulated time reaches both tools: `SELFSAME_NOW` for selfsame (its testing
hook), `restic backup --time` for restic. Every REPORT_EVERY steps it
reports disk usage of the stores and the median times of those steps, and
at the end writes bench/LIFE.md (LIFE-quick.md for --quick) with the goals
of issue 15 met or missed.

Python standard library only.
"""
import argparse
import array
import calendar
import csv
import hashlib
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The binary measured: the release build, or SELFSAME_BIN (another build).
BIN = os.environ.get("SELFSAME_BIN") or os.path.join(ROOT, "target", "release", "selfsame")
TOKEN = "424242:bench-token-not-a-secret"
STEP_S = 300  # a heartbeat every five minutes
START = calendar.timegm((2026, 6, 1, 22, 30, 0))  # simulated 2026-06-01 22:30 UTC: a new day at step 18
HISTORY_DAYS = 30  # daily memory files the agent already has
DIM = 384  # embedding dimensions, float32
UPDATE_FRACTION = 0.0005  # rows re-embedded each step
INSERTS_PER_100_MIB = 100  # rows inserted each step, per 100 MiB of index
KEEP = ["--keep-last", "12", "--keep-hourly", "24"]
MIB = 1 << 20

WORDS = """
the a an and or but so because while when after before during until since
agent user owner bot memory note task reminder message channel session day
week morning evening plan idea question answer summary detail context file
project meeting deadline weather train ticket invoice recipe garden book
music photo travel budget doctor birthday gift email calendar list draft
search result source link price order package delivery update change fix
asked wants prefers likes dislikes mentioned confirmed scheduled moved
cancelled finished started checked found sent replied wrote read learned
remembered noticed suggested decided agreed booked paid called opened
closed saved shared tomorrow today yesterday later soon again always never
often usually quickly carefully quietly early late new old small large
important urgent simple quiet long short first last next previous other
same different good better best clear open private shared local remote
with without about from into onto over under between for to of in on at by
""".split()


def sentence(rng, lo=6, hi=18):
    s = " ".join(rng.choices(WORDS, k=rng.randint(lo, hi)))
    return s[0].upper() + s[1:] + "."


def paragraph(rng, lo=2, hi=6):
    return " ".join(sentence(rng) for _ in range(rng.randint(lo, hi)))


def text_of(rng, size):
    """Prose of about `size` characters."""
    parts, n = [], 0
    while n < size:
        p = paragraph(rng)
        parts.append(p)
        n += len(p) + 2
    return "\n\n".join(parts)


def iso(t, ms=False):
    s = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
    return s + (".000Z" if ms else "Z")


def day_of(t):
    return time.strftime("%Y-%m-%d", time.gmtime(t))


def hhmm(t):
    return time.strftime("%H:%M", time.gmtime(t))


def hex_id(rng, n=8):
    return f"{rng.getrandbits(4 * n):0{n}x}"


def session_id(rng):
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def write(path, text, mode="w"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as f:
        f.write(text)


# --- the workspace -----------------------------------------------------------

def embedding(rng):
    g = rng.gauss
    return array.array("f", [g(0.0, 0.051) for _ in range(DIM)]).tobytes()


SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE files (path TEXT PRIMARY KEY, source TEXT NOT NULL, hash TEXT NOT NULL,
                    mtime INTEGER NOT NULL, size INTEGER NOT NULL);
CREATE TABLE chunks (id INTEGER PRIMARY KEY, path TEXT NOT NULL, source TEXT NOT NULL,
                     start_line INTEGER NOT NULL, end_line INTEGER NOT NULL, hash TEXT NOT NULL,
                     model TEXT NOT NULL, text TEXT NOT NULL, embedding BLOB NOT NULL,
                     created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE INDEX chunks_path ON chunks (path);
CREATE INDEX chunks_updated ON chunks (updated_at);
"""
MODEL = "text-embedding-3-small@384"


def chunk_row(rng, path, source, t):
    text = text_of(rng, rng.randint(200, 1600))
    line = rng.randint(1, 400)
    return (path, source, line, line + text.count("\n") + rng.randint(1, 30),
            hashlib.sha256(text.encode()).hexdigest(), MODEL, text, embedding(rng), t, t)


INSERT = ("INSERT INTO chunks (path, source, start_line, end_line, hash, model, text, embedding, "
          "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def generate_index(path, rng, target_bytes, paths):
    """A memory index of about `target_bytes`: chunks of the agent's memory
    and session files, each with a 384-float32 embedding."""
    con = sqlite3.connect(path)
    con.executescript(SCHEMA)
    con.execute("INSERT INTO meta VALUES ('model', ?), ('dims', ?)", (MODEL, str(DIM)))
    size = 0
    while size < target_bytes:
        rows = []
        for _ in range(200):
            p, source, t = rng.choice(paths)
            rows.append(chunk_row(rng, p, source, t + rng.randint(0, 86_399)))
        con.executemany(INSERT, rows)
        con.commit()
        pages, page_size = con.execute("PRAGMA page_count").fetchone()[0], con.execute("PRAGMA page_size").fetchone()[0]
        size = pages * page_size
    for p, source, t in paths:
        con.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)",
                    (p, source, hex_id(rng, 64), t, rng.randint(1000, 400_000)))
    con.commit()
    con.close()


def session_turns(rng, t, parent):
    """A few JSONL lines of one conversation turn; returns (text, last id)."""
    lines = []

    def add(message):
        nonlocal parent
        i = hex_id(rng)
        lines.append(json.dumps({"type": "message", "id": i, "parentId": parent, "timestamp": iso(t, True),
                                 "message": message}, separators=(",", ":")))
        parent = i

    for _ in range(rng.randint(1, 2)):
        add({"role": "user", "content": [{"type": "text", "text": paragraph(rng, 1, 3)}], "timestamp": t * 1000})
        if rng.random() < 0.5:
            call = "call_" + hex_id(rng, 12)
            tool = rng.choice(["memory_search", "web_fetch", "read", "exec", "calendar"])
            add({"role": "assistant", "content": [{"type": "toolCall", "id": call, "name": tool,
                                                   "arguments": {"query": sentence(rng, 3, 8)}}],
                 "model": "gpt-5", "usage": {"input": rng.randint(2000, 40000), "output": rng.randint(20, 200)}})
            add({"role": "toolResult", "toolCallId": call, "toolName": tool,
                 "content": [{"type": "text", "text": text_of(rng, rng.randint(300, 4000))}]})
        add({"role": "assistant", "content": [{"type": "text", "text": paragraph(rng, 1, 5)}],
             "model": "gpt-5", "usage": {"input": rng.randint(2000, 40000), "output": rng.randint(20, 600)}})
    return "\n".join(lines) + "\n", parent


def daily_entry(rng, t):
    bullets = "".join(f"- {sentence(rng)}\n" for _ in range(rng.randint(1, 3)))
    return f"\n## {hhmm(t)}\n{bullets}"


def generate(ws, rng, db_bytes, sessions):
    """The agent's workspace as it is at START, after HISTORY_DAYS days."""
    write(os.path.join(ws, "SOUL.md"),
          "# SOUL.md - Who You Are\n\n" + "\n\n".join(f"## {sentence(rng, 2, 4)[:-1]}\n\n{text_of(rng, 700)}"
                                                       for _ in range(4)) + "\n")
    write(os.path.join(ws, "IDENTITY.md"),
          "# IDENTITY.md - Who Am I?\n\n- **Name:** Wren\n- **Creature:** a familiar that lives in the terminal\n"
          "- **Vibe:** calm, dry, precise\n- **Emoji:** 🪶\n- **Avatar:** avatars/wren.png\n")
    write(os.path.join(ws, "AGENTS.md"),
          "# AGENTS.md - Your Workspace\n\n" + "\n\n".join(f"## {sentence(rng, 2, 4)[:-1]}\n\n{text_of(rng, 1200)}"
                                                          for _ in range(6)) + "\n")
    write(os.path.join(ws, "USER.md"), "# USER.md - About Your Human\n\n" + text_of(rng, 1500) + "\n")
    write(os.path.join(ws, "MEMORY.md"), "# MEMORY.md\n\n" + "".join(f"- {sentence(rng)}\n" for _ in range(120)))
    for skill in ("weather", "shopping-list", "calendar"):
        write(os.path.join(ws, "skills", skill, "SKILL.md"),
              f"---\nname: {skill}\ndescription: {sentence(rng)}\n---\n\n{text_of(rng, 2500)}\n")
    paths = []
    for d in range(HISTORY_DAYS, 0, -1):
        t0 = START - d * 86_400
        day = day_of(t0)
        text = f"# {day}\n"
        t = t0 - (t0 % 86_400) + 7 * 3600
        while t < t0 - (t0 % 86_400) + 23 * 3600:
            text += daily_entry(rng, t)
            t += rng.randint(5, 60) * 60
        write(os.path.join(ws, "memory", f"{day}.md"), text)
        paths.append((f"memory/{day}.md", "memory", t0))
    index = {}
    for s in range(sessions):
        sid = session_id(rng)
        t = START - (sessions - s) * (HISTORY_DAYS * 86_400 // sessions)
        header = json.dumps({"type": "session", "version": 3, "id": sid, "timestamp": iso(t, True),
                             "cwd": "~/.openclaw/workspace"}, separators=(",", ":")) + "\n"
        body, parent = [header], None
        for _ in range(rng.randint(60, 180)):
            text, parent = session_turns(rng, t, parent)
            body.append(text)
            t += rng.randint(1, 20) * 60
        write(os.path.join(ws, "sessions", f"{sid}.jsonl"), "".join(body))
        index[f"agent:main:{s}"] = {"sessionId": sid, "updatedAt": t * 1000}
        paths.append((f"sessions/{sid}.jsonl", "sessions", t))
    write(os.path.join(ws, "sessions", "sessions.json"), json.dumps(index, indent=2) + "\n")
    generate_index(os.path.join(ws, "memory.sqlite"), rng, db_bytes, paths)


class Agent:
    """The agent's heartbeats: what each step changes in the workspace."""

    def __init__(self, ws, rng, inserts):
        self.ws, self.rng, self.inserts = ws, rng, inserts
        con = sqlite3.connect(os.path.join(ws, "memory.sqlite"))
        self.rows = con.execute("SELECT max(id) FROM chunks").fetchone()[0]
        con.close()
        self.session = None
        self.parent = None

    def step(self, i, t):
        rng, ws = self.rng, self.ws
        day = day_of(t)
        daily = os.path.join(ws, "memory", f"{day}.md")
        if not os.path.exists(daily):
            write(daily, f"# {day}\n")
        write(daily, daily_entry(rng, t), "a")
        # A new conversation every four hours (48 steps), turns every step.
        if self.session is None or i % 48 == 1:
            self.session = session_id(rng)
            self.parent = None
            write(os.path.join(ws, "sessions", f"{self.session}.jsonl"),
                  json.dumps({"type": "session", "version": 3, "id": self.session, "timestamp": iso(t, True),
                              "cwd": "~/.openclaw/workspace"}, separators=(",", ":")) + "\n")
        text, self.parent = session_turns(rng, t, self.parent)
        write(os.path.join(ws, "sessions", f"{self.session}.jsonl"), text, "a")
        store = os.path.join(ws, "sessions", "sessions.json")
        with open(store) as f:
            index = json.load(f)
        index["agent:main:main"] = {"sessionId": self.session, "updatedAt": t * 1000}
        write(store, json.dumps(index, indent=2) + "\n")
        # Long-term memory: a line every two hours.
        if i % 24 == 0:
            write(os.path.join(ws, "MEMORY.md"), f"- {sentence(rng)}\n", "a")
        # The memory index: re-embed 0.05 % of the chunks, insert 100 new
        # ones (100 per 100 MiB of index), commit and close (a consistent state before the seal).
        con = sqlite3.connect(os.path.join(ws, "memory.sqlite"))
        for rowid in rng.sample(range(1, self.rows + 1), max(1, round(self.rows * UPDATE_FRACTION))):
            text = text_of(rng, rng.randint(200, 1600))
            con.execute("UPDATE chunks SET text = ?, hash = ?, embedding = ?, updated_at = ? WHERE id = ?",
                        (text, hashlib.sha256(text.encode()).hexdigest(), embedding(rng), t, rowid))
        con.executemany(INSERT, [chunk_row(rng, f"memory/{day}.md", "memory", t) for _ in range(self.inserts)])
        con.execute("INSERT OR REPLACE INTO files VALUES (?, 'memory', ?, ?, ?)",
                    (f"memory/{day}.md", hex_id(rng, 64), t, os.path.getsize(daily)))
        con.commit()
        con.close()
        self.rows += self.inserts


# --- measuring ---------------------------------------------------------------

class Stop(Exception):
    """Ends the run early; the report says why."""


def run(argv, env, cwd, what):
    t = time.perf_counter()
    r = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - t
    if r.returncode != 0:
        raise Stop(f"{what} failed with exit code {r.returncode}: {(r.stderr or r.stdout).strip()[:500]}")
    return took, r.stdout


def du(path):
    """Disk usage in bytes: the blocks allocated, as `du -s -B1` counts."""
    if not os.path.exists(path):
        return None
    out = subprocess.run(["du", "-s", "-B1", path], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def tree_bytes(path):
    total = files = 0
    for d, _, fs in os.walk(path):
        for f in fs:
            total += os.lstat(os.path.join(d, f)).st_size
            files += 1
    return files, total


def json_field(out, key, last_type=None):
    """`key` of the last JSON line of `out` (of message_type `last_type`)."""
    for line in reversed(out.strip().splitlines()):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if last_type and obj.get("message_type") != last_type:
            continue
        if isinstance(obj.get("seal"), dict):
            obj = obj["seal"]
        return obj.get(key)
    return None


def has_command(name):
    return subprocess.run([BIN, name, "--help"], capture_output=True).returncode == 0


def mib(n):
    if n is None:
        return "—"
    x = n / MIB
    return f"{x:,.1f}" if x < 100 else f"{x:,.0f}"


def secs(x):
    return "—" if x is None else f"{x:.3f}"


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(a, b):
    return f"{a / b:.2f}×" if a is not None and b else "—"


def fmt_bytes(n):
    if n is None:
        return "—"
    return f"{n / 1e6:,.1f} MB" if n >= 1e5 else f"{n / 1e3:,.1f} kB"


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.processor())
    mem = next((int(l.split()[1]) * 1024 for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
    return os.cpu_count(), cpu, mem


def code_commit():
    """The last commit that changed the code measured (crates/, Cargo.*),
    and whether the work tree holds uncommitted changes to it."""
    h = subprocess.run(["git", "log", "-1", "--format=%h", "--", "crates", "Cargo.toml", "Cargo.lock"],
                       cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "crates", "Cargo.toml", "Cargo.lock"],
                           cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return h + (" with uncommitted changes" if dirty else "") if h else "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10 MiB index, 24 steps, reports every 6")
    ap.add_argument("--steps", type=int, help="heartbeats (default 288, a day; 24 with --quick)")
    ap.add_argument("--db-mib", type=int, help="size of the SQLite memory index (default 100; 10 with --quick)")
    ap.add_argument("--report-every", type=int, help="steps between report rows (default 48; 6 with --quick)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--min-free-gib", type=float, default=5.0,
                    help="stop early when the disk holding the stores has less free space (default 5)")
    ap.add_argument("--keep", action="store_true", help="leave the vaults and repositories in place at the end")
    ap.add_argument("--out", help="the report (default bench/LIFE.md; bench/LIFE-quick.md with --quick)")
    ap.add_argument("--work", default=os.environ.get("BENCH_DIR", os.path.join(tempfile.gettempdir(), "selfsame-bench")))
    a = ap.parse_args()
    steps = a.steps or (24 if a.quick else 288)
    db_mib = a.db_mib or (10 if a.quick else 100)
    every = a.report_every or (6 if a.quick else 48)
    inserts = max(1, round(INSERTS_PER_100_MIB * db_mib / 100))
    sessions = 3 if a.quick else 30
    out_path = a.out or os.path.join(ROOT, "bench", "LIFE-quick.md" if a.quick else "LIFE.md")
    work = os.path.join(a.work, "quick" if a.quick else "", "life")
    began = time.monotonic()
    cores, cpu, mem = machine()
    load_start = open("/proc/loadavg").read().split()[:3]
    print(f"{cores} cores, {cpu}; load {' '.join(load_start)}", flush=True)

    # The workspace at the start, generated once per seed and size.
    initial = os.path.join(work, "initial")
    stamp = os.path.join(work, f"generated-seed-{a.seed}-db-{db_mib}-sessions-{sessions}")
    if not os.path.exists(stamp):
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(initial)
        print(f"generating the workspace ({db_mib} MiB index) …", flush=True)
        t = time.monotonic()
        generate(initial, random.Random(f"{a.seed}-life"), db_mib * MIB, sessions)
        open(stamp, "w").close()
        print(f"  {time.monotonic() - t:.0f} s", flush=True)
    stores = os.path.join(work, "run")
    shutil.rmtree(stores, ignore_errors=True)
    os.makedirs(stores)
    ws = os.path.join(stores, "workspace")
    subprocess.run(["cp", "-a", initial, ws], check=True)
    files0, soul0 = tree_bytes(ws)
    print(f"workspace: {files0} files, {mib(soul0)} MiB (index {mib(os.path.getsize(os.path.join(ws, 'memory.sqlite')))} MiB)",
          flush=True)

    base_env = dict(os.environ, TELEGRAM_BOT_TOKEN=TOKEN, RESTIC_PASSWORD="bench", TZ="UTC",
                    SELFSAME_LOCK_WAIT="60s")
    base_env.pop("SELFSAME_VAULT", None)
    with_forget = has_command("forget")
    with_prune = has_command("prune")
    if with_forget:
        retention_note = ("selfsame forget " + " ".join(KEEP) + (" then selfsame prune" if with_prune else
                          " (this selfsame has no prune command)"))
    else:
        retention_note = "skipped: this selfsame has no `forget` command (`selfsame forget --help` fails)"
    print(f"retained selfsame vault: {retention_note}", flush=True)

    vault_dirs = {"all": os.path.join(stores, "keep-all"), "ret": os.path.join(stores, "retained")}
    vaults = {k: os.path.join(d, ".selfsame") for k, d in vault_dirs.items()}
    repos = {"all": os.path.join(stores, "restic-keep-all"), "ret": os.path.join(stores, "restic-retained")}
    caches = {k: os.path.join(stores, f"restic-cache-{k}") for k in repos}
    variants = ["all", "ret"] if with_forget else ["all"]

    def env_at(t, cache=None):
        e = dict(base_env, SELFSAME_NOW=str(t))
        if cache:
            e["RESTIC_CACHE_DIR"] = cache
        return e

    def restic_time(t):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))

    rows = []  # one dict per step, step 0 being the first seal and backup
    restic_open = None  # restic's fixed cost per command: opening the repository
    stopped = None
    agent = None

    def sizes(r):
        r["soul"] = tree_bytes(ws)[1]
        r["objects_all"] = du(os.path.join(vaults["all"], "objects"))
        r["vault_all"] = du(vaults["all"])
        r["restic_all"] = du(repos["all"])
        r["restic_ret"] = du(repos["ret"])
        if "ret" in variants:
            r["objects_ret"] = du(os.path.join(vaults["ret"], "objects"))
            r["vault_ret"] = du(vaults["ret"])

    def selfsame_ret(t, r):
        took, out = run([BIN, "--json", "seal", "--reason", "heartbeat"], env_at(t), vault_dirs["ret"],
                        "selfsame seal (retained vault)")
        r["seal_ret"], total = took, took
        took, _ = run([BIN, "forget"] + KEEP, env_at(t), vault_dirs["ret"], "selfsame forget")
        r["forget_ret"] = took
        total += took
        if with_prune:
            took, _ = run([BIN, "prune"], env_at(t), vault_dirs["ret"], "selfsame prune")
            r["prune_ret"] = took
            total += took
        r["seal_forget_ret"] = total

    def restic_backup(k, t):
        took, out = run(["restic", "-r", repos[k], "backup", "--json", "-q", "--host", "life",
                         "--time", restic_time(t), "workspace"], env_at(t, caches[k]), stores,
                        f"restic backup ({k})")
        return took, json_field(out, "data_added", "summary")

    try:
        # Step 0: the first seal of each vault and the first backup.
        t = START
        r = {"step": 0, "t": t}
        for k in variants:
            os.makedirs(vault_dirs[k])
            took, out = run([BIN, "--json", "init", "../workspace", "--shell-version", "1.0.0"], env_at(t),
                            vault_dirs[k], f"selfsame init ({k})")
            r[f"seal_{k}"] = took
            if k == "all":
                r["new_all"] = json_field(out, "new_bytes")
        for k in repos:
            run(["restic", "-q", "-r", repos[k], "init"], env_at(t, caches[k]), stores, "restic init")
            took, added = restic_backup(k, t)
            r[f"backup_{k}"] = took
            if k == "all":
                r["added_all"] = added
        # What every restic command pays before its work: reading the
        # repository's key, which restic derives from the password with scrypt.
        restic_open = med([run(["restic", "-q", "-r", repos["all"], "cat", "config"], env_at(t, caches["all"]),
                               stores, "restic cat config")[0] for _ in range(3)])
        sizes(r)
        rows.append(r)
        print(f"step 0 ({iso(t)}): init {r['seal_all']:.2f} s, first backup {r['backup_all']:.2f} s; "
              f"vault {mib(r['vault_all'])} MiB, restic {mib(r['restic_all'])} MiB", flush=True)

        agent = Agent(ws, random.Random(f"{a.seed}-steps"), inserts)
        for i in range(1, steps + 1):
            free = shutil.disk_usage(stores).free
            if free < a.min_free_gib * (1 << 30):
                raise Stop(f"stopped before step {i}: {free / (1 << 30):.1f} GiB free on the disk of {stores}, "
                           f"below --min-free-gib {a.min_free_gib:g}")
            t = START + i * STEP_S
            r = {"step": i, "t": t}
            m = time.perf_counter()
            agent.step(i, t)
            r["mutate"] = time.perf_counter() - m
            # The two keep-all stores in turn, the first of them alternating,
            # so neither always meets the soul first after the change.
            order = ["seal", "backup"] if i % 2 else ["backup", "seal"]
            for what in order:
                if what == "seal":
                    took, out = run([BIN, "--json", "seal", "--reason", "heartbeat"], env_at(t),
                                    vault_dirs["all"], "selfsame seal")
                    r["seal_all"], r["new_all"] = took, json_field(out, "new_bytes")
                else:
                    r["backup_all"], r["added_all"] = restic_backup("all", t)
            if "ret" in variants:
                try:
                    selfsame_ret(t, r)
                except Stop as e:
                    # A forget or prune this script does not know how to
                    # call ends that variant, not the run.
                    variants.remove("ret")
                    retention_note = f"ended at step {i}: {e}"
                    print(f"retained selfsame vault {retention_note}", flush=True)
            took, _ = restic_backup("ret", t)
            r["backup_ret"] = took
            took, _ = run(["restic", "-q", "-r", repos["ret"], "forget", "--host", "life", "--prune"] + KEEP,
                          env_at(t, caches["ret"]), stores, "restic forget --prune")
            r["forget_ret_restic"] = took
            r["backup_forget_ret"] = r["backup_ret"] + took
            sizes(r)
            rows.append(r)
            print(f"step {i} ({hhmm(t)}): seal {r['seal_all']:.2f} s, backup {r['backup_all']:.2f} s; "
                  f"vault {mib(r['vault_all'])} MiB, restic {mib(r['restic_all'])} MiB, "
                  f"restic retained {mib(r['restic_ret'])} MiB", flush=True)
            if i % every == 0 or i == steps:
                report_row(rows, every, variants)
    except Stop as e:
        stopped = str(e)
        print(stopped, flush=True)
    except KeyboardInterrupt:
        stopped = "interrupted"
        print(stopped, flush=True)
    finally:
        took = time.monotonic() - began
        load_end = open("/proc/loadavg").read().split()[:3]
        if rows:
            csv_path = os.path.join(work, "steps.csv")
            keys = sorted({k for r in rows for k in r})
            with open(csv_path, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=keys)
                w.writeheader()
                w.writerows(rows)
            text = report(a, rows, steps, every, variants, retention_note, stopped, took,
                          dict(cores=cores, cpu=cpu, mem=mem, load_start=load_start, load_end=load_end,
                               files0=files0, soul0=soul0, db_mib=db_mib, sessions=sessions, inserts=inserts,
                               restic_open=restic_open,
                               fs=fs_type(stores)))
            with open(out_path, "w") as f:
                f.write(text)
            print()
            print(text)
            print(f"wrote {out_path}; per-step figures in {csv_path}")
        if not a.keep:
            shutil.rmtree(stores, ignore_errors=True)
    return 1 if stopped else 0


def fs_type(path):
    r = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "-T", path], capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


def window(rows, every, upto):
    """The steps in (upto - every, upto], without step 0."""
    return [r for r in rows if upto - every < r["step"] <= upto and r["step"] > 0]


def report_row(rows, every, variants):
    r = rows[-1]
    w = window(rows, every, r["step"])
    s, b = med([x["seal_all"] for x in w]), med([x["backup_all"] for x in w])
    line = (f"  == step {r['step']}: soul {mib(r['soul'])} MiB; keep-all vault {mib(r['vault_all'])} MiB "
            f"(objects {mib(r['objects_all'])}), restic {mib(r['restic_all'])} MiB; median seal {secs(s)} s, "
            f"backup {secs(b)} s ({ratio(s, b)})")
    if "ret" in variants:
        line += f"; retained vault {mib(r['vault_ret'])} MiB"
    line += f"; retained restic {mib(r['restic_ret'])} MiB"
    print(line, flush=True)


def report(a, rows, steps, every, variants, retention_note, stopped, took, m):
    last = rows[-1]
    done = last["step"]
    marks = [r for r in rows if r["step"] == 0 or r["step"] % every == 0 or r is last]
    L = []
    title = "A day in an agent's life" + (" (--quick)" if a.quick else "")
    L.append(f"# {title}\n")
    L.append(f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, code {code_commit()} "
             f"({subprocess.run([BIN, '--version'], capture_output=True, text=True).stdout.strip()}, "
             f"{subprocess.run(['restic', 'version'], capture_output=True, text=True).stdout.split(' compiled')[0]}). "
             f"Machine: {m['cores']} cores, {m['cpu']}, {m['mem'] / (1 << 30):.0f} GiB RAM, stores on {m['fs']}; "
             f"load average {' '.join(m['load_start'])} at the start, {' '.join(m['load_end'])} at the end. "
             f"The run took {took / 60:.1f} min for {done} of {steps} steps.\n")
    if stopped:
        L.append(f"**The run stopped early: {stopped}.** The figures below are those of the steps it completed.\n")
    L.append(f"Workspace (seed {a.seed}): {m['files0']} files, {mib(m['soul0'])} MiB at the start — SOUL.md, "
             f"IDENTITY.md, AGENTS.md, USER.md, MEMORY.md, three skills, {HISTORY_DAYS} daily memory files, "
             f"{m['sessions']} session transcripts and a {m['db_mib']} MiB SQLite memory index (`memory.sqlite`: "
             f"text chunks with a {DIM}-float32 embedding, two indexes). Each step is five simulated minutes "
             f"from {iso(START)}: an entry appended to `memory/YYYY-MM-DD.md` (a new file after midnight), "
             f"a turn or two appended to the current `sessions/*.jsonl` (a new session every 48 steps) and "
             f"`sessions/sessions.json` rewritten, a line added to MEMORY.md every 24 steps, and "
             f"{UPDATE_FRACTION * 100:g} % of the index's rows re-embedded at random and {m['inserts']} inserted, "
             f"committed and closed before the seal. Then `selfsame seal --reason heartbeat` and "
             f"`restic backup` (alternating which goes first), each timed with the simulated time passed "
             f"(`SELFSAME_NOW`, `--time`).\n")
    L.append("Sizes are disk usage (`du -s -B1`, allocated blocks) in MiB. *vault* is the whole "
             "`.selfsame/` directory (objects, manifests, checkpoints, history, stat cache); *objects* is "
             "`.selfsame/objects` alone. restic's repository is the repository directory (its local cache "
             "is kept outside it and not counted). Soul is the sum of the workspace's file sizes. Times are "
             "medians over the steps since the row before (row 0: `selfsame init` and the first backup), "
             "wall clock of the whole command. New bytes are selfsame's `new_bytes` (the object bytes a seal "
             "stored) and restic's `data_added` (new chunk bytes, before compression)." + (
                 f" Every restic command first opens the repository, deriving its key from the password "
                 f"with scrypt: `restic cat config` takes {m['restic_open']:.3f} s here (median of 3), and that "
                 f"is part of each backup's time, as it is for a heartbeat that runs `restic backup`."
                 if m["restic_open"] else "") + "\n")
    L.append("## Without retention\n")
    L.append("| step | sim. time | soul | objects | vault | restic repo | vault ÷ restic | median seal s | "
             "median backup s | seal ÷ backup | median new bytes: seal / backup |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in marks:
        w = [r] if r["step"] == 0 else window(rows, prev_mark(marks, r), r["step"])
        s, b = med([x.get("seal_all") for x in w]), med([x.get("backup_all") for x in w])
        n1, n2 = med([x.get("new_all") for x in w]), med([x.get("added_all") for x in w])
        L.append(f"| {r['step']} | {hhmm(r['t'])} | {mib(r['soul'])} | {mib(r['objects_all'])} | "
                 f"{mib(r['vault_all'])} | {mib(r['restic_all'])} | {ratio(r['vault_all'], r['restic_all'])} | "
                 f"{secs(s)} | {secs(b)} | {ratio(s, b)} | {fmt_bytes(n1)} / {fmt_bytes(n2)} |")
    L.append("\n## With retention (keep-last 12, keep-hourly 24)\n")
    L.append(f"selfsame: {retention_note}. restic: `restic forget --keep-last 12 --keep-hourly 24 --prune` "
             f"after every backup into a second repository.\n")
    L.append("| step | soul | vault | vault ÷ soul | restic repo | restic ÷ soul | median seal + forget + prune s | "
             "median backup + forget --prune s |")
    L.append("|---|---|---|---|---|---|---|---|")
    for r in marks:
        w = [r] if r["step"] == 0 else window(rows, prev_mark(marks, r), r["step"])
        sv = med([x.get("seal_forget_ret") for x in w]) if r["step"] else med([x.get("seal_ret") for x in w])
        bv = med([x.get("backup_forget_ret") for x in w]) if r["step"] else med([x.get("backup_ret") for x in w])
        L.append(f"| {r['step']} | {mib(r['soul'])} | {mib(r.get('vault_ret'))} | "
                 f"{ratio(r.get('vault_ret'), r['soul'])} | {mib(r['restic_ret'])} | "
                 f"{ratio(r['restic_ret'], r['soul'])} | {secs(sv)} | {secs(bv)} |")
    L.append("\n## Goals (issue 15, must-hold 1)\n")
    full = done == steps
    at = f"after {done} steps" + ("" if full else f" of {steps}")
    heart = [r for r in rows if r["step"] > 0]
    s, b = med([x["seal_all"] for x in heart]), med([x["backup_all"] for x in heart])
    L.append("| goal | measured | met? |")
    L.append("|---|---|---|")

    def met(ok):
        return ("yes" if ok else "**no**") + ("" if full else " (run incomplete)")

    L.append(f"| without retention, vault ≤ restic repository | {mib(last['vault_all'])} vs "
             f"{mib(last['restic_all'])} MiB ({ratio(last['vault_all'], last['restic_all'])}) {at} | "
             f"{met(last['vault_all'] <= last['restic_all'])} |")
    if "ret" in variants and last.get("vault_ret") is not None:
        L.append(f"| with keep-last 12, keep-hourly 24, vault ≤ 3× soul | {mib(last['vault_ret'])} MiB vs "
                 f"3 × {mib(last['soul'])} MiB ({ratio(last['vault_ret'], last['soul'])} soul) {at} | "
                 f"{met(last['vault_ret'] <= 3 * last['soul'])} |")
    else:
        L.append(f"| with keep-last 12, keep-hourly 24, vault ≤ 3× soul | not measured: {retention_note} "
                 f"(restic's retained repository: {mib(last['restic_ret'])} MiB, "
                 f"{ratio(last['restic_ret'], last['soul'])} soul) | not measured |")
    if s is not None:
        L.append(f"| median heartbeat seal ≤ 0.5× restic backup | {secs(s)} s vs {secs(b)} s "
                 f"({ratio(s, b)}) over {len(heart)} steps | {met(s <= 0.5 * b)} |")
    L.append("")
    command = " ".join(["bench/life"] + sys.argv[1:])
    L.append(f"Reproduce: `{command}` (`BENCH_DIR` sets where the workspace "
             f"and stores live, default /tmp/selfsame-bench/{'quick/' if a.quick else ''}life; per-step "
             f"figures go to steps.csv there).\n")
    return "\n".join(L) + "\n"


def prev_mark(marks, r):
    i = marks.index(r)
    return r["step"] - marks[i - 1]["step"] if i else r["step"]


if __name__ == "__main__":
    sys.exit(main())
