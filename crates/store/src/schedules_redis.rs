//! Schedules in Redis. Keys under the backend's prefix:
//! - `schedule:{ID}`: a hash with `version` and `record` (the JSON of the schedule);
//! - `schedules`: every schedule id by creation time; `schedules:due`: active ones by next start;
//! - `user:{USER}:schedules`: a user's active schedule ids (the cap counts it).
//!
//! Taking an occurrence is one script: the schedule's compare-and-set on `version`, the job's
//! record, its indexes and its `XADD` to the queue.

use chrono::{DateTime, Utc};
use redis::Script;
use streambot_core::{Job, JobEvent, NewSchedule, Schedule, ScheduleId};

use crate::error::JobsError;
use crate::redis_backend::{RedisBackend, encode_record};
use crate::schedules::{
    DUE_BATCH, ScheduleCanceller, ScheduleCreation, ScheduleRecords, ScheduleStore, TakenSchedule,
    cancel_schedule_records, decode_schedule, encode_schedule, next_start_milliseconds,
    take_due_records,
};

/// KEYS: schedule, schedules, user's active set, due set. ARGV: record, created ms, id, next
/// start ms ('' for none), limit (-1: none). 1 created, 0 id taken, -2 over the limit.
const CREATE_SCHEDULE_SCRIPT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if tonumber(ARGV[5]) >= 0 and redis.call('SCARD', KEYS[3]) >= tonumber(ARGV[5]) then return -2 end
redis.call('HSET', KEYS[1], 'version', '1', 'record', ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
if ARGV[4] ~= '' then
  redis.call('SADD', KEYS[3], ARGV[3])
  redis.call('ZADD', KEYS[4], ARGV[4], ARGV[3])
end
return 1
"#;

/// KEYS: schedule, due set, user's active set, job, jobs, user's jobs, stream. ARGV: expected
/// version, new record, next start ms ('' for none), schedule id, job record ('' for none), job
/// state, job created ms, job id. 1 applied, 0 the schedule changed, -1 the job id is taken.
const APPLY_SCHEDULE_SCRIPT: &str = r#"
if redis.call('HGET', KEYS[1], 'version') ~= ARGV[1] then return 0 end
if ARGV[5] ~= '' and redis.call('EXISTS', KEYS[4]) == 1 then return -1 end
redis.call('HSET', KEYS[1], 'version', tostring(tonumber(ARGV[1]) + 1), 'record', ARGV[2])
if ARGV[3] == '' then
  redis.call('ZREM', KEYS[2], ARGV[4])
  redis.call('SREM', KEYS[3], ARGV[4])
else
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
end
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[4], 'version', '1', 'record', ARGV[5], 'state', ARGV[6])
  redis.call('ZADD', KEYS[5], ARGV[7], ARGV[8])
  redis.call('ZADD', KEYS[6], ARGV[7], ARGV[8])
  redis.call('XADD', KEYS[7], '*', 'job', ARGV[8])
end
return 1
"#;

impl RedisBackend {
    fn schedule_key(&self, schedule_id: ScheduleId) -> String {
        self.key(&format!("schedule:{schedule_id}"))
    }

    fn user_schedules_key(&self, user_id: i64) -> String {
        self.key(&format!("user:{user_id}:schedules"))
    }

    async fn load_schedule_record(
        &self,
        schedule_id: ScheduleId,
    ) -> Result<Option<(Schedule, String)>, JobsError> {
        let mut connection = self.commands.clone();
        let (version, record): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(self.schedule_key(schedule_id))
            .arg("version")
            .arg("record")
            .query_async(&mut connection)
            .await?;
        match (version, record) {
            (Some(version), Some(record)) => Ok(Some((decode_schedule(&record)?, version))),
            _ => Ok(None),
        }
    }

    async fn load_schedules(&self, identifiers: Vec<String>) -> Result<Vec<Schedule>, JobsError> {
        let mut schedules = Vec::new();
        for text in identifiers {
            let Ok(schedule_id) = text.parse::<ScheduleId>() else {
                continue;
            };
            if let Some((schedule, _)) = self.load_schedule_record(schedule_id).await? {
                schedules.push(schedule);
            }
        }
        Ok(schedules)
    }
}

impl ScheduleRecords for RedisBackend {
    type Version = String;

    async fn load_schedule(
        &self,
        schedule_id: ScheduleId,
    ) -> Result<Option<(Schedule, String)>, JobsError> {
        self.load_schedule_record(schedule_id).await
    }

    async fn apply_schedule_decision(
        &self,
        before_version: &String,
        advanced: &Schedule,
        job: Option<&Job>,
    ) -> Result<bool, JobsError> {
        let mut connection = self.commands.clone();
        let job_key = job.map_or_else(|| self.key("job:none"), |job| self.job_key(job.id));
        let stream_key = self.stream_key(job.map_or(advanced.priority, |job| job.priority));
        let job_record = job.map(encode_record).transpose()?.unwrap_or_default();
        let applied: i64 = Script::new(APPLY_SCHEDULE_SCRIPT)
            .key(self.schedule_key(advanced.id))
            .key(self.key("schedules:due"))
            .key(self.user_schedules_key(advanced.owner.user_id))
            .key(job_key)
            .key(self.key("jobs"))
            .key(self.key(&format!("user:{}:jobs", advanced.owner.user_id)))
            .key(stream_key)
            .arg(before_version)
            .arg(encode_schedule(advanced)?)
            .arg(
                next_start_milliseconds(advanced)
                    .map(|at| at.to_string())
                    .unwrap_or_default(),
            )
            .arg(advanced.id.as_str())
            .arg(job_record)
            .arg(job.map(|job| job.state.as_str()).unwrap_or_default())
            .arg(
                job.map(|job| job.created_at.timestamp_millis())
                    .unwrap_or_default(),
            )
            .arg(
                job.map(|job| job.id.as_str().to_string())
                    .unwrap_or_default(),
            )
            .invoke_async(&mut connection)
            .await?;
        // 1 applied, 0 the schedule changed, -1 the job id is taken.
        Ok(applied == 1)
    }

    async fn announce_job(&self, job: &Job) {
        self.publish(&JobEvent::Created {
            job: Box::new(job.clone()),
        })
        .await;
    }
}

impl ScheduleStore for RedisBackend {
    async fn create_schedule(
        &self,
        request: NewSchedule,
        maximum_active: Option<usize>,
    ) -> Result<ScheduleCreation, JobsError> {
        let now = Utc::now();
        loop {
            let schedule = Schedule::new(crate::backend::random_job_id(), request.clone(), now)
                .map_err(|error| JobsError::Setup {
                    message: error.to_string(),
                })?;
            let mut connection = self.commands.clone();
            let created: i64 = Script::new(CREATE_SCHEDULE_SCRIPT)
                .key(self.schedule_key(schedule.id))
                .key(self.key("schedules"))
                .key(self.user_schedules_key(schedule.owner.user_id))
                .key(self.key("schedules:due"))
                .arg(encode_schedule(&schedule)?)
                .arg(now.timestamp_millis())
                .arg(schedule.id.as_str())
                .arg(
                    next_start_milliseconds(&schedule)
                        .map(|at| at.to_string())
                        .unwrap_or_default(),
                )
                .arg(maximum_active.map_or(-1, |limit| limit as i64))
                .invoke_async(&mut connection)
                .await?;
            match created {
                1 => return Ok(ScheduleCreation::Created(Box::new(schedule))),
                -2 => {
                    return Ok(ScheduleCreation::TooMany {
                        limit: maximum_active.unwrap_or_default(),
                    });
                }
                _ => continue,
            }
        }
    }

    async fn get_schedule(&self, schedule_id: ScheduleId) -> Result<Option<Schedule>, JobsError> {
        Ok(self
            .load_schedule(schedule_id)
            .await?
            .map(|(schedule, _)| schedule))
    }

    async fn list_schedules_for_user(&self, user_id: i64) -> Result<Vec<Schedule>, JobsError> {
        let mut connection = self.commands.clone();
        let identifiers: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.user_schedules_key(user_id))
            .query_async(&mut connection)
            .await?;
        let mut schedules: Vec<Schedule> = self
            .load_schedules(identifiers)
            .await?
            .into_iter()
            .filter(Schedule::is_active)
            .collect();
        schedules.sort_by_key(|schedule| (schedule.created_at, schedule.id.to_string()));
        Ok(schedules)
    }

    async fn list_schedules(&self, limit: usize) -> Result<Vec<Schedule>, JobsError> {
        let mut connection = self.commands.clone();
        let identifiers: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.key("schedules"))
            .arg(0)
            .arg(limit.saturating_sub(1) as i64)
            .query_async(&mut connection)
            .await?;
        self.load_schedules(identifiers).await
    }

    async fn cancel_schedule(
        &self,
        schedule_id: ScheduleId,
        by: ScheduleCanceller,
    ) -> Result<Option<Schedule>, JobsError> {
        cancel_schedule_records(self, schedule_id, by).await
    }

    async fn take_due_schedules(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<TakenSchedule>, JobsError> {
        let mut connection = self.commands.clone();
        let identifiers: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.key("schedules:due"))
            .arg("-inf")
            .arg(now.timestamp_millis())
            .arg("LIMIT")
            .arg(0)
            .arg(DUE_BATCH)
            .query_async(&mut connection)
            .await?;
        take_due_records(self, identifiers, now).await
    }
}
