//! `selfsame ls`

use selfsame::ops::cat::parse_spec;
use selfsame::ops::ls::{ls, Listed};
use selfsame::Result;

use crate::context::Context;
use crate::output::outln;

/// List the entries of a checkpoint, as it was sealed.
///
///   selfsame ls                  the head's top level
///   selfsame ls 3                checkpoint 3's top level
///   selfsame ls 3 notes          what notes/ held in checkpoint 3
///   selfsame ls -R head notes    everything below notes/ in the head
///
/// Each line: permission bits, size, path (a symlink with its target,
/// control characters shown as ^J, ^[, …). A
/// lone argument that is a seq or `head` names the checkpoint; to list a
/// directory named like one, give the checkpoint too (`ls head 3`). A
/// checkpoint of an older vault records no directory modes (`d?????????`)
/// and only the execute bit of files.
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// A seq or `head` (default: head), then a path in the soul.
    #[arg(num_args = 0..=2, value_name = "SEQ|PATH")]
    args: Vec<String>,
    /// List everything below the path, not only what is directly in it.
    #[arg(short = 'R', long)]
    recursive: bool,
}

/// A checkpoint named on the command line: a seq, or `head` (`None`).
fn checkpoint(text: &str) -> Option<Option<u64>> {
    match text {
        "head" | "HEAD" => Some(None),
        n if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => n.parse().ok().map(Some),
        _ => None,
    }
}

pub fn run(args: Args, ctx: &Context) -> Result<i32> {
    let vault = ctx.open_vault()?;
    let token = ctx.vault_token(&vault)?;
    let (seq, path) = match args.args.as_slice() {
        [] => (None, None),
        [one] => match checkpoint(one) {
            Some(seq) => (seq, None),
            None => (None, Some(one.as_str())),
        },
        [first, path, ..] => match checkpoint(first) {
            Some(seq) => (seq, Some(path.as_str())),
            None => {
                return Err(selfsame::Error::Usage(format!(
                    "{first:?} is not a checkpoint: give a seq or `head`, then the path"
                )))
            }
        },
    };
    let path = path.map(|p| parse_spec(p).map(|(_, p)| p)).transpose()?;
    let listing = ls(&vault, &token, seq, path.as_deref(), args.recursive)?;
    if ctx.json {
        ctx.print_json(&listing);
        return Ok(0);
    }
    let width = listing
        .entries
        .iter()
        .map(|e| e.size.map_or(1, |s| s.to_string().len()))
        .max()
        .unwrap_or(1);
    for e in &listing.entries {
        let size = e.size.map_or("-".to_owned(), |s| s.to_string());
        let target = e.target.as_ref().map_or(String::new(), |t| {
            format!(" -> {}", crate::output::visible_line(t))
        });
        let slash = if e.kind == "dir" { "/" } else { "" };
        outln!("{} {size:>width$} {}{slash}{target}", perms(e), e.path);
    }
    Ok(0)
}

/// The mode as `ls -l` shows it (`-rw-------`, `drwx------`, `-rwsr-xr-x`,
/// `lrwxrwxrwx`); `?` where the checkpoint records none.
fn perms(e: &Listed) -> String {
    let (kind, mode) = match e.kind {
        "symlink" => return "lrwxrwxrwx".into(),
        "dir" => ('d', e.mode.as_deref()),
        _ => ('-', e.mode.as_deref()),
    };
    let Some(mode) = mode.and_then(|m| u32::from_str_radix(m, 8).ok()) else {
        return format!("{kind}?????????");
    };
    let mut out = String::from(kind);
    for (shift, special, set, unset) in [
        (6, 0o4000, 's', 'S'),
        (3, 0o2000, 's', 'S'),
        (0, 0o1000, 't', 'T'),
    ] {
        let bits = (mode >> shift) & 7;
        out.push(if bits & 4 != 0 { 'r' } else { '-' });
        out.push(if bits & 2 != 0 { 'w' } else { '-' });
        out.push(match (bits & 1 != 0, mode & special != 0) {
            (true, true) => set,
            (false, true) => unset,
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    out
}
