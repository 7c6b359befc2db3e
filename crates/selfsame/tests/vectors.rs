//! Issue 3, must hold 3: the core format vectors in `tests/vectors/core/`.
//!
//! How they were computed: `tests/vectors/core/make_vectors.py` implements
//! manifests v1 and v2 and checkpoint v1 from the words of DESIGN.md alone, with
//! Python 3's standard library (hashlib, hmac) — no Rust, no selfsame code —
//! and writes `core.json` (the soul as data, the expected values), the exact
//! `manifest` bytes and the exact checkpoint files `0000000N.ckpt` for a
//! fixed test token. This test never runs the script; it reads its output
//! and checks the library against it:
//!
//! * the soul, materialized on disk (files and dirs with modes — `0600`,
//!   setuid, sticky, setgid on a dir —, a symlink, a dangling symlink, an
//!   empty dir, a subdir, a non-ASCII name, a space), fingerprints to
//!   exactly the manifest v2 bytes and soul hash, and in version 1 to
//!   exactly the manifest v1 bytes and hash; both parse back to the scan;
//! * `Draft::sign` with the vector's fields gives exactly each checkpoint
//!   file, its `hash` and data-check-string, and `prev` chains by file hash;
//! * `Checkpoint::parse` + `verify` accept each file, and any one-byte change
//!   anywhere in it is refused by parse or by verify;
//! * the `noncanonical` variants of each file (the same decoded fields, so
//!   the same MAC, in bytes selfsame never writes) are refused by parse;
//! * `history.jsonl`: a v1 line and v2 lines with their MACs under the
//!   history key; `HistoryLine` writes each v2 line byte for byte, every MAC
//!   verifies under the vector token and none under another.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use selfsame::ops::seal::Reason;
use selfsame::progress::Silent;
use selfsame::testing::fingerprint;
use selfsame::testing::Excludes;
use selfsame::testing::{sha256_hex, Keys};
use selfsame::testing::{Checkpoint, Draft, Header};
use selfsame::testing::{Manifest, ManifestVersion};
use selfsame::{Credential, Platform};
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/core")
}

fn load() -> Value {
    let text = fs::read_to_string(dir().join("core.json")).expect("core.json");
    serde_json::from_str(&text).expect("core.json is JSON")
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn mode_of(e: &Value) -> u32 {
    let mode = s(&e["mode"]).strip_prefix("0o").expect("mode is 0o…");
    u32::from_str_radix(mode, 8).unwrap()
}

fn materialize(soul: &Value, root: &Path) {
    for e in soul.as_array().expect("soul is a list") {
        let p = root.join(s(&e["path"]));
        match s(&e["kind"]) {
            "dir" => fs::create_dir_all(&p).unwrap(),
            "symlink" => {
                fs::create_dir_all(p.parent().unwrap()).unwrap();
                symlink(s(&e["target"]), &p).unwrap();
            }
            "file" => {
                fs::create_dir_all(p.parent().unwrap()).unwrap();
                fs::write(&p, hex::decode(s(&e["content_hex"])).unwrap()).unwrap();
                fs::set_permissions(&p, fs::Permissions::from_mode(mode_of(e))).unwrap();
            }
            k => panic!("unknown kind {k}"),
        }
    }
    // Directory modes last: one may forbid writing into it.
    for e in soul.as_array().unwrap().iter().rev() {
        if s(&e["kind"]) == "dir" {
            let p = root.join(s(&e["path"]));
            fs::set_permissions(&p, fs::Permissions::from_mode(mode_of(e))).unwrap();
        }
    }
}

#[test]
fn soul_fingerprints_to_the_vector_manifest_and_hash() {
    let v = load();
    let expected = fs::read(dir().join(s(&v["manifest_file"]))).unwrap();
    assert_eq!(expected, s(&v["manifest"]).as_bytes());

    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("soul");
    fs::create_dir(&root).unwrap();
    materialize(&v["soul"], &root);
    let fp = fingerprint(&root, &Excludes::none(), &[], None, &Silent).unwrap();
    let expected_v2 = fs::read(dir().join(s(&v["manifest_v2_file"]))).unwrap();
    assert_eq!(expected_v2, s(&v["manifest_v2"]).as_bytes());
    // A scan lists the newest version.
    assert_eq!(fp.manifest.version, ManifestVersion::V2);
    assert_eq!(
        String::from_utf8_lossy(&fp.manifest.to_bytes()),
        String::from_utf8_lossy(&expected_v2)
    );
    assert_eq!(fp.manifest.soul_hash(), s(&v["soul_hash_v2"]));
    assert_eq!(
        hex::encode(fp.soul_hash_as(ManifestVersion::V2)),
        s(&v["soul_hash_v2"])
    );
    assert_eq!(fp.manifest.files(), v["files"].as_u64().unwrap());
    assert_eq!(fp.manifest.bytes(), v["bytes"].as_u64().unwrap());
    let parsed = Manifest::parse(&expected_v2).expect("the vector manifest v2 parses");
    assert_eq!(parsed, fp.manifest);
    assert_eq!(parsed.to_bytes(), expected_v2);

    // The same soul in version 1, as wake hashes it for a version 1 head.
    let v1 = Manifest::of(ManifestVersion::V1, fp.manifest.entries.clone());
    assert_eq!(
        String::from_utf8_lossy(&v1.to_bytes()),
        String::from_utf8_lossy(&expected)
    );
    assert_eq!(
        hex::encode(fp.soul_hash_as(ManifestVersion::V1)),
        s(&v["soul_hash"])
    );
    assert_eq!(v1.soul_hash(), s(&v["soul_hash"]));
    let parsed = Manifest::parse(&expected).expect("the vector manifest parses");
    assert_eq!(parsed, v1);
    assert_eq!(parsed.to_bytes(), expected);
}

fn draft_of(fields: &[Value]) -> Draft {
    let get = |k: &str| -> String {
        fields
            .iter()
            .find(|f| f[0] == k)
            .map(|f| s(&f[1]).to_owned())
            .unwrap_or_else(|| panic!("vector has no {k}"))
    };
    let num = |k: &str| get(k).parse::<u64>().unwrap();
    let standard = [
        "v",
        "seq",
        "prev",
        "soul",
        "files",
        "bytes",
        "sealed_at",
        "reason",
        "shell",
        "format",
        "log",
        "platform",
        "bot_id",
    ];
    let names: Vec<&str> = fields.iter().map(|f| s(&f[0])).collect();
    assert_eq!(&names[..standard.len()], &standard, "vector field order");
    assert_eq!(get("v"), "1");
    assert_eq!(get("platform"), "telegram");
    Draft {
        header: Header {
            seq: num("seq"),
            prev: get("prev"),
            soul: get("soul"),
            files: num("files"),
            bytes: num("bytes"),
            sealed_at: get("sealed_at"),
            reason: Reason::parse(&get("reason"))
                .expect("known reason")
                .as_str()
                .into(),
            shell: get("shell"),
            format: get("format"),
            log: get("log"),
            platform: get("platform"),
            bot_id: num("bot_id"),
        },
        extra: fields[standard.len()..]
            .iter()
            .map(|f| (s(&f[0]).to_owned(), s(&f[1]).to_owned()))
            .collect(),
    }
}

#[test]
fn draft_sign_gives_the_vector_checkpoint_files() {
    let v = load();
    let token = Credential::parse(Platform::Telegram, s(&v["token"])).unwrap();
    let keys = Keys::of(&token);
    let cases = v["checkpoints"].as_array().unwrap();
    assert!(
        cases.len() >= 2,
        "the vectors chain at least two checkpoints"
    );
    let mut prev_file_hash = String::new();
    for case in cases {
        let file = fs::read(dir().join(s(&case["file"]))).unwrap();
        let draft = draft_of(case["fields"].as_array().unwrap());
        assert_eq!(
            draft.header.prev, prev_file_hash,
            "{}: prev chains",
            case["file"]
        );
        let ckpt = keys.sign(&draft, None);
        assert_eq!(ckpt.hash, s(&case["hash"]), "{}: hash", case["file"]);
        assert_eq!(
            ckpt.data_check_string(),
            s(&case["data_check_string"]),
            "{}: data-check-string",
            case["file"]
        );
        assert_eq!(
            String::from_utf8_lossy(&ckpt.to_bytes()),
            String::from_utf8_lossy(&file),
            "{}: file bytes",
            case["file"]
        );
        assert_eq!(sha256_hex(&ckpt.to_bytes()), s(&case["file_sha256"]));
        assert_eq!(
            Checkpoint::file_name(ckpt.seq),
            s(&case["file"]),
            "file name is the zero-padded seq"
        );
        prev_file_hash = sha256_hex(&ckpt.to_bytes());
    }
}

#[test]
fn vector_checkpoints_parse_and_verify_and_a_wrong_token_does_not() {
    let v = load();
    let keys = Keys::of(&Credential::parse(Platform::Telegram, s(&v["token"])).unwrap());
    let other = Keys::of(
        &Credential::parse(
            Platform::Telegram,
            "123456789:another-secret-of-the-same-bot",
        )
        .unwrap(),
    );
    for case in v["checkpoints"].as_array().unwrap() {
        let file = fs::read(dir().join(s(&case["file"]))).unwrap();
        let c = Checkpoint::parse(&file).expect("vector parses");
        assert!(keys.verifies(&c), "{} verifies", case["file"]);
        assert!(
            !other.verifies(&c),
            "{} verifies under another token",
            case["file"]
        );
        assert_eq!(c.to_bytes(), file, "parse then print is the identity");
        let fields: Vec<(String, String)> = c
            .fields
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let mut expected: Vec<(String, String)> = case["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (s(&f[0]).to_owned(), s(&f[1]).to_owned()))
            .collect();
        expected.push(("hash".into(), s(&case["hash"]).into()));
        assert_eq!(fields, expected, "decoded fields of {}", case["file"]);
    }
}

/// A different byte that still looks like what was there, so the change
/// reaches the decoded value instead of only breaking the syntax.
fn other_byte(b: u8) -> u8 {
    match b {
        b'0'..=b'8' | b'a'..=b'y' | b'A'..=b'Y' => b + 1,
        b'9' => b'0',
        b'z' => b'a',
        b'Z' => b'A',
        b'+' => b'*',
        b'-' => b'_',
        b'_' => b'-',
        b'.' => b'-',
        _ => b'x',
    }
}

#[test]
fn any_one_byte_change_to_a_vector_checkpoint_fails_verify() {
    let v = load();
    let keys = Keys::of(&Credential::parse(Platform::Telegram, s(&v["token"])).unwrap());
    let mut checked = 0;
    for case in v["checkpoints"].as_array().unwrap() {
        let file = fs::read(dir().join(s(&case["file"]))).unwrap();
        let line = &file[..file.len() - 1];
        for i in 0..line.len() {
            let mut changed = file.clone();
            changed[i] = other_byte(changed[i]);
            assert_ne!(changed, file);
            let Ok(c) = Checkpoint::parse(&changed) else {
                continue; // refused by the parser: fine
            };
            assert!(
                !keys.verifies(&c),
                "{}: byte {i} changed ({:?}) and it still verifies",
                case["file"],
                String::from_utf8_lossy(&changed)
            );
            checked += 1;
        }
        // A change to the trailing newline is refused too.
        let mut no_lf = file.clone();
        *no_lf.last_mut().unwrap() = b' ';
        assert!(Checkpoint::parse(&no_lf).is_err());
    }
    assert!(checked > 500, "only {checked} mutations reached verify");
}

#[test]
fn noncanonical_encodings_of_a_valid_checkpoint_are_refused() {
    let v = load();
    let mut refused = 0;
    for case in v["checkpoints"].as_array().unwrap() {
        for variant in case["noncanonical"].as_array().unwrap() {
            let bytes = s(&variant["bytes"]).as_bytes();
            let got = Checkpoint::parse(bytes);
            assert!(
                got.is_err(),
                "{} ({}) parses: {}",
                case["file"],
                s(&variant["why"]),
                s(&variant["bytes"])
            );
            refused += 1;
        }
    }
    assert!(refused >= 18, "only {refused} variants");
}

#[test]
fn history_v2_vectors_verify_and_are_written_byte_for_byte() {
    use selfsame::testing::history_key;
    use selfsame::testing::signed_body;
    use selfsame::testing::HistoryLine;
    use selfsame_telegram::SecretKey;

    fn mac_valid(line: &str, key: &SecretKey) -> Option<bool> {
        let (body, mac) = signed_body(line)?;
        Some(key.verify(body.as_bytes(), mac))
    }

    let v = load();
    let h = &v["history"];
    let token = Credential::parse(Platform::Telegram, s(&v["token"])).unwrap();
    let key = history_key(&token);
    let other = history_key(
        &Credential::parse(
            Platform::Telegram,
            "123456789:another-secret-of-the-same-bot",
        )
        .unwrap(),
    );
    let file = fs::read_to_string(dir().join(s(&h["file"]))).unwrap();
    let lines: Vec<&str> = file.lines().collect();
    let cases = h["lines"].as_array().unwrap();
    assert_eq!(lines.len(), cases.len());
    let mut prev = String::new();
    let mut signed = 0;
    for (line, case) in lines.iter().zip(cases) {
        assert_eq!(*line, s(&case["line"]));
        assert_eq!(sha256_hex(line.as_bytes()), s(&case["sha256"]));
        let parsed = HistoryLine::parse(line).expect("vector line parses");
        assert_eq!(parsed.prev, prev, "line {} chains", parsed.n);
        assert!(parsed.get("mac").is_none(), "the MAC is not event data");
        assert_eq!(
            parsed.to_line(),
            s(&case["body"]),
            "line {}: body",
            parsed.n
        );
        if case["signed"].as_bool().unwrap() {
            let (body, mac) = signed_body(line).expect("a v2 line");
            assert_eq!(body, s(&case["body"]));
            assert_eq!(mac, s(&case["mac"]));
            assert_eq!(mac_valid(line, &key), Some(true), "line {}", parsed.n);
            assert_eq!(mac_valid(line, &other), Some(false), "line {}", parsed.n);
            assert_eq!(
                Keys::of(&token).sign_line(&parsed),
                *line,
                "line {}: bytes",
                parsed.n
            );
            signed += 1;
        } else {
            assert_eq!(mac_valid(line, &key), None, "a v1 line has no MAC");
            assert_eq!(parsed.to_line(), *line);
        }
        prev = s(&case["sha256"]).to_owned();
    }
    assert!(signed >= 3);

    // Read as a vault's history: a clean chain, and with no checkpoint
    // anchoring it every v2 line is trusted by its MAC alone.
    let tmp = tempfile::tempdir().unwrap();
    fs::copy(dir().join(s(&h["file"])), tmp.path().join("history.jsonl")).unwrap();
    let history =
        selfsame::testing::History::new(tmp.path().join("history.jsonl"), tmp.path().into());
    let read = history.read_all().unwrap();
    assert!(read.problems.is_empty(), "{:?}", read.problems);
    let auth = read.authenticate("", &Keys::of(&token));
    assert!(auth.forged.is_empty(), "{:?}", auth.forged);
    assert_eq!(auth.trusted, vec![false, true, true, true]);
    let other = Keys::of(
        &Credential::parse(
            Platform::Telegram,
            "123456789:another-secret-of-the-same-bot",
        )
        .unwrap(),
    );
    assert_eq!(read.authenticate("", &other).forged.len(), 3);
}
