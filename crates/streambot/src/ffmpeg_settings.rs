//! The ffmpeg settings of the binary: `FFMPEG_PATH`, `FFPROBE_PATH` and `FFMPEG_DEFAULT_TIMEOUT`
//! are read here, once, and passed to the library crates as values (they never read the
//! environment).

use std::path::PathBuf;
use std::time::Duration;

use streambot_ffmpeg::{FfmpegBinaries, FfmpegRunner};

/// `FFMPEG_DEFAULT_TIMEOUT` when unset (a bad value is refused by `config check`).
pub const DEFAULT_FFMPEG_OPERATION_TIMEOUT: Duration = Duration::from_secs(3600);

/// `FFMPEG_PATH` / `FFPROBE_PATH` when set and not empty, else the names on PATH.
pub fn ffmpeg_binaries_from_environment() -> FfmpegBinaries {
    let path_from_environment = |variable: &str| std::env::var_os(variable).map(PathBuf::from);
    FfmpegBinaries::from_settings(
        path_from_environment("FFMPEG_PATH"),
        path_from_environment("FFPROBE_PATH"),
    )
}

/// Remux/transcode/concat limited to `FFMPEG_DEFAULT_TIMEOUT` seconds; ffprobe keeps its own short
/// limit.
pub fn ffmpeg_runner_from_environment() -> FfmpegRunner {
    let operation_timeout = std::env::var("FFMPEG_DEFAULT_TIMEOUT")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .filter(|seconds| *seconds > 0)
        .map_or(DEFAULT_FFMPEG_OPERATION_TIMEOUT, Duration::from_secs);
    FfmpegRunner::with_operation_timeout(ffmpeg_binaries_from_environment(), operation_timeout)
}
