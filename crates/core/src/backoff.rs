//! The one backoff formula: a first delay doubled per failed attempt, capped. Pure; every retry
//! loop (segment and playlist fetches, reconnects, job retries, uploads, part sends) asks it.

use std::time::Duration;

/// `first_delay` after the first failure, doubled after each further one, at most
/// `longest_delay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExponentialBackoff {
    pub first_delay: Duration,
    pub longest_delay: Duration,
}

impl ExponentialBackoff {
    pub const fn new(first_delay: Duration, longest_delay: Duration) -> Self {
        ExponentialBackoff {
            first_delay,
            longest_delay,
        }
    }

    /// The wait after failed attempt `failed_attempt` (1-based; 0 counts as 1).
    pub fn delay_after_failed_attempt(&self, failed_attempt: u32) -> Duration {
        let doublings = failed_attempt.saturating_sub(1).min(31);
        self.first_delay
            .saturating_mul(1u32 << doublings)
            .min(self.longest_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_per_attempt_up_to_the_longest() {
        let backoff = ExponentialBackoff::new(Duration::from_millis(500), Duration::from_secs(8));
        let delays: Vec<_> = (0..=7)
            .map(|attempt| backoff.delay_after_failed_attempt(attempt))
            .collect();
        let expected = [500, 500, 1000, 2000, 4000, 8000, 8000, 8000].map(Duration::from_millis);
        assert_eq!(delays, expected);
        assert_eq!(
            backoff.delay_after_failed_attempt(u32::MAX),
            Duration::from_secs(8)
        );
    }

    #[test]
    fn huge_delays_saturate_instead_of_overflowing() {
        let backoff = ExponentialBackoff::new(Duration::MAX, Duration::MAX);
        assert_eq!(backoff.delay_after_failed_attempt(40), Duration::MAX);
    }
}
