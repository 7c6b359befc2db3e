//! The change summary between two manifests.

use serde::Serialize;

use crate::format::{Entry, Kind, Manifest};
use crate::vault::statcache::{Comparison, Seen};

/// Added, removed, modified and mode-changed paths between two manifests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    /// Paths only in the new manifest.
    pub added: Vec<String>,
    /// Paths only in the old manifest.
    pub removed: Vec<String>,
    /// Paths whose content or kind changed.
    pub modified: Vec<String>,
    /// Files whose execute bit changed, content equal.
    pub mode_changed: Vec<String>,
}

impl Changes {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.modified.is_empty()
            && self.mode_changed.is_empty()
    }

    /// Total number of changed paths.
    pub fn len(&self) -> usize {
        self.added.len() + self.removed.len() + self.modified.len() + self.mode_changed.len()
    }

    /// A one-line summary such as `+2 -1 ~3 (memory.jsonl, notes/a.md, …)`.
    pub fn summary(&self) -> String {
        if self.is_empty() {
            return "no changes".into();
        }
        let mut first: Vec<&str> = Vec::new();
        for list in [
            &self.modified,
            &self.added,
            &self.removed,
            &self.mode_changed,
        ] {
            first.extend(list.iter().map(String::as_str));
        }
        let more = first.len() > 3;
        first.truncate(3);
        let mut s = format!(
            "{} added, {} removed, {} modified",
            self.added.len(),
            self.removed.len(),
            self.modified.len()
        );
        if !self.mode_changed.is_empty() {
            s.push_str(&format!(", {} mode changed", self.mode_changed.len()));
        }
        s.push_str(&format!(
            " ({}{})",
            first.join(", "),
            if more { ", …" } else { "" }
        ));
        s
    }
}

/// Compares two manifests.
pub fn changes(old: &Manifest, new: &Manifest) -> Changes {
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
                c.note((x.kind, x.hash, x.size), y);
            }
        }
    }
}

/// The changes from the manifest the stat cache recorded to `new`, taken
/// from the comparison the scan made with the cache (`new` is that scan's
/// manifest): only the entries the records did not settle are looked at,
/// so a seal after a small change to a big soul does not compare 100,000
/// entries again. Meaningful when the cache recorded the head's manifest.
pub fn changes_since(cmp: &Comparison, new: &Manifest) -> Changes {
    let mut c = Changes {
        removed: cmp.gone.clone(),
        ..Changes::default()
    };
    let mut prior = cmp.prior.iter().peekable();
    for (i, e) in new.entries.iter().enumerate() {
        match prior.next_if(|p| p.0 == i) {
            Some(&(_, kind, hash, size)) => c.note((kind, hash, size), e),
            None if cmp.seen.get(i) == Some(&Seen::Unknown) => c.added.push(e.path.clone()),
            None => {}
        }
    }
    c
}

impl Changes {
    /// Records what happened to the entry at `new.path`, which was
    /// `(kind, hash, size)` before.
    fn note(&mut self, (kind, hash, size): (Kind, [u8; 32], u64), new: &Entry) {
        if kind == new.kind && hash == new.hash && size == new.size {
        } else if matches!(
            (kind, new.kind),
            (Kind::File, Kind::Exec) | (Kind::Exec, Kind::File)
        ) && hash == new.hash
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
        (0u8..4, 0u8..3, 0u64..3, "[ab]{1,2}(/[ab]{1,2})?").prop_map(|(k, h, size, path)| {
            let kind = [Kind::File, Kind::Exec, Kind::Symlink, Kind::Dir][k as usize];
            let dir = kind == Kind::Dir;
            Entry {
                kind,
                hash: if dir { [0; 32] } else { [h; 32] },
                size: if dir { 0 } else { size },
                path,
            }
        })
    }

    /// Small manifests whose paths collide often, so every kind of change
    /// shows up.
    pub(crate) fn manifest() -> impl Strategy<Value = Manifest> {
        proptest::collection::vec(entry(), 0..12).prop_map(|mut v| {
            v.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
            v.dedup_by(|a, b| a.path == b.path);
            Manifest { entries: v }
        })
    }

    #[test]
    fn each_kind_of_change_is_named() {
        let e = |kind, h: u8, path: &str| Entry {
            kind,
            hash: [h; 32],
            size: 1,
            path: path.into(),
        };
        let old = Manifest {
            entries: vec![
                e(Kind::File, 1, "a"),
                e(Kind::File, 1, "b"),
                e(Kind::File, 1, "c"),
            ],
        };
        let new = Manifest {
            entries: vec![
                e(Kind::Exec, 1, "a"),
                e(Kind::File, 2, "b"),
                e(Kind::File, 1, "d"),
            ],
        };
        let c = changes(&old, &new);
        assert_eq!(c.mode_changed, ["a"]);
        assert_eq!(c.modified, ["b"]);
        assert_eq!(c.removed, ["c"]);
        assert_eq!(c.added, ["d"]);
        assert!(changes(&new, &new).is_empty());
    }
}
