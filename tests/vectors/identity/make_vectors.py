#!/usr/bin/env python3
"""Writes the identity key vectors in this directory: a fixed seed, token
and nonce give an exact `.selfsame/identity` file, and a chain of three
checkpoints (init and rest on Telegram, then a bind to a Discord bot) each
carrying `identity` and `signature`.

An implementation independent of the Rust code, from the words of
DESIGN.md ("Format 2": Identity key, Platforms and moves) and
docs/FORMAT.md alone, with Python 3's standard library (hashlib, hmac,
base64, json) and, for Ed25519 and ChaCha20-Poly1305, the `cryptography`
package (`pip install cryptography`). Nothing here imports or runs
selfsame. The Rust tests (crates/selfsame/tests/identity_vectors.rs) read
the files this script writes; they never run it.

Rules implemented here:
* wrap key = HMAC-SHA256(key=b"selfsame/identity/v1", msg=token).
* identity file: `selfsame-identity 1\\n`, `public <b64url(public)>\\n`,
  `sealed <b64url(nonce || ciphertext || tag)>\\n`, where ciphertext and
  tag are ChaCha20-Poly1305 under the wrap key of the 32-byte Ed25519 seed,
  with the first two lines (newlines included) as associated data;
  base64url has no padding.
* checkpoint: the fields of docs/FORMAT.md (Checkpoint v1) in file order,
  then `identity` = b64url(public) as the last field the MAC covers, then
  `prev_key_hash` (a bind's or rekey's: the MAC under the old token), then
  `signature`, then `hash`.
  hash = hex HMAC-SHA256(HMAC-SHA256(b"selfsame/checkpoint/v1", token),
  data-check-string of every field but hash, signature, prev_key_hash).
  signature = b64url(Ed25519(seed, b"selfsame/checkpoint/v1\\n" +
  data-check-string of every field but signature)) — so it covers `hash`
  and `prev_key_hash` too, and fixes every byte of the line but its own.
* Discord: the bot id is the token's first `.`-segment, base64-decoded.

Run from anywhere: python3 tests/vectors/identity/make_vectors.py
"""

import base64
import hashlib
import hmac
import json
import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

HERE = os.path.dirname(os.path.abspath(__file__))

SEED = hashlib.sha256(b"selfsame identity vector seed").digest()
NONCE = bytes(range(1, 13))
NONCE_AFTER_BIND = bytes(range(101, 113))
TELEGRAM = "987654321:identity-vector-token_NOT.a.real.secret"
DISCORD_ID = "1087654321098765432"
DISCORD = (
    base64.b64encode(DISCORD_ID.encode()).decode().rstrip("=")
    + ".GxYz12.identity-vector_NOT-a-real-secret"
)

KEPT = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789*-._")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


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


def dcs(fields, leave_out) -> str:
    kept = [(k, v) for k, v in fields if k not in leave_out]
    kept.sort(key=lambda kv: kv[0].encode("utf-8"))
    return "\n".join(f"{k}={v}" for k, v in kept)


def derive(label: bytes, token: str) -> bytes:
    return hmac.new(label, token.encode("utf-8"), hashlib.sha256).digest()


def identity_file(seed: bytes, token: str, nonce: bytes) -> bytes:
    public = public_of(seed)
    aad = f"selfsame-identity 1\npublic {b64url(public)}\n".encode()
    sealed = nonce + ChaCha20Poly1305(derive(b"selfsame/identity/v1", token)).encrypt(
        nonce, seed, aad
    )
    return aad + f"sealed {b64url(sealed)}\n".encode()


def public_of(seed: bytes) -> bytes:
    key = Ed25519PrivateKey.from_private_bytes(seed)
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def checkpoint(draft, token, old_token=None):
    """The draft's fields signed: identity, [prev_key_hash], signature, hash."""
    fields = draft + [("identity", b64url(public_of(SEED)))]
    mac_dcs = dcs(fields, {"hash", "signature", "prev_key_hash"})
    h = hmac.new(derive(b"selfsame/checkpoint/v1", token), mac_dcs.encode(), hashlib.sha256)
    tail = []
    if old_token is not None:
        old = hmac.new(derive(b"selfsame/checkpoint/v1", old_token), mac_dcs.encode(), hashlib.sha256)
        tail.append(("prev_key_hash", old.hexdigest()))
    covered = fields + tail + [("hash", h.hexdigest())]
    message = b"selfsame/checkpoint/v1\n" + dcs(covered, {"signature"}).encode()
    signature = Ed25519PrivateKey.from_private_bytes(SEED).sign(message)
    signed = fields + tail + [("signature", b64url(signature)), ("hash", h.hexdigest())]
    line = "&".join(f"{form_encode(k)}={form_encode(v)}" for k, v in signed) + "\n"
    return {
        "hash": h.hexdigest(),
        "signature": b64url(signature),
        "prev_key_hash": tail[0][1] if tail else None,
        "signed_message": message.decode(),
        "bytes": line.encode("ascii"),
    }


def main():
    public = public_of(SEED)
    files = {
        "identity": identity_file(SEED, TELEGRAM, NONCE),
        "identity-after-bind": identity_file(SEED, DISCORD, NONCE_AFTER_BIND),
    }
    config = hashlib.sha256(b"soul = \"soul\"\n").hexdigest()
    soul = hashlib.sha256(b"selfsame-manifest 2\nf 0644 " + b"0" * 64 + b" 5 a.md\n").hexdigest()

    def header(seq, prev, at, reason, log, platform, bot_id):
        return [
            ("v", "1"), ("seq", str(seq)), ("prev", prev), ("soul", soul),
            ("files", "1"), ("bytes", "5"), ("sealed_at", at), ("reason", reason),
            ("shell", "agent 1.0 (vectors)"), ("format", "v1"), ("log", log),
            ("platform", platform), ("bot_id", bot_id), ("config", config),
        ]

    cases = []
    prev = ""
    plan = [
        (1, "2030-01-01T00:00:00.000Z", "init", "telegram", "987654321", TELEGRAM, None),
        (2, "2030-01-01T06:00:00.250Z", "rest", "telegram", "987654321", TELEGRAM, None),
        (3, "2030-01-02T00:00:00.000Z", "bind", "discord", DISCORD_ID, DISCORD, TELEGRAM),
    ]
    for seq, at, reason, platform, bot_id, token, old in plan:
        log = hashlib.sha256(f"history line before checkpoint {seq}".encode()).hexdigest()
        draft = header(seq, prev, at, reason, log, platform, bot_id)
        c = checkpoint(draft, token, old)
        name = "%08d.ckpt" % seq
        files[name] = c["bytes"]
        cases.append({
            "file": name,
            "fields": [[k, v] for k, v in draft],
            "token": token,
            "old_token": old,
            "hash": c["hash"],
            "prev_key_hash": c["prev_key_hash"],
            "signature": c["signature"],
            "signed_message": c["signed_message"],
            "file_sha256": hashlib.sha256(c["bytes"]).hexdigest(),
        })
        prev = hashlib.sha256(c["bytes"]).hexdigest()

    out = {
        "about": "written by make_vectors.py in this directory; do not edit by hand",
        "seed_hex": SEED.hex(),
        "nonce_hex": NONCE.hex(),
        "nonce_after_bind_hex": NONCE_AFTER_BIND.hex(),
        "telegram_token": TELEGRAM,
        "discord_token": DISCORD,
        "discord_bot_id": DISCORD_ID,
        "public_b64url": b64url(public),
        "identity": "selfsame:ed25519:" + b64url(public),
        "wrap_key_telegram_hex": derive(b"selfsame/identity/v1", TELEGRAM).hex(),
        "identity_file": "identity",
        "identity_file_after_bind": "identity-after-bind",
        "checkpoints": cases,
    }
    for name, data in files.items():
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(data)
    with open(os.path.join(HERE, "identity.json"), "w") as f:
        json.dump(out, f, indent=2, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
