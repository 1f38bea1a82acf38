//! The job store and queue.
//!
//! - [`backend`]: the `JobStore` and `Queue` traits and the record changes both backends share.
//! - [`sqlite`]: the embedded default (one SQLite file under `DATA_DIR`, in-process queue).
//! - [`redis_backend`]: the distributed backend (hashes, streams `priority` and `normal` with one
//!   consumer group, XAUTOCLAIM reaper, fencing epoch, pub/sub events).
//!
//! - [`schedules`]: scheduled and recurring recordings (`ScheduleStore`, both backends).
//!
//! Depends on `streambot-core` only: the bot and the dashboard use the store without compiling
//! the recorder. The worker runtime and the scheduler are in `streambot-worker`.

pub mod backend;
pub mod error;
pub mod redis_backend;
pub mod schedules;
mod schedules_redis;
mod schedules_sqlite;
pub mod sqlite;
mod sqlite_claim_watch;

pub use backend::{
    DEFAULT_LEASE_DURATION, JobBackend, JobFilter, JobStateCounts, JobStore, Lease, LeaseRenewal,
    MAXIMUM_FAILED_ATTEMPTS, Queue, QueuePlacement, RetryDecision, UNQUEUED_JOB_GRACE,
    retry_backoff, submit_job,
};
pub use error::JobsError;
pub use redis_backend::RedisBackend;
pub use schedules::{ScheduleCanceller, ScheduleCreation, ScheduleStore, TakenSchedule};
pub use sqlite::SqliteBackend;
