//! What is in a media file: ffprobe's JSON → [`StreamInfo`] (pure), the checks a finished file must
//! pass, and [`moov_before_mdat`] to verify faststart without ffmpeg.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{FfmpegError, FfmpegResult};

/// The summary of a media file that the recorder, the bot and `streambot probe` need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamInfo {
    /// ffprobe's `format_name`, e.g. `mpegts` or `mov,mp4,m4a,3gp,3g2,mj2`.
    pub container: String,
    pub duration: Option<Duration>,
    pub size_bytes: Option<u64>,
    /// Overall bit rate in bits per second.
    pub bit_rate: Option<u64>,
    /// The first video stream that is not a cover picture.
    pub video: Option<VideoStreamInfo>,
    /// The first audio stream.
    pub audio: Option<AudioStreamInfo>,
    /// All streams, including data and subtitle streams.
    pub stream_count: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoStreamInfo {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    /// Frames per second (average, else the base rate).
    pub frame_rate: Option<f64>,
    pub bit_rate: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioStreamInfo {
    pub codec: String,
    pub channels: Option<u32>,
    pub sample_rate: Option<u32>,
    pub bit_rate: Option<u64>,
}

impl StreamInfo {
    pub fn has_video(&self) -> bool {
        self.video.is_some()
    }

    pub fn has_audio(&self) -> bool {
        self.audio.is_some()
    }

    /// The container is one of `names` (ffprobe lists several, comma-separated).
    pub fn container_is(&self, name: &str) -> bool {
        self.container.split(',').any(|candidate| candidate == name)
    }

    pub fn is_mpegts(&self) -> bool {
        self.container_is("mpegts")
    }

    pub fn audio_is_aac(&self) -> bool {
        self.audio
            .as_ref()
            .is_some_and(|audio| audio.codec == "aac")
    }

    /// AAC in ADTS framing (MPEG-TS or a raw `.aac` file): needs `aac_adtstoasc` for mp4/m4a.
    pub fn audio_is_adts_aac(&self) -> bool {
        self.audio_is_aac() && (self.is_mpegts() || self.container_is("aac"))
    }
}

// ffprobe's JSON, as loosely as it comes: numbers are often strings, anything may be missing.
#[derive(Deserialize)]
struct RawProbe {
    #[serde(default)]
    streams: Vec<RawStream>,
    format: Option<RawFormat>,
}

#[derive(Deserialize)]
struct RawFormat {
    format_name: Option<String>,
    duration: Option<String>,
    size: Option<String>,
    bit_rate: Option<String>,
}

#[derive(Deserialize)]
struct RawStream {
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    bit_rate: Option<String>,
    channels: Option<u32>,
    sample_rate: Option<String>,
    disposition: Option<RawDisposition>,
}

#[derive(Deserialize)]
struct RawDisposition {
    #[serde(default)]
    attached_pic: u8,
}

/// Parse the output of `ffprobe -print_format json -show_format -show_streams`.
pub fn parse_ffprobe_json(json: &str) -> FfmpegResult<StreamInfo> {
    let raw: RawProbe = serde_json::from_str(json).map_err(|error| FfmpegError::ProbeParse {
        detail: error.to_string(),
    })?;
    let format = raw.format.ok_or_else(|| FfmpegError::ProbeParse {
        detail: "no \"format\" section".to_owned(),
    })?;
    let video = raw
        .streams
        .iter()
        .filter(|stream| stream.codec_type.as_deref() == Some("video"))
        .find(|stream| {
            stream
                .disposition
                .as_ref()
                .is_none_or(|disposition| disposition.attached_pic == 0)
        })
        .map(|stream| VideoStreamInfo {
            codec: codec_name(stream),
            width: stream.width.unwrap_or(0),
            height: stream.height.unwrap_or(0),
            frame_rate: stream
                .avg_frame_rate
                .as_deref()
                .and_then(parse_frame_rate)
                .or_else(|| stream.r_frame_rate.as_deref().and_then(parse_frame_rate)),
            bit_rate: parse_optional_number(stream.bit_rate.as_deref()),
        });
    let audio = raw
        .streams
        .iter()
        .find(|stream| stream.codec_type.as_deref() == Some("audio"))
        .map(|stream| AudioStreamInfo {
            codec: codec_name(stream),
            channels: stream.channels,
            sample_rate: parse_optional_number(stream.sample_rate.as_deref()),
            bit_rate: parse_optional_number(stream.bit_rate.as_deref()),
        });
    Ok(StreamInfo {
        container: format.format_name.unwrap_or_default(),
        duration: format
            .duration
            .as_deref()
            .and_then(parse_seconds_as_duration),
        size_bytes: parse_optional_number(format.size.as_deref()),
        bit_rate: parse_optional_number(format.bit_rate.as_deref()),
        video,
        audio,
        stream_count: raw.streams.len(),
    })
}

fn codec_name(stream: &RawStream) -> String {
    stream
        .codec_name
        .clone()
        .unwrap_or_else(|| "unknown".to_owned())
}

fn parse_optional_number<T: std::str::FromStr>(value: Option<&str>) -> Option<T> {
    value.and_then(|value| value.trim().parse().ok())
}

/// `"4.023222"` → 4.023222 s; `"N/A"`, negative or not finite → None.
fn parse_seconds_as_duration(value: &str) -> Option<Duration> {
    let seconds: f64 = value.trim().parse().ok()?;
    if seconds.is_finite() && seconds >= 0.0 {
        Some(Duration::from_secs_f64(seconds))
    } else {
        None
    }
}

/// `"30000/1001"` → 29.97; `"0/0"` → None.
fn parse_frame_rate(value: &str) -> Option<f64> {
    let (numerator, denominator) = value.split_once('/')?;
    let numerator: f64 = numerator.trim().parse().ok()?;
    let denominator: f64 = denominator.trim().parse().ok()?;
    let rate = numerator / denominator;
    (rate.is_finite() && rate > 0.0).then_some(rate)
}

/// What a finished file must have.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutputExpectations {
    pub require_video: bool,
    pub require_audio: bool,
    /// The duration the ledger says was recorded.
    pub expected_duration: Option<Duration>,
    /// How far the file may be off (e.g. one segment's target duration).
    pub duration_tolerance: Duration,
}

/// Share of the expected duration a finished file may fall short by (EXTINF values are rounded by
/// packagers) when that is more than the tolerance.
pub const SHORTFALL_ALLOWANCE_FRACTION: f64 = 0.1;

/// Check a probed finished file against `expectations`: streams present, no media lost (the file
/// is not shorter than the ledger's media by more than the allowance; longer is fine).
pub fn check_output(
    path: &Path,
    info: &StreamInfo,
    expectations: &OutputExpectations,
) -> FfmpegResult<()> {
    let missing = match (
        expectations.require_video && !info.has_video(),
        expectations.require_audio && !info.has_audio(),
    ) {
        (true, true) => Some("video and audio"),
        (true, false) => Some("video"),
        (false, true) => Some("audio"),
        (false, false) => None,
    };
    if let Some(missing) = missing {
        return Err(FfmpegError::MissingStreams {
            path: path.to_path_buf(),
            missing: missing.to_owned(),
        });
    }
    if let Some(expected) = expectations.expected_duration {
        let actual = info.duration.unwrap_or(Duration::ZERO);
        // Only a file that lost media is refused. A longer one is right: a gap inside a part (an
        // outage, a segment that was not media) keeps the stream's own timestamps, so the file
        // spans the gap. And packagers round EXTINF, so the allowance grows with the length.
        let allowance = expectations
            .duration_tolerance
            .max(expected.mul_f64(SHORTFALL_ALLOWANCE_FRACTION));
        if expected.saturating_sub(actual) > allowance {
            return Err(FfmpegError::DurationMismatch {
                path: path.to_path_buf(),
                expected,
                actual,
                tolerance: expectations.duration_tolerance,
            });
        }
    }
    Ok(())
}

/// Walk the top-level boxes of an MP4 file: `Ok(true)` when `moov` comes before the first `mdat`
/// (faststart; also true for fragmented MP4), `Ok(false)` when `mdat` comes first or there is no
/// `moov`. A box header that cannot be right is `InvalidData`.
pub fn moov_before_mdat(path: &Path) -> io::Result<bool> {
    let mut file = File::open(path)?;
    let file_length = file.metadata()?.len();
    let mut position: u64 = 0;
    while position.saturating_add(8) <= file_length {
        file.seek(SeekFrom::Start(position))?;
        let mut header = [0u8; 8];
        file.read_exact(&mut header)?;
        let size_field = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let box_type = [header[4], header[5], header[6], header[7]];
        match &box_type {
            b"moov" => return Ok(true),
            b"mdat" => return Ok(false),
            _ => {}
        }
        let box_size = match size_field {
            // Extends to the end of the file: nothing follows.
            0 => return Ok(false),
            1 => {
                let mut large_size = [0u8; 8];
                file.read_exact(&mut large_size)?;
                u64::from_be_bytes(large_size)
            }
            size => u64::from(size),
        };
        let header_length = if size_field == 1 { 16 } else { 8 };
        if box_size < header_length {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: box {:?} at offset {position} has size {box_size}",
                    path.display(),
                    String::from_utf8_lossy(&box_type)
                ),
            ));
        }
        position = position.saturating_add(box_size);
    }
    Ok(false)
}

/// Width and height of a JPEG, from its first start-of-frame marker (pure; no decoding).
pub fn jpeg_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut position = 2;
    while position + 4 <= bytes.len() {
        if bytes[position] != 0xFF {
            return None;
        }
        let marker = bytes[position + 1];
        if marker == 0xFF {
            position += 1;
            continue;
        }
        let segment_length = usize::from(u16::from_be_bytes([
            bytes[position + 2],
            bytes[position + 3],
        ]));
        let is_start_of_frame =
            (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_start_of_frame {
            let frame_header = bytes.get(position + 4..position + 9)?;
            let height = u32::from(u16::from_be_bytes([frame_header[1], frame_header[2]]));
            let width = u32::from(u16::from_be_bytes([frame_header[3], frame_header[4]]));
            return Some((width, height));
        }
        if segment_length < 2 {
            return None;
        }
        position += 2 + segment_length;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_dimensions_from_the_start_of_frame() {
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00];
        jpeg.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08, 0x00, 0x5A, 0x00, 0xA0, 0x03]);
        assert_eq!(jpeg_dimensions(&jpeg), Some((160, 90)));
        assert_eq!(jpeg_dimensions(b"not a jpeg"), None);
        assert_eq!(jpeg_dimensions(&[0xFF, 0xD8, 0xFF, 0xC0, 0x00]), None);
    }

    #[test]
    fn frame_rates() {
        assert_eq!(parse_frame_rate("25/1"), Some(25.0));
        assert!(parse_frame_rate("30000/1001").is_some_and(|rate| (rate - 29.97).abs() < 0.01));
        assert_eq!(parse_frame_rate("0/0"), None);
        assert_eq!(parse_frame_rate("garbage"), None);
    }

    #[test]
    fn minimal_and_broken_json() {
        let info =
            parse_ffprobe_json(r#"{"format": {"format_name": "mpegts", "duration": "N/A"}}"#)
                .expect("parses");
        assert_eq!(info.container, "mpegts");
        assert_eq!(info.duration, None);
        assert_eq!(info.stream_count, 0);
        assert!(matches!(
            parse_ffprobe_json("{}"),
            Err(FfmpegError::ProbeParse { .. })
        ));
        assert!(matches!(
            parse_ffprobe_json("not json"),
            Err(FfmpegError::ProbeParse { .. })
        ));
    }

    #[test]
    fn cover_pictures_are_not_the_video() {
        let info = parse_ffprobe_json(
            r#"{"format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2"}, "streams": [
                {"codec_type": "audio", "codec_name": "aac", "channels": 2, "sample_rate": "48000"},
                {"codec_type": "video", "codec_name": "mjpeg", "width": 600, "height": 600,
                 "disposition": {"attached_pic": 1}}]}"#,
        )
        .expect("parses");
        assert_eq!(info.video, None);
        assert_eq!(info.stream_count, 2);
        assert!(!info.audio_is_adts_aac());
        assert_eq!(
            info.audio.map(|audio| (audio.channels, audio.sample_rate)),
            Some((Some(2), Some(48_000)))
        );
    }

    fn two_second_av() -> StreamInfo {
        StreamInfo {
            container: "mpegts".to_owned(),
            duration: Some(Duration::from_secs(2)),
            size_bytes: None,
            bit_rate: None,
            video: None,
            audio: Some(AudioStreamInfo {
                codec: "aac".to_owned(),
                channels: Some(1),
                sample_rate: None,
                bit_rate: None,
            }),
            stream_count: 1,
        }
    }

    #[test]
    fn check_output_names_missing_streams_and_duration_mismatch() {
        let info = two_second_av();
        assert!(info.audio_is_adts_aac());
        let path = Path::new("out.mp4");
        let missing = check_output(
            path,
            &info,
            &OutputExpectations {
                require_video: true,
                require_audio: true,
                ..OutputExpectations::default()
            },
        );
        assert!(
            matches!(missing, Err(FfmpegError::MissingStreams { missing, .. }) if missing == "video")
        );
        let too_short = check_output(
            path,
            &info,
            &OutputExpectations {
                expected_duration: Some(Duration::from_secs(10)),
                duration_tolerance: Duration::from_secs(6),
                ..OutputExpectations::default()
            },
        );
        assert!(matches!(
            too_short,
            Err(FfmpegError::DurationMismatch { .. })
        ));
        let close_enough = check_output(
            path,
            &info,
            &OutputExpectations {
                require_audio: true,
                expected_duration: Some(Duration::from_secs(3)),
                duration_tolerance: Duration::from_secs(1),
                ..OutputExpectations::default()
            },
        );
        assert!(close_enough.is_ok());
        let spans_a_gap = check_output(
            path,
            &info,
            &OutputExpectations {
                expected_duration: Some(Duration::from_millis(500)),
                duration_tolerance: Duration::from_millis(100),
                ..OutputExpectations::default()
            },
        );
        assert!(
            spans_a_gap.is_ok(),
            "a file longer than its media spans a gap"
        );
    }

    fn mp4_box(box_type: &[u8; 4], payload_length: usize) -> Vec<u8> {
        let mut bytes = u32::try_from(payload_length + 8)
            .expect("small box")
            .to_be_bytes()
            .to_vec();
        bytes.extend_from_slice(box_type);
        bytes.resize(payload_length + 8, 0);
        bytes
    }

    #[test]
    fn box_walk_finds_the_order_of_moov_and_mdat() -> io::Result<()> {
        let directory = tempfile::tempdir()?;
        let faststart = directory.path().join("faststart.mp4");
        let plain = directory.path().join("plain.mp4");
        let large = directory.path().join("large.mp4");
        let broken = directory.path().join("broken.mp4");
        std::fs::write(
            &faststart,
            [
                mp4_box(b"ftyp", 16),
                mp4_box(b"moov", 40),
                mp4_box(b"mdat", 100),
            ]
            .concat(),
        )?;
        std::fs::write(
            &plain,
            [
                mp4_box(b"ftyp", 16),
                mp4_box(b"free", 0),
                mp4_box(b"mdat", 100),
                mp4_box(b"moov", 40),
            ]
            .concat(),
        )?;
        let mut large_box = 1u32.to_be_bytes().to_vec();
        large_box.extend_from_slice(b"free");
        large_box.extend_from_slice(&20u64.to_be_bytes());
        large_box.resize(20, 0);
        std::fs::write(
            &large,
            [mp4_box(b"ftyp", 8), large_box, mp4_box(b"moov", 8)].concat(),
        )?;
        std::fs::write(
            &broken,
            [
                mp4_box(b"ftyp", 8),
                vec![0, 0, 0, 3, b'b', b'a', b'd', b'!'],
            ]
            .concat(),
        )?;
        assert!(moov_before_mdat(&faststart)?);
        assert!(!moov_before_mdat(&plain)?);
        assert!(moov_before_mdat(&large)?);
        assert_eq!(
            moov_before_mdat(&broken).map_err(|error| error.kind()),
            Err(io::ErrorKind::InvalidData)
        );
        Ok(())
    }
}
