//! Bot benchmark: updates per second the bot handles (parse, rate limit, checks, enqueue, reply)
//! and the time from an update to its first reply at a steady 100 updates/s, against the fake Bot
//! API (real HTTP on 127.0.0.1) with the real SQLite job store in a temporary DATA_DIR. No worker:
//! recordings stay queued. Also the floor: a bare HTTP round trip to the fake server.
//!
//! Telegram's sending limits are lifted here (fake server and outbound queue): see bench_outbound.
//!
//! cargo run --release -p streambot-bot --example bench_bot [-- --runs 3 --limiter memory|redis|both]
//! (the Redis limiter uses REDIS_URL or redis://127.0.0.1:6379/ with a random key prefix; its keys
//! expire with the window.)

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use streambot_bot::outbound::OutboundLimits;
use streambot_bot::{BotSettings, run_bot};
use streambot_store::{JobFilter, JobStore, SqliteBackend};
use streambot_testkit::telegram::{FakeTelegram, RecordedCall};
use teloxide::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const THROUGHPUT_UPDATES: usize = 2_000;
const LATENCY_RATE_PER_SECOND: u64 = 100;
const LATENCY_SECONDS: u64 = 20;
const FLOOR_ROUND_TRIPS: usize = 2_000;
const THROUGHPUT_FIRST_USER: i64 = 1_000_000;
const LATENCY_FIRST_USER: i64 = 2_000_000;

struct Harness {
    telegram: FakeTelegram,
    /// `RecordedCall.at` is measured from (within microseconds of) this instant.
    base: Instant,
    backend: SqliteBackend,
    shutdown: CancellationToken,
    bot_task: tokio::task::JoinHandle<()>,
    _directory: tempfile::TempDir,
}

impl Harness {
    async fn start(redis: Option<&str>) -> Harness {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = Instant::now();
        let telegram = FakeTelegram::serve(listener, CancellationToken::new())
            .await
            .expect("fake telegram");
        // This benchmark measures the bot's own work per update: Telegram's sending limits (in
        // the fake server and in the bot's outbound queue) are lifted; `bench_outbound` measures
        // the bot under them.
        telegram.set_limits(None);
        let directory = tempfile::tempdir().expect("tempdir");
        let data_directory = directory.path().join("data");
        let recordings_directory = directory.path().join("recordings");
        std::fs::create_dir_all(&data_directory).expect("data dir");
        let backend = SqliteBackend::open_in_data_directory(&data_directory)
            .await
            .expect("sqlite");
        let mut settings = BotSettings::new(&telegram.token, recordings_directory, &data_directory);
        settings.api_url = Some(telegram.api_url.parse().expect("url"));
        settings.allow_private_networks = true;
        settings.outbound = OutboundLimits {
            global_requests: 1_000_000,
            private_chat_requests: 1_000_000,
            group_chat_requests: 1_000_000,
            window_margin: Duration::ZERO,
            maximum_in_flight: 256,
            ..OutboundLimits::default()
        };
        if let Some(url) = redis {
            settings.redis_url = Some(url.to_string());
            settings.redis_key_prefix = format!("streambot-bench-{:x}:", random_u64());
        }
        let shutdown = CancellationToken::new();
        let bot_shutdown = shutdown.clone();
        let bot_backend = backend.clone();
        let bot_task = tokio::spawn(async move {
            if let Err(error) = run_bot(settings, bot_backend, bot_shutdown).await {
                eprintln!("the bot stopped: {error}");
            }
        });
        let harness = Harness {
            telegram,
            base,
            backend,
            shutdown,
            bot_task,
            _directory: directory,
        };
        // Warm up: the bot is polling once it answers.
        harness.telegram.send_text_from_user(1, "/help");
        harness
            .telegram
            .wait_for_call(Duration::from_secs(30), |call| {
                call.method == "sendMessage" && call.chat_id() == Some(1)
            })
            .await
            .expect("the bot answers");
        harness
    }

    fn instant_of(&self, call: &RecordedCall) -> Instant {
        self.base + call.at
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(20), self.bot_task).await;
    }
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// The mix: 50 % `/list`, 30 % `/help`, 20 % `/record <url>`; replies each sends (`sendMessage`).
fn update_text(index: usize) -> (String, usize) {
    match index % 10 {
        0..=4 => ("/list".to_string(), 1),
        5..=7 => ("/help".to_string(), 1),
        // The status message ("Checking the link…") is the one answer.
        _ => (
            format!("/record http://127.0.0.1:9/live/{index}.m3u8 1h"),
            1,
        ),
    }
}

fn in_range(call: &RecordedCall, first: i64, count: usize) -> Option<i64> {
    if call.method != "sendMessage" {
        return None;
    }
    call.chat_id()
        .filter(|chat| (first..first + count as i64).contains(chat))
}

struct ThroughputResult {
    updates_per_second: f64,
    elapsed: Duration,
}

async fn throughput(harness: &Harness) -> ThroughputResult {
    let mut expected_replies = 0;
    let started = Instant::now();
    for index in 0..THROUGHPUT_UPDATES {
        let (text, replies) = update_text(index);
        expected_replies += replies;
        harness
            .telegram
            .send_text_from_user(THROUGHPUT_FIRST_USER + index as i64, &text);
    }
    let counted = Mutex::new(0usize);
    let last = harness
        .telegram
        .wait_for_call(Duration::from_secs(120), |call| {
            if in_range(call, THROUGHPUT_FIRST_USER, THROUGHPUT_UPDATES).is_none() {
                return false;
            }
            let mut counted = counted.lock().expect("count");
            *counted += 1;
            *counted == expected_replies
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "only {} of {expected_replies} replies arrived",
                counted.lock().expect("count")
            )
        });
    let elapsed = harness.instant_of(&last).saturating_duration_since(started);
    // Every /record was accepted (queued), none refused by a limit.
    let jobs = harness
        .backend
        .list_jobs(JobFilter::default())
        .await
        .expect("jobs");
    assert_eq!(jobs.len(), THROUGHPUT_UPDATES / 5, "every /record queued");
    ThroughputResult {
        updates_per_second: THROUGHPUT_UPDATES as f64 / elapsed.as_secs_f64(),
        elapsed,
    }
}

/// Update to first reply, at a steady rate; distinct chats so replies map 1:1.
async fn latency(harness: &Harness) -> Vec<Duration> {
    let count = (LATENCY_RATE_PER_SECOND * LATENCY_SECONDS) as usize;
    let interval = Duration::from_micros(1_000_000 / LATENCY_RATE_PER_SECOND);
    let mut pushed_at = HashMap::with_capacity(count);
    let start = tokio::time::Instant::now();
    for index in 0..count {
        tokio::time::sleep_until(start + interval * index as u32).await;
        let chat = LATENCY_FIRST_USER + index as i64;
        let (text, _) = update_text(index);
        harness.telegram.send_text_from_user(chat, &text);
        pushed_at.insert(chat, Instant::now());
    }
    let answered = Mutex::new(std::collections::HashSet::new());
    harness
        .telegram
        .wait_for_call(Duration::from_secs(60), |call| {
            let Some(chat) = in_range(call, LATENCY_FIRST_USER, count) else {
                return false;
            };
            let mut answered = answered.lock().expect("answered");
            answered.insert(chat);
            answered.len() == count
        })
        .await
        .expect("every update answered");
    let mut first_reply: HashMap<i64, Instant> = HashMap::new();
    for call in harness.telegram.calls_of("sendMessage") {
        if let Some(chat) = in_range(&call, LATENCY_FIRST_USER, count) {
            let at = harness.instant_of(&call);
            first_reply
                .entry(chat)
                .and_modify(|first| *first = (*first).min(at))
                .or_insert(at);
        }
    }
    let mut samples: Vec<Duration> = pushed_at
        .iter()
        .map(|(chat, pushed)| first_reply[chat].saturating_duration_since(*pushed))
        .collect();
    samples.sort();
    samples
}

/// Bare HTTP/1.1 round trips (`getMe`, keep-alive, one at a time) on a raw socket.
async fn raw_http_floor(telegram: &FakeTelegram) -> Vec<Duration> {
    let mut stream = TcpStream::connect(telegram.local_address)
        .await
        .expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let request = format!(
        "POST /bot{}/getMe HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}",
        telegram.token, telegram.local_address
    );
    let mut samples = Vec::with_capacity(FLOOR_ROUND_TRIPS);
    let mut buffer = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    for _ in 0..FLOOR_ROUND_TRIPS {
        buffer.clear();
        let started = Instant::now();
        stream.write_all(request.as_bytes()).await.expect("write");
        loop {
            let read = stream.read(&mut chunk).await.expect("read");
            assert!(read > 0, "the fake server closed the connection");
            buffer.extend_from_slice(&chunk[..read]);
            if response_complete(&buffer) {
                break;
            }
        }
        samples.push(started.elapsed());
    }
    samples.sort();
    samples
}

fn response_complete(buffer: &[u8]) -> bool {
    let Some(header_end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") else {
        return false;
    };
    let headers = String::from_utf8_lossy(&buffer[..header_end]).to_ascii_lowercase();
    let length = headers
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    buffer.len() >= header_end + 4 + length
}

/// The same round trip through teloxide and its reqwest client, as the bot makes it.
async fn teloxide_floor(telegram: &FakeTelegram) -> Vec<Duration> {
    let bot = Bot::new(telegram.token.clone()).set_api_url(telegram.api_url.parse().expect("url"));
    let mut samples = Vec::with_capacity(FLOOR_ROUND_TRIPS);
    for _ in 0..FLOOR_ROUND_TRIPS {
        let started = Instant::now();
        bot.get_me().await.expect("getMe");
        samples.push(started.elapsed());
    }
    samples.sort();
    samples
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn median_f64(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn median_duration(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn milliseconds(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

fn redis_url() -> Option<String> {
    if let Ok(url) = std::env::var("REDIS_URL")
        && !url.trim().is_empty()
    {
        return Some(url);
    }
    std::net::TcpStream::connect_timeout(
        &"127.0.0.1:6379".parse().expect("address"),
        Duration::from_millis(300),
    )
    .ok()
    .map(|_| "redis://127.0.0.1:6379/".to_string())
}

struct Arguments {
    runs: usize,
    limiters: Vec<Option<String>>,
}

fn arguments() -> Arguments {
    let mut runs = 3;
    let mut limiter = "both".to_string();
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "--runs" => runs = arguments.next().and_then(|n| n.parse().ok()).unwrap_or(3),
            "--limiter" => limiter = arguments.next().unwrap_or_default(),
            other => panic!("unknown argument {other}"),
        }
    }
    let redis = redis_url();
    let limiters = match (limiter.as_str(), redis) {
        ("memory", _) => vec![None],
        ("redis", Some(url)) => vec![Some(url)],
        ("redis", None) => panic!("no Redis: set REDIS_URL or start one on 127.0.0.1:6379"),
        (_, Some(url)) => vec![None, Some(url)],
        (_, None) => {
            eprintln!("no Redis answers: the in-memory limiter only");
            vec![None]
        }
    };
    Arguments { runs, limiters }
}

#[tokio::main]
async fn main() {
    let arguments = arguments();
    println!(
        "bot benchmark: {} runs; {THROUGHPUT_UPDATES} updates at once (50 % /list, 30 % /help, 20 % /record); \
         {LATENCY_RATE_PER_SECOND} updates/s for {LATENCY_SECONDS} s",
        arguments.runs
    );

    // The floor, on a fresh fake server.
    let floor_server = FakeTelegram::start().await.expect("fake telegram");
    let mut raw_p50 = Vec::new();
    let mut raw_p99 = Vec::new();
    let mut client_p50 = Vec::new();
    let mut client_p99 = Vec::new();
    for run in 0..arguments.runs {
        let raw = raw_http_floor(&floor_server).await;
        let client = teloxide_floor(&floor_server).await;
        println!(
            "floor run {}: raw HTTP p50 {} p99 {}; teloxide getMe p50 {} p99 {}",
            run + 1,
            milliseconds(percentile(&raw, 0.5)),
            milliseconds(percentile(&raw, 0.99)),
            milliseconds(percentile(&client, 0.5)),
            milliseconds(percentile(&client, 0.99)),
        );
        raw_p50.push(percentile(&raw, 0.5));
        raw_p99.push(percentile(&raw, 0.99));
        client_p50.push(percentile(&client, 0.5));
        client_p99.push(percentile(&client, 0.99));
    }
    drop(floor_server);

    let mut summary = vec![format!(
        "floor (median of runs): raw HTTP round trip p50 {} p99 {}; teloxide getMe p50 {} p99 {}",
        milliseconds(median_duration(raw_p50)),
        milliseconds(median_duration(raw_p99)),
        milliseconds(median_duration(client_p50)),
        milliseconds(median_duration(client_p99)),
    )];
    for redis in &arguments.limiters {
        let label = if redis.is_some() {
            "Redis rate limit"
        } else {
            "in-memory rate limit"
        };
        let mut rates = Vec::new();
        let mut p50s = Vec::new();
        let mut p99s = Vec::new();
        let mut maxima = Vec::new();
        for run in 0..arguments.runs {
            let harness = Harness::start(redis.as_deref()).await;
            let result = throughput(&harness).await;
            let samples = latency(&harness).await;
            let (p50, p99, maximum) = (
                percentile(&samples, 0.5),
                percentile(&samples, 0.99),
                percentile(&samples, 1.0),
            );
            println!(
                "{label}, run {}: {THROUGHPUT_UPDATES} updates answered in {} = {:.0} updates/s; \
                 at {LATENCY_RATE_PER_SECOND}/s: p50 {} p99 {} max {}",
                run + 1,
                milliseconds(result.elapsed),
                result.updates_per_second,
                milliseconds(p50),
                milliseconds(p99),
                milliseconds(maximum),
            );
            rates.push(result.updates_per_second);
            p50s.push(p50);
            p99s.push(p99);
            maxima.push(maximum);
            harness.stop().await;
        }
        summary.push(format!(
            "{label} (median of runs): {:.0} updates/s; update → first reply at {LATENCY_RATE_PER_SECOND}/s p50 {} p99 {} max {}",
            median_f64(rates),
            milliseconds(median_duration(p50s)),
            milliseconds(median_duration(p99s)),
            milliseconds(median_duration(maxima)),
        ));
    }
    println!();
    for line in summary {
        println!("{line}");
    }
}
