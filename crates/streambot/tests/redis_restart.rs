//! A Redis restart mid-recording, with the real binary: a private `redis-server` (AOF,
//! `appendfsync always`) serves two `streambot worker` processes; one records a live stream from the
//! project's HLS origin; Redis is stopped (SIGTERM, so the AOF is complete), left down ~3 s and
//! started again on the same port and directory. The workers reconnect and go on; the job is
//! neither lost nor run twice (one claim, epoch 1, one part, no media sequence twice in the
//! ledger) and completes when the stream ends; afterwards both workers still claim new jobs.
//!
//! Skipped when `redis-server` is not installed.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use streambot_core::{Job, JobId, JobState};
use streambot_hls::ledger::{SegmentState, read_ledger};
use streambot_jobs::{JobStore, RedisBackend, job_directory};
use streambot_testkit::{OriginConfig, SegmentKind, spawn_origin};

const WINDOW: u64 = 6;
const LIVE_SEGMENTS: u64 = 24;
const FIRST_MEDIA_SEQUENCE: u64 = 500;

/// A child process that is killed and reaped when dropped.
struct Guarded(Option<Child>);

impl Guarded {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("running")
    }

    /// SIGTERM; the exit status and how long it took, or a panic after `limit`.
    fn terminate(&mut self, limit: Duration) -> (std::process::ExitStatus, Duration) {
        let started = Instant::now();
        let pid = self.child().id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        loop {
            if let Some(status) = self.child().try_wait().expect("wait") {
                self.0 = None;
                return (status, started.elapsed());
            }
            assert!(
                started.elapsed() < limit,
                "pid {pid} did not exit within {limit:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

fn redis_answers(port: u16) -> bool {
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    ) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 16];
    stream.write_all(b"PING\r\n").is_ok()
        && stream
            .read(&mut reply)
            .is_ok_and(|read| reply[..read].starts_with(b"+PONG"))
}

/// A private Redis with an append-only file fsync'd on every write.
struct RedisServer {
    port: u16,
    directory: PathBuf,
    process: Guarded,
}

impl RedisServer {
    fn start(port: u16, directory: &Path) -> Option<RedisServer> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(directory.join("redis.log"))
            .expect("redis log");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(["--save", ""])
            .arg("--dir")
            .arg(directory)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut server = RedisServer {
            port,
            directory: directory.to_path_buf(),
            process: Guarded(Some(child)),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !redis_answers(port) {
            if let Ok(Some(status)) = server.process.child().try_wait() {
                panic!(
                    "redis-server exited with {status}: {}",
                    std::fs::read_to_string(directory.join("redis.log")).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(server)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// SIGTERM (Redis flushes the AOF and exits), then the same port and directory again.
    fn restart_after(&mut self, down_for: Duration) -> Duration {
        let (status, stopped_in) = self.process.terminate(Duration::from_secs(10));
        assert!(status.success(), "redis-server exited with {status}");
        std::thread::sleep(down_for);
        *self = RedisServer::start(self.port, &self.directory).expect("restart redis");
        stopped_in
    }
}

struct Environment {
    data: tempfile::TempDir,
    redis_url: String,
}

impl Environment {
    fn recordings(&self) -> PathBuf {
        self.data.path().join("recordings")
    }

    fn command(&self, arguments: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_streambot"));
        command
            .args(arguments)
            .env("REDIS_URL", &self.redis_url)
            .env("REDIS_KEY_PREFIX", "streambot:")
            .env("DATA_DIR", self.data.path())
            .env("LOCAL_STORAGE_PATH", self.recordings())
            .env("WORKER_CONCURRENCY", "1")
            .env("ALLOW_PRIVATE_NETWORKS", "true")
            .env("LOG_LEVEL", "info");
        command
    }

    fn start_worker(&self, worker_id: &str) -> Guarded {
        let log = std::fs::File::create(self.data.path().join(format!("{worker_id}.log")))
            .expect("log file");
        Guarded(Some(
            self.command(&["worker"])
                .env("WORKER_ID", worker_id)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start a worker"),
        ))
    }

    fn log(&self, worker_id: &str) -> String {
        std::fs::read_to_string(self.data.path().join(format!("{worker_id}.log")))
            .unwrap_or_default()
    }

    fn logs(&self) -> String {
        format!(
            "--- worker-a\n{}\n--- worker-b\n{}",
            self.log("worker-a"),
            self.log("worker-b")
        )
    }

    fn add_job(&self, url: &str) -> JobId {
        let added = self
            .command(&["jobs", "add", url])
            .output()
            .expect("jobs add");
        assert!(
            added.status.success(),
            "jobs add: {}",
            String::from_utf8_lossy(&added.stderr)
        );
        String::from_utf8_lossy(&added.stdout)
            .trim()
            .parse()
            .expect("jobs add prints the id")
    }
}

/// Polls the job (read errors while Redis is down are waited out) until `condition` holds.
async fn wait_for(
    backend: &RedisBackend,
    job_id: JobId,
    within: Duration,
    what: &str,
    logs: impl Fn() -> String,
    mut condition: impl FnMut(&Job) -> bool,
) -> Job {
    let deadline = Instant::now() + within;
    let mut last = None;
    loop {
        if let Ok(Some(job)) = backend.get_job(job_id).await {
            if condition(&job) {
                return job;
            }
            last = Some((job.state, job.worker_id().map(str::to_string)));
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}; job is {last:?}\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn claims_of(log: &str, job_id: JobId) -> usize {
    log.lines()
        .filter(|line| line.contains("claimed") && line.contains(job_id.as_str()))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_ride_out_a_redis_restart_and_the_job_runs_once() {
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: redis-server is not installed");
        return;
    }
    let redis_directory = tempfile::tempdir().expect("tempdir");
    let mut redis =
        RedisServer::start(free_port(), redis_directory.path()).expect("start redis-server");
    let environment = Environment {
        data: tempfile::tempdir().expect("tempdir"),
        redis_url: redis.url(),
    };
    let backend = RedisBackend::connect(&redis.url(), "streambot:")
        .await
        .expect("connect");
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
    let mut worker_b = environment.start_worker("worker-b");
    let job_id = environment.add_job(&origin.media_playlist_url());
    let directory = job_directory(&environment.recordings(), job_id);
    let ledger_path = directory.join("main-ledger.jsonl");
    let recording = wait_for(
        &backend,
        job_id,
        Duration::from_secs(20),
        "a worker records",
        || environment.logs(),
        |job| job.state == JobState::Recording,
    )
    .await;
    let recorder = recording.worker_id().expect("held").to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    while read_ledger(&ledger_path)
        .map(|entries| entries.len())
        .unwrap_or(0)
        < (WINDOW + 3) as usize
    {
        assert!(
            Instant::now() < deadline,
            "no segments: {}",
            environment.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let outage_started = Instant::now();
    let stopped_in = redis.restart_after(Duration::from_secs(3));
    let outage = outage_started.elapsed();

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
        "error: {:?}\n{}",
        finished.error,
        environment.logs()
    );
    // Claimed once, never reaped: epoch 1, and one claim in all the workers' logs.
    assert_eq!(
        finished.fencing_epoch,
        1,
        "the job was claimed again\n{}",
        environment.logs()
    );
    let claims = claims_of(&environment.log("worker-a"), job_id)
        + claims_of(&environment.log("worker-b"), job_id);
    assert_eq!(claims, 1, "claims of the job\n{}", environment.logs());
    assert_eq!(
        claims_of(&environment.log(&recorder), job_id),
        1,
        "the worker that recorded it claimed it"
    );

    let ledger = read_ledger(&ledger_path).expect("ledger");
    let mut seen = BTreeSet::new();
    for entry in &ledger {
        assert!(
            seen.insert(entry.media_sequence),
            "sequence {} twice in the ledger",
            entry.media_sequence
        );
    }
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
        short_jobs.push(environment.add_job(&origin.media_playlist_url()));
        short_origins.push(origin);
    }
    let mut holders = BTreeSet::new();
    for short in &short_jobs {
        let job = wait_for(
            &backend,
            *short,
            Duration::from_secs(30),
            "a job added after the restart is claimed",
            || environment.logs(),
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
        let job = wait_for(
            &backend,
            *short,
            Duration::from_secs(40),
            "the short job completes",
            || environment.logs(),
            |job| job.state.is_terminal(),
        )
        .await;
        assert_eq!(job.state, JobState::Completed, "{:?}", job.error);
    }

    let (status_a, exit_a) = worker_a.terminate(Duration::from_secs(10));
    let (status_b, exit_b) = worker_b.terminate(Duration::from_secs(10));
    assert!(status_a.success() && status_b.success());
    if std::env::var_os("SHOW_WORKER_LOGS").is_some() {
        eprintln!("{}", environment.logs());
    }
    eprintln!(
        "recorded by {recorder}; Redis down {outage:?} (stopped in {stopped_in:?}); \
         {} segments; SIGTERM exits {exit_a:?} / {exit_b:?}",
        ledger.len()
    );
}
