//! Media playlist parsing. A segment is exactly an `#EXTINF` followed by its URI line: an
//! `#EXTINF` without a URI (before the next `#EXTINF` or the end) is dropped, a URI line without
//! an `#EXTINF` is ignored, and no other tag (LL-HLS parts, preload hints, rendition reports)
//! ever creates a segment.

use std::collections::HashMap;

use super::attributes::{Attributes, parse_finite_float};
use super::lines::PlaylistLine;
use super::tags::{
    TAG_BYTE_RANGE, TAG_DISCONTINUITY, TAG_DISCONTINUITY_SEQUENCE, TAG_END_LIST, TAG_EXTINF,
    TAG_GAP, TAG_I_FRAMES_ONLY, TAG_KEY, TAG_MAP, TAG_MEDIA_SEQUENCE, TAG_PART_INF,
    TAG_PLAYLIST_TYPE, TAG_PROGRAM_DATE_TIME, TAG_SKIP, TAG_TARGET_DURATION, TAG_VERSION,
    UnresolvedByteRange, parse_byte_range, parse_key, parse_version,
};
use super::types::{
    ByteRange, InitMap, Key, KeyMethod, MediaPlaylist, MediaSegment, PlaylistParseError,
    PlaylistType,
};
use super::{MAXIMUM_BELIEVABLE_DURATION_SECONDS, PlaylistLimits};

/// What an `#EXTINF` said, waiting for its URI line.
struct PendingExtinf {
    /// `None` when the duration is unreadable, negative or over a day: the target duration is
    /// used.
    duration: Option<f64>,
    title: Option<String>,
}

/// Tags that apply to the next segment only.
#[derive(Default)]
struct PendingSegmentTags {
    extinf: Option<PendingExtinf>,
    discontinuity: bool,
    byte_range: Option<UnresolvedByteRange>,
    program_date_time: Option<String>,
    gap: bool,
}

#[derive(Default)]
struct MediaPlaylistBuilder {
    playlist: MediaPlaylist,
    pending: PendingSegmentTags,
    /// Keys in force; several at once when they differ by KEYFORMAT.
    keys_in_force: Vec<Key>,
    /// A KEY tag after a segment replaces the keys in force; consecutive ones add up.
    key_seen_since_last_segment: bool,
    map_in_force: Option<InitMap>,
    /// Where the last sub-range of each URI ended, to resolve a missing `@offset`.
    byte_range_end_by_uri: HashMap<String, u64>,
    previous_segment_byte_range_end: Option<u64>,
    /// Segments whose `#EXTINF` duration was unreadable.
    segment_indexes_without_duration: Vec<usize>,
    discontinuity_count: u64,
}

pub(crate) fn parse_media_playlist<'text>(
    lines: impl Iterator<Item = PlaylistLine<'text>>,
    limits: &PlaylistLimits,
) -> Result<MediaPlaylist, PlaylistParseError> {
    let mut builder = MediaPlaylistBuilder::default();
    for line in lines {
        match line {
            PlaylistLine::Tag {
                line_number,
                name,
                value,
            } => builder.apply_tag(line_number, name, value)?,
            PlaylistLine::Uri { uri, .. } => {
                if builder.pending.extinf.is_some()
                    && builder.playlist.segments.len() >= limits.maximum_segments
                {
                    return Err(PlaylistParseError::OverLimit {
                        what: "segments",
                        limit: limits.maximum_segments as u64,
                    });
                }
                builder.apply_uri(uri)
            }
            PlaylistLine::Comment => {}
        }
    }
    Ok(builder.finish())
}

/// `#EXT-X-MEDIA-SEQUENCE` and `#EXT-X-DISCONTINUITY-SEQUENCE`: negative or unreadable values
/// fall back to 0, as video.js does.
fn parse_sequence_number(value: Option<&str>) -> u64 {
    value.and_then(|text| text.trim().parse().ok()).unwrap_or(0)
}

/// `#EXT-X-TARGETDURATION`: decimal values are accepted; negative, unreadable or over a day
/// give 0.
fn parse_target_duration(value: Option<&str>) -> f64 {
    value
        .and_then(parse_finite_float)
        .filter(|duration| (0.0..=MAXIMUM_BELIEVABLE_DURATION_SECONDS).contains(duration))
        .unwrap_or(0.0)
}

/// `#EXTINF:<duration>[,<title>]`. The title is everything after the first comma, `#` and commas
/// included.
fn parse_extinf(value: Option<&str>) -> PendingExtinf {
    let value = value.unwrap_or("");
    let (duration_text, title_text) = match value.split_once(',') {
        Some((duration_text, title_text)) => (duration_text, Some(title_text.trim())),
        None => (value, None),
    };
    PendingExtinf {
        duration: parse_finite_float(duration_text)
            .filter(|duration| (0.0..=MAXIMUM_BELIEVABLE_DURATION_SECONDS).contains(duration)),
        title: title_text
            .filter(|title| !title.is_empty())
            .map(str::to_string),
    }
}

impl MediaPlaylistBuilder {
    fn apply_tag(
        &mut self,
        line_number: usize,
        name: &str,
        value: Option<&str>,
    ) -> Result<(), PlaylistParseError> {
        match name {
            TAG_EXTINF => {
                // A previous EXTINF still waiting for its URI had none: it is dropped.
                self.pending.extinf = Some(parse_extinf(value));
            }
            TAG_VERSION => self.playlist.version = parse_version(value),
            TAG_TARGET_DURATION => self.playlist.target_duration = parse_target_duration(value),
            // RFC 8216 4.3.3.2/4.3.3.3: before the first segment. One after it would renumber
            // the segments already read and make the sequence go back: it is ignored.
            TAG_MEDIA_SEQUENCE if self.playlist.segments.is_empty() => {
                self.playlist.media_sequence = parse_sequence_number(value)
            }
            TAG_DISCONTINUITY_SEQUENCE if self.playlist.segments.is_empty() => {
                self.playlist.discontinuity_sequence = parse_sequence_number(value)
            }
            TAG_DISCONTINUITY => self.pending.discontinuity = true,
            TAG_END_LIST => self.playlist.end_list = true,
            TAG_PLAYLIST_TYPE => {
                self.playlist.playlist_type = match value.map(str::to_ascii_uppercase).as_deref() {
                    Some("EVENT") => Some(PlaylistType::Event),
                    Some("VOD") => Some(PlaylistType::Vod),
                    _ => None,
                }
            }
            TAG_I_FRAMES_ONLY => self.playlist.i_frames_only = true,
            TAG_BYTE_RANGE => {
                self.pending.byte_range = Some(parse_byte_range(
                    line_number,
                    TAG_BYTE_RANGE,
                    value.unwrap_or(""),
                )?)
            }
            TAG_KEY => self.apply_key(parse_key(line_number, TAG_KEY, value)?),
            TAG_MAP => {
                // A MAP without URI (seen in hls.js tests) is ignored, not fatal.
                if let Some(map) = parse_map(line_number, value)? {
                    self.map_in_force = Some(map);
                }
            }
            TAG_PROGRAM_DATE_TIME => {
                self.pending.program_date_time =
                    value.filter(|text| !text.is_empty()).map(str::to_string)
            }
            TAG_GAP => self.pending.gap = true,
            TAG_SKIP if self.playlist.segments.is_empty() => {
                self.playlist.skipped_segments = Attributes::parse(value)
                    .decimal_integer("SKIPPED-SEGMENTS")
                    .unwrap_or(0)
            }
            TAG_PART_INF => {
                self.playlist.part_target = Attributes::parse(value).decimal_float("PART-TARGET")
            }
            _ => {}
        }
        Ok(())
    }

    fn apply_key(&mut self, key: Key) {
        if self.key_seen_since_last_segment {
            // Keys with different KEYFORMATs declared together are all in force; a second key of
            // the same KEYFORMAT replaces the first.
            self.keys_in_force
                .retain(|key_in_force| key_in_force.key_format != key.key_format);
        } else {
            self.keys_in_force.clear();
            self.key_seen_since_last_segment = true;
        }
        if key.method != KeyMethod::None {
            self.keys_in_force.push(key);
        }
    }

    /// The key a segment carries: the one a recorder can use (no KEYFORMAT or "identity")
    /// first, otherwise the first declared.
    fn key_for_segment(&self) -> Option<Key> {
        self.keys_in_force
            .iter()
            .find(|key| {
                key.key_format
                    .as_deref()
                    .is_none_or(|key_format| key_format.eq_ignore_ascii_case("identity"))
            })
            .or_else(|| self.keys_in_force.first())
            .cloned()
    }

    fn apply_uri(&mut self, uri: &str) {
        let Some(extinf) = self.pending.extinf.take() else {
            // A URI line without an EXTINF is not a segment.
            return;
        };
        let pending = std::mem::take(&mut self.pending);
        let byte_range = pending
            .byte_range
            .map(|unresolved| self.resolve_segment_byte_range(uri, unresolved));
        self.previous_segment_byte_range_end = byte_range.map(|range| range.end());
        if pending.discontinuity {
            self.discontinuity_count += 1;
        }
        let segment_index = self.playlist.segments.len();
        let media_sequence = self
            .playlist
            .media_sequence
            .saturating_add(self.playlist.skipped_segments)
            .saturating_add(segment_index as u64);
        if extinf.duration.is_none() {
            self.segment_indexes_without_duration.push(segment_index);
        }
        let segment = MediaSegment {
            uri: uri.to_string(),
            duration: extinf.duration.unwrap_or(0.0),
            title: extinf.title,
            media_sequence,
            discontinuity_sequence: self
                .playlist
                .discontinuity_sequence
                .saturating_add(self.discontinuity_count),
            discontinuity: pending.discontinuity,
            byte_range,
            key: self.key_for_segment(),
            map: self.map_in_force.clone(),
            program_date_time: pending.program_date_time,
            gap: pending.gap,
        };
        self.playlist.segments.push(segment);
        self.key_seen_since_last_segment = false;
    }

    /// RFC 8216 4.3.2.2: without `@offset` the sub-range starts right after the previous
    /// sub-range of the same URI. When the URI has none (an invalid playlist), the end of the
    /// previous segment's sub-range is used, as hls.js and video.js do; failing that, 0.
    fn resolve_segment_byte_range(
        &mut self,
        uri: &str,
        unresolved: UnresolvedByteRange,
    ) -> ByteRange {
        let offset = unresolved.offset.unwrap_or_else(|| {
            self.byte_range_end_by_uri
                .get(uri)
                .copied()
                .or(self.previous_segment_byte_range_end)
                .unwrap_or(0)
        });
        let byte_range = ByteRange {
            length: unresolved.length,
            offset,
        };
        self.byte_range_end_by_uri
            .insert(uri.to_string(), byte_range.end());
        byte_range
    }

    fn finish(mut self) -> MediaPlaylist {
        let target_duration = self.playlist.target_duration;
        for segment_index in self.segment_indexes_without_duration {
            if let Some(segment) = self.playlist.segments.get_mut(segment_index) {
                segment.duration = target_duration;
            }
        }
        self.playlist
    }
}

/// `#EXT-X-MAP:URI="...",BYTERANGE="<length>[@<offset>]"`; a missing offset means 0. `None`
/// when there is no URI.
fn parse_map(
    line_number: usize,
    value: Option<&str>,
) -> Result<Option<InitMap>, PlaylistParseError> {
    let attributes = Attributes::parse(value);
    let Some(uri) = attributes.text("URI") else {
        return Ok(None);
    };
    let byte_range = match attributes.text("BYTERANGE") {
        None => None,
        Some(byte_range_text) => {
            let unresolved = parse_byte_range(line_number, TAG_MAP, &byte_range_text)?;
            Some(ByteRange {
                length: unresolved.length,
                offset: unresolved.offset.unwrap_or(0),
            })
        }
    };
    Ok(Some(InitMap { uri, byte_range }))
}
