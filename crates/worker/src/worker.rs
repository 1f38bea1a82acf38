//! The worker runtime.
//!
//! - `concurrency` slots: a job is claimed only when a slot is free (no prefetch).
//! - Each job runs in its own task: a panic fails that job, not the worker.
//! - Beside the recording, a heartbeat renews the lease and reconciles the desired state (so a
//!   lost pub/sub nudge costs one heartbeat); nudges (desired-state events) act at once.
//! - A transient failure is retried (up to three failed attempts, with backoff); the retry records
//!   into the same directory, so it continues as a new part of the same job.
//! - On shutdown every recording finishes its segments in flight (`stop_grace`), the job goes back
//!   to its queue to be resumed, and the worker returns within `shutdown_deadline`.
//! - The worker also reaps lapsed leases every `reap_interval`, so a crashed worker's jobs resume
//!   even when no scheduler runs.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use streambot_core::{
    DesiredJobState, FailureKind, Job, JobEvent, JobId, JobPriority, JobState, RecordingEndReason,
    RecordingOptions, RecordingProgress,
};
use streambot_ffmpeg::FfmpegRunner;
use streambot_hls::{DesiredState, FetchLimits, HlsHttpClient, NetworkPolicy, TrackEvent};
use streambot_recorder::clip::{ClipError, ClippedFile, clip_last};
use streambot_recorder::finalize::{FinalizeReport, FinalizeSettings};
use streambot_recorder::interruptible_finalize::{FinalizeEnd, finalize_recording_interruptible};
use streambot_recorder::{RecorderEvent, RecordingOutcome, RecordingReport, RecordingSettings};
use tokio::sync::{Semaphore, broadcast, mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use streambot_core::delivery::FailureAfterDelivery;
use streambot_core::job_files::DeliveredPart;
use streambot_store::JobsError;
use streambot_store::backend::{JobBackend, Lease, LeaseRenewal, RetryDecision, retry_backoff};

use crate::part_delivery::SendingOutcome;

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub worker_id: String,
    /// Slots: jobs recorded at once (`WORKER_CONCURRENCY`; `auto` sizes it with
    /// [`crate::slots::automatic_recording_slots`]).
    pub concurrency: usize,
    /// No new claim while fewer descriptors than this (and a reserve) are left under the
    /// open-file limit ([`crate::slots::descriptors_refuse_claims`]).
    pub descriptors_per_recording: u64,
    /// Finalize remuxes running at once (`FINALIZE_CONCURRENCY`), shared by the worker's jobs.
    pub finalize_slots: Arc<Semaphore>,
    /// Finalizes that re-encode (quality presets that transcode) running at once
    /// (`TRANSCODE_CONCURRENCY`).
    pub transcode_slots: Arc<Semaphore>,
    /// Queues served, e.g. only `priority` to keep capacity apart.
    pub queues: Vec<JobPriority>,
    /// Each job records into `recordings_directory/<JOB ID>` (`LOCAL_STORAGE_PATH`).
    pub recordings_directory: PathBuf,
    pub lease_duration: Duration,
    pub heartbeat_interval: Duration,
    pub claim_wait: Duration,
    pub reap_interval: Duration,
    pub retry_backoff_base: Duration,
    /// Unused since progress rides on the worker heartbeat (written every `heartbeat_interval`).
    pub progress_interval: Duration,
    /// How long a stopping recording waits for its downloads in flight.
    pub stop_grace: Duration,
    /// The worker returns at the latest this long after shutdown was asked.
    pub shutdown_deadline: Duration,
    /// Parts are cut before they grow past this (the delivery's upload limit), at segment
    /// boundaries; `None` for no limit.
    pub maximum_part_bytes: Option<u64>,
    /// Where finished files go (local disk, Google Drive, a Telegram channel); `None` leaves them
    /// in the job's working directory.
    pub storage: Option<std::sync::Arc<streambot_storage::Storage>>,
    /// The longest a job with no duration of its own records (`FFMPEG_DEFAULT_TIMEOUT`, the
    /// maximum recording duration): the safety net for a stream that never ends.
    pub default_maximum_duration: Option<Duration>,
    /// `USER_DISK_QUOTA_GB`: checked while recording, every `quota_check_interval`; a job whose
    /// owner's files (stored and being recorded) reach it stops, is finalized and delivered, and
    /// fails with `FailureKind::LimitReached`.
    pub user_disk_quota_bytes: Option<u64>,
    /// Users the quota does not apply to (`TELEGRAM_ADMIN_IDS`).
    pub quota_exempt_user_ids: std::collections::HashSet<i64>,
    pub quota_check_interval: Duration,
    /// `MAX_DISK_USAGE_GB`: no new claim while the recordings directory holds
    /// [`DISK_EMERGENCY_FRACTION`](crate::scheduler::DISK_EMERGENCY_FRACTION) of it.
    pub maximum_disk_bytes: Option<u64>,
    /// No new claim while the file system has less than this free.
    pub minimum_free_disk_bytes: u64,
    /// How often the disk is measured for the claim check.
    pub disk_check_interval: Duration,
    /// `WAIT_FOR_LIVE`: how long a job whose link is not live yet keeps checking, unless the job
    /// says (its `options.wait_for_live`, when not zero).
    pub default_wait_for_live: Duration,
    /// Sends the finished parts to the job's owner (the bot's Telegram sender); `None` (no bot
    /// token: CLI-only use) leaves them in storage.
    pub part_sender: Option<crate::part_delivery::PartSenderHandle>,
}

/// A quarter of the lease: after two failed heartbeats in a row (a store restarting, a network
/// blip) the third still renews with a quarter of the lease to spare, so a store unreachable for
/// up to ~7.5 s costs no lease (10 s lease). A dead worker's jobs are taken back when its leases
/// lapse, whatever this interval. Each beat renews every job's lease and writes its progress (a
/// JSON record per job), so this is also how fresh the stored progress is (2.5 s with the 10 s
/// lease; it was 2 s: a third (lease/3, 3.3 s) saved ~5% more CPU at N = 100 but left no spare
/// after two failed beats, so a store blip over ~6.5 s cost every lease).
pub fn default_heartbeat_interval(lease_duration: Duration) -> Duration {
    lease_duration / 4
}

impl WorkerConfig {
    pub fn new(worker_id: &str, recordings_directory: PathBuf) -> Self {
        WorkerConfig {
            worker_id: worker_id.to_string(),
            concurrency: 2,
            descriptors_per_recording: crate::slots::DEFAULT_DESCRIPTORS_PER_RECORDING,
            finalize_slots: Arc::new(Semaphore::new(2)),
            transcode_slots: Arc::new(Semaphore::new(1)),
            queues: vec![JobPriority::Priority, JobPriority::Normal],
            recordings_directory,
            lease_duration: streambot_store::DEFAULT_LEASE_DURATION,
            heartbeat_interval: default_heartbeat_interval(streambot_store::DEFAULT_LEASE_DURATION),
            claim_wait: Duration::from_secs(1),
            reap_interval: Duration::from_secs(3),
            retry_backoff_base: Duration::from_secs(2),
            progress_interval: Duration::from_secs(1),
            stop_grace: Duration::from_secs(5),
            shutdown_deadline: Duration::from_millis(9500),
            maximum_part_bytes: None,
            storage: None,
            default_maximum_duration: Some(DEFAULT_MAXIMUM_RECORDING_DURATION),
            user_disk_quota_bytes: None,
            quota_exempt_user_ids: std::collections::HashSet::new(),
            quota_check_interval: Duration::from_secs(10),
            maximum_disk_bytes: None,
            minimum_free_disk_bytes: DEFAULT_MINIMUM_FREE_DISK_BYTES,
            disk_check_interval: Duration::from_secs(10),
            default_wait_for_live: Duration::ZERO,
            part_sender: None,
        }
    }
}

impl WorkerConfig {
    /// Finalize remuxes at once (at least 1).
    pub fn with_finalize_concurrency(mut self, count: usize) -> Self {
        self.finalize_slots = Arc::new(Semaphore::new(count.max(1)));
        self
    }

    /// Re-encoding finalizes at once (at least 1).
    pub fn with_transcode_concurrency(mut self, count: usize) -> Self {
        self.transcode_slots = Arc::new(Semaphore::new(count.max(1)));
        self
    }
}

/// A job with no duration stops after this (the seed's `FFMPEG_DEFAULT_TIMEOUT`, 2 h).
pub const DEFAULT_MAXIMUM_RECORDING_DURATION: Duration = Duration::from_secs(7200);
/// A worker claims no new job while its file system has less than this free (1 GiB).
pub const DEFAULT_MINIMUM_FREE_DISK_BYTES: u64 = 1024 * 1024 * 1024;

/// The options a job records with: its own, with the worker's maximum duration when it has none.
pub fn effective_recording_options(
    options: &RecordingOptions,
    default_maximum_duration: Option<Duration>,
) -> RecordingOptions {
    let mut effective = options.clone();
    if effective.maximum_duration.is_none() {
        effective.maximum_duration = default_maximum_duration;
    }
    effective
}

/// Why a worker takes no new job now, or `None` when it may.
pub fn disk_refuses_claims(
    used_bytes: u64,
    maximum_disk_bytes: Option<u64>,
    free_bytes: Option<u64>,
    minimum_free_bytes: u64,
) -> Option<String> {
    if let Some(maximum) = maximum_disk_bytes
        && used_bytes as f64 >= maximum as f64 * crate::scheduler::DISK_EMERGENCY_FRACTION
    {
        return Some(format!(
            "the recordings use {used_bytes} of the {maximum} bytes of MAX_DISK_USAGE_GB"
        ));
    }
    if let Some(free) = free_bytes
        && free < minimum_free_bytes
    {
        return Some(format!(
            "the disk has {free} bytes free, less than the {minimum_free_bytes} a recording needs"
        ));
    }
    None
}

/// Free bytes for an unprivileged writer on the file system holding `path`.
pub fn free_disk_bytes(path: &Path) -> Option<u64> {
    let stats = nix::sys::statvfs::statvfs(path).ok()?;
    Some((stats.blocks_available() as u64).saturating_mul(stats.fragment_size() as u64))
}

/// What a user's recordings take on this machine: the finished files storage filed under
/// `user_<id>/`, plus the working directory of each of their jobs.
async fn user_disk_usage_bytes<B: JobBackend>(
    backend: &B,
    config: &WorkerConfig,
    user_id: i64,
) -> Result<u64, JobsError> {
    let jobs = backend.list_jobs_for_user(user_id, 10_000).await?;
    let directories: Vec<PathBuf> = jobs
        .iter()
        .map(|job| job_directory(&config.recordings_directory, job.id))
        .collect();
    let working_bytes = tokio::task::spawn_blocking(move || {
        directories
            .iter()
            .map(|directory| crate::scheduler::directory_size(directory))
            .sum::<u64>()
    })
    .await
    .unwrap_or(0);
    let stored_bytes = match &config.storage {
        Some(storage) => storage.local.bytes_used_by_user(user_id).await.unwrap_or(0),
        None => 0,
    };
    Ok(working_bytes + stored_bytes)
}

/// The claim check of [`disk_refuses_claims`], measured at most every `disk_check_interval`.
struct DiskGuard {
    checked_at: Option<Instant>,
    refusal: Option<String>,
}

impl DiskGuard {
    async fn refusal(&mut self, config: &WorkerConfig) -> Option<String> {
        let due = self
            .checked_at
            .is_none_or(|checked| checked.elapsed() >= config.disk_check_interval);
        if due {
            self.checked_at = Some(Instant::now());
            let directory = config.recordings_directory.clone();
            let measure_usage = config.maximum_disk_bytes.is_some();
            let (used, free) = tokio::task::spawn_blocking(move || {
                let used = if measure_usage {
                    crate::scheduler::directory_size(&directory)
                } else {
                    0
                };
                (used, free_disk_bytes(&directory))
            })
            .await
            .unwrap_or((0, None));
            let refusal = disk_refuses_claims(
                used,
                config.maximum_disk_bytes,
                free,
                config.minimum_free_disk_bytes,
            );
            match (&self.refusal, &refusal) {
                (None, Some(reason)) => {
                    tracing::warn!(worker_id = %config.worker_id, %reason, "disk nearly full: taking no new job")
                }
                (Some(_), None) => {
                    tracing::info!(worker_id = %config.worker_id, "disk has room again: taking jobs")
                }
                _ => {}
            }
            self.refusal = refusal;
        }
        self.refusal.clone()
    }
}

/// Where a job's parts and ledger live: built from the id only, never from user text.
pub use streambot_core::job_files::job_directory;

/// What records a job: the native HLS recorder in production, stand-ins in tests.
pub trait RecordingEngine: Send + Sync + 'static {
    fn record(
        &self,
        url: String,
        options: RecordingOptions,
        settings: RecordingSettings,
        control: watch::Receiver<DesiredState>,
        events: mpsc::UnboundedSender<RecorderEvent>,
    ) -> impl Future<Output = RecordingReport> + Send;

    /// Turns the recorded parts into finished files (remux, check, thumbnail); `None` when
    /// `cancel` (shutdown) interrupted it: every ffmpeg stopped and the parts untouched, so the
    /// same report can be finalized again by the next worker. The default keeps the parts as
    /// they are (stand-in engines in tests).
    fn finalize(
        &self,
        _report: &RecordingReport,
        _options: &RecordingOptions,
        _cancel: &CancellationToken,
    ) -> impl Future<Output = Option<FinalizeReport>> + Send {
        std::future::ready(Some(FinalizeReport::default()))
    }

    /// A clip of the last `last` of the recording in `directory` (`/clip`), made while it goes
    /// on. The default uses ffmpeg from the PATH.
    fn clip<'a>(
        &'a self,
        directory: &'a Path,
        last: Duration,
        output: &'a Path,
    ) -> impl Future<Output = Result<ClippedFile, ClipError>> + Send + 'a {
        async move { clip_last(&FfmpegRunner::default(), directory, last, output).await }
    }
}

/// `streambot_recorder::record` with one shared HTTP client.
#[derive(Clone)]
pub struct NativeHlsEngine {
    client: HlsHttpClient,
    finalizer: FfmpegRunner,
}

impl NativeHlsEngine {
    pub fn new(policy: NetworkPolicy) -> Result<Self, JobsError> {
        let client = HlsHttpClient::new(policy, FetchLimits::default()).map_err(|error| {
            JobsError::Setup {
                message: format!("could not build the HTTP client: {error}"),
            }
        })?;
        let finalizer = FfmpegRunner::default();
        Ok(NativeHlsEngine { client, finalizer })
    }

    /// Finalize (and the ffmpeg engine) with this runner: the operator's binaries and timeouts.
    pub fn with_finalizer(mut self, finalizer: FfmpegRunner) -> Self {
        self.finalizer = finalizer;
        self
    }
}

impl RecordingEngine for NativeHlsEngine {
    async fn record(
        &self,
        url: String,
        options: RecordingOptions,
        settings: RecordingSettings,
        control: watch::Receiver<DesiredState>,
        events: mpsc::UnboundedSender<RecorderEvent>,
    ) -> RecordingReport {
        let mut settings = settings;
        settings.ffmpeg_binaries = self.finalizer.binaries().clone();
        streambot_recorder::record(
            self.client.clone(),
            &url,
            options,
            settings,
            control,
            events,
        )
        .await
    }

    async fn finalize(
        &self,
        report: &RecordingReport,
        options: &RecordingOptions,
        cancel: &CancellationToken,
    ) -> Option<FinalizeReport> {
        let mut settings = FinalizeSettings::new(options.format, options.quality);
        // Every destination makes its own preview of an mp4 (Telegram's sendVideo and a storage
        // channel generate one server-side, "thumbnail ... can be ignored if thumbnail generation
        // for the file is supported server-side"; Drive too): the one ffmpeg run a natively
        // remuxed part would still cost (~0.07 s of CPU, 7x the remux) is left out.
        settings.thumbnails_for_native_remux = false;
        match finalize_recording_interruptible(&self.finalizer, report, &settings, cancel).await {
            FinalizeEnd::Finished(finalized) => Some(finalized),
            FinalizeEnd::Interrupted => None,
        }
    }

    async fn clip(
        &self,
        directory: &Path,
        last: Duration,
        output: &Path,
    ) -> Result<ClippedFile, ClipError> {
        clip_last(&self.finalizer, directory, last, output).await
    }
}

type DesiredStateSenders = Arc<Mutex<HashMap<JobId, watch::Sender<DesiredJobState>>>>;

/// What a job's task hears from the worker's heartbeat. A renewal that changes nothing the task
/// acts on (the same desired state as the last one it heard, applied) is not sent: the task is
/// not woken for it.
#[derive(Debug, Clone, PartialEq)]
enum RenewalOutcome {
    Renewed { desired_state: DesiredJobState },
    LeaseLost { held_epoch: u64, current_epoch: u64 },
    Failed(String),
}

/// One job in the worker's heartbeat: its lease, its progress not written yet, and where its
/// renewal outcome goes.
struct HeartbeatEntry {
    lease: Lease,
    pending_progress: Option<RecordingProgress>,
    outcome: watch::Sender<Option<RenewalOutcome>>,
    /// The task could not apply the last desired state it heard: the next renewal is sent even
    /// when it says the same, so the task tries again.
    send_next_renewal: bool,
}

/// The jobs the worker's heartbeat renews: one `renew_leases` round trip per beat for all of
/// them, with their progress.
#[derive(Clone, Default)]
struct HeartbeatRegistry {
    entries: Arc<Mutex<HashMap<JobId, HeartbeatEntry>>>,
}

impl HeartbeatRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, HeartbeatEntry>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn register(&self, lease: &Lease) -> watch::Receiver<Option<RenewalOutcome>> {
        let (sender, receiver) = watch::channel(None);
        self.lock().insert(
            lease.job_id,
            HeartbeatEntry {
                lease: lease.clone(),
                pending_progress: None,
                outcome: sender,
                send_next_renewal: false,
            },
        );
        receiver
    }

    fn unregister(&self, job_id: JobId) {
        self.lock().remove(&job_id);
    }

    /// The job's latest progress, written with its next renewal.
    fn report_progress(&self, job_id: JobId, progress: RecordingProgress) {
        if let Some(entry) = self.lock().get_mut(&job_id) {
            entry.pending_progress = Some(progress);
        }
    }

    /// The job's task could not apply the desired state it heard: the next renewal is sent to it
    /// even if nothing changed.
    fn send_next_renewal(&self, job_id: JobId) {
        if let Some(entry) = self.lock().get_mut(&job_id) {
            entry.send_next_renewal = true;
        }
    }

    /// Stops writing a job's progress (its lease is lost, or it writes its final one itself).
    fn forget_progress(&self, job_id: JobId) {
        if let Some(entry) = self.lock().get_mut(&job_id) {
            entry.pending_progress = None;
        }
    }

    /// One beat: every registered lease renewed (and its progress written) in one call.
    async fn beat<B: JobBackend>(&self, backend: &B, lease_duration: Duration) {
        let renewals: Vec<LeaseRenewal> = self
            .lock()
            .values_mut()
            .map(|entry| LeaseRenewal {
                lease: entry.lease.clone(),
                progress: entry.pending_progress.take(),
            })
            .collect();
        if renewals.is_empty() {
            return;
        }
        let results = backend.renew_leases(&renewals, lease_duration).await;
        let mut entries = self.lock();
        for (renewal, result) in renewals.iter().zip(results) {
            let Some(entry) = entries.get_mut(&renewal.lease.job_id) else {
                continue;
            };
            let outcome = match result {
                Ok(job) => RenewalOutcome::Renewed {
                    desired_state: job.desired_state,
                },
                Err(JobsError::LeaseLost {
                    held_epoch,
                    current_epoch,
                    ..
                }) => RenewalOutcome::LeaseLost {
                    held_epoch,
                    current_epoch,
                },
                Err(error) => RenewalOutcome::Failed(error.to_string()),
            };
            let send_anyway = std::mem::take(&mut entry.send_next_renewal);
            entry.outcome.send_if_modified(|current| {
                let is_news = renewal_is_news(current.as_ref(), &outcome, send_anyway);
                if is_news {
                    *current = Some(outcome);
                }
                is_news
            });
        }
    }
}

/// Whether the job's task hears `outcome`: always a lost lease or a failure, a renewal only when
/// it differs from the last outcome the task heard or the task asked to hear it again.
fn renewal_is_news(
    last_heard: Option<&RenewalOutcome>,
    outcome: &RenewalOutcome,
    send_anyway: bool,
) -> bool {
    send_anyway || !matches!(outcome, RenewalOutcome::Renewed { .. }) || last_heard != Some(outcome)
}

/// Ticks every `interval`, the first one `interval` from now; a late tick delays the next ones.
fn heartbeat_ticker(interval: Duration) -> tokio::time::Interval {
    let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticker
}

/// The worker's heartbeat: renews all its jobs' leases every `heartbeat_interval` until `stop`.
async fn beat_periodically<B: JobBackend>(
    backend: B,
    registry: HeartbeatRegistry,
    config: Arc<WorkerConfig>,
    stop: CancellationToken,
) {
    let mut ticker = heartbeat_ticker(config.heartbeat_interval);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        registry.beat(&backend, config.lease_duration).await;
    }
}

/// The claim check of [`crate::slots::descriptors_refuse_claims`] on this process now, counted
/// only when [`crate::slots::descriptor_recount_due`] says so (`last_count`: the last count and
/// when it was taken).
fn descriptor_refusal(
    config: &WorkerConfig,
    recordings_after_claim: u64,
    last_count: &mut Option<(u64, Instant)>,
) -> Option<String> {
    let limit = crate::slots::open_file_limit()?;
    let due = crate::slots::descriptor_recount_due(
        last_count.map(|(open, _)| open),
        limit,
        recordings_after_claim,
        config.descriptors_per_recording,
        last_count.map_or(Duration::MAX, |(_, counted_at)| counted_at.elapsed()),
    );
    if !due {
        return None;
    }
    let open = crate::slots::open_descriptor_count()?;
    *last_count = Some((open, Instant::now()));
    crate::slots::descriptors_refuse_claims(open, limit, config.descriptors_per_recording)
}

/// Runs until `shutdown` is cancelled, then winds down within `config.shutdown_deadline`.
pub async fn run_worker<B: JobBackend, E: RecordingEngine>(
    backend: B,
    engine: E,
    config: WorkerConfig,
    shutdown: CancellationToken,
) -> Result<(), JobsError> {
    let config = Arc::new(config);
    let engine = Arc::new(engine);
    let tracker = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let desired_senders: DesiredStateSenders = Arc::default();
    let heartbeats = HeartbeatRegistry::default();
    tracing::info!(
        worker_id = %config.worker_id,
        concurrency = config.concurrency,
        finalize_concurrency = config.finalize_slots.available_permits(),
        transcode_concurrency = config.transcode_slots.available_permits(),
        queues = ?config.queues,
        "worker started"
    );
    if config.part_sender.is_none() {
        tracing::info!(
            "no Telegram bot token: finished recordings stay in storage and are not sent to their owners"
        );
    }
    // The heartbeat outlives the claim loop: jobs winding down at shutdown keep their leases.
    let stop_heartbeat = CancellationToken::new();
    let heartbeat_task = tokio::spawn(beat_periodically(
        backend.clone(),
        heartbeats.clone(),
        config.clone(),
        stop_heartbeat.clone(),
    ));
    let mut descriptors_refused = false;
    let mut last_descriptor_count: Option<(u64, Instant)> = None;

    tracker.spawn(forward_nudges(
        backend.subscribe_events(),
        desired_senders.clone(),
        shutdown.clone(),
    ));
    tracker.spawn(crate::clip_delivery::serve_clip_requests(
        backend.clone(),
        engine.clone(),
        config.clone(),
        desired_senders.clone(),
        backend.subscribe_events(),
        tracker.clone(),
        shutdown.clone(),
    ));
    tracker.spawn(reap_periodically(
        backend.clone(),
        config.reap_interval,
        shutdown.clone(),
    ));

    let mut disk_guard = DiskGuard {
        checked_at: None,
        refusal: None,
    };
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        if shutdown.is_cancelled() {
            break;
        }
        if disk_guard.refusal(&config).await.is_some() {
            drop(permit);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(config.disk_check_interval.min(Duration::from_secs(2))) => {}
            }
            continue;
        }
        // Out of descriptors, a new recording would fail mid-segment (EMFILE) and take the
        // running ones' retries with it: no claim until some are free again.
        let recordings_after_claim = config
            .concurrency
            .max(1)
            .saturating_sub(slots.available_permits()) as u64;
        let refusal =
            descriptor_refusal(&config, recordings_after_claim, &mut last_descriptor_count);
        if refusal.is_some() != descriptors_refused {
            descriptors_refused = refusal.is_some();
            match &refusal {
                Some(reason) => {
                    tracing::warn!(worker_id = %config.worker_id, %reason, "open files nearly exhausted: taking no new job")
                }
                None => {
                    tracing::info!(worker_id = %config.worker_id, "open files available again: taking jobs")
                }
            }
        }
        if refusal.is_some() {
            drop(permit);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        // The claim is never abandoned half-way (a delivered entry would wait for the reaper);
        // its wait is short, so shutdown is not held up.
        let claimed = backend
            .claim(
                &config.worker_id,
                &config.queues,
                config.lease_duration,
                config.claim_wait,
            )
            .await;
        match claimed {
            Ok(Some((job, lease))) => {
                if shutdown.is_cancelled() {
                    if let Err(error) = backend.release(&lease).await {
                        tracing::warn!(job_id = %job.id, %error, "could not give back a job claimed during shutdown");
                    }
                    break;
                }
                tracing::info!(job_id = %job.id, epoch = lease.fencing_epoch, attempt = job.attempt, "claimed");
                tracker.spawn(supervise_job(
                    backend.clone(),
                    engine.clone(),
                    config.clone(),
                    job,
                    lease,
                    desired_senders.clone(),
                    heartbeats.clone(),
                    shutdown.clone(),
                    permit,
                ));
            }
            Ok(None) => drop(permit),
            Err(error) => {
                drop(permit);
                tracing::warn!(%error, "claim failed; trying again in a second");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }

    tracker.close();
    if tokio::time::timeout(config.shutdown_deadline, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "worker shutdown deadline reached with jobs still winding down; their leases will lapse and another worker resumes them"
        );
    }
    stop_heartbeat.cancel();
    let _ = heartbeat_task.await;
    tracing::info!(worker_id = %config.worker_id, "worker stopped");
    Ok(())
}

async fn forward_nudges(
    mut events: broadcast::Receiver<JobEvent>,
    desired_senders: DesiredStateSenders,
    shutdown: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            event = events.recv() => event,
        };
        match event {
            Ok(JobEvent::DesiredStateChanged {
                job_id, desired, ..
            }) => {
                let senders = desired_senders
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if let Some(sender) = senders.get(&job_id) {
                    let _ = sender.send(desired);
                }
            }
            Ok(_) => {}
            // Missed nudges are made up by the heartbeat's reconciliation.
            Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn reap_periodically<B: JobBackend>(
    backend: B,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match backend.reap_expired_leases().await {
            Ok(reaped) if !reaped.is_empty() => {
                tracing::info!(jobs = ?reaped, "requeued jobs whose worker's lease lapsed");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "lease reaper failed"),
        }
    }
}

/// The panic boundary: the job runs in its own task; if that task panics, the job fails.
#[allow(clippy::too_many_arguments)]
async fn supervise_job<B: JobBackend, E: RecordingEngine>(
    backend: B,
    engine: Arc<E>,
    config: Arc<WorkerConfig>,
    job: Job,
    lease: Lease,
    desired_senders: DesiredStateSenders,
    heartbeats: HeartbeatRegistry,
    shutdown: CancellationToken,
    _slot: tokio::sync::OwnedSemaphorePermit,
) {
    let job_id = job.id;
    // Renewed by the worker's heartbeat from now until the task ends (finalize and upload too).
    let renewals = heartbeats.register(&lease);
    let (desired_sender, desired_receiver) = watch::channel(job.desired_state);
    desired_senders
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(job_id, desired_sender);
    let task = tokio::spawn(run_job(
        backend.clone(),
        engine,
        config,
        job,
        lease.clone(),
        desired_receiver,
        JobHeartbeat {
            registry: heartbeats.clone(),
            renewals,
        },
        shutdown,
    ));
    let outcome = task.await;
    heartbeats.unregister(job_id);
    desired_senders
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .remove(&job_id);
    if let Err(join_error) = outcome {
        let message = if join_error.is_panic() {
            "the recording crashed (internal error)"
        } else {
            "the recording task was cancelled"
        };
        tracing::error!(%job_id, %join_error, "job task ended abnormally");
        fail_job(&backend, &lease, message, FailureKind::Internal).await;
    }
}

async fn fail_job<B: JobBackend>(backend: &B, lease: &Lease, message: &str, failure: FailureKind) {
    let current = match backend.get_job(lease.job_id).await {
        Ok(Some(job)) => job,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(job_id = %lease.job_id, %error, "could not read a failed job");
            return;
        }
    };
    if !current.state.is_terminal()
        && let Err(error) = backend
            .fail_job(
                lease.job_id,
                current.state,
                Some(lease),
                message.to_string(),
                failure,
            )
            .await
    {
        tracing::warn!(job_id = %lease.job_id, %error, "could not mark the job failed");
    }
    if let Err(error) = complete_persistently(backend, lease).await {
        tracing::warn!(job_id = %lease.job_id, %error, "could not complete a failed job");
    }
}

/// One job's state as its task knows it.
struct RunningJob<B: JobBackend> {
    backend: B,
    lease: Lease,
    /// What the worker's heartbeat says of this job's lease (finalize and delivery stop when
    /// it is lost).
    lease_outcomes: watch::Receiver<Option<RenewalOutcome>>,
    control: watch::Sender<DesiredState>,
    state: JobState,
    stop_requested: bool,
}

impl<B: JobBackend> RunningJob<B> {
    /// The fenced transition, once (while recording nothing may hold up the recorder).
    async fn move_to(&mut self, to: JobState, error: Option<String>) -> Result<(), JobsError> {
        self.backend
            .transition_job(self.lease.job_id, self.state, to, Some(&self.lease), error)
            .await?;
        self.state = to;
        Ok(())
    }

    /// [`RunningJob::move_to`] after the recording: a store that cannot be reached (a Redis
    /// restart, a busy SQLite) is tried again with the delivery's backoff (1 s doubling, 5
    /// attempts), and a retry that finds the transition already made (its answer was lost)
    /// counts as done.
    async fn move_to_persistently(
        &mut self,
        to: JobState,
        error: Option<String>,
    ) -> Result<(), JobsError> {
        let mut attempt: u32 = 0;
        let (backend, lease, from) = (&self.backend, &self.lease, self.state);
        crate::part_delivery::retry_store_write(lease.job_id, "the job's state", None, || {
            attempt += 1;
            let error = error.clone();
            let retried = attempt > 1;
            async move {
                match backend
                    .transition_job(lease.job_id, from, to, Some(lease), error)
                    .await
                {
                    // A try that reached the store before the connection broke.
                    Err(JobsError::StateConflict { actual, .. }) if retried && actual == to => {
                        Ok(())
                    }
                    other => other.map(|_| ()),
                }
            }
        })
        .await?;
        self.state = to;
        Ok(())
    }

    /// Brings the recording to what the owner wants. Until the link resolved the job stays
    /// `Starting`: the recorder is told (pause, resume, stop) and the state follows once it
    /// reports the link resolved; a stop before that cancels the job.
    /// Tells the recorder and moves the job's state; false when the state could not be written
    /// (tried again at the next renewal).
    async fn reconcile(&mut self, desired: DesiredJobState) -> bool {
        // (what the recorder is told, the state the job moves to)
        let (signal, next_state) = match (desired, self.state) {
            (DesiredJobState::Record, JobState::Paused) => {
                (Some(DesiredState::Record), Some(JobState::Recording))
            }
            (DesiredJobState::Record, JobState::Starting) => (Some(DesiredState::Record), None),
            (DesiredJobState::Pause, JobState::Recording) => {
                (Some(DesiredState::Pause), Some(JobState::Paused))
            }
            (DesiredJobState::Pause, JobState::Starting) => (Some(DesiredState::Pause), None),
            (DesiredJobState::Stop, _) if !self.stop_requested => {
                self.stop_requested = true;
                (Some(DesiredState::Stop), None)
            }
            _ => (None, None),
        };
        if let Some(signal) = signal {
            let _ = self.control.send(signal);
        }
        let outcome = match next_state {
            Some(next_state) => self.move_to(next_state, None).await,
            None => Ok(()),
        };
        if let Err(error) = outcome {
            tracing::warn!(job_id = %self.lease.job_id, %error, "could not apply the desired state");
            return false;
        }
        true
    }

    /// The recorder reported the link resolved: `Starting → Recording`, then whatever the owner
    /// asked for meanwhile (a pause). False when a state could not be written.
    async fn link_resolved(&mut self, desired: DesiredJobState) -> bool {
        if self.state != JobState::Starting {
            return true;
        }
        if let Err(error) = self.move_to(JobState::Recording, None).await {
            tracing::warn!(job_id = %self.lease.job_id, %error, "could not mark the job recording");
            return false;
        }
        self.reconcile(desired).await
    }
}

fn main_track_progress(event: &RecorderEvent) -> Option<&RecordingProgress> {
    match event {
        RecorderEvent::Track {
            event:
                TrackEvent::SegmentCommitted {
                    track, progress, ..
                }
                | TrackEvent::GapDetected {
                    track, progress, ..
                }
                | TrackEvent::Progress { track, progress },
        } if track == "main" => Some(progress),
        _ => None,
    }
}

/// A job's side of the worker's heartbeat: where it leaves its progress and hears its renewals.
struct JobHeartbeat {
    registry: HeartbeatRegistry,
    renewals: watch::Receiver<Option<RenewalOutcome>>,
}

#[allow(clippy::too_many_arguments)]
async fn run_job<B: JobBackend, E: RecordingEngine>(
    backend: B,
    engine: Arc<E>,
    config: Arc<WorkerConfig>,
    job: Job,
    lease: Lease,
    mut desired: watch::Receiver<DesiredJobState>,
    mut heartbeat: JobHeartbeat,
    shutdown: CancellationToken,
) {
    let job_id = job.id;
    let (control_sender, control_receiver) = watch::channel(DesiredState::Record);
    let mut running = RunningJob {
        backend: backend.clone(),
        lease: lease.clone(),
        lease_outcomes: heartbeat.renewals.clone(),
        control: control_sender,
        state: JobState::Starting,
        stop_requested: false,
    };
    if job.delivery.is_some() {
        // Recorded, finalized and stored before: only the parts not yet sent go out.
        tracing::info!(%job_id, "resuming the delivery of a finished recording");
        let directory = job_directory(&config.recordings_directory, job_id);
        let parts = crate::part_delivery::finished_parts(&directory);
        let failure_after = job
            .delivery
            .as_ref()
            .and_then(|delivery| delivery.failure_after.clone());
        if let Err(error) = running.move_to(JobState::Uploading, None).await {
            tracing::warn!(%job_id, %error, "could not resume the delivery");
            return;
        }
        deliver_and_finish(
            &mut running,
            &config,
            &job,
            &parts,
            failure_after,
            &shutdown,
        )
        .await;
        return;
    }
    if let Some(report) = pending_finalize(&config.recordings_directory, job_id) {
        // Recorded before, finalize or store cut short (a shutdown, a lost worker): finish the
        // same recording instead of recording again.
        tracing::info!(%job_id, "resuming the finalize of a finished recording");
        let failure_after = match &report.outcome {
            RecordingOutcome::Failed {
                message, failure, ..
            } => Some(FailureAfterDelivery {
                message: message.clone(),
                failure: *failure,
            }),
            RecordingOutcome::Finished { .. } => None,
        };
        let finished = FinishingJob {
            config: &config,
            job: &job,
            report: &report,
        };
        finish_recording(
            &mut running,
            &finished,
            engine.as_ref(),
            failure_after,
            &shutdown,
        )
        .await;
        return;
    }
    // The job stays `Starting` ("Checking the link…") until the recorder reports the link
    // resolved; a failure before that fails it from `Starting`.
    let initial_desired = *desired.borrow_and_update();
    if !running.reconcile(initial_desired).await {
        heartbeat.registry.send_next_renewal(job_id);
    }

    let directory = job_directory(&config.recordings_directory, job_id);
    let mut settings = RecordingSettings::new(directory);
    settings.stop_grace = config.stop_grace;
    settings.maximum_part_bytes = config.maximum_part_bytes;
    let (events_sender, mut events) = mpsc::unbounded_channel();
    let mut recording_options =
        effective_recording_options(&job.options, config.default_maximum_duration);
    if recording_options.wait_for_live.is_zero() {
        recording_options.wait_for_live = config.default_wait_for_live;
    }
    let quota_bytes = config
        .user_disk_quota_bytes
        .filter(|_| !config.quota_exempt_user_ids.contains(&job.owner.user_id));
    let mut last_quota_check = Instant::now();
    let mut quota_reached: Option<(u64, u64)> = None;
    let recording = engine.record(
        job.url.clone(),
        recording_options,
        settings,
        control_receiver,
        events_sender,
    );
    tokio::pin!(recording);

    let mut lease_lost = false;
    let mut shutting_down = false;
    let mut desired_open = true;
    let mut waiting_recorded = false;

    let report = loop {
        tokio::select! {
            report = &mut recording => break report,
            Ok(()) = heartbeat.renewals.changed(), if !lease_lost => {
                let outcome = heartbeat.renewals.borrow_and_update().clone();
                match outcome {
                    Some(RenewalOutcome::Renewed { desired_state }) if !shutting_down => {
                        if !running.reconcile(desired_state).await {
                            heartbeat.registry.send_next_renewal(job_id);
                        }
                    }
                    Some(RenewalOutcome::LeaseLost { .. }) => {
                        tracing::warn!(%job_id, "lease lost: another worker owns this job now; stopping at once");
                        lease_lost = true;
                        heartbeat.registry.unregister(job_id);
                        let _ = running.control.send(DesiredState::StopNow);
                    }
                    Some(RenewalOutcome::Failed(error)) => tracing::warn!(%job_id, %error, "lease renewal failed; will try again"),
                    Some(RenewalOutcome::Renewed { .. }) | None => {}
                }
            }
            changed = desired.changed(), if desired_open && !shutting_down => {
                if changed.is_err() {
                    desired_open = false;
                } else {
                    let wanted = *desired.borrow_and_update();
                    if !running.reconcile(wanted).await {
                        // The heartbeat's next renewal brings the desired state again.
                        heartbeat.registry.send_next_renewal(job_id);
                    }
                }
            }
            Some(event) = events.recv() => {
                if let RecorderEvent::WaitingForLive { next_check_at, .. } = &event
                    && !lease_lost
                {
                    let waiting = streambot_core::WaitingForLive {
                        next_check_at: chrono::DateTime::<chrono::Utc>::from(*next_check_at),
                    };
                    if let Err(error) = backend.set_waiting_for_live(&lease, Some(waiting)).await {
                        tracing::debug!(%job_id, %error, "could not record the wait for the stream");
                    }
                    waiting_recorded = true;
                }
                if matches!(event, RecorderEvent::Resolved { .. }) && !lease_lost {
                    if std::mem::take(&mut waiting_recorded)
                        && let Err(error) = backend.set_waiting_for_live(&lease, None).await
                    {
                        tracing::debug!(%job_id, %error, "could not clear the wait for the stream");
                    }
                    let wanted = *desired.borrow();
                    if !running.link_resolved(wanted).await {
                        heartbeat.registry.send_next_renewal(job_id);
                    }
                }
                // Written with the next heartbeat's renewal, not on its own.
                if let Some(progress) = main_track_progress(&event)
                    && !lease_lost
                {
                    heartbeat.registry.report_progress(job_id, progress.clone());
                }
            }
            _ = tokio::time::sleep_until(last_quota_check + config.quota_check_interval),
                if quota_bytes.is_some() && quota_reached.is_none() && !shutting_down && !lease_lost => {
                last_quota_check = Instant::now();
                let quota = quota_bytes.unwrap_or(u64::MAX);
                match user_disk_usage_bytes(&backend, &config, job.owner.user_id).await {
                    Ok(used) if used >= quota => {
                        tracing::warn!(%job_id, user_id = job.owner.user_id, used, quota, "the user's disk quota is full: stopping the recording");
                        quota_reached = Some((used, quota));
                        running.stop_requested = true;
                        let _ = running.control.send(DesiredState::Stop);
                    }
                    Ok(_) => {}
                    Err(error) => tracing::debug!(%job_id, %error, "could not measure the user's disk usage"),
                }
            }
            _ = shutdown.cancelled(), if !shutting_down => {
                shutting_down = true;
                tracing::info!(%job_id, "shutting down: finishing the segments in flight");
                let _ = running.control.send(DesiredState::Stop);
            }
        }
    };
    if lease_lost {
        return;
    }
    heartbeat.registry.forget_progress(job_id);
    let final_progress = report.progress();
    if let Err(error) = backend.update_progress(&lease, final_progress).await {
        tracing::warn!(%job_id, %error, "final progress not written");
        if matches!(error, JobsError::LeaseLost { .. }) {
            return;
        }
    }

    let resumable_stop = shutting_down
        && !running.stop_requested
        && match &report.outcome {
            RecordingOutcome::Finished { reason } => *reason == RecordingEndReason::Stopped,
            RecordingOutcome::Failed { retryable, .. } => *retryable,
        };
    if resumable_stop {
        match backend.release(&lease).await {
            Ok(()) => tracing::info!(%job_id, "left resumable for the next worker"),
            Err(error) => {
                tracing::warn!(%job_id, %error, "could not release; the lease will lapse")
            }
        }
        return;
    }

    let finished = FinishingJob {
        config: &config,
        job: &job,
        report: &report,
    };
    if let Some((used_bytes, quota_bytes)) = quota_reached {
        // What was recorded is finished and delivered; the failure says why it stopped.
        let finished = FinishingJob {
            config: &config,
            job: &job,
            report: &report,
        };
        let message = format!(
            "The recording stopped because your disk quota is full ({} used of {}); what was recorded is delivered. Delete old recordings to make room.",
            streambot_core::quantity_text::format_size(used_bytes),
            streambot_core::quantity_text::format_size(quota_bytes)
        );
        finish_recording(
            &mut running,
            &finished,
            engine.as_ref(),
            Some(FailureAfterDelivery {
                message,
                failure: FailureKind::LimitReached,
            }),
            &shutdown,
        )
        .await;
        return;
    }
    // A stop asked before the link resolved: nothing was recorded, the job is cancelled.
    if running.state == JobState::Starting
        && running.stop_requested
        && matches!(report.outcome, RecordingOutcome::Finished { .. })
    {
        match running.move_to(JobState::Cancelled, None).await {
            Ok(()) => tracing::info!(%job_id, "stopped before the link resolved: cancelled"),
            Err(error) => tracing::warn!(%job_id, %error, "could not cancel the job"),
        }
        if let Err(error) = complete_persistently(&backend, &lease).await {
            tracing::warn!(%job_id, %error, "could not complete a cancelled job");
        }
        return;
    }
    match &report.outcome {
        RecordingOutcome::Finished { reason } => {
            tracing::info!(%job_id, reason = %reason.describe(), "recording finished");
            finish_recording(&mut running, &finished, engine.as_ref(), None, &shutdown).await;
        }
        RecordingOutcome::Failed {
            message,
            retryable,
            failure,
        } if *retryable => {
            let backoff = retry_backoff(job.attempt + 1, config.retry_backoff_base);
            match backend
                .retry(&lease, message.clone(), *failure, backoff)
                .await
            {
                Ok(RetryDecision::Retried { attempt, .. }) => {
                    tracing::warn!(%job_id, attempt, %message, ?backoff, "transient failure; retrying as a new part")
                }
                Ok(RetryDecision::DeadLettered { attempt }) => {
                    tracing::error!(%job_id, attempt, %message, "failed for the last time")
                }
                Err(error) => tracing::warn!(%job_id, %error, "could not schedule the retry"),
            }
        }
        RecordingOutcome::Failed {
            message, failure, ..
        } => {
            tracing::error!(%job_id, %message, "recording failed");
            // What was recorded before the failure is still finished and stored, so the user
            // gets it with the failure message instead of losing it.
            let recorded_something = report
                .main
                .as_ref()
                .is_some_and(|main| !main.parts.is_empty());
            if recorded_something {
                let failure_after = FailureAfterDelivery {
                    message: message.clone(),
                    failure: *failure,
                };
                finish_recording(
                    &mut running,
                    &finished,
                    engine.as_ref(),
                    Some(failure_after),
                    &shutdown,
                )
                .await;
                return;
            }
            fail_job(&backend, &lease, message, *failure).await;
        }
    }
}

/// The end of a recording: `Finalizing` (remux, check), `Uploading` (storage, then the parts to
/// the owner), then `Completed`, or `Failed` with `failure_after` (what was recorded is still
/// delivered). The job walks the states so the bot and the dashboard see them.
async fn finish_recording<B: JobBackend, E: RecordingEngine>(
    running: &mut RunningJob<B>,
    finished: &FinishingJob<'_>,
    engine: &E,
    failure_after: Option<FailureAfterDelivery>,
    shutdown: &CancellationToken,
) {
    let job_id = finished.job.id;
    // The recording ended: kept until the job's directory goes, so that a worker lost at any
    // step from here on (or a store that could not be reached) leaves the next one a recording
    // to finish, never one to record again.
    let marker = finished
        .report
        .output_directory
        .join(streambot_core::job_files::FINALIZE_PENDING_FILE_NAME);
    if let Err(error) = std::fs::write(&marker, b"") {
        tracing::warn!(%job_id, %error, "could not mark the recording ended");
    }
    let lease_outcomes = running.lease_outcomes.clone();
    let walked = async {
        if running.state == JobState::Starting {
            // An engine that ended without reporting the link resolved.
            running
                .move_to_persistently(JobState::Recording, None)
                .await?;
        }
        if matches!(running.state, JobState::Recording | JobState::Paused) {
            running
                .move_to_persistently(JobState::Finalizing, None)
                .await?;
        }
        // Finalize and upload can take minutes: the worker's heartbeat keeps renewing the lease
        // (or the reaper would take the job back from a worker still busy with it), and a lease
        // lost meanwhile stops them.
        let directory = &finished.report.output_directory;
        let finalized = match finalized_before(directory) {
            Some(finalized) => {
                // Lost or stopped after its finalize (while storing): store the same files.
                tracing::info!(%job_id, "finalized before: storing its files");
                finalized
            }
            None => {
                let Some(finalized) =
                    until_lease_lost(&lease_outcomes, job_id, finished.finalize(engine, shutdown))
                        .await?
                else {
                    return Ok(None);
                };
                finalized
            }
        };
        running
            .move_to_persistently(JobState::Uploading, None)
            .await?;
        let parts = until_lease_lost(&lease_outcomes, job_id, finished.store(&finalized)).await?;
        Ok::<_, JobsError>(Some(parts))
    }
    .await;
    match walked {
        Ok(None) => {
            // Shutdown interrupted the finalize: ffmpeg stopped, the parts are untouched and the
            // next worker finalizes them (`finalize-pending`).
            match running.backend.release(&running.lease).await {
                Ok(()) => {
                    tracing::info!(%job_id, "finalize interrupted by shutdown; the next worker finalizes")
                }
                Err(error) => {
                    tracing::warn!(%job_id, %error, "could not release; the lease will lapse")
                }
            }
        }
        Ok(Some(parts)) => {
            deliver_and_finish(
                running,
                finished.config,
                finished.job,
                &parts,
                failure_after,
                shutdown,
            )
            .await
        }
        Err(error) if error.is_retryable() => {
            // The store stayed unreachable: the lease lapses, the job is reaped back to its
            // queue and the next worker finishes this recording (`finalize-pending`).
            tracing::warn!(%job_id, %error, "could not record the job's progress; the next worker finishes it");
        }
        Err(error) => {
            tracing::warn!(%job_id, %error, "could not finish the job");
            if !matches!(error, JobsError::LeaseLost { .. }) {
                let message = failure_after
                    .map(|failure| failure.message)
                    .unwrap_or_else(|| "the recording could not be finished".to_string());
                fail_job(
                    &running.backend,
                    &running.lease,
                    &message,
                    FailureKind::Internal,
                )
                .await;
            }
        }
    }
}

/// In `Uploading` with the finished parts: sends them to the owner (when a sender is set),
/// then ends the job (`Completed`, or `Failed` with `failure_after`). On shutdown the job goes
/// back to its queue with its delivery record; the next worker sends the rest.
async fn deliver_and_finish<B: JobBackend>(
    running: &mut RunningJob<B>,
    config: &WorkerConfig,
    job: &Job,
    parts: &[DeliveredPart],
    failure_after: Option<FailureAfterDelivery>,
    shutdown: &CancellationToken,
) {
    let job_id = job.id;
    let backend = running.backend.clone();
    let lease = running.lease.clone();
    let mut failure_after = failure_after;
    if let Some(sender) = &config.part_sender {
        let delivery = crate::part_delivery::initial_delivery(job, parts, failure_after.clone());
        failure_after = delivery.failure_after.clone();
        let sending = until_lease_lost(
            &running.lease_outcomes,
            job_id,
            crate::part_delivery::send_parts(
                &backend,
                &lease,
                sender.0.as_ref(),
                job,
                parts,
                delivery,
                shutdown,
            ),
        )
        .await
        .and_then(|sent| sent);
        match sending {
            Ok(SendingOutcome::Done(delivery)) => {
                tracing::info!(%job_id, sent = delivery.sent_count(), parts = delivery.parts.len(), "delivered");
            }
            Ok(SendingOutcome::Interrupted) => {
                match backend.release(&lease).await {
                    Ok(()) => {
                        tracing::info!(%job_id, "delivery interrupted by shutdown; the next worker sends the rest")
                    }
                    Err(error) => {
                        tracing::warn!(%job_id, %error, "could not release; the lease will lapse")
                    }
                }
                return;
            }
            Err(JobsError::LeaseLost { .. }) => {
                tracing::warn!(%job_id, "lease lost while delivering: another worker owns this job now");
                return;
            }
            Err(error) => {
                // The store is unreachable: the lease lapses and another worker resumes.
                tracing::warn!(%job_id, %error, "could not record the delivery; leaving it to the next worker");
                return;
            }
        }
    }
    match failure_after {
        Some(failure) => fail_job(&backend, &lease, &failure.message, failure.failure).await,
        None => {
            if let Err(error) = running
                .move_to_persistently(JobState::Completed, None)
                .await
            {
                tracing::warn!(%job_id, %error, "could not complete the job");
                if matches!(error, JobsError::LeaseLost { .. }) {
                    return;
                }
            }
            if let Err(error) = complete_persistently(&backend, &lease).await {
                tracing::warn!(%job_id, %error, "could not complete the job's delivery");
            }
        }
    }
}

/// `complete` (the lease given back, the job out of its queue) tried again with the delivery's
/// backoff while the store cannot be reached: found by the chaos test under load, a Redis
/// restart that ended just before it left a completed job holding its lease. A retry that finds
/// the lease gone (the last try reached the store before its answer was lost) counts as done.
async fn complete_persistently<B: JobBackend>(backend: &B, lease: &Lease) -> Result<(), JobsError> {
    let mut attempt: u32 = 0;
    crate::part_delivery::retry_store_write(lease.job_id, "the job's completion", None, || {
        attempt += 1;
        let retried = attempt > 1;
        async move {
            match backend.complete(lease).await {
                Err(JobsError::LeaseLost { .. }) if retried => Ok(()),
                other => other,
            }
        }
    })
    .await
}

/// The recorder's report of a recording that ended before (`finalize-pending` and
/// `recording.json` in its directory: its finalize or store was cut short), or `None`: record
/// (again).
fn pending_finalize(recordings_directory: &Path, job_id: JobId) -> Option<RecordingReport> {
    let directory = job_directory(recordings_directory, job_id);
    if !directory
        .join(streambot_core::job_files::FINALIZE_PENDING_FILE_NAME)
        .exists()
    {
        return None;
    }
    let text =
        std::fs::read(directory.join(streambot_core::job_files::RECORDING_FILE_NAME)).ok()?;
    match serde_json::from_slice::<RecordingReport>(&text) {
        Ok(mut report) => {
            // Where the parts are now (the directory may have been mounted elsewhere).
            report.output_directory = directory;
            Some(report)
        }
        Err(error) => {
            tracing::warn!(%job_id, %error, "the interrupted finalize's report cannot be read; recording again");
            None
        }
    }
}

/// The finalize report of a job whose finalize finished before (`finalize-pending` and
/// `finalized.json` in its directory): its worker was lost or stopped while storing the files.
fn finalized_before(directory: &Path) -> Option<FinalizeReport> {
    if !directory
        .join(streambot_core::job_files::FINALIZE_PENDING_FILE_NAME)
        .exists()
    {
        return None;
    }
    let text =
        std::fs::read(directory.join(streambot_core::job_files::FINALIZED_FILE_NAME)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// `finalized.json` beside the files: what the bot sends and the dashboard lists.
fn write_finalize_report(directory: &Path, report: &FinalizeReport) {
    let path = directory.join(streambot_core::job_files::FINALIZED_FILE_NAME);
    if let Err(error) = streambot_core::local_files::write_json_atomically(&path, report) {
        tracing::warn!(%error, "could not write the finalize report");
    }
}

/// Runs `work` (finalize, storage, delivery) while the worker's heartbeat renews the job's
/// lease with all the others (one `renew_leases` batch per beat: no renewal of its own here);
/// stops it (drops it, killing what it started) as soon as the heartbeat reports the lease lost.
async fn until_lease_lost<F: Future>(
    lease_outcomes: &watch::Receiver<Option<RenewalOutcome>>,
    job_id: JobId,
    work: F,
) -> Result<F::Output, JobsError> {
    let mut lease_outcomes = lease_outcomes.clone();
    let lost = |outcome: &Option<RenewalOutcome>| match outcome {
        Some(RenewalOutcome::LeaseLost {
            held_epoch,
            current_epoch,
        }) => Some(JobsError::LeaseLost {
            job_id,
            held_epoch: *held_epoch,
            current_epoch: *current_epoch,
        }),
        _ => None,
    };
    if let Some(error) = lost(&lease_outcomes.borrow_and_update()) {
        return Err(error);
    }
    tokio::pin!(work);
    loop {
        tokio::select! {
            output = &mut work => return Ok(output),
            changed = lease_outcomes.changed() => {
                if changed.is_err() {
                    // Out of the heartbeat (the job's task is ending): nothing more to hear.
                    return Ok(work.await);
                }
                if let Some(error) = lost(&lease_outcomes.borrow_and_update()) {
                    tracing::warn!(%job_id, "lease lost while finishing: another worker owns this job now; stopping");
                    return Err(error);
                }
            }
        }
    }
}

/// A recording that ended, being turned into delivered files under a renewed lease.
struct FinishingJob<'a> {
    config: &'a WorkerConfig,
    job: &'a Job,
    report: &'a RecordingReport,
}

impl FinishingJob<'_> {
    /// Finalize (remux, check, thumbnail) and write `finalized.json`.
    async fn finalize<E: RecordingEngine>(
        &self,
        engine: &E,
        shutdown: &CancellationToken,
    ) -> Option<FinalizeReport> {
        // A bounded pool per worker: re-encoding finalizes apart (few, CPU-heavy), remuxes
        // beside them; a job waiting here keeps its lease (the heartbeat renews it).
        let transcodes =
            streambot_recorder::finalize::transcode_preset_for(self.job.options.quality).is_some();
        let pool = if transcodes {
            &self.config.transcode_slots
        } else {
            &self.config.finalize_slots
        };
        let _finalize_slot = pool.acquire().await;
        let finalized = engine
            .finalize(self.report, &self.job.options, shutdown)
            .await?;
        write_finalize_report(&self.report.output_directory, &finalized);
        for failure in &finalized.failures {
            tracing::warn!(job_id = %self.job.id, part = failure.part_number, detail = %failure.detail, "a part could not be finalized; it is kept");
        }
        Some(finalized)
    }

    /// Hand the finished files to storage and write `stored.json`; the parts to deliver.
    async fn store(&self, finalized: &FinalizeReport) -> Vec<DeliveredPart> {
        let Some(storage) = &self.config.storage else {
            return crate::part_delivery::finished_parts(&self.report.output_directory);
        };
        crate::delivery::store_finished_files(
            storage,
            self.job,
            &self.report.output_directory,
            finalized,
        )
        .await
        .parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renewal_that_changes_nothing_does_not_wake_the_job_but_a_retry_or_a_loss_does() {
        let record = RenewalOutcome::Renewed {
            desired_state: DesiredJobState::Record,
        };
        let pause = RenewalOutcome::Renewed {
            desired_state: DesiredJobState::Pause,
        };
        let failed = RenewalOutcome::Failed("the store is restarting".to_string());
        let lost = RenewalOutcome::LeaseLost {
            held_epoch: 1,
            current_epoch: 2,
        };
        // The first renewal, a changed desired state, the renewal after a failure: heard.
        assert!(renewal_is_news(None, &record, false));
        assert!(renewal_is_news(Some(&record), &pause, false));
        assert!(renewal_is_news(Some(&failed), &record, false));
        // The same desired state again: not heard, unless the job could not apply it.
        assert!(!renewal_is_news(Some(&record), &record, false));
        assert!(renewal_is_news(Some(&record), &record, true));
        // Failures and a lost lease are always heard (each failure is logged).
        assert!(renewal_is_news(Some(&failed), &failed, false));
        assert!(renewal_is_news(Some(&record), &lost, false));
    }

    #[test]
    fn claims_stop_at_the_emergency_fraction_or_without_free_space() {
        assert_eq!(disk_refuses_claims(94, Some(100), Some(u64::MAX), 10), None);
        assert!(
            disk_refuses_claims(95, Some(100), Some(u64::MAX), 10)
                .is_some_and(|reason| reason.contains("MAX_DISK_USAGE_GB"))
        );
        assert_eq!(disk_refuses_claims(u64::MAX, None, Some(10), 10), None);
        assert!(
            disk_refuses_claims(0, None, Some(9), 10).is_some_and(|reason| reason.contains("free"))
        );
        // Free space unknown (statvfs failed): only the usage limit applies.
        assert_eq!(disk_refuses_claims(0, None, None, 10), None);
    }

    #[test]
    fn only_a_job_without_a_duration_gets_the_cap() {
        let cap = Some(Duration::from_secs(7200));
        let none = RecordingOptions::default();
        assert_eq!(
            effective_recording_options(&none, cap).maximum_duration,
            cap
        );
        let own = RecordingOptions {
            maximum_duration: Some(Duration::from_secs(60)),
            ..RecordingOptions::default()
        };
        assert_eq!(
            effective_recording_options(&own, cap).maximum_duration,
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            effective_recording_options(&none, None).maximum_duration,
            None
        );
    }

    #[test]
    fn the_recordings_file_system_reports_free_space() {
        let directory = tempfile::tempdir().expect("temporary directory");
        assert!(free_disk_bytes(directory.path()).is_some_and(|free| free > 0));
    }
}
