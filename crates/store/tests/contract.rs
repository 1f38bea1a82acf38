//! One contract suite for both backends: every case runs against SQLite (a fresh file) and against
//! Redis (at `REDIS_URL`, or 127.0.0.1:6379, with a random key prefix per test; skipped with a
//! message when no Redis answers).

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{redis_backend_for_test, sqlite_backend_for_test};
use streambot_core::{
    DesiredJobState, FailureKind, JobDelivery, JobEvent, JobPriority, JobState, PartDeliveryState,
    RedeliveryOutcome, StatusMessageRef, UserPreferences, WaitingForLive,
};
use streambot_store::{
    JobBackend, JobFilter, JobStateCounts, JobStore, JobsError, Lease, LeaseRenewal,
    MAXIMUM_FAILED_ATTEMPTS, Queue, RetryDecision, submit_job,
};

use common::{BOTH, LEASE, request};

const SHORT_WAIT: Duration = Duration::from_millis(300);

async fn create_get_and_list<B: JobBackend>(backend: B) {
    let first = backend
        .create_job(request(1, JobPriority::Normal))
        .await
        .expect("create");
    let second = backend
        .create_job(request(1, JobPriority::Priority))
        .await
        .expect("create");
    let third = backend
        .create_job(request(2, JobPriority::Normal))
        .await
        .expect("create");
    assert_eq!(first.state, JobState::Queued);
    assert_eq!(first.id.as_str().len(), 8);
    assert_eq!(
        HashSet::from([first.id, second.id, third.id]).len(),
        3,
        "ids are unique"
    );
    let fetched = backend
        .get_job(second.id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(fetched, second);
    assert!(
        backend
            .get_job(streambot_core::JobId::from_u32(0x0BAD_CAFE))
            .await
            .expect("get")
            .is_none()
            || [first.id, second.id, third.id]
                .contains(&streambot_core::JobId::from_u32(0x0BAD_CAFE))
    );
    let mine = backend.list_jobs_for_user(1, 10).await.expect("list");
    assert_eq!(
        mine.iter().map(|job| job.id).collect::<HashSet<_>>(),
        HashSet::from([first.id, second.id])
    );
    let all = backend.list_jobs(JobFilter::default()).await.expect("list");
    assert_eq!(all.len(), 3);
    backend
        .transition_job(third.id, JobState::Queued, JobState::Cancelled, None, None)
        .await
        .expect("cancel");
    let cancelled = backend
        .list_jobs(JobFilter {
            states: vec![JobState::Cancelled],
            ..JobFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].id, third.id);
}

async fn transition_is_compare_and_set<B: JobBackend>(backend: B) {
    let job = backend
        .create_job(request(1, JobPriority::Normal))
        .await
        .expect("create");
    let conflict = backend
        .transition_job(job.id, JobState::Recording, JobState::Paused, None, None)
        .await
        .expect_err("not recording");
    assert!(
        matches!(
            conflict,
            JobsError::StateConflict {
                actual: JobState::Queued,
                ..
            }
        ),
        "{conflict:?}"
    );
    let invalid = backend
        .transition_job(job.id, JobState::Queued, JobState::Completed, None, None)
        .await
        .expect_err("not allowed");
    assert!(
        matches!(invalid, JobsError::InvalidTransition(_)),
        "{invalid:?}"
    );
    let unchanged = backend.get_job(job.id).await.expect("get").expect("exists");
    assert_eq!(unchanged.state, JobState::Queued);
}

async fn claims_one_at_a_time_priority_first<B: JobBackend>(backend: B) {
    let first_normal = submit_job(&backend, request(1, JobPriority::Normal))
        .await
        .expect("submit");
    let second_normal = submit_job(&backend, request(1, JobPriority::Normal))
        .await
        .expect("submit");
    let urgent = submit_job(&backend, request(1, JobPriority::Priority))
        .await
        .expect("submit");
    let mut order = Vec::new();
    for _ in 0..3 {
        let (job, lease) = backend
            .claim("worker-a", &BOTH, LEASE, SHORT_WAIT)
            .await
            .expect("claim")
            .expect("a job");
        assert_eq!(job.state, JobState::Starting);
        assert_eq!(job.worker_id(), Some("worker-a"));
        assert_eq!(lease.fencing_epoch, job.fencing_epoch);
        order.push(job.id);
    }
    assert_eq!(order, vec![urgent.id, first_normal.id, second_normal.id]);
    assert!(
        backend
            .claim("worker-a", &BOTH, LEASE, SHORT_WAIT)
            .await
            .expect("claim")
            .is_none()
    );
}

async fn a_worker_serves_only_its_queues<B: JobBackend>(backend: B) {
    let normal = submit_job(&backend, request(1, JobPriority::Normal))
        .await
        .expect("submit");
    assert!(
        backend
            .claim("priority-only", &[JobPriority::Priority], LEASE, SHORT_WAIT)
            .await
            .expect("claim")
            .is_none(),
        "a priority-only worker took a normal job"
    );
    let (job, _) = backend
        .claim("normal-only", &[JobPriority::Normal], LEASE, SHORT_WAIT)
        .await
        .expect("claim")
        .expect("a job");
    assert_eq!(job.id, normal.id);
}

async fn a_waiting_claim_wakes_on_push<B: JobBackend>(backend: B) {
    let claimer = backend.clone();
    let waiting = tokio::spawn(async move {
        claimer
            .claim("waiter", &BOTH, LEASE, Duration::from_secs(5))
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let job = submit_job(&backend, request(1, JobPriority::Normal))
        .await
        .expect("submit");
    let (claimed, _) = waiting.await.expect("join").expect("claim").expect("a job");
    assert_eq!(claimed.id, job.id);
    assert!(started.elapsed() < Duration::from_secs(2));
}

async fn lapsed_leases_are_reaped_and_fenced<B: JobBackend>(backend: B) {
    let job = submit_job(&backend, request(1, JobPriority::Normal))
        .await
        .expect("submit");
    let (_, old_lease) = backend
        .claim("dies", &BOTH, Duration::from_millis(200), SHORT_WAIT)
        .await
        .expect("claim")
        .expect("a job");
    backend
        .transition_job(
            job.id,
            JobState::Starting,
            JobState::Recording,
            Some(&old_lease),
            None,
        )
        .await
        .expect("recording");
    assert!(
        backend
            .reap_expired_leases()
            .await
            .expect("reap")
            .is_empty(),
        "a live lease was reaped"
    );
    // Past the lease, and past the Redis reaper's minimum idle time of its stream entry.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let reaped = backend.reap_expired_leases().await.expect("reap");
    assert_eq!(reaped, vec![job.id]);
    let requeued = backend.get_job(job.id).await.expect("get").expect("exists");
    assert_eq!(requeued.state, JobState::Queued);
    assert!(requeued.fencing_epoch > old_lease.fencing_epoch);

    let (resumed, new_lease) = backend
        .claim("survivor", &BOTH, LEASE, Duration::from_secs(2))
        .await
        .expect("claim")
        .expect("the reaped job");
    assert_eq!(resumed.id, job.id);
    assert!(new_lease.fencing_epoch > old_lease.fencing_epoch);
    // The old holder is fenced out of every write.
    let lost = backend
        .update_progress(&old_lease, Default::default())
        .await
        .expect_err("fenced");
    assert!(matches!(lost, JobsError::LeaseLost { .. }), "{lost:?}");
    assert!(matches!(
        backend.renew_lease(&old_lease, LEASE).await,
        Err(JobsError::LeaseLost { .. })
    ));
    assert!(matches!(
        backend
            .transition_job(
                job.id,
                JobState::Starting,
                JobState::Recording,
                Some(&old_lease),
                None
            )
            .await,
        Err(JobsError::LeaseLost { .. })
    ));
    backend
        .transition_job(
            job.id,
            JobState::Starting,
            JobState::Recording,
            Some(&new_lease),
            None,
        )
        .await
        .expect("the new holder writes");
}

async fn renewal_carries_the_desired_state<B: JobBackend>(backend: B) {
    let mut events = backend.subscribe_events();
    let job = submit_job(&backend, request(1, JobPriority::Normal))
        .await
        .expect("submit");
    let (_, lease) = backend
        .claim("worker", &BOTH, Duration::from_secs(2), SHORT_WAIT)
        .await
        .expect("claim")
        .expect("a job");
    backend
        .set_desired_state(job.id, DesiredJobState::Pause)
        .await
        .expect("pause");
    let renewed = backend
        .renew_lease(&lease, Duration::from_secs(60))
        .await
        .expect("renew");
    assert_eq!(renewed.desired_state, DesiredJobState::Pause);
    let expires = renewed.lease.as_ref().expect("lease").expires_at;
    assert!(expires > chrono::Utc::now() + chrono::Duration::seconds(50));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut saw_nudge = false;
    let mut saw_claim = false;
    while !(saw_nudge && saw_claim) {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("events in time")
            .expect("event");
        match event {
            JobEvent::DesiredStateChanged {
                job_id,
                desired: DesiredJobState::Pause,
                ..
            } if job_id == job.id => saw_nudge = true,
            JobEvent::StateChanged {
                job_id,
                from: JobState::Queued,
                to: JobState::Starting,
                ..
            } if job_id == job.id => saw_claim = true,
            _ => {}
        }
    }
}

/// Issue 14 item 2: a worker's heartbeat renews all its leases at once; each result is its own
/// job's (renewed with its progress, fenced out, or not found), in the order asked.
async fn a_heartbeat_renews_all_leases_at_once<B: JobBackend>(backend: B) {
    let mut events = backend.subscribe_events();
    let mut leases = Vec::new();
    for user_id in 1..=3 {
        submit_job(&backend, request(user_id, JobPriority::Normal))
            .await
            .expect("submit");
        let (_, lease) = backend
            .claim("worker", &BOTH, Duration::from_secs(2), SHORT_WAIT)
            .await
            .expect("claim")
            .expect("a job");
        leases.push(lease);
    }
    // The third lease was taken over: its holder is fenced out, the others are not held up.
    let mut stale = leases[2].clone();
    stale.fencing_epoch -= 1;
    let mut missing = leases[0].clone();
    missing.job_id = "0BADF00D".parse().expect("an id");
    let progress = streambot_core::RecordingProgress {
        segments_written: 7,
        media_seconds: 14.0,
        current_part: 2,
        ..Default::default()
    };
    let renewals = vec![
        LeaseRenewal {
            lease: leases[0].clone(),
            progress: Some(progress.clone()),
        },
        LeaseRenewal {
            lease: leases[1].clone(),
            progress: None,
        },
        LeaseRenewal {
            lease: stale,
            progress: Some(progress.clone()),
        },
        LeaseRenewal {
            lease: missing,
            progress: None,
        },
    ];
    let results = backend
        .renew_leases(&renewals, Duration::from_secs(60))
        .await;
    assert_eq!(results.len(), 4);
    let soon = chrono::Utc::now() + chrono::Duration::seconds(50);
    for (index, result) in results.iter().take(2).enumerate() {
        let job = result.as_ref().expect("renewed");
        assert_eq!(job.id, leases[index].job_id);
        assert!(job.lease.as_ref().expect("lease").expires_at > soon);
    }
    assert!(
        matches!(results[2], Err(JobsError::LeaseLost { .. })),
        "{:?}",
        results[2]
    );
    assert!(
        matches!(results[3], Err(JobsError::JobNotFound { .. })),
        "{:?}",
        results[3]
    );
    let first = backend
        .get_job(leases[0].job_id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(first.progress, progress);
    assert_eq!(first.parts, 2);
    assert!(first.lease.as_ref().expect("lease").expires_at > soon);
    let fenced = backend
        .get_job(leases[2].job_id)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        fenced.progress,
        Default::default(),
        "a fenced-out progress was written"
    );
    // The renewed leases hold past their first expiry: nothing is reaped.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let reaped = backend.reap_expired_leases().await.expect("reap");
    assert!(!reaped.contains(&leases[0].job_id) && !reaped.contains(&leases[1].job_id));
    // The progress written with the renewal is published like `update_progress`'s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("a progress event in time")
            .expect("event");
        if let JobEvent::Progress {
            job_id,
            progress: published,
            ..
        } = event
            && job_id == leases[0].job_id
        {
            assert_eq!(published, progress);
            break;
        }
    }
    // An empty heartbeat is no round trip and no error.
    assert!(backend.renew_leases(&[], LEASE).await.is_empty());
}

/// Issue 14: one heartbeat of 1,000 leases (more than one batch of reads and writes) between
/// which some jobs were requeued, taken over by another worker or asked to stop. Each result is
/// that job's own: the taken-over and requeued ones are fenced out (their progress not written),
/// the stopped ones are renewed and carry the stop, every other one is renewed with its progress.
async fn a_heartbeat_of_a_thousand_leases_fences_each_job_on_its_own<B: JobBackend>(backend: B) {
    const JOBS: usize = 1000;
    let mut leases = Vec::with_capacity(JOBS);
    for index in 0..JOBS {
        submit_job(&backend, request(index as i64 + 1, JobPriority::Normal))
            .await
            .expect("submit");
        let (_, lease) = backend
            .claim("worker", &BOTH, Duration::from_secs(60), SHORT_WAIT)
            .await
            .expect("claim")
            .expect("a job");
        leases.push(lease);
    }
    let progress_of = |index: usize, beat: u64| streambot_core::RecordingProgress {
        segments_written: beat * 10_000 + index as u64,
        media_seconds: index as f64,
        current_part: 1,
        ..Default::default()
    };
    let beat = |beat: u64| -> Vec<LeaseRenewal> {
        leases
            .iter()
            .enumerate()
            .map(|(index, lease)| LeaseRenewal {
                lease: lease.clone(),
                progress: Some(progress_of(index, beat)),
            })
            .collect()
    };
    let first = backend.renew_leases(&beat(1), LEASE).await;
    assert_eq!(first.len(), JOBS);
    for (index, result) in first.iter().enumerate() {
        let job = result.as_ref().expect("every lease renewed");
        assert_eq!(job.id, leases[index].job_id);
        assert_eq!(job.progress, progress_of(index, 1));
    }
    // Between the beats: jobs 0-9 requeued (a retry), 10-19 given back and claimed by another
    // worker (a new epoch), 20-29 asked to stop; on both sides of the 500-job batch boundary.
    let requeued: Vec<usize> = (0..10).chain(495..500).collect();
    let taken_over: Vec<usize> = (10..20).chain(500..505).collect();
    let stopped: Vec<usize> = (20..30).chain(990..1000).collect();
    for &index in &requeued {
        backend
            .retry(
                &leases[index],
                "trouble".to_string(),
                FailureKind::default(),
                Duration::from_secs(3600),
            )
            .await
            .expect("requeued");
    }
    for &index in &taken_over {
        backend.release(&leases[index]).await.expect("released");
    }
    let mut new_leases = std::collections::HashMap::new();
    for _ in &taken_over {
        let (job, lease) = backend
            .claim("other-worker", &BOTH, LEASE, SHORT_WAIT)
            .await
            .expect("claim")
            .expect("a released job");
        new_leases.insert(job.id, lease);
    }
    for &index in &stopped {
        backend
            .set_desired_state(leases[index].job_id, DesiredJobState::Stop)
            .await
            .expect("stop asked");
    }
    let second = backend.renew_leases(&beat(2), LEASE).await;
    assert_eq!(second.len(), JOBS);
    for (index, result) in second.iter().enumerate() {
        let job_id = leases[index].job_id;
        let stored = backend.get_job(job_id).await.expect("get").expect("exists");
        if requeued.contains(&index) || taken_over.contains(&index) {
            assert!(
                matches!(result, Err(JobsError::LeaseLost { job_id: lost, .. }) if *lost == job_id),
                "job {index}: {result:?}"
            );
            assert_eq!(
                stored.progress,
                progress_of(index, 1),
                "job {index}: a fenced-out progress was written"
            );
            continue;
        }
        let job = result.as_ref().expect("renewed");
        assert_eq!(job.id, job_id);
        assert_eq!(stored.progress, progress_of(index, 2), "job {index}");
        let wanted = if stopped.contains(&index) {
            DesiredJobState::Stop
        } else {
            DesiredJobState::Record
        };
        assert_eq!(job.desired_state, wanted, "job {index}");
        assert_eq!(stored.desired_state, wanted, "job {index}");
    }
    // The new holder's renewals work; the old holder's stay fenced out.
    let takers: Vec<LeaseRenewal> = new_leases
        .values()
        .map(|lease| LeaseRenewal {
            lease: lease.clone(),
            progress: None,
        })
        .collect();
    for result in backend.renew_leases(&takers, LEASE).await {
        let job = result.expect("the new holder renews");
        assert_eq!(job.lease.as_ref().expect("lease").worker_id, "other-worker");
    }
}

async fn stopping_a_queued_job_cancels_it<B: JobBackend>(backend: B) {
    let job = submit_job(&backend, request(1, JobPriority::Normal))
        .await
        .expect("submit");
    let stopped = backend
        .set_desired_state(job.id, DesiredJobState::Stop)
        .await
        .expect("stop");
    assert_eq!(stopped.state, JobState::Cancelled);
    assert!(
        backend
            .claim("worker", &BOTH, LEASE, SHORT_WAIT)
            .await
            .expect("claim")
            .is_none(),
        "a cancelled job was claimed"
    );
    assert!(matches!(
        backend
            .set_desired_state(job.id, DesiredJobState::Record)
            .await,
        Err(JobsError::NotApplicable { .. })
    ));
}

async fn retries_then_dead_letters<B: JobBackend>(backend: B) {
    let job = submit_job(&backend, request(1, JobPriority::Normal))
        .await
        .expect("submit");
    for attempt in 1..=MAXIMUM_FAILED_ATTEMPTS {
        let (claimed, lease) = backend
            .claim("worker", &BOTH, LEASE, Duration::from_secs(3))
            .await
            .expect("claim")
            .expect("the job again");
        assert_eq!(claimed.id, job.id);
        assert_eq!(claimed.attempt, attempt - 1);
        backend
            .transition_job(
                job.id,
                JobState::Starting,
                JobState::Recording,
                Some(&lease),
                None,
            )
            .await
            .expect("recording");
        let decision = backend
            .retry(
                &lease,
                format!("failure {attempt}"),
                FailureKind::ServerError,
                Duration::from_millis(100),
            )
            .await
            .expect("retry");
        if attempt < MAXIMUM_FAILED_ATTEMPTS {
            assert_eq!(
                decision,
                RetryDecision::Retried {
                    attempt,
                    available_in: Duration::from_millis(100)
                }
            );
        } else {
            assert_eq!(decision, RetryDecision::DeadLettered { attempt });
        }
    }
    let failed = backend.get_job(job.id).await.expect("get").expect("exists");
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(failed.error.as_deref(), Some("failure 3"));
    assert_eq!(failed.failure, Some(FailureKind::ServerError));
    assert_eq!(
        backend.dead_letters().await.expect("dead letters"),
        vec![job.id]
    );
    assert!(
        backend
            .claim("worker", &BOTH, LEASE, SHORT_WAIT)
            .await
            .expect("claim")
            .is_none()
    );
}

async fn a_retry_waits_for_its_backoff<B: JobBackend>(backend: B) {
    submit_job(&backend, request(1, JobPriority::Normal))
        .await
        .expect("submit");
    let (_, lease) = backend
        .claim("worker", &BOTH, LEASE, SHORT_WAIT)
        .await
        .expect("claim")
        .expect("a job");
    backend
        .retry(
            &lease,
            "transient".to_string(),
            FailureKind::Unreachable,
            Duration::from_millis(1500),
        )
        .await
        .expect("retry");
    assert!(
        backend
            .claim("worker", &BOTH, LEASE, Duration::from_millis(500))
            .await
            .expect("claim")
            .is_none(),
        "claimed before the backoff ran out"
    );
    assert!(
        backend
            .claim("worker", &BOTH, LEASE, Duration::from_secs(3))
            .await
            .expect("claim")
            .is_some()
    );
}

async fn release_and_complete<B: JobBackend>(backend: B) {
    let job = submit_job(&backend, request(1, JobPriority::Normal))
        .await
        .expect("submit");
    let (_, lease) = backend
        .claim("leaving", &BOTH, LEASE, SHORT_WAIT)
        .await
        .expect("claim")
        .expect("a job");
    backend
        .transition_job(
            job.id,
            JobState::Starting,
            JobState::Recording,
            Some(&lease),
            None,
        )
        .await
        .expect("recording");
    backend.release(&lease).await.expect("release");
    let released = backend.get_job(job.id).await.expect("get").expect("exists");
    assert_eq!(released.state, JobState::Queued);
    assert_eq!(released.attempt, 0, "a release is not a failure");
    let (_, lease) = backend
        .claim("next", &BOTH, LEASE, Duration::from_secs(2))
        .await
        .expect("claim")
        .expect("the released job");
    for (from, to) in [
        (JobState::Starting, JobState::Recording),
        (JobState::Recording, JobState::Finalizing),
        (JobState::Finalizing, JobState::Uploading),
        (JobState::Uploading, JobState::Completed),
    ] {
        backend
            .transition_job(job.id, from, to, Some(&lease), None)
            .await
            .expect("transition");
    }
    backend.complete(&lease).await.expect("complete");
    let done = backend.get_job(job.id).await.expect("get").expect("exists");
    assert_eq!(done.state, JobState::Completed);
    assert!(done.lease.is_none());
    assert!(
        backend
            .claim("next", &BOTH, LEASE, SHORT_WAIT)
            .await
            .expect("claim")
            .is_none()
    );
}

async fn concurrent_claimers_take_each_job_once<B: JobBackend>(backend: B) {
    let mut submitted = HashSet::new();
    for index in 0..20 {
        let priority = if index % 3 == 0 {
            JobPriority::Priority
        } else {
            JobPriority::Normal
        };
        submitted.insert(
            submit_job(&backend, request(index, priority))
                .await
                .expect("submit")
                .id,
        );
    }
    let mut claimers = Vec::new();
    for worker in 0..4 {
        let backend = backend.clone();
        claimers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some((job, _)) = backend
                .claim(&format!("worker-{worker}"), &BOTH, LEASE, SHORT_WAIT)
                .await
                .expect("claim")
            {
                mine.push(job.id);
            }
            mine
        }));
    }
    let mut claimed = Vec::new();
    for claimer in claimers {
        claimed.extend(claimer.await.expect("join"));
    }
    assert_eq!(claimed.len(), 20, "each job claimed exactly once");
    assert_eq!(claimed.into_iter().collect::<HashSet<_>>(), submitted);
}

async fn the_lock_has_one_holder_until_it_expires<B: JobBackend>(backend: B) {
    let time_to_live = Duration::from_millis(500);
    assert!(
        backend
            .try_acquire_lock("scheduler", "a", time_to_live)
            .await
            .expect("lock")
    );
    assert!(
        backend
            .try_acquire_lock("scheduler", "a", time_to_live)
            .await
            .expect("renew")
    );
    assert!(
        !backend
            .try_acquire_lock("scheduler", "b", time_to_live)
            .await
            .expect("lock")
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        backend
            .try_acquire_lock("scheduler", "b", time_to_live)
            .await
            .expect("lock")
    );
    assert!(
        !backend
            .try_acquire_lock("scheduler", "a", time_to_live)
            .await
            .expect("lock")
    );
}

async fn a_failure_keeps_its_class<B: JobBackend>(backend: B) {
    let job = submit_job(&backend, request(1, JobPriority::Normal))
        .await
        .expect("submit");
    let (_, lease) = backend
        .claim("worker", &BOTH, LEASE, SHORT_WAIT)
        .await
        .expect("claim")
        .expect("a job");
    let fenced_out = Lease {
        fencing_epoch: lease.fencing_epoch + 7,
        ..lease.clone()
    };
    assert!(matches!(
        backend
            .fail_job(
                job.id,
                JobState::Starting,
                Some(&fenced_out),
                "stale".to_string(),
                FailureKind::Internal
            )
            .await,
        Err(JobsError::LeaseLost { .. })
    ));
    // A failure before the link resolved fails from `Starting`.
    let failed = backend
        .fail_job(
            job.id,
            JobState::Starting,
            Some(&lease),
            "The link returned 404.".to_string(),
            FailureKind::NotFound,
        )
        .await
        .expect("fail");
    assert_eq!(failed.state, JobState::Failed);
    let stored = backend.get_job(job.id).await.expect("get").expect("exists");
    assert_eq!(stored.failure, Some(FailureKind::NotFound));
    assert_eq!(stored.error.as_deref(), Some("The link returned 404."));
    let listed = backend
        .list_jobs(JobFilter {
            states: vec![JobState::Failed],
            ..JobFilter::default()
        })
        .await
        .expect("list");
    assert_eq!(listed[0].failure, Some(FailureKind::NotFound));
    let fresh = backend
        .create_job(request(2, JobPriority::Normal))
        .await
        .expect("create");
    assert_eq!(fresh.failure, None);
}

async fn user_preferences_are_kept_per_user<B: JobBackend>(backend: B) {
    assert_eq!(
        backend.get_user_preferences(41).await.expect("get"),
        UserPreferences::default(),
        "someone who never set any gets the defaults"
    );
    let russian_vip = UserPreferences {
        language: Some("ru".to_string()),
        time_zone: Some("Europe/Moscow".to_string()),
        vip: true,
    };
    backend
        .set_user_preferences(41, russian_vip.clone())
        .await
        .expect("set");
    assert_eq!(
        backend.get_user_preferences(41).await.expect("get"),
        russian_vip
    );
    assert_eq!(
        backend.get_user_preferences(42).await.expect("get"),
        UserPreferences::default(),
        "one user's preferences are not another's"
    );
    let english = UserPreferences {
        language: Some("en".to_string()),
        ..UserPreferences::default()
    };
    backend
        .set_user_preferences(41, english.clone())
        .await
        .expect("replace");
    assert_eq!(
        backend.get_user_preferences(41).await.expect("get"),
        english
    );
    // A second handle on the same store (another bot process) sees the same.
    let other_process = backend.clone();
    assert_eq!(
        other_process.get_user_preferences(41).await.expect("get"),
        english
    );
}

/// Issue 13: the delivery record is written only by the lease holder; a worker lost while
/// delivering is reaped back to the queue (not failed), the next holder goes `Starting →
/// Uploading` and sees which parts were sent; the status message is kept in the record.
async fn delivery_is_recorded_fenced_and_resumed<B: JobBackend>(backend: B) {
    let job = submit_job(&backend, request(3, JobPriority::Normal))
        .await
        .expect("submit");
    let (_, old_lease) = backend
        .claim("dies", &BOTH, Duration::from_millis(200), SHORT_WAIT)
        .await
        .expect("claim")
        .expect("a job");
    for (from, to) in [
        (JobState::Starting, JobState::Recording),
        (JobState::Recording, JobState::Finalizing),
        (JobState::Finalizing, JobState::Uploading),
    ] {
        backend
            .transition_job(job.id, from, to, Some(&old_lease), None)
            .await
            .expect("walk to uploading");
    }
    let mut delivery = JobDelivery::pending([1, 2, 3], None);
    delivery.set_part_state(
        1,
        PartDeliveryState::Sent {
            message_id: 77,
            file_id: Some("FILE-77".to_string()),
        },
    );
    delivery.set_part_state(
        2,
        PartDeliveryState::Sending {
            started_at: chrono::Utc::now(),
        },
    );
    let written = backend
        .record_delivery(&old_lease, delivery.clone())
        .await
        .expect("the holder records");
    assert_eq!(written.delivery.as_ref(), Some(&delivery));
    let status = StatusMessageRef::new(30, 5);
    backend
        .set_status_message(job.id, Some(status))
        .await
        .expect("status message");

    tokio::time::sleep(Duration::from_millis(1300)).await;
    let reaped = backend.reap_expired_leases().await.expect("reap");
    assert_eq!(reaped, vec![job.id]);
    let requeued = backend.get_job(job.id).await.expect("get").expect("exists");
    assert_eq!(
        requeued.state,
        JobState::Queued,
        "delivery resumes, the job does not fail"
    );
    assert_eq!(requeued.delivery.as_ref(), Some(&delivery));
    assert_eq!(requeued.status_message, Some(status));

    let (resumed, new_lease) = backend
        .claim("survivor", &BOTH, LEASE, Duration::from_secs(2))
        .await
        .expect("claim")
        .expect("the reaped job");
    assert_eq!(
        resumed
            .delivery
            .as_ref()
            .and_then(JobDelivery::next_part_to_send),
        Some(2),
        "part 1 is not sent again"
    );
    let lost = backend
        .record_delivery(&old_lease, JobDelivery::default())
        .await
        .expect_err("fenced");
    assert!(matches!(lost, JobsError::LeaseLost { .. }), "{lost:?}");
    backend
        .transition_job(
            job.id,
            JobState::Starting,
            JobState::Uploading,
            Some(&new_lease),
            None,
        )
        .await
        .expect("straight back to uploading");
    delivery.set_part_state(
        2,
        PartDeliveryState::Sent {
            message_id: 78,
            file_id: None,
        },
    );
    delivery.set_part_state(
        3,
        PartDeliveryState::Failed {
            reason: "too large".to_string(),
            attempts: 1,
            retryable: false,
        },
    );
    delivery.summary_sent = true;
    backend
        .record_delivery(&new_lease, delivery.clone())
        .await
        .expect("the new holder records");
    backend
        .transition_job(
            job.id,
            JobState::Uploading,
            JobState::Completed,
            Some(&new_lease),
            None,
        )
        .await
        .expect("completed");
    let done = backend.get_job(job.id).await.expect("get").expect("exists");
    assert_eq!(done.delivery, Some(delivery));
    assert_eq!(done.status_message, Some(status));
    backend
        .set_status_message(job.id, None)
        .await
        .expect("cleared");
}

/// A job lost while storing its files (`Uploading`, no delivery record yet) is requeued, not
/// failed: the next worker stores the files its finalize left (`finalize-pending`).
async fn a_job_lost_while_storing_is_requeued<B: JobBackend>(backend: B) {
    let job = submit_job(&backend, request(4, JobPriority::Normal))
        .await
        .expect("submit");
    let (_, lease) = backend
        .claim("dies", &BOTH, Duration::from_millis(200), SHORT_WAIT)
        .await
        .expect("claim")
        .expect("a job");
    for (from, to) in [
        (JobState::Starting, JobState::Recording),
        (JobState::Recording, JobState::Finalizing),
        (JobState::Finalizing, JobState::Uploading),
    ] {
        backend
            .transition_job(job.id, from, to, Some(&lease), None)
            .await
            .expect("walk to uploading");
    }
    tokio::time::sleep(Duration::from_millis(1300)).await;
    backend.reap_expired_leases().await.expect("reap");
    let requeued = backend.get_job(job.id).await.expect("get").expect("exists");
    assert_eq!(requeued.state, JobState::Queued);
    assert_eq!(requeued.error, None);
}

/// Issue 13 item 7: a finalize interrupted by a shutdown gives the job back (`Finalizing →
/// Queued`), and a worker lost while finalizing is reaped back to the queue, not failed: the next
/// worker finalizes the same parts.
async fn a_job_lost_or_released_while_finalizing_is_requeued<B: JobBackend>(backend: B) {
    let job = submit_job(&backend, request(5, JobPriority::Normal))
        .await
        .expect("submit");
    for (round, worker) in ["stops", "dies"].into_iter().enumerate() {
        let lease_duration = if round == 0 {
            LEASE
        } else {
            Duration::from_millis(200)
        };
        let (_, lease) = backend
            .claim(worker, &BOTH, lease_duration, LEASE)
            .await
            .expect("claim")
            .expect("the job");
        for (from, to) in [
            (JobState::Starting, JobState::Recording),
            (JobState::Recording, JobState::Finalizing),
        ] {
            backend
                .transition_job(job.id, from, to, Some(&lease), None)
                .await
                .expect("walk to finalizing");
        }
        if round == 0 {
            backend.release(&lease).await.expect("given back");
        } else {
            tokio::time::sleep(Duration::from_millis(1300)).await;
            let reaped = backend.reap_expired_leases().await.expect("reap");
            assert_eq!(reaped, vec![job.id]);
        }
        let requeued = backend.get_job(job.id).await.expect("get").expect("exists");
        assert_eq!(requeued.state, JobState::Queued, "{worker}");
        assert_eq!(requeued.error, None, "{worker}");
    }
    let (_, lease) = backend
        .claim("survivor", &BOTH, LEASE, LEASE)
        .await
        .expect("claim")
        .expect("claimable again");
    assert_eq!(lease.fencing_epoch, 4, "three claims and a reap");
}

/// Waits (bounded) for an event the predicate accepts; the others are skipped.
async fn expect_event(
    events: &mut tokio::sync::broadcast::Receiver<JobEvent>,
    what: &str,
    accept: impl Fn(&JobEvent) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(event)) if accept(&event) => return,
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(error)) => panic!("{what}: the events ended: {error}"),
            Err(_) => panic!("{what}: no such event within 10 s"),
        }
    }
}

/// A job walked to `Uploading` under a fresh lease.
async fn job_in_uploading<B: JobBackend>(
    backend: &B,
    user_id: i64,
) -> (streambot_core::Job, Lease) {
    let job = submit_job(backend, request(user_id, JobPriority::Normal))
        .await
        .expect("submit");
    let (_, lease) = backend
        .claim("worker", &BOTH, LEASE, Duration::from_secs(2))
        .await
        .expect("claim")
        .expect("a job");
    for (from, to) in [
        (JobState::Starting, JobState::Recording),
        (JobState::Recording, JobState::Finalizing),
        (JobState::Finalizing, JobState::Uploading),
    ] {
        backend
            .transition_job(job.id, from, to, Some(&lease), None)
            .await
            .expect("walk to uploading");
    }
    (job, lease)
}

/// Every record change a reader acts on is published: waiting for live (a progress event),
/// the delivery record, the status message, a deletion of the files.
async fn record_changes_are_published<B: JobBackend>(backend: B) {
    let mut events = backend.subscribe_events();
    let job = submit_job(&backend, request(5, JobPriority::Normal))
        .await
        .expect("submit");
    let (_, lease) = backend
        .claim("worker", &BOTH, LEASE, Duration::from_secs(2))
        .await
        .expect("claim")
        .expect("a job");
    let waiting = WaitingForLive {
        next_check_at: chrono::Utc::now() + chrono::Duration::seconds(30),
    };
    backend
        .set_waiting_for_live(&lease, Some(waiting.clone()))
        .await
        .expect("waiting");
    expect_event(
        &mut events,
        "waiting for live",
        |event| matches!(event, JobEvent::Progress { job_id, .. } if *job_id == job.id),
    )
    .await;
    let stored = backend.get_job(job.id).await.expect("get").expect("exists");
    assert_eq!(stored.waiting_for_live, Some(waiting));
    let stranger = Lease {
        worker_id: "someone-else".to_string(),
        ..lease.clone()
    };
    let refused = backend
        .set_waiting_for_live(&stranger, None)
        .await
        .expect_err("fenced");
    assert!(
        matches!(refused, JobsError::LeaseLost { .. }),
        "{refused:?}"
    );

    let status = StatusMessageRef::new(50, 9);
    let with_status = backend
        .set_status_message(job.id, Some(status))
        .await
        .expect("status message");
    assert_eq!(with_status.status_message, Some(status));
    expect_event(&mut events, "status message", |event| {
        matches!(event, JobEvent::StatusMessageChanged { job_id, status_message: Some(message), .. }
            if *job_id == job.id && *message == status)
    })
    .await;
    let missing = backend
        .set_status_message(streambot_core::JobId::from_u32(0x0BAD_0BAD), Some(status))
        .await
        .expect_err("no such job");
    assert!(
        matches!(missing, JobsError::JobNotFound { .. }),
        "{missing:?}"
    );

    let delivery = JobDelivery::pending([1], None);
    let recorded = backend
        .record_delivery(&lease, delivery.clone())
        .await
        .expect("delivery");
    assert_eq!(recorded.delivery, Some(delivery.clone()));
    expect_event(
        &mut events,
        "delivery",
        |event| matches!(event, JobEvent::DeliveryChanged { job_id, .. } if *job_id == job.id),
    )
    .await;
    let refused = backend
        .record_delivery(&stranger, delivery)
        .await
        .expect_err("fenced");
    assert!(
        matches!(refused, JobsError::LeaseLost { .. }),
        "{refused:?}"
    );

    backend
        .record_recording_deleted(job.id, "retention period over".to_string())
        .await
        .expect("deleted");
    let again = backend
        .record_recording_deleted(job.id, "disk almost full".to_string())
        .await
        .expect("deleted again");
    assert_eq!(
        again.recording_deleted.map(|deletion| deletion.reason),
        Some("retention period over".to_string()),
        "the first deletion is kept"
    );
    expect_event(
        &mut events,
        "deletion",
        |event| matches!(event, JobEvent::RecordingDeleted { job_id, .. } if *job_id == job.id),
    )
    .await;
}

/// A delivery with part `failed` failed (transiently) and the others sent, summary out.
fn delivery_with_a_failed_part(part_numbers: &[u32], failed: u32) -> JobDelivery {
    let mut delivery = JobDelivery::pending(part_numbers.iter().copied(), None);
    for &part_number in part_numbers {
        let state = if part_number == failed {
            PartDeliveryState::Failed {
                reason: "network".to_string(),
                attempts: 5,
                retryable: true,
            }
        } else {
            PartDeliveryState::Sent {
                message_id: 70 + i64::from(part_number),
                file_id: None,
            }
        };
        delivery.set_part_state(part_number, state);
    }
    delivery.summary_sent = true;
    delivery
}

/// The holder records the delivery, then `Uploading → Completed` and completes.
async fn complete_with_delivery<B: JobBackend>(
    backend: &B,
    job_id: streambot_core::JobId,
    lease: &Lease,
    delivery: JobDelivery,
) {
    backend
        .record_delivery(lease, delivery)
        .await
        .expect("delivery");
    backend
        .transition_job(
            job_id,
            JobState::Uploading,
            JobState::Completed,
            Some(lease),
            None,
        )
        .await
        .expect("completed");
    backend.complete(lease).await.expect("complete");
}

/// "Send again": failed parts pending again, the job back in its queue once; a second request
/// while one is pending changes nothing; the next claim resumes the delivery; deleted files and
/// running jobs are told apart.
async fn redelivery_is_queued_once_and_resumed<B: JobBackend>(backend: B) {
    let (job, lease) = job_in_uploading(&backend, 6).await;
    let (_, outcome) = backend.request_redelivery(job.id).await.expect("request");
    assert_eq!(outcome, RedeliveryOutcome::NotFinished);
    complete_with_delivery(
        &backend,
        job.id,
        &lease,
        delivery_with_a_failed_part(&[1, 2], 2),
    )
    .await;

    let (requested, outcome) = backend.request_redelivery(job.id).await.expect("request");
    assert_eq!(outcome, RedeliveryOutcome::Requested);
    assert_eq!(requested.state, JobState::Queued);
    let requested_delivery = requested.delivery.expect("delivery");
    assert!(requested_delivery.redelivery_requested);
    assert_eq!(requested_delivery.next_part_to_send(), Some(2));
    let (_, outcome) = backend.request_redelivery(job.id).await.expect("tap again");
    assert_eq!(outcome, RedeliveryOutcome::AlreadyPending);

    let (claimed, new_lease) = backend
        .claim("another", &BOTH, LEASE, Duration::from_secs(2))
        .await
        .expect("claim")
        .expect("the job, queued once");
    assert_eq!(claimed.id, job.id);
    assert!(
        backend
            .claim("third", &BOTH, LEASE, SHORT_WAIT)
            .await
            .expect("claim")
            .is_none(),
        "queued once"
    );
    let (_, outcome) = backend.request_redelivery(job.id).await.expect("tap again");
    assert_eq!(outcome, RedeliveryOutcome::AlreadyPending);
    backend
        .transition_job(
            job.id,
            JobState::Starting,
            JobState::Uploading,
            Some(&new_lease),
            None,
        )
        .await
        .expect("straight to uploading");
    let mut resent = claimed.delivery.expect("delivery");
    resent.redelivery_requested = false;
    resent.set_part_state(
        2,
        PartDeliveryState::Sent {
            message_id: 71,
            file_id: None,
        },
    );
    resent.summary_sent = true;
    complete_with_delivery(&backend, job.id, &new_lease, resent).await;
    let (_, outcome) = backend.request_redelivery(job.id).await.expect("request");
    assert_eq!(outcome, RedeliveryOutcome::NothingToSendAgain);

    // Files deleted by retention: said, nothing queued.
    let (gone, gone_lease) = job_in_uploading(&backend, 7).await;
    complete_with_delivery(
        &backend,
        gone.id,
        &gone_lease,
        delivery_with_a_failed_part(&[1], 1),
    )
    .await;
    backend
        .record_recording_deleted(gone.id, "retention period over".to_string())
        .await
        .expect("deleted");
    let (unchanged, outcome) = backend.request_redelivery(gone.id).await.expect("request");
    assert_eq!(outcome, RedeliveryOutcome::FilesDeleted);
    assert_eq!(unchanged.state, JobState::Completed);
    assert!(
        backend
            .claim("worker", &BOTH, LEASE, SHORT_WAIT)
            .await
            .expect("claim")
            .is_none(),
        "nothing queued for deleted files"
    );
}

macro_rules! contract_tests {
    ($($case:ident),* $(,)?) => {
        mod sqlite_backend {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let (backend, _directory) = sqlite_backend_for_test().await;
                    super::$case(backend).await;
                }
            )*
        }
        mod redis_backend {
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let Some(backend) = redis_backend_for_test().await else { return };
                    super::$case(backend).await;
                }
            )*
        }
    };
}

contract_tests!(
    create_get_and_list,
    transition_is_compare_and_set,
    claims_one_at_a_time_priority_first,
    a_worker_serves_only_its_queues,
    a_waiting_claim_wakes_on_push,
    lapsed_leases_are_reaped_and_fenced,
    renewal_carries_the_desired_state,
    a_heartbeat_renews_all_leases_at_once,
    a_heartbeat_of_a_thousand_leases_fences_each_job_on_its_own,
    stopping_a_queued_job_cancels_it,
    retries_then_dead_letters,
    a_retry_waits_for_its_backoff,
    release_and_complete,
    concurrent_claimers_take_each_job_once,
    the_lock_has_one_holder_until_it_expires,
    a_failure_keeps_its_class,
    user_preferences_are_kept_per_user,
    create_queued_job_is_claimable_at_once,
    delivery_is_recorded_fenced_and_resumed,
    record_changes_are_published,
    redelivery_is_queued_once_and_resumed,
    a_job_lost_while_storing_is_requeued,
    a_job_lost_or_released_while_finalizing_is_requeued,
    jobs_are_counted_by_state,
);

/// Issue 13 item 3. The creator died between create and push (the bot announces a job before it
/// pushes it): the reaper puts the job in its queue once it is older than the grace, and never
/// before, so the creator's own push keeps its order.
async fn a_job_created_but_never_pushed_is_queued_by_the_reaper<B: JobBackend>(
    backend: B,
    grace: Duration,
) {
    let orphan = backend
        .create_job(request(7, JobPriority::Normal))
        .await
        .expect("create, then the creator dies");
    assert!(
        backend
            .claim("worker", &BOTH, LEASE, SHORT_WAIT)
            .await
            .expect("claim")
            .is_none(),
        "an unpushed job is not claimable"
    );
    tokio::time::sleep(grace + Duration::from_millis(50)).await;
    let requeued = backend.reap_expired_leases().await.expect("reap");
    assert_eq!(requeued, vec![orphan.id]);
    let (claimed, _) = backend
        .claim("worker", &BOTH, LEASE, Duration::from_secs(2))
        .await
        .expect("claim")
        .expect("the orphan, queued again");
    assert_eq!(claimed.id, orphan.id);
    assert_nothing_to_reap(&backend, "requeued once").await;
    // A job whose creator is alive and pushes it is not pushed a second time by the reaper.
    let announced = backend
        .create_job(request(8, JobPriority::Normal))
        .await
        .expect("create");
    backend
        .push(announced.id, announced.priority)
        .await
        .expect("push");
    tokio::time::sleep(grace + Duration::from_millis(50)).await;
    assert_nothing_to_reap(&backend, "a pushed job is not pushed again").await;
}

async fn assert_nothing_to_reap<B: JobBackend>(backend: &B, why: &str) {
    let reaped = backend.reap_expired_leases().await.expect("reap");
    assert!(reaped.is_empty(), "{why}: {reaped:?}");
}

/// `submit_job` is one step: the job is claimable the moment it exists.
async fn create_queued_job_is_claimable_at_once<B: JobBackend>(backend: B) {
    let job = backend
        .create_queued_job(request(9, JobPriority::Priority))
        .await
        .expect("create queued");
    assert_eq!(job.state, JobState::Queued);
    let (claimed, _) = backend
        .claim("worker", &BOTH, LEASE, SHORT_WAIT)
        .await
        .expect("claim")
        .expect("the job");
    assert_eq!(claimed.id, job.id);
    assert_nothing_to_reap(&backend, "nothing was left unqueued").await;
}

/// The store's per-state counts are the jobs' states, through creation, claims, every kind of
/// transition (compare-and-set refused ones included), retries and dead letters.
async fn jobs_are_counted_by_state<B: JobBackend>(backend: B) {
    async fn assert_counts_match<B: JobBackend>(backend: &B, step: &str) {
        let counted = backend.count_jobs_by_state().await.expect("count");
        let every_job = backend.list_jobs(JobFilter::default()).await.expect("list");
        assert_eq!(counted, JobStateCounts::of_jobs(&every_job), "{step}");
        assert_eq!(counted.total() as usize, every_job.len(), "{step}");
    }
    assert_eq!(
        backend.count_jobs_by_state().await.expect("count"),
        JobStateCounts::default(),
        "an empty store"
    );
    let mut created = Vec::new();
    for user_id in 0..5 {
        created.push(
            backend
                .create_queued_job(request(user_id, JobPriority::Normal))
                .await
                .expect("create"),
        );
    }
    let unpushed = backend
        .create_job(request(9, JobPriority::Normal))
        .await
        .expect("create");
    assert_counts_match(&backend, "created").await;
    assert_eq!(
        backend
            .count_jobs_by_state()
            .await
            .expect("count")
            .count(JobState::Queued),
        6
    );
    let (first, first_lease) = backend
        .claim("worker", &BOTH, LEASE, SHORT_WAIT)
        .await
        .expect("claim")
        .expect("a job");
    let (second, second_lease) = backend
        .claim("worker", &BOTH, LEASE, SHORT_WAIT)
        .await
        .expect("claim")
        .expect("a job");
    assert_counts_match(&backend, "two claimed").await;
    backend
        .transition_job(
            first.id,
            first.state,
            JobState::Recording,
            Some(&first_lease),
            None,
        )
        .await
        .expect("recording");
    // A refused compare-and-set changes no count.
    assert!(
        backend
            .transition_job(
                second.id,
                JobState::Recording,
                JobState::Finalizing,
                None,
                None
            )
            .await
            .is_err()
    );
    backend
        .transition_job(
            unpushed.id,
            JobState::Queued,
            JobState::Cancelled,
            None,
            None,
        )
        .await
        .expect("cancel");
    assert_counts_match(&backend, "recording, refused, cancelled").await;
    backend
        .retry(
            &second_lease,
            "trouble".to_string(),
            FailureKind::default(),
            Duration::ZERO,
        )
        .await
        .expect("retry");
    assert_counts_match(&backend, "retried").await;
    backend
        .fail_job(
            first.id,
            JobState::Recording,
            Some(&first_lease),
            "broken".to_string(),
            FailureKind::default(),
        )
        .await
        .expect("failed");
    assert_counts_match(&backend, "failed").await;
    let renewals = [LeaseRenewal {
        lease: first_lease.clone(),
        progress: None,
    }];
    let _ = backend.renew_leases(&renewals, LEASE).await;
    assert_counts_match(&backend, "renewed").await;
    assert_eq!(
        backend.count_jobs_by_state().await.expect("count").total(),
        created.len() as u64 + 1
    );
}

/// A Redis store written before the counts existed is counted once at connect.
#[tokio::test]
async fn redis_counts_a_store_written_before_the_counts_at_connect() {
    let Some(url) = common::redis_url_for_test() else {
        return;
    };
    let prefix = common::random_prefix();
    let first = streambot_store::RedisBackend::connect(&url, &prefix)
        .await
        .expect("connect");
    for user_id in 0..4 {
        first
            .create_queued_job(request(user_id, JobPriority::Normal))
            .await
            .expect("create");
    }
    let (claimed, _) = first
        .claim("worker", &BOTH, LEASE, SHORT_WAIT)
        .await
        .expect("claim")
        .expect("a job");
    let client = redis::Client::open(url.as_str()).expect("url");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let _: i64 = redis::cmd("DEL")
        .arg(format!("{prefix}state_counts"))
        .arg(format!("{prefix}state_counts:built"))
        .query_async(&mut connection)
        .await
        .expect("forget the counts");
    let second = streambot_store::RedisBackend::connect(&url, &prefix)
        .await
        .expect("connect again");
    let counts = second.count_jobs_by_state().await.expect("count");
    assert_eq!(counts.count(JobState::Queued), 3);
    assert_eq!(counts.count(claimed.state), 1);
    assert_eq!(counts.total(), 4);
    second.delete_all_keys().await.expect("clean up");
}

const TEST_UNQUEUED_GRACE: Duration = Duration::from_millis(300);

#[tokio::test]
async fn sqlite_backend_requeues_a_job_never_pushed() {
    let (backend, _directory) = sqlite_backend_for_test().await;
    let backend = backend.with_unqueued_job_grace(TEST_UNQUEUED_GRACE);
    a_job_created_but_never_pushed_is_queued_by_the_reaper(backend, TEST_UNQUEUED_GRACE).await;
}

#[tokio::test]
async fn redis_backend_requeues_a_job_never_pushed() {
    let Some(backend) = redis_backend_for_test().await else {
        return;
    };
    let backend = backend.with_unqueued_job_grace(TEST_UNQUEUED_GRACE);
    a_job_created_but_never_pushed_is_queued_by_the_reaper(backend, TEST_UNQUEUED_GRACE).await;
}
