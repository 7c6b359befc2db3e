//! The `exclude` globs of `config.toml`: soul paths left out of the
//! manifest. `*` stays within a path segment, `**` crosses segments.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// The compiled `exclude` globs of the config.
#[derive(Debug, Clone)]
pub struct Excludes(GlobSet);

impl Excludes {
    /// Compiles patterns: `*` stays within a segment, `**` crosses them.
    pub fn new(patterns: &[String]) -> Result<Self, String> {
        let mut set = GlobSetBuilder::new();
        for p in patterns {
            let glob = GlobBuilder::new(p)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| format!("exclude pattern {p:?}: {e}"))?;
            set.add(glob);
        }
        set.build().map(Excludes).map_err(|e| e.to_string())
    }

    /// No exclusions.
    pub fn none() -> Self {
        Excludes(GlobSet::empty())
    }

    /// Whether a relative path is excluded.
    pub fn matches(&self, rel: &str) -> bool {
        !self.0.is_empty() && self.0.is_match(rel)
    }
}
