//! A sliding-window rate limit per user (20 messages in 60 s by default): the embedded
//! (single-process) form here, the Redis form (the same rule in one Lua script, shared by every
//! bot process) in `redis_rate_limit.rs`, and `RateLimiter`, the one the bot holds.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[path = "redis_rate_limit.rs"]
mod redis_rate_limit;

pub use redis_rate_limit::RedisSlidingWindowRateLimiter;

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
    /// When idle users were last dropped (by `check`, at most once per window).
    last_sweep: Option<Instant>,
}

impl SlidingWindowRateLimiter {
    pub fn new(rule: RateLimitRule) -> Self {
        SlidingWindowRateLimiter {
            rule,
            recent_messages_by_user: HashMap::new(),
            last_sweep: None,
        }
    }

    /// Records a message at `now` if allowed. Once per window it also drops idle users, so memory
    /// stays bounded by the users active in the last window.
    pub fn check(&mut self, user_id: i64, now: Instant) -> RateLimitDecision {
        let window = self.rule.window;
        match self.last_sweep {
            Some(swept) if now.saturating_duration_since(swept) < window => {}
            Some(_) => {
                self.forget_idle_users(now);
                self.last_sweep = Some(now);
            }
            None => self.last_sweep = Some(now),
        }
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

/// The limiter the bot holds: in memory (one process) or in Redis (shared by every bot process).
#[derive(Debug)]
pub enum RateLimiter {
    InMemory(Mutex<SlidingWindowRateLimiter>),
    Redis(RedisSlidingWindowRateLimiter),
}

impl RateLimiter {
    pub fn in_memory(rule: RateLimitRule) -> Self {
        RateLimiter::InMemory(Mutex::new(SlidingWindowRateLimiter::new(rule)))
    }

    /// Redis when `redis_url` is given (connected lazily, on the first check), else in memory. A
    /// URL that does not parse is logged and the limit is kept in memory. Call inside a tokio
    /// runtime.
    pub fn from_settings(rule: RateLimitRule, redis_url: Option<&str>, key_prefix: &str) -> Self {
        let Some(redis_url) = redis_url.filter(|url| !url.trim().is_empty()) else {
            return RateLimiter::in_memory(rule);
        };
        match RedisSlidingWindowRateLimiter::new(redis_url, key_prefix, rule) {
            Ok(limiter) => RateLimiter::Redis(limiter),
            Err(error) => {
                tracing::warn!(%error, "the Redis URL for the rate limit is not usable; keeping the limit in memory");
                RateLimiter::in_memory(rule)
            }
        }
    }

    /// Records a message of `user_id` if allowed. Redis failures allow the message (logged).
    pub async fn check(&self, user_id: i64) -> RateLimitDecision {
        match self {
            RateLimiter::InMemory(limiter) => limiter
                .lock()
                .map(|mut limiter| limiter.check(user_id, Instant::now()))
                .unwrap_or(RateLimitDecision::Allowed),
            RateLimiter::Redis(limiter) => limiter.check(user_id).await,
        }
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

    #[test]
    fn checks_drop_idle_users_once_per_window() {
        let mut limiter = SlidingWindowRateLimiter::new(RateLimitRule::default());
        let start = Instant::now();
        for user_id in 0..1_000 {
            limiter.check(user_id, start);
        }
        assert_eq!(limiter.recent_messages_by_user.len(), 1_000);
        limiter.check(5_000, start + Duration::from_secs(61));
        assert_eq!(limiter.recent_messages_by_user.len(), 1);
    }

    #[tokio::test]
    async fn the_in_memory_limiter_behind_the_enum_keeps_the_rule() {
        let limiter = RateLimiter::from_settings(
            RateLimitRule {
                maximum_messages: 2,
                window: Duration::from_secs(60),
            },
            None,
            "streambot:",
        );
        assert!(matches!(limiter, RateLimiter::InMemory(_)));
        assert_eq!(limiter.check(1).await, RateLimitDecision::Allowed);
        assert_eq!(limiter.check(1).await, RateLimitDecision::Allowed);
        assert!(matches!(
            limiter.check(1).await,
            RateLimitDecision::Refused { .. }
        ));
        assert_eq!(limiter.check(2).await, RateLimitDecision::Allowed);
    }
}
