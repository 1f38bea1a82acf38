//! Start-up: the token is checked with getMe before anything else runs (teloxide's dispatcher
//! panics when its own getMe fails). A token Telegram rejects is one clear error; a Telegram that
//! cannot be reached is retried with backoff and a log line per attempt; neither ever shows the
//! token.

use std::time::Duration;

use teloxide::prelude::*;
use teloxide::types::Me;
use teloxide::{ApiError, RequestError};
use tokio_util::sync::CancellationToken;

use crate::runtime::BotError;
use crate::telegram_api::redact_secret;

/// The first wait between getMe attempts; doubled up to the ceiling.
const FIRST_RETRY_WAIT: Duration = Duration::from_millis(500);

/// What one failed getMe means.
#[derive(Debug, PartialEq, Eq)]
pub enum StartupProblem {
    /// 401/404 on getMe: the token is wrong. Not worth retrying.
    TokenRejected,
    /// Network trouble, 5xx, 429: try again.
    Unreachable(String),
    /// Any other refusal: not worth retrying.
    Refused(String),
}

/// Classifies a getMe error (pure, tested).
pub fn classify_get_me_error(error: &RequestError, token: &str) -> StartupProblem {
    match error {
        RequestError::Api(ApiError::InvalidToken) => StartupProblem::TokenRejected,
        RequestError::Api(ApiError::Unknown(text))
            if text.contains("Unauthorized") || text.contains("Not Found") =>
        {
            StartupProblem::TokenRejected
        }
        RequestError::Network(_)
        | RequestError::Io(_)
        | RequestError::RetryAfter(_)
        | RequestError::InvalidJson { .. } => {
            StartupProblem::Unreachable(redact_secret(&error.to_string(), token))
        }
        other => {
            let text = redact_secret(&other.to_string(), token);
            if text.contains("Internal Server Error") || text.contains("Bad Gateway") {
                StartupProblem::Unreachable(text)
            } else {
                StartupProblem::Refused(text)
            }
        }
    }
}

/// getMe until it answers: `Ok(Some(me))`, `Ok(None)` when shut down while waiting, or the error
/// to exit with.
pub async fn check_token(
    bot: &Bot,
    retry_ceiling: Duration,
    shutdown: &CancellationToken,
) -> Result<Option<Me>, BotError> {
    let mut wait = FIRST_RETRY_WAIT;
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let result = tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            result = bot.get_me() => result,
        };
        let error = match result {
            Ok(me) => {
                if attempt > 1 {
                    tracing::info!(attempt, "Telegram answered; the bot starts");
                }
                return Ok(Some(me));
            }
            Err(error) => error,
        };
        match classify_get_me_error(&error, bot.token()) {
            StartupProblem::TokenRejected => return Err(BotError::TokenRejected),
            StartupProblem::Refused(text) => return Err(BotError::Telegram(text)),
            StartupProblem::Unreachable(text) => {
                tracing::warn!(
                    attempt,
                    retry_in_seconds = wait.as_secs_f64(),
                    error = %text,
                    "Telegram cannot be reached to check TELEGRAM_BOT_TOKEN; retrying"
                );
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(retry_ceiling.max(FIRST_RETRY_WAIT));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejected_token_is_not_retried() {
        assert_eq!(
            classify_get_me_error(&RequestError::Api(ApiError::InvalidToken), "1:x"),
            StartupProblem::TokenRejected
        );
        assert_eq!(
            classify_get_me_error(
                &RequestError::Api(ApiError::Unknown("Not Found".to_string())),
                "1:x"
            ),
            StartupProblem::TokenRejected
        );
        let io = RequestError::Io(std::sync::Arc::new(std::io::Error::other(
            "connect failed for /bot1:SECRETSECRET/getMe",
        )));
        match classify_get_me_error(&io, "1:SECRETSECRET") {
            StartupProblem::Unreachable(text) => assert!(!text.contains("SECRETSECRET"), "{text}"),
            other => panic!("{other:?}"),
        }
    }
}
