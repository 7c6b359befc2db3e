//! `selfsame`: prove that your agent is still itself after every restart.

mod commands;
mod context;
mod interrupt;
mod output;
mod porcelain;
mod progress;

use clap::{Parser, Subcommand};

use commands::*;
use context::Context;

const ABOUT: &str = "Prove that your agent is still itself after every restart.";

const LONG_ABOUT: &str = "\
Prove that your agent is still itself after every restart.

A long-lived agent keeps who it is in a directory of state, its soul. selfsame
seals the soul (fingerprint, snapshot, checkpoint signed with a key derived
from the bot token), wakes the agent by checking it again on every start, and
keeps a hash-chained history of every transition.

Typical use from a bot's start and stop scripts:
  selfsame init soul            # once: create .selfsame/ beside soul/
  selfsame wake || exit $?      # on start: exit 0 = start the agent
  selfsame seal                 # on clean stop (reason=rest)

The token is read from the env var named in .selfsame/config.toml
(default TELEGRAM_BOT_TOKEN) or from --token-file; it is never stored or
printed.

Exit codes: 0 ok, 1 failure, 2 usage/config/token error, 3 tampered (or a
drift that a policy halts), 4 identity mismatch, 5 corrupted or rolled back,
6 incompatible, 75 busy.";

#[derive(Parser, Debug)]
#[command(name = "selfsame", version, about = ABOUT, long_about = LONG_ABOUT)]
struct Cli {
    /// The vault: a .selfsame directory or the directory holding one
    /// (default: search the current directory and its parents).
    #[arg(long, global = true, env = "SELFSAME_VAULT", value_name = "PATH")]
    vault: Option<std::path::PathBuf>,

    /// Read the bot token from this file instead of the env var.
    #[arg(long, global = true, value_name = "FILE")]
    token_file: Option<std::path::PathBuf>,

    /// Print one JSON object (or, for `log`, one per line) for programs.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Init(init::Args),
    Seal(seal::Args),
    Wake(wake::Args),
    Status(status::Args),
    Log(log::Args),
    Diff(diff::Args),
    Cat(cat::Args),
    Ls(ls::Args),
    Show(show::Args),
    Restore(restore::Args),
    Accept(accept::Args),
    Approve(approve::Args),
    Verify(verify::Args),
    Demo(demo::Args),
    Migrate(migrate::Args),
    Rekey(rekey::Args),
    Forget(forget::Args),
    Prune(prune::Args),
    Quarantine(quarantine::Args),
    Bind(bind::Args),
    Attest(attest::AttestArgs),
    VerifyAttestation(attest::VerifyArgs),
    #[cfg(feature = "remote")]
    Push(push::Args),
    Identity(identity::Args),
    #[cfg(feature = "remote")]
    Clone(clone::Args),
    Run(run::Args),
    /// Validate Telegram-signed data (Mini App initData, Login Widget).
    Telegram(telegram::TelegramArgs),
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout, usage errors to stderr.
            let code = e.exit_code();
            if e.use_stderr() {
                let _ = e.print();
            } else {
                output::wrote(e.print());
            }
            std::process::exit(output::finish(code));
        }
    };
    // A command that writes the vault finishes what it started on Ctrl-C.
    let writes = match &cli.command {
        Command::Init(_) => Some("init"),
        Command::Seal(_) | Command::Accept(_) | Command::Approve(_) => Some("the seal"),
        Command::Wake(_) => Some("the wake"),
        Command::Restore(_) => Some("the restore"),
        Command::Migrate(_) => Some("the migration"),
        Command::Rekey(_) => Some("the rekey"),
        Command::Bind(_) => Some("the bind"),
        Command::Identity(_) => Some("the identity command"),
        Command::Forget(_) => Some("the forget"),
        Command::Prune(_) => Some("the prune"),
        _ => None,
    };
    if let Some(what) = writes {
        interrupt::finish_first(what);
    }
    let ctx = Context::new(cli.vault, cli.token_file, cli.json);
    let result = match cli.command {
        Command::Init(a) => init::run(a, &ctx),
        Command::Seal(a) => seal::run(a, &ctx),
        Command::Wake(a) => wake::run(a, &ctx),
        Command::Status(a) => status::run(a, &ctx),
        Command::Log(a) => log::run(a, &ctx),
        Command::Diff(a) => diff::run(a, &ctx),
        Command::Cat(a) => cat::run(a, &ctx),
        Command::Ls(a) => ls::run(a, &ctx),
        Command::Show(a) => show::run(a, &ctx),
        Command::Restore(a) => restore::run(a, &ctx),
        Command::Accept(a) => accept::run(a, &ctx),
        Command::Approve(a) => approve::run(a, &ctx),
        Command::Verify(a) => verify::run(a, &ctx),
        Command::Demo(a) => demo::run(a, &ctx),
        Command::Migrate(a) => migrate::run(a, &ctx),
        Command::Rekey(a) => rekey::run(a, &ctx),
        Command::Forget(a) => forget::run(a, &ctx),
        Command::Prune(a) => prune::run(a, &ctx),
        Command::Quarantine(a) => quarantine::run(a, &ctx),
        Command::Bind(a) => bind::run(a, &ctx),
        Command::Attest(a) => attest::attest_run(a, &ctx),
        Command::VerifyAttestation(a) => attest::verify_run(a, &ctx),
        #[cfg(feature = "remote")]
        Command::Push(a) => push::run(a, &ctx),
        Command::Identity(a) => identity::run(a, &ctx),
        #[cfg(feature = "remote")]
        Command::Clone(a) => clone::run(a, &ctx),
        Command::Run(a) => run::run(a, &ctx),
        Command::Telegram(a) => Ok(telegram::run(a, &ctx)),
    };
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            ctx.error(&e);
            e.exit_code()
        }
    };
    interrupt::exit(output::finish(code));
}
