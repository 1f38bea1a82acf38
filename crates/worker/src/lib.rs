//! Workers and the scheduler (the job store and queue are `streambot-store`).
//!
//! - [`worker`]: slots, one task per job, one heartbeat for all jobs, control, retries, graceful shutdown.
//! - [`delivery`]: the Uploading step (finished files to storage, `stored.json`).
//! - [`scheduler`]: retention, disk guard, lease reaper, orphan-ffmpeg watchdog
//!   ([`orphan_watchdog`]).
//! - [`slots`]: how many recordings a worker runs (memory, open files) and the open-file guard.

pub mod delivery;
pub mod orphan_watchdog;
pub mod scheduler;
pub mod slots;
pub mod worker;

pub use scheduler::{SchedulerConfig, SchedulerPassReport, run_scheduler, run_scheduler_pass};
pub use worker::{
    DEFAULT_MAXIMUM_RECORDING_DURATION, NativeHlsEngine, RecordingEngine, WorkerConfig,
    disk_refuses_claims, effective_recording_options, job_directory, run_worker,
};
