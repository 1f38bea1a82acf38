//! Workers and the scheduler (the job store and queue are `streambot-store`).
//!
//! - [`worker`]: slots, one task per job, heartbeats, control, retries, graceful shutdown.
//! - [`delivery`]: the Uploading step (finished files to storage, `stored.json`).
//! - [`schedule_runner`]: starts the jobs of scheduled and recurring recordings when due.
//! - [`scheduler`]: retention, disk guard, lease reaper, orphan-ffmpeg watchdog
//!   ([`orphan_watchdog`]).

pub mod delivery;
pub mod orphan_watchdog;
pub mod schedule_runner;
pub mod scheduler;
pub mod worker;

pub use schedule_runner::{
    DEFAULT_SCHEDULE_POLL_INTERVAL, ScheduleRunnerConfig, run_schedule_pass, run_schedule_runner,
};
pub use scheduler::{SchedulerConfig, SchedulerPassReport, run_scheduler, run_scheduler_pass};
pub use worker::{
    DEFAULT_MAXIMUM_RECORDING_DURATION, NativeHlsEngine, RecordingEngine, WorkerConfig,
    disk_refuses_claims, effective_recording_options, job_directory, run_worker,
};
