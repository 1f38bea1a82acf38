//! The Telegram channel backend against the project's fake Bot API server on 127.0.0.1:
//! sendVideo with caption, thumbnail and stream info; the bytes arrive intact; 429 waits
//! `retry_after`; 413 says the file is too large; a refused video goes as a document.

use std::path::{Path, PathBuf};
use std::time::Duration;

use streambot_core::JobId;
use streambot_storage::{
    FileAccess, LocalStore, PartMetadata, RemoteLocation, RetryPolicy, Storage, StorageBackend,
    StorageError, Store, TelegramChannelConfig, TelegramChannelStore,
};
use streambot_testkit::telegram::{FakeTelegram, InjectedFailure};

const CHANNEL_ID: &str = "-1009876543210";

fn storage(root: &Path, telegram: &FakeTelegram) -> Storage {
    let mut config = TelegramChannelConfig::new(&telegram.token, CHANNEL_ID);
    config.api_base_url = telegram.api_url.clone();
    config.upload_timeout = Duration::from_secs(60);
    let channel = TelegramChannelStore::new(config).expect("client");
    let mut storage = Storage::new(
        LocalStore::new(root, None),
        StorageBackend::TelegramChannel(channel),
        false,
    );
    storage.retry_policy = RetryPolicy {
        max_attempts: 3,
        first_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(50),
        max_rate_limit_wait: Duration::from_secs(5),
    };
    storage
}

fn write_file(directory: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = directory.join(name);
    std::fs::write(&path, bytes).expect("write");
    path
}

fn metadata(thumbnail: Option<PathBuf>, size_bytes: usize) -> PartMetadata {
    PartMetadata {
        job_id: JobId::from_u32(0xC0FF_EE01),
        user_id: 555,
        part_number: 1,
        part_count: 3,
        duration_seconds: 125.4,
        size_bytes: size_bytes as u64,
        thumbnail,
        width: Some(1920),
        height: Some(1080),
    }
}

fn video_bytes() -> Vec<u8> {
    (0..300_000u32).map(|index| (index % 251) as u8).collect()
}

#[tokio::test]
async fn a_part_is_posted_with_caption_thumbnail_and_stream_info() {
    let telegram = FakeTelegram::start().await.expect("fake Bot API");
    let recordings = tempfile::tempdir().expect("temp dir");
    let incoming = tempfile::tempdir().expect("temp dir");
    let content = video_bytes();
    let part_path = write_file(incoming.path(), "part.mp4", &content);
    let thumbnail_path = write_file(incoming.path(), "thumb.jpg", b"\xFF\xD8\xFFjpeg");
    let storage = storage(recordings.path(), &telegram);

    let stored = storage
        .put_part(&part_path, &metadata(Some(thumbnail_path), content.len()))
        .await
        .expect("posted");

    let calls = telegram.calls_of("sendVideo");
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.parameters["chat_id"], CHANNEL_ID);
    assert_eq!(call.parameters["width"], "1920");
    assert_eq!(call.parameters["height"], "1080");
    assert_eq!(call.parameters["duration"], "125");
    assert_eq!(call.parameters["supports_streaming"], "true");
    assert_eq!(
        call.parameters["caption"],
        "Recording C0FFEE01 for user 555\nPart 1/3 · 2:05"
    );
    let video = call
        .files
        .iter()
        .find(|file| file.field == "video")
        .expect("video field");
    assert!(
        video.bytes.as_ref() == content.as_slice(),
        "the bytes arrive intact"
    );
    assert_eq!(video.file_name.as_deref(), Some("C0FFEE01-part-0001.mp4"));
    let thumbnail = call
        .files
        .iter()
        .find(|file| file.field == "thumbnail")
        .expect("thumbnail field");
    assert_eq!(thumbnail.bytes.as_ref(), b"\xFF\xD8\xFFjpeg");

    let remote = stored.remote.clone().expect("remote copy");
    let RemoteLocation::TelegramChannel {
        message_id,
        file_id,
        link,
        ..
    } = &remote.location
    else {
        panic!("not a Telegram location: {remote:?}");
    };
    assert_eq!(
        link.as_deref(),
        Some(format!("https://t.me/c/9876543210/{message_id}").as_str())
    );
    let file_id = file_id.clone().expect("file id");
    assert_eq!(
        storage.access(&stored).await.expect("access"),
        FileAccess::TelegramFileId(file_id)
    );
    assert_eq!(
        stored.local_path, None,
        "the local copy goes after the post"
    );

    // Deleting it deletes the channel message too.
    storage
        .delete(
            &stored,
            streambot_storage::Requester {
                user_id: 555,
                is_admin: false,
            },
        )
        .await
        .expect("deleted");
    assert_eq!(telegram.calls_of("deleteMessage").len(), 1);
    assert!(storage.list_user_files(555).await.expect("list").is_empty());
}

#[tokio::test]
async fn a_429_waits_retry_after_and_tries_again() {
    let telegram = FakeTelegram::start().await.expect("fake Bot API");
    telegram.inject_failures(
        "sendVideo",
        InjectedFailure::TooManyRequests {
            retry_after_seconds: 1,
        },
        1,
    );
    let recordings = tempfile::tempdir().expect("temp dir");
    let incoming = tempfile::tempdir().expect("temp dir");
    let content = video_bytes();
    let part_path = write_file(incoming.path(), "part.mp4", &content);
    let storage = storage(recordings.path(), &telegram);
    let started = std::time::Instant::now();
    storage
        .put_part(&part_path, &metadata(None, content.len()))
        .await
        .expect("posted after the wait");
    let calls = telegram.calls_of("sendVideo");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].http_status, 429);
    assert!(
        calls[1].at - calls[0].at >= Duration::from_millis(950),
        "waited {:?}",
        calls[1].at - calls[0].at
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
    let last_video = calls[1]
        .files
        .iter()
        .find(|file| file.field == "video")
        .expect("video");
    assert!(last_video.bytes.as_ref() == content.as_slice());
}

#[tokio::test]
async fn a_413_says_the_file_is_too_large_and_keeps_it() {
    let telegram = FakeTelegram::start().await.expect("fake Bot API");
    telegram.inject_failures("sendVideo", InjectedFailure::TooLarge, 1);
    let recordings = tempfile::tempdir().expect("temp dir");
    let incoming = tempfile::tempdir().expect("temp dir");
    let content = video_bytes();
    let part_path = write_file(incoming.path(), "part.mp4", &content);
    let storage = storage(recordings.path(), &telegram);
    let error = storage
        .put_part(&part_path, &metadata(None, content.len()))
        .await
        .expect_err("too large");
    let StorageError::UploadFailed {
        attempts,
        local_path,
        last_error,
        ..
    } = &error
    else {
        panic!("unexpected {error:?}");
    };
    assert_eq!(*attempts, 1, "a file too large is not sent again");
    assert!(matches!(**last_error, StorageError::TooLarge { .. }));
    assert!(local_path.exists());
    let message = error.user_message();
    assert!(message.contains("too large"), "{message}");
    assert!(
        message.contains(&local_path.display().to_string()),
        "{message}"
    );
    assert_eq!(telegram.calls_of("sendVideo").len(), 1);
}

#[tokio::test]
async fn a_refused_video_is_sent_as_a_document_and_other_formats_go_as_documents() {
    let telegram = FakeTelegram::start().await.expect("fake Bot API");
    telegram.inject_failures("sendVideo", InjectedFailure::ServerError { status: 400 }, 1);
    let recordings = tempfile::tempdir().expect("temp dir");
    let incoming = tempfile::tempdir().expect("temp dir");
    let content = video_bytes();
    let storage = storage(recordings.path(), &telegram);
    let part_path = write_file(incoming.path(), "part.mp4", &content);
    storage
        .put_part(&part_path, &metadata(None, content.len()))
        .await
        .expect("posted as a document");
    let mut second = metadata(None, content.len());
    second.part_number = 2;
    let mkv_path = write_file(incoming.path(), "part.mkv", &content);
    storage
        .put_part(&mkv_path, &second)
        .await
        .expect("posted as a document");
    assert_eq!(telegram.calls_of("sendVideo").len(), 1);
    let documents = telegram.calls_of("sendDocument");
    assert_eq!(documents.len(), 2);
    for document in &documents {
        let file = document
            .files
            .iter()
            .find(|file| file.field == "document")
            .expect("document field");
        assert!(file.bytes.as_ref() == content.as_slice());
    }
}
