//! What every command needs: the vault, the token, the output mode.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use selfsame::{Credential, CredentialError, Error, Platform, Result, Settings, Vault};
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

/// A credential of `platform` that a command's own flags name
/// (`--old-token-env VAR` or `--old-token-file FILE`; `which` is `old` or
/// `new`). Messages name the variable or file, never the value.
pub fn named_token(
    which: &str,
    platform: Platform,
    env: Option<&str>,
    file: Option<&Path>,
) -> Result<Credential> {
    let (text, source) = match (env, file) {
        (_, Some(path)) => (
            read_token_file(path).map_err(|e| {
                Error::Token(format!(
                    "cannot read the {which} token file {}: {e}",
                    path.display()
                ))
            })?,
            format!("the {which} token file {}", path.display()),
        ),
        (Some(var), None) => (
            std::env::var(var)
                .map_err(|_| Error::Token(format!("the {which} token env var {var} is not set")))?,
            var.to_owned(),
        ),
        (None, None) => {
            return Err(Error::Usage(format!(
                "give --{which}-token-env or --{which}-token-file"
            )))
        }
    };
    Credential::parse(platform, &text).map_err(|e| {
        Error::Token(format!(
            "{source} does not hold a {} bot token ({}; expected {}; the value is not shown)",
            platform_title(platform),
            reason(&e),
            platform.token_shape()
        ))
    })
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

    /// The credential of `platform` from --token-file, else from the env
    /// var `env_name`. A token shaped like another platform's is taken as
    /// that platform's credential (the vault checks then name the other
    /// account); anything else is refused without showing the value.
    pub fn token(&self, platform: Platform, env_name: &str) -> Result<Credential> {
        let (text, source) = self.token_text(platform, env_name)?;
        Credential::parse_any(platform, &text).map_err(|e| {
            Error::Token(format!(
                "{source} does not hold a {} bot token ({}; expected {}; the value is not shown)",
                platform_title(platform),
                reason(&e),
                platform.token_shape()
            ))
        })
    }

    /// The text of the token from --token-file, else from the env var
    /// `env_name`, and where it came from, for messages.
    fn token_text(&self, platform: Platform, env_name: &str) -> Result<(String, String)> {
        if let Some(path) = &self.token_file {
            let text = read_token_file(path).map_err(|e| {
                Error::Token(format!(
                    "cannot read the token file {}: {e}",
                    path.display()
                ))
            })?;
            return Ok((text, format!("the token file {}", path.display())));
        }
        let text = std::env::var(env_name).map_err(|_| {
            Error::Token(format!(
                "the bot token is not set: export {env_name}=<token from {}>, or pass --token-file FILE",
                match platform {
                    Platform::Telegram => "BotFather",
                    Platform::Discord => "the Discord Developer Portal",
                }
            ))
        })?;
        Ok((text, env_name.to_owned()))
    }

    /// The Telegram bot token from --token-file, else from the env var
    /// `env_name` (`selfsame telegram`).
    pub fn bot_token(&self, env_name: &str) -> Result<BotToken> {
        let (text, source) = self.token_text(Platform::Telegram, env_name)?;
        BotToken::parse(&text).map_err(|_| {
            Error::Token(format!(
                "{source} does not hold a bot token of the form <digits>:<secret> (the value is not shown)"
            ))
        })
    }

    /// The token for an open vault (its config names the platform and the
    /// env var).
    pub fn vault_token(&self, vault: &Vault) -> Result<Credential> {
        self.token(vault.config.platform(), &vault.config.token_env)
    }

    /// The vault's remote (`[remote]`) with the AWS credentials from the
    /// environment. The secret is never printed.
    #[cfg(feature = "remote")]
    pub fn remote_access(&self, vault: &Vault) -> Result<selfsame::ops::push::Access> {
        let url = vault.config.remote.as_ref().ok_or_else(|| Error::Remote {
            url: "(none)".into(),
            problem: selfsame::RemoteProblem::NotConfigured,
        })?;
        access(&url.url, url.endpoint.as_deref(), url.region.as_deref())
    }

    /// Before a rekey or a bind: with a remote configured, the vault gets a
    /// copy of the replica's keys under the current token (`cred`), which
    /// the change re-wraps for the new one. When that cannot be done, a
    /// warning says what it means; the change goes on (a leaked token must
    /// not wait for a server).
    #[cfg(feature = "remote")]
    pub fn keep_remote_keys(&self, vault: &Vault, cred: &selfsame::Credential) {
        if vault.config.remote.is_none() {
            return;
        }
        let kept = self
            .remote_access(vault)
            .and_then(|access| selfsame::ops::push::keep_remote_keys(vault, cred, &access));
        if let Err(e) = kept {
            crate::output::errln!(
                "selfsame: warning: the replica's keys could not be copied into the vault ({}); after this change the replica opens under the old token only: push to a new [remote] url then",
                crate::porcelain::error(&e)
            );
        }
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

/// The platform's name for people.
pub fn platform_title(p: Platform) -> &'static str {
    match p {
        Platform::Telegram => "Telegram",
        Platform::Discord => "Discord",
    }
}

/// Why a token was refused, in words that never hold its value.
fn reason(e: &CredentialError) -> String {
    match e {
        CredentialError::Telegram(_) => "not of the form <digits>:<secret>".into(),
        CredentialError::Discord(d) => d.to_string(),
    }
}

/// Access to a remote: `url` with the AWS credentials from
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
#[cfg(feature = "remote")]
pub fn access(
    url: &str,
    endpoint: Option<&str>,
    region: Option<&str>,
) -> Result<selfsame::ops::push::Access> {
    use selfsame::ops::push::{Access, AwsCredentials};
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (Some(id), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) else {
        return Err(Error::Remote {
            url: url.to_owned(),
            problem: selfsame::RemoteProblem::NoCredentials,
        });
    };
    let region = region.map(str::to_owned).or_else(|| var("AWS_REGION"));
    let creds = AwsCredentials::new(id, secret, var("AWS_SESSION_TOKEN"));
    Access::new(url, endpoint, region.as_deref(), creds).map_err(Error::Usage)
}
