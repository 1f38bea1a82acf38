//! A whole recording through the master playlist: variant choice by quality, the audio rendition
//! recorded beside the video, `recording.json`, and clear failures that keep what was recorded.

use std::time::Duration;

use streambot_core::{Quality, RecordingEndReason, RecordingOptions};
use streambot_hls::ledger::{SegmentState, read_ledger};
use streambot_hls::{DesiredState, FetchLimits, HlsHttpClient, NetworkPolicy};
use streambot_recorder::{
    RecorderEvent, RecordingOutcome, RecordingReport, RecordingSettings, record,
};
use streambot_testkit::{OriginConfig, OriginHandle, RequestKind, SegmentKind, spawn_origin};
use tokio::sync::{mpsc, watch};

fn client() -> HlsHttpClient {
    HlsHttpClient::new(NetworkPolicy::ALLOW_PRIVATE, FetchLimits::default()).expect("client")
}

async fn origin_with_master() -> OriginHandle {
    spawn_origin(
        OriginConfig::new(SegmentKind::MpegTs)
            .with_window_segments(10)
            .with_total_segments(16)
            .with_audio_rendition(),
    )
    .await
    .expect("origin")
}

async fn record_url(url: &str, quality: Quality) -> (RecordingReport, tempfile::TempDir) {
    let directory = tempfile::tempdir().expect("tempdir");
    let options = RecordingOptions {
        quality,
        stall_timeout: Duration::from_secs(20),
        ..RecordingOptions::default()
    };
    let settings = RecordingSettings::new(directory.path().to_path_buf());
    let (_control_sender, control) = watch::channel(DesiredState::Record);
    let (events_sender, mut events) = mpsc::unbounded_channel();
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        record(client(), url, options, settings, control, events_sender),
    )
    .await
    .expect("ends by itself");
    let mut resolved = false;
    while let Ok(event) = events.try_recv() {
        if matches!(event, RecorderEvent::Resolved { .. }) {
            resolved = true;
        }
    }
    if report.succeeded() {
        assert!(resolved, "no Resolved event");
    }
    (report, directory)
}

fn variant_directories_requested(origin: &OriginHandle) -> Vec<String> {
    let mut directories: Vec<String> = origin
        .served_log()
        .iter()
        .filter(|request| request.kind == RequestKind::Segment)
        .filter_map(|request| request.path.split('/').nth(1).map(str::to_string))
        .collect();
    directories.sort();
    directories.dedup();
    directories
}

#[tokio::test]
async fn best_quality_records_the_top_variant_with_its_audio_rendition() {
    let origin = origin_with_master().await;
    let (report, directory) = record_url(&origin.master_playlist_url(), Quality::Best).await;
    match &report.outcome {
        RecordingOutcome::Finished { reason } => {
            assert_eq!(reason, &RecordingEndReason::StreamEnded)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(variant_directories_requested(&origin), vec!["audio", "v0"]);
    let audio = report.audio.as_ref().expect("audio track recorded");
    assert!(audio.progress.segments_written > 0);
    let main = report.main.as_ref().expect("main track");
    assert_eq!(
        main.progress.segments_written,
        audio.progress.segments_written
    );
    assert!(directory.path().join("recording.json").exists());
    assert!(directory.path().join("audio-ledger.jsonl").exists());
    let audio_ledger = read_ledger(&directory.path().join("audio-ledger.jsonl")).expect("ledger");
    assert!(
        audio_ledger
            .iter()
            .all(|entry| entry.state == SegmentState::Ok)
    );
    let summary: serde_json::Value = serde_json::from_slice(
        &std::fs::read(directory.path().join("recording.json")).expect("summary"),
    )
    .expect("json");
    assert_eq!(summary["outcome"]["outcome"], "finished");
}

#[tokio::test]
async fn quality_picks_the_variant() {
    let origin = origin_with_master().await;
    for (quality, expected) in [
        (Quality::Worst, "v2"),
        (Quality::Medium, "v1"),
        (Quality::Height(720), "v0"),
        (Quality::Height(360), "v1"),
    ] {
        let before = origin.served_log().len();
        let (report, _directory) = record_url(&origin.master_playlist_url(), quality).await;
        assert!(report.succeeded(), "{quality}: {:?}", report.outcome);
        let chosen: Vec<String> = origin.served_log()[before..]
            .iter()
            .filter(|request| request.kind == RequestKind::Segment)
            .filter_map(|request| request.path.split('/').nth(1).map(str::to_string))
            .filter(|directory| directory != "audio")
            .collect();
        assert!(!chosen.is_empty());
        assert!(
            chosen.iter().all(|directory| directory == expected),
            "{quality}: {chosen:?}"
        );
    }
}

#[tokio::test]
async fn audio_quality_records_only_the_audio_rendition() {
    let origin = origin_with_master().await;
    let (report, _directory) = record_url(&origin.master_playlist_url(), Quality::Audio).await;
    assert!(report.succeeded(), "{:?}", report.outcome);
    assert_eq!(variant_directories_requested(&origin), vec!["audio"]);
    assert!(
        report
            .source
            .as_ref()
            .is_some_and(|source| source.audio_only)
    );
}

#[tokio::test]
async fn bad_links_fail_with_specific_messages() {
    let origin = origin_with_master().await;
    let cases = [
        ("not a link".to_string(), "not a valid URL"),
        (
            "ftp://example.com/live.m3u8".to_string(),
            "only http and https",
        ),
        (origin.url("/missing.m3u8"), "not found"),
    ];
    for (url, expected) in cases {
        let (report, _directory) = record_url(&url, Quality::Best).await;
        match &report.outcome {
            RecordingOutcome::Failed { message, .. } => {
                assert!(message.contains(expected), "{url}: {message}")
            }
            other => panic!("{url}: {other:?}"),
        }
    }
}

/// A link to one media resource (not a playlist) goes to the ffmpeg engine; its output becomes the
/// parts finalize works on. (Pause and stop of that engine are tested in the ffmpeg crate.)
#[tokio::test]
async fn a_plain_media_link_is_recorded_by_the_ffmpeg_engine() {
    let ffmpeg_available = std::process::Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !ffmpeg_available {
        eprintln!("ffmpeg not installed: skipping");
        return;
    }
    let origin = origin_with_master().await;
    let (report, directory) = record_url(&origin.segment_url(1002), Quality::Best).await;
    match &report.outcome {
        RecordingOutcome::Finished { reason } => {
            assert_eq!(reason, &streambot_core::RecordingEndReason::StreamEnded)
        }
        other => panic!("{other:?}"),
    }
    let main = report.main.as_ref().expect("main");
    assert_eq!(main.parts.len(), 1, "{:?}", main.parts);
    assert!(main.parts[0].path.exists());
    assert!(
        (main.parts[0].media_seconds - 1.0).abs() < 0.5,
        "{:?}",
        main.parts[0]
    );
    assert!(directory.path().join("recording.json").exists());
    // Only the one resource was requested: no playlist polling.
    assert!(
        origin
            .served_log()
            .iter()
            .all(|request| request.kind == RequestKind::Segment)
    );
}
