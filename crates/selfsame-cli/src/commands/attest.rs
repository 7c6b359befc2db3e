//! `selfsame attest` and `selfsame verify-attestation`

use std::io::{Read, Write};
use std::path::PathBuf;

use selfsame::ops::attest::{attest, verify_attestation, AttestOptions};
use selfsame::{Error, Result};

use crate::context::Context;
use crate::output::outln;

/// Print checkpoints as they are stored, for anyone to verify with the
/// identity's public key (no token needed, here or there).
///
/// The lines are the checkpoint files, in order, byte for byte. Each is
/// signed by the vault's identity key, and each names the SHA-256 of the
/// one before it, so `selfsame verify-attestation --identity KEY` (or ten
/// lines of Python with any Ed25519 library; see the README) checks that
/// the chain is one agent's, across token rotations and platform moves.
///
/// The default range ends at the newest checkpoint and starts at the first
/// of the checkpoints signed by the same key (a vault that got its key by
/// `identity init` is attested from there).
///
/// Examples:
///   selfsame attest > attestation.txt
///   selfsame attest --from 40 --to 42
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct AttestArgs {
    /// The first checkpoint.
    #[arg(long, value_name = "SEQ")]
    from: Option<u64>,
    /// The last checkpoint (default: the newest).
    #[arg(long, value_name = "SEQ")]
    to: Option<u64>,
}

pub fn attest_run(args: AttestArgs, ctx: &Context) -> Result<i32> {
    let vault = ctx.open_vault()?;
    let a = attest(
        &vault,
        AttestOptions {
            from: args.from,
            to: args.to,
        },
    )?;
    if ctx.json {
        ctx.print_json(&a);
    } else {
        let mut out = std::io::stdout().lock();
        let written = out.write_all(a.text.as_bytes()).and_then(|()| out.flush());
        crate::output::wrote(written);
    }
    Ok(0)
}

/// Check an attestation: without a token, without a vault.
///
/// Every line must be a checkpoint that carries the given identity and a
/// valid signature by it, and each line's `prev` must be the SHA-256 of the
/// line before it (newline included). Prints the checkpoints covered, each
/// platform and bot id, and the newest soul hash.
///
/// Exit 0 verified, 4 a line is not signed by this identity (or is not a
/// checkpoint), 5 the chain is broken, 2 the input or the key is malformed.
///
/// Examples:
///   selfsame verify-attestation --identity selfsame:ed25519:9J3M… attestation.txt
///   curl -s https://example.org/bot/attestation | selfsame verify-attestation --identity … -
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct VerifyArgs {
    /// The identity's public key, as `selfsame identity show` prints it.
    #[arg(long, value_name = "selfsame:ed25519:KEY")]
    identity: String,
    /// The attestation (default `-`: standard input).
    #[arg(value_name = "FILE", default_value = "-")]
    file: PathBuf,
}

/// Most bytes an attestation is read up to: some 100,000 checkpoints.
const MAX_ATTESTATION: u64 = 256 << 20;

pub fn verify_run(args: VerifyArgs, ctx: &Context) -> Result<i32> {
    let key = selfsame::ops::attest::parse_identity(&args.identity).ok_or_else(|| {
        Error::Usage(format!(
            "--identity {:?} is not a public key: expected selfsame:ed25519:<43 base64url characters>, as `selfsame identity show` prints it",
            args.identity
        ))
    })?;
    let input = read_input(&args.file)?;
    let r = verify_attestation(&input, &key)?;
    if ctx.json {
        ctx.print_json(&r);
        return Ok(r.exit_code);
    }
    let range = match (r.from, r.to) {
        (Some(f), Some(t)) => format!("checkpoints {f}-{t}"),
        _ => "no checkpoint".into(),
    };
    if r.exit_code == 0 {
        outln!(
            "verified: {range}, {} lines, signed by {}",
            r.lines,
            r.identity
        );
    } else {
        outln!(
            "NOT verified ({range}, {} lines) against {}:",
            r.lines,
            r.identity
        );
        for p in &r.problems {
            outln!("  line {}: {} ({})", p.line, p.message, p.kind);
        }
    }
    for a in &r.accounts {
        outln!(
            "  {} bot {}: checkpoints {}-{}",
            a.platform,
            a.bot_id,
            a.from,
            a.to
        );
    }
    if let Some(soul) = &r.soul {
        outln!("  newest soul sha256:{soul}");
    }
    Ok(r.exit_code)
}

fn read_input(file: &PathBuf) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let read = if file.as_os_str() == "-" {
        std::io::stdin()
            .lock()
            .take(MAX_ATTESTATION + 1)
            .read_to_end(&mut bytes)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(MAX_ATTESTATION + 1).read_to_end(&mut bytes))
    };
    read.map_err(|e| Error::Usage(format!("cannot read {}: {e}", file.display())))?;
    if bytes.len() as u64 > MAX_ATTESTATION {
        return Err(Error::Usage(format!(
            "{} is more than {MAX_ATTESTATION} bytes: not an attestation selfsame checks",
            file.display()
        )));
    }
    Ok(bytes)
}
