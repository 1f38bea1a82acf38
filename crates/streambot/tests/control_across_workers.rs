//! Control across processes, with the real binary: a job records on `streambot worker` (process
//! A); `streambot jobs pause|resume|stop ID`, each a process of its own, reach it through the
//! store. Pause → `Paused` and `pause` lines in the ledger; resume → `Recording` again as a new
//! part; stop → `Completed`, finalized (`finalized.json` lists playable files when ffmpeg is
//! installed).
//!
//! Runs on the embedded store (the worker sees the change at its next heartbeat) and on a
//! private `redis-server` when one is installed (pub/sub nudges act at once).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use streambot_core::{Job, JobId, JobState};
use streambot_hls::ledger::{LedgerEntry, SegmentState, read_ledger};
use streambot_jobs::{JobStore, RedisBackend, SqliteBackend, job_directory};
use streambot_testkit::{OriginConfig, SegmentKind, spawn_origin};

/// How long a control command may take to show in the job's state.
const FOLLOWS_WITHIN: Duration = Duration::from_secs(6);

/// A child process, killed and reaped when the test ends.
struct Guarded(Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Environment {
    data: tempfile::TempDir,
    redis_url: Option<String>,
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
        if let Some(url) = &self.redis_url {
            command.env("REDIS_URL", url);
        }
        command
    }

    /// Runs `streambot jobs …` to the end; returns stdout.
    fn jobs(&self, arguments: &[&str]) -> String {
        let mut full = vec!["jobs"];
        full.extend_from_slice(arguments);
        let output = self.command(&full).output().expect("streambot jobs");
        assert!(
            output.status.success(),
            "streambot jobs {arguments:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("worker-a.log")).unwrap_or_default()
    }
}

async fn wait_for<B: JobStore>(
    backend: &B,
    job_id: JobId,
    within: Duration,
    what: &str,
    environment: &Environment,
    mut condition: impl FnMut(&Job) -> bool,
) -> (Job, Duration) {
    let started = Instant::now();
    loop {
        let job = backend.get_job(job_id).await.expect("get").expect("exists");
        if condition(&job) {
            return (job, started.elapsed());
        }
        assert!(
            started.elapsed() < within,
            "{what}: not within {within:?}; job is {:?} (wants {:?})\n{}",
            job.state,
            job.desired_state,
            environment.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ledger(directory: &Path) -> Vec<LedgerEntry> {
    read_ledger(&directory.join("main-ledger.jsonl")).expect("ledger")
}

/// Waits until the ledger has a line that `condition` accepts.
async fn wait_for_ledger(
    directory: &Path,
    within: Duration,
    what: &str,
    environment: &Environment,
    condition: impl Fn(&LedgerEntry) -> bool,
) {
    let deadline = Instant::now() + within;
    while !ledger(directory).iter().any(&condition) {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}\n{}",
            environment.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ffmpeg_installed() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|output| output.status.success())
}

async fn pause_resume_stop_reach_the_worker<B: JobStore>(backend: B, environment: Environment) {
    // Long enough that only `stop` ends it.
    let origin = spawn_origin(
        OriginConfig::new(SegmentKind::MpegTs)
            .with_window_segments(6)
            .with_initial_segments(6)
            .with_first_media_sequence(300)
            .with_total_segments(6 + 120),
    )
    .await
    .expect("origin");
    let log = std::fs::File::create(environment.data.path().join("worker-a.log")).expect("log");
    let _worker = Guarded(
        environment
            .command(&["worker"])
            .env("WORKER_ID", "worker-a")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the worker"),
    );
    let job_id: JobId = environment
        .jobs(&["add", &origin.media_playlist_url()])
        .trim()
        .parse()
        .expect("jobs add prints the id");
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
        environment.log()
    );

    let entries = ledger(&directory);
    let mut seen = BTreeSet::new();
    for entry in &entries {
        assert!(
            seen.insert(entry.media_sequence),
            "sequence {} twice",
            entry.media_sequence
        );
    }
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
    if ffmpeg_installed() {
        let text = std::fs::read_to_string(directory.join("finalized.json"))
            .unwrap_or_else(|error| panic!("finalized.json: {error}\n{}", environment.log()));
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
    let environment = Environment {
        data: tempfile::tempdir().expect("tempdir"),
        redis_url: None,
    };
    let backend = SqliteBackend::open_in_data_directory(environment.data.path())
        .await
        .expect("store");
    pause_resume_stop_reach_the_worker(backend, environment).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_stop_reach_a_worker_process_redis() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port");
    let redis_directory = tempfile::tempdir().expect("tempdir");
    let Ok(child) = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .arg("--dir")
        .arg(redis_directory.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        eprintln!("skipped: redis-server is not installed");
        return;
    };
    let _redis = Guarded(child);
    let url = format!("redis://127.0.0.1:{port}/");
    let deadline = Instant::now() + Duration::from_secs(10);
    let backend = loop {
        match RedisBackend::connect(&url, "streambot:").await {
            Ok(backend) => break backend,
            Err(error) => {
                assert!(Instant::now() < deadline, "redis-server: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let environment = Environment {
        data: tempfile::tempdir().expect("tempdir"),
        redis_url: Some(url),
    };
    pause_resume_stop_reach_the_worker(backend, environment).await;
}
