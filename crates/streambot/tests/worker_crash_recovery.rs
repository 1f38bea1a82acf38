//! Crash recovery with the real binary: two `streambot worker` processes share one store; the one
//! recording a live stream from the project's HLS origin is killed with SIGKILL; the other resumes
//! the job within 30 s as a new part; the ledger records the gap, and nothing recorded before the
//! kill is lost or duplicated. Then SIGTERM stops the survivor within 10 s.
//!
//! Runs against the embedded SQLite store and, when Redis answers (`REDIS_URL` or
//! 127.0.0.1:6379), against Redis with a random key prefix.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use streambot_core::{Job, JobId, JobState};
use streambot_hls::ledger::{SegmentState, read_ledger};
use streambot_jobs::{JobBackend, RedisBackend, SqliteBackend, job_directory};
use streambot_testkit::{OriginConfig, SegmentKind, spawn_origin};

const FIRST_MEDIA_SEQUENCE: u64 = 100;
const WINDOW: u64 = 6;
const LIVE_SEGMENTS: u64 = 50;

struct Environment {
    variables: Vec<(String, String)>,
    data: tempfile::TempDir,
    /// Every worker started, killed when the test ends however it ends (a failed assertion
    /// must not leave workers running).
    started_process_ids: std::sync::Mutex<Vec<u32>>,
}

impl Drop for Environment {
    fn drop(&mut self) {
        let process_ids = self
            .started_process_ids
            .lock()
            .map(|ids| ids.clone())
            .unwrap_or_default();
        for process_id in process_ids {
            let _ = Command::new("kill")
                .args(["-KILL", &process_id.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Environment {
    fn recordings(&self) -> PathBuf {
        self.data.path().join("recordings")
    }

    fn command(&self, arguments: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_streambot"));
        command.args(arguments);
        command.env_remove("REDIS_URL");
        for (name, value) in &self.variables {
            command.env(name, value);
        }
        command
    }

    fn start_worker(&self, worker_id: &str) -> Child {
        let log = std::fs::File::create(self.data.path().join(format!("{worker_id}.log")))
            .expect("log file");
        let child = self
            .command(&["worker"])
            .env("WORKER_ID", worker_id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start a worker");
        if let Ok(mut ids) = self.started_process_ids.lock() {
            ids.push(child.id());
        }
        child
    }

    fn worker_log(&self, worker_id: &str) -> String {
        std::fs::read_to_string(self.data.path().join(format!("{worker_id}.log")))
            .unwrap_or_default()
    }
}

fn environment(redis: Option<(&str, &str)>) -> Environment {
    let data = tempfile::tempdir().expect("tempdir");
    let mut variables = vec![
        ("DATA_DIR".to_string(), data.path().display().to_string()),
        (
            "LOCAL_STORAGE_PATH".to_string(),
            data.path().join("recordings").display().to_string(),
        ),
        ("WORKER_CONCURRENCY".to_string(), "1".to_string()),
        ("ALLOW_PRIVATE_NETWORKS".to_string(), "true".to_string()),
        ("LOG_LEVEL".to_string(), "info".to_string()),
    ];
    if let Some((url, prefix)) = redis {
        variables.push(("REDIS_URL".to_string(), url.to_string()));
        variables.push(("REDIS_KEY_PREFIX".to_string(), prefix.to_string()));
    }
    Environment {
        variables,
        data,
        started_process_ids: std::sync::Mutex::new(Vec::new()),
    }
}

async fn wait_for<B: JobBackend>(
    backend: &B,
    job_id: JobId,
    within: Duration,
    what: &str,
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
            "{what}: not within {within:?}; job is {:?} on {:?}",
            job.state,
            job.worker_id()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ok_segments(directory: &Path) -> usize {
    read_ledger(&directory.join("main-ledger.jsonl"))
        .map(|entries| {
            entries
                .iter()
                .filter(|entry| entry.state == SegmentState::Ok)
                .count()
        })
        .unwrap_or(0)
}

fn terminate_within(mut child: Child, limit: Duration) -> Duration {
    let started = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "worker exited with {status}");
            return started.elapsed();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("the worker did not exit within {limit:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn a_killed_workers_job_resumes_on_the_other<B: JobBackend>(
    backend: B,
    environment: Environment,
) {
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

    let mut first_worker = environment.start_worker("worker-a");
    let added = environment
        .command(&["jobs", "add", &origin.media_playlist_url(), "--user", "42"])
        .output()
        .expect("jobs add");
    assert!(
        added.status.success(),
        "jobs add: {}",
        String::from_utf8_lossy(&added.stderr)
    );
    let job_id: JobId = String::from_utf8_lossy(&added.stdout)
        .trim()
        .parse()
        .expect("jobs add prints the id");
    let directory = job_directory(&environment.recordings(), job_id);

    wait_for(
        &backend,
        job_id,
        Duration::from_secs(20),
        "worker-a records",
        |job| job.state == JobState::Recording && job.worker_id() == Some("worker-a"),
    )
    .await;
    let second_worker = environment.start_worker("worker-b");
    let deadline = Instant::now() + Duration::from_secs(20);
    while ok_segments(&directory) < 5 {
        assert!(
            Instant::now() < deadline,
            "worker-a wrote no segments: {}",
            environment.worker_log("worker-a")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    first_worker.kill().expect("kill -9 worker-a");
    let killed_at = Instant::now();
    let _ = first_worker.wait();
    let before_kill = read_ledger(&directory.join("main-ledger.jsonl")).expect("ledger");

    let resumed = wait_for(
        &backend,
        job_id,
        Duration::from_secs(30),
        "worker-b resumes the job",
        |job| job.worker_id() == Some("worker-b") && job.state == JobState::Recording,
    )
    .await;
    let took = killed_at.elapsed();
    assert!(took < Duration::from_secs(30), "resumed after {took:?}");
    assert!(resumed.fencing_epoch >= 2);

    let finished = wait_for(
        &backend,
        job_id,
        Duration::from_secs(90),
        "the job completes when the stream ends",
        |job| job.state.is_terminal(),
    )
    .await;
    assert_eq!(
        finished.state,
        JobState::Completed,
        "error: {:?}\n{}",
        finished.error,
        environment.worker_log("worker-b")
    );

    let ledger = read_ledger(&directory.join("main-ledger.jsonl")).expect("ledger");
    // Nothing recorded before the kill is lost: those lines are still the ledger's first lines.
    assert_eq!(&ledger[..before_kill.len()], &before_kill[..]);
    // Nothing is duplicated, and every sequence from the first to the last is accounted for.
    let mut seen = BTreeSet::new();
    for entry in &ledger {
        assert!(
            seen.insert(entry.media_sequence),
            "sequence {} twice in the ledger",
            entry.media_sequence
        );
    }
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
                assert!(
                    finished_files.iter().any(|name| name.contains(&number)),
                    "part {} is neither on disk nor finished: {finished_files:?}",
                    entry.part
                );
            }
        }
    }

    let stopped_in = terminate_within(second_worker, Duration::from_secs(10));
    eprintln!(
        "resumed {took:?} after the kill; {gaps} gap segments; {} parts; SIGTERM exit in {stopped_in:?}",
        parts.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_job_resumes_on_the_other_embedded_store() {
    let environment = environment(None);
    let backend = SqliteBackend::open_in_data_directory(environment.data.path())
        .await
        .expect("store");
    a_killed_workers_job_resumes_on_the_other(backend, environment).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_job_resumes_on_the_other_redis() {
    let url = match std::env::var("REDIS_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            let answers = std::net::TcpStream::connect_timeout(
                &"127.0.0.1:6379".parse().expect("address"),
                Duration::from_millis(300),
            )
            .is_ok();
            if !answers {
                eprintln!("skipped: REDIS_URL is not set and nothing answers on 127.0.0.1:6379");
                return;
            }
            "redis://127.0.0.1:6379/".to_string()
        }
    };
    let prefix = format!("streambot-test-{:016x}:", rand_prefix());
    let environment = environment(Some((&url, &prefix)));
    let backend = RedisBackend::connect(&url, &prefix).await.expect("redis");
    a_killed_workers_job_resumes_on_the_other(backend.clone(), environment).await;
    backend.delete_all_keys().await.expect("clean up");
}

fn rand_prefix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|duration| duration.as_nanos())
            .unwrap_or(0),
    );
    hasher.finish()
}

/// Names of the finished files anywhere under the recordings directory (`recording-NNNN.*` in the
/// job's working directory, or `part-NNNN.*` once storage filed them).
fn finished_file_names(recordings: &std::path::Path) -> Vec<String> {
    let mut names = Vec::new();
    let mut stack = vec![recordings.to_path_buf()];
    while let Some(current) = stack.pop() {
        if let Ok(listing) = std::fs::read_dir(&current) {
            for item in listing.flatten() {
                let path = item.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Some(name) = path.file_name().and_then(|name| name.to_str())
                    && (name.starts_with("recording-") || name.starts_with("part-"))
                    && (name.ends_with(".mp4") || name.ends_with(".mkv") || name.ends_with(".m4a"))
                {
                    names.push(name.to_string());
                }
            }
        }
    }
    names.sort();
    names
}
