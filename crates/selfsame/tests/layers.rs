//! The library's layers point one way, down (docs/ARCHITECTURE.md):
//!
//! ```text
//! format → core (error, verdict, progress, settings) → crypto → vault → remote → soul → ops → supervise
//! ```
//!
//! A small scan of `src/`: every `use crate::…`, `use super::…` and inline
//! `crate::…` path of each file (comments and `#[cfg(test)]` modules left
//! out) is resolved to the file it names. A file may name its own layer or
//! one below it, never one above; the files of `ops/` name each other
//! without a cycle. The crate root's re-exports (`crate::Error`) are not a
//! way around it: a path must name the module an item lives in.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first: the top-level modules each holds.
const LAYERS: &[(&str, &[&str])] = &[
    ("format", &["format"]),
    (
        "core",
        &[
            "error",
            "verdict",
            "progress",
            "settings",
            "clock",
            "failpoint",
        ],
    ),
    ("crypto", &["crypto"]),
    ("vault", &["vault"]),
    ("remote", &["remote"]),
    ("soul", &["soul"]),
    ("ops", &["ops"]),
    ("supervise", &["supervise"]),
    ("facade", &["lib", "testing"]),
];

fn layer_of(module: &[String]) -> Option<usize> {
    let top = module.first().map_or("lib", String::as_str);
    LAYERS.iter().position(|(_, mods)| mods.contains(&top))
}

/// A source file and the module path it defines (`ops::swap::undo`).
struct Source {
    path: PathBuf,
    module: Vec<String>,
    text: String,
}

fn sources(dir: &Path, module: &[String], out: &mut Vec<Source>) {
    let mut items: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    items.sort();
    for path in items {
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        if path.is_dir() {
            let mut sub = module.to_vec();
            sub.push(name);
            sources(&path, &sub, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let mut m = module.to_vec();
            if name != "mod" && !(module.is_empty() && name == "lib") {
                m.push(name);
            }
            let text = std::fs::read_to_string(&path).unwrap();
            out.push(Source {
                path,
                module: m,
                text,
            });
        }
    }
}

/// The code of a file: comments removed, and everything from the first
/// `#[cfg(test)]` on (test modules sit at the end of a file and may set up
/// a scene with any layer).
fn code(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let mut in_str = false;
        let mut prev = ' ';
        let mut cut = line.len();
        for (i, c) in line.char_indices() {
            if c == '"' && prev != '\\' {
                in_str = !in_str;
            }
            if !in_str && c == '/' && prev == '/' {
                cut = i - 1;
                break;
            }
            prev = c;
        }
        out.push_str(&line[..cut]);
        out.push('\n');
    }
    out
}

/// Expands a `use` tree (`crate::{a, b::{c, d}}`) into its paths.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap().trim();
        return vec![path.to_owned()];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap()];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(|p| {
            expand(p)
                .into_iter()
                .map(|rest| format!("{prefix}{rest}"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every path the code names that starts with `crate::`, `super::` or
/// `self::`: those of `use` statements, expanded, and inline ones.
fn named_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = find_word(rest, "use ") {
        let after = &rest[at + 4..];
        let end = after.find(';').unwrap_or(after.len());
        out.extend(expand(&after[..end]));
        rest = &after[end..];
    }
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(start) {
            let at = from + i;
            from = at + start.len();
            let before = code[..at].chars().next_back().unwrap_or(' ');
            if before.is_alphanumeric() || before == '_' || before == ':' {
                continue;
            }
            let path: String = code[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push(path);
        }
    }
    out
}

fn find_word(text: &str, word: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].find(word) {
        let at = from + i;
        let before = text[..at].chars().next_back().unwrap_or('\n');
        if !(before.is_alphanumeric() || before == '_') {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

/// The module path a `crate::`/`super::`/`self::` path names, from the
/// file's module; `None` for a path that names no module (`crate::Error`).
fn resolve(path: &str, module: &[String]) -> Option<Vec<String>> {
    let mut segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut base: Vec<String> = match segs.first() {
        Some(&"crate") => {
            segs.remove(0);
            Vec::new()
        }
        Some(&"self") | Some(&"super") => {
            // A `mod.rs` is its directory's module, another file a module
            // of its own: either way `super` is one level up.
            let mut b = module.to_vec();
            if segs[0] == "self" {
                segs.remove(0);
            }
            while segs.first() == Some(&"super") {
                segs.remove(0);
                b.pop();
            }
            b
        }
        _ => return None,
    };
    base.extend(segs.iter().map(|s| s.to_string()));
    Some(base)
}

/// The longest prefix of `path` that is a module of a file in `files`.
fn file_of<'a>(path: &[String], files: &'a BTreeSet<Vec<String>>) -> Option<&'a Vec<String>> {
    (0..=path.len())
        .rev()
        .find_map(|n| files.get(&path[..n].to_vec()))
}

struct Scan {
    sources: Vec<Source>,
    /// File module → file modules it names.
    edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
    /// Paths that name no module (a crate-root re-export), per file.
    unnamed: Vec<(PathBuf, String)>,
}

fn scan() -> Scan {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    sources(&src, &[], &mut all);
    let files: BTreeSet<Vec<String>> = all.iter().map(|s| s.module.clone()).collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    let mut unnamed = Vec::new();
    for s in &all {
        for p in named_paths(&code(&s.text)) {
            let Some(target) = resolve(&p, &s.module) else {
                continue;
            };
            match file_of(&target, &files) {
                // Only the crate root itself: a re-export.
                Some(f) if f.is_empty() && !target.is_empty() && s.module != *f => {
                    unnamed.push((s.path.clone(), p.clone()));
                }
                Some(f) if *f != s.module => {
                    edges.entry(s.module.clone()).or_default().insert(f.clone());
                }
                _ => {}
            }
        }
    }
    Scan {
        sources: all,
        edges,
        unnamed,
    }
}

fn name(module: &[String]) -> String {
    if module.is_empty() {
        "lib".into()
    } else {
        module.join("::")
    }
}

#[test]
fn no_module_names_a_layer_above_its_own() {
    let scan = scan();
    let mut upward = Vec::new();
    for s in &scan.sources {
        assert!(
            layer_of(&s.module).is_some(),
            "{} is in no layer: add its module to LAYERS in tests/layers.rs and to docs/ARCHITECTURE.md",
            s.path.display()
        );
    }
    for (from, tos) in &scan.edges {
        let lf = layer_of(from).unwrap();
        for to in tos {
            let lt = layer_of(to).unwrap();
            if lt > lf {
                upward.push(format!(
                    "{} ({}) names {} ({})",
                    name(from),
                    LAYERS[lf].0,
                    name(to),
                    LAYERS[lt].0
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "a lower layer names a higher one:\n  {}",
        upward.join("\n  ")
    );
}

#[test]
fn paths_name_the_module_an_item_lives_in() {
    let scan = scan();
    let found: Vec<String> = scan
        .unnamed
        .iter()
        .map(|(path, p)| format!("{}: {p}", path.display()))
        .collect();
    assert!(
        found.is_empty(),
        "these paths go through the crate root's re-exports, which hides the layer they reach; name the module instead:\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn the_files_of_ops_name_each_other_without_a_cycle() {
    let scan = scan();
    let ops: BTreeMap<&Vec<String>, Vec<&Vec<String>>> = scan
        .edges
        .iter()
        .filter(|(from, _)| from.first().is_some_and(|m| m == "ops"))
        .map(|(from, tos)| {
            let tos = tos
                .iter()
                .filter(|t| t.first().is_some_and(|m| m == "ops"))
                .collect();
            (from, tos)
        })
        .collect();
    // Depth-first search for a back edge; the path to it is the cycle.
    fn visit<'a>(
        node: &'a Vec<String>,
        ops: &BTreeMap<&'a Vec<String>, Vec<&'a Vec<String>>>,
        stack: &mut Vec<&'a Vec<String>>,
        done: &mut BTreeSet<&'a Vec<String>>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| *n == node) {
            let mut cycle: Vec<String> = stack[at..].iter().map(|n| name(n)).collect();
            cycle.push(name(node));
            return Some(cycle);
        }
        if !done.insert(node) {
            return None;
        }
        stack.push(node);
        for next in ops.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, ops, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for node in ops.keys() {
        if let Some(cycle) = visit(node, &ops, &mut Vec::new(), &mut done) {
            panic!(
                "the files of ops name each other in a cycle: {}",
                cycle.join(" → ")
            );
        }
    }
}

#[test]
fn the_scan_reads_use_trees_and_resolves_super() {
    // The scan itself, on a made-up file, so that a change to it that stops
    // it seeing edges does not pass silently.
    let text = "use crate::{vault::Vault, format::{manifest::Manifest, Kind}};\nuse super::seal::x; // use crate::ops\nfn f() { crate::soul::walk(); }\n#[cfg(test)]\nmod tests { use crate::supervise; }\n";
    let paths = named_paths(&code(text));
    for p in [
        "crate::vault::Vault",
        "crate::format::manifest::Manifest",
        "crate::format::Kind",
        "super::seal::x",
        "crate::soul::walk",
    ] {
        assert!(paths.iter().any(|q| q == p), "{p} not in {paths:?}");
    }
    assert!(!paths
        .iter()
        .any(|q| q.contains("supervise") || q == "crate::ops"));
    let module: Vec<String> = vec!["ops".into(), "wake".into()];
    assert_eq!(
        resolve("super::seal::x", &module),
        Some(vec!["ops".to_owned(), "seal".into(), "x".into()])
    );
}

/// The modules each file makes public (`pub mod x;`).
fn public_modules(file: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
    code(&text)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').trim().to_owned())
        .collect()
}

#[test]
fn the_public_surface_is_the_curated_one() {
    // The crate root: the operations, the supervisor, progress reporting,
    // and the test hooks (behind their feature); everything else is
    // re-exported item by item from private modules. docs/ARCHITECTURE.md
    // lists the surface; widen it there first.
    let set = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(
        public_modules("src/lib.rs"),
        set(&["ops", "progress", "supervise", "testing"])
    );
    assert_eq!(
        public_modules("src/ops/mod.rs"),
        set(&[
            "accept",
            "approve",
            "attest",
            "bind",
            "cat",
            "clone",
            "diff",
            "forget",
            "identity",
            "init",
            "log",
            "ls",
            "migrate",
            "protect",
            "prune",
            "push",
            "quarantine",
            "rekey",
            "restore",
            "seal",
            "show",
            "verify",
            "wake"
        ])
    );
    for private in [
        "src/supervise/mod.rs",
        "src/ops/migrate/mod.rs",
        "src/ops/swap/mod.rs",
        "src/vault/mod.rs",
        "src/soul/mod.rs",
        "src/format/mod.rs",
        "src/crypto/mod.rs",
        "src/remote/mod.rs",
    ] {
        let found = public_modules(private);
        assert!(found.is_empty(), "{private} makes {found:?} public");
    }
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    assert!(
        lib.contains("#[cfg(feature = \"test-hooks\")]\npub mod testing;"),
        "the testing module ships only with the test-hooks feature"
    );
}

/// Functions of `ops/` longer than this many lines need a reason: a
/// comment starting `// Long:` right above them.
const LONGEST: usize = 80;

#[test]
fn functions_of_ops_are_short_or_say_why_not() {
    let mut long = Vec::new();
    for s in scan()
        .sources
        .iter()
        .filter(|s| s.module.first().is_some_and(|m| m == "ops"))
    {
        let text = code_keeping_comments(&s.text);
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i];
            let indent = line.len() - line.trim_start().len();
            let t = line.trim_start();
            let is_fn = ["fn ", "pub fn ", "pub(crate) fn ", "pub(super) fn "]
                .iter()
                .any(|p| t.starts_with(p));
            if !is_fn {
                i += 1;
                continue;
            }
            let end = (i..lines.len())
                .find(|&j| lines[j].len() == indent + 1 && lines[j].ends_with('}'))
                .unwrap_or(i);
            let reason =
                (i.saturating_sub(3)..i).any(|k| lines[k].trim_start().starts_with("// Long:"));
            if end + 1 - i > LONGEST && !reason {
                long.push(format!(
                    "{}:{} ({} lines)",
                    s.path.display(),
                    i + 1,
                    end + 1 - i
                ));
            }
            i = end + 1;
        }
    }
    assert!(
        long.is_empty(),
        "split these by the rows of the table they implement, or say why not in a `// Long:` comment above:\n  {}",
        long.join("\n  ")
    );
}

/// The text up to the first `#[cfg(test)]`, comments kept.
fn code_keeping_comments(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}
