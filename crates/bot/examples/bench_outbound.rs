//! Outbound-queue benchmark: 1,000 live jobs whose status changes every second, through the
//! bot's outbound queue against the fake Bot API enforcing Telegram's limits (30 requests a
//! second in all, 1 a second per private chat). Prints the status edits sent per second, the
//! longest time a status message went without a refresh (target: under 60 s), the 429s
//! provoked, and the latency of a reply to a user's command (p50/p99) while the edits flood,
//! compared with the same replies on an idle bot in the same run.
//!
//! cargo run --release -p streambot-bot --example bench_outbound [-- --jobs 1000 --seconds 120]

#[path = "../tests/support/live_jobs.rs"]
mod live_jobs;

use std::sync::Arc;
use std::time::{Duration, Instant};

use live_jobs::{LiveJobsHarness, longest_unrefreshed};
use tokio_util::sync::CancellationToken;

/// Users asking questions start here (no jobs of their own).
const FIRST_QUESTION_USER: i64 = 9_000_000;
const IDLE_QUESTIONS: usize = 40;
const QUESTION_INTERVAL: Duration = Duration::from_millis(500);

fn argument(name: &str, default: u64) -> u64 {
    let arguments: Vec<String> = std::env::args().collect();
    arguments
        .iter()
        .position(|argument| argument == name)
        .and_then(|index| arguments.get(index + 1))
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Asks `/help` from a new user and waits for the answer; the time it took.
async fn ask(harness: &LiveJobsHarness, user: i64) -> Option<Duration> {
    let asked = Instant::now();
    harness.telegram.send_text_from_user(user, "/help");
    harness
        .telegram
        .wait_for_call(Duration::from_secs(60), |call| {
            call.method == "sendMessage" && call.chat_id() == Some(user)
        })
        .await
        .map(|_| asked.elapsed())
}

fn summary(name: &str, mut latencies: Vec<Duration>, asked: usize) {
    latencies.sort();
    println!(
        "{name:<34} answered {}/{asked}  p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms",
        latencies.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let job_count = argument("--jobs", 1000) as usize;
    let observed = Duration::from_secs(argument("--seconds", 120));
    let harness = Arc::new(LiveJobsHarness::start(|_| {}).await);

    // The floor: replies on an idle bot.
    harness
        .telegram
        .send_text_from_user(FIRST_QUESTION_USER - 1, "/help");
    let _ = ask(&harness, FIRST_QUESTION_USER - 2).await;
    let mut idle = Vec::new();
    for question in 0..IDLE_QUESTIONS {
        if let Some(latency) = ask(&harness, FIRST_QUESTION_USER + question as i64).await {
            idle.push(latency);
        }
    }

    let started = Instant::now();
    let jobs = Arc::new(harness.start_live_jobs(job_count).await);
    let created = started.elapsed();
    let all_sent = harness
        .wait_for_status_messages(&jobs, Duration::from_secs(600))
        .await;
    println!(
        "{job_count} live jobs created and claimed in {:.1} s; every status message sent: {all_sent} after {:.1} s",
        created.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    let stop = CancellationToken::new();
    let ticker_stop = stop.clone();
    let ticker_harness = Arc::clone(&harness);
    let ticker_jobs = Arc::clone(&jobs);
    let ticker = tokio::spawn(async move {
        let mut seconds = 1;
        let mut longest_tick = Duration::ZERO;
        let mut interval = tokio::time::interval(Duration::from_secs(1));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker_stop.cancelled() => return (seconds - 1, longest_tick),
                _ = interval.tick() => {}
            }
            let tick_started = Instant::now();
            ticker_harness.tick(&ticker_jobs, seconds).await;
            longest_tick = longest_tick.max(tick_started.elapsed());
            seconds += 1;
        }
    });
    // The edits pile up behind the limits for a while before the window opens.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let window_start = harness
        .telegram
        .calls()
        .last()
        .map(|call| call.at)
        .unwrap_or_default();
    let window_started = Instant::now();
    let mut flooded = Vec::new();
    let mut asked = 0;
    let mut user = FIRST_QUESTION_USER + IDLE_QUESTIONS as i64;
    while window_started.elapsed() < observed {
        let question_started = Instant::now();
        asked += 1;
        if let Some(latency) = ask(&harness, user).await {
            flooded.push(latency);
        }
        user += 1;
        tokio::time::sleep(QUESTION_INTERVAL.saturating_sub(question_started.elapsed())).await;
    }
    let calls = harness.telegram.calls();
    let window_end = calls.last().map(|call| call.at).unwrap_or_default();
    stop.cancel();
    let (ticks, longest_tick) = ticker.await.unwrap_or_default();
    let window = window_end.saturating_sub(window_start);
    let (longest, edits) = longest_unrefreshed(&calls, &jobs, window_start, window_end);
    let sent_in_window = calls
        .iter()
        .filter(|call| call.at >= window_start && call.at <= window_end)
        .filter(|call| call.method != "getUpdates" && call.http_status == 200)
        .count();

    println!(
        "window {:.1} s, {ticks} progress ticks (longest tick {:.2} s for {job_count} jobs)",
        window.as_secs_f64(),
        longest_tick.as_secs_f64()
    );
    println!(
        "status edits sent                  {edits} ({:.1}/s); all requests {:.1}/s (limit 30/s)",
        edits as f64 / window.as_secs_f64(),
        sent_in_window as f64 / window.as_secs_f64()
    );
    println!(
        "longest without a refresh          {:.1} s (target < 60 s; {job_count} messages at 30/s: {:.1} s a round)",
        longest.as_secs_f64(),
        job_count as f64 / 30.0
    );
    println!(
        "429 answers provoked               {}",
        harness.telegram.too_many_requests_sent()
    );
    // How evenly the requests go out while the queue is saturated: the gaps between
    // consecutive requests the fake received in the window.
    let mut arrivals: Vec<Duration> = calls
        .iter()
        .filter(|call| call.at >= window_start && call.at <= window_end)
        .filter(|call| call.method != "getUpdates")
        .map(|call| call.at)
        .collect();
    arrivals.sort();
    let mut gaps: Vec<Duration> = arrivals
        .windows(2)
        .map(|pair| pair[1].saturating_sub(pair[0]))
        .collect();
    let gaps_over_100_ms = gaps
        .iter()
        .filter(|gap| **gap > Duration::from_millis(100))
        .count();
    gaps.sort();
    println!(
        "gaps between requests              p50 {:.1} ms  p90 {:.1} ms  max {:.1} ms; {gaps_over_100_ms} gaps over 100 ms",
        percentile(&gaps, 0.5).as_secs_f64() * 1000.0,
        percentile(&gaps, 0.9).as_secs_f64() * 1000.0,
        gaps.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
    );
    summary("reply latency, idle bot", idle, IDLE_QUESTIONS);
    summary("reply latency, edits flooding", flooded, asked);
    match Arc::try_unwrap(harness) {
        Ok(harness) => harness.stop().await,
        Err(_) => eprintln!("the harness is still shared"),
    }
}
