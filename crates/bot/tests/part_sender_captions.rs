//! The worker's part delivery through the bot's `TelegramPartSender`, against the fake Bot API
//! (real HTTP on 127.0.0.1) and a real SQLite store: a part finalize reported damaged says so in
//! its caption, in the owner's language, and the summary names it; the summary says when
//! retention deletes the files; the disk guard's notices reach every admin.

use std::time::Duration;

use streambot_bot::{BotSettings, TelegramPartSender};
use streambot_core::delivery::{
    AdminNotice, AdminNotifier, JobDelivery, PartDeliveryState, PartSender,
};
use streambot_core::job_files::DeliveredPart;
use streambot_core::{JobOwner, JobPriority, NewJob, UserPreferences};
use streambot_store::{JobStore, SqliteBackend};
use streambot_testkit::telegram::FakeTelegram;

fn part(path: std::path::PathBuf, part_number: u32, damaged: Option<usize>) -> DeliveredPart {
    DeliveredPart {
        part_number,
        part_count: 2,
        local_path: Some(path),
        size_bytes: 4,
        duration_seconds: 12.0,
        width: None,
        height: None,
        has_audio: true,
        thumbnail: None,
        link: None,
        telegram_file_id: None,
        storage_error: None,
        damaged_decode_errors: damaged,
        joined_part_numbers: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_part_says_so_in_its_caption_and_in_the_summary() {
    let telegram = FakeTelegram::start().await.expect("fake telegram");
    // One attempt per call here (the worker retries): Telegram's pacing is not what is tested.
    telegram.set_limits(None);
    let directory = tempfile::tempdir().expect("tempdir");
    let backend = SqliteBackend::open_in_data_directory(directory.path())
        .await
        .expect("sqlite");
    let mut settings = BotSettings::new(
        &telegram.token,
        directory.path().join("recordings"),
        directory.path(),
    );
    settings.api_url = Some(telegram.api_url.parse().expect("url"));
    let sender = TelegramPartSender::new(&settings, backend.clone())
        .expect("sender")
        // FILE_RETENTION_HOURS=0.5
        .with_file_retention(Some(Duration::from_secs(1800)));
    let clean_file = directory.path().join("part-0001.mp4");
    let damaged_file = directory.path().join("part-0002.mp4");
    std::fs::write(&clean_file, b"mp4!").expect("file");
    std::fs::write(&damaged_file, b"mp4!").expect("file");

    for (user_id, language, expected_note, expected_expiry, expected_join) in [
        (
            41_i64,
            "en",
            "damaged: 7 decoding errors",
            "kept until",
            "are joined into one file",
        ),
        (
            42_i64,
            "ru",
            "ошибок декодирования: 7",
            "хранятся до",
            "склеены в один файл",
        ),
    ] {
        backend
            .set_user_preferences(
                user_id,
                UserPreferences {
                    language: Some(language.to_string()),
                    ..UserPreferences::default()
                },
            )
            .await
            .expect("preferences");
        let mut job = backend
            .create_job(NewJob {
                owner: JobOwner {
                    user_id,
                    chat_id: user_id,
                },
                url: "https://example.com/live/stream.m3u8".to_string(),
                options: Default::default(),
                priority: JobPriority::Normal,
            })
            .await
            .expect("job");
        let mut parts = [
            part(clean_file.clone(), 1, None),
            part(damaged_file.clone(), 2, Some(7)),
        ];
        // The second file is three recorded pieces joined (two restarts of the stream).
        parts[1].joined_part_numbers = vec![2, 3, 4];
        let mut delivery = JobDelivery::pending([1, 2], None);
        for delivered in &parts {
            let sent = sender.send_part(&job, delivered).await.expect("sent");
            delivery.set_part_state(
                delivered.part_number,
                PartDeliveryState::Sent {
                    message_id: sent.message_id,
                    file_id: sent.file_id,
                },
            );
        }
        job.delivery = Some(delivery);
        sender.send_summary(&job, &parts).await.expect("summary");

        let videos: Vec<String> = telegram
            .calls_of("sendVideo")
            .into_iter()
            .filter(|call| call.chat_id() == Some(user_id))
            .filter_map(|call| {
                call.parameters
                    .get("caption")
                    .and_then(|caption| caption.as_str())
                    .map(str::to_string)
            })
            .collect();
        assert_eq!(videos.len(), 2, "{videos:?}");
        assert!(
            !videos[0].contains(expected_note) && !videos[0].contains('⚠'),
            "a clean part has no note: {}",
            videos[0]
        );
        assert!(
            videos[1].contains(expected_note),
            "the damaged part's caption: {}",
            videos[1]
        );
        let expiry = telegram
            .wait_for_text(user_id, expected_expiry, Duration::from_secs(10))
            .await
            .expect("the summary says when the files go");
        let joined = telegram
            .wait_for_text(user_id, expected_join, Duration::from_secs(10))
            .await
            .expect("the summary says which pieces were joined");
        let joined_text = joined.text().unwrap_or_default().replace('\\', "");
        assert!(
            joined_text.contains("2+3+4") && joined_text.contains('2'),
            "{joined_text}"
        );
        let in_half_an_hour = (chrono::Utc::now() + chrono::Duration::minutes(30))
            .format("%H:%M")
            .to_string();
        let a_minute_later = (chrono::Utc::now() + chrono::Duration::minutes(31))
            .format("%H:%M")
            .to_string();
        let expiry_text = expiry.text().unwrap_or_default();
        assert!(
            expiry_text.contains(&in_half_an_hour) || expiry_text.contains(&a_minute_later),
            "{expiry_text}"
        );
        let summary_named_it = telegram
            .wait_for_text(user_id, "⚠️", Duration::from_secs(10))
            .await
            .expect("the damaged parts are named after the summary");
        assert!(
            summary_named_it
                .text()
                .is_some_and(|text| text.contains('2')),
            "{:?}",
            summary_named_it.text()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disk_guard_notices_reach_every_admin() {
    let telegram = FakeTelegram::start().await.expect("fake telegram");
    telegram.set_limits(None);
    let directory = tempfile::tempdir().expect("tempdir");
    let backend = SqliteBackend::open_in_data_directory(directory.path())
        .await
        .expect("sqlite");
    let mut settings = BotSettings::new(
        &telegram.token,
        directory.path().join("recordings"),
        directory.path(),
    );
    settings.api_url = Some(telegram.api_url.parse().expect("url"));
    settings.admin_user_ids = [77, 78].into_iter().collect();
    let sender = TelegramPartSender::new(&settings, backend).expect("sender");
    let filling = AdminNotice::DiskFilling {
        used_bytes: 850 * 1024 * 1024,
        limit_bytes: 1000 * 1024 * 1024,
    };
    sender.notify_admins(&filling).await.expect("told");
    let deleted = streambot_core::JobId::from_u32(0x00C0_FFEE);
    let freed = AdminNotice::DiskFreed {
        used_bytes_before: 960 * 1024 * 1024,
        used_bytes_after: 800 * 1024 * 1024,
        limit_bytes: 1000 * 1024 * 1024,
        deleted_jobs: vec![deleted],
    };
    sender.notify_admins(&freed).await.expect("told");
    for admin in [77, 78] {
        let warning = telegram
            .wait_for_text(admin, "85 %", Duration::from_secs(10))
            .await
            .expect("80 % is said");
        assert!(warning.text().is_some_and(|text| text.contains("95 %")));
        let cleanup = telegram
            .wait_for_text(admin, deleted.as_str(), Duration::from_secs(10))
            .await
            .expect("what 95 % deleted is said");
        assert!(
            cleanup.text().is_some_and(|text| text.contains("96 %")),
            "{:?}",
            cleanup.text()
        );
    }
}
