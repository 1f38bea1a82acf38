//! SIGTERM with a real recording in flight, with the real binary on the embedded store: a
//! `streambot worker` records a live stream from the project's HLS origin and gets SIGTERM. It
//! exits within 10 s; the segments in flight are committed (every ledger line's bytes are in the
//! part, the part ends where the ledger does, ffprobe reads it); the job is left resumable
//! (`Queued`, no error, no lease). A second worker then resumes the same job as a new part and
//! completes it when the stream ends, with no media sequence twice.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use streambot_core::job_directory;
use streambot_core::{DesiredJobState, JobState};
use streambot_hls::ledger::{LedgerEntry, SegmentState, read_ledger};
use streambot_store::{JobStore, SqliteBackend};
use support::{
    WINDOW, WorkerEnvironment, ffprobe_duration, ledger_path, ledger_so_far, live_origin,
    media_sequences_once, wait_for_completion, wait_for_job, wait_until,
};

const LIVE_SEGMENTS: u64 = 30;
const FIRST_MEDIA_SEQUENCE: u64 = 200;

/// Every ok line's bytes lie in its part, and each part ends where its last line ends: nothing
/// half-written past the ledger. Returns the parts' lengths.
fn check_parts_against_ledger(directory: &Path, ledger: &[LedgerEntry]) -> BTreeMap<u32, u64> {
    let mut ends: BTreeMap<u32, u64> = BTreeMap::new();
    for entry in ledger
        .iter()
        .filter(|entry| entry.state == SegmentState::Ok)
    {
        let end = ends.entry(entry.part).or_default();
        assert_eq!(
            entry.offset_in_part, *end,
            "part {} is not contiguous at sequence {}",
            entry.part, entry.media_sequence
        );
        *end += entry.bytes;
    }
    for (part, end) in &ends {
        let path = directory.join(format!("main-{part:04}.ts"));
        let length = std::fs::metadata(&path).expect("part file").len();
        assert_eq!(length, *end, "part {part} length against its ledger");
    }
    ends
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_commits_the_segments_in_flight_and_the_next_worker_resumes() {
    let environment = WorkerEnvironment::embedded();
    let logs = || environment.logs(&["worker-a", "worker-b"]);
    let backend = SqliteBackend::open_in_data_directory(environment.data_path())
        .await
        .expect("store");
    let origin = live_origin(FIRST_MEDIA_SEQUENCE, LIVE_SEGMENTS).await;
    let last_media_sequence = FIRST_MEDIA_SEQUENCE + WINDOW + LIVE_SEGMENTS - 1;

    let mut worker_a = environment.start_worker("worker-a");
    let job_id = environment.add_job(&[&origin.media_playlist_url()]);
    let directory = job_directory(&environment.recordings(), job_id);

    wait_for_job(
        &backend,
        job_id,
        Duration::from_secs(20),
        "worker-a records",
        logs,
        |job| job.state == JobState::Recording,
    )
    .await;
    // Live segments, not only the first window.
    wait_until(Duration::from_secs(20), "segments", logs, || {
        ledger_so_far(&directory).len() >= 6
    })
    .await;
    // In the middle of a segment period, so a download is likely in flight.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let (status, exit_took) = worker_a.terminate(Duration::from_secs(10));
    assert!(status.success(), "worker-a exited with {status}");
    let left = backend.get_job(job_id).await.expect("get").expect("exists");
    assert_eq!(
        left.state,
        JobState::Queued,
        "left resumable, not failed: {:?}\n{}",
        left.error,
        logs()
    );
    assert_eq!(left.error, None);
    assert_eq!(left.desired_state, DesiredJobState::Record);
    assert!(left.lease.is_none(), "the lease was given back");

    let ledger_at_stop = read_ledger(&ledger_path(&directory)).expect("ledger");
    let parts_at_stop = check_parts_against_ledger(&directory, &ledger_at_stop);
    assert_eq!(parts_at_stop.keys().copied().collect::<Vec<_>>(), vec![1]);
    let recorded_seconds: f64 = ledger_at_stop
        .iter()
        .filter(|entry| entry.state == SegmentState::Ok)
        .map(|entry| entry.duration_seconds)
        .sum();
    let probed = ffprobe_duration(&directory.join("main-0001.ts"));
    if let Some(probed) = probed {
        assert!(
            (probed - recorded_seconds).abs() < 1.5,
            "ffprobe says {probed} s, the ledger {recorded_seconds} s"
        );
    }

    let _worker_b = environment.start_worker("worker-b");
    let resumed = wait_for_job(
        &backend,
        job_id,
        Duration::from_secs(20),
        "worker-b resumes the job",
        logs,
        |job| job.state == JobState::Recording && job.worker_id() == Some("worker-b"),
    )
    .await;
    assert_eq!(resumed.fencing_epoch, 2);
    wait_for_completion(&backend, job_id, Duration::from_secs(90), logs).await;

    let ledger = read_ledger(&ledger_path(&directory)).expect("ledger");
    assert_eq!(
        &ledger[..ledger_at_stop.len()],
        &ledger_at_stop[..],
        "nothing before the stop is rewritten"
    );
    let seen = media_sequences_once(&ledger);
    assert_eq!(seen.last().copied(), Some(last_media_sequence));
    let parts: BTreeSet<u32> = ledger.iter().map(|entry| entry.part).collect();
    assert_eq!(
        parts,
        BTreeSet::from([1, 2]),
        "the resumed recording is part 2"
    );
    eprintln!(
        "SIGTERM exit in {exit_took:?}; {} segments before the stop ({recorded_seconds:.1} s, \
         ffprobe {probed:?}); {} in all",
        ledger_at_stop.len(),
        ledger.len()
    );
}
