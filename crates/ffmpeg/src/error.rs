//! The one error type at the boundary of this crate.
//!
//! Every failure of ffmpeg or ffprobe ends up here, with the tail of the program's stderr where there is
//! one. `user_message()` is what a Telegram user sees; `Display` is what the log sees.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// What to tell someone whose ffmpeg or ffprobe is missing.
pub const INSTALL_HINT: &str = "install it with: apt-get install ffmpeg";

#[derive(Debug, thiserror::Error)]
pub enum FfmpegError {
    /// The ffmpeg or ffprobe binary does not exist (not on PATH, or a configured path is wrong).
    #[error("{} not found: {hint}", binary.display())]
    BinaryNotFound { binary: PathBuf, hint: &'static str },

    /// The binary exists but could not be started (permissions, resource limits, ...).
    #[error("could not start {}: {source}", binary.display())]
    SpawnFailed {
        binary: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The program ran and exited with a failure that is not recognised as something more specific.
    #[error("{program} failed ({}): {stderr_tail}", describe_exit(*exit_code, *signal))]
    NonZeroExit {
        program: String,
        exit_code: Option<i32>,
        signal: Option<i32>,
        stderr_tail: String,
    },

    /// The program did not finish within its time limit; it was killed.
    #[error("{program} {operation} timed out after {timeout:?}: {stderr_tail}")]
    TimedOut {
        program: String,
        operation: String,
        timeout: Duration,
        stderr_tail: String,
    },

    /// The input is not valid media (corrupt, truncated, or not a media file at all).
    #[error("invalid input {input}: {detail}")]
    InvalidInput {
        input: String,
        detail: String,
        stderr_tail: String,
    },

    /// A local input's bytes are not media (a playlist, a manifest, a web page, ...) or not the
    /// format its name promises; ffmpeg is never run on it.
    #[error("{input} is not media: it looks like {looks_like}")]
    NotMedia { input: String, looks_like: String },

    /// A local input file does not exist.
    #[error("input not found: {}", path.display())]
    InputNotFound { path: PathBuf },

    /// A network input (ffmpeg engine) failed; `permanent` is true for answers such as 403 or 404.
    #[error("network input failed: {detail}")]
    NetworkFailure {
        detail: String,
        permanent: bool,
        stderr_tail: String,
    },

    /// ffmpeg could not write its output because the disk is full.
    #[error("no space left on device while writing {}", output.display())]
    DiskFull {
        output: PathBuf,
        stderr_tail: String,
    },

    /// ffprobe's output could not be understood.
    #[error("could not parse ffprobe output: {detail}")]
    ProbeParse { detail: String },

    /// A file lacks a stream it must have (e.g. a finished recording without audio).
    #[error("{} is missing {missing}", path.display())]
    MissingStreams { path: PathBuf, missing: String },

    /// A finished file's duration is not what was recorded.
    #[error("{} lasts {actual:?}, expected {expected:?} (tolerance {tolerance:?})", path.display())]
    DurationMismatch {
        path: PathBuf,
        expected: Duration,
        actual: Duration,
        tolerance: Duration,
    },

    /// Local IO around a run (creating directories, renaming outputs, signalling processes).
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

pub type FfmpegResult<T> = Result<T, FfmpegError>;

impl FfmpegError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        FfmpegError::Io {
            context: context.into(),
            source,
        }
    }

    /// Whether running the same thing again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            FfmpegError::TimedOut { .. } => true,
            FfmpegError::NetworkFailure { permanent, .. } => !permanent,
            // Killed by a signal from outside (OOM killer, watchdog): the input itself is fine.
            FfmpegError::NonZeroExit { signal, .. } => signal.is_some(),
            FfmpegError::SpawnFailed { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted | io::ErrorKind::OutOfMemory
            ),
            FfmpegError::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted | io::ErrorKind::TimedOut
            ),
            FfmpegError::BinaryNotFound { .. }
            | FfmpegError::InvalidInput { .. }
            | FfmpegError::NotMedia { .. }
            | FfmpegError::InputNotFound { .. }
            | FfmpegError::DiskFull { .. }
            | FfmpegError::ProbeParse { .. }
            | FfmpegError::MissingStreams { .. }
            | FfmpegError::DurationMismatch { .. } => false,
        }
    }

    /// A short, specific sentence for a Telegram user: no paths, no stderr.
    pub fn user_message(&self) -> String {
        match self {
            FfmpegError::BinaryNotFound { binary, .. } => {
                let name = binary
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "ffmpeg".to_owned());
                format!("The server is missing {name}; the admin needs to install it.")
            }
            FfmpegError::SpawnFailed { .. } => {
                "The server could not start ffmpeg; please try again later.".to_owned()
            }
            FfmpegError::NonZeroExit {
                signal: Some(_), ..
            } => "Processing was interrupted; it will be retried.".to_owned(),
            FfmpegError::NonZeroExit { .. } => {
                "ffmpeg could not process this recording.".to_owned()
            }
            FfmpegError::TimedOut { .. } => "Processing took too long and was stopped.".to_owned(),
            FfmpegError::InvalidInput { .. } => {
                "The input is not valid media (corrupt or unsupported data).".to_owned()
            }
            FfmpegError::NotMedia { .. } => {
                "The stream sent something that is not audio or video; it was not used.".to_owned()
            }
            FfmpegError::InputNotFound { .. } => "The recorded file is missing.".to_owned(),
            FfmpegError::NetworkFailure {
                permanent: true, ..
            } => "The stream refused the request (it may be private, geo-blocked or gone)."
                .to_owned(),
            FfmpegError::NetworkFailure { .. } => {
                "The stream could not be reached; it will be retried.".to_owned()
            }
            FfmpegError::DiskFull { .. } => "The server ran out of disk space.".to_owned(),
            FfmpegError::ProbeParse { .. } => {
                "The recording could not be inspected after processing.".to_owned()
            }
            FfmpegError::MissingStreams { missing, .. } => {
                format!("The finished file has no {missing}.")
            }
            FfmpegError::DurationMismatch { .. } => {
                "The finished file is shorter than what was recorded: media was lost while processing it.".to_owned()
            }
            FfmpegError::Io { .. } => "A file operation on the server failed.".to_owned(),
        }
    }

    /// The stderr tail carried by this error, if any.
    pub fn stderr_tail(&self) -> Option<&str> {
        match self {
            FfmpegError::NonZeroExit { stderr_tail, .. }
            | FfmpegError::TimedOut { stderr_tail, .. }
            | FfmpegError::InvalidInput { stderr_tail, .. }
            | FfmpegError::NetworkFailure { stderr_tail, .. }
            | FfmpegError::DiskFull { stderr_tail, .. } => Some(stderr_tail),
            _ => None,
        }
    }
}

fn describe_exit(exit_code: Option<i32>, signal: Option<i32>) -> String {
    match (exit_code, signal) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "unknown exit".to_owned(),
    }
}

/// Stderr lines that mean the input itself is bad.
const INVALID_INPUT_MARKERS: &[&str] = &[
    "Invalid data found when processing input",
    "moov atom not found",
    "could not find codec parameters",
    "Could not find codec parameters",
    "EBML header parsing failed",
    "Invalid NAL unit size",
    "Output file #0 does not contain any stream",
    "does not contain any stream",
    "matches no streams",
    "Header missing",
    "error reading header",
    // A local input with an explicit demuxer that finds nothing it can read before the end.
    ": End of file",
];

const DISK_FULL_MARKERS: &[&str] = &["No space left on device"];

const PERMANENT_NETWORK_MARKERS: &[&str] = &[
    "Server returned 400",
    "Server returned 401",
    "Server returned 403",
    "Server returned 404",
    "Server returned 410",
    "Server returned 4XX",
    "Protocol not on whitelist",
    "Protocol not found",
];

const TRANSIENT_NETWORK_MARKERS: &[&str] = &[
    "Connection refused",
    "Connection timed out",
    "Connection reset by peer",
    "Network is unreachable",
    "Failed to resolve hostname",
    "Name or service not known",
    "Temporary failure in name resolution",
    "Server returned 5",
    "Server returned 429",
    "HTTP error 5",
    "End of file",
    "Operation timed out",
    "I/O error",
];

/// Classify a finished program that did not exit cleanly, from its exit status and stderr.
///
/// `input` names the input for messages; `output` is where the output was going (for disk-full).
pub fn classify_failure(
    program: &str,
    exit_status: ExitStatus,
    stderr_tail: &str,
    input: &str,
    output: Option<&std::path::Path>,
) -> FfmpegError {
    use std::os::unix::process::ExitStatusExt;

    if let Some(output) = output
        && contains_any(stderr_tail, DISK_FULL_MARKERS)
    {
        return FfmpegError::DiskFull {
            output: output.to_path_buf(),
            stderr_tail: stderr_tail.to_owned(),
        };
    }
    if exit_status.signal().is_none() {
        if let Some(marker) = first_marker(stderr_tail, PERMANENT_NETWORK_MARKERS) {
            return FfmpegError::NetworkFailure {
                detail: marker.to_owned(),
                permanent: true,
                stderr_tail: stderr_tail.to_owned(),
            };
        }
        if stderr_tail.contains("No such file or directory") && !input.contains("://") {
            return FfmpegError::InputNotFound {
                path: PathBuf::from(input),
            };
        }
        if let Some(marker) = first_marker(stderr_tail, TRANSIENT_NETWORK_MARKERS)
            && input.contains("://")
        {
            return FfmpegError::NetworkFailure {
                detail: marker.to_owned(),
                permanent: false,
                stderr_tail: stderr_tail.to_owned(),
            };
        }
        if let Some(marker) = first_marker(stderr_tail, INVALID_INPUT_MARKERS) {
            return FfmpegError::InvalidInput {
                input: input.to_owned(),
                detail: marker.to_owned(),
                stderr_tail: stderr_tail.to_owned(),
            };
        }
    }
    FfmpegError::NonZeroExit {
        program: program.to_owned(),
        exit_code: exit_status.code(),
        signal: exit_status.signal(),
        stderr_tail: stderr_tail.to_owned(),
    }
}

fn contains_any(haystack: &str, needles: &[&str]) -> bool {
    first_marker(haystack, needles).is_some()
}

fn first_marker<'needle>(haystack: &str, needles: &[&'needle str]) -> Option<&'needle str> {
    needles
        .iter()
        .copied()
        .find(|needle| haystack.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn exit_code(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn corrupt_input_is_invalid_input_with_a_user_message_about_media() {
        let stderr = "[mpegts @ 0x55] Could not detect TS packet size\nx.ts: Invalid data found when processing input\n";
        let error = classify_failure("ffmpeg", exit_code(1), stderr, "x.ts", None);
        assert!(
            matches!(error, FfmpegError::InvalidInput { .. }),
            "{error:?}"
        );
        assert!(error.user_message().contains("not valid media"));
        assert!(!error.is_retryable());
        assert_eq!(error.stderr_tail(), Some(stderr));
    }

    #[test]
    fn missing_moov_is_invalid_input() {
        let stderr = "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x1] moov atom not found\nx.mp4: Invalid data found when processing input";
        let error = classify_failure("ffprobe", exit_code(1), stderr, "x.mp4", None);
        assert!(
            matches!(error, FfmpegError::InvalidInput { detail, .. } if detail.contains("Invalid data") || detail.contains("moov"))
        );
    }

    #[test]
    fn http_404_is_permanent_and_503_is_transient() {
        let not_found = classify_failure(
            "ffmpeg",
            exit_code(1),
            "[http @ 0x1] HTTP error 404 Not Found\nhttp://h/x: Server returned 404 Not Found",
            "http://h/x",
            None,
        );
        assert!(matches!(
            not_found,
            FfmpegError::NetworkFailure {
                permanent: true,
                ..
            }
        ));
        assert!(!not_found.is_retryable());
        let unavailable = classify_failure(
            "ffmpeg",
            exit_code(1),
            "http://h/x: Server returned 5XX Server Error reply",
            "http://h/x",
            None,
        );
        assert!(unavailable.is_retryable(), "{unavailable:?}");
    }

    #[test]
    fn disk_full_wins_over_other_markers() {
        let error = classify_failure(
            "ffmpeg",
            exit_code(1),
            "av_interleaved_write_frame(): No space left on device\nInvalid data found when processing input",
            "x.ts",
            Some(std::path::Path::new("/out/x.mp4")),
        );
        assert!(matches!(error, FfmpegError::DiskFull { .. }));
    }

    #[test]
    fn killed_by_signal_is_retryable_non_zero_exit() {
        let error = classify_failure(
            "ffmpeg",
            ExitStatus::from_raw(9),
            "Invalid data found when processing input",
            "x.ts",
            None,
        );
        assert!(matches!(
            error,
            FfmpegError::NonZeroExit {
                signal: Some(9),
                ..
            }
        ));
        assert!(error.is_retryable());
    }

    #[test]
    fn missing_local_input_is_input_not_found() {
        let error = classify_failure(
            "ffmpeg",
            exit_code(1),
            "/x/part-0001.ts: No such file or directory",
            "/x/part-0001.ts",
            None,
        );
        assert!(matches!(error, FfmpegError::InputNotFound { .. }));
    }

    #[test]
    fn binary_not_found_names_the_binary_and_the_fix() {
        let error = FfmpegError::BinaryNotFound {
            binary: PathBuf::from("/nonexistent/ffprobe"),
            hint: INSTALL_HINT,
        };
        assert_eq!(
            error.to_string(),
            "/nonexistent/ffprobe not found: install it with: apt-get install ffmpeg"
        );
        assert!(error.user_message().contains("ffprobe"));
    }
}
