//! The schedule part of the contract, run against both backends: create with a per-user cap,
//! list, cancel by owner or admin, and taking due occurrences exactly once even with two
//! schedulers taking at the same time.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use common::{redis_backend_for_test, sqlite_backend_for_test};
use streambot_core::{
    JobOwner, JobPriority, JobState, NewSchedule, RecordingOptions, Recurrence, ScheduleRule,
};
use streambot_store::{
    JobBackend, ScheduleCanceller, ScheduleCreation, ScheduleStore, TakenSchedule,
};

use common::BOTH;

/// A daily schedule in UTC whose occurrence is `seconds_ahead` from `now`, started a minute
/// early: due at once when `seconds_ahead` is under the lead.
fn daily_schedule(user_id: i64, now: DateTime<Utc>, seconds_ahead: i64) -> NewSchedule {
    let occurrence = now + chrono::Duration::seconds(seconds_ahead);
    NewSchedule {
        owner: JobOwner {
            user_id,
            chat_id: user_id,
        },
        url: format!("https://example.com/{user_id}/live.m3u8"),
        options: RecordingOptions::default(),
        priority: JobPriority::Normal,
        rule: ScheduleRule {
            time_zone: "UTC".to_string(),
            start_date: occurrence.date_naive(),
            time_of_day: occurrence.time().with_nanosecond(0).expect("time"),
            recurrence: Recurrence::Daily,
        },
        duration: Duration::from_secs(600),
        lead: Duration::from_secs(60),
    }
}

fn created(creation: ScheduleCreation) -> streambot_core::Schedule {
    match creation {
        ScheduleCreation::Created(schedule) => *schedule,
        ScheduleCreation::TooMany { limit } => panic!("refused at {limit}"),
    }
}

async fn create_list_cancel_and_cap<B: JobBackend + ScheduleStore>(backend: B) {
    let now = Utc::now();
    let first = created(
        backend
            .create_schedule(daily_schedule(1, now, 3600), Some(2))
            .await
            .expect("create"),
    );
    let second = created(
        backend
            .create_schedule(daily_schedule(1, now, 7200), Some(2))
            .await
            .expect("create"),
    );
    let refused = backend
        .create_schedule(daily_schedule(1, now, 7200), Some(2))
        .await
        .expect("create");
    assert_eq!(refused, ScheduleCreation::TooMany { limit: 2 });
    created(
        backend
            .create_schedule(daily_schedule(1, now, 7200), None)
            .await
            .expect("an admin has no cap"),
    );
    let other = created(
        backend
            .create_schedule(daily_schedule(2, now, 60), Some(2))
            .await
            .expect("create"),
    );
    let mine = backend.list_schedules_for_user(1).await.expect("list");
    assert_eq!(mine.len(), 3);
    assert_eq!(mine.first().map(|schedule| schedule.id), Some(first.id));
    assert_eq!(backend.list_schedules(100).await.expect("all").len(), 4);
    assert_eq!(
        backend.get_schedule(second.id).await.expect("get").as_ref(),
        Some(&second)
    );

    assert!(
        backend
            .cancel_schedule(other.id, ScheduleCanceller::Owner(1))
            .await
            .expect("cancel")
            .is_none(),
        "someone else's schedule is not mine to cancel"
    );
    let cancelled = backend
        .cancel_schedule(first.id, ScheduleCanceller::Owner(1))
        .await
        .expect("cancel")
        .expect("cancelled");
    assert!(!cancelled.is_active());
    assert!(
        backend
            .cancel_schedule(first.id, ScheduleCanceller::Owner(1))
            .await
            .expect("cancel")
            .is_none(),
        "already cancelled"
    );
    backend
        .cancel_schedule(other.id, ScheduleCanceller::Admin)
        .await
        .expect("cancel")
        .expect("an admin cancels anyone's");
    assert_eq!(
        backend
            .list_schedules_for_user(1)
            .await
            .expect("list")
            .len(),
        2
    );
    // The cap counts active schedules only.
    created(
        backend
            .create_schedule(daily_schedule(1, now, 7200), Some(3))
            .await
            .expect("room again"),
    );
    // A cancelled schedule is never due.
    let taken = backend
        .take_due_schedules(now + chrono::Duration::hours(30))
        .await
        .expect("take");
    assert!(taken.iter().all(|taken| taken.schedule.id != first.id));
    assert!(taken.iter().all(|taken| taken.schedule.id != other.id));
}

async fn a_due_occurrence_becomes_one_queued_job<B: JobBackend + ScheduleStore>(backend: B) {
    let now = Utc::now();
    let schedule = created(
        backend
            .create_schedule(daily_schedule(5, now, 30), Some(20))
            .await
            .expect("create"),
    );
    assert!(
        backend
            .take_due_schedules(now - chrono::Duration::minutes(5))
            .await
            .expect("take")
            .is_empty()
    );
    let taken = backend.take_due_schedules(now).await.expect("take");
    assert_eq!(taken.len(), 1);
    let TakenSchedule {
        schedule: advanced,
        job,
        ..
    } = taken.into_iter().next().expect("one");
    let job = job.expect("a job");
    assert_eq!(advanced.occurrences_started, 1);
    assert_eq!(advanced.last_job_id, Some(job.id));
    assert_eq!(
        advanced.next_occurrence_at,
        schedule
            .next_occurrence_at
            .map(|at| at + chrono::Duration::days(1))
    );
    assert_eq!(
        job.scheduled.as_ref().map(|s| s.schedule_id),
        Some(schedule.id)
    );
    assert_eq!(job.options.maximum_duration, Some(Duration::from_secs(600)));
    assert!(
        backend
            .take_due_schedules(now)
            .await
            .expect("again")
            .is_empty()
    );
    let stored = backend.get_job(job.id).await.expect("get").expect("stored");
    assert_eq!(stored.state, JobState::Queued);
    let (claimed, _) = backend
        .claim(
            "worker",
            &BOTH,
            Duration::from_secs(30),
            Duration::from_secs(2),
        )
        .await
        .expect("claim")
        .expect("the occurrence's job is queued");
    assert_eq!(claimed.id, job.id);
}

async fn two_schedulers_take_each_occurrence_once<B: JobBackend + ScheduleStore>(backend: B) {
    let now = Utc::now();
    let mut identifiers = HashSet::new();
    for user_id in 0..10 {
        let schedule = created(
            backend
                .create_schedule(daily_schedule(100 + user_id, now, 10), None)
                .await
                .expect("create"),
        );
        identifiers.insert(schedule.id);
    }
    let (first, second) = tokio::join!(
        backend.take_due_schedules(now),
        backend.take_due_schedules(now)
    );
    let jobs: Vec<_> = first
        .expect("first taker")
        .into_iter()
        .chain(second.expect("second taker"))
        .filter_map(|taken| taken.job.map(|job| (taken.schedule.id, job.id)))
        .collect();
    assert_eq!(jobs.len(), 10, "one job per occurrence: {jobs:?}");
    assert_eq!(
        jobs.iter()
            .map(|(schedule, _)| *schedule)
            .collect::<HashSet<_>>(),
        identifiers
    );
    let mut claimed = HashSet::new();
    while let Some((job, _)) = backend
        .claim(
            "worker",
            &BOTH,
            Duration::from_secs(30),
            Duration::from_millis(300),
        )
        .await
        .expect("claim")
    {
        claimed.insert(job.id);
    }
    assert_eq!(claimed.len(), 10, "ten jobs queued, no more");
}

#[tokio::test]
async fn sqlite_schedules_create_list_cancel_and_cap() {
    let (backend, _directory) = sqlite_backend_for_test().await;
    create_list_cancel_and_cap(backend).await;
}

#[tokio::test]
async fn redis_schedules_create_list_cancel_and_cap() {
    let Some(backend) = redis_backend_for_test().await else {
        return;
    };
    create_list_cancel_and_cap(backend).await;
}

#[tokio::test]
async fn sqlite_due_occurrence_becomes_one_queued_job() {
    let (backend, _directory) = sqlite_backend_for_test().await;
    a_due_occurrence_becomes_one_queued_job(backend).await;
}

#[tokio::test]
async fn redis_due_occurrence_becomes_one_queued_job() {
    let Some(backend) = redis_backend_for_test().await else {
        return;
    };
    a_due_occurrence_becomes_one_queued_job(backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_two_schedulers_take_each_occurrence_once() {
    let (backend, _directory) = sqlite_backend_for_test().await;
    two_schedulers_take_each_occurrence_once(backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_two_schedulers_take_each_occurrence_once() {
    let Some(backend) = redis_backend_for_test().await else {
        return;
    };
    two_schedulers_take_each_occurrence_once(backend).await;
}
