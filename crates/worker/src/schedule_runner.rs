//! The schedule runner: every `interval` it takes the occurrences due now from the store
//! (`ScheduleStore::take_due_schedules`), which creates and queues each one's job and advances
//! its schedule atomically, so any number of runners (one per `streambot run`/`scheduler`
//! process) start each occurrence exactly once. An occurrence is due from its time minus the
//! schedule's lead; after a restart one still within its duration is started late (the job's
//! `scheduled.late_by` says by how much), older ones are skipped (counted on the schedule's
//! `occurrences_skipped`, which `/schedule` and `jobs schedules` show, and logged).

use std::time::Duration;

use chrono::Utc;
use streambot_store::{JobsError, ScheduleStore, TakenSchedule};
use tokio_util::sync::CancellationToken;

/// How often the runner looks for due occurrences: an occurrence starts within this of its
/// start time (the brief's bound is 5 s).
pub const DEFAULT_SCHEDULE_POLL_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct ScheduleRunnerConfig {
    pub interval: Duration,
}

impl Default for ScheduleRunnerConfig {
    fn default() -> Self {
        ScheduleRunnerConfig {
            interval: DEFAULT_SCHEDULE_POLL_INTERVAL,
        }
    }
}

/// One look at the store: what was started and skipped now.
pub async fn run_schedule_pass<B: ScheduleStore>(
    backend: &B,
) -> Result<Vec<TakenSchedule>, JobsError> {
    let taken = backend.take_due_schedules(Utc::now()).await?;
    for schedule in &taken {
        if let (Some(job), Some(occurrence)) = (&schedule.job, &schedule.decision.start) {
            tracing::info!(
                schedule = %schedule.schedule.id,
                job = %job.id,
                scheduled_at = %occurrence.scheduled_at,
                late_seconds = occurrence.late_by.as_secs(),
                "a scheduled recording was started"
            );
        }
        if schedule.decision.skipped_count > 0 {
            tracing::warn!(
                schedule = %schedule.schedule.id,
                skipped = schedule.decision.skipped_count,
                first_skipped = ?schedule.decision.skipped.first(),
                "scheduled occurrences were skipped: more than their duration late"
            );
        }
    }
    Ok(taken)
}

/// Runs passes until `shutdown`; a failing store is logged and tried again next tick.
pub async fn run_schedule_runner<B: ScheduleStore>(
    backend: B,
    config: ScheduleRunnerConfig,
    shutdown: CancellationToken,
) -> Result<(), JobsError> {
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = ticker.tick() => {}
        }
        if let Err(error) = run_schedule_pass(&backend).await {
            tracing::warn!(%error, "the schedule runner could not read the store; trying again");
        }
    }
}
