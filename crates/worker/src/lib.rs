//! Workers and the scheduler (the job store and queue are `streambot-store`).
//!
//! - [`worker`]: slots, one task per job, one heartbeat for all jobs, control, retries, graceful shutdown.
//! - [`delivery`]: the Uploading step (finished files to storage, `stored.json`).
//! - [`schedule_runner`]: starts the jobs of scheduled and recurring recordings when due.
//! - [`part_delivery`]: sending the finished parts to the owner through a `PartSender`, each
//!   outcome recorded in the job before the next part.
//! - [`scheduler`]: retention, disk guard, lease reaper, orphan-ffmpeg watchdog
//!   ([`orphan_watchdog`]).
//! - `clip_delivery`: clips of live jobs (`/clip`), made and sent by the worker holding the job.
//! - [`slots`]: how many recordings a worker runs (memory, open files) and the open-file guard.

mod clip_delivery;
pub mod delivery;
pub mod orphan_watchdog;
pub mod part_delivery;
pub mod schedule_runner;
pub mod scheduler;
pub mod slots;
pub mod worker;

pub use schedule_runner::{
    DEFAULT_SCHEDULE_POLL_INTERVAL, ScheduleRunnerConfig, run_schedule_pass, run_schedule_runner,
};

pub use part_delivery::PartSenderHandle;
pub use scheduler::{
    AdminNotifierHandle, SchedulerConfig, SchedulerPassReport, disk_notice, run_scheduler,
    run_scheduler_pass,
};
pub use streambot_core::delivery::{PartSendError, PartSender, SentPart};
pub use worker::{
    DEFAULT_MAXIMUM_RECORDING_DURATION, NativeHlsEngine, RecordingEngine, WorkerConfig,
    disk_refuses_claims, effective_recording_options, job_directory, run_worker,
};
