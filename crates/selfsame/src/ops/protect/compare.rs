//! Comparing the protected part of a soul with the approved one, and what
//! seal, wake, approve and the watch share about it.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{IoContext, Result};
use crate::format::excludes::Protect;
use crate::format::manifest::{same_line, Version};
use crate::format::patch::{self as render, MAX_TEXT};
use crate::format::{Entry, Kind, Manifest};
use crate::soul::Changes;
use crate::vault::Vault;

/// One protected path whose entry on disk is not the approved one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pair {
    /// The path, relative to the soul.
    pub path: String,
    /// The approved entry (the head's); `None`: the head has none.
    pub approved: Option<Entry>,
    /// The entry on disk; `None`: there is none.
    pub current: Option<Entry>,
}

/// The protected entries of `head` and of `current` that are not written
/// as the same line in `head`'s manifest version, in manifest order.
pub(crate) fn pairs<'a>(
    head: &'a Manifest,
    current: impl IntoIterator<Item = &'a Entry>,
    protect: &Protect,
) -> Vec<Pair> {
    let approved = head.entries.iter().filter(|e| protect.covers(&e.path));
    let current = current.into_iter().filter(|e| protect.covers(&e.path));
    differing(head.version, approved, current)
}

/// The entries of two sorted lists that differ in `version`, joined by
/// path.
pub(crate) fn differing<'a>(
    version: Version,
    approved: impl Iterator<Item = &'a Entry>,
    current: impl Iterator<Item = &'a Entry>,
) -> Vec<Pair> {
    use std::cmp::Ordering;
    let (mut a, mut c) = (approved.peekable(), current.peekable());
    let mut out = Vec::new();
    loop {
        let ord = match (a.peek(), c.peek()) {
            (Some(x), Some(y)) => x.path.as_bytes().cmp(y.path.as_bytes()),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => return out,
        };
        let (x, y) = match ord {
            Ordering::Less => (a.next(), None),
            Ordering::Greater => (None, c.next()),
            Ordering::Equal => (a.next(), c.next()),
        };
        if let (Some(x), Some(y)) = (x, y) {
            if same_line(version, x, y) {
                continue;
            }
        }
        let path = x.or(y).expect("one side").path.clone();
        out.push(Pair {
            path,
            approved: x.cloned(),
            current: y.cloned(),
        });
    }
}

/// What changed, by kind, in `pairs`.
pub(crate) fn changes_of(pairs: &[Pair]) -> Changes {
    let mut c = Changes::default();
    for p in pairs {
        let list = match (&p.approved, &p.current) {
            (None, _) => &mut c.added,
            (_, None) => &mut c.removed,
            (Some(a), Some(b)) if a.kind == b.kind || (a.kind != Kind::Dir && a.hash == b.hash) => {
                if a.hash == b.hash && a.size == b.size {
                    &mut c.mode_changed
                } else {
                    &mut c.modified
                }
            }
            _ => &mut c.modified,
        };
        list.push(p.path.clone());
    }
    c
}

/// The manifest a seal writes when it does not adopt every protected
/// change: `current`, where each pair `adopt` refuses takes the approved
/// entry (or, the head having none, is left out), and every directory
/// above an approved entry is the head's.
pub(crate) fn merged(
    head: &Manifest,
    current: &Manifest,
    pairs: &[Pair],
    adopt: impl Fn(&Pair) -> bool,
) -> Manifest {
    let mut map: BTreeMap<Vec<u8>, Entry> = current
        .entries
        .iter()
        .map(|e| (e.path.as_bytes().to_vec(), e.clone()))
        .collect();
    let mut kept = Vec::new();
    for p in pairs.iter().filter(|p| !adopt(p)) {
        match &p.approved {
            Some(a) => {
                map.insert(a.path.as_bytes().to_vec(), a.clone());
                kept.push(a.path.clone());
            }
            None => {
                map.remove(p.path.as_bytes());
            }
        }
    }
    for path in kept {
        let mut at = path.as_str();
        while let Some((parent, _)) = at.rsplit_once('/') {
            let listed = map
                .get(parent.as_bytes())
                .is_some_and(|e| e.kind == Kind::Dir);
            if !listed {
                if let Some(d) = head.find(parent) {
                    map.insert(parent.as_bytes().to_vec(), d.clone());
                }
            }
            at = parent;
        }
    }
    // Below an approved entry that is not a directory nothing can stay.
    let files: Vec<String> = map
        .values()
        .filter(|e| e.kind != Kind::Dir)
        .map(|e| format!("{}/", e.path))
        .collect();
    if !files.is_empty() {
        map.retain(|_, e| !files.iter().any(|f| e.path.starts_with(f.as_str())));
    }
    Manifest::of(current.version, map.into_values().collect())
}

/// The checkpoint field `protected` of a soul listed by `manifest`: hex
/// SHA-256 of its protected manifest. `None` when nothing is protected.
pub(crate) fn field(manifest: &Manifest, protect: &Protect) -> Option<String> {
    (!protect.is_empty())
        .then(|| crate::crypto::sha256_hex(&manifest.part_bytes(|e| protect.covers(&e.path))))
}

/// The patch from the approved to the current version of each pair (git's
/// shape; text as a unified diff). `current` gives a current entry's bytes
/// (`None`: too big, or no longer there to read).
pub(crate) fn patch(
    vault: &Vault,
    pairs: &[Pair],
    version: Version,
    current: &dyn Fn(&Entry) -> Option<Vec<u8>>,
) -> Result<String> {
    let modes = version.has_modes();
    let mut out = String::new();
    for p in pairs {
        let old = match &p.approved {
            Some(e) if e.kind != Kind::Dir && e.size <= MAX_TEXT as u64 => {
                let mut bytes = Vec::with_capacity(e.size as usize);
                vault.objects().stream(&e.hash, e.size, &mut |piece| {
                    bytes.extend_from_slice(piece);
                    Ok(())
                })?;
                Some(bytes)
            }
            Some(e) if e.kind == Kind::Dir => Some(Vec::new()),
            _ => None,
        };
        let new = match &p.current {
            Some(e) if e.kind == Kind::Dir => Some(Vec::new()),
            Some(e) if e.size <= MAX_TEXT as u64 => current(e),
            _ => None,
        };
        fn version_of<'b>(
            e: &Entry,
            bytes: &'b Option<Vec<u8>>,
            modes: bool,
        ) -> render::Version<'b> {
            render::Version {
                kind: e.kind,
                mode: match (modes, e.kind) {
                    (true, _) => Some(e.mode),
                    (false, Kind::Dir) => None,
                    (false, k) => Some(k.v1_mode()),
                },
                hash: e.hash,
                size: e.size,
                bytes: bytes.as_deref(),
            }
        }
        let a = p.approved.as_ref().map(|e| version_of(e, &old, modes));
        let b = p.current.as_ref().map(|e| version_of(e, &new, modes));
        out.push_str(&render::render(&p.path, a.as_ref(), b.as_ref()));
    }
    Ok(out)
}

/// The bytes of the entry `e` at `path`, read without following a symlink
/// at the name and never waiting on a FIFO put there: a symlink's target,
/// a regular file's first [`MAX_TEXT`] bytes and one more. `None` when it
/// is not there as that kind any more.
pub(crate) fn read_entry(path: &Path, e: &Entry) -> Option<Vec<u8>> {
    if e.kind == Kind::Symlink {
        return std::fs::read_link(path)
            .ok()
            .map(|t| t.as_os_str().as_bytes().to_vec());
    }
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut out = Vec::new();
    file.take(MAX_TEXT as u64 + 1)
        .read_to_end(&mut out)
        .at(path)
        .ok()?;
    Some(out)
}
