//! Peak resident memory of one process recording under each attack of the testkit's hostile
//! origin, next to a clean recording in the same run (issue 11). For every row the peak (VmHWM)
//! is reset first (`/proc/self/clear_refs`), then an attacked recording and a clean one run side
//! by side; the row shows the peak, its growth over the resident size before the row, how the
//! attacked recording ended, and whether the clean one lost anything.
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

async fn record(url: &str, timeline_seconds: f64) -> (String, usize, usize) {
    let directory = match tempfile::tempdir() {
        Ok(directory) => directory,
        Err(error) => return (format!("no tempdir: {error}"), 0, 0),
    };
    let Ok(url) = Url::parse(url) else {
        return ("bad url".to_string(), 0, 0);
    };
    let mut config = TrackRecorderConfig::new("main", url, directory.path().to_path_buf());
    config.stall_timeout = Duration::from_secs(20);
    config.stop_grace = Duration::from_secs(3);
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

fn reset_peak() {
    // "5" resets VmHWM to the current resident size (Linux).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[tokio::main]
async fn main() {
    let media = match media_fixtures(SegmentKind::MpegTs) {
        Ok(media) => media,
        Err(error) => {
            eprintln!("fixtures: {error}");
            return;
        }
    };
    let default_timeline = HostileTimeline::default();
    let trickle_timeline = HostileTimeline {
        segment_seconds: 0.25,
        window: 20,
        initial: 5,
        total: 120,
        segment_copies: 40,
    };
    let attacks: Vec<(Attack, HostileTimeline)> = vec![
        (Attack::None, default_timeline),
        (Attack::PlaylistAsSegment, default_timeline),
        (Attack::DashAsSegment, default_timeline),
        (Attack::HtmlBody, default_timeline),
        (Attack::DefineBomb, default_timeline),
        (
            Attack::SequenceJump {
                skipped: 10_000_000_000_000,
            },
            default_timeline,
        ),
        (Attack::HostileExtinf("1e20".to_string()), default_timeline),
        (Attack::HostileExtinf("-1".to_string()), default_timeline),
        (Attack::HostileExtinf("NaN".to_string()), default_timeline),
        (
            Attack::ZeroLengthSegments { count: 500_000 },
            default_timeline,
        ),
        (
            Attack::TricklingFirstSegment {
                step: Duration::from_secs(5),
            },
            trickle_timeline,
        ),
        (Attack::HugeInit, default_timeline),
        (
            Attack::KeyRotation,
            HostileTimeline {
                segment_seconds: 0.2,
                total: 60,
                ..default_timeline
            },
        ),
        (
            Attack::KeyChangeBehindSameUri { from_index: 8 },
            default_timeline,
        ),
    ];
    let mut rows = Vec::new();
    for (attack, timeline) in attacks {
        let name = attack.name();
        let timeline_seconds = timeline.total as f64 * timeline.segment_seconds;
        let (Ok(origin), Ok(clean_origin)) = (
            spawn_hostile_origin(attack, timeline, media.clone()).await,
            spawn_hostile_origin(Attack::None, default_timeline, media.clone()).await,
        ) else {
            eprintln!("{name}: the origins did not start");
            continue;
        };
        let attacked_url = origin.media_playlist_url();
        let clean_url = clean_origin.media_playlist_url();
        reset_peak();
        let (_, rss_before) = process_memory_kib().unwrap_or((0, 0));
        let started = Instant::now();
        let ((attacked, _, _), (_, clean_ok, clean_gaps)) = tokio::join!(
            record(&attacked_url, timeline_seconds),
            record(&clean_url, 12.0)
        );
        let (peak, _) = process_memory_kib().unwrap_or((0, 0));
        rows.push(Row {
            name,
            peak_mib: mib(peak),
            growth_mib: mib(peak.saturating_sub(rss_before)),
            seconds: started.elapsed().as_secs_f64(),
            attacked,
            clean_gaps,
            clean_ok,
        });
    }
    println!(
        "| attack | peak RSS (MiB) | peak growth (MiB) | wall s | attacked recording | clean recording beside it |"
    );
    println!("|---|---:|---:|---:|---|---|");
    for row in &rows {
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
}
