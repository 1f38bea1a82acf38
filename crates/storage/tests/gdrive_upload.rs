//! Google Drive against the fake Drive server on 127.0.0.1: resumable upload that survives a
//! dropped connection, the refresh-token and service-account flows, folders per user, retries
//! and the local copy kept until the upload is confirmed.

mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use streambot_core::JobId;
use streambot_storage::gdrive::CHUNK_GRANULARITY_BYTES;
use streambot_storage::{
    FileAccess, GoogleDriveConfig, GoogleDriveCredentials, GoogleDriveStore, LocalStore,
    PartMetadata, RemoteLocation, RetryPolicy, ServiceAccountKey, Storage, StorageBackend,
    StorageError, Store, StoredCopy,
};
use support::fake_drive::{
    FAKE_CLIENT_ID, FAKE_CLIENT_SECRET, FAKE_REFRESH_TOKEN, FakeDrive, FakeDriveBehaviour,
};

const CHUNK_BYTES: usize = 2 * CHUNK_GRANULARITY_BYTES;

fn refresh_token_credentials() -> GoogleDriveCredentials {
    GoogleDriveCredentials::OAuthRefreshToken {
        client_id: FAKE_CLIENT_ID.to_string(),
        client_secret: FAKE_CLIENT_SECRET.to_string(),
        refresh_token: FAKE_REFRESH_TOKEN.to_string(),
    }
}

fn drive_store(drive: &FakeDrive, credentials: GoogleDriveCredentials) -> GoogleDriveStore {
    let mut config = GoogleDriveConfig::new(credentials, "shared-drive-root");
    config.api_base_url = drive.base_url.clone();
    config.token_url = Some(drive.token_url.clone());
    config.chunk_size_bytes = CHUNK_BYTES;
    config.resume_pause = Duration::from_millis(20);
    config.request_timeout = Duration::from_secs(30);
    GoogleDriveStore::new(config).expect("client")
}

fn storage(root: &Path, drive: GoogleDriveStore, keep_local_copy: bool) -> Storage {
    let mut storage = Storage::new(
        LocalStore::new(root, None),
        StorageBackend::GoogleDrive(Box::new(drive)),
        keep_local_copy,
    );
    storage.retry_policy = RetryPolicy {
        max_attempts: 3,
        first_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(50),
        max_rate_limit_wait: Duration::from_millis(50),
    };
    storage
}

/// Bytes that differ at every offset, so a misplaced chunk cannot go unnoticed.
fn patterned_bytes(length: usize) -> Vec<u8> {
    (0..length)
        .map(|index| (index as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1])
        .collect()
}

fn write_part(directory: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = directory.join(name);
    std::fs::write(&path, bytes).expect("write the part");
    path
}

fn metadata(user_id: i64, job: u32, part_number: u32, size_bytes: usize) -> PartMetadata {
    PartMetadata {
        job_id: JobId::from_u32(job),
        user_id,
        part_number,
        part_count: 2,
        duration_seconds: 61.0,
        size_bytes: size_bytes as u64,
        thumbnail: None,
        width: Some(1280),
        height: Some(720),
    }
}

#[tokio::test]
async fn a_dropped_connection_mid_upload_is_resumed_from_the_confirmed_offset() {
    // Chunk 2 is cut off after 256 KiB of its 512 KiB reached the server: the client must ask
    // where the upload stands and go on from 768 KiB, not from its own chunk boundary.
    let drive = FakeDrive::start(FakeDriveBehaviour {
        drop_connection_on_chunk: Some((2, CHUNK_GRANULARITY_BYTES)),
        ..FakeDriveBehaviour::default()
    })
    .await;
    let recordings = tempfile::tempdir().expect("temp dir");
    let incoming = tempfile::tempdir().expect("temp dir");
    let content = patterned_bytes(3 * CHUNK_BYTES + 12_345);
    let part_path = write_part(incoming.path(), "finished.mp4", &content);
    let storage = storage(
        recordings.path(),
        drive_store(&drive, refresh_token_credentials()),
        false,
    );

    let stored = storage
        .put_part(&part_path, &metadata(42, 0xA3F2_B1C9, 1, content.len()))
        .await
        .expect("the upload succeeds");

    let remote = stored.remote.clone().expect("a remote copy");
    let RemoteLocation::GoogleDrive {
        file_id,
        web_view_link,
    } = &remote.location
    else {
        panic!("not a Drive location: {remote:?}");
    };
    assert_eq!(
        web_view_link.as_deref(),
        Some(format!("{}/file/d/{file_id}/view", drive.base_url).as_str())
    );
    {
        let state = drive.state();
        assert_eq!(state.dropped_connections, 1);
        assert!(
            state.status_queries >= 1,
            "the client asked where the upload stood"
        );
        assert_eq!(state.sessions.len(), 1, "the same session was resumed");
        let stored_bytes = state
            .file_bytes_named("A3F2B1C9-part-0001.mp4")
            .expect("the file is complete on Drive");
        assert_eq!(stored_bytes.len(), content.len());
        assert!(
            stored_bytes == content.as_slice(),
            "the bytes on Drive equal the file"
        );
        // The second chunk was cut off after 256 KiB; the next one starts there.
        let chunk = CHUNK_BYTES as u64;
        let half = CHUNK_GRANULARITY_BYTES as u64;
        assert_eq!(
            state.chunk_first_offsets,
            vec![0, chunk, chunk + half, 2 * chunk + half]
        );
        let session = state.sessions.values().next().expect("session");
        let (folder_name, folder_parent) = state
            .folders
            .get(&session.parents[0])
            .expect("uploaded into a folder");
        assert_eq!(folder_name, "user_42");
        assert_eq!(folder_parent, "shared-drive-root");
        assert!(
            state.requests_without_all_drives.is_empty(),
            "supportsAllDrives missing on {:?}",
            state.requests_without_all_drives
        );
    }

    // The local copy went only after the upload was confirmed and recorded.
    assert_eq!(stored.local_path, None);
    assert!(
        !recordings
            .path()
            .join("user_42/A3F2B1C9/part-0001.mp4")
            .exists()
    );
    let listing = storage.list_user_files(42).await.expect("list");
    assert_eq!(listing.len(), 1);
    assert_eq!(listing[0].size_bytes, content.len() as u64);
    assert_eq!(
        storage.access(&listing[0]).await.expect("access"),
        FileAccess::Link(web_view_link.clone().expect("link"))
    );
}

#[tokio::test]
async fn a_5xx_mid_upload_is_resumed_and_tokens_and_folders_are_reused() {
    let drive = FakeDrive::start(FakeDriveBehaviour {
        fail_chunks_with_503: vec![3],
        ..FakeDriveBehaviour::default()
    })
    .await;
    let recordings = tempfile::tempdir().expect("temp dir");
    let incoming = tempfile::tempdir().expect("temp dir");
    let storage = storage(
        recordings.path(),
        drive_store(&drive, refresh_token_credentials()),
        true,
    );
    for part_number in 1..=2u32 {
        let content = patterned_bytes(2 * CHUNK_BYTES + part_number as usize);
        let part_path = write_part(incoming.path(), &format!("p{part_number}.ts"), &content);
        let stored = storage
            .put_part(
                &part_path,
                &metadata(7, 0x0000_00AB, part_number, content.len()),
            )
            .await
            .expect("uploaded");
        assert!(
            stored.local_path.as_ref().is_some_and(|path| path.exists()),
            "GDRIVE_KEEP_LOCAL_COPY keeps the local file"
        );
        let name = format!("000000AB-part-{part_number:04}.ts");
        assert!(drive.state().file_bytes_named(&name) == Some(content.as_slice()));
    }
    let state = drive.state();
    assert_eq!(state.token_requests.len(), 1, "the access token is cached");
    assert_eq!(state.folders.len(), 1, "one folder per user");
    assert_eq!(state.folder_searches, 1, "the folder id is cached");
    assert_eq!(state.token_requests[0]["grant_type"], "refresh_token");
}

#[tokio::test]
async fn a_service_account_signs_its_assertion_and_the_folder_is_found_not_recreated() {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{KeyPair, RsaKeyPair};
    use base64::Engine;

    let key_pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("a test key");
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(key_pair.as_der().expect("der").as_ref())
    );
    let drive = FakeDrive::start(FakeDriveBehaviour {
        service_account_public_key: Some(key_pair.public_key().as_ref().to_vec()),
        ..FakeDriveBehaviour::default()
    })
    .await;
    let key_json = serde_json::json!({
        "type": "service_account",
        "client_email": "streambot@test-project.iam.gserviceaccount.com",
        "private_key": pem,
        "token_uri": drive.token_url,
    });
    let key = ServiceAccountKey::from_json(&key_json.to_string()).expect("key");
    let credentials = GoogleDriveCredentials::ServiceAccount(key);
    let recordings = tempfile::tempdir().expect("temp dir");
    let incoming = tempfile::tempdir().expect("temp dir");
    let content = patterned_bytes(1000);
    for round in 0..2 {
        // A new store each round: the folder made in round 0 is found by search in round 1.
        let mut drive_config = GoogleDriveConfig::new(credentials.clone(), "shared-drive-root");
        drive_config.api_base_url = drive.base_url.clone();
        let storage = storage(
            recordings.path(),
            GoogleDriveStore::new(drive_config).expect("client"),
            false,
        );
        let part_path = write_part(incoming.path(), "audio.m4a", &content);
        storage
            .put_part(&part_path, &metadata(-5, 0x10 + round, 1, content.len()))
            .await
            .expect("uploaded with a service account");
    }
    let state = drive.state();
    assert_eq!(state.token_requests.len(), 2);
    assert_eq!(
        state.token_requests[0]["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    assert_eq!(state.folders.len(), 1, "the user's folder is made once");
    assert_eq!(state.files.len(), 2);
}

#[tokio::test]
async fn wrong_credentials_are_not_retried_and_the_file_stays() {
    let drive = FakeDrive::start(FakeDriveBehaviour::default()).await;
    let recordings = tempfile::tempdir().expect("temp dir");
    let incoming = tempfile::tempdir().expect("temp dir");
    let credentials = GoogleDriveCredentials::OAuthRefreshToken {
        client_id: FAKE_CLIENT_ID.to_string(),
        client_secret: "wrong".to_string(),
        refresh_token: FAKE_REFRESH_TOKEN.to_string(),
    };
    let storage = storage(recordings.path(), drive_store(&drive, credentials), false);
    let part_path = write_part(incoming.path(), "part.mp4", b"video bytes");
    let error = storage
        .put_part(&part_path, &metadata(1, 1, 1, 11))
        .await
        .expect_err("refused");
    let StorageError::UploadFailed {
        attempts,
        local_path,
        last_error,
        ..
    } = &error
    else {
        panic!("unexpected error {error:?}");
    };
    assert_eq!(*attempts, 1);
    assert!(matches!(**last_error, StorageError::Authentication { .. }));
    assert!(local_path.exists());
    assert_eq!(drive.state().token_requests.len(), 1);
}

#[tokio::test]
async fn an_upload_that_keeps_failing_is_tried_three_times_and_the_local_file_stays() {
    let drive = FakeDrive::start(FakeDriveBehaviour {
        refuse_all_sessions: true,
        ..FakeDriveBehaviour::default()
    })
    .await;
    let recordings = tempfile::tempdir().expect("temp dir");
    let incoming = tempfile::tempdir().expect("temp dir");
    let storage = storage(
        recordings.path(),
        drive_store(&drive, refresh_token_credentials()),
        false,
    );
    let part_path = write_part(incoming.path(), "part.mp4", b"video bytes");
    let error = storage
        .put_part(&part_path, &metadata(3, 0xBEEF, 1, 11))
        .await
        .expect_err("fails");
    let expected_local_path = recordings.path().join("user_3/0000BEEF/part-0001.mp4");
    match &error {
        StorageError::UploadFailed {
            attempts,
            local_path,
            ..
        } => {
            assert_eq!(*attempts, 3);
            assert_eq!(local_path, &expected_local_path);
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(
        expected_local_path.exists(),
        "nothing is deleted before its upload is confirmed"
    );
    let message = error.user_message();
    assert!(
        message.contains(&expected_local_path.display().to_string()),
        "{message}"
    );
    // A later retry of the same stored part works once Drive is back.
    drive.state().behaviour.refuse_all_sessions = false;
    let listing = storage.list_user_files(3).await.expect("list");
    assert_eq!(listing.len(), 1);
    let uploaded = storage
        .upload_stored_part(listing[0].clone(), &metadata(3, 0xBEEF, 1, 11))
        .await
        .expect("uploaded on the retry");
    assert!(uploaded.remote.is_some());
    assert!(!expected_local_path.exists());
}

#[tokio::test]
async fn retention_deletes_old_remote_copies_through_the_backend_when_configured() {
    let drive = FakeDrive::start(FakeDriveBehaviour::default()).await;
    let recordings = tempfile::tempdir().expect("temp dir");
    let incoming = tempfile::tempdir().expect("temp dir");
    let storage = storage(
        recordings.path(),
        drive_store(&drive, refresh_token_credentials()),
        true,
    );
    for job in [1u32, 2] {
        let part_path = write_part(incoming.path(), "part.mp4", b"some video");
        storage
            .put_part(&part_path, &metadata(9, job, 1, 10))
            .await
            .expect("uploaded");
    }
    let in_progress: HashSet<JobId> = [JobId::from_u32(2)].into_iter().collect();
    let later = SystemTime::now() + Duration::from_secs(100 * 3600);
    let retention = Duration::from_secs(72 * 3600);

    let without_remote = storage
        .retention_sweep(retention, later, &in_progress, false)
        .await;
    assert_eq!(without_remote.len(), 1, "{without_remote:?}");
    assert!(matches!(without_remote[0].copy, StoredCopy::Local { .. }));
    assert!(drive.state().deleted_file_ids.is_empty());

    let with_remote = storage
        .retention_sweep(retention, later, &in_progress, true)
        .await;
    assert_eq!(with_remote.len(), 1, "{with_remote:?}");
    assert_eq!(with_remote[0].job_id, JobId::from_u32(1));
    assert!(matches!(with_remote[0].copy, StoredCopy::Remote { .. }));
    assert_eq!(drive.state().deleted_file_ids.len(), 1);
    // Job 1 is gone entirely; job 2 (in progress) untouched.
    let listing = storage.list_user_files(9).await.expect("list");
    assert_eq!(listing.len(), 1);
    assert_eq!(listing[0].job_id, JobId::from_u32(2));
    assert!(listing[0].local_path.is_some() && listing[0].remote.is_some());
    assert!(!recordings.path().join("user_9/00000001").exists());
}
