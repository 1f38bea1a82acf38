//! HLS playlist parser (RFC 8216), tolerant of real-world input. Pure: text in, model out.
//!
//! Tolerance rules, in short: a UTF-8 BOM, any line-end style, blank lines and surrounding
//! whitespace are accepted; unknown tags and comments are ignored; a text without `#EXTM3U` is
//! still parsed when it carries HLS tags. A media segment is exactly an `#EXTINF` followed by its
//! URI line, so a segment is never invented nor a URI taken from a tag line. Errors are kept for
//! input a recorder cannot use safely (a key or init map without URI, an unreadable byte range
//! or IV) and for text that is no playlist at all.

mod attributes;
mod lines;
mod master;
mod media;
mod tags;
mod types;
mod variables;

pub use attributes::{AttributeValue, parse_attribute_list};
pub use types::{
    ByteRange, InitMap, Key, KeyMethod, MasterPlaylist, MediaPlaylist, MediaSegment, Playlist,
    PlaylistParseError, PlaylistType, Rendition, RenditionType, Resolution, Variant,
};

use lines::{PlaylistLine, playlist_lines};
use tags::{MASTER_ONLY_TAGS, TAG_EXTINF, TAG_EXTM3U, TAG_STREAM_INF, TAG_TARGET_DURATION};

/// Bounds on what one playlist text may make the parser build. Every hit is a
/// [`PlaylistParseError::OverLimit`] naming the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaylistLimits {
    /// Bytes of text after `#EXT-X-DEFINE` substitution (a few definitions referenced on every
    /// line can multiply a small playlist).
    pub maximum_substituted_bytes: usize,
    /// `{$name}` references substituted in one playlist.
    pub maximum_variable_references: usize,
    /// Media segments in one media playlist (and variants in a master playlist).
    pub maximum_segments: usize,
}

/// Default of [`PlaylistLimits::maximum_substituted_bytes`]: twice the default playlist size
/// limit of the fetcher.
pub const DEFAULT_MAXIMUM_SUBSTITUTED_BYTES: usize = 16 * 1024 * 1024;
/// Default of [`PlaylistLimits::maximum_variable_references`].
pub const DEFAULT_MAXIMUM_VARIABLE_REFERENCES: usize = 100_000;
/// Default of [`PlaylistLimits::maximum_segments`]: above the largest real playlist of the peer
/// corpus (grafov-m3u8's 40,001-segment VOD, 111 h of 10 s segments), far below what 8 MB of
/// zero-length segments would make (500,000).
pub const DEFAULT_MAXIMUM_SEGMENTS: usize = 50_000;
/// `#EXTINF` and `#EXT-X-TARGETDURATION` values above this (one day) are not believed: an EXTINF
/// is then read as unreadable (the target duration stands in), a target duration as absent.
pub const MAXIMUM_BELIEVABLE_DURATION_SECONDS: f64 = 86_400.0;

impl Default for PlaylistLimits {
    fn default() -> Self {
        PlaylistLimits {
            maximum_substituted_bytes: DEFAULT_MAXIMUM_SUBSTITUTED_BYTES,
            maximum_variable_references: DEFAULT_MAXIMUM_VARIABLE_REFERENCES,
            maximum_segments: DEFAULT_MAXIMUM_SEGMENTS,
        }
    }
}

/// Parses a master or media playlist, within the default [`PlaylistLimits`].
///
/// Classification: any `#EXT-X-STREAM-INF` makes a master playlist (even with a stray
/// `#EXT-X-TARGETDURATION`); otherwise `#EXTINF` or `#EXT-X-TARGETDURATION` makes a media
/// playlist; otherwise master-only tags (`#EXT-X-MEDIA`, `#EXT-X-I-FRAME-STREAM-INF`,
/// `#EXT-X-SESSION-*`) make a master playlist; otherwise the result is an empty media playlist.
///
/// `#EXT-X-DEFINE` variables with NAME/VALUE are substituted; see
/// [`parse_playlist_with_variables`] for IMPORT and QUERYPARAM definitions.
pub fn parse_playlist(text: &str) -> Result<Playlist, PlaylistParseError> {
    parse_playlist_with_variables(text, &[])
}

/// [`parse_playlist`], with the values of the variables that `#EXT-X-DEFINE:IMPORT="name"` (from
/// the master playlist) and `#EXT-X-DEFINE:QUERYPARAM="name"` (from the playlist URL's query)
/// refer to. References that stay unresolved are kept as written.
pub fn parse_playlist_with_variables(
    text: &str,
    external_variables: &[(String, String)],
) -> Result<Playlist, PlaylistParseError> {
    parse_playlist_with_limits(text, external_variables, &PlaylistLimits::default())
}

/// [`parse_playlist_with_variables`] within the given limits.
pub fn parse_playlist_with_limits(
    text: &str,
    external_variables: &[(String, String)],
    limits: &PlaylistLimits,
) -> Result<Playlist, PlaylistParseError> {
    let text = variables::substitute_variables(text, external_variables, limits)?;
    let text: &str = &text;
    match classify_playlist(text)? {
        PlaylistKind::Master => {
            let master_playlist = master::parse_master_playlist(playlist_lines(text))?;
            if master_playlist.variants.len() > limits.maximum_segments {
                return Err(PlaylistParseError::OverLimit {
                    what: "variant streams",
                    limit: limits.maximum_segments as u64,
                });
            }
            Ok(Playlist::Master(master_playlist))
        }
        PlaylistKind::Media => Ok(Playlist::Media(media::parse_media_playlist(
            playlist_lines(text),
            limits,
        )?)),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PlaylistKind {
    Master,
    Media,
}

fn classify_playlist(text: &str) -> Result<PlaylistKind, PlaylistParseError> {
    let mut has_any_line = false;
    let mut has_header = false;
    let mut has_hls_tag = false;
    let mut has_stream_inf = false;
    let mut has_media_tag = false;
    let mut has_master_only_tag = false;
    for line in playlist_lines(text) {
        has_any_line = true;
        let PlaylistLine::Tag { name, .. } = line else {
            continue;
        };
        if name.starts_with(TAG_EXTM3U) {
            has_header = true;
        } else if name.starts_with(TAG_EXTINF) || name.starts_with("#EXT-X-") {
            has_hls_tag = true;
        }
        match name {
            TAG_STREAM_INF => has_stream_inf = true,
            TAG_EXTINF | TAG_TARGET_DURATION => has_media_tag = true,
            _ if MASTER_ONLY_TAGS.contains(&name) => has_master_only_tag = true,
            _ => {}
        }
    }
    if !has_any_line {
        return Err(PlaylistParseError::Empty);
    }
    if !has_header && !has_hls_tag {
        return Err(PlaylistParseError::NotAPlaylist);
    }
    if has_stream_inf || (!has_media_tag && has_master_only_tag) {
        Ok(PlaylistKind::Master)
    } else {
        Ok(PlaylistKind::Media)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_media(text: &str) -> MediaPlaylist {
        match parse_playlist(text) {
            Ok(Playlist::Media(media_playlist)) => media_playlist,
            other => panic!("expected a media playlist, got {other:?}"),
        }
    }

    fn parse_master(text: &str) -> MasterPlaylist {
        match parse_playlist(text) {
            Ok(Playlist::Master(master_playlist)) => master_playlist,
            other => panic!("expected a master playlist, got {other:?}"),
        }
    }

    fn segment_uris(media_playlist: &MediaPlaylist) -> Vec<&str> {
        media_playlist
            .segments
            .iter()
            .map(|segment| segment.uri.as_str())
            .collect()
    }

    #[test]
    fn empty_and_non_playlists_are_errors() {
        assert_eq!(parse_playlist(""), Err(PlaylistParseError::Empty));
        assert_eq!(
            parse_playlist("\u{feff} \r\n\n"),
            Err(PlaylistParseError::Empty)
        );
        assert_eq!(
            parse_playlist("<html><body>404 Not Found</body></html>"),
            Err(PlaylistParseError::NotAPlaylist)
        );
        assert!(
            PlaylistParseError::NotAPlaylist
                .to_string()
                .starts_with("not an HLS playlist")
        );
    }

    #[test]
    fn header_only_is_an_empty_media_playlist() {
        let media_playlist = parse_media("#EXTM3U\n#EXT-X-VERSION:3\n");
        assert!(media_playlist.segments.is_empty());
        assert_eq!(media_playlist.version, Some(3));
    }

    #[test]
    fn text_without_header_but_with_tags_is_parsed() {
        let media_playlist = parse_media("#EXT-X-TARGETDURATION:4\n#EXTINF:4,\na.ts\n");
        assert_eq!(segment_uris(&media_playlist), vec!["a.ts"]);
    }

    #[test]
    fn segments_need_extinf_and_uri() {
        let media_playlist = parse_media(
            "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\n#EXTINF:5.5,second\nb.ts\nstray.ts\n#EXTINF:4,\n",
        );
        assert_eq!(segment_uris(&media_playlist), vec!["b.ts"]);
        assert_eq!(media_playlist.segments[0].duration, 5.5);
        assert_eq!(media_playlist.segments[0].title.as_deref(), Some("second"));
    }

    #[test]
    fn extinf_without_comma_and_unreadable_duration() {
        let media_playlist = parse_media(
            "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:7\na.ts\n#EXTINF:junk,\nb.ts\n",
        );
        assert_eq!(media_playlist.segments[0].duration, 7.0);
        assert_eq!(media_playlist.segments[0].title, None);
        assert_eq!(media_playlist.segments[1].duration, 10.0);
        assert_eq!(media_playlist.total_duration(), 17.0);
    }

    #[test]
    fn sequences_count_per_segment() {
        let media_playlist = parse_media(
            "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:10\n#EXT-X-DISCONTINUITY-SEQUENCE:3\n\
             #EXT-X-SKIP:SKIPPED-SEGMENTS=2\n#EXTINF:2,\na.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:2,\nb.ts\n#EXTINF:2,\nc.ts\n",
        );
        assert_eq!(media_playlist.skipped_segments, 2);
        let sequences: Vec<(u64, u64, bool)> = media_playlist
            .segments
            .iter()
            .map(|segment| {
                (
                    segment.media_sequence,
                    segment.discontinuity_sequence,
                    segment.discontinuity,
                )
            })
            .collect();
        assert_eq!(
            sequences,
            vec![(12, 3, false), (13, 4, true), (14, 4, false)]
        );
        assert_eq!(media_playlist.next_media_sequence(), 15);
    }

    #[test]
    fn invalid_sequence_numbers_fall_back_to_zero() {
        let media_playlist = parse_media(
            "#EXTM3U\n#EXT-X-TARGETDURATION:NaN\n#EXT-X-MEDIA-SEQUENCE:-11\n#EXT-X-DISCONTINUITY-SEQUENCE:x\n#EXTINF:1,\na.ts\n",
        );
        assert_eq!(media_playlist.target_duration, 0.0);
        assert_eq!(media_playlist.media_sequence, 0);
        assert_eq!(media_playlist.discontinuity_sequence, 0);
    }

    #[test]
    fn keys_maps_and_byte_ranges_stay_in_force() {
        let media_playlist = parse_media(
            "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MAP:URI=\"init.mp4\",BYTERANGE=\"720\"\n\
             #EXT-X-KEY:METHOD=AES-128,URI=\"k1\"\n#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"skd://x\",KEYFORMAT=\"com.apple.streamingkeydelivery\"\n\
             #EXTINF:4,\n#EXT-X-BYTERANGE:100@0\nmain.mp4\n#EXTINF:4,\n#EXT-X-BYTERANGE:200\nmain.mp4\n\
             #EXT-X-KEY:METHOD=NONE\n#EXTINF:4,\n#EXT-X-BYTERANGE:50@\nmain.mp4\n",
        );
        let segments = &media_playlist.segments;
        assert_eq!(
            segments[0].map,
            Some(InitMap {
                uri: "init.mp4".to_string(),
                byte_range: Some(ByteRange {
                    length: 720,
                    offset: 0
                })
            })
        );
        assert_eq!(
            segments[0].key.as_ref().and_then(|key| key.uri.as_deref()),
            Some("k1")
        );
        assert_eq!(segments[1].key, segments[0].key);
        assert_eq!(segments[2].key, None);
        let byte_ranges: Vec<Option<ByteRange>> =
            segments.iter().map(|segment| segment.byte_range).collect();
        assert_eq!(
            byte_ranges,
            vec![
                Some(ByteRange {
                    length: 100,
                    offset: 0
                }),
                Some(ByteRange {
                    length: 200,
                    offset: 100
                }),
                Some(ByteRange {
                    length: 50,
                    offset: 300
                }),
            ]
        );
    }

    #[test]
    fn unsafe_input_is_an_error_with_line_number() {
        assert_eq!(
            parse_playlist("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-KEY:METHOD=AES-128\n"),
            Err(PlaylistParseError::MissingUri {
                line: 3,
                tag: "#EXT-X-KEY"
            })
        );
        let byte_range_error =
            parse_playlist("#EXTM3U\n#EXTINF:4,\n#EXT-X-BYTERANGE:abc\na.ts\n").unwrap_err();
        assert!(matches!(
            byte_range_error,
            PlaylistParseError::InvalidTag { line: 3, .. }
        ));
        assert_eq!(
            byte_range_error.to_string(),
            "playlist line 3: invalid #EXT-X-BYTERANGE: byte range length \"abc\" is not a number"
        );
    }

    #[test]
    fn master_playlist_variants_and_renditions() {
        let master_playlist = parse_master(
            "#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-TARGETDURATION:10\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"English\",LANGUAGE=\"en\",DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"a.m3u8\"\n\
             #EXT-X-STREAM-INF:BANDWIDTH=1280000,AVERAGE-BANDWIDTH=1000000,RESOLUTION=1280x720,CODECS=\"avc1.4d401f,mp4a.40.2\",FRAME-RATE=29.970,AUDIO=\"aud\"\n\
             hi.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=1\n#EXT-X-STREAM-INF:BANDWIDTH=2\nlo.m3u8\n\
             #EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=86000,URI=\"iframe.m3u8\"\n",
        );
        assert!(master_playlist.independent_segments);
        assert_eq!(master_playlist.variants.len(), 2);
        let first_variant = &master_playlist.variants[0];
        assert_eq!(first_variant.uri, "hi.m3u8");
        assert_eq!(first_variant.bandwidth, 1_280_000);
        assert_eq!(first_variant.average_bandwidth, Some(1_000_000));
        assert_eq!(
            first_variant.resolution,
            Some(Resolution {
                width: 1280,
                height: 720
            })
        );
        assert_eq!(
            first_variant.codecs.as_deref(),
            Some("avc1.4d401f,mp4a.40.2")
        );
        assert_eq!(first_variant.frame_rate, Some(29.97));
        assert_eq!(first_variant.audio_group.as_deref(), Some("aud"));
        assert_eq!(master_playlist.variants[1].bandwidth, 2);
        assert_eq!(master_playlist.i_frame_variants[0].uri, "iframe.m3u8");
        let rendition = &master_playlist.renditions[0];
        assert_eq!(rendition.media_type, RenditionType::Audio);
        assert!(rendition.default && rendition.autoselect);
        assert_eq!(rendition.channels.as_deref(), Some("2"));
    }

    #[test]
    fn master_without_any_variant_uri_is_an_error() {
        assert_eq!(
            parse_playlist("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n"),
            Err(PlaylistParseError::MissingUri {
                line: 2,
                tag: "#EXT-X-STREAM-INF"
            })
        );
    }
}
