//! Helpers shared by the tests that run the real ffmpeg.
#![allow(dead_code)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use streambot_ffmpeg::run::run_ffmpeg;
use streambot_ffmpeg::{FfmpegBinaries, StreamInfo};

pub fn binaries() -> FfmpegBinaries {
    FfmpegBinaries::from_environment()
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
    let seconds = seconds.to_string();
    let video_source = format!("testsrc2=size={size}:rate=25");
    let mut argv = arguments(&[
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
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
        "mpegts",
    ]);
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
