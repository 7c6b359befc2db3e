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
    assert!(
        out.stderr.contains("no command to supervise"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert_eq!(
        fs::read(env.vault().join("history.jsonl")).unwrap(),
        history,
        "history changed"
    );
    assert!(!env.marker().exists(), "the awake marker was written");
}

/// Replaces `from` by `to` in config.toml (which must hold `from`).
fn edit_config(env: &Env, from: &str, to: &str) {
    let cfg = env.vault().join("config.toml");
    let text = fs::read_to_string(&cfg).unwrap();
    assert!(text.contains(from), "{text}");
    fs::write(&cfg, text.replacen(from, to, 1)).unwrap();
}

/// The line of config.toml (1-based) that starts with `prefix`.
fn config_line(env: &Env, prefix: &str) -> usize {
    let text = fs::read_to_string(env.vault().join("config.toml")).unwrap();
    1 + text
        .lines()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in {text}"))
}

/// `selfsame status` on a broken config: exit 2, one error line naming
/// the file and each of `needles`.
fn config_error(env: &Env, needles: &[&str]) {
    let out = env.run(&["status"]).expect_code(2);
    let err = out.stderr.trim();
    assert!(err.starts_with("selfsame: error: config "), "{err}");
    assert!(err.contains("config.toml"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} missing from: {err}");
    }
}

#[test]
fn a_config_with_a_missing_quote_names_the_line_column_and_key() {
    let env = Env::at_rest();
    let line = config_line(&env, "soul = ");
    edit_config(&env, "soul = \"soul\"", "soul = \"soul");
    config_error(
        &env,
        &[
            &format!("line {line}, column "),
            "key `soul`",
            "a quoted path",
        ],
    );
}

#[test]
fn a_config_value_of_the_wrong_type_names_the_key_and_what_it_takes() {
    let env = Env::at_rest();
    let line = config_line(&env, "max_age = ");
    edit_config(&env, "max_age = \"7d\"", "max_age = 7");
    config_error(
        &env,
        &[
            &format!("line {line}, column 11"),
            "key `max_age`",
            "invalid type: integer `7`",
            "a quoted duration, e.g. max_age = \"7d\"",
        ],
    );
    // In a table, the key is named with the table's.
    edit_config(&env, "max_age = 7", "max_age = \"7d\"");
    let line = config_line(&env, "tampered = ");
    edit_config(&env, "tampered = \"halt\"", "tampered = true");
    config_error(
        &env,
        &[
            &format!("line {line}, column 12"),
            "key `policy.tampered`",
            "\"accept\", \"rollback\" or \"halt\"",
        ],
    );
    // A well-typed value that means nothing: its line too.
    edit_config(&env, "tampered = true", "tampered = \"maybe\"");
    config_error(
        &env,
        &[
            &format!("line {line}, column 12"),
            "policy.tampered = \"maybe\": expected accept, rollback or halt",
        ],
    );
}

#[test]
fn a_config_with_an_unknown_key_names_it_and_its_line() {
    let env = Env::at_rest();
    edit_config(&env, "exclude = []", "exclude = []\ncolour = \"red\"");
    let line = config_line(&env, "colour = ");
    config_error(
        &env,
        &[
            &format!("line {line}, column 1"),
            "key `colour`",
            "unknown field `colour`",
        ],
    );
}

/// Hands the whole test directory to `nobody`, so the binary run as
/// `nobody` (see [`as_nobody`]) is subject to file modes as root is not.
fn give_to_nobody(env: &Env) {
    fn chown_all(p: &std::path::Path) {
        std::os::unix::fs::lchown(p, Some(NOBODY), Some(NOBODY)).unwrap();
        if fs::symlink_metadata(p).unwrap().is_dir() {
            for e in fs::read_dir(p).unwrap() {
                chown_all(&e.unwrap().path());
            }
        }
    }
    chown_all(env.base());
}

const NOBODY: u32 = 65534;

/// Runs the binary as `nobody` (the tests run as root, which ignores modes).
fn as_nobody(env: &Env, args: &[&str]) -> Out {
    use std::os::unix::process::CommandExt;
    let mut c = env.command(TOKEN, args);
    c.uid(NOBODY).gid(NOBODY);
    env.finish(
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// Asserts a refusal that names `path` and says how to get past it.
fn assert_unreadable(out: &Out, path: &std::path::Path) {
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let err = &out.stderr;
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains(&format!(
            "cannot read {}: permission denied",
            path.display()
        )),
        "{err}"
    );
    assert!(err.contains("make it readable"), "{err}");
    assert!(err.contains("`exclude`"), "{err}");
}

#[test]
fn a_soul_file_the_process_may_not_read_is_named_with_what_to_do() {
    let env = Env::bare();
    give_to_nobody(&env);
    as_nobody(&env, &["init", "soul"]).expect_code(0);
    as_nobody(&env, &["wake"]).expect_code(0);
    let file = env.soul().join("notes/a.md");
    let mode = |p: &std::path::Path, m: u32| {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap()
    };
    mode(&file, 0o000);
    assert_unreadable(&as_nobody(&env, &["seal"]), &file);
    assert_unreadable(&as_nobody(&env, &["wake"]), &file);
    mode(&file, 0o644);
    // A directory it may not list.
    let dir = env.soul().join("notes/deep");
    mode(&dir, 0o000);
    assert_unreadable(&as_nobody(&env, &["seal"]), &dir);
    mode(&dir, 0o755);
    as_nobody(&env, &["seal"]).expect_code(0);
}

#[test]
fn init_refuses_a_soul_that_does_not_exist_unless_asked_to_create_it() {
    let env = Env::bare();
    let out = env.run(&["init", "nosuchdir"]).expect_code(2);
    assert!(out.stderr.contains("nosuchdir"), "{}", out.stderr);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
    assert!(out.stderr.contains("--create"), "{}", out.stderr);
    assert!(
        !env.base().join("nosuchdir").exists(),
        "the soul was created"
    );
    assert!(!env.vault().exists(), "a vault was created");
    // A file is no soul either.
    fs::write(env.base().join("afile"), "x").unwrap();
    let out = env.run(&["init", "afile", "--create"]).expect_code(2);
    assert!(out.stderr.contains("not a directory"), "{}", out.stderr);
    assert!(!env.vault().exists(), "a vault was created");

    let out = env.run(&["init", "--create", "nosuchdir"]).expect_code(0);
    assert!(out.stdout.contains("created"), "{}", out.stdout);
    assert!(env.base().join("nosuchdir").is_dir());
    env.wake(&[]).expect_code(0);
}

/// Runs `selfsame init ARGS` in `base/sub`.
fn init_in(env: &Env, sub: &str, args: &[&str]) -> Out {
    let dir = env.base().join(sub);
    fs::create_dir_all(&dir).unwrap();
    let mut all = vec!["init"];
    all.extend_from_slice(args);
    let mut c = env.command(TOKEN, &all);
    c.current_dir(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    env.finish(c.spawn().unwrap())
}

#[test]
fn init_warns_when_another_vault_already_guards_the_soul() {
    let env = Env::new();
    // A vault in a directory above the soul (here: beside it) guards it.
    let out = init_in(&env, "other", &["../soul"]).expect_code(0);
    let warning = format!(
        "warning: soul {} is already guarded by the vault {}",
        env.soul().display(),
        env.vault().display()
    );
    assert!(out.stderr.contains(&warning), "{}", out.stderr);
    // A vault in a directory beside this one guards it.
    let out = init_in(&env, "third", &["--json", "../soul"]).expect_code(0);
    let v = out.json();
    let others = strings(&v["also_guarded_by"]);
    assert!(others.contains(&env.vault().display().to_string()), "{v}");
    assert!(
        others.contains(&env.base().join("other/.selfsame").display().to_string()),
        "{v}"
    );
    // A soul no other vault guards: no warning.
    fs::create_dir(env.base().join("fresh")).unwrap();
    let out = init_in(&env, "fourth", &["../fresh"]).expect_code(0);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
}

/// Runs `args` with stdout set to `stdout`; keeps the output for the scan.
fn run_into(env: &Env, args: &[&str], stdout: std::process::Stdio) -> Out {
    let mut c = env.command(TOKEN, args);
    c.stdout(stdout).stderr(std::process::Stdio::piped());
    env.finish(c.spawn().unwrap())
}

/// Commands that print, on a vault where each has something to say: a
/// history of several events, a soul changed at rest (wake: tampered, 3),
/// an error (`--json show 99`: exit 2, the error as JSON).
fn printing_commands() -> Vec<Vec<&'static str>> {
    [
        &["log"][..],
        &["--json", "log"],
        &["status"],
        &["--json", "status"],
        &["verify"],
        &["show"],
        &["--json", "show"],
        &["diff"],
        &["--json", "show", "99"],
        &["--help"],
        &["--version"],
        &["wake"],
        &["--json", "wake"],
    ]
    .iter()
    .map(|a| a.to_vec())
    .collect()
}

#[test]
fn output_into_a_closed_pipe_ends_quietly_with_the_commands_own_exit_code() {
    let env = Env::at_rest();
    fs::write(env.soul().join("memory.jsonl"), "edited at rest\n").unwrap();
    for args in printing_commands() {
        let want = env.run(&args);
        assert!(!want.stdout.is_empty(), "{args:?} prints nothing");
        // `selfsame … | true`: the reader is gone before the first write.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let got = run_into(&env, &args, writer.into());
        assert!(!got.stderr.contains("panicked"), "{args:?}: {}", got.stderr);
        assert!(!got.stderr.contains("stdout"), "{args:?}: {}", got.stderr);
        assert_eq!(got.code, want.code, "{args:?}: {}", got.stderr);
        assert_eq!(got.stderr, want.stderr, "{args:?}");
    }
}

#[test]
fn output_that_cannot_be_written_is_an_error_on_stderr_and_exit_1() {
    let env = Env::at_rest();
    fs::write(env.soul().join("memory.jsonl"), "edited at rest\n").unwrap();
    for args in printing_commands() {
        let full = fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let got = run_into(&env, &args, full.into());
        assert!(!got.stderr.contains("panicked"), "{args:?}: {}", got.stderr);
        assert!(
            got.stderr
                .contains("selfsame: error: cannot write to stdout: No space left on device"),
            "{args:?}: {}",
            got.stderr
        );
        assert_eq!(got.code, 1, "{args:?}: {}", got.stderr);
    }
}

#[test]
fn the_stale_warning_says_how_old_the_checkpoint_is_and_the_threshold() {
    let env = Env::bare();
    let sealed = [("SELFSAME_NOW", "2030-01-01T00:00:00Z")];
    env.run_env(&["init", "soul"], &sealed).expect_code(0);
    let later = [("SELFSAME_NOW", "2030-01-09T03:00:00Z")];
    let out = env.run_env(&["wake"], &later).expect_code(0);
    assert!(
        out.stdout.contains(
            "warning: stale: checkpoint 1 was sealed 8days 3h ago, longer than max_age 7days"
        ),
        "{}",
        out.stdout
    );
    let out = env.run_env(&["status"], &later).expect_code(0);
    assert!(
        out.stdout
            .contains("sealed 8days 3h ago, longer than max_age 7days"),
        "{}",
        out.stdout
    );
    let out = env
        .run_env(&["wake", "--max-age", "2d"], &later)
        .expect_code(0);
    assert!(
        out.stdout.contains("longer than max_age 2days"),
        "{}",
        out.stdout
    );
}

#[test]
fn the_init_summary_counts_files_and_directories_apart() {
    let env = Env::bare();
    let out = env.run(&["init", "soul"]).expect_code(0);
    // The test soul: 5 files, 1 symlink, 3 directories.
    assert!(
        out.stdout.contains("sealed checkpoint 1 (init): 6 files, "),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("all 9 paths are new: 6 files and symlinks, 3 directories"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("9 added"), "{}", out.stdout);
}

#[test]
fn log_names_the_checkpoint_a_crash_happened_on() {
    let env = Env::at_rest();
    env.run(&["run", "--max-restarts", "0", "--", "sh", "-c", "exit 7"])
        .expect_code(1);
    let out = env.run(&["log"]).expect_code(0);
    let crash = out
        .stdout
        .lines()
        .find(|l| l.contains(" crash "))
        .unwrap_or_else(|| panic!("no crash line: {}", out.stdout));
    assert!(
        crash.contains("the agent died on checkpoint 2 (exit status 7, after "),
        "{crash}"
    );
}

#[test]
fn show_json_gives_numbers_as_numbers() {
    let env = Env::at_rest();
    let v = env.run(&["--json", "show", "2"]).expect_code(0).json();
    let f = &v["fields"];
    for (key, want) in [("v", 1), ("seq", 2), ("files", 6)] {
        assert_eq!(f[key], serde_json::json!(want), "{key}: {v}");
    }
    assert_eq!(f["bot_id"], serde_json::json!(4815162342u64), "{v}");
    assert!(f["bytes"].as_u64().is_some_and(|b| b > 0), "{v}");
    assert_eq!(v["seq"], serde_json::json!(2));
    // Everything else stays text.
    assert!(f["sealed_at"].is_string() && f["soul"].is_string(), "{v}");
}

#[test]
fn the_demo_shows_each_command_it_runs_in_step_2() {
    let env = Env::bare();
    let out = env.run(&["demo"]).expect_code(0);
    let step2: Vec<&str> = out
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("── 2."))
        .take_while(|l| !l.starts_with("── 3."))
        .collect();
    let shown: Vec<&str> = step2
        .iter()
        .filter_map(|l| l.trim_start().strip_prefix("$ "))
        .collect();
    assert_eq!(shown.len(), 3, "{step2:#?}");
    assert_eq!(shown[0], "selfsame wake");
    assert!(shown[1].contains(">> soul/memory.jsonl"), "{step2:#?}");
    assert_eq!(shown[2], "selfsame seal");
}

/// Whether process `pid` has a handler for SIGINT (`SigCgt` in /proc).
fn catches_sigint(pid: u32) -> bool {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (libc_sigint() - 1)) != 0)
}

fn libc_sigint() -> i32 {
    nix::sys::signal::Signal::SIGINT as i32
}

#[test]
fn ctrl_c_during_a_seal_says_on_the_terminal_that_it_finishes_the_seal() {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    use std::time::{Duration, Instant};

    let env = Env::at_rest();
    fs::write(env.soul().join("memory.jsonl"), "one more line\n").unwrap();
    // Hold the vault lock, so the seal is surely under way (waiting to
    // write) when Ctrl-C comes.
    let lock = fs::File::open(env.vault().join("run/lock")).unwrap();
    lock.lock().unwrap();
    let pty = nix::pty::openpty(None, None).unwrap();
    let mut child = env
        .command(TOKEN, &["seal"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::from(pty.slave))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !catches_sigint(child.id()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the seal stopped at Ctrl-C instead of finishing"
    );
    lock.unlock().unwrap();
    let status = child.wait().unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let mut terminal = Vec::new();
    let mut master = fs::File::from(pty.master);
    let mut buf = [0u8; 4096];
    // The terminal reads until the last writer is gone (then EIO).
    while let Ok(n @ 1..) = master.read(&mut buf) {
        terminal.extend_from_slice(&buf[..n]);
    }
    let terminal = String::from_utf8_lossy(&terminal);
    assert!(
        terminal.contains("interrupted: finishing the seal first"),
        "terminal: {terminal}"
    );
    // The seal finished, then the process ended by SIGINT as asked, so a
    // script around it stops too.
    assert!(
        stdout.contains("sealed checkpoint 3 (rest)"),
        "stdout: {stdout}"
    );
    assert_eq!(status.signal(), Some(libc_sigint()), "{status:?}");
    assert_eq!(env.head(), 3);
    assert!(!env.marker().exists());
    env.verify_clean();
    for s in SECRETS {
        assert!(!terminal.contains(s) && !stdout.contains(s));
    }
}
