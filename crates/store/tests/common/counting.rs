//! A real backend with its calls counted (by method name), for tests that bound the store work
//! of a loop (the worker's heartbeat, the bot's status scan). It can also hold back the
//! heartbeat's `renew_leases` (answering that the store is unreachable) so a real lease lapses.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use streambot_core::{
    DesiredJobState, FailureKind, Job, JobDelivery, JobEvent, JobId, JobPriority, JobState, NewJob,
    RecordingProgress, RedeliveryOutcome, StatusMessageRef, UserPreferences, WaitingForLive,
};
use streambot_store::{
    JobFilter, JobStateCounts, JobStore, JobsError, Lease, LeaseRenewal, Queue, RetryDecision,
};
use tokio::sync::broadcast;

#[derive(Clone)]
pub struct CountingBackend<B> {
    inner: B,
    calls: Arc<Mutex<HashMap<&'static str, usize>>>,
    renewals_held_back: Arc<AtomicBool>,
}

impl<B> CountingBackend<B> {
    pub fn new(inner: B) -> Self {
        CountingBackend {
            inner,
            calls: Arc::default(),
            renewals_held_back: Arc::default(),
        }
    }

    fn count(&self, method: &'static str) {
        let mut calls = self
            .calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *calls.entry(method).or_default() += 1;
    }

    /// Calls of `method` so far.
    pub fn calls_of(&self, method: &str) -> usize {
        let calls = self
            .calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        calls.get(method).copied().unwrap_or(0)
    }

    /// Calls of every method so far.
    pub fn all_calls(&self) -> HashMap<&'static str, usize> {
        self.calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// While true, `renew_leases` reaches nothing (each renewal fails as if the store were down).
    pub fn hold_back_renewals(&self, held_back: bool) {
        self.renewals_held_back.store(held_back, Ordering::SeqCst);
    }
}

fn unreachable_store() -> JobsError {
    JobsError::Setup {
        message: "renewals held back by the test".to_string(),
    }
}

impl<B: JobStore + Queue + Clone + 'static> JobStore for CountingBackend<B> {
    fn create_job(&self, request: NewJob) -> impl Future<Output = Result<Job, JobsError>> + Send {
        self.count("create_job");
        self.inner.create_job(request)
    }

    fn get_job(
        &self,
        job_id: JobId,
    ) -> impl Future<Output = Result<Option<Job>, JobsError>> + Send {
        self.count("get_job");
        self.inner.get_job(job_id)
    }

    fn list_jobs(
        &self,
        filter: JobFilter,
    ) -> impl Future<Output = Result<Vec<Job>, JobsError>> + Send {
        self.count("list_jobs");
        if filter.states.is_empty() || filter.states.iter().any(|state| state.is_terminal()) {
            // A list that reads finished jobs: what grows without bound with the store's age.
            self.count("list_jobs including finished ones");
        }
        self.inner.list_jobs(filter)
    }

    fn count_jobs_by_state(
        &self,
    ) -> impl Future<Output = Result<JobStateCounts, JobsError>> + Send {
        self.count("count_jobs_by_state");
        self.inner.count_jobs_by_state()
    }

    fn transition_job(
        &self,
        job_id: JobId,
        expected: JobState,
        to: JobState,
        fence: Option<&Lease>,
        error: Option<String>,
    ) -> impl Future<Output = Result<Job, JobsError>> + Send {
        self.count("transition_job");
        self.inner
            .transition_job(job_id, expected, to, fence, error)
    }

    fn set_desired_state(
        &self,
        job_id: JobId,
        desired: DesiredJobState,
    ) -> impl Future<Output = Result<Job, JobsError>> + Send {
        self.count("set_desired_state");
        self.inner.set_desired_state(job_id, desired)
    }

    fn update_progress(
        &self,
        lease: &Lease,
        progress: RecordingProgress,
    ) -> impl Future<Output = Result<(), JobsError>> + Send {
        self.count("update_progress");
        self.inner.update_progress(lease, progress)
    }

    fn set_waiting_for_live(
        &self,
        lease: &Lease,
        waiting: Option<WaitingForLive>,
    ) -> impl Future<Output = Result<(), JobsError>> + Send {
        self.count("set_waiting_for_live");
        self.inner.set_waiting_for_live(lease, waiting)
    }

    fn subscribe_events(&self) -> broadcast::Receiver<JobEvent> {
        self.count("subscribe_events");
        self.inner.subscribe_events()
    }

    fn publish_event(&self, event: JobEvent) -> impl Future<Output = Result<(), JobsError>> + Send {
        self.count("publish_event");
        self.inner.publish_event(event)
    }

    fn get_user_preferences(
        &self,
        user_id: i64,
    ) -> impl Future<Output = Result<UserPreferences, JobsError>> + Send {
        self.count("get_user_preferences");
        self.inner.get_user_preferences(user_id)
    }

    fn set_user_preferences(
        &self,
        user_id: i64,
        preferences: UserPreferences,
    ) -> impl Future<Output = Result<(), JobsError>> + Send {
        self.count("set_user_preferences");
        self.inner.set_user_preferences(user_id, preferences)
    }

    fn fail_job(
        &self,
        job_id: JobId,
        expected: JobState,
        fence: Option<&Lease>,
        message: String,
        failure: FailureKind,
    ) -> impl Future<Output = Result<Job, JobsError>> + Send {
        self.count("fail_job");
        self.inner
            .fail_job(job_id, expected, fence, message, failure)
    }

    fn record_delivery(
        &self,
        lease: &Lease,
        delivery: JobDelivery,
    ) -> impl Future<Output = Result<Job, JobsError>> + Send {
        self.count("record_delivery");
        self.inner.record_delivery(lease, delivery)
    }

    fn set_status_message(
        &self,
        job_id: JobId,
        status_message: Option<StatusMessageRef>,
    ) -> impl Future<Output = Result<Job, JobsError>> + Send {
        self.count("set_status_message");
        self.inner.set_status_message(job_id, status_message)
    }

    fn request_redelivery(
        &self,
        job_id: JobId,
    ) -> impl Future<Output = Result<(Job, RedeliveryOutcome), JobsError>> + Send {
        self.count("request_redelivery");
        self.inner.request_redelivery(job_id)
    }

    fn record_recording_deleted(
        &self,
        job_id: JobId,
        reason: String,
    ) -> impl Future<Output = Result<Job, JobsError>> + Send {
        self.count("record_recording_deleted");
        self.inner.record_recording_deleted(job_id, reason)
    }
}

impl<B: JobStore + Queue + Clone + 'static> Queue for CountingBackend<B> {
    fn create_queued_job(
        &self,
        request: NewJob,
    ) -> impl Future<Output = Result<Job, JobsError>> + Send {
        self.count("create_queued_job");
        self.inner.create_queued_job(request)
    }

    fn push(
        &self,
        job_id: JobId,
        priority: JobPriority,
    ) -> impl Future<Output = Result<(), JobsError>> + Send {
        self.count("push");
        self.inner.push(job_id, priority)
    }

    fn claim(
        &self,
        worker_id: &str,
        queues: &[JobPriority],
        lease_duration: Duration,
        wait: Duration,
    ) -> impl Future<Output = Result<Option<(Job, Lease)>, JobsError>> + Send {
        self.count("claim");
        self.inner.claim(worker_id, queues, lease_duration, wait)
    }

    fn renew_leases(
        &self,
        renewals: &[LeaseRenewal],
        lease_duration: Duration,
    ) -> impl Future<Output = Vec<Result<Job, JobsError>>> + Send {
        self.count("renew_leases");
        let held_back = self.renewals_held_back.load(Ordering::SeqCst);
        let count = renewals.len();
        let renewed = self.inner.renew_leases(renewals, lease_duration);
        async move {
            if held_back {
                (0..count).map(|_| Err(unreachable_store())).collect()
            } else {
                renewed.await
            }
        }
    }

    fn renew_lease(
        &self,
        lease: &Lease,
        lease_duration: Duration,
    ) -> impl Future<Output = Result<Job, JobsError>> + Send {
        self.count("renew_lease");
        self.inner.renew_lease(lease, lease_duration)
    }

    fn complete(&self, lease: &Lease) -> impl Future<Output = Result<(), JobsError>> + Send {
        self.count("complete");
        self.inner.complete(lease)
    }

    fn retry(
        &self,
        lease: &Lease,
        error: String,
        failure: FailureKind,
        backoff: Duration,
    ) -> impl Future<Output = Result<RetryDecision, JobsError>> + Send {
        self.count("retry");
        self.inner.retry(lease, error, failure, backoff)
    }

    fn release(&self, lease: &Lease) -> impl Future<Output = Result<(), JobsError>> + Send {
        self.count("release");
        self.inner.release(lease)
    }

    fn reap_expired_leases(&self) -> impl Future<Output = Result<Vec<JobId>, JobsError>> + Send {
        self.count("reap_expired_leases");
        self.inner.reap_expired_leases()
    }

    fn dead_letters(&self) -> impl Future<Output = Result<Vec<JobId>, JobsError>> + Send {
        self.count("dead_letters");
        self.inner.dead_letters()
    }

    fn try_acquire_lock(
        &self,
        name: &str,
        holder: &str,
        time_to_live: Duration,
    ) -> impl Future<Output = Result<bool, JobsError>> + Send {
        self.count("try_acquire_lock");
        self.inner.try_acquire_lock(name, holder, time_to_live)
    }
}

impl<B: streambot_store::ScheduleStore> streambot_store::ScheduleStore for CountingBackend<B> {
    fn create_schedule(
        &self,
        request: streambot_core::NewSchedule,
        maximum_active: Option<usize>,
    ) -> impl Future<Output = Result<streambot_store::ScheduleCreation, JobsError>> + Send {
        self.count("create_schedule");
        self.inner.create_schedule(request, maximum_active)
    }

    fn get_schedule(
        &self,
        schedule_id: streambot_core::ScheduleId,
    ) -> impl Future<Output = Result<Option<streambot_core::Schedule>, JobsError>> + Send {
        self.count("get_schedule");
        self.inner.get_schedule(schedule_id)
    }

    fn list_schedules_for_user(
        &self,
        user_id: i64,
    ) -> impl Future<Output = Result<Vec<streambot_core::Schedule>, JobsError>> + Send {
        self.count("list_schedules_for_user");
        self.inner.list_schedules_for_user(user_id)
    }

    fn list_schedules(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<streambot_core::Schedule>, JobsError>> + Send {
        self.count("list_schedules");
        self.inner.list_schedules(limit)
    }

    fn cancel_schedule(
        &self,
        schedule_id: streambot_core::ScheduleId,
        by: streambot_store::ScheduleCanceller,
    ) -> impl Future<Output = Result<Option<streambot_core::Schedule>, JobsError>> + Send {
        self.count("cancel_schedule");
        self.inner.cancel_schedule(schedule_id, by)
    }

    fn take_due_schedules(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> impl Future<Output = Result<Vec<streambot_store::TakenSchedule>, JobsError>> + Send {
        self.count("take_due_schedules");
        self.inner.take_due_schedules(now)
    }
}
