//! The scheduler: retention, disk guard, lease reaper, orphan-ffmpeg watchdog. In Redis mode many
//! may run; only the holder of the `scheduler` lock (with expiry) acts in a pass.
//!
//! - Retention: the working directory of a job that finished more than `FILE_RETENTION_HOURS`
//!   ago is deleted, and so are the finished files storage filed under `user_<id>/<job_id>/`
//!   once they are that old (their remote copies too with `FILE_RETENTION_DELETE_REMOTE`), by
//!   storage's `retention_sweep`.
//! - Disk guard: at 80 % of `MAX_DISK_USAGE_GB` a warning event; at 95 % the oldest finished
//!   recordings (working directories and users' finished files alike, oldest first) are deleted
//!   until usage is under 90 %. A job that is not terminal is never touched. The admins are told
//!   (`SchedulerConfig::admin_notifier`, [`disk_notice`]): once when usage passes 80 % (again only
//!   after it went under), and what was deleted each time the cleanup deletes something.
//! - Lease reaper: requeues jobs whose worker's lease lapsed (workers reap too).
//! - Orphan-ffmpeg watchdog ([`crate::orphan_watchdog`]): an ffmpeg of our user writing into
//!   `recordings_directory/<JOB ID>` whose job no worker holds (queued, finished or unknown) gets
//!   SIGTERM, then SIGKILL after `orphan_grace`. It is local to the host, so it runs on every tick,
//!   with or without the lock.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::Utc;
use streambot_core::{AdminNotice, AdminNotifier, DiskUsageLevel, JobEvent, JobId, JobState};
use streambot_storage::retention::{Deletion, StoredCopy, scan_candidates};
use tokio_util::sync::CancellationToken;

use crate::orphan_watchdog::{OrphanProcess, run_orphan_watchdog};
use crate::worker::job_directory;
use streambot_store::JobsError;
use streambot_store::backend::{JobBackend, JobFilter, chrono_duration};

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
    /// Where finished files were filed (`user_<id>/<job_id>/` under its root) and the backend
    /// their remote copies are deleted through; `None`: the files under `recordings_directory`.
    pub storage: Option<Arc<streambot_storage::Storage>>,
    /// `FILE_RETENTION_DELETE_REMOTE`: retention deletes the remote copies too.
    pub retention_deletes_remote_copies: bool,
    /// Who tells the admins about the disk (the bot's sender when a token is set).
    pub admin_notifier: Option<AdminNotifierHandle>,
}

/// The bot's notifier, as the scheduler holds it.
#[derive(Clone)]
pub struct AdminNotifierHandle(pub Arc<dyn AdminNotifier>);

impl std::fmt::Debug for AdminNotifierHandle {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("AdminNotifier")
    }
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
            storage: None,
            retention_deletes_remote_copies: false,
            admin_notifier: None,
        }
    }

    /// The root of `user_<id>/<job_id>/`: storage's, or the recordings directory.
    fn user_files_root(&self) -> PathBuf {
        match &self.storage {
            Some(storage) => storage.local.root().to_path_buf(),
            None => self.recordings_directory.clone(),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SchedulerPassReport {
    pub reaped: Vec<JobId>,
    /// Jobs whose working directory retention deleted.
    pub deleted_for_retention: Vec<JobId>,
    /// Finished files (local and remote copies) retention deleted.
    pub files_deleted_for_retention: Vec<Deletion>,
    pub deleted_for_disk: Vec<JobId>,
    /// Usage after the pass (after any cleanup).
    pub used_bytes: u64,
    /// Usage measured before the emergency cleanup.
    pub used_bytes_before_cleanup: u64,
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
    // The disk level the admins were last told about (a restart tells them again once).
    let mut admins_told: Option<DiskUsageLevel> = None;
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
            Ok(report) => {
                tracing::debug!(?report, "scheduler pass");
                tell_admins(&config, &report, admins_told).await;
                admins_told = report.disk_level;
            }
            Err(error) => tracing::warn!(%error, "scheduler pass failed"),
        }
    }
    tracing::info!("scheduler stopped");
    Ok(())
}

/// What the admins are told after a pass (pure): usage passed 80 % (once, until it goes under
/// again: `already_told` is the level of the previous pass), or the emergency cleanup ran: what
/// it deleted each time it deleted something, and once when there was nothing to delete.
pub fn disk_notice(
    report: &SchedulerPassReport,
    limit_bytes: u64,
    already_told: Option<DiskUsageLevel>,
) -> Option<AdminNotice> {
    match report.disk_level? {
        DiskUsageLevel::Warning if already_told.is_none() => Some(AdminNotice::DiskFilling {
            used_bytes: report.used_bytes,
            limit_bytes,
        }),
        DiskUsageLevel::Warning => None,
        DiskUsageLevel::Emergency
            if !report.deleted_for_disk.is_empty()
                || already_told != Some(DiskUsageLevel::Emergency) =>
        {
            Some(AdminNotice::DiskFreed {
                used_bytes_before: report.used_bytes_before_cleanup,
                used_bytes_after: report.used_bytes,
                limit_bytes,
                deleted_jobs: report.deleted_for_disk.clone(),
            })
        }
        DiskUsageLevel::Emergency => None,
    }
}

async fn tell_admins(
    config: &SchedulerConfig,
    report: &SchedulerPassReport,
    already_told: Option<DiskUsageLevel>,
) {
    let (Some(notifier), Some(limit)) = (&config.admin_notifier, config.maximum_disk_bytes) else {
        return;
    };
    let Some(notice) = disk_notice(report, limit, already_told) else {
        return;
    };
    if let Err(error) = notifier.0.notify_admins(&notice).await {
        tracing::warn!(%error, "could not tell the admins about the disk");
    }
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

    // What the pass reads is bounded by what is live and what is on this disk, not by every job
    // the store has ever held (100,000 finished jobs cost nothing here): the live jobs through
    // the store's live index, then each job with a directory or finished files here, by id.
    let live_job_ids: HashSet<JobId> = backend
        .list_jobs(JobFilter {
            states: JobState::ALL
                .into_iter()
                .filter(|state| !state.is_terminal())
                .collect(),
            ..JobFilter::default()
        })
        .await?
        .into_iter()
        .map(|job| job.id)
        .collect();
    let working_directories = job_ids_with_a_working_directory(&config.recordings_directory).await;
    let user_files_root = config.user_files_root();
    let with_user_files: BTreeSet<JobId> =
        tokio::task::spawn_blocking(move || scan_candidates(&user_files_root))
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|file| file.job_id)
            .collect();
    let mut finished_at_by_job: HashMap<JobId, SystemTime> = HashMap::new();
    let mut finished_on_disk: Vec<(JobId, Option<SystemTime>)> = Vec::new();
    for job_id in working_directories.union(&with_user_files) {
        if live_job_ids.contains(job_id) {
            continue;
        }
        // A job the store does not know (deleted, another store's) is left alone, as before.
        let Some(job) = backend.get_job(*job_id).await? else {
            continue;
        };
        if !job.state.is_terminal() {
            continue;
        }
        let finished_at = job.finished_at.map(SystemTime::from);
        if let Some(finished_at) = finished_at {
            finished_at_by_job.insert(job.id, finished_at);
        }
        if working_directories.contains(job_id) {
            finished_on_disk.push((job.id, finished_at));
        }
    }

    if let Some(retention) = config.retention {
        let cutoff = SystemTime::from(Utc::now() - chrono_duration(retention));
        let mut kept = Vec::new();
        for (job_id, finished_at) in finished_on_disk {
            let expired = finished_at.is_some_and(|finished_at| finished_at <= cutoff);
            if expired {
                delete_recording(backend, config, job_id, "retention period over").await?;
                report.deleted_for_retention.push(job_id);
            } else {
                kept.push((job_id, finished_at));
            }
        }
        finished_on_disk = kept;
        report.files_deleted_for_retention =
            sweep_user_files(config, retention, &live_job_ids).await;
        let mut announced = HashSet::new();
        for deletion in &report.files_deleted_for_retention {
            if announced.insert(deletion.job_id) {
                announce_deletion(backend, deletion.job_id, "retention period over").await?;
            }
        }
    }

    let directory = config.recordings_directory.clone();
    report.used_bytes = directory_size_blocking(directory).await;
    let user_files_root = config.user_files_root();
    if user_files_root != config.recordings_directory
        && !user_files_root.starts_with(&config.recordings_directory)
    {
        report.used_bytes += directory_size_blocking(user_files_root.clone()).await;
    }
    report.used_bytes_before_cleanup = report.used_bytes;
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
            let target = (limit as f64 * DISK_CLEANUP_TARGET_FRACTION) as u64;
            let candidates = emergency_candidates(
                config,
                &finished_on_disk,
                &live_job_ids,
                &finished_at_by_job,
            )
            .await;
            for candidate in candidates {
                if report.used_bytes < target {
                    break;
                }
                let mut freed = 0;
                for path in &candidate.directories {
                    freed += directory_size_blocking(path.clone()).await;
                    remove_directory(path).await?;
                }
                tracing::info!(job_id = %candidate.job_id, freed_bytes = freed, "disk almost full: recording deleted");
                announce_deletion(backend, candidate.job_id, "disk almost full").await?;
                report.used_bytes = report.used_bytes.saturating_sub(freed);
                report.deleted_for_disk.push(candidate.job_id);
            }
        }
    }
    Ok(report)
}

/// Storage's retention over `user_<id>/<job_id>/` (never a live job's files).
async fn sweep_user_files(
    config: &SchedulerConfig,
    retention: Duration,
    live_job_ids: &HashSet<JobId>,
) -> Vec<Deletion> {
    let now = SystemTime::now();
    match &config.storage {
        Some(storage) => {
            storage
                .retention_sweep(
                    retention,
                    now,
                    live_job_ids,
                    config.retention_deletes_remote_copies,
                )
                .await
        }
        None => {
            let root = config.recordings_directory.clone();
            let live = live_job_ids.clone();
            tokio::task::spawn_blocking(move || {
                streambot_storage::retention_sweep(&root, retention, now, &live)
            })
            .await
            .unwrap_or_default()
        }
    }
}

/// What the disk guard may delete for one finished job: its working directory and the directory
/// of its finished files, with the time it finished (the newest file when the store has none).
#[derive(Debug)]
struct EmergencyCandidate {
    job_id: JobId,
    finished_at: SystemTime,
    directories: Vec<PathBuf>,
}

/// Every finished job's directories on disk, oldest first. A job in `live_job_ids` is never a
/// candidate; files of a job the store no longer knows are (by their newest file's time).
async fn emergency_candidates(
    config: &SchedulerConfig,
    finished_on_disk: &[(JobId, Option<SystemTime>)],
    live_job_ids: &HashSet<JobId>,
    finished_at_by_job: &HashMap<JobId, SystemTime>,
) -> Vec<EmergencyCandidate> {
    let mut by_job: BTreeMap<JobId, EmergencyCandidate> = BTreeMap::new();
    for (job_id, finished_at) in finished_on_disk {
        by_job.insert(
            *job_id,
            EmergencyCandidate {
                job_id: *job_id,
                finished_at: finished_at.unwrap_or(SystemTime::UNIX_EPOCH),
                directories: vec![job_directory(&config.recordings_directory, *job_id)],
            },
        );
    }
    let root = config.user_files_root();
    let local_files = tokio::task::spawn_blocking(move || scan_candidates(&root))
        .await
        .unwrap_or_default();
    for file in local_files {
        if live_job_ids.contains(&file.job_id) {
            continue;
        }
        let StoredCopy::Local { path } = &file.copy else {
            continue;
        };
        let Some(directory) = path.parent().map(Path::to_path_buf) else {
            continue;
        };
        let recorded_finish = finished_at_by_job.get(&file.job_id).copied();
        let entry = by_job
            .entry(file.job_id)
            .or_insert_with(|| EmergencyCandidate {
                job_id: file.job_id,
                finished_at: recorded_finish.unwrap_or(file.stored_at),
                directories: Vec::new(),
            });
        if recorded_finish.is_none() {
            entry.finished_at = entry.finished_at.max(file.stored_at);
        }
        if !entry.directories.contains(&directory) {
            entry.directories.push(directory);
        }
    }
    let mut candidates: Vec<EmergencyCandidate> = by_job.into_values().collect();
    candidates.sort_by_key(|candidate| candidate.finished_at);
    candidates
}

/// The jobs with a working directory (`recordings_directory/<JOB ID>`) on this disk.
async fn job_ids_with_a_working_directory(recordings_directory: &Path) -> BTreeSet<JobId> {
    let directory = recordings_directory.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let Ok(entries) = std::fs::read_dir(&directory) else {
            return BTreeSet::new();
        };
        entries
            .filter_map(Result::ok)
            .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
            .filter_map(|entry| {
                let name = entry.file_name();
                let name = name.to_str()?;
                // Only the name `job_directory` gives (not a case variant of it).
                name.parse::<JobId>()
                    .ok()
                    .filter(|job_id| job_id.to_string() == name)
            })
            .collect()
    })
    .await
    .unwrap_or_default()
}

async fn remove_directory(path: &Path) -> Result<(), JobsError> {
    match tokio::fs::remove_dir_all(path).await {
        Ok(()) => Ok(()),
        Err(source) if source.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(JobsError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

async fn delete_recording<B: JobBackend>(
    backend: &B,
    config: &SchedulerConfig,
    job_id: JobId,
    reason: &str,
) -> Result<(), JobsError> {
    remove_directory(&job_directory(&config.recordings_directory, job_id)).await?;
    tracing::info!(%job_id, reason, "recording deleted");
    announce_deletion(backend, job_id, reason).await
}

/// Tells the bot and the dashboard that a recording's files are gone, and why.
async fn announce_deletion<B: JobBackend>(
    backend: &B,
    job_id: JobId,
    reason: &str,
) -> Result<(), JobsError> {
    // Kept in the job record ("Send again" says the files are gone), published as
    // `RecordingDeleted` by the store.
    match backend
        .record_recording_deleted(job_id, reason.to_string())
        .await
    {
        Ok(_) => Ok(()),
        Err(JobsError::JobNotFound { .. }) => {
            backend
                .publish_event(JobEvent::RecordingDeleted {
                    job_id,
                    reason: reason.to_string(),
                    at: Utc::now(),
                })
                .await
        }
        Err(error) => Err(error),
    }
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
