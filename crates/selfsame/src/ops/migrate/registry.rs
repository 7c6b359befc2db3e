//! The migrations a shell knows: from the vault's migrations directory, or
//! registered in Rust.

use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::migration::Migration;
use super::script::Script;
use crate::error::{Error, IoContext, Result};
use crate::format::tags::check_format_tag;
use crate::vault::Vault;

/// The migrations directory, relative to the vault's parent, by default.
pub const DEFAULT_DIR: &str = "migrations";

/// The migrations a shell knows, by the tag each writes.
pub struct Registry {
    migrations: Vec<Box<dyn Migration>>,
    pub(crate) origin: PathBuf,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.migrations.iter().map(|m| m.name()).collect();
        f.debug_struct("Registry")
            .field("origin", &self.origin)
            .field("migrations", &names)
            .finish()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    /// An empty registry, for migrations written in Rust.
    pub fn new() -> Self {
        Registry {
            migrations: Vec::new(),
            origin: PathBuf::from("(migration registry)"),
        }
    }

    /// Adds a migration.
    pub fn register(&mut self, m: impl Migration + 'static) -> &mut Self {
        self.migrations.push(Box::new(m));
        self
    }

    /// The executables `v<N>-<slug>` in `dir` (none if `dir` is absent).
    /// Hidden files and names not starting with `v<digit>` are ignored;
    /// other misnamed or non-executable entries are a config error.
    pub fn from_dir(dir: &Path) -> Result<Registry> {
        let mut reg = Registry {
            migrations: Vec::new(),
            origin: dir.to_owned(),
        };
        let items = match fs::read_dir(dir) {
            Ok(items) => items,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(reg),
            Err(e) => return Err(e).at(dir),
        };
        let bad = |message: String| Error::Config {
            path: dir.to_owned(),
            message,
        };
        for item in items {
            let item = item.at(dir)?;
            let name = item.file_name().to_string_lossy().into_owned();
            let mut chars = name.chars();
            if chars.next() != Some('v') || !chars.next().is_some_and(|c| c.is_ascii_digit()) {
                continue;
            }
            let (tag, slug) = name.split_once('-').unwrap_or((name.as_str(), ""));
            let n = check_format_tag(tag)
                .ok()
                .filter(|_| !slug.is_empty())
                .ok_or_else(|| {
                    bad(format!(
                        "migration {name:?}: name it v<N>-<slug>, e.g. v2-rename-keys"
                    ))
                })?;
            if n < 2 {
                return Err(bad(format!(
                    "migration {name}: v1 is the first format; a migration writes v2 or later"
                )));
            }
            let path = item.path();
            let meta = fs::metadata(&path).at(&path)?;
            if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
                return Err(bad(format!(
                    "migration {name} is not an executable file (chmod +x it)"
                )));
            }
            reg.migrations.push(Box::new(Script { path, to: n }));
        }
        reg.migrations.sort_by_key(|m| (m.to(), m.name()));
        Ok(reg)
    }

    /// The vault's migrations directory: config `migrations`, default
    /// `migrations/` beside `.selfsame/`.
    pub fn for_vault(vault: &Vault) -> Result<Registry> {
        Registry::from_dir(&migrations_dir(vault))
    }

    /// Checks that no two migrations write the same tag and that the tags
    /// above `current` run contiguously from `current + 1`.
    pub fn check(&self, current: u32) -> Result<()> {
        let bad = |message: String| Error::Config {
            path: self.origin.clone(),
            message,
        };
        let mut sorted: Vec<(u32, String)> =
            self.migrations.iter().map(|m| (m.to(), m.name())).collect();
        sorted.sort();
        for w in sorted.windows(2) {
            if w[0].0 == w[1].0 {
                return Err(bad(format!(
                    "migrations {} and {} both write v{}; keep one",
                    w[0].1, w[1].1, w[0].0
                )));
            }
        }
        let pending: Vec<&(u32, String)> = sorted.iter().filter(|(n, _)| *n > current).collect();
        if let Some((first, name)) = pending.first() {
            if *first != current + 1 {
                return Err(bad(format!(
                    "the soul is v{current} but the first pending migration is {name}: nothing writes v{}",
                    current + 1
                )));
            }
        }
        for w in pending.windows(2) {
            if w[1].0 != w[0].0 + 1 {
                return Err(bad(format!(
                    "migrations {} and {} leave a gap: nothing writes v{}",
                    w[0].1,
                    w[1].1,
                    w[0].0 + 1
                )));
            }
        }
        Ok(())
    }

    /// The newest tag any migration writes.
    pub fn newest(&self) -> Option<u32> {
        self.migrations.iter().map(|m| m.to()).max()
    }

    /// The migrations from `from` up to `to`, in order (after [`check`]).
    ///
    /// [`check`]: Registry::check
    pub fn path(&self, from: u32, to: u32) -> Vec<&dyn Migration> {
        let mut steps: Vec<&dyn Migration> = self
            .migrations
            .iter()
            .filter(|m| m.to() > from && m.to() <= to)
            .map(|m| m.as_ref())
            .collect();
        steps.sort_by_key(|m| m.to());
        steps
    }
}

/// The vault's migrations directory.
pub(crate) fn migrations_dir(vault: &Vault) -> PathBuf {
    vault
        .base()
        .join(vault.config.migrations.as_deref().unwrap_or(DEFAULT_DIR))
}
