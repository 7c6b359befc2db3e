//! Issue 18: the encrypted replica on S3-compatible storage, the rollback
//! and fork witness, and clone to a new host — against a real local S3
//! server (moto), which must first pass its self-check (a second
//! create-only PUT fails, a stale compare-and-swap fails).

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;

use common::moto::{Moto, Relay, AWS_SECRET};
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
            || is_keyed(k, "bot/p/")
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
    // The key file, HEAD, the checkpoints, and the packs the contents went
    // into: every one of them is read below.
    assert!(objects.len() > 5, "{}", objects.len());
    assert!(objects.iter().any(|(k, _)| k.starts_with("bot/p/")));
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

/// Adds `[remote]` through `endpoint` (e.g. a relay) and adopts it.
fn configure_at(env: &Env, moto: &Moto, prefix: &str, endpoint: &str, policy: &str) {
    let path = env.vault().join("config.toml");
    let text = fs::read_to_string(&path)
        .unwrap()
        .replace("[policy]\n", &format!("[policy]\n{policy}"));
    let text = format!(
        "{text}\n[remote]\nurl = \"{}\"\nendpoint = \"{endpoint}\"\n",
        moto.url(prefix)
    );
    fs::write(&path, text).unwrap();
    env.run(&["accept"]).expect_code(0);
}

fn wake_json(env: &Env, moto: &Moto) -> (Out, serde_json::Value) {
    let out = run(env, moto, &["wake", "--json"]);
    let v = out.json();
    (out, v)
}

#[test]
fn a_vault_put_back_is_rolled_back() {
    let moto = Moto::start();
    let env = Env::at_rest();
    configure(&env, &moto, "bot");
    run(&env, &moto, &["push"]).expect_code(0);
    let old = env.copy();
    for i in 0..2 {
        fs::write(env.soul().join("memory.jsonl"), format!("{{\"n\":{i}}}\n")).unwrap();
        env.run(&["seal"]).expect_code(0);
        run(&env, &moto, &["push"]).expect_code(0);
    }
    // The old copy put back in place of the vault and soul.
    let (out, v) = wake_json(&old, &moto);
    assert_eq!(out.code, 5, "{}", out.stdout);
    assert_eq!(v["verdict"], "rolled-back");
    assert_eq!(v["detail"], "remote-ahead");
    assert_eq!(v["may_start"], false);
    assert_eq!(v["remote"]["remote_seq"], env.head());
    assert!(old.history().last().unwrap()["verdict"] == "rolled-back");
    // Nor can it push over the newer remote.
    run(&old, &moto, &["push"]).expect_code(5);
    // The vault that went on is still fine.
    let (_, v) = wake_json(&env, &moto);
    assert_eq!(v["verdict"], "verified");
}

#[test]
fn newest_records_cut_and_the_marker_replayed_are_rolled_back_with_a_witness() {
    let moto = Moto::start();
    let env = Env::at_rest();
    configure(&env, &moto, "bot");
    run(&env, &moto, &["push"]).expect_code(0);
    // The agent runs: keep its marker and the history as they are now.
    run(&env, &moto, &["wake"]).expect_code(0);
    let marker = fs::read(env.marker()).unwrap();
    let history = fs::read(env.vault().join("history.jsonl")).unwrap();
    let head = env.head();
    // A clean stop seals and pushes.
    env.run(&["seal"]).expect_code(0);
    run(&env, &moto, &["push"]).expect_code(0);
    // Cut the newest records, put the marker back, edit the soul.
    fs::remove_file(env.checkpoint(head + 1)).unwrap();
    fs::write(env.vault().join("HEAD"), format!("{head}\n")).unwrap();
    fs::write(env.vault().join("history.jsonl"), &history).unwrap();
    fs::write(env.marker(), &marker).unwrap();
    fs::write(
        env.soul().join("notes/a.md"),
        "# who I am\n\nsomeone else\n",
    )
    .unwrap();
    // Without the witness this reads as a crash; with it, as what it is.
    let plain = env.copy();
    let path = plain.vault().join("config.toml");
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, &text[..text.find("\n[remote]").unwrap() + 1]).unwrap();
    assert_eq!(
        plain.run(&["status", "--json"]).json()["wake"]["detail"],
        "config-changed",
        "the vault binds its config: dropping [remote] is seen"
    );
    let (out, v) = wake_json(&env, &moto);
    assert_eq!(out.code, 5, "{}", out.stdout);
    assert_eq!(
        (v["verdict"].as_str(), v["detail"].as_str()),
        (Some("rolled-back"), Some("remote-ahead"))
    );
    assert!(
        fs::read_to_string(env.soul().join("notes/a.md"))
            .unwrap()
            .contains("someone else"),
        "nothing adopted, nothing moved"
    );
    assert_eq!(env.head(), head);
}

#[test]
fn two_copies_sealing_fork_the_second_push_is_refused_and_its_wake_is_forked() {
    let moto = Moto::start();
    let env = Env::at_rest();
    configure(&env, &moto, "bot");
    run(&env, &moto, &["push"]).expect_code(0);
    let twin = env.copy();
    fs::write(env.soul().join("memory.jsonl"), "{\"here\":1}\n").unwrap();
    env.run(&["seal"]).expect_code(0);
    run(&env, &moto, &["push"]).expect_code(0);
    fs::write(twin.soul().join("memory.jsonl"), "{\"there\":1}\n").unwrap();
    twin.run(&["seal"]).expect_code(0);
    let out = run(&twin, &moto, &["push"]).expect_code(5);
    assert!(out.stderr.contains("forked"), "{}", out.stderr);
    // The remote head is still the first one's.
    let (_, v) = wake_json(&env, &moto);
    assert_eq!(v["verdict"], "verified");
    // The twin's next start: forked, halted whatever the policy, alerted.
    let alerts = twin.base().join("alerts.jsonl");
    let cmd = format!("cat >> {}", alerts.display());
    let vars = moto.env();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = twin.run_env(
        &[
            "run",
            "--policy",
            "tampered=accept",
            "--alert-cmd",
            &cmd,
            "--",
            "true",
        ],
        &vars,
    );
    assert_eq!(out.code, 5, "{}", out.stderr);
    let alert: serde_json::Value =
        serde_json::from_str(fs::read_to_string(&alerts).unwrap().lines().next().unwrap()).unwrap();
    assert_eq!(
        (alert["verdict"].as_str(), alert["detail"].as_str()),
        (Some("corrupted"), Some("forked"))
    );
    let (out, v) = wake_json(&twin, &moto);
    assert_eq!(out.code, 5);
    assert_eq!(
        (v["verdict"].as_str(), v["detail"].as_str()),
        (Some("corrupted"), Some("forked"))
    );
}

#[test]
fn an_old_host_that_comes_back_after_a_clone_and_seals_is_forked() {
    let moto = Moto::start();
    let env = Env::at_rest();
    configure(&env, &moto, "bot");
    run(&env, &moto, &["push"]).expect_code(0);
    let host = clone_to_new_host(&moto, "bot");
    fs::write(host.soul().join("memory.jsonl"), "{\"new host\":1}\n").unwrap();
    host.run(&["seal"]).expect_code(0);
    run(&host, &moto, &["push"]).expect_code(0);
    // The old host was never stopped: it seals, its push is refused.
    fs::write(env.soul().join("memory.jsonl"), "{\"old host\":1}\n").unwrap();
    env.run(&["seal"]).expect_code(0);
    run(&env, &moto, &["push"]).expect_code(5);
    let (_, v) = wake_json(&env, &moto);
    assert_eq!(v["detail"], "forked");
}

#[test]
fn with_the_remote_down_run_keeps_the_agent_running_and_the_pushes_catch_up() {
    let moto = Moto::start();
    let relay = Relay::new(moto.port);
    let env = Env::at_rest();
    configure_at(&env, &moto, "bot", &relay.endpoint(), "");
    run(&env, &moto, &["push"]).expect_code(0);
    relay.set(false);
    // Wake warns, and the agent may start.
    let (out, v) = wake_json(&env, &moto);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert_eq!(v["verdict"], "verified");
    assert!(strings(&v["warnings"]).contains(&"witness-unreachable".to_owned()));
    env.run(&["seal"]).expect_code(0);
    // The agent writes, heartbeats seal while the remote is down; it comes
    // back while the agent runs.
    let agent = "echo '{\"x\":1}' >> soul/memory.jsonl; sleep 3; echo '{\"x\":2}' >> soul/memory.jsonl; sleep 6";
    let vars = moto.env();
    let mut vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.push(("AGENT_SEES", "x"));
    let child = {
        let mut c = env.command(
            TOKEN,
            &[
                "run",
                "--heartbeat",
                "1s",
                "--probation",
                "1s",
                "--push-tries",
                "20",
                "--push-backoff",
                "200ms",
                "--",
                "sh",
                "-c",
                &format!("{agent}; env | grep -E '^(AWS_|AGENT_SEES)' > agent-env.txt"),
            ],
        );
        c.envs(vars.iter().copied());
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c.spawn().unwrap()
    };
    std::thread::sleep(std::time::Duration::from_secs(4));
    relay.set(true);
    let out = env.finish(child);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("push: try 1 of 20 failed"),
        "{}",
        out.stderr
    );
    let caught_up = out
        .stderr
        .find("push: sent checkpoints")
        .expect("a push caught up");
    let ended = out.stderr.find(") ended: ").expect("the agent ended");
    assert!(
        caught_up < ended,
        "caught up while the agent ran:\n{}",
        out.stderr
    );
    // Everything is there now: a status says the remote is up to date.
    let v = run(&env, &moto, &["status", "--json"])
        .expect_code(0)
        .json();
    assert_eq!(v["wake"]["remote"]["state"], "same", "{v}");
    assert_eq!(v["wake"]["remote"]["remote_seq"], env.head());
    // The agent did not get the AWS credentials.
    let seen = fs::read_to_string(env.base().join("agent-env.txt")).unwrap();
    assert!(
        seen.contains("AGENT_SEES=x")
            && !seen.contains("AWS_SECRET_ACCESS_KEY")
            && !seen.contains(AWS_SECRET)
    );
}

#[test]
fn status_shows_how_far_the_remote_is_behind_and_witness_halt_stops_the_agent() {
    let moto = Moto::start();
    let relay = Relay::new(moto.port);
    let env = Env::at_rest();
    configure_at(
        &env,
        &moto,
        "bot",
        &relay.endpoint(),
        "witness = \"halt\"\n",
    );
    run(&env, &moto, &["push"]).expect_code(0);
    for _ in 0..2 {
        env.run(&["seal"]).expect_code(0);
    }
    let v = run(&env, &moto, &["status", "--json"]).json();
    assert_eq!(
        (
            v["wake"]["remote"]["state"].as_str(),
            v["wake"]["remote"]["behind"].as_u64()
        ),
        (Some("behind"), Some(2))
    );
    let text = run(&env, &moto, &["status"]).stdout;
    assert!(text.contains("2 checkpoint(s) behind"), "{text}");
    // Wake pushes what the remote lacks.
    let (_, v) = wake_json(&env, &moto);
    assert_eq!(v["remote"]["state"], "pushed");
    env.run(&["seal"]).expect_code(0);
    relay.set(false);
    let (out, v) = wake_json(&env, &moto);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert_eq!(v["verdict"], "verified");
    assert_eq!(v["may_start"], false);
    assert!(strings(&v["warnings"]).contains(&"witness-unreachable".to_owned()));
    // Without credentials it is unreachable too.
    let out = env.run(&["wake"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(out.stdout.contains("AWS_ACCESS_KEY_ID"), "{}", out.stdout);
}

/// Issue 15: what retention released is not sent, and a clone of a pruned
/// vault verifies (its history says what was forgotten).
#[test]
fn a_pruned_vault_pushes_and_clones_what_it_keeps() {
    let moto = Moto::start();
    let env = Env::at_rest();
    for i in 0..3 {
        write(
            &env.soul(),
            "notes/day.md",
            format!("day {i}\n").as_bytes(),
            0o644,
        );
        env.run(&["seal", "--reason", "manual"]).expect_code(0);
    }
    configure(&env, &moto, "agents/pruned");
    env.run(&["forget", "--keep-last", "1"]).expect_code(0);
    env.run(&["seal", "--reason", "manual"]).expect_code(0);
    env.run(&["prune"]).expect_code(0);
    run(&env, &moto, &["push"]).expect_code(0);
    let host = clone_to_new_host(&moto, "agents/pruned");
    assert_eq!(tree(&host.soul()), tree(&env.soul()));
    let out = run(&host, &moto, &["wake", "--json"]).expect_code(0);
    assert_eq!(out.json()["verdict"], "verified", "{}", out.stdout);
    let out = run(&host, &moto, &["verify"]).expect_code(0);
    assert!(
        out.stdout.contains("forgotten by retention"),
        "{}",
        out.stdout
    );
}

// --- rekey and bind keep the replica --------------------------------------

/// Clones `prefix` into a fresh directory with `token` (`platform` and its
/// env var) as a new host would: the exit code, and the host.
fn clone_with(moto: &Moto, prefix: &str, token: (&str, &str, &str)) -> (Out, Env) {
    let (platform, var, value) = token;
    let host = Env::bare();
    fs::remove_dir_all(host.soul()).unwrap();
    let mut vars = moto.env();
    vars.push((var, value.to_owned()));
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let url = moto.url(prefix);
    let endpoint = moto.endpoint();
    let out = host.run_env(
        &[
            "clone",
            &url,
            ".",
            "--endpoint",
            &endpoint,
            "--platform",
            platform,
            "--token-env",
            var,
        ],
        &vars,
    );
    (out, host)
}

/// Runs the binary with `token` in `TELEGRAM_BOT_TOKEN`, `extra` env vars
/// and the AWS credentials of `moto`.
fn run_with(env: &Env, moto: &Moto, token: &str, extra: &[(&str, &str)], args: &[&str]) -> Out {
    let vars = moto.env();
    let mut vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.extend_from_slice(extra);
    env.run_as(token, args, &vars)
}

const REKEY: &[&str] = &["rekey", "--old-token-env", "OLD", "--new-token-env", "NEW"];
const TOKENS: &[(&str, &str)] = &[("OLD", TOKEN), ("NEW", ROTATED)];

/// After a move to a new token: a change sealed and pushed under it, then
/// a clone with it wakes `verified` with the soul byte for byte; the old
/// token opens nothing new (its clone is refused, exit 4).
fn clone_after_the_move(env: &Env, moto: &Moto, new: (&str, &str, &str), old: (&str, &str, &str)) {
    let (_, var, value) = new;
    let with_new = [(var, value)];
    fs::write(
        env.soul().join("notes/after.md"),
        "written under the new token: rekeyed-canary-7Qx\n",
    )
    .unwrap();
    run_with(env, moto, value, &with_new, &["seal"]).expect_code(0);
    run_with(env, moto, value, &with_new, &["push"]).expect_code(0);
    let keys: Vec<String> = moto.objects().into_iter().map(|(k, _)| k).collect();
    assert!(keys.iter().any(|k| k == "bot/key-2"), "{keys:?}");
    assert!(!keys.iter().any(|k| k == "bot/key-3"), "{keys:?}");

    let (out, host) = clone_with(moto, "bot", new);
    out.expect_code(0);
    assert_eq!(
        tree(&host.soul()),
        tree(&env.soul()),
        "the soul, byte for byte"
    );
    assert_eq!(host.head(), env.head());
    let out = run_with(&host, moto, value, &with_new, &["wake", "--json"]).expect_code(0);
    let v = out.json();
    assert_eq!(v["verdict"], "verified", "{}", out.stdout);
    assert_eq!(v["remote"]["state"], "same", "{v}");

    let (out, _) = clone_with(moto, "bot", old);
    assert_eq!(
        out.code, 4,
        "the old token opens no new record: {}",
        out.stderr
    );
    // Nothing written under the new token is in the clear.
    assert!(moto
        .objects()
        .iter()
        .all(|(_, body)| !body.windows(10).any(|w| w == b"rekeyed-ca")));
}

#[test]
fn after_a_rekey_push_goes_on_and_a_clone_with_the_new_token_wakes_verified() {
    let moto = Moto::start();
    let env = Env::at_rest();
    configure(&env, &moto, "bot");
    run(&env, &moto, &["push"]).expect_code(0);
    env.run_env(REKEY, TOKENS).expect_code(0);
    assert!(env.vault().join("remote-key").exists());
    assert!(!env.vault().join("run/remote-key.next").exists());
    // Before anything is pushed, status under the new token reads the
    // remote with the vault's copy of its keys: one checkpoint behind.
    let out = run_with(&env, &moto, ROTATED, &[], &["status", "--json"]).expect_code(0);
    assert_eq!(out.json()["wake"]["remote"]["behind"], 1, "{}", out.stdout);
    clone_after_the_move(
        &env,
        &moto,
        ("telegram", "NEW_TOKEN", ROTATED),
        ("telegram", "OLD_TOKEN", TOKEN),
    );
    // The old host's token: its push is refused too.
    let out = run(&env, &moto, &["push"]);
    assert_ne!(out.code, 0, "{}", out.stderr);
}

#[test]
fn after_a_bind_to_a_discord_bot_the_discord_token_clones_the_replica() {
    let moto = Moto::start();
    let env = Env::at_rest();
    configure(&env, &moto, "bot");
    run(&env, &moto, &["push"]).expect_code(0);
    env.run_env(
        &[
            "bind",
            "--platform",
            "discord",
            "--new-token-env",
            "DISCORD_BOT_TOKEN",
        ],
        &[("DISCORD_BOT_TOKEN", DISCORD)],
    )
    .expect_code(0);
    clone_after_the_move(
        &env,
        &moto,
        ("discord", "DISCORD_BOT_TOKEN", DISCORD),
        ("telegram", "TELEGRAM_BOT_TOKEN", TOKEN),
    );
}

#[test]
fn a_rekey_or_a_push_stopped_dead_half_way_loses_no_replica() {
    let moto = Moto::start();
    let env = Env::at_rest();
    configure(&env, &moto, "bot");
    run(&env, &moto, &["push"]).expect_code(0);
    // The rekey stops right after its checkpoint: the keyring re-wrapped
    // for the new token is still pending in run/.
    let mut vars = TOKENS.to_vec();
    vars.push(("SELFSAME_FAILPOINT", "handover-after-head"));
    let out = env.run_env(REKEY, &vars);
    assert_eq!(out.code, 97, "{}", out.stderr);
    assert!(env.vault().join("run/remote-key.next").exists());
    // The push under the new token stops right after it added the key
    // file of the new generation, before the vault's copy is updated.
    let out = run_with(
        &env,
        &moto,
        ROTATED,
        &[("SELFSAME_FAILPOINT", "push-after-key")],
        &["push"],
    );
    assert_eq!(out.code, 97, "{}", out.stderr);
    assert!(moto.objects().iter().any(|(k, _)| k == "bot/key-2"));
    // The next push finishes it; a clone with the new token is whole.
    let v = run_with(&env, &moto, ROTATED, &[], &["push", "--json"])
        .expect_code(0)
        .json();
    assert_eq!(v["head"], env.head(), "{v}");
    assert!(!env.vault().join("run/remote-key.next").exists());
    let (out, host) = clone_with(&moto, "bot", ("telegram", "NEW_TOKEN", ROTATED));
    out.expect_code(0);
    assert_eq!(tree(&host.soul()), tree(&env.soul()));
    let out = run_with(&host, &moto, ROTATED, &[], &["wake", "--json"]).expect_code(0);
    assert_eq!(out.json()["verdict"], "verified", "{}", out.stdout);
    assert!(!moto.objects().iter().any(|(k, _)| k == "bot/key-3"));
}

#[test]
fn small_objects_travel_in_packs_and_a_big_one_alone_and_all_clone_back() {
    let moto = Moto::start();
    let env = Env::at_rest();
    // 9 MiB: more than a pack holds, so it goes on its own.
    let big: Vec<u8> = (0..9u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
    fs::create_dir_all(env.soul().join("data")).unwrap();
    write(&env.soul(), "data/big.bin", &big, 0o644);
    for i in 0..40 {
        write(
            &env.soul(),
            &format!("notes/n{i}.md"),
            format!("note {i}\n").as_bytes(),
            0o644,
        );
    }
    env.run(&["seal", "--reason", "manual"]).expect_code(0);
    configure(&env, &moto, "bot");
    let v = run(&env, &moto, &["push", "--json"]).expect_code(0).json();
    assert!(v["objects"].as_u64().unwrap() > 40, "{v}");
    let keys: Vec<String> = moto.objects().into_iter().map(|(k, _)| k).collect();
    let count = |dir: &str| keys.iter().filter(|k| is_keyed(k, dir)).count();
    assert_eq!(count("bot/o/"), 1, "the big object alone: {keys:?}");
    // Contents in one pack, manifests and configs in another.
    assert_eq!(count("bot/p/"), 2, "{keys:?}");
    let host = clone_to_new_host(&moto, "bot");
    assert_eq!(tree(&host.soul()), tree(&env.soul()));
    let out = run(&host, &moto, &["wake", "--json"]).expect_code(0);
    assert_eq!(out.json()["verdict"], "verified", "{}", out.stdout);
}

#[test]
fn a_rekey_copies_the_replicas_keys_first_when_the_vault_has_none() {
    let moto = Moto::start();
    let env = Env::at_rest();
    configure(&env, &moto, "bot");
    run(&env, &moto, &["push"]).expect_code(0);
    // A vault that pushed before it kept a copy of the keys.
    let copy = env.vault().join("remote-key");
    fs::remove_file(&copy).unwrap();
    // Without the AWS credentials the rekey goes on, and says what it
    // means for the replica.
    let other = env.copy();
    let out = other.run_env(REKEY, TOKENS).expect_code(0);
    assert!(
        out.stderr
            .contains("the replica's keys could not be copied"),
        "{}",
        out.stderr
    );
    assert!(!other.vault().join("remote-key").exists());
    // With them, it copies the keys, then re-wraps them.
    let vars: Vec<(&str, String)> = moto.env();
    let mut all: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(TOKENS);
    let out = env.run_env(REKEY, &all).expect_code(0);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
    assert!(copy.exists());
    run_with(&env, &moto, ROTATED, &[], &["push"]).expect_code(0);
    let (out, host) = clone_with(&moto, "bot", ("telegram", "NEW_TOKEN", ROTATED));
    out.expect_code(0);
    assert_eq!(tree(&host.soul()), tree(&env.soul()));
}

/// A copy of the vault pushes while `selfsame run` supervises the agent:
/// the supervisor's next push is refused (forked), the owner gets a
/// `push-refused` alert, the alert command gets neither the token nor the
/// AWS credentials, the agent keeps running, and the next wake is forked.
#[test]
fn under_run_a_push_the_remote_refuses_alerts_the_owner() {
    let moto = Moto::start();
    let env = Env::at_rest();
    configure(&env, &moto, "bot");
    run(&env, &moto, &["push"]).expect_code(0);
    let twin = env.copy();
    let alerts = env.base().join("alerts.jsonl");
    let alert_env = env.base().join("alert-env.txt");
    let cmd = format!(
        "env | grep -v '^SELFSAME_IDENTITY_SEED=' > {}; cat >> {}",
        alert_env.display(),
        alerts.display()
    );
    let agent = "touch started; while [ ! -e go ]; do sleep 0.1; done; \
                 echo '{\"here\":1}' >> soul/memory.jsonl; sleep 3; echo done > ran-on";
    let vars = moto.env();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let child = {
        let mut c = env.command(
            TOKEN,
            &[
                "run",
                "--heartbeat",
                "1s",
                "--probation",
                "1s",
                "--alert-cmd",
                &cmd,
                "--",
                "sh",
                "-c",
                agent,
            ],
        );
        c.envs(vars.iter().copied());
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c.spawn().unwrap()
    };
    let started = env.base().join("started");
    for _ in 0..300 {
        if started.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(started.exists(), "the agent started");
    // The same bot, elsewhere, seals and pushes first.
    fs::write(twin.soul().join("memory.jsonl"), "{\"there\":1}\n").unwrap();
    twin.run(&["seal"]).expect_code(0);
    run(&twin, &moto, &["push"]).expect_code(0);
    fs::write(env.base().join("go"), "").unwrap();
    let out = env.finish(child);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("push refused"), "{}", out.stderr);
    assert_eq!(
        fs::read_to_string(env.base().join("ran-on")).unwrap_or_default(),
        "done\n",
        "the agent kept running: {}",
        out.stderr
    );
    let first = fs::read_to_string(&alerts).unwrap();
    let alert: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    assert_eq!(alert["event"], "push-refused", "{alert}");
    assert!(
        alert["message"].as_str().unwrap().contains("forked"),
        "{alert}"
    );
    let seen = fs::read_to_string(&alert_env).unwrap();
    for secret in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        AWS_SECRET,
        TOKEN,
    ] {
        assert!(!seen.contains(secret), "the alert command saw {secret}");
    }
    let (out, v) = wake_json(&env, &moto);
    assert_eq!(out.code, 5, "{}", out.stdout);
    assert_eq!(v["detail"], "forked", "{v}");
}

/// A replica damaged in the bucket (an object's bytes flipped, a pack
/// deleted) is refused by clone, which names what it could not read and
/// leaves no vault and no soul behind; put right, the same clone goes
/// through and wakes verified.
#[test]
fn clone_refuses_a_damaged_replica_and_leaves_nothing_half_made() {
    let moto = Moto::start();
    let env = Env::at_rest();
    let big: Vec<u8> = (0..9u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
    fs::create_dir_all(env.soul().join("data")).unwrap();
    fs::write(env.soul().join("data/big.bin"), &big).unwrap();
    env.run(&["seal", "--reason", "manual"]).expect_code(0);
    configure(&env, &moto, "bot");
    run(&env, &moto, &["push"]).expect_code(0);
    let stored = moto.objects();
    let find = |dir: &str| {
        stored
            .iter()
            .find(|(k, _)| is_keyed(k, dir))
            .cloned()
            .unwrap_or_else(|| panic!("no {dir} in the bucket"))
    };
    let (object, object_bytes) = find("bot/o/");
    let (pack, pack_bytes) = find("bot/p/");
    let vars = moto.env();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let clone = |host: &Env| {
        host.run_env(
            &[
                "clone",
                &moto.url("bot"),
                "new",
                "--endpoint",
                &moto.endpoint(),
            ],
            &vars,
        )
    };

    let mut flipped = object_bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    for (what, key, bytes) in [
        ("a flipped byte", &object, Some(&flipped[..])),
        ("a deleted pack", &pack, None),
    ] {
        moto.set_object(key, bytes);
        if key == &pack {
            moto.set_object(&object, Some(&object_bytes));
        }
        let host = Env::bare();
        let out = clone(&host);
        assert_eq!(out.code, 5, "{what}: {}", out.stderr);
        assert!(
            out.stderr.contains("damaged"),
            "{what}: the message says the replica is damaged: {}",
            out.stderr
        );
        let new = host.base().join("new");
        let left: Vec<_> = fs::read_dir(&new)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{what}: left behind: {left:?}");
    }
    moto.set_object(&pack, Some(&pack_bytes));
    let host = clone_to_new_host(&moto, "bot");
    assert_eq!(fs::read(host.soul().join("data/big.bin")).unwrap(), big);
    let out = run(&host, &moto, &["wake", "--json"]).expect_code(0);
    assert_eq!(out.json()["verdict"], "verified", "{}", out.stdout);
}
