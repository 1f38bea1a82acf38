//! The bot end to end, in one process: the fake Bot API server (real HTTP on 127.0.0.1), the real
//! SQLite job store, a real worker with the native recorder against the test HLS origin, real
//! ffmpeg for finalize. A user records, sees the status, stops with the button and receives a
//! video whose bytes equal the file on disk; another user cannot stop it; limits refuse politely;
//! a 429 is waited out.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use streambot_bot::{BotSettings, run_bot};
use streambot_hls::NetworkPolicy;
use streambot_jobs::{NativeHlsEngine, SqliteBackend, WorkerConfig, run_worker};
use streambot_testkit::telegram::{FakeTelegram, InjectedFailure, RecordedCall};
use streambot_testkit::{OriginConfig, OriginHandle, SegmentKind, spawn_origin};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);

struct Harness {
    telegram: FakeTelegram,
    origin: OriginHandle,
    recordings_directory: PathBuf,
    shutdown: CancellationToken,
    _directory: tempfile::TempDir,
    bot_task: tokio::task::JoinHandle<()>,
    worker_task: tokio::task::JoinHandle<()>,
}

impl Harness {
    async fn start(adjust: impl FnOnce(&mut BotSettings)) -> Harness {
        let telegram = FakeTelegram::start().await.expect("fake telegram");
        let origin = spawn_origin(
            OriginConfig::new(SegmentKind::MpegTs)
                .with_window_segments(10)
                .with_total_segments(400),
        )
        .await
        .expect("origin");
        let directory = tempfile::tempdir().expect("tempdir");
        let data_directory = directory.path().join("data");
        let recordings_directory = directory.path().join("recordings");
        std::fs::create_dir_all(&data_directory).expect("data dir");
        let backend = SqliteBackend::open_in_data_directory(&data_directory)
            .await
            .expect("sqlite");
        let shutdown = CancellationToken::new();
        let engine = NativeHlsEngine::new(NetworkPolicy::ALLOW_PRIVATE).expect("engine");
        let mut worker_config = WorkerConfig::new("worker-test", recordings_directory.clone());
        worker_config.concurrency = 8;
        let worker_backend = backend.clone();
        let worker_shutdown = shutdown.clone();
        let worker_task = tokio::spawn(async move {
            let _ = run_worker(worker_backend, engine, worker_config, worker_shutdown).await;
        });
        let mut settings = BotSettings::new(
            &telegram.token,
            recordings_directory.clone(),
            &data_directory,
        );
        settings.api_url = Some(telegram.api_url.parse().expect("url"));
        settings.allow_private_networks = true;
        settings.status_edit_interval = Duration::from_millis(500);
        settings.admin_user_ids = HashSet::from([9_999]);
        adjust(&mut settings);
        let bot_shutdown = shutdown.clone();
        let bot_task = tokio::spawn(async move {
            let _ = run_bot(settings, backend, bot_shutdown).await;
        });
        Harness {
            telegram,
            origin,
            recordings_directory,
            shutdown,
            _directory: directory,
            bot_task,
            worker_task,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(20), self.bot_task).await;
        let _ = tokio::time::timeout(Duration::from_secs(20), self.worker_task).await;
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
                            .map(|text| format!("{} → {}", call.method, text))
                    })
                    .collect();
                panic!("no message to {chat_id} containing {fragment:?}; sent: {texts:#?}")
            }
        }
    }
}

fn ffmpeg_available() -> bool {
    std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// The job id in a status message ("⏳ `ID` *checking the link…*").
fn job_id_in(text: &str) -> String {
    text.split('`').nth(1).unwrap_or_default().to_string()
}

/// The bot's message whose inline keyboard controls the job (message ids are given in order).
fn status_message_id(telegram: &FakeTelegram, job_id: &str) -> Option<i64> {
    (1..10_000).find(|message_id| {
        telegram
            .message_keyboard(*message_id)
            .is_some_and(|keyboard| keyboard.to_string().contains(&format!("stop:{job_id}")))
    })
}

fn find_file(directory: &Path, extension: &str) -> Option<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![directory.to_path_buf()];
    while let Some(current) = stack.pop() {
        if let Ok(listing) = std::fs::read_dir(&current) {
            for item in listing.flatten() {
                let path = item.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|found| found == extension) {
                    found.push(path);
                }
            }
        }
    }
    found.sort();
    found.into_iter().next()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_records_stops_with_the_button_and_receives_the_video() {
    if !ffmpeg_available() {
        eprintln!("ffmpeg not installed: skipping");
        return;
    }
    let harness = Harness::start(|_| {}).await;
    let telegram = &harness.telegram;
    let owner = 1001;
    let stranger = 2002;
    telegram.send_text_from_user(
        owner,
        &format!("/record {} high", harness.origin.media_playlist_url()),
    );
    let queued = harness.expect_text(owner, "checking the link").await;
    let job_id = job_id_in(queued.text().unwrap_or_default());
    assert_eq!(job_id.len(), 8, "{queued:?}");
    // The status message goes live with a keyboard.
    harness.expect_text(owner, "recording*").await;
    let status_id = status_message_id(telegram, &job_id).expect("status message with a keyboard");
    // Another user cannot stop it.
    telegram.send_text_from_user(stranger, &format!("/stop {job_id}"));
    harness.expect_text(stranger, "No recording").await;
    // Let it record a few seconds, then press Stop.
    tokio::time::sleep(Duration::from_secs(4)).await;
    telegram.press_button(owner, owner, status_id, &format!("stop:{job_id}"));
    telegram
        .wait_for_call(WAIT, |call| call.method == "answerCallbackQuery")
        .await
        .expect("the button press is answered");
    let video = telegram
        .wait_for_call(Duration::from_secs(60), |call| call.method == "sendVideo")
        .await
        .expect("the video is sent");
    assert_eq!(video.chat_id(), Some(owner));
    let uploaded = video
        .files
        .iter()
        .find(|file| file.field == "video")
        .unwrap_or_else(|| {
            let fields: Vec<(String, Option<String>, usize)> = video
                .files
                .iter()
                .map(|file| (file.field.clone(), file.file_name.clone(), file.bytes.len()))
                .collect();
            panic!(
                "no video part; files {fields:?}, parameters {}",
                video.parameters
            )
        });
    let on_disk = find_file(&harness.recordings_directory, "mp4").expect("the finished file");
    assert_eq!(
        uploaded.bytes.as_ref(),
        std::fs::read(&on_disk).expect("file").as_slice()
    );
    assert_eq!(
        video
            .parameters
            .get("supports_streaming")
            .and_then(Value::as_str),
        Some("true")
    );
    assert!(
        video.files.iter().any(|file| file.field == "thumbnail"),
        "a thumbnail is attached"
    );
    harness.expect_text(owner, "*done*").await;
    // The stranger never got anything about this job.
    assert!(
        telegram
            .calls()
            .iter()
            .filter(|call| call.chat_id() == Some(stranger))
            .all(|call| !call.text().unwrap_or_default().contains("done"))
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_refuse_politely_and_say_which() {
    let harness = Harness::start(|settings| {
        settings.maximum_concurrent_jobs_per_user = 2;
        settings.rate_limit.maximum_messages = 6;
    })
    .await;
    let telegram = &harness.telegram;
    let user = 3003;
    let url = harness.origin.media_playlist_url();
    telegram.send_text_from_user(user, &format!("/record {url}"));
    harness.expect_text(user, "checking the link").await;
    telegram.send_text_from_user(user, &format!("record {url} 1h"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    telegram.send_text_from_user(user, &format!("/record {url} audio"));
    harness.expect_text(user, "already have 2 recordings").await;
    // The rate limit: the 7th message in the window is refused with a time to wait.
    for _ in 0..4 {
        telegram.send_text_from_user(user, "/list");
    }
    harness.expect_text(user, "too fast").await;
    // Bad input gets a specific answer.
    let other = 3004;
    telegram.send_text_from_user(other, "/record ftp://example.com/x.m3u8");
    harness.expect_text(other, "only http and https").await;
    telegram.send_text_from_user(other, "/record");
    harness.expect_text(other, "Which stream").await;
    telegram.send_text_from_user(other, "the weather is nice");
    harness.expect_text(other, "didn").await;
    telegram.send_text_from_user(other, "/pause");
    harness.expect_text(other, "no recording running").await;
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_429_is_waited_out_and_a_blocked_chat_is_left_alone() {
    let harness = Harness::start(|_| {}).await;
    let telegram = &harness.telegram;
    telegram.inject_failures(
        "sendMessage",
        InjectedFailure::TooManyRequests {
            retry_after_seconds: 1,
        },
        1,
    );
    telegram.send_text_from_user(5005, "/help");
    let answered = harness.expect_text(5005, "Commands").await;
    let refused = telegram
        .calls_of("sendMessage")
        .iter()
        .filter(|call| call.http_status == 429)
        .count();
    assert_eq!(refused, 1);
    assert!(
        answered.at >= Duration::from_millis(900),
        "retry_after was not waited"
    );
    // A user who blocked the bot: one 403, then silence, and the bot keeps serving others.
    telegram.block_bot_in_chat(6006);
    telegram.send_text_from_user(6006, "/help");
    telegram
        .wait_for_call(WAIT, |call| {
            call.chat_id() == Some(6006) && call.http_status == 403
        })
        .await
        .expect("the first answer meets the block");
    telegram.send_text_from_user(6006, "/list");
    telegram.send_text_from_user(7007, "/start");
    harness.expect_text(7007, "records live streams").await;
    // Give the second message from the blocked chat time to be handled (and not answered).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let to_blocked = telegram
        .calls()
        .iter()
        .filter(|call| call.chat_id() == Some(6006))
        .count();
    assert_eq!(to_blocked, 1, "the blocked chat is not messaged again");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn corpus_updates_are_handled_without_harm() {
    let harness = Harness::start(|_| {}).await;
    let telegram = &harness.telegram;
    let corpus = match std::env::var_os("STREAMBOT_CORPUS_DIR") {
        Some(directory) => PathBuf::from(directory),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"),
    }
    .join("telegram");
    if !corpus.is_dir() {
        eprintln!("corpus not found: skipping");
        harness.stop().await;
        return;
    }
    let mut pushed = 0;
    let mut names: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .expect("listing")
        .flatten()
        .map(|item| item.path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("update_"))
        })
        .collect();
    names.sort();
    for path in names {
        let document: Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        let payload = document.get("payload").cloned().unwrap_or(Value::Null);
        if payload.get("update_id").is_some() {
            telegram.push_raw_update(payload);
            pushed += 1;
        }
    }
    assert!(pushed >= 5, "{pushed} corpus updates");
    // The private text message "hello there" gets the help text; the bot survives the rest.
    harness.expect_text(218_485_655, "Commands").await;
    telegram.send_text_from_user(8008, "/start");
    harness.expect_text(8008, "records live streams").await;
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_mode_receives_updates_over_http() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        probe.local_addr().expect("address").port()
    };
    let public_url = format!("http://127.0.0.1:{port}/telegram-updates");
    let webhook_url = public_url.clone();
    let harness = Harness::start(move |settings| {
        settings.webhook = Some(streambot_bot::WebhookSettings {
            public_url: webhook_url.parse().expect("url"),
            bind_address: format!("127.0.0.1:{port}").parse().expect("address"),
            secret_token: Some("test-secret_1".to_string()),
        });
    })
    .await;
    let telegram = &harness.telegram;
    let set = telegram
        .wait_for_call(WAIT, |call| call.method == "setWebhook")
        .await
        .expect("the webhook is registered");
    assert_eq!(
        set.parameters.get("url").and_then(Value::as_str),
        Some(public_url.as_str())
    );
    let client = reqwest::Client::new();
    let update = serde_json::json!({
        "update_id": 77,
        "message": {
            "message_id": 5, "date": 1_700_000_000,
            "from": {"id": 4242, "is_bot": false, "first_name": "Web"},
            "chat": {"id": 4242, "type": "private", "first_name": "Web"},
            "text": "/help"
        }
    });
    // Without the secret the update is refused; with it, it is handled.
    let mut delivered = false;
    for _ in 0..50 {
        let refused = client.post(&public_url).json(&update).send().await;
        if let Ok(response) = refused {
            assert!(
                !response.status().is_success(),
                "an update without the secret was accepted"
            );
            let accepted = client
                .post(&public_url)
                .header("X-Telegram-Bot-Api-Secret-Token", "test-secret_1")
                .json(&update)
                .send()
                .await
                .expect("post");
            assert!(accepted.status().is_success());
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(delivered, "the webhook server never answered");
    harness.expect_text(4242, "Commands").await;
    assert!(
        telegram.calls_of("getUpdates").is_empty(),
        "no long polling in webhook mode"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_link_to_a_plain_media_stream_is_recorded_by_ffmpeg_and_delivered() {
    if !ffmpeg_available() {
        eprintln!("ffmpeg not installed: skipping");
        return;
    }
    let harness = Harness::start(|_| {}).await;
    let telegram = &harness.telegram;
    let user = 8118;
    // A single MPEG-TS resource over HTTP (as IPTV streams are): not HLS, so ffmpeg records it.
    telegram.send_text_from_user(user, &harness.origin.segment_url(1003));
    harness.expect_text(user, "checking the link").await;
    let video = telegram
        .wait_for_call(Duration::from_secs(60), |call| {
            call.method == "sendVideo" && call.chat_id() == Some(user)
        })
        .await
        .expect("the video is sent");
    let uploaded = video
        .files
        .iter()
        .find(|file| file.field == "video")
        .expect("video bytes");
    assert!(uploaded.bytes.len() > 1000);
    harness.expect_text(user, "*done*").await;
    let summary = std::fs::read_to_string(
        find_file(&harness.recordings_directory, "json")
            .map(|path| path.with_file_name("recording.json"))
            .expect("a recording.json"),
    )
    .unwrap_or_default();
    assert!(
        summary.contains("ffmpeg engine") || summary.contains("no ledger"),
        "{summary}"
    );
    harness.stop().await;
}
