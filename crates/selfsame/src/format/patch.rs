//! Patches: what changed in one soul entry, as the text a person reads —
//! a unified diff for text, one line for binary content. The shape is
//! git's (`diff --git a/P b/P`, mode lines, `---`/`+++`, hunks), so the
//! usual tools read it. No I/O: the caller hands both versions in.

use std::time::Duration;

use super::Kind;

/// Files bigger than this (either side) are named, not diffed.
pub const MAX_TEXT: usize = 8 << 20;

/// Lines of context around each change.
const CONTEXT: usize = 3;

/// How long the line diff may search for a minimal diff before it settles
/// for a correct, longer one.
const DEADLINE: Duration = Duration::from_secs(2);

/// One version of an entry: its kind, its permission bits (`None` where
/// the manifest records none) and its content (a file's bytes, a
/// symlink's target; empty for a directory).
#[derive(Debug, Clone, Copy)]
pub struct Version<'a> {
    /// What it is.
    pub kind: Kind,
    /// Permission bits, `st_mode & 07777`.
    pub mode: Option<u32>,
    /// SHA-256 of its content.
    pub hash: [u8; 32],
    /// Its size.
    pub size: u64,
    /// Its bytes; `None` when bigger than [`MAX_TEXT`] (not read).
    pub bytes: Option<&'a [u8]>,
}

/// Whether `bytes` are shown as text: UTF-8 without a NUL byte, and not
/// too big.
pub fn is_text(bytes: &[u8]) -> bool {
    bytes.len() <= MAX_TEXT && !bytes.contains(&0) && std::str::from_utf8(bytes).is_ok()
}

/// The patch from `old` to `new` of the entry at `path` (`None`: absent on
/// that side). Empty when they are the same, and for a directory added or
/// removed (its entries say it). Ends with a newline when not empty.
pub fn render(path: &str, old: Option<&Version<'_>>, new: Option<&Version<'_>>) -> String {
    let dir = |v: Option<&Version<'_>>| v.is_some_and(|v| v.kind == Kind::Dir);
    let same_bytes = matches!((old, new), (Some(a), Some(b)) if a.hash == b.hash);
    let same_mode = matches!((old, new), (Some(a), Some(b)) if git_mode(a) == git_mode(b));
    if (same_bytes && same_mode) || (old.is_none() && dir(new)) || (new.is_none() && dir(old)) {
        return String::new();
    }
    let mut out = format!("diff --git a/{path} b/{path}\n");
    match (old, new) {
        (None, Some(n)) => out.push_str(&format!("new file mode {}\n", git_mode(n))),
        (Some(o), None) => out.push_str(&format!("deleted file mode {}\n", git_mode(o))),
        (Some(o), Some(n)) if !same_mode => {
            out.push_str(&format!(
                "old mode {}\nnew mode {}\n",
                git_mode(o),
                git_mode(n)
            ));
        }
        _ => {}
    }
    if same_bytes {
        return out;
    }
    fn loaded<'a>(v: Option<&Version<'a>>) -> Option<&'a [u8]> {
        v.map_or(Some(&[][..]), |v| v.bytes)
    }
    let size = |v: Option<&Version<'_>>| v.map_or(0, |v| v.size);
    let from = old.map_or("/dev/null".to_owned(), |_| format!("a/{path}"));
    let to = new.map_or("/dev/null".to_owned(), |_| format!("b/{path}"));
    let (Some(a), Some(b)) = (loaded(old), loaded(new)) else {
        out.push_str(&format!(
            "Files {from} and {to} differ ({} and {} bytes: too large to show)\n",
            size(old),
            size(new)
        ));
        return out;
    };
    match (std::str::from_utf8(a), std::str::from_utf8(b)) {
        (Ok(x), Ok(y)) if is_text(a) && is_text(b) => {
            let diff = similar::TextDiff::configure()
                .algorithm(similar::Algorithm::Myers)
                .timeout(DEADLINE)
                .diff_lines(x, y);
            out.push_str(
                &diff
                    .unified_diff()
                    .context_radius(CONTEXT)
                    .header(&from, &to)
                    .to_string(),
            );
        }
        _ => out.push_str(&format!("Binary files {from} and {to} differ\n")),
    }
    out
}

/// git's six octal digits: the type (`100` file, `120` symlink, `040`
/// directory) and the permission bits; a symlink's are `000`.
fn git_mode(v: &Version<'_>) -> String {
    let perm = v.mode.unwrap_or(0) & 0o7777;
    match v.kind {
        Kind::Symlink => "120000".to_owned(),
        Kind::Dir => format!("04{perm:04o}"),
        Kind::File | Kind::Exec => format!("10{perm:04o}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(mode: u32, bytes: &[u8]) -> Version<'_> {
        Version {
            kind: Kind::File,
            mode: Some(mode),
            hash: crate::crypto::sha256(bytes),
            size: bytes.len() as u64,
            bytes: Some(bytes),
        }
    }

    #[test]
    fn a_text_change_is_a_unified_diff() {
        let old = file(0o644, b"one\ntwo\nthree\nfour\nfive\nsix\nseven\n");
        let new = file(0o644, b"one\ntwo\nthree\nFOUR\nfive\nsix\nseven\n");
        assert_eq!(
            render("notes/a.md", Some(&old), Some(&new)),
            "diff --git a/notes/a.md b/notes/a.md\n\
             --- a/notes/a.md\n\
             +++ b/notes/a.md\n\
             @@ -1,7 +1,7 @@\n one\n two\n three\n-four\n+FOUR\n five\n six\n seven\n"
        );
    }

    #[test]
    fn added_removed_binary_and_mode_changes_say_so() {
        let text = file(0o600, b"hello\n");
        assert_eq!(
            render("p", None, Some(&text)),
            "diff --git a/p b/p\nnew file mode 100600\n--- /dev/null\n+++ b/p\n@@ -0,0 +1 @@\n+hello\n"
        );
        assert_eq!(
            render("p", Some(&text), None),
            "diff --git a/p b/p\ndeleted file mode 100600\n--- a/p\n+++ /dev/null\n@@ -1 +0,0 @@\n-hello\n"
        );
        let bin = file(0o644, &[0, 1, 2]);
        assert_eq!(
            render("b.bin", Some(&bin), Some(&file(0o644, &[0, 1, 3]))),
            "diff --git a/b.bin b/b.bin\nBinary files a/b.bin and b/b.bin differ\n"
        );
        assert_eq!(
            render("p", Some(&file(0o644, b"hello\n")), Some(&text)),
            "diff --git a/p b/p\nold mode 100644\nnew mode 100600\n"
        );
        let dir = |mode| Version {
            kind: Kind::Dir,
            mode: Some(mode),
            hash: [0; 32],
            size: 0,
            bytes: Some(b""),
        };
        assert_eq!(
            render("d", Some(&dir(0o755)), Some(&dir(0o700))),
            "diff --git a/d b/d\nold mode 040755\nnew mode 040700\n"
        );
        assert_eq!(render("d", None, Some(&dir(0o700))), "");
        assert_eq!(render("p", Some(&text), Some(&text)), "");
        let big = Version {
            bytes: None,
            size: 9 << 20,
            ..file(0o644, b"x")
        };
        assert_eq!(
            render("big", Some(&text), Some(&big)),
            "diff --git a/big b/big\nold mode 100600\nnew mode 100644\nFiles a/big and b/big differ (6 and 9437184 bytes: too large to show)\n"
        );
    }

    #[test]
    fn a_missing_final_newline_is_marked() {
        let out = render(
            "p",
            Some(&file(0o644, b"a\nb")),
            Some(&file(0o644, b"a\nc")),
        );
        assert!(
            out.ends_with("-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n"),
            "{out}"
        );
    }

    #[test]
    fn text_is_utf8_without_nul() {
        assert!(is_text("ünïcödé ✓\n".as_bytes()));
        assert!(is_text(b""));
        assert!(!is_text(b"a\0b"));
        assert!(!is_text(&[0xff, 0xfe]));
    }
}
