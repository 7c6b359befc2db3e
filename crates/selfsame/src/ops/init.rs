//! Init: create `.selfsame/`, write the config and seal checkpoint 1.

use std::path::Path;

use selfsame_telegram::BotToken;
use serde_json::Map;

use super::seal::{seal_locked, SealOptions, SealReport};
use crate::error::{Error, IoContext, Result};
use crate::format::checkpoint::Reason;
use crate::progress::{Progress, Silent};
use crate::vault::{Config, Vault};

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
        }
    }

    /// Sets the shell version.
    pub fn shell(mut self, v: &str) -> Self {
        self.shell = Some(v.to_owned());
        self
    }
}

/// Creates the vault in `base` and seals checkpoint 1.
pub fn init(base: &Path, token: &BotToken, opts: &InitOptions) -> Result<Vault> {
    init_with_progress(base, token, opts, &Silent).map(|(v, _)| v)
}

/// [`init`], reporting progress, returning the first seal's report.
pub fn init_with_progress(
    base: &Path,
    token: &BotToken,
    opts: &InitOptions,
    progress: &dyn Progress,
) -> Result<(Vault, SealReport)> {
    if let Some(f) = &opts.format {
        crate::format::checkpoint::check_format_tag(f).map_err(Error::Usage)?;
    }
    let soul = base.join(&opts.soul);
    if !soul.exists() {
        std::fs::create_dir_all(&soul).at(&soul)?;
    } else if !soul.is_dir() {
        return Err(Error::Usage(format!(
            "soul {} is not a directory",
            soul.display()
        )));
    }
    let mut config = Config::new(&opts.soul, token.bot_id());
    if let Some(env) = &opts.token_env {
        config.token_env = env.clone();
    }
    config.exclude = opts.exclude.clone();
    let vault = Vault::create(base, config)?;
    let _lock = vault.lock()?;
    let mut data = Map::new();
    data.insert("soul".into(), opts.soul.clone().into());
    data.insert("bot_id".into(), token.bot_id().into());
    vault.history().append("init", data)?;
    let seal = SealOptions {
        reason: Reason::Init,
        shell: opts.shell.clone(),
        format: opts.format.clone(),
        extra: Vec::new(),
    };
    let report = seal_locked(&vault, token, &seal, progress)?;
    Ok((vault, report))
}
