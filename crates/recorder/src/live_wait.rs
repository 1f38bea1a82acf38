//! Waiting for a link to go live (issue 16): a link that is not live yet (connection refused,
//! HTTP 404/403/5xx, an empty media playlist, a master whose variants all fail so) is checked
//! again with backoff (15 s doubling to 60 s by default; [`RecordingSettings`] carries the
//! intervals) until it lists segments or [`RecordingOptions::wait_for_live`] has passed. Each
//! wait is reported as [`RecorderEvent::WaitingForLive`]; a stop while waiting ends at once.

use std::time::{Duration, Instant, SystemTime};

use streambot_core::{FailureKind, RecordingOptions};
use streambot_hls::{DesiredState, HlsHttpClient};
use tokio::sync::{mpsc, watch};

use crate::resolve::{LiveSource, is_not_live_yet, link_for_messages, resolve_live_source};
use crate::{RecorderError, RecorderEvent, RecordingSettings};

/// Default first interval between two checks of a link that is not live.
pub const DEFAULT_LIVE_CHECK_FIRST_INTERVAL: Duration = Duration::from_secs(15);
/// Default longest interval between two checks.
pub const DEFAULT_LIVE_CHECK_MAXIMUM_INTERVAL: Duration = Duration::from_secs(60);

/// What an empty live playlist means to the user.
pub const NO_SEGMENTS_YET: &str = "the stream has not started: its playlist lists no segments yet";

/// The wait after `checks_done` failed checks (pure): `first`, doubling, at most `maximum`.
pub fn live_check_interval(checks_done: u32, first: Duration, maximum: Duration) -> Duration {
    streambot_core::backoff::ExponentialBackoff::new(first, maximum)
        .delay_after_failed_attempt(checks_done.saturating_add(1))
}

/// How waiting for the link ended.
#[derive(Debug)]
// Ends once per wait; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum LiveWait {
    /// The link is live (or is a finished playlist, or waiting was not asked for).
    Live(LiveSource),
    /// A stop was asked for (or the owner went away) while waiting: nothing was started.
    Stopped,
    /// Not live within the wait, or a failure that waiting does not cure.
    Failed(RecorderError),
}

/// Resolves once the control channel asks for a stop (or its sender is gone). Pauses are not a
/// stop: they are applied when the recording starts.
pub async fn stop_requested(control: &mut watch::Receiver<DesiredState>) {
    loop {
        if matches!(
            *control.borrow(),
            DesiredState::Stop | DesiredState::StopNow
        ) {
            return;
        }
        if control.changed().await.is_err() {
            return;
        }
    }
}

/// What the user is told while waiting for a stream that went away to come back, before the
/// first check.
pub const STREAM_WENT_AWAY: &str = "the stream stopped sending new segments";

/// Resolve the link; while it is not live, check again with backoff for up to `wait` (zero: the
/// first answer is final, an empty playlist included). With `delay_first_check` the first check
/// comes after one interval (a stream that went away again at once is not polled in a loop).
#[allow(clippy::too_many_arguments)]
pub async fn resolve_when_live(
    client: &HlsHttpClient,
    url_text: &str,
    options: &RecordingOptions,
    settings: &RecordingSettings,
    wait: Duration,
    delay_first_check: bool,
    control: &mut watch::Receiver<DesiredState>,
    events: &mpsc::UnboundedSender<RecorderEvent>,
) -> LiveWait {
    let waiting_since = Instant::now();
    let gives_up_at = waiting_since
        .checked_add(wait)
        .unwrap_or(waiting_since + Duration::from_secs(86_400 * 365));
    let mut checks_done: u32 = 0;
    if delay_first_check
        && wait_before_next_check(
            settings,
            checks_done,
            gives_up_at,
            STREAM_WENT_AWAY.to_string(),
            control,
            events,
        )
        .await
        .is_err()
    {
        return LiveWait::Stopped;
    }
    loop {
        let resolved = tokio::select! {
            biased;
            _ = stop_requested(control) => return LiveWait::Stopped,
            resolved = resolve_live_source(client, url_text, options) => resolved,
        };
        let (reason, failure) = match resolved {
            Ok(live) if live.listed_segments > 0 || live.ended || wait.is_zero() => {
                return LiveWait::Live(live);
            }
            Ok(_) => (NO_SEGMENTS_YET.to_string(), FailureKind::Stalled),
            Err(error) if !wait.is_zero() && is_not_live_yet(&error) => {
                (error.user_message(), error.failure_kind())
            }
            Err(error) => return LiveWait::Failed(error),
        };
        let now = Instant::now();
        if now >= gives_up_at {
            return LiveWait::Failed(RecorderError::NotLive {
                link: link_for_messages(url_text),
                waited_seconds: now.duration_since(waiting_since).as_secs(),
                last_reason: reason,
                failure,
            });
        }
        if wait_before_next_check(settings, checks_done, gives_up_at, reason, control, events)
            .await
            .is_err()
        {
            return LiveWait::Stopped;
        }
        checks_done = checks_done.saturating_add(1);
    }
}

/// Reports the wait and sleeps until the next check; `Err` when a stop came first.
async fn wait_before_next_check(
    settings: &RecordingSettings,
    checks_done: u32,
    gives_up_at: Instant,
    reason: String,
    control: &mut watch::Receiver<DesiredState>,
    events: &mpsc::UnboundedSender<RecorderEvent>,
) -> Result<(), ()> {
    let now = Instant::now();
    let next_check = (now
        + live_check_interval(
            checks_done,
            settings.live_check_first_interval,
            settings.live_check_maximum_interval,
        ))
    .min(gives_up_at);
    tracing::info!(%reason, next_check_in = ?next_check.duration_since(now), "waiting for the stream to go live");
    let wall_now = SystemTime::now();
    let _ = events.send(RecorderEvent::WaitingForLive {
        next_check_at: wall_now + next_check.duration_since(now),
        gives_up_at: wall_now + gives_up_at.saturating_duration_since(now),
        reason,
    });
    tokio::select! {
        biased;
        _ = stop_requested(control) => Err(()),
        _ = tokio::time::sleep_until(next_check.into()) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_back_off_from_15_s_to_60_s() {
        let intervals: Vec<u64> = (0..6)
            .map(|checks_done| {
                live_check_interval(
                    checks_done,
                    DEFAULT_LIVE_CHECK_FIRST_INTERVAL,
                    DEFAULT_LIVE_CHECK_MAXIMUM_INTERVAL,
                )
                .as_secs()
            })
            .collect();
        assert_eq!(intervals, vec![15, 30, 60, 60, 60, 60]);
        assert_eq!(
            live_check_interval(u32::MAX, Duration::from_millis(100), Duration::from_secs(1)),
            Duration::from_secs(1)
        );
    }
}
