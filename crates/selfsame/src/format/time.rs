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

/// The time at the start of a name made with [`stamp`]
/// (`2026-11-25T010030123Z-…`), if it starts with one.
pub fn parse_stamp(name: &str) -> Option<SystemTime> {
    let s = name.get(..21)?;
    if !s.ends_with('Z') || !s.is_ascii() {
        return None;
    }
    let text = format!("{}:{}:{}.{}Z", &s[..13], &s[13..15], &s[15..17], &s[17..20]);
    humantime::parse_rfc3339(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn a_stamp_reads_back_as_its_time() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_000_030_123);
        let name = format!("{}-restore-from-5", stamp(t));
        assert_eq!(parse_stamp(&name), Some(t));
        assert_eq!(parse_stamp("notes"), None);
        assert_eq!(parse_stamp("2026-11-25T010030123X-x"), None);
        assert_eq!(parse_stamp("2026-11-25T01003é123Z"), None);
    }
}
