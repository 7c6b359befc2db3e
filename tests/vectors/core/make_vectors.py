#!/usr/bin/env python3
"""Writes the core format vectors in this directory: a soul described as
data, its manifest v1 and v2 bytes and soul hashes, and a chain of checkpoints v1 with
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
* manifest v2: header `selfsame-manifest 2`, then
  `<kind> <mode> <sha256-hex|-> <size|-> <path>`; kinds f, l, d (no x);
  mode = st_mode & 07777 as exactly four octal digits, `-` for l; hash and
  size `-` for d; paths and order as v1.
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
  A checkpoint file is exactly that encoding: another encoding of the same
  fields (lowercase or needless percent escapes, `%20` for `+`), another
  field order, or a field outside the MAC that the format does not define
  there (`signature` without `identity`, `prev_key_hash` off a rekey) is
  refused, although the MAC would still verify: the `noncanonical` cases.
* history v2 (`history.jsonl`): one JSON object a line, members n, at,
  event, prev, then the event's fields sorted by key (nested objects too),
  no spaces, non-ASCII as UTF-8; prev = hex SHA-256 of the previous line's
  bytes without its newline. A v2 line's body is that JSON; its MAC is hex
  HMAC-SHA256(history key, body) with history key =
  HMAC-SHA256(key=b"selfsame/history/v1", msg=token); the line is the body
  with its closing `}` replaced by `,"mac":"<mac>"}`. The first line here
  is a v1 line (no MAC), as an older version wrote it.

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
    # Directories carry a mode for manifest v2 (v1 does not record it).
    {"path": "empty", "kind": "dir", "mode": 0o700},
    f("empty.txt", b""),
    {"path": "notes", "kind": "dir", "mode": 0o755},
    # '-' (0x2d) sorts before '/' (0x2f): whole paths are sorted as bytes,
    # not segment by segment.
    f("notes-x.txt", b"beside notes/\n"),
    f("notes/a.md", b"# who I am\n\nI remember.\n"),
    {"path": "notes/deep", "kind": "dir", "mode": 0o2750},
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
    # Permission bits v1 cannot record: a private file, a setuid program,
    # the sticky bit.
    f("private.key", b"only mine\n", 0o600),
    f("setuid-tool", b"#!/bin/sh\n", 0o4755),
    f("sticky", b"t\n", 0o1644),
]


def manifest_v2_bytes(soul) -> bytes:
    lines = []
    for e in soul:
        p = e["path"]
        if e["kind"] == "dir":
            lines.append((p, "d %04o - - %s\n" % (e["mode"] & 0o7777, p)))
        elif e["kind"] == "symlink":
            t = e["target"].encode()
            lines.append((p, f"l - {sha256_hex(t)} {len(t)} {p}\n"))
        else:
            c = bytes.fromhex(e["content_hex"])
            lines.append((p, "f %04o %s %d %s\n" % (e["mode"] & 0o7777, sha256_hex(c), len(c), p)))
    lines.sort(key=lambda pl: pl[0].encode("utf-8"))
    return ("selfsame-manifest 2\n" + "".join(l for _, l in lines)).encode("utf-8")


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


def noncanonical(fields, h):
    """Files whose decoded fields (and so whose MAC) are those of a valid
    checkpoint, but whose bytes are not its canonical encoding."""
    signed = fields + [("hash", h)]

    def join(pairs, enc=form_encode):
        return ("&".join(f"{enc(k)}={enc(v)}" for k, v in pairs) + "\n").encode("ascii")

    def lower_escapes(text):
        out, i = [], 0
        while i < len(text):
            if text[i] == "%":
                out.append(text[i:i + 3].lower())
                i += 3
            else:
                out.append(text[i])
                i += 1
        return "".join(out)

    def escape_kept(text):
        # `.` written %2E: decodes the same, is not how it is written.
        return form_encode(text).replace(".", "%2E")

    def space_as_pct(text):
        return form_encode(text).replace("+", "%20")

    reordered = list(signed)
    reordered[1], reordered[2] = reordered[2], reordered[1]
    canonical = join(signed)
    cases = [
        ("lowercase percent escapes", join(signed, lambda t: lower_escapes(form_encode(t)))),
        ("a kept character percent-escaped", join(signed, escape_kept)),
        ("a space as %20 instead of +", join(signed, space_as_pct)),
        ("two standard fields swapped", join(reordered)),
        ("an empty signature= outside the MAC", join(fields + [("signature", ""), ("hash", h)])),
        ("prev_key_hash on a checkpoint that is not a rekey",
         join(fields + [("prev_key_hash", h), ("hash", h)])),
        ("hash not the last field", join(fields[:-1] + [("hash", h), fields[-1]])),
    ]
    # A case that changes nothing here (no space to write as %20) is left out.
    return [(why, b) for why, b in cases if b != canonical]


# --- history v2 ------------------------------------------------------------

def history_key(token: str) -> bytes:
    return hmac.new(b"selfsame/history/v1", token.encode("utf-8"), hashlib.sha256).digest()


def sorted_value(v):
    if isinstance(v, dict):
        return {k: sorted_value(v[k]) for k in sorted(v, key=lambda k: k.encode("utf-8"))}
    if isinstance(v, list):
        return [sorted_value(x) for x in v]
    return v


def history_json(n, at, event, prev, data) -> str:
    obj = {"n": n, "at": at, "event": event, "prev": prev}
    obj.update(sorted_value(data))
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


HISTORY = [
    # A v1 line, as selfsame wrote before History v2.
    dict(at="2030-01-01T00:00:00.000Z", event="init", signed=False,
         data={"soul": "soul", "bot_id": 123456789}),
    dict(at="2030-01-01T00:00:00.500Z", event="seal", signed=True,
         data={"seq": 1, "reason": "init", "soul": "ab" * 32, "files": 4, "bytes": 99,
               "shell": "1.0.0", "format": "v1",
               "changes": {"added": 1, "removed": 0, "modified": 0, "mode_changed": 0,
                           "paths": {"added": ["naïve-日記.txt"], "removed": [],
                                     "modified": [], "mode_changed": []}}}),
    dict(at="2030-01-02T00:00:00.000Z", event="wake", signed=True,
         data={"verdict": "verified", "seq": 1, "action": "start",
               "message": 'quotes " and \\ backslash, a tab\t, ünï, a control \x01'}),
    dict(at="2030-01-03T00:00:00.000Z", event="good", signed=True,
         data={"seq": 1, "ran_ms": 60000}),
]


def history_lines():
    key = history_key(TOKEN)
    out, prev = [], ""
    for n, h in enumerate(HISTORY, start=1):
        body = history_json(n, h["at"], h["event"], prev, h["data"])
        entry = {"n": n, "signed": h["signed"], "body": body}
        if h["signed"]:
            mac = hmac.new(key, body.encode("utf-8"), hashlib.sha256).hexdigest()
            line = body[:-1] + ',"mac":"' + mac + '"}'
            entry["mac"] = mac
        else:
            line = body
        entry["line"] = line
        entry["sha256"] = sha256_hex(line.encode("utf-8"))
        out.append(entry)
        prev = entry["sha256"]
    return out


def main():
    mbytes = manifest_bytes(SOUL)
    soul_hash = sha256_hex(mbytes)
    files, size = counts(SOUL)

    with open(os.path.join(HERE, "manifest"), "wb") as out:
        out.write(mbytes)
    m2bytes = manifest_v2_bytes(SOUL)
    with open(os.path.join(HERE, "manifest-v2"), "wb") as out:
        out.write(m2bytes)

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
        # seq 3: an unknown field, covered by the MAC.
        dict(sealed_at="2030-01-03T00:00:00.001Z", reason="heartbeat", shell="2.0.0",
             format="v12", log=sha256_hex(b"history line 7"),
             extra=[("note", "kept & covered")]),
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
            "noncanonical": [{"why": why, "bytes": b.decode("ascii")}
                             for why, b in noncanonical(fields, h)],
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
        "manifest_v2_file": "manifest-v2",
        "manifest_v2": m2bytes.decode("utf-8"),
        "soul_hash_v2": sha256_hex(m2bytes),
        "files": files,
        "bytes": size,
        "checkpoints": checkpoints,
        "history": {
            "file": "history.jsonl",
            "history_key_hex": history_key(TOKEN).hex(),
            "lines": history_lines(),
        },
    }
    with open(os.path.join(HERE, "history.jsonl"), "wb") as out:
        for entry in doc["history"]["lines"]:
            out.write(entry["line"].encode("utf-8") + b"\n")
    with open(os.path.join(HERE, "core.json"), "w", encoding="utf-8") as out:
        json.dump(doc, out, ensure_ascii=False, indent=2)
        out.write("\n")


if __name__ == "__main__":
    main()
