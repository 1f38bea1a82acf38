//! Issue 11, second attack round on the user side, in one process: the fake Bot API server (real
//! HTTP on 127.0.0.1), the real SQLite job store and the real bot (no worker: jobs stay queued,
//! which is all these attacks need). Each test is a regression test of a finding.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use streambot_bot::{BotSettings, run_bot};
use streambot_core::{DesiredJobState, JobId, JobState};
use streambot_store::{JobStore, SqliteBackend};
use streambot_testkit::telegram::{FakeTelegram, RecordedCall};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);
const ADMIN: i64 = 9_999;
/// Never fetched (no worker runs).
const LINK: &str = "http://127.0.0.1:9/live/index.m3u8";

struct Harness {
    telegram: FakeTelegram,
    backend: SqliteBackend,
    shutdown: CancellationToken,
    _directory: tempfile::TempDir,
    bot_task: tokio::task::JoinHandle<()>,
}

impl Harness {
    async fn start() -> Harness {
        let telegram = FakeTelegram::start().await.expect("fake telegram");
        let directory = tempfile::tempdir().expect("tempdir");
        let data_directory = directory.path().join("data");
        let recordings_directory: PathBuf = directory.path().join("recordings");
        std::fs::create_dir_all(&data_directory).expect("data dir");
        let backend = SqliteBackend::open_in_data_directory(&data_directory)
            .await
            .expect("sqlite");
        let shutdown = CancellationToken::new();
        let mut settings = BotSettings::new(&telegram.token, recordings_directory, &data_directory);
        settings.api_url = Some(telegram.api_url.parse().expect("url"));
        settings.allow_private_networks = true;
        settings.status_edit_interval = Duration::from_millis(500);
        settings.admin_user_ids = HashSet::from([ADMIN]);
        let bot_shutdown = shutdown.clone();
        let bot_backend = backend.clone();
        let bot_task = tokio::spawn(async move {
            let _ = run_bot(settings, bot_backend, bot_shutdown).await;
        });
        Harness {
            telegram,
            backend,
            shutdown,
            _directory: directory,
            bot_task,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(20), self.bot_task).await;
    }

    async fn expect_text(&self, chat_id: i64, fragment: &str) -> RecordedCall {
        match self.telegram.wait_for_text(chat_id, fragment, WAIT).await {
            Some(call) => call,
            None => {
                let texts: Vec<String> = self
                    .telegram
                    .calls()
                    .iter()
                    .filter_map(|call| {
                        call.text()
                            .map(|text| format!("{} {:?} → {}", call.method, call.chat_id(), text))
                    })
                    .collect();
                panic!("no message to {chat_id} containing {fragment:?}; sent: {texts:#?}")
            }
        }
    }

    /// Presses a button and returns the toast it was answered with.
    async fn press(&self, user_id: i64, chat_id: i64, message_id: i64, data: &str) -> String {
        let answers_before = self.telegram.received_count("answerCallbackQuery");
        let update_id = self
            .telegram
            .press_button(user_id, chat_id, message_id, data);
        assert!(
            self.telegram
                .wait_for_received("answerCallbackQuery", answers_before + 1, WAIT)
                .await,
            "the press is answered"
        );
        let wanted = format!("cbq-{update_id}");
        // The answer is recorded once Telegram's side answered it.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(call) = self
                .telegram
                .calls_of("answerCallbackQuery")
                .into_iter()
                .find(|call| {
                    call.parameters
                        .get("callback_query_id")
                        .and_then(Value::as_str)
                        == Some(wanted.as_str())
                })
            {
                return call
                    .parameters
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
            }
            assert!(tokio::time::Instant::now() < deadline, "no answer recorded");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn job(&self, job_id: &str) -> streambot_core::Job {
        let job_id: JobId = job_id.parse().expect("job id");
        self.backend
            .get_job(job_id)
            .await
            .expect("store")
            .expect("the job exists")
    }
}

/// The job id in a status message ("⏳ `ID` *checking the link…*").
fn job_id_in(text: &str) -> String {
    text.split('`').nth(1).unwrap_or_default().to_string()
}

/// The bot's message in `chat_id` whose keyboard has a button with data `data`.
fn message_with_button(telegram: &FakeTelegram, chat_id: i64, data: &str) -> Option<i64> {
    telegram
        .calls_of("sendMessage")
        .iter()
        .filter(|call| call.chat_id() == Some(chat_id))
        .filter_map(|call| call.parameters.get("reply_markup").cloned())
        .find(|markup| markup.to_string().contains(data))?;
    (1..10_000).find(|message_id| {
        telegram
            .message_keyboard(*message_id)
            .is_some_and(|keyboard| keyboard.to_string().contains(data))
    })
}

/// A job a channel or a group owns (a channel post; an anonymous admin's message) had its buttons
/// pressable by anyone who saw them: every subscriber of the channel, every member of the group
/// stopped (or deleted, or clipped) the recording as the chat. Only the chat's administrators
/// (asked with getChatMember) may act as the chat now; the others are told so.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_a_chats_administrators_press_the_buttons_of_the_chats_job() {
    let harness = Harness::start().await;
    let telegram = &harness.telegram;
    let channel: i64 = -100_400_500;
    let group: i64 = -100_200_300;
    let subscriber = 5_151;
    let channel_admin = 5_252;
    telegram.set_chat_administrators(channel, &[channel_admin]);
    telegram.set_chat_administrators(group, &[channel_admin]);
    // A channel post asks for a recording: the channel owns it.
    telegram.push_raw_update(json!({
        "channel_post": {
            "message_id": 77,
            "sender_chat": {"id": channel, "type": "channel", "title": "Live"},
            "chat": {"id": channel, "type": "channel", "title": "Live"},
            "date": 1_700_000_000,
            "text": format!("/record {LINK} 45 min"),
            "entities": [{"type": "bot_command", "offset": 0, "length": 7}],
        },
    }));
    let status = harness.expect_text(channel, "checking the link").await;
    let channel_job = job_id_in(status.text().unwrap_or_default());
    // An anonymous admin of a group asks for one: the group owns it.
    telegram.push_raw_update(json!({
        "message": {
            "message_id": 501,
            "from": {"id": 1_087_968_824_i64, "is_bot": true, "first_name": "Group", "username": "GroupAnonymousBot"},
            "sender_chat": {"id": group, "type": "supergroup", "title": "Fans"},
            "chat": {"id": group, "type": "supergroup", "title": "Fans"},
            "date": 1_700_000_000,
            "text": format!("/record {LINK} 1h"),
            "entities": [{"type": "bot_command", "offset": 0, "length": 7}],
        },
    }));
    let status = harness.expect_text(group, "checking the link").await;
    let group_job = job_id_in(status.text().unwrap_or_default());
    for (chat, job_id) in [(channel, &channel_job), (group, &group_job)] {
        let stop = format!("stop:{job_id}");
        let message_id =
            message_with_button(telegram, chat, &stop).expect("the status message has Stop");
        // A subscriber / member: refused, the job untouched.
        let toast = harness.press(subscriber, chat, message_id, &stop).await;
        assert!(
            toast.contains("administrators"),
            "a subscriber's press is refused with the reason: {toast:?}"
        );
        let job = harness.job(job_id).await;
        assert_eq!(job.state, JobState::Queued, "{job:?}");
        assert_eq!(job.desired_state, DesiredJobState::Record, "{job:?}");
        // The chat's administrator: taken.
        let toast = harness.press(channel_admin, chat, message_id, &stop).await;
        assert!(
            !toast.contains("administrators"),
            "{toast:?} {:?}",
            telegram
                .calls_of("getChatMember")
                .iter()
                .map(|call| (call.parameters.clone(), call.http_status))
                .collect::<Vec<_>>()
        );
        let deadline = tokio::time::Instant::now() + WAIT;
        while harness.job(job_id).await.state != JobState::Cancelled {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the administrator's Stop cancels the queued job"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    harness.stop().await;
}

/// A group that becomes a supergroup mid-recording (Telegram answers every call to the old id
/// with 400 "group chat was upgraded to a supergroup chat" and `migrate_to_chat_id`): the
/// finished files, the summary and the bot's notices to the owner's chat went nowhere (the
/// error was "permanent"). They follow the migration now.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_that_became_a_supergroup_still_gets_its_files_and_notices() {
    use streambot_core::delivery::PartSender;
    use streambot_core::job_files::DeliveredPart;
    use streambot_core::{JobOwner, JobPriority, NewJob};

    let harness = Harness::start().await;
    let telegram = &harness.telegram;
    let owner = 7_171;
    let old_group: i64 = -4_242;
    let supergroup: i64 = -1_000_000_004_242;
    // Files: the worker's sender, straight to the fake.
    let directory = tempfile::tempdir().expect("tempdir");
    let mut settings = BotSettings::new(
        &telegram.token,
        directory.path().join("recordings"),
        directory.path(),
    );
    settings.api_url = Some(telegram.api_url.parse().expect("url"));
    let sender =
        streambot_bot::TelegramPartSender::new(&settings, harness.backend.clone()).expect("sender");
    let job = harness
        .backend
        .create_job(NewJob {
            owner: JobOwner {
                user_id: owner,
                chat_id: old_group,
            },
            url: LINK.to_string(),
            options: Default::default(),
            priority: JobPriority::Normal,
        })
        .await
        .expect("job");
    telegram.migrate_chat(old_group, supergroup);
    let file = directory.path().join("part-0001.mp4");
    std::fs::write(&file, b"mp4!").expect("file");
    let part = DeliveredPart {
        part_number: 1,
        part_count: 1,
        local_path: Some(file),
        size_bytes: 4,
        duration_seconds: 12.0,
        width: None,
        height: None,
        has_audio: true,
        thumbnail: None,
        link: None,
        telegram_file_id: None,
        storage_error: None,
        damaged_decode_errors: None,
        joined_part_numbers: Vec::new(),
    };
    sender
        .send_part(&job, &part)
        .await
        .expect("the part reaches the supergroup");
    assert_eq!(
        telegram
            .files_received_in_chat(supergroup)
            .values()
            .sum::<usize>(),
        1
    );
    // The bot's notice to the owner's chat (an admin stops the job) follows the migration too.
    telegram.send_text_from_user(ADMIN, &format!("/admin stop {}", job.id));
    harness.expect_text(ADMIN, "Stopping").await;
    harness
        .expect_text(supergroup, "An admin stopped your recording")
        .await;
    harness.stop().await;
}

/// Forged button data: pages at and past `usize::MAX`, negative and non-numbers, job ids that
/// are not ids, actions that do not exist, an empty and a 64-byte payload. Every press is
/// answered, the bot goes on answering the same chat, and nothing panics (a page of
/// `usize::MAX` overflowed the page arithmetic: a panic in a debug build, a wrap in release).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_button_data_is_answered_and_harms_nothing() {
    let harness = Harness::start().await;
    let telegram = &harness.telegram;
    let user = 6_161;
    telegram.send_text_from_user(user, &format!("/record {LINK} 1h"));
    let status = harness.expect_text(user, "checking the link").await;
    let job_id = job_id_in(status.text().unwrap_or_default());
    let message_id =
        message_with_button(telegram, user, &format!("stop:{job_id}")).expect("the status message");
    let forged = [
        "list:18446744073709551615".to_string(),
        "list:18446744073709551614".to_string(),
        "admin-list:18446744073709551615".to_string(),
        "list:-1".to_string(),
        "list:99999999999999999999999".to_string(),
        "stop:../../etc/passwd".to_string(),
        "stop:".to_string(),
        ":".to_string(),
        String::new(),
        "offer:18446744073709551615".to_string(),
        "unschedule:-1".to_string(),
        format!("nonsense:{job_id}"),
        format!("pick-nonsense:{job_id}"),
        "x".repeat(64),
    ];
    for data in &forged {
        let _toast = harness.press(user, user, message_id, data).await;
    }
    // The same chat is still served.
    telegram.send_text_from_user(user, "/help");
    harness.expect_text(user, "/record").await;
    let job = harness.job(&job_id).await;
    assert_eq!(job.state, JobState::Queued, "{job:?}");
    harness.stop().await;
}

/// Entities whose offsets do not fit the text (Telegram counts in UTF-16 code units): past the
/// end, inside an emoji's surrogate pair, a length that overflows. teloxide's
/// `parse_entities` asserts on an offset inside a surrogate pair and slices the text at the
/// others: the handler panicked and the sender got no answer. Each is now answered (the text's
/// own link is still found), and the chat goes on being served.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn entities_that_do_not_fit_the_text_are_answered_without_a_panic() {
    let harness = Harness::start().await;
    let telegram = &harness.telegram;
    let text = format!("😀😀 {LINK} 1h");
    let utf16_length = text.encode_utf16().count() as u64;
    let cases: Vec<(&str, Value)> = vec![
        (
            "past the end",
            json!([{"type": "url", "offset": utf16_length + 10, "length": 5}]),
        ),
        (
            "inside a surrogate pair",
            json!([{"type": "url", "offset": 1, "length": 3}]),
        ),
        (
            "a link behind words, inside a surrogate pair",
            json!([{"type": "text_link", "offset": 3, "length": 1, "url": LINK}]),
        ),
        (
            "a length that overflows",
            json!([{"type": "url", "offset": 2, "length": u64::MAX}]),
        ),
        (
            "a bold span ending past the end",
            json!([{"type": "bold", "offset": 0, "length": utf16_length + 1}]),
        ),
    ];
    for (index, (name, entities)) in cases.into_iter().enumerate() {
        let user = 8_100 + index as i64;
        for field in ["text", "caption"] {
            let mut message = json!({
                "message_id": 900 + index,
                "from": {"id": user, "is_bot": false, "first_name": "Eve", "language_code": "en"},
                "chat": {"id": user, "type": "private", "first_name": "Eve"},
                "date": 1_700_000_000,
            });
            if field == "text" {
                message["text"] = json!(text);
                message["entities"] = entities.clone();
            } else {
                message["photo"] = json!([{"file_id": "AgAC", "file_unique_id": "AQAD", "width": 90, "height": 90}]);
                message["caption"] = json!(text);
                message["caption_entities"] = entities.clone();
            }
            let before = telegram
                .calls_of("sendMessage")
                .iter()
                .filter(|call| call.chat_id() == Some(user))
                .count();
            telegram.push_raw_update(json!({ "message": message }));
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                let answers = telegram
                    .calls_of("sendMessage")
                    .iter()
                    .filter(|call| call.chat_id() == Some(user))
                    .count();
                if answers > before {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{name} ({field}): no answer"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        telegram.send_text_from_user(user, "/help");
        harness.expect_text(user, "/record").await;
    }
    harness.stop().await;
}

/// A client that presses a button hundreds of times (a script, a user bot): presses had no rate
/// limit, every one read the store and was answered, and answers go first in the outbound queue,
/// so one presser spent the bot's whole sending allowance (30 requests a second) and everyone
/// else waited. Presses now have a per-user limit (three times the message limit in the same
/// window); past it a press is answered once with "slow down" and then not at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_button_pressed_hundreds_of_times_costs_at_most_the_press_limit() {
    let harness = Harness::start().await;
    let telegram = &harness.telegram;
    let presser = 6_262;
    telegram.send_text_from_user(presser, &format!("/record {LINK} 1h"));
    let status = harness.expect_text(presser, "checking the link").await;
    let job_id = job_id_in(status.text().unwrap_or_default());
    let status_data = format!("status:{job_id}");
    let message_id =
        message_with_button(telegram, presser, &status_data).expect("the status message");
    let presses = 300;
    for _ in 0..presses {
        telegram.press_button(presser, presser, message_id, &status_data);
    }
    // The presser's next message is read after every press (one chat's updates are in order).
    telegram.send_text_from_user(presser, "/help");
    harness.expect_text(presser, "/record").await;
    let answered = telegram.received_count("answerCallbackQuery");
    // 20 messages a minute by default: 60 presses, and one "slow down".
    assert!(
        answered <= 61,
        "{answered} of {presses} presses were answered (each a request to Telegram)"
    );
    harness.stop().await;
}

/// A user who fixes a typo in their link by editing the message got silence (edits were not read
/// at all). An edit in a private chat is now answered: edits are not acted on (that would let an
/// edit start a job again), send the message again. In a group an edit stays unanswered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_edited_message_is_answered_in_private_and_starts_nothing() {
    let harness = Harness::start().await;
    let telegram = &harness.telegram;
    let user = 6_363;
    let edited = |chat: Value, message_id: i64| {
        json!({
            "edited_message": {
                "message_id": message_id,
                "from": {"id": user, "is_bot": false, "first_name": "Eve", "language_code": "ru"},
                "chat": chat,
                "date": 1_700_000_000,
                "edit_date": 1_700_000_100,
                "text": format!("/record {LINK} 1h"),
                "entities": [{"type": "bot_command", "offset": 0, "length": 7}],
            }
        })
    };
    telegram.push_raw_update(edited(
        json!({"id": -100_777, "type": "supergroup", "title": "Fans"}),
        11,
    ));
    telegram.push_raw_update(edited(
        json!({"id": user, "type": "private", "first_name": "Eve"}),
        12,
    ));
    harness
        .expect_text(user, "Отредактированные сообщения")
        .await;
    let jobs = harness
        .backend
        .list_jobs_for_user(user, 10)
        .await
        .expect("store");
    assert!(jobs.is_empty(), "an edit started a job: {jobs:?}");
    assert!(
        telegram
            .calls_of("sendMessage")
            .iter()
            .all(|call| call.chat_id() != Some(-100_777)),
        "an edit in a group is not answered"
    );
    harness.stop().await;
}

/// Scheduled jobs are created by the store when due, past the per-user limit of recordings at
/// once (3 by default): twenty schedules "every day at 20:00" (the schedule cap) were twenty
/// recordings at once every evening. A schedule that would run beside more of the user's
/// schedules than the limit is refused with the reason; another time is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schedules_cannot_run_more_recordings_at_once_than_the_limit() {
    use streambot_store::ScheduleStore;
    let harness = Harness::start().await;
    let telegram = &harness.telegram;
    let user = 6_464;
    for number in 1..=3 {
        telegram.send_text_from_user(
            user,
            &format!("record {LINK}?show={number} every day at 20:00 for 1h"),
        );
        harness.expect_text(user, "Every day at 20:00").await;
        let deadline = tokio::time::Instant::now() + WAIT;
        while harness
            .backend
            .list_schedules_for_user(user)
            .await
            .expect("store")
            .len()
            < number
        {
            assert!(tokio::time::Instant::now() < deadline, "schedule {number}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    telegram.send_text_from_user(
        user,
        &format!("record {LINK}?show=4 every day at 20:30 for 1h"),
    );
    harness.expect_text(user, "would run at once").await;
    telegram.send_text_from_user(
        user,
        &format!("record {LINK}?show=5 every day at 21:00 for 1h"),
    );
    harness.expect_text(user, "Every day at 21:00").await;
    let schedules = harness
        .backend
        .list_schedules_for_user(user)
        .await
        .expect("store");
    assert_eq!(schedules.len(), 4, "{schedules:?}");
    harness.stop().await;
}

/// A user who blocked the bot and unblocked it (or a group that removed the bot and added it
/// back) was never written to again until the bot restarted: the chat stayed marked "blocked"
/// in memory, so their next /start got silence. A message from a chat shows it is reachable
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_who_unblocks_the_bot_is_answered_again() {
    let harness = Harness::start().await;
    let telegram = &harness.telegram;
    let user = 6_565;
    telegram.send_text_from_user(user, "/start");
    harness.expect_text(user, "records live streams").await;
    telegram.block_bot_in_chat(user);
    telegram.send_text_from_user(user, "/help");
    // The answer is refused with 403: the chat is marked blocked.
    let deadline = tokio::time::Instant::now() + WAIT;
    while !telegram
        .calls_of("sendMessage")
        .iter()
        .any(|call| call.chat_id() == Some(user) && call.http_status == 403)
    {
        assert!(tokio::time::Instant::now() < deadline, "the 403 is seen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    telegram.unblock_bot_in_chat(user);
    let delivered = || {
        telegram
            .calls_of("sendMessage")
            .iter()
            .filter(|call| call.chat_id() == Some(user) && call.http_status == 200)
            .count()
    };
    let delivered_before = delivered();
    telegram.send_text_from_user(user, "/help");
    let deadline = tokio::time::Instant::now() + WAIT;
    while delivered() == delivered_before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the user who unblocked the bot got no answer"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    harness.stop().await;
}
