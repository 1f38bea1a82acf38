//! The `JobStore` and `Queue` traits, and the record changes both backends apply the same way.
//!
//! Both backends keep the job as one record (the JSON of `streambot_core::Job`) with a version
//! counter. Every change is: read the record, apply one of the pure mutations below (which go
//! through the core state machine and check the fencing epoch), write it back if the version is
//! still the one read (compare-and-set), else read again. Queue membership changes come with the
//! mutation as a [`QueuePlacement`], so the SQLite backend writes both in one statement and the
//! Redis backend follows the write with the stream command.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use streambot_core::{
    DesiredJobState, FailureKind, Job, JobDelivery, JobEvent, JobId, JobLease, JobPriority,
    JobState, NewJob, RecordingDeletion, RecordingProgress, RedeliveryOutcome, StatusMessageRef,
    UserPreferences,
};
use tokio::sync::broadcast;

use crate::error::JobsError;

/// Failed attempts after which a job is dead-lettered (failed for good).
pub const MAXIMUM_FAILED_ATTEMPTS: u32 = 3;

/// A worker's proof that it holds a job: checked on every write it makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub job_id: JobId,
    pub worker_id: String,
    pub fencing_epoch: u64,
    pub queue: JobPriority,
    pub delivery_handle: String,
}

impl Lease {
    pub fn from_job_lease(job_id: JobId, lease: &JobLease) -> Lease {
        Lease {
            job_id,
            worker_id: lease.worker_id.clone(),
            fencing_epoch: lease.fencing_epoch,
            queue: lease.queue,
            delivery_handle: lease.delivery_handle.clone(),
        }
    }
}

/// One job's share of a worker's heartbeat: its lease, and its latest progress when there is
/// news (progress is written with the renewal instead of on its own).
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseRenewal {
    pub lease: Lease,
    pub progress: Option<RecordingProgress>,
}

/// How many jobs the store holds in each state, as the store keeps them (an index in SQLite, a
/// counter kept by every record change in Redis): reading them costs the same at 100 jobs and at
/// 100,000, unlike reading the jobs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobStateCounts {
    counts: [u64; JobState::ALL.len()],
}

impl JobStateCounts {
    fn position(state: JobState) -> usize {
        JobState::ALL
            .iter()
            .position(|known| *known == state)
            .unwrap_or(0)
    }

    pub fn count(&self, state: JobState) -> u64 {
        self.counts[Self::position(state)]
    }

    pub fn add(&mut self, state: JobState, count: u64) {
        let slot = &mut self.counts[Self::position(state)];
        *slot = slot.saturating_add(count);
    }

    /// Every state with its count (zeros included), in `JobState::ALL` order.
    pub fn by_state(&self) -> impl Iterator<Item = (JobState, u64)> + '_ {
        JobState::ALL
            .iter()
            .copied()
            .zip(self.counts.iter().copied())
    }

    pub fn total(&self) -> u64 {
        self.counts
            .iter()
            .fold(0u64, |total, count| total.saturating_add(*count))
    }

    /// Counts the jobs given (for a store that has no better way, and for tests).
    pub fn of_jobs<'a>(jobs: impl IntoIterator<Item = &'a Job>) -> JobStateCounts {
        let mut counts = JobStateCounts::default();
        for job in jobs {
            counts.add(job.state, 1);
        }
        counts
    }
}

/// Which jobs `list_jobs` returns, newest first.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Only these states; all when empty.
    pub states: Vec<JobState>,
    pub owner_user_id: Option<i64>,
    pub limit: Option<usize>,
}

impl JobFilter {
    /// The jobs not in a terminal state (read through the stores' live indexes).
    pub fn live_jobs() -> JobFilter {
        JobFilter {
            states: JobState::ALL
                .into_iter()
                .filter(|state| !state.is_terminal())
                .collect(),
            ..JobFilter::default()
        }
    }

    pub fn matches(&self, job: &Job) -> bool {
        (self.states.is_empty() || self.states.contains(&job.state))
            && self
                .owner_user_id
                .is_none_or(|user_id| job.owner.user_id == user_id)
    }
}

/// What `Queue::retry` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Back in its queue, claimable after the backoff.
    Retried {
        attempt: u32,
        available_in: Duration,
    },
    /// The third failure: the job is `Failed` and in the dead-letter list.
    DeadLettered { attempt: u32 },
}

/// How a record change moves the job in or out of its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueuePlacement {
    Unchanged,
    /// Waits in the job's queue from `available_at`.
    Enqueue {
        available_at: DateTime<Utc>,
    },
    /// No longer waits (claimed, cancelled) or its delivery is done (completed, failed).
    Dequeue,
    /// Failed for good: out of the queue and into the dead-letter list.
    DeadLetter,
}

/// The job records.
pub trait JobStore: Send + Sync {
    /// Creates a job in `Queued` with a fresh id (the caller then pushes it).
    fn create_job(&self, request: NewJob) -> impl Future<Output = Result<Job, JobsError>> + Send;

    fn get_job(&self, job_id: JobId)
    -> impl Future<Output = Result<Option<Job>, JobsError>> + Send;

    /// A user's jobs, newest first.
    fn list_jobs_for_user(
        &self,
        user_id: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Job>, JobsError>> + Send {
        self.list_jobs(JobFilter {
            owner_user_id: Some(user_id),
            limit: Some(limit),
            ..JobFilter::default()
        })
    }

    /// All jobs that pass the filter, newest first.
    fn list_jobs(
        &self,
        filter: JobFilter,
    ) -> impl Future<Output = Result<Vec<Job>, JobsError>> + Send;

    /// How many jobs are in each state, without reading the jobs (the bot's `/stats`, the
    /// dashboard's `/stats` and `/metrics`).
    fn count_jobs_by_state(&self)
    -> impl Future<Output = Result<JobStateCounts, JobsError>> + Send;

    /// Compare-and-set on the state: `expected → to`, refused when the job is not in `expected`,
    /// when the state machine forbids it, or (with `fence`) when the lease was taken over.
    fn transition_job(
        &self,
        job_id: JobId,
        expected: JobState,
        to: JobState,
        fence: Option<&Lease>,
        error: Option<String>,
    ) -> impl Future<Output = Result<Job, JobsError>> + Send;

    /// Records what the owner wants (record, pause, stop) and nudges the owning worker. Stopping
    /// a job that is still queued cancels it.
    fn set_desired_state(
        &self,
        job_id: JobId,
        desired: DesiredJobState,
    ) -> impl Future<Output = Result<Job, JobsError>> + Send;

    /// A worker's progress report (fenced).
    fn update_progress(
        &self,
        lease: &Lease,
        progress: RecordingProgress,
    ) -> impl Future<Output = Result<(), JobsError>> + Send;

    /// The recorder is waiting for the link to go live (`Some`: the next check), or no longer
    /// (`None`); fenced, published as a progress event so status messages show it.
    fn set_waiting_for_live(
        &self,
        lease: &Lease,
        waiting: Option<streambot_core::WaitingForLive>,
    ) -> impl Future<Output = Result<(), JobsError>> + Send;

    /// Every state change, desired-state change and progress tick from now on.
    fn subscribe_events(&self) -> broadcast::Receiver<JobEvent>;

    /// Publishes an event that is not a record change (the scheduler's disk warnings).
    fn publish_event(&self, event: JobEvent) -> impl Future<Output = Result<(), JobsError>> + Send;

    /// A user's saved preferences (language, time zone, VIP); the defaults when none were saved.
    fn get_user_preferences(
        &self,
        user_id: i64,
    ) -> impl Future<Output = Result<UserPreferences, JobsError>> + Send;

    /// Saves a user's preferences, replacing what was saved.
    fn set_user_preferences(
        &self,
        user_id: i64,
        preferences: UserPreferences,
    ) -> impl Future<Output = Result<(), JobsError>> + Send;

    /// `expected → Failed` with the error text and its class (fenced when `fence` is given).
    fn fail_job(
        &self,
        job_id: JobId,
        expected: JobState,
        fence: Option<&Lease>,
        message: String,
        failure: FailureKind,
    ) -> impl Future<Output = Result<Job, JobsError>> + Send;

    /// The worker's record of the job's delivery (fenced): written before and after each part.
    fn record_delivery(
        &self,
        lease: &Lease,
        delivery: JobDelivery,
    ) -> impl Future<Output = Result<Job, JobsError>> + Send;

    /// Which chat message shows the job's status (the bot's; kept across its restarts).
    fn set_status_message(
        &self,
        job_id: JobId,
        status_message: Option<StatusMessageRef>,
    ) -> impl Future<Output = Result<Job, JobsError>> + Send;

    /// "Send again": a finished job's failed parts become pending and the job goes back to its
    /// queue (the next worker sends them, like a delivery resumed after a crash). A request
    /// already pending, a job still running or one whose files were deleted changes nothing.
    fn request_redelivery(
        &self,
        job_id: JobId,
    ) -> impl Future<Output = Result<(Job, RedeliveryOutcome), JobsError>> + Send;

    /// The finished files of a job were deleted (retention, the disk guard); kept once in the
    /// record and published as `RecordingDeleted`.
    fn record_recording_deleted(
        &self,
        job_id: JobId,
        reason: String,
    ) -> impl Future<Output = Result<Job, JobsError>> + Send;
}

/// The queues `priority` and `normal`, the leases and the coordination lock.
pub trait Queue: Send + Sync {
    /// Creates a job and puts it in its queue in one step (one SQLite transaction, one Redis
    /// script): a crash cannot leave it created and never queued.
    fn create_queued_job(
        &self,
        request: NewJob,
    ) -> impl Future<Output = Result<Job, JobsError>> + Send;

    /// Puts a queued job in its priority's queue.
    fn push(
        &self,
        job_id: JobId,
        priority: JobPriority,
    ) -> impl Future<Output = Result<(), JobsError>> + Send;

    /// Takes one job (never more: no prefetch) from the first of `queues` that has one, waiting up
    /// to `wait`. The job goes to `Starting` under a new fencing epoch and a lease of
    /// `lease_duration`.
    fn claim(
        &self,
        worker_id: &str,
        queues: &[JobPriority],
        lease_duration: Duration,
        wait: Duration,
    ) -> impl Future<Output = Result<Option<(Job, Lease)>, JobsError>> + Send;

    /// A worker's heartbeat for all its jobs at once: each lease extended (fenced, like
    /// `renew_lease`) and its progress written when given, in one SQLite transaction or one Redis
    /// read pipeline and one script; one result per renewal, in order.
    fn renew_leases(
        &self,
        renewals: &[LeaseRenewal],
        lease_duration: Duration,
    ) -> impl Future<Output = Vec<Result<Job, JobsError>>> + Send;

    /// Extends the lease; returns the job so the worker can reconcile its desired state.
    fn renew_lease(
        &self,
        lease: &Lease,
        lease_duration: Duration,
    ) -> impl Future<Output = Result<Job, JobsError>> + Send;

    /// The job reached a terminal state: its delivery is done.
    fn complete(&self, lease: &Lease) -> impl Future<Output = Result<(), JobsError>> + Send;

    /// A transient failure: back in the queue after `backoff`, or dead-lettered after the third.
    /// `failure` is the class of `error`, kept in the record with it.
    fn retry(
        &self,
        lease: &Lease,
        error: String,
        failure: FailureKind,
        backoff: Duration,
    ) -> impl Future<Output = Result<RetryDecision, JobsError>> + Send;

    /// Gives the job back without counting an attempt (worker shutdown): `Queued`, claimable now.
    fn release(&self, lease: &Lease) -> impl Future<Output = Result<(), JobsError>> + Send;

    /// Requeues jobs whose lease lapsed (a worker died), fencing out the old holder, and puts
    /// back in their queue `Queued` jobs that are in none (created, then the creator died before
    /// its push) once they are [`UNQUEUED_JOB_GRACE`] old.
    fn reap_expired_leases(&self) -> impl Future<Output = Result<Vec<JobId>, JobsError>> + Send;

    /// Jobs that failed for good.
    fn dead_letters(&self) -> impl Future<Output = Result<Vec<JobId>, JobsError>> + Send;

    /// A lock with expiry (one scheduler at a time); true when `holder` has it now.
    fn try_acquire_lock(
        &self,
        name: &str,
        holder: &str,
        time_to_live: Duration,
    ) -> impl Future<Output = Result<bool, JobsError>> + Send;
}

/// Everything a worker, the scheduler and the CLI need.
pub trait JobBackend: JobStore + Queue + Clone + Send + Sync + 'static {}
impl<T: JobStore + Queue + Clone + Send + Sync + 'static> JobBackend for T {}

/// Creates a job and puts it in its queue, in one step.
pub async fn submit_job<B: JobBackend>(backend: &B, request: NewJob) -> Result<Job, JobsError> {
    backend.create_queued_job(request).await
}

/// How long a `Queued` job may sit in no queue before the reaper pushes it (its creator, e.g.
/// the bot announcing it first, normally pushes it well within this).
pub const UNQUEUED_JOB_GRACE: Duration = Duration::from_secs(10);

/// How long a worker's lease on a job lasts unless renewed (the worker's default; the dashboard
/// turns a lease's expiry into a heartbeat age with it).
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(10);

/// Backoff before retry `attempt` (1, 2, 3): 2 s, 4 s, 8 s.
pub fn retry_backoff(attempt: u32, base: Duration) -> Duration {
    streambot_core::backoff::ExponentialBackoff::new(base, base.saturating_mul(1024))
        .delay_after_failed_attempt(attempt)
}

pub fn chrono_duration(duration: Duration) -> chrono::Duration {
    chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
}

/// A random job id (8 upper hex).
pub fn random_job_id() -> JobId {
    JobId::from_u32(rand::random::<u32>())
}

/// The events one record change publishes.
pub fn events_between(before: &Job, after: &Job) -> Vec<JobEvent> {
    let mut events = Vec::new();
    if before.state != after.state {
        events.push(JobEvent::StateChanged {
            job_id: after.id,
            from: before.state,
            to: after.state,
            error: after.error.clone(),
            at: after.updated_at,
        });
    }
    if before.desired_state != after.desired_state {
        events.push(JobEvent::DesiredStateChanged {
            job_id: after.id,
            desired: after.desired_state,
            at: after.updated_at,
        });
    }
    if before.waiting_for_live != after.waiting_for_live {
        events.push(JobEvent::Progress {
            job_id: after.id,
            progress: after.progress.clone(),
            at: after.updated_at,
        });
    }
    if before.delivery != after.delivery {
        events.push(JobEvent::DeliveryChanged {
            job_id: after.id,
            at: after.updated_at,
        });
    }
    if before.status_message != after.status_message {
        events.push(JobEvent::StatusMessageChanged {
            job_id: after.id,
            status_message: after.status_message,
            at: after.updated_at,
        });
    }
    if before.recording_deleted.is_none()
        && let Some(deletion) = &after.recording_deleted
    {
        events.push(JobEvent::RecordingDeleted {
            job_id: after.id,
            reason: deletion.reason.clone(),
            at: deletion.at,
        });
    }
    events
}

/// The pure record changes shared by both backends.
pub mod mutation {
    use super::*;

    pub fn check_fence(job: &Job, lease: &Lease) -> Result<(), JobsError> {
        let holds = job.lease.as_ref().is_some_and(|current| {
            current.fencing_epoch == lease.fencing_epoch && current.worker_id == lease.worker_id
        });
        if holds && job.fencing_epoch == lease.fencing_epoch {
            Ok(())
        } else {
            Err(JobsError::LeaseLost {
                job_id: job.id,
                held_epoch: lease.fencing_epoch,
                current_epoch: job.fencing_epoch,
            })
        }
    }

    pub fn transition(
        job: &mut Job,
        expected: JobState,
        to: JobState,
        fence: Option<&Lease>,
        error: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<QueuePlacement, JobsError> {
        if let Some(lease) = fence {
            check_fence(job, lease)?;
        }
        if job.state != expected {
            return Err(JobsError::StateConflict {
                job_id: job.id,
                expected,
                actual: job.state,
            });
        }
        job.apply_transition(to, now)?;
        if error.is_some() {
            job.error = error;
        }
        Ok(match to {
            JobState::Queued => QueuePlacement::Enqueue { available_at: now },
            JobState::Cancelled if expected == JobState::Queued => QueuePlacement::Dequeue,
            _ => QueuePlacement::Unchanged,
        })
    }

    /// `expected → Failed`, keeping why (text and class).
    pub fn fail(
        job: &mut Job,
        expected: JobState,
        fence: Option<&Lease>,
        message: String,
        failure: FailureKind,
        now: DateTime<Utc>,
    ) -> Result<QueuePlacement, JobsError> {
        let placement = transition(job, expected, JobState::Failed, fence, Some(message), now)?;
        job.failure = Some(failure);
        Ok(placement)
    }

    pub fn set_desired(
        job: &mut Job,
        desired: DesiredJobState,
        now: DateTime<Utc>,
    ) -> Result<QueuePlacement, JobsError> {
        if job.state.is_terminal() {
            return Err(JobsError::NotApplicable {
                job_id: job.id,
                state: job.state,
                action: match desired {
                    DesiredJobState::Record => "resume",
                    DesiredJobState::Pause => "pause",
                    DesiredJobState::Stop => "stop",
                },
            });
        }
        job.desired_state = desired;
        job.updated_at = now;
        if desired == DesiredJobState::Stop && job.state == JobState::Queued {
            job.apply_transition(JobState::Cancelled, now)?;
            return Ok(QueuePlacement::Dequeue);
        }
        Ok(QueuePlacement::Unchanged)
    }

    pub fn progress(
        job: &mut Job,
        lease: &Lease,
        progress: RecordingProgress,
        now: DateTime<Utc>,
    ) -> Result<QueuePlacement, JobsError> {
        check_fence(job, lease)?;
        progress_without_fence(job, progress, now);
        Ok(QueuePlacement::Unchanged)
    }

    /// The worker's delivery record (fenced).
    pub fn record_delivery(
        job: &mut Job,
        lease: &Lease,
        delivery: JobDelivery,
        now: DateTime<Utc>,
    ) -> Result<QueuePlacement, JobsError> {
        check_fence(job, lease)?;
        job.delivery = Some(delivery);
        job.updated_at = now;
        Ok(QueuePlacement::Unchanged)
    }

    pub fn set_status_message(
        job: &mut Job,
        status_message: Option<StatusMessageRef>,
        now: DateTime<Utc>,
    ) -> Result<QueuePlacement, JobsError> {
        job.status_message = status_message;
        job.updated_at = now;
        Ok(QueuePlacement::Unchanged)
    }

    /// "Send again" (see `JobStore::request_redelivery`). The one way a finished job goes back
    /// to `Queued`, outside the transition table on purpose: only with a delivery record whose
    /// failed parts are now pending, so the worker that claims it only delivers.
    pub fn request_redelivery(
        job: &mut Job,
        now: DateTime<Utc>,
    ) -> Result<(QueuePlacement, RedeliveryOutcome), JobsError> {
        let unchanged = |outcome| Ok((QueuePlacement::Unchanged, outcome));
        let pending = job
            .delivery
            .as_ref()
            .is_some_and(|delivery| delivery.redelivery_requested);
        if !job.state.is_terminal() {
            return unchanged(if pending {
                RedeliveryOutcome::AlreadyPending
            } else {
                RedeliveryOutcome::NotFinished
            });
        }
        if job.recording_deleted.is_some() {
            return unchanged(RedeliveryOutcome::FilesDeleted);
        }
        let Some(delivery) = job.delivery.as_mut() else {
            return unchanged(RedeliveryOutcome::NothingToSendAgain);
        };
        if !delivery.request_redelivery() {
            return unchanged(RedeliveryOutcome::NothingToSendAgain);
        }
        job.state = JobState::Queued;
        job.finished_at = None;
        job.lease = None;
        job.updated_at = now;
        Ok((
            QueuePlacement::Enqueue { available_at: now },
            RedeliveryOutcome::Requested,
        ))
    }

    /// The files were deleted: the first deletion is kept.
    pub fn record_recording_deleted(
        job: &mut Job,
        reason: String,
        now: DateTime<Utc>,
    ) -> Result<QueuePlacement, JobsError> {
        if job.recording_deleted.is_none() {
            job.recording_deleted = Some(RecordingDeletion { at: now, reason });
            job.updated_at = now;
        }
        Ok(QueuePlacement::Unchanged)
    }

    /// A claim: `Queued → Starting`, next epoch, new lease.
    pub fn claim(
        job: &mut Job,
        worker_id: &str,
        queue: JobPriority,
        delivery_handle: &str,
        lease_duration: Duration,
        now: DateTime<Utc>,
    ) -> Result<QueuePlacement, JobsError> {
        if job.state != JobState::Queued {
            return Err(JobsError::StateConflict {
                job_id: job.id,
                expected: JobState::Queued,
                actual: job.state,
            });
        }
        job.apply_transition(JobState::Starting, now)?;
        job.fencing_epoch += 1;
        job.lease = Some(JobLease {
            worker_id: worker_id.to_string(),
            fencing_epoch: job.fencing_epoch,
            expires_at: now + chrono_duration(lease_duration),
            queue,
            delivery_handle: delivery_handle.to_string(),
        });
        Ok(QueuePlacement::Dequeue)
    }

    pub fn renew(
        job: &mut Job,
        lease: &Lease,
        lease_duration: Duration,
        now: DateTime<Utc>,
    ) -> Result<QueuePlacement, JobsError> {
        check_fence(job, lease)?;
        if let Some(current) = job.lease.as_mut() {
            current.expires_at = now + chrono_duration(lease_duration);
        }
        Ok(QueuePlacement::Unchanged)
    }

    /// A heartbeat's change: the lease extended and, when given, the progress written.
    pub fn renew_with_progress(
        job: &mut Job,
        renewal: &LeaseRenewal,
        lease_duration: Duration,
        now: DateTime<Utc>,
    ) -> Result<QueuePlacement, JobsError> {
        renew(job, &renewal.lease, lease_duration, now)?;
        if let Some(progress) = &renewal.progress {
            progress_without_fence(job, progress.clone(), now);
        }
        Ok(QueuePlacement::Unchanged)
    }

    fn progress_without_fence(job: &mut Job, progress: RecordingProgress, now: DateTime<Utc>) {
        job.parts = job.parts.max(progress.current_part);
        job.progress = progress;
        job.updated_at = now;
    }

    /// The job's delivery is done; it must be terminal by now (else it is failed).
    pub fn complete(
        job: &mut Job,
        lease: &Lease,
        now: DateTime<Utc>,
    ) -> Result<QueuePlacement, JobsError> {
        check_fence(job, lease)?;
        if !job.state.is_terminal() {
            job.apply_transition(JobState::Failed, now)?;
            job.error = Some("the worker completed the job before it finished".to_string());
            job.failure = Some(FailureKind::Internal);
        }
        job.lease = None;
        Ok(QueuePlacement::Dequeue)
    }

    pub fn retry(
        job: &mut Job,
        lease: &Lease,
        error: String,
        failure: FailureKind,
        backoff: Duration,
        now: DateTime<Utc>,
    ) -> Result<(QueuePlacement, RetryDecision), JobsError> {
        check_fence(job, lease)?;
        job.attempt += 1;
        job.error = Some(error);
        job.failure = Some(failure);
        if job.attempt >= MAXIMUM_FAILED_ATTEMPTS || !job.state.can_transition_to(JobState::Queued)
        {
            job.apply_transition(JobState::Failed, now)?;
            job.lease = None;
            return Ok((
                QueuePlacement::DeadLetter,
                RetryDecision::DeadLettered {
                    attempt: job.attempt,
                },
            ));
        }
        job.apply_transition(JobState::Queued, now)?;
        Ok((
            QueuePlacement::Enqueue {
                available_at: now + chrono_duration(backoff),
            },
            RetryDecision::Retried {
                attempt: job.attempt,
                available_in: backoff,
            },
        ))
    }

    pub fn release(
        job: &mut Job,
        lease: &Lease,
        now: DateTime<Utc>,
    ) -> Result<QueuePlacement, JobsError> {
        check_fence(job, lease)?;
        if job.state.is_terminal() {
            job.lease = None;
            return Ok(QueuePlacement::Dequeue);
        }
        if !job.state.can_transition_to(JobState::Queued) {
            return Err(JobsError::NotApplicable {
                job_id: job.id,
                state: job.state,
                action: "be released",
            });
        }
        job.apply_transition(JobState::Queued, now)?;
        Ok(QueuePlacement::Enqueue { available_at: now })
    }

    /// The lease lapsed: fence the old holder out (next epoch) and requeue the job, which the next
    /// worker resumes as a new part, or, when it was delivering (`Uploading` with a delivery
    /// record), resumes the delivery. A job lost while finalizing or storing its files is
    /// requeued too: the next worker finishes the same recording from its directory
    /// (`finalize-pending`: finalize again, or store the finalized files).
    pub fn reap(job: &mut Job, now: DateTime<Utc>) -> Result<QueuePlacement, JobsError> {
        let lapsed = job
            .lease
            .as_ref()
            .is_some_and(|lease| lease.expires_at <= now);
        if !lapsed || !job.state.is_running() {
            return Err(JobsError::NotApplicable {
                job_id: job.id,
                state: job.state,
                action: "be reaped",
            });
        }
        job.fencing_epoch += 1;
        if job.state.can_transition_to(JobState::Queued) {
            job.apply_transition(JobState::Queued, now)?;
            Ok(QueuePlacement::Enqueue { available_at: now })
        } else {
            job.error = Some("the worker was lost while finishing the recording".to_string());
            job.failure = Some(FailureKind::Internal);
            job.apply_transition(JobState::Failed, now)?;
            job.lease = None;
            Ok(QueuePlacement::DeadLetter)
        }
    }
}

/// Read, mutate, compare-and-set (again on conflict), then the queue side and the events: what
/// each backend provides so the operations below are written once.
pub trait VersionedJobRecords: Send + Sync {
    fn update_job<T: Send>(
        &self,
        job_id: JobId,
        mutate: impl FnMut(&mut Job) -> Result<(QueuePlacement, T), JobsError> + Send,
    ) -> impl Future<Output = Result<(Job, T), JobsError>> + Send;
}

/// The `JobStore` and `Queue` operations that are one mutation, shared by both backends.
pub mod shared_operations {
    use super::*;

    fn unchanged_queue(
        result: Result<QueuePlacement, JobsError>,
    ) -> Result<(QueuePlacement, ()), JobsError> {
        result.map(|placement| (placement, ()))
    }

    pub async fn transition_job<R: VersionedJobRecords>(
        records: &R,
        job_id: JobId,
        expected: JobState,
        to: JobState,
        fence: Option<&Lease>,
        error: Option<String>,
    ) -> Result<Job, JobsError> {
        let update = records.update_job(job_id, |job| {
            unchanged_queue(mutation::transition(
                job,
                expected,
                to,
                fence,
                error.clone(),
                Utc::now(),
            ))
        });
        Ok(update.await?.0)
    }

    pub async fn fail_job<R: VersionedJobRecords>(
        records: &R,
        job_id: JobId,
        expected: JobState,
        fence: Option<&Lease>,
        message: String,
        failure: FailureKind,
    ) -> Result<Job, JobsError> {
        let update = records.update_job(job_id, |job| {
            unchanged_queue(mutation::fail(
                job,
                expected,
                fence,
                message.clone(),
                failure,
                Utc::now(),
            ))
        });
        Ok(update.await?.0)
    }

    pub async fn set_desired_state<R: VersionedJobRecords>(
        records: &R,
        job_id: JobId,
        desired: DesiredJobState,
    ) -> Result<Job, JobsError> {
        let update = records.update_job(job_id, |job| {
            unchanged_queue(mutation::set_desired(job, desired, Utc::now()))
        });
        Ok(update.await?.0)
    }

    /// Returns the progress event to publish.
    pub async fn update_progress<R: VersionedJobRecords>(
        records: &R,
        lease: &Lease,
        progress: RecordingProgress,
    ) -> Result<JobEvent, JobsError> {
        let update = records.update_job(lease.job_id, |job| {
            unchanged_queue(mutation::progress(job, lease, progress.clone(), Utc::now()))
        });
        let job = update.await?.0;
        Ok(JobEvent::Progress {
            job_id: job.id,
            progress: job.progress,
            at: job.updated_at,
        })
    }

    /// Published as a progress event when it changes (`events_between`).
    pub async fn set_waiting_for_live<R: VersionedJobRecords>(
        records: &R,
        lease: &Lease,
        waiting: Option<streambot_core::WaitingForLive>,
    ) -> Result<(), JobsError> {
        let update = records.update_job(lease.job_id, |job| {
            unchanged_queue(mutation::check_fence(job, lease).map(|()| {
                job.waiting_for_live = waiting.clone();
                job.updated_at = Utc::now();
                QueuePlacement::Unchanged
            }))
        });
        update.await.map(|_| ())
    }

    pub async fn request_redelivery<R: VersionedJobRecords>(
        records: &R,
        job_id: JobId,
    ) -> Result<(Job, RedeliveryOutcome), JobsError> {
        records
            .update_job(job_id, |job| mutation::request_redelivery(job, Utc::now()))
            .await
    }

    pub async fn record_recording_deleted<R: VersionedJobRecords>(
        records: &R,
        job_id: JobId,
        reason: String,
    ) -> Result<Job, JobsError> {
        let update = records.update_job(job_id, |job| {
            unchanged_queue(mutation::record_recording_deleted(
                job,
                reason.clone(),
                Utc::now(),
            ))
        });
        Ok(update.await?.0)
    }

    pub async fn renew_lease<R: VersionedJobRecords>(
        records: &R,
        lease: &Lease,
        lease_duration: Duration,
    ) -> Result<Job, JobsError> {
        let update = records.update_job(lease.job_id, |job| {
            unchanged_queue(mutation::renew(job, lease, lease_duration, Utc::now()))
        });
        Ok(update.await?.0)
    }

    /// One renewal on its own (the batch's fallback for a record that changed under it).
    pub async fn renew_one<R: VersionedJobRecords>(
        records: &R,
        renewal: &LeaseRenewal,
        lease_duration: Duration,
    ) -> Result<Job, JobsError> {
        let update = records.update_job(renewal.lease.job_id, |job| {
            unchanged_queue(mutation::renew_with_progress(
                job,
                renewal,
                lease_duration,
                Utc::now(),
            ))
        });
        Ok(update.await?.0)
    }

    pub async fn complete<R: VersionedJobRecords>(
        records: &R,
        lease: &Lease,
    ) -> Result<(), JobsError> {
        let update = records.update_job(lease.job_id, |job| {
            unchanged_queue(mutation::complete(job, lease, Utc::now()))
        });
        update.await.map(|_| ())
    }

    pub async fn retry<R: VersionedJobRecords>(
        records: &R,
        lease: &Lease,
        error: String,
        failure: FailureKind,
        backoff: Duration,
    ) -> Result<RetryDecision, JobsError> {
        let update = records.update_job(lease.job_id, |job| {
            mutation::retry(job, lease, error.clone(), failure, backoff, Utc::now())
        });
        Ok(update.await?.1)
    }

    pub async fn release<R: VersionedJobRecords>(
        records: &R,
        lease: &Lease,
    ) -> Result<(), JobsError> {
        let update = records.update_job(lease.job_id, |job| {
            unchanged_queue(mutation::release(job, lease, Utc::now()))
        });
        update.await.map(|_| ())
    }

    /// Records a job's delivery, fenced by its lease.
    pub async fn record_delivery<R: VersionedJobRecords>(
        records: &R,
        lease: &Lease,
        delivery: JobDelivery,
    ) -> Result<Job, JobsError> {
        let update = records.update_job(lease.job_id, |job| {
            unchanged_queue(mutation::record_delivery(
                job,
                lease,
                delivery.clone(),
                Utc::now(),
            ))
        });
        Ok(update.await?.0)
    }

    pub async fn set_status_message<R: VersionedJobRecords>(
        records: &R,
        job_id: JobId,
        status_message: Option<StatusMessageRef>,
    ) -> Result<Job, JobsError> {
        let update = records.update_job(job_id, |job| {
            unchanged_queue(mutation::set_status_message(
                job,
                status_message,
                Utc::now(),
            ))
        });
        Ok(update.await?.0)
    }

    /// Claims one job that a backend found waiting; `None` when it was not claimable any more.
    pub async fn claim_found_job<R: VersionedJobRecords>(
        records: &R,
        job_id: JobId,
        worker_id: &str,
        delivery_handle: &str,
        lease_duration: Duration,
    ) -> Result<Option<(Job, Lease)>, JobsError> {
        let update = records.update_job(job_id, |job| {
            let queue = job.priority;
            unchanged_queue(mutation::claim(
                job,
                worker_id,
                queue,
                delivery_handle,
                lease_duration,
                Utc::now(),
            ))
        });
        match update.await {
            Ok((job, ())) => {
                let lease = job
                    .lease
                    .as_ref()
                    .map(|lease| Lease::from_job_lease(job.id, lease))
                    .ok_or_else(|| {
                        JobsError::CorruptRecord("a claimed job has no lease".to_string())
                    })?;
                Ok(Some((job, lease)))
            }
            Err(JobsError::StateConflict { .. }) | Err(JobsError::JobNotFound { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

/// The `JobStore` methods that both backends answer with the same [`shared_operations`] call,
/// written once (expanded inside each backend's `impl JobStore`).
macro_rules! job_store_methods_shared_by_both_backends {
    () => {
        async fn transition_job(
            &self,
            job_id: JobId,
            expected: JobState,
            to: JobState,
            fence: Option<&Lease>,
            error: Option<String>,
        ) -> Result<Job, JobsError> {
            $crate::backend::shared_operations::transition_job(
                self, job_id, expected, to, fence, error,
            )
            .await
        }

        async fn set_desired_state(
            &self,
            job_id: JobId,
            desired: DesiredJobState,
        ) -> Result<Job, JobsError> {
            $crate::backend::shared_operations::set_desired_state(self, job_id, desired).await
        }

        async fn set_waiting_for_live(
            &self,
            lease: &Lease,
            waiting: Option<::streambot_core::WaitingForLive>,
        ) -> Result<(), JobsError> {
            $crate::backend::shared_operations::set_waiting_for_live(self, lease, waiting).await
        }

        async fn fail_job(
            &self,
            job_id: JobId,
            expected: JobState,
            fence: Option<&Lease>,
            message: String,
            failure: FailureKind,
        ) -> Result<Job, JobsError> {
            $crate::backend::shared_operations::fail_job(
                self, job_id, expected, fence, message, failure,
            )
            .await
        }

        async fn record_delivery(
            &self,
            lease: &Lease,
            delivery: JobDelivery,
        ) -> Result<Job, JobsError> {
            $crate::backend::shared_operations::record_delivery(self, lease, delivery).await
        }

        async fn set_status_message(
            &self,
            job_id: JobId,
            status_message: Option<StatusMessageRef>,
        ) -> Result<Job, JobsError> {
            $crate::backend::shared_operations::set_status_message(self, job_id, status_message)
                .await
        }

        async fn request_redelivery(
            &self,
            job_id: JobId,
        ) -> Result<(Job, RedeliveryOutcome), JobsError> {
            $crate::backend::shared_operations::request_redelivery(self, job_id).await
        }

        async fn record_recording_deleted(
            &self,
            job_id: JobId,
            reason: String,
        ) -> Result<Job, JobsError> {
            $crate::backend::shared_operations::record_recording_deleted(self, job_id, reason).await
        }
    };
}
pub(crate) use job_store_methods_shared_by_both_backends;

/// The `Queue` methods that both backends answer with the same [`shared_operations`] call.
macro_rules! queue_methods_shared_by_both_backends {
    () => {
        async fn complete(&self, lease: &Lease) -> Result<(), JobsError> {
            $crate::backend::shared_operations::complete(self, lease).await
        }

        async fn retry(
            &self,
            lease: &Lease,
            error: String,
            failure: FailureKind,
            backoff: Duration,
        ) -> Result<RetryDecision, JobsError> {
            $crate::backend::shared_operations::retry(self, lease, error, failure, backoff).await
        }

        async fn release(&self, lease: &Lease) -> Result<(), JobsError> {
            $crate::backend::shared_operations::release(self, lease).await
        }
    };
}
pub(crate) use queue_methods_shared_by_both_backends;
