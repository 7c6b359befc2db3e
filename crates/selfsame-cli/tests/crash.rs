//! A heartbeat seal that dies while the agent is awake: the next wake must
//! still read the changes as a crash (drifted), never as tampering.

mod common;

use std::fs::OpenOptions;
use std::io::Write;

use common::*;

fn append(env: &Env, line: &str) {
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .open(env.soul().join("memory.jsonl"))
        .unwrap();
    writeln!(f, "{line}").unwrap();
}

#[test]
fn heartbeat_killed_at_each_step_while_awake_then_crash_is_drifted() {
    for point in [
        "seal-after-objects",
        "seal-after-manifest",
        "seal-after-checkpoint",
        "seal-after-head",
    ] {
        let env = Env::new();
        env.wake(&[]).expect_code(0); // the agent is awake
        append(&env, r#"{"n":1}"#);
        let out = env.run_env(
            &["seal", "--reason", "heartbeat"],
            &[("SELFSAME_FAILPOINT", point)],
        );
        assert_eq!(out.code, 97, "{point}: {}", out.stderr);
        // The agent goes on writing, then dies with the supervisor.
        append(&env, r#"{"n":2}"#);
        let v = env.wake(&[]).expect_code(0).json();
        assert_eq!(v["verdict"], "drifted", "{point}: {v}");
        assert!(
            std::fs::read_to_string(env.soul().join("memory.jsonl"))
                .unwrap()
                .contains(r#"{"n":2}"#),
            "{point}: nothing lost"
        );
        env.verify_clean();
        env.assert_no_secret_anywhere();
    }
}
