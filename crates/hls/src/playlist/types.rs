//! The parsed model of an HLS playlist (RFC 8216). Plain data: every type is `Clone`,
//! `PartialEq` and `Serialize` so that callers can compare, log and snapshot parses.

use serde::Serialize;

/// A parsed playlist: either a master (multivariant) playlist or a media playlist.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Playlist {
    Master(MasterPlaylist),
    Media(MediaPlaylist),
}

/// A master (multivariant) playlist: the list of variant streams and alternative renditions.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct MasterPlaylist {
    /// Every `#EXT-X-STREAM-INF` followed by its URI line, in playlist order.
    pub variants: Vec<Variant>,
    /// Every `#EXT-X-MEDIA`, in playlist order.
    pub renditions: Vec<Rendition>,
    /// Every `#EXT-X-I-FRAME-STREAM-INF` (its URI comes from the URI attribute).
    pub i_frame_variants: Vec<Variant>,
    /// Every `#EXT-X-SESSION-KEY`.
    pub session_keys: Vec<Key>,
    /// `#EXT-X-INDEPENDENT-SEGMENTS` present.
    pub independent_segments: bool,
    /// `#EXT-X-VERSION`, when present and valid.
    pub version: Option<u32>,
}

/// One variant stream of a master playlist.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Variant {
    pub uri: String,
    /// BANDWIDTH in bits per second; 0 when the attribute is missing or invalid.
    pub bandwidth: u64,
    pub average_bandwidth: Option<u64>,
    pub resolution: Option<Resolution>,
    pub codecs: Option<String>,
    pub frame_rate: Option<f64>,
    pub audio_group: Option<String>,
    pub video_group: Option<String>,
    pub subtitles_group: Option<String>,
}

/// A decimal resolution such as `1280x720`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Resolution {
    pub width: u32,
    pub height: u32,
}

/// One `#EXT-X-MEDIA` alternative rendition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rendition {
    pub media_type: RenditionType,
    pub group_id: String,
    pub name: String,
    pub language: Option<String>,
    pub uri: Option<String>,
    pub default: bool,
    pub autoselect: bool,
    pub channels: Option<String>,
}

/// The TYPE attribute of `#EXT-X-MEDIA`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum RenditionType {
    Audio,
    Video,
    Subtitles,
    ClosedCaptions,
    Other(String),
}

/// A media playlist: the segments of one rendition.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct MediaPlaylist {
    pub version: Option<u32>,
    /// `#EXT-X-TARGETDURATION` in seconds (decimal values such as `5.0` are accepted); 0 when
    /// missing or invalid.
    pub target_duration: f64,
    /// `#EXT-X-MEDIA-SEQUENCE` (0 when missing, negative or invalid).
    pub media_sequence: u64,
    /// `#EXT-X-DISCONTINUITY-SEQUENCE` (0 when missing, negative or invalid).
    pub discontinuity_sequence: u64,
    /// `#EXT-X-ENDLIST` present.
    pub end_list: bool,
    pub playlist_type: Option<PlaylistType>,
    /// `#EXT-X-I-FRAMES-ONLY` present.
    pub i_frames_only: bool,
    /// One entry per `#EXTINF` that is followed by a URI line, in playlist order.
    pub segments: Vec<MediaSegment>,
    /// `#EXT-X-SKIP` SKIPPED-SEGMENTS of a playlist delta update (0 when absent).
    pub skipped_segments: u64,
    /// `#EXT-X-PART-INF` PART-TARGET (low-latency HLS).
    pub part_target: Option<f64>,
}

impl MediaPlaylist {
    /// The sum of the segment durations, in seconds.
    pub fn total_duration(&self) -> f64 {
        self.segments.iter().map(|segment| segment.duration).sum()
    }

    /// The media sequence number the next segment after this playlist's last one will carry.
    pub fn next_media_sequence(&self) -> u64 {
        self.segments.last().map_or_else(
            || self.media_sequence.saturating_add(self.skipped_segments),
            |segment| segment.media_sequence.saturating_add(1),
        )
    }
}

/// `#EXT-X-PLAYLIST-TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PlaylistType {
    Event,
    Vod,
}

/// One media segment: an `#EXTINF` and its URI line, with the tags in force for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MediaSegment {
    pub uri: String,
    /// Duration in seconds. An unreadable or negative `#EXTINF` duration falls back to the
    /// target duration.
    pub duration: f64,
    /// The `#EXTINF` title (everything after the first comma), when not empty.
    pub title: Option<String>,
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    /// An `#EXT-X-DISCONTINUITY` precedes this segment.
    pub discontinuity: bool,
    pub byte_range: Option<ByteRange>,
    /// The key in force: `None` when there is no key or the last one had METHOD=NONE.
    pub key: Option<Key>,
    /// The `#EXT-X-MAP` in force.
    pub map: Option<InitMap>,
    /// The `#EXT-X-PROGRAM-DATE-TIME` value given right before this segment, verbatim.
    pub program_date_time: Option<String>,
    /// `#EXT-X-GAP`: the segment is known to be missing.
    pub gap: bool,
}

/// A byte sub-range of a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ByteRange {
    pub length: u64,
    /// Resolved: when the tag omits `@offset` this is the end of the previous sub-range of the
    /// same URI (RFC 8216 4.3.2.2).
    pub offset: u64,
}

impl ByteRange {
    /// The offset one past the last byte of the range.
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.length)
    }
}

/// `#EXT-X-KEY` or `#EXT-X-SESSION-KEY`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Key {
    pub method: KeyMethod,
    pub uri: Option<String>,
    /// The explicit IV, left-padded with zeros to 16 bytes when shorter.
    pub iv: Option<[u8; 16]>,
    pub key_format: Option<String>,
    pub key_format_versions: Option<String>,
}

/// The METHOD attribute of a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum KeyMethod {
    None,
    Aes128,
    SampleAes,
    SampleAesCtr,
    Other(String),
}

/// `#EXT-X-MAP`: the media initialization section.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InitMap {
    pub uri: String,
    /// The BYTERANGE attribute; a missing offset means 0.
    pub byte_range: Option<ByteRange>,
}

/// Why a text could not be parsed as a playlist. The messages are shown to users.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
pub enum PlaylistParseError {
    #[error(
        "not an HLS playlist: the first line is not #EXTM3U and there are no HLS tags (an error page?)"
    )]
    NotAPlaylist,
    #[error("the playlist is empty")]
    Empty,
    #[error("playlist line {line}: {tag} has no URI")]
    MissingUri { line: usize, tag: &'static str },
    #[error("playlist line {line}: invalid {tag}: {reason}")]
    InvalidTag {
        line: usize,
        tag: String,
        reason: String,
    },
    /// One of the [`PlaylistLimits`](crate::playlist::PlaylistLimits) was hit.
    #[error("the playlist has more {what} than the limit of {limit}")]
    OverLimit { what: &'static str, limit: u64 },
}
