//! Clone: rebuild a vault and its soul on a new host from the remote
//! replica, verifying every record, checkpoint, MAC and object on the way
//! (docs/REMOTE.md). The agent wakes there `verified`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::Mutex;

use serde::Serialize;
use serde_json::Map;

use super::checks::{inspect, ObjectScope};
use super::swap::tree::stage;
use crate::crypto::{sha256, sha256_hex, Credential, Keys};
use crate::error::{Error, IoContext, RemoteProblem, Result};
use crate::format::checkpoint::Checkpoint;
use crate::format::{Kind, Manifest};
use crate::progress::{Phase, Progress, Silent};
use crate::remote::{Access, Packed, Remote};
use crate::vault::{atomic, Config, Vault};

/// How many downloads run at once.
const PARALLEL: usize = 8;

/// What a clone made.
#[derive(Debug, Clone, Serialize)]
pub struct CloneReport {
    /// `s3://BUCKET/PREFIX`.
    pub url: String,
    /// The new vault directory.
    pub vault: PathBuf,
    /// The soul directory, rebuilt as the head checkpoint records it.
    pub soul: PathBuf,
    /// The head checkpoint.
    pub head: u64,
    /// Objects fetched.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Clones with no progress reporting.
pub fn clone(access: &Access, cred: &Credential, base: &Path) -> Result<CloneReport> {
    clone_with_progress(access, cred, base, &Silent)
}

/// Clones the remote into `base` (made when missing): `.selfsame/` and
/// the soul where its config puts it. Refuses when either exists. Every
/// checkpoint must chain to the remote HEAD and verify under `cred`, and
/// every object must match its hash; the vault is renamed into place only
/// once all of it is there, and then passes the checks `verify` makes.
pub fn clone_with_progress(
    access: &Access,
    cred: &Credential,
    base: &Path,
    progress: &dyn Progress,
) -> Result<CloneReport> {
    let remote = Remote::open(access, cred, None, false)?;
    let damaged = |m: String| Error::Remote {
        url: remote.url().to_owned(),
        problem: RemoteProblem::Damaged(m),
    };
    let rhead = remote.head()?.ok_or_else(|| Error::Remote {
        url: remote.url().to_owned(),
        problem: RemoteProblem::Empty,
    })?;
    let (checkpoints, history, identity, index) =
        fetch_chain(&remote, cred, rhead.seq, &rhead.checkpoint)?;
    let fetcher = Fetcher {
        remote: &remote,
        index,
        packs: Mutex::new(HashMap::new()),
    };
    let head = checkpoints.last().expect("seq 1 to the head").clone();
    let config_hash = head
        .config()
        .ok_or_else(|| damaged(format!("checkpoint {} records no config", head.seq)))?;
    let (config_bytes, config) = sealed_config(&fetcher, config_hash, &damaged)?;
    std::fs::create_dir_all(base).at(base)?;
    let base = std::fs::canonicalize(base).at(base)?;
    let soul = soul_path(&base, &config);
    if crate::vault::read::present(&soul) {
        return Err(Error::Usage(format!(
            "{} already exists; clone into a directory without it",
            soul.display()
        )));
    }
    let (((objects, bytes), manifest), vault) = Vault::build(&base, &config_bytes, |vault| {
        let kept = kept_snapshots(&checkpoints, &history, &head, cred);
        let fetched = fetch_objects(&fetcher, vault, &kept, config_hash, progress)?;
        write_records(vault, &checkpoints, &history, &identity, head.seq, &damaged)?;
        vault.save_remote_keyring(remote.keyring(), cred)?;
        let manifest = super::head::manifest_of(vault, &vault.read_checkpoint(head.seq)?)?;
        Ok((fetched, manifest))
    })?;
    stage(&vault.objects(), &manifest, &soul, progress)?;
    let insp = inspect(&vault, cred, ObjectScope::All)?;
    if let Some(p) = insp.problems.first() {
        return Err(damaged(format!(
            "the cloned vault does not pass its checks: {}",
            p.message
        )));
    }
    let mut data = Map::new();
    data.insert("url".into(), remote.url().into());
    data.insert("seq".into(), head.seq.into());
    vault.history_for(&Keys::of(cred)).append("clone", data)?;
    Ok(CloneReport {
        url: remote.url().to_owned(),
        vault: vault.dir().to_owned(),
        soul,
        head: head.seq,
        objects,
        bytes,
    })
}

/// The config the head was sealed with, fetched from the remote and parsed.
fn sealed_config(
    fetcher: &Fetcher,
    hash: &str,
    damaged: &dyn Fn(String) -> Error,
) -> Result<(Vec<u8>, Config)> {
    let bytes = fetcher.object(hash)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| damaged("the sealed config is not UTF-8".into()))?;
    let config = Config::parse(text, Path::new("config.toml"))?;
    Ok((bytes, config))
}

/// The checkpoints whose snapshots the remote holds: all but those that
/// retention released (the history the checkpoints carry says which),
/// which were never sent. The head's is always kept.
fn kept_snapshots(
    checkpoints: &[Checkpoint],
    history: &[u8],
    head: &Checkpoint,
    cred: &Credential,
) -> Vec<Checkpoint> {
    let released = super::head::forgotten(
        &crate::vault::history::HistoryRead::parse(history),
        &head.log,
        &Keys::of(cred),
    );
    checkpoints
        .iter()
        .filter(|c| c.seq == head.seq || !released.contains_key(&c.seq))
        .cloned()
        .collect()
}

/// Writes the chain's records into the unpublished vault: every
/// checkpoint, the history, the identity file when there is one, HEAD.
fn write_records(
    vault: &Vault,
    checkpoints: &[Checkpoint],
    history: &[u8],
    identity: &[u8],
    head: u64,
    damaged: &dyn Fn(String) -> Error,
) -> Result<()> {
    for c in checkpoints {
        vault.write_checkpoint(c)?;
    }
    atomic::write_replace(vault.history().path(), history)?;
    if !identity.is_empty() {
        let file = crate::format::identity::IdentityFile::parse(identity)
            .map_err(|e| damaged(format!("the identity file: {e}")))?;
        vault.write_identity(&file)?;
    }
    vault.write_head(head)
}

/// Where the config puts the soul, beside `.selfsame/`.
fn soul_path(base: &Path, config: &Config) -> PathBuf {
    base.join(&config.soul)
}

/// Checkpoints 1 to `seq`: each chained to the one before, the last one
/// the remote HEAD's, every one verifying under the credential (or vouched
/// for by a later rekey that does); the history their records carry, and
/// the head record's identity file.
fn fetch_chain(remote: &Remote, cred: &Credential, seq: u64, head_hash: &str) -> Result<Chain> {
    let damaged = |m: String| Error::Remote {
        url: remote.url().to_owned(),
        problem: RemoteProblem::Damaged(m),
    };
    let mut checkpoints = Vec::new();
    let mut history = Vec::new();
    let mut prev = String::new();
    let mut identity = Vec::new();
    let mut index = HashMap::new();
    for n in 1..=seq {
        let record = remote
            .checkpoint(n)?
            .ok_or_else(|| damaged(format!("checkpoint {n} is missing")))?;
        let ckpt = Checkpoint::parse(&record.checkpoint)
            .map_err(|e| damaged(format!("checkpoint {n}: {e}")))?;
        if ckpt.seq != n || ckpt.prev != prev {
            return Err(damaged(format!(
                "checkpoint {n} does not chain to checkpoint {}",
                n - 1
            )));
        }
        prev = sha256_hex(&record.checkpoint);
        history.extend_from_slice(&record.history);
        identity = record.identity;
        for p in record.packs {
            index.entry(p.object).or_insert(p);
        }
        checkpoints.push(ckpt);
    }
    if prev != head_hash {
        return Err(damaged(format!(
            "checkpoint {seq} is not the one HEAD names"
        )));
    }
    // The head must verify under the token; the chain vouches for the
    // rest, which the checks of the finished vault go over again.
    let keys = Keys::of(cred);
    if !checkpoints.last().is_some_and(|c| keys.verifies(c)) {
        return Err(Error::Identity(crate::error::Mismatch::HeadUnverified(seq)));
    }
    Ok((checkpoints, history, identity, index))
}

/// The checkpoints, the history and the identity file the records carry,
/// and the union of their pack indexes.
type Chain = (Vec<Checkpoint>, Vec<u8>, Vec<u8>, HashMap<[u8; 32], Packed>);

/// Fetches objects: from their packs (the index the checkpoint records
/// carry) or on their own, each checked against its hash.
struct Fetcher<'a> {
    remote: &'a Remote,
    index: HashMap<[u8; 32], Packed>,
    /// The packs of the objects fetched one by one (manifests and
    /// configs, packed apart from the contents), kept for the next.
    packs: Mutex<HashMap<String, Arc<Vec<u8>>>>,
}

impl Fetcher<'_> {
    fn damaged(&self, m: String) -> Error {
        Error::Remote {
            url: self.remote.url().to_owned(),
            problem: RemoteProblem::Damaged(m),
        }
    }

    /// One object by its hex hash, checked.
    fn object(&self, hex_hash: &str) -> Result<Vec<u8>> {
        let mut hash = [0u8; 32];
        hex::decode_to_slice(hex_hash, &mut hash)
            .map_err(|_| self.damaged(format!("{hex_hash:?} is not a hash")))?;
        let Some(packed) = self.index.get(&hash) else {
            return self
                .remote
                .object(&hash)?
                .ok_or_else(|| self.damaged(format!("object {hex_hash} is missing")));
        };
        let cached = self
            .packs
            .lock()
            .expect("not poisoned")
            .get(&packed.pack)
            .cloned();
        let pack = match cached {
            Some(p) => p,
            None => {
                let p = Arc::new(self.pack(&packed.pack)?);
                self.packs
                    .lock()
                    .expect("not poisoned")
                    .insert(packed.pack.clone(), p.clone());
                p
            }
        };
        self.cut(&pack, packed)
    }

    /// The pack `name`, opened.
    fn pack(&self, name: &str) -> Result<Vec<u8>> {
        self.remote
            .pack(name)?
            .ok_or_else(|| self.damaged(format!("pack {name} is missing")))
    }

    /// An object out of its pack, checked against its hash.
    fn cut(&self, pack: &[u8], at: &Packed) -> Result<Vec<u8>> {
        let bytes = usize::try_from(at.offset)
            .ok()
            .zip(usize::try_from(at.offset + at.len).ok())
            .and_then(|(a, b)| pack.get(a..b))
            .filter(|b| sha256(b) == at.object)
            .ok_or_else(|| {
                self.damaged(format!(
                    "object {} is not where pack {} should hold it",
                    hex::encode(at.object),
                    at.pack
                ))
            })?;
        Ok(bytes.to_vec())
    }
}

/// What one download fetches: an object on its own, or the wanted
/// objects of one pack.
enum Unit<'a> {
    Alone([u8; 32]),
    Pack(&'a str, Vec<&'a Packed>),
}

/// Every object the checkpoints name — manifests, their entries, the
/// sealed configs — fetched (several at a time), checked and stored.
fn fetch_objects(
    fetcher: &Fetcher,
    vault: &Vault,
    checkpoints: &[Checkpoint],
    head_config: &str,
    progress: &dyn Progress,
) -> Result<(u64, u64)> {
    let objects = vault.objects().deferred()?;
    let wanted = wanted(fetcher, &objects, checkpoints, head_config)?;
    progress.start(Phase::Download, wanted.len() as u64, 0);
    // One download per pack (its wanted objects), or per object alone.
    let mut units = Vec::new();
    let mut packs: HashMap<&str, Vec<&Packed>> = HashMap::new();
    for hash in &wanted {
        match fetcher.index.get(hash) {
            Some(p) => packs.entry(p.pack.as_str()).or_default().push(p),
            None => units.push(Unit::Alone(*hash)),
        }
    }
    let mut packs: Vec<_> = packs.into_iter().collect();
    packs.sort_by_key(|(name, _)| *name);
    units.extend(
        packs
            .into_iter()
            .map(|(name, members)| Unit::Pack(name, members)),
    );
    let next = AtomicUsize::new(0);
    let count = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let store = |hash: &[u8; 32], data: &[u8]| -> Result<()> {
        objects.put(hash, data)?;
        count.fetch_add(1, Ordering::Relaxed);
        bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        progress.advance(data.len() as u64);
        Ok(())
    };
    let download = |unit: &Unit| -> Result<()> {
        match unit {
            Unit::Alone(hash) => store(hash, &fetcher.object(&hex::encode(hash))?),
            Unit::Pack(name, members) => {
                let cached = fetcher
                    .packs
                    .lock()
                    .expect("not poisoned")
                    .get(*name)
                    .cloned();
                let pack = match cached {
                    Some(p) => p,
                    None => Arc::new(fetcher.pack(name)?),
                };
                for at in members {
                    store(&at.object, &fetcher.cut(&pack, at)?)?;
                }
                Ok(())
            }
        }
    };
    std::thread::scope(|threads| {
        for _ in 0..PARALLEL.min(units.len()) {
            threads.spawn(|| {
                while let Some(unit) = units.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if failure.lock().expect("not poisoned").is_some() {
                        break;
                    }
                    if let Err(e) = download(unit) {
                        failure.lock().expect("not poisoned").get_or_insert(e);
                        break;
                    }
                }
            });
        }
    });
    progress.finish();
    if let Some(e) = failure.into_inner().expect("not poisoned") {
        return Err(e);
    }
    objects.sync()?;
    Ok((count.into_inner(), bytes.into_inner()))
}

/// The objects to fetch: the head's sealed config, every checkpoint's,
/// and every entry of every manifest — which are fetched and stored here
/// to read them.
fn wanted(
    fetcher: &Fetcher,
    objects: &crate::vault::objects::Objects,
    checkpoints: &[Checkpoint],
    head_config: &str,
) -> Result<Vec<[u8; 32]>> {
    let mut wanted: Vec<[u8; 32]> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut add = |hex_hash: &str, wanted: &mut Vec<[u8; 32]>| {
        let mut h = [0u8; 32];
        if hex::decode_to_slice(hex_hash, &mut h).is_ok() && seen.insert(h) {
            wanted.push(h);
        }
    };
    add(head_config, &mut wanted);
    let mut souls = std::collections::HashSet::new();
    for c in checkpoints {
        if let Some(config) = c.config() {
            add(config, &mut wanted);
        }
        if !souls.insert(c.soul.clone()) {
            continue;
        }
        let bytes = fetcher.object(&c.soul)?;
        let manifest = Manifest::parse(&bytes)
            .map_err(|e| fetcher.damaged(format!("checkpoint {}'s manifest: {e}", c.seq)))?;
        objects.put(&sha256(&bytes), &bytes)?;
        for e in manifest.entries.iter().filter(|e| e.kind != Kind::Dir) {
            add(&hex::encode(e.hash), &mut wanted);
        }
    }
    Ok(wanted)
}
