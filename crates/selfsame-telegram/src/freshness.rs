//! `auth_date` and the max-age check.
//!
//! The clock is a parameter, never read here: the caller passes `now`, so
//! validation stays a pure function and tests can pin time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::Error;

/// How old signed data may be.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use selfsame_telegram::Freshness;
///
/// let now = UNIX_EPOCH + Duration::from_secs(1_700_086_400);
/// let day = Freshness::within(Duration::from_secs(86_400), now);
/// let signed = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// assert!(day.check(signed).is_ok()); // exactly one day old: still valid
/// assert!(day.check(signed - Duration::from_secs(1)).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    limit: Option<(Duration, SystemTime)>,
}

impl Freshness {
    /// Accept data of any age. For stored data and tests; a live backend
    /// should use [`Freshness::within`], or stolen data stays valid forever.
    pub const ANY: Freshness = Freshness { limit: None };

    /// Accept data signed at most `max_age` before `now`. Data is expired
    /// only when `now - auth_date > max_age`; exactly `max_age` old is still
    /// valid, and an `auth_date` after `now` (a client clock a little ahead)
    /// is accepted.
    pub fn within(max_age: Duration, now: SystemTime) -> Self {
        Freshness {
            limit: Some((max_age, now)),
        }
    }

    /// Checks `auth_date` against the limit.
    pub fn check(&self, auth_date: SystemTime) -> Result<(), Error> {
        let Some((max_age, now)) = self.limit else {
            return Ok(());
        };
        match now.duration_since(auth_date) {
            Ok(age) if age > max_age => Err(Error::Expired { age, max_age }),
            // Younger than the limit, or signed "in the future".
            _ => Ok(()),
        }
    }
}

/// Parses `auth_date`: a decimal unix time, digits only (no sign, no
/// spaces), that fits a `SystemTime`.
pub(crate) fn parse_auth_date(text: &str) -> Result<SystemTime, Error> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::BadAuthDate);
    }
    let secs: u64 = text.parse().map_err(|_| Error::BadAuthDate)?;
    UNIX_EPOCH
        .checked_add(Duration::from_secs(secs))
        .ok_or(Error::BadAuthDate)
}

/// Seconds since the unix epoch, for output.
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn expired_only_past_the_limit() {
        let f = Freshness::within(Duration::from_secs(100), at(1000));
        assert!(f.check(at(900)).is_ok());
        assert!(f.check(at(901)).is_ok());
        assert_eq!(
            f.check(at(899)),
            Err(Error::Expired {
                age: Duration::from_secs(101),
                max_age: Duration::from_secs(100)
            })
        );
        assert!(f.check(at(1005)).is_ok(), "a little in the future");
        assert!(Freshness::ANY.check(at(0)).is_ok());
    }

    #[test]
    fn auth_date_is_plain_decimal() {
        assert_eq!(parse_auth_date("1662771648"), Ok(at(1662771648)));
        assert_eq!(parse_auth_date("0"), Ok(at(0)));
        for bad in ["", "+1", "-1", " 1", "1 ", "1.5", "1e9", "abc", "０"] {
            assert_eq!(parse_auth_date(bad), Err(Error::BadAuthDate), "{bad:?}");
        }
        assert_eq!(
            parse_auth_date("99999999999999999999999"),
            Err(Error::BadAuthDate)
        );
        // Fits u64 but not every platform's SystemTime: refused, never a panic.
        let _ = parse_auth_date(&u64::MAX.to_string());
    }
}
