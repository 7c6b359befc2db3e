//! The vault: `.selfsame/` beside the soul. Layout, checkpoints, HEAD, the
//! awake marker, locks and the restore journal.
//!
//! ```text
//! .selfsame/
//!   config.toml  format  objects/  checkpoints/00000042.ckpt  HEAD
//!   history.jsonl  run/  quarantine/
//! ```

pub mod atomic;
pub mod config;
pub mod history;
pub mod lock;
pub mod objects;
pub mod statcache;

use std::fs;
use std::path::{Path, PathBuf};

use selfsame_telegram::{Fields, SecretKey};

use crate::clock;
use crate::error::{Error, IoContext, Result};
use crate::format::checkpoint::Checkpoint;
use crate::soul::Excludes;
pub use config::Config;
pub use history::History;
pub use objects::Objects;

/// Name of the vault directory.
pub const DIR: &str = ".selfsame";
/// Vault format version, in the `format` file.
pub const FORMAT: &str = "1";

/// An open vault.
#[derive(Debug, Clone)]
pub struct Vault {
    dir: PathBuf,
    base: PathBuf,
    /// The parsed config.
    pub config: Config,
    /// The bytes of `config.toml` that `config` was parsed from.
    config_bytes: Vec<u8>,
}

/// A checkpoint as read from disk, with the hash of its file bytes.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The parsed checkpoint.
    pub ckpt: Checkpoint,
    /// Hex SHA-256 of the file bytes.
    pub file_hash: String,
}

impl Vault {
    /// Finds the vault: `explicit` (a `.selfsame` dir or its parent), else
    /// `SELFSAME_VAULT`, else `.selfsame/` in `start` or its parents.
    pub fn discover(start: &Path, explicit: Option<&Path>) -> Result<PathBuf> {
        let env = std::env::var_os("SELFSAME_VAULT").map(PathBuf::from);
        if let Some(p) = explicit.map(Path::to_path_buf).or(env) {
            let p = if p.is_absolute() { p } else { start.join(p) };
            if p.join("config.toml").is_file() {
                return Ok(p);
            }
            if p.join(DIR).join("config.toml").is_file() {
                return Ok(p.join(DIR));
            }
            return Err(Error::NoVault { start: p });
        }
        for dir in start.ancestors() {
            let candidate = dir.join(DIR);
            if candidate.join("config.toml").is_file() {
                return Ok(candidate);
            }
        }
        Err(Error::NoVault {
            start: start.to_owned(),
        })
    }

    /// Opens the vault directory `dir` (the `.selfsame` directory).
    pub fn open(dir: &Path) -> Result<Vault> {
        let dir = fs::canonicalize(dir).at(dir)?;
        let config_path = dir.join("config.toml");
        let text = fs::read_to_string(&config_path).at(&config_path)?;
        let config = Config::parse(&text, &config_path)?;
        let format_path = dir.join("format");
        match fs::read_to_string(&format_path) {
            Ok(f) if f.trim() == FORMAT => {}
            Ok(f) => {
                return Err(Error::Usage(format!(
                    "{}: vault format {:?} is not supported by this selfsame (reads {FORMAT}); upgrade selfsame",
                    format_path.display(),
                    f.trim()
                )))
            }
            Err(e) => return Err(e).at(&format_path),
        }
        let base = dir.parent().unwrap_or(Path::new("/")).to_owned();
        Ok(Vault {
            dir,
            base,
            config,
            config_bytes: text.into_bytes(),
        })
    }

    /// Creates a new vault directory under `base` with `config`.
    pub fn create(base: &Path, config: Config) -> Result<Vault> {
        let dir = base.join(DIR);
        if dir.exists() {
            return Err(Error::VaultExists(dir));
        }
        // Build it under a temp name, then rename, so a crash never leaves a
        // half-made vault that `init` would refuse.
        let tmp = base.join(format!(".selfsame-init-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        for sub in ["objects", "checkpoints", "run", "quarantine"] {
            fs::create_dir_all(tmp.join(sub)).at(&tmp.join(sub))?;
        }
        atomic::write_replace(&tmp.join("format"), format!("{FORMAT}\n").as_bytes())?;
        atomic::write_replace(&tmp.join("config.toml"), config.to_toml().as_bytes())?;
        atomic::sync_dir(&tmp)?;
        fs::rename(&tmp, &dir).at(&dir)?;
        atomic::sync_dir(base)?;
        Vault::open(&dir)
    }

    /// The `.selfsame` directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// This vault acting on `bytes` as its config instead of `config.toml`
    /// as read: the config a checkpoint vouches for (its `config` field).
    /// `origin` names the bytes in errors (the object they came from).
    pub fn with_config(&self, bytes: Vec<u8>, origin: &Path) -> Result<Vault> {
        let text = String::from_utf8(bytes).map_err(|_| Error::Config {
            path: origin.to_owned(),
            message: "not UTF-8".into(),
        })?;
        let config = Config::parse(&text, origin)?;
        Ok(Vault {
            dir: self.dir.clone(),
            base: self.base.clone(),
            config,
            config_bytes: text.into_bytes(),
        })
    }

    /// The directory holding `.selfsame`.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// The soul directory.
    pub fn soul(&self) -> PathBuf {
        self.base.join(&self.config.soul)
    }

    /// The config file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.toml")
    }

    /// The bytes of `config.toml` as this vault read them at open (the
    /// config this process acts on).
    pub fn config_bytes(&self) -> &[u8] {
        &self.config_bytes
    }

    /// Lowercase hex SHA-256 of [`Vault::config_bytes`]: what a checkpoint
    /// records in its `config` field, and what wake compares with it.
    pub fn config_hash(&self) -> String {
        crate::crypto::sha256_hex(&self.config_bytes)
    }

    /// The object store.
    pub fn objects(&self) -> Objects {
        Objects::new(self.dir.join("objects"))
    }

    /// The history log.
    pub fn history(&self) -> History {
        History::new(self.dir.join("history.jsonl"), self.run_dir())
    }

    /// `run/`.
    pub fn run_dir(&self) -> PathBuf {
        self.dir.join("run")
    }

    /// `quarantine/`.
    pub fn quarantine_dir(&self) -> PathBuf {
        self.dir.join("quarantine")
    }

    /// `quarantine/`, ready to move soul states into: a real directory
    /// inside the vault (made when absent). A symlink, or anything else that
    /// is not a directory, is damage ([`Error::Corrupt`]): a restore would
    /// move the soul wherever it leads.
    pub fn quarantine(&self) -> Result<PathBuf> {
        let dir = self.quarantine_dir();
        match fs::create_dir(&dir) {
            Ok(()) => atomic::sync_dir(&self.dir)?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).at(&dir),
        }
        match self.quarantine_problem() {
            Some(m) => Err(Error::Corrupt(m)),
            None => Ok(dir),
        }
    }

    /// What is wrong with `quarantine/`, if it is there and is not a real
    /// directory.
    pub fn quarantine_problem(&self) -> Option<String> {
        let dir = self.quarantine_dir();
        let meta = fs::symlink_metadata(&dir).ok()?;
        let what = if meta.file_type().is_symlink() {
            match fs::read_link(&dir) {
                Ok(t) => format!("a symlink to {}", t.display()),
                Err(_) => "a symlink".to_owned(),
            }
        } else if meta.is_dir() {
            return None;
        } else {
            "not a directory".to_owned()
        };
        Some(format!(
            "{} is {what}; restore, rollback and migrate move soul states there and never follow it out of the vault. Move it aside (check what it holds), make a directory in its place (`mkdir {}`), then run the command again",
            dir.display(),
            dir.display()
        ))
    }

    /// The compiled excludes.
    pub fn excludes(&self) -> Result<Excludes> {
        Excludes::new(&self.config.exclude).map_err(|message| Error::Config {
            path: self.config_path(),
            message,
        })
    }

    /// Paths inside the soul that are not part of it (the vault itself).
    pub fn skip_paths(&self) -> Vec<PathBuf> {
        let mut skip = vec![self.dir.clone()];
        if let Ok(soul) = fs::canonicalize(self.soul()) {
            if let Ok(rel) = self.dir.strip_prefix(&soul) {
                skip.push(self.soul().join(rel));
            }
        }
        skip
    }

    /// Takes the short vault lock that every mutation holds.
    pub fn lock(&self) -> Result<lock::Lock> {
        fs::create_dir_all(self.run_dir()).at(&self.run_dir())?;
        lock::acquire(
            &self.run_dir().join("lock"),
            lock::default_wait(),
            "the vault lock",
        )
    }

    // --- checkpoints -----------------------------------------------------

    fn checkpoints_dir(&self) -> PathBuf {
        self.dir.join("checkpoints")
    }

    /// The path of checkpoint `seq`.
    pub fn checkpoint_path(&self, seq: u64) -> PathBuf {
        self.checkpoints_dir().join(Checkpoint::file_name(seq))
    }

    /// The seqs present in `checkpoints/`, ascending. Files that are not
    /// `NNNNNNNN.ckpt` (temp files) are ignored.
    pub fn checkpoint_seqs(&self) -> Result<Vec<u64>> {
        let dir = self.checkpoints_dir();
        let mut seqs = Vec::new();
        for item in fs::read_dir(&dir).at(&dir)? {
            let name = item.at(&dir)?.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(num) = name.strip_suffix(".ckpt") {
                if num.len() >= 8 && num.bytes().all(|b| b.is_ascii_digit()) {
                    if let Ok(seq) = num.parse() {
                        seqs.push(seq);
                    }
                }
            }
        }
        seqs.sort_unstable();
        Ok(seqs)
    }

    /// Reads checkpoint `seq`. Unparseable files are [`Error::Corrupt`].
    pub fn read_checkpoint(&self, seq: u64) -> Result<Stored> {
        let path = self.checkpoint_path(seq);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NoSuchCheckpoint(seq.to_string()))
            }
            Err(e) => return Err(e).at(&path),
        };
        let ckpt = Checkpoint::parse(&bytes).map_err(|e| {
            Error::Corrupt(format!("checkpoint {} is unreadable: {e}", path.display()))
        })?;
        if ckpt.seq != seq {
            return Err(Error::Corrupt(format!(
                "checkpoint {} says seq {}",
                path.display(),
                ckpt.seq
            )));
        }
        Ok(Stored {
            file_hash: crate::crypto::sha256_hex(&bytes),
            ckpt,
        })
    }

    /// Writes a checkpoint, create-only.
    pub fn write_checkpoint(&self, ckpt: &Checkpoint) -> Result<String> {
        let bytes = ckpt.to_bytes();
        let path = self.checkpoint_path(ckpt.seq);
        atomic::write_create_only(&path, &bytes).map_err(|e| match e {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists => {
                Error::Corrupt(format!(
                    "checkpoint {} already exists; another writer sealed at the same time",
                    path.display()
                ))
            }
            e => e,
        })?;
        Ok(crate::crypto::sha256_hex(&bytes))
    }

    /// The seq HEAD names, if HEAD exists. Unreadable HEAD is corruption.
    pub fn read_head(&self) -> Result<Option<u64>> {
        let path = self.dir.join("HEAD");
        match fs::read_to_string(&path) {
            Ok(t) => t
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| Error::Corrupt(format!("{} does not hold a seq", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).at(&path),
        }
    }

    /// Points HEAD at `seq`.
    pub fn write_head(&self, seq: u64) -> Result<()> {
        atomic::write_replace(&self.dir.join("HEAD"), format!("{seq}\n").as_bytes())
    }

    // --- awake marker ----------------------------------------------------

    fn marker_path(&self) -> PathBuf {
        self.run_dir().join("awake")
    }

    /// Writes `run/awake` for `head`: its seq, its file hash, the time and
    /// the pid, signed with the checkpoint key.
    pub fn write_marker(&self, key: &SecretKey, head: &Stored) -> Result<()> {
        self.write_marker_fields(key, head, None)
    }

    /// Writes `run/awake` valid for `head` and also for the checkpoint
    /// `next` (seq, file hash) that a seal is about to write, so a crash
    /// between the checkpoint and the marker's move still reads as a crash.
    pub fn write_marker_ahead(
        &self,
        key: &SecretKey,
        head: &Stored,
        next: (u64, &str),
    ) -> Result<()> {
        self.write_marker_fields(key, head, Some(next))
    }

    fn write_marker_fields(
        &self,
        key: &SecretKey,
        head: &Stored,
        next: Option<(u64, &str)>,
    ) -> Result<()> {
        let mut f = Fields::new();
        f.push("kind", "awake");
        f.push("seq", &head.ckpt.seq.to_string());
        f.push("head", &head.file_hash);
        if let Some((seq, hash)) = next {
            f.push("next_seq", &seq.to_string());
            f.push("next_head", hash);
        }
        f.push("at", &clock::rfc3339(clock::now()));
        f.push("pid", &std::process::id().to_string());
        let mac = key.sign(f.data_check_string(&["hash"]).as_bytes());
        f.push("hash", &mac);
        let mut text = f.encode();
        text.push('\n');
        atomic::write_replace(&self.marker_path(), text.as_bytes())
    }

    /// Whether a valid awake marker for `head` is present. A marker with a
    /// bad MAC, or naming another checkpoint, counts as absent.
    pub fn marker_valid(&self, key: &SecretKey, head: &Stored) -> bool {
        let Ok(text) = fs::read_to_string(self.marker_path()) else {
            return false;
        };
        let Ok(f) = Fields::parse(text.trim_end_matches('\n')) else {
            return false;
        };
        let Some(mac) = f.get("hash") else {
            return false;
        };
        let seq = head.ckpt.seq.to_string();
        let names = |s: &str, h: &str| {
            f.get(s) == Some(seq.as_str()) && f.get(h) == Some(head.file_hash.as_str())
        };
        key.verify(f.data_check_string(&["hash"]).as_bytes(), mac)
            && f.get("kind") == Some("awake")
            && (names("seq", "head") || names("next_seq", "next_head"))
    }

    /// Whether any `run/awake` file exists (valid or not).
    pub fn marker_present(&self) -> bool {
        self.marker_path().exists()
    }

    /// Removes the awake marker.
    pub fn remove_marker(&self) -> Result<()> {
        match fs::remove_file(self.marker_path()) {
            Ok(()) => atomic::sync_dir(&self.run_dir()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).at(&self.marker_path()),
        }
    }
}
