//! `config.toml`: where the soul is, whose bot it belongs to, what to leave
//! out and what to do on each verdict.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::crypto::{Credential, Platform};
use crate::error::{Error, Result};
use crate::format::excludes::{Excludes, Protect};
use crate::format::location::Location;
use crate::format::retention::Policy;
use crate::format::tags::Reads;
use crate::verdict::{Action, MigrationPolicy, Policies, ProtectPolicy};

/// Default `max_age`: a head older than this gets the `stale` warning.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// The parsed `config.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Soul path, relative to the vault's parent directory (or absolute).
    pub soul: String,
    /// Platform whose credential binds the identity: `telegram` (the
    /// default) or `discord`.
    #[serde(default = "default_platform")]
    pub platform: String,
    /// Env var holding the bot token; when the file names none, the
    /// platform's ([`Platform::default_token_env`]).
    #[serde(default)]
    pub token_env: String,
    /// The bot id the vault belongs to.
    pub bot_id: u64,
    /// Glob patterns of soul paths to leave out (`*` within one segment,
    /// `**` across segments).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Glob patterns of soul paths whose changes only the owner's approval
    /// adopts (same syntax as `exclude`; a matched directory protects
    /// everything below it).
    #[serde(default)]
    pub protect: Vec<String>,
    /// Head age past which wake warns `stale` (`7d`; `0` = never).
    #[serde(default)]
    pub max_age: Option<String>,
    /// What wake does per verdict.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Soul formats this shell reads (`v2..v4`, `v3`, `v1,v3`); unset means
    /// wake does not check the format. `--reads` and `SELFSAME_READS` win.
    #[serde(default)]
    pub reads: Option<String>,
    /// Directory of migration executables `v<N>-<slug>`, relative to the
    /// vault's parent (or absolute); default `migrations`.
    #[serde(default)]
    pub migrations: Option<String>,
    /// The encrypted replica on S3-compatible storage, and its witness.
    #[serde(default)]
    pub remote: Option<RemoteConfig>,
    /// What `selfsame run` forgets and prunes after its seals.
    #[serde(default)]
    pub retention: Option<RetentionConfig>,
}

/// `[retention]` table: the policy `selfsame run` applies after each seal
/// (forget with restic's meanings, then prune), and how long quarantine
/// keeps soul states. Nothing is forgotten or dropped unless it is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Keep the newest N checkpoints' snapshots.
    #[serde(default)]
    pub keep_last: Option<u64>,
    /// Keep the newest of each of the last N hours that have one.
    #[serde(default)]
    pub keep_hourly: Option<u64>,
    /// Keep the newest of each of the last N days that have one.
    #[serde(default)]
    pub keep_daily: Option<u64>,
    /// Keep the newest of each of the last N weeks that have one.
    #[serde(default)]
    pub keep_weekly: Option<u64>,
    /// Keep the newest of each of the last N months that have one.
    #[serde(default)]
    pub keep_monthly: Option<u64>,
    /// Keep the newest of each of the last N years that have one.
    #[serde(default)]
    pub keep_yearly: Option<u64>,
    /// Keep every snapshot made within this of the newest (`2h`, `7d`).
    #[serde(default)]
    pub keep_within: Option<String>,
    /// Drop quarantine entries older than this (`30d`).
    #[serde(default)]
    pub quarantine_older_than: Option<String>,
}

impl RetentionConfig {
    /// The forget policy it sets; `None` when it sets none.
    pub fn policy(&self, path: &Path) -> Result<Option<Policy>> {
        let within = self
            .keep_within
            .as_deref()
            .map(|t| duration("retention.keep_within", t, path))
            .transpose()?;
        let n = |v: Option<u64>| v.unwrap_or(0);
        let p = Policy {
            last: n(self.keep_last),
            hourly: n(self.keep_hourly),
            daily: n(self.keep_daily),
            weekly: n(self.keep_weekly),
            monthly: n(self.keep_monthly),
            yearly: n(self.keep_yearly),
            within,
        };
        Ok((!p.is_empty()).then_some(p))
    }

    /// How old a quarantine entry may get; `None` when unset.
    pub fn quarantine_older_than(&self, path: &Path) -> Result<Option<Duration>> {
        self.quarantine_older_than
            .as_deref()
            .map(|t| duration("retention.quarantine_older_than", t, path))
            .transpose()
    }
}

/// A duration such as `30d` or `12h`, named by `key` in errors.
fn duration(key: &str, text: &str, path: &Path) -> Result<Duration> {
    humantime::parse_duration(text.trim()).map_err(|e| Error::Config {
        path: path.to_owned(),
        message: format!("{key} = {text:?}: {e} (examples: 30d, 12h)"),
    })
}

/// `[remote]` table: where the encrypted replica lives. Credentials are
/// never here: they come from the AWS environment variables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteConfig {
    /// `s3://BUCKET/PREFIX`.
    pub url: String,
    /// An S3-compatible endpoint (`http://127.0.0.1:9000`); unset: AWS.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The region (default `us-east-1`).
    #[serde(default)]
    pub region: Option<String>,
}

impl RemoteConfig {
    /// Where the remote is, checked.
    pub fn location(&self) -> std::result::Result<Location, String> {
        Location::parse(&self.url, self.endpoint.as_deref(), self.region.as_deref())
    }
}

/// What wake does when the remote witness cannot be reached
/// (`[policy] witness`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WitnessPolicy {
    /// Warn `witness-unreachable`, and start.
    #[default]
    Warn,
    /// Halt: without the witness, a rollback cannot be ruled out.
    Halt,
}

/// `[policy]` table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Action on `drifted` (default `accept`).
    #[serde(default)]
    pub drifted: Option<String>,
    /// Action on `tampered` (default `halt`).
    #[serde(default)]
    pub tampered: Option<String>,
    /// `migrate` or `warn` (default) when the soul needs a migration.
    #[serde(default, rename = "needs-migration")]
    pub needs_migration: Option<String>,
    /// `warn` (default) or `halt` when the remote witness cannot be reached.
    #[serde(default)]
    pub witness: Option<String>,
    /// `revert` (default) or `halt` when a protected path changed.
    #[serde(default)]
    pub protected: Option<String>,
}

fn default_platform() -> String {
    Platform::Telegram.as_str().into()
}

impl Config {
    /// A new config for `soul`, bound to the account `cred` proves.
    pub fn new(soul: &str, cred: &Credential) -> Self {
        Config {
            soul: soul.to_owned(),
            platform: cred.platform().as_str().to_owned(),
            token_env: cred.platform().default_token_env().to_owned(),
            bot_id: cred.account_id(),
            exclude: Vec::new(),
            protect: Vec::new(),
            max_age: None,
            policy: PolicyConfig::default(),
            reads: None,
            migrations: None,
            remote: None,
            retention: None,
        }
    }

    /// `[policy] witness`.
    pub fn witness_policy(&self, path: &Path) -> Result<WitnessPolicy> {
        match self.policy.witness.as_deref() {
            None | Some("warn") => Ok(WitnessPolicy::Warn),
            Some("halt") => Ok(WitnessPolicy::Halt),
            Some(t) => Err(Error::Config {
                path: path.to_owned(),
                message: format!("policy.witness = {t:?}: expected warn or halt"),
            }),
        }
    }

    /// Parses and checks config text; `path` names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let mut config: Config = toml::from_str(text).map_err(|e| Error::Config {
            path: path.to_owned(),
            message: located(text, &e),
        })?;
        let Some(platform) = Platform::parse(&config.platform) else {
            let known: Vec<String> = Platform::ALL
                .iter()
                .map(|(_, n)| format!("{n:?}"))
                .collect();
            return Err(Error::Config {
                path: path.to_owned(),
                message: format!(
                    "platform {:?} is not supported; use {}",
                    config.platform,
                    known.join(" or ")
                ),
            });
        };
        if config.token_env.is_empty() {
            config.token_env = platform.default_token_env().to_owned();
        }
        // The values are well typed; check what they say, naming the line.
        let at = |key: &str, e: Error| match (e, locate_key(text, key)) {
            (Error::Config { path, message }, Some((line, column))) => Error::Config {
                path,
                message: format!("line {line}, column {column}: {message}"),
            },
            (e, _) => e,
        };
        if let Err(e) = config.policies(path) {
            let p = &config.policy;
            let bad = |v: &Option<String>| v.as_deref().is_some_and(|t| Action::parse(t).is_none());
            let key = if bad(&p.drifted) {
                "policy.drifted"
            } else if bad(&p.tampered) {
                "policy.tampered"
            } else if p
                .protected
                .as_deref()
                .is_some_and(|t| ProtectPolicy::parse(t).is_none())
            {
                "policy.protected"
            } else {
                "policy.needs-migration"
            };
            return Err(at(key, e));
        }
        config.max_age(path).map_err(|e| at("max_age", e))?;
        config
            .witness_policy(path)
            .map_err(|e| at("policy.witness", e))?;
        if let Some(r) = &config.remote {
            r.location().map_err(|message| {
                at(
                    "remote",
                    Error::Config {
                        path: path.to_owned(),
                        message,
                    },
                )
            })?;
        }
        config.reads(path).map_err(|e| at("reads", e))?;
        if let Some(r) = &config.retention {
            r.policy(path).map_err(|e| at("retention.keep_within", e))?;
            r.quarantine_older_than(path)
                .map_err(|e| at("retention.quarantine_older_than", e))?;
        }
        Excludes::new(&config.exclude).map_err(|message| {
            at(
                "exclude",
                Error::Config {
                    path: path.to_owned(),
                    message,
                },
            )
        })?;
        config.protect_globs(path).map_err(|e| at("protect", e))?;
        Ok(config)
    }

    /// The policies this config sets, over the defaults.
    pub fn policies(&self, path: &Path) -> Result<Policies> {
        let mut p = Policies::default();
        let parse = |verdict: &str, v: &Option<String>| -> Result<Option<Action>> {
            v.as_deref()
                .map(|t| {
                    Action::parse(t).ok_or_else(|| Error::Config {
                        path: path.to_owned(),
                        message: format!(
                            "policy.{verdict} = {t:?}: expected accept, rollback or halt"
                        ),
                    })
                })
                .transpose()
        };
        if let Some(a) = parse("drifted", &self.policy.drifted)? {
            p.drifted = a;
        }
        if let Some(a) = parse("tampered", &self.policy.tampered)? {
            p.tampered = a;
        }
        if let Some(t) = self.policy.protected.as_deref() {
            p.protected = ProtectPolicy::parse(t).ok_or_else(|| Error::Config {
                path: path.to_owned(),
                message: format!("policy.protected = {t:?}: expected revert or halt"),
            })?;
        }
        if let Some(t) = self.policy.needs_migration.as_deref() {
            p.needs_migration = MigrationPolicy::parse(t).ok_or_else(|| Error::Config {
                path: path.to_owned(),
                message: format!("policy.needs-migration = {t:?}: expected migrate or warn"),
            })?;
        }
        Ok(p)
    }

    /// The compiled `protect` globs.
    pub(crate) fn protect_globs(&self, path: &Path) -> Result<Protect> {
        Protect::new(&self.protect).map_err(|message| Error::Config {
            path: path.to_owned(),
            message,
        })
    }

    /// The soul formats the shell reads, if the config says.
    pub fn reads(&self, path: &Path) -> Result<Option<Reads>> {
        self.reads
            .as_deref()
            .map(|t| {
                Reads::parse(t).map_err(|message| Error::Config {
                    path: path.to_owned(),
                    message: format!("reads = {t:?}: {message}"),
                })
            })
            .transpose()
    }

    /// `max_age` as a duration; `None` means never stale.
    pub fn max_age(&self, path: &Path) -> Result<Option<Duration>> {
        match self.max_age.as_deref() {
            None => Ok(Some(DEFAULT_MAX_AGE)),
            Some(t) => parse_max_age(t).map_err(|message| Error::Config {
                path: path.to_owned(),
                message,
            }),
        }
    }

    /// The platform the config names (checked when it was parsed).
    pub fn platform(&self) -> Platform {
        Platform::parse(&self.platform).unwrap_or(Platform::Telegram)
    }

    /// The file text, with comments for people.
    pub fn to_toml(&self) -> String {
        let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let mut out = String::new();
        out.push_str("# selfsame vault configuration. See `selfsame --help`.\n");
        out.push_str("# Soul directory, relative to the directory that holds .selfsame/.\n");
        out.push_str(&format!("soul = {}\n", q(&self.soul)));
        out.push_str(
            "# Platform of the bot whose token binds the vault: \"telegram\" or \"discord\".\n",
        );
        out.push_str(&format!("platform = {}\n", q(&self.platform)));
        out.push_str("# Env var holding the bot token (never stored here).\n");
        out.push_str(&format!("token_env = {}\n", q(&self.token_env)));
        out.push_str(&format!("bot_id = {}\n", self.bot_id));
        out.push_str(
            "# Soul paths to leave out: `*` stays within a path segment, `**` crosses them.\n",
        );
        let ex: Vec<String> = self.exclude.iter().map(|e| q(e)).collect();
        out.push_str(&format!("exclude = [{}]\n", ex.join(", ")));
        out.push_str(
            "# Soul paths whose changes no seal adopts until the owner approves them\n# (same globs; a directory protects everything below it).\n",
        );
        if self.protect.is_empty() {
            out.push_str("# protect = [\"SOUL.md\", \"IDENTITY.md\"]\n");
        } else {
            let pr: Vec<String> = self.protect.iter().map(|e| q(e)).collect();
            out.push_str(&format!("protect = [{}]\n", pr.join(", ")));
        }
        out.push_str(
            "# Warn `stale` when the newest checkpoint is older than this (\"0\" = never).\n",
        );
        out.push_str(&format!(
            "max_age = {}\n",
            q(self.max_age.as_deref().unwrap_or("7d"))
        ));
        out.push_str("# Soul formats this shell reads, e.g. \"v2..v4\" (unset: not checked).\n");
        match &self.reads {
            Some(r) => out.push_str(&format!("reads = {}\n", q(r))),
            None => out.push_str("# reads = \"v1\"\n"),
        }
        out.push_str("# Directory of migration executables v<N>-<slug>, beside .selfsame/.\n");
        match &self.migrations {
            Some(m) => out.push_str(&format!("migrations = {}\n", q(m))),
            None => out.push_str("# migrations = \"migrations\"\n"),
        }
        out.push_str(
            "\n# What `selfsame wake` does per verdict: accept, rollback or halt.\n[policy]\n",
        );
        out.push_str(&format!(
            "drifted = {}\n",
            q(self.policy.drifted.as_deref().unwrap_or("accept"))
        ));
        out.push_str(&format!(
            "tampered = {}\n",
            q(self.policy.tampered.as_deref().unwrap_or("halt"))
        ));
        if let Some(m) = &self.policy.needs_migration {
            out.push_str(&format!("needs-migration = {}\n", q(m)));
        }
        out.push_str(
            "# When a protected path changed: revert (put the approved version back) or halt.\n",
        );
        match &self.policy.protected {
            Some(p) => out.push_str(&format!("protected = {}\n", q(p))),
            None => out.push_str("# protected = \"revert\"\n"),
        }
        if let Some(w) = &self.policy.witness {
            out.push_str(&format!("witness = {}\n", q(w)));
        }
        out.push_str(&self.retention_toml());
        if let Some(r) = &self.remote {
            out.push_str("\n# The encrypted replica and rollback witness (credentials: AWS_* env).\n[remote]\n");
            out.push_str(&format!("url = {}\n", q(&r.url)));
            if let Some(e) = &r.endpoint {
                out.push_str(&format!("endpoint = {}\n", q(e)));
            }
            if let Some(g) = &r.region {
                out.push_str(&format!("region = {}\n", q(g)));
            }
        }
        out
    }
}

impl Config {
    /// The `[retention]` table as text (a commented example when unset).
    fn retention_toml(&self) -> String {
        let Some(r) = &self.retention else {
            return "\n# Forget old snapshots and prune them after each seal of `selfsame run`\n\
                    # (restic's meanings), and drop old quarantine entries. Unset: never.\n\
                    # [retention]\n# keep_last = 12\n# keep_hourly = 24\n\
                    # quarantine_older_than = \"30d\"\n"
                .to_owned();
        };
        let mut out =
            String::from("\n# Forget and prune after each seal of `selfsame run`.\n[retention]\n");
        for (key, v) in [
            ("keep_last", r.keep_last),
            ("keep_hourly", r.keep_hourly),
            ("keep_daily", r.keep_daily),
            ("keep_weekly", r.keep_weekly),
            ("keep_monthly", r.keep_monthly),
            ("keep_yearly", r.keep_yearly),
        ] {
            if let Some(n) = v {
                out.push_str(&format!("{key} = {n}\n"));
            }
        }
        for (key, v) in [
            ("keep_within", &r.keep_within),
            ("quarantine_older_than", &r.quarantine_older_than),
        ] {
            if let Some(t) = v {
                out.push_str(&format!("{key} = {}\n", toml::Value::String(t.clone())));
            }
        }
        out
    }
}

/// `text` (a `config.toml`) moved to another account: its `platform`,
/// `token_env` and `bot_id` lines rewritten in place, everything else
/// (comments, order, other keys) kept; a key the file does not set is
/// added before its first table.
pub fn with_account(text: &str, platform: Platform, bot_id: u64, token_env: &str) -> String {
    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let values = [
        ("platform", q(platform.as_str())),
        ("token_env", q(token_env)),
        ("bot_id", bot_id.to_string()),
    ];
    let mut set = [false; 3];
    let mut out = String::new();
    let mut in_table = false;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with('[') && !in_table {
            in_table = true;
            for (i, (k, v)) in values.iter().enumerate() {
                if !set[i] {
                    out.push_str(&format!("{k} = {v}\n"));
                    set[i] = true;
                }
            }
        }
        let key = t.split_once('=').map(|(k, _)| k.trim());
        match values.iter().position(|(k, _)| Some(*k) == key) {
            Some(i) if !in_table => {
                let (k, v) = &values[i];
                out.push_str(&format!("{k} = {v}\n"));
                set[i] = true;
            }
            _ => out.push_str(line),
        }
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    for (i, (k, v)) in values.iter().enumerate() {
        if !set[i] {
            out.push_str(&format!("{k} = {v}\n"));
        }
    }
    out
}

/// A TOML or type error as one line: where (line, column and key, when
/// the error has a position), what, and what the key takes.
fn located(text: &str, e: &toml::de::Error) -> String {
    let what = e.message().trim().replace('\n', "; ");
    // A missing field has no place of its own (its span is the document).
    let Some(span) = e.span().filter(|_| !what.starts_with("missing field")) else {
        return what;
    };
    let at = span.start.min(text.len());
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = text[..at].matches('\n').count() + 1;
    let column = text[line_start..at].chars().count() + 1;
    let mut out = format!("line {line}, column {column}");
    let key = key_at(text, at);
    if let Some(k) = &key {
        out.push_str(&format!(", key `{k}`"));
    }
    out.push_str(&format!(": {what}"));
    match key.as_deref().and_then(takes) {
        Some(hint) if !what.starts_with("unknown field") => {
            out.push_str(&format!("; `{}` takes {hint}", key.unwrap_or_default()))
        }
        _ => {}
    }
    out
}

/// Line and column (1-based) of the value of `key` (`table.key` inside a
/// table), if config text sets it.
fn locate_key(text: &str, key: &str) -> Option<(usize, usize)> {
    let mut offset = 0;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        if let Some(eq) = line.find('=') {
            let value = eq + 1 + (line[eq + 1..].len() - line[eq + 1..].trim_start().len());
            if key_at(text, offset + eq).as_deref() == Some(key) {
                return Some((n + 1, line[..value].chars().count() + 1));
            }
        }
        offset += line.len();
    }
    None
}

/// The key (`table.key` inside a table) whose `key = value` holds byte
/// `at`: the nearest such line at or above it, below the nearest table
/// header. Simple on purpose: config.toml is flat keys and one table.
fn key_at(text: &str, at: usize) -> Option<String> {
    let upto = &text[..text[at..].find('\n').map_or(text.len(), |i| at + i)];
    let mut table: Option<String> = None;
    let mut key = None;
    for line in upto.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            table = Some(name.trim().trim_matches('"').to_owned());
            key = None;
        } else if let Some((k, _)) = t.split_once('=') {
            let k = k.trim();
            let bare = !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            let quoted = k.len() >= 2 && k.starts_with('"') && k.ends_with('"');
            if bare || quoted {
                key = Some(k.trim_matches('"').to_owned());
            }
        }
    }
    let key = key?;
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key,
    })
}

/// What each key of config.toml takes, for people.
fn takes(key: &str) -> Option<&'static str> {
    Some(match key {
        "soul" => "a quoted path, e.g. soul = \"soul\"",
        "platform" => "\"telegram\" or \"discord\"",
        "token_env" => "the quoted name of an env var, e.g. token_env = \"TELEGRAM_BOT_TOKEN\"",
        "bot_id" => "the bot's numeric id, unquoted, e.g. bot_id = 123456",
        "exclude" => "a list of quoted globs, e.g. exclude = [\"cache/**\"]",
        "protect" => "a list of quoted globs, e.g. protect = [\"SOUL.md\"]",
        "max_age" => "a quoted duration, e.g. max_age = \"7d\" (\"0\" = never)",
        "reads" => "quoted soul formats, e.g. reads = \"v2..v4\"",
        "migrations" => "a quoted directory, e.g. migrations = \"migrations\"",
        "policy.drifted" | "policy.tampered" => "\"accept\", \"rollback\" or \"halt\"",
        "policy.needs-migration" => "\"migrate\" or \"warn\"",
        "policy.protected" => "\"revert\" or \"halt\"",
        _ => return None,
    })
}

impl Config {
    /// Parses a max age: a duration such as `7d` or `12h`; `0` means never.
    pub fn parse_max_age(text: &str) -> std::result::Result<Option<Duration>, String> {
        parse_max_age(text)
    }
}

/// Parses a max age: a duration such as `7d` or `12h`; `0` means never.
fn parse_max_age(text: &str) -> std::result::Result<Option<Duration>, String> {
    if text.trim() == "0" {
        return Ok(None);
    }
    humantime::parse_duration(text.trim())
        .map(Some)
        .map_err(|e| format!("max_age {text:?}: {e} (examples: 7d, 12h, 0)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_sets_a_policy_and_names_a_bad_duration_s_line() {
        let path = Path::new("config.toml");
        let base = "soul = \"soul\"\nbot_id = 7\n";
        let c = Config::parse(base, path).unwrap();
        assert_eq!(c.retention, None);
        let text = format!(
            "{base}[retention]\nkeep_last = 12\nkeep_hourly = 24\nkeep_within = \"2h\"\nquarantine_older_than = \"30d\"\n"
        );
        let c = Config::parse(&text, path).unwrap();
        let r = c.retention.as_ref().unwrap();
        let p = r.policy(path).unwrap().unwrap();
        assert_eq!((p.last, p.hourly, p.daily), (12, 24, 0));
        assert_eq!(p.within, Some(Duration::from_secs(7200)));
        assert_eq!(
            r.quarantine_older_than(path).unwrap(),
            Some(Duration::from_secs(30 * 86400))
        );
        // Written back, it reads the same.
        assert_eq!(
            Config::parse(&c.to_toml(), path).unwrap().retention,
            c.retention
        );
        // A table that keeps nothing sets no policy.
        let c = Config::parse(
            &format!("{base}[retention]\nquarantine_older_than = \"1d\"\n"),
            path,
        )
        .unwrap();
        assert_eq!(c.retention.unwrap().policy(path).unwrap(), None);
        let bad = format!("{base}[retention]\nquarantine_older_than = \"soon\"\n");
        let e = Config::parse(&bad, path).unwrap_err().to_string();
        assert!(
            e.contains("line 4") && e.contains("quarantine_older_than"),
            "{e}"
        );
        let bad = format!("{base}[retention]\nkeep_everything = true\n");
        assert!(Config::parse(&bad, path).is_err());
    }

    #[test]
    fn a_move_rewrites_the_account_lines_and_keeps_the_rest() {
        let path = Path::new("config.toml");
        let text = "# mine\nsoul = \"soul\"\nbot_id = 7   # the bot\nexclude = [\"a\"]\n\n[policy]\ndrifted = \"halt\"\n";
        let moved = with_account(text, Platform::Discord, 99, "DISCORD_BOT_TOKEN");
        assert_eq!(
            moved,
            "# mine\nsoul = \"soul\"\nbot_id = 99\nexclude = [\"a\"]\n\nplatform = \"discord\"\ntoken_env = \"DISCORD_BOT_TOKEN\"\n[policy]\ndrifted = \"halt\"\n"
        );
        let c = Config::parse(&moved, path).unwrap();
        assert_eq!(
            (c.platform(), c.bot_id, c.token_env.as_str()),
            (Platform::Discord, 99, "DISCORD_BOT_TOKEN")
        );
        assert_eq!(c.exclude, vec!["a".to_owned()]);
        assert_eq!(c.policy.drifted.as_deref(), Some("halt"));
        let full = Config::new(
            "soul",
            &crate::crypto::Credential::parse(Platform::Telegram, "7:x").unwrap(),
        )
        .to_toml();
        let c = Config::parse(&with_account(&full, Platform::Discord, 5, "T"), path).unwrap();
        assert_eq!(
            (c.platform(), c.bot_id, c.token_env.as_str()),
            (Platform::Discord, 5, "T")
        );
    }

    #[test]
    fn token_env_defaults_to_the_platform_s_and_unknown_platforms_are_named() {
        let path = Path::new("config.toml");
        let c = Config::parse("soul = \"soul\"\nbot_id = 7\n", path).unwrap();
        assert_eq!(
            (c.platform(), c.token_env.as_str()),
            (Platform::Telegram, "TELEGRAM_BOT_TOKEN")
        );
        let c = Config::parse(
            "soul = \"soul\"\nplatform = \"discord\"\nbot_id = 7\n",
            path,
        )
        .unwrap();
        assert_eq!(
            (c.platform(), c.token_env.as_str()),
            (Platform::Discord, "DISCORD_BOT_TOKEN")
        );
        let c = Config::parse(
            "soul = \"soul\"\nplatform = \"discord\"\ntoken_env = \"MY_TOKEN\"\nbot_id = 7\n",
            path,
        )
        .unwrap();
        assert_eq!(c.token_env, "MY_TOKEN");
        let e = Config::parse("soul = \"soul\"\nplatform = \"slack\"\nbot_id = 7\n", path)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"telegram\" or \"discord\""), "{e}");
    }
}
