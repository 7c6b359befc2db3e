//! What a migration is: a function over a staging dir, from one soul
//! format to the next.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

/// Why a migration did not bring the staging dir to its format. Its text
/// goes to history and to the owner.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrationError {
    /// The migration's own account of what went wrong.
    #[error("{0}")]
    Failed(String),
    /// The executable could not be started.
    #[error("cannot run {}: {source}", .path.display())]
    Spawn {
        /// The executable.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The executable exited unsuccessfully.
    #[error("{name} {status}")]
    Exit {
        /// The migration.
        name: String,
        /// How it ended.
        status: ExitStatus,
    },
    /// Waiting for the executable failed.
    #[error("waiting for {name}: {source}")]
    Wait {
        /// The migration.
        name: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// It ran past its time and was killed.
    #[error("{name} timed out after {} and was killed, with every process it started", humantime::format_duration(*.after))]
    Timeout {
        /// The migration.
        name: String,
        /// Its time limit.
        after: Duration,
    },
    /// What it left cannot be sealed (its reason).
    #[error("the migrated soul cannot be sealed: {0}")]
    Unsealable(String),
    /// It created a name the soul keeps out of checkpoints.
    #[error("the migration created {0:?}, a name the soul keeps out of checkpoints (excluded, or the vault)")]
    KeptName(std::ffi::OsString),
    /// Its staging dir is no longer the one the step made.
    #[error("{0}")]
    StagingReplaced(String),
}

impl From<String> for MigrationError {
    fn from(text: String) -> Self {
        MigrationError::Failed(text)
    }
}

impl From<&str> for MigrationError {
    fn from(text: &str) -> Self {
        MigrationError::Failed(text.to_owned())
    }
}

/// What a migration gets besides its staging dir.
#[derive(Debug, Clone)]
pub struct MigrationContext {
    /// The format it reads, e.g. `v1`.
    pub from: String,
    /// The format it writes, e.g. `v2`.
    pub to: String,
    /// How long it may run.
    pub timeout: Duration,
    /// Env vars not passed to a child process (the token's).
    pub hide_env: Vec<String>,
}

/// One migration: from format `to() - 1` to `to()`, a function over the
/// staging dir (a full copy of the soul). Ok means the staging dir now holds
/// the soul at `to()`; Err says why not, for history and the owner.
pub trait Migration: Send + Sync {
    /// The format tag number this migration writes (2 for `v2`).
    fn to(&self) -> u32;
    /// Its name, e.g. `v2-rename-keys`.
    fn name(&self) -> String;
    /// Rewrites the staging dir `soul` from `ctx.from` to `ctx.to`.
    fn apply(&self, soul: &Path, ctx: &MigrationContext) -> Result<(), MigrationError>;
}

/// A migration written in Rust: a name, the tag it writes, a function.
pub struct FnMigration<F> {
    to: u32,
    name: String,
    f: F,
}

/// Wraps a Rust function as a [`Migration`] writing format `v<to>`.
pub fn migration<F>(name: &str, to: u32, f: F) -> FnMigration<F>
where
    F: Fn(&Path) -> Result<(), MigrationError> + Send + Sync,
{
    FnMigration {
        to,
        name: name.to_owned(),
        f,
    }
}

impl<F> Migration for FnMigration<F>
where
    F: Fn(&Path) -> Result<(), MigrationError> + Send + Sync,
{
    fn to(&self) -> u32 {
        self.to
    }
    fn name(&self) -> String {
        self.name.clone()
    }
    fn apply(&self, soul: &Path, _ctx: &MigrationContext) -> Result<(), MigrationError> {
        (self.f)(soul)
    }
}
