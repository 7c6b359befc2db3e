//! What every command needs: the vault, the token, the output mode.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use selfsame::{Credential, Error, Result, Settings, Vault};
use selfsame_telegram::BotToken;

use crate::output::{errln, outln};
use crate::progress::Bar;

/// Most bytes a token file may hold: a token is under a hundred bytes.
const MAX_TOKEN_FILE: u64 = 4096;

/// Reads a token file: a regular file (a symlink to one is fine, as in a
/// secrets mount), opened without waiting on a FIFO, at most 4 KiB. So
/// `--token-file /dev/zero` or a FIFO is refused at once instead of hanging.
pub fn read_token_file(path: &Path) -> std::result::Result<String, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_TOKEN_FILE {
        return Err(format!(
            "{} bytes, more than a token file holds ({MAX_TOKEN_FILE})",
            meta.len()
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_TOKEN_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_TOKEN_FILE {
        return Err(format!(
            "more than a token file holds ({MAX_TOKEN_FILE} bytes)"
        ));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".into())
}

/// `SELFSAME_SHELL_VERSION`, when set and not empty.
pub fn shell_version_env() -> Option<String> {
    std::env::var("SELFSAME_SHELL_VERSION")
        .ok()
        .filter(|s| !s.is_empty())
}

pub struct Context {
    vault: Option<PathBuf>,
    token_file: Option<PathBuf>,
    pub json: bool,
}

impl Context {
    pub fn new(vault: Option<PathBuf>, token_file: Option<PathBuf>, json: bool) -> Self {
        Context {
            vault,
            token_file,
            json,
        }
    }

    pub fn cwd(&self) -> Result<PathBuf> {
        std::env::current_dir()
            .map_err(|e| Error::Usage(format!("cannot read the current directory: {e}")))
    }

    pub fn open_vault(&self) -> Result<Vault> {
        let dir = Vault::discover(&self.cwd()?, self.vault.as_deref())?;
        Ok(Vault::open(&dir)?.with_settings(self.settings()))
    }

    /// The settings this process gives the library: the lock wait
    /// (`SELFSAME_LOCK_WAIT`, e.g. `10s`; default 5 s) and the shell version
    /// (`SELFSAME_SHELL_VERSION`).
    pub fn settings(&self) -> Settings {
        let mut s = Settings::default();
        if let Some(wait) = std::env::var("SELFSAME_LOCK_WAIT")
            .ok()
            .and_then(|t| humantime::parse_duration(&t).ok())
        {
            s.lock_wait = wait;
        }
        s.shell = shell_version_env();
        s
    }

    /// Whether `--token-file` was given.
    pub fn has_token_file(&self) -> bool {
        self.token_file.is_some()
    }

    /// The credential from --token-file, else from the env var `env_name`:
    /// a Telegram bot token (the one platform so far).
    pub fn token(&self, env_name: &str) -> Result<Credential> {
        self.bot_token(env_name).map(Credential::telegram)
    }

    /// The bot token from --token-file, else from the env var `env_name`.
    pub fn bot_token(&self, env_name: &str) -> Result<BotToken> {
        if let Some(path) = &self.token_file {
            let text = read_token_file(path).map_err(|e| {
                Error::Token(format!(
                    "cannot read the token file {}: {e}",
                    path.display()
                ))
            })?;
            return BotToken::parse(&text).map_err(|_| {
                Error::Token(format!(
                    "the token file {} does not hold a bot token of the form <digits>:<secret> (the value is not shown)",
                    path.display()
                ))
            });
        }
        let text = std::env::var(env_name).map_err(|_| {
            Error::Token(format!(
                "the bot token is not set: export {env_name}=<token from BotFather>, or pass --token-file FILE"
            ))
        })?;
        BotToken::parse(&text).map_err(|_| {
            Error::Token(format!(
                "{env_name} does not hold a bot token of the form <digits>:<secret> (the value is not shown)"
            ))
        })
    }

    /// The token for an open vault (its config names the env var).
    pub fn vault_token(&self, vault: &Vault) -> Result<Credential> {
        self.token(&vault.config.token_env)
    }

    /// A progress bar on stderr when it is a terminal and output is not JSON.
    pub fn progress(&self) -> Bar {
        Bar::new(!self.json && std::io::stderr().is_terminal())
    }

    pub fn print_json(&self, value: &impl serde::Serialize) {
        outln!(
            "{}",
            serde_json::to_string(value).expect("reports serialize")
        );
    }

    pub fn error(&self, e: &Error) {
        let text = crate::porcelain::error(e);
        if self.json {
            let v = serde_json::json!({"error": text, "exit_code": e.exit_code()});
            outln!("{v}");
        }
        // Not `eprintln!`, which panics when stderr fails (a full disk
        // under a redirect): the exit code still tells.
        errln!("selfsame: error: {text}");
    }
}
