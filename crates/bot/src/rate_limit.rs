//! A sliding-window rate limit per user (20 messages in 60 s by default). This is the embedded
//! (single-process) form; the Redis form runs the same rule in a Lua script.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// The rule: at most `maximum_messages` in any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitRule {
    pub maximum_messages: usize,
    pub window: Duration,
}

impl Default for RateLimitRule {
    fn default() -> Self {
        RateLimitRule {
            maximum_messages: 20,
            window: Duration::from_secs(60),
        }
    }
}

/// What the limiter decided for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitDecision {
    Allowed,
    /// Refused; the user may send again after this long.
    Refused {
        retry_after: Duration,
    },
}

/// In-memory sliding windows, one per user.
#[derive(Debug, Default)]
pub struct SlidingWindowRateLimiter {
    rule: RateLimitRule,
    recent_messages_by_user: HashMap<i64, VecDeque<Instant>>,
}

impl SlidingWindowRateLimiter {
    pub fn new(rule: RateLimitRule) -> Self {
        SlidingWindowRateLimiter {
            rule,
            recent_messages_by_user: HashMap::new(),
        }
    }

    /// Records a message at `now` if allowed.
    pub fn check(&mut self, user_id: i64, now: Instant) -> RateLimitDecision {
        let window = self.rule.window;
        let recent = self.recent_messages_by_user.entry(user_id).or_default();
        while recent
            .front()
            .is_some_and(|sent_at| now.saturating_duration_since(*sent_at) >= window)
        {
            recent.pop_front();
        }
        if recent.len() >= self.rule.maximum_messages {
            let oldest = recent.front().copied().unwrap_or(now);
            let retry_after = window.saturating_sub(now.saturating_duration_since(oldest));
            return RateLimitDecision::Refused { retry_after };
        }
        recent.push_back(now);
        RateLimitDecision::Allowed
    }

    /// Drops users with no message in the window (bounded memory).
    pub fn forget_idle_users(&mut self, now: Instant) {
        let window = self.rule.window;
        self.recent_messages_by_user.retain(|_, recent| {
            recent
                .back()
                .is_some_and(|sent_at| now.saturating_duration_since(*sent_at) < window)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_twenty_first_message_in_a_minute_is_refused_until_the_oldest_leaves() {
        let mut limiter = SlidingWindowRateLimiter::new(RateLimitRule::default());
        let start = Instant::now();
        for second in 0..20 {
            assert_eq!(
                limiter.check(7, start + Duration::from_secs(second)),
                RateLimitDecision::Allowed
            );
        }
        let refused = limiter.check(7, start + Duration::from_secs(30));
        assert_eq!(
            refused,
            RateLimitDecision::Refused {
                retry_after: Duration::from_secs(30)
            }
        );
        // Another user is not affected.
        assert_eq!(
            limiter.check(8, start + Duration::from_secs(30)),
            RateLimitDecision::Allowed
        );
        // After the oldest message leaves the window, one more is allowed.
        assert_eq!(
            limiter.check(7, start + Duration::from_secs(60)),
            RateLimitDecision::Allowed
        );
        limiter.forget_idle_users(start + Duration::from_secs(500));
        assert!(limiter.recent_messages_by_user.is_empty());
    }
}
