//! What the dashboard knows beyond one job: the store snapshot (jobs by state, queue depth,
//! per-worker load from the leases), the machine (CPU, memory, disk of the recordings directory),
//! counters fed from the store's events, and the hour of history behind the page's charts.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use streambot_core::{Job, JobEvent, JobId, JobState, RecordingProgress};
use streambot_store::{JobBackend, JobFilter, JobStateCounts, JobsError};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

/// One worker's share, from the leases it holds.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct WorkerLoad {
    pub worker_id: String,
    /// Jobs it holds a lease on.
    pub jobs: u64,
    /// Of those, jobs in `recording`.
    pub recording: u64,
    /// Seconds since its least recent lease renewal (its heartbeat), from the lease expiry.
    pub heartbeat_age_seconds: f64,
}

/// Counts from the store: jobs per state as the store counts them, and the workers' load from
/// the live jobs' leases (no read of the finished jobs, however many the store holds).
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct StoreSnapshot {
    /// Every state, zeros included.
    pub jobs_by_state: BTreeMap<String, u64>,
    pub total_jobs: u64,
    pub active_recordings: u64,
    /// Jobs waiting in the queues (`queued`).
    pub queue_depth: u64,
    pub workers: Vec<WorkerLoad>,
}

impl StoreSnapshot {
    /// `counts` from `JobStore::count_jobs_by_state`, `live_jobs` from a list of the live jobs
    /// (`JobFilter::live_jobs`): terminal jobs hold no lease that counts.
    pub fn from_counts(
        counts: &JobStateCounts,
        live_jobs: &[Job],
        now: DateTime<Utc>,
        lease_duration: Duration,
    ) -> StoreSnapshot {
        let jobs_by_state: BTreeMap<String, u64> = counts
            .by_state()
            .map(|(state, count)| (state.as_str().to_string(), count))
            .collect();
        let mut workers: BTreeMap<String, WorkerLoad> = BTreeMap::new();
        let lease_seconds = lease_duration.as_secs_f64();
        for job in live_jobs {
            if let Some(lease) = &job.lease
                && !job.state.is_terminal()
            {
                let load = workers
                    .entry(lease.worker_id.clone())
                    .or_insert_with(|| WorkerLoad {
                        worker_id: lease.worker_id.clone(),
                        ..WorkerLoad::default()
                    });
                load.jobs += 1;
                if job.state == JobState::Recording {
                    load.recording += 1;
                }
                let remaining_seconds = (lease.expires_at - now).num_milliseconds() as f64 / 1000.0;
                let age = (lease_seconds - remaining_seconds).max(0.0);
                load.heartbeat_age_seconds = load.heartbeat_age_seconds.max(age);
            }
        }
        StoreSnapshot {
            total_jobs: counts.total(),
            active_recordings: counts.count(JobState::Recording),
            queue_depth: counts.count(JobState::Queued),
            jobs_by_state,
            workers: workers.into_values().collect(),
        }
    }

    /// Counts the store and lists its live jobs; the snapshot and the live jobs.
    pub async fn read<B: JobBackend>(
        backend: &B,
        now: DateTime<Utc>,
        lease_duration: Duration,
    ) -> Result<(StoreSnapshot, Vec<Job>), JobsError> {
        let counts = backend.count_jobs_by_state().await?;
        let live_jobs = backend.list_jobs(JobFilter::live_jobs()).await?;
        let snapshot = StoreSnapshot::from_counts(&counts, &live_jobs, now, lease_duration);
        Ok((snapshot, live_jobs))
    }
}

/// The machine and the recordings directory.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct SystemSnapshot {
    pub cpu_usage_percent: f32,
    pub cpu_cores: usize,
    pub memory_total_bytes: u64,
    pub memory_used_bytes: u64,
    /// Resident memory of this process.
    pub process_resident_bytes: u64,
    /// Bytes of everything under the recordings directory.
    pub recordings_bytes: u64,
    /// The file system that holds the recordings directory.
    pub filesystem_total_bytes: u64,
    pub filesystem_free_bytes: u64,
}

struct SystemState {
    system: sysinfo::System,
    disks: sysinfo::Disks,
    refreshed_at: Option<Instant>,
    recordings_bytes: u64,
    last: SystemSnapshot,
}

/// Samples the machine at most once a second; walks the recordings directory at most every
/// ten seconds.
pub struct SystemSampler {
    recordings_directory: PathBuf,
    state: Mutex<SystemState>,
}

/// Bytes under `directory`, two levels deep (`<recordings>/<JOB>/<file>`), bounded in entries.
pub fn directory_bytes(directory: &Path) -> u64 {
    streambot_core::local_files::directory_size_bytes(directory, 2).unwrap_or_else(|error| {
        tracing::debug!(%error, "could not measure the recordings directory");
        0
    })
}

/// The nearest existing ancestor of `path`, made absolute.
fn existing_ancestor(path: &Path) -> PathBuf {
    let mut candidate = path.to_path_buf();
    for _ in 0..64 {
        if let Ok(canonical) = candidate.canonicalize() {
            return canonical;
        }
        if !candidate.pop() {
            break;
        }
    }
    // The working directory (getcwd, physical) when the path is relative and nothing exists yet.
    Path::new(".")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("/"))
}

impl SystemSampler {
    pub fn new(recordings_directory: PathBuf) -> SystemSampler {
        SystemSampler {
            recordings_directory,
            state: Mutex::new(SystemState {
                system: sysinfo::System::new(),
                disks: sysinfo::Disks::new(),
                refreshed_at: None,
                recordings_bytes: 0,
                last: SystemSnapshot::default(),
            }),
        }
    }

    /// A fresh enough snapshot. Blocking (file system, /proc): call from a blocking thread.
    pub fn snapshot(&self) -> SystemSnapshot {
        let Ok(mut state) = self.state.lock() else {
            return SystemSnapshot::default();
        };
        let now = Instant::now();
        let age = state.refreshed_at.map(|at| now.duration_since(at));
        if age.is_some_and(|age| age < Duration::from_secs(1)) {
            return state.last.clone();
        }
        if age.is_none_or(|age| age >= Duration::from_secs(10)) {
            state.recordings_bytes = directory_bytes(&self.recordings_directory);
            state.disks.refresh(true);
        }
        state.system.refresh_cpu_usage();
        state.system.refresh_memory();
        let process_resident_bytes = match sysinfo::get_current_pid() {
            Ok(pid) => {
                state
                    .system
                    .refresh_processes(sysinfo::ProcessesToUpdate::Some(&[pid]), true);
                state
                    .system
                    .process(pid)
                    .map(|process| process.memory())
                    .unwrap_or(0)
            }
            Err(_) => 0,
        };
        let location = existing_ancestor(&self.recordings_directory);
        if state.disks.list().is_empty() {
            state.disks.refresh(true);
        }
        let (filesystem_total_bytes, filesystem_free_bytes) = state
            .disks
            .list()
            .iter()
            .filter(|disk| location.starts_with(disk.mount_point()))
            .max_by_key(|disk| disk.mount_point().as_os_str().len())
            .map(|disk| (disk.total_space(), disk.available_space()))
            .unwrap_or((0, 0));
        let snapshot = SystemSnapshot {
            cpu_usage_percent: state.system.global_cpu_usage(),
            cpu_cores: state.system.cpus().len(),
            memory_total_bytes: state.system.total_memory(),
            memory_used_bytes: state.system.used_memory(),
            process_resident_bytes,
            recordings_bytes: state.recordings_bytes,
            filesystem_total_bytes,
            filesystem_free_bytes,
        };
        state.refreshed_at = Some(now);
        state.last = snapshot.clone();
        snapshot
    }
}

/// Counters fed by the store's events since this dashboard started.
#[derive(Default)]
pub struct EventCounters {
    pub segments_fetched: AtomicU64,
    pub segments_lost: AtomicU64,
    pub bytes_recorded: AtomicU64,
    pub gap_milliseconds: AtomicU64,
    pub uploads: AtomicU64,
    pub jobs_completed: AtomicU64,
    pub jobs_failed: AtomicU64,
    pub jobs_created: AtomicU64,
    pub events_missed: AtomicU64,
    last_progress: Mutex<HashMap<JobId, RecordingProgress>>,
}

impl EventCounters {
    /// Counts one event. Progress is cumulative per job, so the counters add the increase since
    /// the job's previous report (a report that went down, a new attempt, counts from zero).
    pub fn observe(&self, event: &JobEvent) {
        match event {
            JobEvent::Created { .. } => {
                self.jobs_created.fetch_add(1, Ordering::Relaxed);
            }
            JobEvent::Progress {
                job_id, progress, ..
            } => {
                let Ok(mut last_progress) = self.last_progress.lock() else {
                    return;
                };
                let previous = last_progress.get(job_id).cloned().unwrap_or_default();
                let increase = |now: u64, before: u64| {
                    if now >= before { now - before } else { now }
                };
                self.segments_fetched.fetch_add(
                    increase(progress.segments_written, previous.segments_written),
                    Ordering::Relaxed,
                );
                self.segments_lost.fetch_add(
                    increase(progress.gap_segments, previous.gap_segments),
                    Ordering::Relaxed,
                );
                self.bytes_recorded.fetch_add(
                    increase(progress.bytes_written, previous.bytes_written),
                    Ordering::Relaxed,
                );
                let gap_now = (progress.gap_seconds.max(0.0) * 1000.0) as u64;
                let gap_before = (previous.gap_seconds.max(0.0) * 1000.0) as u64;
                self.gap_milliseconds
                    .fetch_add(increase(gap_now, gap_before), Ordering::Relaxed);
                last_progress.insert(*job_id, progress.clone());
            }
            JobEvent::StateChanged { job_id, to, .. } => {
                match to {
                    JobState::Uploading => {
                        self.uploads.fetch_add(1, Ordering::Relaxed);
                    }
                    JobState::Completed => {
                        self.jobs_completed.fetch_add(1, Ordering::Relaxed);
                    }
                    JobState::Failed => {
                        self.jobs_failed.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
                if to.is_terminal()
                    && let Ok(mut last_progress) = self.last_progress.lock()
                {
                    last_progress.remove(job_id);
                }
            }
            JobEvent::DesiredStateChanged { .. }
            | JobEvent::RecordingDeleted { .. }
            | JobEvent::DiskUsage { .. }
            | JobEvent::ClipRequested { .. }
            | JobEvent::DeliveryChanged { .. }
            | JobEvent::StatusMessageChanged { .. } => {}
        }
    }
}

/// Feeds `counters` from the store's events until `shutdown`.
pub async fn run_event_counter<B: JobBackend>(
    backend: B,
    counters: std::sync::Arc<EventCounters>,
    shutdown: CancellationToken,
) {
    let mut events = backend.subscribe_events();
    loop {
        let received = tokio::select! {
            _ = shutdown.cancelled() => return,
            received = events.recv() => received,
        };
        match received {
            Ok(event) => counters.observe(&event),
            Err(RecvError::Lagged(missed)) => {
                counters.events_missed.fetch_add(missed, Ordering::Relaxed);
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// One point of the charts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HistorySample {
    pub at: DateTime<Utc>,
    pub active_recordings: u64,
    pub recordings_bytes: u64,
    pub filesystem_free_bytes: u64,
    pub filesystem_total_bytes: u64,
}

/// The last hour of samples.
pub struct StatsHistory {
    capacity: usize,
    samples: VecDeque<HistorySample>,
}

impl StatsHistory {
    pub fn for_one_hour(sample_interval: Duration) -> StatsHistory {
        let interval_seconds = sample_interval.as_secs().max(1);
        let capacity = (3600 / interval_seconds).clamp(1, 3600) as usize;
        StatsHistory {
            capacity,
            samples: VecDeque::with_capacity(capacity),
        }
    }

    pub fn push(&mut self, sample: HistorySample) {
        while self.samples.len() >= self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    pub fn samples(&self) -> Vec<HistorySample> {
        self.samples.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_the_newest_samples_up_to_its_capacity() {
        let mut history = StatsHistory::for_one_hour(Duration::from_secs(900));
        for recordings in 0..10 {
            history.push(HistorySample {
                at: Utc::now(),
                active_recordings: recordings,
                recordings_bytes: 0,
                filesystem_free_bytes: 0,
                filesystem_total_bytes: 0,
            });
        }
        let samples = history.samples();
        assert_eq!(samples.len(), 4);
        assert_eq!(samples[0].active_recordings, 6);
    }

    #[test]
    fn progress_events_add_their_increase() {
        let counters = EventCounters::default();
        let job_id = JobId::from_u32(7);
        let progress = |segments: u64, gaps: u64, bytes: u64| JobEvent::Progress {
            job_id,
            progress: RecordingProgress {
                segments_written: segments,
                gap_segments: gaps,
                bytes_written: bytes,
                ..RecordingProgress::default()
            },
            at: Utc::now(),
        };
        counters.observe(&progress(3, 0, 300));
        counters.observe(&progress(5, 1, 500));
        counters.observe(&progress(2, 0, 200));
        assert_eq!(counters.segments_fetched.load(Ordering::Relaxed), 7);
        assert_eq!(counters.segments_lost.load(Ordering::Relaxed), 1);
        assert_eq!(counters.bytes_recorded.load(Ordering::Relaxed), 700);
    }
}
