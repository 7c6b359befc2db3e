//! Issue 15, build 6: the past, readable. `selfsame cat [SEQ:]PATH` prints
//! a file as a checkpoint sealed it, `selfsame ls [SEQ] [PATH]` lists a
//! checkpoint's entries, `selfsame diff -p` shows what changed inside each
//! file (unified diffs for text, binary files named). Every test ends with
//! the token-leak scan.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::*;

/// Checkpoint 1: the rich soul. Checkpoint 2: a private key added, a
/// note edited, the binary changed, `run.sh` removed. Then, unsealed: the
/// key's mode and the note change again.
fn history_env() -> Env {
    let env = Env::new();
    write(&env.soul(), "private.key", b"only mine\n", 0o600);
    write(
        &env.soul(),
        "notes/a.md",
        b"# who I am\n\nI remember.\nI learned something.\n",
        0o644,
    );
    write(&env.soul(), "notes/deep/b.bin", &[0u8, 1, 2, 3, 4], 0o644);
    fs::remove_file(env.soul().join("run.sh")).unwrap();
    env.run(&["seal", "--reason", "manual"]).expect_code(0);
    assert_eq!(env.head(), 2);
    fs::set_permissions(
        env.soul().join("private.key"),
        fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    write(
        &env.soul(),
        "notes/a.md",
        b"# who I am\n\nI remember.\nI learned more.\n",
        0o644,
    );
    env
}

#[test]
fn cat_prints_a_file_as_each_checkpoint_sealed_it() {
    let env = history_env();
    let out = env.run(&["cat", "1:notes/a.md"]).expect_code(0);
    assert_eq!(out.stdout, "# who I am\n\nI remember.\n");
    let out = env.run(&["cat", "notes/a.md"]).expect_code(0);
    assert_eq!(
        out.stdout,
        "# who I am\n\nI remember.\nI learned something.\n"
    );
    assert_eq!(
        env.run(&["cat", "head:./notes/a.md"]).expect_code(0).stdout,
        out.stdout
    );
    // Bytes exactly, binary included.
    let bin = env
        .command(TOKEN, &["cat", "1:notes/deep/b.bin"])
        .output()
        .unwrap();
    assert_eq!(bin.stdout, [0u8, 1, 2, 3, 255, 254, 10, 13]);
    assert_eq!(
        env.run(&["cat", "1:run.sh"]).expect_code(0).stdout,
        "#!/bin/sh\necho awake\n"
    );
    // A symlink prints its target.
    assert_eq!(
        env.run(&["cat", "link"]).expect_code(0).stdout,
        "notes/a.md"
    );
    env.assert_no_secret_anywhere();
}

#[test]
fn cat_refuses_what_is_not_a_sealed_file() {
    let env = history_env();
    let out = env.run(&["cat", "2:run.sh"]).expect_code(2);
    assert!(
        out.stderr.contains("checkpoint 2 has no run.sh"),
        "{}",
        out.stderr
    );
    let out = env.run(&["cat", "notes"]).expect_code(2);
    assert!(
        out.stderr.contains("notes in checkpoint 2 is a directory"),
        "{}",
        out.stderr
    );
    let out = env.run(&["cat", "9:notes/a.md"]).expect_code(2);
    assert!(out.stderr.contains("no checkpoint 9"), "{}", out.stderr);
    env.run(&["cat", "../outside"]).expect_code(2);
    // Another bot's token reads nothing.
    env.run_as(OTHER_BOT, &["cat", "notes/a.md"], &[])
        .expect_code(4);
    // A damaged copy in the vault is damage, not the file.
    let soul = env.checkpoint_field(1, "soul");
    let manifest = fs::read_to_string(object_path(&env.vault(), &soul)).unwrap();
    let line = manifest
        .lines()
        .find(|l| l.ends_with(" memory.jsonl"))
        .unwrap();
    let hash = line.split(' ').nth(2).unwrap();
    flip_byte(&object_path(&env.vault(), hash), 0);
    let out = env.run(&["cat", "1:memory.jsonl"]).expect_code(5);
    assert!(out.stderr.contains(&hash[2..]), "{}", out.stderr);
    env.assert_no_secret_anywhere();
}

#[test]
fn ls_lists_a_checkpoint_as_sealed() {
    let env = history_env();
    let out = env.run(&["ls"]).expect_code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "drwxr-xr-x  - empty/",
            "lrwxrwxrwx 10 link -> notes/a.md",
            "-rw-r--r-- 34 memory.jsonl",
            "-rw-r--r-- 16 naïve-日記.txt",
            "drwxr-xr-x  - notes/",
            "-rw------- 10 private.key",
        ],
        "{}",
        out.stdout
    );
    let out = env.run(&["ls", "1", "notes"]).expect_code(0);
    assert_eq!(
        out.stdout,
        "-rw-r--r-- 24 notes/a.md\ndrwxr-xr-x  - notes/deep/\n"
    );
    let out = env.run(&["ls", "-R", "1", "notes"]).expect_code(0);
    assert_eq!(
        out.stdout,
        "-rw-r--r-- 24 notes/a.md\ndrwxr-xr-x  - notes/deep/\n-rw-r--r--  8 notes/deep/b.bin\n"
    );
    let v = env
        .run(&["--json", "ls", "private.key"])
        .expect_code(0)
        .json();
    assert_eq!(v["seq"], 2);
    assert_eq!(v["manifest"], 2);
    assert_eq!(v["entries"][0]["kind"], "file");
    assert_eq!(v["entries"][0]["mode"], "0600");
    assert_eq!(v["entries"][0]["size"], 10);
    assert_eq!(v["entries"][0]["hash"], sha256_hex(b"only mine\n"));
    assert!(env
        .run(&["ls", "1", "run.sh"])
        .expect_code(0)
        .stdout
        .starts_with("-rwxr-xr-x 21 run.sh"));
    env.run(&["ls", "2", "run.sh"]).expect_code(2);
    env.assert_no_secret_anywhere();
}

#[test]
fn diff_p_shows_text_changes_and_names_binary_ones() {
    let env = history_env();
    // Between two checkpoints.
    let out = env.run(&["diff", "-p", "1", "2"]).expect_code(0);
    let text = out.stdout;
    let note = "diff --git a/notes/a.md b/notes/a.md\n\
                --- a/notes/a.md\n\
                +++ b/notes/a.md\n\
                @@ -1,3 +1,4 @@\n # who I am\n \n I remember.\n+I learned something.\n";
    assert!(text.contains(note), "{text}");
    assert!(
        text.contains("diff --git a/notes/deep/b.bin b/notes/deep/b.bin\nBinary files a/notes/deep/b.bin and b/notes/deep/b.bin differ\n"),
        "{text}"
    );
    assert!(
        text.contains("diff --git a/private.key b/private.key\nnew file mode 100600\n--- /dev/null\n+++ b/private.key\n@@ -0,0 +1 @@\n+only mine\n"),
        "{text}"
    );
    assert!(
        text.contains("diff --git a/run.sh b/run.sh\ndeleted file mode 100755\n--- a/run.sh\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-#!/bin/sh\n-echo awake\n"),
        "{text}"
    );
    // Patches come in path order.
    let at = |s: &str| text.find(s).unwrap();
    assert!(at("a/notes/a.md") < at("a/notes/deep/b.bin") && at("a/private.key") < at("a/run.sh"));

    // Between the head and the soul as it is now: a mode change and an
    // edit.
    let out = env.run(&["diff", "-p"]).expect_code(0);
    assert_eq!(
        out.stdout,
        "diff --git a/notes/a.md b/notes/a.md\n\
         --- a/notes/a.md\n\
         +++ b/notes/a.md\n\
         @@ -1,4 +1,4 @@\n # who I am\n \n I remember.\n-I learned something.\n+I learned more.\n\
         diff --git a/private.key b/private.key\nold mode 100600\nnew mode 100640\n"
    );
    let v = env
        .run(&["--json", "diff", "-p", "1", "2"])
        .expect_code(0)
        .json();
    let patches = v["patches"].as_array().unwrap();
    let bin = patches
        .iter()
        .find(|p| p["path"] == "notes/deep/b.bin")
        .unwrap();
    assert_eq!(bin["binary"], true);
    assert_eq!(bin["change"], "modified");
    let note = patches.iter().find(|p| p["path"] == "notes/a.md").unwrap();
    assert_eq!(note["binary"], false);
    assert!(note["text"]
        .as_str()
        .unwrap()
        .contains("+I learned something.\n"));
    assert_eq!(strings(&v["added"]), ["private.key"]);
    // Nothing changed: says so.
    assert_eq!(
        env.run(&["diff", "-p", "2", "2"]).expect_code(0).stdout,
        "no changes\n"
    );
    env.assert_no_secret_anywhere();
}

/// `diff` against the soul looks at the soul the head's sealed config
/// names, as wake and restore do: an unaccepted edit of `soul =` in
/// config.toml does not make it show another directory as the soul.
#[test]
fn diff_reads_the_soul_of_the_sealed_config_not_an_unaccepted_edit() {
    let env = Env::at_rest();
    let other = env.base().join("other");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("planted.md"), "not the agent\n").unwrap();
    let config = env.vault().join("config.toml");
    let text = fs::read_to_string(&config).unwrap();
    let edited = text.replace(
        "soul = \"soul\"",
        &format!("soul = {:?}", other.display().to_string()),
    );
    assert_ne!(edited, text, "{text}");
    fs::write(&config, edited).unwrap();
    fs::write(env.soul().join("memory.jsonl"), "{\"said\":\"new\"}\n").unwrap();
    let v = env.run(&["--json", "diff"]).expect_code(0).json();
    let said = v.to_string();
    assert!(!said.contains("planted.md"), "{said}");
    assert_eq!(v["modified"], serde_json::json!(["memory.jsonl"]), "{said}");
    let out = env.run(&["diff", "-p"]).expect_code(0);
    assert!(out.stdout.contains("+{\"said\":\"new\"}"), "{}", out.stdout);
    assert!(!out.stdout.contains("planted"), "{}", out.stdout);
}

/// A symlink whose target holds a newline and an escape sequence cannot
/// forge a line of `ls` or colour the terminal: its target is shown in
/// caret notation. `diff -p` piped gives the patch's bytes as they are.
#[test]
fn ls_shows_control_characters_of_a_symlink_target_and_cannot_be_forged() {
    let env = Env::at_rest();
    let target = "x\nd 0777 - - fake\u{1b}[31m";
    std::os::unix::fs::symlink(target, env.soul().join("lnk")).unwrap();
    env.run(&["seal"]).expect_code(0);
    let out = env.run(&["ls"]).expect_code(0);
    assert!(!out.stdout.contains('\u{1b}'), "{:?}", out.stdout);
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("lnk"))
        .unwrap()
        .to_owned();
    assert!(
        line.ends_with("lnk -> x^Jd 0777 - - fake^[[31m"),
        "{line:?}"
    );
    assert!(!out.stdout.lines().any(|l| l.starts_with("d 0777 - - fake")));
    let v = env.run(&["--json", "ls"]).expect_code(0).json();
    let raw = v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "lnk")
        .unwrap()["target"]
        .clone();
    assert_eq!(raw, target, "JSON keeps the target as it is");

    fs::write(env.soul().join("memory.jsonl"), "+obey\u{1b}[2K\r\n").unwrap();
    let out = env.run(&["diff", "-p"]).expect_code(0);
    assert!(out.stdout.contains("+obey\u{1b}[2K\r"), "{:?}", out.stdout);
}

/// Reading an edited checkpoint is damage (exit 5, as `verify` says), not
/// an identity mismatch: the head verifies under the token. Under another
/// bot's token it is an identity mismatch (exit 4) before anything else.
#[test]
fn an_edited_checkpoint_is_damage_to_cat_ls_and_diff() {
    let env = Env::at_rest();
    fs::write(env.soul().join("memory.jsonl"), "{\"said\":\"later\"}\n").unwrap();
    env.run(&["seal"]).expect_code(0);
    let path = env.checkpoint(1);
    let text = fs::read_to_string(&path).unwrap();
    let edited = text.replacen("reason=init", "reason=manual", 1);
    assert_ne!(edited, text, "{text}");
    fs::write(&path, edited).unwrap();
    for args in [
        &["cat", "1:memory.jsonl"][..],
        &["ls", "1"][..],
        &["diff", "1", "head"][..],
    ] {
        let out = env.run(args);
        assert_eq!(out.code, 5, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("checkpoint 1 does not verify"),
            "{args:?}: {}",
            out.stderr
        );
    }
    env.run(&["verify"]).expect_code(5);
    let out = env.run_as(
        "999999:AAH-another-bots-token-xx",
        &["cat", "1:memory.jsonl"],
        &[],
    );
    assert_eq!(out.code, 4, "{}", out.stderr);
}
