//! The `config` checkpoint field through the library: a head of an older
//! vault without the field is not checked, and a rekey carries the head's
//! config binding over instead of adopting a changed config.

use std::fs;
use std::path::Path;

use selfsame::ops::accept::accept;
use selfsame::ops::init::{init, InitOptions};
use selfsame::ops::rekey::rekey;
use selfsame::ops::seal::Reason;
use selfsame::ops::seal::{seal, SealOptions};
use selfsame::ops::wake::{wake, WakeOptions};
use selfsame::progress::Silent;
use selfsame::testing::Keys;
use selfsame::testing::VaultFiles;
use selfsame::testing::{Draft, CONFIG};
use selfsame::{Credential, Detail, Platform, Vault, Verdict};

fn token() -> Credential {
    Credential::parse(Platform::Telegram, "4242:config-binding-test-token").unwrap()
}

fn setup() -> (tempfile::TempDir, Vault) {
    let dir = tempfile::tempdir().unwrap();
    let soul = dir.path().join("soul");
    fs::create_dir(&soul).unwrap();
    fs::write(soul.join("memory.txt"), "hello").unwrap();
    let vault = init(dir.path(), &token(), &InitOptions::new("soul")).unwrap();
    (dir, vault)
}

/// Edits config.toml and reopens the vault (a new process would).
fn edit_config(vault: &Vault, from: &str, to: &str) -> Vault {
    let text = fs::read_to_string(vault.config_path()).unwrap();
    assert!(text.contains(from), "{text}");
    fs::write(vault.config_path(), text.replace(from, to)).unwrap();
    Vault::open(vault.dir()).unwrap()
}

fn dry(vault: &Vault, token: &Credential) -> selfsame::ops::wake::WakeReport {
    let opts = WakeOptions {
        dry_run: true,
        ..Default::default()
    };
    wake(vault, token, &opts).unwrap()
}

/// Rewrites checkpoint `seq` as an older selfsame wrote it: no `config`.
fn strip_config(vault: &Vault, seq: u64) {
    let c = vault.read_checkpoint(seq).unwrap().ckpt;
    assert!(c.config().is_some());
    let draft = Draft {
        header: c.header.clone(),
        extra: Vec::new(),
    };
    // As an older selfsame wrote it: no `config`, no identity signature.
    let old = Keys::of(&token()).sign(&draft, None);
    assert_eq!(old.config(), None);
    let path: &Path = &vault.checkpoint_path(seq);
    fs::remove_file(path).unwrap();
    fs::write(path, old.to_bytes()).unwrap();
}

#[test]
fn a_head_without_the_field_is_not_checked_until_the_next_seal() {
    let (_dir, vault) = setup();
    strip_config(&vault, 1);
    let vault = edit_config(&vault, "max_age = \"7d\"", "max_age = \"30d\"");
    let r = dry(&vault, &token());
    assert_eq!(r.verdict, Verdict::Verified, "{}", r.message);
    // The next seal binds the config as it is.
    seal(&vault, &token(), &SealOptions::new(Reason::Rest), &Silent).unwrap();
    let head = vault.read_checkpoint(2).unwrap().ckpt;
    assert_eq!(head.config(), Some(vault.config_hash().as_str()));
    assert_eq!(dry(&vault, &token()).verdict, Verdict::Verified);
    let vault = edit_config(&vault, "max_age = \"30d\"", "max_age = \"0\"");
    let r = dry(&vault, &token());
    assert_eq!(r.verdict, Verdict::Tampered);
    assert_eq!(r.detail, Some(Detail::ConfigChanged));
    assert_eq!(r.exit_code, 3);
}

#[test]
fn rekey_carries_the_heads_config_binding() {
    let (_dir, vault) = setup();
    let sealed = vault.config_hash();
    let new = Credential::parse(Platform::Telegram, "4242:config-binding-new-token").unwrap();
    let vault = edit_config(&vault, "tampered = \"halt\"", "tampered = \"accept\"");
    // A changed config is no reason to refuse the rotation …
    let r = rekey(&vault, &token(), &new).unwrap();
    // … and the rekey does not adopt it.
    let ckpt = vault.read_checkpoint(r.seq).unwrap().ckpt;
    assert_eq!(ckpt.fields.get(CONFIG), Some(sealed.as_str()));
    let w = dry(&vault, &new);
    assert_eq!(w.verdict, Verdict::Tampered);
    assert_eq!(w.detail, Some(Detail::ConfigChanged));
    assert_eq!(w.seq, Some(r.seq));
    // The owner adopts it with the new token.
    accept(&vault, &new, None, &Silent).unwrap();
    assert_eq!(dry(&vault, &new).verdict, Verdict::Verified);
}
