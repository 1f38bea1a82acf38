//! The ffmpeg settings of the binary: `FFMPEG_PATH`, `FFPROBE_PATH` and `FFMPEG_DEFAULT_TIMEOUT`
//! are read here, once, and passed to the library crates as values (they never read the
//! environment).

use std::path::PathBuf;
use std::time::Duration;

use streambot_ffmpeg::{FfmpegBinaries, FfmpegRunner};

/// `FFMPEG_DEFAULT_TIMEOUT` when unset (a bad value is refused by `config check`).
pub const DEFAULT_FFMPEG_OPERATION_TIMEOUT: Duration = Duration::from_secs(7200);

/// `FFMPEG_PATH` / `FFPROBE_PATH` when set and not empty, else the names on PATH.
pub fn ffmpeg_binaries_from_environment() -> FfmpegBinaries {
    FfmpegBinaries::from_settings(
        std::env::var_os("FFMPEG_PATH").map(PathBuf::from),
        std::env::var_os("FFPROBE_PATH").map(PathBuf::from),
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
