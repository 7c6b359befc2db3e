//! `selfsame rekey`

use std::path::PathBuf;

use selfsame::ops::rekey::rekey;
use selfsame::{Credential, Error, Platform, Result};

use crate::context::Context;
use crate::output::outln;

/// Rotate the bot token: after BotFather revokes a token, every checkpoint
/// fails its MAC under the new one. rekey moves the vault to the new token.
///
/// It refuses unless both tokens belong to the same bot and the whole vault
/// verifies under the old token. Then it seals a `rekey` checkpoint signed
/// with the new token that also carries `prev_key_hash`, its MAC under the
/// old token. From then on `wake` and `verify` with the new token accept the
/// earlier checkpoints as vouched for by the rekey checkpoint; the old
/// token gets identity-mismatch. Tokens are never printed.
///
/// Examples:
///   OLD_TOKEN=… TELEGRAM_BOT_TOKEN=… selfsame rekey --old-token-env OLD_TOKEN --new-token-env TELEGRAM_BOT_TOKEN
///   selfsame rekey --old-token-file old.txt --new-token-file new.txt
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Env var holding the old (revoked) token.
    #[arg(long, value_name = "VAR", required_unless_present = "old_token_file")]
    old_token_env: Option<String>,
    /// File holding the old token.
    #[arg(long, value_name = "FILE", conflicts_with = "old_token_env")]
    old_token_file: Option<PathBuf>,
    /// Env var holding the new token.
    #[arg(long, value_name = "VAR", required_unless_present = "new_token_file")]
    new_token_env: Option<String>,
    /// File holding the new token.
    #[arg(long, value_name = "FILE", conflicts_with = "new_token_env")]
    new_token_file: Option<PathBuf>,
}

fn read_token(which: &str, env: Option<&str>, file: Option<&PathBuf>) -> Result<Credential> {
    let (text, source) = match (env, file) {
        (_, Some(path)) => (
            crate::context::read_token_file(path).map_err(|e| {
                Error::Token(format!(
                    "cannot read the {which} token file {}: {e}",
                    path.display()
                ))
            })?,
            format!("the {which} token file {}", path.display()),
        ),
        (Some(var), None) => (
            std::env::var(var)
                .map_err(|_| Error::Token(format!("the {which} token env var {var} is not set")))?,
            var.to_owned(),
        ),
        (None, None) => {
            return Err(Error::Usage(format!(
                "give --{which}-token-env or --{which}-token-file"
            )))
        }
    };
    Credential::parse(Platform::Telegram, &text).map_err(|_| {
        Error::Token(format!(
            "{source} does not hold a bot token of the form <digits>:<secret> (the value is not shown)"
        ))
    })
}

pub fn run(args: Args, ctx: &Context) -> Result<i32> {
    let vault = ctx.open_vault()?;
    let old = read_token(
        "old",
        args.old_token_env.as_deref(),
        args.old_token_file.as_ref(),
    )?;
    let new = read_token(
        "new",
        args.new_token_env.as_deref(),
        args.new_token_file.as_ref(),
    )?;
    let report = rekey(&vault, &old, &new)?;
    if ctx.json {
        ctx.print_json(&report);
    } else {
        outln!(
            "rekeyed bot {}: sealed checkpoint {} (rekey) under the new token; it vouches for checkpoints 1-{}",
            report.bot_id, report.seq, report.vouched
        );
        outln!(
            "  set {} to the new token for wake, seal and run",
            vault.config.token_env
        );
    }
    Ok(0)
}
