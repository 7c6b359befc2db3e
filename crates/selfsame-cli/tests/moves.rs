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
