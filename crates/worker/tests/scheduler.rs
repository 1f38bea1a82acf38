//! The scheduler's duties on a real SQLite store and real directories: retention, the disk guard
//! (never a recording in progress), and one scheduler at a time.

#[path = "../../store/tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::sqlite_backend_for_test;
use streambot_core::{
    DesiredJobState, DiskUsageLevel, JobEvent, JobOwner, JobPriority, JobState, NewJob,
};
use streambot_store::{JobStore, submit_job};
use streambot_worker::{SchedulerConfig, job_directory, run_scheduler_pass};

fn request() -> NewJob {
    NewJob {
        owner: JobOwner {
            user_id: 1,
            chat_id: 1,
        },
        url: "https://example.com/live.m3u8".to_string(),
        options: Default::default(),
        priority: JobPriority::Normal,
    }
}

/// A job submitted, then cancelled before any worker took it: finished.
async fn submit_finished_job<B: streambot_store::JobBackend>(backend: &B) -> streambot_core::Job {
    let job = submit_job(backend, request()).await.expect("submit");
    backend
        .set_desired_state(job.id, DesiredJobState::Stop)
        .await
        .expect("cancel");
    job
}

fn write_recording(directory: &std::path::Path, bytes: usize) {
    std::fs::create_dir_all(directory).expect("mkdir");
    std::fs::write(directory.join("main-0001.ts"), vec![0u8; bytes]).expect("write");
}

#[tokio::test]
async fn retention_deletes_finished_recordings_only() {
    let (backend, data) = sqlite_backend_for_test().await;
    let recordings = data.path().join("recordings");
    let finished = submit_job(&backend, request()).await.expect("submit");
    backend
        .set_desired_state(finished.id, DesiredJobState::Stop)
        .await
        .expect("cancel");
    let live = submit_job(&backend, request()).await.expect("submit");
    write_recording(&job_directory(&recordings, finished.id), 100);
    write_recording(&job_directory(&recordings, live.id), 100);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut config = SchedulerConfig::new("scheduler-a", recordings.clone());
    config.retention = Some(Duration::from_millis(10));
    let report = run_scheduler_pass(&backend, &config).await.expect("pass");
    assert_eq!(report.deleted_for_retention, vec![finished.id]);
    assert!(!job_directory(&recordings, finished.id).exists());
    assert!(job_directory(&recordings, live.id).exists());
}

#[tokio::test]
async fn the_disk_guard_warns_then_deletes_the_oldest_finished_never_a_live_one() {
    let (backend, data) = sqlite_backend_for_test().await;
    let recordings = data.path().join("recordings");
    let mut events = backend.subscribe_events();
    let mut finished = Vec::new();
    for _ in 0..2 {
        let job = submit_finished_job(&backend).await;
        write_recording(&job_directory(&recordings, job.id), 400);
        finished.push(job.id);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let live = submit_job(&backend, request()).await.expect("submit");
    write_recording(&job_directory(&recordings, live.id), 400);

    let mut config = SchedulerConfig::new("scheduler-a", recordings.clone());
    config.retention = None;
    // 1200 of 1400 bytes (86 %): a warning, nothing deleted.
    config.maximum_disk_bytes = Some(1400);
    let report = run_scheduler_pass(&backend, &config).await.expect("pass");
    assert_eq!(report.disk_level, Some(DiskUsageLevel::Warning));
    assert!(report.deleted_for_disk.is_empty());

    // 1200 of 1000 bytes: emergency; the oldest finished goes, then usage (800) is under 90 %.
    config.maximum_disk_bytes = Some(1000);
    let report = run_scheduler_pass(&backend, &config).await.expect("pass");
    assert_eq!(report.disk_level, Some(DiskUsageLevel::Emergency));
    assert_eq!(report.deleted_for_disk, vec![finished[0]]);
    assert!(job_directory(&recordings, finished[1]).exists());
    assert!(job_directory(&recordings, live.id).exists());
    let live_job = backend
        .get_job(live.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(live_job.state, JobState::Queued);

    let mut levels = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let JobEvent::DiskUsage { level, .. } = event {
            levels.push(level);
        }
    }
    assert_eq!(
        levels,
        vec![DiskUsageLevel::Warning, DiskUsageLevel::Emergency]
    );
}

/// A finished part as storage files it: `user_<id>/<job_id>/part-0001.mp4`.
fn write_user_file(
    recordings: &std::path::Path,
    user_id: i64,
    job_id: streambot_core::JobId,
    bytes: usize,
) -> std::path::PathBuf {
    let directory = streambot_storage::layout::job_directory(recordings, user_id, job_id);
    std::fs::create_dir_all(&directory).expect("mkdir");
    let path = directory.join(streambot_storage::layout::part_file_name(1, Some("mp4")));
    std::fs::write(&path, vec![0u8; bytes]).expect("write");
    path
}

fn local_storage(root: &std::path::Path) -> std::sync::Arc<streambot_storage::Storage> {
    std::sync::Arc::new(streambot_storage::Storage::new(
        streambot_storage::LocalStore::new(root, None),
        streambot_storage::StorageBackend::Local,
        true,
    ))
}

/// Issue 13 item 4: `FILE_RETENTION_HOURS` deletes the finished files users keep (under
/// `user_<id>/<job_id>/`), through a real scheduler ticking, never those of a live job.
#[tokio::test]
async fn a_scheduler_tick_deletes_expired_user_files_but_not_a_live_jobs() {
    let (backend, data) = sqlite_backend_for_test().await;
    let recordings = data.path().join("recordings");
    let finished = submit_job(&backend, request()).await.expect("submit");
    backend
        .set_desired_state(finished.id, DesiredJobState::Stop)
        .await
        .expect("cancel");
    // A job back in its queue for a retry still has files from its first attempt: live.
    let live = submit_job(&backend, request()).await.expect("submit");
    let expired_file = write_user_file(&recordings, 1, finished.id, 1000);
    let live_file = write_user_file(&recordings, 1, live.id, 1000);
    tokio::time::sleep(Duration::from_millis(50)).await;

    let mut config = SchedulerConfig::new("scheduler-a", recordings.clone());
    config.retention = Some(Duration::from_millis(20));
    config.interval = Duration::from_millis(100);
    config.storage = Some(local_storage(&recordings));
    let mut events = backend.subscribe_events();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let scheduler = tokio::spawn(streambot_worker::run_scheduler(
        backend.clone(),
        config,
        shutdown.clone(),
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while expired_file.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "retention never deleted {}",
            expired_file.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    scheduler.await.expect("join").expect("scheduler");
    assert!(live_file.exists(), "a live job's file was deleted");
    assert!(
        !streambot_storage::layout::job_directory(&recordings, 1, finished.id).exists(),
        "the emptied job directory goes too"
    );
    let mut announced = false;
    while let Ok(event) = events.try_recv() {
        if let JobEvent::RecordingDeleted { job_id, .. } = event {
            announced |= job_id == finished.id;
        }
    }
    assert!(announced, "the deletion is published for the bot");
    let recorded = backend
        .get_job(finished.id)
        .await
        .expect("get")
        .expect("job");
    assert!(
        recorded.recording_deleted.is_some(),
        "the job says its files are gone (\"Send again\" tells the user)"
    );
}

/// The disk guard counts the users' finished files and frees them, oldest first, together with
/// working directories; never a live job's.
#[tokio::test]
async fn the_disk_guard_frees_user_files_oldest_first() {
    let (backend, data) = sqlite_backend_for_test().await;
    let recordings = data.path().join("recordings");
    let mut finished = Vec::new();
    for _ in 0..2 {
        let job = submit_finished_job(&backend).await;
        write_user_file(&recordings, 1, job.id, 400);
        finished.push(job.id);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let live = submit_job(&backend, request()).await.expect("submit");
    let live_file = write_user_file(&recordings, 1, live.id, 400);

    let mut config = SchedulerConfig::new("scheduler-a", recordings.clone());
    config.retention = None;
    config.storage = Some(local_storage(&recordings));
    // 1200 bytes of 1000: the oldest finished job's files go, then 800 is under 90 %.
    config.maximum_disk_bytes = Some(1000);
    let report = run_scheduler_pass(&backend, &config).await.expect("pass");
    assert_eq!(report.used_bytes, 800);
    assert_eq!(report.deleted_for_disk, vec![finished[0]]);
    assert!(!streambot_storage::layout::job_directory(&recordings, 1, finished[0]).exists());
    assert!(streambot_storage::layout::job_directory(&recordings, 1, finished[1]).exists());
    assert!(live_file.exists());
}

/// The admins' notices, decided from a pass's measurement (fake disk usage, no disk): 80 % is
/// said once until usage goes under it again; at 95 % what the cleanup deleted is said each time
/// it deletes something, and "nothing to delete" once.
#[test]
fn the_admins_are_told_at_80_percent_once_and_what_95_percent_deleted() {
    use streambot_core::{AdminNotice, JobId};
    use streambot_worker::{SchedulerPassReport, disk_notice};
    const LIMIT: u64 = 1_000;
    let measured = |used_before: u64, used_after: u64, deleted: Vec<JobId>| {
        let fraction = used_before as f64 / LIMIT as f64;
        SchedulerPassReport {
            used_bytes_before_cleanup: used_before,
            used_bytes: used_after,
            disk_level: if fraction >= 0.95 {
                Some(DiskUsageLevel::Emergency)
            } else if fraction >= 0.80 {
                Some(DiskUsageLevel::Warning)
            } else {
                None
            },
            deleted_for_disk: deleted,
            ..SchedulerPassReport::default()
        }
    };
    // Under 80 %: nothing.
    assert_eq!(disk_notice(&measured(790, 790, vec![]), LIMIT, None), None);
    // 80 %: once.
    let filling = measured(810, 810, vec![]);
    assert_eq!(
        disk_notice(&filling, LIMIT, None),
        Some(AdminNotice::DiskFilling {
            used_bytes: 810,
            limit_bytes: LIMIT
        })
    );
    assert_eq!(
        disk_notice(&filling, LIMIT, Some(DiskUsageLevel::Warning)),
        None
    );
    // 95 %: what was deleted, from the last level told (warning) and again the next time.
    let old_jobs = vec![JobId::from_u32(1), JobId::from_u32(2)];
    let freed = measured(960, 850, old_jobs.clone());
    let expected = Some(AdminNotice::DiskFreed {
        used_bytes_before: 960,
        used_bytes_after: 850,
        limit_bytes: LIMIT,
        deleted_jobs: old_jobs,
    });
    assert_eq!(
        disk_notice(&freed, LIMIT, Some(DiskUsageLevel::Warning)),
        expected
    );
    assert_eq!(
        disk_notice(&freed, LIMIT, Some(DiskUsageLevel::Emergency)),
        expected
    );
    // 95 % with nothing finished to delete: said once.
    let stuck = measured(970, 970, vec![]);
    assert!(matches!(
        disk_notice(&stuck, LIMIT, Some(DiskUsageLevel::Warning)),
        Some(AdminNotice::DiskFreed { ref deleted_jobs, .. }) if deleted_jobs.is_empty()
    ));
    assert_eq!(
        disk_notice(&stuck, LIMIT, Some(DiskUsageLevel::Emergency)),
        None
    );
    // Back under 80 %, then over again: said again.
    assert_eq!(
        disk_notice(
            &measured(500, 500, vec![]),
            LIMIT,
            Some(DiskUsageLevel::Emergency)
        ),
        None
    );
    assert!(disk_notice(&filling, LIMIT, None).is_some());
}

/// A pass reads what is live and what is on this disk, not every job the store holds: 200
/// finished jobs whose files are gone cost it nothing; the one with a working directory and the
/// one with a user's finished file are read by id (and retention deletes both).
#[tokio::test]
async fn a_pass_reads_the_live_jobs_and_those_on_disk_not_every_finished_job() {
    let (backend, data) = sqlite_backend_for_test().await;
    let recordings = data.path().join("recordings");
    let mut finished = Vec::new();
    for _ in 0..202 {
        finished.push(submit_finished_job(&backend).await.id);
    }
    let live = submit_job(&backend, request()).await.expect("submit");
    write_recording(&job_directory(&recordings, finished[0]), 100);
    write_user_file(&recordings, 1, finished[1], 100);
    write_recording(&job_directory(&recordings, live.id), 100);
    // Not a job's directory: left alone, not read.
    std::fs::create_dir_all(recordings.join("not-a-job")).expect("mkdir");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let counted = common::counting::CountingBackend::new(backend.clone());
    let mut config = SchedulerConfig::new("scheduler-a", recordings.clone());
    config.retention = Some(Duration::from_millis(10));
    let report = run_scheduler_pass(&counted, &config).await.expect("pass");
    assert_eq!(
        counted.calls_of("list_jobs including finished ones"),
        0,
        "{:?}",
        counted.all_calls()
    );
    assert_eq!(counted.calls_of("get_job"), 2, "{:?}", counted.all_calls());
    assert_eq!(report.deleted_for_retention, vec![finished[0]]);
    assert!(!job_directory(&recordings, finished[0]).exists());
    assert!(
        report
            .files_deleted_for_retention
            .iter()
            .any(|deletion| deletion.job_id == finished[1]),
        "{:?}",
        report.files_deleted_for_retention
    );
    assert!(job_directory(&recordings, live.id).exists());
    assert!(recordings.join("not-a-job").exists());
}
