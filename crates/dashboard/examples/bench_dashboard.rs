//! Requests per second of `GET /jobs` with 10,000 jobs in the store against `GET /health` in the
//! same run: a dashboard on 127.0.0.1:0 and N concurrent reqwest clients, each figure the median
//! of 3 rounds.
//!
//! ```text
//! cargo run --release -p streambot-dashboard --example bench_dashboard -- \
//!     [--jobs 10000] [--clients 10] [--seconds 5] [--store sqlite|redis]
//! ```
//! `--store redis` uses `REDIS_URL` (default redis://127.0.0.1:6379/) under a fresh key prefix.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use streambot_core::{JobOwner, JobPriority, NewJob};
use streambot_dashboard::{DashboardSettings, DashboardState, serve_dashboard};
use streambot_store::{JobBackend, RedisBackend, SqliteBackend};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "benchmark-secret-0123456789";

struct Options {
    jobs: usize,
    clients: usize,
    seconds: u64,
    store: String,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        jobs: 10_000,
        clients: 10,
        seconds: 5,
        store: "sqlite".to_string(),
    };
    let mut arguments = std::env::args().skip(1);
    while let Some(flag) = arguments.next() {
        let value = arguments
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag} {value:?}: not a number"))
        };
        match flag.as_str() {
            "--jobs" => options.jobs = number()?.min(1_000_000) as usize,
            "--clients" => options.clients = number()?.clamp(1, 256) as usize,
            "--seconds" => options.seconds = number()?.clamp(1, 120),
            "--store" if value == "sqlite" || value == "redis" => options.store = value,
            _ => return Err(format!("unknown option {flag} {value}")),
        }
    }
    Ok(options)
}

/// Requests per second of `path` over `seconds` with `clients` concurrent clients.
async fn measure(base_url: &str, path: &str, clients: usize, seconds: u64) -> (f64, u64) {
    let completed = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let url = format!("{base_url}{path}");
        let completed = Arc::clone(&completed);
        let failed = Arc::clone(&failed);
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let outcome = client.get(&url).bearer_auth(SECRET).send().await;
                // Read the whole body, as a real client would.
                let body_read = match outcome {
                    Ok(response) if response.status().is_success() => {
                        response.bytes().await.is_ok()
                    }
                    _ => false,
                };
                let counter = if body_read { &completed } else { &failed };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    (
        completed.load(Ordering::Relaxed) as f64 / elapsed,
        failed.load(Ordering::Relaxed),
    )
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|left, right| left.total_cmp(right));
    values[values.len() / 2]
}

async fn run<B: JobBackend>(backend: B, options: &Options, recordings: std::path::PathBuf) {
    let fill_started = Instant::now();
    for index in 0..options.jobs {
        let user_id = 1000 + (index % 50) as i64;
        backend
            .create_job(NewJob {
                owner: JobOwner {
                    user_id,
                    chat_id: user_id,
                },
                url: format!("https://example.test/{index}/live.m3u8"),
                options: Default::default(),
                priority: JobPriority::Normal,
            })
            .await
            .expect("create a job");
    }
    eprintln!(
        "{} jobs created in {:.1} s",
        options.jobs,
        fill_started.elapsed().as_secs_f64()
    );
    let mut settings = DashboardSettings::new(SECRET, recordings).expect("settings");
    settings.rate_limit_per_second = 1_000_000;
    settings.rate_limit_burst = 1_000_000;
    settings.history_sample_interval = Duration::from_secs(3600);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base_url = format!("http://{}", listener.local_addr().expect("address"));
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve_dashboard(
        listener,
        DashboardState::new(backend, settings),
        shutdown.clone(),
    ));
    let paths = [
        "/health",
        "/jobs",
        "/jobs?limit=500",
        "/jobs?user=1007&limit=50",
    ];
    let mut rounds: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    let mut failures = vec![0u64; paths.len()];
    for round in 0..3 {
        for (index, path) in paths.iter().enumerate() {
            let (rate, failed) = measure(&base_url, path, options.clients, options.seconds).await;
            eprintln!(
                "round {} {path}: {rate:.0} requests/s ({failed} failed)",
                round + 1
            );
            rounds[index].push(rate);
            failures[index] += failed;
        }
    }
    println!(
        "store={} jobs={} clients={} seconds_per_round={}",
        options.store, options.jobs, options.clients, options.seconds
    );
    for (index, path) in paths.iter().enumerate() {
        println!(
            "GET {path}: median {:.0} requests/s (rounds {:?}, failed {})",
            median(rounds[index].clone()),
            rounds[index]
                .iter()
                .map(|rate| rate.round() as u64)
                .collect::<Vec<_>>(),
            failures[index]
        );
    }
    shutdown.cancel();
    let _ = server.await;
}

#[tokio::main]
async fn main() {
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("bench_dashboard: {message}");
            std::process::exit(2);
        }
    };
    let directory = tempfile::tempdir().expect("tempdir");
    let recordings = directory.path().join("recordings");
    if options.store == "redis" {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
        let prefix = format!("streambot-bench-dashboard-{}:", std::process::id());
        let backend = RedisBackend::connect(&url, &prefix)
            .await
            .expect("connect to Redis");
        run(backend, &options, recordings).await;
        eprintln!("(keys left under the prefix {prefix})");
    } else {
        let backend = SqliteBackend::open_in_data_directory(directory.path())
            .await
            .expect("open SQLite");
        run(backend, &options, recordings).await;
    }
}
