//! Jobs, queue and workers.
//!
//! - [`backend`]: the `JobStore` and `Queue` traits and the record changes both backends share.
//! - [`sqlite`]: the embedded default (one SQLite file under `DATA_DIR`, in-process queue).
//! - [`redis_backend`]: the distributed backend (hashes, streams `priority` and `normal` with one
//!   consumer group, XAUTOCLAIM reaper, fencing epoch, pub/sub events).
//! - [`worker`]: slots, one task per job, heartbeats, control, retries, graceful shutdown.
//! - [`scheduler`]: retention, disk guard, lease reaper, orphan-ffmpeg watchdog
//!   ([`orphan_watchdog`]).

pub mod backend;
pub mod delivery;
pub mod error;
pub mod orphan_watchdog;
pub mod redis_backend;
pub mod scheduler;
pub mod sqlite;
pub mod worker;

pub use backend::{
    JobBackend, JobFilter, JobStore, Lease, MAXIMUM_FAILED_ATTEMPTS, Queue, QueuePlacement,
    RetryDecision, UNQUEUED_JOB_GRACE, retry_backoff, submit_job,
};
pub use error::JobsError;
pub use redis_backend::RedisBackend;
pub use scheduler::{SchedulerConfig, SchedulerPassReport, run_scheduler, run_scheduler_pass};
pub use sqlite::SqliteBackend;
pub use worker::{
    DEFAULT_MAXIMUM_RECORDING_DURATION, NativeHlsEngine, RecordingEngine, WorkerConfig,
    disk_refuses_claims, effective_recording_options, job_directory, run_worker,
};
