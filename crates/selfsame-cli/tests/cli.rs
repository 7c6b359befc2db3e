//! What a person at a terminal meets: output into a closed pipe or a full
//! disk, `init` of a soul that is not there or already guarded, config
//! mistakes, files the process may not read, and the wording of warnings,
//! the log and `show --json`.

mod common;

use std::fs;

use common::*;

#[test]
fn run_with_an_empty_command_is_refused_before_wake_writes_anything() {
    let env = Env::at_rest();
    let history = fs::read(env.vault().join("history.jsonl")).unwrap();
    let out = env.run(&["run", "--", ""]).expect_code(2);
    assert!(out.stderr.contains("no command to supervise"), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert_eq!(
        fs::read(env.vault().join("history.jsonl")).unwrap(),
        history,
        "history changed"
    );
    assert!(!env.marker().exists(), "the awake marker was written");
}
