//! Tag names and the readers of tag values that both playlist kinds share (keys, byte ranges,
//! versions).

use super::attributes::Attributes;
use super::types::{Key, KeyMethod, PlaylistParseError};

pub(crate) const TAG_EXTM3U: &str = "#EXTM3U";
pub(crate) const TAG_EXTINF: &str = "#EXTINF";
pub(crate) const TAG_VERSION: &str = "#EXT-X-VERSION";
pub(crate) const TAG_TARGET_DURATION: &str = "#EXT-X-TARGETDURATION";
pub(crate) const TAG_MEDIA_SEQUENCE: &str = "#EXT-X-MEDIA-SEQUENCE";
pub(crate) const TAG_DISCONTINUITY_SEQUENCE: &str = "#EXT-X-DISCONTINUITY-SEQUENCE";
pub(crate) const TAG_DISCONTINUITY: &str = "#EXT-X-DISCONTINUITY";
pub(crate) const TAG_END_LIST: &str = "#EXT-X-ENDLIST";
pub(crate) const TAG_PLAYLIST_TYPE: &str = "#EXT-X-PLAYLIST-TYPE";
pub(crate) const TAG_I_FRAMES_ONLY: &str = "#EXT-X-I-FRAMES-ONLY";
pub(crate) const TAG_BYTE_RANGE: &str = "#EXT-X-BYTERANGE";
pub(crate) const TAG_KEY: &str = "#EXT-X-KEY";
pub(crate) const TAG_MAP: &str = "#EXT-X-MAP";
pub(crate) const TAG_PROGRAM_DATE_TIME: &str = "#EXT-X-PROGRAM-DATE-TIME";
pub(crate) const TAG_GAP: &str = "#EXT-X-GAP";
pub(crate) const TAG_SKIP: &str = "#EXT-X-SKIP";
pub(crate) const TAG_PART_INF: &str = "#EXT-X-PART-INF";
pub(crate) const TAG_STREAM_INF: &str = "#EXT-X-STREAM-INF";
pub(crate) const TAG_I_FRAME_STREAM_INF: &str = "#EXT-X-I-FRAME-STREAM-INF";
pub(crate) const TAG_MEDIA: &str = "#EXT-X-MEDIA";
pub(crate) const TAG_SESSION_KEY: &str = "#EXT-X-SESSION-KEY";
pub(crate) const TAG_SESSION_DATA: &str = "#EXT-X-SESSION-DATA";
pub(crate) const TAG_INDEPENDENT_SEGMENTS: &str = "#EXT-X-INDEPENDENT-SEGMENTS";
pub(crate) const TAG_DEFINE: &str = "#EXT-X-DEFINE";

/// Tags only a master playlist carries; used to classify a playlist without STREAM-INF,
/// EXTINF or TARGETDURATION.
pub(crate) const MASTER_ONLY_TAGS: [&str; 4] = [
    TAG_I_FRAME_STREAM_INF,
    TAG_MEDIA,
    TAG_SESSION_KEY,
    TAG_SESSION_DATA,
];

pub(crate) fn invalid_tag(
    line_number: usize,
    tag: &str,
    reason: impl Into<String>,
) -> PlaylistParseError {
    PlaylistParseError::InvalidTag {
        line: line_number,
        tag: tag.to_string(),
        reason: reason.into(),
    }
}

/// `#EXT-X-VERSION`: a positive integer; anything else is ignored (tolerant).
pub(crate) fn parse_version(value: Option<&str>) -> Option<u32> {
    value.and_then(|text| text.trim().parse().ok())
}

/// A byte range `<length>[@<offset>]` as written; an empty offset (`587500@`) counts as absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UnresolvedByteRange {
    pub(crate) length: u64,
    pub(crate) offset: Option<u64>,
}

pub(crate) fn parse_byte_range(
    line_number: usize,
    tag: &str,
    text: &str,
) -> Result<UnresolvedByteRange, PlaylistParseError> {
    let (length_text, offset_text) = match text.split_once('@') {
        Some((length_text, offset_text)) => (length_text, Some(offset_text.trim())),
        None => (text, None),
    };
    let length = length_text.trim().parse().map_err(|_| {
        invalid_tag(
            line_number,
            tag,
            format!("byte range length {:?} is not a number", length_text.trim()),
        )
    })?;
    let offset = match offset_text {
        None | Some("") => None,
        Some(offset_text) => Some(offset_text.parse().map_err(|_| {
            invalid_tag(
                line_number,
                tag,
                format!("byte range offset {offset_text:?} is not a number"),
            )
        })?),
    };
    Ok(UnresolvedByteRange { length, offset })
}

/// `#EXT-X-KEY` / `#EXT-X-SESSION-KEY`. A key other than METHOD=NONE must have a URI; an IV must
/// be hexadecimal and fit 16 bytes (shorter ones are left-padded with zeros, as players do).
pub(crate) fn parse_key(
    line_number: usize,
    tag: &'static str,
    value: Option<&str>,
) -> Result<Key, PlaylistParseError> {
    let attributes = Attributes::parse(value);
    let method = match attributes.text("METHOD") {
        None => return Err(invalid_tag(line_number, tag, "no METHOD attribute")),
        Some(method_text) => match method_text.to_ascii_uppercase().as_str() {
            "NONE" => KeyMethod::None,
            "AES-128" => KeyMethod::Aes128,
            "SAMPLE-AES" => KeyMethod::SampleAes,
            "SAMPLE-AES-CTR" => KeyMethod::SampleAesCtr,
            _ => KeyMethod::Other(method_text),
        },
    };
    let uri = attributes.text("URI");
    if uri.is_none() && method != KeyMethod::None {
        return Err(PlaylistParseError::MissingUri {
            line: line_number,
            tag,
        });
    }
    let iv = match attributes.get("IV") {
        None => None,
        Some(iv_value) => Some(parse_initialization_vector(
            line_number,
            tag,
            iv_value.as_text(),
        )?),
    };
    Ok(Key {
        method,
        uri,
        iv,
        key_format: attributes.text("KEYFORMAT"),
        key_format_versions: attributes.text("KEYFORMATVERSIONS"),
    })
}

fn parse_initialization_vector(
    line_number: usize,
    tag: &str,
    iv_text: &str,
) -> Result<[u8; 16], PlaylistParseError> {
    let invalid_iv =
        |reason: &str| invalid_tag(line_number, tag, format!("IV {iv_text:?} {reason}"));
    let iv_bytes = super::attributes::AttributeValue::Unquoted(iv_text.to_string())
        .as_hexadecimal_bytes()
        .ok_or_else(|| invalid_iv("is not a 0x-prefixed hexadecimal number"))?;
    let leading_zero_count = iv_bytes.iter().take_while(|byte| **byte == 0).count();
    let significant_bytes = &iv_bytes[leading_zero_count.min(iv_bytes.len().saturating_sub(16))..];
    if significant_bytes.len() > 16 {
        return Err(invalid_iv("is longer than 16 bytes"));
    }
    let mut initialization_vector = [0u8; 16];
    initialization_vector[16 - significant_bytes.len()..].copy_from_slice(significant_bytes);
    Ok(initialization_vector)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges_with_and_without_offset() {
        assert_eq!(
            parse_byte_range(1, TAG_BYTE_RANGE, "587500@522828"),
            Ok(UnresolvedByteRange {
                length: 587500,
                offset: Some(522828)
            })
        );
        assert_eq!(
            parse_byte_range(1, TAG_BYTE_RANGE, "587500@"),
            Ok(UnresolvedByteRange {
                length: 587500,
                offset: None
            })
        );
        assert_eq!(
            parse_byte_range(1, TAG_BYTE_RANGE, "587500"),
            Ok(UnresolvedByteRange {
                length: 587500,
                offset: None
            })
        );
        assert!(parse_byte_range(1, TAG_BYTE_RANGE, "abc@1").is_err());
        assert!(parse_byte_range(1, TAG_BYTE_RANGE, "1@x").is_err());
    }

    #[test]
    fn key_iv_is_padded_and_method_none_needs_no_uri() {
        let key = parse_key(3, TAG_KEY, Some(r#"METHOD=AES-128,URI="k.bin",IV=0x1f"#))
            .expect("valid key");
        let mut expected_iv = [0u8; 16];
        expected_iv[15] = 0x1f;
        assert_eq!(key.iv, Some(expected_iv));
        assert_eq!(key.method, KeyMethod::Aes128);

        let full_iv = parse_key(
            3,
            TAG_KEY,
            Some("METHOD=AES-128,URI=\"k\",IV=0x00000000000000000000014BB69D61E4"),
        )
        .expect("valid key");
        assert_eq!(
            full_iv.iv,
            Some([
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x4b, 0xb6, 0x9d, 0x61, 0xe4
            ])
        );

        let none_key = parse_key(3, TAG_KEY, Some("METHOD=NONE")).expect("valid key");
        assert_eq!(none_key.method, KeyMethod::None);

        assert_eq!(
            parse_key(3, TAG_KEY, Some("METHOD=AES-128")),
            Err(PlaylistParseError::MissingUri {
                line: 3,
                tag: TAG_KEY
            })
        );
        assert!(parse_key(3, TAG_KEY, Some(r#"METHOD=AES-128,URI="k",IV=0xnothex"#)).is_err());
        assert!(
            parse_key(
                3,
                TAG_KEY,
                Some(r#"METHOD=AES-128,URI="k",IV=0x1000000000000000000000000000000000"#)
            )
            .is_err()
        );
    }
}
