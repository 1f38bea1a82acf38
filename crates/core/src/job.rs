//! The job model: a recording as a job that lasts hours, its state machine, and the events it
//! publishes.
//!
//! ```text
//! Queued → Starting → Recording ⇄ Paused → Finalizing → Uploading → Completed
//!             │           │          │         │            │
//!             └───────────┴──────────┴─────────┴────────────┴──► Failed | Cancelled
//! ```
//!
//! `Failed` and `Cancelled` can be reached from every live state (and from `Queued`). A live job
//! that lost its worker (crash, shutdown, retry) goes back to `Queued` from `Starting`,
//! `Recording` or `Paused`: the next worker resumes it as a new part. A job that lost its worker
//! while delivering (`Uploading` with a delivery record) goes back to `Queued` too, and the next
//! worker goes `Starting → Uploading` and sends only the parts not yet sent. Every change goes through
//! [`check_transition`] (or [`Job::apply_transition`]), which rejects anything else with a typed
//! error; stores apply changes with compare-and-set.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{JobId, RecordingOptions, RecordingProgress};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Starting,
    Recording,
    Paused,
    Finalizing,
    Uploading,
    Completed,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 9] = [
        JobState::Queued,
        JobState::Starting,
        JobState::Recording,
        JobState::Paused,
        JobState::Finalizing,
        JobState::Uploading,
        JobState::Completed,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// `Completed`, `Failed` and `Cancelled`: nothing happens to the job any more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        )
    }

    /// A worker owns the job (it holds a lease): `Starting` to `Uploading`.
    pub fn is_running(self) -> bool {
        matches!(
            self,
            JobState::Starting
                | JobState::Recording
                | JobState::Paused
                | JobState::Finalizing
                | JobState::Uploading
        )
    }

    /// The recorder may be writing into the job's directory: never delete it in this state.
    pub fn is_recording_in_progress(self) -> bool {
        !self.is_terminal()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Starting => "starting",
            JobState::Recording => "recording",
            JobState::Paused => "paused",
            JobState::Finalizing => "finalizing",
            JobState::Uploading => "uploading",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the state machine allows `self → to`.
    pub fn can_transition_to(self, to: JobState) -> bool {
        use JobState::*;
        match (self, to) {
            (Queued, Starting) => true,
            (Starting, Recording) => true,
            (Recording, Paused) | (Paused, Recording) => true,
            (Recording, Finalizing) | (Paused, Finalizing) => true,
            (Finalizing, Uploading) => true,
            (Uploading, Completed) => true,
            // Delivery resumes on another worker after a crash: back in the queue, then straight
            // to Uploading once claimed (the job record says which parts are still to send).
            (Uploading, Queued) | (Starting, Uploading) => true,
            // Lost its worker, or a retry: back in the queue, resumed as a new part.
            (Starting, Queued) | (Recording, Queued) | (Paused, Queued) => true,
            // A finalize interrupted by a shutdown (or a lost worker): the next worker finalizes
            // the same parts (`finalize-pending` in the job's directory) or records on.
            (Finalizing, Queued) => true,
            (from, Failed) | (from, Cancelled) => !from.is_terminal(),
            _ => false,
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{given:?} is not a job state; use one of queued, starting, recording, paused, finalizing, uploading, completed, failed, cancelled"
)]
pub struct JobStateParseError {
    pub given: String,
}

impl FromStr for JobState {
    type Err = JobStateParseError;
    fn from_str(given: &str) -> Result<Self, Self::Err> {
        let lowered = given.trim().to_ascii_lowercase();
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == lowered)
            .ok_or_else(|| JobStateParseError {
                given: given.to_string(),
            })
    }
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a job cannot go from {from} to {to}")]
pub struct JobTransitionError {
    pub from: JobState,
    pub to: JobState,
}

/// The one gate of the state machine.
pub fn check_transition(from: JobState, to: JobState) -> Result<(), JobTransitionError> {
    if from.can_transition_to(to) {
        Ok(())
    } else {
        Err(JobTransitionError { from, to })
    }
}

/// What the job's owner wants it to do; lives in the job record, the worker reconciles to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DesiredJobState {
    #[default]
    Record,
    Pause,
    Stop,
}

impl fmt::Display for DesiredJobState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            DesiredJobState::Record => "record",
            DesiredJobState::Pause => "pause",
            DesiredJobState::Stop => "stop",
        })
    }
}

/// Which queue a job waits in. Priority jobs are claimed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum JobPriority {
    #[default]
    Normal,
    Priority,
}

impl JobPriority {
    /// The queue's name: `normal` or `priority`.
    pub fn queue_name(self) -> &'static str {
        match self {
            JobPriority::Normal => "normal",
            JobPriority::Priority => "priority",
        }
    }
}

impl FromStr for JobPriority {
    type Err = String;
    fn from_str(given: &str) -> Result<Self, Self::Err> {
        match given.trim().to_ascii_lowercase().as_str() {
            "normal" => Ok(JobPriority::Normal),
            "priority" => Ok(JobPriority::Priority),
            _ => Err(format!("{given:?} is not a queue; use priority or normal")),
        }
    }
}

impl fmt::Display for JobPriority {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.queue_name())
    }
}

/// Who asked for the recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct JobOwner {
    pub user_id: i64,
    pub chat_id: i64,
}

/// A worker's claim on a job. `fencing_epoch` goes up with every claim: a worker whose epoch is
/// not the job's current one lost its lease and must not write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobLease {
    pub worker_id: String,
    pub fencing_epoch: u64,
    pub expires_at: DateTime<Utc>,
    /// The queue the job was claimed from.
    pub queue: JobPriority,
    /// Backend-specific delivery handle (the Redis stream entry id); empty for SQLite.
    #[serde(default)]
    pub delivery_handle: String,
}

/// A recording as a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub owner: JobOwner,
    pub url: String,
    pub options: RecordingOptions,
    pub state: JobState,
    pub desired_state: DesiredJobState,
    pub priority: JobPriority,
    /// Failed attempts so far; a job is dead-lettered after the third.
    pub attempt: u32,
    /// Parts written so far.
    pub parts: u32,
    /// Progress of the whole job (gaps included: `progress.gap_segments`, `progress.gap_seconds`).
    pub progress: RecordingProgress,
    pub error: Option<String>,
    /// The class of the failure in `error`, for the bot's sentence in the user's language.
    #[serde(default)]
    pub failure: Option<crate::FailureKind>,
    /// The worker that holds the job, with its lease; `None` while queued or finished.
    pub lease: Option<JobLease>,
    /// The epoch of the latest claim; never goes down.
    pub fencing_epoch: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The schedule occurrence this job was started for (and how late), if any.
    #[serde(default)]
    pub scheduled: Option<crate::schedule::ScheduledOccurrence>,
    /// Set while the recorder waits for the stream to go live.
    #[serde(default)]
    pub waiting_for_live: Option<crate::schedule::WaitingForLive>,
    /// Sending the finished parts to the owner (after storage); `None` before.
    #[serde(default)]
    pub delivery: Option<crate::delivery::JobDelivery>,
    /// The chat message that shows this job's status (the bot keeps editing it across restarts).
    #[serde(default)]
    pub status_message: Option<crate::delivery::StatusMessageRef>,
    /// The files were deleted (retention, the disk guard); set once.
    #[serde(default)]
    pub recording_deleted: Option<crate::delivery::RecordingDeletion>,
}

/// What is needed to create a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    pub owner: JobOwner,
    pub url: String,
    pub options: RecordingOptions,
    pub priority: JobPriority,
}

impl Job {
    /// Nothing more will be recorded or sent: the job is terminal, or its worker has sent every
    /// part and the final summary and is only left to mark it `Completed`. The user has seen
    /// "done" at that point, so deleting its files is allowed.
    pub fn is_finished_for_its_owner(&self) -> bool {
        self.state.is_terminal()
            || (self.state == JobState::Uploading
                && self
                    .delivery
                    .as_ref()
                    .is_some_and(|delivery| delivery.summary_sent))
    }

    /// A fresh job in `Queued`.
    pub fn new(id: JobId, request: NewJob, now: DateTime<Utc>) -> Job {
        Job {
            id,
            owner: request.owner,
            url: request.url,
            options: request.options,
            state: JobState::Queued,
            desired_state: DesiredJobState::Record,
            priority: request.priority,
            attempt: 0,
            parts: 0,
            progress: RecordingProgress::default(),
            error: None,
            failure: None,
            lease: None,
            fencing_epoch: 0,
            created_at: now,
            updated_at: now,
            started_at: None,
            finished_at: None,
            scheduled: None,
            waiting_for_live: None,
            delivery: None,
            status_message: None,
            recording_deleted: None,
        }
    }

    /// Applies `self.state → to`, or refuses it and leaves the job as it was.
    pub fn apply_transition(
        &mut self,
        to: JobState,
        now: DateTime<Utc>,
    ) -> Result<(), JobTransitionError> {
        check_transition(self.state, to)?;
        self.state = to;
        self.updated_at = now;
        if to == JobState::Starting && self.started_at.is_none() {
            self.started_at = Some(now);
        }
        if to.is_terminal() {
            // The lease stays until the worker completes the delivery (that write is fenced too).
            self.finished_at = Some(now);
        }
        if to == JobState::Queued {
            self.lease = None;
        }
        Ok(())
    }

    /// The worker holding the job, if any.
    pub fn worker_id(&self) -> Option<&str> {
        self.lease.as_ref().map(|lease| lease.worker_id.as_str())
    }
}

/// Level of a disk usage event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskUsageLevel {
    /// At or above 80 % of the limit.
    Warning,
    /// At or above 95 %: the oldest finished recordings are being deleted.
    Emergency,
}

/// Everything published for the bot and the dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum JobEvent {
    Created {
        job: Box<Job>,
    },
    StateChanged {
        job_id: JobId,
        from: JobState,
        to: JobState,
        error: Option<String>,
        at: DateTime<Utc>,
    },
    DesiredStateChanged {
        job_id: JobId,
        desired: DesiredJobState,
        at: DateTime<Utc>,
    },
    Progress {
        job_id: JobId,
        progress: RecordingProgress,
        at: DateTime<Utc>,
    },
    RecordingDeleted {
        job_id: JobId,
        reason: String,
        at: DateTime<Utc>,
    },
    DiskUsage {
        level: DiskUsageLevel,
        used_bytes: u64,
        limit_bytes: u64,
        at: DateTime<Utc>,
    },
    /// Someone asked for the last `last` of a live job as a file (`/clip`, the Clip button): the
    /// worker that holds the job makes it and sends it to `chat_id`.
    ClipRequested {
        job_id: JobId,
        last: std::time::Duration,
        chat_id: i64,
        at: DateTime<Utc>,
    },
    /// The job's delivery record changed (a part sent or failed, the summary, "Send again").
    DeliveryChanged {
        job_id: JobId,
        at: DateTime<Utc>,
    },
    /// The chat message showing the job's status changed (another bot process may hold it).
    StatusMessageChanged {
        job_id: JobId,
        status_message: Option<crate::delivery::StatusMessageRef>,
        at: DateTime<Utc>,
    },
}

/// The longest clip `/clip` makes, and the one it makes when no length is given.
pub const MAXIMUM_CLIP_DURATION: std::time::Duration = std::time::Duration::from_secs(60 * 60);
pub const DEFAULT_CLIP_DURATION: std::time::Duration = std::time::Duration::from_secs(5 * 60);

impl JobEvent {
    pub fn job_id(&self) -> Option<JobId> {
        match self {
            JobEvent::Created { job } => Some(job.id),
            JobEvent::StateChanged { job_id, .. }
            | JobEvent::DesiredStateChanged { job_id, .. }
            | JobEvent::Progress { job_id, .. }
            | JobEvent::RecordingDeleted { job_id, .. }
            | JobEvent::ClipRequested { job_id, .. }
            | JobEvent::DeliveryChanged { job_id, .. }
            | JobEvent::StatusMessageChanged { job_id, .. } => Some(*job_id),
            JobEvent::DiskUsage { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobState::*;

    /// The whole table, written out: every pair not listed here must be refused.
    const ALLOWED: &[(JobState, JobState)] = &[
        (Queued, Starting),
        (Queued, Failed),
        (Queued, Cancelled),
        (Starting, Recording),
        (Starting, Queued),
        (Starting, Uploading),
        (Starting, Failed),
        (Starting, Cancelled),
        (Recording, Paused),
        (Recording, Finalizing),
        (Recording, Queued),
        (Recording, Failed),
        (Recording, Cancelled),
        (Paused, Recording),
        (Paused, Finalizing),
        (Paused, Queued),
        (Paused, Failed),
        (Paused, Cancelled),
        (Finalizing, Uploading),
        (Finalizing, Queued),
        (Finalizing, Failed),
        (Finalizing, Cancelled),
        (Uploading, Completed),
        (Uploading, Queued),
        (Uploading, Failed),
        (Uploading, Cancelled),
    ];

    #[test]
    fn the_whole_transition_table() {
        for from in JobState::ALL {
            for to in JobState::ALL {
                let expected = ALLOWED.contains(&(from, to));
                assert_eq!(
                    check_transition(from, to).is_ok(),
                    expected,
                    "{from} → {to} should be {}",
                    if expected { "allowed" } else { "refused" }
                );
                if !expected {
                    assert_eq!(
                        check_transition(from, to),
                        Err(JobTransitionError { from, to })
                    );
                }
            }
        }
        assert_eq!(ALLOWED.len(), 26);
    }

    #[test]
    fn terminal_states_have_no_way_out() {
        for from in [Completed, Failed, Cancelled] {
            assert!(from.is_terminal());
            for to in JobState::ALL {
                assert!(check_transition(from, to).is_err());
            }
        }
    }

    #[test]
    fn a_job_whose_summary_went_out_is_finished_for_its_owner() {
        let mut job = sample_job();
        assert!(!job.is_finished_for_its_owner());
        job.state = JobState::Uploading;
        job.delivery = Some(crate::delivery::JobDelivery::pending([1], None));
        assert!(!job.is_finished_for_its_owner(), "parts still being sent");
        if let Some(delivery) = job.delivery.as_mut() {
            delivery.summary_sent = true;
        }
        assert!(
            job.is_finished_for_its_owner(),
            "the user has seen the summary"
        );
        job.state = JobState::Recording;
        assert!(!job.is_finished_for_its_owner());
        job.state = JobState::Completed;
        job.delivery = None;
        assert!(job.is_finished_for_its_owner());
    }

    fn sample_job() -> Job {
        Job::new(
            JobId::from_u32(0xA3F2_B1C9),
            NewJob {
                owner: JobOwner {
                    user_id: 7,
                    chat_id: 8,
                },
                url: "https://example.com/live.m3u8".to_string(),
                options: RecordingOptions::default(),
                priority: JobPriority::Normal,
            },
            Utc::now(),
        )
    }

    #[test]
    fn apply_transition_walks_the_happy_path_and_stamps_times() {
        let mut job = sample_job();
        let now = Utc::now();
        for to in [
            Starting, Recording, Paused, Recording, Finalizing, Uploading, Completed,
        ] {
            job.apply_transition(to, now).expect("allowed");
        }
        assert_eq!(job.state, Completed);
        assert_eq!(job.started_at, Some(now));
        assert_eq!(job.finished_at, Some(now));
    }

    #[test]
    fn a_refused_transition_leaves_the_job_unchanged() {
        let mut job = sample_job();
        let before = job.clone();
        let error = job
            .apply_transition(Recording, Utc::now())
            .expect_err("queued cannot record");
        assert_eq!(
            error,
            JobTransitionError {
                from: Queued,
                to: Recording
            }
        );
        assert_eq!(job, before);
        assert_eq!(
            error.to_string(),
            "a job cannot go from queued to recording"
        );
    }

    #[test]
    fn requeue_drops_the_lease() {
        let mut job = sample_job();
        job.apply_transition(Starting, Utc::now()).expect("claim");
        job.lease = Some(JobLease {
            worker_id: "w1".to_string(),
            fencing_epoch: 1,
            expires_at: Utc::now(),
            queue: JobPriority::Normal,
            delivery_handle: String::new(),
        });
        job.apply_transition(Queued, Utc::now()).expect("requeue");
        assert!(job.lease.is_none());
    }

    #[test]
    fn job_round_trips_through_json_and_states_parse() {
        let job = sample_job();
        let text = serde_json::to_string(&job).expect("serialize");
        let back: Job = serde_json::from_str(&text).expect("deserialize");
        assert_eq!(back, job);
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>(), Ok(state));
        }
        assert!("running".parse::<JobState>().is_err());
        assert_eq!("PRIORITY".parse::<JobPriority>(), Ok(JobPriority::Priority));
    }
}
