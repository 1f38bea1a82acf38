//! Audio and subtitle tracks (issue 16 item 4) end to end: a master with two audio languages and
//! a WebVTT subtitle rendition (testkit `tracks_origin`) is recorded with `--all-audio --subs en`
//! and finalized; ffprobe says the mp4 has the video, both audio tracks with their language tags,
//! and a mov_text track whose first cue is where the X-TIMESTAMP-MAP puts it.

mod common;

use std::path::Path;
use std::time::Duration;

use streambot_core::{OutputFormat, Quality, RecordingOptions, SubtitleChoice};
use streambot_ffmpeg::FfmpegRunner;
use streambot_hls::{DesiredState, FetchLimits, HlsHttpClient, NetworkPolicy};
use streambot_recorder::finalize::{FinalizeSettings, finalize_recording};
use streambot_recorder::{RecordingSettings, record};
use streambot_testkit::tracks_origin::{
    FIRST_CUE_SECONDS, SubtitleBehaviour, spawn_tracks_origin_with,
};
use tokio::sync::{mpsc, watch};

async fn record_and_finalize(
    options: RecordingOptions,
    subtitles: SubtitleBehaviour,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let origin = spawn_tracks_origin_with(subtitles).await.expect("origin");
    let directory = tempfile::tempdir().expect("tempdir");
    let settings = RecordingSettings::new(directory.path().to_path_buf());
    let (_control_sender, control) = watch::channel(DesiredState::Record);
    let (events_sender, _events) = mpsc::unbounded_channel();
    let client =
        HlsHttpClient::new(NetworkPolicy::ALLOW_PRIVATE, FetchLimits::default()).expect("client");
    let format = options.format;
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        record(
            client,
            &origin.master_playlist_url(),
            options,
            settings,
            control,
            events_sender,
        ),
    )
    .await
    .expect("a VOD ends by itself");
    assert!(report.succeeded(), "{:?}", report.outcome);
    let finalized = finalize_recording(
        &FfmpegRunner::default(),
        &report,
        &FinalizeSettings::new(format, Quality::Best),
    )
    .await;
    assert!(finalized.all_ok(), "{finalized:?}");
    assert_eq!(finalized.files.len(), 1, "{finalized:?}");
    let file = finalized.files[0].path.clone();
    (directory, file)
}

/// (codec_type, codec_name, language) of every stream.
fn streams(file: &Path) -> Vec<(String, String, String)> {
    common::ffprobe_values(file, "stream=codec_type,codec_name:stream_tags=language")
        .iter()
        .map(|line| {
            // ffprobe writes codec_name before codec_type.
            let mut fields = line.split(',').map(str::to_string);
            let name = fields.next().unwrap_or_default();
            let kind = fields.next().unwrap_or_default();
            (kind, name, fields.next().unwrap_or_default())
        })
        .collect()
}

#[tokio::test]
async fn every_audio_language_and_english_subtitles_reach_the_mp4() {
    if !streambot_testkit::requirements::require_or_skip("ffprobe") {
        return;
    }
    let (_directory, file) = record_and_finalize(
        RecordingOptions {
            all_audio: true,
            subtitles: SubtitleChoice::Language("en".to_string()),
            stall_timeout: Duration::from_secs(20),
            ..RecordingOptions::default()
        },
        SubtitleBehaviour::Vod,
    )
    .await;
    let streams = streams(&file);
    let of = |kind: &str| -> Vec<(String, String)> {
        streams
            .iter()
            .filter(|stream| stream.0 == kind)
            .map(|stream| (stream.1.clone(), stream.2.clone()))
            .collect()
    };
    assert_eq!(of("video").len(), 1, "{streams:?}");
    let audio_languages: Vec<String> = of("audio").into_iter().map(|audio| audio.1).collect();
    assert_eq!(audio_languages, vec!["eng", "deu"], "{streams:?}");
    assert_eq!(
        of("subtitle"),
        vec![("mov_text".to_string(), "eng".to_string())],
        "{streams:?}"
    );
    // The first cue (mp4 fills the time before it with an empty sample of 2 bytes): where the
    // timestamp map puts it, within one segment.
    let output = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "s:0",
            "-show_entries",
            "packet=pts_time,size",
            "-of",
            "csv=p=0",
        ])
        .arg(&file)
        .output()
        .expect("ffprobe");
    let first_cue: f64 = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.trim().split_once(','))
        .find(|(_, size)| size.parse::<u64>().is_ok_and(|size| size > 2))
        .inspect(|(time, _)| eprintln!("first cue at {time} s"))
        .and_then(|(time, _)| time.parse().ok())
        .expect("a subtitle packet with a cue");
    assert!(
        (first_cue - FIRST_CUE_SECONDS).abs() <= 1.0,
        "the first cue is at {first_cue} s, not {FIRST_CUE_SECONDS} s"
    );
    assert_eq!(common::decode_errors(&file), Vec::<String>::new());
}

#[tokio::test]
async fn an_audio_language_picks_one_track_and_mkv_keeps_webvtt() {
    if !streambot_testkit::requirements::require_or_skip("ffprobe") {
        return;
    }
    let (directory, file) = record_and_finalize(
        RecordingOptions {
            audio_language: Some("de".to_string()),
            subtitles: SubtitleChoice::All,
            format: OutputFormat::Mkv,
            stall_timeout: Duration::from_secs(20),
            ..RecordingOptions::default()
        },
        SubtitleBehaviour::Vod,
    )
    .await;
    let streams = streams(&file);
    let audio: Vec<&(String, String, String)> = streams
        .iter()
        .filter(|stream| stream.0 == "audio")
        .collect();
    assert_eq!(audio.len(), 1, "{streams:?}");
    assert_eq!(audio[0].2, "deu", "{streams:?}");
    assert!(
        streams
            .iter()
            .any(|stream| stream.0 == "subtitle" && stream.1 == "webvtt" && stream.2 == "eng"),
        "{streams:?}"
    );
    // The intermediate subtitle files are gone; the plan stays for the record.
    let left: Vec<String> = std::fs::read_dir(directory.path())
        .expect("listing")
        .flatten()
        .map(|item| item.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".vtt") || name.starts_with("subtitles1-0"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A subtitle rendition that never ends does not hold the recording open (the extra tracks stop
/// with the main track, long before the stall timeout), and one whose segments are not WebVTT
/// leaves the subtitles out without failing anything.
#[tokio::test]
async fn a_subtitle_rendition_that_never_ends_or_is_not_webvtt_does_not_hurt_the_recording() {
    if !streambot_testkit::requirements::require_or_skip("ffprobe") {
        return;
    }
    for behaviour in [SubtitleBehaviour::NeverEnding, SubtitleBehaviour::NotWebVtt] {
        let (_directory, file) = record_and_finalize(
            RecordingOptions {
                subtitles: SubtitleChoice::All,
                // Far longer than the 60 s the recording is given to end.
                stall_timeout: Duration::from_secs(600),
                ..RecordingOptions::default()
            },
            behaviour,
        )
        .await;
        let streams = streams(&file);
        let subtitles = streams
            .iter()
            .filter(|stream| stream.0 == "subtitle")
            .count();
        let expected = usize::from(behaviour == SubtitleBehaviour::NeverEnding);
        assert_eq!(subtitles, expected, "{behaviour:?}: {streams:?}");
        assert!(
            streams.iter().any(|stream| stream.0 == "video"),
            "{streams:?}"
        );
    }
}
