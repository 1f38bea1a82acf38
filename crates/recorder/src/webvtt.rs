//! WebVTT subtitle segments of an HLS rendition merged into one file timed like the video (pure).
//!
//! Each segment is a small WebVTT file whose `X-TIMESTAMP-MAP=MPEGTS:<ticks>,LOCAL:<time>` says
//! which 90 kHz MPEG-TS time its local cue time corresponds to: a cue at local time `t` is shown at
//! media time `t - LOCAL + MPEGTS / 90000`. The finished file starts at the video part's first
//! timestamp, so a cue's time in the file is that media time minus the part's start. A segment
//! without the map is taken as timed from the recording's start. Cues repeated in consecutive
//! segments (a cue that spans a boundary) are kept once; cues before the file's start are dropped
//! (or cut at zero when they last into it); bodies that are not WebVTT are skipped.

/// MPEG-TS timestamps wrap at 2^33 ticks of 90 kHz (about 26.5 hours).
const TIMESTAMP_WRAP_SECONDS: f64 = 8_589_934_592.0 / 90_000.0;
/// Cues kept at most (a hostile rendition cannot make the file unbounded).
pub const MAXIMUM_CUES: usize = 200_000;
/// Payload characters kept per cue.
const MAXIMUM_CUE_TEXT_CHARACTERS: usize = 2_000;

/// One cue on the finished file's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Cue {
    pub start_seconds: f64,
    pub end_seconds: f64,
    pub text: String,
}

/// The merged subtitles of one finished file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MergedSubtitles {
    pub cues: Vec<Cue>,
}

impl MergedSubtitles {
    /// The WebVTT text of the cues.
    pub fn to_webvtt(&self) -> String {
        let mut text = String::from("WEBVTT\n\n");
        for cue in &self.cues {
            text.push_str(&format_timestamp(cue.start_seconds));
            text.push_str(" --> ");
            text.push_str(&format_timestamp(cue.end_seconds));
            text.push('\n');
            text.push_str(&cue.text);
            text.push_str("\n\n");
        }
        text
    }

    pub fn first_cue_seconds(&self) -> Option<f64> {
        self.cues.first().map(|cue| cue.start_seconds)
    }
}

/// `HH:MM:SS.mmm`.
pub fn format_timestamp(seconds: f64) -> String {
    let milliseconds = (seconds.max(0.0) * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        milliseconds / 3_600_000,
        milliseconds / 60_000 % 60,
        milliseconds / 1000 % 60,
        milliseconds % 1000
    )
}

/// `[HH:]MM:SS.mmm` to seconds.
pub fn parse_timestamp(text: &str) -> Option<f64> {
    let text = text.trim();
    let (clock, fraction) = text.split_once('.')?;
    if fraction.len() != 3 || !fraction.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let fields: Vec<&str> = clock.split(':').collect();
    let number = |field: &str| -> Option<u64> {
        (!field.is_empty() && field.len() <= 10 && field.chars().all(|c| c.is_ascii_digit()))
            .then(|| field.parse().ok())
            .flatten()
    };
    let (hours, minutes, seconds) = match fields.as_slice() {
        [minutes, seconds] => (0, number(minutes)?, number(seconds)?),
        [hours, minutes, seconds] => (number(hours)?, number(minutes)?, number(seconds)?),
        _ => return None,
    };
    if minutes > 59 || seconds > 59 {
        return None;
    }
    let milliseconds: u64 = fraction.parse().ok()?;
    Some(
        hours as f64 * 3600.0
            + minutes as f64 * 60.0
            + seconds as f64
            + milliseconds as f64 / 1000.0,
    )
}

/// `MPEGTS:<ticks>,LOCAL:<time>` in either order: (ticks in seconds, local seconds).
fn parse_timestamp_map(value: &str) -> Option<(f64, f64)> {
    let mut mpegts = None;
    let mut local = None;
    for field in value.split(',') {
        let (key, value) = field.split_once(':')?;
        match key.trim().to_ascii_uppercase().as_str() {
            "MPEGTS" => {
                mpegts = value
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .map(|ticks| ticks as f64 / 90_000.0)
            }
            "LOCAL" => local = parse_timestamp(value),
            _ => {}
        }
    }
    Some((mpegts?, local?))
}

/// Brings `seconds` of the 33-bit MPEG-TS clock next to `reference` (the video's start): the
/// value within half a wrap of it (computed, not stepped: a map may say 2^64 ticks).
fn unwrap_near(seconds: f64, reference: f64) -> f64 {
    let half = TIMESTAMP_WRAP_SECONDS / 2.0;
    let offset = (seconds - reference + half).rem_euclid(TIMESTAMP_WRAP_SECONDS) - half;
    if offset.is_finite() {
        reference + offset
    } else {
        reference
    }
}

/// Merges subtitle segment bodies (in recording order) onto the timeline of a file whose first
/// timestamp is `video_start_seconds` on the MPEG-TS clock. See the module documentation.
pub fn merge_segments<'body>(
    segments: impl IntoIterator<Item = &'body [u8]>,
    video_start_seconds: f64,
) -> MergedSubtitles {
    let mut merged = MergedSubtitles::default();
    'segments: for body in segments {
        let Ok(text) = std::str::from_utf8(body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body))
        else {
            continue;
        };
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let mut blocks = text.split("\n\n");
        let Some(header) = blocks.next() else {
            continue;
        };
        if !header.starts_with("WEBVTT") {
            continue;
        }
        // Local cue time to file time.
        let shift = header
            .lines()
            .filter_map(|line| line.trim().strip_prefix("X-TIMESTAMP-MAP="))
            .find_map(parse_timestamp_map)
            .map_or(0.0, |(mpegts_seconds, local_seconds)| {
                unwrap_near(mpegts_seconds, video_start_seconds)
                    - video_start_seconds
                    - local_seconds
            });
        for block in blocks {
            if merged.cues.len() >= MAXIMUM_CUES {
                break 'segments;
            }
            let mut lines = block.lines().skip_while(|line| line.trim().is_empty());
            let Some(first) = lines.next() else {
                continue;
            };
            let timing = if first.contains("-->") {
                first
            } else {
                match lines.next() {
                    Some(second) if second.contains("-->") => second,
                    _ => continue, // NOTE, STYLE, REGION or junk
                }
            };
            let Some((start, rest)) = timing.split_once("-->") else {
                continue;
            };
            let end = rest.split_whitespace().next().unwrap_or_default();
            let (Some(start), Some(end)) = (parse_timestamp(start), parse_timestamp(end)) else {
                continue;
            };
            let (start, end) = (start + shift, end + shift);
            if end <= 0.0 || end <= start {
                continue;
            }
            // A line with "-->" would start another cue in the written file: the payload ends
            // before it (as a WebVTT parser ends a cue's text there).
            let payload: String = lines
                .take_while(|line| !line.contains("-->"))
                .collect::<Vec<&str>>()
                .join("\n")
                .chars()
                .take(MAXIMUM_CUE_TEXT_CHARACTERS)
                .collect();
            if payload.trim().is_empty() {
                continue;
            }
            let cue = Cue {
                start_seconds: start.max(0.0),
                end_seconds: end,
                text: payload,
            };
            let repeated = merged.cues.iter().rev().take(64).any(|earlier| {
                earlier.text == cue.text
                    && (earlier.start_seconds - cue.start_seconds).abs() < 0.001
                    && (earlier.end_seconds - cue.end_seconds).abs() < 0.001
            });
            if !repeated {
                merged.cues.push(cue);
            }
        }
    }
    merged
        .cues
        .sort_by(|a, b| a.start_seconds.total_cmp(&b.start_seconds));
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(map: &str, cues: &[(&str, &str, &str)]) -> Vec<u8> {
        let mut text = format!("WEBVTT\n{map}\n\n");
        for (start, end, payload) in cues {
            text.push_str(&format!("{start} --> {end} line:90%\n{payload}\n\n"));
        }
        text.into_bytes()
    }

    #[test]
    fn timestamps_parse_and_format() {
        assert_eq!(parse_timestamp("01:02:03.456"), Some(3723.456));
        assert_eq!(parse_timestamp("02:03.456"), Some(123.456));
        assert_eq!(parse_timestamp("00:61:00.000"), None);
        assert_eq!(parse_timestamp("1:2"), None);
        assert_eq!(format_timestamp(3723.456), "01:02:03.456");
        assert_eq!(format_timestamp(-1.0), "00:00:00.000");
    }

    #[test]
    fn the_timestamp_map_puts_cues_on_the_video_timeline() {
        // LOCAL 1000 s is MPEG-TS 1.4 s; the video starts at 1.4 s: a cue at local 1002.5 s is
        // 2.5 s into the file.
        let map = "X-TIMESTAMP-MAP=MPEGTS:126000,LOCAL:00:16:40.000";
        let first = segment(map, &[]);
        let second = segment(map, &[("00:16:42.500", "00:16:43.000", "hello")]);
        let merged = merge_segments([first.as_slice(), second.as_slice()], 1.4);
        assert_eq!(merged.cues.len(), 1);
        assert!((merged.cues[0].start_seconds - 2.5).abs() < 1e-6);
        assert!(
            merged
                .to_webvtt()
                .contains("00:00:02.500 --> 00:00:03.000\nhello")
        );
        // The other order of the map's fields, and a video that started later.
        let swapped = segment(
            "X-TIMESTAMP-MAP=LOCAL:00:16:40.000,MPEGTS:126000",
            &[("00:16:42.500", "00:16:43.000", "hello")],
        );
        let merged = merge_segments([swapped.as_slice()], 2.4);
        assert!((merged.cues[0].start_seconds - 1.5).abs() < 1e-6);
    }

    #[test]
    fn repeated_cues_are_kept_once_and_earlier_ones_dropped_or_cut() {
        let map = "X-TIMESTAMP-MAP=MPEGTS:90000,LOCAL:00:00:00.000";
        let a = segment(
            map,
            &[
                ("00:00:00.000", "00:00:00.500", "before"),
                ("00:00:00.500", "00:00:03.000", "spans"),
            ],
        );
        let b = segment(map, &[("00:00:00.500", "00:00:03.000", "spans")]);
        // The video starts 2 s into the MPEG-TS clock (1 s after the map's zero).
        let merged = merge_segments([a.as_slice(), b.as_slice()], 2.0);
        assert_eq!(merged.cues.len(), 1);
        assert_eq!(merged.cues[0].text, "spans");
        assert_eq!(merged.cues[0].start_seconds, 0.0);
        assert!((merged.cues[0].end_seconds - 2.0).abs() < 1e-6);
    }

    #[test]
    fn the_clock_wrap_is_unwrapped() {
        // The map says just before the wrap; the video starts just after it.
        let map = "X-TIMESTAMP-MAP=MPEGTS:8589844592,LOCAL:00:00:00.000";
        let body = segment(map, &[("00:00:02.000", "00:00:03.000", "after the wrap")]);
        let merged = merge_segments([body.as_slice()], 0.0);
        assert!(
            (merged.cues[0].start_seconds - 1.0).abs() < 1e-3,
            "{merged:?}"
        );
    }

    #[test]
    fn hostile_bodies_are_skipped() {
        let not_vtt = b"<html>nope</html>".as_slice();
        let junk = b"WEBVTT\n\nNOTE hi\n\n99:99:99.999 --> 1\nx\n\n00:00:01.000 --> 00:00:00.500\nbackwards\n\n\xff\xfe".as_slice();
        let no_map = segment("", &[("00:00:01.000", "00:00:02.000", "plain")]);
        let merged = merge_segments([not_vtt, junk, no_map.as_slice()], 5.0);
        assert_eq!(merged.cues.len(), 1);
        assert_eq!(merged.cues[0].start_seconds, 1.0);
    }

    #[test]
    fn absurd_timestamp_maps_are_placed_at_once() {
        // 2^64 - 1 ticks is 2 * 10^9 wraps from the video: stepping one wrap at a time took
        // seconds a segment; 500 such segments took minutes.
        let bodies: Vec<Vec<u8>> = (0..500)
            .map(|index| {
                segment(
                    "X-TIMESTAMP-MAP=MPEGTS:18446744073709551615,LOCAL:9999999999:59:59.999",
                    &[("00:00:01.000", "00:00:02.000", &format!("cue {index}"))],
                )
            })
            .collect();
        let merged = merge_segments(bodies.iter().map(Vec::as_slice), 1.4);
        assert!(merged.cues.iter().all(|cue| cue.start_seconds.is_finite()
            && cue.end_seconds.is_finite()
            && cue.start_seconds <= cue.end_seconds));
        // A map just past one wrap lands where one wrap back says.
        let map = "X-TIMESTAMP-MAP=MPEGTS:8590024592,LOCAL:00:00:00.000";
        let body = segment(map, &[("00:00:02.000", "00:00:03.000", "one wrap on")]);
        let merged = merge_segments([body.as_slice()], 0.0);
        assert!(
            (merged.cues[0].start_seconds - 3.0).abs() < 1e-3,
            "{merged:?}"
        );
    }

    #[test]
    fn the_cue_cap_still_gives_cues_in_time_order() {
        // Segments in decreasing time: the cap is reached mid-way; what is kept is sorted.
        let bodies: Vec<Vec<u8>> = (0..(MAXIMUM_CUES / 1000 + 2))
            .rev()
            .map(|block| {
                let cues: Vec<(String, String, String)> = (0..1000)
                    .map(|index| {
                        let start = (block * 1000 + index) as f64;
                        (
                            format_timestamp(start),
                            format_timestamp(start + 0.5),
                            format!("c{index}"),
                        )
                    })
                    .collect();
                let borrowed: Vec<(&str, &str, &str)> = cues
                    .iter()
                    .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
                    .collect();
                segment("", &borrowed)
            })
            .collect();
        let merged = merge_segments(bodies.iter().map(Vec::as_slice), 0.0);
        assert_eq!(merged.cues.len(), MAXIMUM_CUES);
        assert!(
            merged
                .cues
                .windows(2)
                .all(|pair| pair[0].start_seconds <= pair[1].start_seconds)
        );
    }

    #[test]
    fn a_timing_line_inside_a_payload_does_not_become_a_cue() {
        let body = b"WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nshown\n00:00:00.000 --> 99:00:00.000\ninjected\n\n";
        let merged = merge_segments([body.as_slice()], 0.0);
        assert_eq!(merged.cues.len(), 1);
        assert_eq!(merged.cues[0].text, "shown");
        assert!(!merged.to_webvtt().contains("99:00:00"));
    }
}
