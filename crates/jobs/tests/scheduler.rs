//! The scheduler's duties on a real SQLite store and real directories: retention, the disk guard
//! (never a recording in progress), and one scheduler at a time.

mod common;

use std::time::Duration;

use common::sqlite_backend_for_test;
use streambot_core::{
    DesiredJobState, DiskUsageLevel, JobEvent, JobOwner, JobPriority, JobState, NewJob,
};
use streambot_jobs::{JobStore, SchedulerConfig, job_directory, run_scheduler_pass, submit_job};

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
        let job = submit_job(&backend, request()).await.expect("submit");
        backend
            .set_desired_state(job.id, DesiredJobState::Stop)
            .await
            .expect("cancel");
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
