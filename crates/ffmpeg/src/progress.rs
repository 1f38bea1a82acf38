//! Parser of ffmpeg's `-progress pipe:1` output (pure).
//!
//! ffmpeg writes blocks of `key=value` lines, each block ending with `progress=continue` or
//! `progress=end`. Values may be `N/A` or padded with spaces (`bitrate= 211.8kbits/s`, `speed=   0x`);
//! `out_time` may be negative at the very start of a live input.

use std::time::Duration;

/// One `-progress` block.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FfmpegProgress {
    pub frame: Option<u64>,
    pub fps: Option<f64>,
    pub bitrate_kbps: Option<f64>,
    pub total_size_bytes: Option<u64>,
    /// Media time written so far (zero when unknown or negative).
    pub out_time: Duration,
    /// Processing speed relative to real time (`1.0` = real time).
    pub speed: Option<f64>,
    /// `progress=end`: the last block ffmpeg writes.
    pub ended: bool,
}

/// Feeds lines one at a time; yields a [`FfmpegProgress`] at the end of each block.
#[derive(Debug, Clone, Default)]
pub struct ProgressParser {
    current: FfmpegProgress,
    out_time_from_microseconds: bool,
}

impl ProgressParser {
    pub fn new() -> Self {
        ProgressParser::default()
    }

    /// Feed one line (with or without its line ending). Returns the finished block on `progress=`.
    pub fn push_line(&mut self, line: &str) -> Option<FfmpegProgress> {
        let (key, value) = line.trim().split_once('=')?;
        let value = value.trim();
        match key.trim() {
            "frame" => self.current.frame = parse_number(value),
            "fps" => self.current.fps = parse_number(value),
            "bitrate" => self.current.bitrate_kbps = parse_bitrate_kbps(value),
            "total_size" => self.current.total_size_bytes = parse_number(value),
            // `out_time_ms` is microseconds too (a long-standing ffmpeg naming slip).
            "out_time_us" | "out_time_ms" => {
                if let Some(microseconds) = parse_number::<i64>(value) {
                    self.current.out_time = duration_from_signed_microseconds(microseconds);
                    self.out_time_from_microseconds = true;
                }
            }
            "out_time" => {
                if !self.out_time_from_microseconds
                    && let Some(out_time) = parse_clock_time(value)
                {
                    self.current.out_time = out_time;
                }
            }
            "speed" => self.current.speed = parse_speed(value),
            "progress" => {
                let mut finished = std::mem::take(&mut self.current);
                finished.ended = value == "end";
                self.out_time_from_microseconds = false;
                return Some(finished);
            }
            _ => {}
        }
        None
    }
}

/// Parse a whole recorded `-progress` output into its blocks.
pub fn parse_progress_blocks(text: &str) -> Vec<FfmpegProgress> {
    let mut parser = ProgressParser::new();
    text.lines()
        .filter_map(|line| parser.push_line(line))
        .collect()
}

fn parse_number<T: std::str::FromStr>(value: &str) -> Option<T> {
    if value.eq_ignore_ascii_case("N/A") {
        return None;
    }
    value.parse().ok()
}

/// `211.8kbits/s` → 211.8; `N/A` → None.
fn parse_bitrate_kbps(value: &str) -> Option<f64> {
    let number = value.strip_suffix("kbits/s").unwrap_or(value).trim();
    parse_number::<f64>(number).filter(|kbps| kbps.is_finite() && *kbps >= 0.0)
}

/// `2.7e+03x` → 2700; `0x` → 0; `N/A` → None.
fn parse_speed(value: &str) -> Option<f64> {
    let number = value.strip_suffix('x').unwrap_or(value).trim();
    parse_number::<f64>(number).filter(|speed| speed.is_finite() && *speed >= 0.0)
}

fn duration_from_signed_microseconds(microseconds: i64) -> Duration {
    u64::try_from(microseconds)
        .map(Duration::from_micros)
        .unwrap_or(Duration::ZERO)
}

/// `00:00:04.040272` → 4.040272 s; a negative time → zero; anything else → None.
fn parse_clock_time(value: &str) -> Option<Duration> {
    if value.starts_with('-') {
        return Some(Duration::ZERO);
    }
    let mut parts = value.splitn(3, ':');
    let hours: u64 = parts.next()?.parse().ok()?;
    let minutes: u64 = parts.next()?.parse().ok()?;
    let seconds: f64 = parts.next()?.parse().ok()?;
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    Some(Duration::from_secs(hours * 3600 + minutes * 60) + Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_block_with_padding_and_scientific_speed() {
        let blocks = parse_progress_blocks(
            "frame=100\nfps=0.00\nstream_0_0_q=-1.0\nbitrate= 211.8kbits/s\ntotal_size=106964\nout_time_us=4040272\nout_time_ms=4040272\nout_time=00:00:04.040272\ndup_frames=0\ndrop_frames=0\nspeed=2.7e+03x\nprogress=end\n",
        );
        assert_eq!(
            blocks,
            vec![FfmpegProgress {
                frame: Some(100),
                fps: Some(0.0),
                bitrate_kbps: Some(211.8),
                total_size_bytes: Some(106964),
                out_time: Duration::from_micros(4_040_272),
                speed: Some(2700.0),
                ended: true,
            }]
        );
    }

    #[test]
    fn tolerates_not_available_values() {
        let blocks = parse_progress_blocks(
            "frame=0\nfps=N/A\nbitrate=N/A\ntotal_size=N/A\nout_time_us=N/A\nout_time_ms=N/A\nout_time=N/A\nspeed=N/A\nprogress=continue\n",
        );
        assert_eq!(blocks.len(), 1);
        let block = &blocks[0];
        assert_eq!(block.frame, Some(0));
        assert_eq!(block.fps, None);
        assert_eq!(block.bitrate_kbps, None);
        assert_eq!(block.total_size_bytes, None);
        assert_eq!(block.out_time, Duration::ZERO);
        assert_eq!(block.speed, None);
        assert!(!block.ended);
    }

    #[test]
    fn negative_out_time_is_zero() {
        let blocks = parse_progress_blocks(
            "out_time_us=-9223372036854775807\nout_time=-2562047788:00:54.775807\nprogress=continue\nout_time=00:01:02.500000\nprogress=continue\n",
        );
        assert_eq!(blocks[0].out_time, Duration::ZERO);
        assert_eq!(blocks[1].out_time, Duration::from_millis(62_500));
    }

    #[test]
    fn ignores_unknown_keys_garbage_and_crlf() {
        let blocks = parse_progress_blocks(
            "garbage\r\nstream_0_1_q=3.0\r\nframe=7\r\nprogress=continue\r\n",
        );
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].frame, Some(7));
    }

    #[test]
    fn a_block_does_not_inherit_values_from_the_previous_one() {
        let blocks = parse_progress_blocks(
            "frame=5\nfps=25\nprogress=continue\nframe=6\nprogress=continue\n",
        );
        assert_eq!(blocks[1].frame, Some(6));
        assert_eq!(blocks[1].fps, None);
    }

    #[test]
    fn an_unfinished_block_yields_nothing() {
        assert!(parse_progress_blocks("frame=5\nfps=25\n").is_empty());
    }
}
