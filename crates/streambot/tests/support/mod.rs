//! Shared by the tests that run the real `streambot` binary: child processes that are killed when
//! the test ends however it ends, `streambot worker` processes in a test environment and
//! `streambot jobs …` against the same store, waits with deadlines, the test origin's live stream,
//! ledgers, files and ffmpeg, and a private `redis-server`.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use streambot_core::{Job, JobId, JobState};
use streambot_hls::ledger::{LedgerEntry, read_ledger};
use streambot_store::JobStore;
use streambot_testkit::redis::redis_answers_ping;
use streambot_testkit::{OriginConfig, OriginHandle, SegmentKind, spawn_origin};

pub const BINARY: &str = env!("CARGO_BIN_EXE_streambot");

/// The live window (and the segments there at the start) of [`live_origin`], in segments.
pub const WINDOW: u64 = 6;

// Processes.

/// A child process, killed (SIGKILL) and reaped when dropped, so that a failed assertion or a
/// timeout never leaves it running.
pub struct Guarded(Option<Child>);

impl Guarded {
    pub fn new(child: Child) -> Guarded {
        Guarded(Some(child))
    }

    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("running")
    }

    /// SIGKILL now, and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.0.take() {
            child.kill().expect("kill -KILL");
            let _ = child.wait();
        }
    }

    /// SIGTERM; the exit status and how long the exit took, or a panic (and SIGKILL on drop)
    /// when it has not exited within `limit`.
    pub fn terminate(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        self.terminate_with("TERM", limit)
    }

    /// [`Guarded::terminate`] with another signal ("INT", "TERM").
    pub fn terminate_with(&mut self, signal: &str, limit: Duration) -> (ExitStatus, Duration) {
        let process_id = self.child().id();
        let started = Instant::now();
        assert!(
            send_signal(process_id, signal),
            "kill -{signal} {process_id}"
        );
        loop {
            if let Some(status) = self.child().try_wait().expect("wait") {
                self.0 = None;
                return (status, started.elapsed());
            }
            assert!(
                started.elapsed() < limit,
                "pid {process_id} did not exit within {limit:?} of SIG{signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
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

/// `kill -SIGNAL PROCESS_ID` (`signal` without the dash: "TERM", "INT"); whether it was sent.
pub fn send_signal(process_id: u32, signal: &str) -> bool {
    Command::new("kill")
        .args([format!("-{signal}"), process_id.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

// Workers and `streambot jobs`.

/// A data directory for `streambot worker` processes and `streambot jobs …` commands that share
/// one store: the embedded SQLite store in the data directory, or Redis.
pub struct WorkerEnvironment {
    pub data: tempfile::TempDir,
    /// The Redis URL and key prefix, or `None` for the embedded store.
    redis: Option<(String, String)>,
}

impl WorkerEnvironment {
    /// The embedded store (`REDIS_URL` is removed from the commands' environment).
    pub fn embedded() -> WorkerEnvironment {
        WorkerEnvironment {
            data: tempfile::tempdir().expect("tempdir"),
            redis: None,
        }
    }

    /// Redis at `url`, keys under `prefix`.
    pub fn redis(url: &str, prefix: &str) -> WorkerEnvironment {
        WorkerEnvironment {
            redis: Some((url.to_string(), prefix.to_string())),
            ..WorkerEnvironment::embedded()
        }
    }

    pub fn data_path(&self) -> &Path {
        self.data.path()
    }

    pub fn recordings(&self) -> PathBuf {
        self.data.path().join("recordings")
    }

    /// `streambot ARGUMENTS` with this environment: one worker slot, private networks allowed
    /// (the origin is on 127.0.0.1), log level info.
    pub fn command(&self, arguments: &[&str]) -> Command {
        let mut command = Command::new(BINARY);
        command
            .args(arguments)
            .env_remove("REDIS_URL")
            .env("DATA_DIR", self.data.path())
            .env("LOCAL_STORAGE_PATH", self.recordings())
            .env("WORKER_CONCURRENCY", "1")
            .env("ALLOW_PRIVATE_NETWORKS", "true")
            .env("LOG_LEVEL", "info");
        if let Some((url, prefix)) = &self.redis {
            command
                .env("REDIS_URL", url)
                .env("REDIS_KEY_PREFIX", prefix);
        }
        command
    }

    /// `streambot worker` as `worker_id`, its stderr in `<data>/<worker_id>.log`.
    pub fn start_worker(&self, worker_id: &str) -> Guarded {
        let log = std::fs::File::create(self.log_path(worker_id)).expect("log file");
        Guarded::new(
            self.command(&["worker"])
                .env("WORKER_ID", worker_id)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start a worker"),
        )
    }

    fn log_path(&self, worker_id: &str) -> PathBuf {
        self.data.path().join(format!("{worker_id}.log"))
    }

    /// What the worker logged so far (empty if nothing).
    pub fn log(&self, worker_id: &str) -> String {
        std::fs::read_to_string(self.log_path(worker_id)).unwrap_or_default()
    }

    /// The workers' logs one after the other, each under a `--- worker_id` line.
    pub fn logs(&self, worker_ids: &[&str]) -> String {
        worker_ids
            .iter()
            .map(|worker_id| format!("--- {worker_id}\n{}\n", self.log(worker_id)))
            .collect()
    }

    /// Runs `streambot jobs ARGUMENTS` to the end (at most 60 s); it must succeed. Its stdout.
    pub fn jobs(&self, arguments: &[&str]) -> String {
        let mut full = vec!["jobs"];
        full.extend_from_slice(arguments);
        let child = self
            .command(&full)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("streambot jobs");
        let output = output_within(child, Duration::from_secs(60));
        assert!(
            output.status.success(),
            "streambot jobs {arguments:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `streambot jobs add ARGUMENTS` (the URL first); the new job's id.
    pub fn add_job(&self, arguments: &[&str]) -> JobId {
        let mut full = vec!["add"];
        full.extend_from_slice(arguments);
        self.jobs(&full)
            .trim()
            .parse()
            .expect("jobs add prints the id")
    }
}

// Roles with the fake Bot API.

/// `streambot ROLE` with the fake Bot API's token; its stderr in `<data>/<name>.log`.
pub fn start_role(
    environment: &WorkerEnvironment,
    telegram: &streambot_testkit::telegram::FakeTelegram,
    role: &str,
    name: &str,
) -> Guarded {
    start_role_with(environment, telegram, role, name, &[])
}

/// [`start_role`] with more settings in its environment.
pub fn start_role_with(
    environment: &WorkerEnvironment,
    telegram: &streambot_testkit::telegram::FakeTelegram,
    role: &str,
    name: &str,
    settings: &[(&str, &str)],
) -> Guarded {
    let log = std::fs::File::create(environment.data_path().join(format!("{name}.log")))
        .expect("log file");
    Guarded::new(
        environment
            .command(&[role])
            .envs(settings.iter().copied())
            .env("WORKER_ID", name)
            .env("TELEGRAM_BOT_TOKEN", &telegram.token)
            .env("TELEGRAM_API_URL", &telegram.api_url)
            .env("TELEGRAM_ADMIN_IDS", "42")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start streambot"),
    )
}

pub fn message_id_of(call: &streambot_testkit::telegram::RecordedCall) -> Option<i64> {
    let value = call.parameters.get("message_id")?;
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|text| text.parse().ok()))
}

/// The texts of the answered edits of one message, in order.
pub fn edits_of(
    telegram: &streambot_testkit::telegram::FakeTelegram,
    message_id: i64,
) -> Vec<String> {
    telegram
        .calls_of("editMessageText")
        .iter()
        .filter(|call| call.http_status == 200 && message_id_of(call) == Some(message_id))
        .map(|call| call.text().unwrap_or_default().to_string())
        .collect()
}

/// Waits for `child` to exit and collects its output, killing it (and panicking) after `limit`.
fn output_within(child: Child, limit: Duration) -> std::process::Output {
    let process_id = child.id();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    match receiver.recv_timeout(limit) {
        Ok(output) => output.expect("output"),
        Err(_) => {
            let _ = send_signal(process_id, "KILL");
            panic!("pid {process_id} did not exit within {limit:?}");
        }
    }
}

// Waiting.

/// Polls the job every 50 ms until `condition` holds; panics with the job's last state and
/// `details()` (the workers' logs) after `within`. Read errors (Redis down) are waited out.
pub async fn wait_for_job<B: JobStore>(
    backend: &B,
    job_id: JobId,
    within: Duration,
    what: &str,
    details: impl Fn() -> String,
    mut condition: impl FnMut(&Job) -> bool,
) -> Job {
    let deadline = Instant::now() + within;
    loop {
        let last = match backend.get_job(job_id).await {
            Ok(Some(job)) if condition(&job) => return job,
            Ok(Some(job)) => format!(
                "{:?} (wants {:?}) on {:?}",
                job.state,
                job.desired_state,
                job.worker_id()
            ),
            Ok(None) => "missing".to_string(),
            Err(error) => format!("unreadable ({error})"),
        };
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}; job is {last}\n{}",
            details()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (at most `within`) until the job ends, and asserts that it ended `Completed`.
pub async fn wait_for_completion<B: JobStore>(
    backend: &B,
    job_id: JobId,
    within: Duration,
    details: impl Fn() -> String,
) -> Job {
    let what = "the job completes when the stream ends";
    let finished = wait_for_job(backend, job_id, within, what, &details, |job| {
        job.state.is_terminal()
    })
    .await;
    assert_eq!(
        finished.state,
        JobState::Completed,
        "error: {:?}\n{}",
        finished.error,
        details()
    );
    finished
}

/// Polls `condition` every 100 ms; panics with `details()` after `within`.
pub async fn wait_until(
    within: Duration,
    what: &str,
    details: impl Fn() -> String,
    mut condition: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}\n{}",
            details()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// The stream, the ledger, files.

/// A live MPEG-TS stream on the test origin: [`WINDOW`] segments from `first_media_sequence`
/// at the start, then `live_segments` more, then the end of the stream.
pub async fn live_origin(first_media_sequence: u64, live_segments: u64) -> OriginHandle {
    spawn_origin(
        OriginConfig::new(SegmentKind::MpegTs)
            .with_window_segments(WINDOW)
            .with_initial_segments(WINDOW)
            .with_first_media_sequence(first_media_sequence)
            .with_total_segments(WINDOW + live_segments),
    )
    .await
    .expect("origin")
}

/// The main track's ledger in a job's (or a recording's) directory.
pub fn ledger_path(directory: &Path) -> PathBuf {
    directory.join("main-ledger.jsonl")
}

/// The main track's ledger lines so far (none if it cannot be read yet).
pub fn ledger_so_far(directory: &Path) -> Vec<LedgerEntry> {
    read_ledger(&ledger_path(directory)).unwrap_or_default()
}

/// The ledger's media sequences, asserting that none is there twice.
pub fn media_sequences_once(ledger: &[LedgerEntry]) -> BTreeSet<u64> {
    let mut seen = BTreeSet::new();
    for entry in ledger {
        assert!(
            seen.insert(entry.media_sequence),
            "sequence {} twice in the ledger",
            entry.media_sequence
        );
    }
    seen
}

/// The files anywhere under `directory` that `keep` accepts, sorted.
pub fn files_under(directory: &Path, keep: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![directory.to_path_buf()];
    while let Some(current) = stack.pop() {
        if let Ok(listing) = std::fs::read_dir(&current) {
            for item in listing.flatten() {
                let path = item.path();
                if path.is_dir() {
                    stack.push(path);
                } else if keep(&path) {
                    found.push(path);
                }
            }
        }
    }
    found.sort();
    found
}

/// The files anywhere under `directory` with this extension (without the dot), sorted.
pub fn files_with_extension(directory: &Path, extension: &str) -> Vec<PathBuf> {
    files_under(directory, |path| {
        path.extension().is_some_and(|found| found == extension)
    })
}

/// An `FFMPEG_PATH` that answers `-version` at once but holds every other call while
/// `stall_flag` exists (touching `<stall_flag>.used`), then runs the real ffmpeg: a finalize that
/// takes long. `release_on_removal`: it goes on as soon as the flag is removed (at most 60 s);
/// otherwise it waits the whole minute (a wrapper orphaned by a SIGKILLed worker must not write
/// into the job's directory while the next worker finalizes it).
pub fn stalling_ffmpeg(directory: &Path, stall_flag: &Path, release_on_removal: bool) -> PathBuf {
    let script = directory.join("stalling-ffmpeg.sh");
    let hold = if release_on_removal {
        "i=0; while [ -e \"$flag\" ] && [ $i -lt 300 ]; do sleep 0.2; i=$((i+1)); done"
    } else {
        "sleep 60"
    };
    let text = format!(
        "#!/bin/sh\nflag='{flag}'\nfor argument in \"$@\"; do\n  case \"$argument\" in -version) exec ffmpeg \"$@\";; esac\ndone\nif [ -e \"$flag\" ]; then touch \"$flag.used\"; {hold}; fi\nexec ffmpeg \"$@\"\n",
        flag = stall_flag.display()
    );
    std::fs::write(&script, text).expect("write the wrapper");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .expect("make it executable");
    }
    script
}

pub fn ffmpeg_available() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// The media file's duration in seconds as ffprobe reads it; `None` when ffprobe cannot be run
/// or prints no number. ffprobe must not fail on the file.
pub fn ffprobe_duration(path: &Path) -> Option<f64> {
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

// A private Redis.

/// A `redis-server` of the test's own on a free port of 127.0.0.1, killed when dropped.
pub struct RedisServer {
    port: u16,
    directory: PathBuf,
    arguments: Vec<String>,
    process: Guarded,
}

impl RedisServer {
    /// Starts one with its files in `directory` (no RDB snapshots) and these extra arguments,
    /// and waits (at most 10 s) until it answers; `None` when `redis-server` cannot be run.
    pub fn start(directory: &Path, arguments: &[&str]) -> Option<RedisServer> {
        let arguments = arguments.iter().map(|argument| argument.to_string());
        RedisServer::start_on(free_port(), directory, arguments.collect())
    }

    fn start_on(port: u16, directory: &Path, arguments: Vec<String>) -> Option<RedisServer> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(directory.join("redis.log"))
            .expect("redis log");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(&arguments)
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
            arguments,
            process: Guarded::new(child),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !redis_answers_ping(std::net::SocketAddr::from(([127, 0, 0, 1], port))) {
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

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// SIGTERM (Redis writes what it must and exits, within 10 s), `down_for`, then the same
    /// port, directory and arguments again. How long the stop took.
    pub fn restart_after(&mut self, down_for: Duration) -> Duration {
        let (status, stopped_in) = self.process.terminate(Duration::from_secs(10));
        assert!(status.success(), "redis-server exited with {status}");
        std::thread::sleep(down_for);
        *self = RedisServer::start_on(self.port, &self.directory, self.arguments.clone())
            .expect("restart redis-server");
        stopped_in
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}
