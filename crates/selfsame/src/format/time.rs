//! Times as selfsame writes them: RFC 3339 UTC with milliseconds, e.g.
//! `2026-11-25T01:00:30.123Z` (checkpoints' `sealed_at`, history's `at`).

use std::time::SystemTime;

/// RFC 3339 UTC with milliseconds.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Parses RFC 3339 as written by [`rfc3339`].
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(text).ok()
}

/// [`rfc3339`] without `:` and `.`, for names of files and directories.
pub fn stamp(t: SystemTime) -> String {
    rfc3339(t).replace([':', '.'], "")
}
