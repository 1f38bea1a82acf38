//! Scheduled and recurring recordings in the store (both backends).
//!
//! The decision of what is due is pure (`streambot_core::Schedule::take_due`); a store applies
//! it atomically: the schedule advances (compare-and-set on its version) and the occurrence's
//! job is created and queued in the same step (one SQLite transaction, one Redis script). Two
//! schedulers taking the same occurrence: one wins, the other re-reads a schedule that is no
//! longer due. So each occurrence gets exactly one job.

use std::future::Future;

use chrono::{DateTime, Utc};
use streambot_core::{DueOccurrences, Job, NewSchedule, Schedule, ScheduleId};

use crate::error::JobsError;

/// What `create_schedule` did.
#[derive(Debug, Clone, PartialEq)]
pub enum ScheduleCreation {
    Created(Box<Schedule>),
    /// The owner already has this many active schedules.
    TooMany {
        limit: usize,
    },
}

/// One schedule taken at an instant: the job started (if any) and what was skipped.
#[derive(Debug, Clone)]
pub struct TakenSchedule {
    /// The schedule as it is now (advanced).
    pub schedule: Schedule,
    pub decision: DueOccurrences,
    pub job: Option<Job>,
}

/// Who asks to cancel a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleCanceller {
    Owner(i64),
    Admin,
}

pub trait ScheduleStore: Send + Sync {
    /// Stores a new schedule; refused with `TooMany` when the owner has `maximum_active`
    /// active ones already (`None`: no cap, for admins). Errors from the rule (unknown zone, in
    /// the past) are the caller's to check first with `Schedule::new`.
    fn create_schedule(
        &self,
        request: NewSchedule,
        maximum_active: Option<usize>,
    ) -> impl Future<Output = Result<ScheduleCreation, JobsError>> + Send;

    fn get_schedule(
        &self,
        schedule_id: ScheduleId,
    ) -> impl Future<Output = Result<Option<Schedule>, JobsError>> + Send;

    /// A user's active schedules, oldest first.
    fn list_schedules_for_user(
        &self,
        user_id: i64,
    ) -> impl Future<Output = Result<Vec<Schedule>, JobsError>> + Send;

    /// Every schedule (active or not), oldest first, at most `limit`.
    fn list_schedules(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Schedule>, JobsError>> + Send;

    /// Cancels an active schedule; `None` when there is none by that id that this canceller may
    /// cancel (someone else's, already over).
    fn cancel_schedule(
        &self,
        schedule_id: ScheduleId,
        by: ScheduleCanceller,
    ) -> impl Future<Output = Result<Option<Schedule>, JobsError>> + Send;

    /// Takes every occurrence due at `now` (its time minus the lead): creates and queues each
    /// one's job and advances its schedule, atomically per schedule, exactly once across any
    /// number of concurrent callers.
    fn take_due_schedules(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<TakenSchedule>, JobsError>> + Send;
}

pub(crate) fn decode_schedule(text: &str) -> Result<Schedule, JobsError> {
    serde_json::from_str(text).map_err(|error| JobsError::CorruptRecord(error.to_string()))
}

pub(crate) fn encode_schedule(schedule: &Schedule) -> Result<String, JobsError> {
    serde_json::to_string(schedule).map_err(|error| JobsError::CorruptRecord(error.to_string()))
}

/// The millisecond score of a schedule's next start, `None` when it has none.
pub(crate) fn next_start_milliseconds(schedule: &Schedule) -> Option<i64> {
    schedule.next_start_at().map(|at| at.timestamp_millis())
}

/// How many due schedules one `take_due_schedules` looks at.
pub(crate) const DUE_BATCH: i64 = 100;
/// Compare-and-set rounds on one schedule before leaving it for the next tick.
pub(crate) const MAXIMUM_TAKE_ATTEMPTS: u32 = 5;

/// The job an occurrence starts with, marked with its occurrence.
pub(crate) fn occurrence_job(
    schedule: &Schedule,
    decision: &DueOccurrences,
    now: DateTime<Utc>,
) -> Option<Job> {
    let occurrence = decision.start.as_ref()?;
    let mut job = Job::new(
        crate::backend::random_job_id(),
        schedule.job_for(occurrence),
        now,
    );
    job.scheduled = Some(occurrence.clone());
    Some(job)
}

/// The two record operations a backend provides; cancel and take are written once over them.
pub(crate) trait ScheduleRecords: Send + Sync {
    /// The record and its version token.
    type Version: Send + Sync;

    fn load_schedule(
        &self,
        schedule_id: ScheduleId,
    ) -> impl Future<Output = Result<Option<(Schedule, Self::Version)>, JobsError>> + Send;

    /// Writes `advanced` (and creates and queues `job`) if the schedule is still at `version`;
    /// false when it changed (or the job id was taken).
    fn apply_schedule_decision(
        &self,
        version: &Self::Version,
        advanced: &Schedule,
        job: Option<&Job>,
    ) -> impl Future<Output = Result<bool, JobsError>> + Send;

    /// Tells listeners about a job an occurrence created.
    fn announce_job(&self, job: &Job) -> impl Future<Output = ()> + Send;
}

pub(crate) async fn cancel_schedule_records<R: ScheduleRecords>(
    records: &R,
    schedule_id: ScheduleId,
    by: ScheduleCanceller,
) -> Result<Option<Schedule>, JobsError> {
    for _ in 0..MAXIMUM_TAKE_ATTEMPTS * 10 {
        let Some((schedule, version)) = records.load_schedule(schedule_id).await? else {
            return Ok(None);
        };
        let allowed = match by {
            ScheduleCanceller::Admin => true,
            ScheduleCanceller::Owner(user_id) => schedule.owner.user_id == user_id,
        };
        if !allowed || !schedule.is_active() {
            return Ok(None);
        }
        let mut cancelled = schedule;
        cancelled.cancelled_at = Some(Utc::now());
        if records
            .apply_schedule_decision(&version, &cancelled, None)
            .await?
        {
            return Ok(Some(cancelled));
        }
    }
    Err(JobsError::Setup {
        message: format!("schedule {schedule_id} kept changing; try again"),
    })
}

/// Takes what is due of each listed schedule, each under its own compare-and-set.
pub(crate) async fn take_due_records<R: ScheduleRecords>(
    records: &R,
    due_identifiers: Vec<String>,
    now: DateTime<Utc>,
) -> Result<Vec<TakenSchedule>, JobsError> {
    let mut taken = Vec::new();
    for text in due_identifiers {
        let Ok(schedule_id) = text.parse::<ScheduleId>() else {
            continue;
        };
        for _ in 0..MAXIMUM_TAKE_ATTEMPTS {
            let Some((schedule, version)) = records.load_schedule(schedule_id).await? else {
                break;
            };
            let Some(decision) = schedule.take_due(now) else {
                break;
            };
            let job = occurrence_job(&schedule, &decision, now);
            let advanced = schedule.advanced(&decision, job.as_ref().map(|job| job.id));
            if records
                .apply_schedule_decision(&version, &advanced, job.as_ref())
                .await?
            {
                if let Some(job) = &job {
                    records.announce_job(job).await;
                }
                taken.push(TakenSchedule {
                    schedule: advanced,
                    decision,
                    job,
                });
                break;
            }
        }
    }
    Ok(taken)
}
