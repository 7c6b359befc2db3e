//! Init: create `.selfsame/`, write the config and seal checkpoint 1.

use std::path::{Path, PathBuf};

use crate::crypto::Credential;
use serde_json::Map;

use super::seal::{seal_locked, SealOptions, SealReport};
use crate::crypto::{IdentityKey, Keys};
use crate::error::{Error, IoContext, Result};
use crate::format::checkpoint::Reason;
use crate::format::excludes::{Excludes, Protect};
use crate::format::tags::check_format_tag;
use crate::progress::{Progress, Silent};
use crate::settings::Settings;
use crate::vault::{Config, Vault};

/// The `protect` and `exclude` globs for the workspace of a known agent
/// framework (`selfsame init --preset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// Its name.
    pub name: &'static str,
    /// Paths only the owner's approval changes: the agent's identity.
    pub protect: &'static [&'static str],
    /// Paths left out: the framework's caches and transient files.
    pub exclude: &'static [&'static str],
}

/// OpenClaw's agent workspace. What each entry is, by OpenClaw's own
/// workspace docs (the project's docs/protect.md says why each is here):
/// the files injected into every session (`SOUL.md`, `IDENTITY.md`,
/// `AGENTS.md`, `USER.md`, `TOOLS.md`), those run on a schedule or at
/// startup (`HEARTBEAT.md`, `BOOT.md`) and the first-run ritual that is
/// deleted once done (`BOOTSTRAP.md`: were it planted again, it would run
/// again). `MEMORY.md` and `memory/` are the agent's to write. Left out:
/// the workspace's own git repository and macOS folder metadata.
pub const OPENCLAW: Preset = Preset {
    name: "openclaw",
    protect: &[
        "SOUL.md",
        "IDENTITY.md",
        "AGENTS.md",
        "USER.md",
        "TOOLS.md",
        "HEARTBEAT.md",
        "BOOT.md",
        "BOOTSTRAP.md",
    ],
    exclude: &[".git", "**/.DS_Store"],
};

/// Every preset `init` knows.
pub const PRESETS: &[Preset] = &[OPENCLAW];

impl Preset {
    /// The preset named `name`.
    pub fn named(name: &str) -> Option<Preset> {
        PRESETS.iter().find(|p| p.name == name).copied()
    }
}

/// How to initialise a vault.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Soul directory, relative to the vault's parent.
    pub soul: String,
    /// Shell version for checkpoint 1.
    pub shell: Option<String>,
    /// Soul format tag (default `v1`).
    pub format: Option<String>,
    /// Env var holding the token, recorded in config.
    pub token_env: Option<String>,
    /// Exclude globs.
    pub exclude: Vec<String>,
    /// Protect globs: soul paths whose changes only `approve` adopts.
    pub protect: Vec<String>,
    /// Create the soul directory when it is missing (otherwise a missing
    /// soul is refused: a typo must not start guarding an empty soul).
    pub create: bool,
    /// The settings the new vault obeys.
    pub settings: Settings,
    /// Create the vault's identity key, which signs every checkpoint
    /// (default). Without it the vault is unsigned, as vaults of versions
    /// before identity keys are, until `identity init`.
    pub identity: bool,
}

impl InitOptions {
    /// Defaults for a soul at `soul`.
    pub fn new(soul: &str) -> Self {
        InitOptions {
            soul: soul.to_owned(),
            shell: None,
            format: None,
            token_env: None,
            exclude: Vec::new(),
            protect: Vec::new(),
            create: false,
            settings: Settings::default(),
            identity: true,
        }
    }

    /// Sets the shell version.
    pub fn shell(mut self, v: &str) -> Self {
        self.shell = Some(v.to_owned());
        self
    }
}

/// The vaults other than `base`'s that already guard the soul `soul`
/// (relative to `base`, or absolute): a `.selfsame/` in the soul directory
/// or any directory above it, or in a directory beside `base`, whose
/// config names the same directory (same device and inode). Two vaults
/// sealing one soul each take the other's seals for changes. Unreadable
/// candidates are passed over; a vault elsewhere is not found.
pub fn guarded_by(base: &Path, soul: &str) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let id = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let Some(target) = id(&base.join(soul)) else {
        return Vec::new();
    };
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(soul_dir) = std::fs::canonicalize(base.join(soul)) {
        candidates.extend(soul_dir.ancestors().map(Path::to_path_buf));
    }
    let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
    if let Some(Ok(beside)) = base.parent().map(std::fs::read_dir) {
        candidates.extend(beside.flatten().map(|e| e.path()));
    }
    let mut found = Vec::new();
    for dir in candidates {
        let vault = dir.join(crate::vault::DIR);
        if dir == base || found.contains(&vault) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(vault.join("config.toml")) else {
            continue;
        };
        let Ok(config) = Config::parse(&text, &vault.join("config.toml")) else {
            continue;
        };
        if id(&dir.join(&config.soul)) == Some(target) {
            found.push(vault);
        }
    }
    found
}

/// Creates the vault in `base` and seals checkpoint 1.
pub fn init(base: &Path, cred: &Credential, opts: &InitOptions) -> Result<Vault> {
    init_with_progress(base, cred, opts, &Silent).map(|(v, _)| v)
}

/// [`init`], reporting progress, returning the first seal's report.
pub fn init_with_progress(
    base: &Path,
    cred: &Credential,
    opts: &InitOptions,
    progress: &dyn Progress,
) -> Result<(Vault, SealReport)> {
    if let Some(f) = &opts.format {
        check_format_tag(f).map_err(Error::Usage)?;
    }
    Excludes::new(&opts.exclude).map_err(Error::Usage)?;
    Protect::new(&opts.protect).map_err(Error::Usage)?;
    let soul = base.join(&opts.soul);
    match std::fs::metadata(&soul) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::Usage(format!(
                "soul {} is not a directory",
                soul.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && opts.create => {
            std::fs::create_dir_all(&soul).at(&soul)?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NoSoul(soul)),
        Err(e) => return Err(e).at(&soul),
    }
    let mut config = Config::new(&opts.soul, cred);
    if let Some(env) = &opts.token_env {
        config.token_env = env.clone();
    }
    config.exclude = opts.exclude.clone();
    config.protect = opts.protect.clone();
    let vault = Vault::create(base, config)?.with_settings(opts.settings.clone());
    let _lock = vault.lock()?;
    if opts.identity {
        create_identity(&vault, &Keys::of(cred))?;
    }
    let mut data = Map::new();
    data.insert("soul".into(), opts.soul.clone().into());
    data.insert("bot_id".into(), cred.account_id().into());
    vault.history_for(&Keys::of(cred)).append("init", data)?;
    let mut seal = SealOptions::new(Reason::Init);
    seal.shell = opts.shell.clone();
    seal.format = opts.format.clone();
    let report = seal_locked(&vault, cred, &seal, progress)?;
    Ok((vault, report))
}

/// Creates a new identity key and writes it sealed under `keys`' wrap key.
pub(crate) fn create_identity(vault: &Vault, keys: &Keys) -> Result<IdentityKey> {
    let random = |e| Error::Io {
        path: vault.identity_path(),
        source: e,
    };
    let seed = zeroize::Zeroizing::new(vault.settings().new_seed().map_err(random)?);
    let key = IdentityKey::from_seed(&seed);
    let nonce = vault.settings().new_nonce().map_err(random)?;
    vault.write_identity(&key.seal(keys.wrap(), &nonce))?;
    Ok(key)
}
