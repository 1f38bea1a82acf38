//! The store at scale (issue 14 item 4): 100,000 jobs in SQLite and in Redis, then the operations
//! a busy deployment repeats, each timed (median of `ROUNDS`):
//! - list: the newest-first page of 50 (dashboard, admin), a user's 50 newest (`/list`), the live
//!   jobs (the dashboard's live view, the bot's "recording now");
//! - submit (create + enqueue) and claim with 100,000 jobs stored;
//! - renew: one heartbeat for 1,000 leases, as `renew_lease` × 1,000 and as one `renew_leases`;
//! - jobs per state (the bot's `/stats`, the dashboard's `/stats` and `/metrics`): the store's
//!   `count_jobs_by_state` against reading every job and counting (median of 3 for that one).
//!
//! The history is written as the stores keep it (the record JSON, the indexes), in bulk; the
//! 1,000 live jobs go through the API (`create_queued_job`, `claim`).
//!
//! cargo run --release -p streambot-store --example store_scale [-- JOBS]
//! (Redis at REDIS_URL or redis://127.0.0.1:6379/; a random key prefix, deleted afterwards.)

use std::time::{Duration, Instant};

use chrono::Utc;
use streambot_core::{Job, JobId, JobOwner, JobPriority, JobState, NewJob, RecordingOptions};
use streambot_store::{
    JobBackend, JobFilter, JobStateCounts, LeaseRenewal, RedisBackend, SqliteBackend,
};

const ROUNDS: usize = 21;
const LIVE_JOBS: usize = 1000;
const USERS: i64 = 2000;
const LEASE: Duration = Duration::from_secs(60);

fn request(user_id: i64) -> NewJob {
    NewJob {
        owner: JobOwner {
            user_id,
            chat_id: user_id,
        },
        url: format!("https://example.com/{user_id}/live.m3u8"),
        options: RecordingOptions::default(),
        priority: JobPriority::Normal,
    }
}

/// A finished job of the history, as a worker leaves it.
fn finished_job(index: usize) -> Job {
    let created = Utc::now() - chrono::Duration::seconds(1_000_000 - index as i64);
    let mut job = Job::new(
        JobId::from_u32(0x1000_0000 + index as u32),
        request(index as i64 % USERS),
        created,
    );
    job.state = if index.is_multiple_of(10) {
        JobState::Failed
    } else {
        JobState::Completed
    };
    job.started_at = Some(created);
    job.finished_at = Some(created + chrono::Duration::seconds(3600));
    job.updated_at = created + chrono::Duration::seconds(3600);
    job
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

async fn time_rounds<F, Fut>(mut operation: F) -> Duration
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut samples = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let started = Instant::now();
        operation(round).await;
        samples.push(started.elapsed());
    }
    median(samples)
}

fn milliseconds(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

async fn fill_sqlite(path: &std::path::Path, jobs: usize) {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("open");
    for chunk_start in (0..jobs).step_by(5000) {
        let mut transaction = pool.begin().await.expect("begin");
        for index in chunk_start..(chunk_start + 5000).min(jobs) {
            let job = finished_job(index);
            sqlx::query(
                "INSERT INTO jobs (id, owner_user_id, state, version, created_at_ms,
                     finished_at_ms, record_json) VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6)",
            )
            .bind(job.id.as_str())
            .bind(job.owner.user_id)
            .bind(job.state.as_str())
            .bind(job.created_at.timestamp_millis())
            .bind(job.finished_at.map(|time| time.timestamp_millis()))
            .bind(serde_json::to_string(&job).expect("json"))
            .execute(&mut *transaction)
            .await
            .expect("insert");
        }
        transaction.commit().await.expect("commit");
    }
}

async fn fill_redis(url: &str, prefix: &str, jobs: usize) {
    let client = redis::Client::open(url).expect("url");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    for chunk_start in (0..jobs).step_by(2000) {
        let mut pipeline = redis::pipe();
        for index in chunk_start..(chunk_start + 2000).min(jobs) {
            let job = finished_job(index);
            let created = job.created_at.timestamp_millis();
            pipeline
                .cmd("HSET")
                .arg(format!("{prefix}job:{}", job.id))
                .arg("version")
                .arg("1")
                .arg("record")
                .arg(serde_json::to_string(&job).expect("json"))
                .arg("state")
                .arg(job.state.as_str())
                .ignore()
                .cmd("ZADD")
                .arg(format!("{prefix}jobs"))
                .arg(created)
                .arg(job.id.as_str())
                .ignore()
                .cmd("ZADD")
                .arg(format!("{prefix}user:{}:jobs", job.owner.user_id))
                .arg(created)
                .arg(job.id.as_str())
                .ignore();
        }
        let () = pipeline.query_async(&mut connection).await.expect("fill");
    }
}

async fn measure<B: JobBackend>(name: &str, backend: &B, jobs: usize) {
    // The live jobs through the API: queued, then claimed (their leases renewed below).
    let mut leases = Vec::with_capacity(LIVE_JOBS);
    let submit = {
        let mut samples = Vec::new();
        for index in 0..LIVE_JOBS {
            let started = Instant::now();
            backend
                .create_queued_job(request(index as i64 % USERS))
                .await
                .expect("submit");
            samples.push(started.elapsed());
        }
        median(samples)
    };
    let claim = {
        let mut samples = Vec::new();
        for _ in 0..LIVE_JOBS {
            let started = Instant::now();
            let (_, lease) = backend
                .claim("bench", &[JobPriority::Normal], LEASE, Duration::ZERO)
                .await
                .expect("claim")
                .expect("a queued job");
            samples.push(started.elapsed());
            leases.push(lease);
        }
        median(samples)
    };
    let page = time_rounds(|_| async {
        let listed = backend
            .list_jobs(JobFilter {
                limit: Some(50),
                ..JobFilter::default()
            })
            .await
            .expect("list");
        assert_eq!(listed.len(), 50);
    })
    .await;
    let user_page = time_rounds(|round| async move {
        let listed = backend
            .list_jobs_for_user(round as i64 % USERS, 50)
            .await
            .expect("list");
        assert!(!listed.is_empty());
    })
    .await;
    let live = time_rounds(|_| async {
        let listed = backend
            .list_jobs(JobFilter {
                states: JobState::ALL
                    .into_iter()
                    .filter(|state| !state.is_terminal())
                    .collect(),
                limit: Some(LIVE_JOBS),
                ..JobFilter::default()
            })
            .await
            .expect("list");
        assert_eq!(listed.len(), LIVE_JOBS);
    })
    .await;
    let counted = time_rounds(|_| async {
        let counts = backend.count_jobs_by_state().await.expect("count");
        assert_eq!(counts.total() as usize, jobs + LIVE_JOBS);
        assert_eq!(counts.count(JobState::Starting) as usize, LIVE_JOBS);
    })
    .await;
    let mut scans = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let every_job = backend.list_jobs(JobFilter::default()).await.expect("list");
        let counts = JobStateCounts::of_jobs(&every_job);
        assert_eq!(counts.total() as usize, jobs + LIVE_JOBS);
        scans.push(started.elapsed());
    }
    let scanned = median(scans);
    let renewals: Vec<LeaseRenewal> = leases
        .iter()
        .map(|lease| LeaseRenewal {
            lease: lease.clone(),
            progress: Some(Default::default()),
        })
        .collect();
    let mut one_by_one = Vec::new();
    let mut batched = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        for lease in &leases {
            backend.renew_lease(lease, LEASE).await.expect("renew");
        }
        one_by_one.push(started.elapsed());
        let started = Instant::now();
        let results = backend.renew_leases(&renewals, LEASE).await;
        batched.push(started.elapsed());
        assert!(results.iter().all(Result::is_ok));
    }
    let one_by_one = median(one_by_one);
    let batched = median(batched);
    println!(
        "{name:<6} {jobs} jobs | page of 50 newest {:.2} ms | a user's 50 {:.2} ms | {LIVE_JOBS} live {:.1} ms | submit {:.3} ms | claim {:.3} ms | renew {LIVE_JOBS}: one by one {:.0} ms, renew_leases {:.0} ms ({:.1}x) | jobs per state: counted by the store {:.2} ms, every job read {:.0} ms",
        milliseconds(page),
        milliseconds(user_page),
        milliseconds(live),
        milliseconds(submit),
        milliseconds(claim),
        milliseconds(one_by_one),
        milliseconds(batched),
        one_by_one.as_secs_f64() / batched.as_secs_f64().max(1e-9),
        milliseconds(counted),
        milliseconds(scanned),
    );
}

#[tokio::main]
async fn main() {
    let jobs: usize = std::env::args()
        .nth(1)
        .and_then(|text| text.parse().ok())
        .unwrap_or(100_000);

    let directory = tempfile::tempdir().expect("tempdir");
    let sqlite = SqliteBackend::open_in_data_directory(directory.path())
        .await
        .expect("sqlite");
    let started = Instant::now();
    fill_sqlite(&sqlite.database_path(), jobs).await;
    eprintln!(
        "sqlite: {jobs} jobs written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    measure("sqlite", &sqlite, jobs).await;

    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let prefix = format!("bench-scale-{}:", rand::random::<u32>());
    let started = Instant::now();
    fill_redis(&url, &prefix, jobs).await;
    // Connect after the fill: the `live` index is built from the history at connect.
    let redis = RedisBackend::connect(&url, &prefix).await.expect("redis");
    eprintln!(
        "redis: {jobs} jobs written (and the live index built) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    measure("redis", &redis, jobs).await;
    redis.delete_all_keys().await.expect("clean up");
}
