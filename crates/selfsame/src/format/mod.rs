//! The vault's on-disk formats as bytes and types: parse and print,
//! nothing else (no I/O, no keys; the MACs are [`crate::crypto`]'s).

pub(crate) mod checkpoint;
pub(crate) mod excludes;
pub(crate) mod history;
pub(crate) mod identity;
pub(crate) mod journal;
pub(crate) mod location;
pub(crate) mod manifest;
pub(crate) mod marker;
pub(crate) mod pack;
pub(crate) mod patch;
pub(crate) mod retention;
pub(crate) mod tags;
pub(crate) mod time;

/// The vault format version, in the vault's `format` file: `2` since
/// objects may be packed (docs/STORAGE.md).
pub const VAULT_FORMAT: &str = "2";
/// The vault formats this version reads: `1` holds loose objects only (a
/// vault from before packs), and becomes `2` when a seal first packs.
pub const VAULT_FORMATS_READ: &[&str] = &["1", "2"];

pub use history::HistoryLine;
pub use manifest::{Entry, Kind, Manifest};

/// The name `table` gives `value` (tables list every value).
pub(crate) fn name_of<T: PartialEq + Copy>(table: &[(T, &'static str)], value: T) -> &'static str {
    table
        .iter()
        .find(|(v, _)| *v == value)
        .map(|(_, name)| *name)
        .expect("every value is listed")
}

/// The value `table` names `name`, if any.
pub(crate) fn value_of<T: Copy>(table: &[(T, &'static str)], name: &str) -> Option<T> {
    table.iter().find(|(_, n)| *n == name).map(|(v, _)| *v)
}
