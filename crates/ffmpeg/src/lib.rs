//! streambot-ffmpeg: the only crate of streambot that spawns ffmpeg or ffprobe.
//!
//! - [`argv`]: pure argv builders (remux, transcode, audio only, thumbnail, concat, probe, the ffmpeg
//!   engine), each unit-tested;
//! - [`input`]: which demuxer may read a local input (named with `-f`, whitelisted alone), told
//!   from the recorder's file name and checked against the first bytes;
//! - [`known_streams`] and [`mp4_index`]: what a part holds and what a finished mp4's index says,
//!   read in process (finalize runs no ffprobe for them);
//! - [`progress`]: the pure parser of `-progress pipe:1`;
//! - [`process`]: spawn in an own process group, `q` → SIGTERM → SIGKILL, SIGSTOP/SIGCONT, stderr
//!   tail in errors, timeouts on every wait;
//! - [`probe`]: ffprobe JSON → [`StreamInfo`], output checks, `moov_before_mdat`;
//! - [`run`]: the async operations ([`FfmpegRunner`]) and the ffmpeg engine ([`EngineRecording`]);
//! - [`error`]: [`FfmpegError`], with `is_retryable()` and `user_message()`.

pub mod argv;
pub mod error;
pub mod input;
pub mod known_streams;
pub mod mp4_index;
pub mod probe;
pub mod process;
pub mod progress;
pub mod run;

pub use argv::{
    AudioOnlyOptions, AudioTrackInput, ConcatOptions, DecodeCheckSampling, EngineInput,
    EngineOptions, OutputContainer, RemuxOptions, SplitOptions, SubtitleInput, TrackLabel,
    TranscodeOptions, TranscodePreset, is_probably_hls, iso639_2_code,
};
pub use error::{FfmpegError, FfmpegResult};
pub use input::{InputFormat, MediaInput, NotMedia, sniff_media};
pub use known_streams::{
    PartStreams, declared_streams_without_packets, known_streams, known_streams_with_packets,
    stream_info_from_index,
};
pub use mp4_index::{Mp4Index, Mp4Track, read_mp4_index};
pub use probe::{
    AudioStreamInfo, OutputExpectations, StreamInfo, VideoStreamInfo, check_output,
    moov_before_mdat,
};
pub use process::{
    FfmpegBinaries, FfmpegProcess, FinishedProcess, StdoutMode, StopOutcome, StoppedBy,
};
pub use progress::{FfmpegProgress, ProgressParser};
pub use run::{
    BinaryVersions, DecodeCheck, EngineRecording, EngineRecordingOutcome, FfmpegRunner,
    FinishedOutput, OperationTimeouts, Thumbnail,
};
