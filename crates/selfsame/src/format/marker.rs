//! `run/awake`, the awake marker: the checkpoint a running agent woke on
//! (seq and file hash), and, while a seal is writing the next one, that
//! one too; the time and the pid; a MAC under the checkpoint key in
//! `hash`. One line of form-urlencoded fields, like a checkpoint.

use selfsame_telegram::Fields;

/// The field holding the MAC.
pub const MAC: &str = "hash";

/// What a marker vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// The checkpoint the agent woke on: seq and file hash.
    pub head: (u64, String),
    /// The checkpoint a seal is about to write, if any.
    pub next: Option<(u64, String)>,
    /// When it was written, RFC 3339.
    pub at: String,
    /// The writer's pid.
    pub pid: u32,
}

impl Marker {
    /// The fields, in file order, without the MAC.
    pub fn fields(&self) -> Fields {
        let mut f = Fields::new();
        f.push("kind", "awake");
        f.push("seq", &self.head.0.to_string());
        f.push("head", &self.head.1);
        if let Some((seq, hash)) = &self.next {
            f.push("next_seq", &seq.to_string());
            f.push("next_head", hash);
        }
        f.push("at", &self.at);
        f.push("pid", &self.pid.to_string());
        f
    }
}

/// The file's text: the fields with the MAC last, then `\n`.
pub fn to_text(mut fields: Fields, mac: &str) -> String {
    fields.push(MAC, mac);
    let mut text = fields.encode();
    text.push('\n');
    text
}

/// Parses a marker file's fields; `None` when it is not fields at all.
pub fn parse(bytes: &[u8]) -> Option<Fields> {
    let text = std::str::from_utf8(bytes).ok()?;
    Fields::parse(text.trim_end_matches('\n')).ok()
}

/// Whether `fields` are an awake marker that names the checkpoint `seq`
/// with file hash `file_hash`, as its head or as the next one.
pub fn names(fields: &Fields, seq: u64, file_hash: &str) -> bool {
    let seq = seq.to_string();
    let names =
        |s: &str, h: &str| fields.get(s) == Some(seq.as_str()) && fields.get(h) == Some(file_hash);
    fields.get("kind") == Some("awake") && (names("seq", "head") || names("next_seq", "next_head"))
}
