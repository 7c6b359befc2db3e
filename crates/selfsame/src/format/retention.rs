//! Retention policies, with restic's meanings (`restic forget --keep-*`):
//! which snapshots a policy keeps, given when each was made.
//!
//! The snapshots are taken newest first. `keep-last N` keeps the N newest;
//! `keep-hourly N` keeps, for the last N hours that have a snapshot, the
//! newest of each hour; likewise daily, weekly (Monday to Sunday), monthly
//! and yearly. `keep-within D` keeps every snapshot made less than D
//! before the newest one. A snapshot is kept when any rule keeps it. Hours,
//! days, weeks, months and years are UTC's (restic uses local time).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A retention policy: how many of each kind of snapshot to keep. Zero
/// (or `None`) keeps none by that rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// The newest N.
    pub last: u64,
    /// The newest of each of the last N hours that have one.
    pub hourly: u64,
    /// The newest of each of the last N days that have one.
    pub daily: u64,
    /// The newest of each of the last N weeks that have one.
    pub weekly: u64,
    /// The newest of each of the last N months that have one.
    pub monthly: u64,
    /// The newest of each of the last N years that have one.
    pub yearly: u64,
    /// Every one made less than this before the newest.
    pub within: Option<Duration>,
}

/// The rules, in the order reasons are given.
const RULES: [&str; 6] = ["last", "hourly", "daily", "weekly", "monthly", "yearly"];

impl Policy {
    /// Whether the policy keeps nothing at all (no rule set).
    pub fn is_empty(&self) -> bool {
        self.counts().iter().all(|&n| n == 0) && self.within.is_none_or(|d| d.is_zero())
    }

    fn counts(&self) -> [u64; 6] {
        [
            self.last,
            self.hourly,
            self.daily,
            self.weekly,
            self.monthly,
            self.yearly,
        ]
    }

    /// Which of `snapshots` (an id and when it was made) the policy keeps,
    /// each with the rules that keep it (`last`, `hourly`, …, `within`).
    /// The others are not in the map.
    pub fn keep(&self, snapshots: &[(u64, SystemTime)]) -> BTreeMap<u64, Vec<&'static str>> {
        let mut order: Vec<(u64, SystemTime)> = snapshots.to_vec();
        // Newest first; of two made at the same moment, the later id.
        order.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
        let mut kept = BTreeMap::new();
        let Some(&(_, newest)) = order.first() else {
            return kept;
        };
        let mut left = self.counts();
        let mut last_key: [Option<i64>; 6] = [None; 6];
        for (i, &(id, t)) in order.iter().enumerate() {
            let mut why = Vec::new();
            if let Some(d) = self.within.filter(|d| !d.is_zero()) {
                if newest.duration_since(t).is_ok_and(|age| age < d) {
                    why.push("within");
                }
            }
            for rule in 0..RULES.len() {
                if left[rule] == 0 {
                    continue;
                }
                let key = if rule == 0 { i as i64 } else { bucket(rule, t) };
                if last_key[rule] != Some(key) {
                    last_key[rule] = Some(key);
                    left[rule] -= 1;
                    why.push(RULES[rule]);
                }
            }
            if !why.is_empty() {
                kept.insert(id, why);
            }
        }
        kept
    }
}

/// The hour, day, week, month or year `t` falls in (UTC), as a number
/// that differs between any two of them.
fn bucket(rule: usize, t: SystemTime) -> i64 {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64) - 1,
    };
    let days = secs.div_euclid(86_400);
    match rule {
        1 => secs.div_euclid(3_600),
        2 => days,
        // 1970-01-01 was a Thursday: weeks start on the Monday before.
        3 => (days + 3).div_euclid(7),
        4 => {
            let (y, m, _) = civil(days);
            y * 12 + m as i64
        }
        _ => civil(days).0,
    }
}

/// The (year, month, day) of a day counted from 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> SystemTime {
        humantime::parse_rfc3339(text).unwrap()
    }

    fn ids(kept: &BTreeMap<u64, Vec<&'static str>>) -> Vec<u64> {
        kept.keys().copied().collect()
    }

    #[test]
    fn civil_dates_are_the_calendar_s() {
        for (text, want) in [
            ("1970-01-01T00:00:00Z", (1970, 1, 1)),
            ("2000-02-29T12:00:00Z", (2000, 2, 29)),
            ("2026-12-31T23:59:59Z", (2026, 12, 31)),
            ("2027-03-01T00:00:00Z", (2027, 3, 1)),
        ] {
            let days = at(text).duration_since(UNIX_EPOCH).unwrap().as_secs() / 86_400;
            assert_eq!(civil(days as i64), want, "{text}");
        }
    }

    #[test]
    fn each_rule_keeps_the_newest_of_its_periods() {
        // A day of snapshots every 20 minutes, 2026-06-01 (a Monday).
        let snaps: Vec<(u64, SystemTime)> = (0..72)
            .map(|i| {
                (
                    i + 1,
                    at("2026-06-01T00:10:00Z") + Duration::from_secs(i * 1200),
                )
            })
            .collect();
        let last = Policy {
            last: 5,
            ..Policy::default()
        }
        .keep(&snaps);
        assert_eq!(ids(&last), vec![68, 69, 70, 71, 72]);
        // The newest of each of the last 4 hours: 20:50, 21:50, 22:50, 23:50.
        let hourly = Policy {
            hourly: 4,
            ..Policy::default()
        }
        .keep(&snaps);
        assert_eq!(ids(&hourly), vec![63, 66, 69, 72]);
        assert_eq!(hourly[&72], vec!["hourly"]);
        let daily = Policy {
            daily: 3,
            ..Policy::default()
        }
        .keep(&snaps);
        assert_eq!(ids(&daily), vec![72], "one day has snapshots");
        // Within 1h of the newest (23:50): 23:10 and later, not 22:50.
        let within = Policy {
            within: Some(Duration::from_secs(3600)),
            ..Policy::default()
        }
        .keep(&snaps);
        assert_eq!(ids(&within), vec![70, 71, 72]);
        let both = Policy {
            last: 2,
            hourly: 2,
            ..Policy::default()
        }
        .keep(&snaps);
        assert_eq!(ids(&both), vec![69, 71, 72]);
        assert_eq!(both[&72], vec!["last", "hourly"]);
    }

    #[test]
    fn weeks_run_monday_to_sunday_and_months_and_years_are_the_calendar_s() {
        let snaps = [
            (1, at("2026-05-31T12:00:00Z")), // Sunday
            (2, at("2026-06-01T12:00:00Z")), // Monday
            (3, at("2026-06-07T12:00:00Z")), // Sunday
            (4, at("2026-12-31T12:00:00Z")), // Thursday
            (5, at("2027-01-01T12:00:00Z")), // Friday, the same week
        ];
        let weekly = Policy {
            weekly: 10,
            ..Policy::default()
        }
        .keep(&snaps);
        assert_eq!(ids(&weekly), vec![1, 3, 5]);
        let monthly = Policy {
            monthly: 10,
            ..Policy::default()
        }
        .keep(&snaps);
        assert_eq!(ids(&monthly), vec![1, 3, 4, 5]);
        let yearly = Policy {
            yearly: 10,
            ..Policy::default()
        }
        .keep(&snaps);
        assert_eq!(ids(&yearly), vec![4, 5]);
    }

    #[test]
    fn an_empty_policy_keeps_nothing_and_says_so() {
        assert!(Policy::default().is_empty());
        assert!(!Policy {
            daily: 1,
            ..Policy::default()
        }
        .is_empty());
        assert!(Policy::default().keep(&[(1, UNIX_EPOCH)]).is_empty());
    }

    proptest::proptest! {
        /// Whatever the times: the newest is kept by any rule that counts,
        /// no rule keeps more than its count, and keeping is stable: a
        /// policy applied to what it kept keeps all of it.
        #[test]
        fn keeping_is_bounded_and_stable(
            times in proptest::collection::vec(0u64..400 * 86_400, 1..60),
            last in 0u64..4, hourly in 0u64..4, daily in 0u64..4, weekly in 0u64..3,
        ) {
            let snaps: Vec<(u64, SystemTime)> = times
                .iter()
                .enumerate()
                .map(|(i, &s)| (i as u64, UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s)))
                .collect();
            let p = Policy { last, hourly, daily, weekly, ..Policy::default() };
            let kept = p.keep(&snaps);
            let newest = snaps.iter().max_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0))).unwrap().0;
            proptest::prop_assert_eq!(kept.contains_key(&newest), !p.is_empty());
            for (rule, n) in [("last", last), ("hourly", hourly), ("daily", daily), ("weekly", weekly)] {
                let by = kept.values().filter(|w| w.contains(&rule)).count() as u64;
                proptest::prop_assert!(by <= n);
            }
            let again: Vec<(u64, SystemTime)> =
                snaps.iter().filter(|s| kept.contains_key(&s.0)).copied().collect();
            proptest::prop_assert_eq!(ids(&p.keep(&again)), ids(&kept));
        }
    }
}
