//! streambot-ffmpeg: the only crate of streambot that spawns ffmpeg or ffprobe.
//!
//! - [`argv`]: pure argv builders (remux, transcode, audio only, thumbnail, concat, probe, the ffmpeg
//!   engine), each unit-tested;
//! - [`progress`]: the pure parser of `-progress pipe:1`;
//! - [`process`]: spawn in an own process group, `q` → SIGTERM → SIGKILL, SIGSTOP/SIGCONT, stderr
//!   tail in errors, timeouts on every wait;
//! - [`error`]: [`FfmpegError`], with `is_retryable()` and `user_message()`.

pub mod argv;
pub mod error;
pub mod process;
pub mod progress;

pub use argv::{
    AudioOnlyOptions, ConcatOptions, EngineOptions, OutputContainer, RemuxOptions,
    TranscodeOptions, TranscodePreset, is_probably_hls,
};
pub use error::{FfmpegError, FfmpegResult};
pub use process::{
    FfmpegBinaries, FfmpegProcess, FinishedProcess, StdoutMode, StopOutcome, StoppedBy,
};
pub use progress::{FfmpegProgress, ProgressParser};
