//! Attestation: the checkpoint files' lines, byte for byte, for anyone
//! to check against the identity key's public key — no token, no vault.
//!
//! `attest` prints a range of checkpoints as they are stored.
//! `verify_attestation` checks such lines: each must parse, carry the
//! given `identity` and a valid `signature` (which covers every other
//! field, so every byte of the line but its own), and each line's `prev`
//! must be the SHA-256 of the line before it (newline included), its
//! `seq` one more. Any Ed25519 library reproduces the check in a few
//! lines, so the users of a bot can verify it without selfsame.

use serde::Serialize;

use crate::crypto::identity::{check_signature, SignatureCheck};
use crate::crypto::sha256_hex;
use crate::error::{Error, Result};
use crate::format::checkpoint::{Checkpoint, IDENTITY};
use crate::format::identity::{display_public, parse_display_public};
use crate::vault::identity::checkpoint_identity;
use crate::vault::Vault;

/// Which checkpoints to attest.
#[derive(Debug, Clone, Copy, Default)]
pub struct AttestOptions {
    /// The first (default: the first of the run of checkpoints signed by
    /// the same key as the last).
    pub from: Option<u64>,
    /// The last (default: the newest).
    pub to: Option<u64>,
}

/// The lines of an attestation.
#[derive(Debug, Clone, Serialize)]
pub struct Attestation {
    /// The first checkpoint.
    pub from: u64,
    /// The last.
    pub to: u64,
    /// The identity the last one is signed by, if any.
    pub identity: Option<String>,
    /// The checkpoint files' bytes, in order.
    pub text: String,
}

/// The checkpoints `opts` names, as stored. Needs no token: what they say
/// is for the reader to check with the public key.
pub fn attest(vault: &Vault, opts: AttestOptions) -> Result<Attestation> {
    let seqs = vault.checkpoint_seqs()?;
    let newest = *seqs
        .last()
        .ok_or_else(|| Error::NoSuchCheckpoint("head".into()))?;
    let to = opts.to.unwrap_or(newest);
    let last = vault.read_checkpoint(to)?;
    let identity = checkpoint_identity(&last);
    let from = match opts.from {
        Some(f) => f,
        None => {
            // Back from `to` while the checkpoints carry the same key.
            let mut from = to;
            while from > 1 {
                let before = vault.read_checkpoint(from - 1)?;
                if identity.is_none() || checkpoint_identity(&before) != identity {
                    break;
                }
                from -= 1;
            }
            from
        }
    };
    if from == 0 || from > to {
        return Err(Error::Usage(format!(
            "the range {from}-{to} is empty: checkpoints are numbered from 1, the first no later than the last"
        )));
    }
    let mut text = String::new();
    for seq in from..=to {
        let stored = if seq == to {
            last.clone()
        } else {
            vault.read_checkpoint(seq)?
        };
        text.push_str(&String::from_utf8_lossy(&stored.ckpt.to_bytes()));
    }
    Ok(Attestation {
        from,
        to,
        identity: identity.map(|k| display_public(&k)),
        text,
    })
}

/// The public key `selfsame:ed25519:<base64url>` (or the bare base64url)
/// names; `None` when it is not one.
pub fn parse_identity(text: &str) -> Option<[u8; 32]> {
    parse_display_public(text)
}

/// One account an attestation covers, and its checkpoints.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Account {
    /// `telegram`, `discord`.
    pub platform: String,
    /// The bot id.
    pub bot_id: u64,
    /// Its first checkpoint in the attestation.
    pub from: u64,
    /// Its last.
    pub to: u64,
}

/// What is wrong with one line of an attestation.
#[derive(Debug, Clone, Serialize)]
pub struct LineProblem {
    /// The line, from 1.
    pub line: usize,
    /// `signature` (not a checkpoint signed by the identity: exit 4) or
    /// `chain` (not the checkpoint after the line before: exit 5).
    pub kind: &'static str,
    /// What, for people.
    pub message: String,
}

/// What `verify_attestation` found.
#[derive(Debug, Clone, Serialize)]
pub struct AttestationReport {
    /// The identity checked against.
    pub identity: String,
    /// The lines checked.
    pub lines: usize,
    /// The first checkpoint's seq (of the lines that parse).
    pub from: Option<u64>,
    /// The last one's.
    pub to: Option<u64>,
    /// Each platform and bot id covered, in order.
    pub accounts: Vec<Account>,
    /// The newest soul hash (the last line's `soul`).
    pub soul: Option<String>,
    /// Everything wrong; none when it verifies.
    pub problems: Vec<LineProblem>,
    /// 0 verified, 4 a signature or identity does not match, 5 the chain
    /// is broken.
    pub exit_code: i32,
}

/// Checks an attestation against `identity` (the public key). Input that
/// is no attestation at all (empty) is a usage error (exit 2); every other
/// fault is a problem of a line: exit 4 when a line is not a checkpoint
/// signed by the identity (it does not parse, names another identity, or
/// its signature fails), else 5 when the chain is broken.
pub fn verify_attestation(input: &[u8], identity: &[u8; 32]) -> Result<AttestationReport> {
    if input.is_empty() {
        return Err(Error::Usage(
            "the attestation is empty: expected checkpoint lines as `selfsame attest` prints them"
                .into(),
        ));
    }
    let mut report = AttestationReport {
        identity: display_public(identity),
        lines: 0,
        from: None,
        to: None,
        accounts: Vec::new(),
        soul: None,
        problems: Vec::new(),
        exit_code: 0,
    };
    let mut before: Option<(&[u8], Option<u64>)> = None;
    for (i, raw) in input.split_inclusive(|b| *b == b'\n').enumerate() {
        let line = i + 1;
        report.lines = line;
        let parsed = match Checkpoint::parse(raw) {
            Ok(c) => Some(c),
            Err(e) => {
                report.problems.push(LineProblem {
                    line,
                    kind: "signature",
                    message: format!("not a checkpoint: {e}"),
                });
                None
            }
        };
        if let Some(c) = &parsed {
            report.problems.extend(signature_problem(c, identity, line));
            report.problems.extend(chain_problem(c, before, line));
            report.count(c);
        }
        before = Some((raw, parsed.map(|c| c.seq)));
    }
    let kinds = |k: &str| report.problems.iter().any(|p| p.kind == k);
    report.exit_code = if kinds("signature") {
        4
    } else if kinds("chain") {
        5
    } else {
        0
    };
    Ok(report)
}

/// A line that parses but is not signed by `identity`.
fn signature_problem(c: &Checkpoint, identity: &[u8; 32], line: usize) -> Option<LineProblem> {
    let seq = c.seq;
    let message = match (c.fields.get(IDENTITY), check_signature(c)) {
        (None, _) => format!("checkpoint {seq} carries no identity signature"),
        (_, SignatureCheck::Valid(k)) if k == *identity => return None,
        (_, SignatureCheck::Valid(k)) => format!(
            "checkpoint {seq} is signed by {}, not by this identity",
            display_public(&k)
        ),
        (_, SignatureCheck::Missing) => {
            format!("checkpoint {seq} names an identity but carries no signature")
        }
        (_, SignatureCheck::Invalid(why)) => format!("checkpoint {seq}: {why}"),
        (_, SignatureCheck::Unsigned) => unreachable!("it names an identity"),
    };
    Some(LineProblem {
        line,
        kind: "signature",
        message,
    })
}

/// A line that does not follow the one before it (`before`: its bytes and
/// its seq, if it parsed).
fn chain_problem(
    c: &Checkpoint,
    before: Option<(&[u8], Option<u64>)>,
    line: usize,
) -> Option<LineProblem> {
    let (prev_raw, prev_seq) = before?;
    let linked = c.prev == sha256_hex(prev_raw);
    let next = prev_seq.is_none_or(|p| p + 1 == c.seq);
    if linked && next {
        return None;
    }
    Some(LineProblem {
        line,
        kind: "chain",
        message: format!(
            "checkpoint {} does not follow the line before it ({})",
            c.seq,
            if linked {
                "its seq is not the next"
            } else {
                "its `prev` is not the SHA-256 of that line"
            }
        ),
    })
}

impl AttestationReport {
    /// Counts a checkpoint in the range, the accounts and the soul.
    fn count(&mut self, c: &Checkpoint) {
        self.from.get_or_insert(c.seq);
        self.to = Some(c.seq);
        self.soul = Some(c.soul.clone());
        match self.accounts.last_mut() {
            Some(a) if a.platform == c.platform && a.bot_id == c.bot_id => a.to = c.seq,
            _ => self.accounts.push(Account {
                platform: c.platform.clone(),
                bot_id: c.bot_id,
                from: c.seq,
                to: c.seq,
            }),
        }
    }
}
