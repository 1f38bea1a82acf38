//! The worker runtime against both backends, with stand-in recording engines: slots, the panic
//! boundary, retries and dead-lettering, control (pause/resume/stop from another connection) and
//! graceful shutdown. The real recorder is exercised in crates/worker/tests/worker_recording.rs and
//! the two-process crash test in crates/streambot/tests/.

#[path = "../../store/tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{redis_backend_for_test, sqlite_backend_for_test};
use streambot_core::{
    DesiredJobState, JobId, JobOwner, JobPriority, JobState, NewJob, RecordingEndReason,
    RecordingOptions,
};
use streambot_hls::DesiredState;
use streambot_recorder::{RecorderEvent, RecordingOutcome, RecordingReport, RecordingSettings};
use streambot_store::{JobBackend, submit_job};
use streambot_worker::{RecordingEngine, WorkerConfig, run_worker};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy)]
enum Behaviour {
    /// Sleeps this long, then finishes.
    FinishAfter(Duration),
    /// Panics when the URL says so, finishes at once otherwise.
    PanicOnRequest,
    /// Always fails with a transient error.
    FailTransiently,
    /// Follows the control channel until told to stop.
    FollowControl,
    /// The link does not resolve (404): fails before reporting it resolved.
    FailBeforeResolving,
    /// Writes this many bytes into the job's directory, then follows the control channel.
    WriteThenFollowControl(usize),
}

#[derive(Clone)]
struct StandInEngine {
    behaviour: Behaviour,
    /// How long finalize takes (remux and checks of a long recording).
    finalize_takes: Duration,
    /// How long reading the link takes before the engine reports it resolved (a stop meanwhile
    /// ends the recording with nothing recorded).
    resolve_takes: Duration,
    running_now: Arc<AtomicUsize>,
    most_at_once: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
    finalize_calls: Arc<AtomicUsize>,
    /// Finalizes running now (one ends when it finishes or is stopped: its future dropped).
    finalizing_now: Arc<AtomicUsize>,
    /// The options of every recording started.
    seen_options: Arc<std::sync::Mutex<Vec<RecordingOptions>>>,
}

impl StandInEngine {
    fn new(behaviour: Behaviour) -> Self {
        StandInEngine {
            behaviour,
            finalize_takes: Duration::ZERO,
            resolve_takes: Duration::ZERO,
            running_now: Arc::default(),
            most_at_once: Arc::default(),
            calls: Arc::default(),
            finalize_calls: Arc::default(),
            finalizing_now: Arc::default(),
            seen_options: Arc::default(),
        }
    }
}

fn report(settings: &RecordingSettings, outcome: RecordingOutcome) -> RecordingReport {
    RecordingReport {
        outcome,
        source: None,
        main: None,
        audio: None,
        output_directory: settings.output_directory.clone(),
    }
}

impl RecordingEngine for StandInEngine {
    async fn record(
        &self,
        url: String,
        options: RecordingOptions,
        settings: RecordingSettings,
        mut control: watch::Receiver<DesiredState>,
        events: mpsc::UnboundedSender<RecorderEvent>,
    ) -> RecordingReport {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.seen_options
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .push(options);
        if let Behaviour::FailBeforeResolving = self.behaviour {
            return report(
                &settings,
                RecordingOutcome::Failed {
                    message: "The link returned 404 Not Found.".to_string(),
                    retryable: false,
                    failure: streambot_core::FailureKind::NotFound,
                },
            );
        }
        let resolving = tokio::time::sleep(self.resolve_takes);
        tokio::pin!(resolving);
        loop {
            if matches!(
                *control.borrow_and_update(),
                DesiredState::Stop | DesiredState::StopNow
            ) {
                return report(
                    &settings,
                    RecordingOutcome::Finished {
                        reason: RecordingEndReason::Stopped,
                    },
                );
            }
            tokio::select! {
                _ = &mut resolving => break,
                _ = control.changed() => {}
            }
        }
        let _ = events.send(RecorderEvent::Resolved {
            source: streambot_recorder::ResolvedSource {
                requested_url: url.clone(),
                main_media_playlist_url: url.clone(),
                audio_media_playlist_url: None,
                choice: None,
                audio_only: false,
                backup_media_playlist_urls: Vec::new(),
            },
        });
        let now = self.running_now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        let outcome = match self.behaviour {
            Behaviour::FinishAfter(duration) => {
                tokio::time::sleep(duration).await;
                RecordingOutcome::Finished {
                    reason: RecordingEndReason::StreamEnded,
                }
            }
            Behaviour::PanicOnRequest => {
                if url.contains("panic") {
                    self.running_now.fetch_sub(1, Ordering::SeqCst);
                    panic!("stand-in engine asked to panic");
                }
                RecordingOutcome::Finished {
                    reason: RecordingEndReason::StreamEnded,
                }
            }
            Behaviour::FailTransiently => RecordingOutcome::Failed {
                message: "the origin answered 503".to_string(),
                retryable: true,
                failure: streambot_core::FailureKind::ServerError,
            },
            Behaviour::FailBeforeResolving => unreachable!("returned above"),
            Behaviour::WriteThenFollowControl(bytes) => {
                std::fs::create_dir_all(&settings.output_directory).expect("job directory");
                std::fs::write(
                    settings.output_directory.join("main-0001.ts"),
                    vec![0x47u8; bytes],
                )
                .expect("write a part");
                loop {
                    let state = *control.borrow_and_update();
                    if matches!(state, DesiredState::Stop | DesiredState::StopNow)
                        || control.changed().await.is_err()
                    {
                        break RecordingOutcome::Finished {
                            reason: RecordingEndReason::Stopped,
                        };
                    }
                }
            }
            Behaviour::FollowControl => loop {
                let state = *control.borrow_and_update();
                if matches!(state, DesiredState::Stop | DesiredState::StopNow) {
                    break RecordingOutcome::Finished {
                        reason: RecordingEndReason::Stopped,
                    };
                }
                if control.changed().await.is_err() {
                    break RecordingOutcome::Finished {
                        reason: RecordingEndReason::Stopped,
                    };
                }
            },
        };
        self.running_now.fetch_sub(1, Ordering::SeqCst);
        report(&settings, outcome)
    }

    async fn finalize(
        &self,
        _report: &RecordingReport,
        _options: &RecordingOptions,
        _cancel: &tokio_util::sync::CancellationToken,
    ) -> Option<streambot_recorder::finalize::FinalizeReport> {
        self.finalize_calls.fetch_add(1, Ordering::SeqCst);
        let _running = RunningFinalize::start(&self.finalizing_now);
        tokio::time::sleep(self.finalize_takes).await;
        Some(streambot_recorder::finalize::FinalizeReport::default())
    }
}

/// Counts a finalize as running until it ends or is dropped.
struct RunningFinalize(Arc<AtomicUsize>);

impl RunningFinalize {
    fn start(finalizing_now: &Arc<AtomicUsize>) -> Self {
        finalizing_now.fetch_add(1, Ordering::SeqCst);
        RunningFinalize(finalizing_now.clone())
    }
}

impl Drop for RunningFinalize {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn fast_config(directory: &std::path::Path, worker_id: &str) -> WorkerConfig {
    let mut config = WorkerConfig::new(worker_id, directory.to_path_buf());
    config.heartbeat_interval = Duration::from_millis(300);
    config.lease_duration = Duration::from_secs(3);
    config.claim_wait = Duration::from_millis(300);
    config.retry_backoff_base = Duration::from_millis(50);
    config
}

fn request(url: &str) -> NewJob {
    NewJob {
        owner: JobOwner {
            user_id: 1,
            chat_id: 1,
        },
        url: url.to_string(),
        options: RecordingOptions::default(),
        priority: JobPriority::Normal,
    }
}

async fn wait_for_state<B: JobBackend>(
    backend: &B,
    job_id: JobId,
    wanted: JobState,
    within: Duration,
) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let job = backend.get_job(job_id).await.expect("get").expect("exists");
        if job.state == wanted {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {job_id} is {} after {within:?}, expected {wanted}",
            job.state
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The job's delivery is completed (its lease cleared): a moment after its terminal state, the
/// worker's `complete` follows the state change.
async fn wait_for_lease_released<B: JobBackend>(backend: &B, job_id: JobId, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let job = backend.get_job(job_id).await.expect("get").expect("exists");
        if job.lease.is_none() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {job_id} still holds a lease after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct RunningWorker {
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
    _directory: tempfile::TempDir,
}

impl RunningWorker {
    fn start<B: JobBackend, E: RecordingEngine>(
        backend: B,
        engine: E,
        adjust: impl FnOnce(&mut WorkerConfig),
    ) -> Self {
        let directory = tempfile::tempdir().expect("tempdir");
        let mut config = fast_config(
            directory.path(),
            &format!("worker-{:08x}", rand::random::<u32>()),
        );
        adjust(&mut config);
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let handle = tokio::spawn(async move {
            run_worker(backend, engine, config, token)
                .await
                .expect("worker");
        });
        RunningWorker {
            shutdown,
            handle,
            _directory: directory,
        }
    }

    async fn stop(self) -> Duration {
        let started = std::time::Instant::now();
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("worker stops within 10 s")
            .expect("join");
        started.elapsed()
    }
}

async fn the_slot_quota_is_respected<B: JobBackend>(backend: B) {
    let engine = StandInEngine::new(Behaviour::FinishAfter(Duration::from_millis(400)));
    let worker = RunningWorker::start(backend.clone(), engine.clone(), |config| {
        config.concurrency = 2;
    });
    let mut identifiers = Vec::new();
    for index in 0..5 {
        identifiers.push(
            submit_job(
                &backend,
                request(&format!("https://example.com/{index}.m3u8")),
            )
            .await
            .expect("submit")
            .id,
        );
    }
    for job_id in identifiers {
        wait_for_state(
            &backend,
            job_id,
            JobState::Completed,
            Duration::from_secs(15),
        )
        .await;
    }
    assert_eq!(engine.most_at_once.load(Ordering::SeqCst), 2);
    assert_eq!(engine.calls.load(Ordering::SeqCst), 5);
    worker.stop().await;
}

async fn a_panic_fails_only_its_job<B: JobBackend>(backend: B) {
    let engine = StandInEngine::new(Behaviour::PanicOnRequest);
    let worker = RunningWorker::start(backend.clone(), engine, |_| {});
    let doomed = submit_job(&backend, request("https://example.com/panic.m3u8"))
        .await
        .expect("submit");
    wait_for_state(
        &backend,
        doomed.id,
        JobState::Failed,
        Duration::from_secs(10),
    )
    .await;
    let failed = backend
        .get_job(doomed.id)
        .await
        .expect("get")
        .expect("exists");
    assert!(failed.error.as_deref().unwrap_or("").contains("crashed"));
    assert_eq!(failed.failure, Some(streambot_core::FailureKind::Internal));
    let fine = submit_job(&backend, request("https://example.com/fine.m3u8"))
        .await
        .expect("submit");
    wait_for_state(
        &backend,
        fine.id,
        JobState::Completed,
        Duration::from_secs(10),
    )
    .await;
    worker.stop().await;
}

async fn transient_failures_are_retried_then_dead_lettered<B: JobBackend>(backend: B) {
    let engine = StandInEngine::new(Behaviour::FailTransiently);
    let worker = RunningWorker::start(backend.clone(), engine.clone(), |_| {});
    let job = submit_job(&backend, request("https://example.com/flaky.m3u8"))
        .await
        .expect("submit");
    wait_for_state(&backend, job.id, JobState::Failed, Duration::from_secs(15)).await;
    assert_eq!(engine.calls.load(Ordering::SeqCst), 3, "three attempts");
    let failed = backend.get_job(job.id).await.expect("get").expect("exists");
    assert_eq!(failed.attempt, 3);
    assert_eq!(
        failed.failure,
        Some(streambot_core::FailureKind::ServerError),
        "the recorder's class of the failure is kept"
    );
    assert_eq!(backend.dead_letters().await.expect("dead"), vec![job.id]);
    worker.stop().await;
}

/// `control_backend` is a second connection (another process in production): the nudge goes
/// through the store's events, and the heartbeat reconciles if it is lost.
async fn pause_resume_and_stop_reach_the_worker<B: JobBackend>(backend: B, control_backend: B) {
    let engine = StandInEngine::new(Behaviour::FollowControl);
    let worker = RunningWorker::start(backend.clone(), engine, |_| {});
    let job = submit_job(&control_backend, request("https://example.com/live.m3u8"))
        .await
        .expect("submit");
    wait_for_state(
        &control_backend,
        job.id,
        JobState::Recording,
        Duration::from_secs(10),
    )
    .await;
    control_backend
        .set_desired_state(job.id, DesiredJobState::Pause)
        .await
        .expect("pause");
    wait_for_state(
        &control_backend,
        job.id,
        JobState::Paused,
        Duration::from_secs(5),
    )
    .await;
    control_backend
        .set_desired_state(job.id, DesiredJobState::Record)
        .await
        .expect("resume");
    wait_for_state(
        &control_backend,
        job.id,
        JobState::Recording,
        Duration::from_secs(5),
    )
    .await;
    control_backend
        .set_desired_state(job.id, DesiredJobState::Stop)
        .await
        .expect("stop");
    wait_for_state(
        &control_backend,
        job.id,
        JobState::Completed,
        Duration::from_secs(5),
    )
    .await;
    worker.stop().await;
}

async fn shutdown_leaves_jobs_resumable<B: JobBackend>(backend: B) {
    let engine = StandInEngine::new(Behaviour::FollowControl);
    let worker = RunningWorker::start(backend.clone(), engine, |_| {});
    let job = submit_job(&backend, request("https://example.com/live.m3u8"))
        .await
        .expect("submit");
    wait_for_state(
        &backend,
        job.id,
        JobState::Recording,
        Duration::from_secs(10),
    )
    .await;
    let took = worker.stop().await;
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
    let left = backend.get_job(job.id).await.expect("get").expect("exists");
    assert_eq!(left.state, JobState::Queued);
    assert_eq!(left.attempt, 0);
    // The next worker picks it up.
    let engine = StandInEngine::new(Behaviour::FollowControl);
    let next = RunningWorker::start(backend.clone(), engine, |_| {});
    wait_for_state(
        &backend,
        job.id,
        JobState::Recording,
        Duration::from_secs(10),
    )
    .await;
    next.stop().await;
}

async fn a_priority_only_worker_leaves_normal_jobs<B: JobBackend>(backend: B) {
    let engine = StandInEngine::new(Behaviour::FinishAfter(Duration::from_millis(50)));
    let worker = RunningWorker::start(backend.clone(), engine, |config| {
        config.queues = vec![JobPriority::Priority];
    });
    let normal = submit_job(&backend, request("https://example.com/normal.m3u8"))
        .await
        .expect("submit");
    let mut urgent_request = request("https://example.com/urgent.m3u8");
    urgent_request.priority = JobPriority::Priority;
    let urgent = submit_job(&backend, urgent_request).await.expect("submit");
    wait_for_state(
        &backend,
        urgent.id,
        JobState::Completed,
        Duration::from_secs(10),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let waiting = backend
        .get_job(normal.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(waiting.state, JobState::Queued);
    worker.stop().await;
}

/// Finalize (and upload) can outlast the lease many times over: the worker keeps renewing it, so
/// the reaper never takes the job back from a worker that is still finishing it. The renewals
/// are the heartbeat's batches (`renew_leases`), never one of the job's own (`renew_lease`).
async fn a_slow_finalize_keeps_its_lease<B: JobBackend>(backend: B) {
    let mut engine = StandInEngine::new(Behaviour::FinishAfter(Duration::from_millis(100)));
    engine.finalize_takes = Duration::from_secs(8);
    let counted = common::counting::CountingBackend::new(backend.clone());
    let worker = RunningWorker::start(counted.clone(), engine, |_| {});
    let job = submit_job(&backend, request("https://example.com/slow-finalize.m3u8"))
        .await
        .expect("submit");
    wait_for_state(
        &backend,
        job.id,
        JobState::Finalizing,
        Duration::from_secs(10),
    )
    .await;
    wait_for_state(
        &backend,
        job.id,
        JobState::Completed,
        Duration::from_secs(20),
    )
    .await;
    let finished = backend.get_job(job.id).await.expect("get").expect("exists");
    assert!(finished.error.is_none(), "{:?}", finished.error);
    worker.stop().await;
    assert_eq!(
        counted.calls_of("renew_lease"),
        0,
        "a job renewed its own lease beside the heartbeat: {:?}",
        counted.all_calls()
    );
    // 8 s of finalize at a 300 ms heartbeat (the figure is loose: a loaded machine beats late).
    assert!(
        counted.calls_of("renew_leases") >= 5,
        "{:?}",
        counted.all_calls()
    );
}

/// A lease lost while finalizing (the store unreachable for longer than the lease, the reaper
/// took the job back) stops the finalize at the heartbeat that hears it, and the old worker
/// writes nothing more to the job.
async fn a_lease_lost_while_finalizing_stops_the_finalize<B: JobBackend>(backend: B) {
    let mut engine = StandInEngine::new(Behaviour::FinishAfter(Duration::from_millis(100)));
    engine.finalize_takes = Duration::from_secs(120);
    let finalizing_now = engine.finalizing_now.clone();
    let counted = common::counting::CountingBackend::new(backend.clone());
    let worker = RunningWorker::start(counted.clone(), engine, |config| config.concurrency = 1);
    let job = submit_job(
        &backend,
        request("https://example.com/lost-in-finalize.m3u8"),
    )
    .await
    .expect("submit");
    wait_for_state(
        &backend,
        job.id,
        JobState::Finalizing,
        Duration::from_secs(10),
    )
    .await;
    counted.hold_back_renewals(true);
    // The 3 s lease lapses; the reaper takes the job back (a new fencing epoch; queued again, or
    // failed when it cannot be resumed).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let reaped = backend.reap_expired_leases().await.expect("reap");
        let current = backend.get_job(job.id).await.expect("get").expect("exists");
        if reaped.contains(&job.id) || current.fencing_epoch > job.fencing_epoch + 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lease never lapsed: {current:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Nobody records it again: cancelled if queued (the worker's one slot is still busy).
    let reaped = backend.get_job(job.id).await.expect("get").expect("exists");
    let reaped = if reaped.state == JobState::Queued {
        backend
            .set_desired_state(job.id, DesiredJobState::Stop)
            .await
            .expect("cancel the queued job")
    } else {
        reaped
    };
    assert_eq!(finalizing_now.load(Ordering::SeqCst), 1);
    counted.hold_back_renewals(false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while finalizing_now.load(Ordering::SeqCst) > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the finalize went on after the lease was lost"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.stop().await;
    let after = backend.get_job(job.id).await.expect("get").expect("exists");
    assert_eq!(
        (after.state, after.fencing_epoch),
        (reaped.state, reaped.fencing_epoch),
        "{after:?}"
    );
}

/// The job stays `Starting` ("Checking the link…") until the recorder reports the link
/// resolved; a pause asked meanwhile applies once it is.
async fn a_job_is_starting_until_the_link_resolves<B: JobBackend>(backend: B) {
    let mut engine = StandInEngine::new(Behaviour::FollowControl);
    engine.resolve_takes = Duration::from_millis(1500);
    let worker = RunningWorker::start(backend.clone(), engine, |_| {});
    let mut events = backend.subscribe_events();
    let job = submit_job(&backend, request("https://example.com/slow-link.m3u8"))
        .await
        .expect("submit");
    wait_for_state(&backend, job.id, JobState::Starting, Duration::from_secs(5)).await;
    backend
        .set_desired_state(job.id, DesiredJobState::Pause)
        .await
        .expect("pause while starting");
    // Two heartbeats later the link is still being read: still `Starting`.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let checking = backend.get_job(job.id).await.expect("get").expect("exists");
    assert_eq!(checking.state, JobState::Starting);
    wait_for_state(&backend, job.id, JobState::Paused, Duration::from_secs(5)).await;
    let mut walked = Vec::new();
    while let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(200), events.recv()).await
    {
        if let streambot_core::JobEvent::StateChanged {
            job_id, from, to, ..
        } = event
            && job_id == job.id
        {
            walked.push((from, to));
        }
    }
    assert_eq!(
        walked,
        vec![
            (JobState::Queued, JobState::Starting),
            (JobState::Starting, JobState::Recording),
            (JobState::Recording, JobState::Paused),
        ]
    );
    worker.stop().await;
}

async fn a_link_that_does_not_resolve_fails_from_starting<B: JobBackend>(backend: B) {
    let engine = StandInEngine::new(Behaviour::FailBeforeResolving);
    let worker = RunningWorker::start(backend.clone(), engine, |_| {});
    let mut events = backend.subscribe_events();
    let job = submit_job(&backend, request("https://example.com/missing.m3u8"))
        .await
        .expect("submit");
    wait_for_state(&backend, job.id, JobState::Failed, Duration::from_secs(10)).await;
    wait_for_lease_released(&backend, job.id, Duration::from_secs(5)).await;
    let failed = backend.get_job(job.id).await.expect("get").expect("exists");
    assert_eq!(failed.failure, Some(streambot_core::FailureKind::NotFound));
    let mut went_through_recording = false;
    let mut failed_from = None;
    while let Ok(Ok(event)) = tokio::time::timeout(Duration::from_millis(200), events.recv()).await
    {
        if let streambot_core::JobEvent::StateChanged {
            job_id, from, to, ..
        } = event
            && job_id == job.id
        {
            went_through_recording |= to == JobState::Recording;
            if to == JobState::Failed {
                failed_from = Some(from);
            }
        }
    }
    assert!(!went_through_recording);
    assert_eq!(failed_from, Some(JobState::Starting));
    worker.stop().await;
}

/// Stop before the link resolved: nothing was recorded, so the job is cancelled.
async fn stopping_a_starting_job_cancels_it<B: JobBackend>(backend: B) {
    let mut engine = StandInEngine::new(Behaviour::FollowControl);
    engine.resolve_takes = Duration::from_secs(30);
    let worker = RunningWorker::start(backend.clone(), engine, |_| {});
    let job = submit_job(&backend, request("https://example.com/never.m3u8"))
        .await
        .expect("submit");
    wait_for_state(&backend, job.id, JobState::Starting, Duration::from_secs(5)).await;
    backend
        .set_desired_state(job.id, DesiredJobState::Stop)
        .await
        .expect("stop while starting");
    wait_for_state(
        &backend,
        job.id,
        JobState::Cancelled,
        Duration::from_secs(5),
    )
    .await;
    // The delivery is completed right after the state change.
    wait_for_lease_released(&backend, job.id, Duration::from_secs(5)).await;
    worker.stop().await;
}

/// Issue 11 item 7: no duration means the maximum recording duration, never "forever".
async fn a_job_without_a_duration_gets_the_maximum<B: JobBackend>(backend: B) {
    let engine = StandInEngine::new(Behaviour::FinishAfter(Duration::from_millis(50)));
    let worker = RunningWorker::start(backend.clone(), engine.clone(), |config| {
        config.default_maximum_duration = Some(Duration::from_secs(7200));
    });
    let endless = submit_job(&backend, request("https://example.com/endless.m3u8"))
        .await
        .expect("submit");
    let mut short = request("https://example.com/short.m3u8");
    short.options.maximum_duration = Some(Duration::from_secs(90));
    let short = submit_job(&backend, short).await.expect("submit");
    for job_id in [endless.id, short.id] {
        wait_for_state(
            &backend,
            job_id,
            JobState::Completed,
            Duration::from_secs(10),
        )
        .await;
    }
    let mut durations: Vec<Option<Duration>> = engine
        .seen_options
        .lock()
        .expect("options")
        .iter()
        .map(|options| options.maximum_duration)
        .collect();
    durations.sort();
    assert_eq!(
        durations,
        vec![
            Some(Duration::from_secs(90)),
            Some(Duration::from_secs(7200))
        ],
        "a job's own duration is kept; none becomes the cap"
    );
    worker.stop().await;
}

/// The per-user disk quota is enforced while recording: the job stops, what it has is finalized
/// (and stored), and it fails with `LimitReached` and a message that says why.
async fn the_disk_quota_stops_a_recording_and_keeps_what_it_has<B: JobBackend>(backend: B) {
    let engine = StandInEngine::new(Behaviour::WriteThenFollowControl(200_000));
    let worker = RunningWorker::start(backend.clone(), engine.clone(), |config| {
        config.user_disk_quota_bytes = Some(100_000);
        config.quota_check_interval = Duration::from_millis(200);
    });
    let job = submit_job(&backend, request("https://example.com/big.m3u8"))
        .await
        .expect("submit");
    wait_for_state(&backend, job.id, JobState::Failed, Duration::from_secs(10)).await;
    let stopped = backend.get_job(job.id).await.expect("get").expect("exists");
    assert_eq!(
        stopped.failure,
        Some(streambot_core::FailureKind::LimitReached)
    );
    let message = stopped.error.unwrap_or_default();
    assert!(message.contains("disk quota"), "{message}");
    assert_eq!(
        engine.finalize_calls.load(Ordering::SeqCst),
        1,
        "what was recorded is finalized for delivery"
    );
    assert_eq!(engine.calls.load(Ordering::SeqCst), 1, "not retried");
    worker.stop().await;
}

/// An admin has no quota: the same recording goes on until stopped.
async fn the_disk_quota_spares_exempt_users<B: JobBackend>(backend: B) {
    let engine = StandInEngine::new(Behaviour::WriteThenFollowControl(200_000));
    let worker = RunningWorker::start(backend.clone(), engine, |config| {
        config.user_disk_quota_bytes = Some(100_000);
        config.quota_check_interval = Duration::from_millis(100);
        config.quota_exempt_user_ids.insert(1);
    });
    let job = submit_job(&backend, request("https://example.com/admin.m3u8"))
        .await
        .expect("submit");
    wait_for_state(
        &backend,
        job.id,
        JobState::Recording,
        Duration::from_secs(5),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let still = backend.get_job(job.id).await.expect("get").expect("exists");
    assert_eq!(still.state, JobState::Recording);
    worker.stop().await;
}

/// A worker whose disk is nearly full takes no new job, and takes it once there is room.
async fn a_full_disk_refuses_new_claims<B: JobBackend>(backend: B) {
    let engine = StandInEngine::new(Behaviour::FinishAfter(Duration::from_millis(50)));
    let recordings = tempfile::tempdir().expect("tempdir");
    let filler = recordings.path().join("filler.bin");
    std::fs::write(&filler, vec![0u8; 100_000]).expect("filler");
    let directory = recordings.path().to_path_buf();
    let worker = RunningWorker::start(backend.clone(), engine, move |config| {
        config.recordings_directory = directory;
        config.maximum_disk_bytes = Some(100_000);
        config.disk_check_interval = Duration::from_millis(200);
    });
    let job = submit_job(&backend, request("https://example.com/waits.m3u8"))
        .await
        .expect("submit");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let waiting = backend.get_job(job.id).await.expect("get").expect("exists");
    assert_eq!(waiting.state, JobState::Queued, "claimed with a full disk");
    std::fs::remove_file(&filler).expect("free the disk");
    wait_for_state(
        &backend,
        job.id,
        JobState::Completed,
        Duration::from_secs(10),
    )
    .await;
    worker.stop().await;
}

macro_rules! worker_tests {
    ($($case:ident),* $(,)?) => {
        mod sqlite_backend {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let (backend, _directory) = sqlite_backend_for_test().await;
                    super::$case(backend).await;
                }
            )*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn pause_resume_and_stop_reach_the_worker() {
                let (backend, directory) = sqlite_backend_for_test().await;
                let second = streambot_store::SqliteBackend::open_in_data_directory(directory.path())
                    .await
                    .expect("second connection");
                super::pause_resume_and_stop_reach_the_worker(backend, second).await;
            }
        }
        mod redis_backend {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(backend) = redis_backend_for_test().await else { return };
                    super::$case(backend).await;
                }
            )*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn pause_resume_and_stop_reach_the_worker() {
                let Some(url) = common::redis_url_for_test() else { return };
                let prefix = common::random_prefix();
                let backend = streambot_store::RedisBackend::connect(&url, &prefix).await.expect("connect");
                let second = streambot_store::RedisBackend::connect(&url, &prefix).await.expect("connect");
                super::pause_resume_and_stop_reach_the_worker(backend, second).await;
            }
        }
    };
}

worker_tests!(
    a_job_without_a_duration_gets_the_maximum,
    the_disk_quota_stops_a_recording_and_keeps_what_it_has,
    the_disk_quota_spares_exempt_users,
    a_full_disk_refuses_new_claims,
    a_job_is_starting_until_the_link_resolves,
    a_link_that_does_not_resolve_fails_from_starting,
    stopping_a_starting_job_cancels_it,
    a_slow_finalize_keeps_its_lease,
    a_lease_lost_while_finalizing_stops_the_finalize,
    the_slot_quota_is_respected,
    a_panic_fails_only_its_job,
    transient_failures_are_retried_then_dead_lettered,
    shutdown_leaves_jobs_resumable,
    a_priority_only_worker_leaves_normal_jobs,
);
