//! Issue 18: the encrypted replica on S3-compatible storage, the rollback
//! and fork witness, and clone to a new host — against a real local S3
//! server (moto), which must first pass its self-check (a second
//! create-only PUT fails, a stale compare-and-swap fails).

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;

use common::moto::{Moto, AWS_SECRET};
use common::*;

/// Adds `[remote]` for `prefix` on `moto` to the vault's config and adopts
/// it (the config is bound to the checkpoints).
fn configure(env: &Env, moto: &Moto, prefix: &str) {
    let path = env.vault().join("config.toml");
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "\n[remote]\nurl = \"{}\"\nendpoint = \"{}\"\n",
        moto.url(prefix),
        moto.endpoint()
    ));
    fs::write(&path, text).unwrap();
    env.run(&["accept"]).expect_code(0);
}

/// Runs the binary with the AWS credentials of `moto`.
fn run(env: &Env, moto: &Moto, args: &[&str]) -> Out {
    let vars = moto.env();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.run_env(args, &vars)
}

#[test]
fn the_self_check_fails_on_a_server_that_ignores_conditional_writes() {
    // A server that answers every request 200 with the same ETag, as
    // several local S3 stand-ins do.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        for _ in 0..2 {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 65536];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nETag: \"x\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let err = selfsame::testing::s3_self_check(&format!("http://127.0.0.1:{port}"), "bucket")
        .unwrap_err();
    assert!(err.contains("second create-only PUT"), "{err}");
    server.join().unwrap();
}

#[test]
fn moto_passes_the_self_check() {
    // `Moto::start` panics unless the server passes it.
    let moto = Moto::start();
    assert!(!moto.objects().is_empty(), "the probe object is there");
}

#[test]
fn push_sends_what_the_remote_lacks_and_nothing_twice() {
    let moto = Moto::start();
    let env = Env::at_rest();
    configure(&env, &moto, "bot");
    let out = run(&env, &moto, &["push", "--json"]).expect_code(0);
    let v = out.json();
    let head = env.head();
    assert_eq!(v["head"], head);
    assert_eq!(v["remote_before"], serde_json::Value::Null);
    assert_eq!(v["checkpoints"], head);
    assert!(v["objects"].as_u64().unwrap() >= 7, "{v}");
    // Nothing new: nothing sent.
    let v = run(&env, &moto, &["push", "--json"]).expect_code(0).json();
    assert_eq!(
        (v["checkpoints"].as_u64(), v["objects"].as_u64()),
        (Some(0), Some(0))
    );
    // One file changed: its object, the manifest (and the seal's config
    // object, unchanged, is not sent again).
    fs::write(env.soul().join("notes/a.md"), "# who I am\n\nI changed.\n").unwrap();
    env.run(&["seal", "--reason", "manual"]).expect_code(0);
    let v = run(&env, &moto, &["push", "--json"]).expect_code(0).json();
    assert_eq!(v["remote_before"], head);
    assert_eq!(v["checkpoints"], 1);
    assert_eq!(v["objects"], 2, "{v}");
    let keys: Vec<String> = moto.objects().into_iter().map(|(k, _)| k).collect();
    assert!(keys.iter().any(|k| k == "bot/HEAD") && keys.iter().any(|k| k == "bot/key"));
    assert!(keys
        .iter()
        .filter(|k| k.starts_with("bot/"))
        .all(|k| k == "bot/HEAD"
            || k == "bot/key"
            || is_keyed(k, "bot/c/")
            || is_keyed(k, "bot/o/")));
}

fn is_keyed(key: &str, dir: &str) -> bool {
    key.strip_prefix(dir)
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[test]
fn push_without_credentials_or_remote_says_what_to_do() {
    let env = Env::at_rest();
    let out = env.run(&["push"]).expect_code(2);
    assert!(out.stderr.contains("[remote]"), "{}", out.stderr);
    let moto = Moto::start();
    configure(&env, &moto, "bot");
    let out = env.run(&["push"]).expect_code(2);
    assert!(out.stderr.contains("AWS_ACCESS_KEY_ID"), "{}", out.stderr);
    assert!(!out.stderr.contains(AWS_SECRET));
}

/// Clones `moto`'s `prefix` into a fresh temp dir, as a new host would.
fn clone_to_new_host(moto: &Moto, prefix: &str) -> Env {
    let host = Env::bare();
    fs::remove_dir_all(host.soul()).unwrap();
    let vars = moto.env();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let endpoint = moto.endpoint();
    let url = moto.url(prefix);
    let out = host
        .run_env(
            &["clone", &url, ".", "--endpoint", &endpoint, "--json"],
            &vars,
        )
        .expect_code(0);
    let v = out.json();
    assert!(v["objects"].as_u64().unwrap() > 0, "{v}");
    host
}

#[test]
fn push_then_clone_on_a_new_host_wakes_verified_with_the_soul_byte_for_byte() {
    let moto = Moto::start();
    let env = Env::at_rest();
    // Modes beyond 0644/0755 travel too.
    write(&env.soul(), "notes/private.key", b"only mine\n", 0o600);
    fs::set_permissions(
        env.soul().join("notes/deep"),
        std::os::unix::fs::PermissionsExt::from_mode(0o750),
    )
    .unwrap();
    env.run(&["seal", "--reason", "manual"]).expect_code(0);
    configure(&env, &moto, "agents/bot1");
    run(&env, &moto, &["push"]).expect_code(0);

    let host = clone_to_new_host(&moto, "agents/bot1");
    assert_eq!(
        tree(&host.soul()),
        tree(&env.soul()),
        "the soul, byte for byte, modes included"
    );
    assert_eq!(host.head(), env.head());
    for seq in 1..=env.head() {
        assert_eq!(
            fs::read(host.checkpoint(seq)).unwrap(),
            fs::read(env.checkpoint(seq)).unwrap()
        );
    }
    let out = run(&host, &moto, &["wake", "--json"]).expect_code(0);
    assert_eq!(out.json()["verdict"], "verified", "{}", out.stdout);
    run(&host, &moto, &["verify"]).expect_code(0);
    // The new host goes on: it seals and pushes.
    fs::write(host.soul().join("memory.jsonl"), "{\"said\":\"moved\"}\n").unwrap();
    host.run(&["seal"]).expect_code(0);
    run(&host, &moto, &["push"]).expect_code(0);
}

#[test]
fn clone_refuses_another_bots_token_an_empty_remote_and_an_existing_soul() {
    let moto = Moto::start();
    let env = Env::at_rest();
    configure(&env, &moto, "bot");
    run(&env, &moto, &["push"]).expect_code(0);
    let host = Env::bare();
    let vars = moto.env();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let url = moto.url("bot");
    let endpoint = moto.endpoint();
    // The soul directory is there already.
    let out = host
        .run_env(&["clone", &url, ".", "--endpoint", &endpoint], &vars)
        .expect_code(2);
    assert!(out.stderr.contains("already exists"), "{}", out.stderr);
    fs::remove_dir_all(host.soul()).unwrap();
    let out = host.run_as(
        OTHER_BOT,
        &["clone", &url, ".", "--endpoint", &endpoint],
        &vars,
    );
    assert_eq!(out.code, 4, "{}", out.stderr);
    let out = host
        .run_env(
            &[
                "clone",
                &moto.url("nothing-here"),
                ".",
                "--endpoint",
                &endpoint,
            ],
            &vars,
        )
        .expect_code(1);
    assert!(out.stderr.contains("holds no vault"), "{}", out.stderr);
    assert!(
        !host.vault().exists() && !host.soul().exists(),
        "nothing was made"
    );
}

#[test]
fn no_secret_leaves_in_the_clear() {
    let moto = Moto::start();
    let env = Env::at_rest();
    let canary = "soul-canary-7b1f0e9d2c4a";
    fs::write(
        env.soul().join("notes/secret.md"),
        format!("my secret: {canary}\n"),
    )
    .unwrap();
    env.run(&["seal", "--reason", "manual"]).expect_code(0);
    configure(&env, &moto, "bot");
    let pushed = run(&env, &moto, &["push"]).expect_code(0);
    let host = clone_to_new_host(&moto, "bot");
    let woke = run(&host, &moto, &["wake"]).expect_code(0);
    let objects = moto.objects();
    assert!(objects.len() > 10);
    let token_secret = TOKEN.split_once(':').unwrap().1;
    for (key, bytes) in &objects {
        for needle in [
            canary,
            TOKEN,
            token_secret,
            AWS_SECRET,
            "memory.jsonl",
            "4815162342",
        ] {
            assert!(!contains(bytes, needle.as_bytes()), "{needle:?} in {key}");
            assert!(!key.contains(needle), "{needle:?} in the name {key}");
        }
        // No content hash either: names are keyed.
        let h = sha256_hex(format!("my secret: {canary}\n").as_bytes());
        assert!(!key.contains(&h) && !contains(bytes, h.as_bytes()));
    }
    for out in [&pushed, &woke] {
        assert!(!out.stdout.contains(AWS_SECRET) && !out.stderr.contains(AWS_SECRET));
    }
    for e in [&env, &host] {
        let mut files = Vec::new();
        collect(e.base(), &mut files);
        for f in files {
            assert!(
                !contains(&fs::read(&f).unwrap(), AWS_SECRET.as_bytes()),
                "{}",
                f.display()
            );
        }
    }
}

fn collect(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let meta = fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            collect(&p, out);
        } else if meta.is_file() {
            out.push(p);
        }
    }
}
