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

/// The `protect` globs of `config.toml`: soul paths no seal adopts a
/// change of without the owner's approval. Same syntax as `exclude`; a
/// matched directory protects everything below it.
#[derive(Debug, Clone)]
pub struct Protect {
    set: GlobSet,
    patterns: Vec<String>,
}

impl Protect {
    /// Compiles patterns as [`Excludes::new`] does.
    pub fn new(patterns: &[String]) -> Result<Self, String> {
        let mut set = GlobSetBuilder::new();
        for p in patterns {
            if p.is_empty() || p.starts_with('/') || p.split('/').any(|s| s == "..") {
                return Err(format!(
                    "protect pattern {p:?}: give a path relative to the soul, without `..`"
                ));
            }
            let glob = GlobBuilder::new(p)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| format!("protect pattern {p:?}: {e}"))?;
            set.add(glob);
        }
        let set = set.build().map_err(|e| e.to_string())?;
        Ok(Protect {
            set,
            patterns: patterns.to_vec(),
        })
    }

    /// Whether nothing is protected.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether the soul path `rel` is protected: it, or a directory above
    /// it, matches a pattern.
    pub fn covers(&self, rel: &str) -> bool {
        if self.patterns.is_empty() {
            return false;
        }
        let mut end = rel.len();
        loop {
            if self.set.is_match(&rel[..end]) {
                return true;
            }
            match rel[..end].rfind('/') {
                Some(i) => end = i,
                None => return false,
            }
        }
    }

    /// Where each pattern can match, for a look that does not walk the
    /// whole soul: a literal pattern names one path ([`Root::Path`]); a
    /// glob can match only below the directory its literal leading
    /// segments name ([`Root::Below`], `""` for the soul itself).
    pub fn roots(&self) -> Vec<Root> {
        let mut out: Vec<Root> = Vec::new();
        for p in &self.patterns {
            let segments: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
            let literal = segments.iter().take_while(|s| !is_glob(s)).count();
            let root = if literal == segments.len() {
                Root::Path(segments.join("/"))
            } else {
                Root::Below(segments[..literal].join("/"))
            };
            if !out.contains(&root) {
                out.push(root);
            }
        }
        out
    }
}

/// Where a protect pattern can match (see [`Protect::roots`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// Exactly this path (and, when it is a directory, everything below).
    Path(String),
    /// Anything below this directory (`""`: the soul).
    Below(String),
}

/// Whether a pattern segment holds glob syntax.
fn is_glob(segment: &str) -> bool {
    segment
        .bytes()
        .any(|b| matches!(b, b'*' | b'?' | b'[' | b']' | b'{' | b'}' | b'\\'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protect(p: &[&str]) -> Protect {
        Protect::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn a_matched_directory_protects_everything_below_it() {
        let p = protect(&["SOUL.md", "prompts", "rules/*.md"]);
        assert!(p.covers("SOUL.md"));
        assert!(!p.covers("SOUL.md.bak"));
        assert!(!p.covers("memory/SOUL.md"));
        assert!(p.covers("prompts"));
        assert!(p.covers("prompts/a/b.txt"));
        assert!(p.covers("rules/x.md"));
        assert!(!p.covers("rules/deep/x.md"));
        assert!(p.covers("rules/x.md/inner"));
        assert!(!protect(&[]).covers("SOUL.md"));
    }

    #[test]
    fn roots_name_a_path_or_the_directory_a_glob_lies_below() {
        let p = protect(&["SOUL.md", "a/b/*.md", "**/X", "a/b/*.md"]);
        assert_eq!(
            p.roots(),
            vec![
                Root::Path("SOUL.md".into()),
                Root::Below("a/b".into()),
                Root::Below(String::new())
            ]
        );
    }

    #[test]
    fn absolute_and_parent_patterns_are_refused() {
        for bad in ["/SOUL.md", "../x", "a/../b", ""] {
            assert!(Protect::new(&[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
