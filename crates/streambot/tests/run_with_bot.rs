//! `streambot run` as an operator starts it: the real binary with the embedded store, talking to
//! the fake Bot API server and recording from the test HLS origin. A user records, stops, and
//! receives a video whose bytes equal the file on disk; SIGTERM shuts it down cleanly; a missing
//! token stops start-up with one line.

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use streambot_testkit::telegram::FakeTelegram;
use streambot_testkit::{OriginConfig, OriginHandle, SegmentKind, spawn_origin};
use support::{BINARY, files_under, files_with_extension, send_signal, wait_until};
use tokio::process::Command;

fn base_command(data_directory: &Path) -> Command {
    let mut command = Command::new(BINARY);
    command
        .arg("run")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATA_DIR", data_directory)
        .env("LOG_LEVEL", "warn")
        .env("ALLOW_PRIVATE_NETWORKS", "true")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// The fake Bot API server and a stream of `total_segments` on the test origin, or `None` (the
/// test is skipped) without ffmpeg.
async fn telegram_and_origin(total_segments: u64) -> Option<(FakeTelegram, OriginHandle)> {
    if !streambot_testkit::requirements::require_or_skip("ffmpeg") {
        return None;
    }
    let telegram = FakeTelegram::start().await.expect("fake telegram");
    let origin = spawn_origin(
        OriginConfig::new(SegmentKind::MpegTs)
            .with_window_segments(10)
            .with_total_segments(total_segments),
    )
    .await
    .expect("origin");
    Some((telegram, origin))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streambot_run_records_for_a_telegram_user_and_shuts_down_on_sigterm() {
    let Some((telegram, origin)) = telegram_and_origin(400).await else {
        return;
    };
    let directory = tempfile::tempdir().expect("tempdir");
    let child = base_command(directory.path())
        .env("TELEGRAM_BOT_TOKEN", &telegram.token)
        .env("TELEGRAM_API_URL", &telegram.api_url)
        .env("TELEGRAM_ADMIN_IDS", "42")
        .spawn()
        .expect("streambot run starts");
    let user = 1111;
    telegram.send_text_from_user(
        user,
        &format!("record {} for 1 hour", origin.media_playlist_url()),
    );
    let queued = telegram
        .wait_for_text(user, "checking the link", Duration::from_secs(30))
        .await
        .expect("the bot answers the request");
    let job_id = queued
        .text()
        .and_then(|text| text.split('`').nth(1))
        .unwrap_or_default()
        .to_string();
    telegram
        .wait_for_text(user, "recording*", Duration::from_secs(30))
        .await
        .expect("the status message shows it recording");
    // A few seconds of media on disk before the stop (the ledger says what was written).
    let recorded_segments = || {
        files_under(directory.path(), |path| path.ends_with("main-ledger.jsonl"))
            .iter()
            .map(|ledger| {
                std::fs::read_to_string(ledger)
                    .map(|text| text.lines().count())
                    .unwrap_or(0)
            })
            .sum::<usize>()
    };
    wait_until(
        Duration::from_secs(60),
        "segments recorded",
        || format!("{} ledger lines", recorded_segments()),
        || recorded_segments() >= 3,
    )
    .await;
    telegram.send_text_from_user(user, &format!("stop {}", job_id.to_lowercase()));
    let video = telegram
        .wait_for_call(Duration::from_secs(60), |call| call.method == "sendVideo")
        .await
        .expect("the video arrives");
    let uploaded = video
        .files
        .iter()
        .find(|file| file.field == "video")
        .expect("video bytes");
    let on_disk = files_with_extension(directory.path(), "mp4");
    assert_eq!(on_disk.len(), 1, "{on_disk:?}");
    assert_eq!(
        uploaded.bytes.as_ref(),
        std::fs::read(&on_disk[0]).expect("file").as_slice()
    );
    telegram
        .wait_for_text(user, "*done*", Duration::from_secs(30))
        .await
        .expect("a final summary");
    // Another user cannot delete it; the owner can, and every file of it goes.
    telegram.send_text_from_user(4444, &format!("/delete {job_id}"));
    telegram
        .wait_for_text(4444, "No recording", Duration::from_secs(30))
        .await
        .expect("a stranger is refused");
    assert_eq!(files_with_extension(directory.path(), "mp4").len(), 1);
    telegram.send_text_from_user(user, &format!("/delete {job_id}"));
    telegram
        .wait_for_text(user, "cannot be undone", Duration::from_secs(30))
        .await
        .expect("the owner is asked to confirm");
    assert_eq!(files_with_extension(directory.path(), "mp4").len(), 1);
    let confirmation = (1..10_000)
        .find(|message_id| {
            telegram
                .message_keyboard(*message_id)
                .is_some_and(|keyboard| keyboard.to_string().contains(&format!("delete:{job_id}")))
        })
        .expect("a confirmation with buttons");
    telegram.press_button(user, user, confirmation, &format!("delete:{job_id}"));
    telegram
        .wait_for_text(user, "Deleted recording", Duration::from_secs(30))
        .await
        .expect("the owner deletes it");
    assert!(files_with_extension(directory.path(), "mp4").is_empty());
    assert!(files_with_extension(directory.path(), "ts").is_empty());
    // SIGTERM: a clean, prompt exit.
    let process_id = child.id().expect("pid");
    assert!(send_signal(process_id, "TERM"), "kill -TERM {process_id}");
    let output = tokio::time::timeout(Duration::from_secs(15), child.wait_with_output())
        .await
        .expect("exits within 15 s of SIGTERM")
        .expect("output");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_missing_or_bad_setting_stops_start_up_with_one_line() {
    let directory = tempfile::tempdir().expect("tempdir");
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![], "TELEGRAM_BOT_TOKEN"),
        (
            vec![("TELEGRAM_BOT_TOKEN", "not-a-token")],
            "TELEGRAM_BOT_TOKEN",
        ),
        (
            vec![
                ("TELEGRAM_BOT_TOKEN", "123:abcdef"),
                ("TELEGRAM_ADMIN_IDS", "alice"),
            ],
            "TELEGRAM_ADMIN_IDS",
        ),
        (
            vec![
                ("TELEGRAM_BOT_TOKEN", "123:abcdef"),
                ("MAX_CONCURRENT_JOBS_PER_USER", "many"),
            ],
            "MAX_CONCURRENT_JOBS_PER_USER",
        ),
        (
            vec![
                ("TELEGRAM_BOT_TOKEN", "123:abcdef"),
                ("WORKER_CONCURRENCY", "0"),
            ],
            "WORKER_CONCURRENCY",
        ),
    ];
    for (variables, expected) in cases {
        let mut command = base_command(directory.path());
        for (name, value) in &variables {
            command.env(name, value);
        }
        let output = tokio::time::timeout(Duration::from_secs(30), command.output())
            .await
            .expect("exits")
            .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{variables:?}: {stderr}");
        assert!(stderr.contains(expected), "{variables:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(
            !stderr.contains("abcdef"),
            "the token is never printed: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_telegram_channel_backend_parts_go_to_the_channel_and_the_user_gets_a_link() {
    let Some((telegram, origin)) = telegram_and_origin(16).await else {
        return;
    };
    let directory = tempfile::tempdir().expect("tempdir");
    let channel_id = "-1001234567890";
    let child = base_command(directory.path())
        .env("TELEGRAM_BOT_TOKEN", &telegram.token)
        .env("TELEGRAM_API_URL", &telegram.api_url)
        .env("STORAGE_BACKEND", "telegram")
        .env("TELEGRAM_STORAGE_CHANNEL_ID", channel_id)
        .spawn()
        .expect("streambot run starts");
    let user = 2222;
    // The stream ends by itself (ENDLIST after 16 segments): no stop needed.
    telegram.send_text_from_user(user, &origin.media_playlist_url());
    let upload = telegram
        .wait_for_call(Duration::from_secs(60), |call| {
            matches!(call.method.as_str(), "sendVideo" | "sendDocument") && call.http_status == 200
        })
        .await
        .expect("the part is posted");
    assert_eq!(
        upload
            .parameters
            .get("chat_id")
            .and_then(|value| value.as_str()),
        Some(channel_id),
        "posted to the storage channel"
    );
    let caption = upload
        .parameters
        .get("caption")
        .and_then(|value| value.as_str())
        .unwrap_or_default();
    assert!(caption.contains(&user.to_string()), "{caption}");
    let link = telegram
        .wait_for_text(user, "t\\.me", Duration::from_secs(30))
        .await
        .expect("the user gets the channel link");
    assert!(link.text().unwrap_or_default().contains("1234567890"));
    telegram
        .wait_for_text(user, "*done*", Duration::from_secs(30))
        .await
        .expect("a final summary");
    // The local copy is gone once the upload was confirmed (TELEGRAM_KEEP_LOCAL_COPY=false).
    assert!(files_with_extension(directory.path(), "mp4").is_empty());
    let process_id = child.id().expect("pid");
    let _ = send_signal(process_id, "TERM");
    let _ = tokio::time::timeout(Duration::from_secs(15), child.wait_with_output()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streambot_run_serves_the_dashboard_when_enabled() {
    let Some((telegram, origin)) = telegram_and_origin(400).await else {
        return;
    };
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        probe.local_addr().expect("address").port()
    };
    let secret = "a-dashboard-secret-of-32-characters";
    let directory = tempfile::tempdir().expect("tempdir");
    let _child = base_command(directory.path())
        .env("TELEGRAM_BOT_TOKEN", &telegram.token)
        .env("TELEGRAM_API_URL", &telegram.api_url)
        .env("DASHBOARD_ENABLED", "true")
        .env("DASHBOARD_SECRET", secret)
        .env("DASHBOARD_BIND", format!("127.0.0.1:{port}"))
        .spawn()
        .expect("streambot run starts");
    let user = 3333;
    telegram.send_text_from_user(user, &origin.media_playlist_url());
    telegram
        .wait_for_text(user, "recording*", Duration::from_secs(30))
        .await
        .expect("recording");
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let health = client
        .get(format!("{base}/health"))
        .send()
        .await
        .expect("dashboard answers");
    assert_eq!(health.status().as_u16(), 200);
    let refused = client
        .get(format!("{base}/jobs"))
        .send()
        .await
        .expect("answer");
    assert_eq!(refused.status().as_u16(), 401);
    let jobs: serde_json::Value = client
        .get(format!("{base}/jobs"))
        .bearer_auth(secret)
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    let listed = jobs.to_string();
    assert!(
        listed.contains("3333"),
        "the user's job is listed: {listed}"
    );
    let metrics = client
        .get(format!("{base}/metrics"))
        .bearer_auth(secret)
        .send()
        .await
        .expect("answer")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("streambot_"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_disk_quota_counts_finished_recordings_in_storage() {
    let Some((telegram, origin)) = telegram_and_origin(14).await else {
        return;
    };
    let directory = tempfile::tempdir().expect("tempdir");
    let _child = base_command(directory.path())
        .env("TELEGRAM_BOT_TOKEN", &telegram.token)
        .env("TELEGRAM_API_URL", &telegram.api_url)
        // 100 kB: one finished recording of the test stream is more than that.
        .env("USER_DISK_QUOTA_GB", "0.0001")
        .spawn()
        .expect("streambot run starts");
    let user = 5555;
    telegram.send_text_from_user(user, &origin.media_playlist_url());
    telegram
        .wait_for_text(user, "*done*", Duration::from_secs(60))
        .await
        .expect("the first recording finishes");
    assert_eq!(files_with_extension(directory.path(), "mp4").len(), 1);
    telegram.send_text_from_user(user, &origin.media_playlist_url());
    telegram
        .wait_for_text(user, "storage is full", Duration::from_secs(30))
        .await
        .expect("the second is refused by the quota");
}

/// A token Telegram rejects (401 on getMe): `streambot run` exits non-zero at once with one clear
/// line, no panic, no half-alive process, and the token appears nowhere in its output, even at
/// debug level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_telegram_rejects_exits_with_one_clear_line_and_never_shows_the_token() {
    let telegram = FakeTelegram::start().await.expect("fake telegram");
    let wrong_token = "987654:WRONG-secret-token-Zq9";
    let directory = tempfile::tempdir().expect("tempdir");
    for role in ["run", "bot"] {
        let output = tokio::time::timeout(
            Duration::from_secs(30),
            Command::new(BINARY)
                .arg(role)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("DATA_DIR", directory.path())
                .env("LOG_LEVEL", "debug")
                .env("TELEGRAM_BOT_TOKEN", wrong_token)
                .env("TELEGRAM_API_URL", &telegram.api_url)
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("exits instead of staying half alive")
        .expect("runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{role}: {stderr}");
        assert!(
            stderr.contains("Telegram rejected TELEGRAM_BOT_TOKEN (401 Unauthorized)"),
            "{role}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{role}: {stderr}");
        for secret in [wrong_token, "WRONG-secret-token-Zq9"] {
            assert!(
                !stdout.contains(secret) && !stderr.contains(secret),
                "{role}: the token leaked: {stdout}{stderr}"
            );
        }
    }
    assert!(
        telegram
            .calls_of("getMe")
            .iter()
            .all(|call| call.http_status == 401),
        "getMe was refused"
    );
}

/// Telegram unreachable at start: the bot retries with backoff and says so in the log (without
/// the token), the process stays up, and SIGTERM ends it promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_telegram_is_retried_and_logged_without_the_token() {
    let closed_port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        probe.local_addr().expect("address").port()
    };
    let token = "123456:UNREACHABLE-secret-Kw7";
    let directory = tempfile::tempdir().expect("tempdir");
    let mut child = base_command(directory.path())
        .env("LOG_LEVEL", "warn")
        .env("TELEGRAM_BOT_TOKEN", token)
        .env(
            "TELEGRAM_API_URL",
            format!("http://127.0.0.1:{closed_port}"),
        )
        .spawn()
        .expect("streambot run starts");
    // Read the log as it comes until two retries were announced (bounded).
    let mut stderr_pipe = child.stderr.take().expect("stderr");
    let collected = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let reader = tokio::spawn({
        let collected = std::sync::Arc::clone(&collected);
        async move {
            use tokio::io::AsyncReadExt;
            let mut buffer = [0u8; 4096];
            loop {
                match stderr_pipe.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(count) => collected
                        .lock()
                        .expect("log")
                        .extend_from_slice(&buffer[..count]),
                }
            }
            let bytes = collected.lock().expect("log").clone();
            String::from_utf8_lossy(&bytes).into_owned()
        }
    });
    // Backoff 0.5 s, 1 s, 2 s…: wait until two failed attempts are in the log.
    let log_so_far = || String::from_utf8_lossy(&collected.lock().expect("log")).into_owned();
    wait_until(
        Duration::from_secs(30),
        "two retries logged",
        log_so_far,
        || {
            log_so_far()
                .matches("Telegram cannot be reached to check TELEGRAM_BOT_TOKEN; retrying")
                .count()
                >= 2
        },
    )
    .await;
    assert!(
        child.try_wait().expect("status").is_none(),
        "the process stays up while retrying"
    );
    let process_id = child.id().expect("pid");
    assert!(send_signal(process_id, "TERM"), "kill -TERM {process_id}");
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits within 15 s of SIGTERM")
        .expect("status");
    let stderr = reader.await.unwrap_or_default();
    assert!(status.code().is_some(), "{stderr}");
    assert!(
        stderr.contains("Telegram cannot be reached to check TELEGRAM_BOT_TOKEN; retrying"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !stderr.contains("UNREACHABLE-secret-Kw7"),
        "the token leaked: {stderr}"
    );
}

/// A role that dies takes the process down: the bot's webhook cannot listen (its address is
/// taken), so the bot role ends with an error; `streambot run` stops the worker and the
/// scheduler too and exits non-zero with one line naming the role, no panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_that_dies_takes_streambot_run_down_with_a_non_zero_status() {
    let telegram = FakeTelegram::start().await.expect("fake telegram");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to occupy");
    let taken_address = taken.local_addr().expect("address");
    let directory = tempfile::tempdir().expect("tempdir");
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        base_command(directory.path())
            .env("TELEGRAM_BOT_TOKEN", &telegram.token)
            .env("TELEGRAM_API_URL", &telegram.api_url)
            .env("TELEGRAM_WEBHOOK_URL", "https://bot.example.com/telegram")
            .env("TELEGRAM_WEBHOOK_BIND", taken_address.to_string())
            .output(),
    )
    .await
    .expect("exits instead of staying half alive")
    .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("the bot stopped"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    drop(taken);
}
