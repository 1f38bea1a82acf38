//! The outbound queue against the fake Bot API with Telegram's limits enforced (30 requests a
//! second in all, 1 a second per private chat): 200 live jobs whose status changes every second
//! provoke no 429, every status message is refreshed within the (scaled-down) minute, a user's
//! command is answered before the pending status edits, and a 429 from the server pauses every
//! send for its `retry_after`.

#[path = "support/live_jobs.rs"]
mod live_jobs;

use std::time::Duration;

use live_jobs::{LiveJobsHarness, longest_unrefreshed};
use streambot_testkit::telegram::InjectedFailure;
use tokio_util::sync::CancellationToken;

const JOBS: u64 = 200;
/// The minute, scaled down: 200 messages at 30 edits a second take about 7 s a round.
const REFRESH_TARGET: Duration = Duration::from_secs(20);
const OBSERVED: Duration = Duration::from_secs(24);
const USER_WITHOUT_JOBS: i64 = 4_242;
/// Slack for requests that arrive closer together than they were sent: this machine is shared
/// (two cores, several builds), so the fake server may stall and take a bunch at once.
const TEST_WINDOW_MARGIN: Duration = Duration::from_millis(300);

fn with_test_margin(settings: &mut streambot_bot::BotSettings) {
    settings.outbound.window_margin = TEST_WINDOW_MARGIN;
}

/// Ticks every job's progress once a second until cancelled.
fn spawn_progress(
    harness: &std::sync::Arc<LiveJobsHarness>,
    jobs: std::sync::Arc<Vec<live_jobs::LiveJob>>,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let stop = CancellationToken::new();
    let task_stop = stop.clone();
    let harness = std::sync::Arc::clone(harness);
    let task = tokio::spawn(async move {
        let mut seconds = 1;
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = task_stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            harness.tick(&jobs, seconds).await;
            seconds += 1;
        }
    });
    (stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_live_jobs_are_refreshed_within_the_limits_and_replies_go_first() {
    let harness = std::sync::Arc::new(LiveJobsHarness::start(with_test_margin).await);
    let jobs = std::sync::Arc::new(harness.start_live_jobs(JOBS as usize).await);
    assert!(
        harness
            .wait_for_status_messages(&jobs, Duration::from_secs(120))
            .await,
        "every job got its status message"
    );
    let (stop_progress, progress_task) = spawn_progress(&harness, std::sync::Arc::clone(&jobs));
    // Let the edits pile up behind the limits, then a user asks for help.
    harness
        .telegram
        .wait_for_call(Duration::from_secs(30), |call| {
            call.method == "editMessageText"
        })
        .await
        .expect("status edits start");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let calls_before_question = harness.telegram.calls().len();
    harness
        .telegram
        .send_text_from_user(USER_WITHOUT_JOBS, "/help");
    let reply = harness
        .telegram
        .wait_for_call(Duration::from_secs(30), |call| {
            call.method == "sendMessage" && call.chat_id() == Some(USER_WITHOUT_JOBS)
        })
        .await
        .expect("the user is answered");
    let observe_from = harness
        .telegram
        .calls()
        .last()
        .map(|call| call.at)
        .unwrap_or_default();
    let calls = harness.telegram.calls();
    let edits_before_reply = calls[calls_before_question..]
        .iter()
        .take_while(|call| call.at < reply.at)
        .filter(|call| call.method == "editMessageText")
        .count();
    eprintln!("status edits before the reply: {edits_before_reply}");
    // About 200 edits are waiting (one per message); the reply jumps them. What goes before it
    // is what was on the wire or decided while the update travelled (well under a round).
    assert!(
        edits_before_reply < 60,
        "{edits_before_reply} status edits went before the reply"
    );

    // Observe a scaled-down minute and a bit.
    tokio::time::sleep(OBSERVED).await;
    let calls = harness.telegram.calls();
    let observe_to = calls.last().map(|call| call.at).unwrap_or_default();
    let (longest, edits) = longest_unrefreshed(&calls, &jobs, observe_from, observe_to);
    stop_progress.cancel();
    let _ = progress_task.await;
    eprintln!(
        "longest unrefreshed: {longest:?}, {edits} edits in {:?}",
        observe_to - observe_from
    );
    assert_eq!(
        harness.telegram.too_many_requests_sent(),
        0,
        "the bot kept to the limits"
    );
    assert!(
        longest <= REFRESH_TARGET,
        "a status message went {longest:?} without a refresh ({edits} edits)"
    );
    match std::sync::Arc::try_unwrap(harness) {
        Ok(harness) => harness.stop().await,
        Err(_) => panic!("the harness is still shared"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_from_telegram_pauses_every_send_for_its_retry_after() {
    let harness = std::sync::Arc::new(LiveJobsHarness::start(with_test_margin).await);
    let jobs = std::sync::Arc::new(harness.start_live_jobs(40).await);
    assert!(
        harness
            .wait_for_status_messages(&jobs, Duration::from_secs(120))
            .await
    );
    let (stop_progress, progress_task) = spawn_progress(&harness, std::sync::Arc::clone(&jobs));
    harness.telegram.inject_failures(
        "editMessageText",
        InjectedFailure::TooManyRequests {
            retry_after_seconds: 3,
        },
        1,
    );
    let refused = harness
        .telegram
        .wait_for_call(Duration::from_secs(30), |call| call.http_status == 429)
        .await
        .expect("the 429 was sent");
    let refused_chat = refused.chat_id().expect("an edit names its chat");
    let resumed = harness
        .telegram
        .wait_for_call(Duration::from_secs(30), |call| {
            call.method == "editMessageText"
                && call.http_status == 200
                && call.at >= refused.at + Duration::from_secs(3)
        })
        .await
        .expect("sending resumed after retry_after");
    let refused_again = harness
        .telegram
        .wait_for_call(Duration::from_secs(30), |call| {
            call.method == "editMessageText"
                && call.http_status == 200
                && call.chat_id() == Some(refused_chat)
                && call.at > refused.at
        })
        .await;
    stop_progress.cancel();
    let _ = progress_task.await;
    let calls = harness.telegram.calls();
    // Requests already on the wire when the 429 came back may land just after it; nothing the
    // bot decided after it goes before retry_after is over, to any chat.
    let during_pause: Vec<_> = calls
        .iter()
        .filter(|call| call.method != "getUpdates")
        .filter(|call| {
            call.at > refused.at + Duration::from_millis(500)
                && call.at < refused.at + Duration::from_millis(2_900)
        })
        .map(|call| (call.method.clone(), call.chat_id(), call.at))
        .collect();
    assert!(
        during_pause.is_empty(),
        "sent during the pause: {during_pause:?}"
    );
    assert!(resumed.at >= refused.at + Duration::from_secs(3));
    assert!(
        refused_again.is_some(),
        "the refused edit's message was refreshed after the pause"
    );
    assert_eq!(harness.telegram.too_many_requests_sent(), 1);
    match std::sync::Arc::try_unwrap(harness) {
        Ok(harness) => harness.stop().await,
        Err(_) => panic!("the harness is still shared"),
    }
}

/// The status scan (every 3 s) at 1,000 live jobs that all have their status message: a list
/// call per scan and nothing per job (no job read, no preferences read), even once the
/// preferences cached by the first messages are older than the cache time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_scan_of_1000_live_jobs_costs_one_store_list_per_tick() {
    const LIVE_JOBS: usize = 1_000;
    /// Scans every 3 s: a window of 4 to 5 scans.
    const WINDOW: Duration = Duration::from_secs(14);
    let harness = LiveJobsHarness::start(with_test_margin).await;
    let jobs = harness.start_live_jobs(LIVE_JOBS).await;
    assert!(
        harness
            .wait_for_status_messages(&jobs, Duration::from_secs(300))
            .await,
        "every job got its status message"
    );
    // Every message recorded in the store (the last store writes of the first messages).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while harness.bot_backend.calls_of("set_status_message") < LIVE_JOBS {
        assert!(
            tokio::time::Instant::now() < deadline,
            "status messages recorded: {:?}",
            harness.bot_backend.all_calls()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Each first message's task reads its job once more after recording the message (and shows
    // a state change it missed): on a loaded machine some are still at it. The window starts
    // once no job or preferences read came for 4 s (two scans), bounded.
    let quiet_deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let per_job_reads = |calls: &std::collections::HashMap<&'static str, usize>| {
        calls.get("get_job").copied().unwrap_or(0)
            + calls.get("get_user_preferences").copied().unwrap_or(0)
    };
    let mut last_reads = per_job_reads(&harness.bot_backend.all_calls());
    let mut quiet_since = tokio::time::Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(4) {
        assert!(
            tokio::time::Instant::now() < quiet_deadline,
            "the first messages' tasks never went quiet: {:?}",
            harness.bot_backend.all_calls()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        let reads = per_job_reads(&harness.bot_backend.all_calls());
        if reads != last_reads {
            last_reads = reads;
            quiet_since = tokio::time::Instant::now();
        }
    }
    // The first messages took over 30 s (1,000 at 30 a second): the window starts past the
    // cache time of the preferences they read.
    let before = harness.bot_backend.all_calls();
    tokio::time::sleep(WINDOW).await;
    let after = harness.bot_backend.all_calls();
    let made = |method: &str| {
        after.get(method).copied().unwrap_or(0) - before.get(method).copied().unwrap_or(0)
    };
    let scans = made("list_jobs");
    let total: usize = after.values().sum::<usize>() - before.values().sum::<usize>();
    assert!(
        (1..=6).contains(&scans),
        "{scans} list calls in {WINDOW:?}: before {before:?}, after {after:?}"
    );
    assert_eq!(made("get_job"), 0, "before {before:?}, after {after:?}");
    assert_eq!(
        made("get_user_preferences"),
        0,
        "before {before:?}, after {after:?}"
    );
    assert!(
        total <= scans + 2,
        "{total} store calls for {scans} scans of {LIVE_JOBS} jobs: before {before:?}, after {after:?}"
    );
    harness.shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(20), harness.bot_task).await;
}
