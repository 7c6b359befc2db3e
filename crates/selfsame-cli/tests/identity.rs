//! Issue 17: the identity key. One Ed25519 key per vault, created by
//! `init`, signs every checkpoint (`identity`, `signature`); wake and
//! verify check every signature and the identity file; `rekey` keeps the
//! key; `identity export` / `import` move it as a passphrase-encrypted age
//! file; a vault from before identity keys keeps working unsigned until
//! `identity init`. The seed never appears on disk or in output (the leak
//! scan of `common` looks for it in every test).

mod common;

use std::fs;

use common::*;
use selfsame::ops::init::{init, InitOptions};
use selfsame::{Credential, Platform};
use serde_json::Value;

/// The public key `identity show` prints.
fn shown(env: &Env) -> String {
    let out = env.run(&["identity", "show"]).expect_code(0);
    let key = out.stdout.trim().to_owned();
    assert!(key.starts_with("selfsame:ed25519:"), "{key}");
    key
}

/// The identity a checkpoint names, as people publish it.
fn named(env: &Env, seq: u64) -> String {
    format!("selfsame:ed25519:{}", env.checkpoint_field(seq, "identity"))
}

/// A vault of the same bot made with another identity key.
fn with_other_identity() -> Env {
    let other = Env::bare();
    other
        .run_env(
            &["init", "soul"],
            &[("SELFSAME_IDENTITY_SEED", OTHER_SEED_HEX)],
        )
        .expect_code(0);
    other
}

fn wake_json(env: &Env) -> Value {
    env.wake(&[]).json()
}

/// Replaces one field's value in checkpoint `seq` (the file is rewritten
/// in place, as someone with write access could).
fn set_field(env: &Env, seq: u64, key: &str, value: &str) {
    let path = env.checkpoint(seq);
    let text = fs::read_to_string(&path).unwrap();
    let old = env.checkpoint_field(seq, key);
    let edited = text.replace(&format!("&{key}={old}"), &format!("&{key}={value}"));
    assert_ne!(edited, text);
    fs::write(&path, edited).unwrap();
}

#[test]
fn init_creates_the_key_and_every_checkpoint_is_signed_by_it() {
    let env = Env::at_rest();
    let key = shown(&env);
    let file = fs::read_to_string(env.vault().join("identity")).unwrap();
    assert!(file.starts_with("selfsame-identity 1\npublic "), "{file}");
    assert!(file.contains(key.strip_prefix("selfsame:ed25519:").unwrap()));
    for seq in 1..=env.head() {
        assert_eq!(named(&env, seq), key, "checkpoint {seq}");
        assert_eq!(env.checkpoint_field(seq, "signature").len(), 86);
    }
    assert_eq!(wake_json(&env)["verdict"], "verified");
    env.verify_clean();
    // `identity show` needs no token.
    let out = env
        .command("", &["identity", "show"])
        .env_remove("TELEGRAM_BOT_TOKEN")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), key);
}

#[test]
fn a_bad_signature_is_corrupted() {
    let env = Env::at_rest();
    // The signature of checkpoint 1 on checkpoint 2: well formed, same key,
    // not its signature. The MAC does not cover `signature`, so only the
    // identity check can tell.
    let sig1 = env.checkpoint_field(1, "signature");
    set_field(&env, 2, "signature", &sig1);
    let v = env.wake(&[]).expect_code(5).json();
    assert_eq!(v["verdict"], "corrupted");
    assert_eq!(v["detail"], "signature-invalid", "{v}");
    let out = env.run(&["--json", "verify"]).expect_code(5);
    assert!(out.stdout.contains("signature-invalid"), "{}", out.stdout);
    // Nor does a seal build on it.
    let out = env.run(&["seal"]).expect_code(5);
    assert!(
        out.stderr.contains("does not verify under the identity"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_removed_signature_is_corrupted() {
    let env = Env::at_rest();
    let path = env.checkpoint(2);
    let text = fs::read_to_string(&path).unwrap();
    let sig = env.checkpoint_field(2, "signature");
    fs::write(&path, text.replace(&format!("&signature={sig}"), "")).unwrap();
    let v = env.wake(&[]).expect_code(5).json();
    assert_eq!(v["detail"], "signature-missing", "{v}");
}

#[test]
fn an_identity_file_that_is_missing_or_another_key_is_corrupted() {
    let env = Env::at_rest();
    let ours = env.vault().join("identity");
    let saved = fs::read(&ours).unwrap();
    // Another vault's identity file, sealed under the same token.
    let other = with_other_identity();
    fs::copy(other.vault().join("identity"), &ours).unwrap();
    let v = env.wake(&[]).expect_code(5).json();
    assert_eq!(v["detail"], "identity-file", "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("another identity key"),
        "{v}"
    );
    env.run(&["seal"]).expect_code(5);
    fs::remove_file(&ours).unwrap();
    let v = env.wake(&[]).expect_code(5).json();
    assert_eq!(v["detail"], "identity-file", "{v}");
    assert!(v["message"].as_str().unwrap().contains("missing"), "{v}");
    // Edited: it no longer opens under the token.
    let mut edited = saved.clone();
    let at = edited.len() - 10;
    edited[at] = if edited[at] == b'A' { b'B' } else { b'A' };
    fs::write(&ours, &edited).unwrap();
    let v = env.wake(&[]).expect_code(5).json();
    assert_eq!(v["detail"], "identity-file", "{v}");
    fs::write(&ours, &saved).unwrap();
    assert_eq!(wake_json(&env)["verdict"], "verified");
}

// --- must hold 3 -----------------------------------------------------------

#[test]
fn rekey_keeps_the_public_key() {
    let env = Env::at_rest();
    let key = shown(&env);
    let before = fs::read_to_string(env.vault().join("identity")).unwrap();
    env.run_env(
        &["rekey", "--old-token-env", "OLD", "--new-token-env", "NEW"],
        &[("OLD", TOKEN), ("NEW", ROTATED)],
    )
    .expect_code(0);
    assert_eq!(shown(&env), key);
    let after = fs::read_to_string(env.vault().join("identity")).unwrap();
    assert_ne!(before, after, "the seed is sealed anew under the new token");
    assert!(!env.vault().join("run/identity.next").exists());
    let rekey = env.head();
    assert_eq!(env.checkpoint_field(rekey, "reason"), "rekey");
    assert_eq!(named(&env, rekey), key);
    let v = env
        .run_as(ROTATED, &["--json", "wake"], &[])
        .expect_code(0)
        .json();
    assert_eq!(v["verdict"], "verified", "{v}");
    env.run_as(ROTATED, &["seal"], &[]).expect_code(0);
    assert_eq!(named(&env, env.head()), key);
    env.run_as(ROTATED, &["verify"], &[]).expect_code(0);
}

#[test]
fn export_then_import_in_another_vault_round_trips_the_key() {
    let a = Env::at_rest();
    let key = shown(&a);
    let (_pass_dir, pass) = token_file("correct horse battery staple\n");
    let out_dir = tempfile::tempdir().unwrap();
    let exported = out_dir.path().join("identity.age");
    let export = |env: &Env| {
        env.run(&[
            "identity",
            "export",
            exported.to_str().unwrap(),
            "--passphrase-file",
            pass.to_str().unwrap(),
        ])
    };
    export(&a).expect_code(0);
    let bytes = fs::read(&exported).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1\n-> scrypt "));
    for n in seed_needles(SEED_HEX) {
        assert!(
            !contains(&bytes, &n),
            "the export holds the seed in the clear"
        );
    }
    // Never over an existing file.
    export(&a).expect_code(2);

    // Another vault (another bot, another key).
    let b = Env::bare();
    b.run_as(
        OTHER_BOT,
        &["init", "soul"],
        &[("SELFSAME_IDENTITY_SEED", OTHER_SEED_HEX)],
    )
    .expect_code(0);
    let theirs = b
        .run_as(OTHER_BOT, &["identity", "show"], &[])
        .expect_code(0)
        .stdout;
    assert_ne!(theirs.trim(), key);
    let import = |extra: &[&str]| {
        let mut args = vec![
            "--json",
            "identity",
            "import",
            exported.to_str().unwrap(),
            "--passphrase-file",
            pass.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        b.run_as(OTHER_BOT, &args, &[])
    };
    // It has a key of its own: replaced only when asked.
    let out = import(&[]).expect_code(2);
    assert!(out.stderr.contains("--replace"), "{}", out.stderr);
    let v = import(&["--replace"]).expect_code(0).json();
    assert_eq!(v["identity"], key.as_str());
    assert_eq!(v["replaced"], theirs.trim());
    assert_eq!(v["seq"], 2);
    let shown_b = b.run_as(OTHER_BOT, &["identity", "show"], &[]).stdout;
    assert_eq!(shown_b.trim(), key);
    assert_eq!(b.checkpoint_field(2, "reason"), "identity");
    let v = b.run_as(OTHER_BOT, &["--json", "wake"], &[]).json();
    assert_eq!(v["verdict"], "verified", "{v}");
    b.run_as(OTHER_BOT, &["seal"], &[]).expect_code(0);
    assert_eq!(
        format!("selfsame:ed25519:{}", b.checkpoint_field(3, "identity")),
        key
    );
    b.run_as(OTHER_BOT, &["verify"], &[]).expect_code(0);

    // A lost identity file is put back by importing the owner's copy.
    fs::remove_file(a.vault().join("identity")).unwrap();
    a.wake(&[]).expect_code(5);
    let v = a
        .run(&[
            "--json",
            "identity",
            "import",
            exported.to_str().unwrap(),
            "--passphrase-env",
            "PASS",
        ])
        .expect_code(2)
        .json();
    assert_eq!(
        v["exit_code"], 2,
        "an unset passphrase variable is a usage error"
    );
    let v = a
        .run_env(
            &[
                "--json",
                "identity",
                "import",
                exported.to_str().unwrap(),
                "--passphrase-env",
                "PASS",
            ],
            &[("PASS", "correct horse battery staple")],
        )
        .expect_code(0)
        .json();
    assert_eq!(v["seq"], Value::Null, "nothing sealed: the head names it");
    assert_eq!(wake_json(&a)["verdict"], "verified");
}

#[test]
fn a_wrong_passphrase_or_no_terminal_is_exit_2() {
    let env = Env::new();
    let (_d1, pass) = token_file("right passphrase");
    let (_d2, wrong) = token_file("wrong passphrase");
    let out_dir = tempfile::tempdir().unwrap();
    let file = out_dir.path().join("id.age");
    let f = file.to_str().unwrap();
    env.run(&[
        "identity",
        "export",
        f,
        "--passphrase-file",
        pass.to_str().unwrap(),
    ])
    .expect_code(0);
    let out = env
        .run(&[
            "identity",
            "import",
            f,
            "--passphrase-file",
            wrong.to_str().unwrap(),
        ])
        .expect_code(2);
    assert!(
        out.stderr.contains("passphrase does not open it"),
        "{}",
        out.stderr
    );
    // No flag and no terminal to ask on: a session of its own (`setsid`)
    // has no controlling terminal. The command says how to pass it.
    let out = std::process::Command::new("setsid")
        .arg("-w")
        .arg(env!("CARGO_BIN_EXE_selfsame"))
        .args(["identity", "import", f])
        .current_dir(env.base())
        .env("TELEGRAM_BOT_TOKEN", TOKEN)
        .env("SELFSAME_IDENTITY_SEED", SEED_HEX)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--passphrase-file"), "{err}");
}

/// Drives `selfsame ARGS` on a pseudo-terminal that is its controlling
/// terminal (Python's `pty.fork`), answering each `passphrase` prompt with
/// `answer`; returns everything the terminal showed and the exit code.
const ON_A_TERMINAL: &str = r#"
import os, pty, sys
answer = sys.argv[1].encode() + b"\n"
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
shown = b""
while True:
    try:
        data = os.read(fd, 1024)
    except OSError:
        break
    if not data:
        break
    shown += data
    if shown.rstrip().endswith(b"passphrase:") or shown.rstrip().endswith(b"again:"):
        os.write(fd, answer)
        shown += b"<answered>"
_, status = os.waitpid(pid, 0)
sys.stdout.write(shown.decode("utf-8", "replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;

#[test]
fn the_passphrase_is_asked_on_the_terminal_and_not_echoed() {
    let env = Env::new();
    let out_dir = tempfile::tempdir().unwrap();
    let file = out_dir.path().join("id.age");
    let secret = "typed-on-the-terminal";
    let run = |args: &[&str]| {
        // The binary's environment as `Env::command` sets it.
        let base = env.command(TOKEN, &[]);
        let mut py = std::process::Command::new("python3");
        py.args(["-c", ON_A_TERMINAL, secret, env!("CARGO_BIN_EXE_selfsame")])
            .args(args)
            .current_dir(env.base());
        for (k, v) in base.get_envs() {
            match v {
                Some(v) => py.env(k, v),
                None => py.env_remove(k),
            };
        }
        py.output().unwrap()
    };
    let out = run(&["identity", "export", file.to_str().unwrap()]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains("passphrase again:"), "asked twice: {shown}");
    assert!(
        !shown.contains(secret),
        "the passphrase was echoed: {shown}"
    );
    let out = run(&["identity", "import", file.to_str().unwrap()]);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(!shown.contains("again"), "import asks once: {shown}");
    assert!(shown.contains("identity file is back"), "{shown}");
}

// --- must hold 4 -----------------------------------------------------------

/// A vault as versions before identity keys made it: no identity file, no
/// signatures.
fn unsigned_env() -> Env {
    let env = Env::bare();
    let mut opts = InitOptions::new("soul").shell("1.0.0");
    opts.identity = false;
    let token = Credential::parse(Platform::Telegram, TOKEN).unwrap();
    init(env.base(), &token, &opts).unwrap();
    env
}

#[test]
fn a_vault_from_before_keeps_working_unsigned_until_identity_init() {
    let env = unsigned_env();
    assert!(!env.vault().join("identity").exists());
    assert_eq!(wake_json(&env)["verdict"], "verified");
    env.run(&["seal"]).expect_code(0);
    let text = fs::read_to_string(env.checkpoint(2)).unwrap();
    assert!(
        !text.contains("identity=") && !text.contains("signature="),
        "{text}"
    );
    env.verify_clean();
    let out = env.run(&["identity", "show"]).expect_code(2);
    assert!(out.stderr.contains("identity init"), "{}", out.stderr);

    let v = env
        .run(&["--json", "identity", "init"])
        .expect_code(0)
        .json();
    assert_eq!(v["seq"], 3);
    let key = shown(&env);
    assert_eq!(v["identity"], key.as_str());
    assert_eq!(env.checkpoint_field(3, "reason"), "identity");
    assert_eq!(named(&env, 3), key);
    env.wake(&[]).expect_code(0);
    env.run(&["seal"]).expect_code(0);
    assert_eq!(named(&env, env.head()), key);
    env.verify_clean();
    // An attestation from the identity checkpoint on verifies (the default
    // range starts there); one that reaches back to the unsigned ones
    // does not.
    let v = env.run(&["--json", "attest"]).expect_code(0).json();
    assert_eq!(v["from"], 3);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("attestation.txt");
    fs::write(&file, v["text"].as_str().unwrap()).unwrap();
    let check = |file: &std::path::Path| {
        env.run(&[
            "--json",
            "verify-attestation",
            "--identity",
            &key,
            file.to_str().unwrap(),
        ])
    };
    let r = check(&file).expect_code(0).json();
    assert_eq!(
        (r["from"].clone(), r["to"].clone()),
        (3.into(), env.head().into())
    );
    let all = env.run(&["attest", "--from", "1"]).expect_code(0).stdout;
    fs::write(&file, all).unwrap();
    let r = check(&file).expect_code(4).json();
    assert_eq!(r["problems"][0]["line"], 1);
    // Once is enough.
    let out = env.run(&["identity", "init"]).expect_code(2);
    assert!(
        out.stderr.contains("already has an identity key"),
        "{}",
        out.stderr
    );
    // The unsigned checkpoints before it are still fine; one after it that
    // lost its signature is not.
    let head = env.head();
    let path = env.checkpoint(head);
    let text = fs::read_to_string(&path).unwrap();
    let id = env.checkpoint_field(head, "identity");
    let sig = env.checkpoint_field(head, "signature");
    fs::write(
        &path,
        text.replace(&format!("&identity={id}&signature={sig}"), ""),
    )
    .unwrap();
    // (That edit also breaks the MAC, which covers `identity`.)
    env.wake(&[]).expect_code(5);
}

// --- must hold 5: the scan looks for the seed ------------------------------

#[test]
fn leak_scan_finds_the_seed_written_into_the_vault() {
    let env = Env::new();
    for (i, needle) in seed_needles(SEED_HEX).into_iter().enumerate() {
        let leak = env.vault().join("run/leak.bin");
        fs::write(&leak, [b"x".as_slice(), &needle, b"y"].concat()).unwrap();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            env.assert_no_secret_anywhere()
        }));
        assert!(caught.is_err(), "the scan missed the seed in form {i}");
        fs::remove_file(&leak).unwrap();
    }
}

/// verify-attestation's exit codes, each pinned: 0 a whole chain signed by
/// the key; 5 a chain with a line taken out or two swapped; 4 the right
/// chain checked against another vault's key; 2 a key that is not one.
#[test]
fn verify_attestation_tells_a_broken_chain_from_another_key() {
    let env = Env::at_rest();
    for i in 0..3 {
        fs::write(env.soul().join("memory.jsonl"), format!("{{\"n\":{i}}}\n")).unwrap();
        env.run(&["seal"]).expect_code(0);
    }
    let key = shown(&env);
    let text = env.run(&["attest", "--from", "1"]).expect_code(0).stdout;
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 4, "{text}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("attestation.txt");
    let check = |key: &str, body: String| {
        fs::write(&file, body).unwrap();
        env.run(&[
            "--json",
            "verify-attestation",
            "--identity",
            key,
            file.to_str().unwrap(),
        ])
    };
    let v = check(&key, text.clone()).expect_code(0).json();
    assert_eq!(v["to"], env.head());

    let mut cut = lines.clone();
    cut.remove(1);
    check(&key, cut.join("\n") + "\n").expect_code(5);
    let mut swapped = lines.clone();
    swapped.swap(1, 2);
    check(&key, swapped.join("\n") + "\n").expect_code(5);

    let other = with_other_identity();
    let other_key = shown(&other);
    assert_ne!(other_key, key);
    check(&other_key, text.clone()).expect_code(4);
    let out = check("selfsame:ed25519:not-a-key", text).expect_code(2);
    assert!(
        out.stderr.contains("identity") || out.stderr.contains("key"),
        "{}",
        out.stderr
    );
}
