//! Push: send the remote replica what it lacks — objects, then checkpoints
//! with their history lines (create-only), then the remote `HEAD` by
//! compare-and-swap — and the witness comparison wake and status share
//! (docs/REMOTE.md).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::Serialize;

use super::checks::{inspect, Inspection, ObjectScope};
use super::head::manifest_of;
use crate::crypto::{Credential, Keys};
use crate::error::{Error, RemoteProblem, Result};
use crate::format::Kind;
use crate::progress::{Phase, Progress, Silent};
use crate::remote::{CheckpointRecord, Packed, Remote, RemoteHead};
use crate::vault::history::Line;
use crate::vault::{StoredCheckpoint, Vault};

pub use crate::remote::{Access, AwsCredentials};

/// How many uploads run at once.
const PARALLEL: usize = 8;
/// Objects from this size on are sent on their own (`o/`); smaller ones
/// go into packs (`p/`), each closed once it holds this much.
const PACK_TARGET: u64 = 8 << 20;

/// What a push did.
#[derive(Debug, Clone, Serialize)]
pub struct PushReport {
    /// `s3://BUCKET/PREFIX`.
    pub url: String,
    /// The remote head before the push (`None`: an empty remote).
    pub remote_before: Option<u64>,
    /// The remote head after it: the local head.
    pub head: u64,
    /// Checkpoints sent.
    pub checkpoints: u64,
    /// Objects sent (those the remote had are not counted).
    pub objects: u64,
    /// Plaintext bytes of the objects sent.
    pub bytes: u64,
}

/// How the local vault stands against the remote witness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "standing")]
pub enum Standing {
    /// The same head.
    Same,
    /// The local vault has checkpoints the remote lacks.
    Ahead {
        /// The remote's head, `None` when nothing was pushed yet.
        remote: Option<u64>,
        /// How many checkpoints the remote lacks.
        behind: u64,
    },
    /// The remote has checkpoints this vault lacks: an older vault was put
    /// back, or the newest records were cut (`rolled-back`).
    Behind {
        /// The remote's head.
        remote: u64,
    },
    /// The remote holds another checkpoint under a seq this vault also has
    /// (`forked`).
    Forked {
        /// The first such seq found.
        seq: u64,
    },
}

/// Pushes with no progress reporting.
pub fn push(vault: &Vault, cred: &Credential, access: &Access) -> Result<PushReport> {
    push_with_progress(vault, cred, access, &Silent)
}

/// Pushes: what the remote lacks goes up; refused (nothing moves the
/// remote head) when the remote is ahead of the vault or forked from it.
/// Holds the vault lock only while it reads the vault.
pub fn push_with_progress(
    vault: &Vault,
    cred: &Credential,
    access: &Access,
    progress: &dyn Progress,
) -> Result<PushReport> {
    let local = vault.remote_keyring(cred, false)?;
    let remote = Remote::open(access, cred, local.as_ref(), true)?;
    vault.failpoint("push-after-key");
    let rhead = remote.head()?;
    let plan = {
        let _lock = vault.lock()?;
        vault.save_remote_keyring(remote.keyring(), cred)?;
        plan(vault, cred, &remote, rhead.as_ref())?
    };
    send(vault, &remote, plan, progress)
}

/// Makes sure the vault holds a copy of the remote's keys that opens
/// under `cred`, reading the remote (and writing nothing there) when it
/// has none — what a rekey or a bind needs first (docs/REMOTE.md, "Rekey
/// and bind"). Whether the vault has a copy now: `false` when the remote
/// holds no vault yet. Takes the vault lock.
pub fn keep_remote_keys(vault: &Vault, cred: &Credential, access: &Access) -> Result<bool> {
    let _lock = vault.lock()?;
    if vault.remote_keyring(cred, true)?.is_some() {
        return Ok(true);
    }
    match Remote::open(access, cred, None, false) {
        Ok(remote) => {
            vault.save_remote_keyring(remote.keyring(), cred)?;
            Ok(true)
        }
        Err(Error::Remote {
            problem: RemoteProblem::Empty,
            ..
        }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Pushes while the caller holds the vault lock (wake), to an open remote
/// whose head it read.
pub(crate) fn push_locked(
    vault: &Vault,
    cred: &Credential,
    remote: &Remote,
    rhead: Option<&RemoteHead>,
    progress: &dyn Progress,
) -> Result<PushReport> {
    let plan = plan(vault, cred, remote, rhead)?;
    send(vault, remote, plan, progress)
}

/// How `local` (verified checkpoints, ascending) stands against the
/// remote head.
pub(crate) fn standing(
    remote: &Remote,
    local: &[StoredCheckpoint],
    rhead: Option<&RemoteHead>,
) -> Result<Standing> {
    let Some(head) = local.last() else {
        return Ok(match rhead {
            Some(r) => Standing::Behind { remote: r.seq },
            None => Standing::Same,
        });
    };
    let Some(r) = rhead else {
        return Ok(Standing::Ahead {
            remote: None,
            behind: local.len() as u64,
        });
    };
    let seq = head.ckpt.seq;
    if r.seq > seq {
        // Behind, unless the remote's checkpoint at our head is another.
        let theirs = remote.checkpoint(seq)?.ok_or_else(|| Error::Remote {
            url: remote.url().to_owned(),
            problem: RemoteProblem::Damaged(format!(
                "HEAD names checkpoint {} but checkpoint {seq} is missing",
                r.seq
            )),
        })?;
        return Ok(if theirs.checkpoint == head.ckpt.to_bytes() {
            Standing::Behind { remote: r.seq }
        } else {
            Standing::Forked { seq }
        });
    }
    let ours = local.iter().find(|s| s.ckpt.seq == r.seq);
    Ok(match ours {
        Some(s) if s.file_hash == r.checkpoint && r.seq == seq => Standing::Same,
        Some(s) if s.file_hash == r.checkpoint => Standing::Ahead {
            remote: Some(r.seq),
            behind: local.iter().filter(|s| s.ckpt.seq > r.seq).count() as u64,
        },
        _ => Standing::Forked { seq: r.seq },
    })
}

/// What a push sends, read from the vault under its lock.
struct Plan {
    remote_before: Option<RemoteHead>,
    head: StoredCheckpoint,
    records: Vec<(u64, CheckpointRecord)>,
    /// Objects with their sizes, in a stable order; whether each is a
    /// manifest or a sealed config (packed apart from the contents, so
    /// that a clone reads them without the contents).
    objects: Vec<([u8; 32], u64, bool)>,
}

fn plan(
    vault: &Vault,
    cred: &Credential,
    remote: &Remote,
    rhead: Option<&RemoteHead>,
) -> Result<Plan> {
    let insp = inspect(vault, cred, ObjectScope::Head)?;
    if let Some(p) = insp.problems.first() {
        return Err(Error::Remote {
            url: remote.url().to_owned(),
            problem: RemoteProblem::LocalDamaged(p.message.clone()),
        });
    }
    let head = insp.head.clone().expect("no problems implies a head");
    let from = match standing(remote, &insp.checkpoints, rhead)? {
        Standing::Same | Standing::Ahead { .. } => rhead.map_or(0, |r| r.seq),
        Standing::Behind { remote: r } => {
            return Err(Error::Remote {
                url: remote.url().to_owned(),
                problem: RemoteProblem::Ahead {
                    local: head.ckpt.seq,
                    remote: r,
                },
            })
        }
        Standing::Forked { seq } => {
            return Err(Error::Remote {
                url: remote.url().to_owned(),
                problem: RemoteProblem::Forked { seq },
            })
        }
    };
    // The identity sealed for this token: a rekey or a bind stopped after
    // its checkpoint left it pending, and it is put in place now.
    vault.signing_identity(Keys::of(cred).wrap(), Some(&head))?;
    let identity = vault
        .read_identity()?
        .map(|f| f.to_bytes())
        .unwrap_or_default();
    let records = records(&insp, from, &identity);
    let objects = objects_to_send(vault, &insp, from)?;
    Ok(Plan {
        remote_before: rhead.cloned(),
        head,
        records,
        objects,
    })
}

/// The checkpoints after `from`, each with the history lines after the
/// previous checkpoint's anchor up to its own, and the identity file.
fn records(insp: &Inspection, from: u64, identity: &[u8]) -> Vec<(u64, CheckpointRecord)> {
    let at: HashMap<&str, usize> = insp
        .history
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| (l.hash.as_str(), i + 1))
        .collect();
    let end_of = |s: &StoredCheckpoint| at.get(s.ckpt.log.as_str()).copied().unwrap_or(0);
    let mut out = Vec::new();
    let mut start = 0;
    for s in &insp.checkpoints {
        let end = end_of(s).max(start);
        if s.ckpt.seq > from {
            let lines: &[Line] = &insp.history.lines[start..end];
            let mut history = Vec::new();
            for l in lines {
                history.extend_from_slice(l.raw.as_bytes());
                history.push(b'\n');
            }
            out.push((
                s.ckpt.seq,
                CheckpointRecord {
                    checkpoint: s.ckpt.to_bytes(),
                    history,
                    identity: identity.to_vec(),
                    packs: Vec::new(),
                },
            ));
        }
        start = end;
    }
    out
}

/// The objects of the checkpoints after `from` — manifests, their
/// entries' contents, the sealed configs — less those of checkpoint
/// `from`, which the remote has.
fn objects_to_send(
    vault: &Vault,
    insp: &Inspection,
    from: u64,
) -> Result<Vec<([u8; 32], u64, bool)>> {
    let objects = vault.objects();
    let hash_of = |hex_hash: &str| {
        let mut h = [0u8; 32];
        hex::decode_to_slice(hex_hash, &mut h).ok().map(|()| h)
    };
    // The sealed config of a checkpoint, when stored.
    let config = |s: &StoredCheckpoint| -> Result<Option<([u8; 32], u64, bool)>> {
        let Some(h) = s.ckpt.config().and_then(hash_of) else {
            return Ok(None);
        };
        Ok(objects.size_of(&h)?.map(|size| (h, size, true)))
    };
    // A checkpoint's manifest and the contents it lists.
    let soul = |s: &StoredCheckpoint| -> Result<Vec<([u8; 32], u64, bool)>> {
        let manifest = manifest_of(vault, s)?;
        let h = hash_of(&s.ckpt.soul).expect("checkpoint soul is hex");
        let mut out = vec![(h, objects.size_of(&h)?.unwrap_or(0), true)];
        out.extend(
            manifest
                .entries
                .iter()
                .filter(|e| e.kind != Kind::Dir)
                .map(|e| (e.hash, e.size, false)),
        );
        Ok(out)
    };
    // A snapshot released by retention has no objects to send.
    let kept = |s: &&StoredCheckpoint| !insp.forgotten.contains_key(&s.ckpt.seq);
    let mut sent: HashSet<[u8; 32]> = HashSet::new();
    if let Some(base) = insp
        .checkpoints
        .iter()
        .filter(kept)
        .find(|s| s.ckpt.seq == from)
    {
        sent.extend(soul(base)?.into_iter().map(|(h, _, _)| h));
        sent.extend(config(base)?.map(|(h, _, _)| h));
    }
    let mut out = Vec::new();
    let mut souls = HashSet::new();
    for s in insp
        .checkpoints
        .iter()
        .filter(kept)
        .filter(|s| s.ckpt.seq > from)
    {
        let mut these: Vec<_> = config(s)?.into_iter().collect();
        if souls.insert(s.ckpt.soul.clone()) {
            these.extend(soul(s)?);
        }
        for (h, size, meta) in these {
            if sent.insert(h) {
                out.push((h, size, meta));
            }
        }
    }
    Ok(out)
}

/// What one upload sends: an object on its own, or a pack of several.
enum Unit {
    Alone([u8; 32], u64),
    Pack(Vec<([u8; 32], u64)>),
}

/// Cuts the objects into uploads: manifests and configs packed apart
/// from the contents; an object of `PACK_TARGET` or more alone.
fn units(objects: &[([u8; 32], u64, bool)]) -> Vec<Unit> {
    let mut out = Vec::new();
    for meta in [true, false] {
        let (mut pack, mut size) = (Vec::new(), 0);
        for &(hash, len, _) in objects.iter().filter(|o| o.2 == meta) {
            if len >= PACK_TARGET {
                out.push(Unit::Alone(hash, len));
                continue;
            }
            pack.push((hash, len));
            size += len;
            if size >= PACK_TARGET {
                out.push(Unit::Pack(std::mem::take(&mut pack)));
                size = 0;
            }
        }
        if !pack.is_empty() {
            out.push(Unit::Pack(pack));
        }
    }
    out
}

/// The uploads of one push, done by several threads: what they sent,
/// and where the packed objects are.
struct Uploads<'a> {
    remote: &'a Remote,
    objects: crate::vault::objects::Objects,
    progress: &'a dyn Progress,
    sent: AtomicU64,
    bytes: AtomicU64,
    index: Mutex<Vec<Packed>>,
}

impl Uploads<'_> {
    /// Appends object `hash` (`size` bytes) from the vault to `data`.
    fn read(&self, hash: &[u8; 32], size: u64, data: &mut Vec<u8>) -> Result<()> {
        self.objects.stream(hash, size, &mut |piece| {
            data.extend_from_slice(piece);
            Ok(())
        })?;
        Ok(())
    }

    fn counted(&self, objects: u64, bytes: u64) {
        self.sent.fetch_add(objects, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn upload(&self, unit: &Unit) -> Result<()> {
        match unit {
            Unit::Alone(hash, size) => {
                let mut data = Vec::with_capacity(*size as usize);
                self.read(hash, *size, &mut data)?;
                if self.remote.put_object(hash, &data)? {
                    self.counted(1, *size);
                }
                self.progress.advance(*size);
            }
            Unit::Pack(members) => {
                let len: u64 = members.iter().map(|m| m.1).sum();
                let mut data = Vec::with_capacity(len as usize);
                let mut places = Vec::with_capacity(members.len());
                for (hash, size) in members {
                    let offset = data.len() as u64;
                    self.read(hash, *size, &mut data)?;
                    places.push((*hash, offset, data.len() as u64 - offset));
                }
                let (pack, written) = self.remote.put_pack(&data)?;
                if written {
                    self.counted(members.len() as u64, len);
                }
                let placed = places.into_iter().map(|(object, offset, len)| Packed {
                    pack: pack.clone(),
                    object,
                    offset,
                    len,
                });
                self.index.lock().expect("not poisoned").extend(placed);
                self.progress.advance(len);
            }
        }
        Ok(())
    }

    /// Does every upload, `PARALLEL` at a time; the first failure stops
    /// them.
    fn run(&self, units: &[Unit]) -> Result<()> {
        let next = AtomicUsize::new(0);
        let failure: Mutex<Option<Error>> = Mutex::new(None);
        std::thread::scope(|threads| {
            for _ in 0..PARALLEL.min(units.len()) {
                threads.spawn(|| {
                    while let Some(unit) = units.get(next.fetch_add(1, Ordering::Relaxed)) {
                        if failure.lock().expect("not poisoned").is_some() {
                            break;
                        }
                        if let Err(e) = self.upload(unit) {
                            failure.lock().expect("not poisoned").get_or_insert(e);
                            break;
                        }
                    }
                });
            }
        });
        match failure.into_inner().expect("not poisoned") {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Sends a plan: objects (in parallel, most of them in packs), then the
/// checkpoints in order, the last one with the pack index, then HEAD.
fn send(
    vault: &Vault,
    remote: &Remote,
    mut plan: Plan,
    progress: &dyn Progress,
) -> Result<PushReport> {
    let total: u64 = plan.objects.iter().map(|o| o.1).sum();
    progress.start(Phase::Upload, plan.objects.len() as u64, total);
    let uploads = Uploads {
        remote,
        objects: vault.objects(),
        progress,
        sent: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        index: Mutex::new(Vec::new()),
    };
    let done = uploads.run(&units(&plan.objects));
    progress.finish();
    done?;
    let mut index = uploads.index.into_inner().expect("not poisoned");
    index.sort_by(|a, b| (&a.pack, a.offset).cmp(&(&b.pack, b.offset)));
    if let Some((_, last)) = plan.records.last_mut() {
        last.packs = index;
    }
    for (seq, record) in &plan.records {
        if !remote.put_checkpoint(*seq, record)? {
            // Already there: the same one (a push cut short before HEAD
            // moved), or another vault's (a fork).
            let theirs = remote.checkpoint(*seq)?;
            if theirs.as_ref().map(|t| &t.checkpoint) != Some(&record.checkpoint) {
                return Err(Error::Remote {
                    url: remote.url().to_owned(),
                    problem: RemoteProblem::Forked { seq: *seq },
                });
            }
        }
    }
    move_head(remote, &plan)?;
    Ok(PushReport {
        url: remote.url().to_owned(),
        remote_before: plan.remote_before.as_ref().map(|r| r.seq),
        head: plan.head.ckpt.seq,
        checkpoints: plan.records.len() as u64,
        objects: uploads.sent.into_inner(),
        bytes: uploads.bytes.into_inner(),
    })
}

/// Moves the remote HEAD to the plan's head by compare-and-swap. When
/// another writer moved it first, reads it again: at or past ours with
/// our checkpoint is fine; behind ours is tried again (a few times).
fn move_head(remote: &Remote, plan: &Plan) -> Result<()> {
    let (seq, hash) = (plan.head.ckpt.seq, plan.head.file_hash.as_str());
    let mut expected = plan.remote_before.clone();
    for _ in 0..4 {
        if expected
            .as_ref()
            .is_some_and(|r| r.seq == seq && r.checkpoint == hash)
        {
            return Ok(());
        }
        if remote.swap_head(seq, hash, expected.as_ref())? {
            return Ok(());
        }
        expected = remote.head()?;
        match &expected {
            Some(r) if r.seq > seq => return Ok(()),
            Some(r) if r.seq == seq && r.checkpoint != hash => {
                return Err(Error::Remote {
                    url: remote.url().to_owned(),
                    problem: RemoteProblem::Forked { seq },
                })
            }
            _ => {}
        }
    }
    Err(Error::Remote {
        url: remote.url().to_owned(),
        problem: RemoteProblem::Unreachable(
            "the remote HEAD kept changing under this push; try again".into(),
        ),
    })
}
