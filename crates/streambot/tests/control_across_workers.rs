//! Control across processes, with the real binary: a job records on `streambot worker` (process
//! A); `streambot jobs pause|resume|stop ID`, each a process of its own, reach it through the
//! store. Pause → `Paused` and `pause` lines in the ledger; resume → `Recording` again as a new
//! part; stop → `Completed`, finalized (`finalized.json` lists playable files when ffmpeg is
//! installed).
//!
//! Runs on the embedded store (the worker sees the change at its next heartbeat) and on a
//! private `redis-server` when one is installed (pub/sub nudges act at once).

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use streambot_core::job_directory;
use streambot_core::{Job, JobId, JobState};
use streambot_hls::ledger::{LedgerEntry, SegmentState, read_ledger};
use streambot_store::{JobStore, RedisBackend, SqliteBackend};
use support::{
    RedisServer, WorkerEnvironment, ffmpeg_available, ledger_path, ledger_so_far, live_origin,
    media_sequences_once, wait_for_job, wait_until,
};

/// How long a control command may take to show in the job's state.
const FOLLOWS_WITHIN: Duration = Duration::from_secs(6);

/// Waits for the job as [`wait_for_job`] does; also how long it took.
async fn wait_for<B: JobStore>(
    backend: &B,
    job_id: JobId,
    within: Duration,
    what: &str,
    environment: &WorkerEnvironment,
    condition: impl FnMut(&Job) -> bool,
) -> (Job, Duration) {
    let started = Instant::now();
    let logs = || environment.log("worker-a");
    let job = wait_for_job(backend, job_id, within, what, logs, condition).await;
    (job, started.elapsed())
}

/// Waits until the ledger has a line that `condition` accepts.
async fn wait_for_ledger(
    directory: &Path,
    within: Duration,
    what: &str,
    environment: &WorkerEnvironment,
    condition: impl Fn(&LedgerEntry) -> bool,
) {
    let logs = || environment.log("worker-a");
    wait_until(within, what, logs, || {
        ledger_so_far(directory).iter().any(&condition)
    })
    .await;
}

async fn pause_resume_stop_reach_the_worker<B: JobStore>(
    backend: B,
    environment: WorkerEnvironment,
) {
    // Long enough that only `stop` ends it.
    let origin = live_origin(300, 120).await;
    let _worker = environment.start_worker("worker-a");
    let job_id = environment.add_job(&[&origin.media_playlist_url()]);
    let id = job_id.as_str().to_string();
    let directory = job_directory(&environment.recordings(), job_id);
    wait_for(
        &backend,
        job_id,
        Duration::from_secs(20),
        "the worker records",
        &environment,
        |job| job.state == JobState::Recording && job.worker_id() == Some("worker-a"),
    )
    .await;
    wait_for_ledger(
        &directory,
        Duration::from_secs(20),
        "segments recorded",
        &environment,
        |entry| entry.state == SegmentState::Ok && entry.part == 1,
    )
    .await;

    environment.jobs(&["pause", &id]);
    let (_, paused_after) = wait_for(
        &backend,
        job_id,
        FOLLOWS_WITHIN,
        "pause",
        &environment,
        |job| job.state == JobState::Paused,
    )
    .await;
    wait_for_ledger(
        &directory,
        Duration::from_secs(10),
        "pause lines in the ledger",
        &environment,
        |entry| entry.state == SegmentState::Pause,
    )
    .await;

    environment.jobs(&["resume", &id]);
    let (_, resumed_after) = wait_for(
        &backend,
        job_id,
        FOLLOWS_WITHIN,
        "resume",
        &environment,
        |job| job.state == JobState::Recording,
    )
    .await;
    wait_for_ledger(
        &directory,
        Duration::from_secs(10),
        "a new part after the resume",
        &environment,
        |entry| entry.state == SegmentState::Ok && entry.part >= 2,
    )
    .await;

    environment.jobs(&["stop", &id]);
    let (stopped, stopped_after) = wait_for(
        &backend,
        job_id,
        Duration::from_secs(30),
        "stop",
        &environment,
        |job| job.state.is_terminal(),
    )
    .await;
    assert_eq!(
        stopped.state,
        JobState::Completed,
        "{:?}\n{}",
        stopped.error,
        environment.log("worker-a")
    );

    let entries = read_ledger(&ledger_path(&directory)).expect("ledger");
    media_sequences_once(&entries);
    let paused_lines = entries
        .iter()
        .filter(|entry| entry.state == SegmentState::Pause)
        .count();
    // Pause lines lie between part 1 and part 2.
    let first_pause = entries
        .iter()
        .position(|entry| entry.state == SegmentState::Pause)
        .expect("pause lines");
    assert!(entries[..first_pause].iter().all(|entry| entry.part == 1));
    assert!(
        entries[first_pause..]
            .iter()
            .filter(|entry| entry.state == SegmentState::Ok)
            .all(|entry| entry.part >= 2)
    );

    let mut finalized_files = 0;
    if ffmpeg_available() {
        let text =
            std::fs::read_to_string(directory.join("finalized.json")).unwrap_or_else(|error| {
                panic!("finalized.json: {error}\n{}", environment.log("worker-a"))
            });
        let report: serde_json::Value = serde_json::from_str(&text).expect("json");
        let files = report["files"].as_array().expect("files");
        assert!(!files.is_empty(), "finalized files: {text}");
        for file in files {
            assert!(file["size_bytes"].as_u64().unwrap_or(0) > 0, "{file}");
            assert!(
                file["duration_seconds"].as_f64().unwrap_or(0.0) > 0.0,
                "{file}"
            );
        }
        finalized_files = files.len();
    }
    eprintln!(
        "pause followed in {paused_after:?}, resume in {resumed_after:?}, stop (to Completed) in \
         {stopped_after:?}; {paused_lines} pause lines; {finalized_files} finalized files"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_stop_reach_a_worker_process_embedded_store() {
    let environment = WorkerEnvironment::embedded();
    let backend = SqliteBackend::open_in_data_directory(environment.data_path())
        .await
        .expect("store");
    pause_resume_stop_reach_the_worker(backend, environment).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_stop_reach_a_worker_process_redis() {
    let redis_directory = tempfile::tempdir().expect("tempdir");
    let Some(redis) = RedisServer::start(redis_directory.path(), &[]) else {
        streambot_testkit::requirements::skip_or_fail(
            "redis-server",
            "apt-get install -y redis-server",
        );
        return;
    };
    let backend = RedisBackend::connect(&redis.url(), "streambot:")
        .await
        .expect("connect to redis-server");
    let environment = WorkerEnvironment::redis(&redis.url(), "streambot:");
    pause_resume_stop_reach_the_worker(backend, environment).await;
}
