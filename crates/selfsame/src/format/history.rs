//! History lines: one JSON object a line, hash-chained.
//!
//! Every line has `n` (1, 2, …), `at` (RFC 3339), `event` and `prev`, the
//! hex SHA-256 of the previous line's bytes without its newline (empty for
//! line 1). Event-specific fields follow.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
    /// Event-specific fields.
    #[serde(flatten)]
    pub data: Map<String, Value>,
}

impl HistoryLine {
    /// The line's bytes, without the newline.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("history lines serialize")
    }

    /// Parses one line (without its newline).
    pub fn parse(line: &str) -> Result<HistoryLine, serde_json::Error> {
        serde_json::from_str(line)
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
