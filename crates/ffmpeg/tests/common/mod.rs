//! Helpers shared by the tests that run the real ffmpeg.
#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use streambot_ffmpeg::run::run_ffmpeg;
use streambot_ffmpeg::{FfmpegBinaries, FfmpegProgress, FfmpegRunner, StreamInfo};

pub fn binaries() -> FfmpegBinaries {
    FfmpegBinaries::default()
}

pub fn arguments(items: &[&str]) -> Vec<OsString> {
    items.iter().map(OsString::from).collect()
}

/// A 4-second 160x90 H.264 + AAC MPEG-TS (keyframe every second) at `directory/name`.
pub async fn make_test_ts(directory: &Path, name: &str) -> PathBuf {
    make_test_media(directory, name, 4, "160x90").await
}

/// `seconds` of H.264 + AAC MPEG-TS at `size` (`WxH`), a keyframe every second.
pub async fn make_test_media(directory: &Path, name: &str, seconds: u32, size: &str) -> PathBuf {
    let output = directory.join(name);
    let mut argv = arguments(&["-hide_banner", "-loglevel", "error", "-y"]);
    argv.extend(test_source_arguments(seconds, size, "mpegts"));
    argv.push(output.clone().into_os_string());
    let (finished, _) = run_ffmpeg(
        &binaries().ffmpeg,
        &argv,
        "make test media",
        Duration::from_secs(30),
        None,
    )
    .await
    .expect("ffmpeg runs");
    assert!(
        finished.success(),
        "making test media failed: {}",
        finished.stderr_tail
    );
    output
}

/// Inputs (lavfi test picture and sine) and encoding options for `seconds` of H.264 + AAC in
/// `muxer`; the output path goes after them.
pub fn test_source_arguments(seconds: u32, size: &str, muxer: &str) -> Vec<OsString> {
    let video_source = format!("testsrc2=size={size}:rate=25");
    let seconds = seconds.to_string();
    arguments(&[
        "-f",
        "lavfi",
        "-i",
        &video_source,
        "-f",
        "lavfi",
        "-i",
        "sine",
        "-t",
        &seconds,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "25",
        "-c:a",
        "aac",
        "-f",
        muxer,
    ])
}

/// Wait (bounded, 10 s) until the watched progress reaches `at_least`.
pub async fn wait_for_out_time(
    receiver: &mut watch::Receiver<FfmpegProgress>,
    at_least: Duration,
) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out_time = receiver.borrow_and_update().out_time;
        if out_time >= at_least {
            return out_time;
        }
        assert!(Instant::now() < deadline, "progress stuck at {out_time:?}");
        let _ = tokio::time::timeout(Duration::from_secs(1), receiver.changed()).await;
    }
}

/// After a pause: let a block already in the pipe arrive, then see that nothing moves for a second.
/// Returns the media time it stands at.
pub async fn assert_no_progress_for_a_second(
    receiver: &mut watch::Receiver<FfmpegProgress>,
) -> Duration {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let paused_at = receiver.borrow_and_update().out_time;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(
        receiver.borrow_and_update().out_time,
        paused_at,
        "no progress while paused"
    );
    paused_at
}

/// Probe each file; each must have video (and audio when `require_audio`); the total duration.
pub async fn probe_all(files: &[PathBuf], require_audio: bool) -> Duration {
    let runner = FfmpegRunner::new(binaries());
    let mut total = Duration::ZERO;
    for file in files {
        let info = runner.probe(file).await.expect("probes");
        assert!(info.has_video(), "{file:?}: {info:?}");
        assert!(info.has_audio() || !require_audio, "{file:?}: {info:?}");
        total += info.duration.unwrap_or_default();
    }
    total
}

/// The shared corpus (`STREAMBOT_CORPUS_DIR`, else `<manifest>/../../../shared/corpus`), if present.
pub fn corpus_directory() -> Option<PathBuf> {
    let candidate = match std::env::var_os("STREAMBOT_CORPUS_DIR") {
        Some(directory) if !directory.is_empty() => PathBuf::from(directory),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus"),
    };
    candidate.is_dir().then_some(candidate)
}

/// The probed duration is `seconds` within 0.3 s.
pub fn assert_duration_about(info: &StreamInfo, seconds: u64) {
    let duration = info
        .duration
        .unwrap_or_else(|| panic!("no duration: {info:?}"));
    assert_close(
        duration,
        Duration::from_secs(seconds),
        Duration::from_millis(300),
    );
}

pub fn assert_close(actual: Duration, expected: Duration, tolerance: Duration) {
    assert!(
        actual.abs_diff(expected) <= tolerance,
        "{actual:?} is not within {tolerance:?} of {expected:?}"
    );
}
