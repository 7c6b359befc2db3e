//! `SealOptions` through the library: extra fields may not stand in for
//! the fields selfsame writes itself, and the format must be a tag. A
//! refused seal writes nothing: no checkpoint, no HEAD, no history line.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use selfsame::ops::init::{init, InitOptions};
use selfsame::ops::seal::{seal, SealOptions};
use selfsame::ops::seal::{FieldError, Reason, RESERVED_FIELDS};
use selfsame::ops::wake::{wake, WakeOptions};
use selfsame::progress::Silent;
use selfsame::testing::Keys;
use selfsame::testing::VaultFiles;
use selfsame::{Credential, Error, Platform, Vault, Verdict};

fn token() -> Credential {
    Credential::parse(Platform::Telegram, "4242:seal-options-test-token").unwrap()
}

fn setup() -> (tempfile::TempDir, Vault) {
    let dir = tempfile::tempdir().unwrap();
    let soul = dir.path().join("soul");
    fs::create_dir(&soul).unwrap();
    fs::write(soul.join("memory.txt"), "hello").unwrap();
    let vault = init(dir.path(), &token(), &InitOptions::new("soul")).unwrap();
    (dir, vault)
}

/// Every file of the vault but the lock, with its bytes.
fn vault_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if !p.ends_with("run/lock") {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn seal_with(vault: &Vault, opts: &SealOptions) -> selfsame::Result<()> {
    seal(vault, &token(), opts, &Silent).map(|_| ())
}

#[test]
fn an_extra_field_that_names_a_reserved_field_is_refused_and_nothing_is_written() {
    let (_dir, vault) = setup();
    // Something to seal, so a seal that went ahead would write.
    fs::write(vault.soul().join("memory.txt"), "hello again").unwrap();
    let before = vault_files(vault.dir());
    for key in RESERVED_FIELDS {
        let mut opts = SealOptions::new(Reason::Manual);
        // `seq=7` once wrote checkpoints/00000007.ckpt: permanent damage.
        opts.extra.push((key.to_string(), "7".into()));
        match seal_with(&vault, &opts) {
            Err(Error::Field(FieldError::Reserved(k))) => assert_eq!(k, *key),
            other => panic!("extra `{key}`: expected a reserved-field error, got {other:?}"),
        }
        assert_eq!(vault_files(vault.dir()), before, "extra `{key}` wrote");
    }
    let e = {
        let mut opts = SealOptions::new(Reason::Manual);
        opts.extra.push(("seq".into(), "7".into()));
        seal_with(&vault, &opts).unwrap_err()
    };
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("`seq`"), "{e}");
    assert!(!vault.checkpoint_path(7).exists());
    assert_eq!(vault.checkpoint_seqs().unwrap(), vec![1]);
}

#[test]
fn ill_formed_extra_fields_are_refused() {
    let (_dir, vault) = setup();
    let before = vault_files(vault.dir());
    let cases: Vec<(Vec<(&str, &str)>, FieldError)> = vec![
        (vec![("", "x")], FieldError::BadName(String::new())),
        (vec![("Note", "x")], FieldError::BadName("Note".into())),
        (vec![("a=b", "x")], FieldError::BadName("a=b".into())),
        (
            vec![("note", "a"), ("note", "b")],
            FieldError::Repeated("note".into()),
        ),
        (
            vec![("note", "two\nlines")],
            FieldError::BadValue("note".into()),
        ),
    ];
    for (extra, want) in cases {
        let mut opts = SealOptions::new(Reason::Manual);
        opts.extra = extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match seal_with(&vault, &opts) {
            Err(Error::Field(got)) => assert_eq!(got, want),
            other => panic!("{extra:?}: expected {want:?}, got {other:?}"),
        }
        assert_eq!(vault_files(vault.dir()), before, "{extra:?} wrote");
    }
}

#[test]
fn a_format_that_is_not_a_tag_is_refused_and_nothing_is_written() {
    let (_dir, vault) = setup();
    let before = vault_files(vault.dir());
    for bad in ["", "3", "v", "v0", "v01", "V2", "v2 ", "v-1", "version2"] {
        let mut opts = SealOptions::new(Reason::Manual);
        opts.format = Some(bad.into());
        match seal_with(&vault, &opts) {
            Err(Error::Field(FieldError::BadFormat(f))) => assert_eq!(f, bad),
            other => panic!("format {bad:?}: expected a format error, got {other:?}"),
        }
        assert_eq!(vault_files(vault.dir()), before, "format {bad:?} wrote");
    }
}

#[test]
fn a_well_formed_extra_field_and_format_are_sealed_under_the_mac() {
    let (_dir, vault) = setup();
    let mut opts = SealOptions::new(Reason::Manual);
    opts.extra
        .push(("note".into(), "hand-sealed & checked".into()));
    opts.format = Some("v2".into());
    let r = seal(&vault, &token(), &opts, &Silent).unwrap();
    assert_eq!(r.seq, 2);
    let c = vault.read_checkpoint(2).unwrap().ckpt;
    assert_eq!(c.fields.get("note"), Some("hand-sealed & checked"));
    assert_eq!(c.format, "v2");
    assert!(Keys::of(&token()).verifies(&c));
    let w = wake(&vault, &token(), &WakeOptions::default()).unwrap();
    assert_eq!(w.verdict, Verdict::Verified, "{}", w.message);
}
