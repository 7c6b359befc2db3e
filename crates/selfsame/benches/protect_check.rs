//! What one look at the protected paths costs under `selfsame run`
//! (`--protect-interval`, 2 s by default): a soul of 3,000 files, 6 of them
//! protected, as an OpenClaw workspace is laid out.
//!
//! `cargo bench -p selfsame --bench protect_check` prints the median and the
//! 99th percentile of single checks (each timed on its own) when nothing
//! changed, while the agent writes its memory between checks, and while a
//! protected file is being rewritten (the full look: list, stat, re-hash).

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use selfsame::ops::init::{init, InitOptions};
use selfsame::ops::protect::Watch;
use selfsame::{Credential, Platform};

const FILES: usize = 3_000;
const PROTECTED: [&str; 6] = [
    "SOUL.md",
    "IDENTITY.md",
    "AGENTS.md",
    "USER.md",
    "TOOLS.md",
    "HEARTBEAT.md",
];
const RUNS: usize = 2_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let soul = dir.path().join("soul");
    build_soul(&soul)?;
    let cred = Credential::parse(Platform::Telegram, "123456:bench-secret")?;
    let mut opts = InitOptions::new("soul");
    opts.protect = PROTECTED.iter().map(|s| s.to_string()).collect();
    let vault = init(dir.path(), &cred, &opts)?;
    let mut watch = Watch::new(&vault, &cred)?.expect("the soul has protected paths");
    // The first look lists and hashes; wait out the racy window so its
    // stats are trusted.
    assert!(watch.check()?.is_none());
    std::thread::sleep(Duration::from_millis(1_100));
    assert!(watch.check()?.is_none());

    let unchanged = time(RUNS, || {
        assert!(watch.check().unwrap().is_none());
    });
    report("unchanged soul", &unchanged);

    let mut n = 0;
    let memory = soul.join("memory");
    let writing = time(RUNS, || {
        n += 1;
        let day = memory.join(format!("d{:02}", n % 30)).join("log.md");
        fs::write(&day, format!("line {n}\n")).unwrap();
        let t = Instant::now();
        assert!(watch.check().unwrap().is_none());
        t.elapsed()
    });
    report("the agent writes a memory file between checks", &writing);

    let soul_md = soul.join("SOUL.md");
    let bytes = fs::read(&soul_md)?;
    let rewritten = time(RUNS / 4, || {
        fs::write(&soul_md, &bytes).unwrap();
        let t = Instant::now();
        assert!(watch.check().unwrap().is_none());
        t.elapsed()
    });
    report(
        "SOUL.md rewritten with the same bytes (full look)",
        &rewritten,
    );
    Ok(())
}

/// 6 protected files at the root, `FILES - 6` others in `memory/dNN/`.
fn build_soul(soul: &Path) -> std::io::Result<()> {
    for (i, name) in PROTECTED.iter().enumerate() {
        fs::create_dir_all(soul)?;
        fs::write(
            soul.join(name),
            format!("# {name}\n{}\n", "principle ".repeat(40 + i)),
        )?;
    }
    for i in 0..FILES - PROTECTED.len() {
        let d = soul.join("memory").join(format!("d{:02}", i % 30));
        fs::create_dir_all(&d)?;
        fs::write(
            d.join(format!("{i:05}.md")),
            format!("note {i}\n").repeat(20),
        )?;
    }
    Ok(())
}

/// Times `runs` calls; a call that returns a duration timed itself.
fn time<R: Into<Timed>>(runs: usize, mut f: impl FnMut() -> R) -> Vec<Duration> {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            match f().into() {
                Timed::Itself(d) => d,
                Timed::Whole => t.elapsed(),
            }
        })
        .collect()
}

enum Timed {
    Whole,
    Itself(Duration),
}

impl From<()> for Timed {
    fn from(_: ()) -> Self {
        Timed::Whole
    }
}

impl From<Duration> for Timed {
    fn from(d: Duration) -> Self {
        Timed::Itself(d)
    }
}

fn report(what: &str, times: &[Duration]) {
    let mut t = times.to_vec();
    t.sort();
    let at = |q: f64| t[((t.len() - 1) as f64 * q) as usize];
    println!(
        "protect check, {FILES}-file soul, {} protected: {what}: median {:.1?}, p99 {:.1?} ({} runs)",
        PROTECTED.len(),
        at(0.5),
        at(0.99),
        t.len()
    );
}
