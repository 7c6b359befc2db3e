//! History lines: one JSON object a line, hash-chained, each with a MAC.
//!
//! Every line has `n` (1, 2, …), `at` (RFC 3339), `event` and `prev`, the
//! hex SHA-256 of the previous line's bytes without its newline (empty for
//! line 1). Event-specific fields follow, in key order.
//!
//! History v2: the line's **last** member is `"mac":"<64 lowercase hex>"`,
//! so its bytes end with `,"mac":"` + 64 hex digits + `"}`. Its *body* is
//! the line with that suffix replaced by `}`, and `mac` = hex
//! HMAC-SHA256(history key, body) ([`crate::crypto`] computes it). Lines
//! written by older versions (v1) have no `mac`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The member that carries a v2 line's MAC.
pub const MAC: &str = "mac";

/// What a v2 line ends with before the 64 hex digits of its MAC.
const MAC_OPEN: &str = ",\"mac\":\"";
/// What a v2 line ends with after them.
const MAC_CLOSE: &str = "\"}";
/// Length of the whole suffix that the body replaces by `}`.
const MAC_SUFFIX: usize = MAC_OPEN.len() + 64 + MAC_CLOSE.len();

/// One event of `history.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryLine {
    /// Line number, from 1.
    pub n: u64,
    /// When it happened, RFC 3339.
    pub at: String,
    /// `init`, `seal`, `wake`, `accept`, `restore`, `rollback`, `migrate`,
    /// `rekey`, `alert`, `crash`, `repair`, …
    pub event: String,
    /// Hex SHA-256 of the previous line, or empty.
    pub prev: String,
    /// Event-specific fields (never the `mac` of a v2 line).
    #[serde(flatten)]
    pub data: Map<String, Value>,
}

impl HistoryLine {
    /// The line's bytes without a MAC (a v1 line, or a v2 line's body),
    /// without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("history lines serialize")
    }

    /// Parses one line (without its newline); a v2 line's `mac` is left
    /// out of `data` (its MAC is checked by the history's reader).
    pub fn parse(line: &str) -> Result<HistoryLine, serde_json::Error> {
        let mut parsed: HistoryLine = serde_json::from_str(line)?;
        if signed_body(line).is_some() {
            parsed.data.remove(MAC);
        }
        Ok(parsed)
    }

    /// A field of the event data.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.data.get(key)
    }

    /// A numeric field of the event data.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.data.get(key).and_then(Value::as_u64)
    }
}

/// For a v2 line (its bytes end with `,"mac":"` + 64 characters + `"}`),
/// its body and the MAC as written; `None` for a line without one.
pub fn signed_body(line: &str) -> Option<(String, &str)> {
    let start = line.len().checked_sub(MAC_SUFFIX)?;
    let suffix = line.get(start..)?;
    let mac = suffix.strip_prefix(MAC_OPEN)?.strip_suffix(MAC_CLOSE)?;
    let mut body = line[..start].to_owned();
    body.push('}');
    Some((body, mac))
}

/// The v2 line of `body` (a line without a MAC, as
/// [`HistoryLine::to_line`] writes it) and its `mac`: `"mac"` appended as
/// its last member, without the newline.
pub fn with_mac(mut body: String, mac: &str) -> String {
    debug_assert!(body.ends_with('}'), "every line is a JSON object");
    body.pop();
    body.push_str(MAC_OPEN);
    body.push_str(mac);
    body.push_str(MAC_CLOSE);
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line() -> HistoryLine {
        let mut data = Map::new();
        data.insert("seq".into(), 3.into());
        data.insert("note".into(), "ünï \"q\"".into());
        HistoryLine {
            n: 2,
            at: "2030-01-01T00:00:00.000Z".into(),
            event: "good".into(),
            prev: "ab".repeat(32),
            data,
        }
    }

    use selfsame_telegram::SecretKey;

    fn mac_valid(line: &str, key: &SecretKey) -> Option<bool> {
        let (body, mac) = signed_body(line)?;
        Some(key.verify(body.as_bytes(), mac))
    }

    #[test]
    fn a_signed_line_verifies_parses_back_and_any_change_breaks_it() {
        let key = SecretKey::derive(b"selfsame/history/v1", b"1:a");
        let other = SecretKey::derive(b"selfsame/history/v1", b"1:b");
        let body = line().to_line();
        let text = with_mac(body.clone(), &key.sign(body.as_bytes()));
        assert!(text.ends_with("\"}"));
        assert_eq!(mac_valid(&text, &key), Some(true));
        assert_eq!(mac_valid(&text, &other), Some(false));
        assert_eq!(HistoryLine::parse(&text).unwrap(), line());
        assert_eq!(signed_body(&text).unwrap().0, line().to_line());
        // A v1 line has no MAC.
        assert_eq!(mac_valid(&line().to_line(), &key), None);
        // Any changed byte of the body is caught.
        let bytes = text.as_bytes();
        for i in 0..bytes.len() - MAC_SUFFIX {
            let mut changed = bytes.to_vec();
            changed[i] ^= 1;
            if let Ok(t) = std::str::from_utf8(&changed) {
                assert_ne!(mac_valid(t, &key), Some(true), "byte {i}");
            }
        }
    }
}
