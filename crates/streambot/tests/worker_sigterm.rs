//! SIGTERM with a real recording in flight, with the real binary on the embedded store: a
//! `streambot worker` records a live stream from the project's HLS origin and gets SIGTERM. It
//! exits within 10 s; the segments in flight are committed (every ledger line's bytes are in the
//! part, the part ends where the ledger does, ffprobe reads it); the job is left resumable
//! (`Queued`, no error, no lease). A second worker then resumes the same job as a new part and
//! completes it when the stream ends, with no media sequence twice.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use streambot_core::{DesiredJobState, Job, JobId, JobState};
use streambot_hls::ledger::{LedgerEntry, SegmentState, read_ledger};
use streambot_jobs::{JobStore, SqliteBackend, job_directory};
use streambot_testkit::{OriginConfig, SegmentKind, spawn_origin};

const WINDOW: u64 = 6;
const LIVE_SEGMENTS: u64 = 30;
const FIRST_MEDIA_SEQUENCE: u64 = 200;

/// A worker process, killed and reaped if the test ends early.
struct Worker(Option<Child>);

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Worker {
    /// SIGTERM, then the exit status and how long the exit took (panics after `limit`).
    fn terminate(&mut self, limit: Duration) -> (std::process::ExitStatus, Duration) {
        let child = self.0.as_mut().expect("running");
        let pid = child.id().to_string();
        let started = Instant::now();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(
            sent.is_ok_and(|status| status.success()),
            "kill -TERM {pid}"
        );
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                self.0 = None;
                return (status, started.elapsed());
            }
            assert!(
                started.elapsed() < limit,
                "the worker did not exit within {limit:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

struct Environment {
    data: tempfile::TempDir,
}

impl Environment {
    fn recordings(&self) -> PathBuf {
        self.data.path().join("recordings")
    }

    fn command(&self, arguments: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_streambot"));
        command
            .args(arguments)
            .env_remove("REDIS_URL")
            .env("DATA_DIR", self.data.path())
            .env("LOCAL_STORAGE_PATH", self.recordings())
            .env("WORKER_CONCURRENCY", "1")
            .env("ALLOW_PRIVATE_NETWORKS", "true")
            .env("LOG_LEVEL", "info");
        command
    }

    fn start_worker(&self, worker_id: &str) -> Worker {
        let log = std::fs::File::create(self.data.path().join(format!("{worker_id}.log")))
            .expect("log file");
        Worker(Some(
            self.command(&["worker"])
                .env("WORKER_ID", worker_id)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start a worker"),
        ))
    }

    fn logs(&self) -> String {
        ["worker-a", "worker-b"]
            .iter()
            .map(|worker_id| {
                let log =
                    std::fs::read_to_string(self.data.path().join(format!("{worker_id}.log")))
                        .unwrap_or_default();
                format!("--- {worker_id}\n{log}")
            })
            .collect()
    }
}

async fn wait_for(
    backend: &SqliteBackend,
    job_id: JobId,
    within: Duration,
    what: &str,
    logs: impl Fn() -> String,
    mut condition: impl FnMut(&Job) -> bool,
) -> Job {
    let deadline = Instant::now() + within;
    loop {
        let job = backend.get_job(job_id).await.expect("get").expect("exists");
        if condition(&job) {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}; job is {:?} on {:?}\n{}",
            job.state,
            job.worker_id(),
            logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

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

fn ffprobe_duration(path: &Path) -> Option<f64> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "format=duration", "-of"])
        .arg("default=noprint_wrappers=1:nokey=1")
        .arg(path)
        .output()
        .ok()?;
    assert!(
        output.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_commits_the_segments_in_flight_and_the_next_worker_resumes() {
    let environment = Environment {
        data: tempfile::tempdir().expect("tempdir"),
    };
    let backend = SqliteBackend::open_in_data_directory(environment.data.path())
        .await
        .expect("store");
    let origin = spawn_origin(
        OriginConfig::new(SegmentKind::MpegTs)
            .with_window_segments(WINDOW)
            .with_initial_segments(WINDOW)
            .with_first_media_sequence(FIRST_MEDIA_SEQUENCE)
            .with_total_segments(WINDOW + LIVE_SEGMENTS),
    )
    .await
    .expect("origin");
    let last_media_sequence = FIRST_MEDIA_SEQUENCE + WINDOW + LIVE_SEGMENTS - 1;

    let mut worker_a = environment.start_worker("worker-a");
    let added = environment
        .command(&["jobs", "add", &origin.media_playlist_url()])
        .output()
        .expect("jobs add");
    assert!(added.status.success(), "jobs add failed");
    let job_id: JobId = String::from_utf8_lossy(&added.stdout)
        .trim()
        .parse()
        .expect("jobs add prints the id");
    let directory = job_directory(&environment.recordings(), job_id);
    let ledger_path = directory.join("main-ledger.jsonl");

    wait_for(
        &backend,
        job_id,
        Duration::from_secs(20),
        "worker-a records",
        || environment.logs(),
        |job| job.state == JobState::Recording,
    )
    .await;
    // Live segments, not only the first window.
    let deadline = Instant::now() + Duration::from_secs(20);
    while read_ledger(&ledger_path).map_or(0, |entries| entries.len()) < 6 {
        assert!(
            Instant::now() < deadline,
            "no segments\n{}",
            environment.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
        environment.logs()
    );
    assert_eq!(left.error, None);
    assert_eq!(left.desired_state, DesiredJobState::Record);
    assert!(left.lease.is_none(), "the lease was given back");

    let ledger_at_stop = read_ledger(&ledger_path).expect("ledger");
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
    let resumed = wait_for(
        &backend,
        job_id,
        Duration::from_secs(20),
        "worker-b resumes the job",
        || environment.logs(),
        |job| job.state == JobState::Recording && job.worker_id() == Some("worker-b"),
    )
    .await;
    assert_eq!(resumed.fencing_epoch, 2);
    let finished = wait_for(
        &backend,
        job_id,
        Duration::from_secs(90),
        "the job completes when the stream ends",
        || environment.logs(),
        |job| job.state.is_terminal(),
    )
    .await;
    assert_eq!(
        finished.state,
        JobState::Completed,
        "{:?}\n{}",
        finished.error,
        environment.logs()
    );

    let ledger = read_ledger(&ledger_path).expect("ledger");
    assert_eq!(
        &ledger[..ledger_at_stop.len()],
        &ledger_at_stop[..],
        "nothing before the stop is rewritten"
    );
    let mut seen = BTreeSet::new();
    for entry in &ledger {
        assert!(
            seen.insert(entry.media_sequence),
            "sequence {} twice",
            entry.media_sequence
        );
    }
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
