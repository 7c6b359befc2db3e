//! `selfsame accept`

use selfsame::ops::accept::accept;
use selfsame::Result;

use crate::context::Context;
use crate::output::out;

/// Adopt the current soul and config after a halt: seal them (reason=manual)
/// and log an `accept` event.
///
/// Use it when wake halted on `tampered` and you checked (`selfsame diff`)
/// that the change is yours, or after you edited .selfsame/config.toml
/// (`config-changed`). The next wake then says `verified`.
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The shell's version (default: $SELFSAME_SHELL_VERSION, else the head's).
    #[arg(long, value_name = "V")]
    shell_version: Option<String>,
}

pub fn run(args: Args, ctx: &Context) -> Result<i32> {
    let vault = ctx.open_vault()?;
    let token = ctx.vault_token(&vault)?;
    let report = accept(
        &vault,
        &token,
        super::shell_version(args.shell_version),
        &ctx.progress(),
    )?;
    if ctx.json {
        ctx.print_json(&report);
    } else {
        out!("accepted: ");
        super::print_seal(&report);
    }
    Ok(0)
}
