//! The platform seam: a vault belongs to a Telegram or a Discord bot
//! (`platform` in config.toml), whose token proves the account and keys
//! the vault. Discord tokens give the bot id their first segment encodes;
//! malformed tokens are refused (exit 2) without being printed.

mod common;

use std::fs;

use common::*;

/// `selfsame init soul --platform discord` with `DISCORD_BOT_TOKEN`.
fn discord_env() -> Env {
    let env = Env::bare();
    env.run_env(
        &["init", "soul", "--platform", "discord"],
        &[("DISCORD_BOT_TOKEN", DISCORD)],
    )
    .expect_code(0);
    env
}

#[test]
fn a_discord_bot_s_vault_records_its_platform_and_id_and_wakes_verified() {
    let env = discord_env();
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
    assert_eq!(env.checkpoint_field(1, "platform"), "discord");
    assert_eq!(env.checkpoint_field(1, "bot_id"), DISCORD_ID.to_string());
    let out = env.run_env(&["--json", "wake"], &[("DISCORD_BOT_TOKEN", DISCORD)]);
    let v = out.clone().expect_code(0).json();
    assert_eq!(v["verdict"], "verified", "{}", out.stdout);
    env.run_env(&["--json", "verify"], &[("DISCORD_BOT_TOKEN", DISCORD)])
        .expect_code(0);
}

#[test]
fn another_discord_bot_or_a_telegram_token_is_identity_mismatch() {
    let env = discord_env();
    let out = env
        .run_env(&["--json", "wake"], &[("DISCORD_BOT_TOKEN", DISCORD_OTHER)])
        .expect_code(4);
    let v = out.json();
    assert_eq!(v["verdict"], "identity-mismatch");
    assert_eq!(v["detail"], "different-bot");
    // A Telegram token where the Discord one belongs is Telegram's
    // credential: another account, not a malformed token.
    let (_dir, file) = token_file(TOKEN);
    let out = env
        .run(&["--json", "--token-file", file.to_str().unwrap(), "wake"])
        .expect_code(4);
    let v = out.json();
    assert_eq!(v["detail"], "different-bot", "{}", out.stdout);
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains("telegram bot 4815162342") && message.contains("discord bot"),
        "{message}"
    );
}

#[test]
fn malformed_discord_tokens_exit_2_and_are_never_printed() {
    let env = discord_env();
    let id = "MTA4NzY1NDMyMTA5ODc2NTQzMg";
    let cases = [
        // Two segments.
        format!("{id}.malformed-secret-segment-A1"),
        // Four segments.
        format!("{id}.GxYz12.malformed-secret-B2.extra"),
        // The first segment is not base64.
        "!!notbase64.GxYz12.malformed-secret-C3".to_owned(),
        // base64 of `bot-1087`, not digits.
        "Ym90LTEwODc.GxYz12.malformed-secret-D4".to_owned(),
        // A space inside.
        format!("{id}.GxYz12.malformed secret-E5"),
    ];
    for bad in &cases {
        for json in [false, true] {
            let mut args = vec!["wake"];
            if json {
                args.insert(0, "--json");
            }
            let out = env
                .run_env(&args, &[("DISCORD_BOT_TOKEN", bad)])
                .expect_code(2);
            assert!(out.stderr.contains("DISCORD_BOT_TOKEN"), "{}", out.stderr);
            assert!(out.stderr.contains("Discord"), "{}", out.stderr);
            for part in bad.split(['.', ' ']).filter(|p| p.len() > 6) {
                assert!(
                    !out.stdout.contains(part) && !out.stderr.contains(part),
                    "the token's {part:?} was printed:\n{}\n{}",
                    out.stdout,
                    out.stderr
                );
            }
            if json {
                assert_eq!(out.json()["exit_code"], 2);
            }
        }
    }
    // Nothing was written for them: the history holds init's events only.
    assert!(env.history().iter().all(|e| e["event"] != "wake"));
}

#[test]
fn init_with_a_token_of_another_platform_says_which_platform_to_name() {
    let env = Env::bare();
    let out = env
        .run_env(&["init", "soul"], &[("TELEGRAM_BOT_TOKEN", DISCORD)])
        .expect_code(2);
    assert!(out.stderr.contains("--platform discord"), "{}", out.stderr);
    assert!(!env.vault().exists());
}

#[test]
fn an_alert_through_telegram_is_refused_for_a_discord_bot() {
    let env = discord_env();
    let out = env
        .run_env(
            &["run", "--alert-telegram", "42", "--", "true"],
            &[("DISCORD_BOT_TOKEN", DISCORD)],
        )
        .expect_code(2);
    assert!(out.stderr.contains("--alert-cmd"), "{}", out.stderr);
}
