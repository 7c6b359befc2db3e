#!/usr/bin/env python3
"""Writes the Telegram test vectors in this directory.

An implementation independent of the Rust crate: Python's standard library
(hmac, hashlib, base64, urllib.parse) and, for Ed25519, the `cryptography`
package (`pip install cryptography`). The Rust tests read only the JSON files
this script writes; they never run it.

Two sorts of case:
* real data, copied from Telegram's documentation and from the test suites
  of maintained validators, each citing repository, path and commit; this
  script re-checks every one of them before writing it;
* computed data: signed here with made-up test tokens and a test Ed25519 key
  whose seed is derived below, to pin each rule of
  https://core.telegram.org/bots/webapps and
  https://core.telegram.org/widgets/login.

Every case's expected outcome is written by hand below AND recomputed by the
small validator in this file; the script stops if they disagree.

Run from anywhere: python3 tests/vectors/telegram/make_vectors.py
"""

import base64
import hashlib
import hmac
import json
import os
import urllib.parse

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

HERE = os.path.dirname(os.path.abspath(__file__))

PRODUCTION_KEY = "e7bf03a2fa4602af4580703d88dda5bb59f32ed8b02a56c187fe7d34caed242d"
TEST_ENV_KEY = "40055058a4ee38156a06562e52eece92a771bcd8346a8c4615cb7376eddf72ec"
THIRD_PARTY_DOC = "https://core.telegram.org/bots/webapps#validating-data-for-third-party-use"


# --- an independent validator -------------------------------------------------


class Refused(Exception):
    def __init__(self, code):
        super().__init__(code)
        self.code = code


def strict_decode(text):
    out = bytearray()
    i = 0
    raw = text.encode("utf-8")
    while i < len(raw):
        c = raw[i]
        if c == ord("+"):
            out.append(0x20)
        elif c == ord("%"):
            pair = raw[i + 1 : i + 3]
            if len(pair) != 2 or any(chr(b) not in "0123456789abcdefABCDEF" for b in pair):
                raise Refused("malformed")
            out.append(int(pair, 16))
            i += 2
        else:
            out.append(c)
        i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused("malformed")


def parse(text):
    if text == "":
        raise Refused("malformed")
    pairs = []
    seen = set()
    for pair in text.split("&"):
        if "=" not in pair:
            raise Refused("malformed")
        k, v = pair.split("=", 1)
        k, v = strict_decode(k), strict_decode(v)
        if k in seen:
            raise Refused("duplicate_key")
        seen.add(k)
        pairs.append((k, v))
    return pairs


def dcs(pairs, exclude):
    kept = sorted((p for p in pairs if p[0] not in exclude), key=lambda p: p[0].encode())
    return "\n".join(f"{k}={v}" for k, v in kept)


def webapp_key(token):
    return hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()


def login_key(token):
    return hashlib.sha256(token.encode()).digest()


def mac_hex(key, message):
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def check_age(pairs, now, max_age):
    d = dict(pairs)
    if "auth_date" not in d:
        raise Refused("missing_auth_date")
    a = d["auth_date"]
    if not a or not all(c in "0123456789" for c in a):
        raise Refused("bad_auth_date")
    if now is not None and now - int(a) > max_age:
        raise Refused("expired")


def check_json(pairs):
    d = dict(pairs)
    for key, required in (("user", ("id", "first_name")), ("receiver", ("id", "first_name")),
                          ("chat", ("id", "type", "title"))):
        if key in d:
            try:
                obj = json.loads(d[key])
            except ValueError:
                raise Refused("bad_field")
            if not isinstance(obj, dict) or any(r not in obj for r in required):
                raise Refused("bad_field")
            if not isinstance(obj["id"], int) or isinstance(obj["id"], bool):
                raise Refused("bad_field")


def validate(case):
    try:
        pairs = parse(case["data"])
        d = dict(pairs)
        kind = case["kind"]
        if kind in ("init_data", "login"):
            if "hash" not in d:
                raise Refused("missing_hash")
            key = (webapp_key if kind == "init_data" else login_key)(case["token"])
            if not hmac.compare_digest(mac_hex(key, dcs(pairs, ["hash"])).encode(), d["hash"].encode()):
                raise Refused("hash_mismatch")
        else:
            if "signature" not in d:
                raise Refused("missing_signature")
            sig = d["signature"]
            if any(c in "+/" for c in sig):
                raise Refused("bad_signature")
            try:
                raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
            except ValueError:
                raise Refused("bad_signature")
            if len(raw) != 64:
                raise Refused("bad_signature")
            pk = {"production": PRODUCTION_KEY, "test": TEST_ENV_KEY}.get(
                case["public_key"], case["public_key"])
            message = f"{case['bot_id']}:WebAppData\n" + dcs(pairs, ["hash", "signature"])
            try:
                Ed25519PublicKey.from_public_bytes(bytes.fromhex(pk)).verify(raw, message.encode())
            except Exception:
                raise Refused("bad_signature")
        check_age(pairs, case.get("now"), case.get("max_age"))
        if kind == "login":
            if not d.get("id", "").lstrip("-").isdigit():
                raise Refused("bad_field")
        else:
            check_json(pairs)
        return "valid"
    except Refused as r:
        return r.code


# --- signing helpers for computed cases ---------------------------------------


def enc(pairs):
    """WHATWG form encoding, like URLSearchParams: space as '+'."""
    return "&".join(
        urllib.parse.quote_plus(k, safe="*-._") + "=" + urllib.parse.quote_plus(v, safe="*-._")
        for k, v in pairs
    )


def sign(pairs, key, hash_first=False):
    h = mac_hex(key, dcs(pairs, ["hash"]))
    return [("hash", h)] + pairs if hash_first else pairs + [("hash", h)]


def b64url(raw, pad=False):
    s = base64.urlsafe_b64encode(raw).decode()
    return s if pad else s.rstrip("=")


TOKEN = "1234567890:AAselfsame-test-vectors-not-a-real-token"
OTHER_TOKEN = "1234567890:AAselfsame-test-vectors-another-token"
BOT_ID = 1234567890
NOW = 1700000000
DAY = 86400
SEED = hashlib.sha256(b"selfsame telegram test vectors: Ed25519 seed").digest()
ED_KEY = Ed25519PrivateKey.from_private_bytes(SEED)
ED_PUB = ED_KEY.public_key().public_bytes_raw().hex()
USER = json.dumps({"id": 42, "first_name": "Ada", "last_name": "Lovelace", "username": "ada",
                   "language_code": "en", "allows_write_to_pm": True,
                   "photo_url": "https:\\/\\/t.me\\/i\\/userpic\\/320\\/ada.svg"},
                  separators=(",", ":")).replace("\\\\/", "\\/")


def ed_sign(pairs, bot_id=BOT_ID):
    message = f"{bot_id}:WebAppData\n" + dcs(pairs, ["hash", "signature"])
    return ED_KEY.sign(message.encode())


def computed(name, about, data, expect, **extra):
    case = {"name": name, "source": "computed by make_vectors.py: " + about,
            "data": data, "expect": expect}
    case.update(extra)
    return case


# --- real data ------------------------------------------------------------------

GOLANG = "github.com/Telegram-Mini-Apps/init-data-golang"
TMAJS = "github.com/Telegram-Mini-Apps/telegram-apps (tma.js)"
AIOGRAM = "github.com/aiogram/aiogram"

DOC_TOKEN = "5768337691:AAH5YkoiEuPk8-FZa32hStHTqXiLPtAEhx8"
DOC_DATA = (
    "query_id=AAHdF6IQAAAAAN0XohDhrOrc&user=%7B%22id%22%3A279058397%2C%22first_name%22%3A%22Vladislav"
    "%22%2C%22last_name%22%3A%22Kibenko%22%2C%22username%22%3A%22vdkfrost%22%2C%22language_code%22%3A"
    "%22ru%22%2C%22is_premium%22%3Atrue%7D&auth_date=1662771648"
    "&hash=c501b71e775f74ce10e377dea85a7ea24ecd640b223ea86dfe453e0eaed2e2b2"
)
TMA_SP = (
    "auth_date=1&can_send_after=10000&chat=%7B%22id%22%3A1%2C%22type%22%3A%22group%22%2C%22title%22"
    "%3A%22chat-title%22%2C%22photo_url%22%3A%22group%22%2C%22username%22%3A%22my-chat%22%7D"
    "&chat_instance=888&chat_type=sender"
    "&hash=47cfa22e72b887cba90c9cb833c5ea0f599975b6ce7193741844b5c4a4228b40&query_id=QUERY"
    "&receiver=%7B%22added_to_attachment_menu%22%3Afalse%2C%22allows_write_to_pm%22%3Atrue%2C"
    "%22first_name%22%3A%22receiver-first-name%22%2C%22id%22%3A991%2C%22is_bot%22%3Afalse%2C"
    "%22is_premium%22%3Atrue%2C%22language_code%22%3A%22ru%22%2C%22last_name%22%3A"
    "%22receiver-last-name%22%2C%22photo_url%22%3A%22receiver-photo%22%2C%22username%22%3A"
    "%22receiver-username%22%7D&start_param=debug&user=%7B%22added_to_attachment_menu%22%3Afalse"
    "%2C%22allows_write_to_pm%22%3Afalse%2C%22first_name%22%3A%22user-first-name%22%2C%22id%22%3A222"
    "%2C%22is_bot%22%3Atrue%2C%22is_premium%22%3Afalse%2C%22language_code%22%3A%22en%22%2C"
    "%22last_name%22%3A%22user-last-name%22%2C%22photo_url%22%3A%22user-photo%22%2C%22username"
    "%22%3A%22user-username%22%7D"
)
# Real Telegram-signed launches of bot 7342037359 (its token was published with them).
REAL_TOKEN = "7342037359:AAHI25ES9xCOMPokpYoz-p8XVrZUdygo2J4"
REAL_USER = (
    "user=%7B%22id%22%3A279058397%2C%22first_name%22%3A%22Vladislav%20%2B%20-%20%3F%20%5C%2F%22%2C"
    "%22last_name%22%3A%22Kibenko%22%2C%22username%22%3A%22vdkfrost%22%2C%22language_code%22%3A%22ru"
    "%22%2C%22is_premium%22%3Atrue%2C%22allows_write_to_pm%22%3Atrue%2C%22photo_url%22%3A%22https%3A"
    "%5C%2F%5C%2Ft.me%5C%2Fi%5C%2Fuserpic%5C%2F320%5C%2F4FPEE4tmP3ATHa57u6MqTDih13LTOiMoKoLDRG4PnSA.svg"
    "%22%7D&chat_instance=8134722200314281151&chat_type=private"
)
REAL_A_SIG = "TYJxVcisqbWjtodPepiJ6ghziUL94-KNpG8Pau-X7oNNLNBM72APCpi_RKiUlBvcqo5L-LAxIc3dnTzcZX_PDg"
REAL_A = (REAL_USER + "&auth_date=1733509682&signature=" + REAL_A_SIG
          + "&hash=a433d8f9847bd6addcc563bff7cc82c89e97ea0d90c11fe5729cae6796a36d73")
REAL_B_SIG = "zL-ucjNyREiHDE8aihFwpfR9aggP2xiAo3NSpfe-p7IbCisNlDKlo7Kb6G4D0Ao2mBrSgEk4maLSdv6MLIlADQ"
REAL_B = (REAL_USER + "&auth_date=1733584787"
          + "&hash=2174df5b000556d044f3f020384e879c8efcab55ddea2ced4eb752e93e7080d6&signature="
          + REAL_B_SIG)
AIOGRAM_DATA = (
    "auth_date=1650385342&user=%7B%22id%22%3A42%2C%22first_name%22%3A%22Test%22%7D&query_id=test"
)
AIOGRAM_ED_PUB = "4112765021341e5415e772cd65903f6b94e3ea1c2ab669e6d3e18ee2db00da61"
AIOGRAM_ED_SIG = "JQ0JR2tjC65yq_jNZV0wuJVX6J-SWPMV0mprUXG34g-NvxL4RcF1Rz5n4VVo00VRghEUBf5t___uoeb1-jU_Cw"
WIDGET_TOKEN = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"
WIDGET = [("id", "42"), ("first_name", "John"), ("last_name", "Smith"), ("username", "username"),
          ("photo_url", "https://t.me/i/userpic/320/picname.jpg"), ("auth_date", "1565810688"),
          ("hash", "c303db2b5a06fe41d23a9b14f7c545cfc11dcc7473c07c9c5034ae60062461ce")]


def init_data_cases():
    golang_validate = f"{GOLANG} validate_test.go @05e5c7f76012903f5d058814a571d99a8284d5b9"
    golang_readme = f"{GOLANG} README.md @aea9e8dda5711da5e64d7767dc50f6750ae36c49"
    tmajs_node = (f"{TMAJS} packages/init-data-node/src/entries/node.test.ts"
                  " @1c586e6be5ec3e283fd5af4c953cadd6e34f0c1b")
    aiogram_web_app = f"{AIOGRAM} tests/test_utils/test_web_app.py @1b7b594310e61f11e06069e90e96117ff0dd34d7"
    kind = {"kind": "init_data"}
    cases = [
        dict(kind, name="real_docs_example", token=DOC_TOKEN, data=DOC_DATA, expect="valid",
             source=golang_validate + "; also the validation example of the tma.js documentation"
                    " (docs.telegram-mini-apps.com, packages/tma-js-init-data-node/validating)",
             expect_json={"/user/id": 279058397, "/user/last_name": "Kibenko",
                          "/user/is_premium": True, "/query_id": "AAHdF6IQAAAAAN0XohDhrOrc",
                          "/auth_date": 1662771648}),
        dict(kind, name="real_docs_example_expired", token=DOC_TOKEN, data=DOC_DATA,
             now=1662771648 + 2, max_age=1, expect="expired",
             source=golang_validate + " (expIn = 1 s; `now` pinned here)"),
        dict(kind, name="real_docs_example_text_appended_to_hash", token=DOC_TOKEN,
             data=DOC_DATA + "abc", expect="hash_mismatch", source=golang_validate),
        dict(kind, name="real_docs_example_auth_date_not_integer", token=DOC_TOKEN,
             data="hash=abc&auth_date=test", expect="hash_mismatch",
             source=golang_validate + " (Go reports the auth_date first; here the hash is checked"
                    " first, so unsigned data learns nothing about other fields)"),
        dict(kind, name="real_tmajs_all_fields_hash_in_the_middle", token=DOC_TOKEN, data=TMA_SP,
             expect="valid", source=tmajs_node,
             expect_json={"/auth_date": 1, "/can_send_after": "10000", "/chat/id": 1,
                          "/chat/type": "group", "/chat/title": "chat-title",
                          "/chat/photo_url": "group", "/chat_instance": "888",
                          "/chat_type": "sender", "/query_id": "QUERY", "/receiver/id": 991,
                          "/receiver/is_bot": False, "/start_param": "debug", "/user/id": 222,
                          "/user/added_to_attachment_menu": False}),
        dict(kind, name="real_tmajs_wrong_token", token=DOC_TOKEN + "A", data=TMA_SP,
             expect="hash_mismatch", source=tmajs_node + " (token + 'A')"),
        dict(kind, name="real_tmajs_expired_by_default_day", token=DOC_TOKEN, data=TMA_SP,
             now=1 + DAY + 1, max_age=DAY, expect="expired", source=tmajs_node),
        dict(kind, name="real_telegram_signed_with_signature", token=REAL_TOKEN, data=REAL_A,
             expect="valid", source=golang_readme + " (real Telegram data with its bot token;"
                    " its hash verifies only with `signature` inside the data-check-string)",
             data_check_string=dcs(parse(REAL_A), ["hash"]),
             expect_json={"/user/first_name": "Vladislav + - ? /",
                          "/user/photo_url": "https://t.me/i/userpic/320/4FPEE4tmP3ATHa57u6MqTDih13LTOiMoKoLDRG4PnSA.svg",
                          "/chat_type": "private", "/chat_instance": "8134722200314281151",
                          "/signature": REAL_A_SIG}),
        dict(kind, name="real_telegram_signed_signature_tampered", token=REAL_TOKEN,
             data=REAL_A.replace(REAL_A_SIG, REAL_A_SIG[:-2] + "Dw"), expect="hash_mismatch",
             source=golang_readme + "; signature changed here: the hash covers it"),
        dict(kind, name="real_telegram_signed_auth_date_changed", token=REAL_TOKEN,
             data=REAL_A.replace("auth_date=1733509682", "auth_date=1733509683"),
             expect="hash_mismatch", source=golang_readme + "; auth_date changed here"),
        dict(kind, name="real_aiogram_valid", token="42:TEST",
             data=AIOGRAM_DATA + "&hash=46d2ea5e32911ec8d30999b56247654460c0d20949b6277af519e76271182803",
             expect="valid", source=aiogram_web_app,
             expect_json={"/user/id": 42, "/user/first_name": "Test", "/query_id": "test"}),
        dict(kind, name="real_aiogram_plus_as_space_string_id", token="42:TEST",
             data="auth_date=1650385342&user=%7B%22id%22%3A+%22123456789%22%2C+%22first_name%22%3A+"
                  "%22PlaceholderFirstName%22%2C+%22last_name%22%3A+%22PlaceholderLastName+%5Cud83c"
                  "%5Cuddfa%5Cud83c%5Cudde6%22%2C+%22username%22%3A+%22Latand%22%2C+%22language_code"
                  "%22%3A+%22en%22%2C+%22is_premium%22%3A+%22true%22%2C+%22allows_write_to_pm%22%3A+"
                  "%22true%22%7D&query_id=test"
                  "&hash=b3c8b293f14ad0f7f0abcf769aea1209a72295d30a87eb0e74df855d32e53bfe",
             expect="bad_field",
             source=aiogram_web_app + " (aiogram checks only the hash, which verifies here with"
                    " '+' decoded as a space; the typed user is refused because its `id` is a"
                    " JSON string, which Telegram never sends)",
             data_check_string=(
                 "auth_date=1650385342\nquery_id=test\nuser={\"id\": \"123456789\", \"first_name\":"
                 " \"PlaceholderFirstName\", \"last_name\": \"PlaceholderLastName \\ud83c\\uddfa"
                 "\\ud83c\\udde6\", \"username\": \"Latand\", \"language_code\": \"en\","
                 " \"is_premium\": \"true\", \"allows_write_to_pm\": \"true\"}")),
        dict(kind, name="real_aiogram_wrong_token", token="42:INVALID",
             data=AIOGRAM_DATA + "&hash=46d2ea5e32911ec8d30999b56247654460c0d20949b6277af519e76271182803",
             expect="hash_mismatch", source=aiogram_web_app),
        dict(kind, name="real_aiogram_no_hash", token="42:TEST",
             data="user=%7B%22id%22%3A42%2C%22first_name%22%3A%22Test%22%7D&query_id=test",
             expect="missing_hash", source=aiogram_web_app),
        dict(kind, name="real_aiogram_empty", token="42:TEST", data="", expect="malformed",
             source=aiogram_web_app),
        dict(kind, name="real_aiogram_pair_without_equals", token="42:TEST",
             data="test&foo=bar=baz", expect="malformed", source=aiogram_web_app),
        dict(kind, name="real_aiogram_non_ascii_hash", token="42:TEST",
             data="user=%7B%22id%22%3A42%2C%22first_name%22%3A%22Test%22%7D&query_id=test"
                  "&hash=%C3%A9%C3%A9%C3%A9",
             expect="hash_mismatch", source=aiogram_web_app + " (aiogram issue #1903)"),
    ]

    key = webapp_key(TOKEN)
    base = [("auth_date", str(NOW)), ("query_id", "AAQ-selfsame"), ("user", USER)]
    valid = sign(base, key)
    window = dict(now=NOW + 100, max_age=DAY)
    t = {"kind": "init_data", "token": TOKEN}

    def tampered_user():
        return [(k, v.replace('"id":42', '"id":43') if k == "user" else v) for k, v in valid]

    upper = [(k, v.upper() if k == "hash" else v) for k, v in valid]
    non_ascii = sign([("auth_date", str(NOW)),
                      ("user", json.dumps({"id": 7, "first_name": "Алиса 😀", "last_name": "Müller"},
                                          ensure_ascii=False, separators=(",", ":")))], key)
    plus_space = [("auth_date", str(NOW)), ("start_param", "a b"), ("query_id", "x+y")]
    empty_value = sign([("auth_date", str(NOW)), ("start_param", "")], key)
    empty_value_dropped = [p for p in empty_value if p[0] != "start_param"]
    ed_fields = [("auth_date", str(NOW)), ("chat_type", "sender"), ("user", USER)]
    ed_fields = ed_fields + [("signature", b64url(ed_sign(ed_fields)))]
    with_sig = sign(ed_fields, key)
    sig_value = dict(with_sig)["signature"]
    flipped = sig_value[:10] + ("A" if sig_value[10] != "A" else "B") + sig_value[11:]
    sig_tampered = [(k, flipped if k == "signature" else v) for k, v in with_sig]
    sig_tampered_rehashed = sign([p for p in sig_tampered if p[0] != "hash"], key)
    injected = sign([("auth_date", str(NOW)), ("start_param", "x&hash=" + "0" * 64 + "&a=b=c")], key)
    byte_order = sign([("auth_date", str(NOW)), ("Zed", "upper"), ("alpha", "lower"), ("_x", "u")],
                      key)
    no_auth_date = sign([("query_id", "q"), ("user", USER)], key)
    bad_auth_date = sign([("auth_date", "1700000000.5"), ("user", USER)], key)
    future = sign([("auth_date", str(NOW + 30)), ("user", USER)], key)
    bad_user = sign([("auth_date", str(NOW)), ("user", "{not json")], key)
    login_keyed = sign(base, login_key(TOKEN))
    hex_keyed = sign(base, key.hex().encode())
    signed_data = mac_hex(key, dcs(valid, ["hash"]))

    cases += [
        dict(t, name="computed_valid", data=enc(valid), expect="valid",
             source="computed by make_vectors.py: fields signed with the Mini App key",
             data_check_string=dcs(valid, ["hash"]),
             expect_json={"/user/id": 42, "/user/photo_url": "https://t.me/i/userpic/320/ada.svg",
                          "/query_id": "AAQ-selfsame", "/auth_date": NOW}, **window),
        dict(t, name="computed_hash_first", data=enc(sign(base, key, hash_first=True)),
             expect="valid", source="computed by make_vectors.py: hash as the first pair", **window),
        dict(t, name="computed_tampered_field", data=enc(tampered_user()), expect="hash_mismatch",
             source="computed by make_vectors.py: user.id 42 -> 43 after signing", **window),
        dict(t, name="computed_wrong_token", data=enc(valid), expect="hash_mismatch",
             source="computed by make_vectors.py: checked with another bot's token",
             **{**window, "token": OTHER_TOKEN}),
        dict(t, name="computed_missing_hash", data=enc([p for p in valid if p[0] != "hash"]),
             expect="missing_hash", source="computed by make_vectors.py", **window),
        dict(t, name="computed_empty_hash", data=enc([(k, "" if k == "hash" else v) for k, v in valid]),
             expect="hash_mismatch", source="computed by make_vectors.py", **window),
        dict(t, name="computed_uppercase_hash", data=enc(upper), expect="hash_mismatch",
             source="computed by make_vectors.py: the right MAC in uppercase hex", **window),
        dict(t, name="computed_expired", data=enc(valid), now=NOW + DAY + 1, max_age=DAY,
             expect="expired", source="computed by make_vectors.py: one second past one day"),
        dict(t, name="computed_exactly_at_limit", data=enc(valid), now=NOW + DAY, max_age=DAY,
             expect="valid", source="computed by make_vectors.py: exactly one day old"),
        dict(t, name="computed_auth_date_in_future", data=enc(future), now=NOW, max_age=DAY,
             expect="valid", source="computed by make_vectors.py: auth_date 30 s after now"),
        dict(t, name="computed_missing_auth_date", data=enc(no_auth_date), expect="missing_auth_date",
             source="computed by make_vectors.py: signed, but no auth_date"),
        dict(t, name="computed_auth_date_not_integer", data=enc(bad_auth_date),
             expect="bad_auth_date", source="computed by make_vectors.py: auth_date=1700000000.5"),
        dict(t, name="computed_user_not_json", data=enc(bad_user), expect="bad_field",
             source="computed by make_vectors.py: signed, user is not JSON"),
        dict(t, name="computed_non_ascii_user", data=enc(non_ascii), expect="valid",
             source="computed by make_vectors.py: UTF-8 user JSON, percent-encoded",
             data_check_string=dcs(non_ascii, ["hash"]),
             expect_json={"/user/first_name": "Алиса 😀", "/user/last_name": "Müller"}, **window),
        dict(t, name="computed_plus_is_space_pct2b_is_plus",
             data=enc(sign(plus_space, key)), expect="valid",
             source="computed by make_vectors.py: 'a b' sent as a+b, 'x+y' sent as x%2By",
             expect_json={"/start_param": "a b", "/query_id": "x+y"}, **window),
        dict(t, name="computed_literal_plus_is_not_plus",
             data="auth_date=%d&start_param=a+b&hash=%s" % (
                 NOW, mac_hex(key, "auth_date=%d\nstart_param=a+b" % NOW)),
             expect="hash_mismatch",
             source="computed by make_vectors.py: signed over 'a+b' but sent as a raw a+b,"
                    " which decodes to 'a b'", **window),
        dict(t, name="computed_empty_value_kept", data=enc(empty_value), expect="valid",
             source="computed by make_vectors.py: start_param= is a received field",
             data_check_string=dcs(empty_value, ["hash"]), expect_json={"/start_param": ""},
             **window),
        dict(t, name="computed_empty_value_dropped", data=enc(empty_value_dropped),
             expect="hash_mismatch",
             source="computed by make_vectors.py: the same hash without the empty field", **window),
        dict(t, name="computed_duplicate_user", data=enc(valid) + "&user=" + urllib.parse.quote(USER),
             expect="duplicate_key", source="computed by make_vectors.py", **window),
        dict(t, name="computed_duplicate_hash", data=enc(valid) + "&hash=" + "0" * 64,
             expect="duplicate_key", source="computed by make_vectors.py", **window),
        dict(t, name="computed_duplicate_signature",
             data=enc(with_sig) + "&signature=" + sig_value, expect="duplicate_key",
             source="computed by make_vectors.py", **window),
        dict(t, name="computed_duplicate_auth_date", data="auth_date=1&" + enc(valid),
             expect="duplicate_key", source="computed by make_vectors.py", **window),
        dict(t, name="computed_empty_input", data="", expect="malformed",
             source="computed by make_vectors.py"),
        dict(t, name="computed_bad_escape", data="auth_date=1&user=%zz&hash=" + "0" * 64,
             expect="malformed", source="computed by make_vectors.py"),
        dict(t, name="computed_truncated_escape", data="auth_date=1&hash=" + "0" * 63 + "%4",
             expect="malformed", source="computed by make_vectors.py"),
        dict(t, name="computed_invalid_utf8", data="auth_date=1&user=%FF&hash=" + "0" * 64,
             expect="malformed", source="computed by make_vectors.py"),
        dict(t, name="computed_trailing_ampersand", data=enc(valid) + "&", expect="malformed",
             source="computed by make_vectors.py"),
        dict(t, name="computed_signature_present_valid", data=enc(with_sig), expect="valid",
             source="computed by make_vectors.py: signature field covered by the hash",
             data_check_string=dcs(with_sig, ["hash"]), expect_json={"/signature": sig_value},
             **window),
        dict(t, name="computed_signature_tampered", data=enc(sig_tampered), expect="hash_mismatch",
             source="computed by make_vectors.py: one signature character changed", **window),
        dict(t, name="computed_value_with_encoded_separators", data=enc(injected), expect="valid",
             source="computed by make_vectors.py: a value holding %26hash%3D…; decoding before"
                    " splitting would see a second hash",
             expect_json={"/start_param": "x&hash=" + "0" * 64 + "&a=b=c"}, **window),
        dict(t, name="computed_keys_sorted_by_bytes", data=enc(byte_order), expect="valid",
             source="computed by make_vectors.py: 'Zed' < '_x' < 'alpha' in byte order",
             data_check_string=dcs(byte_order, ["hash"]), **window),
        dict(t, name="computed_login_key_used_for_mini_app", data=enc(login_keyed),
             expect="hash_mismatch",
             source="computed by make_vectors.py: signed with SHA-256(token), the Login Widget key",
             **window),
        dict(t, name="computed_hex_text_of_secret_as_key", data=enc(hex_keyed),
             expect="hash_mismatch",
             source="computed by make_vectors.py: signed with the hex text of the secret key",
             **window),
    ]
    assert signed_data == dict(valid)["hash"]
    return cases, {"with_sig": with_sig, "sig_tampered_rehashed": sig_tampered_rehashed}


def third_party_cases(extra):
    golang_tp = f"{GOLANG} validate_third_party_test.go @29163138f1c57deadf3e6c36976c4215b70aec46"
    golang_readme = f"{GOLANG} README.md @aea9e8dda5711da5e64d7767dc50f6750ae36c49"
    tmajs_shared = (f"{TMAJS} packages/init-data-node/src/entries/shared.test.ts"
                    " @8b47fae5efeead9bee6d05a23e69b04b299fae45")
    aiogram_sig = (f"{AIOGRAM} tests/test_utils/test_web_app_signature.py"
                   " @127a3282d451f41d5c90ce93fdda440ba976578f")
    init_data_rs = ("github.com/escwxyz/init-data-rs src/third_party_validation.rs"
                    " @b826367f7879d0d45d2d84a8eae84f7c70fa8b0b")
    prod = {"kind": "third_party", "bot_id": 7342037359, "public_key": "production"}
    cases = [
        dict(prod, name="real_signed_by_telegram", data=REAL_B, expect="valid",
             source=golang_tp + "; the same data in " + tmajs_shared + " and " + init_data_rs
                    + "; key from " + THIRD_PARTY_DOC,
             signed_message=f"7342037359:WebAppData\n" + dcs(parse(REAL_B), ["hash", "signature"]),
             expect_json={"/user/id": 279058397, "/auth_date": 1733584787}),
        dict(prod, name="real_signed_by_telegram_readme", data=REAL_A, expect="valid",
             source=golang_readme),
        dict(prod, name="real_signed_by_telegram_expired", data=REAL_B, now=1733584787 + 2,
             max_age=1, expect="expired", source=golang_tp + " (expIn = 1 s; `now` pinned here)"),
        dict(prod, name="real_wrong_bot_id", data=REAL_B, expect="bad_signature",
             source=tmajs_shared + " (botId + 1)", bot_id=7342037360),
        dict(prod, name="real_test_environment_key", data=REAL_B, expect="bad_signature",
             source=init_data_rs + " (test_wrong_environment)", public_key="test"),
        dict(prod, name="real_character_appended_to_signature", data=REAL_B + "a",
             expect="bad_signature", source=golang_tp),
        dict(prod, name="real_no_signature", data="auth_date=1", expect="missing_signature",
             source=tmajs_shared),
        dict(prod, name="real_user_changed",
             data=REAL_B.replace("Kibenko", "Kibenco"), expect="bad_signature",
             source=golang_tp + "; last_name changed here"),
        {"kind": "third_party", "bot_id": 42, "public_key": AIOGRAM_ED_PUB,
         "name": "real_aiogram_caller_key_no_hash", "data": AIOGRAM_DATA + "&signature=" + AIOGRAM_ED_SIG,
         "expect": "valid", "source": aiogram_sig + " (a caller-given key; no hash field)"},
        {"kind": "third_party", "bot_id": 42, "public_key": AIOGRAM_ED_PUB,
         "name": "real_aiogram_signature_tampered",
         "data": AIOGRAM_DATA + "&signature=JQ0JR2tjC65yq_jNZV0wuJVX6J-SWPMV0mprUXG34g-NvxL4RcF1Rz5n4VVo00VRghEUBf5t___uoeb1-j1U_w",
         "expect": "bad_signature", "source": aiogram_sig},
        {"kind": "third_party", "bot_id": 42, "public_key": AIOGRAM_ED_PUB,
         "name": "real_aiogram_no_signature", "data": AIOGRAM_DATA, "expect": "missing_signature",
         "source": aiogram_sig},
    ]

    mine = {"kind": "third_party", "bot_id": BOT_ID, "public_key": ED_PUB}
    with_sig = extra["with_sig"]
    sig = dict(with_sig)["signature"]
    padded = [(k, v + "=" * (-len(v) % 4) if k == "signature" else v) for k, v in with_sig]
    assert dict(padded)["signature"] != sig
    short = [(k, b64url(bytes(63)) if k == "signature" else v) for k, v in with_sig]
    standard = [(k, base64.b64encode(base64.urlsafe_b64decode(v + "==")).decode().rstrip("=")
                 if k == "signature" else v) for k, v in with_sig]
    assert any(c in "+/" for c in dict(standard)["signature"])
    cases += [
        dict(mine, name="computed_signature_valid", data=enc(with_sig), expect="valid",
             source="computed by make_vectors.py: signed with the test key from SEED",
             signed_message=f"{BOT_ID}:WebAppData\n" + dcs(with_sig, ["hash", "signature"])),
        dict(mine, name="computed_signature_padded", data=enc(padded), expect="valid",
             source="computed by make_vectors.py: the same signature with '=' padding"),
        dict(mine, name="computed_signature_tampered",
             data=enc(extra["sig_tampered_rehashed"]), expect="bad_signature",
             source="computed by make_vectors.py: one signature character changed, hash redone"),
        dict(mine, name="computed_signature_63_bytes", data=enc(short), expect="bad_signature",
             source="computed by make_vectors.py"),
        dict(mine, name="computed_signature_standard_base64", data=enc(standard),
             expect="bad_signature",
             source="computed by make_vectors.py: base64 with '+' and '/' instead of base64url"),
        dict(mine, name="computed_signature_hash_ignored", data=enc(
            [(k, "0" * 64 if k == "hash" else v) for k, v in with_sig]), expect="valid",
             source="computed by make_vectors.py: third-party validation does not need the token,"
                    " so a wrong hash does not matter"),
        dict(mine, name="computed_signature_other_bot", data=enc(with_sig), expect="bad_signature",
             source="computed by make_vectors.py", bot_id=BOT_ID + 1),
        dict(mine, name="computed_signature_no_auth_date",
             data=enc([("chat_type", "sender"),
                       ("signature", b64url(ed_sign([("chat_type", "sender")])))]),
             expect="missing_auth_date", source="computed by make_vectors.py"),
    ]
    return cases


def login_cases():
    aiogram_widget = f"{AIOGRAM} tests/test_utils/test_auth_widget.py @25235e38f1f1b5fb724c470317e2b5e8806b3608"
    lg = {"kind": "login", "token": WIDGET_TOKEN}
    cases = [
        dict(lg, name="real_aiogram_widget", data=enc(WIDGET), expect="valid", source=aiogram_widget,
             data_check_string=dcs(WIDGET, ["hash"]),
             expect_json={"/id": 42, "/username": "username", "/auth_date": 1565810688}),
        dict(lg, name="real_aiogram_widget_field_removed",
             data=enc([p for p in WIDGET if p[0] != "username"]), expect="hash_mismatch",
             source=aiogram_widget),
    ]
    key = login_key(TOKEN)
    fields = [("id", "42"), ("first_name", "Ada"), ("username", "ada"), ("auth_date", str(NOW)),
              ("allows_write_to_pm", "true")]
    valid = sign(fields, key)
    t = {"kind": "login", "token": TOKEN}
    cases += [
        dict(t, name="computed_login_valid_with_unknown_field", data=enc(valid), expect="valid",
             source="computed by make_vectors.py: every field but hash is covered, including one"
                    " the widget did not send in 2018",
             now=NOW + 60, max_age=DAY, expect_json={"/id": 42, "/allows_write_to_pm": "true"}),
        dict(t, name="computed_login_unknown_field_changed",
             data=enc([(k, "false" if k == "allows_write_to_pm" else v) for k, v in valid]),
             expect="hash_mismatch", source="computed by make_vectors.py"),
        dict(t, name="computed_login_mini_app_key", data=enc(sign(fields, webapp_key(TOKEN))),
             expect="hash_mismatch",
             source="computed by make_vectors.py: signed with the Mini App key instead"),
        dict(t, name="computed_login_expired", data=enc(valid), now=NOW + DAY + 1, max_age=DAY,
             expect="expired", source="computed by make_vectors.py"),
        dict(t, name="computed_login_at_limit", data=enc(valid), now=NOW + DAY, max_age=DAY,
             expect="valid", source="computed by make_vectors.py"),
        dict(t, name="computed_login_missing_hash", data=enc(fields), expect="missing_hash",
             source="computed by make_vectors.py"),
        dict(t, name="computed_login_id_not_integer",
             data=enc(sign([("id", "4x2"), ("auth_date", str(NOW))], key)), expect="bad_field",
             source="computed by make_vectors.py"),
    ]
    return cases


def mac_cases():
    tmajs = (f"{TMAJS} packages/init-data-node/src/entries/node.test.ts"
             " @1c586e6be5ec3e283fd5af4c953cadd6e34f0c1b")
    return [
        {"kind": "mac", "name": "real_tmajs_sign_data", "label": "WebAppData",
         "secret": "my-secret-token", "message": "abc",
         "mac": "6ecc2e9b51f30dde6877ce374ede54eb626c84e78a5d9a9dcac54d2d248f6bde",
         "source": tmajs + " (signData)"},
        {"kind": "mac", "name": "real_tmajs_hashed_token", "label": "WebAppData",
         "secret": DOC_TOKEN, "message": None,
         "key": "a5c609aa52f63cb5e6d8ceb6e4138726ea82bbc36bb786d64482d445ea38ee5f",
         "source": tmajs + " (secretTokenHashed: the derived secret key)"},
    ]


def check(cases):
    for case in cases:
        if case["kind"] == "mac":
            key = hmac.new(case["label"].encode(), case["secret"].encode(), hashlib.sha256).digest()
            if case.get("key"):
                assert key.hex() == case["key"], case["name"]
            if case.get("message") is not None:
                assert mac_hex(key, case["message"]) == case["mac"], case["name"]
            continue
        got = validate(case)
        assert got == case["expect"], f"{case['name']}: hand says {case['expect']}, Python says {got}"


def write(name, about, cases):
    check(cases)
    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    for c in cases:
        if "now" in c:
            assert "max_age" in c
    first = ["name", "source", "kind", "expect"]
    cases = [{**{k: c[k] for k in first if k in c}, **{k: v for k, v in c.items() if k not in first}}
             for c in cases]
    doc = {
        "about": about,
        "generated_by": "tests/vectors/telegram/make_vectors.py",
        "schema": {
            "kind": "init_data | login | third_party | mac",
            "data": "the text as received",
            "token": "bot token (init_data, login)",
            "bot_id, public_key": "third_party: the bot id, and 'production', 'test' or 64 hex digits",
            "now, max_age": "optional: unix seconds and seconds; absent = no age check",
            "expect": "'valid' or the error code (selfsame_telegram::Error::code)",
            "data_check_string / signed_message": "optional: the exact text that is MACed / signed",
            "expect_json": "optional: JSON pointer -> value in the validated result's JSON",
        },
        "cases": cases,
    }
    with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=2)
        f.write("\n")


def main():
    init, extra = init_data_cases()
    write("init_data.json",
          "Mini App initData checked with the bot token (secret key = HMAC-SHA256('WebAppData',"
          " token)); https://core.telegram.org/bots/webapps#validating-data-received-via-the-mini-app",
          init)
    write("third_party.json",
          "Mini App initData checked with Telegram's Ed25519 signature, without the token; "
          + THIRD_PARTY_DOC + f". The computed cases use the test public key {ED_PUB}.",
          third_party_cases(extra))
    write("login.json",
          "Login Widget data (secret key = SHA-256(token));"
          " https://core.telegram.org/widgets/login#checking-authorization",
          login_cases())
    write("mac.json", "The Mini App key derivation and MAC alone.", mac_cases())


if __name__ == "__main__":
    main()
