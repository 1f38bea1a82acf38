//! The live fetcher against the hostile origin of the testkit (issue 11): one test per attack,
//! each run next to a clean recording of a clean origin in the same process. Each asserts: no
//! panic, the process stays under a stated memory bound (VmHWM of /proc/self/status, generous),
//! the clean recording goes on without a gap, the specific reason is in the ledger or the error,
//! and every part holds exactly the origin's media bytes for its ok segments (no foreign byte).

use std::time::Duration;

use streambot_core::{FailureKind, RecordingEndReason};
use streambot_hls::ledger::{LedgerRecord, SegmentState, read_ledger_records};
use streambot_hls::{
    DesiredState, FetchLimits, HlsHttpClient, NetworkPolicy, TrackEnd, TrackOutcome,
    TrackRecorderConfig, record_track,
};
use streambot_testkit::{
    Attack, HostileOrigin, HostileTimeline, SegmentKind, media_fixtures, process_memory_kib,
    spawn_hostile_origin,
};
use tokio::sync::{mpsc, watch};
use url::Url;

/// Growth of the peak resident memory allowed during one attack (the issue saw 0.4 to 5.6 GB).
const MEMORY_BOUND_KIB: u64 = 200 * 1024;

struct Recording {
    outcome: TrackOutcome,
    records: Vec<LedgerRecord>,
    _directory: tempfile::TempDir,
}

struct AttackRun {
    attacked: Recording,
    origin: HostileOrigin,
    clean: Recording,
    clean_origin: HostileOrigin,
    peak_growth_kib: u64,
}

async fn record(url: &str, adjust: &(dyn Fn(&mut TrackRecorderConfig) + Sync)) -> Recording {
    let directory = tempfile::tempdir().expect("tempdir");
    let mut config = TrackRecorderConfig::new(
        "main",
        Url::parse(url).expect("url"),
        directory.path().to_path_buf(),
    );
    config.stall_timeout = Duration::from_secs(15);
    config.stop_grace = Duration::from_secs(3);
    config.fsync_interval = Duration::from_millis(500);
    adjust(&mut config);
    let limits = FetchLimits {
        read_timeout: Duration::from_secs(5),
        ..FetchLimits::default()
    };
    let client = HlsHttpClient::new(NetworkPolicy::ALLOW_PRIVATE, limits).expect("client");
    let (_control_sender, control) = watch::channel(DesiredState::Record);
    let (events_sender, _events) = mpsc::unbounded_channel();
    let outcome = tokio::time::timeout(
        Duration::from_secs(90),
        record_track(client, config, control, events_sender),
    )
    .await
    .expect("the recording ends by itself");
    let records = read_ledger_records(&outcome.ledger_path).expect("ledger");
    Recording {
        outcome,
        records,
        _directory: directory,
    }
}

async fn run_attack(
    attack: Attack,
    timeline: HostileTimeline,
    adjust: &(dyn Fn(&mut TrackRecorderConfig) + Sync),
) -> AttackRun {
    let media = media_fixtures(SegmentKind::MpegTs).expect("fixtures (ffmpeg)");
    let (_, rss_before) = process_memory_kib().expect("/proc/self/status");
    let origin = spawn_hostile_origin(attack, timeline, media.clone())
        .await
        .expect("hostile origin");
    let clean_origin = spawn_hostile_origin(Attack::None, HostileTimeline::default(), media)
        .await
        .expect("clean origin");
    let attacked_url = origin.media_playlist_url();
    let clean_url = clean_origin.media_playlist_url();
    let (attacked, clean) =
        tokio::join!(record(&attacked_url, adjust), record(&clean_url, &|_| {}));
    let (peak_after, _) = process_memory_kib().expect("/proc/self/status");
    AttackRun {
        attacked,
        origin,
        clean,
        clean_origin,
        peak_growth_kib: peak_after.saturating_sub(rss_before),
    }
}

fn ok_records(records: &[LedgerRecord]) -> Vec<&LedgerRecord> {
    records
        .iter()
        .filter(|record| record.entry.state == SegmentState::Ok)
        .collect()
}

fn gap_records(records: &[LedgerRecord]) -> Vec<&LedgerRecord> {
    records
        .iter()
        .filter(|record| record.entry.state == SegmentState::Gap)
        .collect()
}

/// What part `number` must hold: `init`, then the origin's clear bytes of its ok segments in
/// ledger order.
fn origin_bytes_of_part(
    recording: &Recording,
    origin: &HostileOrigin,
    number: u32,
    init: &[u8],
) -> Vec<u8> {
    let mut expected = init.to_vec();
    for record in ok_records(&recording.records)
        .into_iter()
        .filter(|record| record.entry.part == number)
    {
        let index = origin.index_of(record.entry.epoch, record.entry.media_sequence);
        expected.extend_from_slice(&origin.clear_segment(index));
    }
    expected
}

/// Every part is exactly the origin's clear bytes of its ok segments, in ledger order.
fn assert_no_foreign_byte(recording: &Recording, origin: &HostileOrigin) {
    for part in &recording.outcome.parts {
        let bytes = std::fs::read(&part.path).expect("part");
        let expected = origin_bytes_of_part(recording, origin, part.number, &[]);
        assert!(
            bytes == expected,
            "{} holds {} bytes that are not the origin's {} media bytes",
            part.path.display(),
            bytes.len(),
            expected.len()
        );
        for needle in [&b"#EXTM3U"[..], b"file://", b"<MPD", b"<html"] {
            assert!(
                !bytes.windows(needle.len()).any(|window| window == needle),
                "{} holds {:?}",
                part.path.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }
}

fn assert_clean_recording_unharmed(run: &AttackRun) {
    match &run.clean.outcome.end {
        TrackEnd::Finished(RecordingEndReason::StreamEnded) => {}
        other => panic!("the clean recording ended with {other:?}"),
    }
    assert!(
        gap_records(&run.clean.records).is_empty(),
        "the clean recording has gaps: {:?}",
        gap_records(&run.clean.records)
    );
    assert!(!ok_records(&run.clean.records).is_empty());
    assert_no_foreign_byte(&run.clean, &run.clean_origin);
}

fn assert_memory_bounded(run: &AttackRun, bound_kib: u64) {
    assert!(
        run.peak_growth_kib < bound_kib,
        "peak memory grew by {} KiB (bound {bound_kib} KiB)",
        run.peak_growth_kib
    );
}

fn assert_stream_ended(recording: &Recording) {
    assert!(
        matches!(
            recording.outcome.end,
            TrackEnd::Finished(RecordingEndReason::StreamEnded)
        ),
        "{:?}",
        recording.outcome.end
    );
}

fn assert_not_panicked(outcome: &TrackOutcome) {
    if let TrackEnd::Failed(error) = &outcome.end {
        assert!(!error.to_string().contains("panicked"), "{error}");
    }
}

fn assert_gap_reason(recording: &Recording, expected: &str) {
    let gaps = gap_records(&recording.records);
    assert!(
        gaps.iter().any(|record| record
            .reason
            .as_deref()
            .is_some_and(|reason| reason.contains(expected))),
        "no gap says {expected:?}: {:?}",
        gaps.iter().map(|record| &record.reason).collect::<Vec<_>>()
    );
}

async fn assert_foreign_body_is_a_gap(attack: Attack, expected_reason: &str) {
    let run = run_attack(attack, HostileTimeline::default(), &|_| {}).await;
    assert_not_panicked(&run.attacked.outcome);
    assert_gap_reason(&run.attacked, expected_reason);
    assert_gap_reason(&run.attacked, "not media");
    let attacked_sequence = run
        .origin
        .media_sequence_of(streambot_testkit::ATTACKED_SEGMENT_INDEX);
    let gap = gap_records(&run.attacked.records)
        .into_iter()
        .find(|record| record.entry.media_sequence == attacked_sequence)
        .expect("the foreign body is a gap");
    assert!(
        gap.entry.failed_attempts > 1,
        "not media is retried before it is a gap"
    );
    // Every other segment is recorded.
    assert_eq!(gap_records(&run.attacked.records).len(), 1);
    assert!(ok_records(&run.attacked.records).len() >= 5);
    assert_no_foreign_byte(&run.attacked, &run.origin);
    assert_clean_recording_unharmed(&run);
    assert_memory_bounded(&run, MEMORY_BOUND_KIB);
}

#[tokio::test]
async fn a_playlist_served_as_a_segment_never_reaches_the_part() {
    assert_foreign_body_is_a_gap(Attack::PlaylistAsSegment, "the body is an HLS playlist").await;
}

#[tokio::test]
async fn a_dash_manifest_served_as_a_segment_never_reaches_the_part() {
    assert_foreign_body_is_a_gap(Attack::DashAsSegment, "the body is a DASH manifest").await;
}

#[tokio::test]
async fn an_html_page_served_as_a_segment_never_reaches_the_part() {
    assert_foreign_body_is_a_gap(Attack::HtmlBody, "the body is an HTML page").await;
}

#[tokio::test]
async fn a_define_bomb_is_refused_with_the_limit() {
    let run = run_attack(Attack::DefineBomb, HostileTimeline::default(), &|_| {}).await;
    match &run.attacked.outcome.end {
        TrackEnd::Failed(error) => {
            assert_eq!(error.failure_kind(), FailureKind::LimitReached, "{error}");
            assert!(
                error
                    .to_string()
                    .contains("bytes after variable substitution"),
                "{error}"
            );
            assert!(!error.is_retryable());
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(run.attacked.outcome.parts.is_empty());
    assert_clean_recording_unharmed(&run);
    assert_memory_bounded(&run, MEMORY_BOUND_KIB);
}

#[tokio::test]
async fn a_sequence_jump_to_ten_trillion_is_one_range_gap() {
    let skipped = 10_000_000_000_000;
    let run = run_attack(
        Attack::SequenceJump { skipped },
        HostileTimeline::default(),
        &|_| {},
    )
    .await;
    assert_stream_ended(&run.attacked);
    let gaps = gap_records(&run.attacked.records);
    assert_eq!(gaps.len(), 1, "one line for the whole jump: {gaps:?}");
    assert_eq!(gaps[0].segment_count(), skipped);
    assert_eq!(
        gaps[0].reason.as_deref(),
        Some("10000000000000 segments skipped")
    );
    // Its seconds are bounded by the wall time, not 10^13 target durations.
    assert!(run.attacked.outcome.progress.gap_seconds < 60.0);
    assert_eq!(run.attacked.outcome.progress.gap_segments, skipped);
    // Recording goes on after the jump.
    assert!(
        ok_records(&run.attacked.records)
            .iter()
            .any(|record| record.entry.media_sequence > skipped)
    );
    assert_no_foreign_byte(&run.attacked, &run.origin);
    assert_clean_recording_unharmed(&run);
    assert_memory_bounded(&run, MEMORY_BOUND_KIB);
}

#[tokio::test]
async fn hostile_extinf_values_neither_panic_nor_lose_media() {
    for value in ["1e20", "-1", "NaN", "inf", "1e308"] {
        let run = run_attack(
            Attack::HostileExtinf(value.to_string()),
            HostileTimeline {
                total: 8,
                ..HostileTimeline::default()
            },
            &|_| {},
        )
        .await;
        assert!(
            matches!(
                run.attacked.outcome.end,
                TrackEnd::Finished(RecordingEndReason::StreamEnded)
            ),
            "EXTINF {value}: {:?}",
            run.attacked.outcome.end
        );
        assert!(
            gap_records(&run.attacked.records).is_empty(),
            "EXTINF {value}"
        );
        for record in ok_records(&run.attacked.records) {
            assert!(
                record.entry.duration_seconds.is_finite()
                    && (0.0..=86_400.0).contains(&record.entry.duration_seconds),
                "EXTINF {value}: {}",
                record.entry.duration_seconds
            );
        }
        assert_no_foreign_byte(&run.attacked, &run.origin);
        assert_clean_recording_unharmed(&run);
        assert_memory_bounded(&run, MEMORY_BOUND_KIB);
    }
}

#[tokio::test]
async fn half_a_million_zero_length_segments_are_refused_with_the_limit() {
    let run = run_attack(
        Attack::ZeroLengthSegments { count: 500_000 },
        HostileTimeline::default(),
        &|_| {},
    )
    .await;
    match &run.attacked.outcome.end {
        TrackEnd::Failed(error) => {
            assert_eq!(error.failure_kind(), FailureKind::LimitReached, "{error}");
            assert!(
                error
                    .to_string()
                    .contains("more segments than the limit of 50000"),
                "{error}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_clean_recording_unharmed(&run);
    assert_memory_bounded(&run, MEMORY_BOUND_KIB);
}

#[tokio::test]
async fn zero_length_segments_cannot_defeat_the_duration_limit() {
    let run = run_attack(
        Attack::ZeroLengthSegments { count: 15_000 },
        HostileTimeline::default(),
        &|config| config.maximum_duration = Some(Duration::from_secs(2)),
    )
    .await;
    assert!(
        matches!(
            run.attacked.outcome.end,
            TrackEnd::Finished(RecordingEndReason::DurationReached)
        ),
        "{:?}",
        run.attacked.outcome.end
    );
    // Each counts at least 0.1 s: 2 s are at most 20 segments (and one more in flight).
    let taken = run.attacked.records.len();
    assert!(
        (1..=21).contains(&taken),
        "{taken} segments for a 2 s limit"
    );
    assert_clean_recording_unharmed(&run);
    assert_memory_bounded(&run, MEMORY_BOUND_KIB);
}

#[tokio::test]
async fn a_trickling_first_segment_is_cut_at_its_deadline_and_nothing_piles_up() {
    let run = run_attack(
        Attack::TricklingFirstSegment {
            step: Duration::from_millis(200),
        },
        HostileTimeline {
            segment_seconds: 0.5,
            window: 8,
            initial: 5,
            total: 40,
            segment_copies: 4,
        },
        &|config| {
            config.limits.minimum_segment_request_time = Duration::from_secs(2);
            config.limits.maximum_segment_request_time = Duration::from_secs(3);
        },
    )
    .await;
    assert_stream_ended(&run.attacked);
    let first_taken = run
        .attacked
        .records
        .first()
        .map(|record| record.entry.media_sequence);
    let trickled = gap_records(&run.attacked.records)
        .into_iter()
        .find(|record| Some(record.entry.media_sequence) == first_taken)
        .expect("the trickling first segment is a gap");
    assert!(
        trickled
            .reason
            .as_deref()
            .is_some_and(|reason| reason.contains("deadline")),
        "{:?}",
        trickled.reason
    );
    // Everything after it is recorded.
    assert!(ok_records(&run.attacked.records).len() >= 30);
    assert_no_foreign_byte(&run.attacked, &run.origin);
    assert_clean_recording_unharmed(&run);
    assert_memory_bounded(&run, MEMORY_BOUND_KIB);
}

/// Three endless segments at once, 16 MiB/s each: every one grows to the 128 MiB segment limit.
/// In memory without a byte budget the three downloads would hold 3 x 128 MiB together; each body
/// past 4 MiB spills to a file, so the track holds a few MiB per download.
#[tokio::test]
async fn three_huge_slow_segments_stay_within_the_track_byte_budget() {
    const BUDGET_BYTES: u64 = 16 * 1024 * 1024;
    let segment_limit_kib = FetchLimits::default().maximum_segment_bytes / 1024;
    let run = run_attack(
        Attack::HugeSlowSegments {
            bytes_per_second: 16 * 1024 * 1024,
        },
        HostileTimeline {
            segment_seconds: 10.0,
            window: 3,
            initial: 3,
            total: 3,
            segment_copies: 1,
        },
        &|config| {
            config.limits.maximum_buffered_bytes = BUDGET_BYTES;
            config.limits.minimum_segment_request_time = Duration::from_secs(60);
            config.stall_timeout = Duration::from_secs(80);
        },
    )
    .await;
    assert_stream_ended(&run.attacked);
    let gaps = gap_records(&run.attacked.records);
    assert_eq!(gaps.len(), 3, "{:?}", run.attacked.records);
    for gap in &gaps {
        assert!(
            gap.reason
                .as_deref()
                .is_some_and(|reason| reason.contains("segment larger than")),
            "{:?}",
            gap.reason
        );
    }
    assert!(ok_records(&run.attacked.records).is_empty());
    assert_clean_recording_unharmed(&run);
    // Bodies past 4 MiB spill to disk, so not even the head holds its 128 MiB: the budget plus
    // 64 MiB for the clean recording, the runtime and the allocator; the three downloads in
    // memory without the budget hold 3 x 128 MiB, far over it (measured before the spill: 189 MiB
    // with the budget, 377 MiB with it switched off; see BENCHMARKS.md for after).
    assert!(segment_limit_kib > BUDGET_BYTES / 1024);
    // The bodies went to disk and are gone with the segments given up.
    let leftovers: Vec<String> = std::fs::read_dir(run.attacked._directory.path())
        .expect("directory")
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("spill"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_memory_bounded(&run, BUDGET_BYTES / 1024 + 64 * 1024);
}

#[tokio::test]
async fn a_huge_init_stops_at_its_limit() {
    let run = run_attack(Attack::HugeInit, HostileTimeline::default(), &|_| {}).await;
    assert_not_panicked(&run.attacked.outcome);
    assert!(ok_records(&run.attacked.records).is_empty());
    assert_gap_reason(&run.attacked, "init segment larger than 16777216 bytes");
    assert!(run.attacked.outcome.parts.is_empty());
    // Refused once, not downloaded again for every segment.
    let init_requests = run
        .origin
        .requested_paths()
        .iter()
        .filter(|path| path.ends_with("/init.mp4"))
        .count();
    assert_eq!(init_requests, 1);
    assert_clean_recording_unharmed(&run);
    assert_memory_bounded(&run, MEMORY_BOUND_KIB);
}

#[tokio::test]
async fn a_key_per_segment_is_recorded_with_a_bounded_cache() {
    let run = run_attack(
        Attack::KeyRotation,
        HostileTimeline {
            total: 30,
            segment_seconds: 0.3,
            ..HostileTimeline::default()
        },
        &|_| {},
    )
    .await;
    assert_stream_ended(&run.attacked);
    assert!(gap_records(&run.attacked.records).is_empty());
    assert!(ok_records(&run.attacked.records).len() >= 15);
    // Each key fetched once.
    let key_requests = run
        .origin
        .requested_paths()
        .iter()
        .filter(|path| path.contains("/key-"))
        .count();
    assert_eq!(key_requests, ok_records(&run.attacked.records).len());
    assert_no_foreign_byte(&run.attacked, &run.origin);
    assert_clean_recording_unharmed(&run);
    assert_memory_bounded(&run, MEMORY_BOUND_KIB);
}

/// Issue 17: a new key behind the same URI. The stale key is dropped and fetched again; a
/// segment that does not decrypt with a fresh key is a gap "decryption failed" at once, not an
/// endless retry; what comes after is recorded.
#[tokio::test]
async fn a_new_key_behind_the_same_uri_is_fetched_again() {
    let run = run_attack(
        Attack::KeyChangeBehindSameUri { from_index: 8 },
        HostileTimeline {
            total: 14,
            ..HostileTimeline::default()
        },
        &|_| {},
    )
    .await;
    assert_stream_ended(&run.attacked);
    for gap in gap_records(&run.attacked.records) {
        assert_eq!(gap.reason.as_deref(), Some("decryption failed"), "{gap:?}");
        assert!(gap.entry.failed_attempts <= 3, "{gap:?}");
    }
    let ok = ok_records(&run.attacked.records);
    assert!(ok.iter().any(|record| record.entry.media_sequence >= 8));
    assert!(ok.iter().any(|record| record.entry.media_sequence < 8));
    let key_requests = run
        .origin
        .requested_paths()
        .iter()
        .filter(|path| path.ends_with("/key.bin"))
        .count();
    assert!(key_requests <= 6, "{key_requests} key requests");
    assert_no_foreign_byte(&run.attacked, &run.origin);
    assert_clean_recording_unharmed(&run);
}

/// Issue 17: the packager restarts (numbering from 0) and rewrites `init.mp4` behind the same
/// URI. The new epoch drops the cached init; part 2 starts with the new init, not the stale one.
#[tokio::test]
async fn a_restart_with_a_new_init_behind_the_same_uri_uses_the_new_init() {
    let media = media_fixtures(SegmentKind::Fmp4).expect("fixtures (ffmpeg)");
    let at_index = 8;
    let origin = spawn_hostile_origin(
        Attack::RestartWithNewInit { at_index },
        HostileTimeline {
            total: 14,
            ..HostileTimeline::default()
        },
        media,
    )
    .await
    .expect("origin");
    let recording = record(&origin.media_playlist_url(), &|_| {}).await;
    assert!(
        matches!(
            recording.outcome.end,
            TrackEnd::Finished(RecordingEndReason::StreamEnded)
        ),
        "{:?}",
        recording.outcome.end
    );
    let parts = &recording.outcome.parts;
    assert_eq!(parts.len(), 2, "{parts:?}");
    let original = origin.original_init().expect("fMP4 has an init");
    let restarted = streambot_testkit::restarted_init(&original);
    for (part, init) in parts.iter().zip([&original, &restarted]) {
        let bytes = std::fs::read(&part.path).expect("part");
        let expected = origin_bytes_of_part(&recording, &origin, part.number, init);
        assert!(
            bytes == expected,
            "part {} is not its init followed by its fragments",
            part.number
        );
    }
    assert!(
        ok_records(&recording.records)
            .iter()
            .any(|record| record.entry.epoch == 1)
    );
    // Once per epoch, not once per parallel download at the start (issue 17).
    let init_requests = origin
        .requested_paths()
        .iter()
        .filter(|path| path.ends_with("/init.mp4"))
        .count();
    assert_eq!(init_requests, 2, "init.mp4 fetched {init_requests} times");
}
