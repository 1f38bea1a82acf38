//! The distributed backend.
//!
//! Keys (all under one prefix, `streambot:` by default):
//! - `job:{ID}`: a hash with `version`, `state` and `record` (the JSON of the job). Every change is
//!   a compare-and-set on `version` (a Lua script).
//! - `jobs` and `user:{USER}:jobs`: sorted sets of job ids by creation time; `live`: the same for
//!   the jobs not terminal (every record change keeps it; built once at connect when missing).
//! - `state_counts`: a hash, state → how many jobs are in it (the create and compare-and-set
//!   scripts keep it; counted once at connect, in one script, for a store written before it).
//! - `stream:priority`, `stream:normal`: the queues, read by the consumer group `workers`, one entry
//!   at a time (no prefetch). A claimed entry stays pending under the worker's consumer until the
//!   job leaves the worker; lease renewal re-claims it (`XCLAIM … JUSTID`) so its idle time only
//!   grows when the worker is gone, and the reaper finds it with `XAUTOCLAIM`.
//! - `delayed`: retries waiting for their backoff (a sorted set by due time).
//! - `unqueued`: jobs created but not pushed yet (a sorted set by creation time); the reaper
//!   pushes those older than the grace, so a creator that died between the two loses nothing.
//! - `dead`: jobs failed for good. `lock:{NAME}`: locks with expiry. Channel `events`: pub/sub.
//! - `user_preferences`: a hash, user id → the JSON of `UserPreferences`.
//!
//! Blocking reads use a dedicated connection without a response timeout (redis-rs's default of
//! 500 ms would cut every `BLOCK`); everything else goes through a `ConnectionManager`, which
//! reconnects after a Redis restart.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use redis::{AsyncConnectionConfig, Script};
use streambot_core::{
    DesiredJobState, FailureKind, Job, JobDelivery, JobEvent, JobId, JobPriority, JobState, NewJob,
    RecordingProgress, RedeliveryOutcome, StatusMessageRef, UserPreferences,
};
use tokio::sync::{Mutex, broadcast};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::backend::{
    JobFilter, JobStateCounts, JobStore, Lease, LeaseRenewal, Queue, QueuePlacement, RetryDecision,
    VersionedJobRecords, events_between, mutation, random_job_id, shared_operations,
};
use crate::error::JobsError;

const CONSUMER_GROUP: &str = "workers";
const REAPER_CONSUMER: &str = "reaper";
const MAXIMUM_WRITE_ATTEMPTS: u32 = 50;
/// A blocking read waits at most this long at a time, so due retries are promoted in time.
const BLOCK_SLICE: Duration = Duration::from_millis(500);
/// Pending entries idle this long are looked at by the reaper (the job's lease decides).
const REAPER_MINIMUM_IDLE: Duration = Duration::from_millis(1000);
/// After Redis starts (a restart, with its data back from disk), no lease is reaped until it has
/// been up this long: every lease's deadline may have passed while it was down, and the workers
/// that hold them renew within a heartbeat once it is back. Reaping at once would hand every
/// running job to a second worker (a recording twice, a part sent twice).
const REAPING_HELD_AFTER_REDIS_STARTS: Duration = crate::backend::DEFAULT_LEASE_DURATION;

/// KEYS[1] the job hash, KEYS[2] the `live` index, KEYS[3] `state_counts`; ARGV: version read,
/// next version, record, state, then the job id, its creation time and '1' when the new state is
/// terminal.
const COMPARE_AND_SET_SCRIPT: &str = r#"
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then return 0 end
local before = redis.call('HGET', KEYS[1], 'state')
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'record', ARGV[3], 'state', ARGV[4])
if before ~= ARGV[4] then
  if before then redis.call('HINCRBY', KEYS[3], before, -1) end
  redis.call('HINCRBY', KEYS[3], ARGV[4], 1)
end
if ARGV[7] == '1' then
  redis.call('ZREM', KEYS[2], ARGV[5])
else
  redis.call('ZADD', KEYS[2], ARGV[6], ARGV[5])
end
return 1
"#;

/// Creates the record and its indexes; then either queues it (ARGV[5] = '1': XADD to the stream
/// KEYS[4]) or notes it in `unqueued` (KEYS[5]) until its creator pushes it: all in one script,
/// so a crash cannot leave a job created and in neither.
const CREATE_SCRIPT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'version', '1', 'record', ARGV[1], 'state', ARGV[2])
redis.call('HINCRBY', KEYS[7], ARGV[2], 1)
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[6], ARGV[3], ARGV[4])
if ARGV[5] == '1' then
  redis.call('XADD', KEYS[4], '*', 'job', ARGV[4])
else
  redis.call('ZADD', KEYS[5], ARGV[3], ARGV[4])
end
return 1
"#;

/// Counts the jobs of a store written before `state_counts` existed, once, in one script (so no
/// change made meanwhile is counted twice or missed): KEYS[1] `state_counts`, KEYS[2]
/// `state_counts:built`, KEYS[3] the `jobs` index; ARGV[1] the job hash key without the id. Reads
/// every job's state field (100,000 jobs: a fraction of a second, once per store).
const BUILD_STATE_COUNTS_SCRIPT: &str = r#"
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('DEL', KEYS[1])
local identifiers = redis.call('ZRANGE', KEYS[3], 0, -1)
for _, identifier in ipairs(identifiers) do
  local state = redis.call('HGET', ARGV[1] .. identifier, 'state')
  if state then redis.call('HINCRBY', KEYS[1], state, 1) end
end
redis.call('SET', KEYS[2], '1')
return #identifiers
"#;

/// A heartbeat's renewals: KEYS are the job hashes; ARGV[1] the events channel, ARGV[2] the
/// consumer group, then seven values per job: the version read, the next version, the record,
/// the stream of its entry, the entry id ('' for none), the worker (consumer) and a progress event
/// to publish ('' for none). Each record is written only if its version is still the one read
/// (else 0 for it: the caller renews that one on its own); a written one re-claims its entry
/// (resetting its idle time, as `renew_lease` does). Returns 1 or 0 per job.
const RENEW_MANY_SCRIPT: &str = r#"
local written = {}
for index = 1, #KEYS do
  local base = 2 + (index - 1) * 7
  if redis.call('HGET', KEYS[index], 'version') == ARGV[base + 1] then
    redis.call('HSET', KEYS[index], 'version', ARGV[base + 2], 'record', ARGV[base + 3])
    if ARGV[base + 5] ~= '' then
      redis.pcall('XCLAIM', ARGV[base + 4], ARGV[2], ARGV[base + 6], 0, ARGV[base + 5], 'JUSTID')
    end
    if ARGV[base + 7] ~= '' then
      redis.call('PUBLISH', ARGV[1], ARGV[base + 7])
    end
    written[index] = 1
  else
    written[index] = 0
  end
end
return written
"#;

/// Job ids read from a listing index per round trip.
const LIST_PAGE: usize = 200;

/// Renewals read and written per round trip.
const RENEWAL_CHUNK: usize = 500;

const PROMOTE_DELAYED_SCRIPT: &str = r#"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 50)
for _, member in ipairs(due) do
  local separator = string.find(member, ':', 1, true)
  if separator then
    local queue = string.sub(member, 1, separator - 1)
    local job = string.sub(member, separator + 1)
    redis.call('XADD', ARGV[2] .. 'stream:' .. queue, '*', 'job', job)
  end
  redis.call('ZREM', KEYS[1], member)
end
return #due
"#;

const ACQUIRE_LOCK_SCRIPT: &str = r#"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"#;

/// The Redis job store and queue.
#[derive(Clone)]
pub struct RedisBackend {
    client: redis::Client,
    pub(crate) commands: ConnectionManager,
    blocking: Arc<Mutex<Option<MultiplexedConnection>>>,
    prefix: String,
    events: broadcast::Sender<JobEvent>,
    unqueued_job_grace: Duration,
    _subscriber_guard: Arc<DropGuard>,
}

fn decode_record(text: &str) -> Result<Job, JobsError> {
    serde_json::from_str(text).map_err(|error| JobsError::CorruptRecord(error.to_string()))
}

pub(crate) fn encode_record(job: &Job) -> Result<String, JobsError> {
    serde_json::to_string(job).map_err(|error| JobsError::CorruptRecord(error.to_string()))
}

fn is_missing_group(error: &redis::RedisError) -> bool {
    error.code() == Some("NOGROUP")
}

impl RedisBackend {
    /// Connects, creates the consumer group if needed and starts listening for events.
    pub async fn connect(redis_url: &str, key_prefix: &str) -> Result<Self, JobsError> {
        let client = redis::Client::open(redis_url)?;
        let commands = ConnectionManager::new(client.clone()).await?;
        let (events, _) = broadcast::channel(1024);
        let stop_subscriber = CancellationToken::new();
        let backend = RedisBackend {
            client: client.clone(),
            commands,
            blocking: Arc::new(Mutex::new(None)),
            prefix: key_prefix.to_string(),
            events: events.clone(),
            unqueued_job_grace: crate::backend::UNQUEUED_JOB_GRACE,
            _subscriber_guard: Arc::new(stop_subscriber.clone().drop_guard()),
        };
        backend.ensure_consumer_groups().await?;
        backend.ensure_live_index().await?;
        backend.ensure_state_counts().await?;
        // Subscribe before returning, so no event published after `connect` is missed.
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(backend.key("events")).await?;
        tokio::spawn(forward_events(
            client,
            backend.key("events"),
            pubsub,
            events,
            stop_subscriber,
        ));
        Ok(backend)
    }

    pub(crate) fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    pub(crate) fn job_key(&self, job_id: JobId) -> String {
        self.key(&format!("job:{job_id}"))
    }

    pub(crate) fn stream_key(&self, queue: JobPriority) -> String {
        self.key(&format!("stream:{}", queue.queue_name()))
    }

    async fn ensure_consumer_groups(&self) -> Result<(), JobsError> {
        let mut connection = self.commands.clone();
        for queue in [JobPriority::Priority, JobPriority::Normal] {
            let created: Result<(), redis::RedisError> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(self.stream_key(queue))
                .arg(CONSUMER_GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut connection)
                .await;
            if let Err(error) = created
                && error.code() != Some("BUSYGROUP")
            {
                return Err(error.into());
            }
        }
        Ok(())
    }

    /// Builds the `live` index (jobs not terminal, by creation time) once for a store written
    /// before it existed: the whole `jobs` index is read a page at a time; `live:built` marks it
    /// done. Every record change keeps it up to date afterwards.
    async fn ensure_live_index(&self) -> Result<(), JobsError> {
        let mut connection = self.commands.clone();
        let built: bool = redis::cmd("EXISTS")
            .arg(self.key("live:built"))
            .query_async(&mut connection)
            .await?;
        if built {
            return Ok(());
        }
        let mut start = 0usize;
        loop {
            let chunk: Vec<(String, f64)> = redis::cmd("ZRANGE")
                .arg(self.key("jobs"))
                .arg(start)
                .arg(start + LIST_PAGE - 1)
                .arg("WITHSCORES")
                .query_async(&mut connection)
                .await?;
            if chunk.is_empty() {
                break;
            }
            start += chunk.len();
            let mut reads = redis::pipe();
            for (identifier, _) in &chunk {
                reads
                    .cmd("HGET")
                    .arg(self.key(&format!("job:{identifier}")))
                    .arg("state");
            }
            let states: Vec<Option<String>> = reads.query_async(&mut connection).await?;
            let mut writes = redis::pipe();
            let mut live_count = 0;
            for ((identifier, created), state) in chunk.iter().zip(states) {
                let live = state
                    .and_then(|state| state.parse::<JobState>().ok())
                    .is_some_and(|state| !state.is_terminal());
                if live {
                    live_count += 1;
                    writes
                        .cmd("ZADD")
                        .arg(self.key("live"))
                        .arg(*created)
                        .arg(identifier)
                        .ignore();
                }
            }
            if live_count > 0 {
                let () = writes.query_async(&mut connection).await?;
            }
        }
        let () = redis::cmd("SET")
            .arg(self.key("live:built"))
            .arg("1")
            .query_async(&mut connection)
            .await?;
        Ok(())
    }

    /// Builds `state_counts` (jobs per state) once for a store written before it existed;
    /// the create and compare-and-set scripts keep it afterwards.
    async fn ensure_state_counts(&self) -> Result<(), JobsError> {
        let mut connection = self.commands.clone();
        let _: i64 = Script::new(BUILD_STATE_COUNTS_SCRIPT)
            .key(self.key("state_counts"))
            .key(self.key("state_counts:built"))
            .key(self.key("jobs"))
            .arg(self.key("job:"))
            .invoke_async(&mut connection)
            .await?;
        Ok(())
    }

    async fn load(&self, job_id: JobId) -> Result<Option<(Job, String)>, JobsError> {
        let mut connection = self.commands.clone();
        let (version, record): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(self.job_key(job_id))
            .arg("version")
            .arg("record")
            .query_async(&mut connection)
            .await?;
        match (version, record) {
            (Some(version), Some(record)) => Ok(Some((decode_record(&record)?, version))),
            _ => Ok(None),
        }
    }

    pub(crate) async fn publish(&self, event: &JobEvent) {
        let Ok(text) = serde_json::to_string(event) else {
            return;
        };
        let mut connection = self.commands.clone();
        let published: Result<i64, redis::RedisError> = redis::cmd("PUBLISH")
            .arg(self.key("events"))
            .arg(text)
            .query_async(&mut connection)
            .await;
        if let Err(error) = published {
            tracing::warn!(%error, "could not publish a job event");
        }
    }

    /// Read, mutate, compare-and-set, again on conflict; then the queue side and the events.
    async fn update_job_record<T>(
        &self,
        job_id: JobId,
        mut mutate: impl FnMut(&mut Job) -> Result<(QueuePlacement, T), JobsError>,
    ) -> Result<(Job, T), JobsError> {
        let script = Script::new(COMPARE_AND_SET_SCRIPT);
        for _ in 0..MAXIMUM_WRITE_ATTEMPTS {
            let (before, version) = self
                .load(job_id)
                .await?
                .ok_or(JobsError::JobNotFound { job_id })?;
            let mut after = before.clone();
            let (placement, extra) = mutate(&mut after)?;
            let next_version = version.parse::<u64>().unwrap_or(0) + 1;
            let mut connection = self.commands.clone();
            let written: i64 = script
                .key(self.job_key(job_id))
                .key(self.key("live"))
                .key(self.key("state_counts"))
                .arg(&version)
                .arg(next_version.to_string())
                .arg(encode_record(&after)?)
                .arg(after.state.as_str())
                .arg(job_id.as_str())
                .arg(after.created_at.timestamp_millis())
                .arg(if after.state.is_terminal() { "1" } else { "0" })
                .invoke_async(&mut connection)
                .await?;
            if written == 1 {
                self.apply_placement(&before, &after, placement).await?;
                for event in events_between(&before, &after) {
                    self.publish(&event).await;
                }
                return Ok((after, extra));
            }
        }
        Err(JobsError::TooMuchContention {
            job_id,
            attempts: MAXIMUM_WRITE_ATTEMPTS,
        })
    }

    async fn acknowledge_entry(&self, queue: JobPriority, entry_id: &str) -> Result<(), JobsError> {
        if entry_id.is_empty() {
            return Ok(());
        }
        let mut pipeline = redis::pipe();
        pipeline
            .cmd("XACK")
            .arg(self.stream_key(queue))
            .arg(CONSUMER_GROUP)
            .arg(entry_id)
            .ignore()
            .cmd("XDEL")
            .arg(self.stream_key(queue))
            .arg(entry_id)
            .ignore();
        let mut connection = self.commands.clone();
        let () = pipeline.query_async(&mut connection).await?;
        Ok(())
    }

    async fn add_entry(&self, queue: JobPriority, job_id: JobId) -> Result<(), JobsError> {
        let mut connection = self.commands.clone();
        let mut transaction = redis::pipe();
        transaction
            .atomic()
            .cmd("XADD")
            .arg(self.stream_key(queue))
            .arg("*")
            .arg("job")
            .arg(job_id.as_str())
            .ignore()
            .cmd("ZREM")
            .arg(self.key("unqueued"))
            .arg(job_id.as_str())
            .ignore();
        let () = transaction.query_async(&mut connection).await?;
        Ok(())
    }

    /// Creates a job; queued at once when `enqueue`, else noted in `unqueued`.
    async fn insert_job(&self, request: NewJob, enqueue: bool) -> Result<Job, JobsError> {
        let now = Utc::now();
        loop {
            let job = Job::new(random_job_id(), request.clone(), now);
            let mut connection = self.commands.clone();
            let created: i64 = Script::new(CREATE_SCRIPT)
                .key(self.job_key(job.id))
                .key(self.key("jobs"))
                .key(self.key(&format!("user:{}:jobs", job.owner.user_id)))
                .key(self.stream_key(job.priority))
                .key(self.key("unqueued"))
                .key(self.key("live"))
                .key(self.key("state_counts"))
                .arg(encode_record(&job)?)
                .arg(job.state.as_str())
                .arg(now.timestamp_millis())
                .arg(job.id.as_str())
                .arg(if enqueue { "1" } else { "0" })
                .invoke_async(&mut connection)
                .await?;
            if created == 1 {
                self.publish(&JobEvent::Created {
                    job: Box::new(job.clone()),
                })
                .await;
                return Ok(job);
            }
        }
    }

    /// Pushes the jobs in `unqueued` older than the grace that are still `Queued`; forgets the
    /// others.
    async fn requeue_unqueued_jobs(&self) -> Result<Vec<JobId>, JobsError> {
        let cutoff = Utc::now() - crate::backend::chrono_duration(self.unqueued_job_grace);
        let mut connection = self.commands.clone();
        let identifiers: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.key("unqueued"))
            .arg("-inf")
            .arg(cutoff.timestamp_millis())
            .arg("LIMIT")
            .arg(0)
            .arg(100)
            .query_async(&mut connection)
            .await?;
        let mut requeued = Vec::new();
        for identifier in identifiers {
            let queued = match identifier.parse::<JobId>() {
                Ok(job_id) => self
                    .load(job_id)
                    .await?
                    .filter(|(job, _)| job.state == JobState::Queued && job.lease.is_none())
                    .map(|(job, _)| job),
                Err(_) => None,
            };
            match queued {
                Some(job) => {
                    self.add_entry(job.priority, job.id).await?;
                    requeued.push(job.id);
                }
                None => {
                    let _: i64 = redis::cmd("ZREM")
                        .arg(self.key("unqueued"))
                        .arg(&identifier)
                        .query_async(&mut connection)
                        .await?;
                }
            }
        }
        if !requeued.is_empty() {
            tracing::warn!(jobs = ?requeued, "queued jobs that were in no queue are queued again");
        }
        Ok(requeued)
    }

    /// A `Queued` job in no queue is pushed by the reaper once this old.
    pub fn with_unqueued_job_grace(mut self, grace: Duration) -> Self {
        self.unqueued_job_grace = grace;
        self
    }

    async fn apply_placement(
        &self,
        before: &Job,
        after: &Job,
        placement: QueuePlacement,
    ) -> Result<(), JobsError> {
        let previous_delivery = before
            .lease
            .as_ref()
            .map(|lease| (lease.queue, lease.delivery_handle.clone()));
        match placement {
            QueuePlacement::Unchanged => Ok(()),
            QueuePlacement::Dequeue | QueuePlacement::DeadLetter => {
                if let Some((queue, entry_id)) = previous_delivery {
                    self.acknowledge_entry(queue, &entry_id).await?;
                }
                if placement == QueuePlacement::DeadLetter {
                    let mut connection = self.commands.clone();
                    let _: i64 = redis::cmd("ZADD")
                        .arg(self.key("dead"))
                        .arg(Utc::now().timestamp_millis())
                        .arg(after.id.as_str())
                        .query_async(&mut connection)
                        .await?;
                }
                Ok(())
            }
            QueuePlacement::Enqueue { available_at } => {
                if let Some((queue, entry_id)) = previous_delivery {
                    self.acknowledge_entry(queue, &entry_id).await?;
                }
                if available_at <= Utc::now() {
                    self.add_entry(after.priority, after.id).await
                } else {
                    let mut connection = self.commands.clone();
                    let _: i64 = redis::cmd("ZADD")
                        .arg(self.key("delayed"))
                        .arg(available_at.timestamp_millis())
                        .arg(format!("{}:{}", after.priority.queue_name(), after.id))
                        .query_async(&mut connection)
                        .await?;
                    Ok(())
                }
            }
        }
    }

    async fn promote_due_retries(&self) -> Result<(), JobsError> {
        let mut connection = self.commands.clone();
        let _: i64 = Script::new(PROMOTE_DELAYED_SCRIPT)
            .key(self.key("delayed"))
            .arg(Utc::now().timestamp_millis())
            .arg(&self.prefix)
            .invoke_async(&mut connection)
            .await?;
        Ok(())
    }

    /// One XREADGROUP for one entry; `block` uses the dedicated connection.
    async fn read_entries(
        &self,
        worker_id: &str,
        queues: &[JobPriority],
        block: Option<Duration>,
    ) -> Result<Vec<(JobPriority, StreamId)>, JobsError> {
        let mut command = redis::cmd("XREADGROUP");
        command
            .arg("GROUP")
            .arg(CONSUMER_GROUP)
            .arg(worker_id)
            .arg("COUNT")
            .arg(1);
        if let Some(block) = block {
            command.arg("BLOCK").arg(block.as_millis().max(1) as u64);
        }
        command.arg("STREAMS");
        for queue in queues {
            command.arg(self.stream_key(*queue));
        }
        for _ in queues {
            command.arg(">");
        }
        let reply: Result<Option<StreamReadReply>, redis::RedisError> = match block {
            None => {
                let mut connection = self.commands.clone();
                command.query_async(&mut connection).await
            }
            Some(_) => {
                let mut slot = self.blocking.lock().await;
                if slot.is_none() {
                    let config = AsyncConnectionConfig::new().set_response_timeout(None);
                    *slot = Some(
                        self.client
                            .get_multiplexed_async_connection_with_config(&config)
                            .await?,
                    );
                }
                let Some(connection) = slot.as_mut() else {
                    return Ok(Vec::new());
                };
                let reply = command.query_async(connection).await;
                if reply.as_ref().is_err_and(|error| !is_missing_group(error)) {
                    // A broken connection is replaced on the next read.
                    *slot = None;
                }
                reply
            }
        };
        let reply = match reply {
            Ok(reply) => reply,
            Err(error) if is_missing_group(&error) => {
                // Redis lost its data (restarted without persistence): recreate the group.
                self.ensure_consumer_groups().await?;
                return Ok(Vec::new());
            }
            Err(error) => return Err(error.into()),
        };
        let mut entries = Vec::new();
        for stream in reply.map(|reply| reply.keys).unwrap_or_default() {
            let Some(queue) = queues
                .iter()
                .copied()
                .find(|queue| self.stream_key(*queue) == stream.key)
            else {
                continue;
            };
            entries.extend(stream.ids.into_iter().map(|entry| (queue, entry)));
        }
        Ok(entries)
    }

    /// Tries to claim the job of one delivered entry; `None` when the entry was stale.
    async fn claim_entry(
        &self,
        worker_id: &str,
        queue: JobPriority,
        entry: &StreamId,
        lease_duration: Duration,
    ) -> Result<Option<(Job, Lease)>, JobsError> {
        let job_id = entry
            .get::<String>("job")
            .and_then(|text| text.parse::<JobId>().ok());
        let Some(job_id) = job_id else {
            self.acknowledge_entry(queue, &entry.id).await?;
            return Ok(None);
        };
        let claimed =
            shared_operations::claim_found_job(self, job_id, worker_id, &entry.id, lease_duration)
                .await?;
        if claimed.is_none() {
            self.acknowledge_entry(queue, &entry.id).await?;
        }
        Ok(claimed)
    }

    /// How long the Redis server has been up (`INFO server`), `None` when it does not say.
    async fn server_up_for(&self) -> Result<Option<Duration>, JobsError> {
        let mut connection = self.commands.clone();
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut connection)
            .await?;
        Ok(uptime_from_server_info(&info))
    }

    /// Reaps the lapsed entries of one stream.
    async fn reap_stream(&self, queue: JobPriority) -> Result<Vec<JobId>, JobsError> {
        let mut connection = self.commands.clone();
        let reply: Result<StreamAutoClaimReply, redis::RedisError> = redis::cmd("XAUTOCLAIM")
            .arg(self.stream_key(queue))
            .arg(CONSUMER_GROUP)
            .arg(REAPER_CONSUMER)
            .arg(REAPER_MINIMUM_IDLE.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(100)
            .query_async(&mut connection)
            .await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(error) if is_missing_group(&error) => {
                self.ensure_consumer_groups().await?;
                return Ok(Vec::new());
            }
            Err(error) => return Err(error.into()),
        };
        let mut reaped = Vec::new();
        for entry in reply.claimed {
            let job_id = entry
                .get::<String>("job")
                .and_then(|text| text.parse::<JobId>().ok());
            let Some(job_id) = job_id else {
                self.acknowledge_entry(queue, &entry.id).await?;
                continue;
            };
            let Some((job, _)) = self.load(job_id).await? else {
                self.acknowledge_entry(queue, &entry.id).await?;
                continue;
            };
            let delivered_here = job
                .lease
                .as_ref()
                .is_some_and(|lease| lease.delivery_handle == entry.id);
            if job.state == JobState::Queued && job.lease.is_none() {
                // Delivered to a worker that died before it could claim: deliver it again.
                self.acknowledge_entry(queue, &entry.id).await?;
                self.add_entry(job.priority, job.id).await?;
                continue;
            }
            if !delivered_here || job.state.is_terminal() {
                self.acknowledge_entry(queue, &entry.id).await?;
                continue;
            }
            match self
                .update_job_record(job_id, |job| {
                    mutation::reap(job, Utc::now()).map(|placement| (placement, ()))
                })
                .await
            {
                Ok(_) => reaped.push(job_id),
                Err(JobsError::NotApplicable { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(reaped)
    }

    /// One chunk of a heartbeat: one pipeline of reads, the pure mutations, one script of
    /// compare-and-sets; records that changed in between are renewed on their own.
    async fn renew_chunk(
        &self,
        renewals: &[LeaseRenewal],
        lease_duration: Duration,
    ) -> Result<Vec<Result<Job, JobsError>>, JobsError> {
        let mut connection = self.commands.clone();
        let mut reads = redis::pipe();
        for renewal in renewals {
            reads
                .cmd("HMGET")
                .arg(self.job_key(renewal.lease.job_id))
                .arg("version")
                .arg("record");
        }
        let stored: Vec<(Option<String>, Option<String>)> =
            reads.query_async(&mut connection).await?;
        let now = Utc::now();
        let mut results: Vec<Result<Job, JobsError>> = Vec::with_capacity(renewals.len());
        let script = Script::new(RENEW_MANY_SCRIPT);
        let mut invocation = script.prepare_invoke();
        invocation.arg(self.key("events")).arg(CONSUMER_GROUP);
        // (index in `results`, the renewal) of each job in the script.
        let mut written_slots = Vec::new();
        for (renewal, record) in renewals.iter().zip(stored) {
            let job_id = renewal.lease.job_id;
            let (Some(version), Some(record)) = record else {
                results.push(Err(JobsError::JobNotFound { job_id }));
                continue;
            };
            let mut job = match decode_record(&record) {
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
            let event = match &renewal.progress {
                Some(_) => serde_json::to_string(&JobEvent::Progress {
                    job_id,
                    progress: job.progress.clone(),
                    at: job.updated_at,
                })
                .unwrap_or_default(),
                None => String::new(),
            };
            let next_version = version.parse::<u64>().unwrap_or(0) + 1;
            invocation
                .key(self.job_key(job_id))
                .arg(&version)
                .arg(next_version.to_string())
                .arg(encode_record(&job)?)
                .arg(self.stream_key(renewal.lease.queue))
                .arg(&renewal.lease.delivery_handle)
                .arg(&renewal.lease.worker_id)
                .arg(event);
            written_slots.push((results.len(), renewal));
            results.push(Ok(job));
        }
        if written_slots.is_empty() {
            return Ok(results);
        }
        let written: Vec<i64> = invocation.invoke_async(&mut connection).await?;
        for ((slot, renewal), written) in written_slots
            .into_iter()
            .zip(written.into_iter().chain(std::iter::repeat(0)))
        {
            if written != 1
                && let Some(result) = results.get_mut(slot)
            {
                *result = self.renew_one(renewal, lease_duration).await;
            }
        }
        Ok(results)
    }

    /// One renewal on its own: the record, then its stream entry re-claimed.
    async fn renew_one(
        &self,
        renewal: &LeaseRenewal,
        lease_duration: Duration,
    ) -> Result<Job, JobsError> {
        let job = shared_operations::renew_one(self, renewal, lease_duration).await?;
        self.reclaim_entry(&renewal.lease).await;
        if renewal.progress.is_some() {
            self.publish(&JobEvent::Progress {
                job_id: job.id,
                progress: job.progress.clone(),
                at: job.updated_at,
            })
            .await;
        }
        Ok(job)
    }

    /// Re-claims a lease's pending entry: resets its idle time, so the reaper leaves it alone.
    async fn reclaim_entry(&self, lease: &Lease) {
        if lease.delivery_handle.is_empty() {
            return;
        }
        let mut connection = self.commands.clone();
        let reclaimed: Result<redis::Value, redis::RedisError> = redis::cmd("XCLAIM")
            .arg(self.stream_key(lease.queue))
            .arg(CONSUMER_GROUP)
            .arg(&lease.worker_id)
            .arg(0)
            .arg(&lease.delivery_handle)
            .arg("JUSTID")
            .query_async(&mut connection)
            .await;
        if let Err(error) = reclaimed {
            tracing::debug!(%error, job_id = %lease.job_id, "could not re-claim the stream entry");
        }
    }

    /// Deletes every key under this backend's prefix (tests and benchmarks).
    pub async fn delete_all_keys(&self) -> Result<(), JobsError> {
        let mut connection = self.commands.clone();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query_async(&mut connection)
            .await?;
        for chunk in keys.chunks(100) {
            let _: i64 = redis::cmd("DEL")
                .arg(chunk)
                .query_async(&mut connection)
                .await?;
        }
        Ok(())
    }
}

/// Forwards pub/sub messages to the in-process broadcast, reconnecting after a Redis restart.
async fn forward_events(
    client: redis::Client,
    channel: String,
    first_connection: redis::aio::PubSub,
    events: broadcast::Sender<JobEvent>,
    stop: CancellationToken,
) {
    let mut connection = Some(first_connection);
    loop {
        let pubsub = match connection.take() {
            Some(pubsub) => pubsub,
            None => {
                let connected = async {
                    let mut pubsub = client.get_async_pubsub().await?;
                    pubsub.subscribe(&channel).await?;
                    Ok::<_, redis::RedisError>(pubsub)
                };
                match connected.await {
                    Ok(pubsub) => pubsub,
                    Err(error) => {
                        tracing::debug!(%error, "events subscription: reconnecting");
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        }
                    }
                }
            }
        };
        let mut messages = pubsub.into_on_message();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                message = messages.next() => {
                    let Some(message) = message else { break };
                    let Ok(text) = message.get_payload::<String>() else { continue };
                    if let Ok(event) = serde_json::from_str::<JobEvent>(&text) {
                        let _ = events.send(event);
                    }
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

impl JobStore for RedisBackend {
    async fn create_job(&self, request: NewJob) -> Result<Job, JobsError> {
        self.insert_job(request, false).await
    }

    async fn get_job(&self, job_id: JobId) -> Result<Option<Job>, JobsError> {
        Ok(self.load(job_id).await?.map(|(job, _)| job))
    }

    async fn list_jobs(&self, filter: JobFilter) -> Result<Vec<Job>, JobsError> {
        let only_live =
            !filter.states.is_empty() && filter.states.iter().all(|state| !state.is_terminal());
        let index = match filter.owner_user_id {
            Some(user_id) => self.key(&format!("user:{user_id}:jobs")),
            // Live jobs have their own index: listing them reads them, not the history.
            None if only_live => self.key("live"),
            None => self.key("jobs"),
        };
        let mut connection = self.commands.clone();
        let mut jobs = Vec::new();
        // The index is read a page at a time: a page of 50 of 100,000 jobs reads one page of
        // ids, not all of them.
        let mut start = 0usize;
        loop {
            let chunk: Vec<String> = redis::cmd("ZREVRANGE")
                .arg(&index)
                .arg(start)
                .arg(start + LIST_PAGE - 1)
                .query_async(&mut connection)
                .await?;
            if chunk.is_empty() {
                break;
            }
            start += chunk.len();
            let mut pipeline = redis::pipe();
            for identifier in &chunk {
                pipeline
                    .cmd("HGET")
                    .arg(self.key(&format!("job:{identifier}")))
                    .arg("record");
            }
            let records: Vec<Option<String>> = pipeline.query_async(&mut connection).await?;
            for record in records.into_iter().flatten() {
                let job = decode_record(&record)?;
                if filter.matches(&job) {
                    jobs.push(job);
                    if filter.limit.is_some_and(|limit| jobs.len() >= limit) {
                        return Ok(jobs);
                    }
                }
            }
        }
        Ok(jobs)
    }

    async fn count_jobs_by_state(&self) -> Result<JobStateCounts, JobsError> {
        let mut connection = self.commands.clone();
        let stored: Vec<(String, i64)> = redis::cmd("HGETALL")
            .arg(self.key("state_counts"))
            .query_async(&mut connection)
            .await?;
        let mut counts = JobStateCounts::default();
        for (state, jobs) in stored {
            match state.parse::<JobState>() {
                Ok(state) => counts.add(state, u64::try_from(jobs).unwrap_or(0)),
                Err(error) => tracing::warn!(%error, "state_counts holds an unknown state"),
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
        self.publish(&event).await;
        Ok(())
    }

    fn subscribe_events(&self) -> broadcast::Receiver<JobEvent> {
        self.events.subscribe()
    }

    async fn publish_event(&self, event: JobEvent) -> Result<(), JobsError> {
        self.publish(&event).await;
        Ok(())
    }

    async fn get_user_preferences(&self, user_id: i64) -> Result<UserPreferences, JobsError> {
        let mut connection = self.commands.clone();
        let text: Option<String> = redis::cmd("HGET")
            .arg(self.key("user_preferences"))
            .arg(user_id)
            .query_async(&mut connection)
            .await?;
        match text {
            None => Ok(UserPreferences::default()),
            Some(text) => crate::sqlite::decode_preferences(&text),
        }
    }

    async fn set_user_preferences(
        &self,
        user_id: i64,
        preferences: UserPreferences,
    ) -> Result<(), JobsError> {
        let mut connection = self.commands.clone();
        let _: i64 = redis::cmd("HSET")
            .arg(self.key("user_preferences"))
            .arg(user_id)
            .arg(crate::sqlite::encode_preferences(&preferences)?)
            .query_async(&mut connection)
            .await?;
        Ok(())
    }

    crate::backend::job_store_methods_shared_by_both_backends!();
}

impl Queue for RedisBackend {
    async fn create_queued_job(&self, request: NewJob) -> Result<Job, JobsError> {
        self.insert_job(request, true).await
    }

    async fn push(&self, job_id: JobId, priority: JobPriority) -> Result<(), JobsError> {
        self.add_entry(priority, job_id).await
    }

    async fn claim(
        &self,
        worker_id: &str,
        queues: &[JobPriority],
        lease_duration: Duration,
        wait: Duration,
    ) -> Result<Option<(Job, Lease)>, JobsError> {
        let mut ordered: Vec<JobPriority> = Vec::new();
        for queue in [JobPriority::Priority, JobPriority::Normal] {
            if queues.contains(&queue) {
                ordered.push(queue);
            }
        }
        if ordered.is_empty() {
            return Ok(None);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            self.promote_due_retries().await?;
            // Non-blocking, one queue at a time, priority first.
            let mut delivered = Vec::new();
            for queue in &ordered {
                delivered = self
                    .read_entries(worker_id, std::slice::from_ref(queue), None)
                    .await?;
                if !delivered.is_empty() {
                    break;
                }
            }
            if delivered.is_empty() {
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    return Ok(None);
                }
                let block = BLOCK_SLICE.min(deadline - now);
                delivered = self.read_entries(worker_id, &ordered, Some(block)).await?;
            }
            let mut claimed = None;
            for (queue, entry) in delivered {
                if claimed.is_none() {
                    claimed = self
                        .claim_entry(worker_id, queue, &entry, lease_duration)
                        .await?;
                } else {
                    // More than one entry came back (two streams got data at once): no
                    // prefetch, so give the extra one back to its queue.
                    self.acknowledge_entry(queue, &entry.id).await?;
                    if let Some(job_id) = entry
                        .get::<String>("job")
                        .and_then(|text| text.parse::<JobId>().ok())
                    {
                        self.add_entry(queue, job_id).await?;
                    }
                }
            }
            if claimed.is_some() {
                return Ok(claimed);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }

    async fn renew_lease(&self, lease: &Lease, lease_duration: Duration) -> Result<Job, JobsError> {
        let job = shared_operations::renew_lease(self, lease, lease_duration).await?;
        self.reclaim_entry(lease).await;
        Ok(job)
    }

    async fn renew_leases(
        &self,
        renewals: &[LeaseRenewal],
        lease_duration: Duration,
    ) -> Vec<Result<Job, JobsError>> {
        let mut results = Vec::with_capacity(renewals.len());
        for chunk in renewals.chunks(RENEWAL_CHUNK) {
            match self.renew_chunk(chunk, lease_duration).await {
                Ok(chunk_results) => results.extend(chunk_results),
                Err(error) => {
                    tracing::debug!(%error, "batched lease renewal failed; renewing one by one");
                    for renewal in chunk {
                        results.push(self.renew_one(renewal, lease_duration).await);
                    }
                }
            }
        }
        results
    }

    crate::backend::queue_methods_shared_by_both_backends!();

    async fn reap_expired_leases(&self) -> Result<Vec<JobId>, JobsError> {
        let mut reaped = Vec::new();
        let up_for = self.server_up_for().await?;
        if up_for.is_none_or(|up_for| up_for >= REAPING_HELD_AFTER_REDIS_STARTS) {
            for queue in [JobPriority::Priority, JobPriority::Normal] {
                reaped.extend(self.reap_stream(queue).await?);
            }
        } else {
            tracing::info!(
                ?up_for,
                "Redis started a moment ago: leases are reaped once their workers had a heartbeat to renew them"
            );
        }
        reaped.extend(self.requeue_unqueued_jobs().await?);
        Ok(reaped)
    }

    async fn dead_letters(&self) -> Result<Vec<JobId>, JobsError> {
        let mut connection = self.commands.clone();
        let identifiers: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.key("dead"))
            .arg(0)
            .arg(-1)
            .query_async(&mut connection)
            .await?;
        Ok(identifiers
            .iter()
            .filter_map(|text| text.parse().ok())
            .collect())
    }

    async fn try_acquire_lock(
        &self,
        name: &str,
        holder: &str,
        time_to_live: Duration,
    ) -> Result<bool, JobsError> {
        let mut connection = self.commands.clone();
        let acquired: i64 = Script::new(ACQUIRE_LOCK_SCRIPT)
            .key(self.key(&format!("lock:{name}")))
            .arg(holder)
            .arg(time_to_live.as_millis().max(1) as u64)
            .invoke_async(&mut connection)
            .await?;
        Ok(acquired == 1)
    }
}

impl VersionedJobRecords for RedisBackend {
    async fn update_job<T: Send>(
        &self,
        job_id: JobId,
        mutate: impl FnMut(&mut Job) -> Result<(QueuePlacement, T), JobsError> + Send,
    ) -> Result<(Job, T), JobsError> {
        self.update_job_record(job_id, mutate).await
    }
}

/// `uptime_in_seconds` from the text of `INFO server`.
fn uptime_from_server_info(info: &str) -> Option<Duration> {
    info.lines()
        .find_map(|line| line.trim().strip_prefix("uptime_in_seconds:"))
        .and_then(|seconds| seconds.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uptime_is_read_from_info_server() {
        let info = "# Server\r\nredis_version:7.0.15\r\nprocess_id:812\r\nuptime_in_seconds:42\r\nuptime_in_days:0\r\n";
        assert_eq!(uptime_from_server_info(info), Some(Duration::from_secs(42)));
        assert_eq!(
            uptime_from_server_info("# Server\r\nredis_version:7\r\n"),
            None
        );
        assert_eq!(uptime_from_server_info("uptime_in_seconds:soon\r\n"), None);
    }
}
