//! `selfsame telegram init-data`: exit codes and output, on real Telegram
//! data (sources cited in tests/vectors/telegram/).

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

/// From the tma.js docs and init-data-golang validate_test.go.
const DOCS_TOKEN: &str = "5768337691:AAH5YkoiEuPk8-FZa32hStHTqXiLPtAEhx8";
const DOCS_DATA: &str = "query_id=AAHdF6IQAAAAAN0XohDhrOrc&user=%7B%22id%22%3A279058397%2C%22first_name%22%3A%22Vladislav%22%2C%22last_name%22%3A%22Kibenko%22%2C%22username%22%3A%22vdkfrost%22%2C%22language_code%22%3A%22ru%22%2C%22is_premium%22%3Atrue%7D&auth_date=1662771648&hash=c501b71e775f74ce10e377dea85a7ea24ecd640b223ea86dfe453e0eaed2e2b2";
const DOCS_AUTH_DATE: u64 = 1662771648;

/// Real Telegram data for bot 7342037359 with Ed25519 `signature`
/// (init-data-golang validate_third_party_test.go).
const SIGNED_DATA: &str = "user=%7B%22id%22%3A279058397%2C%22first_name%22%3A%22Vladislav%20%2B%20-%20%3F%20%5C%2F%22%2C%22last_name%22%3A%22Kibenko%22%2C%22username%22%3A%22vdkfrost%22%2C%22language_code%22%3A%22ru%22%2C%22is_premium%22%3Atrue%2C%22allows_write_to_pm%22%3Atrue%2C%22photo_url%22%3A%22https%3A%5C%2F%5C%2Ft.me%5C%2Fi%5C%2Fuserpic%5C%2F320%5C%2F4FPEE4tmP3ATHa57u6MqTDih13LTOiMoKoLDRG4PnSA.svg%22%7D&chat_instance=8134722200314281151&chat_type=private&auth_date=1733584787&hash=2174df5b000556d044f3f020384e879c8efcab55ddea2ced4eb752e93e7080d6&signature=zL-ucjNyREiHDE8aihFwpfR9aggP2xiAo3NSpfe-p7IbCisNlDKlo7Kb6G4D0Ao2mBrSgEk4maLSdv6MLIlADQ";

/// Login Widget data (aiogram tests/test_utils/test_auth_widget.py).
const WIDGET_TOKEN: &str = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11";
const WIDGET_DATA: &str = "id=42&first_name=John&last_name=Smith&username=username&photo_url=https%3A%2F%2Ft.me%2Fi%2Fuserpic%2F320%2Fpicname.jpg&auth_date=1565810688&hash=c303db2b5a06fe41d23a9b14f7c545cfc11dcc7473c07c9c5034ae60062461ce";

fn selfsame() -> Command {
    let mut cmd = Command::cargo_bin("selfsame").unwrap();
    cmd.env_remove("TELEGRAM_BOT_TOKEN")
        .env_remove("SELFSAME_VAULT");
    cmd
}

fn json(stdout: &[u8]) -> Value {
    serde_json::from_slice(stdout).expect("stdout is one JSON object")
}

#[test]
fn valid_init_data_prints_fields_and_exits_0() {
    let out = selfsame()
        .env("TELEGRAM_BOT_TOKEN", DOCS_TOKEN)
        .args(["telegram", "init-data", DOCS_DATA, "--max-age", "0"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v = json(&out);
    assert_eq!(v["user"]["id"], 279058397);
    assert_eq!(v["user"]["username"], "vdkfrost");
    assert_eq!(v["query_id"], "AAHdF6IQAAAAAN0XohDhrOrc");
    assert_eq!(v["auth_date"], DOCS_AUTH_DATE);
}

#[test]
fn data_from_stdin_with_dash_or_nothing() {
    for args in [
        vec!["telegram", "init-data", "-", "--max-age", "0"],
        vec!["telegram", "init-data", "--max-age", "0"],
    ] {
        selfsame()
            .env("TELEGRAM_BOT_TOKEN", DOCS_TOKEN)
            .args(&args)
            .write_stdin(format!("{DOCS_DATA}\n"))
            .assert()
            .success()
            .stdout(predicate::str::contains("\"id\":279058397"));
    }
}

#[test]
fn age_is_measured_from_now_and_the_limit_is_inclusive() {
    let at = |now: u64| {
        let mut cmd = selfsame();
        cmd.env("TELEGRAM_BOT_TOKEN", DOCS_TOKEN).args([
            "telegram",
            "init-data",
            DOCS_DATA,
            "--max-age",
            "1h",
            "--now",
            &now.to_string(),
        ]);
        cmd
    };
    at(DOCS_AUTH_DATE + 3600).assert().success();
    at(DOCS_AUTH_DATE + 3601)
        .assert()
        .code(4)
        .stdout("")
        .stderr(predicate::str::contains("expired"));
    // The default max age is one day, so old data is refused without flags.
    selfsame()
        .env("TELEGRAM_BOT_TOKEN", DOCS_TOKEN)
        .args(["telegram", "init-data", DOCS_DATA])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("expired"));
}

#[test]
fn tampered_data_or_wrong_token_exits_4() {
    let tampered = DOCS_DATA.replace("279058397", "279058398");
    selfsame()
        .env("TELEGRAM_BOT_TOKEN", DOCS_TOKEN)
        .args(["telegram", "init-data", &tampered, "--max-age", "0"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("hash mismatch"));
    selfsame()
        .env("TELEGRAM_BOT_TOKEN", WIDGET_TOKEN)
        .args(["telegram", "init-data", DOCS_DATA, "--max-age", "0"])
        .assert()
        .code(4);
    let unsigned = "auth_date=1662771648&query_id=x";
    selfsame()
        .env("TELEGRAM_BOT_TOKEN", DOCS_TOKEN)
        .args(["telegram", "init-data", unsigned, "--max-age", "0"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("missing_hash"));
}

#[test]
fn malformed_data_exits_2() {
    for bad in [
        "",
        "auth_date",
        "a=%zz",
        "a=1&a=2",
        &format!("{DOCS_DATA}&hash=00"),
    ] {
        selfsame()
            .env("TELEGRAM_BOT_TOKEN", DOCS_TOKEN)
            .args(["telegram", "init-data", "--max-age", "0", "--", bad])
            .assert()
            .code(2)
            .stdout("");
    }
}

#[test]
fn stdin_that_is_not_utf8_exits_2() {
    selfsame()
        .env("TELEGRAM_BOT_TOKEN", DOCS_TOKEN)
        .args(["telegram", "init-data", "-"])
        .write_stdin(b"auth_date=1&user=\xff".to_vec())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("UTF-8"));
}

#[test]
fn missing_or_bad_token_exits_2_without_showing_it() {
    selfsame()
        .args(["telegram", "init-data", DOCS_DATA])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("TELEGRAM_BOT_TOKEN"));
    let bad = "not-a-token-SECRETSECRET";
    selfsame()
        .env("TELEGRAM_BOT_TOKEN", bad)
        .args(["telegram", "init-data", DOCS_DATA])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("SECRETSECRET").not());
}

#[test]
fn token_env_names_another_variable() {
    selfsame()
        .env("MY_BOT_TOKEN", DOCS_TOKEN)
        .args([
            "telegram",
            "init-data",
            DOCS_DATA,
            "--max-age",
            "0",
            "--token-env",
            "MY_BOT_TOKEN",
        ])
        .assert()
        .success();
}

#[test]
fn the_token_never_reaches_the_output() {
    let secret = "AAH5YkoiEuPk8-FZa32hStHTqXiLPtAEhx8";
    for data in [DOCS_DATA, "x", "auth_date=1&hash=00"] {
        let out = selfsame()
            .env("TELEGRAM_BOT_TOKEN", DOCS_TOKEN)
            .args(["telegram", "init-data", data, "--max-age", "0"])
            .output()
            .unwrap();
        assert!(!String::from_utf8_lossy(&out.stdout).contains(secret));
        assert!(!String::from_utf8_lossy(&out.stderr).contains(secret));
    }
}

#[test]
fn third_party_checks_telegram_signature_without_a_token() {
    let out = selfsame()
        .args([
            "telegram",
            "init-data",
            SIGNED_DATA,
            "--max-age",
            "0",
            "--third-party",
            "--bot-id",
            "7342037359",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(json(&out)["user"]["first_name"], "Vladislav + - ? /");

    // Another bot, or the test-environment key: not Telegram's signature.
    for extra in [
        vec!["--bot-id", "7342037360"],
        vec!["--bot-id", "7342037359", "--test-env"],
    ] {
        let mut args = vec![
            "telegram",
            "init-data",
            SIGNED_DATA,
            "--max-age",
            "0",
            "--third-party",
        ];
        args.extend(extra);
        selfsame()
            .args(&args)
            .assert()
            .code(4)
            .stderr(predicate::str::contains("bad_signature"));
    }

    // The bot id can come from the token's prefix.
    selfsame()
        .env("TELEGRAM_BOT_TOKEN", "7342037359:whatever")
        .args([
            "telegram",
            "init-data",
            SIGNED_DATA,
            "--max-age",
            "0",
            "--third-party",
        ])
        .assert()
        .success();
    selfsame()
        .args(["telegram", "init-data", SIGNED_DATA, "--third-party"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--bot-id"));
}

#[test]
fn third_party_with_a_caller_key() {
    // aiogram tests/test_utils/test_web_app_signature.py: bot 42, its own key.
    let data = "auth_date=1650385342&user=%7B%22id%22%3A42%2C%22first_name%22%3A%22Test%22%7D&query_id=test&signature=JQ0JR2tjC65yq_jNZV0wuJVX6J-SWPMV0mprUXG34g-NvxL4RcF1Rz5n4VVo00VRghEUBf5t___uoeb1-jU_Cw";
    let key = "4112765021341e5415e772cd65903f6b94e3ea1c2ab669e6d3e18ee2db00da61";
    selfsame()
        .args([
            "telegram",
            "init-data",
            data,
            "--max-age",
            "0",
            "--third-party",
            "--bot-id",
            "42",
            "--public-key",
            key,
        ])
        .assert()
        .success();
    selfsame()
        .args([
            "telegram",
            "init-data",
            data,
            "--max-age",
            "0",
            "--third-party",
            "--bot-id",
            "42",
            "--public-key",
            "abcd",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("public key"));
}

#[test]
fn login_widget_data() {
    let out = selfsame()
        .env("TELEGRAM_BOT_TOKEN", WIDGET_TOKEN)
        .args([
            "telegram",
            "init-data",
            "--login",
            WIDGET_DATA,
            "--max-age",
            "0",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v = json(&out);
    assert_eq!(v["id"], 42);
    assert_eq!(v["username"], "username");
    // The same data as Mini App initData: the other key, so not authentic.
    selfsame()
        .env("TELEGRAM_BOT_TOKEN", WIDGET_TOKEN)
        .args(["telegram", "init-data", WIDGET_DATA, "--max-age", "0"])
        .assert()
        .code(4);
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["telegram", "init-data", "x", "--max-age", "soon"],
        vec!["telegram", "init-data", "x", "--bot-id", "1"],
        vec!["telegram", "init-data", "x", "--third-party", "--login"],
        vec![
            "telegram",
            "init-data",
            "x",
            "--third-party",
            "--test-env",
            "--public-key",
            "00",
        ],
    ] {
        selfsame().args(&args).assert().code(2);
    }
}

#[test]
fn help_shows_an_example_and_the_exit_codes() {
    selfsame()
        .args(["telegram", "init-data", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Examples:"))
        .stdout(predicate::str::contains("--third-party"))
        .stdout(predicate::str::contains("Exit codes:"));
}

#[test]
fn the_global_token_file_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{DOCS_TOKEN}\n")).unwrap();
    let out = selfsame()
        .args(["--token-file", file.to_str().unwrap()])
        .args(["telegram", "init-data", DOCS_DATA, "--max-age", "0"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert_eq!(json(&out)["user"]["id"], 279058397);
    // A file with another bot's token: not authentic, and not printed.
    std::fs::write(&file, "1:not-the-docs-token").unwrap();
    selfsame()
        .args(["--token-file", file.to_str().unwrap()])
        .args(["telegram", "init-data", DOCS_DATA, "--max-age", "0"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("not-the-docs-token").not());
}
