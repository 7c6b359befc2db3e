//! Issue 17, must hold 2: a move. A Telegram bot's vault bound to a
//! Discord bot (`selfsame bind`) stays the same agent: the Discord token
//! wakes it `verified`, the Telegram token gets `identity-mismatch` with a
//! hint naming the move, and the identity key signs on. An interrupted
//! bind is finished by running it again.

mod common;

use std::fs;

use common::*;
use selfsame::ops::init::{init, InitOptions};
use selfsame::{Credential, Platform};
use serde_json::Value;

const DISCORD_ENV: (&str, &str) = ("DISCORD_BOT_TOKEN", DISCORD);

/// `selfsame ARGS` with the Discord token in `DISCORD_BOT_TOKEN`.
fn discord(env: &Env, args: &[&str]) -> Out {
    env.run_env(args, &[DISCORD_ENV])
}

fn bind_to_discord(env: &Env) -> Out {
    discord(
        env,
        &[
            "--json",
            "bind",
            "--platform",
            "discord",
            "--new-token-env",
            "DISCORD_BOT_TOKEN",
        ],
    )
}

/// Wakes with the Telegram token from a file (the config names the Discord
/// variable after the move).
fn wake_with_telegram(env: &Env) -> Value {
    let (_dir, file) = token_file(TOKEN);
    let out = env
        .run(&["--json", "--token-file", file.to_str().unwrap(), "wake"])
        .expect_code(4);
    out.json()
}

#[test]
fn a_telegram_vault_bound_to_a_discord_bot_wakes_verified_under_discord_only() {
    let env = Env::at_rest();
    let key = env.run(&["identity", "show"]).stdout.trim().to_owned();
    let v = bind_to_discord(&env).expect_code(0).json();
    assert_eq!(v["seq"], 3);
    assert_eq!(v["from_platform"], "telegram");
    assert_eq!(v["from_bot_id"], 4815162342u64);
    assert_eq!(v["platform"], "discord");
    assert_eq!(v["bot_id"], DISCORD_ID);
    assert_eq!(v["identity"], key.as_str());
    assert_eq!(v["vouched"], 2);
    let config = fs::read_to_string(env.vault().join("config.toml")).unwrap();
    assert!(config.contains("platform = \"discord\"\n"), "{config}");
    assert!(
        config.contains("token_env = \"DISCORD_BOT_TOKEN\"\n"),
        "{config}"
    );
    assert!(
        config.contains(&format!("bot_id = {DISCORD_ID}\n")),
        "{config}"
    );
    assert_eq!(env.checkpoint_field(3, "reason"), "bind");
    assert_eq!(env.checkpoint_field(3, "platform"), "discord");
    assert_eq!(env.checkpoint_field(3, "bot_id"), DISCORD_ID.to_string());
    assert_eq!(env.checkpoint_field(3, "prev_key_hash").len(), 64);
    assert_eq!(
        format!("selfsame:ed25519:{}", env.checkpoint_field(3, "identity")),
        key
    );

    // The Discord token: verified, the earlier checkpoints vouched for.
    let out = discord(&env, &["--json", "wake"]).expect_code(0);
    let v = out.json();
    assert_eq!(v["verdict"], "verified", "{}", out.stdout);
    assert!(
        v["message"].as_str().unwrap().contains("bind checkpoint 3"),
        "{v}"
    );
    discord(&env, &["seal"]).expect_code(0);
    assert_eq!(
        format!("selfsame:ed25519:{}", env.checkpoint_field(4, "identity")),
        key,
        "the identity key signs on after the move"
    );
    let v = discord(&env, &["--json", "verify", "--read-data"])
        .expect_code(0)
        .json();
    assert_eq!(v["problems"], serde_json::json!([]));

    // The Telegram token: identity-mismatch, naming the move.
    let v = wake_with_telegram(&env);
    assert_eq!(v["verdict"], "identity-mismatch");
    assert_eq!(v["detail"], "different-bot");
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains("the bind at checkpoint 3 moved it to discord bot 1087654321098765432"),
        "{message}"
    );
    assert!(message.contains("DISCORD_BOT_TOKEN"), "{message}");
    // Nothing was written with it: the history's last event is Discord's.
    let last = env.history().last().unwrap().clone();
    assert_eq!(last["event"], "seal", "{last}");

    let events: Vec<Value> = env
        .history()
        .into_iter()
        .filter(|e| e["event"] == "bind")
        .collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["from_platform"], "telegram");
    assert_eq!(events[0]["platform"], "discord");
}

#[test]
fn a_bind_to_another_telegram_bot_works_the_same_way() {
    let env = Env::at_rest();
    env.run_env(
        &["bind", "--platform", "telegram", "--new-token-env", "NEW"],
        &[("NEW", OTHER_BOT)],
    )
    .expect_code(0);
    let v = env
        .run_env(&["--json", "wake"], &[("NEW", OTHER_BOT)])
        .expect_code(0)
        .json();
    assert_eq!(v["verdict"], "verified", "{v}");
    let v = wake_with_telegram(&env);
    assert_eq!(v["detail"], "different-bot");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("moved it to telegram bot 1000001"),
        "{v}"
    );
}

#[test]
fn bind_refuses_an_unsigned_vault_and_the_same_bot() {
    let env = Env::bare();
    let mut opts = InitOptions::new("soul").shell("1.0.0");
    opts.identity = false;
    let token = Credential::parse(Platform::Telegram, TOKEN).unwrap();
    init(env.base(), &token, &opts).unwrap();
    let out = bind_to_discord(&env).expect_code(2);
    assert!(out.stderr.contains("identity init"), "{}", out.stderr);
    let out = env
        .run_env(
            &["bind", "--platform", "telegram", "--new-token-env", "NEW"],
            &[("NEW", ROTATED)],
        )
        .expect_code(2);
    assert!(out.stderr.contains("rekey"), "{}", out.stderr);
    // A malformed new token: exit 2, not shown.
    let out = env
        .run_env(
            &["bind", "--platform", "discord", "--new-token-env", "NEW"],
            &[("NEW", "not-a-discord-token-secret")],
        )
        .expect_code(2);
    assert!(!out.stderr.contains("not-a-discord-token-secret"));
    assert_eq!(env.head(), 1, "nothing sealed");
}

#[test]
fn an_interrupted_bind_is_finished_by_running_it_again() {
    let env = Env::at_rest();
    // Stopped dead right after the bind checkpoint and HEAD.
    let out = env.run_env(
        &[
            "bind",
            "--platform",
            "discord",
            "--new-token-env",
            "DISCORD_BOT_TOKEN",
        ],
        &[DISCORD_ENV, ("SELFSAME_FAILPOINT", "handover-after-head")],
    );
    assert_eq!(out.code, 97, "{}", out.stderr);
    assert_eq!(env.head(), 3);
    let config = fs::read_to_string(env.vault().join("config.toml")).unwrap();
    assert!(config.contains("platform = \"telegram\""), "{config}");
    // Either token is told what happened.
    let v = env.run(&["--json", "wake"]).expect_code(4).json();
    assert!(
        v["message"].as_str().unwrap().contains("interrupted"),
        "{v}"
    );
    let (_dir, file) = token_file(DISCORD);
    let v = env
        .run(&["--json", "--token-file", file.to_str().unwrap(), "wake"])
        .expect_code(4)
        .json();
    assert!(
        v["message"].as_str().unwrap().contains("interrupted"),
        "{v}"
    );
    // Running it again finishes it.
    let v = bind_to_discord(&env).expect_code(0).json();
    assert_eq!(v["finished"], true);
    assert_eq!(v["seq"], 3);
    assert_eq!(env.head(), 3, "nothing more sealed");
    let v = discord(&env, &["--json", "wake"]).expect_code(0).json();
    assert_eq!(v["verdict"], "verified", "{v}");
    assert!(!env.vault().join("run/identity.next").exists());
    let binds = env
        .history()
        .into_iter()
        .filter(|e| e["event"] == "bind")
        .count();
    assert_eq!(binds, 1);
    discord(&env, &["verify"]).expect_code(0);
}

/// `selfsame verify-attestation --identity KEY FILE` (`--json`) run
/// outside any vault and with no token in the environment.
fn verify_attestation(key: &str, file: &std::path::Path) -> Out {
    let nowhere = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_selfsame"))
        .args(["--json", "verify-attestation", "--identity", key])
        .arg(file)
        .current_dir(nowhere.path())
        .env_remove("TELEGRAM_BOT_TOKEN")
        .env_remove("DISCORD_BOT_TOKEN")
        .env_remove("SELFSAME_VAULT")
        .output()
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn the_whole_chain_across_the_move_is_attested_and_any_flipped_byte_fails() {
    let env = Env::at_rest();
    bind_to_discord(&env).expect_code(0);
    fs::write(env.soul().join("after-the-move.md"), "hello from discord\n").unwrap();
    discord(&env, &["seal"]).expect_code(0);
    let key = env.run(&["identity", "show"]).stdout.trim().to_owned();
    let text = env.run(&["attest"]).expect_code(0).stdout;
    let head = env.head();
    let on_disk: String = (1..=head)
        .map(|seq| fs::read_to_string(env.checkpoint(seq)).unwrap())
        .collect();
    assert_eq!(text, on_disk, "the checkpoint files, byte for byte");
    let v = env.run(&["--json", "attest"]).expect_code(0).json();
    assert_eq!(v["text"], text.as_str());
    assert_eq!(
        (v["from"].clone(), v["to"].clone()),
        (1.into(), head.into())
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("attestation.txt");
    fs::write(&file, &text).unwrap();
    let out = verify_attestation(&key, &file).expect_code(0);
    let v = out.json();
    assert_eq!(v["from"], 1);
    assert_eq!(v["to"], head);
    assert_eq!(
        v["accounts"],
        serde_json::json!([
            {"platform": "telegram", "bot_id": 4815162342u64, "from": 1, "to": 2},
            {"platform": "discord", "bot_id": DISCORD_ID, "from": 3, "to": head},
        ])
    );
    assert_eq!(v["soul"], env.checkpoint_field(head, "soul").as_str());

    // One flipped byte anywhere in any line: 4 (a signature) or 5 (the
    // chain). Each line: its first byte, its middle, inside `prev`,
    // `hash` and `signature`, and its newline.
    let bytes = text.as_bytes();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let at = |needle: &str| start + line.find(needle).unwrap() + needle.len() + 3;
        let mut positions = vec![
            start,
            start + line.len() / 2,
            at("&hash="),
            start + line.len() - 1,
        ];
        if line.contains("&prev=") && !line.contains("&prev=&") {
            positions.push(at("&prev="));
        }
        positions.push(at("&signature="));
        for p in positions {
            let mut flipped = bytes.to_vec();
            flipped[p] ^= 0x01;
            fs::write(&file, &flipped).unwrap();
            let out = verify_attestation(&key, &file);
            assert!(
                out.code == 4 || out.code == 5,
                "byte {p} flipped: exit {}\n{}",
                out.code,
                out.stdout
            );
            assert_ne!(out.json()["problems"], serde_json::json!([]));
        }
        start += line.len();
    }
    // Malformed input or key: 2.
    fs::write(&file, "").unwrap();
    verify_attestation(&key, &file).expect_code(2);
    fs::write(&file, &text).unwrap();
    verify_attestation("selfsame:ed25519:not-a-key", &file).expect_code(2);
}
