//! `supervise::run` through the library: a command it cannot start is
//! refused before wake writes anything (history, the awake marker).

use std::ffi::OsString;
use std::fs;

use selfsame::ops::init::{init, InitOptions};
use selfsame::supervise::{self, Log, Options};
use selfsame::testing::VaultFiles;
use selfsame::{Credential, Error, Platform, Vault};

struct Quiet;

impl Log for Quiet {
    fn line(&self, _text: &str) {}
}

fn token() -> Credential {
    Credential::parse(Platform::Telegram, "4242:supervise-test-token").unwrap()
}

fn setup() -> (tempfile::TempDir, Vault) {
    let dir = tempfile::tempdir().unwrap();
    let soul = dir.path().join("soul");
    fs::create_dir(&soul).unwrap();
    fs::write(soul.join("memory.txt"), "hello").unwrap();
    let vault = init(dir.path(), &token(), &InitOptions::new("soul")).unwrap();
    (dir, vault)
}

#[test]
fn an_empty_command_is_refused_before_anything_is_written() {
    let (_dir, vault) = setup();
    let history = vault.dir().join("history.jsonl");
    let marker = vault.run_dir().join("awake");
    for command in [vec![], vec![OsString::new()]] {
        let before = fs::read(&history).unwrap();
        let opts = Options::new(command.clone());
        match supervise::run(&vault, &token(), &opts, &Quiet) {
            Err(e @ Error::NoCommand) => {
                assert_eq!(e.exit_code(), 2);
                assert!(e.to_string().contains("command"), "{e}");
            }
            other => panic!("{command:?}: expected a usage error, got {other:?}"),
        }
        assert_eq!(fs::read(&history).unwrap(), before, "{command:?}: history");
        assert!(
            !marker.exists(),
            "{command:?}: the awake marker was written"
        );
    }
}
