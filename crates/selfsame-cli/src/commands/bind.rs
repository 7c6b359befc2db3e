//! `selfsame bind`

use std::path::PathBuf;

use selfsame::ops::bind::bind;
use selfsame::{Platform, Result};

use crate::context::{named_token, Context};
use crate::output::outln;

/// Move the vault to another platform or bot: the agent stays itself.
///
/// The identity key that signs every checkpoint outlives the move. With the
/// token the vault verifies under now (the env var config.toml names, or
/// --token-file) and the new bot's token, bind checks the whole vault, then
/// seals a `bind` checkpoint of the head's state for the new bot: its MAC
/// under the new token, `prev_key_hash` under the old one, signed by the
/// identity key, which is re-sealed under the new token. config.toml then
/// names the new platform, bot id and token variable. From there on wake,
/// seal and run use the new token; the old one gets identity-mismatch
/// naming the move. A vault without an identity key needs `selfsame
/// identity init` first. If bind is interrupted, running it again finishes
/// it.
///
/// With [remote], the vault's copy of the replica's keys moves to the new
/// token too (fetched first when missing: have the AWS credentials set),
/// and the next push adds a key only the new token opens.
///
/// Example, a Telegram bot moving to Discord:
///   DISCORD_BOT_TOKEN=… selfsame bind --platform discord --new-token-env DISCORD_BOT_TOKEN
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The new bot's platform: telegram or discord.
    #[arg(long, value_name = "NAME", value_parser = super::init::parse_platform)]
    platform: Platform,
    /// Env var holding the new bot's token; config.toml names it from now on.
    #[arg(long, value_name = "VAR", required_unless_present = "new_token_file")]
    new_token_env: Option<String>,
    /// File holding the new bot's token (config.toml then names the
    /// platform's default variable).
    #[arg(long, value_name = "FILE", conflicts_with = "new_token_env")]
    new_token_file: Option<PathBuf>,
}

pub fn run(args: Args, ctx: &Context) -> Result<i32> {
    let vault = ctx.open_vault()?;
    let old = ctx.vault_token(&vault)?;
    let new = named_token(
        "new",
        args.platform,
        args.new_token_env.as_deref(),
        args.new_token_file.as_deref(),
    )?;
    let token_env = args
        .new_token_env
        .clone()
        .unwrap_or_else(|| args.platform.default_token_env().to_owned());
    #[cfg(feature = "remote")]
    ctx.keep_remote_keys(&vault, &old);
    let r = bind(&vault, &old, &new, &token_env)?;
    if ctx.json {
        ctx.print_json(&r);
    } else {
        outln!(
            "{} the vault from {} bot {} to {} bot {}: checkpoint {} (bind), signed by {}",
            if r.finished {
                "finished moving"
            } else {
                "moved"
            },
            r.from_platform,
            r.from_bot_id,
            r.platform,
            r.bot_id,
            r.seq,
            r.identity
        );
        outln!(
            "  it vouches for checkpoints 1-{} sealed before; the old token now gets identity-mismatch",
            r.vouched
        );
        outln!(
            "  config.toml names {}: give it the new token for wake, seal and run",
            r.token_env
        );
    }
    Ok(0)
}
