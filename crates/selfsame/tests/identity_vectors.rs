//! Issue 17, must hold 1: the identity key vectors in
//! `tests/vectors/identity/`.
//!
//! How they were computed: `tests/vectors/identity/make_vectors.py`
//! implements the identity file and the checkpoint signature from the words
//! of DESIGN.md ("Format 2") and docs/FORMAT.md alone, with Python's
//! standard library and the `cryptography` package (Ed25519,
//! ChaCha20-Poly1305) — no Rust, no selfsame code — for a fixed seed,
//! nonce and tokens, and writes `identity.json`, the exact identity files
//! and the exact checkpoint files of a chain that binds a Telegram bot's
//! vault to a Discord bot. This test never runs the script; it reads its
//! output and checks the library against it:
//!
//! * the seed sealed with the nonce under each token's wrap key gives the
//!   identity file byte for byte, and `init` with the test hook that fixes
//!   seed and nonce (`Settings::with_identity_entropy`, which the binary
//!   takes from `SELFSAME_IDENTITY_SEED` / `SELFSAME_IDENTITY_NONCE` in a
//!   test build) writes exactly that file;
//! * each checkpoint draft signed with the key (and, for the bind, the old
//!   token's MAC) gives the checkpoint file byte for byte, with the
//!   vector's `hash`, `prev_key_hash`, `signature` and signed message;
//! * each file's signature verifies, and any one flipped byte anywhere in
//!   it is refused: the line no longer parses, or the signature no longer
//!   verifies under the vector's key;
//! * the three files are an attestation that `verify_attestation` accepts
//!   without a token (both accounts, the newest soul), and any one flipped
//!   byte of it gives exit 4 or 5.

use std::fs;
use std::path::{Path, PathBuf};

use selfsame::ops::attest::{verify_attestation, Account};
use selfsame::ops::init::{init, InitOptions};
use selfsame::testing::{
    check_signature, signed_message, Checkpoint, Draft, Header, SignatureCheck,
};
use selfsame::testing::{encode_b64url, IdentityFile, IdentityKey, Keys};
use selfsame::{Credential, Platform, Settings};
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/identity")
}

fn load() -> Value {
    let text = fs::read_to_string(dir().join("identity.json")).expect("identity.json");
    serde_json::from_str(&text).expect("identity.json is JSON")
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn bytes<const N: usize>(hex_text: &Value) -> [u8; N] {
    hex::decode(s(hex_text)).unwrap().try_into().unwrap()
}

/// A credential of the vector: Discord-shaped or Telegram-shaped.
fn cred(token: &str) -> Credential {
    Credential::parse_any(Platform::Telegram, token).unwrap()
}

fn key(v: &Value) -> IdentityKey {
    IdentityKey::from_seed(&bytes::<32>(&v["seed_hex"]))
}

#[test]
fn the_seed_sealed_under_each_token_is_the_vector_identity_file() {
    let v = load();
    let key = key(&v);
    assert_eq!(encode_b64url(&key.public()), s(&v["public_b64url"]));
    for (token, nonce, file) in [
        ("telegram_token", "nonce_hex", "identity_file"),
        (
            "discord_token",
            "nonce_after_bind_hex",
            "identity_file_after_bind",
        ),
    ] {
        let expected = fs::read(dir().join(s(&v[file]))).unwrap();
        let keys = Keys::of(&cred(s(&v[token])));
        let sealed = key.seal(keys.wrap(), &bytes::<12>(&v[nonce]));
        assert_eq!(
            String::from_utf8_lossy(&sealed.to_bytes()),
            String::from_utf8_lossy(&expected),
            "{file}"
        );
        let parsed = IdentityFile::parse(&expected).unwrap();
        let opened = IdentityKey::unseal(&parsed, keys.wrap()).expect("opens under its token");
        assert_eq!(opened.public(), key.public());
    }
    // Neither opens under the other token.
    let tg = IdentityFile::parse(&fs::read(dir().join("identity")).unwrap()).unwrap();
    let dc_keys = Keys::of(&cred(s(&v["discord_token"])));
    assert!(IdentityKey::unseal(&tg, dc_keys.wrap()).is_none());
}

#[test]
fn init_with_the_fixed_seed_and_nonce_writes_the_vector_identity_file() {
    let v = load();
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join("soul")).unwrap();
    fs::write(tmp.path().join("soul/a.md"), "hello").unwrap();
    let mut opts = InitOptions::new("soul").shell("1.0.0");
    opts.settings =
        Settings::default().with_identity_entropy(bytes(&v["seed_hex"]), bytes(&v["nonce_hex"]));
    let vault = init(tmp.path(), &cred(s(&v["telegram_token"])), &opts).unwrap();
    let written = fs::read(vault.dir().join("identity")).unwrap();
    assert_eq!(written, fs::read(dir().join("identity")).unwrap());
    let ckpt = fs::read_to_string(vault.dir().join("checkpoints/00000001.ckpt")).unwrap();
    assert!(
        ckpt.contains(&format!("&identity={}&signature=", s(&v["public_b64url"]))),
        "{ckpt}"
    );
}

fn draft_of(fields: &[Value]) -> Draft {
    let get = |k: &str| -> String {
        let f = fields.iter().find(|f| f[0] == k);
        s(&f.unwrap_or_else(|| panic!("vector has no {k}"))[1]).to_owned()
    };
    let num = |k: &str| get(k).parse::<u64>().unwrap();
    let standard = 13;
    Draft {
        header: Header {
            seq: num("seq"),
            prev: get("prev"),
            soul: get("soul"),
            files: num("files"),
            bytes: num("bytes"),
            sealed_at: get("sealed_at"),
            reason: get("reason"),
            shell: get("shell"),
            format: get("format"),
            log: get("log"),
            platform: get("platform"),
            bot_id: num("bot_id"),
        },
        extra: fields[standard..]
            .iter()
            .map(|f| (s(&f[0]).to_owned(), s(&f[1]).to_owned()))
            .collect(),
    }
}

#[test]
fn signing_the_drafts_gives_the_vector_checkpoints() {
    let v = load();
    let key = key(&v);
    let mut prev = String::new();
    for case in v["checkpoints"].as_array().unwrap() {
        let file = fs::read(dir().join(s(&case["file"]))).unwrap();
        let draft = draft_of(case["fields"].as_array().unwrap());
        assert_eq!(draft.header.prev, prev, "{}: prev chains", case["file"]);
        let keys = Keys::of(&cred(s(&case["token"])));
        let ckpt = match case["old_token"].as_str() {
            Some(old) => keys.sign_rekey(&draft, &Keys::of(&cred(old)), Some(&key)),
            None => keys.sign(&draft, Some(&key)),
        };
        assert_eq!(
            String::from_utf8_lossy(&ckpt.to_bytes()),
            String::from_utf8_lossy(&file),
            "{}: file bytes",
            case["file"]
        );
        assert_eq!(ckpt.hash, s(&case["hash"]));
        assert_eq!(ckpt.fields.get("signature"), case["signature"].as_str());
        assert_eq!(
            ckpt.fields.get("prev_key_hash"),
            case["prev_key_hash"].as_str()
        );
        assert_eq!(
            String::from_utf8(signed_message(&ckpt.fields)).unwrap(),
            s(&case["signed_message"])
        );
        let parsed = Checkpoint::parse(&file).unwrap();
        assert!(keys.verifies(&parsed), "{}: MAC", case["file"]);
        assert_eq!(
            check_signature(&parsed),
            SignatureCheck::Valid(key.public())
        );
        prev = s(&case["file_sha256"]).to_owned();
    }
}

#[test]
fn any_flipped_byte_of_a_vector_checkpoint_is_refused_without_a_token() {
    let v = load();
    let public = key(&v).public();
    for case in v["checkpoints"].as_array().unwrap() {
        let file = fs::read(dir().join(s(&case["file"]))).unwrap();
        for at in 0..file.len() {
            for bit in [0x01u8, 0x20] {
                let mut flipped = file.clone();
                flipped[at] ^= bit;
                let still_good = Checkpoint::parse(&flipped)
                    .is_ok_and(|c| check_signature(&c) == SignatureCheck::Valid(public));
                assert!(
                    !still_good,
                    "{}: byte {at} ^ {bit:#x} still verifies",
                    case["file"]
                );
            }
        }
    }
}

/// The vector chain as an attestation: the three checkpoint files.
fn vector_attestation(v: &Value) -> Vec<u8> {
    v["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| fs::read(dir().join(s(&c["file"]))).unwrap())
        .collect()
}

#[test]
fn the_vector_chain_verifies_as_an_attestation_across_the_move() {
    let v = load();
    let public = key(&v).public();
    let input = vector_attestation(&v);
    let r = verify_attestation(&input, &public).unwrap();
    assert_eq!(r.exit_code, 0, "{:?}", r.problems);
    assert_eq!((r.from, r.to, r.lines), (Some(1), Some(3), 3));
    assert_eq!(
        r.accounts,
        vec![
            Account {
                platform: "telegram".into(),
                bot_id: 987654321,
                from: 1,
                to: 2
            },
            Account {
                platform: "discord".into(),
                bot_id: s(&v["discord_bot_id"]).parse().unwrap(),
                from: 3,
                to: 3
            },
        ]
    );
    let last = &v["checkpoints"][2]["fields"];
    let soul = last
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f[0] == "soul")
        .unwrap();
    assert_eq!(r.soul.as_deref(), soul[1].as_str());
    assert_eq!(r.identity, s(&v["identity"]));
    // Another key: every line is refused (4).
    let other = IdentityKey::from_seed(&[1; 32]).public();
    assert_eq!(verify_attestation(&input, &other).unwrap().exit_code, 4);
}

#[test]
fn any_flipped_byte_of_the_vector_attestation_gives_4_or_5() {
    let v = load();
    let public = key(&v).public();
    let input = vector_attestation(&v);
    for at in 0..input.len() {
        for bit in [0x01u8, 0x20] {
            let mut flipped = input.clone();
            flipped[at] ^= bit;
            let code = verify_attestation(&flipped, &public).unwrap().exit_code;
            assert!(code == 4 || code == 5, "byte {at} ^ {bit:#x}: exit {code}");
        }
    }
}

#[test]
fn a_line_left_out_or_moved_breaks_the_chain_and_empty_input_is_malformed() {
    let v = load();
    let public = key(&v).public();
    let lines: Vec<Vec<u8>> = v["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| fs::read(dir().join(s(&c["file"]))).unwrap())
        .collect();
    let without_middle = [lines[0].clone(), lines[2].clone()].concat();
    let r = verify_attestation(&without_middle, &public).unwrap();
    assert_eq!(r.exit_code, 5, "{:?}", r.problems);
    assert_eq!(r.problems[0].kind, "chain");
    let swapped = [lines[1].clone(), lines[0].clone(), lines[2].clone()].concat();
    assert_eq!(verify_attestation(&swapped, &public).unwrap().exit_code, 5);
    // A range that starts later verifies on its own.
    let tail = [lines[1].clone(), lines[2].clone()].concat();
    assert_eq!(verify_attestation(&tail, &public).unwrap().exit_code, 0);
    assert!(verify_attestation(b"", &public).is_err());
}

proptest::proptest! {
    /// Any bytes: the check never panics, and says 4 or 5 (or, for no
    /// bytes at all, refuses the input).
    #[test]
    fn verify_attestation_never_panics(input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
        match verify_attestation(&input, &[9; 32]) {
            Ok(r) => proptest::prop_assert!(r.exit_code == 4 || r.exit_code == 5),
            Err(_) => proptest::prop_assert!(input.is_empty()),
        }
    }
}
