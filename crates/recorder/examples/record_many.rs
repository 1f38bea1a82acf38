//! `record_many`: N recordings of one link at once in one process, for the concurrency benchmark
//! (`scripts/bench-concurrency.sh`, issue 2 item 8).
//!
//! ```text
//! record_many --count N --url URL --output DIR [--for 60s] [--stall-timeout 30s]
//!             [--fsync-interval 2s] [--idle-connections 4096]
//! ```
//!
//! Runs N `streambot_recorder::record` calls concurrently in one multi-thread tokio runtime (default
//! worker count), sharing one `HlsHttpClient`, each into `DIR/rec-<i>/`. When all have ended it reads
//! each `main-ledger.jsonl` and prints one JSON line: per recording the segments ok, gaps, sequences
//! missing from the ledger between its first and last entry, first and last media sequence, and the
//! seconds from start to the first committed segment; then a summary.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::Serialize;
use streambot_core::{RecordingOptions, parse_duration_text};
use streambot_hls::{DesiredState, FetchLimits, HlsHttpClient, NetworkPolicy, TrackEvent};
use streambot_recorder::{RecorderEvent, RecordingSettings, record};
use tokio::sync::{mpsc, watch};

const USAGE: &str = "usage: record_many --count N --url URL --output DIR [--for 60s] \
[--stall-timeout 30s] [--fsync-interval 2s] [--idle-connections 4096]";

struct CommandLine {
    count: usize,
    url: String,
    output: PathBuf,
    maximum_duration: Option<Duration>,
    stall_timeout: Option<Duration>,
    /// For experiments only: the recorder's default is kept unless given.
    fsync_interval: Option<Duration>,
    /// For experiments only: idle keep-alive connections kept per host (the client's default
    /// unless given).
    idle_connections: Option<usize>,
}

fn parse_command_line(arguments: &[String]) -> Result<CommandLine, String> {
    let mut count = None;
    let mut url = None;
    let mut output = None;
    let mut maximum_duration = None;
    let mut stall_timeout = None;
    let mut fsync_interval = None;
    let mut idle_connections = None;
    let mut remaining = arguments.iter();
    while let Some(flag) = remaining.next() {
        let mut value_of = |name: &str| -> Result<String, String> {
            remaining
                .next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        let duration_of = |name: &str, text: String| -> Result<Duration, String> {
            parse_duration_text(&text).map_err(|error| format!("{name}: {error}"))
        };
        match flag.as_str() {
            "--count" => {
                let text = value_of("--count")?;
                count = Some(
                    text.parse::<usize>()
                        .map_err(|_| format!("--count wants a whole number, got {text:?}"))?,
                );
            }
            "--url" => url = Some(value_of("--url")?),
            "--output" => output = Some(PathBuf::from(value_of("--output")?)),
            "--for" => maximum_duration = Some(duration_of("--for", value_of("--for")?)?),
            "--stall-timeout" => {
                stall_timeout = Some(duration_of(
                    "--stall-timeout",
                    value_of("--stall-timeout")?,
                )?)
            }
            "--fsync-interval" => {
                fsync_interval = Some(duration_of(
                    "--fsync-interval",
                    value_of("--fsync-interval")?,
                )?)
            }
            "--idle-connections" => {
                let text = value_of("--idle-connections")?;
                idle_connections = Some(text.parse::<usize>().map_err(|_| {
                    format!("--idle-connections wants a whole number, got {text:?}")
                })?);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(CommandLine {
        count: count.ok_or("--count is required")?,
        url: url.ok_or("--url is required")?,
        output: output.ok_or("--output is required")?,
        maximum_duration,
        stall_timeout,
        fsync_interval,
        idle_connections,
    })
}

/// One recording's figures.
#[derive(Debug, Serialize)]
struct RecordingFigures {
    index: usize,
    outcome: String,
    segments_ok: u64,
    gaps: u64,
    /// Sequences between the first and last ledger entry that have no ledger line at all.
    missing_in_ledger: u64,
    first_media_sequence: Option<u64>,
    last_media_sequence: Option<u64>,
    seconds_to_first_segment: Option<f64>,
    ledger_error: Option<String>,
}

#[derive(Debug, Serialize)]
struct Summary {
    count: usize,
    wall_seconds: f64,
    failed_recordings: usize,
    total_segments_ok: u64,
    total_gaps: u64,
    total_missing_in_ledger: u64,
    median_seconds_to_first_segment: Option<f64>,
    max_seconds_to_first_segment: Option<f64>,
    recordings_without_segments: usize,
}

#[derive(Debug, Serialize)]
struct Output {
    summary: Summary,
    recordings: Vec<RecordingFigures>,
}

#[derive(Debug, Default)]
struct LedgerCounts {
    segments_ok: u64,
    gaps: u64,
    missing: u64,
    first: Option<u64>,
    last: Option<u64>,
}

/// Reads `main-ledger.jsonl`: ok and gap lines, and sequences with no line between first and last.
fn count_ledger(path: &Path) -> Result<LedgerCounts, String> {
    let text = std::fs::read_to_string(path).map_err(|error| format!("{path:?}: {error}"))?;
    let mut counts = LedgerCounts::default();
    let mut sequences = std::collections::BTreeSet::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(line)
            .map_err(|error| format!("{path:?} line {}: {error}", number + 1))?;
        let sequence = value["media_sequence"]
            .as_u64()
            .ok_or_else(|| format!("{path:?} line {}: no media_sequence", number + 1))?;
        match value["state"].as_str() {
            Some("ok") => counts.segments_ok += 1,
            Some("gap") => counts.gaps += 1,
            _ => {}
        }
        sequences.insert(sequence);
    }
    counts.first = sequences.first().copied();
    counts.last = sequences.last().copied();
    if let (Some(first), Some(last)) = (counts.first, counts.last) {
        counts.missing = (last - first + 1).saturating_sub(sequences.len() as u64);
    }
    Ok(counts)
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    })
}

async fn run(command_line: CommandLine) -> Result<Output, String> {
    let mut limits = FetchLimits::default();
    if let Some(idle_connections) = command_line.idle_connections {
        limits.maximum_idle_connections_per_host = idle_connections;
    }
    let client = HlsHttpClient::new(NetworkPolicy::ALLOW_PRIVATE, limits)
        .map_err(|error| format!("cannot build the HTTP client: {error}"))?;
    let mut options = RecordingOptions {
        maximum_duration: command_line.maximum_duration,
        ..RecordingOptions::default()
    };
    if let Some(stall_timeout) = command_line.stall_timeout {
        options.stall_timeout = stall_timeout;
    }
    // Kept alive until every recording ended, so the controls stay at Record.
    let (_control_sender, control) = watch::channel(DesiredState::Record);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(command_line.count);
    for index in 0..command_line.count {
        let directory = command_line.output.join(format!("rec-{index}"));
        let mut settings = RecordingSettings::new(directory.clone());
        if let Some(fsync_interval) = command_line.fsync_interval {
            settings.fsync_interval = fsync_interval;
        }
        let (events_sender, mut events) = mpsc::unbounded_channel::<RecorderEvent>();
        let client = client.clone();
        let url = command_line.url.clone();
        let options = options.clone();
        let control = control.clone();
        let recording =
            async move { record(client, &url, options, settings, control, events_sender).await };
        let first_commit = async move {
            let mut first = None;
            while let Some(event) = events.recv().await {
                if first.is_none()
                    && let RecorderEvent::Track {
                        event: TrackEvent::SegmentCommitted { track, .. },
                    } = &event
                    && track == "main"
                {
                    first = Some(started.elapsed().as_secs_f64());
                }
            }
            first
        };
        tasks.push(tokio::spawn(async move {
            let (report, first) = tokio::join!(recording, first_commit);
            let outcome = match serde_json::to_value(&report.outcome) {
                Ok(value) => value.to_string(),
                Err(error) => error.to_string(),
            };
            (index, directory, outcome, first)
        }));
    }
    let mut recordings = Vec::with_capacity(tasks.len());
    let mut failed_recordings = 0;
    for task in tasks {
        let (index, directory, outcome, first) = task
            .await
            .map_err(|error| format!("a recording task failed: {error}"))?;
        if outcome.contains("\"failed\"") {
            failed_recordings += 1;
        }
        let (counts, ledger_error) = match count_ledger(&directory.join("main-ledger.jsonl")) {
            Ok(counts) => (counts, None),
            Err(error) => (LedgerCounts::default(), Some(error)),
        };
        recordings.push(RecordingFigures {
            index,
            outcome,
            segments_ok: counts.segments_ok,
            gaps: counts.gaps,
            missing_in_ledger: counts.missing,
            first_media_sequence: counts.first,
            last_media_sequence: counts.last,
            seconds_to_first_segment: first,
            ledger_error,
        });
    }
    let wall_seconds = started.elapsed().as_secs_f64();
    let mut firsts: Vec<f64> = recordings
        .iter()
        .filter_map(|recording| recording.seconds_to_first_segment)
        .collect();
    let summary = Summary {
        count: recordings.len(),
        wall_seconds,
        failed_recordings,
        total_segments_ok: recordings.iter().map(|r| r.segments_ok).sum(),
        total_gaps: recordings.iter().map(|r| r.gaps).sum(),
        total_missing_in_ledger: recordings.iter().map(|r| r.missing_in_ledger).sum(),
        recordings_without_segments: recordings.len() - firsts.len(),
        max_seconds_to_first_segment: firsts.iter().copied().reduce(f64::max),
        median_seconds_to_first_segment: median(&mut firsts),
    };
    Ok(Output {
        summary,
        recordings,
    })
}

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    if arguments
        .iter()
        .any(|argument| argument == "--help" || argument == "-h")
    {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let command_line = match parse_command_line(&arguments) {
        Ok(command_line) => command_line,
        Err(message) => {
            eprintln!("record_many: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("record_many: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(command_line)) {
        Ok(output) => match serde_json::to_string(&output) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("record_many: {error}");
                ExitCode::FAILURE
            }
        },
        Err(message) => {
            eprintln!("record_many: {message}");
            ExitCode::FAILURE
        }
    }
}
