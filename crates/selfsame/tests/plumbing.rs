//! The library is plumbing: it takes its settings from the caller, never
//! from the environment; it reports typed facts, and names none of the
//! CLI's commands or flags (the CLI words what to run next).
//!
//! This file sets environment variables, so it is a test binary of its
//! own, and one test: nothing else in this process reads them.

use std::fs;
use std::time::{Duration, Instant};

use selfsame::ops::init::{init, InitOptions};
use selfsame::ops::seal::{seal, Reason, SealOptions};
use selfsame::ops::wake::{wake, WakeOptions};
use selfsame::progress::Silent;
use selfsame::{Advice, Credential, Damage, Detail, Error, Platform, Settings, Vault, Verdict};

const TOKEN: &str = "7373:plumbing-test-token";

fn cred() -> Credential {
    Credential::parse(Platform::Telegram, TOKEN).unwrap()
}

/// A vault with one checkpoint, sealed by shell 1.0.0.
fn setup() -> (tempfile::TempDir, Vault) {
    let dir = tempfile::tempdir().unwrap();
    let soul = dir.path().join("soul");
    fs::create_dir(&soul).unwrap();
    fs::write(soul.join("memory.txt"), "hello").unwrap();
    let vault = init(
        dir.path(),
        &cred(),
        &InitOptions::new("soul").shell("1.0.0"),
    )
    .unwrap();
    (dir, vault)
}

fn shell_of_head(vault: &Vault) -> String {
    let report = wake(
        vault,
        &cred(),
        &WakeOptions {
            dry_run: true,
            ..Default::default()
        },
    )
    .unwrap();
    let seq = report.seq.unwrap();
    let text = fs::read_to_string(vault.dir().join(format!("checkpoints/{seq:08}.ckpt"))).unwrap();
    text.split('&')
        .find_map(|f| f.strip_prefix("shell="))
        .unwrap()
        .to_owned()
}

#[test]
fn settings_come_from_the_caller_and_messages_name_no_command() {
    let (dir, vault) = setup();
    // Variables the library once read. It must not now.
    std::env::set_var("SELFSAME_VAULT", vault.dir());
    std::env::set_var("SELFSAME_SHELL_VERSION", "9.9.9");
    std::env::set_var("SELFSAME_LOCK_WAIT", "60s");

    // No vault is found from a directory without one, whatever the
    // environment says.
    let elsewhere = tempfile::tempdir().unwrap();
    assert!(matches!(
        Vault::discover(elsewhere.path(), None),
        Err(Error::NoVault { .. })
    ));

    // A seal not given a shell records the settings' one, else the head's.
    fs::write(dir.path().join("soul/memory.txt"), "two").unwrap();
    seal(&vault, &cred(), &SealOptions::new(Reason::Manual), &Silent).unwrap();
    assert_eq!(shell_of_head(&vault), "1.0.0");
    let mut settings = Settings::default();
    settings.shell = Some("2.0.0".into());
    let with_shell = Vault::open(vault.dir()).unwrap().with_settings(settings);
    fs::write(dir.path().join("soul/memory.txt"), "three").unwrap();
    seal(
        &with_shell,
        &cred(),
        &SealOptions::new(Reason::Manual),
        &Silent,
    )
    .unwrap();
    assert_eq!(shell_of_head(&vault), "2.0.0");

    // The lock wait is the settings' (100 ms), not the environment's 60 s.
    let lock = fs::File::open(vault.dir().join("run/lock")).unwrap();
    lock.lock().unwrap();
    let mut settings = Settings::default();
    settings.lock_wait = Duration::from_millis(100);
    let quick = Vault::open(vault.dir()).unwrap().with_settings(settings);
    let started = Instant::now();
    let busy = seal(&quick, &cred(), &SealOptions::new(Reason::Manual), &Silent);
    assert!(matches!(busy, Err(Error::Busy { .. })), "{busy:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(lock);

    // Facts, typed; no command named. A changed config: the problem says
    // what changed, its advice says what the owner can do.
    let config = vault.dir().join("config.toml");
    let text = fs::read_to_string(&config).unwrap();
    fs::write(
        &config,
        text.replace("tampered = \"halt\"", "tampered = \"accept\""),
    )
    .unwrap();
    let report = wake(
        &Vault::open(vault.dir()).unwrap(),
        &cred(),
        &WakeOptions::default(),
    )
    .unwrap();
    assert_eq!(report.detail, Some(Detail::ConfigChanged));
    assert!(matches!(
        report.advice,
        Some(Advice::AdoptConfig { saved: Some(_) })
    ));
    fs::write(&config, text).unwrap();

    // A rotated token: mac-invalid, with the advice to rekey.
    let rotated = Credential::parse(Platform::Telegram, "7373:rotated-secret").unwrap();
    let report = wake(&vault, &rotated, &WakeOptions::default()).unwrap();
    assert_eq!(
        (report.verdict, report.detail),
        (Verdict::IdentityMismatch, Some(Detail::MacInvalid))
    );
    assert_eq!(report.advice, Some(Advice::RekeyWithOld));
    assert_named_no_command(&report.message);

    // A forged history line after the head's anchor: the seal refuses it
    // with the damage, typed.
    let history = vault.dir().join("history.jsonl");
    let mut lines = fs::read_to_string(&history).unwrap();
    let n = lines.lines().count() + 1;
    lines.push_str(&format!(
        "{{\"n\":{n},\"at\":\"2030-01-01T00:00:00.000Z\",\"event\":\"good\",\"prev\":\"{}\",\"seq\":1}}\n",
        "0".repeat(64)
    ));
    fs::write(&history, lines).unwrap();
    match seal(&vault, &cred(), &SealOptions::new(Reason::Manual), &Silent) {
        Err(e @ Error::Corrupt { .. }) => {
            let Error::Corrupt { damage, path } = &e else {
                unreachable!()
            };
            assert_eq!(**damage, Damage::LineForged(n as u64));
            assert_eq!(path, &history);
            assert_eq!(e.exit_code(), 5);
            assert_named_no_command(&e.to_string());
        }
        other => panic!("expected the forged line, got {other:?}"),
    }

    // Errors of other kinds say no command either.
    let no_vault = Vault::discover(elsewhere.path(), None).unwrap_err();
    assert_named_no_command(&no_vault.to_string());
    let missing = selfsame::ops::restore::restore(
        &vault,
        &cred(),
        selfsame::ops::restore::Target::Seq(99),
        &Silent,
    );
    assert!(missing.is_err());
    assert_named_no_command(&missing.unwrap_err().to_string());
}

fn assert_named_no_command(text: &str) {
    for word in [
        "`selfsame",
        "selfsame accept",
        "selfsame rekey",
        "--vault",
        "SELFSAME_",
    ] {
        assert!(!text.contains(word), "{word:?} in {text:?}");
    }
}
