#!/usr/bin/env python3
"""An independent reader of a selfsame vault.

Written from docs/STORAGE.md and docs/FORMAT.md alone (never from
selfsame's source), to show that those documents are enough to read any
file of any checkpoint back. crates/selfsame-cli/tests/storage_reader.rs
runs it against vaults the real binary wrote.

    storage_reader.py [OPTIONS] VAULT ls SEQ [--json]
    storage_reader.py [OPTIONS] VAULT cat SEQ PATH
    storage_reader.py [OPTIONS] VAULT export SEQ DIR

SEQ is a checkpoint's seq or `head`. `ls` lists the checkpoint's entries
(kind, mode, size, hash, path; `--json` as one array); `cat` writes a
file's bytes (a symlink's target) to stdout; `export` writes every file
and symlink target of the checkpoint as a regular file under DIR.

Options:
    --token-env VAR   check every checkpoint's MAC under the token in VAR
                      (without it, the checkpoints' canonical form and
                      `prev` chain are still checked)
    --stats           print, on stderr, one line `stats: {JSON}` counting
                      the stored forms that were read

Exit codes: 0 read and checked; 2 no such checkpoint or path, or a
checkpoint forgotten by retention; 5 damage (a hash, size or structure
that is not what the documents say).

Standard library only, but for zstd-compressed pack blobs (codec 1),
which need the `zstandard` package from PyPI; it is imported only when
such a blob is read.
"""

import hashlib
import hmac
import json
import os
import re
import stat
import sys

PACK_MAGIC = b"SSPACK\x00\x01"
FOOTER_MAGIC = b"SSPACKIX"
FOOTER = 44
ENTRY = 58
LIST_MAGIC = b"SSL1"
PART = 41
MAX_DEPTH = 4
KIND_DATA, KIND_FILE, KIND_NODE = 0, 1, 2
HEX64 = re.compile(r"^[0-9a-f]{64}$")

STATS = {}


def count(what, n=1):
    STATS[what] = STATS.get(what, 0) + n


class Damage(Exception):
    """The vault is not what the documents say: exit 5."""


class Refused(Exception):
    """No such checkpoint or path, or a forgotten one: exit 2."""


def sha256(b):
    return hashlib.sha256(b).digest()


def read_regular(path, limit=None):
    """A vault file: no symlink followed, a regular file, bounded."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise Damage(f"{path}: {e.strerror}")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Damage(f"{path}: not a regular file")
        if limit is not None and st.st_size > limit:
            raise Damage(f"{path}: larger than {limit} bytes")
        chunks = []
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- packs


class Entry:
    __slots__ = ("pack", "kind", "codec", "id", "offset", "stored", "plain", "size")


class Store:
    """objects/: loose objects and packs (STORAGE.md)."""

    def __init__(self, vault):
        self.objects = os.path.join(vault, "objects")
        self.packs = {}  # (kind, id bytes) -> [Entry], packs in name order
        self.pack_dir = os.path.join(self.objects, "packs")
        names = sorted(os.listdir(self.pack_dir)) if os.path.isdir(self.pack_dir) else []
        for name in names:
            # Packs are named by the lowercase hex of their index's SHA-256;
            # anything else there is not a pack.
            if re.fullmatch(r"[0-9a-f]{64}", name):
                self._index(name)

    def _index(self, name):
        path = os.path.join(self.pack_dir, name)
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            length = f.tell()
            if length < len(PACK_MAGIC) + FOOTER:
                raise Damage(f"pack {name}: too short ({length} bytes)")
            f.seek(0)
            if f.read(len(PACK_MAGIC)) != PACK_MAGIC:
                raise Damage(f"pack {name}: bad magic")
            f.seek(length - FOOTER)
            footer = f.read(FOOTER)
            n = int.from_bytes(footer[0:4], "little")
            named = footer[4:36]
            if footer[36:44] != FOOTER_MAGIC:
                raise Damage(f"pack {name}: bad footer magic")
            index_at = length - FOOTER - n * ENTRY
            if index_at < len(PACK_MAGIC):
                raise Damage(f"pack {name}: index of {n} entries does not fit")
            f.seek(index_at)
            index = f.read(n * ENTRY)
        digest = sha256(index)
        if digest != named:
            raise Damage(f"pack {name}: hash mismatch: the footer does not repeat its index's SHA-256")
        if digest.hex() != name:
            raise Damage(f"pack {name}: hash mismatch: its index hashes to {digest.hex()}")
        count("packs")
        for i in range(n):
            raw = index[i * ENTRY : (i + 1) * ENTRY]
            e = Entry()
            e.pack = path
            e.kind = raw[0]
            e.codec = raw[1]
            e.id = raw[2:34]
            e.offset = int.from_bytes(raw[34:42], "little")
            e.stored = int.from_bytes(raw[42:46], "little")
            e.plain = int.from_bytes(raw[46:50], "little")
            e.size = int.from_bytes(raw[50:58], "little")
            where = f"pack {name} entry {i}"
            if e.kind not in (KIND_DATA, KIND_FILE, KIND_NODE):
                raise Damage(f"{where}: kind {e.kind}")
            if e.codec not in (0, 1):
                raise Damage(f"{where}: codec {e.codec}")
            if e.offset < len(PACK_MAGIC) or e.offset + e.stored > index_at:
                raise Damage(f"{where}: stored bytes outside the blob area")
            if e.codec == 0 and e.stored != e.plain:
                raise Damage(f"{where}: stored as it is, yet {e.stored} != {e.plain} bytes")
            if e.kind == KIND_DATA and e.size != e.plain:
                raise Damage(f"{where}: a data blob whose size is not its plain length")
            self.packs.setdefault((e.kind, e.id), []).append(e)

    def find(self, kind, ident):
        found = self.packs.get((kind, ident))
        return found[0] if found else None

    def plain(self, e):
        """A blob's plain bytes, decoded and of exactly `plain` bytes."""
        with open(e.pack, "rb") as f:
            f.seek(e.offset)
            stored = f.read(e.stored)
        if len(stored) != e.stored:
            raise Damage(f"{e.pack}: cut short")
        if e.codec == 0:
            count("blobs stored")
            out = stored
        else:
            count("blobs zstd")
            out = unzstd(stored, e.plain, e)
        if len(out) != e.plain:
            raise Damage(f"blob {e.id.hex()}: {len(out)} plain bytes, the index says {e.plain}")
        return out

    def data(self, ident, size):
        """The data blob `ident` (a chunk, or a whole small content), checked."""
        e = self.find(KIND_DATA, ident)
        if e is None:
            raise Damage(f"object-missing: data blob {ident.hex()}")
        b = self.plain(e)
        if sha256(b) != ident:
            raise Damage(f"hash mismatch: data blob {ident.hex()} (in {os.path.basename(e.pack)})")
        if size is not None and len(b) != size:
            raise Damage(f"data blob {ident.hex()}: {len(b)} bytes, listed as {size}")
        return b

    def expand(self, listed, size, depth, what):
        """The content a list stands for: its parts' content, in order."""
        if depth > MAX_DEPTH:
            raise Damage(f"{what}: lists nest deeper than {MAX_DEPTH}")
        if not listed.startswith(LIST_MAGIC) or (len(listed) - 4) % PART:
            raise Damage(f"{what}: not a list")
        out = []
        total = 0
        for at in range(4, len(listed), PART):
            kind = listed[at]
            ident = listed[at + 1 : at + 33]
            part_size = int.from_bytes(listed[at + 33 : at + 41], "little")
            if part_size < 1:
                raise Damage(f"{what}: a part of size 0")
            total += part_size
            if kind == KIND_DATA:
                count("chunks")
                out.append(self.data(ident, part_size))
            elif kind == KIND_NODE:
                count("nodes")
                e = self.find(KIND_NODE, ident)
                if e is None:
                    raise Damage(f"object-missing: node blob {ident.hex()}")
                if e.size != part_size:
                    raise Damage(f"node {ident.hex()}: size {e.size}, listed as {part_size}")
                node = self.plain(e)
                if sha256(node) != ident:
                    raise Damage(f"hash mismatch: node blob {ident.hex()}")
                out.append(self.expand(node, part_size, depth + 1, f"node {ident.hex()}"))
            else:
                raise Damage(f"{what}: a part of kind {kind}")
        if total != size:
            raise Damage(f"{what}: parts add up to {total} bytes, not {size}")
        return b"".join(out)

    def read(self, hex_id, size=None, what=None):
        """Object H (STORAGE.md, "Reading object H of size bytes")."""
        what = what or f"object {hex_id}"
        ident = bytes.fromhex(hex_id)
        e = self.find(KIND_DATA, ident)
        if e is not None:
            count("objects from a data blob")
            content = self.plain(e)
            known = e.size
        else:
            e = self.find(KIND_FILE, ident)
            if e is not None:
                count("objects from a file list")
                content = self.expand(self.plain(e), e.size, 1, f"file list {hex_id}")
                known = e.size
            else:
                path = os.path.join(self.objects, hex_id[:2], hex_id[2:])
                content = read_regular(path, size)
                if content is None:
                    raise Damage(f"object-missing: {what} ({hex_id}) is neither packed nor loose")
                count("objects loose")
                known = len(content)
        if size is None:
            size = known
        if len(content) != size:
            raise Damage(f"{what}: {len(content)} bytes, expected {size}")
        if sha256(content) != ident:
            raise Damage(f"hash mismatch: {what} does not hash to {hex_id}")
        return content


_ZSTD = None


def unzstd(stored, plain, e):
    global _ZSTD
    if _ZSTD is None:
        try:
            import zstandard
        except ImportError:
            sys.exit("storage_reader: reading a zstd blob needs the `zstandard` package (pip install zstandard)")
        _ZSTD = zstandard
    d = _ZSTD.ZstdDecompressor().decompressobj()
    try:
        out = d.decompress(stored)
    except _ZSTD.ZstdError as err:
        raise Damage(f"blob {e.id.hex()}: not a zstd frame ({err})")
    if not d.eof or d.unused_data:
        raise Damage(f"blob {e.id.hex()}: not exactly one zstd frame")
    return out


# ---------------------------------------------------------- checkpoints

SAFE = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789*-._")


def form_encode(text):
    out = []
    for b in text.encode("utf-8"):
        if b in SAFE:
            out.append(chr(b))
        elif b == 0x20:
            out.append("+")
        else:
            out.append("%%%02X" % b)
    return "".join(out)


def form_decode(s, where):
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c == "+":
            out.append(0x20)
        elif c == "%":
            h = s[i + 1 : i + 3]
            if len(h) != 2 or not all(x in "0123456789abcdefABCDEF" for x in h):
                raise Damage(f"{where}: bad escape")
            out.append(int(h, 16))
            i += 2
        else:
            out.append(ord(c))
        i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise Damage(f"{where}: invalid UTF-8")


def ckpt_name(seq):
    return f"{seq:08d}.ckpt" if seq < 100000000 else f"{seq}.ckpt"


def parse_checkpoint(raw, where):
    if not raw.endswith(b"\n") or raw.count(b"\n") != 1:
        raise Damage(f"{where}: not one line")
    try:
        line = raw[:-1].decode("ascii")
    except UnicodeDecodeError:
        raise Damage(f"{where}: not ASCII")
    fields = []
    seen = set()
    for pair in line.split("&"):
        if "=" not in pair:
            raise Damage(f"{where}: a pair without =")
        k, v = pair.split("=", 1)
        k, v = form_decode(k, where), form_decode(v, where)
        if k in seen:
            raise Damage(f"{where}: {k} twice")
        seen.add(k)
        fields.append((k, v))
    again = "&".join(form_encode(k) + "=" + form_encode(v) for k, v in fields) + "\n"
    if again.encode() != raw:
        raise Damage(f"{where}: not in canonical form")
    d = dict(fields)
    for k in ("v", "seq", "prev", "soul", "files", "bytes", "hash"):
        if k not in d:
            raise Damage(f"{where}: no {k}")
    if d["v"] != "1":
        raise Damage(f"{where}: v={d['v']}")
    return d


def data_check_string(fields):
    keep = sorted(
        ((k, v) for k, v in fields.items() if k not in ("hash", "signature", "prev_key_hash")),
        key=lambda kv: kv[0].encode(),
    )
    return "\n".join(f"{k}={v}" for k, v in keep).encode()


class Vault:
    def __init__(self, path, token=None):
        self.path = path
        fmt = read_regular(os.path.join(path, "format"), 64)
        if fmt not in (b"1\n", b"2\n"):
            raise Damage(f"format: {fmt!r}")
        self.format = int(fmt)
        head = read_regular(os.path.join(path, "HEAD"), 64)
        if head is None or not re.fullmatch(rb"[1-9][0-9]*\n", head):
            raise Damage(f"HEAD: {head!r}")
        self.head = int(head)
        self.store = Store(path)
        if self.format == 1 and self.store.packs:
            raise Damage("format 1, yet packs are there")
        self.checkpoints = {}
        self.raw = {}
        for seq in range(1, self.head + 1):
            raw = read_regular(os.path.join(path, "checkpoints", ckpt_name(seq)), 16384)
            if raw is None:
                raise Damage(f"checkpoint {seq} is missing (HEAD is {self.head})")
            c = parse_checkpoint(raw, f"checkpoint {seq}")
            if c["seq"] != str(seq):
                raise Damage(f"checkpoint {seq}: seq={c['seq']}")
            want = "" if seq == 1 else hashlib.sha256(self.raw[seq - 1]).hexdigest()
            if c["prev"] != want:
                raise Damage(f"checkpoint {seq}: prev does not chain to checkpoint {seq - 1}")
            if not HEX64.match(c["soul"]):
                raise Damage(f"checkpoint {seq}: soul={c['soul']}")
            self.raw[seq] = raw
            self.checkpoints[seq] = c
        count("checkpoints chained", self.head)
        if token is not None:
            self.check_macs(token)
        self.forgotten = self.read_forgotten()

    def check_macs(self, token):
        """FORMAT.md: each checkpoint's MAC, or a later rekey/bind vouching for it."""
        key = hmac.new(b"selfsame/checkpoint/v1", token.encode(), hashlib.sha256).digest()

        def ok(c):
            mac = hmac.new(key, data_check_string(c), hashlib.sha256).hexdigest()
            return hmac.compare_digest(mac, c["hash"])

        vouching = 0
        for seq in range(self.head, 0, -1):
            c = self.checkpoints[seq]
            if "prev_key_hash" in c and ok(c):
                vouching = seq
                break
        for seq in range(vouching + 1, self.head + 1):
            if not ok(self.checkpoints[seq]):
                raise Damage(f"checkpoint {seq}: its MAC does not verify under the token")
        count("checkpoint MACs", self.head - vouching)

    def read_forgotten(self):
        """FORMAT.md, "Forgotten": the seqs listed by the `forget` events at
        or before the head's anchor, chained to it, but the head."""
        anchor = self.checkpoints[self.head].get("log", "")
        if not anchor:
            return {}
        raw = read_regular(os.path.join(self.path, "history.jsonl"))
        if raw is None:
            raise Damage("history.jsonl is missing")
        lines = raw.split(b"\n")[:-1]  # a torn last piece is no line
        hashes = [hashlib.sha256(line).hexdigest() for line in lines]
        if anchor not in hashes:
            raise Damage("the head's log anchor is not in the history")
        at = hashes.index(anchor)
        out = {}
        while True:
            ev = json.loads(lines[at])
            if ev.get("event") == "forget":
                for s in ev.get("forgotten", []):
                    out.setdefault(s, ev.get("at"))
            if at == 0 or json.loads(lines[at])["prev"] != hashes[at - 1]:
                break
            at -= 1
        out.pop(self.head, None)
        return out

    def seq(self, arg):
        if arg == "head":
            return self.head
        if not re.fullmatch(r"[1-9][0-9]*", arg):
            raise Refused(f"not a checkpoint: {arg}")
        seq = int(arg)
        if seq > self.head:
            raise Refused(f"no checkpoint {seq} (HEAD is {self.head})")
        return seq

    def manifest(self, seq):
        if seq in self.forgotten:
            raise Refused(f"checkpoint {seq} was forgotten by retention at {self.forgotten[seq]}")
        c = self.checkpoints[seq]
        text = self.store.read(c["soul"], None, f"the manifest of checkpoint {seq}")
        entries = parse_manifest(text, f"the manifest of checkpoint {seq}")
        files = [e for e in entries if e["kind"] != "dir"]
        if str(len(files)) != c["files"] or str(sum(e["size"] for e in files)) != c["bytes"]:
            raise Damage(f"checkpoint {seq}: files/bytes do not match its manifest")
        if "config" in c:
            # STORAGE.md: the config a checkpoint binds is always loose.
            cfg = read_regular(os.path.join(self.store.objects, c["config"][:2], c["config"][2:]))
            if cfg is None:
                raise Damage(f"checkpoint {seq}: its config object is not loose")
            if hashlib.sha256(cfg).hexdigest() != c["config"]:
                raise Damage(f"hash mismatch: checkpoint {seq}'s config object")
            count("config objects loose")
        return entries

    def content(self, seq, entry):
        return self.store.read(entry["hash"], entry["size"], f"{seq}:{entry['path']}")


def parse_manifest(text, where):
    """FORMAT.md, Manifest v1 and v2."""
    try:
        s = text.decode("utf-8")
    except UnicodeDecodeError:
        raise Damage(f"{where}: not UTF-8")
    if not s.endswith("\n"):
        raise Damage(f"{where}: no final newline")
    lines = s[:-1].split("\n")
    header = lines[0]
    if header == "selfsame-manifest 1":
        version = 1
        count("manifests v1")
    elif header == "selfsame-manifest 2":
        version = 2
        count("manifests v2")
    else:
        raise Damage(f"{where}: header {header!r}")
    entries = []
    dirs = set()
    last = None
    for n, line in enumerate(lines[1:], 2):
        bad = Damage(f"{where}, line {n}: {line!r}")
        if version == 1:
            parts = line.split(" ", 3)
            if len(parts) != 4:
                raise bad
            kind, h, size, path = parts
            if kind not in ("f", "x", "l", "d"):
                raise bad
            mode = {"f": "0644", "x": "0755", "l": None, "d": None}[kind]
        else:
            parts = line.split(" ", 4)
            if len(parts) != 5:
                raise bad
            kind, mode, h, size, path = parts
            if kind not in ("f", "l", "d"):
                raise bad
            if kind == "l":
                if mode != "-":
                    raise bad
                mode = None
            elif not re.fullmatch(r"[0-7]{4}", mode):
                raise bad
        if kind == "d":
            if h != "-" or size != "-":
                raise bad
            size = None
        else:
            if not HEX64.match(h) or not re.fullmatch(r"0|[1-9][0-9]*", size):
                raise bad
            size = int(size)
        segs = path.split("/")
        if any(x in ("", ".", "..") for x in segs) or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in path):
            raise bad
        raw = path.encode()
        if last is not None and raw <= last:
            raise Damage(f"{where}, line {n}: not sorted by raw bytes")
        last = raw
        if len(segs) > 1 and "/".join(segs[:-1]) not in dirs:
            raise Damage(f"{where}, line {n}: its parent is not listed")
        if kind == "d":
            dirs.add(path)
        entries.append(
            {
                "path": path,
                "kind": {"f": "file", "x": "file", "l": "symlink", "d": "dir"}[kind],
                "mode": mode,
                "size": size,
                "hash": None if kind == "d" else h,
            }
        )
    return entries


# ------------------------------------------------------------------ main


def main(argv):
    token = None
    stats = False
    args = []
    it = iter(argv)
    for a in it:
        if a == "--token-env":
            var = next(it, None)
            if var is None or var not in os.environ:
                raise Refused(f"--token-env: {var} is not set")
            token = os.environ[var].strip()
        elif a == "--stats":
            stats = True
        else:
            args.append(a)
    if len(args) < 3:
        raise Refused(__doc__.split("\n\n")[2])
    vault_dir, cmd, seq_arg, rest = args[0], args[1], args[2], args[3:]
    try:
        vault = Vault(vault_dir, token)
        seq = vault.seq(seq_arg)
        entries = vault.manifest(seq)
        if cmd == "ls":
            if rest == ["--json"]:
                print(json.dumps(entries, ensure_ascii=False))
            elif not rest:
                for e in entries:
                    print(
                        e["kind"],
                        e["mode"] or "-",
                        "-" if e["size"] is None else e["size"],
                        e["hash"] or "-",
                        e["path"],
                    )
            else:
                raise Refused("ls SEQ [--json]")
        elif cmd == "cat":
            if len(rest) != 1:
                raise Refused("cat SEQ PATH")
            found = [e for e in entries if e["path"] == rest[0]]
            if not found or found[0]["kind"] == "dir":
                raise Refused(f"checkpoint {seq} records no file {rest[0]}")
            out = vault.content(seq, found[0])
            sys.stdout.buffer.write(out)
            sys.stdout.buffer.flush()
        elif cmd == "export":
            if len(rest) != 1:
                raise Refused("export SEQ DIR")
            for e in entries:
                dest = os.path.join(rest[0], e["path"])
                if e["kind"] == "dir":
                    os.makedirs(dest, exist_ok=True)
                else:
                    with open(dest, "wb") as f:
                        f.write(vault.content(seq, e))
        else:
            raise Refused(f"unknown command {cmd}")
    finally:
        if stats:
            print("stats: " + json.dumps(STATS, sort_keys=True), file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Refused as e:
        print(f"storage_reader: {e}", file=sys.stderr)
        sys.exit(2)
    except Damage as e:
        print(f"storage_reader: corrupted: {e}", file=sys.stderr)
        sys.exit(5)
