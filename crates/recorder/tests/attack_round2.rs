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
    let settings = RecordingSettings::new(directory.to_path_buf());
    let (_control_sender, control) = watch::channel(DesiredState::Record);
    let (events_sender, _events) = mpsc::unbounded_channel();
    tokio::time::timeout(
        Duration::from_secs(120),
        record(
            client(),
            url,
            RecordingOptions::default(),
            settings,
            control,
            events_sender,
        ),
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

/// HLS segments of H.264 video and two AAC streams whose program map keeps the second audio
/// stream (PID 0x102) but none of its packets: a rendition that is off, or a hostile map.
fn segments_with_an_empty_declared_stream(directory: &Path) -> Vec<Bytes> {
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
        .args([
            "-map", "0", "-map", "1", "-map", "2", "-c:v", "libx264", "-g", "25",
        ])
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
            .filter(|packet| pid_of(packet) != 0x102)
            .flatten()
            .copied()
            .collect();
        segments.push(Bytes::from(kept));
    }
    assert!(segments.len() >= 3);
    segments
}

/// Attack: a TS stream whose program map declares an audio stream that never carries a packet.
/// ffmpeg cannot find that stream's parameters and refuses to write any output with it ("sample
/// rate not set"), so every format ffmpeg finalizes (mkv, ts, and mp4 whenever the in-process
/// remuxer declines) lost the whole part: "part 1 could not be finalized". Defended: the empty
/// stream is left out of the maps; each format gives a file with the video and the one audio
/// stream that has packets, which decodes without errors.
#[tokio::test]
async fn a_declared_stream_without_packets_does_not_cost_the_part() {
    let sources = tempfile::tempdir().expect("tempdir");
    let url = serve_vod(segments_with_an_empty_declared_stream(sources.path())).await;
    for (format, native_remux) in [
        (OutputFormat::Mkv, true),
        (OutputFormat::Ts, true),
        (OutputFormat::Mp4, false),
        (OutputFormat::Mp4, true),
    ] {
        let directory = tempfile::tempdir().expect("tempdir");
        let report = record_into(&url, directory.path()).await;
        assert!(report.succeeded(), "{:?}", report.outcome);
        let mut settings = FinalizeSettings::new(format, Quality::Best);
        settings.native_remux = native_remux;
        let finalized = finalize_recording(&FfmpegRunner::default(), &report, &settings).await;
        assert!(
            finalized.failures.is_empty(),
            "{format:?} (native {native_remux}): {:?}",
            finalized.failures
        );
        assert_eq!(finalized.files.len(), 1, "{format:?}");
        let file = &finalized.files[0];
        assert!(!file.damaged, "{format:?}: {file:?}");
        assert!(file.has_audio, "{format:?}");
        // (ffprobe lists a TS file's streams twice: in its program and on their own.)
        let mut kinds = common::ffprobe_values(&file.path, "stream=codec_type");
        kinds.sort();
        kinds.dedup();
        assert_eq!(kinds, ["audio", "video"], "{format:?}");
        let count = common::ffprobe_values(&file.path, "format=nb_streams");
        assert_eq!(count, ["2"], "{format:?}");
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
