//! The benchmark's set-up path, so that the benchmark the README points to
//! keeps running on a fresh machine: `bench/run --quick --setup-only`
//! creates its work directory and generates every soul (here at 1/10000
//! size), without installing tools, building or timing anything.

use std::path::Path;
use std::process::Command;

#[test]
fn bench_quick_setup_runs_on_a_fresh_machine() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let tmp = tempfile::tempdir().unwrap();
    // Nothing of the work directory exists yet, its parent included.
    let work = tmp.path().join("fresh/selfsame-bench");
    let out = Command::new(root.join("bench/run"))
        .args(["--quick", "--setup-only", "--scale", "10000", "--work"])
        .arg(&work)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    for kind in ["a", "b", "c"] {
        let soul = work.join("quick").join(kind).join("soul");
        let files = walkdir_count(&soul);
        assert!(files > 0, "soul {kind} is empty: {stdout}");
        assert!(
            stdout.contains(&format!("soul {kind}: {files} files")),
            "{stdout}"
        );
    }
    // A second run finds it all in place and generates nothing again.
    let again = Command::new(root.join("bench/run"))
        .args(["--quick", "--setup-only", "--scale", "10000", "--work"])
        .arg(&work)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "{stdout}");
    assert!(!stdout.contains("generating"), "{stdout}");
}

fn walkdir_count(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|e| e.unwrap().path())
        .map(|p| if p.is_dir() { walkdir_count(&p) } else { 1 })
        .sum()
}
