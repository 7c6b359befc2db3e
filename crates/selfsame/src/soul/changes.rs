//! The change summary between two manifests, and the one view of it that
//! every record and message shows.
//!
//! [`Changes`] holds every changed path by kind. [`ChangeSummary`] is what
//! history events (`changes`), alerts and `selfsame log` carry: each kind's
//! count and its first paths; its [`text`](ChangeSummary::text) is the
//! sentence seal and wake reports print. Every view walks
//! [`ChangeKind::ALL`], so no kind of change can be left out of one.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::statcache::{Comparison, Seen};
use crate::format::{Entry, Kind, Manifest};

/// Added, removed, modified and mode-changed paths between two manifests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Changes {
    /// Paths only in the new manifest.
    pub added: Vec<String>,
    /// Paths only in the old manifest.
    pub removed: Vec<String>,
    /// Paths whose content or kind changed.
    pub modified: Vec<String>,
    /// Files and directories whose permission bits changed, content
    /// equal (between version 1 manifests: a file's execute bit).
    pub mode_changed: Vec<String>,
}

/// One kind of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Only in the new manifest.
    Added,
    /// Only in the old manifest.
    Removed,
    /// Content or kind changed.
    Modified,
    /// Permission bits changed, content equal.
    ModeChanged,
}

impl ChangeKind {
    /// Every kind, in the order the views list them.
    pub const ALL: [ChangeKind; 4] = [
        ChangeKind::Added,
        ChangeKind::Removed,
        ChangeKind::Modified,
        ChangeKind::ModeChanged,
    ];

    /// The JSON key: `added`, `removed`, `modified`, `mode_changed`.
    pub fn key(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Modified => "modified",
            ChangeKind::ModeChanged => "mode_changed",
        }
    }

    /// For people: `added`, `removed`, `modified`, `mode changed`.
    pub fn label(self) -> &'static str {
        match self {
            ChangeKind::ModeChanged => "mode changed",
            other => other.key(),
        }
    }
}

/// How many paths of each kind a [`ChangeSummary`] lists.
pub const SUMMARY_PATHS: usize = 10;

/// The change summary as history events, alerts and `selfsame log` show
/// it: how many paths of each kind changed, and the first
/// ten of each. In JSON: `{"added": N, "removed": N,
/// "modified": N, "mode_changed": N, "paths": {"added": [...], ...}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChangeSummary {
    /// Paths added.
    pub added: usize,
    /// Paths removed.
    pub removed: usize,
    /// Paths modified.
    pub modified: usize,
    /// Files and directories whose permission bits changed.
    pub mode_changed: usize,
    /// The first paths of each kind.
    pub paths: Changes,
}

impl ChangeSummary {
    /// Reads a summary recorded in history (`changes`); `None` if it is not
    /// one.
    pub fn from_value(v: &Value) -> Option<ChangeSummary> {
        serde_json::from_value(v.clone()).ok()
    }

    /// The JSON value history records.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("a change summary serializes")
    }

    /// How many paths of `kind` changed.
    pub fn count(&self, kind: ChangeKind) -> usize {
        match kind {
            ChangeKind::Added => self.added,
            ChangeKind::Removed => self.removed,
            ChangeKind::Modified => self.modified,
            ChangeKind::ModeChanged => self.mode_changed,
        }
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        ChangeKind::ALL.iter().all(|&k| self.count(k) == 0)
    }

    /// One sentence such as `0 added, 0 removed, 2 modified, 1 mode changed
    /// (memory.jsonl, notes/a.md, …)`: every kind with a count (mode changes
    /// only when there are some), then the first three paths, modified
    /// first.
    pub fn text(&self) -> String {
        if self.is_empty() {
            return "no changes".into();
        }
        let mut counts = Vec::new();
        for kind in ChangeKind::ALL {
            let n = self.count(kind);
            if kind != ChangeKind::ModeChanged || n > 0 {
                counts.push(format!("{n} {}", kind.label()));
            }
        }
        let mut first: Vec<&str> = Vec::new();
        for kind in [
            ChangeKind::Modified,
            ChangeKind::Added,
            ChangeKind::Removed,
            ChangeKind::ModeChanged,
        ] {
            first.extend(self.paths.paths(kind).iter().map(String::as_str));
        }
        let total: usize = ChangeKind::ALL.iter().map(|&k| self.count(k)).sum();
        first.truncate(3);
        format!(
            "{} ({}{})",
            counts.join(", "),
            first.join(", "),
            if total > first.len() { ", …" } else { "" }
        )
    }

    /// One line per kind that changed, such as `mode changed: run.sh`, with
    /// `…` when more paths changed than are listed.
    pub fn lines(&self) -> Vec<String> {
        ChangeKind::ALL
            .iter()
            .filter(|&&k| self.count(k) > 0)
            .map(|&k| {
                let listed = self.paths.paths(k);
                let more = if self.count(k) > listed.len() {
                    ", …"
                } else {
                    ""
                };
                format!("{}: {}{more}", k.label(), listed.join(", "))
            })
            .collect()
    }
}

impl Changes {
    /// The paths of one kind.
    pub fn paths(&self, kind: ChangeKind) -> &[String] {
        match kind {
            ChangeKind::Added => &self.added,
            ChangeKind::Removed => &self.removed,
            ChangeKind::Modified => &self.modified,
            ChangeKind::ModeChanged => &self.mode_changed,
        }
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        ChangeKind::ALL.iter().all(|&k| self.paths(k).is_empty())
    }

    /// Total number of changed paths.
    pub fn len(&self) -> usize {
        ChangeKind::ALL.iter().map(|&k| self.paths(k).len()).sum()
    }

    /// The summary every record and message shows.
    pub fn summarize(&self) -> ChangeSummary {
        let first = |kind| {
            self.paths(kind)
                .iter()
                .take(SUMMARY_PATHS)
                .cloned()
                .collect()
        };
        ChangeSummary {
            added: self.added.len(),
            removed: self.removed.len(),
            modified: self.modified.len(),
            mode_changed: self.mode_changed.len(),
            paths: Changes {
                added: first(ChangeKind::Added),
                removed: first(ChangeKind::Removed),
                modified: first(ChangeKind::Modified),
                mode_changed: first(ChangeKind::ModeChanged),
            },
        }
    }

    /// The summary's sentence, e.g. `0 added, 0 removed, 1 modified
    /// (memory.jsonl)`: see [`ChangeSummary::text`].
    pub fn summary(&self) -> String {
        self.summarize().text()
    }
}

/// Compares two manifests. Permission bits are compared when both record
/// them (version 2); otherwise only a file's execute bit, as version 1
/// records it.
pub fn changes(old: &Manifest, new: &Manifest) -> Changes {
    let modes = old.version.has_modes() && new.version.has_modes();
    use std::cmp::Ordering;
    let mut c = Changes::default();
    let (mut a, mut b) = (old.entries.iter().peekable(), new.entries.iter().peekable());
    loop {
        let ord = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) => x.path.as_bytes().cmp(y.path.as_bytes()),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => return c,
        };
        match ord {
            Ordering::Less => c.removed.extend(a.next().map(|x| x.path.clone())),
            Ordering::Greater => c.added.extend(b.next().map(|y| y.path.clone())),
            Ordering::Equal => {
                let (x, y) = (a.next().expect("peeked"), b.next().expect("peeked"));
                c.note((x.kind, x.hash, x.size, x.mode), y, modes);
            }
        }
    }
}

/// The changes from the manifest the stat cache recorded to `new`, taken
/// from the comparison the scan made with the cache (`new` is that scan's
/// manifest): only the entries the records did not settle are looked at,
/// so a seal after a small change to a big soul does not compare 100,000
/// entries again. Meaningful when the cache recorded the head's manifest.
/// `modes` says whether the cache's manifest recorded permission bits.
pub fn changes_since(cmp: &Comparison, new: &Manifest, modes: bool) -> Changes {
    let modes = modes && new.version.has_modes();
    let mut c = Changes {
        removed: cmp.gone.clone(),
        ..Changes::default()
    };
    let mut prior = cmp.prior.iter().peekable();
    for (i, e) in new.entries.iter().enumerate() {
        match prior.next_if(|p| p.index == i) {
            Some(p) => c.note((p.kind, p.hash, p.size, p.mode), e, modes),
            None if cmp.seen.get(i) == Some(&Seen::Unknown) => c.added.push(e.path.clone()),
            None => {}
        }
    }
    c
}

impl Changes {
    /// Records what happened to the entry at `new.path`, which was
    /// `(kind, hash, size, mode)` before; modes count when `modes`.
    fn note(
        &mut self,
        (kind, hash, size, mode): (Kind, [u8; 32], u64, u32),
        new: &Entry,
        modes: bool,
    ) {
        let same_mode = !modes || mode == new.mode;
        let file = |k| matches!(k, Kind::File | Kind::Exec);
        if kind == new.kind && hash == new.hash && size == new.size && same_mode {
        } else if (kind == new.kind || (file(kind) && file(new.kind)))
            && hash == new.hash
            && size == new.size
        {
            self.mode_changed.push(new.path.clone());
        } else {
            self.modified.push(new.path.clone());
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry() -> impl Strategy<Value = Entry> {
        (0u8..4, 0u8..3, 0u64..3, 0usize..3, "[ab]{1,2}(/[ab]{1,2})?").prop_map(
            |(k, h, size, m, path)| {
                let kind = [Kind::File, Kind::Exec, Kind::Symlink, Kind::Dir][k as usize];
                let dir = kind == Kind::Dir;
                let mode = match kind {
                    Kind::Exec => [0o755, 0o700, 0o4755][m],
                    _ => [0o644, 0o600, 0o700][m],
                };
                Entry {
                    kind,
                    mode,
                    hash: if dir { [0; 32] } else { [h; 32] },
                    size: if dir { 0 } else { size },
                    path,
                }
            },
        )
    }

    /// Small manifests whose paths collide often, so every kind of change
    /// shows up.
    pub(crate) fn manifest() -> impl Strategy<Value = Manifest> {
        proptest::collection::vec(entry(), 0..12).prop_map(|mut v| {
            v.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
            v.dedup_by(|a, b| a.path == b.path);
            Manifest::of(crate::format::manifest::Version::V2, v)
        })
    }

    #[test]
    fn each_kind_of_change_is_named() {
        use crate::format::manifest::Version;
        let e = |kind, mode, h: u8, path: &str| Entry {
            kind,
            mode,
            hash: [h; 32],
            size: 1,
            path: path.into(),
        };
        let old = vec![
            e(Kind::File, 0o644, 1, "a"),
            e(Kind::File, 0o644, 1, "b"),
            e(Kind::File, 0o644, 1, "c"),
            e(Kind::File, 0o600, 1, "p"),
        ];
        let new = vec![
            e(Kind::Exec, 0o755, 1, "a"),
            e(Kind::File, 0o644, 2, "b"),
            e(Kind::File, 0o644, 1, "d"),
            e(Kind::File, 0o644, 1, "p"),
        ];
        for (version, chmodded) in [(Version::V1, vec!["a"]), (Version::V2, vec!["a", "p"])] {
            let old = Manifest::of(version, old.clone());
            let new = Manifest::of(version, new.clone());
            let c = changes(&old, &new);
            assert_eq!(c.mode_changed, chmodded, "{version:?}");
            assert_eq!(c.modified, ["b"]);
            assert_eq!(c.removed, ["c"]);
            assert_eq!(c.added, ["d"]);
            assert!(changes(&new, &new).is_empty());
        }
        // Between a version 1 head and a version 2 scan only the exec bit
        // can be compared: `0600` is no change from what v1 recorded.
        let c = changes(
            &Manifest::of(Version::V1, old),
            &Manifest::of(Version::V2, new),
        );
        assert_eq!(c.mode_changed, ["a"]);
    }

    /// The summary history, alerts and `log` share: an execute-bit change
    /// alone is counted, listed and named in each form, and the JSON is
    /// byte for byte the history format of docs/FORMAT.md.
    #[test]
    fn the_summary_names_a_mode_change_alone() {
        let c = Changes {
            mode_changed: vec!["run.sh".into()],
            ..Changes::default()
        };
        let s = c.summarize();
        assert!(!s.is_empty());
        assert_eq!(
            s.to_value().to_string(),
            r#"{"added":0,"mode_changed":1,"modified":0,"paths":{"added":[],"mode_changed":["run.sh"],"modified":[],"removed":[]},"removed":0}"#
        );
        assert_eq!(ChangeSummary::from_value(&s.to_value()), Some(s.clone()));
        assert_eq!(
            s.text(),
            "0 added, 0 removed, 0 modified, 1 mode changed (run.sh)"
        );
        assert_eq!(c.summary(), s.text());
        assert_eq!(s.lines(), ["mode changed: run.sh"]);
    }

    #[test]
    fn the_summary_lists_the_first_paths_and_says_when_there_are_more() {
        let many: Vec<String> = (0..12).map(|i| format!("f{i:02}")).collect();
        let c = Changes {
            added: many.clone(),
            modified: vec!["m".into()],
            ..Changes::default()
        };
        let s = c.summarize();
        assert_eq!(s.added, 12);
        assert_eq!(s.paths.added, many[..SUMMARY_PATHS]);
        assert_eq!(s.text(), "12 added, 0 removed, 1 modified (m, f00, f01, …)");
        assert_eq!(
            s.lines(),
            [
                format!("added: {}, …", many[..SUMMARY_PATHS].join(", ")),
                "modified: m".to_owned()
            ]
        );
        assert_eq!(Changes::default().summary(), "no changes");
    }
}
