//! The scheduler: retention, disk guard, lease reaper, orphan-ffmpeg watchdog. In Redis mode many
//! may run; only the holder of the `scheduler` lock (with expiry) acts in a pass.
//!
//! - Retention: the directory of a job that finished more than `FILE_RETENTION_HOURS` ago is
//!   deleted.
//! - Disk guard: at 80 % of `MAX_DISK_USAGE_GB` a warning event; at 95 % the oldest finished
//!   recordings are deleted until usage is under 90 %. A job that is not terminal is never touched.
//! - Lease reaper: requeues jobs whose worker's lease lapsed (workers reap too).
//! - Orphan-ffmpeg watchdog ([`crate::orphan_watchdog`]): an ffmpeg of our user writing into
//!   `recordings_directory/<JOB ID>` whose job no worker holds (queued, finished or unknown) gets
//!   SIGTERM, then SIGKILL after `orphan_grace`. It is local to the host, so it runs on every tick,
//!   with or without the lock.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use streambot_core::{DiskUsageLevel, Job, JobEvent, JobId};
use tokio_util::sync::CancellationToken;

use crate::backend::{JobBackend, JobFilter, chrono_duration};
use crate::error::JobsError;
use crate::orphan_watchdog::{OrphanProcess, run_orphan_watchdog};
use crate::worker::job_directory;

pub const DISK_WARNING_FRACTION: f64 = 0.80;
pub const DISK_EMERGENCY_FRACTION: f64 = 0.95;
/// Emergency cleanup deletes until usage is under this fraction.
pub const DISK_CLEANUP_TARGET_FRACTION: f64 = 0.90;

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub holder_id: String,
    pub recordings_directory: PathBuf,
    /// `FILE_RETENTION_HOURS`; `None` keeps recordings forever.
    pub retention: Option<Duration>,
    /// `MAX_DISK_USAGE_GB` in bytes; `None` disables the disk guard.
    pub maximum_disk_bytes: Option<u64>,
    pub interval: Duration,
    pub lock_time_to_live: Duration,
    /// How long an orphan ffmpeg has between SIGTERM and SIGKILL.
    pub orphan_grace: Duration,
}

impl SchedulerConfig {
    pub fn new(holder_id: &str, recordings_directory: PathBuf) -> Self {
        SchedulerConfig {
            holder_id: holder_id.to_string(),
            recordings_directory,
            retention: Some(Duration::from_secs(72 * 3600)),
            maximum_disk_bytes: None,
            interval: Duration::from_secs(30),
            lock_time_to_live: Duration::from_secs(90),
            orphan_grace: Duration::from_secs(5),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SchedulerPassReport {
    pub reaped: Vec<JobId>,
    pub deleted_for_retention: Vec<JobId>,
    pub deleted_for_disk: Vec<JobId>,
    pub used_bytes: u64,
    pub disk_level: Option<DiskUsageLevel>,
    /// Orphan ffmpeg processes that were signalled.
    pub orphans_killed: Vec<OrphanProcess>,
}

/// Runs a pass every `interval` while this instance holds the lock, until `shutdown`.
pub async fn run_scheduler<B: JobBackend>(
    backend: B,
    config: SchedulerConfig,
    shutdown: CancellationToken,
) -> Result<(), JobsError> {
    tracing::info!(holder = %config.holder_id, "scheduler started");
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let holds_lock = match backend
            .try_acquire_lock("scheduler", &config.holder_id, config.lock_time_to_live)
            .await
        {
            Ok(holds) => holds,
            Err(error) => {
                tracing::warn!(%error, "scheduler lock unavailable");
                false
            }
        };
        if !holds_lock {
            // The watchdog looks after this host's processes: every scheduler runs it.
            if let Err(error) = orphan_watchdog_pass(&backend, &config).await {
                tracing::warn!(%error, "orphan-ffmpeg watchdog failed");
            }
            continue;
        }
        match run_scheduler_pass(&backend, &config).await {
            Ok(report) => tracing::debug!(?report, "scheduler pass"),
            Err(error) => tracing::warn!(%error, "scheduler pass failed"),
        }
    }
    tracing::info!("scheduler stopped");
    Ok(())
}

/// One pass of every duty (the caller holds the lock).
pub async fn run_scheduler_pass<B: JobBackend>(
    backend: &B,
    config: &SchedulerConfig,
) -> Result<SchedulerPassReport, JobsError> {
    let mut report = SchedulerPassReport {
        reaped: backend.reap_expired_leases().await?,
        ..SchedulerPassReport::default()
    };
    match orphan_watchdog_pass(backend, config).await {
        Ok(killed) => report.orphans_killed = killed,
        Err(error) => tracing::warn!(%error, "orphan-ffmpeg watchdog failed"),
    }

    let finished = backend
        .list_jobs(JobFilter {
            states: vec![
                streambot_core::JobState::Completed,
                streambot_core::JobState::Failed,
                streambot_core::JobState::Cancelled,
            ],
            ..JobFilter::default()
        })
        .await?;
    let mut finished_on_disk: Vec<Job> = finished
        .into_iter()
        .filter(|job| job_directory(&config.recordings_directory, job.id).exists())
        .collect();

    if let Some(retention) = config.retention {
        let cutoff = Utc::now() - chrono_duration(retention);
        let mut kept = Vec::new();
        for job in finished_on_disk {
            if job
                .finished_at
                .is_some_and(|finished_at| finished_at <= cutoff)
            {
                delete_recording(backend, config, job.id, "retention period over").await?;
                report.deleted_for_retention.push(job.id);
            } else {
                kept.push(job);
            }
        }
        finished_on_disk = kept;
    }

    let directory = config.recordings_directory.clone();
    report.used_bytes = directory_size_blocking(directory).await;
    if let Some(limit) = config.maximum_disk_bytes.filter(|limit| *limit > 0) {
        let fraction = report.used_bytes as f64 / limit as f64;
        if fraction >= DISK_EMERGENCY_FRACTION {
            report.disk_level = Some(DiskUsageLevel::Emergency);
        } else if fraction >= DISK_WARNING_FRACTION {
            report.disk_level = Some(DiskUsageLevel::Warning);
        }
        if let Some(level) = report.disk_level {
            tracing::warn!(used = report.used_bytes, limit, ?level, "disk usage high");
            backend
                .publish_event(JobEvent::DiskUsage {
                    level,
                    used_bytes: report.used_bytes,
                    limit_bytes: limit,
                    at: Utc::now(),
                })
                .await?;
        }
        if report.disk_level == Some(DiskUsageLevel::Emergency) {
            finished_on_disk.sort_by_key(|job| job.finished_at);
            let target = (limit as f64 * DISK_CLEANUP_TARGET_FRACTION) as u64;
            for job in finished_on_disk {
                if report.used_bytes < target {
                    break;
                }
                let path = job_directory(&config.recordings_directory, job.id);
                let size = directory_size_blocking(path).await;
                delete_recording(backend, config, job.id, "disk almost full").await?;
                report.used_bytes = report.used_bytes.saturating_sub(size);
                report.deleted_for_disk.push(job.id);
            }
        }
    }
    Ok(report)
}

async fn delete_recording<B: JobBackend>(
    backend: &B,
    config: &SchedulerConfig,
    job_id: JobId,
    reason: &str,
) -> Result<(), JobsError> {
    let path = job_directory(&config.recordings_directory, job_id);
    if let Err(source) = tokio::fs::remove_dir_all(&path).await
        && source.kind() != std::io::ErrorKind::NotFound
    {
        return Err(JobsError::Io {
            path: path.display().to_string(),
            source,
        });
    }
    tracing::info!(%job_id, reason, "recording deleted");
    backend
        .publish_event(JobEvent::RecordingDeleted {
            job_id,
            reason: reason.to_string(),
            at: Utc::now(),
        })
        .await
}

async fn orphan_watchdog_pass<B: JobBackend>(
    backend: &B,
    config: &SchedulerConfig,
) -> Result<Vec<OrphanProcess>, JobsError> {
    run_orphan_watchdog(backend, &config.recordings_directory, config.orphan_grace).await
}

async fn directory_size_blocking(path: PathBuf) -> u64 {
    tokio::task::spawn_blocking(move || directory_size(&path))
        .await
        .unwrap_or(0)
}

/// Bytes of the regular files under `path` (symbolic links are not followed).
pub fn directory_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    let mut total = 0;
    for entry in entries.flatten() {
        let Ok(metadata) = entry.metadata() else {
            continue;
        };
        if metadata.is_dir() {
            total += directory_size(&entry.path());
        } else if metadata.is_file() {
            total += metadata.len();
        }
    }
    total
}
