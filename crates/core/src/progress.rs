//! Progress of one recording and how it ended: what the CLI's bar, the bot's status message and
//! the dashboard show.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A snapshot of a recording in progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordingProgress {
    /// Wall-clock time since the recording started.
    pub elapsed: Duration,
    /// Sum of the durations of the segments written.
    pub media_seconds: f64,
    /// Bytes written to parts.
    pub bytes_written: u64,
    /// Segments written.
    pub segments_written: u64,
    /// Segments that could not be had before they left the playlist window.
    pub gap_segments: u64,
    /// Media seconds lost in gaps.
    pub gap_seconds: f64,
    /// The part being written, from 1.
    pub current_part: u32,
}

impl RecordingProgress {
    /// Average bitrate of what was written, in bits per second.
    pub fn bitrate_bits_per_second(&self) -> f64 {
        if self.media_seconds <= 0.0 {
            return 0.0;
        }
        self.bytes_written as f64 * 8.0 / self.media_seconds
    }
}

/// Why a recording ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "reason", content = "detail")]
pub enum RecordingEndReason {
    /// The playlist said `EXT-X-ENDLIST`: the stream is over.
    StreamEnded,
    /// The requested duration was reached.
    DurationReached,
    /// Someone asked it to stop.
    Stopped,
    /// No new segment for the stall timeout.
    Stalled { seconds_without_new_segment: u64 },
    /// The recording made as many parts as one recording may (a stream that breaks into pieces
    /// without end); what was recorded is kept.
    PartLimitReached { parts: u32 },
}

impl RecordingEndReason {
    pub fn describe(&self) -> String {
        match self {
            RecordingEndReason::StreamEnded => "the stream ended".to_string(),
            RecordingEndReason::DurationReached => "the requested duration was reached".to_string(),
            RecordingEndReason::Stopped => "stopped on request".to_string(),
            RecordingEndReason::Stalled {
                seconds_without_new_segment,
            } => format!("the stream stalled: no new segment for {seconds_without_new_segment} s"),
            RecordingEndReason::PartLimitReached { parts } => format!(
                "the stream broke into too many pieces: the recording stopped at its limit of {parts} parts"
            ),
        }
    }
}
