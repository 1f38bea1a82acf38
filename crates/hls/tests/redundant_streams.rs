//! Redundant streams (RFC 8216 §6.2.4) against two real origins on 127.0.0.1 serving the same
//! rendition: a primary with faults and a backup. A segment the primary cannot deliver comes from
//! the backup by media sequence; a primary whose playlist is gone for half its window is replaced
//! by the backup. The central assertion: zero loss, byte for byte against the served segments,
//! with the ledger's `source` saying which lines came from the backup, in one part.

use std::time::Duration;

use streambot_core::RecordingEndReason;
use streambot_hls::ledger::{LedgerRecord, SegmentState, read_ledger_records};
use streambot_hls::{
    DesiredState, FetchLimits, HlsHttpClient, NetworkPolicy, TrackEnd, TrackEvent, TrackOutcome,
    TrackRecorderConfig, record_track,
};
use streambot_testkit::{
    Fault, OriginConfig, OriginHandle, SegmentKind, media_fixtures, spawn_origin,
};
use tokio::sync::{mpsc, watch};
use url::Url;

const FIRST_MEDIA_SEQUENCE: u64 = 1000;
const WINDOW: u64 = 10;
const LIVE_SEGMENTS: u64 = 22;

fn seconds(value: f64) -> Duration {
    Duration::from_secs_f64(value)
}

fn origin_config() -> OriginConfig {
    OriginConfig::new(SegmentKind::MpegTs)
        .with_window_segments(WINDOW)
        .with_initial_segments(WINDOW)
        .with_first_media_sequence(FIRST_MEDIA_SEQUENCE)
        .with_total_segments(WINDOW + LIVE_SEGMENTS)
}

struct Recorded {
    primary: OriginHandle,
    backup: OriginHandle,
    outcome: TrackOutcome,
    records: Vec<LedgerRecord>,
    events: Vec<TrackEvent>,
    _directory: tempfile::TempDir,
}

async fn record_with_backup(primary: OriginConfig, backup: OriginConfig) -> Recorded {
    let (primary, backup) = tokio::join!(spawn_origin(primary), spawn_origin(backup));
    let (primary, backup) = (
        primary.expect("primary starts"),
        backup.expect("backup starts"),
    );
    let directory = tempfile::tempdir().expect("tempdir");
    let mut config = TrackRecorderConfig::new(
        "main",
        Url::parse(&primary.media_playlist_url()).expect("url"),
        directory.path().to_path_buf(),
    );
    config.backup_media_playlist_urls =
        vec![Url::parse(&backup.media_playlist_url()).expect("url")];
    config.stall_timeout = Duration::from_secs(30);
    config.fsync_interval = Duration::from_millis(500);
    config.stop_grace = Duration::from_secs(5);
    let limits = FetchLimits {
        read_timeout: Duration::from_secs(5),
        ..FetchLimits::default()
    };
    let client = HlsHttpClient::new(NetworkPolicy::ALLOW_PRIVATE, limits).expect("client");
    let (_control_sender, control) = watch::channel(DesiredState::Record);
    let (events_sender, mut events_receiver) = mpsc::unbounded_channel();
    let outcome = tokio::time::timeout(
        Duration::from_secs(120),
        record_track(client, config, control, events_sender),
    )
    .await
    .expect("the recording ends by itself");
    let mut events = Vec::new();
    while let Ok(event) = events_receiver.try_recv() {
        events.push(event);
    }
    let records = read_ledger_records(&outcome.ledger_path).expect("ledger");
    Recorded {
        primary,
        backup,
        outcome,
        records,
        events,
        _directory: directory,
    }
}

fn expected_segment_bytes(media_sequence: u64) -> Vec<u8> {
    let set = media_fixtures(SegmentKind::MpegTs).expect("fixtures");
    let index = ((media_sequence - FIRST_MEDIA_SEQUENCE) as usize) % set.segments.len();
    set.segments[index].to_vec()
}

fn assert_stream_ended(recorded: &Recorded) {
    match &recorded.outcome.end {
        TrackEnd::Finished(reason) => assert_eq!(reason, &RecordingEndReason::StreamEnded),
        TrackEnd::Failed(error) => panic!("recording failed: {error}"),
    }
}

/// Every sequence from the first taken to the end of the stream is ok, once, in order, and the
/// one part is exactly those segments' bytes.
fn assert_nothing_lost(recorded: &Recorded) {
    let gaps: Vec<(u64, Option<String>)> = recorded
        .records
        .iter()
        .filter(|record| record.entry.state == SegmentState::Gap)
        .map(|record| (record.entry.media_sequence, record.reason.clone()))
        .collect();
    assert!(gaps.is_empty(), "gaps: {gaps:?}");
    let ok: Vec<u64> = recorded
        .records
        .iter()
        .filter(|record| record.entry.state == SegmentState::Ok)
        .map(|record| record.entry.media_sequence)
        .collect();
    let first = *ok.first().expect("something recorded");
    let last_published = recorded
        .primary
        .sequences_published()
        .into_iter()
        .chain(recorded.backup.sequences_published())
        .max()
        .expect("published");
    assert_eq!(ok, (first..=last_published).collect::<Vec<u64>>());
    assert_eq!(
        recorded.outcome.parts.len(),
        1,
        "{:?}",
        recorded.outcome.parts
    );
    let actual = std::fs::read(&recorded.outcome.parts[0].path).expect("part");
    let expected: Vec<u8> = ok
        .iter()
        .flat_map(|sequence| expected_segment_bytes(*sequence))
        .collect();
    assert!(
        actual == expected,
        "part bytes differ from the segments served"
    );
}

fn sequences_from_backup(records: &[LedgerRecord]) -> Vec<u64> {
    records
        .iter()
        .filter(|record| record.source.as_deref() == Some("backup-1"))
        .map(|record| record.entry.media_sequence)
        .collect()
}

fn served_ok_by(origin: &OriginHandle, sequence: u64) -> bool {
    origin.sequences_served_ok().contains(&sequence)
}

#[tokio::test]
async fn a_503_burst_longer_than_the_window_on_the_primary_is_filled_from_the_backup() {
    // 14 s of 503 on every segment of the primary with a 10 s window: without the backup the
    // segments listed in the first seconds of the burst would be gaps.
    let primary = origin_config().with_fault(Fault::SegmentHttpStatus {
        from: seconds(2.0),
        to: seconds(16.0),
        status: 503,
    });
    let recorded = record_with_backup(primary, origin_config()).await;
    assert_stream_ended(&recorded);
    assert_nothing_lost(&recorded);
    let from_backup = sequences_from_backup(&recorded.records);
    assert!(!from_backup.is_empty(), "nothing came from the backup");
    for record in &recorded.records {
        let sequence = record.entry.media_sequence;
        match record.source.as_deref() {
            // Each line says where its bytes came from.
            Some("backup-1") => assert!(served_ok_by(&recorded.backup, sequence), "{sequence}"),
            None => assert!(served_ok_by(&recorded.primary, sequence), "{sequence}"),
            other => panic!("unexpected source {other:?}"),
        }
    }
    // No switch: the primary's playlist never went away.
    assert!(
        !recorded
            .events
            .iter()
            .any(|event| matches!(event, TrackEvent::SourceSwitched { .. }))
    );
}

#[tokio::test]
async fn a_primary_gone_longer_than_the_window_is_replaced_by_the_backup() {
    // 18 s without any answer from the primary (playlists and segments), window 10 s.
    let primary = origin_config().with_fault(Fault::Outage {
        from: seconds(2.0),
        to: seconds(20.0),
    });
    let recorded = record_with_backup(primary, origin_config()).await;
    assert_stream_ended(&recorded);
    assert_nothing_lost(&recorded);
    let switches: Vec<(String, String)> = recorded
        .events
        .iter()
        .filter_map(|event| match event {
            TrackEvent::SourceSwitched { from, to, .. } => Some((from.clone(), to.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        switches,
        vec![("primary".to_string(), "backup-1".to_string())]
    );
    // Everything after the switch came from the backup, and is labelled so.
    let last = recorded.records.last().expect("ledger");
    assert_eq!(last.source.as_deref(), Some("backup-1"));
    assert!(sequences_from_backup(&recorded.records).len() >= 10);
}

#[tokio::test]
async fn a_segment_both_sources_lack_is_a_gap_naming_both() {
    let missing = |config: OriginConfig| {
        config.with_fault(Fault::SegmentHttpStatus {
            from: seconds(2.0),
            to: seconds(18.0),
            status: 404,
        })
    };
    let recorded = record_with_backup(missing(origin_config()), missing(origin_config())).await;
    assert_stream_ended(&recorded);
    let reasons: Vec<String> = recorded
        .records
        .iter()
        .filter(|record| record.entry.state == SegmentState::Gap)
        .filter_map(|record| record.reason.clone())
        .collect();
    assert!(!reasons.is_empty(), "no gap");
    for reason in &reasons {
        assert!(
            reason.starts_with("primary: HTTP 404; backup-1: ")
                && (reason.ends_with("HTTP 404") || reason.ends_with("not in its playlist")),
            "{reason}"
        );
    }
    // The rest is still recorded, and nothing was served that is called a gap.
    for record in &recorded.records {
        if record.entry.state == SegmentState::Gap {
            let sequence = record.entry.media_sequence;
            assert!(!served_ok_by(&recorded.primary, sequence));
            assert!(!served_ok_by(&recorded.backup, sequence));
        }
    }
}
