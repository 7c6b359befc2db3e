//! Hashing, the checkpoint key and the history key.

use selfsame_telegram::{BotToken, SecretKey};
use sha2::{Digest, Sha256};

/// The label that turns a bot token into the checkpoint MAC key:
/// `HMAC-SHA256(key = label, msg = token)`, Telegram's initData construction
/// with `WebAppData` replaced.
pub const CHECKPOINT_LABEL: &[u8] = b"selfsame/checkpoint/v1";

/// The label that turns a bot token into the history MAC key (History v2).
pub const HISTORY_LABEL: &[u8] = b"selfsame/history/v1";

/// Fields that a checkpoint's MAC does not cover: the MAC itself, the
/// reserved identity signature, and the old key's MAC on a rekey checkpoint.
pub const UNSIGNED_FIELDS: &[&str] = &["hash", "signature", "prev_key_hash"];

/// The checkpoint MAC key for `token`.
pub fn checkpoint_key(token: &BotToken) -> SecretKey {
    SecretKey::derive(CHECKPOINT_LABEL, token.expose().as_bytes())
}

/// The history MAC key for `token`: `HMAC-SHA256(key =
/// "selfsame/history/v1", msg = token)`. Every history line carries a MAC
/// under it.
pub fn history_key(token: &BotToken) -> SecretKey {
    SecretKey::derive(HISTORY_LABEL, token.expose().as_bytes())
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Raw SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}
