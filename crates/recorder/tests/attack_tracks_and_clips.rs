//! Issue 11 against the tracks and clips of issue 16: hostile subtitle and audio renditions
//! (`--subs`, `--all-audio`), secrets in rendition URLs, and `clip` on hostile directories and
//! outputs. Every origin is on 127.0.0.1 (built here from the testkit fixtures); the recording
//! and finalize are the library's own, ffmpeg and ffprobe are real.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use streambot_core::{OutputFormat, Quality, RecordingOptions, SubtitleChoice};
use streambot_ffmpeg::FfmpegRunner;
use streambot_hls::ledger::{LedgerEntry, LedgerRecord, SegmentState};
use streambot_hls::{DesiredState, FetchLimits, HlsHttpClient, NetworkPolicy};
use streambot_recorder::clip::{ClipError, clip_last};
use streambot_recorder::finalize::{FinalizeReport, FinalizeSettings, finalize_recording};
use streambot_recorder::tracks::read_track_plan;
use streambot_recorder::{RecordingReport, RecordingSettings, record};
use streambot_testkit::hostile::serve_on_loopback;
use streambot_testkit::{
    MediaSet, OriginConfig, SegmentKind, media_fixtures, process_memory_kib, spawn_origin,
};
use tokio::sync::{mpsc, watch};

/// Segments of every rendition of the origins built here.
const SEGMENTS: usize = 6;

/// What a subtitle rendition's segment `index` is (rendition `name`).
type SubtitleBody = Arc<dyn Fn(&str, usize) -> Bytes + Send + Sync>;

/// A VOD origin: `master` (its text, `{base}` replaced by the origin's address), the video
/// variant at `v0/media.m3u8`, any `a/<name>/media.m3u8` an audio rendition, any
/// `s/<name>/media.m3u8` a subtitle rendition whose segments `subtitle_body` makes.
struct TracksOrigin {
    base_url: String,
}

async fn spawn_tracks_origin(master: String, subtitle_body: SubtitleBody) -> TracksOrigin {
    let (video, audio) = tokio::task::spawn_blocking(|| {
        (
            media_fixtures(SegmentKind::MpegTs).expect("video fixtures"),
            media_fixtures(SegmentKind::AudioOnlyTs).expect("audio fixtures"),
        )
    })
    .await
    .expect("fixtures");
    let base = Arc::new(std::sync::OnceLock::<String>::new());
    let base_for_router = base.clone();
    let router = Router::new().fallback(move |uri: Uri| {
        let (video, audio, subtitle_body) = (video.clone(), audio.clone(), subtitle_body.clone());
        let master = master.replace(
            "{base}",
            base_for_router.get().map(String::as_str).unwrap_or(""),
        );
        async move { answer(uri.path(), &master, &video, &audio, &subtitle_body) }
    });
    let address = serve_on_loopback(router).await.expect("serve");
    let base_url = format!("http://{address}");
    let _ = base.set(base_url.clone());
    TracksOrigin { base_url }
}

fn media_playlist(set: &MediaSet, extension: &str) -> String {
    let mut text = String::from(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:3\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n",
    );
    for index in 0..SEGMENTS.min(set.segments.len()) {
        let duration = set
            .segment_durations_seconds
            .get(index)
            .copied()
            .unwrap_or(set.segment_duration_seconds);
        text.push_str(&format!(
            "#EXTINF:{duration:.3},\nseg-{index}.{extension}\n"
        ));
    }
    text.push_str("#EXT-X-ENDLIST\n");
    text
}

fn reply(content_type: &'static str, body: impl Into<axum::body::Body>) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body.into()).into_response()
}

fn index_of(name: &str, extension: &str) -> Option<usize> {
    name.strip_prefix("seg-")?
        .strip_suffix(extension)?
        .parse()
        .ok()
        .filter(|index| *index < SEGMENTS)
}

fn answer(
    path: &str,
    master: &str,
    video: &MediaSet,
    audio: &MediaSet,
    subtitle_body: &SubtitleBody,
) -> Response {
    let playlist = "application/vnd.apple.mpegurl";
    let segment = |set: &MediaSet, name: &str| match index_of(name, ".ts")
        .and_then(|index| set.segments.get(index))
    {
        Some(body) => reply("video/mp2t", body.clone()),
        None => StatusCode::NOT_FOUND.into_response(),
    };
    match path
        .trim_start_matches('/')
        .split('/')
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["master.m3u8"] => reply(playlist, master.to_string()),
        ["v0", "media.m3u8"] => reply(playlist, media_playlist(video, "ts")),
        ["v0", name] => segment(video, name),
        ["a", _, "media.m3u8"] => reply(playlist, media_playlist(audio, "ts")),
        ["a", _, name] => segment(audio, name),
        ["s", _, "media.m3u8"] => reply(playlist, media_playlist(video, "vtt")),
        ["s", rendition, name] => match index_of(name, ".vtt") {
            Some(index) => reply("text/vtt", subtitle_body(rendition, index)),
            None => StatusCode::NOT_FOUND.into_response(),
        },
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

fn client() -> HlsHttpClient {
    HlsHttpClient::new(NetworkPolicy::ALLOW_PRIVATE, FetchLimits::default()).expect("client")
}

async fn record_into(url: &str, options: RecordingOptions, directory: &Path) -> RecordingReport {
    let settings = RecordingSettings::new(directory.to_path_buf());
    let (_control_sender, control) = watch::channel(DesiredState::Record);
    let (events_sender, _events) = mpsc::unbounded_channel();
    tokio::time::timeout(
        Duration::from_secs(120),
        record(client(), url, options, settings, control, events_sender),
    )
    .await
    .expect("a VOD ends by itself")
}

async fn finalize(report: &RecordingReport) -> FinalizeReport {
    finalize_recording(
        &FfmpegRunner::default(),
        report,
        &FinalizeSettings::new(OutputFormat::Mp4, Quality::Best),
    )
    .await
}

/// codec_type of every stream of `file`.
fn stream_types(file: &Path) -> Vec<String> {
    common::ffprobe_values(file, "stream=codec_type")
}

/// Every file under `directory` (recursively), with its bytes.
fn files_under(directory: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut pending = vec![directory.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("read_dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push((path.clone(), std::fs::read(&path).unwrap_or_default()));
            }
        }
    }
    found
}

const VIDEO_AND_SUBTITLES_MASTER: &str = "#EXTM3U
#EXT-X-VERSION:4
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"Hostile\",LANGUAGE=\"en\",URI=\"s/hostile/media.m3u8\"
#EXT-X-STREAM-INF:BANDWIDTH=1200000,SUBTITLES=\"subs\"
v0/media.m3u8
";

/// Segment bodies a hostile subtitle rendition sends, one attack each (the first is honest
/// but for a timing line inside its cue text).
fn hostile_subtitle_segments(video_segment: &Bytes) -> Vec<Bytes> {
    // A quarter of a million cues (about 9 MB: spilled to a file).
    let mut many_cues = String::from("WEBVTT\n\n");
    for cue in 0..250_000 {
        many_cues.push_str(&format!("00:00:04.000 --> 00:00:04.500\nc{cue}\n\n"));
    }
    // A cue whose text is 6 MB on one line (spilled; kept to 2,000 characters).
    let mut long_cue = String::from("WEBVTT\n\n00:00:03.000 --> 00:00:03.500\n");
    long_cue.push_str(&"x".repeat(6 * 1024 * 1024));
    long_cue.push_str("\n\n");
    vec![
        Bytes::from_static(
            b"WEBVTT\n\n00:00:01.000 --> 00:00:01.500\nhonest\n00:00:00.000 --> 99:00:00.000\ninjected\n\n",
        ),
        // An absurd X-TIMESTAMP-MAP (2^64 - 1 ticks, LOCAL in ten-digit hours).
        Bytes::from_static(
            b"WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:18446744073709551615,LOCAL:9999999999:59:59.999\n\n00:00:02.000 --> 00:00:02.500\nabsurd map\n\n",
        ),
        // An MPEG-TS body where WebVTT was due.
        video_segment.clone(),
        Bytes::from(long_cue),
        Bytes::from(many_cues),
        // A playlist where WebVTT was due.
        Bytes::from_static(b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nseg.ts\n"),
    ]
}

/// Attack: every subtitle segment is hostile (see [`hostile_subtitle_segment`]). Defended: the
/// recording succeeds, finalize delivers one mp4 with the video and a subtitle track of at most
/// `MAXIMUM_CUES` cues that decodes cleanly, and the test process stays under 1.5 GiB.
#[tokio::test]
async fn a_hostile_subtitle_rendition_leaves_a_playable_recording() {
    if !streambot_testkit::requirements::require_or_skip("ffprobe") {
        return;
    }
    let segments = tokio::task::spawn_blocking(|| {
        let video = media_fixtures(SegmentKind::MpegTs).expect("fixtures");
        hostile_subtitle_segments(&video.segments[0])
    })
    .await
    .expect("fixture");
    let (directory, report) = record_with_subtitles(segments).await;
    let finalized = finalize(&report).await;
    assert_eq!(finalized.files.len(), 1, "{finalized:?}");
    assert!(finalized.failures.is_empty(), "{finalized:?}");
    let file = &finalized.files[0].path;
    let types = stream_types(file);
    assert!(types.iter().any(|kind| kind == "video"), "{types:?}");
    assert!(types.iter().any(|kind| kind == "subtitle"), "{types:?}");
    let errors = common::decode_errors(file);
    assert!(errors.is_empty(), "{errors:?}");
    let subtitle_packets = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "s:0",
            "-count_packets",
            "-show_entries",
            "stream=nb_read_packets",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("ffprobe");
    let subtitle_packets: usize = String::from_utf8_lossy(&subtitle_packets.stdout)
        .trim()
        .parse()
        .expect("a packet count");
    assert!(
        (1..=streambot_recorder::webvtt::MAXIMUM_CUES + 8).contains(&subtitle_packets),
        "{subtitle_packets} cues"
    );
    let (peak_kib, _) = process_memory_kib().expect("/proc/self/status");
    assert!(peak_kib < 1536 * 1024, "peak {peak_kib} KiB");
    // No leftover spill or subtitle files.
    for (path, _) in files_under(directory.path()) {
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("");
        assert!(!name.contains("-spill-"), "{name}");
        assert!(!name.ends_with(".vtt"), "{name}");
    }
}

/// Attack: `--all-audio` on a master with 500 audio renditions whose languages and names carry
/// terminal escapes, line breaks and path separators. Defended: at most 8 audio tracks are
/// recorded (a note says so), no label keeps a control character, no file is named after a
/// label, and the mp4 plays with its video and at most 8 audio tracks.
#[tokio::test]
async fn five_hundred_audio_renditions_record_at_most_eight_tracks() {
    if !streambot_testkit::requirements::require_or_skip("ffprobe") {
        return;
    }
    let mut master = String::from("#EXTM3U\n#EXT-X-VERSION:4\n");
    for index in 0..500 {
        master.push_str(&format!(
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"..\\\\evil\u{1b}[2J{index}\",LANGUAGE=\"de\u{1b}]0;pwn\u{7}/../../etc{index}\",{}URI=\"a/{index}/media.m3u8\"\n",
            if index == 0 { "DEFAULT=YES," } else { "" }
        ));
    }
    master.push_str("#EXT-X-STREAM-INF:BANDWIDTH=1200000,AUDIO=\"aud\"\nv0/media.m3u8\n");
    let origin = spawn_tracks_origin(master, Arc::new(|_, _| Bytes::new())).await;
    let directory = tempfile::tempdir().expect("tempdir");
    let report = record_into(
        &format!("{}/master.m3u8", origin.base_url),
        RecordingOptions {
            all_audio: true,
            ..RecordingOptions::default()
        },
        directory.path(),
    )
    .await;
    assert!(report.succeeded(), "{:?}", report.outcome);
    let plan = read_track_plan(directory.path());
    assert_eq!(plan.extra_tracks.len(), 7, "{plan:?}");
    assert!(
        plan.notes.iter().any(|note| note.contains("500 audio")),
        "{:?}",
        plan.notes
    );
    let labels = plan
        .extra_tracks
        .iter()
        .flat_map(|track| [track.language.clone(), track.title.clone()])
        .chain([
            plan.first_audio_language.clone(),
            plan.first_audio_title.clone(),
        ])
        .flatten();
    for label in labels {
        assert!(!label.chars().any(char::is_control), "{label:?}");
    }
    for (path, _) in files_under(directory.path()) {
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("");
        assert!(!name.contains("etc") && !name.contains("evil"), "{name}");
        assert!(path.starts_with(directory.path()));
    }
    let finalized = finalize(&report).await;
    assert!(finalized.failures.is_empty(), "{finalized:?}");
    assert_eq!(finalized.files.len(), 1, "{finalized:?}");
    let types = stream_types(&finalized.files[0].path);
    let audio = types.iter().filter(|kind| *kind == "audio").count();
    assert!((1..=8).contains(&audio), "{types:?}");
    assert!(types.iter().any(|kind| kind == "video"), "{types:?}");
}

/// Attack: renditions at `file:///etc/passwd`, at `../../../../etc/passwd` and at another
/// scheme. Defended: none is read, the recording of the video succeeds, and no byte of
/// `/etc/passwd` reaches any file of the recording.
#[tokio::test]
async fn renditions_pointing_at_local_files_are_not_read() {
    if !streambot_testkit::requirements::require_or_skip("ffprobe") {
        return;
    }
    let master = "#EXTM3U
#EXT-X-VERSION:4
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"file\",LANGUAGE=\"en\",DEFAULT=YES,URI=\"file:///etc/passwd\"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"up\",LANGUAGE=\"de\",URI=\"../../../../../etc/passwd\"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"ftp\",LANGUAGE=\"fr\",URI=\"ftp://127.0.0.1/etc/passwd\"
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"file\",LANGUAGE=\"en\",URI=\"file:///etc/passwd\"
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"up\",LANGUAGE=\"de\",URI=\"/../../etc/passwd\"
#EXT-X-STREAM-INF:BANDWIDTH=1200000,AUDIO=\"aud\",SUBTITLES=\"subs\"
v0/media.m3u8
";
    let origin = spawn_tracks_origin(master.to_string(), Arc::new(|_, _| Bytes::new())).await;
    let directory = tempfile::tempdir().expect("tempdir");
    let report = record_into(
        &format!("{}/master.m3u8", origin.base_url),
        RecordingOptions {
            all_audio: true,
            subtitles: SubtitleChoice::All,
            ..RecordingOptions::default()
        },
        directory.path(),
    )
    .await;
    let passwd = std::fs::read("/etc/passwd").unwrap_or_default();
    let first_line = passwd
        .split(|byte| *byte == b'\n')
        .next()
        .unwrap_or_default()
        .to_vec();
    assert!(first_line.len() > 4);
    for (path, bytes) in files_under(directory.path()) {
        assert!(
            !bytes
                .windows(first_line.len())
                .any(|window| window == first_line),
            "{} holds /etc/passwd",
            path.display()
        );
    }
    let plan = read_track_plan(directory.path());
    for track in &plan.extra_tracks {
        assert!(
            track.media_playlist_url.starts_with("http://127.0.0.1"),
            "{track:?}"
        );
    }
    // The video is recorded whatever the renditions did.
    let main = report.main.as_ref().expect("main track");
    assert!(main.progress.segments_written > 0, "{:?}", report.outcome);
}

/// Attack: a master reached with `user:secret@` and `?token=secret-…`, whose renditions carry
/// `?token=secret-…`. Defended: `tracks.json` holds no secret.
#[tokio::test]
async fn secrets_in_rendition_urls_do_not_reach_tracks_json() {
    let master = "#EXTM3U
#EXT-X-VERSION:4
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"en\",LANGUAGE=\"en\",DEFAULT=YES,URI=\"a/en/media.m3u8?token=secret-audio\"
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"de\",LANGUAGE=\"de\",URI=\"{base}/a/de/media.m3u8?sig=secret-signature\"
#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"en\",LANGUAGE=\"en\",URI=\"s/en/media.m3u8?auth=secret-subs\"
#EXT-X-STREAM-INF:BANDWIDTH=1200000,AUDIO=\"aud\",SUBTITLES=\"subs\"
v0/media.m3u8
";
    let origin = spawn_tracks_origin(
        master.to_string(),
        Arc::new(|_, _| Bytes::from_static(b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nhi\n\n")),
    )
    .await;
    let url = origin
        .base_url
        .replace("http://", "http://user:secret-password@")
        + "/master.m3u8?token=secret-token";
    let directory = tempfile::tempdir().expect("tempdir");
    let report = record_into(
        &url,
        RecordingOptions {
            all_audio: true,
            subtitles: SubtitleChoice::All,
            ..RecordingOptions::default()
        },
        directory.path(),
    )
    .await;
    assert!(report.succeeded(), "{:?}", report.outcome);
    let tracks = std::fs::read_to_string(directory.path().join("tracks.json")).expect("tracks");
    assert!(tracks.contains("a/de/media.m3u8"), "{tracks}");
    assert!(!tracks.contains("secret"), "{tracks}");
    // Every ledger line too.
    for (path, bytes) in files_under(directory.path()) {
        let name = path.to_string_lossy().to_string();
        if name.ends_with(".jsonl") {
            assert!(
                !String::from_utf8_lossy(&bytes).contains("secret"),
                "{name}"
            );
        }
    }
}

/// Attack: the same, read from `recording.json` (the resolved source's URLs are written as
/// given).
#[tokio::test]
async fn secrets_in_the_link_do_not_reach_recording_json() {
    let master = "#EXTM3U
#EXT-X-VERSION:4
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"en\",LANGUAGE=\"en\",DEFAULT=YES,URI=\"a/en/media.m3u8?token=secret-audio\"
#EXT-X-STREAM-INF:BANDWIDTH=1200000,AUDIO=\"aud\"
v0/media.m3u8?token=secret-video
";
    let origin = spawn_tracks_origin(master.to_string(), Arc::new(|_, _| Bytes::new())).await;
    let url = origin
        .base_url
        .replace("http://", "http://user:secret-password@")
        + "/master.m3u8?token=secret-token";
    let directory = tempfile::tempdir().expect("tempdir");
    let report = record_into(&url, RecordingOptions::default(), directory.path()).await;
    assert!(report.succeeded(), "{:?}", report.outcome);
    let summary =
        std::fs::read_to_string(directory.path().join("recording.json")).expect("summary");
    assert!(!summary.contains("secret"), "{summary}");
}

/// A finished VOD recording (MPEG-TS, 6 segments) in a new directory.
async fn recorded_directory() -> tempfile::TempDir {
    let origin = spawn_origin(
        OriginConfig::new(SegmentKind::MpegTs)
            .with_window_segments(6)
            .with_total_segments(6)
            .as_vod(),
    )
    .await
    .expect("origin");
    let directory = tempfile::tempdir().expect("tempdir");
    let report = record_into(
        &origin.media_playlist_url(),
        RecordingOptions::default(),
        directory.path(),
    )
    .await;
    assert!(report.succeeded(), "{:?}", report.outcome);
    origin.shutdown();
    directory
}

fn snapshot(directory: &Path) -> HashMap<PathBuf, Vec<u8>> {
    files_under(directory).into_iter().collect()
}

/// Attack: `clip --output` at another job's live part (`other/main-0001.ts`) or at its ledger.
/// Defended: refused with a clear message before anything is written; the other job's files
/// are byte for byte what they were.
#[tokio::test]
async fn a_clip_cannot_replace_another_jobs_files() {
    if !streambot_testkit::requirements::require_or_skip("ffmpeg") {
        return;
    }
    let source = recorded_directory().await;
    let other = recorded_directory().await;
    let before = snapshot(other.path());
    let runner = FfmpegRunner::default();
    for name in [
        "main-0001.ts",
        "main-ledger.jsonl",
        "recording.json",
        "x.mp4",
    ] {
        let output = other.path().join(name);
        let error = clip_last(&runner, source.path(), Duration::from_secs(4), &output)
            .await
            .expect_err("another recording's directory");
        assert!(
            matches!(error, ClipError::OutputAmongRecordingFiles { .. }),
            "{name}: {error}"
        );
        assert!(error.user_message().contains("clip"), "{error}");
    }
    assert_eq!(snapshot(other.path()), before);
    // A clip-named file there is fine, and leaves the other job's files alone.
    let clip = clip_last(
        &runner,
        source.path(),
        Duration::from_secs(4),
        &other.path().join("clip-of-source.mp4"),
    )
    .await
    .expect("a clip");
    assert!(clip.size_bytes > 0);
    for (path, bytes) in &before {
        assert_eq!(std::fs::read(path).expect("still there"), *bytes);
    }
}

/// Attack: `clip --output` is a symlink (named like a clip) to the recording's live part.
/// Defended: the clip replaces the link, never writes through it: the part is unchanged.
#[tokio::test]
async fn a_clip_output_symlink_to_the_live_part_does_not_overwrite_it() {
    if !streambot_testkit::requirements::require_or_skip("ffmpeg") {
        return;
    }
    let source = recorded_directory().await;
    let part = source.path().join("main-0001.ts");
    let before = std::fs::read(&part).expect("part");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    for output in [
        source.path().join("clip.mp4"),
        elsewhere.path().join("clip.mp4"),
    ] {
        std::os::unix::fs::symlink(&part, &output).expect("symlink");
        let made = clip_last(
            &FfmpegRunner::default(),
            source.path(),
            Duration::from_secs(4),
            &output,
        )
        .await;
        assert!(made.is_ok(), "{made:?}");
        assert_eq!(std::fs::read(&part).expect("part"), before);
        assert!(
            !std::fs::symlink_metadata(&output)
                .expect("output")
                .file_type()
                .is_symlink()
        );
    }
}

fn hostile_record(part: u32, offset: u64, bytes: u64, duration: f64) -> String {
    let record = LedgerRecord::new(LedgerEntry {
        track: "main".to_string(),
        part,
        epoch: 0,
        discontinuity_sequence: 0,
        media_sequence: u64::from(part) + offset % 1000,
        duration_seconds: duration,
        bytes,
        offset_in_part: offset,
        state: SegmentState::Ok,
        wall_time: Default::default(),
        failed_attempts: 0,
        uri: String::new(),
    });
    serde_json::to_string(&record).expect("json")
}

/// Attack: clip on a directory whose ledger lies: offsets near 2^64, negative, huge and
/// overlapping durations, a part number no file has, lines of garbage, 100,000 lines. Defended:
/// no panic; either a specific error or a clip made only of the part's own bytes; the
/// recording's files are unchanged.
#[tokio::test]
async fn clip_on_a_lying_ledger_fails_clearly_or_clips_only_the_part() {
    if !streambot_testkit::requirements::require_or_skip("ffmpeg") {
        return;
    }
    let source = recorded_directory().await;
    let ledger_path = source.path().join("main-ledger.jsonl");
    let honest = std::fs::read_to_string(&ledger_path).expect("ledger");
    let part_length = std::fs::metadata(source.path().join("main-0001.ts"))
        .expect("part")
        .len();
    let lies: Vec<Vec<String>> = vec![
        vec![hostile_record(1, u64::MAX - 10, 100, 2.0)],
        vec![hostile_record(1, 0, u64::MAX, 2.0)],
        vec![hostile_record(1, part_length - 188, 188 * 1000, 2.0)],
        vec![
            hostile_record(1, 0, 188 * 10, -5.0),
            hostile_record(1, 0, 188 * 10, 1e300),
        ],
        vec![
            hostile_record(1, 188 * 10, 188 * 10, 2.0),
            hostile_record(1, 0, 188 * 20, 2.0),
        ],
        vec![hostile_record(u32::MAX, 0, 188, 2.0)],
        (0..100_000)
            .map(|index| hostile_record(1, (index % 50) * 188, 188, -1.0))
            .collect(),
    ];
    let runner = FfmpegRunner::default();
    let output = source.path().join("clip.mp4");
    for (index, lines) in lies.iter().enumerate() {
        let mut text = honest.clone();
        text.push_str("{not json\n\u{0}\u{ff}\n");
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        std::fs::write(&ledger_path, text).expect("ledger");
        let before = snapshot(source.path());
        let result = clip_last(&runner, source.path(), Duration::from_secs(300), &output).await;
        match result {
            Ok(clip) => {
                assert!(
                    clip.size_bytes > 0 && clip.size_bytes <= part_length * 2,
                    "{index}: {clip:?}"
                );
                std::fs::remove_file(&output).expect("remove the clip");
            }
            Err(error) => {
                assert!(!error.user_message().is_empty(), "{index}: {error}");
                assert!(!output.exists(), "{index}");
            }
        }
        let after = snapshot(source.path());
        assert_eq!(after, before, "{index}: the recording's files changed");
    }
}

/// Attack: one subtitle segment of 6 MB (a single cue's text), past the 4 MiB at which a body
/// is spilled to a file. Wanted: it and every other segment of the rendition are recorded (a big
/// body is not a reason to lose subtitles). It found: when the main track ended, the subtitle
/// track's control channel closed, and its loop (a `biased` select with the closed channel
/// first) slept out the whole 15 s stop grace without collecting the last download, then wrote
/// that segment as a gap ("the recording ended before it was downloaded").
#[tokio::test]
async fn a_subtitle_segment_larger_than_the_spill_threshold_is_recorded() {
    if !streambot_testkit::requirements::require_or_skip("ffprobe") {
        return;
    }
    let mut long_cue = String::from("WEBVTT\n\n00:00:02.000 --> 00:00:02.500\n");
    long_cue.push_str(&"x".repeat(6 * 1024 * 1024));
    long_cue.push_str("\n\n");
    let segments = [
        Bytes::from_static(b"WEBVTT\n\n00:00:01.000 --> 00:00:01.500\nsmall\n\n"),
        Bytes::from(long_cue),
    ];
    let recorded = subtitle_segments_recorded(segments.to_vec()).await;
    assert_eq!(recorded, vec![0, 1, 2, 3, 4, 5]);
}

/// Attack: a subtitle rendition whose segment 1 is MPEG-TS (video) between WebVTT segments.
/// Defended: the WebVTT segments after it are still recorded.
#[tokio::test]
async fn webvtt_after_an_mpeg_ts_body_in_a_subtitle_rendition_is_still_recorded() {
    let segments = tokio::task::spawn_blocking(|| {
        let video = media_fixtures(SegmentKind::MpegTs).expect("fixtures");
        vec![
            Bytes::from_static(b"WEBVTT\n\n00:00:01.000 --> 00:00:01.500\nbefore\n\n"),
            video.segments[0].clone(),
        ]
    })
    .await
    .expect("fixture");
    // The MPEG-TS body is kept in a part of its own (finalize's merge skips what is not
    // WebVTT); the WebVTT after it goes on.
    let recorded = subtitle_segments_recorded(segments).await;
    assert_eq!(recorded, vec![0, 1, 2, 3, 4, 5]);
}

/// Records the video and a subtitle rendition whose first segments are `segments` (the others
/// a small cue each) with `--subs all`.
async fn record_with_subtitles(segments: Vec<Bytes>) -> (tempfile::TempDir, RecordingReport) {
    let origin = spawn_tracks_origin(
        VIDEO_AND_SUBTITLES_MASTER.to_string(),
        Arc::new(move |_, index| {
            segments.get(index).cloned().unwrap_or_else(|| {
                Bytes::from_static(b"WEBVTT\n\n00:00:03.000 --> 00:00:03.500\nlater\n\n")
            })
        }),
    )
    .await;
    let directory = tempfile::tempdir().expect("tempdir");
    let report = record_into(
        &format!("{}/master.m3u8", origin.base_url),
        RecordingOptions {
            subtitles: SubtitleChoice::All,
            ..RecordingOptions::default()
        },
        directory.path(),
    )
    .await;
    assert!(report.succeeded(), "{:?}", report.outcome);
    (directory, report)
}

/// The media sequences of the subtitle track recorded by [`record_with_subtitles`].
async fn subtitle_segments_recorded(segments: Vec<Bytes>) -> Vec<u64> {
    let (directory, _) = record_with_subtitles(segments).await;
    let ledger =
        streambot_hls::ledger::read_ledger(&directory.path().join("subtitles1-ledger.jsonl"))
            .expect("ledger");
    ledger
        .iter()
        .filter(|entry| entry.state == SegmentState::Ok)
        .map(|entry| entry.media_sequence)
        .collect()
}
