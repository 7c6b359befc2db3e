//! The clock, with a test hook.
//!
//! `SELFSAME_NOW` (RFC 3339, or seconds since the Unix epoch) replaces the
//! wall clock. It exists only so tests can check time-dependent warnings
//! such as `stale`; do not set it in production.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The current time, or `SELFSAME_NOW` when set.
pub fn now() -> SystemTime {
    if let Ok(text) = std::env::var("SELFSAME_NOW") {
        if let Ok(secs) = text.trim().parse::<u64>() {
            return UNIX_EPOCH + Duration::from_secs(secs);
        }
        if let Ok(t) = humantime::parse_rfc3339(text.trim()) {
            return t;
        }
    }
    SystemTime::now()
}
