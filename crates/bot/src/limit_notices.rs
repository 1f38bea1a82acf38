//! "You hit the limit" is said once per window per person, not once per refused message or
//! press (that would spend Telegram's sending allowance on a flood). One type for the message
//! limit's notices and the button-press limit's. Bounded: past [`MAXIMUM_REMEMBERED`] people,
//! notices older than the window are forgotten (they decide nothing any more), and if every one
//! is recent the oldest half goes, so a flood of distinct senders cannot grow it without end.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many people's last notice are kept before old ones are forgotten.
pub(crate) const MAXIMUM_REMEMBERED: usize = 10_000;

#[derive(Default)]
pub(crate) struct LimitNotices {
    noticed_at_by_owner: Mutex<HashMap<i64, Instant>>,
}

impl LimitNotices {
    /// True when `owner_id` was not told within `window` before `now` (and records that they
    /// are told now). A poisoned lock answers `when_unknown`.
    pub(crate) fn first_in_window(
        &self,
        owner_id: i64,
        window: Duration,
        now: Instant,
        when_unknown: bool,
    ) -> bool {
        let Ok(mut notices) = self.noticed_at_by_owner.lock() else {
            return when_unknown;
        };
        let recently = notices
            .get(&owner_id)
            .is_some_and(|noticed_at| now.saturating_duration_since(*noticed_at) < window);
        if recently {
            return false;
        }
        if notices.len() >= MAXIMUM_REMEMBERED && !notices.contains_key(&owner_id) {
            notices.retain(|_, noticed_at| now.saturating_duration_since(*noticed_at) < window);
            if notices.len() >= MAXIMUM_REMEMBERED {
                let mut times: Vec<Instant> = notices.values().copied().collect();
                times.sort_unstable();
                let keep_from = times[times.len() / 2];
                notices.retain(|_, noticed_at| *noticed_at >= keep_from);
            }
        }
        notices.insert(owner_id, now);
        true
    }

    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.noticed_at_by_owner
            .lock()
            .map(|notices| notices.len())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_window_per_person() {
        let notices = LimitNotices::default();
        let window = Duration::from_secs(60);
        let start = Instant::now();
        assert!(notices.first_in_window(7, window, start, true));
        assert!(!notices.first_in_window(7, window, start + Duration::from_secs(59), true));
        assert!(notices.first_in_window(8, window, start + Duration::from_secs(1), true));
        assert!(notices.first_in_window(7, window, start + Duration::from_secs(61), true));
    }

    #[test]
    fn a_flood_of_distinct_senders_stays_bounded_and_recent_notices_hold() {
        let notices = LimitNotices::default();
        let window = Duration::from_secs(60);
        let start = Instant::now();
        for owner in 0..(3 * MAXIMUM_REMEMBERED as i64) {
            let now = start + Duration::from_millis(owner as u64);
            assert!(notices.first_in_window(owner, window, now, true));
            assert!(notices.remembered() <= MAXIMUM_REMEMBERED);
        }
        // The newest sender was told a moment ago: still once per window.
        let last = 3 * MAXIMUM_REMEMBERED as i64 - 1;
        let now = start + Duration::from_millis(last as u64 + 1);
        assert!(!notices.first_in_window(last, window, now, true));
    }
}
