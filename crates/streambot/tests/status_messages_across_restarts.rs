//! Issue 13 item 2: a job's status message survives restarts. The store says which message shows
//! a job; a restarted bot keeps editing that message (the fake Bot API records every
//! `editMessageText`), never sends another, and gives a finished job its final edit exactly
//! once, also when the job finished while the bot was away.
//!
//! - `streambot run` (embedded SQLite store), `kill -9` while recording, started again;
//! - Redis with separate `streambot bot` and `streambot worker` processes: only the bot is
//!   killed, once while recording and once across the job's end.

mod support;

use std::time::Duration;

use streambot_core::{Job, JobId, JobState};
use streambot_store::{JobBackend, RedisBackend, SqliteBackend};
use streambot_testkit::telegram::FakeTelegram;
use streambot_testkit::{
    OriginConfig, OriginHandle, SegmentKind, random_key_prefix, redis_url_for_test, spawn_origin,
};
use support::{
    WorkerEnvironment, edits_of, start_role, wait_for_completion, wait_for_job, wait_until,
};

const USER: i64 = 5151;
/// The bot scans the store every 3 s: three scans.
const A_FEW_SCANS: Duration = Duration::from_secs(10);

async fn long_stream() -> OriginHandle {
    spawn_origin(
        OriginConfig::new(SegmentKind::MpegTs)
            .with_window_segments(10)
            .with_total_segments(2_000),
    )
    .await
    .expect("origin")
}

fn final_edits_of(telegram: &FakeTelegram, message_id: i64) -> usize {
    edits_of(telegram, message_id)
        .iter()
        .filter(|text| text.contains('✅'))
        .count()
}

/// Messages (not edits) the bot sent the user that name the job: its status messages and, at
/// the end, the summary.
fn messages_naming(telegram: &FakeTelegram, job_id: JobId) -> usize {
    telegram
        .calls_of("sendMessage")
        .iter()
        .filter(|call| call.http_status == 200 && call.chat_id() == Some(USER))
        .filter(|call| {
            call.text()
                .is_some_and(|text| text.contains(job_id.as_str()))
        })
        .count()
}

/// The user asks for a recording; the job and its status message once it records.
async fn record_from_telegram<B: JobBackend>(
    backend: &B,
    telegram: &FakeTelegram,
    origin: &OriginHandle,
    logs: impl Fn() -> String,
) -> (JobId, i64) {
    telegram.send_text_from_user(
        USER,
        &format!("record {} for 1 hour", origin.media_playlist_url()),
    );
    let announced = telegram
        .wait_for_text(USER, "checking the link", Duration::from_secs(60))
        .await
        .unwrap_or_else(|| panic!("the bot answers the request\n{}", logs()));
    let job_id: JobId = announced
        .text()
        .and_then(|text| text.split('`').nth(1))
        .and_then(|id| id.parse().ok())
        .expect("the status message names the job");
    let recording = wait_for_job(
        backend,
        job_id,
        Duration::from_secs(60),
        "recording, its status message in the store",
        &logs,
        |job| job.state == JobState::Recording && job.status_message.is_some(),
    )
    .await;
    let message_id = recording
        .status_message
        .map(|reference| reference.message_id)
        .expect("status message");
    wait_until(
        Duration::from_secs(60),
        "the status message is edited while recording",
        &logs,
        || !edits_of(telegram, message_id).is_empty(),
    )
    .await;
    (job_id, message_id)
}

/// After a restart the same message is edited again (and again once the recording goes on),
/// and no other status message is sent.
async fn assert_the_same_message_keeps_being_edited<B: JobBackend>(
    backend: &B,
    telegram: &FakeTelegram,
    job_id: JobId,
    message_id: i64,
    edits_before: usize,
    logs: impl Fn() -> String,
) {
    wait_until(
        Duration::from_secs(60),
        "the restarted bot edits the same status message",
        &logs,
        || edits_of(telegram, message_id).len() > edits_before,
    )
    .await;
    let progressed = backend
        .get_job(job_id)
        .await
        .expect("get")
        .expect("job")
        .progress
        .segments_written;
    let edits_now = edits_of(telegram, message_id).len();
    wait_for_job(
        backend,
        job_id,
        Duration::from_secs(90),
        "the recording goes on",
        &logs,
        |job| job.state == JobState::Recording && job.progress.segments_written > progressed + 2,
    )
    .await;
    wait_until(
        Duration::from_secs(60),
        "progress keeps editing the same message",
        &logs,
        || edits_of(telegram, message_id).len() > edits_now,
    )
    .await;
    assert_eq!(
        messages_naming(telegram, job_id),
        1,
        "one status message, never a second\n{}",
        logs()
    );
}

/// The finished job's message got its final edit, once, and the store says so.
async fn assert_one_final_edit<B: JobBackend>(
    backend: &B,
    telegram: &FakeTelegram,
    job_id: JobId,
    message_id: i64,
    logs: impl Fn() -> String,
) -> Job {
    let finished = wait_for_job(
        backend,
        job_id,
        Duration::from_secs(60),
        "the final edit is recorded",
        &logs,
        |job| {
            job.status_message
                .is_some_and(|reference| !reference.needs_final_edit(job.finished_at))
        },
    )
    .await;
    assert_eq!(
        finished
            .status_message
            .map(|reference| reference.message_id),
        Some(message_id),
        "still the first message"
    );
    assert_eq!(
        final_edits_of(telegram, message_id),
        1,
        "{:?}\n{}",
        edits_of(telegram, message_id),
        logs()
    );
    finished
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streambot_run_killed_mid_recording_keeps_editing_the_same_status_message() {
    if !streambot_testkit::requirements::require_or_skip("ffmpeg") {
        return;
    }
    let telegram = FakeTelegram::start().await.expect("fake telegram");
    let origin = long_stream().await;
    let environment = WorkerEnvironment::embedded();
    let backend = SqliteBackend::open_in_data_directory(environment.data_path())
        .await
        .expect("store");
    let logs = || environment.logs(&["run-1", "run-2", "run-3"]);
    let mut first = start_role(&environment, &telegram, "run", "run-1");
    let (job_id, message_id) = record_from_telegram(&backend, &telegram, &origin, logs).await;

    first.kill();
    let edits_before = edits_of(&telegram, message_id).len();
    let mut second = start_role(&environment, &telegram, "run", "run-2");
    assert_the_same_message_keeps_being_edited(
        &backend,
        &telegram,
        job_id,
        message_id,
        edits_before,
        logs,
    )
    .await;

    telegram.send_text_from_user(USER, &format!("stop {job_id}"));
    wait_for_completion(&backend, job_id, Duration::from_secs(120), logs).await;
    assert_one_final_edit(&backend, &telegram, job_id, message_id, logs).await;

    // Restarted once more: the finished job is not edited again.
    second.kill();
    let starts_before = telegram.received_count("getMe");
    let mut third = start_role(&environment, &telegram, "run", "run-3");
    assert!(
        telegram
            .wait_for_received("getMe", starts_before + 1, Duration::from_secs(60))
            .await,
        "the third process starts its bot\n{}",
        logs()
    );
    tokio::time::sleep(A_FEW_SCANS).await;
    assert_eq!(
        final_edits_of(&telegram, message_id),
        1,
        "the final edit is not repeated after a restart\n{}",
        logs()
    );
    let (status, _) = third.terminate(Duration::from_secs(15));
    assert!(status.success(), "run-3 exited with {status}\n{}", logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_bot_keeps_editing_and_finishes_a_job_that_ended_while_it_was_away_redis() {
    let Some(url) = redis_url_for_test() else {
        return;
    };
    if !streambot_testkit::requirements::require_or_skip("ffmpeg") {
        return;
    }
    let telegram = FakeTelegram::start().await.expect("fake telegram");
    let origin = long_stream().await;
    let prefix = random_key_prefix();
    let environment = WorkerEnvironment::redis(&url, &prefix);
    let backend = RedisBackend::connect(&url, &prefix).await.expect("redis");
    let logs = || environment.logs(&["worker", "bot-1", "bot-2", "bot-3"]);
    let mut worker = start_role(&environment, &telegram, "worker", "worker");
    let mut first_bot = start_role(&environment, &telegram, "bot", "bot-1");
    let (job_id, message_id) = record_from_telegram(&backend, &telegram, &origin, logs).await;

    // The bot dies while the job records: a new bot edits the same message.
    first_bot.kill();
    let edits_before = edits_of(&telegram, message_id).len();
    let mut second_bot = start_role(&environment, &telegram, "bot", "bot-2");
    assert_the_same_message_keeps_being_edited(
        &backend,
        &telegram,
        job_id,
        message_id,
        edits_before,
        logs,
    )
    .await;

    // The bot dies again; the job ends (the worker sends the files) while no bot runs.
    second_bot.kill();
    environment.jobs(&["stop", job_id.as_str()]);
    wait_for_completion(&backend, job_id, Duration::from_secs(120), logs).await;
    assert_eq!(final_edits_of(&telegram, message_id), 0, "no bot ran");
    let mut third_bot = start_role(&environment, &telegram, "bot", "bot-3");
    wait_until(
        Duration::from_secs(60),
        "the restarted bot gives the finished job its final edit",
        logs,
        || final_edits_of(&telegram, message_id) == 1,
    )
    .await;
    assert_one_final_edit(&backend, &telegram, job_id, message_id, logs).await;
    tokio::time::sleep(A_FEW_SCANS).await;
    assert_eq!(
        final_edits_of(&telegram, message_id),
        1,
        "the final edit is made once\n{}",
        logs()
    );
    let (status, _) = third_bot.terminate(Duration::from_secs(15));
    assert!(status.success(), "bot-3 exited with {status}\n{}", logs());
    let (status, _) = worker.terminate(Duration::from_secs(15));
    assert!(status.success(), "worker exited with {status}\n{}", logs());
    backend.delete_all_keys().await.expect("clean up");
}
