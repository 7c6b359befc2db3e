//! `selfsame cat`

use selfsame::ops::cat::{cat, parse_spec};
use selfsame::Result;

use crate::context::Context;
use crate::output::stdout_bytes;

/// Print a file of a checkpoint, as it was sealed.
///
///   selfsame cat notes/a.md       the file in the head checkpoint
///   selfsame cat 3:notes/a.md     the file in checkpoint 3
///
/// The bytes come from the vault and are checked against the checkpoint's
/// hash of the file; a symlink prints its target. If the vault's copy is
/// damaged the command fails (exit 5) after printing, and what it printed
/// is not the sealed file.
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// [SEQ:]PATH: a path relative to the soul, after a seq or `head:`.
    spec: String,
}

pub fn run(args: Args, ctx: &Context) -> Result<i32> {
    let vault = ctx.open_vault()?;
    let token = ctx.vault_token(&vault)?;
    let (seq, path) = parse_spec(&args.spec)?;
    cat(&vault, &token, seq, &path, &mut |piece| {
        stdout_bytes(piece);
        Ok(())
    })?;
    Ok(0)
}
