//! Issue 11, second attack round on the stream side, against finalize: parts built from hostile
//! (or merely odd) streams must still become a playable file. Origins on 127.0.0.1 built here,
//! ffmpeg and ffprobe real.

mod common;

use std::path::Path;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, Uri, header};
use axum::response::IntoResponse;
use bytes::Bytes;
use streambot_core::{OutputFormat, Quality, RecordingOptions};
use streambot_ffmpeg::FfmpegRunner;
use streambot_hls::{DesiredState, FetchLimits, HlsHttpClient, NetworkPolicy};
use streambot_recorder::finalize::{FinalizeSettings, finalize_recording};
use streambot_recorder::{RecordingReport, RecordingSettings, record};
use streambot_testkit::hostile::serve_on_loopback;
use tokio::sync::{mpsc, watch};

fn client() -> HlsHttpClient {
    HlsHttpClient::new(NetworkPolicy::ALLOW_PRIVATE, FetchLimits::default()).expect("client")
}

async fn record_into(url: &str, directory: &Path) -> RecordingReport {
    record_with_options(url, directory, RecordingOptions::default()).await
}

async fn record_with_options(
    url: &str,
    directory: &Path,
    options: RecordingOptions,
) -> RecordingReport {
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

/// A VOD at `/live.m3u8` of `segments` (2 s each) at `/seg-<i>.ts`.
async fn serve_vod(segments: Vec<Bytes>) -> String {
    let mut playlist = String::from(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n",
    );
    for index in 0..segments.len() {
        playlist.push_str(&format!("#EXTINF:2.0,\nseg-{index}.ts\n"));
    }
    playlist.push_str("#EXT-X-ENDLIST\n");
    let router = Router::new().fallback(move |uri: Uri| {
        let playlist = playlist.clone();
        let segments = segments.clone();
        async move {
            let path = uri.path();
            if path == "/live.m3u8" {
                return (
                    [(header::CONTENT_TYPE, "application/vnd.apple.mpegurl")],
                    playlist,
                )
                    .into_response();
            }
            let index = path
                .strip_prefix("/seg-")
                .and_then(|rest| rest.strip_suffix(".ts"))
                .and_then(|number| number.parse::<usize>().ok());
            match index.and_then(|index| segments.get(index)) {
                Some(body) => {
                    ([(header::CONTENT_TYPE, "video/mp2t")], body.clone()).into_response()
                }
                None => StatusCode::NOT_FOUND.into_response(),
            }
        }
    });
    let address = serve_on_loopback(router).await.expect("origin");
    format!("http://127.0.0.1:{}/live.m3u8", address.port())
}

/// The PID of a TS packet.
fn pid_of(packet: &[u8]) -> u16 {
    (u16::from(packet[1] & 0x1F) << 8) | u16::from(packet[2])
}

/// Which declared stream of [`segments_with_an_empty_declared_stream`] is empty.
#[derive(Debug, Clone, Copy)]
enum EmptyStream {
    /// Video, audio, audio: the second audio stream (PID 0x102).
    SecondAudio,
    /// Video, video, audio: the first video stream (PID 0x100), before the one that plays.
    FirstVideo,
    /// Video, audio, audio: the first audio stream (PID 0x101), before the one that plays.
    FirstAudio,
}

/// HLS segments of H.264 and AAC streams whose program map keeps one stream but none of its
/// packets: a rendition that is off, or a hostile map.
fn segments_with_an_empty_declared_stream(directory: &Path, empty: EmptyStream) -> Vec<Bytes> {
    let (maps, empty_pid): (&[&str], u16) = match empty {
        EmptyStream::SecondAudio => (&["-map", "0:v", "-map", "1:a", "-map", "2:a"], 0x102),
        EmptyStream::FirstVideo => (&["-map", "0:v", "-map", "0:v", "-map", "1:a"], 0x100),
        EmptyStream::FirstAudio => (&["-map", "0:v", "-map", "2:a", "-map", "1:a"], 0x101),
    };
    let status = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg("testsrc=size=320x240:rate=25:d=8")
        .args([
            "-f",
            "lavfi",
            "-i",
            "sine=d=8",
            "-f",
            "lavfi",
            "-i",
            "sine=f=880:d=8",
        ])
        .args(maps)
        .args(["-c:v", "libx264", "-g", "25"])
        .args([
            "-c:a",
            "aac",
            "-f",
            "hls",
            "-hls_time",
            "2",
            "-hls_playlist_type",
            "vod",
        ])
        .arg("-hls_segment_filename")
        .arg(directory.join("s%d.ts"))
        .arg(directory.join("source.m3u8"))
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
    let mut segments = Vec::new();
    for index in 0.. {
        let Ok(bytes) = std::fs::read(directory.join(format!("s{index}.ts"))) else {
            break;
        };
        let kept: Vec<u8> = bytes
            .chunks_exact(188)
            .filter(|packet| pid_of(packet) != empty_pid)
            .flatten()
            .copied()
            .collect();
        segments.push(Bytes::from(kept));
    }
    assert!(segments.len() >= 3);
    segments
}

/// Attack: a TS stream whose program map declares an audio stream (or a video stream before
/// the one that plays) that never carries a packet. ffmpeg cannot find that stream's parameters
/// and refuses to write any output with it ("sample rate not set"; the thumbnail of `v:0`:
/// "Cannot determine format of input stream"), so every format ffmpeg finalizes (mkv, ts, and
/// mp4 whenever the in-process remuxer declines) lost the whole part: "part 1 could not be
/// finalized". Defended: the empty stream is left out of the maps and the thumbnail is taken
/// from the video that has packets; each format gives a file with one video and one audio
/// stream, which decodes without errors.
#[tokio::test]
async fn a_declared_stream_without_packets_does_not_cost_the_part() {
    for empty in [EmptyStream::SecondAudio, EmptyStream::FirstVideo] {
        let sources = tempfile::tempdir().expect("tempdir");
        let url = serve_vod(segments_with_an_empty_declared_stream(
            sources.path(),
            empty,
        ))
        .await;
        finalize_in_every_format(&url, empty).await;
    }
}

/// HLS segments (2 s) made by ffmpeg from `inputs` with `maps`, with every packet of
/// `empty_pid` dropped (its program map entry kept).
fn hls_segments_without_pid(
    directory: &Path,
    name: &str,
    inputs: &[&str],
    maps: &[&str],
    empty_pid: u16,
) -> Vec<Bytes> {
    let mut command = std::process::Command::new("ffmpeg");
    command.args(["-nostdin", "-loglevel", "error"]);
    for input in inputs {
        command.args(["-f", "lavfi", "-i", input]);
    }
    let status = command
        .args(maps)
        .args(["-c:v", "libx264", "-g", "25", "-c:a", "aac", "-f", "hls"])
        .args([
            "-hls_time",
            "2",
            "-hls_playlist_type",
            "vod",
            "-hls_segment_filename",
        ])
        .arg(directory.join(format!("{name}%d.ts")))
        .arg(directory.join(format!("{name}.m3u8")))
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
    let mut segments = Vec::new();
    for index in 0.. {
        let Ok(bytes) = std::fs::read(directory.join(format!("{name}{index}.ts"))) else {
            break;
        };
        let kept: Vec<u8> = bytes
            .chunks_exact(188)
            .filter(|packet| pid_of(packet) != empty_pid)
            .flatten()
            .copied()
            .collect();
        segments.push(Bytes::from(kept));
    }
    segments
}

/// Attack: the same empty declared stream in a separate audio rendition (`EXT-X-MEDIA`): its
/// part is the second input of the remux, whose audio ffmpeg maps whole (`-map 1:a`); with
/// `--all-audio` a second rendition's first audio stream is mapped (`-map N:a:0`). Here the
/// empty stream is the first of each rendition. Defended: left out there too; the file has the
/// video and each rendition's one audio stream.
#[tokio::test]
async fn a_declared_stream_without_packets_in_the_audio_rendition_does_not_cost_the_part() {
    let sources = tempfile::tempdir().expect("tempdir");
    let video = hls_segments_without_pid(
        sources.path(),
        "v",
        &["testsrc=size=320x240:rate=25:d=8"],
        &["-map", "0:v"],
        0x1FFF,
    );
    let audio = hls_segments_without_pid(
        sources.path(),
        "a",
        &["sine=d=8", "sine=f=880:d=8"],
        &["-map", "0:a", "-map", "1:a"],
        0x100,
    );
    let media_playlist = |prefix: &str, count: usize| {
        let mut text = String::from(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n",
        );
        for index in 0..count {
            text.push_str(&format!("#EXTINF:2.0,\n{prefix}-{index}.ts\n"));
        }
        text.push_str("#EXT-X-ENDLIST\n");
        text
    };
    let master = "#EXTM3U\n\
        #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"main\",LANGUAGE=\"en\",DEFAULT=YES,URI=\"audio.m3u8\"\n\
        #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"second\",LANGUAGE=\"de\",URI=\"second/audio.m3u8\"\n\
        #EXT-X-STREAM-INF:BANDWIDTH=1000000,RESOLUTION=320x240,AUDIO=\"a\"\n\
        video.m3u8\n"
        .to_string();
    let video_playlist = media_playlist("v", video.len());
    let audio_playlist = media_playlist("a", audio.len());
    let router = Router::new().fallback(move |uri: Uri| {
        let (master, video_playlist, audio_playlist) = (
            master.clone(),
            video_playlist.clone(),
            audio_playlist.clone(),
        );
        let (video, audio) = (video.clone(), audio.clone());
        async move {
            let path = uri.path().trim_start_matches('/').to_string();
            let text = match path.as_str() {
                "master.m3u8" => Some(master),
                "video.m3u8" => Some(video_playlist),
                "audio.m3u8" | "second/audio.m3u8" => Some(audio_playlist),
                _ => None,
            };
            if let Some(text) = text {
                return (
                    [(header::CONTENT_TYPE, "application/vnd.apple.mpegurl")],
                    text,
                )
                    .into_response();
            }
            let name = path.rsplit('/').next().unwrap_or_default();
            let segment = |prefix: &str, set: &[Bytes]| {
                name.strip_prefix(prefix)
                    .and_then(|rest| rest.strip_suffix(".ts"))
                    .and_then(|number| number.parse::<usize>().ok())
                    .and_then(|index| set.get(index).cloned())
            };
            match segment("v-", &video).or_else(|| segment("a-", &audio)) {
                Some(body) => ([(header::CONTENT_TYPE, "video/mp2t")], body).into_response(),
                None => StatusCode::NOT_FOUND.into_response(),
            }
        }
    });
    let address = serve_on_loopback(router).await.expect("origin");
    let url = format!("http://127.0.0.1:{}/master.m3u8", address.port());
    for (format, native_remux, all_audio) in [
        (OutputFormat::Mkv, true, false),
        (OutputFormat::Mp4, false, false),
        (OutputFormat::Mp4, true, false),
        (OutputFormat::Mkv, true, true),
        (OutputFormat::Mp4, true, true),
    ] {
        let directory = tempfile::tempdir().expect("tempdir");
        let options = RecordingOptions {
            all_audio,
            ..RecordingOptions::default()
        };
        let report = record_with_options(&url, directory.path(), options).await;
        assert!(report.succeeded(), "{:?}", report.outcome);
        assert!(
            report.audio.is_some(),
            "the rendition is recorded as its own track"
        );
        let mut settings = FinalizeSettings::new(format, Quality::Best);
        settings.native_remux = native_remux;
        let finalized = finalize_recording(&FfmpegRunner::default(), &report, &settings).await;
        assert!(
            finalized.failures.is_empty(),
            "{format:?} all audio {all_audio}: {:?}",
            finalized.failures
        );
        let file = &finalized.files[0];
        let mut kinds = common::ffprobe_values(&file.path, "stream=codec_type");
        kinds.sort();
        // With --all-audio the second rendition is one more audio track (`-map N:a:0`).
        let expected: &[&str] = if all_audio {
            &["audio", "audio", "video"]
        } else {
            &["audio", "video"]
        };
        assert_eq!(kinds, expected, "{format:?} all audio {all_audio}");
        assert!(common::decode_errors(&file.path).is_empty(), "{format:?}");
    }
}

async fn finalize_in_every_format(url: &str, empty: EmptyStream) {
    for (format, native_remux) in [
        (OutputFormat::Mkv, true),
        (OutputFormat::Ts, true),
        (OutputFormat::Mp4, false),
        (OutputFormat::Mp4, true),
    ] {
        let directory = tempfile::tempdir().expect("tempdir");
        let report = record_into(url, directory.path()).await;
        assert!(report.succeeded(), "{:?}", report.outcome);
        let mut settings = FinalizeSettings::new(format, Quality::Best);
        settings.native_remux = native_remux;
        let finalized = finalize_recording(&FfmpegRunner::default(), &report, &settings).await;
        assert!(
            finalized.failures.is_empty(),
            "{empty:?} {format:?} (native {native_remux}): {:?}",
            finalized.failures
        );
        assert_eq!(finalized.files.len(), 1, "{format:?}");
        let file = &finalized.files[0];
        assert!(!file.damaged, "{empty:?} {format:?}: {file:?}");
        assert!(file.has_audio, "{empty:?} {format:?}");
        if format != OutputFormat::Ts && !(format == OutputFormat::Mp4 && native_remux) {
            assert!(file.thumbnail.is_some(), "{empty:?} {format:?}: {file:?}");
        }
        // (ffprobe lists a TS file's streams twice: in its program and on their own.)
        let mut kinds = common::ffprobe_values(&file.path, "stream=codec_type");
        kinds.sort();
        kinds.dedup();
        assert_eq!(kinds, ["audio", "video"], "{empty:?} {format:?}");
        let count = common::ffprobe_values(&file.path, "format=nb_streams");
        assert_eq!(count, ["2"], "{empty:?} {format:?}");
        assert!(
            common::decode_errors(&file.path).is_empty(),
            "{format:?}: {:?}",
            common::decode_errors(&file.path)
        );
        assert!(
            (file.duration_seconds - 8.0).abs() < 1.0,
            "{format:?}: {file:?}"
        );
    }
}

/// A small deterministic generator (xorshift64*), so a failure is reproducible by its round.
struct Mutator(u64);

impl Mutator {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }

    /// `original` with a few bytes changed, set to extremes (0, 0xFF, 0x7F, 0x80), cut, or
    /// with bytes inserted: sizes, counts and offsets in box and packet headers become hostile.
    fn mutate(&mut self, original: &[u8]) -> Vec<u8> {
        let mut bytes = original.to_vec();
        for _ in 0..1 + self.below(8) {
            if bytes.is_empty() {
                bytes.push(self.next() as u8);
                continue;
            }
            let at = self.below(bytes.len());
            match self.below(6) {
                0 => bytes[at] = self.next() as u8,
                1 => bytes[at] = [0x00, 0xFF, 0x7F, 0x80][self.below(4)],
                2 => {
                    let end = (at + 4).min(bytes.len());
                    bytes[at..end].fill(0xFF);
                }
                3 => bytes.truncate(at),
                4 => {
                    let insert: Vec<u8> = (0..self.below(16)).map(|_| self.next() as u8).collect();
                    bytes.splice(at..at, insert);
                }
                _ => {
                    let end = (at + 4).min(bytes.len());
                    bytes[at..end].fill(0x00);
                }
            }
        }
        bytes
    }
}

/// Attack: bytes from outside, mutated, into every parser of the recorder and ffmpeg crates
/// that reads them in process and had no property test: the TS program map and packet presence
/// (`known_streams`), the mp4 index reader, the fMP4 join's init and `moof` readers, the
/// progressive engine's body classification and TS helpers, the WebVTT merger. Defended: no
/// panic for any of 3,000 mutations of real media (and of pure noise) per parser.
#[test]
fn parsers_of_outside_bytes_never_panic_on_mutated_media() {
    use streambot_ffmpeg::InputFormat;
    use streambot_ffmpeg::known_streams::{known_streams_from_header, ts_streams_without_packets};
    use streambot_ffmpeg::mp4_index::parse_mp4_index;
    use streambot_recorder::fmp4_join::{fragment_timings, init_tracks};
    use streambot_recorder::progressive::{
        classify_body, mp4_index_is_at_end, ts_packet_boundary, ts_packet_starts_keyframe,
        ts_video_pid,
    };
    use streambot_recorder::webvtt::merge_segments;
    use streambot_testkit::{SegmentKind, media_fixtures};

    let ts = media_fixtures(SegmentKind::MpegTs).expect("fixtures (ffmpeg)");
    let fmp4 = media_fixtures(SegmentKind::Fmp4).expect("fixtures (ffmpeg)");
    let init = fmp4.init_segment.clone().expect("an fMP4 init");
    let moov_body = find_box(&init, b"moov").expect("moov").to_vec();
    let tracks = init_tracks(&moov_body).expect("the fixture's tracks");
    let fragment = fmp4.segments[1].clone();
    let moof_body = find_box(&fragment, b"moof").expect("moof").to_vec();
    let webvtt = b"WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:900000,LOCAL:00:00:00.000\n\n\
                   00:00:01.000 --> 00:00:02.500 align:start\nhello <b>there</b>\n\n\
                   2\n00:00:03.000 --> 00:00:04.000\nsecond cue\n"
        .to_vec();
    let originals: Vec<Vec<u8>> = vec![
        ts.segments[0].to_vec(),
        init.to_vec(),
        fragment.to_vec(),
        moov_body.clone(),
        moof_body.clone(),
        webvtt.clone(),
        Vec::new(),
    ];
    let mut mutator = Mutator(0x5EED_0011);
    for round in 0..3_000 {
        let original = &originals[round % originals.len()];
        let bytes = if round % 10 == 9 {
            (0..mutator.below(4096))
                .map(|_| mutator.next() as u8)
                .collect()
        } else {
            mutator.mutate(original)
        };
        for format in [
            InputFormat::MpegTs,
            InputFormat::Mp4,
            InputFormat::Adts,
            InputFormat::Mp3,
        ] {
            let _ = known_streams_from_header(format, &bytes);
        }
        let _ = ts_streams_without_packets(&bytes);
        let _ = parse_mp4_index(&bytes);
        let _ = init_tracks(&bytes);
        let _ = fragment_timings(&bytes, &tracks);
        if let Ok(mutated_tracks) = init_tracks(&mutator.mutate(&moov_body)) {
            let _ = fragment_timings(&moof_body, &mutated_tracks);
        }
        let _ = classify_body(Some("video/mp2t"), &bytes);
        let _ = classify_body(None, &bytes);
        let _ = mp4_index_is_at_end(&bytes);
        let _ = ts_packet_boundary(&bytes);
        if let Some(pid) = ts_video_pid(&bytes) {
            for packet in bytes.chunks(188) {
                let _ = ts_packet_starts_keyframe(packet, pid);
            }
        }
        let _ = merge_segments([bytes.as_slice(), webvtt.as_slice()], 10.0);
        let _ = merge_segments([bytes.as_slice()], f64::NAN);
    }
}

/// Attack: fMP4 parts with mutated boxes (sizes, counts, decode times) through the join and the
/// decode-time repair finalize runs on them. Defended: an error or a file, never a panic.
#[test]
fn the_fmp4_join_never_panics_on_mutated_parts() {
    use streambot_recorder::fmp4_join::{join_fragmented_parts, make_decode_times_continuous};
    use streambot_testkit::{SegmentKind, media_fixtures};

    let fmp4 = media_fixtures(SegmentKind::Fmp4).expect("fixtures (ffmpeg)");
    let init = fmp4.init_segment.clone().expect("an fMP4 init");
    let clean_part: Vec<u8> = [
        init.to_vec(),
        fmp4.segments[0].to_vec(),
        fmp4.segments[1].to_vec(),
    ]
    .concat();
    let directory = tempfile::tempdir().expect("tempdir");
    let first = directory.path().join("main-0001.mp4");
    let second = directory.path().join("main-0002.mp4");
    let output = directory.path().join("joined.mp4");
    let mut mutator = Mutator(0x5EED_0022);
    for _ in 0..300 {
        std::fs::write(&first, mutator.mutate(&clean_part)).expect("write");
        std::fs::write(&second, mutator.mutate(&clean_part)).expect("write");
        let _ = make_decode_times_continuous(&first);
        let _ = join_fragmented_parts(&[first.as_path(), second.as_path()], &output);
        let _ = std::fs::remove_file(&output);
    }
}

/// The body of the first top-level box of `box_type` in `bytes`.
fn find_box<'a>(bytes: &'a [u8], box_type: &[u8; 4]) -> Option<&'a [u8]> {
    let mut offset = 0usize;
    while offset + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[offset..offset + 4].try_into().ok()?) as usize;
        if size < 8 || offset + size > bytes.len() {
            return None;
        }
        if &bytes[offset + 4..offset + 8] == box_type {
            return Some(&bytes[offset + 8..offset + size]);
        }
        offset += size;
    }
    None
}

/// Attack: the ffmpeg engine's link (`.ts`, read by streambot and piped into ffmpeg) declares an
/// audio stream that never carries a packet. ffmpeg failed the whole recording ("The input is not
/// valid media"). Defended: the engine reads until every declared stream has begun (at most
/// 4 MiB or 10 s, all of it given to ffmpeg), and leaves out the ones that have not; the
/// recording and its finished file have the video and the audio that plays.
#[tokio::test]
async fn the_ffmpeg_engine_leaves_out_a_declared_stream_without_packets() {
    let sources = tempfile::tempdir().expect("tempdir");
    let segments = segments_with_an_empty_declared_stream(sources.path(), EmptyStream::SecondAudio);
    let body = Bytes::from(segments.concat());
    let router = Router::new().fallback(move |uri: Uri| {
        let body = body.clone();
        async move {
            if uri.path() == "/live.ts" {
                ([(header::CONTENT_TYPE, "video/mp2t")], body).into_response()
            } else {
                StatusCode::NOT_FOUND.into_response()
            }
        }
    });
    let address = serve_on_loopback(router).await.expect("origin");
    let url = format!("http://127.0.0.1:{}/live.ts", address.port());
    let directory = tempfile::tempdir().expect("tempdir");
    let report = record_into(&url, directory.path()).await;
    assert!(report.succeeded(), "{:?}", report.outcome);
    let finalized = finalize_recording(
        &FfmpegRunner::default(),
        &report,
        &FinalizeSettings::new(OutputFormat::Mkv, Quality::Best),
    )
    .await;
    assert!(finalized.failures.is_empty(), "{:?}", finalized.failures);
    let file = &finalized.files[0];
    let mut kinds = common::ffprobe_values(&file.path, "stream=codec_type");
    kinds.sort();
    assert_eq!(kinds, ["audio", "video"]);
    assert!(common::decode_errors(&file.path).is_empty());
}

/// Attack (the round after): the empty declared stream is the first audio stream and the user
/// asked for audio only (an m4a). The m4a's ffmpeg path mapped `0:a:0`, the empty stream: "part
/// 1 could not be finalized" whenever the in-process remuxer declined (or was off). Defended: the
/// audio with packets is mapped by its id (`-map 0:i:<pid>`), like the extra audio tracks; the
/// m4a holds one audio stream, the one that plays, for the whole part.
#[tokio::test]
async fn audio_only_maps_the_audio_stream_that_has_packets() {
    let source = tempfile::tempdir().expect("tempdir");
    let segments = segments_with_an_empty_declared_stream(source.path(), EmptyStream::FirstAudio);
    let url = serve_vod(segments).await;
    for native_remux in [false, true] {
        let directory = tempfile::tempdir().expect("tempdir");
        let report = record_into(&url, directory.path()).await;
        assert!(report.succeeded(), "{:?}", report.outcome);
        let mut settings = FinalizeSettings::new(OutputFormat::Mp4, Quality::Audio);
        settings.native_remux = native_remux;
        let finalized = finalize_recording(&FfmpegRunner::default(), &report, &settings).await;
        assert!(
            finalized.failures.is_empty(),
            "native {native_remux}: {:?}",
            finalized.failures
        );
        assert_eq!(finalized.files.len(), 1);
        let file = &finalized.files[0];
        assert!(
            file.path
                .extension()
                .is_some_and(|extension| extension == "m4a"),
            "{file:?}"
        );
        assert!(
            !file.damaged && file.has_audio,
            "native {native_remux}: {file:?}"
        );
        assert_eq!(
            common::ffprobe_values(&file.path, "stream=codec_type"),
            ["audio"]
        );
        assert!(
            common::decode_errors(&file.path).is_empty(),
            "{:?}",
            common::decode_errors(&file.path)
        );
        assert!(
            (file.duration_seconds - 8.0).abs() < 1.0,
            "native {native_remux}: {file:?}"
        );
    }
}
