//! Queue benchmark: enqueue-to-claim latency and claims per second for the SQLite and Redis
//! backends, a plain LPUSH/BRPOP loop on the same Redis as the floor, and a worker's RSS after 50
//! and after 500 short jobs.
//!
//! cargo run --release -p streambot-worker --example queue_benchmark
//! (Redis at REDIS_URL or redis://127.0.0.1:6379/; a random key prefix, deleted afterwards.)

use std::time::{Duration, Instant};

use streambot_core::{
    JobOwner, JobPriority, JobState, NewJob, RecordingEndReason, RecordingOptions,
};
use streambot_hls::DesiredState;
use streambot_recorder::{RecorderEvent, RecordingOutcome, RecordingReport, RecordingSettings};
use streambot_store::{JobBackend, JobStore, RedisBackend, SqliteBackend, submit_job};
use streambot_worker::{RecordingEngine, WorkerConfig, run_worker};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

const LATENCY_ROUNDS: usize = 200;
const THROUGHPUT_JOBS: usize = 1000;
const BOTH: [JobPriority; 2] = [JobPriority::Priority, JobPriority::Normal];

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
    let median = samples[samples.len() / 2];
    let p95 = samples[samples.len() * 95 / 100];
    (median, p95)
}

/// A claimer waits; the job is submitted; time from the start of the submit to the claim.
async fn latency<B: JobBackend>(backend: &B) -> (Duration, Duration) {
    let mut samples = Vec::new();
    for index in 0..LATENCY_ROUNDS {
        let claimer = backend.clone();
        let waiting = tokio::spawn(async move {
            let claimed = claimer
                .claim(
                    "bench",
                    &BOTH,
                    Duration::from_secs(60),
                    Duration::from_secs(5),
                )
                .await
                .expect("claim");
            (Instant::now(), claimed.is_some())
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        let started = Instant::now();
        submit_job(backend, request(index)).await.expect("submit");
        let (claimed_at, claimed) = waiting.await.expect("join");
        assert!(claimed);
        samples.push(claimed_at - started);
    }
    median_and_p95(samples)
}

/// `THROUGHPUT_JOBS` waiting; one claimer takes them all.
async fn claims_per_second<B: JobBackend>(backend: &B) -> f64 {
    for index in 0..THROUGHPUT_JOBS {
        submit_job(backend, request(index)).await.expect("submit");
    }
    let started = Instant::now();
    let mut claimed = 0;
    while backend
        .claim("bench", &BOTH, Duration::from_secs(60), Duration::ZERO)
        .await
        .expect("claim")
        .is_some()
    {
        claimed += 1;
    }
    assert_eq!(claimed, THROUGHPUT_JOBS);
    claimed as f64 / started.elapsed().as_secs_f64()
}

async fn plain_list_floor(url: &str, prefix: &str) -> ((Duration, Duration), f64) {
    let client = redis::Client::open(url).expect("client");
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let mut pusher = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let key = format!("{prefix}plain-list");
    let mut samples = Vec::new();
    for index in 0..LATENCY_ROUNDS {
        let mut popper = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .expect("connect");
        let popped_key = key.clone();
        let waiting = tokio::spawn(async move {
            let _: Option<(String, String)> = redis::cmd("BRPOP")
                .arg(&popped_key)
                .arg(5)
                .query_async(&mut popper)
                .await
                .expect("brpop");
            Instant::now()
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        let started = Instant::now();
        let _: i64 = redis::cmd("LPUSH")
            .arg(&key)
            .arg(index)
            .query_async(&mut pusher)
            .await
            .expect("lpush");
        samples.push(waiting.await.expect("join") - started);
    }
    for index in 0..THROUGHPUT_JOBS {
        let _: i64 = redis::cmd("LPUSH")
            .arg(&key)
            .arg(index)
            .query_async(&mut pusher)
            .await
            .expect("lpush");
    }
    let mut popper = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connect");
    let started = Instant::now();
    for _ in 0..THROUGHPUT_JOBS {
        let _: Option<(String, String)> = redis::cmd("BRPOP")
            .arg(&key)
            .arg(1)
            .query_async(&mut popper)
            .await
            .expect("brpop");
    }
    let rate = THROUGHPUT_JOBS as f64 / started.elapsed().as_secs_f64();
    let _: i64 = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut pusher)
        .await
        .expect("del");
    (median_and_p95(samples), rate)
}

#[derive(Clone)]
struct InstantEngine;

impl RecordingEngine for InstantEngine {
    async fn record(
        &self,
        _url: String,
        _options: RecordingOptions,
        settings: RecordingSettings,
        _control: watch::Receiver<DesiredState>,
        _events: mpsc::UnboundedSender<RecorderEvent>,
    ) -> RecordingReport {
        RecordingReport {
            outcome: RecordingOutcome::Finished {
                reason: RecordingEndReason::StreamEnded,
            },
            source: None,
            main: None,
            audio: None,
            output_directory: settings.output_directory,
        }
    }
}

fn resident_kilobytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|value| value.parse().ok())
        })
        .unwrap_or(0)
}

async fn run_short_jobs(backend: &SqliteBackend, count: usize) {
    let mut identifiers = Vec::new();
    for index in 0..count {
        identifiers.push(
            submit_job(backend, request(index))
                .await
                .expect("submit")
                .id,
        );
    }
    for job_id in identifiers {
        loop {
            let job = backend.get_job(job_id).await.expect("get").expect("exists");
            if job.state == JobState::Completed {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

async fn worker_memory() -> (u64, u64) {
    let directory = tempfile::tempdir().expect("tempdir");
    let backend = SqliteBackend::open_in_data_directory(directory.path())
        .await
        .expect("sqlite");
    let mut config = WorkerConfig::new("bench-worker", directory.path().join("recordings"));
    config.concurrency = 4;
    config.claim_wait = Duration::from_millis(200);
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(run_worker(
        backend.clone(),
        InstantEngine,
        config,
        shutdown.clone(),
    ));
    run_short_jobs(&backend, 50).await;
    let after_fifty = resident_kilobytes();
    run_short_jobs(&backend, 450).await;
    let after_five_hundred = resident_kilobytes();
    shutdown.cancel();
    let _ = worker.await;
    (after_fifty, after_five_hundred)
}

fn print_row(name: &str, latency: (Duration, Duration), rate: f64) {
    println!(
        "| {name} | {:.2} ms | {:.2} ms | {rate:.0} |",
        latency.0.as_secs_f64() * 1000.0,
        latency.1.as_secs_f64() * 1000.0
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!("| backend | enqueue→claim median | p95 | claims/s |");
    println!("|---|---|---|---|");
    {
        let directory = tempfile::tempdir().expect("tempdir");
        let backend = SqliteBackend::open_in_data_directory(directory.path())
            .await
            .expect("sqlite");
        let latency = latency(&backend).await;
        let rate = claims_per_second(&backend).await;
        print_row("SQLite (embedded, in-process queue)", latency, rate);
    }
    let url = std::env::var("REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379/".to_string());
    let prefix = format!("streambot-bench-{:08x}:", rand::random::<u32>());
    match RedisBackend::connect(&url, &prefix).await {
        Ok(backend) => {
            let latency = latency(&backend).await;
            let rate = claims_per_second(&backend).await;
            print_row("Redis (streams, consumer group, CAS)", latency, rate);
            let (floor_latency, floor_rate) = plain_list_floor(&url, &prefix).await;
            print_row("Redis plain LPUSH/BRPOP (floor)", floor_latency, floor_rate);
            backend.delete_all_keys().await.expect("clean up");
        }
        Err(error) => println!("(Redis skipped: {error})"),
    }
    let (after_fifty, after_five_hundred) = worker_memory().await;
    println!(
        "\nworker RSS after 50 short jobs: {after_fifty} KiB; after 500: {after_five_hundred} KiB ({:+.1} %)",
        (after_five_hundred as f64 / after_fifty.max(1) as f64 - 1.0) * 100.0
    );
}
