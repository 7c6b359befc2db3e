//! The vault's on-disk formats: parse and print, nothing else.

pub mod checkpoint;
pub mod history;
pub mod manifest;

pub use checkpoint::Checkpoint;
pub use history::HistoryLine;
pub use manifest::{Entry, Kind, Manifest};
