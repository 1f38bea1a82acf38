//! Schedules in SQLite: the `schedules` table (migration 0010). Taking an occurrence is one
//! transaction: the schedule's compare-and-set on `version` and the job's insert with its queue
//! place commit together or not at all.

use chrono::{DateTime, Utc};
use sqlx::Row;
use streambot_core::{JobEvent, NewSchedule, Schedule, ScheduleId};

use crate::error::JobsError;
use crate::schedules::{
    DUE_BATCH, ScheduleCanceller, ScheduleCreation, ScheduleRecords, ScheduleStore, TakenSchedule,
    cancel_schedule_records, decode_schedule, encode_schedule, next_start_milliseconds,
    take_due_records,
};
use crate::sqlite::{SqliteBackend, encode_record, milliseconds};

impl ScheduleRecords for SqliteBackend {
    type Version = i64;

    async fn load_schedule(
        &self,
        schedule_id: ScheduleId,
    ) -> Result<Option<(Schedule, i64)>, JobsError> {
        let query = "SELECT version, record_json FROM schedules WHERE id = ?1";
        match self.load_record_text(query, schedule_id.as_str()).await? {
            None => Ok(None),
            Some((text, version)) => Ok(Some((decode_schedule(&text)?, version))),
        }
    }

    async fn apply_schedule_decision(
        &self,
        before_version: &i64,
        advanced: &Schedule,
        job: Option<&streambot_core::Job>,
    ) -> Result<bool, JobsError> {
        let mut transaction = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE schedules SET version = version + 1, next_start_at_ms = ?3, record_json = ?4
             WHERE id = ?1 AND version = ?2",
        )
        .bind(advanced.id.as_str())
        .bind(before_version)
        .bind(next_start_milliseconds(advanced))
        .bind(encode_schedule(advanced)?)
        .execute(&mut *transaction)
        .await?;
        if updated.rows_affected() != 1 {
            transaction.rollback().await?;
            return Ok(false);
        }
        if let Some(job) = job {
            let inserted = sqlx::query(
                "INSERT OR IGNORE INTO jobs (id, owner_user_id, state, version, created_at_ms,
                     record_json, queue_name, available_at_ms, enqueue_sequence)
                 VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6, ?4,
                     (SELECT COALESCE(MAX(enqueue_sequence), 0) + 1 FROM jobs))",
            )
            .bind(job.id.as_str())
            .bind(job.owner.user_id)
            .bind(job.state.as_str())
            .bind(milliseconds(job.created_at))
            .bind(encode_record(job)?)
            .bind(job.priority.queue_name())
            .execute(&mut *transaction)
            .await?;
            if inserted.rows_affected() != 1 {
                // A job id collision (one in four billion): leave it for the next round.
                transaction.rollback().await?;
                return Ok(false);
            }
        }
        transaction.commit().await?;
        Ok(true)
    }

    async fn announce_job(&self, job: &streambot_core::Job) {
        let _ = self.events.send(JobEvent::Created {
            job: Box::new(job.clone()),
        });
        self.wake_claimers_after_a_change();
    }
}

impl SqliteBackend {
    async fn schedules_where(
        &self,
        user_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Schedule>, JobsError> {
        // A user's active schedules, or (no user) every schedule.
        let rows = sqlx::query(
            "SELECT record_json FROM schedules
             WHERE ?1 IS NULL OR (owner_user_id = ?1 AND next_start_at_ms IS NOT NULL)
             ORDER BY created_at_ms, id LIMIT ?2",
        )
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| decode_schedule(&row.try_get::<String, _>("record_json")?))
            .collect()
    }
}

impl ScheduleStore for SqliteBackend {
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
            let limit = maximum_active.map_or(i64::MAX, |limit| limit as i64);
            // One statement: the count of active schedules and the insert cannot interleave.
            let inserted = sqlx::query(
                "INSERT OR IGNORE INTO schedules
                     (id, owner_user_id, next_start_at_ms, version, created_at_ms, record_json)
                 SELECT ?1, ?2, ?3, 1, ?4, ?5
                 WHERE (SELECT COUNT(*) FROM schedules
                        WHERE owner_user_id = ?2 AND next_start_at_ms IS NOT NULL) < ?6",
            )
            .bind(schedule.id.as_str())
            .bind(schedule.owner.user_id)
            .bind(next_start_milliseconds(&schedule))
            .bind(milliseconds(now))
            .bind(encode_schedule(&schedule)?)
            .bind(limit)
            .execute(&self.pool)
            .await?;
            if inserted.rows_affected() == 1 {
                return Ok(ScheduleCreation::Created(Box::new(schedule)));
            }
            if let Some(limit) = maximum_active
                && self
                    .list_schedules_for_user(schedule.owner.user_id)
                    .await?
                    .len()
                    >= limit
            {
                return Ok(ScheduleCreation::TooMany { limit });
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
        self.schedules_where(Some(user_id), 10_000).await
    }

    async fn list_schedules(&self, limit: usize) -> Result<Vec<Schedule>, JobsError> {
        self.schedules_where(None, limit as i64).await
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
        let rows = sqlx::query(
            "SELECT id FROM schedules WHERE next_start_at_ms IS NOT NULL AND next_start_at_ms <= ?1
             ORDER BY next_start_at_ms LIMIT ?2",
        )
        .bind(milliseconds(now))
        .bind(DUE_BATCH)
        .fetch_all(&self.pool)
        .await?;
        let identifiers = rows
            .iter()
            .map(|row| row.try_get::<String, _>("id"))
            .collect::<Result<Vec<_>, _>>()?;
        take_due_records(self, identifiers, now).await
    }
}
