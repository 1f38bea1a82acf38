//! Upload retries: a few attempts with jittered exponential backoff; a rate limit waits the time
//! the server asked for. The delay computation is pure; `run_with_retries` does the waiting.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use crate::error::StorageError;

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// The longest `retry_after` honoured; a longer one is waited for only this long.
    pub max_rate_limit_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            first_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(60),
            max_rate_limit_wait: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `failed_attempt` (1-based): `first_delay` doubled per
    /// attempt, capped, then scaled into [50 %, 100 %] by `jitter_fraction` (0.0..=1.0).
    pub fn delay_after_failed_attempt(
        &self,
        failed_attempt: u32,
        jitter_fraction: f64,
    ) -> Duration {
        let capped =
            streambot_core::backoff::ExponentialBackoff::new(self.first_delay, self.max_delay)
                .delay_after_failed_attempt(failed_attempt);
        let jitter = if jitter_fraction.is_finite() {
            jitter_fraction.clamp(0.0, 1.0)
        } else {
            1.0
        };
        capped.mul_f64(0.5 + jitter / 2.0)
    }

    /// The wait before retrying after `error`, or None when it must not be retried.
    pub fn wait_before_retry(
        &self,
        error: &StorageError,
        failed_attempt: u32,
        jitter_fraction: f64,
    ) -> Option<Duration> {
        if failed_attempt >= self.max_attempts || !error.is_retryable() {
            return None;
        }
        Some(match error {
            StorageError::RateLimited { retry_after, .. } => {
                (*retry_after).min(self.max_rate_limit_wait)
            }
            _ => self.delay_after_failed_attempt(failed_attempt, jitter_fraction),
        })
    }
}

/// A number in [0, 1) that differs between calls; enough for jitter, not for secrets.
pub fn jitter_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or_default(),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Runs `attempt` until it succeeds, fails for good, or the attempts run out. Every failure ends
/// as `UploadFailed`, which names the local file that stays.
pub async fn run_with_retries<T, AttemptFuture>(
    policy: &RetryPolicy,
    backend: &'static str,
    local_path: &Path,
    mut attempt: impl FnMut(u32) -> AttemptFuture,
) -> Result<T, StorageError>
where
    AttemptFuture: Future<Output = Result<T, StorageError>>,
{
    let mut attempt_number = 1;
    loop {
        match attempt(attempt_number).await {
            Ok(value) => return Ok(value),
            Err(error) => {
                match policy.wait_before_retry(&error, attempt_number, jitter_fraction()) {
                    Some(wait) => {
                        tracing::warn!(
                            backend,
                            attempt = attempt_number,
                            wait_ms = wait.as_millis() as u64,
                            path = %local_path.display(),
                            error = %error,
                            "upload attempt failed; retrying"
                        );
                        tokio::time::sleep(wait).await;
                        attempt_number += 1;
                    }
                    None => {
                        tracing::error!(
                            backend,
                            attempts = attempt_number,
                            path = %local_path.display(),
                            error = %error,
                            "upload failed; the local file stays"
                        );
                        return Err(StorageError::UploadFailed {
                            backend,
                            attempts: attempt_number,
                            local_path: local_path.to_path_buf(),
                            last_error: Box::new(error),
                        });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_are_capped_and_jittered_into_the_upper_half() {
        let policy = RetryPolicy {
            max_attempts: 5,
            first_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(5),
            max_rate_limit_wait: Duration::from_secs(60),
        };
        let cases = [
            (1, 1.0, 2),
            (1, 0.0, 1),
            (2, 1.0, 4),
            (3, 1.0, 5),
            (40, 1.0, 5),
        ];
        for (failed_attempt, jitter, expected_seconds) in cases {
            assert_eq!(
                policy.delay_after_failed_attempt(failed_attempt, jitter),
                Duration::from_secs(expected_seconds),
                "attempt {failed_attempt}, jitter {jitter}"
            );
        }
        let fraction = jitter_fraction();
        assert!((0.0..1.0).contains(&fraction));
    }

    #[test]
    fn rate_limits_wait_what_the_server_asked_and_permanent_errors_stop() {
        let policy = RetryPolicy::default();
        let rate_limited = StorageError::RateLimited {
            backend: "Telegram",
            retry_after: Duration::from_secs(7),
        };
        assert_eq!(
            policy.wait_before_retry(&rate_limited, 1, 0.5),
            Some(Duration::from_secs(7))
        );
        assert_eq!(policy.wait_before_retry(&rate_limited, 3, 0.5), None);
        let forbidden = StorageError::Authentication {
            backend: "Google Drive",
            detail: "invalid_grant".to_string(),
        };
        assert_eq!(policy.wait_before_retry(&forbidden, 1, 0.5), None);
    }

    #[tokio::test]
    async fn the_last_failure_names_the_file_that_stays() {
        let policy = RetryPolicy {
            max_attempts: 3,
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            max_rate_limit_wait: Duration::from_millis(2),
        };
        let mut attempts_seen = 0;
        let result: Result<(), StorageError> = run_with_retries(
            &policy,
            "Google Drive",
            Path::new("/data/user_1/part.mp4"),
            |_| {
                attempts_seen += 1;
                async {
                    Err(StorageError::HttpStatus {
                        backend: "Google Drive",
                        status: 503,
                        detail: String::new(),
                    })
                }
            },
        )
        .await;
        assert_eq!(attempts_seen, 3);
        let error = result.expect_err("fails");
        assert!(matches!(
            error,
            StorageError::UploadFailed { attempts: 3, .. }
        ));
        assert!(
            error.user_message().contains("/data/user_1/part.mp4"),
            "{}",
            error.user_message()
        );
    }
}
