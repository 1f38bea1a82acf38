//! Issue 13 item 7: shutdown is bounded, and proven so. The real `streambot` binary gets SIGTERM
//! in each state a job or a role can be in, and must exit within 10 s (Docker's SIGKILL), leave
//! the job resumable, and, once started again, finish the job with every part delivered to the
//! chat exactly once (the fake Bot API counts them):
//!
//! - `streambot run` (embedded SQLite store): idle; recording; finalizing (an ffmpeg remux that
//!   stalls, through an `FFMPEG_PATH` wrapper; also `kill -9` there); delivering (the fake Bot API stalls the
//!   `sendVideo` upload); waiting for a stream that is not live yet; the schedule runner sleeping
//!   before a due schedule (and `kill -9` around the due time: the schedule starts exactly once);
//! - a second SIGTERM/SIGINT while the first shutdown waits for an upload: exit at once, non-zero;
//! - `streambot worker` on Redis: blocked on the claim read of an empty queue, then recording.

mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{Timelike, Utc};
use streambot_core::{
    JobId, JobOwner, JobPriority, JobState, NewSchedule, PartDeliveryState, RecordingOptions,
    Recurrence, ScheduleRule,
};
use streambot_store::{
    JobBackend, JobFilter, JobStore, RedisBackend, ScheduleCreation, ScheduleStore, SqliteBackend,
};
use streambot_testkit::telegram::FakeTelegram;
use streambot_testkit::{
    Fault, OriginConfig, OriginHandle, SegmentKind, random_key_prefix, redis_url_for_test,
    spawn_origin,
};
use support::{
    Guarded, WorkerEnvironment, ledger_so_far, live_origin, send_signal, stalling_ffmpeg,
    wait_for_completion, wait_for_job, wait_until,
};

/// Docker sends SIGKILL this long after SIGTERM.
const EXIT_LIMIT: Duration = Duration::from_secs(10);

/// A `streambot run` or `streambot worker` with the fake Bot API, started as often as a test
/// needs, each start logging to its own file under the data directory.
struct Harness {
    environment: WorkerEnvironment,
    telegram: FakeTelegram,
    extra_environment: Vec<(String, String)>,
    logs: std::sync::Mutex<Vec<PathBuf>>,
}

impl Harness {
    async fn new(environment: WorkerEnvironment) -> Harness {
        Harness {
            environment,
            telegram: FakeTelegram::start().await.expect("fake telegram"),
            extra_environment: Vec::new(),
            logs: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn with_environment(mut self, name: &str, value: &str) -> Harness {
        self.extra_environment
            .push((name.to_string(), value.to_string()));
        self
    }

    /// `streambot ROLE` (`run` or `worker`), with the bot token and the fake Bot API.
    fn start(&self, role: &str) -> Guarded {
        let mut logs = self
            .logs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let path = self
            .environment
            .data_path()
            .join(format!("{role}-{}.log", logs.len() + 1));
        logs.push(path.clone());
        let log = std::fs::File::create(&path).expect("log file");
        let mut command = self.environment.command(&[role]);
        command
            .env("TELEGRAM_BOT_TOKEN", &self.telegram.token)
            .env("TELEGRAM_API_URL", &self.telegram.api_url)
            .env("WORKER_ID", format!("{role}-{}", logs.len()));
        for (name, value) in &self.extra_environment {
            command.env(name, value);
        }
        Guarded::new(
            command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start streambot"),
        )
    }

    /// Every start's log, one after the other.
    fn logs(&self) -> String {
        let logs = self
            .logs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        logs.iter()
            .map(|path| {
                format!(
                    "--- {}\n{}\n",
                    path.display(),
                    std::fs::read_to_string(path).unwrap_or_default()
                )
            })
            .collect()
    }

    /// The latest start's log.
    fn last_log(&self) -> String {
        let logs = self
            .logs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        logs.last()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .unwrap_or_default()
    }

    fn add_job(&self, url: &str, user: i64, extra: &[&str]) -> JobId {
        let user = user.to_string();
        let mut arguments = vec![url, "--user", user.as_str()];
        arguments.extend_from_slice(extra);
        self.environment.add_job(&arguments)
    }

    /// The latest start's bot is up (polling the fake Bot API).
    async fn wait_for_bot(&self) {
        wait_until(
            Duration::from_secs(60),
            "the bot runs",
            || self.logs(),
            || self.last_log().contains("the Telegram bot is running"),
        )
        .await;
    }
}

/// SIGTERM; the process must exit successfully within [`EXIT_LIMIT`]. How long it took.
fn terminate_within_limit(process: &mut Guarded, harness: &Harness, what: &str) -> Duration {
    let (status, took) = process.terminate(EXIT_LIMIT);
    assert!(
        status.success(),
        "{what}: exited with {status}\n{}",
        harness.logs()
    );
    eprintln!("{what}: exited {took:?} after SIGTERM");
    took
}

/// Given back to its queue: `Queued`, no lease, no error.
async fn assert_left_resumable<B: JobStore>(backend: &B, job_id: JobId, harness: &Harness) {
    let left = backend.get_job(job_id).await.expect("get").expect("exists");
    assert!(
        left.state == JobState::Queued || left.lease.is_none(),
        "left resumable: {:?} with {:?}\n{}",
        left.state,
        left.lease,
        harness.logs()
    );
    assert!(
        !left.state.is_terminal(),
        "{:?}: {:?}",
        left.state,
        left.error
    );
    assert_eq!(left.error, None, "{}", harness.logs());
}

/// Completed, every part recorded sent, each file in the chat once, the summary sent.
async fn assert_completed_and_delivered_once<B: JobBackend>(
    backend: &B,
    harness: &Harness,
    job_id: JobId,
    user: i64,
) {
    let finished =
        wait_for_completion(backend, job_id, Duration::from_secs(150), || harness.logs()).await;
    let delivery = finished.delivery.expect("the job records its delivery");
    assert!(delivery.summary_sent, "{}", harness.logs());
    assert!(!delivery.parts.is_empty(), "{}", harness.logs());
    for part in &delivery.parts {
        assert!(
            matches!(part.state, PartDeliveryState::Sent { .. }),
            "part {} is {:?}\n{}",
            part.part_number,
            part.state,
            harness.logs()
        );
    }
    let files = harness.telegram.files_received_in_chat(user);
    assert_eq!(
        files.len(),
        delivery.parts.len(),
        "every part reached the chat: {files:?}\n{}",
        harness.logs()
    );
    assert!(
        files.values().all(|count| *count == 1),
        "each part exactly once: {files:?}\n{}",
        harness.logs()
    );
}

async fn embedded_harness() -> Option<(Harness, SqliteBackend)> {
    if !streambot_testkit::requirements::require_or_skip("ffmpeg") {
        return None;
    }
    let harness = Harness::new(WorkerEnvironment::embedded()).await;
    let backend = SqliteBackend::open_in_data_directory(harness.environment.data_path())
        .await
        .expect("store");
    Some((harness, backend))
}

/// A short finished stream: the whole recording takes a few seconds.
async fn short_stream() -> OriginHandle {
    live_origin(0, 3).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_run_exits_within_ten_seconds() {
    let Some((harness, _backend)) = embedded_harness().await else {
        return;
    };
    let mut run = harness.start("run");
    harness.wait_for_bot().await;
    terminate_within_limit(&mut run, &harness, "idle run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_run_commits_and_resumes_after_sigterm() {
    let Some((harness, backend)) = embedded_harness().await else {
        return;
    };
    let user = 7101;
    let origin = live_origin(0, 20).await;
    let mut run = harness.start("run");
    let job_id = harness.add_job(&origin.media_playlist_url(), user, &[]);
    let directory = streambot_core::job_directory(&harness.environment.recordings(), job_id);
    wait_for_job(
        &backend,
        job_id,
        Duration::from_secs(60),
        "recording",
        || harness.logs(),
        |job| job.state == JobState::Recording,
    )
    .await;
    wait_until(
        Duration::from_secs(30),
        "segments",
        || harness.logs(),
        || ledger_so_far(&directory).len() >= 8,
    )
    .await;
    terminate_within_limit(&mut run, &harness, "recording run");
    assert_left_resumable(&backend, job_id, &harness).await;
    let log = harness.last_log();
    assert!(
        log.contains("finishing the segments in flight")
            && log.contains("left resumable for the next worker"),
        "the recording wound down and gave the job back:\n{log}"
    );
    eprintln!(
        "recording run's wind-down:\n{}",
        log.lines()
            .skip_while(|line| !line.contains("shutting down"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let _run = harness.start("run");
    assert_completed_and_delivered_once(&backend, &harness, job_id, user).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizing_run_exits_within_ten_seconds_and_finalizes_after_restart() {
    a_finalize_cut_short_is_finished_after_restart("TERM").await;
}

/// `kill -9` in the middle of the remux: the lease lapses, the job is reaped back to the queue
/// (not failed), and the next start finalizes the same parts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_while_finalizing_finalizes_after_restart() {
    a_finalize_cut_short_is_finished_after_restart("KILL").await;
}

async fn a_finalize_cut_short_is_finished_after_restart(stop: &str) {
    if !streambot_testkit::requirements::require_or_skip("ffmpeg") {
        return;
    }
    let tools = tempfile::tempdir().expect("tempdir");
    let stall_flag = tools.path().join("stall");
    std::fs::write(&stall_flag, b"").expect("flag");
    let wrapper = stalling_ffmpeg(tools.path(), &stall_flag, false);
    let harness = Harness::new(WorkerEnvironment::embedded())
        .await
        .with_environment("FFMPEG_PATH", &wrapper.to_string_lossy());
    let backend = SqliteBackend::open_in_data_directory(harness.environment.data_path())
        .await
        .expect("store");
    let user = if stop == "KILL" { 7110 } else { 7102 };
    let origin = short_stream().await;
    let mut run = harness.start("run");
    let job_id = harness.add_job(&origin.media_playlist_url(), user, &[]);
    wait_for_job(
        &backend,
        job_id,
        Duration::from_secs(90),
        "finalizing",
        || harness.logs(),
        |job| job.state == JobState::Finalizing,
    )
    .await;
    let used = tools.path().join("stall.used");
    wait_until(
        Duration::from_secs(30),
        "the remux is running",
        || harness.logs(),
        || used.exists(),
    )
    .await;
    if stop == "KILL" {
        run.kill();
    } else {
        terminate_within_limit(&mut run, &harness, "finalizing run");
    }
    let left = backend.get_job(job_id).await.expect("get").expect("job");
    assert!(!left.state.is_terminal(), "{left:?}\n{}", harness.logs());
    std::fs::remove_file(&stall_flag).expect("remux at full speed again");
    let _run = harness.start("run");
    assert_completed_and_delivered_once(&backend, &harness, job_id, user).await;
}

/// The fake Bot API holds the first upload for minutes: SIGTERM while the worker delivers.
async fn a_stalled_upload(harness: &Harness, backend: &SqliteBackend, user: i64) -> JobId {
    let next_upload = harness.telegram.received_count("sendVideo") + 1;
    harness
        .telegram
        .delay_answer("sendVideo", next_upload, Duration::from_secs(600));
    let origin = short_stream().await;
    let job_id = harness.add_job(&origin.media_playlist_url(), user, &[]);
    assert!(
        harness
            .telegram
            .wait_for_received("sendVideo", next_upload, Duration::from_secs(120))
            .await,
        "the upload starts\n{}",
        harness.logs()
    );
    let job = backend.get_job(job_id).await.expect("get").expect("job");
    assert_eq!(job.state, JobState::Uploading, "{}", harness.logs());
    drop(origin);
    job_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivering_run_exits_within_ten_seconds_and_delivers_once_after_restart() {
    let Some((harness, backend)) = embedded_harness().await else {
        return;
    };
    let user = 7103;
    let mut run = harness.start("run");
    let job_id = a_stalled_upload(&harness, &backend, user).await;
    terminate_within_limit(&mut run, &harness, "delivering run");
    assert_left_resumable(&backend, job_id, &harness).await;
    let _run = harness.start("run");
    assert_completed_and_delivered_once(&backend, &harness, job_id, user).await;
}

/// The storage channel of [`channel_storage_harness`].
const STORAGE_CHANNEL: i64 = -1_001_234_567_890;

/// `STORAGE_BACKEND=telegram`: finished files are uploaded to a channel while the job is
/// `Uploading` (storing), a step a shutdown waits for (up to the worker's deadline).
async fn channel_storage_harness() -> Option<(Harness, SqliteBackend)> {
    if !streambot_testkit::requirements::require_or_skip("ffmpeg") {
        return None;
    }
    let harness = Harness::new(WorkerEnvironment::embedded())
        .await
        .with_environment("STORAGE_BACKEND", "telegram")
        .with_environment("TELEGRAM_STORAGE_CHANNEL_ID", &STORAGE_CHANNEL.to_string());
    let backend = SqliteBackend::open_in_data_directory(harness.environment.data_path())
        .await
        .expect("store");
    Some((harness, backend))
}

/// Completed and the summary sent (the parts went to the storage channel; the user gets links).
async fn assert_completed_with_summary(backend: &SqliteBackend, harness: &Harness, job_id: JobId) {
    let finished =
        wait_for_completion(backend, job_id, Duration::from_secs(150), || harness.logs()).await;
    let delivery = finished.delivery.expect("the job records its delivery");
    assert!(delivery.summary_sent, "{}", harness.logs());
}

/// A second signal while the first shutdown waits for the storage channel's upload (held by the
/// fake Bot API): the process exits at once with status 130; the next start stores and delivers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_during_delivery_exits_at_once() {
    let Some((harness, backend)) = channel_storage_harness().await else {
        return;
    };
    for (round, second_signal) in ["TERM", "INT"].into_iter().enumerate() {
        let user = 7104 + round as i64;
        let uploads_before = harness.telegram.calls_of("sendVideo").len();
        let mut run = harness.start("run");
        let job_id = a_stalled_upload(&harness, &backend, user).await;
        let process_id = run.child().id();
        assert!(send_signal(process_id, "TERM"));
        wait_until(
            Duration::from_secs(5),
            "the first signal is taken",
            || harness.logs(),
            || {
                harness
                    .last_log()
                    .contains("send the signal again to exit at once")
            },
        )
        .await;
        let (status, took) = run.terminate_with(second_signal, Duration::from_secs(3));
        assert_eq!(status.code(), Some(130), "{}", harness.logs());
        eprintln!("second SIG{second_signal}: exited {took:?} after it");
        // The next start stores the file again (the cut upload left nothing in the channel).
        let mut again = harness.start("run");
        assert_completed_with_summary(&backend, &harness, job_id).await;
        let uploads: Vec<_> = harness.telegram.calls_of("sendVideo")[uploads_before..]
            .iter()
            .filter(|call| call.http_status == 200 && call.chat_id() == Some(STORAGE_CHANNEL))
            .cloned()
            .collect();
        assert_eq!(uploads.len(), 1, "stored once\n{}", harness.logs());
        terminate_within_limit(&mut again, &harness, "after the delivery");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_live_run_exits_within_ten_seconds_and_records_after_restart() {
    let Some((harness, backend)) = embedded_harness().await else {
        return;
    };
    let user = 7106;
    let not_live_for = Duration::from_secs(25);
    let origin = spawn_origin(
        OriginConfig::new(SegmentKind::MpegTs)
            .with_window_segments(6)
            .with_initial_segments(6)
            .with_first_media_sequence(0)
            .with_total_segments(6 + 120)
            .with_fault(Fault::PlaylistHttpStatus {
                from: Duration::ZERO,
                to: not_live_for,
                status: 404,
            }),
    )
    .await
    .expect("origin");
    let origin_started = Instant::now();
    let mut run = harness.start("run");
    let job_id = harness.add_job(
        &origin.media_playlist_url(),
        user,
        &["--wait", "10m", "--for", "6s"],
    );
    wait_for_job(
        &backend,
        job_id,
        Duration::from_secs(60),
        "waiting for the stream",
        || harness.logs(),
        |job| job.waiting_for_live.is_some(),
    )
    .await;
    assert!(
        origin_started.elapsed() < not_live_for,
        "the machine is too slow for this test's timing"
    );
    terminate_within_limit(&mut run, &harness, "waiting-for-live run");
    assert_left_resumable(&backend, job_id, &harness).await;
    let client = reqwest::Client::new();
    let url = origin.media_playlist_url();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answered = client
            .get(&url)
            .send()
            .await
            .map(|response| response.status());
        if answered.is_ok_and(|status| status.is_success()) {
            break;
        }
        assert!(Instant::now() < deadline, "the origin never went live");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _run = harness.start("run");
    assert_completed_and_delivered_once(&backend, &harness, job_id, user).await;
}

/// A daily schedule of `user` whose occurrence is `seconds_ahead` from now, without lead.
fn schedule_soon(user: i64, url: &str, seconds_ahead: i64) -> NewSchedule {
    let occurrence = Utc::now() + chrono::Duration::seconds(seconds_ahead);
    NewSchedule {
        owner: JobOwner {
            user_id: user,
            chat_id: user,
        },
        url: url.to_string(),
        options: RecordingOptions::default(),
        priority: JobPriority::Normal,
        rule: ScheduleRule {
            time_zone: "UTC".to_string(),
            start_date: occurrence.date_naive(),
            time_of_day: occurrence.time().with_nanosecond(0).expect("time"),
            recurrence: Recurrence::Daily,
        },
        duration: Duration::from_secs(5),
        lead: Duration::ZERO,
    }
}

/// The jobs the schedule started so far.
async fn jobs_of_schedule(
    backend: &SqliteBackend,
    schedule_id: streambot_core::ScheduleId,
) -> Vec<streambot_core::Job> {
    backend
        .list_jobs(JobFilter::default())
        .await
        .expect("list")
        .into_iter()
        .filter(|job| {
            job.scheduled
                .as_ref()
                .is_some_and(|scheduled| scheduled.schedule_id == schedule_id)
        })
        .collect()
}

async fn the_schedule_starts_once_after(stop: &str) {
    let Some((harness, backend)) = embedded_harness().await else {
        return;
    };
    let user = if stop == "TERM" { 7107 } else { 7108 };
    let origin = live_origin(0, 40).await;
    let seconds_ahead = if stop == "TERM" { 40 } else { 12 };
    let schedule = match backend
        .create_schedule(
            schedule_soon(user, &origin.media_playlist_url(), seconds_ahead),
            None,
        )
        .await
        .expect("create")
    {
        ScheduleCreation::Created(schedule) => *schedule,
        ScheduleCreation::TooMany { limit } => panic!("refused at {limit}"),
    };
    let due_at = Instant::now() + Duration::from_secs(seconds_ahead as u64);
    let mut run = harness.start("run");
    harness.wait_for_bot().await;
    if stop == "TERM" {
        // The runner sleeps between its passes; the schedule is not due yet.
        terminate_within_limit(&mut run, &harness, "schedule runner sleeping");
        assert!(
            jobs_of_schedule(&backend, schedule.id).await.is_empty(),
            "not due yet"
        );
    } else {
        // Killed right around the due time: taken or not, never half.
        let around_due = due_at + Duration::from_millis(400);
        tokio::time::sleep_until(around_due.into()).await;
        run.kill();
    }
    let _run = harness.start("run");
    let deadline = Instant::now() + Duration::from_secs(90);
    let job = loop {
        let jobs = jobs_of_schedule(&backend, schedule.id).await;
        assert!(
            jobs.len() <= 1,
            "started twice: {jobs:?}\n{}",
            harness.logs()
        );
        if let Some(job) = jobs.into_iter().next() {
            break job;
        }
        assert!(
            Instant::now() < deadline,
            "never started\n{}",
            harness.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_completed_and_delivered_once(&backend, &harness, job.id, user).await;
    assert_eq!(jobs_of_schedule(&backend, schedule.id).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleeping_schedule_runner_exits_within_ten_seconds_and_starts_the_schedule_once() {
    the_schedule_starts_once_after("TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_due_when_the_runner_is_killed_starts_exactly_once() {
    the_schedule_starts_once_after("KILL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_worker_blocked_on_an_empty_queue_and_recording_exits_within_ten_seconds() {
    let Some(url) = redis_url_for_test() else {
        return;
    };
    if !streambot_testkit::requirements::require_or_skip("ffmpeg") {
        return;
    }
    let prefix = random_key_prefix();
    let harness = Harness::new(WorkerEnvironment::redis(&url, &prefix)).await;
    let backend = RedisBackend::connect(&url, &prefix).await.expect("redis");
    let user = 7109;

    let mut worker = harness.start("worker");
    wait_until(
        Duration::from_secs(30),
        "the worker waits for jobs",
        || harness.logs(),
        || harness.last_log().contains("worker started"),
    )
    .await;
    terminate_within_limit(&mut worker, &harness, "worker blocked on an empty queue");

    let origin = live_origin(0, 20).await;
    let job_id = harness.add_job(&origin.media_playlist_url(), user, &[]);
    let directory = streambot_core::job_directory(&harness.environment.recordings(), job_id);
    let mut worker = harness.start("worker");
    wait_until(
        Duration::from_secs(60),
        "segments",
        || harness.logs(),
        || ledger_so_far(&directory).len() >= 8,
    )
    .await;
    terminate_within_limit(&mut worker, &harness, "recording worker");
    assert_left_resumable(&backend, job_id, &harness).await;
    let mut worker = harness.start("worker");
    assert_completed_and_delivered_once(&backend, &harness, job_id, user).await;
    terminate_within_limit(&mut worker, &harness, "worker after the job");
    backend.delete_all_keys().await.expect("clean up");
}

/// `kill -9` while the finished file is being stored (the storage channel's upload is held by the
/// fake Bot API, after the file was moved into `user_<id>/<job_id>/`): the job is reaped back to
/// the queue, not failed, and the next start stores the same file (from where it was moved) and
/// delivers it; the channel holds it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_while_storing_stores_and_delivers_after_restart() {
    let Some((harness, backend)) = channel_storage_harness().await else {
        return;
    };
    let channel = STORAGE_CHANNEL;
    let user = 7111;
    harness
        .telegram
        .delay_answer("sendVideo", 1, Duration::from_secs(600));
    let origin = short_stream().await;
    let mut run = harness.start("run");
    let job_id = harness.add_job(&origin.media_playlist_url(), user, &[]);
    assert!(
        harness
            .telegram
            .wait_for_received("sendVideo", 1, Duration::from_secs(120))
            .await,
        "the channel upload starts\n{}",
        harness.logs()
    );
    let storing = backend.get_job(job_id).await.expect("get").expect("job");
    assert_eq!(storing.state, JobState::Uploading, "{}", harness.logs());
    assert!(storing.delivery.is_none(), "still storing: {storing:?}");
    run.kill();
    let _run = harness.start("run");
    assert_completed_with_summary(&backend, &harness, job_id).await;
    assert!(
        harness
            .logs()
            .contains("finalized before: storing its files"),
        "resumed at the store step\n{}",
        harness.logs()
    );
    let in_channel = harness.telegram.files_received_in_chat(channel);
    assert_eq!(
        in_channel.values().sum::<usize>(),
        1,
        "stored once: {in_channel:?}\n{}",
        harness.logs()
    );
}

/// Found by the chaos test (SQLite, `CHAOS_SEED=1796432017406449825`): a SIGTERM while
/// `streambot run` was still starting (the ffmpeg check, the store) killed it by the signal's
/// default action, before its handler was there. The handler is now the first thing each role
/// installs, and start-up gives way to it: here the ffmpeg check takes 5 s, and SIGTERM in the
/// middle of it is a clean stop, at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_during_start_up_is_a_clean_stop() {
    if !streambot_testkit::requirements::require_or_skip("ffmpeg") {
        return;
    }
    let tools = tempfile::tempdir().expect("tempdir");
    let slow_ffmpeg = tools.path().join("slow-ffmpeg.sh");
    std::fs::write(&slow_ffmpeg, "#!/bin/sh\nsleep 5\nexec ffmpeg \"$@\"\n").expect("wrapper");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&slow_ffmpeg, std::fs::Permissions::from_mode(0o755))
            .expect("make it executable");
    }
    let harness = Harness::new(WorkerEnvironment::embedded())
        .await
        .with_environment("FFMPEG_PATH", &slow_ffmpeg.to_string_lossy());
    let mut run = harness.start("run");
    // Well inside the 5 s check, well after the process began.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !harness.last_log().contains("the Telegram bot is running"),
        "still starting\n{}",
        harness.logs()
    );
    let took = terminate_within_limit(&mut run, &harness, "run during start-up");
    assert!(
        took < Duration::from_secs(3),
        "start-up gave way at once: {took:?}\n{}",
        harness.logs()
    );
}
