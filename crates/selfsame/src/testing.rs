//! Internals for tests, with the `test-hooks` feature only (the crates'
//! tests enable it through their dev-dependencies; a release build has no
//! such module). Tests forge checkpoints, history lines and journals, read
//! the stat cache and stage manifests by hand: the scenes the public API is
//! made to refuse.

use std::path::PathBuf;

pub use crate::crypto::identity::{check_signature, signed_message, SignatureCheck};
pub use crate::crypto::keys::{checkpoint_key, history_key};
pub use crate::crypto::{sha256, sha256_hex, IdentityKey, Keys, WrapKey};
pub use crate::format::checkpoint::{
    Checkpoint, Draft, Header, CONFIG, STANDARD_FIELDS, UNSIGNED_FIELDS,
};
pub use crate::format::excludes::Excludes;
pub use crate::format::history::signed_body;
pub use crate::format::identity::{display_public, encode_b64url, IdentityFile};
pub use crate::format::manifest::Version as ManifestVersion;
pub use crate::format::{Entry, HistoryLine, Kind, Manifest};
pub use crate::ops::head::{current_head, manifest_of};
pub use crate::ops::swap::tree::stage;
pub use crate::settings::FAILPOINT_EXIT;
pub use crate::soul::statcache::StatCache;
pub use crate::soul::{changes, fingerprint, fingerprint_until, Scan};
pub use crate::supervise::boot::{decide, Decision, State};
pub use crate::vault::{History, HistoryWriter, Objects, StoredCheckpoint};

use crate::crypto::Credential;
use crate::error::Result;

use crate::vault::Vault;

/// The newest checkpoint marked good by a healthy run, else the head.
pub fn last_good(
    vault: &Vault,
    cred: &Credential,
    head: &StoredCheckpoint,
) -> Result<StoredCheckpoint> {
    crate::ops::restore::last_good(vault, cred, head)
}

/// The vault's identity key, opened with `cred` (the one its head names,
/// if it names one); `None` when it has none.
pub fn identity_key(vault: &Vault, cred: &Credential) -> Result<Option<IdentityKey>> {
    let head = match vault.checkpoint_seqs()?.last() {
        Some(&seq) => Some(vault.read_checkpoint(seq)?),
        None => None,
    };
    vault.identity_for(Keys::of(cred).wrap(), head.as_ref(), false)
}

/// The vault's files, for tests: the same names as the crate's own
/// methods (`use selfsame::testing::VaultFiles` and call them as before).
pub trait VaultFiles {
    /// Reads checkpoint `seq`.
    fn read_checkpoint(&self, seq: u64) -> Result<StoredCheckpoint>;
    /// The seqs in `checkpoints/`, ascending.
    fn checkpoint_seqs(&self) -> Result<Vec<u64>>;
    /// The path of checkpoint `seq`.
    fn checkpoint_path(&self, seq: u64) -> PathBuf;
    /// Writes a checkpoint, create-only; returns its file hash.
    fn write_checkpoint(&self, ckpt: &Checkpoint) -> Result<String>;
    /// The seq HEAD names.
    fn read_head(&self) -> Result<Option<u64>>;
    /// Points HEAD at `seq`.
    fn write_head(&self, seq: u64) -> Result<()>;
    /// The object store.
    fn objects(&self) -> Objects;
    /// The history, for reading.
    fn history(&self) -> History;
    /// The history, for appending lines signed with `keys`.
    fn history_for(&self, keys: &Keys) -> HistoryWriter;
    /// `run/`.
    fn run_dir(&self) -> PathBuf;
    /// Hex SHA-256 of `config.toml` as read.
    fn config_hash(&self) -> String;
    /// The paths inside the soul that are not part of it.
    fn skip_paths(&self) -> Vec<PathBuf>;
    /// The compiled excludes.
    fn excludes(&self) -> Result<Excludes>;
}

impl VaultFiles for Vault {
    fn read_checkpoint(&self, seq: u64) -> Result<StoredCheckpoint> {
        Vault::read_checkpoint(self, seq)
    }
    fn checkpoint_seqs(&self) -> Result<Vec<u64>> {
        Vault::checkpoint_seqs(self)
    }
    fn checkpoint_path(&self, seq: u64) -> PathBuf {
        Vault::checkpoint_path(self, seq)
    }
    fn write_checkpoint(&self, ckpt: &Checkpoint) -> Result<String> {
        Vault::write_checkpoint(self, ckpt)
    }
    fn read_head(&self) -> Result<Option<u64>> {
        Vault::read_head(self)
    }
    fn write_head(&self, seq: u64) -> Result<()> {
        Vault::write_head(self, seq)
    }
    fn objects(&self) -> Objects {
        Vault::objects(self)
    }
    fn history(&self) -> History {
        Vault::history(self)
    }
    fn history_for(&self, keys: &Keys) -> HistoryWriter {
        Vault::history_for(self, keys)
    }
    fn run_dir(&self) -> PathBuf {
        Vault::run_dir(self)
    }
    fn config_hash(&self) -> String {
        Vault::config_hash(self)
    }
    fn skip_paths(&self) -> Vec<PathBuf> {
        Vault::skip_paths(self)
    }
    fn excludes(&self) -> Result<Excludes> {
        Vault::excludes(self)
    }
}

pub use crate::vault::store::memory::{Fault, MemoryStore};
pub use crate::vault::store::{EntryWriter, LocalStore, Name, NameKind, Store};

/// This vault keeping its objects in `store` instead of `objects/` (the
/// in-memory store of a fault-injection test).
pub fn with_store(vault: Vault, store: std::sync::Arc<dyn Store>) -> Vault {
    vault.with_store(store)
}

/// Checks that the S3 server at `endpoint` honours conditional writes the
/// way the remote witness needs, through the client selfsame uses: a
/// second create-only PUT must fail, a compare-and-swap with the current
/// ETag must succeed and one with a stale ETag must fail. A server that
/// ignores the headers would make tests pass that should fail.
#[cfg(feature = "remote")]
pub fn s3_self_check(endpoint: &str, bucket: &str) -> std::result::Result<(), String> {
    use crate::format::location::Location;
    use crate::remote::s3::{AwsCredentials, Client, Condition, Put};
    let location = Location::parse(&format!("s3://{bucket}/self-check"), Some(endpoint), None)?;
    let creds = AwsCredentials::new("testing".into(), "testing".into(), None);
    let client = Client::new(location.clone(), creds);
    let key = location.key("probe");
    let e = |e: crate::remote::s3::S3Error| e.to_string();
    let first = match client.put(&key, b"one", Condition::Absent).map_err(e)? {
        Put::Written(etag) => etag,
        Put::ConditionFailed => return Err("the first create-only PUT failed".into()),
    };
    if client.put(&key, b"two", Condition::Absent).map_err(e)? != Put::ConditionFailed {
        return Err("a second create-only PUT (If-None-Match: *) succeeded".into());
    }
    let second = match client
        .put(&key, b"three", Condition::Matches(&first))
        .map_err(e)?
    {
        Put::Written(etag) => etag,
        Put::ConditionFailed => {
            return Err("a compare-and-swap with the current ETag failed".into())
        }
    };
    if client
        .put(&key, b"four", Condition::Matches(&first))
        .map_err(e)?
        != Put::ConditionFailed
    {
        return Err("a compare-and-swap with a stale ETag (If-Match) succeeded".into());
    }
    match client.get(&key).map_err(e)? {
        Some((body, etag)) if body == b"three" && etag == second => Ok(()),
        _ => Err("the object is not what the last successful PUT wrote".into()),
    }
}

/// Moves the content `hash` out of its pack into a loose object (the form
/// of a vault from before packs, and of the config a checkpoint binds) and
/// returns its path: for tests that damage an object by hand.
pub fn loose_object(vault: &Vault, hash: &[u8; 32]) -> Result<PathBuf> {
    vault.objects().loosen(hash)
}

/// Where the content `hash` is stored: its loose name, or its pack.
pub fn object_location(vault: &Vault, hash: &[u8; 32]) -> PathBuf {
    vault.objects().locate(hash)
}

/// How many packs this vault value knows the index of (from the packs or
/// the pack index cache): what it has read of the store's indexes.
pub fn packs_known(vault: &Vault) -> usize {
    vault.objects().packs_known()
}

/// How many pack indexes this vault value read from packs rather than the
/// pack index cache.
pub fn indexes_read(vault: &Vault) -> u64 {
    vault.objects().indexes_read()
}
