//! Many live jobs for the outbound-queue tests and benchmark: the real bot against the fake Bot
//! API (real HTTP on 127.0.0.1, limits enforced), the real SQLite store, and jobs claimed and
//! moved to `Recording` by the test itself (no worker), each owned by its own private chat,
//! whose progress changes on every `tick`.

use std::time::Duration;

use streambot_bot::{BotSettings, run_bot};
use streambot_core::job::{JobOwner, JobPriority, JobState, NewJob};
use streambot_core::{RecordingOptions, RecordingProgress};
use streambot_store::{JobStore, Lease, Queue, SqliteBackend};
use streambot_testkit::telegram::{FakeTelegram, RecordedCall};
use tokio_util::sync::CancellationToken;

#[path = "../../../store/tests/common/counting.rs"]
#[allow(dead_code)]
pub mod counting;

use counting::CountingBackend;

pub struct LiveJobsHarness {
    pub telegram: FakeTelegram,
    /// The store as the test reaches it (uncounted).
    pub backend: SqliteBackend,
    /// The same store as the bot reaches it, its calls counted (the benchmark does not look).
    #[allow(dead_code)]
    pub bot_backend: CountingBackend<SqliteBackend>,
    pub shutdown: CancellationToken,
    pub bot_task: tokio::task::JoinHandle<()>,
    _directory: tempfile::TempDir,
}

/// A job the harness claimed: its chat and lease.
pub struct LiveJob {
    pub chat_id: i64,
    pub lease: Lease,
}

/// Chats of the live jobs start here (one private chat per job).
pub const FIRST_JOB_CHAT: i64 = 500_000;

impl LiveJobsHarness {
    pub async fn start(adjust: impl FnOnce(&mut BotSettings)) -> LiveJobsHarness {
        let telegram = FakeTelegram::start().await.expect("fake telegram");
        let directory = tempfile::tempdir().expect("tempdir");
        let data_directory = directory.path().join("data");
        let recordings_directory = directory.path().join("recordings");
        std::fs::create_dir_all(&data_directory).expect("data dir");
        let backend = SqliteBackend::open_in_data_directory(&data_directory)
            .await
            .expect("sqlite");
        let mut settings = BotSettings::new(&telegram.token, recordings_directory, &data_directory);
        settings.api_url = Some(telegram.api_url.parse().expect("url"));
        settings.allow_private_networks = true;
        settings.status_edit_interval = Duration::from_secs(1);
        adjust(&mut settings);
        let shutdown = CancellationToken::new();
        let bot_shutdown = shutdown.clone();
        let bot_backend = CountingBackend::new(backend.clone());
        let counted = bot_backend.clone();
        let bot_task = tokio::spawn(async move {
            if let Err(error) = run_bot(settings, counted, bot_shutdown).await {
                eprintln!("the bot stopped: {error}");
            }
        });
        LiveJobsHarness {
            telegram,
            backend,
            bot_backend,
            shutdown,
            bot_task,
            _directory: directory,
        }
    }

    /// Creates `count` jobs in chats `FIRST_JOB_CHAT..`, claims them and moves them to
    /// `Recording`; the bot sends each its status message.
    pub async fn start_live_jobs(&self, count: usize) -> Vec<LiveJob> {
        let mut jobs = Vec::with_capacity(count);
        for index in 0..count {
            let chat_id = FIRST_JOB_CHAT + index as i64;
            self.backend
                .create_queued_job(NewJob {
                    owner: JobOwner {
                        user_id: chat_id,
                        chat_id,
                    },
                    url: format!("https://live.example/{index}/index.m3u8"),
                    options: RecordingOptions::default(),
                    priority: JobPriority::Normal,
                })
                .await
                .expect("create");
            let (job, lease) = self
                .backend
                .claim(
                    "live-jobs",
                    &[JobPriority::Normal],
                    Duration::from_secs(3600),
                    Duration::from_secs(5),
                )
                .await
                .expect("claim")
                .expect("a queued job");
            self.backend
                .transition_job(
                    job.id,
                    JobState::Starting,
                    JobState::Recording,
                    Some(&lease),
                    None,
                )
                .await
                .expect("recording");
            jobs.push(LiveJob {
                chat_id: job.owner.chat_id,
                lease,
            });
        }
        jobs
    }

    /// Every job's progress moves on (its status text changes).
    pub async fn tick(&self, jobs: &[LiveJob], seconds: u64) {
        for job in jobs {
            let progress = RecordingProgress {
                elapsed: Duration::from_secs(seconds),
                media_seconds: seconds as f64,
                bytes_written: seconds * 750_000,
                segments_written: seconds,
                current_part: 1,
                ..RecordingProgress::default()
            };
            self.backend
                .update_progress(&job.lease, progress)
                .await
                .expect("progress");
        }
    }

    /// Waits (bounded) until every job's chat got its status message.
    pub async fn wait_for_status_messages(&self, jobs: &[LiveJob], timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let sent: std::collections::HashSet<i64> = self
                .telegram
                .calls_of("sendMessage")
                .iter()
                .filter(|call| call.http_status == 200)
                .filter_map(RecordedCall::chat_id)
                .collect();
            if jobs.iter().all(|job| sent.contains(&job.chat_id)) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                let calls = self.telegram.calls();
                let mut by_method: std::collections::BTreeMap<(String, u16), usize> =
                    std::collections::BTreeMap::new();
                for call in &calls {
                    *by_method
                        .entry((call.method.clone(), call.http_status))
                        .or_default() += 1;
                }
                eprintln!(
                    "status messages sent to {} of {} chats; calls: {by_method:?}",
                    jobs.iter()
                        .filter(|job| sent.contains(&job.chat_id))
                        .count(),
                    jobs.len()
                );
                return false;
            }
            self.telegram
                .wait_for_call(Duration::from_millis(500), |call| {
                    call.method == "sendMessage"
                })
                .await;
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(20), self.bot_task).await;
    }
}

/// The longest time any job's status message went without a successful edit within
/// `[from, to]` (fake-server time), and the number of successful edits in it.
pub fn longest_unrefreshed(
    calls: &[RecordedCall],
    jobs: &[LiveJob],
    from: Duration,
    to: Duration,
) -> (Duration, usize) {
    let mut longest = Duration::ZERO;
    let mut edits = 0;
    for job in jobs {
        let mut last = from;
        for call in calls.iter().filter(|call| {
            call.method == "editMessageText"
                && call.http_status == 200
                && call.chat_id() == Some(job.chat_id)
                && call.at >= from
                && call.at <= to
        }) {
            longest = longest.max(call.at.saturating_sub(last));
            last = call.at;
            edits += 1;
        }
        longest = longest.max(to.saturating_sub(last));
    }
    (longest, edits)
}
