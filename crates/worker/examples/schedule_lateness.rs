//! How late scheduled recordings start (issue 16 item 2: "within 5 s of its time"): N one-time
//! schedules due over the next ten seconds, taken by two schedule runners side by side (as two
//! `streambot run`/`scheduler` processes) polling at the default interval, first over SQLite
//! and then over Redis in the same invocation. Prints, per store, the lateness of each start
//! (from the occurrence's time to the moment the pass that created its job returned: median,
//! p95, max), how many jobs were started (every schedule exactly once), and each pass's store
//! time.
//!
//! `cargo run --release -p streambot-worker --example schedule_lateness -- 1000`
//! (`REDIS_URL`, default redis://127.0.0.1:6379/, a random key prefix, removed at the end).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::{Timelike, Utc};
use streambot_core::{
    JobOwner, JobPriority, NewSchedule, RecordingOptions, Recurrence, ScheduleRule,
};
use streambot_store::{RedisBackend, ScheduleCreation, ScheduleStore, SqliteBackend};
use streambot_worker::{DEFAULT_SCHEDULE_POLL_INTERVAL, run_schedule_pass};

const RUNNERS: usize = 2;
const SPREAD_SECONDS: i64 = 10;
/// The first occurrence is this far ahead, plus 10 ms per schedule for creating them all first.
const FIRST_DUE_AFTER_SECONDS: i64 = 5;

struct Figures {
    lateness_seconds: Vec<f64>,
    pass_seconds: Vec<f64>,
    started: usize,
    duplicates: usize,
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn create_schedules<B: ScheduleStore>(backend: &B, count: usize) -> Instant {
    let lead_in = FIRST_DUE_AFTER_SECONDS + count as i64 / 100;
    let base = Utc::now() + chrono::Duration::seconds(lead_in);
    for index in 0..count {
        let at = base + chrono::Duration::seconds(index as i64 % SPREAD_SECONDS);
        let user_id = 1_000 + (index as i64 % 50);
        let creation = backend
            .create_schedule(
                NewSchedule {
                    owner: JobOwner {
                        user_id,
                        chat_id: user_id,
                    },
                    url: format!("https://example.com/channel-{index}/live.m3u8"),
                    options: RecordingOptions::default(),
                    priority: JobPriority::Normal,
                    rule: ScheduleRule {
                        time_zone: "UTC".to_string(),
                        start_date: at.date_naive(),
                        time_of_day: at.time().with_nanosecond(0).expect("a whole second"),
                        recurrence: Recurrence::Once,
                    },
                    duration: Duration::from_secs(600),
                    lead: Duration::ZERO,
                },
                None,
            )
            .await
            .expect("create a schedule");
        assert!(matches!(creation, ScheduleCreation::Created(_)));
    }
    let first_due = (base - Utc::now()).to_std().unwrap_or_default();
    assert!(
        first_due > Duration::ZERO,
        "creating the schedules took past the first one"
    );
    Instant::now() + first_due
}

async fn run_passes<B: ScheduleStore + Clone + 'static>(
    backend: B,
    count: usize,
    first_due: Instant,
) -> Figures {
    let deadline = first_due + Duration::from_secs(SPREAD_SECONDS as u64 + 10);
    let mut runners = Vec::new();
    for runner in 0..RUNNERS {
        let backend = backend.clone();
        runners.push(tokio::spawn(async move {
            // The second runner polls half an interval later, as an unsynchronised process would.
            tokio::time::sleep(DEFAULT_SCHEDULE_POLL_INTERVAL * runner as u32 / RUNNERS as u32)
                .await;
            let mut ticker = tokio::time::interval(DEFAULT_SCHEDULE_POLL_INTERVAL);
            let mut lateness = Vec::new();
            let mut passes = Vec::new();
            let mut jobs = Vec::new();
            while Instant::now() < deadline {
                ticker.tick().await;
                let started = Instant::now();
                let taken = run_schedule_pass(&backend).await.expect("a pass");
                passes.push(started.elapsed().as_secs_f64());
                let now = Utc::now();
                for schedule in taken {
                    if let (Some(job), Some(occurrence)) = (schedule.job, schedule.decision.start) {
                        lateness.push(
                            (now - occurrence.scheduled_at)
                                .to_std()
                                .unwrap_or_default()
                                .as_secs_f64(),
                        );
                        jobs.push(job.id);
                    }
                }
            }
            (lateness, passes, jobs)
        }));
    }
    let mut figures = Figures {
        lateness_seconds: Vec::new(),
        pass_seconds: Vec::new(),
        started: 0,
        duplicates: 0,
    };
    let mut seen = HashSet::new();
    for runner in runners {
        let (lateness, passes, jobs) = runner.await.expect("a runner");
        figures.lateness_seconds.extend(lateness);
        figures.pass_seconds.extend(passes);
        for job in jobs {
            if !seen.insert(job) {
                figures.duplicates += 1;
            }
        }
    }
    figures.started = seen.len();
    assert!(figures.started <= count);
    figures
}

fn print(store: &str, count: usize, figures: &mut Figures) {
    figures.lateness_seconds.sort_by(f64::total_cmp);
    figures.pass_seconds.sort_by(f64::total_cmp);
    println!(
        "{store:>6}: {count} schedules, {started} started, {duplicates} twice; lateness median {median:.2} s, p95 {p95:.2} s, max {max:.2} s ({ratio:.2}x the 5 s bound); pass median {pass_median:.1} ms, max {pass_max:.1} ms ({passes} passes, {RUNNERS} runners, every {interval:?})",
        started = figures.started,
        duplicates = figures.duplicates,
        median = percentile(&figures.lateness_seconds, 0.5),
        p95 = percentile(&figures.lateness_seconds, 0.95),
        max = percentile(&figures.lateness_seconds, 1.0),
        ratio = percentile(&figures.lateness_seconds, 1.0) / 5.0,
        pass_median = percentile(&figures.pass_seconds, 0.5) * 1000.0,
        pass_max = percentile(&figures.pass_seconds, 1.0) * 1000.0,
        passes = figures.pass_seconds.len(),
        interval = DEFAULT_SCHEDULE_POLL_INTERVAL,
    );
}

#[tokio::main]
async fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|text| text.parse().ok())
        .unwrap_or(1_000);

    let directory = tempfile::tempdir().expect("tempdir");
    let sqlite = SqliteBackend::open_in_data_directory(directory.path())
        .await
        .expect("sqlite");
    let first_due = create_schedules(&sqlite, count).await;
    let mut figures = run_passes(sqlite, count, first_due).await;
    print("sqlite", count, &mut figures);

    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let prefix = format!("bench-schedules-{}:", rand::random::<u32>());
    let redis = RedisBackend::connect(&url, &prefix).await.expect("redis");
    let first_due = create_schedules(&redis, count).await;
    let mut figures = run_passes(redis.clone(), count, first_due).await;
    print("redis", count, &mut figures);
    redis.delete_all_keys().await.expect("clean up");
}
