//! Clip while recording (issue 16 item 6): a live recording from the testkit origin keeps running
//! while clips of its last seconds are made from its directory; hostile directories fail clearly.

mod common;

use std::path::Path;
use std::time::Duration;

use streambot_core::RecordingOptions;
use streambot_ffmpeg::FfmpegRunner;
use streambot_hls::ledger::{SegmentState, read_ledger};
use streambot_hls::{DesiredState, FetchLimits, HlsHttpClient, NetworkPolicy, TrackEvent};
use streambot_recorder::clip::{ClipError, clip_last};
use streambot_recorder::{RecorderEvent, RecordingSettings, record};
use streambot_testkit::{OriginConfig, SegmentKind, spawn_origin};
use tokio::sync::{mpsc, watch};

fn client() -> HlsHttpClient {
    HlsHttpClient::new(NetworkPolicy::ALLOW_PRIVATE, FetchLimits::default()).expect("client")
}

/// Waits for the recording's events until the main track committed `segments` segments.
async fn wait_for_main_segments(
    events: &mut mpsc::UnboundedReceiver<RecorderEvent>,
    segments: u64,
) {
    let mut committed = 0;
    while committed < segments {
        let event = tokio::time::timeout(Duration::from_secs(30), events.recv())
            .await
            .expect("the recording goes on")
            .expect("events flow");
        if let RecorderEvent::Track {
            event: TrackEvent::SegmentCommitted { track, .. },
        } = event
            && track == "main"
        {
            committed += 1;
        }
    }
}

fn ffprobe_duration(file: &Path) -> f64 {
    common::ffprobe_values(file, "format=duration")
        .first()
        .and_then(|value| value.parse().ok())
        .expect("a duration")
}

#[tokio::test]
async fn a_clip_of_a_live_recording_is_made_while_it_records() {
    if !streambot_testkit::requirements::require_or_skip("ffmpeg") {
        return;
    }
    // Live and endless, with a separate audio rendition: 1 s segments.
    let origin = spawn_origin(
        OriginConfig::new(SegmentKind::MpegTs)
            .with_window_segments(10)
            .with_audio_rendition(),
    )
    .await
    .expect("origin");
    let directory = tempfile::tempdir().expect("tempdir");
    let options = RecordingOptions {
        stall_timeout: Duration::from_secs(20),
        ..RecordingOptions::default()
    };
    let settings = RecordingSettings::new(directory.path().to_path_buf());
    let (control_sender, control) = watch::channel(DesiredState::Record);
    let (events_sender, mut events) = mpsc::unbounded_channel();
    let url = origin.master_playlist_url();
    let recording = tokio::spawn(async move {
        record(client(), &url, options, settings, control, events_sender).await
    });
    wait_for_main_segments(&mut events, 9).await;

    let runner = FfmpegRunner::default();
    let clips = tempfile::tempdir().expect("tempdir");
    let part_before = std::fs::metadata(directory.path().join("main-0001.ts"))
        .expect("live part")
        .len();
    let clip = clip_last(
        &runner,
        directory.path(),
        Duration::from_secs(5),
        &clips.path().join("last-5s.mp4"),
    )
    .await
    .expect("clip made");
    assert!(clip.notes.is_empty(), "{:?}", clip.notes);
    assert!(
        clip.has_audio,
        "the separate audio rendition is in the clip"
    );
    let duration = ffprobe_duration(&clip.path);
    assert!(
        (duration - 5.0).abs() <= 1.0 + 0.1,
        "a 5 s clip lasts {duration} s"
    );
    let types = common::ffprobe_values(&clip.path, "stream=codec_type");
    assert!(
        types.contains(&"video".to_string()) && types.contains(&"audio".to_string()),
        "{types:?}"
    );
    assert_eq!(
        common::decode_errors(&clip.path),
        Vec::<String>::new(),
        "the clip decodes cleanly"
    );
    // Asking for more than exists gives everything there is, with a note.
    let everything = clip_last(
        &runner,
        directory.path(),
        Duration::from_secs(3600),
        &clips.path().join("everything.mp4"),
    )
    .await
    .expect("clip made");
    assert_eq!(everything.notes.len(), 1, "{:?}", everything.notes);
    assert!(everything.ledger_seconds >= 9.0 - 0.1);
    assert!(
        ffprobe_duration(&everything.path) + 1.1 >= everything.ledger_seconds,
        "everything recorded is in the clip"
    );
    assert_eq!(
        common::decode_errors(&everything.path),
        Vec::<String>::new()
    );

    // The live recording was not disturbed: it goes on into the same part and ends cleanly.
    wait_for_main_segments(&mut events, 2).await;
    let part_after = std::fs::metadata(directory.path().join("main-0001.ts"))
        .expect("live part")
        .len();
    assert!(part_after > part_before, "the live part keeps growing");
    control_sender.send(DesiredState::Stop).expect("stop");
    let report = tokio::time::timeout(Duration::from_secs(30), recording)
        .await
        .expect("the recording stops")
        .expect("no panic");
    assert!(report.succeeded(), "{:?}", report.outcome);
    let ledger = read_ledger(&directory.path().join("main-ledger.jsonl")).expect("ledger");
    assert!(ledger.iter().all(|entry| entry.state == SegmentState::Ok));
    // Nothing of the clip's working files was left in the job directory or beside the clips.
    let left: Vec<String> = std::fs::read_dir(clips.path())
        .expect("listing")
        .flatten()
        .map(|item| item.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    origin.shutdown();
}

#[tokio::test]
async fn hostile_directories_give_clear_errors() {
    if !streambot_testkit::requirements::require_or_skip("ffmpeg") {
        return;
    }
    let runner = FfmpegRunner::default();
    let empty = tempfile::tempdir().expect("tempdir");
    let output = empty.path().join("clip.mp4");
    let error = clip_last(&runner, empty.path(), Duration::from_secs(60), &output)
        .await
        .expect_err("no ledger");
    assert!(matches!(error, ClipError::NoLedger { .. }), "{error}");
    assert!(!error.user_message().is_empty());
    assert!(!output.exists());

    // A ledger that claims more bytes than the part holds: truncated.
    let origin = spawn_origin(
        OriginConfig::new(SegmentKind::MpegTs)
            .with_window_segments(6)
            .with_total_segments(6)
            .as_vod(),
    )
    .await
    .expect("origin");
    let directory = tempfile::tempdir().expect("tempdir");
    let settings = RecordingSettings::new(directory.path().to_path_buf());
    let (_control_sender, control) = watch::channel(DesiredState::Record);
    let (events_sender, _events) = mpsc::unbounded_channel();
    let report = record(
        client(),
        &origin.media_playlist_url(),
        RecordingOptions::default(),
        settings,
        control,
        events_sender,
    )
    .await;
    assert!(report.succeeded(), "{:?}", report.outcome);
    let part = directory.path().join("main-0001.ts");
    let length = std::fs::metadata(&part).expect("part").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&part)
        .expect("part")
        .set_len(length / 2)
        .expect("truncate");
    // An output that would overwrite the recording's own files is refused before anything.
    let error = clip_last(&runner, directory.path(), Duration::from_secs(2), &part)
        .await
        .expect_err("the part itself");
    assert!(
        matches!(error, ClipError::OutputAmongRecordingFiles { .. }),
        "{error}"
    );
    assert_eq!(std::fs::metadata(&part).expect("part").len(), length / 2);
    let error = clip_last(&runner, directory.path(), Duration::from_secs(2), &output)
        .await
        .expect_err("truncated");
    assert!(matches!(error, ClipError::PartTruncated { .. }), "{error}");
    assert!(!output.exists());

    // A ledger that is not a ledger.
    std::fs::write(
        directory.path().join("main-ledger.jsonl"),
        b"\x00\xffnot json\n",
    )
    .expect("write");
    let error = clip_last(&runner, directory.path(), Duration::from_secs(2), &output)
        .await
        .expect_err("nothing usable");
    assert!(
        matches!(
            error,
            ClipError::NothingRecorded { .. } | ClipError::UnreadableLedger { .. }
        ),
        "{error}"
    );
    // The part removed: missing.
    std::fs::remove_file(&part).expect("remove");
    let error = clip_last(&runner, directory.path(), Duration::ZERO, &output)
        .await
        .expect_err("zero");
    assert!(matches!(error, ClipError::EmptyLength));
    origin.shutdown();
}
