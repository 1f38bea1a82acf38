//! Issue 13: "Send again" works and is durable. `streambot run` (embedded SQLite store) with the
//! fake Bot API: the first part's upload fails (5xx, five times), the job finishes with that part
//! failed and a "Send again" button; a tap records the request in the store and puts the job
//! back in its queue, a second tap while it is pending sends nothing more; the process is killed
//! (`kill -9`) while Telegram holds the re-sent upload, and the restarted process sends it. At the
//! end every part is in the chat exactly once. A tap on a recording whose files retention deleted
//! says so.

mod support;

use std::time::Duration;

use streambot_core::{JobId, JobState, PartDeliveryState};
use streambot_store::{JobStore, SqliteBackend};
use streambot_testkit::telegram::{FakeTelegram, InjectedFailure};
use streambot_testkit::{Fault, OriginConfig, OriginHandle, SegmentKind, spawn_origin};
use support::{WorkerEnvironment, edits_of, start_role_with, wait_for_job, wait_until};

const USER: i64 = 6161;

/// Files of at most about three of the stream's segments.
const SMALL_PARTS: (&str, &str) = ("MAX_PART_SIZE_MB", "0.14");

/// A finished stream of 9 fMP4 segments (about 45 KB each) with two discontinuities: several
/// parts with [`SMALL_PARTS`] (the discontinuities alone are joined into one file).
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

fn toasts(telegram: &FakeTelegram) -> Vec<String> {
    telegram
        .calls_of("answerCallbackQuery")
        .iter()
        .filter_map(|call| {
            call.parameters
                .get("text")
                .and_then(|text| text.as_str())
                .map(str::to_string)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_again_resends_the_failed_part_once_across_a_restart() {
    if !streambot_testkit::requirements::require_or_skip("ffmpeg") {
        return;
    }
    let telegram = FakeTelegram::start().await.expect("fake telegram");
    telegram.set_limits(None);
    // Part 1: five 502s, all its attempts.
    telegram.inject_failures("sendVideo", InjectedFailure::ServerError { status: 502 }, 5);
    let origin = three_part_stream().await;
    let environment = WorkerEnvironment::embedded();
    let backend = SqliteBackend::open_in_data_directory(environment.data_path())
        .await
        .expect("store");
    let logs = || environment.logs(&["run-1", "run-2"]);
    let mut first = start_role_with(&environment, &telegram, "run", "run-1", &[SMALL_PARTS]);
    telegram.send_text_from_user(USER, &format!("record {}", origin.media_playlist_url()));
    let announced = telegram
        .wait_for_text(USER, "checking the link", Duration::from_secs(60))
        .await
        .unwrap_or_else(|| panic!("the bot answers\n{}", logs()));
    let job_id: JobId = announced
        .text()
        .and_then(|text| text.split('`').nth(1))
        .and_then(|id| id.parse().ok())
        .expect("the status message names the job");

    let failed = wait_for_job(
        &backend,
        job_id,
        Duration::from_secs(180),
        "finished with part 1 failed and the final edit made",
        logs,
        |job| {
            job.state.is_terminal()
                && job
                    .status_message
                    .is_some_and(|reference| !reference.needs_final_edit(job.finished_at))
        },
    )
    .await;
    assert_eq!(failed.state, JobState::Completed, "{}", logs());
    let delivery = failed.delivery.clone().expect("delivery");
    assert!(delivery.parts.len() >= 2, "{delivery:?}");
    let part_count = delivery.parts.len();
    assert!(
        matches!(
            delivery.part(1).map(|part| &part.state),
            Some(PartDeliveryState::Failed {
                retryable: true,
                ..
            })
        ),
        "{delivery:?}"
    );
    let message_id = failed
        .status_message
        .map(|reference| reference.message_id)
        .expect("status message");
    let keyboard = telegram
        .message_keyboard(message_id)
        .map(|keyboard| keyboard.to_string())
        .unwrap_or_default();
    let resend = format!("resend:{job_id}");
    assert!(
        keyboard.contains(&resend),
        "a Send again button: {keyboard}"
    );
    // Every part but the first reached the chat.
    assert_eq!(telegram.files_received_in_chat(USER).len(), part_count - 1);

    // The re-sent upload is held by Telegram; the process dies meanwhile.
    let uploads_so_far = telegram.received_count("sendVideo");
    telegram.delay_answer("sendVideo", uploads_so_far + 1, Duration::from_secs(300));
    telegram.press_button(USER, USER, message_id, &resend);
    telegram.press_button(USER, USER, message_id, &resend);
    wait_until(
        Duration::from_secs(30),
        "the second tap is told the first one is on its way",
        logs,
        || {
            toasts(&telegram)
                .iter()
                .any(|toast| toast == "Already on its way")
        },
    )
    .await;
    assert!(
        telegram
            .wait_for_received("sendVideo", uploads_so_far + 1, Duration::from_secs(60))
            .await,
        "the worker sends part 1 again\n{}",
        logs()
    );
    first.kill();
    let mut second = start_role_with(&environment, &telegram, "run", "run-2", &[SMALL_PARTS]);

    let resent = wait_for_job(
        &backend,
        job_id,
        Duration::from_secs(120),
        "finished again, every part sent",
        logs,
        |job| {
            job.state.is_terminal()
                && job.delivery.as_ref().is_some_and(|delivery| {
                    delivery.summary_sent
                        && delivery
                            .parts
                            .iter()
                            .all(|part| matches!(part.state, PartDeliveryState::Sent { .. }))
                })
        },
    )
    .await;
    assert_eq!(resent.state, JobState::Completed);
    let files = telegram.files_received_in_chat(USER);
    assert_eq!(files.len(), part_count, "{files:?}\n{}", logs());
    assert!(
        files.values().all(|count| *count == 1),
        "each part exactly once: {files:?}\n{}",
        logs()
    );
    wait_until(
        Duration::from_secs(60),
        "the status message shows the job delivered",
        logs,
        || {
            edits_of(&telegram, message_id)
                .last()
                .is_some_and(|text| text.contains('✅'))
        },
    )
    .await;

    // Retention deleted the files (the scheduler records it in the job): a tap says so.
    backend
        .record_recording_deleted(job_id, "retention period over".to_string())
        .await
        .expect("deleted");
    telegram.press_button(USER, USER, message_id, &resend);
    telegram
        .wait_for_text(USER, "have been deleted", Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("the user is told the files are gone\n{}", logs()));
    let (status, _) = second.terminate(Duration::from_secs(15));
    assert!(status.success(), "run-2 exited with {status}\n{}", logs());
}
