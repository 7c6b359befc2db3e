//! What a migration is: a function over a staging dir, from one soul
//! format to the next.

use std::path::Path;
use std::time::Duration;

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
    fn apply(&self, soul: &Path, ctx: &MigrationContext) -> std::result::Result<(), String>;
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
    F: Fn(&Path) -> std::result::Result<(), String> + Send + Sync,
{
    FnMigration {
        to,
        name: name.to_owned(),
        f,
    }
}

impl<F> Migration for FnMigration<F>
where
    F: Fn(&Path) -> std::result::Result<(), String> + Send + Sync,
{
    fn to(&self) -> u32 {
        self.to
    }
    fn name(&self) -> String {
        self.name.clone()
    }
    fn apply(&self, soul: &Path, _ctx: &MigrationContext) -> std::result::Result<(), String> {
        (self.f)(soul)
    }
}
