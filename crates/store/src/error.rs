//! The one error enum of the jobs boundary.

use streambot_core::{JobId, JobState, JobTransitionError};

#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    #[error("no job {job_id}")]
    JobNotFound { job_id: JobId },
    #[error(transparent)]
    InvalidTransition(#[from] JobTransitionError),
    #[error("job {job_id} is {actual}, not {expected}")]
    StateConflict {
        job_id: JobId,
        expected: JobState,
        actual: JobState,
    },
    #[error(
        "job {job_id}: this worker's lease (epoch {held_epoch}) was taken over (epoch {current_epoch})"
    )]
    LeaseLost {
        job_id: JobId,
        held_epoch: u64,
        current_epoch: u64,
    },
    #[error("job {job_id} is {state}: {action} does not apply")]
    NotApplicable {
        job_id: JobId,
        state: JobState,
        action: &'static str,
    },
    #[error("job {job_id} kept changing under us; gave up after {attempts} attempts")]
    TooMuchContention { job_id: JobId, attempts: u32 },
    #[error("the SQLite job store failed: {0}")]
    Sqlite(#[from] sqlx::Error),
    #[error("the SQLite job store could not be migrated: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("Redis failed: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("a stored job record is not valid: {0}")]
    CorruptRecord(String),
    #[error("{message}")]
    Setup { message: String },
    #[error("could not create {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl JobsError {
    /// Whether trying again later may succeed (a lost connection, a busy database).
    pub fn is_retryable(&self) -> bool {
        match self {
            JobsError::Sqlite(error) => matches!(
                error,
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Database(_)
            ),
            JobsError::Redis(error) => {
                error.is_io_error()
                    || error.is_timeout()
                    || error.is_connection_dropped()
                    || error.is_connection_refusal()
                    || error.is_unrecoverable_error()
            }
            JobsError::TooMuchContention { .. } => true,
            JobsError::Io { .. } => true,
            JobsError::Setup { .. } => false,
            JobsError::JobNotFound { .. }
            | JobsError::InvalidTransition(_)
            | JobsError::StateConflict { .. }
            | JobsError::LeaseLost { .. }
            | JobsError::NotApplicable { .. }
            | JobsError::Migration(_)
            | JobsError::CorruptRecord(_) => false,
        }
    }

    /// What a user (or an operator at the CLI) is told.
    pub fn user_message(&self) -> String {
        match self {
            JobsError::JobNotFound { job_id } => format!("There is no job {job_id}."),
            JobsError::InvalidTransition(error) => format!("That is not possible now: {error}."),
            JobsError::StateConflict { job_id, actual, .. } => {
                format!("Job {job_id} is {actual} now; try again.")
            }
            JobsError::LeaseLost { job_id, .. } => {
                format!("Job {job_id} moved to another worker.")
            }
            JobsError::NotApplicable {
                job_id,
                state,
                action,
            } => format!("Job {job_id} is {state}; it cannot {action}."),
            JobsError::TooMuchContention { .. }
            | JobsError::Sqlite(_)
            | JobsError::Redis(_)
            | JobsError::Io { .. } => {
                "The job store is not answering right now; try again in a minute.".to_string()
            }
            JobsError::Setup { message } => message.clone(),
            JobsError::Migration(_) | JobsError::CorruptRecord(_) => {
                "The job store is damaged; an operator has to look at it.".to_string()
            }
        }
    }
}
