//! The vault checks shared by wake, status and verify, in DESIGN.md's
//! order: bot id, MACs, chain / HEAD / history, the head's objects.

use std::collections::{HashMap, HashSet};

use crate::crypto::Credential;
use serde::Serialize;

use crate::crypto::Keys;
use crate::error::{Damage, Error, Result};
use crate::format::{Kind, Manifest};
use crate::vault::history::HistoryRead;
use crate::vault::{read, StoredCheckpoint, Vault};
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
}

impl Inspection {
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

/// Runs the checks. Errors are I/O failures; findings are `problems`.
pub fn inspect(vault: &Vault, cred: &Credential, scope: ObjectScope) -> Result<Inspection> {
    let keys = Keys::of(cred);
    let mut problems: Vec<Problem> = Vec::new();
    let push = |problems: &mut Vec<Problem>, detail, message: String| {
        problems.push(Problem::new(detail, message))
    };

    if !vault.belongs_to(cred) {
        push(
            &mut problems,
            Detail::DifferentBot,
            format!(
                "the token is bot {}'s, but this vault belongs to bot {}",
                cred.account_id(),
                vault.config.bot_id
            ),
        );
    }

    // MACs.
    let listing = vault.list_checkpoints()?;
    let seqs = listing.seqs;
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
    for &seq in &seqs {
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
    let retired_at = bad
        .iter()
        .find(|s| keys.retired_by(&s.ckpt))
        .map(|s| s.ckpt.seq);
    // Checkpoints whose MAC fails say nothing trustworthy about the bot:
    // look at them only when none verifies (an edited `bot_id` in one
    // checkpoint is corruption, not another bot).
    let judged = if good.is_empty() { &bad } else { &good };
    if let Some(other) = judged.iter().find(|s| s.ckpt.bot_id != cred.account_id()) {
        push(
            &mut problems,
            Detail::DifferentBot,
            format!(
                "checkpoint {} is bound to bot {}, the token is bot {}'s",
                other.ckpt.seq,
                other.ckpt.bot_id,
                cred.account_id()
            ),
        );
    }
    if let Some(r) = retired_at {
        push(&mut problems,
            Detail::MacInvalid,
            format!(
                "this token was retired by the rekey at checkpoint {r} (token rotation): checkpoints from {r} on verify only under the new token; use the token that replaced it"
            ),
        );
    } else if good.is_empty() && !bad.is_empty() {
        problems.push(Problem {
            detail: Detail::MacInvalid,
            message: format!(
                "no checkpoint verifies under this token ({} checked): forged, or the token was rotated",
                bad.len()
            ),
            advice: Some(Advice::Rekey),
        });
    } else {
        for s in &bad {
            push(
                &mut problems,
                Detail::MacMismatch,
                format!(
                    "checkpoint {}: MAC does not verify (edited?)",
                    vault.checkpoint_path(s.ckpt.seq).display()
                ),
            );
        }
    }
    for m in unreadable {
        push(&mut problems, Detail::UnreadableCheckpoint, m);
    }

    // Chain, HEAD, history.
    let head_file = match vault.read_head() {
        Ok(h) => h,
        Err(e) => {
            push(&mut problems, Detail::ChainBroken, damage(e)?);
            None
        }
    };
    let newest = seqs.last().copied();
    if let (Some(h), n) = (head_file, newest) {
        if n.is_none_or(|n| h > n) {
            push(&mut problems,
                Detail::HeadAhead,
                format!(
                    "HEAD names checkpoint {h}, but the newest present is {}: checkpoints were removed or an older vault was put back",
                    n.map_or("none".into(), |n| n.to_string())
                ),
            );
        }
    }
    if seqs.is_empty() && head_file.is_none() {
        push(
            &mut problems,
            Detail::NoCheckpoint,
            "the vault has no checkpoint".into(),
        );
    }
    for (expected, &seq) in (1..).zip(seqs.iter()) {
        if seq != expected {
            push(
                &mut problems,
                Detail::ChainBroken,
                format!("checkpoint {expected} is missing (next present: {seq})"),
            );
            break;
        }
    }
    let by_seq: HashMap<u64, &StoredCheckpoint> = good
        .iter()
        .chain(bad.iter())
        .map(|s| (s.ckpt.seq, s))
        .collect();
    for s in good.iter() {
        if s.ckpt.seq > 1 {
            if let Some(prev) = by_seq.get(&(s.ckpt.seq - 1)) {
                if prev.file_hash != s.ckpt.prev {
                    push(
                        &mut problems,
                        Detail::ChainBroken,
                        format!(
                            "checkpoint {} does not chain to checkpoint {}",
                            s.ckpt.seq,
                            s.ckpt.seq - 1
                        ),
                    );
                }
            }
        }
    }
    let history = match vault.history().read_all() {
        Ok(h) => h,
        Err(e) => {
            push(&mut problems, Detail::HistoryBroken, damage(e)?);
            HistoryRead::default()
        }
    };
    for p in &history.problems {
        push(&mut problems, Detail::HistoryBroken, p.clone());
    }
    // History v2: the lines after the newest checkpoint's anchor must
    // carry a valid MAC (those before it are vouched for by the chain).
    let anchor = good.last().map_or("", |s| s.ckpt.log.as_str());
    for p in history.authenticate(anchor, &keys).forged {
        push(&mut problems, Detail::HistoryForged, p);
    }
    if let Some(n) = newest {
        if let Some(l) = history
            .lines
            .iter()
            .find(|l| l.event.event == "seal" && l.event.get_u64("seq").is_some_and(|s| s > n))
        {
            push(
                &mut problems,
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
    for s in &good {
        if !s.ckpt.log.is_empty() && !anchors.contains(s.ckpt.log.as_str()) {
            push(&mut problems,
                Detail::AnchorMissing,
                format!(
                    "checkpoint {} anchors a history line that is not in history.jsonl (history edited or replaced)",
                    s.ckpt.seq
                ),
            );
        }
    }

    // Objects.
    let head = good.last().cloned();
    let mut head_manifest = None;
    let targets: Vec<&StoredCheckpoint> = match scope {
        ObjectScope::Head => head.iter().collect(),
        ObjectScope::All => good.iter().collect(),
    };
    let objects = vault.objects();
    let mut seen = HashSet::new();
    let mut missing_objects = HashSet::new();
    let mut souls = HashSet::new();
    let listed = (scope == ObjectScope::Head).then(|| objects.list());
    // Checkpoints of the same soul share a manifest: check it once (the
    // head's is always read, for the verdict).
    let head_seq = head.as_ref().map(|h| h.ckpt.seq);
    let targets = targets
        .into_iter()
        .filter(|s| souls.insert(s.ckpt.soul.as_str()) || Some(s.ckpt.seq) == head_seq);
    for s in targets {
        let mut soul = [0u8; 32];
        hex::decode_to_slice(&s.ckpt.soul, &mut soul).expect("checkpoint soul is hex");
        let manifest = match objects.read(&soul) {
            Ok(bytes) => match Manifest::parse(&bytes) {
                Ok(m) => m,
                Err(e) => {
                    push(
                        &mut problems,
                        Detail::ObjectCorrupt,
                        format!("checkpoint {}: manifest object is invalid: {e}", s.ckpt.seq),
                    );
                    continue;
                }
            },
            Err(Error::ObjectMissing { hash: hex }) => {
                push(
                    &mut problems,
                    Detail::ObjectMissing,
                    format!(
                        "checkpoint {}: manifest object {hex} is missing",
                        s.ckpt.seq
                    ),
                );
                continue;
            }
            Err(e) => {
                let m = damage(e)?;
                push(
                    &mut problems,
                    Detail::ObjectCorrupt,
                    format!("checkpoint {}: manifest {m}", s.ckpt.seq),
                );
                continue;
            }
        };
        for e in manifest.entries.iter().filter(|e| e.kind != Kind::Dir) {
            if !seen.insert(e.hash) {
                continue;
            }
            let size = match &listed {
                // Wake: presence from directory listings (no stat per
                // object); sizes and content are verify's job.
                Some(present) => present.contains(&e.hash).then_some(e.size),
                None => objects.size_of(&e.hash),
            };
            match size {
                None if scope == ObjectScope::All && objects.present(&e.hash) => push(
                    &mut problems,
                    Detail::ObjectCorrupt,
                    format!(
                        "checkpoint {}: object for {} is not a regular file ({})",
                        s.ckpt.seq,
                        e.path,
                        objects.path(&e.hash).display()
                    ),
                ),
                None => {
                    missing_objects.insert(e.hash);
                    push(
                        &mut problems,
                        Detail::ObjectMissing,
                        format!(
                            "checkpoint {}: object for {} is missing",
                            s.ckpt.seq, e.path
                        ),
                    )
                }
                Some(size) if size != e.size => push(
                    &mut problems,
                    Detail::ObjectCorrupt,
                    format!(
                        "checkpoint {}: object for {} has the wrong size",
                        s.ckpt.seq, e.path
                    ),
                ),
                Some(_) => {}
            }
        }
        if head.as_ref().is_some_and(|h| h.ckpt.seq == s.ckpt.seq) {
            head_manifest = Some(manifest);
        }
    }

    // Quarantine: where restores move soul states; never followed out.
    if let Some(what) = vault.quarantine_problem() {
        let m = Damage::QuarantineInvalid(what).describe(&vault.quarantine_dir());
        push(&mut problems, Detail::QuarantineInvalid, m);
    }
    if let Some(e) = vault.marker_problem() {
        push(&mut problems, Detail::BadFile, damage(e)?);
    }

    // Config: the head binds the config.toml it was sealed with. A vault
    // written before the binding existed has no `config` field: not checked.
    if let Some(h) = &head {
        if let Some(problem) = config_problem(vault, h) {
            problems.push(problem);
        }
    }

    Ok(Inspection {
        keys,
        checkpoints: good,
        head,
        head_manifest,
        problems,
        head_file,
        history,
        vouched,
        vouched_by,
        retired_at,
        strays: listing.strays,
        missing_objects,
    })
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
        && vault.objects().size_of(&hash).is_some())
    .then(|| vault.objects().path(&hash));
    Some(Problem {
        detail: Detail::ConfigChanged,
        message: format!("config.toml changed since checkpoint {}", head.ckpt.seq),
        advice: Some(Advice::AdoptConfig { saved }),
    })
}
