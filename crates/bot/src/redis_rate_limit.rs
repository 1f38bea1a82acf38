//! The sliding-window rate limit shared through Redis, for several bot processes: one sorted set
//! per user (`<prefix>ratelimit:<user id>`, scores are Redis server milliseconds), checked and
//! updated by one Lua script so the rule holds under concurrency. The clock is the Redis server's
//! (`TIME`), so bot processes with skewed clocks still share one window.

use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::rate_limit::{RateLimitDecision, RateLimitRule};

/// KEYS[1]: the user's window; ARGV: window ms, maximum messages, a unique member.
/// Returns 0 when allowed (and recorded), else the milliseconds until the oldest entry leaves.
const SLIDING_WINDOW_SCRIPT: &str = r#"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local window = tonumber(ARGV[1])
local maximum = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count >= maximum then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local wait = window
  if oldest[2] then
    wait = tonumber(oldest[2]) + window - now
  end
  if wait < 1 then
    wait = 1
  end
  return wait
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return 0
"#;

/// Bound on one check, connecting included; past it the message is allowed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);
/// At most one warning per this long while Redis keeps failing.
const WARNING_INTERVAL: Duration = Duration::from_secs(30);

/// The Redis form of the sliding window. Connects lazily (and reconnects) on use; a check that
/// fails is returned as an error for the caller to decide (the bot allows the message).
pub struct RedisSlidingWindowRateLimiter {
    connection: ConnectionManager,
    script: redis::Script,
    rule: RateLimitRule,
    key_prefix: String,
    instance: u64,
    counter: AtomicU64,
    last_warning: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for RedisSlidingWindowRateLimiter {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RedisSlidingWindowRateLimiter")
            .field("rule", &self.rule)
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

impl RedisSlidingWindowRateLimiter {
    /// Parses the URL; does not connect (the first check does). Must be called inside a tokio
    /// runtime.
    pub fn new(
        redis_url: &str,
        key_prefix: &str,
        rule: RateLimitRule,
    ) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(redis_url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(200));
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(RedisSlidingWindowRateLimiter {
            connection,
            script: redis::Script::new(SLIDING_WINDOW_SCRIPT),
            rule,
            key_prefix: key_prefix.to_string(),
            instance: std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish(),
            counter: AtomicU64::new(0),
            last_warning: Mutex::new(None),
        })
    }

    pub fn rule(&self) -> RateLimitRule {
        self.rule
    }

    /// The key of a user's window.
    pub fn key_for(&self, user_id: i64) -> String {
        format!("{}ratelimit:{user_id}", self.key_prefix)
    }

    /// Records a message if allowed; errors (Redis unreachable, slow, refusing) are returned.
    pub async fn try_check(&self, user_id: i64) -> Result<RateLimitDecision, redis::RedisError> {
        let window_ms = u64::try_from(self.rule.window.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let member = format!(
            "{:016x}:{}",
            self.instance,
            self.counter.fetch_add(1, Ordering::Relaxed)
        );
        let mut connection = self.connection.clone();
        let mut invocation = self.script.key(self.key_for(user_id));
        invocation
            .arg(window_ms)
            .arg(self.rule.maximum_messages)
            .arg(member);
        let wait_ms: i64 =
            match tokio::time::timeout(CHECK_TIMEOUT, invocation.invoke_async(&mut connection))
                .await
            {
                Ok(result) => result?,
                Err(_) => {
                    return Err(redis::RedisError::from(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the rate-limit check timed out",
                    )));
                }
            };
        Ok(if wait_ms <= 0 {
            RateLimitDecision::Allowed
        } else {
            RateLimitDecision::Refused {
                retry_after: Duration::from_millis(wait_ms as u64),
            }
        })
    }

    /// Records a message if allowed; when Redis fails, allows it and warns (at most every 30 s):
    /// a Redis hiccup never locks users out.
    pub async fn check(&self, user_id: i64) -> RateLimitDecision {
        match self.try_check(user_id).await {
            Ok(decision) => decision,
            Err(error) => {
                let warn = self.last_warning.lock().is_ok_and(|mut last| {
                    let due = last.is_none_or(|at| at.elapsed() >= WARNING_INTERVAL);
                    if due {
                        *last = Some(Instant::now());
                    }
                    due
                });
                if warn {
                    tracing::warn!(%error, "the Redis rate limit failed; allowing messages meanwhile");
                } else {
                    tracing::debug!(%error, "the Redis rate limit failed; message allowed");
                }
                RateLimitDecision::Allowed
            }
        }
    }
}
