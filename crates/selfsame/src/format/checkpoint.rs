//! Checkpoint v1: one line of `application/x-www-form-urlencoded` fields,
//! shaped exactly like Telegram initData, then `\n`.
//!
//! The MAC (`hash`) covers the data-check-string of every other field
//! except the identity's `signature` and a rekey's (or bind's)
//! `prev_key_hash`; unknown fields are kept and covered. The MAC and the
//! signature are [`crate::crypto`]'s.

use std::ops::Deref;

use selfsame_telegram::Fields;

use super::time::parse_rfc3339;

/// Fields that a checkpoint's MAC does not cover: the MAC itself, the
/// reserved identity signature, and the old key's MAC on a rekey checkpoint.
pub const UNSIGNED_FIELDS: &[&str] = &["hash", "signature", "prev_key_hash"];

/// Checkpoint format version written in `v`.
pub const VERSION: &str = "1";

/// The field of a `rekey` checkpoint holding the MAC under the retired key.
pub const PREV_KEY_HASH: &str = "prev_key_hash";

/// The field binding a checkpoint to the vault's `config.toml`: lowercase
/// hex SHA-256 of the config bytes the sealing process read. An extra
/// field, so covered by the MAC; absent in checkpoints of older vaults.
pub const CONFIG: &str = "config";

/// The field holding the hex SHA-256 of the protected manifest (the
/// manifest's header line and the lines of the protected paths); absent
/// when the config protects nothing.
pub const PROTECTED: &str = "protected";

/// The fields selfsame writes itself besides the standard ones, now or in
/// Format 2.
const OWN_FIELDS: [&str; 6] = [
    "hash",
    CONFIG,
    PREV_KEY_HASH,
    SIGNATURE,
    IDENTITY,
    PROTECTED,
];

/// The fields selfsame writes itself: an extra field may not take one of
/// these names (it would replace the real value, e.g. `seq`, and
/// checkpoints are create-only).
pub const RESERVED_FIELDS: [&str; STANDARD_FIELDS.len() + OWN_FIELDS.len()] = {
    let mut out = [""; STANDARD_FIELDS.len() + OWN_FIELDS.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = if i < STANDARD_FIELDS.len() {
            STANDARD_FIELDS[i]
        } else {
            OWN_FIELDS[i - STANDARD_FIELDS.len()]
        };
        i += 1;
    }
    out
};

/// Why the fields asked of a new checkpoint were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// An extra field names a field selfsame writes itself.
    #[error("checkpoint field `{0}` is reserved: selfsame writes it itself; choose another name")]
    Reserved(String),
    /// An extra field's name is not lowercase ASCII letters, digits and `_`.
    #[error("checkpoint field name {0:?} is not made of lowercase ASCII letters, digits and `_`")]
    BadName(String),
    /// The same extra field is given twice.
    #[error("checkpoint field `{0}` is given twice")]
    Repeated(String),
    /// An extra field's value holds a control character (a line break
    /// would make the data-check-string ambiguous).
    #[error("checkpoint field `{0}`: the value holds a line break or another control character")]
    BadValue(String),
    /// The soul format is not a tag `v1`, `v2`, ….
    #[error("format tag {0:?} is not of the form v1, v2, …")]
    BadFormat(String),
}

/// Checks the extra fields of a new checkpoint: names of lowercase ASCII
/// letters, digits and `_`, none reserved, none twice, no control
/// characters in values.
pub fn check_extra_fields(extra: &[(String, String)]) -> Result<(), FieldError> {
    for (i, (k, v)) in extra.iter().enumerate() {
        if k.is_empty()
            || !k
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(FieldError::BadName(k.clone()));
        }
        if RESERVED_FIELDS.contains(&k.as_str()) {
            return Err(FieldError::Reserved(k.clone()));
        }
        if extra[..i].iter().any(|(earlier, _)| earlier == k) {
            return Err(FieldError::Repeated(k.clone()));
        }
        if v.chars().any(char::is_control) {
            return Err(FieldError::BadValue(k.clone()));
        }
    }
    Ok(())
}

/// Why a checkpoint file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// Not one LF-terminated line.
    #[error("not one LF-terminated line")]
    Shape,
    /// Not valid form-urlencoded fields.
    #[error("{0}")]
    Fields(#[from] selfsame_telegram::ParseError),
    /// A required field is missing or has a bad value.
    #[error("field `{0}` is missing or invalid")]
    Field(&'static str),
    /// An unknown checkpoint version.
    #[error("unsupported checkpoint version {0:?}")]
    Version(String),
    /// The bytes are not the canonical encoding of the fields: another
    /// encoding of the same text, fields out of order, or a field outside
    /// the MAC that the format does not define there.
    #[error("not written as selfsame writes checkpoints: {0}")]
    NotCanonical(String),
}

/// The fields every checkpoint starts with, in file order.
pub const STANDARD_FIELDS: [&str; 13] = [
    "v",
    "seq",
    "prev",
    "soul",
    "files",
    "bytes",
    "sealed_at",
    "reason",
    "shell",
    "format",
    "log",
    "platform",
    "bot_id",
];

/// The field holding the identity key's signature (Format 2), defined only
/// on a checkpoint that carries an `identity`.
pub const SIGNATURE: &str = "signature";
/// The field naming the identity key a `signature` is made with.
pub const IDENTITY: &str = "identity";

/// Why a checkpoint was sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The first checkpoint.
    Init,
    /// A clean stop.
    Rest,
    /// A periodic seal while running.
    Heartbeat,
    /// Drift accepted after a crash.
    Recover,
    /// The owner sealed or accepted by hand.
    Manual,
    /// After a restore or rollback.
    Restore,
    /// Before or after a migration.
    Migrate,
    /// Token rotation.
    Rekey,
    /// The owner approved a change of protected paths.
    Approve,
    /// An identity key added to or replaced in the vault (Format 2).
    Identity,
    /// A move to another platform or bot (Format 2).
    Bind,
}

impl Reason {
    /// Every reason with its wire name.
    pub const ALL: [(Reason, &'static str); 11] = [
        (Reason::Init, "init"),
        (Reason::Rest, "rest"),
        (Reason::Heartbeat, "heartbeat"),
        (Reason::Recover, "recover"),
        (Reason::Manual, "manual"),
        (Reason::Restore, "restore"),
        (Reason::Migrate, "migrate"),
        (Reason::Rekey, "rekey"),
        (Reason::Approve, "approve"),
        (Reason::Identity, "identity"),
        (Reason::Bind, "bind"),
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        super::name_of(&Self::ALL, self)
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Reason> {
        super::value_of(&Self::ALL, text)
    }
}

/// The standard fields every checkpoint starts with, typed (`v`, the
/// version, aside): what a [`Draft`] sets and a [`Checkpoint`] holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Sequence number, from 1.
    pub seq: u64,
    /// Hex SHA-256 of the previous checkpoint file; empty for seq 1.
    pub prev: String,
    /// Soul hash, hex.
    pub soul: String,
    /// Count of file and symlink entries.
    pub files: u64,
    /// Sum of their sizes.
    pub bytes: u64,
    /// RFC 3339 UTC with milliseconds.
    pub sealed_at: String,
    /// Why it was sealed (a [`Reason`]'s wire name; unknown reasons are
    /// kept as read).
    pub reason: String,
    /// The shell's version string.
    pub shell: String,
    /// The soul format tag, e.g. `v1`.
    pub format: String,
    /// Hex SHA-256 of the last history line when sealing.
    pub log: String,
    /// The platform whose credential binds the identity: `telegram`.
    pub platform: String,
    /// The account (bot) id the checkpoint is bound to.
    pub bot_id: u64,
}

/// A checkpoint: the typed standard fields plus every field as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The standard fields, typed.
    pub header: Header,
    /// Every field as stored, in file order, `hash` included.
    pub fields: Fields,
    /// The MAC, lowercase hex.
    pub hash: String,
}

impl Deref for Checkpoint {
    type Target = Header;

    fn deref(&self) -> &Header {
        &self.header
    }
}

/// The values of a new checkpoint, before signing.
#[derive(Debug, Clone)]
pub struct Draft {
    /// The standard fields.
    pub header: Header,
    /// Extra fields (covered by the MAC unless listed as unsigned).
    pub extra: Vec<(String, String)>,
}

impl Draft {
    /// The fields in file order, without `hash`.
    pub fn fields(&self) -> Fields {
        let h = &self.header;
        let mut f = Fields::new();
        f.push("v", VERSION);
        f.push("seq", &h.seq.to_string());
        f.push("prev", &h.prev);
        f.push("soul", &h.soul);
        f.push("files", &h.files.to_string());
        f.push("bytes", &h.bytes.to_string());
        f.push("sealed_at", &h.sealed_at);
        f.push("reason", &h.reason);
        f.push("shell", &h.shell);
        f.push("format", &h.format);
        f.push("log", &h.log);
        f.push("platform", &h.platform);
        f.push("bot_id", &h.bot_id.to_string());
        for (k, v) in &self.extra {
            f.push(k, v);
        }
        f
    }

    /// The checkpoint of these fields with the MAC(s) `signed` appended
    /// (`prev_key_hash` before `hash` on a rekey checkpoint).
    pub fn with_macs(&self, mut fields: Fields, macs: &[(&str, &str)]) -> Checkpoint {
        for (k, v) in macs {
            fields.push(k, v);
        }
        Checkpoint::from_fields(fields).expect("a draft has every field")
    }
}

impl Checkpoint {
    /// Parses a checkpoint file. Its bytes must be exactly the canonical
    /// encoding of its fields ([`Checkpoint::to_bytes`]): the standard
    /// fields in their order, then the fields the MAC covers, then those
    /// it does not (`prev_key_hash` on a rekey checkpoint, `signature` on
    /// one that names an `identity`), `hash` last. The MAC covers the
    /// decoded values only, so anything else could change a file's bytes
    /// (and so the next checkpoint's `prev`) without breaking it.
    pub fn parse(bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
        let text = std::str::from_utf8(bytes).map_err(|_| CheckpointError::Shape)?;
        let line = text.strip_suffix('\n').ok_or(CheckpointError::Shape)?;
        if line.contains('\n') || line.contains('\r') {
            return Err(CheckpointError::Shape);
        }
        let ckpt = Checkpoint::from_fields(Fields::parse(line)?)?;
        ckpt.check_canonical(line)?;
        Ok(ckpt)
    }

    /// Checks that `line` is the canonical encoding of the fields.
    fn check_canonical(&self, line: &str) -> Result<(), CheckpointError> {
        let bad = |why: &str| Err(CheckpointError::NotCanonical(why.to_owned()));
        let keys: Vec<&str> = self.fields.iter().map(|(k, _)| k).collect();
        if keys.get(..STANDARD_FIELDS.len()) != Some(&STANDARD_FIELDS[..]) {
            return bad("the standard fields are missing or out of order");
        }
        if keys.last() != Some(&"hash") {
            return bad("`hash` is not the last field");
        }
        // The unsigned fields the format defines here, in their order.
        let mut unsigned = Vec::new();
        if self.hands_over() {
            unsigned.push(PREV_KEY_HASH);
        }
        if self.fields.get(IDENTITY).is_some() {
            unsigned.push(SIGNATURE);
        }
        let rest = &keys[STANDARD_FIELDS.len()..keys.len() - 1];
        let covered = rest
            .iter()
            .take_while(|k| !UNSIGNED_FIELDS.contains(k))
            .count();
        let mut expected = unsigned.iter();
        for k in &rest[covered..] {
            // In order, each at most once; none that the format does not
            // define on this checkpoint.
            if !UNSIGNED_FIELDS.contains(k) {
                return bad(&format!(
                    "field `{k}` comes after a field the MAC does not cover"
                ));
            }
            if !expected.by_ref().any(|u| u == k) {
                return bad(&format!(
                    "field `{k}` is not covered by the MAC and not defined here (or out of order)"
                ));
            }
        }
        if self.fields.encode() != line {
            return bad("the fields are encoded differently (percent escapes, `+` or field order)");
        }
        Ok(())
    }

    fn from_fields(fields: Fields) -> Result<Checkpoint, CheckpointError> {
        let text = |k: &'static str| {
            fields
                .get(k)
                .map(str::to_owned)
                .ok_or(CheckpointError::Field(k))
        };
        let num = |k: &'static str| -> Result<u64, CheckpointError> {
            let v = fields.get(k).ok_or(CheckpointError::Field(k))?;
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(CheckpointError::Field(k));
            }
            v.parse().map_err(|_| CheckpointError::Field(k))
        };
        let hexfield = |k: &'static str, may_be_empty: bool| -> Result<String, CheckpointError> {
            let v = text(k)?;
            let ok = (may_be_empty && v.is_empty())
                || (v.len() == 64 && v.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
            if ok {
                Ok(v)
            } else {
                Err(CheckpointError::Field(k))
            }
        };
        let v = text("v")?;
        if v != VERSION {
            return Err(CheckpointError::Version(v));
        }
        let seq = num("seq")?;
        if seq == 0 {
            return Err(CheckpointError::Field("seq"));
        }
        let prev = hexfield("prev", true)?;
        if (seq == 1) != prev.is_empty() {
            return Err(CheckpointError::Field("prev"));
        }
        let sealed_at = text("sealed_at")?;
        if parse_rfc3339(&sealed_at).is_none() {
            return Err(CheckpointError::Field("sealed_at"));
        }
        let header = Header {
            seq,
            prev,
            soul: hexfield("soul", false)?,
            files: num("files")?,
            bytes: num("bytes")?,
            sealed_at,
            reason: text("reason")?,
            shell: text("shell")?,
            format: text("format")?,
            log: hexfield("log", true)?,
            platform: text("platform")?,
            bot_id: num("bot_id")?,
        };
        Ok(Checkpoint {
            header,
            hash: text("hash")?,
            fields,
        })
    }

    /// The file bytes: the fields, encoded, then `\n`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = self.fields.encode();
        s.push('\n');
        s.into_bytes()
    }

    /// The data-check-string the MAC covers.
    pub fn data_check_string(&self) -> String {
        self.fields.data_check_string(UNSIGNED_FIELDS)
    }

    /// The hash of `config.toml` this checkpoint was sealed with, if it
    /// records one (checkpoints of older vaults do not).
    pub fn config(&self) -> Option<&str> {
        self.fields.get(CONFIG)
    }

    /// Whether the reason is one that moves the vault to new keys
    /// (`rekey`, `bind`): the checkpoints that carry `prev_key_hash`.
    fn hands_over(&self) -> bool {
        self.reason == Reason::Rekey.as_str() || self.reason == Reason::Bind.as_str()
    }

    /// Whether this is a rekey or bind checkpoint (reason `rekey` or
    /// `bind` with a `prev_key_hash`): it vouches for every checkpoint
    /// before it.
    pub fn is_rekey(&self) -> bool {
        self.hands_over() && self.fields.get(PREV_KEY_HASH).is_some()
    }

    /// Whether this is a bind checkpoint (a move to another platform or
    /// bot).
    pub fn is_bind(&self) -> bool {
        self.reason == Reason::Bind.as_str() && self.fields.get(PREV_KEY_HASH).is_some()
    }

    /// The MAC under the retired key on a rekey or bind checkpoint.
    pub fn prev_key_hash(&self) -> Option<&str> {
        self.hands_over()
            .then(|| self.fields.get(PREV_KEY_HASH))
            .flatten()
    }

    /// The seal time.
    pub fn sealed_time(&self) -> std::time::SystemTime {
        parse_rfc3339(&self.sealed_at).unwrap_or(std::time::UNIX_EPOCH)
    }

    /// The file name in `checkpoints/`: the seq zero-padded to 8 digits.
    pub fn file_name(seq: u64) -> String {
        format!("{seq:08}.ckpt")
    }
}

#[cfg(test)]
mod reason_tests {
    use super::Reason;

    #[test]
    fn every_reason_round_trips_and_unknown_ones_do_not_parse() {
        for (r, name) in Reason::ALL {
            assert_eq!(r.as_str(), name);
            assert_eq!(Reason::parse(name), Some(r));
        }
        assert_eq!(Reason::parse("nap"), None);
    }
}
