//! Forget: a retention policy releases old checkpoints' snapshots.
//!
//! Checkpoints themselves are never deleted: they are the identity chain,
//! a few hundred bytes each. Forgetting releases a checkpoint's snapshot
//! (its manifest and the objects only it needs) by appending a `forget`
//! history event that lists it. The event is signed like every line, and
//! takes effect once the next checkpoint anchors it: from then on `verify`
//! tells the released snapshot from a missing object, `restore N` of it
//! says so, and [`super::prune`] removes what only it needed.
//!
//! The policy has restic's meanings ([`Policy`]). Whatever it says, these
//! are never forgotten: the head, the newest checkpoint a healthy run
//! marked `good`, the newest that approved protected paths
//! (`reason=approve`), and the checkpoints a pending restore or migration
//! names.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::checks::{inspect, Inspection, ObjectScope};
use super::head::{released, FORGET, FORGOTTEN};
use crate::crypto::{Credential, Keys};
use crate::error::{Damage, Error, Mismatch, Refusal, Result};
use crate::format::checkpoint::Reason;
use crate::format::time::parse_rfc3339;
use crate::progress::{Phase, Progress};
use crate::vault::Vault;
use crate::verdict::{Detail, Verdict};

pub use crate::format::retention::Policy;

/// How to forget.
#[derive(Debug, Clone, Default)]
pub struct ForgetOptions {
    /// What to keep.
    pub policy: Policy,
    /// Only say what would be forgotten.
    pub dry_run: bool,
    /// The policy is `config.toml`'s `[retention]` as read now: refused
    /// while that file differs from the config the head was sealed with
    /// (someone who can write the vault but has no token does not choose
    /// what the owner's forget releases).
    pub from_config: bool,
}

/// A checkpoint whose snapshot stays, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Kept {
    /// The checkpoint.
    pub seq: u64,
    /// When it was sealed.
    pub sealed_at: String,
    /// The rules that keep it (`last`, `hourly`, `daily`, `weekly`,
    /// `monthly`, `yearly`, `within`) and the protections (`head`, `good`,
    /// `approve`, `pending`).
    pub reasons: Vec<&'static str>,
}

/// What a forget did (or, dry, would do).
#[derive(Debug, Clone, Serialize)]
pub struct ForgetReport {
    /// The checkpoints whose snapshots stay.
    pub kept: Vec<Kept>,
    /// The checkpoints whose snapshots this forget released.
    pub forgotten: Vec<u64>,
    /// How many had been forgotten before.
    pub forgotten_before: usize,
    /// Whether nothing was written because it was a dry run.
    pub dry_run: bool,
}

/// Applies `opts.policy`, taking the vault lock: appends a `forget` event
/// listing every checkpoint whose snapshot it releases (none: nothing is
/// written). The vault must verify under `cred` (but for a changed
/// `config.toml`).
pub fn forget(
    vault: &Vault,
    cred: &Credential,
    opts: &ForgetOptions,
    progress: &dyn Progress,
) -> Result<ForgetReport> {
    let _lock = vault.lock()?;
    forget_locked(vault, cred, opts, progress)
}

/// [`forget`] with the vault lock held.
pub(crate) fn forget_locked(
    vault: &Vault,
    cred: &Credential,
    opts: &ForgetOptions,
    progress: &dyn Progress,
) -> Result<ForgetReport> {
    if opts.policy.is_empty() {
        return Err(Error::Usage(
            "a retention policy must keep something: give at least one keep rule".into(),
        ));
    }
    let insp = verified(vault, cred, "forget", ObjectScope::Head)?;
    let head = insp.head.clone().expect("a verified vault has a head");
    if opts.from_config
        && insp
            .problems
            .iter()
            .any(|p| p.detail == Detail::ConfigChanged)
    {
        return Err(Error::Refused(Refusal::RetentionConfigChanged(
            head.ckpt.seq,
        )));
    }
    // Released by an earlier forget, anchored yet or not: not listed again.
    let before = released(&insp.history, &head.ckpt.log, &insp.keys);
    let protected = protected(vault, &insp, &before)?;
    let candidates: Vec<(u64, std::time::SystemTime, &str)> = insp
        .checkpoints
        .iter()
        .filter(|s| !before.contains_key(&s.ckpt.seq) || s.ckpt.seq == head.ckpt.seq)
        .filter_map(|s| {
            let at = &s.ckpt.header.sealed_at;
            parse_rfc3339(at).map(|t| (s.ckpt.seq, t, at.as_str()))
        })
        .collect();
    progress.start(
        Phase::Scan,
        candidates.len() as u64,
        candidates.len() as u64,
    );
    let times: Vec<(u64, std::time::SystemTime)> =
        candidates.iter().map(|&(s, t, _)| (s, t)).collect();
    let mut keep = opts.policy.keep(&times);
    for (seq, why) in protected {
        keep.entry(seq).or_default().push(why);
    }
    progress.advance(candidates.len() as u64);
    progress.finish();
    let mut report = ForgetReport {
        kept: Vec::new(),
        forgotten: Vec::new(),
        forgotten_before: before.len(),
        dry_run: opts.dry_run,
    };
    for &(seq, _, at) in &candidates {
        match keep.remove(&seq) {
            Some(reasons) => report.kept.push(Kept {
                seq,
                sealed_at: at.to_owned(),
                reasons,
            }),
            None => report.forgotten.push(seq),
        }
    }
    if opts.dry_run || report.forgotten.is_empty() {
        return Ok(report);
    }
    let keys = Keys::of(cred);
    let history = vault.history_for(&keys);
    history.check_after(&head.ckpt.log)?;
    let mut data = Map::new();
    data.insert(FORGOTTEN.into(), json!(report.forgotten));
    data.insert("kept".into(), json!(report.kept.len()));
    data.insert("policy".into(), policy_json(&opts.policy));
    history.append(FORGET, data)?;
    Ok(report)
}

/// The checkpoints no policy forgets, each with why: the head, the newest
/// trusted `good`, the newest `approve`, and what a pending journal names.
fn protected(
    vault: &Vault,
    insp: &Inspection,
    released: &BTreeMap<u64, String>,
) -> Result<BTreeMap<u64, &'static str>> {
    let mut out = BTreeMap::new();
    let kept = |seq: &u64| !released.contains_key(seq);
    if let Some(h) = &insp.head {
        out.insert(h.ckpt.seq, "head");
    }
    let seqs: BTreeSet<u64> = insp.checkpoints.iter().map(|s| s.ckpt.seq).collect();
    let anchor = insp.head.as_ref().map_or("", |h| h.ckpt.log.as_str());
    let good = insp
        .history
        .trusted_lines(anchor, &insp.keys)
        .into_iter()
        .filter(|l| l.event.event == "good")
        .filter_map(|l| l.event.get_u64("seq"))
        .filter(|s| seqs.contains(s) && kept(s))
        .max();
    if let Some(g) = good {
        out.entry(g).or_insert("good");
    }
    let approve = insp
        .checkpoints
        .iter()
        .filter(|s| s.ckpt.header.reason == Reason::Approve.as_str())
        .map(|s| s.ckpt.seq)
        .filter(kept)
        .max();
    if let Some(a) = approve {
        out.entry(a).or_insert("approve");
    }
    if let Some(j) = vault.read_journal(None).ok().flatten() {
        for seq in [j.target, j.head_before] {
            out.entry(seq).or_insert("pending");
        }
    }
    Ok(out)
}

/// The checks, which must find nothing wrong (but a changed
/// `config.toml`): forget and prune change nothing in a vault that does
/// not verify under the token.
pub(crate) fn verified(
    vault: &Vault,
    cred: &Credential,
    op: &'static str,
    scope: ObjectScope,
) -> Result<Inspection> {
    let insp = inspect(vault, cred, scope)?;
    if let Some(p) = insp
        .problems
        .iter()
        .find(|p| p.detail != Detail::ConfigChanged)
    {
        let why = format!("{}: {}", p.detail, p.message);
        return Err(match p.detail.verdict() {
            Verdict::IdentityMismatch => Error::Identity(Mismatch::VaultUnverified { op, why }),
            _ => Error::corrupt(vault.dir(), Damage::Unverified { op, why }),
        });
    }
    if insp.head.is_none() {
        return Err(Error::NoSuchCheckpoint("head".into()));
    }
    Ok(insp)
}

/// The policy as the history records it: the rules it sets.
fn policy_json(p: &Policy) -> Value {
    let mut m = Map::new();
    for (key, n) in [
        ("keep_last", p.last),
        ("keep_hourly", p.hourly),
        ("keep_daily", p.daily),
        ("keep_weekly", p.weekly),
        ("keep_monthly", p.monthly),
        ("keep_yearly", p.yearly),
    ] {
        if n > 0 {
            m.insert(key.into(), json!(n));
        }
    }
    if let Some(d) = p.within.filter(|d| !d.is_zero()) {
        m.insert(
            "keep_within".into(),
            json!(humantime::format_duration(d).to_string()),
        );
    }
    Value::Object(m)
}

/// Checkpoint numbers as people read them, for messages: `1-3, 5, 8-9`
/// for `[1, 2, 3, 5, 8, 9]` (sorted).
pub fn seq_runs(seqs: &[u64]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < seqs.len() {
        let mut j = i;
        while j + 1 < seqs.len() && seqs[j + 1] == seqs[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            seqs[i].to_string()
        } else {
            format!("{}-{}", seqs[i], seqs[j])
        });
        i = j + 1;
    }
    out.join(", ")
}
