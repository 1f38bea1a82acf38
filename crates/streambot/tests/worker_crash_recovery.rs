//! Crash recovery with the real binary: two `streambot worker` processes share one store; the one
//! recording a live stream from the project's HLS origin is killed with SIGKILL; the other resumes
//! the job within 30 s as a new part; the ledger records the gap, and nothing recorded before the
//! kill is lost or duplicated. Then SIGTERM stops the survivor within 10 s.
//!
//! Runs against the embedded SQLite store and, when Redis answers (`REDIS_URL` or
//! 127.0.0.1:6379), against Redis with a random key prefix.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use streambot_core::JobState;
use streambot_core::job_directory;
use streambot_hls::ledger::{SegmentState, read_ledger};
use streambot_store::{JobBackend, RedisBackend, SqliteBackend};
use streambot_testkit::{random_key_prefix, redis_url_for_test};
use support::{
    WINDOW, WorkerEnvironment, files_under, ledger_path, ledger_so_far, live_origin,
    media_sequences_once, wait_for_completion, wait_for_job, wait_until,
};

const FIRST_MEDIA_SEQUENCE: u64 = 100;
const LIVE_SEGMENTS: u64 = 50;

async fn a_killed_workers_job_resumes_on_the_other<B: JobBackend>(
    backend: B,
    environment: WorkerEnvironment,
) {
    let origin = live_origin(FIRST_MEDIA_SEQUENCE, LIVE_SEGMENTS).await;
    let last_media_sequence = FIRST_MEDIA_SEQUENCE + WINDOW + LIVE_SEGMENTS - 1;

    let mut first_worker = environment.start_worker("worker-a");
    let job_id = environment.add_job(&[&origin.media_playlist_url(), "--user", "42"]);
    let directory = job_directory(&environment.recordings(), job_id);

    wait_for_job(
        &backend,
        job_id,
        Duration::from_secs(20),
        "worker-a records",
        || environment.log("worker-a"),
        |job| job.state == JobState::Recording && job.worker_id() == Some("worker-a"),
    )
    .await;
    let mut second_worker = environment.start_worker("worker-b");
    wait_until(
        Duration::from_secs(20),
        "worker-a writes segments",
        || environment.log("worker-a"),
        || {
            ledger_so_far(&directory)
                .iter()
                .filter(|entry| entry.state == SegmentState::Ok)
                .count()
                >= 5
        },
    )
    .await;

    first_worker.kill();
    let killed_at = Instant::now();
    let before_kill = read_ledger(&ledger_path(&directory)).expect("ledger");

    let resumed = wait_for_job(
        &backend,
        job_id,
        Duration::from_secs(30),
        "worker-b resumes the job",
        || environment.logs(&["worker-a", "worker-b"]),
        |job| job.worker_id() == Some("worker-b") && job.state == JobState::Recording,
    )
    .await;
    let took = killed_at.elapsed();
    assert!(took < Duration::from_secs(30), "resumed after {took:?}");
    assert!(resumed.fencing_epoch >= 2);

    wait_for_completion(&backend, job_id, Duration::from_secs(90), || {
        environment.log("worker-b")
    })
    .await;

    let ledger = read_ledger(&ledger_path(&directory)).expect("ledger");
    // Nothing recorded before the kill is lost: those lines are still the ledger's first lines.
    assert_eq!(&ledger[..before_kill.len()], &before_kill[..]);
    // Nothing is duplicated, and every sequence from the first to the last is accounted for.
    let seen = media_sequences_once(&ledger);
    let first = *seen.first().expect("entries");
    let last = *seen.last().expect("entries");
    assert_eq!(seen.len() as u64, last - first + 1, "holes in the ledger");
    assert_eq!(
        last, last_media_sequence,
        "recorded to the end of the stream"
    );
    let gaps = ledger
        .iter()
        .filter(|entry| entry.state == SegmentState::Gap)
        .count();
    assert!(gaps >= 1, "the outage is recorded as a gap");
    let parts: BTreeSet<u32> = ledger.iter().map(|entry| entry.part).collect();
    assert!(parts.len() >= 2, "the resumed recording is a new part");
    // Every ok segment's bytes are in its part file, or the part was finalized into a finished
    // file (which then replaces it): either way nothing recorded before the kill is dropped.
    let finished_files = finished_file_names(&environment.recordings());
    for entry in ledger
        .iter()
        .filter(|entry| entry.state == SegmentState::Ok)
    {
        let part = directory.join(format!("main-{:04}.ts", entry.part));
        match std::fs::metadata(&part) {
            Ok(metadata) => assert!(
                entry.offset_in_part + entry.bytes <= metadata.len(),
                "part {} is shorter than its ledger",
                entry.part
            ),
            Err(_) => {
                let number = format!("{:04}", entry.part);
                // Parts with the same codec parameters are joined into one finished file.
                let joined_into_a_finished_file =
                    std::fs::read_to_string(directory.join("finalized.json"))
                        .ok()
                        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                        .is_some_and(|report| {
                            report["files"].as_array().is_some_and(|files| {
                                files.iter().any(|file| {
                                    file["joined_part_numbers"]
                                        .as_array()
                                        .is_some_and(|numbers| {
                                            numbers.iter().any(|number| {
                                                number.as_u64() == Some(u64::from(entry.part))
                                            })
                                        })
                                })
                            })
                        });
                assert!(
                    joined_into_a_finished_file
                        || finished_files.iter().any(|name| name.contains(&number)),
                    "part {} is neither on disk nor finished: {finished_files:?}",
                    entry.part
                );
            }
        }
    }

    let (status, stopped_in) = second_worker.terminate(Duration::from_secs(10));
    assert!(status.success(), "worker-b exited with {status}");
    eprintln!(
        "resumed {took:?} after the kill; {gaps} gap segments; {} parts; SIGTERM exit in {stopped_in:?}",
        parts.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_job_resumes_on_the_other_embedded_store() {
    let environment = WorkerEnvironment::embedded();
    let backend = SqliteBackend::open_in_data_directory(environment.data_path())
        .await
        .expect("store");
    a_killed_workers_job_resumes_on_the_other(backend, environment).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_job_resumes_on_the_other_redis() {
    let Some(url) = redis_url_for_test() else {
        return;
    };
    let prefix = random_key_prefix();
    let environment = WorkerEnvironment::redis(&url, &prefix);
    let backend = RedisBackend::connect(&url, &prefix).await.expect("redis");
    a_killed_workers_job_resumes_on_the_other(backend.clone(), environment).await;
    backend.delete_all_keys().await.expect("clean up");
}

/// Names of the finished files anywhere under the recordings directory (`recording-NNNN.*` in the
/// job's working directory, or `part-NNNN.*` once storage filed them).
fn finished_file_names(recordings: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = files_under(recordings, |path| {
        path.file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| {
                (name.starts_with("recording-") || name.starts_with("part-"))
                    && (name.ends_with(".mp4") || name.ends_with(".mkv") || name.ends_with(".m4a"))
            })
    })
    .iter()
    .filter_map(|path| path.file_name()?.to_str().map(str::to_string))
    .collect();
    names.sort();
    names
}
