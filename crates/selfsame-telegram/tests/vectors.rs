//! Runs every case of every file in `tests/vectors/telegram/` (written by
//! `make_vectors.py` there, from real Telegram data and from computed cases).

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use selfsame_telegram::third_party::{self, PublicKey};
use selfsame_telegram::{init_data, login, BotToken, Error, Fields, Freshness, SecretKey};
use serde_json::Value;

fn vector_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/telegram")
}

fn text<'a>(case: &'a Value, key: &str) -> &'a str {
    case[key]
        .as_str()
        .unwrap_or_else(|| panic!("{}: {key} is not a string", case["name"]))
}

fn freshness(case: &Value) -> Freshness {
    match (case.get("now"), case.get("max_age")) {
        (Some(now), Some(max_age)) => Freshness::within(
            Duration::from_secs(max_age.as_u64().unwrap()),
            UNIX_EPOCH + Duration::from_secs(now.as_u64().unwrap()),
        ),
        (None, None) => Freshness::ANY,
        _ => panic!("{}: now and max_age go together", case["name"]),
    }
}

fn public_key(case: &Value) -> PublicKey {
    match text(case, "public_key") {
        "production" => PublicKey::production(),
        "test" => PublicKey::test_environment(),
        hex => PublicKey::from_hex(hex).unwrap(),
    }
}

/// Runs one case; returns "valid" or the error code.
fn run(case: &Value) -> String {
    let data = text(case, "data");
    let outcome: Result<Value, Error> = match text(case, "kind") {
        "init_data" => {
            let token = BotToken::parse(text(case, "token")).unwrap();
            init_data::validate(data, &token, freshness(case))
                .map(|d| serde_json::to_value(d).unwrap())
        }
        "login" => {
            let token = BotToken::parse(text(case, "token")).unwrap();
            login::validate(data, &token, freshness(case)).map(|d| serde_json::to_value(d).unwrap())
        }
        "third_party" => {
            let bot_id = case["bot_id"].as_u64().unwrap();
            third_party::validate(data, bot_id, &public_key(case), freshness(case))
                .map(|d| serde_json::to_value(d).unwrap())
        }
        other => panic!("unknown kind {other}"),
    };
    if let Some(dcs) = case.get("data_check_string") {
        let fields = Fields::parse(data).unwrap();
        assert_eq!(
            fields.data_check_string(&["hash"]),
            dcs.as_str().unwrap(),
            "{}: data-check-string",
            case["name"]
        );
    }
    if let Some(message) = case.get("signed_message") {
        let fields = Fields::parse(data).unwrap();
        let bot_id = case["bot_id"].as_u64().unwrap();
        assert_eq!(
            third_party::signed_message(&fields, bot_id),
            message.as_str().unwrap(),
            "{}: signed message",
            case["name"]
        );
    }
    match outcome {
        Ok(json) => {
            for (pointer, want) in case
                .get("expect_json")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                assert_eq!(
                    json.pointer(pointer),
                    Some(want),
                    "{}: {pointer} in {json}",
                    case["name"]
                );
            }
            "valid".to_owned()
        }
        Err(e) => e.code().to_owned(),
    }
}

fn run_mac(case: &Value) {
    let key = SecretKey::derive(
        text(case, "label").as_bytes(),
        text(case, "secret").as_bytes(),
    );
    if let Some(hex_key) = case.get("key").and_then(Value::as_str) {
        let want = SecretKey::from_bytes(hex::decode(hex_key).unwrap().try_into().unwrap());
        assert_eq!(key.mac(b"probe"), want.mac(b"probe"), "{}", case["name"]);
    }
    if let Some(message) = case.get("message").and_then(Value::as_str) {
        assert_eq!(
            key.sign(message.as_bytes()),
            text(case, "mac"),
            "{}",
            case["name"]
        );
    }
}

#[test]
fn telegram_vectors() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(vector_dir())
        .expect("tests/vectors/telegram exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "vector files: {files:?}");

    let mut failures = Vec::new();
    let mut count = 0;
    let mut real = 0;
    for file in &files {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for case in doc["cases"].as_array().unwrap() {
            count += 1;
            assert!(
                !text(case, "source").is_empty(),
                "{}: every case cites its source",
                case["name"]
            );
            if text(case, "name").starts_with("real_") {
                real += 1;
            }
            if case["kind"] == "mac" {
                run_mac(case);
                continue;
            }
            let got = run(case);
            let want = text(case, "expect");
            if got != want {
                failures.push(format!(
                    "{} / {}: expected {want}, got {got}",
                    file.file_name().unwrap().to_string_lossy(),
                    case["name"].as_str().unwrap()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(count >= 70, "ran {count} cases");
    assert!(real >= 20, "ran {real} real cases");
}
