//! Peak resident memory of one process recording under each attack of the testkit's hostile
//! origin, next to a clean recording in the same run (issue 11). Every row runs in a process of
//! its own (this example started again with `--row N`): an attacked recording and a clean one
//! side by side; the row shows the process's peak (VmHWM), its growth over the resident size
//! before the recordings, how the attacked recording ended, and whether the clean one lost
//! anything.
//!
//! ```text
//! cargo run --release -p streambot-hls --example bench_hostile
//! ```

use std::time::{Duration, Instant};

use streambot_hls::ledger::{SegmentState, read_ledger_records};
use streambot_hls::{
    DesiredState, FetchLimits, HlsHttpClient, NetworkPolicy, TrackEnd, TrackRecorderConfig,
    record_track,
};
use streambot_testkit::{
    Attack, HostileTimeline, SegmentKind, media_fixtures, process_memory_kib, spawn_hostile_origin,
};
use tokio::sync::{mpsc, watch};
use url::Url;

struct Row {
    name: String,
    peak_mib: f64,
    growth_mib: f64,
    seconds: f64,
    attacked: String,
    clean_gaps: usize,
    clean_ok: usize,
}

async fn record(
    url: &str,
    timeline_seconds: f64,
    unbounded_buffer: bool,
    spill_off: bool,
) -> (String, usize, usize) {
    let directory = match tempfile::tempdir() {
        Ok(directory) => directory,
        Err(error) => return (format!("no tempdir: {error}"), 0, 0),
    };
    let Ok(url) = Url::parse(url) else {
        return ("bad url".to_string(), 0, 0);
    };
    let mut config = TrackRecorderConfig::new("main", url, directory.path().to_path_buf());
    // Long enough for the slowest row's downloads (the huge slow segments take tens of seconds).
    config.stall_timeout = Duration::from_secs_f64(20.0f64.max(timeline_seconds * 2.0));
    config.stop_grace = Duration::from_secs(3);
    if unbounded_buffer {
        // The comparison rows: what the attack costs without the buffer bound and byte budget.
        config.limits.maximum_buffered_segments = usize::MAX;
        config.limits.maximum_buffered_bytes = u64::MAX;
    }
    if unbounded_buffer || spill_off {
        // The comparison rows: bodies stay in memory whatever their size (before the spill).
        config.limits.maximum_in_memory_segment_bytes = u64::MAX;
    }
    let Ok(client) = HlsHttpClient::new(NetworkPolicy::ALLOW_PRIVATE, FetchLimits::default())
    else {
        return ("no client".to_string(), 0, 0);
    };
    let (_control_sender, control) = watch::channel(DesiredState::Record);
    let (events_sender, _events) = mpsc::unbounded_channel();
    let limit = Duration::from_secs_f64(timeline_seconds + 60.0);
    let outcome =
        match tokio::time::timeout(limit, record_track(client, config, control, events_sender))
            .await
        {
            Ok(outcome) => outcome,
            Err(_) => return ("did not end".to_string(), 0, 0),
        };
    let records = read_ledger_records(&outcome.ledger_path).unwrap_or_default();
    let ok = records
        .iter()
        .filter(|record| record.entry.state == SegmentState::Ok)
        .count();
    let gaps = records
        .iter()
        .filter(|record| record.entry.state == SegmentState::Gap)
        .count();
    let end = match &outcome.end {
        TrackEnd::Finished(reason) => format!("{reason:?}, {ok} ok, {gaps} gap lines"),
        TrackEnd::Failed(error) => format!("refused: {}", error.failure_kind().code()),
    };
    (end, ok, gaps)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The trickling-head timeline: 2 MB segments every 0.25 s, 8 MB/s that would pile up behind
/// the head.
fn trickle_timeline() -> HostileTimeline {
    HostileTimeline {
        segment_seconds: 0.25,
        window: 20,
        initial: 5,
        total: 120,
        segment_copies: 40,
    }
}

/// Three endless segments at 8 MiB/s each, all listed at once (each grows to the 128 MiB
/// segment limit).
fn huge_slow_timeline() -> HostileTimeline {
    HostileTimeline {
        segment_seconds: 10.0,
        window: 3,
        initial: 3,
        total: 3,
        segment_copies: 1,
    }
}

/// Row indices of the comparisons: the trickling head and the huge slow segments with the
/// buffer bound (and the track's byte budget) switched off.
const UNBOUNDED_ROWS: [usize; 2] = [11, 17];

/// Row index of the huge slow segments with the spill to disk switched off (the byte budget on):
/// how a track held them before bodies spilled.
const SPILL_OFF_ROWS: [usize; 1] = [18];

fn attacks() -> Vec<(Attack, HostileTimeline, SegmentKind)> {
    let default_timeline = HostileTimeline::default();
    let ts = SegmentKind::MpegTs;
    vec![
        (Attack::None, default_timeline, ts),
        (Attack::PlaylistAsSegment, default_timeline, ts),
        (Attack::DashAsSegment, default_timeline, ts),
        (Attack::HtmlBody, default_timeline, ts),
        (Attack::DefineBomb, default_timeline, ts),
        (
            Attack::SequenceJump {
                skipped: 10_000_000_000_000,
            },
            default_timeline,
            ts,
        ),
        (
            Attack::HostileExtinf("1e20".to_string()),
            default_timeline,
            ts,
        ),
        (
            Attack::HostileExtinf("-1".to_string()),
            default_timeline,
            ts,
        ),
        (
            Attack::HostileExtinf("NaN".to_string()),
            default_timeline,
            ts,
        ),
        (
            Attack::ZeroLengthSegments { count: 500_000 },
            default_timeline,
            ts,
        ),
        (
            Attack::TricklingFirstSegment {
                step: Duration::from_secs(5),
            },
            trickle_timeline(),
            ts,
        ),
        (
            Attack::TricklingFirstSegment {
                step: Duration::from_secs(5),
            },
            trickle_timeline(),
            ts,
        ),
        (Attack::HugeInit, default_timeline, SegmentKind::Fmp4),
        (
            Attack::KeyRotation,
            HostileTimeline {
                segment_seconds: 0.2,
                total: 60,
                ..default_timeline
            },
            ts,
        ),
        (
            Attack::KeyChangeBehindSameUri { from_index: 8 },
            default_timeline,
            ts,
        ),
        (
            Attack::RestartWithNewInit { at_index: 8 },
            default_timeline,
            SegmentKind::Fmp4,
        ),
        (
            Attack::HugeSlowSegments {
                bytes_per_second: 8 * 1024 * 1024,
            },
            huge_slow_timeline(),
            ts,
        ),
        (
            Attack::HugeSlowSegments {
                bytes_per_second: 8 * 1024 * 1024,
            },
            huge_slow_timeline(),
            ts,
        ),
        (
            Attack::HugeSlowSegments {
                bytes_per_second: 8 * 1024 * 1024,
            },
            huge_slow_timeline(),
            ts,
        ),
        // Issue 11, round 2 (rows 19 to 21): a playlist behind an audio frame header.
        (
            Attack::PlaylistBehindMediaHeader {
                header: vec![0xFF, 0xFB, 0x90, 0x00],
            },
            default_timeline,
            ts,
        ),
        (
            Attack::PlaylistBehindMediaHeader {
                header: vec![0x0B, 0x77, 0x00, 0x00, 0x08, 0x40, 0x00],
            },
            default_timeline,
            ts,
        ),
        (
            Attack::PlaylistBehindMediaHeader {
                header: vec![0xFF, 0xF1, 0x50, 0x83, 0xFF, 0xFF, 0xFC],
            },
            default_timeline,
            ts,
        ),
    ]
}

/// Runs row `index` in this process and prints it as one table line.
async fn run_row(index: usize) {
    let Some((attack, timeline, kind)) = attacks().into_iter().nth(index) else {
        return;
    };
    let (Ok(media), Ok(clean_media)) = (media_fixtures(kind), media_fixtures(SegmentKind::MpegTs))
    else {
        eprintln!("fixtures (ffmpeg) missing");
        return;
    };
    let unbounded = UNBOUNDED_ROWS.contains(&index);
    let spill_off = SPILL_OFF_ROWS.contains(&index);
    let name = if unbounded {
        format!("{} (buffer bound off, for comparison)", attack.name())
    } else if spill_off {
        format!("{} (spill to disk off, for comparison)", attack.name())
    } else {
        attack.name()
    };
    let timeline_seconds = timeline.total as f64 * timeline.segment_seconds;
    let (Ok(origin), Ok(clean_origin)) = (
        spawn_hostile_origin(attack, timeline, media).await,
        spawn_hostile_origin(Attack::None, HostileTimeline::default(), clean_media).await,
    ) else {
        eprintln!("{name}: the origins did not start");
        return;
    };
    let attacked_url = origin.media_playlist_url();
    let clean_url = clean_origin.media_playlist_url();
    let (_, rss_before) = process_memory_kib().unwrap_or((0, 0));
    let started = Instant::now();
    let ((attacked, _, _), (_, clean_ok, clean_gaps)) = tokio::join!(
        record(&attacked_url, timeline_seconds, unbounded, spill_off),
        record(&clean_url, 12.0, false, false)
    );
    let (peak, _) = process_memory_kib().unwrap_or((0, 0));
    let row = Row {
        name,
        peak_mib: mib(peak),
        growth_mib: mib(peak.saturating_sub(rss_before)),
        seconds: started.elapsed().as_secs_f64(),
        attacked,
        clean_gaps,
        clean_ok,
    };
    println!(
        "| {} | {:.1} | {:.1} | {:.1} | {} | {} ok, {} gaps |",
        row.name,
        row.peak_mib,
        row.growth_mib,
        row.seconds,
        row.attacked,
        row.clean_ok,
        row.clean_gaps
    );
}

#[tokio::main]
async fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    if let Some(position) = arguments.iter().position(|argument| argument == "--row") {
        if let Some(index) = arguments
            .get(position + 1)
            .and_then(|text| text.parse::<usize>().ok())
        {
            run_row(index).await;
        }
        return;
    }
    // Each row in a process of its own, so that each peak (VmHWM) is that row's alone.
    let Ok(executable) = std::env::current_exe() else {
        eprintln!("cannot find this executable");
        return;
    };
    println!(
        "| attack | peak RSS (MiB) | growth during the row (MiB) | wall s | attacked recording | clean recording beside it |"
    );
    println!("|---|---:|---:|---:|---|---|");
    for index in 0..attacks().len() {
        match tokio::process::Command::new(&executable)
            .arg("--row")
            .arg(index.to_string())
            .kill_on_drop(true)
            .output()
            .await
        {
            Ok(output) => print!("{}", String::from_utf8_lossy(&output.stdout)),
            Err(error) => eprintln!("row {index}: {error}"),
        }
    }
}
