//! What a user asks of a recording: how long, which quality, which container.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which variant of a master playlist to record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    /// The highest bandwidth variant.
    #[default]
    Best,
    /// Same pick as `Best`; with transcoding (issue 3) it caps at 1080p.
    High,
    /// The middle variant by bandwidth.
    Medium,
    /// The lowest bandwidth variant that has video.
    Low,
    /// The lowest bandwidth variant of all.
    Worst,
    /// The variant whose height is nearest to this many lines (`720p`).
    Height(u32),
    /// An audio-only variant, or the audio rendition of the best variant.
    Audio,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{given:?} is not a quality; use best, high, medium, low, worst, audio or a height like 720p"
)]
pub struct QualityParseError {
    pub given: String,
}

impl FromStr for Quality {
    type Err = QualityParseError;

    fn from_str(given: &str) -> Result<Self, Self::Err> {
        let text = given.trim().to_ascii_lowercase();
        let quality = match text.as_str() {
            "best" | "max" | "source" => Quality::Best,
            "high" | "hq" | "hd" => Quality::High,
            "medium" | "mid" | "med" | "sd" => Quality::Medium,
            "low" | "lq" => Quality::Low,
            "worst" | "min" => Quality::Worst,
            "audio" | "audio-only" | "audio_only" | "audioonly" | "mp3" | "m4a" => Quality::Audio,
            other => {
                let digits = other.strip_suffix('p').unwrap_or(other);
                match digits.parse::<u32>() {
                    Ok(height) if (100..=4320).contains(&height) => Quality::Height(height),
                    _ => {
                        return Err(QualityParseError {
                            given: given.to_string(),
                        });
                    }
                }
            }
        };
        Ok(quality)
    }
}

impl fmt::Display for Quality {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quality::Best => formatter.write_str("best"),
            Quality::High => formatter.write_str("high"),
            Quality::Medium => formatter.write_str("medium"),
            Quality::Low => formatter.write_str("low"),
            Quality::Worst => formatter.write_str("worst"),
            Quality::Height(height) => write!(formatter, "{height}p"),
            Quality::Audio => formatter.write_str("audio"),
        }
    }
}

/// The container of the finished file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    #[default]
    Mp4,
    Mkv,
    Ts,
}

impl FromStr for OutputFormat {
    type Err = String;
    fn from_str(given: &str) -> Result<Self, Self::Err> {
        match given.trim().to_ascii_lowercase().as_str() {
            "mp4" => Ok(OutputFormat::Mp4),
            "mkv" => Ok(OutputFormat::Mkv),
            "ts" => Ok(OutputFormat::Ts),
            _ => Err(format!("{given:?} is not a format; use mp4, mkv or ts")),
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            OutputFormat::Mp4 => "mp4",
            OutputFormat::Mkv => "mkv",
            OutputFormat::Ts => "ts",
        })
    }
}

/// Default time without a new segment after which a live recording ends as stalled.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Everything a user chose for one recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingOptions {
    /// Stop after this much wall-clock recording time; `None` records until the stream ends.
    pub maximum_duration: Option<Duration>,
    pub quality: Quality,
    pub format: OutputFormat,
    /// End the recording when no new segment appeared for this long.
    pub stall_timeout: Duration,
    /// When the stream is not live yet, keep checking for this long before giving up (zero: fail
    /// at once). The operator's default is `WAIT_FOR_LIVE`; a schedule waits at least its lead.
    #[serde(default)]
    pub wait_for_live: Duration,
}

impl Default for RecordingOptions {
    fn default() -> Self {
        RecordingOptions {
            maximum_duration: None,
            quality: Quality::Best,
            format: OutputFormat::Mp4,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            wait_for_live: Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualities_parse_from_what_people_type() {
        assert_eq!("best".parse(), Ok(Quality::Best));
        assert_eq!("HIGH".parse(), Ok(Quality::High));
        assert_eq!("720p".parse(), Ok(Quality::Height(720)));
        assert_eq!("1080".parse(), Ok(Quality::Height(1080)));
        assert_eq!("audio-only".parse(), Ok(Quality::Audio));
        assert!("ultra".parse::<Quality>().is_err());
        assert!("5p".parse::<Quality>().is_err());
        for quality in [
            Quality::Best,
            Quality::High,
            Quality::Medium,
            Quality::Low,
            Quality::Worst,
            Quality::Height(480),
            Quality::Audio,
        ] {
            assert_eq!(quality.to_string().parse(), Ok(quality));
        }
    }

    #[test]
    fn formats_parse() {
        assert_eq!("MKV".parse(), Ok(OutputFormat::Mkv));
        assert!("avi".parse::<OutputFormat>().is_err());
    }
}
