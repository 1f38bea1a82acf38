//! The ffmpeg settings of the binary: `FFMPEG_PATH`, `FFPROBE_PATH` and `FFMPEG_DEFAULT_TIMEOUT`,
//! from the settings read once at start-up, passed to the library crates as values (they never
//! read the environment).

use std::path::PathBuf;
use std::time::Duration;

use streambot_ffmpeg::{FfmpegBinaries, FfmpegRunner};

use crate::settings::EnvironmentValues;

/// `FFMPEG_DEFAULT_TIMEOUT` when unset (a bad value is refused by `config check`).
pub const DEFAULT_FFMPEG_OPERATION_TIMEOUT: Duration = Duration::from_secs(7200);

/// `FFMPEG_PATH` / `FFPROBE_PATH` when set and not empty, else the names on PATH.
pub fn ffmpeg_binaries(values: &EnvironmentValues) -> FfmpegBinaries {
    FfmpegBinaries::from_settings(
        values.ffmpeg_path.as_deref().map(PathBuf::from),
        values.ffprobe_path.as_deref().map(PathBuf::from),
    )
}

/// Remux/transcode/concat limited to `FFMPEG_DEFAULT_TIMEOUT` seconds; ffprobe keeps its own short
/// limit.
pub fn ffmpeg_runner(values: &EnvironmentValues) -> FfmpegRunner {
    let operation_timeout =
        crate::roles::parse_maximum_recording_duration(values.ffmpeg_default_timeout.as_deref())
            .unwrap_or(DEFAULT_FFMPEG_OPERATION_TIMEOUT);
    FfmpegRunner::with_operation_timeout(ffmpeg_binaries(values), operation_timeout)
}
