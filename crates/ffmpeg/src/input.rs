//! What a local input is, decided before ffmpeg sees it: every ffmpeg and ffprobe run names its
//! input format (`-f`) and allows exactly that demuxer (`-format_whitelist`), so a part file whose
//! bytes are an HLS playlist, a DASH manifest or a concat list can never make ffmpeg open another
//! file (issue 11).
//!
//! The format comes from what the recorder wrote (the part's extension: `.ts` is MPEG-TS, `.mp4`
//! is fragmented MP4, ...) and is checked against the file's first bytes ([`sniff_media`]); a
//! `.bin` part (raw elementary audio from HLS) takes the format its bytes show. Bytes that are not
//! media are refused with what they look like ([`NotMedia`]).

use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{FfmpegError, FfmpegResult};

/// Bytes read from the start of a file to tell its format.
pub const SNIFF_BYTES: usize = 64 * 1024;
/// MPEG-TS packet size.
const TS_PACKET_BYTES: usize = 188;

/// A demuxer ffmpeg is allowed to use on our inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputFormat {
    MpegTs,
    /// MP4 / fragmented MP4 / QuickTime (ffmpeg's `mov` demuxer, external references off).
    Mp4,
    /// Matroska and WebM.
    Matroska,
    Flv,
    /// AAC in ADTS framing (optionally after an ID3 tag, as HLS packed audio is).
    Adts,
    Mp3,
    Ac3,
    Eac3,
}

impl InputFormat {
    /// The demuxer name given to `-f` and `-format_whitelist`.
    pub fn demuxer(self) -> &'static str {
        match self {
            InputFormat::MpegTs => "mpegts",
            InputFormat::Mp4 => "mov",
            InputFormat::Matroska => "matroska",
            InputFormat::Flv => "flv",
            InputFormat::Adts => "aac",
            InputFormat::Mp3 => "mp3",
            InputFormat::Ac3 => "ac3",
            InputFormat::Eac3 => "eac3",
        }
    }

    /// The format a file name's extension promises; `None` when the bytes must tell (`.bin` raw
    /// parts, unknown extensions).
    pub fn from_extension(path: &Path) -> Option<InputFormat> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "ts" | "m2ts" | "mts" => Some(InputFormat::MpegTs),
            "mp4" | "m4a" | "m4v" | "mov" | "m4s" | "cmfv" | "cmfa" => Some(InputFormat::Mp4),
            "mkv" | "webm" | "mka" => Some(InputFormat::Matroska),
            "flv" => Some(InputFormat::Flv),
            "aac" => Some(InputFormat::Adts),
            "mp3" => Some(InputFormat::Mp3),
            "ac3" => Some(InputFormat::Ac3),
            "eac3" | "ec3" => Some(InputFormat::Eac3),
            _ => None,
        }
    }

    /// True when AAC from this container is in ADTS framing (needs `aac_adtstoasc` for mp4).
    pub fn carries_adts_aac(self) -> bool {
        matches!(self, InputFormat::MpegTs | InputFormat::Adts)
    }
}

/// A local file and the one demuxer ffmpeg may read it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaInput {
    pub path: PathBuf,
    pub format: InputFormat,
}

impl MediaInput {
    /// A file whose format is already known (e.g. from the ledger); not checked here.
    pub fn new(path: impl Into<PathBuf>, format: InputFormat) -> Self {
        MediaInput {
            path: path.into(),
            format,
        }
    }

    /// Tell the format of a local file from its extension and first bytes (see the module doc).
    /// Blocking IO of at most two small reads; call from a blocking context or accept the cost.
    pub fn identify(path: &Path) -> FfmpegResult<MediaInput> {
        let header = read_media_header(path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                FfmpegError::InputNotFound {
                    path: path.to_path_buf(),
                }
            } else {
                FfmpegError::io(format!("reading {}", path.display()), source)
            }
        })?;
        let not_media = |what: NotMedia| FfmpegError::NotMedia {
            input: path.to_string_lossy().into_owned(),
            looks_like: what.describe().to_owned(),
        };
        let sniffed = sniff_media(&header).map_err(not_media)?;
        match InputFormat::from_extension(path) {
            Some(expected) if !formats_agree(expected, sniffed) => Err(FfmpegError::NotMedia {
                input: path.to_string_lossy().into_owned(),
                looks_like: format!(
                    "{} data in a file named as {}",
                    sniffed.demuxer(),
                    expected.demuxer()
                ),
            }),
            Some(expected) => Ok(MediaInput::new(path, expected)),
            None => Ok(MediaInput::new(path, sniffed)),
        }
    }
}

/// Same demuxer, or audio formats the extension cannot tell apart (an `.aac` holding MP3 is still
/// refused; AC-3 and E-AC-3 share a sync word).
fn formats_agree(expected: InputFormat, sniffed: InputFormat) -> bool {
    expected == sniffed
        || matches!(
            (expected, sniffed),
            (InputFormat::Ac3, InputFormat::Eac3) | (InputFormat::Eac3, InputFormat::Ac3)
        )
}

/// The first [`SNIFF_BYTES`] of a file, or, when it starts with ID3 tags longer than that, the
/// bytes after the tags (prefixed by nothing: the caller sniffs what follows the tags).
pub fn read_media_header(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let mut header = Vec::with_capacity(SNIFF_BYTES);
    (&mut file)
        .take(SNIFF_BYTES as u64)
        .read_to_end(&mut header)?;
    let skipped = id3_tags_length(&header);
    if skipped > 0 && skipped + 16 > header.len() {
        file.seek(SeekFrom::Start(skipped as u64))?;
        let mut after_tags = Vec::with_capacity(SNIFF_BYTES);
        file.take(SNIFF_BYTES as u64).read_to_end(&mut after_tags)?;
        // Keep the sniffer's view: a minimal ID3 header of size 0, then what follows the tags.
        let mut rebuilt = b"ID3\x04\x00\x00\x00\x00\x00\x00".to_vec();
        rebuilt.extend_from_slice(&after_tags);
        return Ok(rebuilt);
    }
    Ok(header)
}

/// Bytes that are not media, by what they look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotMedia {
    HlsPlaylist,
    XmlDocument,
    WebPage,
    ConcatList,
    Empty,
    Unrecognised,
}

impl NotMedia {
    pub fn describe(self) -> &'static str {
        match self {
            NotMedia::HlsPlaylist => "an HLS playlist (#EXTM3U), not media",
            NotMedia::XmlDocument => "an XML document (a DASH manifest?), not media",
            NotMedia::WebPage => "a web page, not media",
            NotMedia::ConcatList => "an ffmpeg concat list, not media",
            NotMedia::Empty => "an empty file",
            NotMedia::Unrecognised => "data of no known media format",
        }
    }
}

/// Length of the ID3v2 tags at the start of `bytes` (0 when there are none).
fn id3_tags_length(bytes: &[u8]) -> usize {
    let mut offset = 0usize;
    // Bounded: each tag is at least 10 bytes and the loop stops at the end of the sample.
    while let Some(header) = bytes.get(offset..offset + 10) {
        if &header[..3] != b"ID3" {
            break;
        }
        let size_bytes = &header[6..10];
        if size_bytes.iter().any(|byte| byte & 0x80 != 0) {
            break;
        }
        let size = size_bytes
            .iter()
            .fold(0usize, |total, byte| (total << 7) | usize::from(*byte));
        let footer = if header[5] & 0x10 != 0 { 10 } else { 0 };
        offset = offset.saturating_add(10 + size + footer);
    }
    offset
}

/// ISO BMFF box types that may start an MP4 / fragmented-MP4 file or segment.
const MP4_LEADING_BOXES: [&[u8; 4]; 11] = [
    b"ftyp", b"styp", b"moov", b"moof", b"mdat", b"sidx", b"emsg", b"prft", b"free", b"skip",
    b"wide",
];

/// The media format `bytes` (the start of a file) are in, or what they are instead.
pub fn sniff_media(bytes: &[u8]) -> Result<InputFormat, NotMedia> {
    if bytes.is_empty() {
        return Err(NotMedia::Empty);
    }
    let trimmed = trim_text_start(bytes);
    if starts_with_ignoring_case(trimmed, b"#EXTM3U") {
        return Err(NotMedia::HlsPlaylist);
    }
    if starts_with_ignoring_case(trimmed, b"<?xml") || starts_with_ignoring_case(trimmed, b"<MPD") {
        return Err(NotMedia::XmlDocument);
    }
    if starts_with_ignoring_case(trimmed, b"<!DOCTYPE")
        || starts_with_ignoring_case(trimmed, b"<html")
    {
        return Err(NotMedia::WebPage);
    }
    if starts_with_ignoring_case(trimmed, b"ffconcat")
        || starts_with_ignoring_case(trimmed, b"file ")
    {
        return Err(NotMedia::ConcatList);
    }
    if is_mpegts(bytes) {
        return Ok(InputFormat::MpegTs);
    }
    if is_mp4(bytes) {
        return Ok(InputFormat::Mp4);
    }
    if bytes.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        return Ok(InputFormat::Matroska);
    }
    if bytes.starts_with(b"FLV\x01") {
        return Ok(InputFormat::Flv);
    }
    let after_tags = bytes.get(id3_tags_length(bytes)..).unwrap_or_default();
    if after_tags.len() != bytes.len() && is_mpegts(after_tags) {
        return Ok(InputFormat::MpegTs);
    }
    match after_tags {
        [0xFF, second, ..] if second & 0xF6 == 0xF0 => Ok(InputFormat::Adts),
        [0xFF, second, ..] if second & 0xE0 == 0xE0 && (second >> 1) & 0x03 != 0 => {
            Ok(InputFormat::Mp3)
        }
        [0x0B, 0x77, _, _, _, fifth, ..] => {
            if fifth >> 3 > 10 {
                Ok(InputFormat::Eac3)
            } else {
                Ok(InputFormat::Ac3)
            }
        }
        _ => Err(NotMedia::Unrecognised),
    }
}

fn trim_text_start(bytes: &[u8]) -> &[u8] {
    let without_bom = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    let start = without_bom
        .iter()
        .position(|byte| !byte.is_ascii_whitespace())
        .unwrap_or(without_bom.len());
    without_bom.get(start..).unwrap_or_default()
}

fn starts_with_ignoring_case(bytes: &[u8], prefix: &[u8]) -> bool {
    bytes
        .get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

/// A sync byte every 188 bytes through the sample (at least one whole packet).
fn is_mpegts(bytes: &[u8]) -> bool {
    bytes.len() >= TS_PACKET_BYTES
        && bytes
            .iter()
            .step_by(TS_PACKET_BYTES)
            .take(64)
            .all(|byte| *byte == 0x47)
}

/// The first box has a known type and a plausible size.
fn is_mp4(bytes: &[u8]) -> bool {
    let Some(header) = bytes.get(..8) else {
        return false;
    };
    let size = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let box_type = &header[4..8];
    (size == 0 || size == 1 || size >= 8)
        && MP4_LEADING_BOXES
            .iter()
            .any(|known| known.as_slice() == box_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts_packets(count: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; TS_PACKET_BYTES * count];
        for packet in bytes.chunks_mut(TS_PACKET_BYTES) {
            packet[0] = 0x47;
        }
        bytes
    }

    #[test]
    fn playlists_manifests_pages_and_lists_are_not_media() {
        let cases: [(&[u8], NotMedia); 7] = [
            (
                b"#EXTM3U\n#EXTINF:2,\nfile:///r/other/main-0001.ts\n",
                NotMedia::HlsPlaylist,
            ),
            (
                b"\xEF\xBB\xBF  #extm3u\n../other/x.ts\n",
                NotMedia::HlsPlaylist,
            ),
            (
                b"<?xml version=\"1.0\"?><MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\">",
                NotMedia::XmlDocument,
            ),
            (b"<MPD type=\"static\">", NotMedia::XmlDocument),
            (b"<!doctype html><html>", NotMedia::WebPage),
            (
                b"ffconcat version 1.0\nfile '/etc/passwd'\n",
                NotMedia::ConcatList,
            ),
            (b"", NotMedia::Empty),
        ];
        for (bytes, expected) in cases {
            assert_eq!(sniff_media(bytes), Err(expected), "{bytes:?}");
        }
        assert_eq!(sniff_media(b"hello world"), Err(NotMedia::Unrecognised));
    }

    #[test]
    fn media_formats_are_told_from_their_first_bytes() {
        assert_eq!(sniff_media(&ts_packets(3)), Ok(InputFormat::MpegTs));
        let mut broken_ts = ts_packets(3);
        broken_ts[TS_PACKET_BYTES] = 0x00;
        assert_eq!(sniff_media(&broken_ts), Err(NotMedia::Unrecognised));
        assert_eq!(
            sniff_media(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"),
            Ok(InputFormat::Mp4)
        );
        assert_eq!(
            sniff_media(b"\x00\x00\x00\x10moof\x00\x00\x00\x00\x00\x00\x00\x00"),
            Ok(InputFormat::Mp4)
        );
        assert_eq!(
            sniff_media(b"\x00\x00\x00\x10ftyX\x00\x00\x00\x00"),
            Err(NotMedia::Unrecognised)
        );
        assert_eq!(
            sniff_media(b"\x1A\x45\xDF\xA3\x9F\x42\x86\x81"),
            Ok(InputFormat::Matroska)
        );
        assert_eq!(
            sniff_media(b"FLV\x01\x05\x00\x00\x00\x09"),
            Ok(InputFormat::Flv)
        );
        assert_eq!(
            sniff_media(b"\xFF\xF1\x50\x80\x02\x1F\xFC"),
            Ok(InputFormat::Adts)
        );
        assert_eq!(sniff_media(b"\xFF\xFB\x90\x64\x00"), Ok(InputFormat::Mp3));
        assert_eq!(
            sniff_media(b"\x0B\x77\x00\x00\x00\x40\x00"),
            Ok(InputFormat::Ac3)
        );
        assert_eq!(
            sniff_media(b"\x0B\x77\x00\x00\x00\x80\x00"),
            Ok(InputFormat::Eac3)
        );
    }

    #[test]
    fn id3_tags_are_skipped_before_packed_audio_and_ts() {
        let mut packed_audio = b"ID3\x04\x00\x00\x00\x00\x00\x05abcde".to_vec();
        packed_audio.extend_from_slice(b"\xFF\xF1\x50\x80\x02\x1F\xFC");
        assert_eq!(sniff_media(&packed_audio), Ok(InputFormat::Adts));
        let mut tagged_ts = b"ID3\x04\x00\x00\x00\x00\x00\x00".to_vec();
        tagged_ts.extend_from_slice(&ts_packets(2));
        assert_eq!(sniff_media(&tagged_ts), Ok(InputFormat::MpegTs));
        // A tag that claims more than the sample holds does not panic.
        assert_eq!(
            sniff_media(b"ID3\x04\x00\x00\x7F\x7F\x7F\x7F"),
            Err(NotMedia::Unrecognised)
        );
        let mut playlist_after_tag = b"ID3\x04\x00\x00\x00\x00\x00\x00".to_vec();
        playlist_after_tag.extend_from_slice(b"#EXTM3U\n");
        assert_eq!(
            sniff_media(&playlist_after_tag),
            Err(NotMedia::Unrecognised)
        );
    }

    #[test]
    fn extensions_name_the_demuxer() {
        for (name, format) in [
            ("main-0001.ts", Some(InputFormat::MpegTs)),
            ("main-0001.mp4", Some(InputFormat::Mp4)),
            ("recording-0001.M4A", Some(InputFormat::Mp4)),
            ("x.webm", Some(InputFormat::Matroska)),
            ("x.aac", Some(InputFormat::Adts)),
            ("audio-0001.bin", None),
            ("noextension", None),
        ] {
            assert_eq!(
                InputFormat::from_extension(Path::new(name)),
                format,
                "{name}"
            );
        }
        assert_eq!(InputFormat::Mp4.demuxer(), "mov");
        assert!(InputFormat::MpegTs.carries_adts_aac());
        assert!(!InputFormat::Mp4.carries_adts_aac());
    }

    #[test]
    fn identify_checks_the_bytes_against_the_extension() -> io::Result<()> {
        let directory = tempfile::tempdir()?;
        let playlist = directory.path().join("main-0001.ts");
        std::fs::write(&playlist, b"#EXTM3U\n#EXTINF:2,\n../other/x.ts\n")?;
        let error = MediaInput::identify(&playlist).expect_err("a playlist is not a part");
        assert!(matches!(error, FfmpegError::NotMedia { .. }), "{error}");
        assert!(error.to_string().contains("HLS playlist"), "{error}");

        let ts_named_mp4 = directory.path().join("main-0002.mp4");
        std::fs::write(&ts_named_mp4, ts_packets(2))?;
        let error = MediaInput::identify(&ts_named_mp4).expect_err("mismatch");
        assert!(error.to_string().contains("mpegts data"), "{error}");

        let raw = directory.path().join("audio-0001.bin");
        std::fs::write(&raw, b"\xFF\xF1\x50\x80\x02\x1F\xFC")?;
        assert_eq!(
            MediaInput::identify(&raw).map(|input| input.format).ok(),
            Some(InputFormat::Adts)
        );

        let missing = directory.path().join("missing.ts");
        assert!(matches!(
            MediaInput::identify(&missing),
            Err(FfmpegError::InputNotFound { .. })
        ));

        // ID3 tags longer than the sample: the bytes after them decide.
        let long_tag = directory.path().join("audio-0002.bin");
        let tag_size = SNIFF_BYTES + 100;
        let mut bytes = b"ID3\x04\x00\x00".to_vec();
        for shift in [21u32, 14, 7, 0] {
            bytes.push(((tag_size >> shift) & 0x7F) as u8);
        }
        bytes.extend(std::iter::repeat_n(0u8, tag_size));
        bytes.extend_from_slice(b"\xFF\xF1\x50\x80\x02\x1F\xFC");
        std::fs::write(&long_tag, bytes)?;
        assert_eq!(
            MediaInput::identify(&long_tag)
                .map(|input| input.format)
                .ok(),
            Some(InputFormat::Adts)
        );
        Ok(())
    }
}
