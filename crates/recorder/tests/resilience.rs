//! Issue 11 and 16 at the recorder level, against the testkit origin on 127.0.0.1: a master with
//! dead variants records the next candidate, a stream that breaks into pieces stops at the part
//! limit and keeps what it recorded, a link that is not live yet is waited for, and a stream that
//! goes away and comes back within the wait goes on as a new part of the same recording.

use std::time::Duration;

use streambot_core::{Quality, RecordingEndReason, RecordingOptions};
use streambot_hls::ledger::{SegmentState, read_ledger};
use streambot_hls::{DesiredState, FetchLimits, HlsHttpClient, NetworkPolicy};
use streambot_recorder::finalize::FinalizeSettings;
use streambot_recorder::{
    RecorderEvent, RecordingOutcome, RecordingReport, RecordingSettings, record,
};
use streambot_testkit::{
    Fault, OriginConfig, RequestKind, SegmentKind, spawn_origin, spawn_origin_late,
};
use tokio::sync::{mpsc, watch};

fn client() -> HlsHttpClient {
    HlsHttpClient::new(NetworkPolicy::ALLOW_PRIVATE, FetchLimits::default()).expect("client")
}

fn settings_in(directory: &std::path::Path) -> RecordingSettings {
    let mut settings = RecordingSettings::new(directory.to_path_buf());
    settings.live_check_first_interval = Duration::from_millis(100);
    settings.live_check_maximum_interval = Duration::from_millis(200);
    settings
}

/// Records `url` into a new directory until the end; returns the report, every event and the
/// directory.
async fn record_until_end(
    url: &str,
    options: RecordingOptions,
    adjust: impl FnOnce(&mut RecordingSettings),
) -> (RecordingReport, Vec<RecorderEvent>, tempfile::TempDir) {
    let directory = tempfile::tempdir().expect("tempdir");
    let mut settings = settings_in(directory.path());
    adjust(&mut settings);
    let (_control_sender, control) = watch::channel(DesiredState::Record);
    let (events_sender, mut events) = mpsc::unbounded_channel();
    let report = tokio::time::timeout(
        Duration::from_secs(90),
        record(client(), url, options, settings, control, events_sender),
    )
    .await
    .expect("the recording ends by itself");
    let mut received = Vec::new();
    while let Ok(event) = events.try_recv() {
        received.push(event);
    }
    (report, received, directory)
}

fn options(stall_timeout: Duration, wait_for_live: Duration) -> RecordingOptions {
    RecordingOptions {
        stall_timeout,
        wait_for_live,
        ..RecordingOptions::default()
    }
}

#[tokio::test]
async fn a_master_whose_first_variant_404s_records_the_next_one() {
    let origin = spawn_origin(
        OriginConfig::new(SegmentKind::MpegTs)
            .with_total_segments(14)
            .with_fault(Fault::VariantHttpStatus {
                variant: 0,
                status: 404,
            }),
    )
    .await
    .expect("origin");
    let (report, _events, _directory) = record_until_end(
        &origin.master_playlist_url(),
        options(Duration::from_secs(20), Duration::ZERO),
        |_| {},
    )
    .await;
    assert!(report.succeeded(), "{:?}", report.outcome);
    let source = report.source.as_ref().expect("resolved");
    assert!(
        source.main_media_playlist_url.ends_with("/v1/media.m3u8"),
        "{source:?}"
    );
    let log = origin.served_log();
    assert!(
        log.iter()
            .any(|request| request.path == "/v0/media.m3u8" && request.status == 404)
    );
    assert!(
        log.iter()
            .filter(|request| request.kind == RequestKind::Segment)
            .all(|request| request.path.starts_with("/v1/") && request.status == 200)
    );
    assert!(report.progress().segments_written > 0);
}

#[tokio::test]
async fn a_master_none_of_whose_variants_work_fails_naming_the_users_link() {
    let mut config = OriginConfig::new(SegmentKind::MpegTs);
    for variant in 0..3 {
        config = config.with_fault(Fault::VariantHttpStatus {
            variant,
            status: 404,
        });
    }
    let origin = spawn_origin(config).await.expect("origin");
    let link = format!("{}?token=secret", origin.master_playlist_url());
    let (report, _events, _directory) = record_until_end(
        &link,
        options(Duration::from_secs(20), Duration::ZERO),
        |_| {},
    )
    .await;
    let RecordingOutcome::Failed {
        message, failure, ..
    } = &report.outcome
    else {
        panic!("{:?}", report.outcome);
    };
    assert!(
        message.contains(&origin.master_playlist_url()),
        "names the user's link: {message}"
    );
    assert!(message.contains("HTTP 404"), "{message}");
    assert!(
        !message.contains("/v0/") && !message.contains("secret"),
        "{message}"
    );
    assert_eq!(*failure, streambot_core::FailureKind::NotFound);
}

/// A stream with a discontinuity every other segment, against a limit of 3 parts: the recording
/// stops with the part-limit reason soon after part 3 starts, and what it recorded is finalized.
#[tokio::test]
async fn a_recording_stops_at_its_part_limit_and_keeps_what_it_recorded() {
    let mut config = OriginConfig::new(SegmentKind::MpegTs)
        .with_window_segments(30)
        .with_total_segments(30)
        .as_vod();
    for media_sequence in (1002..1030).step_by(2) {
        config = config.with_fault(Fault::DiscontinuityAt { media_sequence });
    }
    let origin = spawn_origin(config).await.expect("origin");
    let (report, _events, _directory) = record_until_end(
        &origin.media_playlist_url(),
        options(Duration::from_secs(20), Duration::ZERO),
        |settings| settings.maximum_parts = 3,
    )
    .await;
    match &report.outcome {
        RecordingOutcome::Finished { reason } => {
            assert_eq!(reason, &RecordingEndReason::PartLimitReached { parts: 3 })
        }
        other => panic!("{other:?}"),
    }
    let main = report.main.as_ref().expect("main");
    let buffered = streambot_hls::live::TrackLimits::default().maximum_buffered_segments;
    assert!(
        (3..=3 + buffered).contains(&main.parts.len()),
        "{} parts",
        main.parts.len()
    );
    // Far fewer than the 15 pieces the stream has: it stopped.
    assert!(main.progress.segments_written < 30, "{:?}", main.progress);
    assert!(main.ended.contains("3 parts"), "{}", main.ended);
    let runner = streambot_ffmpeg::FfmpegRunner::default();
    let settings = FinalizeSettings::new(streambot_core::OutputFormat::Mp4, Quality::Best);
    let finalized =
        streambot_recorder::finalize::finalize_recording(&runner, &report, &settings).await;
    assert!(finalized.failures.is_empty(), "{:?}", finalized.failures);
    assert!(!finalized.files.is_empty());
}

fn waiting_reasons(events: &[RecorderEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match event {
            RecorderEvent::WaitingForLive { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

/// A link that is announced before it goes live: nobody listens at first (connection refused),
/// then it answers 404, then its playlist is empty, then segments appear. With a wait, the
/// recording starts by itself and loses nothing from the first segment on.
#[tokio::test]
async fn a_link_that_goes_live_late_is_waited_for_and_recorded_from_its_first_segment() {
    let late = spawn_origin_late(
        OriginConfig::new(SegmentKind::MpegTs)
            .with_initial_segments(0)
            .with_total_segments(6)
            .with_fault(Fault::PlaylistHttpStatus {
                from: Duration::ZERO,
                to: Duration::from_millis(500),
                status: 404,
            }),
        Duration::from_millis(1500),
    )
    .await
    .expect("late origin");
    let (report, events, directory) = record_until_end(
        &late.url("/live/media.m3u8"),
        options(Duration::from_secs(20), Duration::from_secs(60)),
        |_| {},
    )
    .await;
    let origin = late.started().await.expect("origin started");
    match &report.outcome {
        RecordingOutcome::Finished { reason } => {
            assert_eq!(reason, &RecordingEndReason::StreamEnded)
        }
        other => panic!("{other:?}"),
    }
    let reasons = waiting_reasons(&events);
    assert!(
        reasons
            .iter()
            .any(|reason| reason.contains("could not be reached")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|reason| reason.contains("HTTP 404")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|reason| reason.contains("no segments yet")),
        "{reasons:?}"
    );
    let resolved_after_waiting = events
        .iter()
        .position(|event| matches!(event, RecorderEvent::Resolved { .. }))
        .expect("resolved");
    assert!(
        events[..resolved_after_waiting]
            .iter()
            .all(|event| matches!(event, RecorderEvent::WaitingForLive { .. }))
    );
    let ledger = read_ledger(&directory.path().join("main-ledger.jsonl")).expect("ledger");
    let recorded: Vec<u64> = ledger.iter().map(|entry| entry.media_sequence).collect();
    assert_eq!(recorded, (1000..1006).collect::<Vec<_>>());
    assert!(ledger.iter().all(|entry| entry.state == SegmentState::Ok));
    assert_eq!(
        origin.sequences_published(),
        (1000..1006).collect(),
        "every published segment recorded"
    );
    assert_eq!(report.main.as_ref().expect("main").parts.len(), 1);
}

/// A live stream whose playlist 404s for a while mid-way (longer than the stall limit, so the
/// first run ends) and comes back within the wait: one recording, two parts, no gap.
#[tokio::test]
async fn a_stream_that_goes_away_and_comes_back_continues_as_a_new_part() {
    let origin = spawn_origin(
        OriginConfig::new(SegmentKind::MpegTs)
            .with_window_segments(12)
            .with_initial_segments(3)
            .with_total_segments(16)
            .with_fault(Fault::PlaylistHttpStatus {
                from: Duration::from_secs(4),
                to: Duration::from_secs(9),
                status: 404,
            }),
    )
    .await
    .expect("origin");
    let (report, events, directory) = record_until_end(
        &origin.media_playlist_url(),
        options(Duration::from_secs(2), Duration::from_secs(60)),
        |_| {},
    )
    .await;
    match &report.outcome {
        RecordingOutcome::Finished { reason } => {
            assert_eq!(reason, &RecordingEndReason::StreamEnded)
        }
        other => panic!("{other:?}"),
    }
    assert!(
        !waiting_reasons(&events).is_empty(),
        "it waited for the stream to come back"
    );
    let main = report.main.as_ref().expect("main");
    assert_eq!(main.parts.len(), 2, "{:?}", main.parts);
    let ledger = read_ledger(&directory.path().join("main-ledger.jsonl")).expect("ledger");
    assert!(
        ledger.iter().all(|entry| entry.state == SegmentState::Ok),
        "no gap: {ledger:?}"
    );
    let recorded: Vec<u64> = ledger.iter().map(|entry| entry.media_sequence).collect();
    let first = *recorded.first().expect("recorded");
    assert_eq!(recorded, (first..1016).collect::<Vec<_>>(), "zero loss");
    assert_eq!(
        main.progress.segments_written,
        recorded.len() as u64,
        "progress counts both runs"
    );
}

/// An origin whose address refuses connections for the whole test.
async fn origin_that_does_not_start() -> streambot_testkit::LateOrigin {
    spawn_origin_late(
        OriginConfig::new(SegmentKind::MpegTs),
        Duration::from_secs(3600),
    )
    .await
    .expect("late origin")
}

#[tokio::test]
async fn a_stop_while_waiting_ends_at_once_with_nothing_recorded() {
    let late = origin_that_does_not_start().await;
    let directory = tempfile::tempdir().expect("tempdir");
    let (control_sender, control) = watch::channel(DesiredState::Record);
    let (events_sender, mut events) = mpsc::unbounded_channel();
    let recording = tokio::spawn({
        let url = late.url("/live/media.m3u8");
        let settings = settings_in(directory.path());
        async move {
            record(
                client(),
                &url,
                options(Duration::from_secs(20), Duration::from_secs(3600)),
                settings,
                control,
                events_sender,
            )
            .await
        }
    });
    // Waiting: the first report of it.
    loop {
        match events.recv().await {
            Some(RecorderEvent::WaitingForLive { .. }) => break,
            Some(_) => {}
            None => panic!("ended before waiting"),
        }
    }
    control_sender.send_replace(DesiredState::Stop);
    let report = tokio::time::timeout(Duration::from_secs(10), recording)
        .await
        .expect("a stop while waiting ends the recording")
        .expect("no panic");
    match &report.outcome {
        RecordingOutcome::Finished { reason } => assert_eq!(reason, &RecordingEndReason::Stopped),
        other => panic!("{other:?}"),
    }
    assert!(report.main.is_none() && report.source.is_none());
}

#[tokio::test]
async fn a_link_that_never_goes_live_fails_after_the_wait_with_the_reason() {
    let late = origin_that_does_not_start().await;
    let (report, events, _directory) = record_until_end(
        &late.url("/live/media.m3u8"),
        options(Duration::from_secs(20), Duration::from_secs(1)),
        |_| {},
    )
    .await;
    let RecordingOutcome::Failed {
        message, failure, ..
    } = &report.outcome
    else {
        panic!("{:?}", report.outcome);
    };
    assert!(message.contains("did not start within"), "{message}");
    assert!(message.contains("could not be reached"), "{message}");
    assert_eq!(*failure, streambot_core::FailureKind::Unreachable);
    assert!(!waiting_reasons(&events).is_empty());
}

/// A hostile playlist that answers 200 with segments and 404 in turn: the resolve finds it live,
/// the track's first load finds it gone, again and again. The wait counts from when it first went
/// away (runs that record nothing do not restart it) and each new check waits one interval, so
/// the recording ends within the wait after a bounded number of requests instead of spinning.
#[tokio::test]
async fn a_playlist_that_flaps_between_live_and_404_is_not_polled_in_a_loop() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = requests.clone();
    let server = tokio::spawn(async move {
        loop {
            let Ok((mut connection, _)) = listener.accept().await else {
                return;
            };
            let number = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = connection.read(&mut request).await;
                let body = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:1\n#EXTINF:1.0,\nseg-1.ts\n";
                let response = if number.is_multiple_of(2) {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.apple.mpegurl\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_string()
                };
                let _ = connection.write_all(response.as_bytes()).await;
                let _ = connection.shutdown().await;
            });
        }
    });
    let (report, events, _directory) = record_until_end(
        &format!("http://{address}/live.m3u8"),
        options(Duration::from_secs(20), Duration::from_secs(2)),
        |_| {},
    )
    .await;
    server.abort();
    assert!(!report.succeeded(), "{:?}", report.outcome);
    let made = requests.load(std::sync::atomic::Ordering::SeqCst);
    // One check per 100-200 ms interval within the 2 s wait, two requests each, and some slack.
    assert!(made <= 60, "{made} requests");
    assert!(!waiting_reasons(&events).is_empty());
}
