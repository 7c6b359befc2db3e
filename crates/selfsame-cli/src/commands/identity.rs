//! `selfsame identity`

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use selfsame::ops::identity::{self, IdentityReport};
use selfsame::{Error, Passphrase, Refusal, Result};

use crate::context::Context;
use crate::output::outln;

/// The vault's identity key: one Ed25519 key that signs every checkpoint.
///
/// It outlives token rotation (`rekey`) and moves to another platform or
/// bot (`bind`), and anyone who has its public key can check the chain
/// (`attest`, `verify-attestation`) without any secret. `init` creates it
/// with the vault; its seed is kept in .selfsame/identity, sealed under a
/// key only the bot's token derives.
///
///   selfsame identity show              the public key, selfsame:ed25519:<base64url>
///   selfsame identity init              give a vault from before identity keys one
///   selfsame identity export FILE       an age file encrypted to a passphrase, for
///                                       your offline backup
///   selfsame identity import FILE       put it back, or bring it to another vault
///                                       (--replace when that vault has another key)
///
/// The passphrase is asked on the terminal (twice for export), or read from
/// --passphrase-file FILE or the env var --passphrase-env VAR (for scripts;
/// a trailing newline is dropped).
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(clap::Subcommand, Debug)]
enum Sub {
    /// Print the vault's public key (no token needed).
    Show,
    /// Create an identity key for a vault that has none, and seal an
    /// `identity` checkpoint signed by it: from it on, every checkpoint is.
    Init,
    /// Write the identity key to FILE, encrypted to a passphrase (age format).
    Export {
        /// The file to write (it must not exist).
        file: PathBuf,
        #[command(flatten)]
        pass: PassArgs,
    },
    /// Read an identity key that `export` wrote. The key the checkpoints
    /// name is put back; a vault without one gets it; a vault with another
    /// gets it only with --replace (an `identity` checkpoint signed by it
    /// starts the new identity).
    Import {
        /// The file `selfsame identity export` wrote.
        file: PathBuf,
        /// Replace the vault's own identity key with the imported one.
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        pass: PassArgs,
    },
}

#[derive(clap::Args, Debug)]
struct PassArgs {
    /// Read the passphrase from this file instead of the terminal.
    #[arg(long, value_name = "FILE", conflicts_with = "passphrase_env")]
    passphrase_file: Option<PathBuf>,
    /// Read the passphrase from this env var instead of the terminal.
    #[arg(long, value_name = "VAR")]
    passphrase_env: Option<String>,
}

pub fn run(args: Args, ctx: &Context) -> Result<i32> {
    let vault = ctx.open_vault()?;
    match args.command {
        Sub::Show => {
            let shown = identity::show(&vault)?.ok_or(Error::Refused(Refusal::NoIdentity))?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({ "identity": shown }));
            } else {
                outln!("{shown}");
            }
        }
        Sub::Init => {
            let token = ctx.vault_token(&vault)?;
            let r = identity::init(&vault, &token)?;
            report(ctx, &r, "created the identity key");
        }
        Sub::Export { file, pass } => {
            let token = ctx.vault_token(&vault)?;
            let passphrase = passphrase(&pass, true)?;
            let bytes = identity::export(&vault, &token, &passphrase)?;
            write_new(&file, &bytes)?;
            let shown = identity::show(&vault)?.unwrap_or_default();
            if ctx.json {
                ctx.print_json(&serde_json::json!({ "identity": shown, "file": file }));
            } else {
                outln!(
                    "wrote {}: identity {shown}, encrypted to your passphrase; keep it offline",
                    file.display()
                );
            }
        }
        Sub::Import {
            file,
            replace,
            pass,
        } => {
            let token = ctx.vault_token(&vault)?;
            let bytes = read_export(&file)?;
            let passphrase = passphrase(&pass, false)?;
            let r = identity::import(&vault, &token, &bytes, &passphrase, replace)?;
            report(ctx, &r, "imported the identity key");
        }
    }
    Ok(0)
}

fn report(ctx: &Context, r: &IdentityReport, what: &str) {
    if ctx.json {
        ctx.print_json(r);
        return;
    }
    outln!("{what}: {}", r.identity);
    if let Some(old) = &r.replaced {
        outln!("  it replaces {old}");
    }
    match r.seq {
        Some(seq) => outln!(
            "  sealed checkpoint {seq} (identity), signed by it; every checkpoint from here on is"
        ),
        None => outln!("  the checkpoints already name it: the identity file is back"),
    }
    outln!("  publish it where your users look (e.g. the bot's description); `selfsame attest` gives them the chain to check");
}

/// Most bytes an exported identity can be: it is a few hundred.
const MAX_EXPORT: u64 = 64 * 1024;

fn read_export(path: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::Io {
        path: path.to_owned(),
        source: e,
    })?;
    if !meta.is_file() || meta.len() > MAX_EXPORT {
        return Err(Error::Usage(format!(
            "{} is not an exported identity (a regular file of at most {MAX_EXPORT} bytes)",
            path.display()
        )));
    }
    std::fs::read(path).map_err(|e| Error::Io {
        path: path.to_owned(),
        source: e,
    })
}

/// Writes `bytes` to a new file (never over an existing one), `0600`,
/// durable before the command says so.
fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e| Error::Io {
        path: path.to_owned(),
        source: e,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Usage(format!(
                    "{} exists; export never writes over a file: name a new one",
                    path.display()
                ))
            } else {
                io(e)
            }
        })?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)
}

/// The passphrase: from the file or env var the flags name, else asked on
/// the terminal (twice when `confirm`).
fn passphrase(args: &PassArgs, confirm: bool) -> Result<Passphrase> {
    let text = if let Some(path) = &args.passphrase_file {
        let text = crate::context::read_token_file(path).map_err(|e| {
            Error::Usage(format!(
                "cannot read the passphrase file {}: {e}",
                path.display()
            ))
        })?;
        strip_newline(text)
    } else if let Some(var) = &args.passphrase_env {
        let text = std::env::var(var)
            .map_err(|_| Error::Usage(format!("the passphrase env var {var} is not set")))?;
        strip_newline(text)
    } else {
        let first = prompt("passphrase: ")?;
        if confirm && prompt("passphrase again: ")? != first {
            return Err(Error::Usage("the two passphrases differ".into()));
        }
        first
    };
    if text.is_empty() {
        return Err(Error::Usage("the passphrase is empty".into()));
    }
    Ok(Passphrase::new(text))
}

fn strip_newline(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}

/// Asks for a line on the terminal without echoing it.
fn prompt(question: &str) -> Result<String> {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    let no_tty = |_| {
        Error::Usage(
            "no terminal to ask the passphrase on: pass --passphrase-file FILE or --passphrase-env VAR"
                .into(),
        )
    };
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(no_tty)?;
    let saved = tcgetattr(&tty).map_err(|e| no_tty(std::io::Error::from(e)))?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    quiet.local_modes.insert(LocalModes::ECHONL);
    let set = |t| tcsetattr(&tty, OptionalActions::Flush, t).map_err(std::io::Error::from);
    set(&quiet).map_err(no_tty)?;
    let mut line = String::new();
    let read = (&tty)
        .write_all(question.as_bytes())
        .and_then(|()| std::io::BufReader::new(&tty).read_line(&mut line));
    let _ = set(&saved);
    read.map_err(no_tty)?;
    Ok(strip_newline(line))
}
