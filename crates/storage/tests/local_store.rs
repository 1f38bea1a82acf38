//! The local store and retention on a real temporary directory.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use streambot_core::JobId;
use streambot_storage::{
    LocalStore, PartMetadata, Requester, StorageError, Store, StoredCopy, retention_sweep,
};

fn metadata(user_id: i64, job: u32, part_number: u32) -> PartMetadata {
    PartMetadata {
        job_id: JobId::from_u32(job),
        user_id,
        part_number,
        part_count: part_number,
        duration_seconds: 10.0,
        size_bytes: 0,
        thumbnail: None,
        width: None,
        height: None,
    }
}

async fn put(
    store: &LocalStore,
    incoming: &Path,
    user_id: i64,
    job: u32,
    part: u32,
    size: usize,
) -> Result<streambot_storage::StoredFile, StorageError> {
    let source = incoming.join(format!("incoming-{user_id}-{job}-{part}.mp4"));
    std::fs::write(&source, vec![7u8; size]).expect("write");
    Store::put_part(store, &source, &metadata(user_id, job, part)).await
}

#[tokio::test]
async fn parts_are_filed_by_user_and_job_and_listed_with_sizes() {
    let root = tempfile::tempdir().expect("temp dir");
    let incoming = tempfile::tempdir().expect("temp dir");
    let store = LocalStore::new(root.path(), None);
    put(&store, incoming.path(), 42, 0xA, 1, 100)
        .await
        .expect("put");
    put(&store, incoming.path(), 42, 0xA, 2, 50)
        .await
        .expect("put");
    put(&store, incoming.path(), 43, 0xB, 1, 10)
        .await
        .expect("put");

    assert!(root.path().join("user_42/0000000A/part-0001.mp4").is_file());
    assert!(root.path().join("user_42/0000000A/part-0002.mp4").is_file());
    let listing = Store::list_user_files(&store, 42).await.expect("list");
    let summary: Vec<(String, u64)> = listing
        .iter()
        .map(|file| (file.file_name.clone(), file.size_bytes))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("part-0001.mp4".to_string(), 100),
            ("part-0002.mp4".to_string(), 50)
        ]
    );
    assert_eq!(store.bytes_used_by_user(42).await.expect("usage"), 150);
    assert_eq!(
        Store::list_user_files(&store, 44).await.expect("list"),
        vec![]
    );
}

#[tokio::test]
async fn the_quota_refuses_a_part_and_says_how_much_is_used() {
    let root = tempfile::tempdir().expect("temp dir");
    let incoming = tempfile::tempdir().expect("temp dir");
    let store = LocalStore::new(root.path(), Some(1_000_000));
    put(&store, incoming.path(), 1, 1, 1, 600_000)
        .await
        .expect("fits");
    let error = put(&store, incoming.path(), 1, 1, 2, 500_000)
        .await
        .expect_err("over the quota");
    assert!(matches!(
        error,
        StorageError::QuotaExceeded {
            used_bytes: 600_000,
            quota_bytes: 1_000_000,
            ..
        }
    ));
    let message = error.user_message();
    assert!(message.contains("600 KB used"), "{message}");
    assert!(message.contains("1.0 MB"), "{message}");
    // Another user's quota is their own.
    put(&store, incoming.path(), 2, 1, 1, 900_000)
        .await
        .expect("fits");
}

#[tokio::test]
async fn only_the_owner_or_an_admin_deletes() {
    let root = tempfile::tempdir().expect("temp dir");
    let incoming = tempfile::tempdir().expect("temp dir");
    let store = LocalStore::new(root.path(), None);
    let first = put(&store, incoming.path(), 10, 1, 1, 5)
        .await
        .expect("put");
    let second = put(&store, incoming.path(), 10, 1, 2, 5)
        .await
        .expect("put");
    let stranger = Requester {
        user_id: 11,
        is_admin: false,
    };
    let error = Store::delete(&store, &first, stranger)
        .await
        .expect_err("refused");
    assert!(matches!(error, StorageError::Forbidden { .. }));
    assert!(first.local_path.as_ref().is_some_and(|path| path.exists()));

    Store::delete(
        &store,
        &first,
        Requester {
            user_id: 10,
            is_admin: false,
        },
    )
    .await
    .expect("the owner deletes");
    Store::delete(
        &store,
        &second,
        Requester {
            user_id: 99,
            is_admin: true,
        },
    )
    .await
    .expect("an admin deletes");
    assert!(
        !root.path().join("user_10/00000001").exists(),
        "the empty job directory goes"
    );

    // A name that is not one of ours never reaches the filesystem.
    let mut tampered = first.clone();
    tampered.file_name = "../../../etc/passwd".to_string();
    let error = Store::delete(
        &store,
        &tampered,
        Requester {
            user_id: 10,
            is_admin: false,
        },
    )
    .await
    .expect_err("refused");
    assert!(matches!(error, StorageError::NotFound { .. }));
}

fn age_file(path: &Path, age: Duration) {
    let file = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open");
    file.set_modified(SystemTime::now() - age)
        .expect("set mtime");
}

#[tokio::test]
async fn retention_deletes_old_parts_but_never_a_job_in_progress() {
    let root = tempfile::tempdir().expect("temp dir");
    let incoming = tempfile::tempdir().expect("temp dir");
    let store = LocalStore::new(root.path(), None);
    let old_done = put(&store, incoming.path(), 1, 0x1, 1, 10)
        .await
        .expect("put");
    let old_running = put(&store, incoming.path(), 1, 0x2, 1, 10)
        .await
        .expect("put");
    let fresh = put(&store, incoming.path(), 2, 0x3, 1, 10)
        .await
        .expect("put");
    let old_and_new_job = put(&store, incoming.path(), 2, 0x4, 1, 10)
        .await
        .expect("put");
    let new_part_same_job = put(&store, incoming.path(), 2, 0x4, 2, 10)
        .await
        .expect("put");
    let hours = |count: u64| Duration::from_secs(count * 3600);
    for file in [&old_done, &old_running, &old_and_new_job] {
        age_file(file.local_path.as_deref().expect("local"), hours(80));
    }
    age_file(fresh.local_path.as_deref().expect("local"), hours(10));
    std::fs::write(root.path().join("user_1/unrelated.txt"), b"x").expect("write");

    let in_progress: HashSet<JobId> = [JobId::from_u32(0x2)].into_iter().collect();
    let deletions = retention_sweep(root.path(), hours(72), SystemTime::now(), &in_progress);

    let deleted: Vec<(JobId, String)> = deletions
        .iter()
        .map(|deletion| (deletion.job_id, deletion.file_name.clone()))
        .collect();
    assert_eq!(
        deleted,
        vec![
            (JobId::from_u32(0x1), "part-0001.mp4".to_string()),
            (JobId::from_u32(0x4), "part-0001.mp4".to_string()),
        ]
    );
    for deletion in &deletions {
        assert!(deletion.age >= hours(80) - Duration::from_secs(60));
        assert!(matches!(deletion.copy, StoredCopy::Local { .. }));
    }
    assert!(!root.path().join("user_1/00000001").exists());
    assert!(old_running.local_path.as_deref().expect("local").exists());
    assert!(fresh.local_path.as_deref().expect("local").exists());
    assert!(
        new_part_same_job
            .local_path
            .as_deref()
            .expect("local")
            .exists()
    );
    assert!(
        root.path().join("user_1/unrelated.txt").exists(),
        "only our own files are touched"
    );

    // A second sweep finds nothing more.
    assert!(retention_sweep(root.path(), hours(72), SystemTime::now(), &in_progress).is_empty());
}
