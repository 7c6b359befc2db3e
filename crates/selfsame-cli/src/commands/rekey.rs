//! `selfsame rekey`

use std::path::PathBuf;

use selfsame::ops::rekey::rekey;
use selfsame::Result;

use crate::context::{named_token, Context};
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
/// With [remote], the vault's copy of the replica's keys moves to the new
/// token too (fetched first when missing: have the AWS credentials set),
/// and the next push adds a key only the new token opens: the old token
/// reads nothing pushed after it.
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

pub fn run(args: Args, ctx: &Context) -> Result<i32> {
    let vault = ctx.open_vault()?;
    let platform = vault.config.platform();
    let old = named_token(
        "old",
        platform,
        args.old_token_env.as_deref(),
        args.old_token_file.as_deref(),
    )?;
    let new = named_token(
        "new",
        platform,
        args.new_token_env.as_deref(),
        args.new_token_file.as_deref(),
    )?;
    #[cfg(feature = "remote")]
    ctx.keep_remote_keys(&vault, &old);
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
