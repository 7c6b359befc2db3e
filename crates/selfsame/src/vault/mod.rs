//! The vault: `.selfsame/` beside the soul, and its files. Layout, config,
//! checkpoints and HEAD ([`checkpoints`]), the awake marker ([`marker`]),
//! the restore journal ([`journal`]), history, objects, locks, atomic
//! writes and safe reads.
//!
//! ```text
//! .selfsame/
//!   config.toml  format  objects/  checkpoints/00000042.ckpt  HEAD
//!   history.jsonl  run/  quarantine/
//! ```

pub(crate) mod atomic;
pub(crate) mod checkpoints;
pub(crate) mod config;
pub(crate) mod history;
pub(crate) mod identity;
pub(crate) mod journal;
pub(crate) mod lock;
pub(crate) mod marker;
pub(crate) mod objects;
pub(crate) mod private;
pub(crate) mod read;
#[cfg(feature = "remote")]
pub(crate) mod remote_key;
pub(crate) mod store;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::crypto::{Credential, Keys};

use crate::error::{Damage, Error, IoContext, LockName, Result};
use crate::format::excludes::Excludes;
use crate::format::time::rfc3339;
use crate::settings::Settings;
pub use checkpoints::StoredCheckpoint;
pub use config::Config;
pub use history::{History, HistoryWriter};
pub use objects::Objects;

/// Name of the vault directory.
pub const DIR: &str = ".selfsame";
/// Vault format version, in the `format` file.
pub const FORMAT: &str = crate::format::VAULT_FORMAT;

/// An open vault.
#[derive(Debug, Clone)]
pub struct Vault {
    dir: PathBuf,
    base: PathBuf,
    /// The parsed config.
    pub config: Config,
    /// The bytes of `config.toml` that `config` was parsed from.
    config_bytes: Vec<u8>,
    settings: Settings,
    /// The objects (one view, so that every command shares what it learnt
    /// of the packs).
    objects: Objects,
}

impl Vault {
    /// Finds the vault: `explicit` (a `.selfsame` dir or its parent,
    /// relative to `start`), else `.selfsame/` in `start` or its parents.
    pub fn discover(start: &Path, explicit: Option<&Path>) -> Result<PathBuf> {
        if let Some(p) = explicit.map(Path::to_path_buf) {
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
        let bytes = read::read_capped(&config_path, read::MAX_CONFIG)?
            .ok_or_else(|| Error::corrupt(&config_path, Damage::ConfigMissing))?;
        let text = String::from_utf8(bytes).map_err(|e| Error::ConfigNotText {
            path: config_path.clone(),
            offset: e.utf8_error().valid_up_to(),
        })?;
        let config = Config::parse(&text, &config_path)?;
        let format_path = dir.join("format");
        let format = read::read_capped(&format_path, read::MAX_FORMAT)?
            .ok_or_else(|| Error::corrupt(&format_path, Damage::FormatMissing))?;
        match std::str::from_utf8(&format).map(str::trim) {
            Ok(f) if crate::format::VAULT_FORMATS_READ.contains(&f) => {}
            Ok(f) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(Error::Usage(format!(
                    "{}: vault format {f:?} is not supported by this selfsame (reads {}); upgrade selfsame",
                    format_path.display(),
                    crate::format::VAULT_FORMATS_READ.join(" and "),
                )))
            }
            _ => return Err(Error::corrupt(&format_path, Damage::FormatInvalid)),
        }
        for sub in [
            "checkpoints",
            "objects",
            "objects/packs",
            "objects/tmp",
            "cache",
            "run",
        ] {
            read::own_dir(&dir.join(sub))?;
        }
        let base = dir.parent().unwrap_or(Path::new("/")).to_owned();
        Ok(Vault {
            objects: Objects::local_cached(dir.join("objects"), dir.join("cache").join("packs")),
            dir,
            base,
            config,
            config_bytes: text.into_bytes(),
            settings: Settings::default(),
        })
    }

    /// This vault, obeying `settings` (lock wait, shell version).
    pub fn with_settings(mut self, settings: Settings) -> Vault {
        self.settings = settings;
        self
    }

    /// The settings this vault obeys.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The current time, by the settings' clock.
    pub(crate) fn now(&self) -> std::time::SystemTime {
        self.settings.clock().now()
    }

    /// Stops the process here when a test armed the failpoint `name`
    /// ([`Settings`]); otherwise nothing.
    pub(crate) fn failpoint(&self, name: &str) {
        self.settings.failpoint(name);
    }

    /// [`Vault::failpoint`] for the `n`th time a step repeats: the point
    /// `name-n` (`prune-after-delete-3`).
    pub(crate) fn failpoint_at(&self, name: &str, n: u64) {
        self.settings.failpoint_at(name, n);
    }

    /// Creates a new vault directory under `base` with `config`.
    pub(crate) fn create(base: &Path, config: Config) -> Result<Vault> {
        Vault::create_unpublished(base, config.to_toml().as_bytes())?.publish()
    }

    /// A new vault under a temp name in `base` (`.selfsame-init-<pid>`),
    /// with `config` as its `config.toml` bytes, open for writing; nothing
    /// is at `.selfsame` until [`Vault::publish`]. Built under a temp name,
    /// then renamed, so a crash never leaves a half-made vault that `init`
    /// (or `clone`) would refuse. Private from the start: directories 0700,
    /// files 0600.
    pub(crate) fn create_unpublished(base: &Path, config: &[u8]) -> Result<Vault> {
        let dir = base.join(DIR);
        // Anything by that name, a dangling symlink included, is left alone.
        if read::present(&dir) {
            return Err(Error::VaultExists(dir));
        }
        let tmp = base.join(format!(".selfsame-init-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        for sub in ["objects", "checkpoints", "run", "quarantine"] {
            atomic::private_dir(&tmp.join(sub))?;
        }
        fs::set_permissions(&tmp, fs::Permissions::from_mode(atomic::DIR_MODE)).at(&tmp)?;
        atomic::write_replace(&tmp.join("format"), format!("{FORMAT}\n").as_bytes())?;
        atomic::write_replace(&tmp.join("config.toml"), config)?;
        atomic::sync_dir(&tmp)?;
        Vault::open(&tmp)
    }

    /// A new vault under a temp name in `base`, filled by `fill`, then
    /// published as `.selfsame`. When anything fails before the vault is in
    /// place, its temp directory (this run's alone) is removed, so `base`
    /// is left as it was.
    pub(crate) fn build<T>(
        base: &Path,
        config: &[u8],
        fill: impl FnOnce(&Vault) -> Result<T>,
    ) -> Result<(T, Vault)> {
        let vault = Vault::create_unpublished(base, config)?;
        let tmp = vault.dir.clone();
        let built = fill(&vault).and_then(|t| Ok((t, vault.publish()?)));
        if built.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        built
    }

    /// Renames a vault made by [`Vault::create_unpublished`] to
    /// `.selfsame` beside it, and opens it there.
    pub(crate) fn publish(self) -> Result<Vault> {
        let dir = self.base.join(DIR);
        if read::present(&dir) {
            return Err(Error::VaultExists(dir));
        }
        atomic::sync_dir(&self.dir)?;
        fs::rename(&self.dir, &dir).at(&dir)?;
        atomic::sync_dir(&self.base)?;
        Vault::open(&dir).map(|v| v.with_settings(self.settings))
    }

    /// The `.selfsame` directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// This vault acting on `bytes` as its config instead of `config.toml`
    /// as read: the config a checkpoint vouches for (its `config` field).
    /// `origin` names the bytes in errors (the object they came from).
    pub(crate) fn with_config(&self, bytes: Vec<u8>, origin: &Path) -> Result<Vault> {
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
            settings: self.settings.clone(),
            objects: self.objects.clone(),
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
    pub(crate) fn config_bytes(&self) -> &[u8] {
        &self.config_bytes
    }

    /// Lowercase hex SHA-256 of [`Vault::config_bytes`]: what a checkpoint
    /// records in its `config` field, and what wake compares with it.
    pub(crate) fn config_hash(&self) -> String {
        crate::crypto::sha256_hex(&self.config_bytes)
    }

    /// The object store.
    pub(crate) fn objects(&self) -> Objects {
        self.objects.clone()
    }

    /// Test hook: this vault keeping its objects in `store`.
    #[cfg(feature = "test-hooks")]
    pub(crate) fn with_store(mut self, store: std::sync::Arc<dyn store::Store>) -> Vault {
        self.objects = Objects::new(store);
        self
    }

    /// Marks the vault as one that may hold packs (format `2`) before the
    /// first pack is written, so that a selfsame from before packs refuses
    /// it instead of calling its objects missing. Call it holding the lock.
    pub(crate) fn allow_packs(&self) -> Result<()> {
        let path = self.dir.join("format");
        let now = read::read_capped(&path, read::MAX_FORMAT)?;
        if now.as_deref().map(|f| f.trim_ascii()) == Some(FORMAT.as_bytes()) {
            return Ok(());
        }
        atomic::write_replace(&path, format!("{FORMAT}\n").as_bytes())
    }

    /// The history log, for reading.
    pub(crate) fn history(&self) -> History {
        History::new(self.dir.join("history.jsonl"), self.run_dir())
            .with_clock(self.settings.clock())
    }

    /// The history log, for appending lines signed with `keys`' history
    /// key.
    pub(crate) fn history_for(&self, keys: &Keys) -> HistoryWriter {
        self.history().writer(keys)
    }

    /// Whether the vault belongs to the account `cred` proves: its
    /// platform and account id are the config's.
    pub(crate) fn belongs_to(&self, cred: &Credential) -> bool {
        cred.platform().as_str() == self.config.platform && cred.account_id() == self.config.bot_id
    }

    /// Whether `token` may sign history lines: its bot is the vault's and
    /// the newest checkpoint (if any) verifies under it. A line signed with
    /// another key would read as forged.
    pub(crate) fn may_sign_history(&self, cred: &Credential) -> bool {
        if !self.belongs_to(cred) {
            return false;
        }
        let keys = Keys::of(cred);
        match self.checkpoint_seqs().map(|s| s.last().copied()) {
            Ok(None) => true,
            Ok(Some(seq)) => self
                .read_checkpoint(seq)
                .is_ok_and(|h| keys.verifies(&h.ckpt)),
            Err(_) => false,
        }
    }

    /// Records a wake refused for identity (another bot's token, or one
    /// that verifies no checkpoint) in `run/refused.jsonl`: one JSON line
    /// with `at`, `bot_id` (the token's) and `message`. Unsigned and not
    /// chained: such a token cannot sign `history.jsonl`.
    pub(crate) fn record_refused(&self, bot_id: u64, message: &str) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.run_dir().join("refused.jsonl");
        let line = serde_json::json!({
            "at": rfc3339(self.now()),
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
    pub(crate) fn run_dir(&self) -> PathBuf {
        self.dir.join("run")
    }

    /// `quarantine/`.
    pub(crate) fn quarantine_dir(&self) -> PathBuf {
        self.dir.join("quarantine")
    }

    /// `quarantine/`, ready to move soul states into: a real directory
    /// inside the vault (made when absent). A symlink, or anything else that
    /// is not a directory, is damage ([`Error::Corrupt`]): a restore would
    /// move the soul wherever it leads.
    pub(crate) fn quarantine(&self) -> Result<PathBuf> {
        let dir = self.quarantine_dir();
        match fs::create_dir(&dir) {
            Ok(()) => atomic::sync_dir(&self.dir)?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).at(&dir),
        }
        match self.quarantine_problem() {
            Some(what) => Err(Error::corrupt(&dir, Damage::QuarantineInvalid(what))),
            None => Ok(dir),
        }
    }

    /// What `quarantine/` is, if it is there and is not a real directory
    /// (`a symlink to …`, `not a directory`); see [`Damage::QuarantineInvalid`].
    /// The first of the vault's working files (the stat cache and its
    /// patch, the lock) that is there but not a regular file: damage, as
    /// the commands that use them say.
    pub(crate) fn working_files_problem(&self) -> Option<Error> {
        let stat = self.dir.join("cache").join("stat");
        [
            stat.with_extension("patch"),
            stat,
            self.run_dir().join("lock"),
        ]
        .iter()
        .find_map(|p| read::own_file(p).err())
    }

    /// The first directory of `objects/` (a fan-out directory) that is a
    /// symlink or not a directory: damage, never followed out.
    pub(crate) fn objects_layout_problem(&self) -> Option<Error> {
        let root = self.dir.join("objects");
        for item in fs::read_dir(&root).ok()?.flatten() {
            let name = item.file_name();
            let name = name.as_encoded_bytes();
            let fanout = name.len() == 2 && name.iter().all(u8::is_ascii_hexdigit);
            // The listing's own file type (no stat of each directory on
            // wake's path); only what is not a directory is looked at.
            if (fanout || name == b"packs" || name == b"tmp")
                && !item.file_type().is_ok_and(|t| t.is_dir())
            {
                if let Err(e) = read::own_dir(&item.path()) {
                    return Some(e);
                }
            }
        }
        None
    }

    pub(crate) fn quarantine_problem(&self) -> Option<String> {
        let dir = self.quarantine_dir();
        let meta = fs::symlink_metadata(&dir).ok()?;
        if meta.file_type().is_symlink() {
            Some(match fs::read_link(&dir) {
                Ok(t) => format!("a symlink to {}", t.display()),
                Err(_) => "a symlink".to_owned(),
            })
        } else if meta.is_dir() {
            None
        } else {
            Some("not a directory".to_owned())
        }
    }

    /// The compiled excludes.
    pub(crate) fn excludes(&self) -> Result<Excludes> {
        Excludes::new(&self.config.exclude).map_err(|message| Error::Config {
            path: self.config_path(),
            message,
        })
    }

    /// Paths inside the soul that are not part of it (the vault itself).
    pub(crate) fn skip_paths(&self) -> Vec<PathBuf> {
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
    pub(crate) fn lock(&self) -> Result<lock::Lock> {
        atomic::private_dir(&self.run_dir())?;
        let lock = lock::acquire(
            &self.run_dir().join("lock"),
            self.settings.lock_wait,
            LockName::Vault,
        )?;
        private::tighten(&self.dir)?;
        self.sweep_temps()?;
        Ok(lock)
    }

    /// Takes the vault lock shared, for a reader that must see the vault
    /// between two writers (it waits for a writer to finish, and keeps the
    /// next one waiting while it holds it). `None` when no writer ever
    /// made the lock file.
    pub(crate) fn lock_shared(&self) -> Result<Option<lock::Lock>> {
        lock::acquire_shared(
            &self.run_dir().join("lock"),
            self.settings.lock_wait,
            LockName::Vault,
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
    pub(crate) fn stale_temps(&self, objects: bool) -> Vec<(PathBuf, u64)> {
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
}
