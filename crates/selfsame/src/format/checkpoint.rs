//! Checkpoint v1: one line of `application/x-www-form-urlencoded` fields,
//! shaped exactly like Telegram initData, then `\n`.
//!
//! The MAC (`hash`) covers the data-check-string of every other field
//! except the reserved `signature` and a rekey's `prev_key_hash`; unknown
//! fields are kept and covered.

use selfsame_telegram::{Fields, SecretKey};

use crate::crypto::{self, UNSIGNED_FIELDS};

/// Checkpoint format version written in `v`.
pub const VERSION: &str = "1";

/// The field of a `rekey` checkpoint holding the MAC under the retired key.
pub const PREV_KEY_HASH: &str = "prev_key_hash";

/// The field binding a checkpoint to the vault's `config.toml`: lowercase
/// hex SHA-256 of the config bytes the sealing process read. An extra
/// field, so covered by the MAC; absent in checkpoints of older vaults.
pub const CONFIG: &str = "config";

/// The fields selfsame writes itself, now or in Format 2: an extra field
/// may not take one of these names (it would replace the real value, e.g.
/// `seq`, and checkpoints are create-only).
pub const RESERVED_FIELDS: &[&str] = &[
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
    "hash",
    CONFIG,
    PREV_KEY_HASH,
    "signature",
    "identity",
    "protected",
];

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
}

impl Reason {
    /// Every reason with its wire name.
    pub const ALL: [(Reason, &'static str); 8] = [
        (Reason::Init, "init"),
        (Reason::Rest, "rest"),
        (Reason::Heartbeat, "heartbeat"),
        (Reason::Recover, "recover"),
        (Reason::Manual, "manual"),
        (Reason::Restore, "restore"),
        (Reason::Migrate, "migrate"),
        (Reason::Rekey, "rekey"),
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(r, _)| *r == self)
            .map(|(_, name)| *name)
            .expect("every reason is listed")
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Reason> {
        Self::ALL
            .iter()
            .find(|(_, name)| *name == text)
            .map(|(r, _)| *r)
    }
}

/// A checkpoint: typed views of the fields plus every field as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Every field as stored, in file order, `hash` included.
    pub fields: Fields,
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
    /// Why it was sealed (wire name; unknown reasons are kept).
    pub reason: String,
    /// The shell's version string.
    pub shell: String,
    /// The soul format tag, e.g. `v1`.
    pub format: String,
    /// Hex SHA-256 of the last history line when sealing.
    pub log: String,
    /// `telegram`.
    pub platform: String,
    /// The bot id the checkpoint is bound to.
    pub bot_id: u64,
    /// The MAC, lowercase hex.
    pub hash: String,
}

/// The values of a new checkpoint, before signing.
#[derive(Debug, Clone)]
pub struct Draft {
    /// Sequence number.
    pub seq: u64,
    /// Previous checkpoint file hash, or empty.
    pub prev: String,
    /// Soul hash.
    pub soul: String,
    /// File count.
    pub files: u64,
    /// Byte count.
    pub bytes: u64,
    /// Seal time, RFC 3339 with milliseconds.
    pub sealed_at: String,
    /// Reason.
    pub reason: Reason,
    /// Shell version.
    pub shell: String,
    /// Soul format tag.
    pub format: String,
    /// History anchor.
    pub log: String,
    /// Bot id.
    pub bot_id: u64,
    /// Extra fields (covered by the MAC unless listed as unsigned).
    pub extra: Vec<(String, String)>,
}

impl Draft {
    /// The fields in file order, without `hash`.
    pub fn fields(&self) -> Fields {
        let mut f = Fields::new();
        f.push("v", VERSION);
        f.push("seq", &self.seq.to_string());
        f.push("prev", &self.prev);
        f.push("soul", &self.soul);
        f.push("files", &self.files.to_string());
        f.push("bytes", &self.bytes.to_string());
        f.push("sealed_at", &self.sealed_at);
        f.push("reason", self.reason.as_str());
        f.push("shell", &self.shell);
        f.push("format", &self.format);
        f.push("log", &self.log);
        f.push("platform", "telegram");
        f.push("bot_id", &self.bot_id.to_string());
        for (k, v) in &self.extra {
            f.push(k, v);
        }
        f
    }

    /// Signs the draft with the checkpoint key.
    pub fn sign(&self, key: &SecretKey) -> Checkpoint {
        let mut fields = self.fields();
        let mac = key.sign(fields.data_check_string(UNSIGNED_FIELDS).as_bytes());
        fields.push("hash", &mac);
        Checkpoint::from_fields(fields).expect("a draft has every field")
    }

    /// Signs a rekey checkpoint: `hash` under the new key, and
    /// `prev_key_hash` = the MAC of the same data-check-string under the old
    /// key. Neither MAC covers the other; both cover every other field.
    pub fn sign_rekey(&self, new_key: &SecretKey, old_key: &SecretKey) -> Checkpoint {
        let mut fields = self.fields();
        let dcs = fields.data_check_string(UNSIGNED_FIELDS);
        fields.push(PREV_KEY_HASH, &old_key.sign(dcs.as_bytes()));
        fields.push("hash", &new_key.sign(dcs.as_bytes()));
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
        if self.reason == Reason::Rekey.as_str() {
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
        if crate::clock::parse_rfc3339(&sealed_at).is_none() {
            return Err(CheckpointError::Field("sealed_at"));
        }
        Ok(Checkpoint {
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

    /// Whether the MAC verifies under `key` (constant-time comparison).
    pub fn verify(&self, key: &SecretKey) -> bool {
        key.verify(self.data_check_string().as_bytes(), &self.hash)
    }

    /// Whether this is a rekey checkpoint whose `prev_key_hash` verifies
    /// under `old_key`: the key that `old_key` derives from was retired here.
    pub fn retires(&self, old_key: &SecretKey) -> bool {
        self.reason == Reason::Rekey.as_str()
            && self
                .fields
                .get(PREV_KEY_HASH)
                .is_some_and(|m| old_key.verify(self.data_check_string().as_bytes(), m))
    }

    /// The hash of `config.toml` this checkpoint was sealed with, if it
    /// records one (checkpoints of older vaults do not).
    pub fn config(&self) -> Option<&str> {
        self.fields.get(CONFIG)
    }

    /// Whether this is a rekey checkpoint (reason `rekey` with a
    /// `prev_key_hash`).
    pub fn is_rekey(&self) -> bool {
        self.reason == Reason::Rekey.as_str() && self.fields.get(PREV_KEY_HASH).is_some()
    }

    /// Hex SHA-256 of the file bytes: what the next checkpoint's `prev` holds.
    pub fn file_hash(&self) -> String {
        crypto::sha256_hex(&self.to_bytes())
    }

    /// The seal time.
    pub fn sealed_time(&self) -> std::time::SystemTime {
        crate::clock::parse_rfc3339(&self.sealed_at).unwrap_or(std::time::UNIX_EPOCH)
    }

    /// The file name in `checkpoints/`: the seq zero-padded to 8 digits.
    pub fn file_name(seq: u64) -> String {
        format!("{seq:08}.ckpt")
    }
}

/// Checks a soul format tag: `v` then a positive decimal number.
pub fn check_format_tag(tag: &str) -> Result<u32, String> {
    tag.strip_prefix('v')
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && !n.starts_with('0'))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("format tag {tag:?} is not of the form v1, v2, …"))
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
