//! Master (multivariant) playlist parsing. A variant is an `#EXT-X-STREAM-INF` followed by its
//! URI line; one without a URI line is dropped (an error only when no variant is left).

use super::attributes::Attributes;
use super::lines::PlaylistLine;
use super::tags::{
    TAG_I_FRAME_STREAM_INF, TAG_INDEPENDENT_SEGMENTS, TAG_MEDIA, TAG_SESSION_KEY, TAG_STREAM_INF,
    TAG_VERSION, parse_key, parse_version,
};
use super::types::{MasterPlaylist, PlaylistParseError, Rendition, RenditionType, Variant};

pub(crate) fn parse_master_playlist<'text>(
    lines: impl Iterator<Item = PlaylistLine<'text>>,
) -> Result<MasterPlaylist, PlaylistParseError> {
    let mut playlist = MasterPlaylist::default();
    let mut pending_variant: Option<(usize, Variant)> = None;
    let mut first_stream_inf_line_without_uri: Option<usize> = None;
    for line in lines {
        match line {
            PlaylistLine::Tag {
                line_number,
                name,
                value,
            } => match name {
                TAG_STREAM_INF => {
                    if let Some((pending_line_number, _)) = pending_variant {
                        first_stream_inf_line_without_uri.get_or_insert(pending_line_number);
                    }
                    pending_variant = Some((
                        line_number,
                        parse_variant_attributes(&Attributes::parse(value)),
                    ));
                }
                TAG_I_FRAME_STREAM_INF => {
                    let attributes = Attributes::parse(value);
                    let Some(uri) = attributes.text("URI") else {
                        return Err(PlaylistParseError::MissingUri {
                            line: line_number,
                            tag: TAG_I_FRAME_STREAM_INF,
                        });
                    };
                    playlist.i_frame_variants.push(Variant {
                        uri,
                        ..parse_variant_attributes(&attributes)
                    });
                }
                TAG_MEDIA => playlist
                    .renditions
                    .push(parse_rendition(&Attributes::parse(value))),
                TAG_SESSION_KEY => {
                    // Session keys only announce keys that media playlists declare again: an
                    // unreadable one is skipped rather than failing the whole master playlist.
                    if let Ok(session_key) = parse_key(line_number, TAG_SESSION_KEY, value) {
                        playlist.session_keys.push(session_key);
                    }
                }
                TAG_INDEPENDENT_SEGMENTS => playlist.independent_segments = true,
                TAG_VERSION => playlist.version = parse_version(value),
                _ => {}
            },
            PlaylistLine::Uri { uri, .. } => {
                if let Some((_, variant)) = pending_variant.take() {
                    playlist.variants.push(Variant {
                        uri: uri.to_string(),
                        ..variant
                    });
                }
            }
            PlaylistLine::Comment => {}
        }
    }
    if let Some((pending_line_number, _)) = pending_variant {
        first_stream_inf_line_without_uri.get_or_insert(pending_line_number);
    }
    if playlist.variants.is_empty()
        && let Some(line_number) = first_stream_inf_line_without_uri
    {
        return Err(PlaylistParseError::MissingUri {
            line: line_number,
            tag: TAG_STREAM_INF,
        });
    }
    Ok(playlist)
}

/// The attributes shared by `#EXT-X-STREAM-INF` and `#EXT-X-I-FRAME-STREAM-INF` (the URI is
/// left empty). A missing or unreadable BANDWIDTH gives 0.
fn parse_variant_attributes(attributes: &Attributes) -> Variant {
    Variant {
        uri: String::new(),
        bandwidth: attributes
            .decimal_integer("BANDWIDTH")
            .or_else(|| {
                attributes
                    .decimal_float("BANDWIDTH")
                    .filter(|bandwidth| *bandwidth >= 0.0)
                    .map(|bandwidth| bandwidth.round() as u64)
            })
            .unwrap_or(0),
        average_bandwidth: attributes.decimal_integer("AVERAGE-BANDWIDTH"),
        resolution: attributes
            .get("RESOLUTION")
            .and_then(|value| value.as_resolution()),
        codecs: attributes.text("CODECS"),
        frame_rate: attributes.decimal_float("FRAME-RATE"),
        audio_group: attributes.text("AUDIO"),
        video_group: attributes.text("VIDEO"),
        subtitles_group: attributes.text("SUBTITLES"),
    }
}

fn parse_rendition(attributes: &Attributes) -> Rendition {
    let media_type = match attributes.text("TYPE") {
        None => RenditionType::Other(String::new()),
        Some(type_text) => match type_text.to_ascii_uppercase().as_str() {
            "AUDIO" => RenditionType::Audio,
            "VIDEO" => RenditionType::Video,
            "SUBTITLES" => RenditionType::Subtitles,
            "CLOSED-CAPTIONS" => RenditionType::ClosedCaptions,
            _ => RenditionType::Other(type_text),
        },
    };
    Rendition {
        media_type,
        group_id: attributes.text("GROUP-ID").unwrap_or_default(),
        name: attributes.text("NAME").unwrap_or_default(),
        language: attributes.text("LANGUAGE"),
        uri: attributes.text("URI"),
        default: attributes.is_yes("DEFAULT"),
        autoselect: attributes.is_yes("AUTOSELECT"),
        channels: attributes.text("CHANNELS"),
    }
}
