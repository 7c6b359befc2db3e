//! `selfsame clone`

use std::path::PathBuf;

use selfsame::ops::clone::clone_with_progress;
use selfsame::{Platform, Result};

use crate::context::{access, Context};
use crate::output::outln;

/// Rebuild a vault and its soul on a new host from the encrypted replica.
///
/// Fetches the remote's checkpoints, history and objects, checks every
/// one (the chain up to the remote HEAD, the MACs under the token, every
/// object against its hash), writes `.selfsame/` and the soul into DIR
/// (default: the current directory; neither may exist yet), and checks the
/// whole vault again. `selfsame wake` there then says `verified`.
///
/// The token opens the replica's data key: the bot's token, from the
/// platform's env var (TELEGRAM_BOT_TOKEN, DISCORD_BOT_TOKEN), --token-env
/// or --token-file. The AWS credentials come from AWS_ACCESS_KEY_ID and
/// AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN, AWS_REGION).
///
/// Example:
///   selfsame clone s3://my-bucket/agents/bot1 ./bot1 --endpoint http://127.0.0.1:9000
///
/// If the old host comes back and seals, its next push is refused and its
/// next wake says `corrupted` (forked).
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The remote: s3://BUCKET/PREFIX.
    url: String,
    /// Where to put .selfsame/ and the soul (made when missing).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// An S3-compatible server instead of AWS (http://HOST:PORT).
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// The region (default: $AWS_REGION, else us-east-1).
    #[arg(long)]
    region: Option<String>,
    /// The bot's platform: telegram or discord.
    #[arg(long, value_name = "NAME", default_value = "telegram", value_parser = super::init::parse_platform)]
    platform: Platform,
    /// Env var that holds the bot token (default: the platform's).
    #[arg(long, value_name = "VAR")]
    token_env: Option<String>,
}

pub fn run(args: Args, ctx: &Context) -> Result<i32> {
    let token_env = args
        .token_env
        .unwrap_or_else(|| args.platform.default_token_env().to_owned());
    let token = ctx.token(args.platform, &token_env)?;
    let access = access(&args.url, args.endpoint.as_deref(), args.region.as_deref())?;
    let report = clone_with_progress(&access, &token, &args.dir, &ctx.progress())?;
    if ctx.json {
        ctx.print_json(&report);
    } else {
        outln!(
            "cloned {} at checkpoint {}: {} objects, {} bytes; vault {}, soul {}",
            report.url,
            report.head,
            report.objects,
            report.bytes,
            report.vault.display(),
            report.soul.display()
        );
        outln!("  run `selfsame wake` there to start the agent");
    }
    Ok(0)
}
