//! Issue 13, item 3: `restore last-good` and the supervisor's rollback
//! trust a `good` event only when a checkpoint vouches for it (through the
//! history chain up to its `log` anchor) or its MAC verifies. A `good` line
//! that someone without the token appended is never a rollback target.

use std::fs;

use selfsame::ops::init::{init, InitOptions};
use selfsame::ops::seal::Reason;
use selfsame::ops::seal::{seal, SealOptions};
use selfsame::progress::Silent;
use selfsame::testing::current_head;
use selfsame::testing::last_good;
use selfsame::testing::sha256_hex;
use selfsame::testing::HistoryLine;
use selfsame::testing::Keys;
use selfsame::testing::VaultFiles;
use selfsame::testing::{decide, Decision, State};
use selfsame::{Credential, Platform};
use serde_json::{json, Map, Value};

fn token() -> Credential {
    Credential::parse(Platform::Telegram, "6161:last-good-test-token").unwrap()
}

fn data(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn a_forged_good_event_is_never_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("soul")).unwrap();
    fs::write(dir.path().join("soul/memory.jsonl"), "one\n").unwrap();
    let token = token();
    let vault = init(dir.path(), &token, &InitOptions::new("soul")).unwrap();
    // Checkpoint 1 ran healthy (as the supervisor records it), then the
    // soul changed twice: checkpoints 2 and 3.
    vault
        .history_for(&Keys::of(&token))
        .append("good", data(json!({"seq": 1, "ran_ms": 60000})))
        .unwrap();
    for text in ["two\n", "three\n"] {
        fs::write(dir.path().join("soul/memory.jsonl"), text).unwrap();
        seal(&vault, &token, &SealOptions::new(Reason::Manual), &Silent).unwrap();
    }
    let head = current_head(&vault, &token).unwrap().unwrap();
    assert_eq!(head.ckpt.seq, 3);
    assert_eq!(last_good(&vault, &token, &head).unwrap().ckpt.seq, 1);

    // A `good` line for checkpoint 2, chained with SHA-256 but without a
    // MAC (and one with a made-up MAC): ignored.
    let path = vault.history().path().to_owned();
    for mac in [None, Some("ab".repeat(32))] {
        let honest = fs::read_to_string(&path).unwrap();
        let last = honest.lines().last().unwrap();
        let mut line = HistoryLine {
            n: honest.lines().count() as u64 + 1,
            at: "2030-01-01T00:00:00.000Z".into(),
            event: "good".into(),
            prev: sha256_hex(last.as_bytes()),
            data: data(json!({"seq": 2, "ran_ms": 60000})),
        }
        .to_line();
        if let Some(mac) = &mac {
            line.pop();
            line.push_str(&format!(",\"mac\":\"{mac}\"}}"));
        }
        fs::write(&path, format!("{honest}{line}\n")).unwrap();
        assert_eq!(last_good(&vault, &token, &head).unwrap().ckpt.seq, 1);
        let state = State {
            failed: 3,
            suspect: true,
            rolled_back_to: None,
        };
        match decide(&vault, &token, &state, 3).unwrap() {
            Decision::Rollback(good) => assert_eq!(good.ckpt.seq, 1),
            other => panic!("expected a rollback to checkpoint 1, got {other:?}"),
        }
        fs::write(&path, honest).unwrap();
    }

    // A `good` line signed by selfsame counts.
    vault
        .history_for(&Keys::of(&token))
        .append("good", data(json!({"seq": 2, "ran_ms": 60000})))
        .unwrap();
    assert_eq!(last_good(&vault, &token, &head).unwrap().ckpt.seq, 2);
}
