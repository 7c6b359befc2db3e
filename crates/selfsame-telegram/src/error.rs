//! The one error type of the crate: why Telegram data was refused.

use std::time::Duration;

use crate::signed::ParseError;
use crate::token::TokenError;

/// Why Telegram data was refused.
///
/// No variant carries the bot token or a key, so an `Error` can be logged
/// and shown as it is. Duplicate keys are split out of [`ParseError`] into
/// [`Error::DuplicateKey`] so callers can tell the two apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The text is not strict `application/x-www-form-urlencoded`: empty, a
    /// pair without `=`, a bad `%` escape or invalid UTF-8.
    #[error("malformed data: {0}")]
    Malformed(ParseError),
    /// A key appeared twice. Telegram never repeats a key, and a repeated
    /// `hash` or `signature` is how a validator gets tricked, so the whole
    /// input is refused.
    #[error("malformed data: duplicate key {key:?}")]
    DuplicateKey {
        /// The repeated key, decoded.
        key: String,
    },
    /// There is no `hash` field, so the data cannot be checked with the token.
    #[error("not signed: the data has no \"hash\" field")]
    MissingHash,
    /// There is no `signature` field, so the data cannot be checked without
    /// the token.
    #[error("not signed: the data has no \"signature\" field (third-party validation needs it)")]
    MissingSignature,
    /// The `hash` is not the lowercase hex HMAC of the data under this
    /// token: the data was changed, was signed for another bot, or the token
    /// is wrong or was rotated.
    #[error("hash mismatch: the data was not signed with this bot's token, or was changed")]
    HashMismatch,
    /// The Ed25519 `signature` does not verify.
    #[error("bad signature: {0}")]
    BadSignature(SignatureFault),
    /// There is no `auth_date` field.
    #[error("malformed data: the data has no \"auth_date\" field")]
    MissingAuthDate,
    /// `auth_date` is not a decimal unix time.
    #[error("malformed data: \"auth_date\" is not a decimal unix time")]
    BadAuthDate,
    /// A field that must hold JSON (`user`, `receiver`, `chat`) or a number
    /// (`id` of the Login Widget) does not decode.
    #[error("malformed data: field {field:?} does not decode: {reason}")]
    BadField {
        /// The field's key.
        field: String,
        /// What was wrong (the JSON decoder may quote a piece of the value;
        /// field values are user data, never the token).
        reason: String,
    },
    /// The data is authentic but older than allowed: `now - auth_date >
    /// max_age`.
    #[error("expired: signed {} s ago, the limit is {} s", age.as_secs(), max_age.as_secs())]
    Expired {
        /// How long before `now` the data was signed.
        age: Duration,
        /// The largest age accepted.
        max_age: Duration,
    },
    /// The bot token is not `<digits>:<secret>`. The token is not shown.
    #[error(transparent)]
    BadToken(#[from] TokenError),
    /// A caller-given Ed25519 public key is not 32 bytes of hex or not a
    /// valid curve point.
    #[error("bad public key: expected 64 hex digits of an Ed25519 public key")]
    BadPublicKey,
}

/// Why an Ed25519 `signature` field was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureFault {
    /// Not base64url (`A-Z a-z 0-9 - _`, `=` padding optional).
    #[error("the signature is not base64url")]
    NotBase64Url,
    /// Decodes to another length than 64 bytes.
    #[error("the signature decodes to {0} bytes, not 64")]
    WrongLength(usize),
    /// Well-formed, but does not verify under the public key for this bot id.
    #[error("the signature does not verify for this bot id and public key")]
    Mismatch,
}

impl Error {
    /// A short stable name for the error, for logs, JSON output and test
    /// vectors: `malformed`, `duplicate_key`, `missing_hash`,
    /// `missing_signature`, `hash_mismatch`, `bad_signature`,
    /// `missing_auth_date`, `bad_auth_date`, `bad_field`, `expired`,
    /// `bad_token`, `bad_public_key`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Malformed(_) => "malformed",
            Error::DuplicateKey { .. } => "duplicate_key",
            Error::MissingHash => "missing_hash",
            Error::MissingSignature => "missing_signature",
            Error::HashMismatch => "hash_mismatch",
            Error::BadSignature(_) => "bad_signature",
            Error::MissingAuthDate => "missing_auth_date",
            Error::BadAuthDate => "bad_auth_date",
            Error::BadField { .. } => "bad_field",
            Error::Expired { .. } => "expired",
            Error::BadToken(_) => "bad_token",
            Error::BadPublicKey => "bad_public_key",
        }
    }

    /// Whether the data itself failed to prove it comes from Telegram (no
    /// `hash` or `signature`, or one that does not verify), as opposed to
    /// being malformed, expired, or checked with a bad token or key.
    pub fn is_not_authentic(&self) -> bool {
        matches!(
            self,
            Error::MissingHash
                | Error::MissingSignature
                | Error::HashMismatch
                | Error::BadSignature(_)
        )
    }
}

impl From<ParseError> for Error {
    fn from(e: ParseError) -> Self {
        match e {
            ParseError::DuplicateKey { key } => Error::DuplicateKey { key },
            other => Error::Malformed(other),
        }
    }
}
