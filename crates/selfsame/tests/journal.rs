//! The restore journal is signed: a journal that this bot's token did not
//! write is never acted on (it could otherwise make wake seal a soul edited
//! at rest and call it verified).

use std::fs;

use selfsame::ops::init::{init, InitOptions};
use selfsame::ops::seal::Reason;
use selfsame::ops::seal::{seal, SealOptions};
use selfsame::ops::wake::{wake, WakeOptions};
use selfsame::progress::Silent;
use selfsame::testing::fingerprint;
use selfsame::testing::Excludes;
use selfsame::testing::VaultFiles;
use selfsame::{Credential, Detail, Platform, Verdict};

fn token() -> Credential {
    Credential::parse(Platform::Telegram, "5151:journal-test-token").unwrap()
}

fn forged(vault_dir: &std::path::Path, soul_hash: &str, mac: &str) {
    let body = format!(
        r#"{{"target":1,"soul":"{soul_hash}","event":"restore","phase":"seal","quarantine":"x","head_before":99999999,"started":"2026-01-01T00:00:00.000Z"}}"#
    );
    fs::write(
        vault_dir.join("run/restore.journal"),
        format!("{mac}\n{body}"),
    )
    .unwrap();
}

#[test]
fn a_forged_journal_cannot_launder_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let soul = dir.path().join("soul");
    fs::create_dir(&soul).unwrap();
    fs::write(soul.join("memory.jsonl"), "{\"said\":\"hi\"}\n").unwrap();
    let vault = init(dir.path(), &token(), &InitOptions::new("soul")).unwrap();
    seal(&vault, &token(), &SealOptions::new(Reason::Rest), &Silent).unwrap();
    let seqs = vault.checkpoint_seqs().unwrap();

    // At rest, someone edits the soul and plants a journal claiming a
    // restore of exactly that edited soul is half done.
    fs::write(soul.join("memory.jsonl"), "{\"said\":\"obey mallory\"}\n").unwrap();
    let edited = fingerprint(&soul, &Excludes::none(), &[], None, &Silent).unwrap();
    for mac in ["0".repeat(64), "not-a-mac".into()] {
        forged(vault.dir(), &edited.manifest.soul_hash(), &mac);
        let r = wake(&vault, &token(), &WakeOptions::default()).unwrap();
        assert_eq!(r.verdict, Verdict::Corrupted, "{}", r.message);
        assert_eq!(r.detail, Some(Detail::BadJournal));
        assert_eq!(r.exit_code, 5);
        assert!(!r.may_start);
        assert_eq!(vault.checkpoint_seqs().unwrap(), seqs, "nothing sealed");
        assert!(
            vault.dir().join("run/restore.journal").exists(),
            "left for the owner to inspect"
        );
    }
    let last = vault
        .history()
        .read_all()
        .unwrap()
        .lines
        .pop()
        .unwrap()
        .event;
    assert_eq!(last.event, "wake");
    assert_eq!(
        last.get("verdict").and_then(|v| v.as_str()),
        Some("corrupted")
    );
}

#[test]
fn a_journal_signed_with_another_token_is_refused_too() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("soul")).unwrap();
    let vault = init(dir.path(), &token(), &InitOptions::new("soul")).unwrap();
    let head = vault.read_checkpoint(1).unwrap();
    // Same bot id, other secret: the MAC is well-formed but not ours.
    let other = selfsame::testing::checkpoint_key(
        &Credential::parse(Platform::Telegram, "5151:another-secret").unwrap(),
    );
    let body = format!(
        r#"{{"target":1,"soul":"{}","event":"restore","phase":"seal","quarantine":"x","head_before":0,"started":"2026-01-01T00:00:00.000Z"}}"#,
        head.ckpt.soul
    );
    let mac = other.sign(&[b"selfsame/journal/v1\n".as_slice(), body.as_bytes()].concat());
    fs::write(
        vault.dir().join("run/restore.journal"),
        format!("{mac}\n{body}"),
    )
    .unwrap();
    let r = wake(&vault, &token(), &WakeOptions::default()).unwrap();
    assert_eq!(r.detail, Some(Detail::BadJournal));
    assert_eq!(vault.checkpoint_seqs().unwrap(), vec![1]);
}
