//! `selfsame init`

use selfsame::ops::init::{guarded_by, init_with_progress, InitOptions, Preset};
use selfsame::{Error, Platform, Result};

use crate::context::Context;
use crate::output::{errln, outln};

/// Create .selfsame/ beside the soul and seal checkpoint 1.
///
/// The vault is created in the current directory; the soul path is stored
/// relative to it. The soul directory must exist (--create makes a new,
/// empty one). The token's bot id is recorded in config.toml; the token
/// itself never is.
///
/// When another vault already guards the soul (a .selfsame/ in the soul
/// directory or above it, or beside the current directory, whose config
/// names the same directory), init warns: two vaults sealing one soul each
/// take the other's seals for changes.
///
/// The platform is Telegram unless --platform says discord; the token is
/// read from the platform's env var (TELEGRAM_BOT_TOKEN, DISCORD_BOT_TOKEN)
/// unless --token-env names another.
///
/// Examples:
///   export TELEGRAM_BOT_TOKEN=123456:ABC...
///   selfsame init soul --shell-version 1.4.0
///   DISCORD_BOT_TOKEN=MTA4…. selfsame init soul --platform discord
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The soul directory, relative to the current directory.
    #[arg(default_value = "soul")]
    soul: String,
    /// The version of the program that uses the soul (recorded in checkpoints).
    #[arg(long, value_name = "V")]
    shell_version: Option<String>,
    /// The soul's format tag (v1, v2, …), for migrations.
    #[arg(long, value_name = "TAG", default_value = "v1")]
    format: String,
    /// The bot's platform: telegram or discord.
    #[arg(long, value_name = "NAME", default_value = "telegram", value_parser = parse_platform)]
    platform: Platform,
    /// Env var that holds the bot token; recorded in config.toml
    /// (default: TELEGRAM_BOT_TOKEN, or DISCORD_BOT_TOKEN for discord).
    #[arg(long, value_name = "NAME")]
    token_env: Option<String>,
    /// Glob of soul paths to leave out (repeatable), e.g. 'cache/**'.
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// Glob of soul paths to protect (repeatable), e.g. SOUL.md: no seal
    /// adopts a change of them; only `selfsame approve` does.
    #[arg(long, value_name = "GLOB")]
    protect: Vec<String>,
    /// The protect and exclude globs of a framework's workspace (added to
    /// any given with --protect and --exclude).
    #[arg(long, value_name = "NAME", value_parser = ["openclaw"])]
    preset: Option<String>,
    /// Create the soul directory if it does not exist (a new, empty soul).
    #[arg(long)]
    create: bool,
}

/// A platform's name, as `--platform` takes it.
pub fn parse_platform(text: &str) -> std::result::Result<Platform, String> {
    Platform::parse(text).ok_or_else(|| {
        let known: Vec<&str> = Platform::ALL.iter().map(|(_, n)| *n).collect();
        format!("unknown platform {text:?}; expected {}", known.join(" or "))
    })
}

pub fn run(mut args: Args, ctx: &Context) -> Result<i32> {
    if let Some(p) = args.preset.as_deref().and_then(Preset::named) {
        let add = |list: &mut Vec<String>, from: &[&str]| {
            for g in from {
                if !list.iter().any(|x| x == g) {
                    list.push((*g).to_owned());
                }
            }
        };
        add(&mut args.protect, p.protect);
        add(&mut args.exclude, p.exclude);
    }
    let token_env = args
        .token_env
        .unwrap_or_else(|| args.platform.default_token_env().to_owned());
    let token = ctx.token(args.platform, &token_env)?;
    if token.platform() != args.platform {
        return Err(Error::Token(format!(
            "{} holds a {} token, but the vault is for {}: pass --platform {}",
            if ctx.has_token_file() {
                "the token file"
            } else {
                &token_env
            },
            token.platform(),
            args.platform,
            token.platform()
        )));
    }
    let opts = InitOptions {
        soul: args.soul.clone(),
        shell: super::shell_version(args.shell_version),
        format: Some(args.format),
        token_env: Some(token_env),
        exclude: args.exclude,
        protect: args.protect,
        create: args.create,
        settings: ctx.settings(),
        identity: true,
    };
    let cwd = ctx.cwd()?;
    let others = guarded_by(&cwd, &args.soul);
    let progress = ctx.progress();
    let (vault, report) = init_with_progress(&cwd, &token, &opts, &progress)?;
    let soul = std::fs::canonicalize(vault.soul()).unwrap_or_else(|_| vault.soul());
    for other in &others {
        errln!(
            "selfsame: warning: soul {} is already guarded by the vault {}; two vaults sealing one soul each take the other's seals for changes (tampered): keep one of them",
            soul.display(),
            other.display()
        );
    }
    if ctx.json {
        ctx.print_json(&serde_json::json!({
            "vault": vault.dir(),
            "soul": vault.soul(),
            "platform": token.platform().as_str(),
            "bot_id": token.account_id(),
            "also_guarded_by": others,
            "seal": report,
        }));
    } else {
        outln!(
            "created {} for soul {} ({} bot {})",
            vault.dir().display(),
            args.soul,
            token.platform(),
            token.account_id()
        );
        super::print_seal(&report);
        outln!("next: run `selfsame wake` when the agent starts and `selfsame seal` when it stops");
    }
    Ok(0)
}
