//! The vault checks shared by wake, status and verify, in DESIGN.md's
//! order: bot id, MACs, chain / HEAD / history, the head's objects.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::crypto::Credential;
use serde::Serialize;

use super::head::forgotten;
use crate::crypto::identity::{check_signature, SignatureCheck};
use crate::crypto::Keys;
use crate::error::{Damage, Error, Result};
use crate::format::checkpoint::Reason;
use crate::format::identity::display_public;
use crate::format::{Kind, Manifest};
use crate::vault::checkpoints::CheckpointDir;
use crate::vault::history::HistoryRead;
use crate::vault::{read, Objects, StoredCheckpoint, Vault};
use crate::verdict::{Advice, Detail, Verdict};

/// One thing wrong with the vault.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// The detail code; its verdict follows from it.
    #[serde(serialize_with = "ser_detail")]
    pub detail: Detail,
    /// What is wrong, naming the file.
    pub message: String,
    /// What the owner can do about it, when there is more to say than
    /// the message.
    #[serde(skip)]
    pub advice: Option<Advice>,
}

impl Problem {
    /// A problem with nothing to advise.
    pub fn new(detail: Detail, message: String) -> Self {
        Problem {
            detail,
            message,
            advice: None,
        }
    }

    /// The problem an error of the vault's files is, when it is damage (a
    /// missing object or a damaged file); other errors come back.
    pub fn of_damage(detail: Detail, e: Error) -> Result<Problem> {
        let (message, advice) = match e {
            Error::ObjectMissing { hash } => (format!("object {hash} is missing"), None),
            Error::Corrupt { path, damage } => {
                let advice =
                    matches!(*damage, Damage::WorkDir { .. }).then_some(Advice::WakeAfterClearing);
                (damage.describe(&path), advice)
            }
            e => return Err(e),
        };
        Ok(Problem {
            detail,
            message,
            advice,
        })
    }
}

/// The description of a damaged file, or the error when it is not damage.
fn damage(e: Error) -> Result<String> {
    match e {
        Error::Corrupt { path, damage } => Ok(damage.describe(&path)),
        e => Err(e),
    }
}

fn ser_detail<S: serde::Serializer>(d: &Detail, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(d.as_str())
}

/// Which objects to check for presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectScope {
    /// The head checkpoint's manifest and its objects (wake).
    Head,
    /// Every checkpoint's (verify).
    All,
}

/// What the checks found.
#[derive(Debug)]
pub struct Inspection {
    /// The keys of the token.
    pub keys: Keys,
    /// Checkpoints that parsed and whose MAC verifies, ascending.
    pub checkpoints: Vec<StoredCheckpoint>,
    /// The newest verified checkpoint.
    pub head: Option<StoredCheckpoint>,
    /// The head's manifest, when it could be read.
    pub head_manifest: Option<Manifest>,
    /// Problems in check order: the first one names the verdict.
    pub problems: Vec<Problem>,
    /// The seq in the HEAD file.
    pub head_file: Option<u64>,
    /// The history as read.
    pub history: HistoryRead,
    /// Checkpoints sealed under an earlier token, vouched for by a rekey
    /// checkpoint that verifies under this one (through the `prev` chain).
    pub vouched: Vec<u64>,
    /// The rekey checkpoint that vouches for them.
    pub vouched_by: Option<u64>,
    /// The rekey checkpoint that retired this token, when the token is an
    /// old one (its MAC is the rekey's `prev_key_hash`).
    pub retired_at: Option<u64>,
    /// Names in `checkpoints/` that are neither checkpoints nor temp files
    /// (ignored, but worth naming).
    pub strays: Vec<String>,
    /// The objects found missing (an `object-missing` problem each).
    pub missing_objects: HashSet<[u8; 32]>,
    /// Checkpoints whose snapshots a retention policy released, with when
    /// (trusted `forget` events): their objects are not looked for.
    pub forgotten: BTreeMap<u64, String>,
}

impl Inspection {
    /// The rekey or bind checkpoint that vouches for the checkpoints
    /// sealed under an earlier token, and its reason.
    pub fn voucher(&self) -> Option<(u64, &str)> {
        let seq = self.vouched_by?;
        let s = self.checkpoints.iter().find(|s| s.ckpt.seq == seq)?;
        Some((seq, s.ckpt.reason.as_str()))
    }

    /// The verdict and detail of the first problem, if any.
    pub fn failure(&self) -> Option<(Verdict, Detail)> {
        self.problems
            .first()
            .map(|p| (p.detail.verdict(), p.detail))
    }

    /// Whether HEAD is missing or behind the newest checkpoint (a crash
    /// between writing a checkpoint and HEAD), which wake repairs.
    pub fn head_behind(&self) -> bool {
        match (&self.head, self.head_file) {
            (Some(h), Some(f)) => f < h.ckpt.seq,
            (Some(_), None) => true,
            _ => false,
        }
    }
}

/// Problems in the order the checks find them.
#[derive(Debug, Default)]
struct Found(Vec<Problem>);

impl Found {
    fn push(&mut self, detail: Detail, message: String) {
        self.0.push(Problem::new(detail, message));
    }
}

/// The checkpoints as their MACs sort them.
struct Macs {
    /// Parsed, and verified (or vouched for by a rekey), ascending.
    good: Vec<StoredCheckpoint>,
    /// Parsed, not verified.
    bad: Vec<StoredCheckpoint>,
    vouched: Vec<u64>,
    vouched_by: Option<u64>,
    retired_at: Option<u64>,
    /// The bind that retired this token, when one did.
    moved: Option<Moved>,
}

/// A bind that moved the vault to another account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    /// The bind checkpoint.
    pub seq: u64,
    /// The platform it moved to.
    pub platform: String,
    /// The account it moved to.
    pub bot_id: u64,
}

/// Runs the checks in DESIGN.md's order: the account, the MACs, the chain
/// and HEAD, the history, the objects, the vault's other files, the
/// config. Errors are I/O failures; findings are `problems`, the first of
/// which names the verdict.
pub fn inspect(vault: &Vault, cred: &Credential, scope: ObjectScope) -> Result<Inspection> {
    let keys = Keys::of(cred);
    let mut found = Found::default();
    let listing = vault.list_checkpoints()?;
    let macs = check_macs(vault, cred, &keys, &listing, &mut found)?;
    if !vault.belongs_to(cred) {
        // First: another account names the verdict.
        found.0.insert(0, other_account(vault, cred, &macs));
    }
    let head_file = check_chain(vault, &listing.seqs, &macs, &mut found)?;
    let newest = listing.seqs.last().copied();
    let history = check_history(vault, &keys, &macs.good, newest, &mut found)?;
    check_signatures(&macs.good, &mut found);
    if vault.belongs_to(cred) && !macs.good.is_empty() && macs.retired_at.is_none() {
        check_identity_file(vault, &keys, macs.good.last(), &mut found);
    }
    let head = macs.good.last().cloned();
    let anchor = head.as_ref().map_or("", |h| h.ckpt.log.as_str());
    let mut forgotten = forgotten(&history, anchor, &keys);
    if let Some(h) = &head {
        forgotten.remove(&h.ckpt.seq);
    }
    let kept: Vec<&StoredCheckpoint> = macs
        .good
        .iter()
        .filter(|s| !forgotten.contains_key(&s.ckpt.seq))
        .collect();
    let (head_manifest, missing_objects) =
        check_objects(vault, scope, &kept, head.as_ref(), &mut found)?;
    // Quarantine: where restores move soul states; never followed out.
    if let Some(what) = vault.quarantine_problem() {
        let m = Damage::QuarantineInvalid(what).describe(&vault.quarantine_dir());
        found.push(Detail::QuarantineInvalid, m);
    }
    if let Some(e) = vault.marker_problem() {
        found.push(Detail::BadFile, damage(e)?);
    }
    if let Some(e) = vault.objects_layout_problem() {
        found.push(Detail::BadFile, damage(e)?);
    }
    if let Some(e) = vault.working_files_problem() {
        found.push(Detail::BadFile, damage(e)?);
    }
    // Config: the head binds the config.toml it was sealed with. A vault
    // written before the binding existed has no `config` field: not checked.
    if let Some(problem) = head.as_ref().and_then(|h| config_problem(vault, h)) {
        found.0.push(problem);
    }
    Ok(Inspection {
        keys,
        checkpoints: macs.good,
        head,
        head_manifest,
        problems: found.0,
        head_file,
        history,
        vouched: macs.vouched,
        vouched_by: macs.vouched_by,
        retired_at: macs.retired_at,
        strays: listing.strays,
        missing_objects,
        forgotten,
    })
}

/// Row `identity-mismatch` (`different-bot`): the token proves another
/// account than `config.toml` names. When a bind moved the vault away from
/// this token, or an interrupted bind to it left `config.toml` behind, the
/// problem says so.
fn other_account(vault: &Vault, cred: &Credential, macs: &Macs) -> Problem {
    let this = format!("{} bot {}", cred.platform(), cred.account_id());
    let vault_account = format!("{} bot {}", vault.config.platform, vault.config.bot_id);
    if let Some(m) = &macs.moved {
        return Problem {
            detail: Detail::DifferentBot,
            message: format!(
                "this vault moved away from this token ({this}): the bind at checkpoint {} moved it to {} bot {}",
                m.seq, m.platform, m.bot_id
            ),
            advice: Some(Advice::Moved {
                seq: m.seq,
                platform: m.platform.clone(),
                bot_id: m.bot_id,
            }),
        };
    }
    let bound_here = macs
        .bad
        .iter()
        .chain(macs.good.iter())
        .max_by_key(|s| s.ckpt.seq)
        .filter(|s| s.ckpt.is_bind() && macs.good.iter().any(|g| g.ckpt.seq == s.ckpt.seq));
    if let Some(b) = bound_here {
        return Problem {
            detail: Detail::DifferentBot,
            message: format!(
                "the bind at checkpoint {} moved this vault to this token ({this}), but config.toml still names {vault_account}: the bind was interrupted before config.toml was written",
                b.ckpt.seq
            ),
            advice: Some(Advice::FinishBind),
        };
    }
    Problem::new(
        Detail::DifferentBot,
        format!("the token is {this}'s, but this vault belongs to {vault_account}"),
    )
}

/// Reads every checkpoint and sorts them by their MACs: rows
/// `identity-mismatch` (`different-bot`, `mac-invalid`) and `corrupted`
/// (`mac-mismatch`, `unreadable-checkpoint`).
fn check_macs(
    vault: &Vault,
    cred: &Credential,
    keys: &Keys,
    listing: &CheckpointDir,
    found: &mut Found,
) -> Result<Macs> {
    let mut parsed = Vec::new();
    let mut unreadable: Vec<String> = listing
        .misnamed
        .iter()
        .map(|name| {
            format!(
                "{} is not a checkpoint name: a checkpoint is named by its seq zero-padded to 8 digits (00000001.ckpt), so this is another copy beside it or a file put there; move it out of checkpoints/",
                vault.checkpoints_dir().join(name).display()
            )
        })
        .collect();
    for &seq in &listing.seqs {
        match vault.read_checkpoint(seq) {
            Ok(s) => parsed.push(s),
            Err(e) => unreadable.push(damage(e)?),
        }
    }
    let (mut good, mut bad): (Vec<StoredCheckpoint>, Vec<StoredCheckpoint>) =
        parsed.into_iter().partition(|s| keys.verifies(&s.ckpt));
    // Token rotation. The newest rekey checkpoint that verifies under this
    // token vouches for every checkpoint before it; the `prev` chain checked
    // below makes that hold byte for byte. A rekey whose `prev_key_hash`
    // verifies under this token means the token is the retired one.
    let vouched_by = good
        .iter()
        .filter(|s| s.ckpt.is_rekey())
        .map(|s| s.ckpt.seq)
        .max();
    let mut vouched = Vec::new();
    if let Some(r) = vouched_by {
        let (before, after): (Vec<StoredCheckpoint>, Vec<StoredCheckpoint>) =
            bad.into_iter().partition(|s| s.ckpt.seq < r);
        vouched = before.iter().map(|s| s.ckpt.seq).collect();
        good.extend(before);
        good.sort_by_key(|s| s.ckpt.seq);
        bad = after;
    }
    let retired = bad.iter().find(|s| keys.retired_by(&s.ckpt));
    let retired_at = retired.map(|s| s.ckpt.seq);
    let moved = retired.filter(|s| s.ckpt.is_bind()).map(|s| Moved {
        seq: s.ckpt.seq,
        platform: s.ckpt.platform.clone(),
        bot_id: s.ckpt.bot_id,
    });
    let macs = Macs {
        good,
        bad,
        vouched,
        vouched_by,
        retired_at,
        moved,
    };
    mac_problems(vault, cred, &macs, unreadable, found);
    Ok(macs)
}

/// Row `identity-mismatch` (`different-bot`) as the checkpoints say it: a
/// checkpoint bound to another account. Checkpoints whose MAC fails say
/// nothing trustworthy about the bot: they are looked at only when none
/// verifies (an edited `bot_id` in one checkpoint is corruption, not
/// another bot). Those a bind vouches for were another account's.
fn account_problem(cred: &Credential, macs: &Macs) -> Option<Problem> {
    let (good, bad) = (&macs.good, &macs.bad);
    let since_bind = good
        .iter()
        .filter(|s| s.ckpt.is_bind())
        .map(|s| s.ckpt.seq)
        .max()
        .unwrap_or(0);
    let judged: Vec<&StoredCheckpoint> = if good.is_empty() {
        bad.iter().collect()
    } else {
        good.iter().filter(|s| s.ckpt.seq >= since_bind).collect()
    };
    let other = judged.into_iter().find(|s| {
        s.ckpt.bot_id != cred.account_id() || s.ckpt.platform != cred.platform().as_str()
    })?;
    Some(Problem::new(
        Detail::DifferentBot,
        format!(
            "checkpoint {} is bound to {} bot {}, the token is {} bot {}'s",
            other.ckpt.seq,
            other.ckpt.platform,
            other.ckpt.bot_id,
            cred.platform(),
            cred.account_id()
        ),
    ))
}

/// The problems the MACs show, in the table's order: another bot, a
/// retired or unknown token, edited checkpoints, unreadable ones.
fn mac_problems(
    vault: &Vault,
    cred: &Credential,
    macs: &Macs,
    unreadable: Vec<String>,
    found: &mut Found,
) {
    let Macs {
        good,
        bad,
        retired_at,
        ..
    } = macs;
    if let Some(p) = account_problem(cred, macs) {
        found.0.push(p);
    }
    if let Some(m) = &macs.moved {
        // The account check words it when config.toml moved on too.
        if vault.belongs_to(cred) {
            found.0.push(Problem {
                detail: Detail::MacInvalid,
                message: format!(
                    "this token was retired by the bind at checkpoint {}, which moved the vault to {} bot {}; config.toml still names this bot: the bind was interrupted before config.toml was written",
                    m.seq, m.platform, m.bot_id
                ),
                advice: Some(Advice::FinishBind),
            });
        }
    } else if let Some(r) = *retired_at {
        found.push(
            Detail::MacInvalid,
            format!(
                "this token was retired by the rekey at checkpoint {r} (token rotation): checkpoints from {r} on verify only under the new token; use the token that replaced it"
            ),
        );
    } else if good.is_empty() && !bad.is_empty() {
        found.0.push(Problem {
            detail: Detail::MacInvalid,
            message: format!(
                "no checkpoint verifies under this token ({} checked): forged, or the token was rotated",
                bad.len()
            ),
            advice: Some(Advice::Rekey),
        });
    } else {
        for s in bad {
            found.push(
                Detail::MacMismatch,
                format!(
                    "checkpoint {}: MAC does not verify (edited?)",
                    vault.checkpoint_path(s.ckpt.seq).display()
                ),
            );
        }
    }
    for m in unreadable {
        found.push(Detail::UnreadableCheckpoint, m);
    }
}

/// HEAD, the seq numbering and the `prev` chain: rows `corrupted`
/// (`chain-broken`, `no-checkpoint`) and `rolled-back` (`head-ahead`).
/// Returns the seq in HEAD.
fn check_chain(vault: &Vault, seqs: &[u64], macs: &Macs, found: &mut Found) -> Result<Option<u64>> {
    let head_file = match vault.read_head() {
        Ok(h) => h,
        Err(e) => {
            found.push(Detail::ChainBroken, damage(e)?);
            None
        }
    };
    let newest = seqs.last().copied();
    if let (Some(h), n) = (head_file, newest) {
        if n.is_none_or(|n| h > n) {
            found.push(
                Detail::HeadAhead,
                format!(
                    "HEAD names checkpoint {h}, but the newest present is {}: checkpoints were removed or an older vault was put back",
                    n.map_or("none".into(), |n| n.to_string())
                ),
            );
        }
    }
    if seqs.is_empty() && head_file.is_none() {
        found.push(Detail::NoCheckpoint, "the vault has no checkpoint".into());
    }
    if let Some((expected, seq)) = (1..).zip(seqs.iter().copied()).find(|(e, s)| s != e) {
        found.push(
            Detail::ChainBroken,
            format!("checkpoint {expected} is missing (next present: {seq})"),
        );
    }
    let by_seq: HashMap<u64, &StoredCheckpoint> = macs
        .good
        .iter()
        .chain(macs.bad.iter())
        .map(|s| (s.ckpt.seq, s))
        .collect();
    for s in macs.good.iter().filter(|s| s.ckpt.seq > 1) {
        let broken = by_seq
            .get(&(s.ckpt.seq - 1))
            .is_some_and(|prev| prev.file_hash != s.ckpt.prev);
        if broken {
            found.push(
                Detail::ChainBroken,
                format!(
                    "checkpoint {} does not chain to checkpoint {}",
                    s.ckpt.seq,
                    s.ckpt.seq - 1
                ),
            );
        }
    }
    Ok(head_file)
}

/// The history: its chain, its MACs after the newest anchor, the anchors
/// of the checkpoints: rows `corrupted` (`history-broken`,
/// `history-forged`, `anchor-missing`) and `rolled-back`
/// (`history-ahead`).
fn check_history(
    vault: &Vault,
    keys: &Keys,
    good: &[StoredCheckpoint],
    newest: Option<u64>,
    found: &mut Found,
) -> Result<HistoryRead> {
    let history = match vault.history().read_all() {
        Ok(h) => h,
        Err(e) => {
            found.push(Detail::HistoryBroken, damage(e)?);
            HistoryRead::default()
        }
    };
    for p in &history.problems {
        found.push(Detail::HistoryBroken, p.clone());
    }
    // History v2: the lines after the newest checkpoint's anchor must
    // carry a valid MAC (those before it are vouched for by the chain).
    let anchor = good.last().map_or("", |s| s.ckpt.log.as_str());
    for p in history.authenticate(anchor, keys).forged {
        found.push(Detail::HistoryForged, p);
    }
    if let Some(n) = newest {
        if let Some(l) = history
            .lines
            .iter()
            .find(|l| l.event.event == "seal" && l.event.get_u64("seq").is_some_and(|s| s > n))
        {
            found.push(
                Detail::HistoryAhead,
                format!(
                    "history line {} records checkpoint {}, but the newest present is {n}",
                    l.event.n,
                    l.event.get_u64("seq").unwrap_or(0)
                ),
            );
        }
    }
    let anchors: HashSet<&str> = history.lines.iter().map(|l| l.hash.as_str()).collect();
    for s in good {
        if !s.ckpt.log.is_empty() && !anchors.contains(s.ckpt.log.as_str()) {
            found.push(
                Detail::AnchorMissing,
                format!(
                    "checkpoint {} anchors a history line that is not in history.jsonl (history edited or replaced)",
                    s.ckpt.seq
                ),
            );
        }
    }
    Ok(history)
}

/// The identity signatures of the checkpoints: rows `corrupted`
/// (`signature-invalid`, `signature-missing`, `identity-changed`). Every
/// checkpoint that names an identity must carry a valid signature by it;
/// once one is signed, every later one must be, by the same key unless it
/// is an `identity` checkpoint (which adds or replaces the key).
fn check_signatures(good: &[StoredCheckpoint], found: &mut Found) {
    let mut signed_by: Option<(u64, [u8; 32])> = None;
    for s in good {
        let seq = s.ckpt.seq;
        match check_signature(&s.ckpt) {
            SignatureCheck::Unsigned => {
                if let Some((at, _)) = signed_by {
                    found.push(
                        Detail::SignatureMissing,
                        format!("checkpoint {seq} carries no identity signature, but checkpoint {at} before it is signed: a checkpoint of a signed chain was sealed without its identity key"),
                    );
                }
            }
            SignatureCheck::Missing => found.push(
                Detail::SignatureMissing,
                format!("checkpoint {seq} names an identity but carries no signature"),
            ),
            SignatureCheck::Invalid(why) => {
                found.push(Detail::SignatureInvalid, format!("checkpoint {seq}: {why}"))
            }
            SignatureCheck::Valid(public) => {
                let replaced = s.ckpt.reason == Reason::Identity.as_str();
                if let Some((at, before)) = signed_by.filter(|(_, b)| *b != public && !replaced) {
                    found.push(
                        Detail::IdentityChanged,
                        format!(
                            "checkpoint {seq} is signed by {}, checkpoint {at} before it by {}: an identity key is replaced only by an identity checkpoint",
                            display_public(&public),
                            display_public(&before)
                        ),
                    );
                }
                signed_by = Some((seq, public));
            }
        }
    }
}

/// The identity file against the head (the newest trusted checkpoint):
/// row `corrupted` (`identity-file`). When the head is signed the file
/// must be there and hold its key; any identity file must be one that
/// opens under the token (else the next seal could not sign).
fn check_identity_file(
    vault: &Vault,
    keys: &Keys,
    head: Option<&StoredCheckpoint>,
    found: &mut Found,
) {
    let problem = match vault.identity_for(keys.wrap(), head, false) {
        Ok(_) => None,
        Err(Error::Corrupt { path, damage }) => Some(damage.describe(&path)),
        Err(e) => Some(e.to_string()),
    };
    if let Some(m) = problem {
        found.push(Detail::IdentityFile, m);
    }
}

/// The manifests and objects of the head (wake) or of every checkpoint
/// whose snapshot is kept (verify): row `corrupted` (`object-missing`,
/// `object-corrupt`). Returns the head's manifest, when it could be read,
/// and the objects found missing.
fn check_objects(
    vault: &Vault,
    scope: ObjectScope,
    kept: &[&StoredCheckpoint],
    head: Option<&StoredCheckpoint>,
    found: &mut Found,
) -> Result<(Option<Manifest>, HashSet<[u8; 32]>)> {
    let targets: Vec<&StoredCheckpoint> = match scope {
        ObjectScope::Head => head.into_iter().collect(),
        ObjectScope::All => kept.to_vec(),
    };
    let objects = vault.objects();
    let mut head_manifest = None;
    let mut seen = HashSet::new();
    let mut missing = HashSet::new();
    let mut souls = HashSet::new();
    let listed = match scope {
        ObjectScope::Head => Some(objects.list()?),
        ObjectScope::All => None,
    };
    // Checkpoints of the same soul share a manifest: check it once (the
    // head's is always read, for the verdict).
    let head_seq = head.map(|h| h.ckpt.seq);
    let targets = targets
        .into_iter()
        .filter(|s| souls.insert(s.ckpt.soul.as_str()) || Some(s.ckpt.seq) == head_seq);
    for s in targets {
        let Some(manifest) = read_manifest(&objects, s, found)? else {
            continue;
        };
        for e in manifest.entries.iter().filter(|e| e.kind != Kind::Dir) {
            if !seen.insert(e.hash) {
                continue;
            }
            let size = match &listed {
                // Wake: presence from directory listings (no stat per
                // object); sizes and content are verify's job.
                Some(present) => present.contains(&e.hash).then_some(e.size),
                None => objects.size_of(&e.hash)?,
            };
            let seq = s.ckpt.seq;
            match size {
                None if scope == ObjectScope::All && objects.present(&e.hash)? => found.push(
                    Detail::ObjectCorrupt,
                    format!(
                        "checkpoint {seq}: object for {} is not a regular file ({})",
                        e.path,
                        objects.locate(&e.hash).display()
                    ),
                ),
                None => {
                    missing.insert(e.hash);
                    found.push(
                        Detail::ObjectMissing,
                        format!("checkpoint {seq}: object for {} is missing", e.path),
                    )
                }
                Some(size) if size != e.size => found.push(
                    Detail::ObjectCorrupt,
                    format!("checkpoint {seq}: object for {} has the wrong size", e.path),
                ),
                Some(_) => {}
            }
        }
        if head_seq == Some(s.ckpt.seq) {
            head_manifest = Some(manifest);
        }
    }
    Ok((head_manifest, missing))
}

/// The manifest checkpoint `s` names; `None` (and a problem) when it is
/// missing or invalid.
fn read_manifest(
    objects: &Objects,
    s: &StoredCheckpoint,
    found: &mut Found,
) -> Result<Option<Manifest>> {
    let mut soul = [0u8; 32];
    hex::decode_to_slice(&s.ckpt.soul, &mut soul).expect("checkpoint soul is hex");
    let seq = s.ckpt.seq;
    match objects.read(&soul) {
        Ok(bytes) => match Manifest::parse(&bytes) {
            Ok(m) => return Ok(Some(m)),
            Err(e) => found.push(
                Detail::ObjectCorrupt,
                format!("checkpoint {seq}: manifest object is invalid: {e}"),
            ),
        },
        Err(Error::ObjectMissing { hash }) => found.push(
            Detail::ObjectMissing,
            format!("checkpoint {seq}: manifest object {hash} is missing"),
        ),
        Err(e) => {
            let m = damage(e)?;
            found.push(
                Detail::ObjectCorrupt,
                format!("checkpoint {seq}: manifest {m}"),
            );
        }
    }
    Ok(None)
}

/// How many times a reader without the lock runs the checks before it
/// waits for the writer instead (see [`inspect_consistent`]).
const SNAPSHOT_TRIES: u32 = 5;

/// What a writer changes, as a reader sees it: HEAD's bytes, the names in
/// `checkpoints/` and the identity, size and mtime of `history.jsonl`.
/// Writers only add checkpoints, move HEAD forward and append to (or, on a
/// repair, replace) the history, so two equal generations mean no writer
/// wrote in between.
#[derive(Debug, PartialEq, Eq)]
struct Generation {
    head: Option<Vec<u8>>,
    checkpoints: Vec<std::ffi::OsString>,
    history: Option<(u64, u64, u64, i64, i64)>,
}

fn generation(vault: &Vault) -> Generation {
    use std::os::unix::fs::MetadataExt;
    let head = read::read_capped(&vault.dir().join("HEAD"), 64)
        .ok()
        .flatten();
    let mut checkpoints: Vec<std::ffi::OsString> = std::fs::read_dir(vault.checkpoints_dir())
        .map(|items| items.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    checkpoints.sort();
    let history = std::fs::symlink_metadata(vault.history().path())
        .ok()
        .map(|m| (m.dev(), m.ino(), m.len(), m.mtime(), m.mtime_nsec()));
    Generation {
        head,
        checkpoints,
        history,
    }
}

/// [`inspect`] for a reader that holds no lock (`verify`, `status`) while
/// writers may be sealing: a check that finds a problem counts only if no
/// writer wrote while it ran (same HEAD, checkpoints and history before
/// and after); otherwise it runs again, a few times, and then once more
/// under a shared vault lock, which waits for the writer to finish (up to
/// the lock wait) and keeps the next one out until the checks are done.
/// So a seal in progress is never taken for damage.
pub fn inspect_consistent(
    vault: &Vault,
    cred: &Credential,
    scope: ObjectScope,
) -> Result<Inspection> {
    for attempt in 0..SNAPSHOT_TRIES {
        let before = generation(vault);
        let insp = inspect(vault, cred, scope)?;
        if insp.problems.is_empty() || generation(vault) == before {
            return Ok(insp);
        }
        std::thread::sleep(std::time::Duration::from_millis(10 << attempt));
    }
    let _shared = vault.lock_shared()?;
    inspect(vault, cred, scope)
}

/// A `config-changed` problem when `config.toml` (as `vault` read it)
/// differs from the config `head` was sealed with; `None` when it matches or
/// `head` records no config.
pub fn config_problem(vault: &Vault, head: &StoredCheckpoint) -> Option<Problem> {
    let sealed = head.ckpt.config()?;
    if sealed == vault.config_hash() {
        return None;
    }
    let mut hash = [0u8; 32];
    let saved = (hex::decode_to_slice(sealed, &mut hash).is_ok()
        && matches!(vault.objects().size_of(&hash), Ok(Some(_))))
    .then(|| vault.objects().locate(&hash));
    Some(Problem {
        detail: Detail::ConfigChanged,
        message: format!("config.toml changed since checkpoint {}", head.ckpt.seq),
        advice: Some(Advice::AdoptConfig { saved }),
    })
}
