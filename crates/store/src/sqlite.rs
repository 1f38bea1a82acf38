//! The embedded backend: one SQLite file (WAL) under `DATA_DIR` holds the job records and the
//! queue; waiting claimers in this process are woken by a `Notify`, other processes poll.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use streambot_core::{
    DesiredJobState, FailureKind, Job, JobDelivery, JobEvent, JobId, JobPriority, JobState, NewJob,
    RecordingProgress, RedeliveryOutcome, StatusMessageRef, UserPreferences,
};
use tokio::sync::{Notify, broadcast};

use crate::backend::{
    JobFilter, JobStateCounts, JobStore, Lease, LeaseRenewal, Queue, QueuePlacement, RetryDecision,
    VersionedJobRecords, events_between, mutation, random_job_id, shared_operations,
};
use crate::error::JobsError;
use crate::sqlite_claim_watch::{ClaimWatch, DatabaseFiles};

/// How often a waiting claimer looks at the table again (jobs pushed by another process, retries
/// whose backoff ran out).
const CLAIM_POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Ids read per statement in a batched renewal (well under SQLite's bound-parameter limit).
const RENEWAL_READ_CHUNK: usize = 500;
/// Renewed records written per statement (four values each, well under SQLite's 32,766).
const RENEWAL_WRITE_CHUNK: usize = 500;
/// Compare-and-set rounds before giving up on a job that keeps changing.
const MAXIMUM_WRITE_ATTEMPTS: u32 = 50;

/// The embedded job store and in-process queue.
#[derive(Clone)]
pub struct SqliteBackend {
    pub(crate) pool: SqlitePool,
    pub(crate) wake_claimers: Arc<Notify>,
    /// The claimers' last empty look, to skip asking while the files did not change.
    claim_watch: Arc<std::sync::Mutex<ClaimWatch>>,
    pub(crate) events: broadcast::Sender<JobEvent>,
    lease_reap_grace: Duration,
    unqueued_job_grace: Duration,
}

pub(crate) fn milliseconds(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

fn decode_record(text: &str) -> Result<Job, JobsError> {
    serde_json::from_str(text).map_err(|error| JobsError::CorruptRecord(error.to_string()))
}

pub(crate) fn encode_record(job: &Job) -> Result<String, JobsError> {
    serde_json::to_string(job).map_err(|error| JobsError::CorruptRecord(error.to_string()))
}

pub(crate) fn decode_preferences(text: &str) -> Result<UserPreferences, JobsError> {
    serde_json::from_str(text).map_err(|error| JobsError::CorruptRecord(error.to_string()))
}

pub(crate) fn encode_preferences(preferences: &UserPreferences) -> Result<String, JobsError> {
    serde_json::to_string(preferences).map_err(|error| JobsError::CorruptRecord(error.to_string()))
}

impl SqliteBackend {
    /// Opens (creating on first start) `DATA_DIR/streambot.db` and runs the embedded migrations.
    pub async fn open_in_data_directory(data_directory: &Path) -> Result<Self, JobsError> {
        std::fs::create_dir_all(data_directory).map_err(|source| JobsError::Io {
            path: data_directory.display().to_string(),
            source,
        })?;
        Self::open(&data_directory.join("streambot.db")).await
    }

    pub async fn open(database_path: &Path) -> Result<Self, JobsError> {
        let options = SqliteConnectOptions::new()
            .filename(database_path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let (events, _) = broadcast::channel(1024);
        Ok(SqliteBackend {
            pool,
            wake_claimers: Arc::new(Notify::new()),
            claim_watch: Arc::default(),
            events,
            lease_reap_grace: Duration::ZERO,
            unqueued_job_grace: crate::backend::UNQUEUED_JOB_GRACE,
        })
    }

    /// A job may have become claimable through this process: waiting claimers ask at once, and
    /// the next claim asks whatever the files say.
    pub(crate) fn wake_claimers_after_a_change(&self) {
        self.with_claim_watch(ClaimWatch::forget);
        self.wake_claimers.notify_waiters();
    }

    fn with_claim_watch<T>(&self, action: impl FnOnce(&mut ClaimWatch) -> T) -> T {
        action(
            &mut self
                .claim_watch
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// The earliest time a queued job of these queues that is not yet due becomes due.
    async fn earliest_waiting_ms(&self, queues: &[JobPriority]) -> Result<Option<i64>, JobsError> {
        let first = queues.first().copied().unwrap_or(JobPriority::Normal);
        let second = queues.get(1).copied().unwrap_or(first);
        let earliest: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(available_at_ms) FROM jobs WHERE queue_name IN (?1, ?2)",
        )
        .bind(first.queue_name())
        .bind(second.queue_name())
        .fetch_one(&self.pool)
        .await?;
        Ok(earliest)
    }

    pub fn database_path(&self) -> PathBuf {
        self.pool.connect_options().get_filename().to_path_buf()
    }

    /// A lease is reaped only once it is this much past its expiry (tests use zero).
    pub fn with_lease_reap_grace(mut self, grace: Duration) -> Self {
        self.lease_reap_grace = grace;
        self
    }

    /// A `Queued` job in no queue is pushed by the reaper once this old.
    pub fn with_unqueued_job_grace(mut self, grace: Duration) -> Self {
        self.unqueued_job_grace = grace;
        self
    }

    /// Inserts a fresh job (a new id on the rare collision); queued at once when `enqueue`.
    async fn insert_job(&self, request: NewJob, enqueue: bool) -> Result<Job, JobsError> {
        let now = Utc::now();
        loop {
            let job = Job::new(random_job_id(), request.clone(), now);
            let queue_name = enqueue.then(|| job.priority.queue_name());
            let available_at = enqueue.then(|| milliseconds(now));
            // One statement: the record and its queue place are written together or not at all.
            let result = sqlx::query(
                "INSERT OR IGNORE INTO jobs (id, owner_user_id, state, version, created_at_ms,
                     record_json, queue_name, available_at_ms, enqueue_sequence)
                 VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6, ?7,
                     CASE WHEN ?6 IS NULL THEN NULL
                          ELSE (SELECT COALESCE(MAX(enqueue_sequence), 0) + 1 FROM jobs) END)",
            )
            .bind(job.id.as_str())
            .bind(job.owner.user_id)
            .bind(job.state.as_str())
            .bind(milliseconds(now))
            .bind(encode_record(&job)?)
            .bind(queue_name)
            .bind(available_at)
            .execute(&self.pool)
            .await?;
            if result.rows_affected() == 1 {
                let _ = self.events.send(JobEvent::Created {
                    job: Box::new(job.clone()),
                });
                if enqueue {
                    self.wake_claimers_after_a_change();
                }
                return Ok(job);
            }
        }
    }

    /// Pushes `Queued` jobs that are in no queue and older than the grace (their creator died
    /// between create and push).
    async fn requeue_unqueued_jobs(&self) -> Result<Vec<JobId>, JobsError> {
        let rows = sqlx::query(
            "SELECT record_json FROM jobs WHERE state = 'queued' AND queue_name IS NULL LIMIT 100",
        )
        .fetch_all(&self.pool)
        .await?;
        let cutoff = Utc::now() - crate::backend::chrono_duration(self.unqueued_job_grace);
        let mut requeued = Vec::new();
        for row in rows {
            let text: String = row.try_get("record_json")?;
            let Ok(job) = decode_record(&text) else {
                continue;
            };
            if job.updated_at > cutoff {
                continue;
            }
            let result = sqlx::query(
                "UPDATE jobs SET queue_name = ?2, available_at_ms = ?3,
                     enqueue_sequence = (SELECT COALESCE(MAX(enqueue_sequence), 0) + 1 FROM jobs)
                 WHERE id = ?1 AND state = 'queued' AND queue_name IS NULL",
            )
            .bind(job.id.as_str())
            .bind(job.priority.queue_name())
            .bind(milliseconds(Utc::now()))
            .execute(&self.pool)
            .await?;
            if result.rows_affected() == 1 {
                requeued.push(job.id);
            }
        }
        if !requeued.is_empty() {
            tracing::warn!(jobs = ?requeued, "queued jobs that were in no queue are queued again");
            self.wake_claimers_after_a_change();
        }
        Ok(requeued)
    }

    async fn load(&self, job_id: JobId) -> Result<Option<(Job, i64)>, JobsError> {
        let query = "SELECT version, record_json FROM jobs WHERE id = ?1";
        match self.load_record_text(query, job_id.as_str()).await? {
            None => Ok(None),
            Some((text, version)) => Ok(Some((decode_record(&text)?, version))),
        }
    }

    /// The `record_json` and `version` that `query` (`SELECT version, record_json ... WHERE id =
    /// ?1`, on `jobs` or `schedules`) reads for `id`.
    pub(crate) async fn load_record_text(
        &self,
        query: &'static str,
        id: &str,
    ) -> Result<Option<(String, i64)>, JobsError> {
        let row = sqlx::query(query)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            None => Ok(None),
            Some(row) => Ok(Some((row.try_get("record_json")?, row.try_get("version")?))),
        }
    }

    /// Writes `job` if the stored version is still `version`; false when someone else wrote first.
    async fn compare_and_set(
        &self,
        job: &Job,
        version: i64,
        placement: QueuePlacement,
    ) -> Result<bool, JobsError> {
        let record = encode_record(job)?;
        let finished_at = job.finished_at.map(milliseconds);
        let lease_expires_at = job
            .lease
            .as_ref()
            .map(|lease| milliseconds(lease.expires_at));
        let statement = match placement {
            QueuePlacement::Unchanged => {
                "UPDATE jobs SET version = version + 1, state = ?3, finished_at_ms = ?4,
                     lease_expires_at_ms = ?5, record_json = ?6
                 WHERE id = ?1 AND version = ?2"
            }
            QueuePlacement::Enqueue { .. } => {
                "UPDATE jobs SET version = version + 1, state = ?3, finished_at_ms = ?4,
                     lease_expires_at_ms = ?5, record_json = ?6, queue_name = ?7,
                     available_at_ms = ?8,
                     enqueue_sequence = (SELECT COALESCE(MAX(enqueue_sequence), 0) + 1 FROM jobs)
                 WHERE id = ?1 AND version = ?2"
            }
            QueuePlacement::Dequeue | QueuePlacement::DeadLetter => {
                "UPDATE jobs SET version = version + 1, state = ?3, finished_at_ms = ?4,
                     lease_expires_at_ms = ?5, record_json = ?6, queue_name = NULL,
                     available_at_ms = NULL
                 WHERE id = ?1 AND version = ?2"
            }
        };
        let available_at = match placement {
            QueuePlacement::Enqueue { available_at } => Some(milliseconds(available_at)),
            _ => None,
        };
        let mut transaction = self.pool.begin().await?;
        let result = sqlx::query(statement)
            .bind(job.id.as_str())
            .bind(version)
            .bind(job.state.as_str())
            .bind(finished_at)
            .bind(lease_expires_at)
            .bind(record)
            .bind(job.priority.queue_name())
            .bind(available_at)
            .execute(&mut *transaction)
            .await?;
        if result.rows_affected() != 1 {
            transaction.rollback().await?;
            return Ok(false);
        }
        if placement == QueuePlacement::DeadLetter {
            sqlx::query(
                "INSERT OR REPLACE INTO dead_letters (job_id, failed_at_ms, reason)
                 VALUES (?1, ?2, ?3)",
            )
            .bind(job.id.as_str())
            .bind(milliseconds(Utc::now()))
            .bind(job.error.clone().unwrap_or_default())
            .execute(&mut *transaction)
            .await?;
        }
        transaction.commit().await?;
        if matches!(placement, QueuePlacement::Enqueue { .. }) {
            self.wake_claimers_after_a_change();
        }
        Ok(true)
    }

    /// Read, mutate, compare-and-set, again on conflict; publishes the change's events.
    async fn update_job_record<T>(
        &self,
        job_id: JobId,
        mut mutate: impl FnMut(&mut Job) -> Result<(QueuePlacement, T), JobsError>,
    ) -> Result<(Job, T), JobsError> {
        for _ in 0..MAXIMUM_WRITE_ATTEMPTS {
            let (before, version) = self
                .load(job_id)
                .await?
                .ok_or(JobsError::JobNotFound { job_id })?;
            let mut after = before.clone();
            let (placement, extra) = mutate(&mut after)?;
            if self.compare_and_set(&after, version, placement).await? {
                for event in events_between(&before, &after) {
                    let _ = self.events.send(event);
                }
                return Ok((after, extra));
            }
        }
        Err(JobsError::TooMuchContention {
            job_id,
            attempts: MAXIMUM_WRITE_ATTEMPTS,
        })
    }

    async fn next_claimable(
        &self,
        queues: &[JobPriority],
        now: DateTime<Utc>,
    ) -> Result<Option<JobId>, JobsError> {
        let first = queues.first().copied().unwrap_or(JobPriority::Normal);
        let second = queues.get(1).copied().unwrap_or(first);
        let row = sqlx::query(
            "SELECT id FROM jobs
             WHERE queue_name IN (?1, ?2) AND available_at_ms <= ?3
             ORDER BY CASE queue_name WHEN 'priority' THEN 0 ELSE 1 END, enqueue_sequence
             LIMIT 1",
        )
        .bind(first.queue_name())
        .bind(second.queue_name())
        .bind(milliseconds(now))
        .fetch_optional(&self.pool)
        .await?;
        match row {
            None => Ok(None),
            Some(row) => {
                let text: String = row.try_get("id")?;
                text.parse::<JobId>()
                    .map(Some)
                    .map_err(|error| JobsError::CorruptRecord(error.to_string()))
            }
        }
    }

    /// A heartbeat's renewals in one write transaction (taken at once, so no record changes
    /// between the read and the write): one round of reads by id, the pure mutation, one update
    /// per job. `Err` only when the transaction itself failed.
    async fn renew_leases_in_one_transaction(
        &self,
        renewals: &[LeaseRenewal],
        lease_duration: Duration,
    ) -> Result<Vec<Result<Job, JobsError>>, JobsError> {
        let mut transaction = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut records = std::collections::HashMap::new();
        for chunk in renewals.chunks(RENEWAL_READ_CHUNK) {
            let placeholders: Vec<String> =
                (1..=chunk.len()).map(|index| format!("?{index}")).collect();
            let text = format!(
                "SELECT id, version, record_json FROM jobs WHERE id IN ({})",
                placeholders.join(", ")
            );
            // Only numbered placeholders are in `text`; every id is bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(text));
            for renewal in chunk {
                query = query.bind(renewal.lease.job_id.as_str());
            }
            for row in query.fetch_all(&mut *transaction).await? {
                let id: String = row.try_get("id")?;
                let version: i64 = row.try_get("version")?;
                let text: String = row.try_get("record_json")?;
                records.insert(id, (version, text));
            }
        }
        let now = Utc::now();
        let mut results = Vec::with_capacity(renewals.len());
        let mut events = Vec::new();
        // (id, version read, lease expiry, record) of each renewed job, written below in a few
        // statements (not one per job: each statement is a round trip to the SQLite thread).
        let mut writes: Vec<(JobId, i64, Option<i64>, String)> = Vec::with_capacity(renewals.len());
        for renewal in renewals {
            let job_id = renewal.lease.job_id;
            let Some((version, text)) = records.get(job_id.as_str()) else {
                results.push(Err(JobsError::JobNotFound { job_id }));
                continue;
            };
            let mut job = match decode_record(text) {
                Ok(job) => job,
                Err(error) => {
                    results.push(Err(error));
                    continue;
                }
            };
            if let Err(error) =
                mutation::renew_with_progress(&mut job, renewal, lease_duration, now)
            {
                results.push(Err(error));
                continue;
            }
            let lease_expires_at = job
                .lease
                .as_ref()
                .map(|lease| milliseconds(lease.expires_at));
            writes.push((job_id, *version, lease_expires_at, encode_record(&job)?));
            if renewal.progress.is_some() {
                events.push(JobEvent::Progress {
                    job_id,
                    progress: job.progress.clone(),
                    at: job.updated_at,
                });
            }
            results.push(Ok(job));
        }
        for chunk in writes.chunks(RENEWAL_WRITE_CHUNK) {
            let rows: Vec<String> = (0..chunk.len())
                .map(|row| {
                    let first = row * 4 + 1;
                    format!("(?{first}, ?{}, ?{}, ?{})", first + 1, first + 2, first + 3)
                })
                .collect();
            // The transaction was taken at once (BEGIN IMMEDIATE): every version is still the
            // one read, as with one UPDATE per job before.
            let text = format!(
                "WITH renewed(id, version, lease_expires_at_ms, record_json) AS (VALUES {})
                 UPDATE jobs SET version = jobs.version + 1,
                   lease_expires_at_ms = renewed.lease_expires_at_ms,
                   record_json = renewed.record_json
                 FROM renewed WHERE jobs.id = renewed.id AND jobs.version = renewed.version",
                rows.join(", ")
            );
            // Only numbered placeholders are in `text`; every value is bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(text));
            for (job_id, version, lease_expires_at, record) in chunk {
                query = query
                    .bind(job_id.as_str())
                    .bind(*version)
                    .bind(*lease_expires_at)
                    .bind(record.as_str());
            }
            query.execute(&mut *transaction).await?;
        }
        transaction.commit().await?;
        for event in events {
            let _ = self.events.send(event);
        }
        Ok(results)
    }

    /// Takes a job out of the queue without claiming it (it was found not `Queued`).
    async fn drop_from_queue(&self, job_id: JobId) -> Result<(), JobsError> {
        sqlx::query("UPDATE jobs SET queue_name = NULL WHERE id = ?1 AND state != 'queued'")
            .bind(job_id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl JobStore for SqliteBackend {
    async fn create_job(&self, request: NewJob) -> Result<Job, JobsError> {
        self.insert_job(request, false).await
    }

    async fn get_job(&self, job_id: JobId) -> Result<Option<Job>, JobsError> {
        Ok(self.load(job_id).await?.map(|(job, _)| job))
    }

    async fn list_jobs(&self, filter: JobFilter) -> Result<Vec<Job>, JobsError> {
        // The filters run in SQL and rows are read one at a time up to the limit, so a page of
        // 50 costs 50 rows whatever the table holds.
        let mut text = String::from("SELECT record_json FROM jobs WHERE 1 = 1");
        let mut parameter = 0;
        if filter.owner_user_id.is_some() {
            parameter += 1;
            text.push_str(&format!(" AND owner_user_id = ?{parameter}"));
        }
        if !filter.states.is_empty() {
            let placeholders: Vec<String> = filter
                .states
                .iter()
                .map(|_| {
                    parameter += 1;
                    format!("?{parameter}")
                })
                .collect();
            text.push_str(&format!(" AND state IN ({})", placeholders.join(", ")));
        }
        text.push_str(" ORDER BY created_at_ms DESC, id");
        // Only fixed SQL and numbered placeholders are in `text`; every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(text.clone()));
        if let Some(user_id) = filter.owner_user_id {
            query = query.bind(user_id);
        }
        for state in &filter.states {
            query = query.bind(state.as_str());
        }
        let mut rows = query.fetch(&self.pool);
        let mut jobs = Vec::new();
        while let Some(row) = futures_util::TryStreamExt::try_next(&mut rows).await? {
            let text: String = row.try_get("record_json")?;
            let job = decode_record(&text)?;
            // The record is the truth: the filter is checked again on it.
            if filter.matches(&job) {
                jobs.push(job);
                if filter.limit.is_some_and(|limit| jobs.len() >= limit) {
                    break;
                }
            }
        }
        Ok(jobs)
    }

    async fn count_jobs_by_state(&self) -> Result<JobStateCounts, JobsError> {
        // Read from the `jobs_by_state` index (state first), not from the records.
        let rows = sqlx::query("SELECT state, COUNT(*) AS jobs FROM jobs GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        let mut counts = JobStateCounts::default();
        for row in rows {
            let state: String = row.try_get("state")?;
            let jobs: i64 = row.try_get("jobs")?;
            match state.parse::<JobState>() {
                Ok(state) => counts.add(state, u64::try_from(jobs).unwrap_or(0)),
                Err(error) => tracing::warn!(%error, "a job row with an unknown state"),
            }
        }
        Ok(counts)
    }

    async fn update_progress(
        &self,
        lease: &Lease,
        progress: RecordingProgress,
    ) -> Result<(), JobsError> {
        let event = shared_operations::update_progress(self, lease, progress).await?;
        let _ = self.events.send(event);
        Ok(())
    }

    fn subscribe_events(&self) -> broadcast::Receiver<JobEvent> {
        self.events.subscribe()
    }

    async fn publish_event(&self, event: JobEvent) -> Result<(), JobsError> {
        let _ = self.events.send(event);
        Ok(())
    }

    async fn get_user_preferences(&self, user_id: i64) -> Result<UserPreferences, JobsError> {
        let row = sqlx::query("SELECT preferences_json FROM user_preferences WHERE user_id = ?1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            None => Ok(UserPreferences::default()),
            Some(row) => {
                let text: String = row.try_get("preferences_json")?;
                decode_preferences(&text)
            }
        }
    }

    async fn set_user_preferences(
        &self,
        user_id: i64,
        preferences: UserPreferences,
    ) -> Result<(), JobsError> {
        sqlx::query(
            "INSERT INTO user_preferences (user_id, preferences_json, updated_at_ms)
             VALUES (?1, ?2, ?3)
             ON CONFLICT (user_id) DO UPDATE SET preferences_json = excluded.preferences_json,
                 updated_at_ms = excluded.updated_at_ms",
        )
        .bind(user_id)
        .bind(encode_preferences(&preferences)?)
        .bind(milliseconds(Utc::now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    crate::backend::job_store_methods_shared_by_both_backends!();
}

impl Queue for SqliteBackend {
    async fn create_queued_job(&self, request: NewJob) -> Result<Job, JobsError> {
        self.insert_job(request, true).await
    }

    async fn push(&self, job_id: JobId, priority: JobPriority) -> Result<(), JobsError> {
        let result = sqlx::query(
            "UPDATE jobs SET queue_name = ?2, available_at_ms = ?3,
                 enqueue_sequence = (SELECT COALESCE(MAX(enqueue_sequence), 0) + 1 FROM jobs)
             WHERE id = ?1 AND state = 'queued'",
        )
        .bind(job_id.as_str())
        .bind(priority.queue_name())
        .bind(milliseconds(Utc::now()))
        .execute(&self.pool)
        .await?;
        if result.rows_affected() == 0 {
            return match self.get_job(job_id).await? {
                None => Err(JobsError::JobNotFound { job_id }),
                Some(job) => Err(JobsError::NotApplicable {
                    job_id,
                    state: job.state,
                    action: "be queued",
                }),
            };
        }
        self.wake_claimers_after_a_change();
        Ok(())
    }

    async fn claim(
        &self,
        worker_id: &str,
        queues: &[JobPriority],
        lease_duration: Duration,
        wait: Duration,
    ) -> Result<Option<(Job, Lease)>, JobsError> {
        let deadline = tokio::time::Instant::now() + wait;
        let queue_names: Vec<&'static str> =
            queues.iter().map(|queue| queue.queue_name()).collect();
        let database_path = self.database_path();
        let write_ahead_log_path = DatabaseFiles::write_ahead_log_path(&database_path);
        loop {
            let notified = self.wake_claimers.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let files_before = DatabaseFiles::read(&database_path, &write_ahead_log_path);
            let looked_at = tokio::time::Instant::now();
            let query_due = self.with_claim_watch(|watch| {
                watch.query_due(
                    &files_before,
                    &queue_names,
                    looked_at,
                    milliseconds(Utc::now()),
                )
            });
            if query_due {
                while let Some(job_id) = self.next_claimable(queues, Utc::now()).await? {
                    match shared_operations::claim_found_job(
                        self,
                        job_id,
                        worker_id,
                        "",
                        lease_duration,
                    )
                    .await?
                    {
                        Some(claimed) => return Ok(Some(claimed)),
                        // Someone else took it, or it was cancelled meanwhile: next one.
                        None => self.drop_from_queue(job_id).await?,
                    }
                }
                let earliest_waiting = self.earliest_waiting_ms(queues).await?;
                self.with_claim_watch(|watch| {
                    watch.record_empty_look(files_before, &queue_names, looked_at, earliest_waiting)
                });
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let pause = CLAIM_POLL_INTERVAL.min(deadline - now);
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    async fn renew_lease(&self, lease: &Lease, lease_duration: Duration) -> Result<Job, JobsError> {
        shared_operations::renew_lease(self, lease, lease_duration).await
    }

    async fn renew_leases(
        &self,
        renewals: &[LeaseRenewal],
        lease_duration: Duration,
    ) -> Vec<Result<Job, JobsError>> {
        match self
            .renew_leases_in_one_transaction(renewals, lease_duration)
            .await
        {
            Ok(results) => results,
            Err(error) => {
                tracing::debug!(%error, "batched lease renewal failed; renewing one by one");
                let mut results = Vec::with_capacity(renewals.len());
                for renewal in renewals {
                    results.push(shared_operations::renew_one(self, renewal, lease_duration).await);
                }
                results
            }
        }
    }

    crate::backend::queue_methods_shared_by_both_backends!();

    async fn reap_expired_leases(&self) -> Result<Vec<JobId>, JobsError> {
        let cutoff = Utc::now() - crate::backend::chrono_duration(self.lease_reap_grace);
        let rows = sqlx::query(
            "SELECT id FROM jobs WHERE lease_expires_at_ms IS NOT NULL AND lease_expires_at_ms <= ?1
             LIMIT 100",
        )
        .bind(milliseconds(cutoff))
        .fetch_all(&self.pool)
        .await?;
        let mut reaped = Vec::new();
        for row in rows {
            let text: String = row.try_get("id")?;
            let Ok(job_id) = text.parse::<JobId>() else {
                continue;
            };
            match self
                .update_job_record(job_id, |job| {
                    mutation::reap(
                        job,
                        Utc::now() - crate::backend::chrono_duration(self.lease_reap_grace),
                    )
                    .map(|placement| (placement, ()))
                })
                .await
            {
                Ok(_) => reaped.push(job_id),
                Err(JobsError::NotApplicable { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        reaped.extend(self.requeue_unqueued_jobs().await?);
        Ok(reaped)
    }

    async fn dead_letters(&self) -> Result<Vec<JobId>, JobsError> {
        let rows = sqlx::query("SELECT job_id FROM dead_letters ORDER BY failed_at_ms")
            .fetch_all(&self.pool)
            .await?;
        let mut identifiers = Vec::new();
        for row in rows {
            let text: String = row.try_get("job_id")?;
            if let Ok(job_id) = text.parse() {
                identifiers.push(job_id);
            }
        }
        Ok(identifiers)
    }

    async fn try_acquire_lock(
        &self,
        name: &str,
        holder: &str,
        time_to_live: Duration,
    ) -> Result<bool, JobsError> {
        let now = Utc::now();
        let result = sqlx::query(
            "INSERT INTO locks (name, holder, expires_at_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,
                 expires_at_ms = excluded.expires_at_ms
             WHERE locks.holder = excluded.holder OR locks.expires_at_ms <= ?4",
        )
        .bind(name)
        .bind(holder)
        .bind(milliseconds(
            now + crate::backend::chrono_duration(time_to_live),
        ))
        .bind(milliseconds(now))
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }
}

impl VersionedJobRecords for SqliteBackend {
    async fn update_job<T: Send>(
        &self,
        job_id: JobId,
        mutate: impl FnMut(&mut Job) -> Result<(QueuePlacement, T), JobsError> + Send,
    ) -> Result<(Job, T), JobsError> {
        self.update_job_record(job_id, mutate).await
    }
}
