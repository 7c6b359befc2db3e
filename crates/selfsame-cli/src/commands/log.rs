//! `selfsame log`

use selfsame::ops::log::{log, HistoryLine};
use selfsame::ChangeSummary;
use selfsame::{Damage, Error, Result};

use crate::context::Context;
use crate::output::{errln, outln};

/// Show the history: every seal, wake, restore and repair, newest last.
///
/// With --json, prints the raw events, one JSON object a line, exactly as
/// stored (each line's `prev` is the SHA-256 of the line before).
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Show only the last N events.
    #[arg(short = 'n', long, value_name = "N")]
    lines: Option<usize>,
}

pub fn run(args: Args, ctx: &Context) -> Result<i32> {
    let vault = ctx.open_vault()?;
    let history = log(&vault)?;
    let skip = args
        .lines
        .map_or(0, |n| history.entries.len().saturating_sub(n));
    for line in history.entries.iter().skip(skip) {
        let e = &line.line;
        if ctx.json {
            outln!("{}", line.raw);
            continue;
        }
        if e.event == "crash" {
            outln!("{:>5}  {}  {:<8} {}", e.n, e.at, e.event, crash(e));
            continue;
        }
        let mut parts = Vec::new();
        for key in [
            "verdict",
            "detail",
            "seq",
            "reason",
            "action",
            "target",
            "quarantine",
            "what",
            "status",
            "signal",
            "sink",
            "ok",
            "error",
            // forget, prune, quarantine-drop
            "forgotten",
            "kept",
            "policy",
            "objects",
            "bytes",
            "ids",
            "why",
        ] {
            if let Some(v) = e.get(key) {
                let v = v
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string());
                parts.push(format!("{key}={v}"));
            }
        }
        if let Some(c) = e.get("changes").and_then(ChangeSummary::from_value) {
            if !c.is_empty() {
                parts.push(format!("changes: {}", c.text()));
            }
        }
        outln!("{:>5}  {}  {:<8} {}", e.n, e.at, e.event, parts.join(" "));
    }
    if !history.problems.is_empty() {
        for p in &history.problems {
            errln!("selfsame: warning: {p}");
        }
        return Err(Error::Corrupt {
            path: vault.dir().join("history.jsonl"),
            damage: Box::new(Damage::HistoryBroken),
        });
    }
    Ok(0)
}

/// A `crash` event for people: the checkpoint the agent ran on, how it
/// ended, after how long (and during what, when the supervisor says).
fn crash(e: &HistoryLine) -> String {
    let num = |k: &str| e.get(k).and_then(|v| v.as_i64());
    let mut s = match num("seq") {
        Some(seq) => format!("the agent died on checkpoint {seq} ("),
        None => "the agent died (".to_owned(),
    };
    match (num("status"), num("signal")) {
        (Some(c), _) => s.push_str(&format!("exit status {c}")),
        (None, Some(sig)) => s.push_str(&format!("killed by signal {sig}")),
        (None, None) => s.push_str("how is not recorded"),
    }
    if let Some(ms) = num("ran_ms") {
        s.push_str(&format!(", after {:.1} s", ms as f64 / 1000.0));
    }
    if let Some(d) = e.get("during").and_then(|v| v.as_str()) {
        s.push_str(&format!(", during {d}"));
    }
    s.push(')');
    s
}
