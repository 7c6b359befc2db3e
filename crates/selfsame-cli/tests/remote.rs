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
