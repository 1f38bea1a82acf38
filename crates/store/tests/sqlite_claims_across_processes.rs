//! A waiting SQLite claimer asks the table only when the database files changed since an empty
//! look, a waiting retry became due, or 5 s passed (`sqlite_claim_watch`). These tests hold it to
//! what polling gave: a job written by another process (here: a second backend on the same
//! file, with its own pool and its own claim watch, as `streambot jobs add` is) is claimed within
//! a second, and a retry is claimed when its backoff runs out though nothing was written then.

mod common;

use std::time::{Duration, Instant};

use common::{BOTH, LEASE};
use streambot_core::{FailureKind, JobPriority, JobState, NewJob};
use streambot_store::{JobStore, Queue, RetryDecision, SqliteBackend, submit_job};

fn request(user_id: i64) -> NewJob {
    common::request(user_id, JobPriority::Normal)
}

#[tokio::test]
async fn a_job_written_by_another_process_is_claimed_within_a_second() {
    let directory = tempfile::tempdir().expect("tempdir");
    let worker = SqliteBackend::open_in_data_directory(directory.path())
        .await
        .expect("open");
    let other_process = SqliteBackend::open_in_data_directory(directory.path())
        .await
        .expect("open again");
    // An empty look first, so that the watch has something to compare with.
    assert!(
        worker
            .claim("worker", &BOTH, LEASE, Duration::from_millis(400))
            .await
            .expect("claim")
            .is_none()
    );
    for round in 0..3 {
        let waiting = {
            let worker = worker.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let claimed = worker
                    .claim("worker", &BOTH, LEASE, Duration::from_secs(10))
                    .await
                    .expect("claim");
                (claimed, started.elapsed())
            })
        };
        tokio::time::sleep(Duration::from_millis(700)).await;
        let submitted = submit_job(&other_process, request(round + 1))
            .await
            .expect("submit");
        let (claimed, waited) = waiting.await.expect("claimer");
        let (job, _lease) = claimed.expect("the other process's job is claimed");
        assert_eq!(job.id, submitted.id);
        // Submitted 0.7 s in; the claimer looks every 0.2 s when the files changed.
        assert!(
            waited < Duration::from_millis(700 + 1_500),
            "round {round}: claimed after {waited:?}"
        );
    }
}

#[tokio::test]
async fn a_retry_is_claimed_when_its_backoff_runs_out_with_nothing_written_meanwhile() {
    let directory = tempfile::tempdir().expect("tempdir");
    let worker = SqliteBackend::open_in_data_directory(directory.path())
        .await
        .expect("open");
    let job = submit_job(&worker, request(1)).await.expect("submit");
    let (_, lease) = worker
        .claim("worker", &BOTH, LEASE, Duration::from_secs(1))
        .await
        .expect("claim")
        .expect("claimed");
    worker
        .transition_job(
            job.id,
            JobState::Starting,
            JobState::Recording,
            Some(&lease),
            None,
        )
        .await
        .expect("recording");
    let backoff = Duration::from_millis(1_500);
    let decision = worker
        .retry(
            &lease,
            "the origin failed".into(),
            FailureKind::ServerError,
            backoff,
        )
        .await
        .expect("retry");
    assert!(matches!(decision, RetryDecision::Retried { .. }));
    let retried_at = Instant::now();
    // The first look finds it not yet due (and remembers when it will be); nothing is written
    // after that, so only the remembered time can make the claimer ask again before 5 s.
    let (claimed, _) = worker
        .claim("worker", &BOTH, LEASE, Duration::from_secs(10))
        .await
        .expect("claim")
        .expect("the retry is claimed");
    let waited = retried_at.elapsed();
    assert_eq!(claimed.id, job.id);
    assert!(
        waited >= backoff - Duration::from_millis(50),
        "claimed before its backoff: {waited:?}"
    );
    assert!(
        waited < backoff + Duration::from_millis(1_500),
        "claimed long after its backoff: {waited:?}"
    );
}
