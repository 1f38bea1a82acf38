//! Issue 13: every recording reaches its user exactly once, whatever restarts. Real `streambot
//! worker` processes with `TELEGRAM_BOT_TOKEN` deliver the finished parts themselves to the fake
//! Bot API (no bot process runs at all: a bot restart between `Completed` and delivery cannot
//! lose anything); the job record says which parts were sent.
//!
//! - a normal job: every part in the chat once, the summary once;
//! - `kill -9` of the worker while the fake Bot API is slow to answer the 2nd `sendVideo`: the
//!   other worker resumes the delivery (lease reaper), and every part is in the chat exactly once.
//!
//! Both on the embedded SQLite store and on Redis.

mod support;

use std::process::Stdio;
use std::time::Duration;

use streambot_core::{JobId, JobState, PartDeliveryState};
use streambot_store::{JobBackend, RedisBackend, SqliteBackend};
use streambot_testkit::telegram::FakeTelegram;
use streambot_testkit::{
    Fault, OriginConfig, OriginHandle, SegmentKind, random_key_prefix, redis_url_for_test,
    spawn_origin,
};
use support::{Guarded, WorkerEnvironment, wait_for_completion, wait_for_job};

const USER: i64 = 4242;

/// A finished stream of 9 fMP4 segments (about 45 KB each) with two discontinuities; the
/// delivering worker's `MAX_PART_SIZE_MB` (0.14) cuts it into several parts that finalize does not
/// join (the discontinuities alone would be joined into one file), each a finished mp4.
async fn three_part_stream() -> OriginHandle {
    spawn_origin(
        OriginConfig::new(SegmentKind::Fmp4)
            .with_first_media_sequence(0)
            .with_window_segments(9)
            .with_initial_segments(9)
            .with_total_segments(9)
            .with_fault(Fault::DiscontinuityAt { media_sequence: 3 })
            .with_fault(Fault::DiscontinuityAt { media_sequence: 6 }),
    )
    .await
    .expect("origin")
}

fn start_delivering_worker(
    environment: &WorkerEnvironment,
    telegram: &FakeTelegram,
    worker_id: &str,
) -> Guarded {
    let log = std::fs::File::create(environment.data_path().join(format!("{worker_id}.log")))
        .expect("log file");
    Guarded::new(
        environment
            .command(&["worker"])
            .env("WORKER_ID", worker_id)
            // Parts of the same encode are joined into one file at finalize (issue 17); a size
            // limit of about three segments keeps this recording several files.
            .env("MAX_PART_SIZE_MB", "0.14")
            .env("TELEGRAM_BOT_TOKEN", &telegram.token)
            .env("TELEGRAM_API_URL", &telegram.api_url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start a worker"),
    )
}

fn sent_messages(telegram: &FakeTelegram) -> usize {
    telegram
        .calls_of("sendMessage")
        .iter()
        .filter(|call| call.http_status == 200 && call.chat_id() == Some(USER))
        .count()
}

async fn assert_delivered_once<B: JobBackend>(
    backend: &B,
    telegram: &FakeTelegram,
    job_id: JobId,
    logs: impl Fn() -> String,
) {
    let finished = wait_for_completion(backend, job_id, Duration::from_secs(120), &logs).await;
    assert_eq!(finished.state, JobState::Completed);
    let delivery = finished.delivery.expect("the job records its delivery");
    assert!(delivery.summary_sent, "{}", logs());
    assert!(delivery.parts.len() >= 2, "several parts: {delivery:?}");
    for part in &delivery.parts {
        assert!(
            matches!(part.state, PartDeliveryState::Sent { .. }),
            "part {} is {:?}\n{}",
            part.part_number,
            part.state,
            logs()
        );
    }
    let files = telegram.files_received_in_chat(USER);
    assert_eq!(
        files.len(),
        delivery.parts.len(),
        "every part reached the chat: {files:?}\n{}",
        logs()
    );
    assert!(
        files.values().all(|count| *count == 1),
        "each part exactly once: {files:?}\n{}",
        logs()
    );
    assert_eq!(sent_messages(telegram), 1, "one summary\n{}", logs());
}

async fn a_normal_job_is_delivered_once_without_a_bot<B: JobBackend>(
    backend: B,
    environment: WorkerEnvironment,
) {
    let telegram = FakeTelegram::start().await.expect("fake telegram");
    let origin = three_part_stream().await;
    let mut worker = start_delivering_worker(&environment, &telegram, "worker-a");
    let job_id = environment.add_job(&[&origin.media_playlist_url(), "--user", &USER.to_string()]);
    assert_delivered_once(&backend, &telegram, job_id, || environment.log("worker-a")).await;
    let (status, _) = worker.terminate(Duration::from_secs(10));
    assert!(status.success(), "worker exited with {status}");
}

async fn a_worker_killed_while_sending_leaves_no_duplicate<B: JobBackend>(
    backend: B,
    environment: WorkerEnvironment,
) {
    let telegram = FakeTelegram::start().await.expect("fake telegram");
    // The second part's upload hangs: the worker is killed while Telegram has not answered.
    telegram.delay_answer("sendVideo", 2, Duration::from_secs(120));
    let origin = three_part_stream().await;
    let mut first_worker = start_delivering_worker(&environment, &telegram, "worker-a");
    let job_id = environment.add_job(&[&origin.media_playlist_url(), "--user", &USER.to_string()]);
    let logs = || environment.logs(&["worker-a", "worker-b"]);
    assert!(
        telegram
            .wait_for_received("sendVideo", 2, Duration::from_secs(90))
            .await,
        "the second part's upload starts\n{}",
        logs()
    );
    let sending = wait_for_job(
        &backend,
        job_id,
        Duration::from_secs(10),
        "part 1 recorded sent, part 2 sending",
        logs,
        |job| {
            job.delivery.as_ref().is_some_and(|delivery| {
                matches!(
                    delivery.part(1).map(|part| &part.state),
                    Some(PartDeliveryState::Sent { .. })
                ) && matches!(
                    delivery.part(2).map(|part| &part.state),
                    Some(PartDeliveryState::Sending { .. })
                )
            })
        },
    )
    .await;
    assert_eq!(sending.state, JobState::Uploading);
    first_worker.kill();
    let mut second_worker = start_delivering_worker(&environment, &telegram, "worker-b");
    assert_delivered_once(&backend, &telegram, job_id, logs).await;
    let resumed = backend.get_job(job_id).await.expect("get").expect("job");
    assert!(resumed.fencing_epoch >= 2, "another worker finished it");
    let (status, _) = second_worker.terminate(Duration::from_secs(10));
    assert!(status.success(), "worker-b exited with {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_job_is_delivered_once_without_a_bot_embedded_store() {
    if !streambot_testkit::requirements::require_or_skip("ffmpeg") {
        return;
    }
    let environment = WorkerEnvironment::embedded();
    let backend = SqliteBackend::open_in_data_directory(environment.data_path())
        .await
        .expect("store");
    a_normal_job_is_delivered_once_without_a_bot(backend, environment).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_job_is_delivered_once_without_a_bot_redis() {
    let Some(url) = redis_url_for_test() else {
        return;
    };
    if !streambot_testkit::requirements::require_or_skip("ffmpeg") {
        return;
    }
    let prefix = random_key_prefix();
    let environment = WorkerEnvironment::redis(&url, &prefix);
    let backend = RedisBackend::connect(&url, &prefix).await.expect("redis");
    a_normal_job_is_delivered_once_without_a_bot(backend.clone(), environment).await;
    backend.delete_all_keys().await.expect("clean up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_while_sending_leaves_no_duplicate_embedded_store() {
    if !streambot_testkit::requirements::require_or_skip("ffmpeg") {
        return;
    }
    let environment = WorkerEnvironment::embedded();
    let backend = SqliteBackend::open_in_data_directory(environment.data_path())
        .await
        .expect("store");
    a_worker_killed_while_sending_leaves_no_duplicate(backend, environment).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_while_sending_leaves_no_duplicate_redis() {
    let Some(url) = redis_url_for_test() else {
        return;
    };
    if !streambot_testkit::requirements::require_or_skip("ffmpeg") {
        return;
    }
    let prefix = random_key_prefix();
    let environment = WorkerEnvironment::redis(&url, &prefix);
    let backend = RedisBackend::connect(&url, &prefix).await.expect("redis");
    a_worker_killed_while_sending_leaves_no_duplicate(backend.clone(), environment).await;
    backend.delete_all_keys().await.expect("clean up");
}
