//! A Redis restart mid-recording, with the real binary: a private `redis-server` (AOF,
//! `appendfsync always`) serves two `streambot worker` processes; one records a live stream from the
//! project's HLS origin; Redis is stopped (SIGTERM, so the AOF is complete), left down ~3 s and
//! started again on the same port and directory. The workers reconnect and go on; the job is
//! neither lost nor run twice (one claim, epoch 1, one part, no media sequence twice in the
//! ledger) and completes when the stream ends; afterwards both workers still claim new jobs.
//!
//! Skipped when `redis-server` is not installed.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use streambot_core::job_directory;
use streambot_core::{JobId, JobState};
use streambot_hls::ledger::{SegmentState, read_ledger};
use streambot_store::RedisBackend;
use streambot_testkit::{OriginConfig, SegmentKind, spawn_origin};
use support::{
    RedisServer, WINDOW, WorkerEnvironment, ledger_path, ledger_so_far, live_origin,
    media_sequences_once, wait_for_completion, wait_for_job, wait_until,
};

const LIVE_SEGMENTS: u64 = 24;
const FIRST_MEDIA_SEQUENCE: u64 = 500;

fn claims_of(log: &str, job_id: JobId) -> usize {
    log.lines()
        .filter(|line| line.contains("claimed") && line.contains(job_id.as_str()))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_ride_out_a_redis_restart_and_the_job_runs_once() {
    let redis_directory = tempfile::tempdir().expect("tempdir");
    // An append-only file fsync'd on every write: nothing written is lost to the restart.
    let Some(mut redis) = RedisServer::start(
        redis_directory.path(),
        &["--appendonly", "yes", "--appendfsync", "always"],
    ) else {
        streambot_testkit::requirements::skip_or_fail(
            "redis-server",
            "apt-get install -y redis-server",
        );
        return;
    };
    let environment = WorkerEnvironment::redis(&redis.url(), "streambot:");
    let logs = || environment.logs(&["worker-a", "worker-b"]);
    let backend = RedisBackend::connect(&redis.url(), "streambot:")
        .await
        .expect("connect");
    let origin = live_origin(FIRST_MEDIA_SEQUENCE, LIVE_SEGMENTS).await;
    let last_media_sequence = FIRST_MEDIA_SEQUENCE + WINDOW + LIVE_SEGMENTS - 1;

    let mut worker_a = environment.start_worker("worker-a");
    let mut worker_b = environment.start_worker("worker-b");
    let job_id = environment.add_job(&[&origin.media_playlist_url()]);
    let directory = job_directory(&environment.recordings(), job_id);
    let recording = wait_for_job(
        &backend,
        job_id,
        Duration::from_secs(20),
        "a worker records",
        logs,
        |job| job.state == JobState::Recording,
    )
    .await;
    let recorder = recording.worker_id().expect("held").to_string();
    wait_until(Duration::from_secs(20), "segments", logs, || {
        ledger_so_far(&directory).len() >= (WINDOW + 3) as usize
    })
    .await;

    let outage_started = Instant::now();
    let stopped_in = redis.restart_after(Duration::from_secs(3));
    let outage = outage_started.elapsed();

    let finished = wait_for_completion(&backend, job_id, Duration::from_secs(90), logs).await;
    // Claimed once, never reaped: epoch 1, and one claim in all the workers' logs.
    assert_eq!(
        finished.fencing_epoch,
        1,
        "the job was claimed again\n{}",
        logs()
    );
    let claims = claims_of(&environment.log("worker-a"), job_id)
        + claims_of(&environment.log("worker-b"), job_id);
    assert_eq!(claims, 1, "claims of the job\n{}", logs());
    assert_eq!(
        claims_of(&environment.log(&recorder), job_id),
        1,
        "the worker that recorded it claimed it"
    );

    let ledger = read_ledger(&ledger_path(&directory)).expect("ledger");
    let seen = media_sequences_once(&ledger);
    let parts: BTreeSet<u32> = ledger.iter().map(|entry| entry.part).collect();
    assert_eq!(parts, BTreeSet::from([1]), "one recording, one part");
    assert_eq!(seen.last().copied(), Some(last_media_sequence));
    let first = *seen.first().expect("entries");
    assert_eq!(seen.len() as u64, last_media_sequence - first + 1, "holes");
    let gaps = ledger
        .iter()
        .filter(|entry| entry.state != SegmentState::Ok)
        .count();
    assert_eq!(gaps, 0, "the recording never stopped for Redis");

    // Both workers still serve the queue: two short jobs at once, one each (one slot each).
    let mut short_origins = Vec::new();
    let mut short_jobs = Vec::new();
    for index in 0..2 {
        let origin = spawn_origin(
            OriginConfig::new(SegmentKind::MpegTs)
                .with_window_segments(3)
                .with_initial_segments(3)
                .with_first_media_sequence(10 * index)
                .with_total_segments(9),
        )
        .await
        .expect("origin");
        short_jobs.push(environment.add_job(&[&origin.media_playlist_url()]));
        short_origins.push(origin);
    }
    let mut holders = BTreeSet::new();
    for short in &short_jobs {
        let job = wait_for_job(
            &backend,
            *short,
            Duration::from_secs(30),
            "a job added after the restart is claimed",
            logs,
            |job| job.worker_id().is_some(),
        )
        .await;
        holders.insert(job.worker_id().expect("held").to_string());
    }
    assert_eq!(
        holders,
        BTreeSet::from(["worker-a".to_string(), "worker-b".to_string()]),
        "both workers claim after the restart"
    );
    for short in &short_jobs {
        let job = wait_for_job(
            &backend,
            *short,
            Duration::from_secs(40),
            "the short job completes",
            logs,
            |job| job.state.is_terminal(),
        )
        .await;
        assert_eq!(job.state, JobState::Completed, "{:?}", job.error);
    }

    let (status_a, exit_a) = worker_a.terminate(Duration::from_secs(10));
    let (status_b, exit_b) = worker_b.terminate(Duration::from_secs(10));
    assert!(status_a.success() && status_b.success());
    if std::env::var_os("SHOW_WORKER_LOGS").is_some() {
        eprintln!("{}", logs());
    }
    eprintln!(
        "recorded by {recorder}; Redis down {outage:?} (stopped in {stopped_in:?}); \
         {} segments; SIGTERM exits {exit_a:?} / {exit_b:?}",
        ledger.len()
    );
}
