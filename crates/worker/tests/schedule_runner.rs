//! Scheduled recordings end to end through the real worker: a schedule a few seconds ahead
//! starts its job by itself (the runner creates and queues it; a worker claims and records it),
//! with the schedule's duration and a wait for the stream at least as long as the lead; two
//! runners side by side start it once.

#[path = "../../store/tests/common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{Timelike, Utc};
use common::{redis_backend_for_test, sqlite_backend_for_test};
use streambot_core::{
    JobOwner, JobPriority, JobState, NewSchedule, RecordingEndReason, RecordingOptions, Recurrence,
    ScheduleRule,
};
use streambot_hls::DesiredState;
use streambot_recorder::{RecorderEvent, RecordingOutcome, RecordingReport, RecordingSettings};
use streambot_store::{JobBackend, JobFilter, ScheduleCreation, ScheduleStore};
use streambot_worker::{
    RecordingEngine, ScheduleRunnerConfig, WorkerConfig, run_schedule_runner, run_worker,
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Resolves at once, records nothing, ends as the stream ended; remembers the options.
#[derive(Clone, Default)]
struct EndsAtOnceEngine {
    seen_options: Arc<Mutex<Vec<RecordingOptions>>>,
}

impl RecordingEngine for EndsAtOnceEngine {
    async fn record(
        &self,
        url: String,
        options: RecordingOptions,
        settings: RecordingSettings,
        _control: watch::Receiver<DesiredState>,
        events: mpsc::UnboundedSender<RecorderEvent>,
    ) -> RecordingReport {
        self.seen_options
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .push(options);
        let _ = events.send(RecorderEvent::Resolved {
            source: streambot_recorder::ResolvedSource {
                requested_url: url.clone(),
                main_media_playlist_url: url,
                audio_media_playlist_url: None,
                backup_media_playlist_urls: Vec::new(),
                choice: None,
                audio_only: false,
            },
        });
        RecordingReport {
            outcome: RecordingOutcome::Finished {
                reason: RecordingEndReason::StreamEnded,
            },
            source: None,
            main: None,
            audio: None,
            output_directory: settings.output_directory,
        }
    }
}

async fn a_schedule_starts_its_job_by_itself<B: JobBackend + ScheduleStore>(backend: B) {
    let directory = tempfile::tempdir().expect("tempdir");
    let shutdown = CancellationToken::new();
    let engine = EndsAtOnceEngine::default();
    let mut config = WorkerConfig::new("worker-schedules", directory.path().to_path_buf());
    config.claim_wait = Duration::from_millis(300);
    let worker = tokio::spawn(run_worker(
        backend.clone(),
        engine.clone(),
        config,
        shutdown.clone(),
    ));
    let runner_config = ScheduleRunnerConfig {
        interval: Duration::from_millis(200),
    };
    // Two runners, as with two `streambot scheduler` processes.
    let runners = [
        tokio::spawn(run_schedule_runner(
            backend.clone(),
            runner_config.clone(),
            shutdown.clone(),
        )),
        tokio::spawn(run_schedule_runner(
            backend.clone(),
            runner_config,
            shutdown.clone(),
        )),
    ];

    // Every day at (now + 4 s), started 2 s early: due about 2 s from now.
    let occurrence = Utc::now() + chrono::Duration::seconds(4);
    let berlin = streambot_core::parse_time_zone("Europe/Berlin").expect("zone");
    let creation = backend
        .create_schedule(
            NewSchedule {
                owner: JobOwner {
                    user_id: 7,
                    chat_id: 7,
                },
                url: "https://example.com/show/live.m3u8".to_string(),
                options: RecordingOptions::default(),
                priority: JobPriority::Normal,
                rule: ScheduleRule {
                    time_zone: "Europe/Berlin".to_string(),
                    start_date: occurrence.with_timezone(&berlin).date_naive(),
                    time_of_day: occurrence
                        .with_timezone(&berlin)
                        .time()
                        .with_nanosecond(0)
                        .expect("time"),
                    recurrence: Recurrence::Daily,
                },
                duration: Duration::from_secs(90),
                lead: Duration::from_secs(2),
            },
            Some(20),
        )
        .await
        .expect("create");
    let ScheduleCreation::Created(schedule) = creation else {
        panic!("refused");
    };
    let start_at = schedule.next_start_at().expect("a next start");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let job = loop {
        let jobs = backend
            .list_jobs(JobFilter {
                owner_user_id: Some(7),
                ..JobFilter::default()
            })
            .await
            .expect("list");
        if let Some(job) = jobs.iter().find(|job| job.state == JobState::Completed) {
            break job.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no completed job for the schedule: {jobs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(job.created_at >= start_at, "not started before its time");
    let scheduled = job.scheduled.clone().expect("marked with its occurrence");
    assert_eq!(scheduled.schedule_id, schedule.id);
    assert_eq!(Some(scheduled.scheduled_at), schedule.next_occurrence_at);
    let all = backend
        .list_jobs(JobFilter {
            owner_user_id: Some(7),
            ..JobFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(all.len(), 1, "two runners, one job: {all:?}");
    let seen = engine
        .seen_options
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .clone();
    assert_eq!(seen.len(), 1);
    let options = seen.first().expect("one recording");
    assert!(options.maximum_duration <= Some(Duration::from_secs(90)));
    assert!(options.wait_for_live >= Duration::from_secs(2));
    let after = backend
        .get_schedule(schedule.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(after.occurrences_started, 1);
    assert_eq!(after.last_job_id, Some(job.id));
    assert_eq!(
        after.next_occurrence_at,
        schedule
            .next_occurrence_at
            .map(|at| at + chrono::Duration::days(1))
    );

    shutdown.cancel();
    worker.await.expect("worker task").expect("worker");
    for runner in runners {
        runner.await.expect("runner task").expect("runner");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_schedule_starts_its_job_by_itself() {
    let (backend, _directory) = sqlite_backend_for_test().await;
    a_schedule_starts_its_job_by_itself(backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_schedule_starts_its_job_by_itself() {
    let Some(backend) = redis_backend_for_test().await else {
        return;
    };
    a_schedule_starts_its_job_by_itself(backend).await;
}
