//! Submit benchmark (issue 13 item 3): the cost of making create + enqueue one step. For SQLite
//! and Redis, the median and p95 time of a submit done the old way (`create_job`, then `push`:
//! two round trips, and a crash between them loses the job) next to `create_queued_job` (one
//! statement / one script), in the same run.
//!
//! cargo run --release -p streambot-store --example submit_benchmark
//! (Redis at REDIS_URL or redis://127.0.0.1:6379/; a random key prefix, deleted afterwards.)

use std::time::{Duration, Instant};

use streambot_core::{JobOwner, JobPriority, NewJob, RecordingOptions};
use streambot_store::{JobBackend, RedisBackend, SqliteBackend};

const ROUNDS: usize = 400;

fn request(index: usize) -> NewJob {
    NewJob {
        owner: JobOwner {
            user_id: index as i64,
            chat_id: index as i64,
        },
        url: format!("https://example.com/{index}.m3u8"),
        options: RecordingOptions::default(),
        priority: JobPriority::Normal,
    }
}

fn median_and_p95(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let median = samples.get(samples.len() / 2).copied().unwrap_or_default();
    let p95 = samples
        .get(samples.len() * 95 / 100)
        .copied()
        .unwrap_or_default();
    (median, p95)
}

/// Alternating rounds of the two ways, so drift in the machine's load hits both alike.
async fn compare<B: JobBackend>(name: &str, backend: &B) {
    let mut two_steps = Vec::with_capacity(ROUNDS);
    let mut one_step = Vec::with_capacity(ROUNDS);
    for index in 0..ROUNDS {
        let started = Instant::now();
        let job = backend.create_job(request(index)).await.expect("create");
        backend.push(job.id, job.priority).await.expect("push");
        two_steps.push(started.elapsed());

        let started = Instant::now();
        backend
            .create_queued_job(request(index))
            .await
            .expect("create queued");
        one_step.push(started.elapsed());
    }
    let (two_median, two_p95) = median_and_p95(two_steps);
    let (one_median, one_p95) = median_and_p95(one_step);
    println!(
        "{name:<7} create+push: median {:>7.1} µs, p95 {:>7.1} µs | create_queued_job: median {:>7.1} µs, p95 {:>7.1} µs | one step / two steps (median) = {:.2}",
        two_median.as_secs_f64() * 1e6,
        two_p95.as_secs_f64() * 1e6,
        one_median.as_secs_f64() * 1e6,
        one_p95.as_secs_f64() * 1e6,
        one_median.as_secs_f64() / two_median.as_secs_f64().max(1e-9),
    );
}

#[tokio::main]
async fn main() {
    let directory = tempfile::tempdir().expect("tempdir");
    let sqlite = SqliteBackend::open_in_data_directory(directory.path())
        .await
        .expect("sqlite");
    compare("sqlite", &sqlite).await;

    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let prefix = format!("streambot-bench-{:08x}:", rand::random::<u32>());
    match RedisBackend::connect(&url, &prefix).await {
        Ok(redis) => {
            compare("redis", &redis).await;
            redis.delete_all_keys().await.expect("clean up");
        }
        Err(error) => println!("redis   not measured: {error}"),
    }
}
