#!/usr/bin/env python3
"""Writes the core format vectors in this directory: a soul described as
data, its manifest v1 bytes and soul hash, and a chain of checkpoints v1 with
their MACs and exact file bytes for a fixed token.

An implementation independent of the Rust code, from the words of
DESIGN.md / docs/FORMAT.md alone, with Python 3's standard library only
(hashlib, hmac, json). Nothing here imports or runs selfsame. The Rust test
(crates/selfsame/tests/vectors.rs) reads the files this script writes; it
never runs the script.

Rules implemented here:
* manifest: header `selfsame-manifest 1`, then one LF-terminated line per
  entry `<kind> <sha256-hex> <size> <path>`; kinds f (file), x (file with
  any execute bit), l (symlink: hash and size of the target's bytes), d
  (directory below the root, hash and size `-`); paths relative,
  `/`-separated, sorted by raw UTF-8 bytes of the whole path.
  soul hash = SHA-256 of the manifest bytes.
* checkpoint: fields in order v, seq, prev, soul, files, bytes, sealed_at,
  reason, shell, format, log, platform, bot_id, [extra fields], hash;
  encoded WHATWG application/x-www-form-urlencoded (ASCII alphanumerics and
  `*-._` kept, space -> `+`, every other UTF-8 byte -> `%XX` uppercase),
  joined by `&`, then `\\n`.
  data-check-string = every field but hash, signature, prev_key_hash,
  decoded, sorted by key bytes, `key=value`, joined by `\\n`.
  MAC key = HMAC-SHA256(key=b"selfsame/checkpoint/v1", msg=token).
  hash = hex HMAC-SHA256(MAC key, data-check-string).
  prev = hex SHA-256 of the previous checkpoint file's bytes.

Run from anywhere: python3 tests/vectors/core/make_vectors.py
"""

import hashlib
import hmac
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))

TOKEN = "123456789:selfsame-vector-token_NOT.a.real.secret"
BOT_ID = "123456789"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the soul, as data -----------------------------------------------------
# kind: "dir", "file" (with mode) or "symlink" (with target). Contents are
# given as hex so any byte can appear.

def f(path, content: bytes, mode=0o644):
    return {"path": path, "kind": "file", "mode": mode, "content_hex": content.hex()}


SOUL = [
    f("memory.jsonl", b'{"said":"hello"}\n{"said":"again"}\n'),
    {"path": "empty", "kind": "dir"},
    f("empty.txt", b""),
    {"path": "notes", "kind": "dir"},
    # '-' (0x2d) sorts before '/' (0x2f): whole paths are sorted as bytes,
    # not segment by segment.
    f("notes-x.txt", b"beside notes/\n"),
    f("notes/a.md", b"# who I am\n\nI remember.\n"),
    {"path": "notes/deep", "kind": "dir"},
    f("notes/deep/b.bin", bytes([0, 1, 2, 3, 255, 254, 10, 13])),
    f("run.sh", b"#!/bin/sh\necho awake\n", 0o755),
    # Any execute bit makes it `x`, here only the group's.
    f("group-exec", b"g\n", 0o654),
    {"path": "link", "kind": "symlink", "target": "notes/a.md"},
    # Never followed: a dangling target that leaves the soul is just bytes.
    {"path": "dangling", "kind": "symlink", "target": "../outside/nowhere"},
    f("naïve-日記.txt", "ünïcödé ✓\n".encode()),
    f("with space.txt", b"spaces in names are kept\n"),
    f("Zebra", b"uppercase sorts first\n"),
]


def manifest_bytes(soul) -> bytes:
    lines = []
    for e in soul:
        p = e["path"]
        if e["kind"] == "dir":
            lines.append((p, f"d - - {p}\n"))
        elif e["kind"] == "symlink":
            t = e["target"].encode()
            lines.append((p, f"l {sha256_hex(t)} {len(t)} {p}\n"))
        else:
            c = bytes.fromhex(e["content_hex"])
            kind = "x" if e["mode"] & 0o111 else "f"
            lines.append((p, f"{kind} {sha256_hex(c)} {len(c)} {p}\n"))
    lines.sort(key=lambda pl: pl[0].encode("utf-8"))
    return ("selfsame-manifest 1\n" + "".join(l for _, l in lines)).encode("utf-8")


def counts(soul):
    files = 0
    size = 0
    for e in soul:
        if e["kind"] == "file":
            files += 1
            size += len(bytes.fromhex(e["content_hex"]))
        elif e["kind"] == "symlink":
            files += 1
            size += len(e["target"].encode())
    return files, size


# --- checkpoints -----------------------------------------------------------

KEPT = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789*-._")


def form_encode(text: str) -> str:
    out = []
    for b in text.encode("utf-8"):
        if b in KEPT:
            out.append(chr(b))
        elif b == 0x20:
            out.append("+")
        else:
            out.append("%%%02X" % b)
    return "".join(out)


UNSIGNED = {"hash", "signature", "prev_key_hash"}


def data_check_string(fields) -> str:
    kept = [(k, v) for k, v in fields if k not in UNSIGNED]
    kept.sort(key=lambda kv: kv[0].encode("utf-8"))
    return "\n".join(f"{k}={v}" for k, v in kept)


def mac_key(token: str) -> bytes:
    return hmac.new(b"selfsame/checkpoint/v1", token.encode("utf-8"), hashlib.sha256).digest()


def sign(fields):
    dcs = data_check_string(fields)
    h = hmac.new(mac_key(TOKEN), dcs.encode("utf-8"), hashlib.sha256).hexdigest()
    signed = fields + [("hash", h)]
    line = "&".join(f"{form_encode(k)}={form_encode(v)}" for k, v in signed) + "\n"
    return dcs, h, line.encode("ascii")


def main():
    mbytes = manifest_bytes(SOUL)
    soul_hash = sha256_hex(mbytes)
    files, size = counts(SOUL)

    with open(os.path.join(HERE, "manifest"), "wb") as out:
        out.write(mbytes)

    checkpoints = []
    prev = ""
    specs = [
        # seq 1: the init checkpoint, empty prev.
        dict(sealed_at="2030-01-01T00:00:00.000Z", reason="init", shell="1.0.0",
             format="v1", log=sha256_hex(b"history line 1"), extra=[]),
        # seq 2: prev chains to seq 1; a shell string that needs escaping.
        dict(sealed_at="2030-01-02T03:04:05.678Z", reason="rest",
             shell="2.0.0-rc.1 (build ~7/é+&=)", format="v12",
             log=sha256_hex(b"history line 4"), extra=[]),
        # seq 3: an unknown field (covered by the MAC) and a `signature`
        # (reserved, not covered).
        dict(sealed_at="2030-01-03T00:00:00.001Z", reason="heartbeat", shell="2.0.0",
             format="v12", log=sha256_hex(b"history line 7"),
             extra=[("note", "kept & covered"), ("signature", "not-covered_by-the-MAC")]),
    ]
    for seq, s in enumerate(specs, start=1):
        fields = [
            ("v", "1"),
            ("seq", str(seq)),
            ("prev", prev),
            ("soul", soul_hash),
            ("files", str(files)),
            ("bytes", str(size)),
            ("sealed_at", s["sealed_at"]),
            ("reason", s["reason"]),
            ("shell", s["shell"]),
            ("format", s["format"]),
            ("log", s["log"]),
            ("platform", "telegram"),
            ("bot_id", BOT_ID),
        ] + s["extra"]
        dcs, h, line = sign(fields)
        name = "%08d.ckpt" % seq
        with open(os.path.join(HERE, name), "wb") as out:
            out.write(line)
        checkpoints.append({
            "file": name,
            "fields": [[k, v] for k, v in fields],
            "data_check_string": dcs,
            "hash": h,
            "file_sha256": sha256_hex(line),
        })
        prev = sha256_hex(line)

    doc = {
        "about": "selfsame core format vectors, written by make_vectors.py "
                 "(Python stdlib, independent of the Rust code)",
        "token": TOKEN,
        "mac_key_hex": mac_key(TOKEN).hex(),
        "soul": [{**e, "mode": oct(e["mode"])} if "mode" in e else e for e in SOUL],
        "manifest_file": "manifest",
        "manifest": mbytes.decode("utf-8"),
        "soul_hash": soul_hash,
        "files": files,
        "bytes": size,
        "checkpoints": checkpoints,
    }
    with open(os.path.join(HERE, "core.json"), "w", encoding="utf-8") as out:
        json.dump(doc, out, ensure_ascii=False, indent=2)
        out.write("\n")


if __name__ == "__main__":
    main()
