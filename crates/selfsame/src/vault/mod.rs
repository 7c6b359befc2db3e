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
pub mod private;
pub mod read;
pub mod statcache;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use selfsame_telegram::{Fields, SecretKey};

use crate::clock;
use crate::error::{Error, IoContext, Result};
use crate::format::checkpoint::Checkpoint;
use crate::soul::Excludes;
pub use config::Config;
pub use history::{History, HistoryWriter};
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

/// What `checkpoints/` holds (see [`Vault::list_checkpoints`]).
#[derive(Debug, Clone, Default)]
pub struct CheckpointDir {
    /// The checkpoints, by seq, ascending.
    pub seqs: Vec<u64>,
    /// `<digits>.ckpt` names that are not the canonical name of their seq:
    /// damage, since a reader might take them for that checkpoint.
    pub misnamed: Vec<String>,
    /// Anything else that is not a temp file: not selfsame's, ignored.
    pub strays: Vec<String>,
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
            if read::present(&p.join("config.toml")) {
                return Ok(p);
            }
            if read::present(&p.join(DIR).join("config.toml")) {
                return Ok(p.join(DIR));
            }
            return Err(Error::NoVault { start: p });
        }
        for dir in start.ancestors() {
            let candidate = dir.join(DIR);
            if read::present(&candidate.join("config.toml")) {
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
        let bytes = read::read_capped(&config_path, read::MAX_CONFIG)?.ok_or_else(|| {
            Error::Corrupt(format!(
                "{} is missing; the vault cannot be used without it",
                config_path.display()
            ))
        })?;
        let text = String::from_utf8(bytes).map_err(|e| Error::Config {
            path: config_path.clone(),
            message: format!(
                "not UTF-8 text (invalid byte at offset {}); fix the file (it is TOML) and run `selfsame accept`",
                e.utf8_error().valid_up_to()
            ),
        })?;
        let config = Config::parse(&text, &config_path)?;
        let format_path = dir.join("format");
        let format = read::read_capped(&format_path, read::MAX_FORMAT)?.ok_or_else(|| {
            Error::Corrupt(format!(
                "{} is missing (it holds the vault format, \"{FORMAT}\"); the vault is damaged or not a selfsame vault",
                format_path.display()
            ))
        })?;
        match std::str::from_utf8(&format).map(str::trim) {
            Ok(FORMAT) => {}
            Ok(f) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(Error::Usage(format!(
                    "{}: vault format {f:?} is not supported by this selfsame (reads {FORMAT}); upgrade selfsame",
                    format_path.display(),
                )))
            }
            _ => {
                return Err(Error::Corrupt(format!(
                    "{} does not hold a vault format (\"{FORMAT}\")",
                    format_path.display()
                )))
            }
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
        // Anything by that name, a dangling symlink included, is left alone.
        if read::present(&dir) {
            return Err(Error::VaultExists(dir));
        }
        // Build it under a temp name, then rename, so a crash never leaves a
        // half-made vault that `init` would refuse. Private from the start:
        // directories 0700, files 0600.
        let tmp = base.join(format!(".selfsame-init-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        for sub in ["objects", "checkpoints", "run", "quarantine"] {
            atomic::private_dir(&tmp.join(sub))?;
        }
        fs::set_permissions(&tmp, fs::Permissions::from_mode(atomic::DIR_MODE)).at(&tmp)?;
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

    /// The history log, for reading.
    pub fn history(&self) -> History {
        History::new(self.dir.join("history.jsonl"), self.run_dir())
    }

    /// The history log, for appending lines signed with `token`'s history
    /// key.
    pub fn history_for(&self, token: &selfsame_telegram::BotToken) -> HistoryWriter {
        self.history().writer(token)
    }

    /// Whether `token` may sign history lines: its bot is the vault's and
    /// the newest checkpoint (if any) verifies under it. A line signed with
    /// another key would read as forged.
    pub fn may_sign_history(&self, token: &selfsame_telegram::BotToken) -> bool {
        if token.bot_id() != self.config.bot_id {
            return false;
        }
        let key = crate::crypto::checkpoint_key(token);
        match self.checkpoint_seqs().map(|s| s.last().copied()) {
            Ok(None) => true,
            Ok(Some(seq)) => self.read_checkpoint(seq).is_ok_and(|h| h.ckpt.verify(&key)),
            Err(_) => false,
        }
    }

    /// Records a wake refused for identity (another bot's token, or one
    /// that verifies no checkpoint) in `run/refused.jsonl`: one JSON line
    /// with `at`, `bot_id` (the token's) and `message`. Unsigned and not
    /// chained: such a token cannot sign `history.jsonl`.
    pub fn record_refused(&self, bot_id: u64, message: &str) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.run_dir().join("refused.jsonl");
        let line = serde_json::json!({
            "at": clock::rfc3339(clock::now()),
            "event": "wake",
            "verdict": "identity-mismatch",
            "bot_id": bot_id,
            "message": message,
        });
        let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(atomic::FILE_MODE)
            .custom_flags(flags.bits() as i32)
            .open(&path)
            .at(&path)?;
        if !f.metadata().at(&path)?.is_file() {
            return Err(read::not_regular(&path, "not a regular file"));
        }
        writeln!(f, "{line}").at(&path)?;
        f.sync_all().at(&path)
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

    /// Takes the short vault lock that every mutation holds. Holding it,
    /// the writer makes a vault of an older selfsame private (once) and
    /// removes the temp files of writers that died.
    pub fn lock(&self) -> Result<lock::Lock> {
        atomic::private_dir(&self.run_dir())?;
        let lock = lock::acquire(
            &self.run_dir().join("lock"),
            lock::default_wait(),
            "the vault lock",
        )?;
        private::tighten(&self.dir)?;
        self.sweep_temps()?;
        Ok(lock)
    }

    /// Takes the vault lock shared, for a reader that must see the vault
    /// between two writers (it waits for a writer to finish, and keeps the
    /// next one waiting while it holds it). `None` when no writer ever
    /// made the lock file.
    pub fn lock_shared(&self) -> Result<Option<lock::Lock>> {
        lock::acquire_shared(
            &self.run_dir().join("lock"),
            lock::default_wait(),
            "the vault lock",
        )
    }

    /// The directories where writers put temp files. (Objects written by
    /// older versions had theirs beside the object; [`private::tighten`]
    /// sweeps those once.)
    fn temp_dirs(&self) -> [PathBuf; 5] {
        [
            self.dir.clone(),
            self.checkpoints_dir(),
            self.run_dir(),
            self.dir.join("cache"),
            self.dir.join("objects").join("tmp"),
        ]
    }

    /// Removes the temp files no live writer owns. Call with the lock held.
    fn sweep_temps(&self) -> Result<usize> {
        let mut n = 0;
        for dir in self.temp_dirs() {
            n += atomic::sweep_temps(&dir)?;
        }
        Ok(n)
    }

    /// Temp files that no live writer owns, with their sizes: left by a
    /// writer that was killed (or by a full disk); the next writer removes
    /// them. With `objects`, the fan-out directories of `objects/` are
    /// listed too (older versions put temp files there).
    pub fn stale_temps(&self, objects: bool) -> Vec<(PathBuf, u64)> {
        let mut out: Vec<(PathBuf, u64)> = self
            .temp_dirs()
            .iter()
            .flat_map(|d| atomic::stale_temps(d))
            .collect();
        if objects {
            let root = self.dir.join("objects");
            if let Ok(items) = fs::read_dir(&root) {
                for item in items.flatten() {
                    let name = item.file_name();
                    if name.len() == 2 && item.file_type().is_ok_and(|t| t.is_dir()) {
                        out.extend(atomic::stale_temps(&item.path()));
                    }
                }
            }
        }
        out
    }

    // --- checkpoints -----------------------------------------------------

    /// `checkpoints/`.
    pub fn checkpoints_dir(&self) -> PathBuf {
        self.dir.join("checkpoints")
    }

    /// The path of checkpoint `seq`.
    pub fn checkpoint_path(&self, seq: u64) -> PathBuf {
        self.checkpoints_dir().join(Checkpoint::file_name(seq))
    }

    /// The seqs present in `checkpoints/`, ascending: the files named
    /// exactly [`Checkpoint::file_name`] of their seq.
    pub fn checkpoint_seqs(&self) -> Result<Vec<u64>> {
        Ok(self.list_checkpoints()?.seqs)
    }

    /// What `checkpoints/` holds: the checkpoints by seq, names that look
    /// like a checkpoint's but are not its canonical name (`000000001.ckpt`
    /// beside `00000001.ckpt`), and anything else but temp files. A
    /// missing `checkpoints/` is damage.
    pub fn list_checkpoints(&self) -> Result<CheckpointDir> {
        let dir = self.checkpoints_dir();
        let items = match fs::read_dir(&dir) {
            Ok(items) => items,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Corrupt(format!(
                    "{} is missing; the vault has lost its checkpoints (restore the vault from a backup)",
                    dir.display()
                )))
            }
            Err(e) => return Err(e).at(&dir),
        };
        let mut out = CheckpointDir::default();
        for item in items {
            let name = item.at(&dir)?.file_name();
            let Some(name) = name.to_str() else {
                out.strays.push(name.to_string_lossy().into_owned());
                continue;
            };
            if name.starts_with(atomic::TEMP_PREFIX) {
                continue;
            }
            let seq = name
                .strip_suffix(".ckpt")
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .map(|n| n.parse::<u64>().ok());
            match seq {
                Some(Some(seq)) if Checkpoint::file_name(seq) == name => out.seqs.push(seq),
                Some(_) => out.misnamed.push(name.to_owned()),
                None => out.strays.push(name.to_owned()),
            }
        }
        out.seqs.sort_unstable();
        out.misnamed.sort();
        out.strays.sort();
        Ok(out)
    }

    /// Reads checkpoint `seq`. Unparseable files are [`Error::Corrupt`].
    pub fn read_checkpoint(&self, seq: u64) -> Result<Stored> {
        let path = self.checkpoint_path(seq);
        let bytes = match read::read_capped(&path, read::MAX_CHECKPOINT)? {
            Some(b) => b,
            None => return Err(Error::NoSuchCheckpoint(seq.to_string())),
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
        let Some(bytes) = read::read_capped(&path, read::MAX_HEAD)? else {
            return Ok(None);
        };
        std::str::from_utf8(&bytes)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .map(Some)
            .ok_or_else(|| Error::Corrupt(format!("{} does not hold a seq", path.display())))
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
        // A marker that is not a regular file (or too big) counts as
        // absent here; the checks report it.
        let Ok(Some(bytes)) = read::read_capped(&self.marker_path(), read::MAX_RUN_FILE) else {
            return false;
        };
        let Ok(text) = String::from_utf8(bytes) else {
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
        read::present(&self.marker_path())
    }

    /// The damage of `run/awake` when it is there but is not a regular
    /// file or is too big to be a marker.
    pub fn marker_problem(&self) -> Option<String> {
        match read::read_capped(&self.marker_path(), read::MAX_RUN_FILE) {
            Err(Error::Corrupt(m)) => Some(m),
            _ => None,
        }
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
