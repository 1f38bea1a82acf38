//! The first wall against hostile origins: every body is checked to be media of the kind the
//! track expects before a byte of it reaches a part file. A "segment" that is an HLS playlist, a
//! DASH manifest, an HTML page or anything else is refused with a reason, so it can never make a
//! demuxer open another file or URL later. Pure: bytes in, verdict out.
//!
//! What passes:
//! - MPEG-TS: optional leading ID3 tag(s), then a 0x47 sync byte at every 188-byte boundary;
//!   a partial trailing packet is tolerated.
//! - fMP4 fragments: a sequence of known top-level boxes (`styp`, `sidx`, `ssix`, `moof`, `mdat`,
//!   `emsg`, `prft`, `free`, `skip`, `uuid`) that covers the body exactly and holds a `moof`.
//! - Self-contained fMP4 segments (no `EXT-X-MAP`): the same, with `ftyp`/`moov` allowed too.
//! - Packed audio: optional ID3 tag(s), then ADTS AAC, MPEG audio (MP3) or AC-3/E-AC-3 frames,
//!   walked frame by frame by the length each header declares: the frames must cover the body
//!   exactly (ID3 tags between them allowed), so a frame header followed by anything else (a
//!   playlist behind four bytes of an MP3 header) is refused.
//! - WebVTT, only for subtitle tracks.
//! - Init segments (`EXT-X-MAP`): boxes `ftyp` and `moov` (with `free`/`skip`/`uuid`/`sidx`/`styp`
//!   around them), nothing else.

/// What a body is expected to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaExpectation {
    /// A media segment of a stream with an init segment: fMP4 fragments only.
    FragmentAfterInit,
    /// A media segment without an init segment: TS, packed audio or self-contained fMP4.
    SelfContainedSegment,
    /// A segment of a subtitle track: WebVTT (or TS/fMP4 carrying it).
    Subtitle,
    /// The `EXT-X-MAP` init section.
    InitSegment,
}

/// What a body was found to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaFormat {
    MpegTs,
    FragmentedMp4,
    AdtsAac,
    MpegAudio,
    Ac3,
    WebVtt,
    InitSegment,
}

/// Why a body is not media. The text is what the ledger and the logs say after "not media: ".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NotMediaReason(pub String);

const TS_PACKET_LENGTH: usize = 188;
const TS_SYNC_BYTE: u8 = 0x47;
/// ID3 tags allowed in a row before the media (timed metadata packagers write one).
const MAXIMUM_LEADING_ID3_TAGS: usize = 4;

const FRAGMENT_BOXES: &[&[u8; 4]] = &[
    b"styp", b"sidx", b"ssix", b"moof", b"mdat", b"emsg", b"prft", b"free", b"skip", b"uuid",
];
const SELF_CONTAINED_EXTRA_BOXES: &[&[u8; 4]] = &[b"ftyp", b"moov", b"mfra", b"meta"];
const INIT_BOXES: &[&[u8; 4]] = &[
    b"ftyp", b"moov", b"free", b"skip", b"uuid", b"sidx", b"styp", b"meta",
];

/// Checks one body against what the track expects.
pub fn check_media_body(
    body: &[u8],
    expectation: MediaExpectation,
) -> Result<MediaFormat, NotMediaReason> {
    let mut source = body;
    check_media_source(&mut source, expectation)
}

/// [`check_media_body`] for a body spilled to a file (a large segment): read through a window
/// of [`FILE_WINDOW_BYTES`], never whole.
pub fn check_media_file(
    file: &mut std::fs::File,
    expectation: MediaExpectation,
) -> Result<MediaFormat, NotMediaReason> {
    let length = file
        .metadata()
        .map_err(|error| NotMediaReason(format!("the spilled body could not be read: {error}")))?
        .len();
    let mut source = FileWindow {
        file,
        length: usize::try_from(length).unwrap_or(usize::MAX),
        window_start: 0,
        window: Vec::new(),
    };
    check_media_source(&mut source, expectation)
}

/// Bytes of a file read at once by [`check_media_file`].
pub const FILE_WINDOW_BYTES: usize = 1024 * 1024;

/// A body to check: in memory or in a file.
trait BodySource {
    fn length(&self) -> usize;
    /// Up to `wanted` bytes from `offset` (fewer at the end; empty past it). A read error is an
    /// empty answer: the check then refuses the body.
    fn bytes_at(&mut self, offset: usize, wanted: usize) -> &[u8];
    /// The whole body when it is in memory (walks over every packet read it directly).
    fn whole(&self) -> Option<&[u8]> {
        None
    }
}

impl BodySource for &[u8] {
    fn length(&self) -> usize {
        self.len()
    }

    fn bytes_at(&mut self, offset: usize, wanted: usize) -> &[u8] {
        let start = offset.min(self.len());
        let end = offset.saturating_add(wanted).min(self.len());
        &self[start..end]
    }

    fn whole(&self) -> Option<&[u8]> {
        Some(self)
    }
}

struct FileWindow<'a> {
    file: &'a mut std::fs::File,
    length: usize,
    window_start: usize,
    window: Vec<u8>,
}

impl BodySource for FileWindow<'_> {
    fn length(&self) -> usize {
        self.length
    }

    fn bytes_at(&mut self, offset: usize, wanted: usize) -> &[u8] {
        use std::io::{Read, Seek, SeekFrom};
        let end = offset.saturating_add(wanted).min(self.length);
        let window_end = self.window_start + self.window.len();
        if offset < self.window_start || end > window_end {
            self.window.clear();
            self.window_start = offset;
            let read_length = FILE_WINDOW_BYTES
                .max(wanted)
                .min(self.length.saturating_sub(offset));
            if self.file.seek(SeekFrom::Start(offset as u64)).is_err() {
                return &[];
            }
            let mut reader = (&mut *self.file).take(read_length as u64);
            if reader.read_to_end(&mut self.window).is_err() {
                self.window.clear();
                return &[];
            }
        }
        let start = offset
            .saturating_sub(self.window_start)
            .min(self.window.len());
        let stop = end
            .saturating_sub(self.window_start)
            .min(self.window.len())
            .max(start);
        &self.window[start..stop]
    }
}

fn check_media_source(
    body: &mut dyn BodySource,
    expectation: MediaExpectation,
) -> Result<MediaFormat, NotMediaReason> {
    if body.length() == 0 {
        return Err(NotMediaReason("the body is empty".to_string()));
    }
    match expectation {
        MediaExpectation::InitSegment => check_init_segment(body),
        MediaExpectation::FragmentAfterInit => {
            check_mp4_boxes(body, 0, FRAGMENT_BOXES).map_err(|reason| describe(body, reason))
        }
        MediaExpectation::SelfContainedSegment => check_self_contained(body),
        MediaExpectation::Subtitle => {
            if is_webvtt(body.bytes_at(0, 16)) {
                Ok(MediaFormat::WebVtt)
            } else {
                check_self_contained(body)
            }
        }
    }
}

fn check_self_contained(body: &mut dyn BodySource) -> Result<MediaFormat, NotMediaReason> {
    let start = id3_tags_length(body, 0);
    let head = body.bytes_at(start, 8).to_vec();
    if head.is_empty() {
        // An ID3 tag alone carries no media.
        return Err(NotMediaReason(
            "only an ID3 tag, no media after it".to_string(),
        ));
    }
    if head[0] == TS_SYNC_BYTE {
        return check_transport_stream(body, start).map_err(|reason| describe(body, reason));
    }
    if is_adts_header(&head) {
        return check_audio_frames(body, start, AudioFraming::Adts)
            .map_err(|reason| describe(body, reason));
    }
    if is_mpeg_audio_header(&head) {
        return check_audio_frames(body, start, AudioFraming::MpegAudio)
            .map_err(|reason| describe(body, reason));
    }
    if head.len() >= 2 && head[0] == 0x0B && head[1] == 0x77 {
        return check_audio_frames(body, start, AudioFraming::Ac3)
            .map_err(|reason| describe(body, reason));
    }
    if head.len() >= 8 {
        let mut allowed: Vec<&[u8; 4]> = FRAGMENT_BOXES.to_vec();
        allowed.extend_from_slice(SELF_CONTAINED_EXTRA_BOXES);
        if let Ok(format) = check_mp4_boxes(body, start, &allowed) {
            return Ok(format);
        }
    }
    Err(describe(
        body,
        "neither MPEG-TS, fMP4, ADTS, MP3 nor AC-3".to_string(),
    ))
}

/// A short description of what a refused body looks like, for the ledger and the logs.
fn describe(body: &mut dyn BodySource, reason: String) -> NotMediaReason {
    let start = skip_utf8_bom(body.bytes_at(0, 67));
    let text_start: String = start
        .iter()
        .take(64)
        .map(|byte| *byte as char)
        .collect::<String>()
        .to_ascii_lowercase();
    let looks_like = if text_start.trim_start().starts_with("#extm3u") {
        Some("an HLS playlist")
    } else if text_start.contains("<mpd") || text_start.contains("urn:mpeg:dash") {
        Some("a DASH manifest")
    } else if text_start.contains("<html") || text_start.contains("<!doctype") {
        Some("an HTML page")
    } else if text_start.trim_start().starts_with("<?xml") {
        Some("an XML document")
    } else if text_start.trim_start().starts_with('{') {
        Some("a JSON document")
    } else {
        None
    };
    match looks_like {
        Some(kind) => NotMediaReason(format!("the body is {kind}")),
        None => NotMediaReason(reason),
    }
}

fn skip_utf8_bom(body: &[u8]) -> &[u8] {
    body.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(body)
}

fn is_webvtt(body: &[u8]) -> bool {
    let start = skip_utf8_bom(body);
    match start.strip_prefix(b"WEBVTT") {
        Some(rest) => rest.is_empty() || matches!(rest[0], b' ' | b'\t' | b'\n' | b'\r'),
        None => false,
    }
}

/// Bytes taken by the ID3v2 tags (`ID3`, version, flags, 28-bit syncsafe size, optional footer)
/// at `offset`: up to the end of the body when a tag claims more than there is.
fn id3_tags_length(body: &mut dyn BodySource, offset: usize) -> usize {
    let mut position = offset;
    for _ in 0..MAXIMUM_LEADING_ID3_TAGS {
        let header = body.bytes_at(position, 10);
        if header.len() < 10 || &header[0..3] != b"ID3" {
            break;
        }
        let size_bytes = &header[6..10];
        if size_bytes.iter().any(|byte| byte & 0x80 != 0) {
            break;
        }
        let size = size_bytes
            .iter()
            .fold(0usize, |size, byte| (size << 7) | usize::from(*byte));
        let footer = if header[5] & 0x10 != 0 { 10 } else { 0 };
        let total = 10usize.saturating_add(size).saturating_add(footer);
        let remaining = body.length().saturating_sub(position);
        if total > remaining {
            return body.length().saturating_sub(offset);
        }
        position += total;
    }
    position - offset
}

/// The length of the one ID3v2 tag at `offset` when it ends inside the body.
fn whole_id3_tag_length(body: &mut dyn BodySource, offset: usize) -> Option<usize> {
    let header = body.bytes_at(offset, 10);
    if header.len() < 10 || &header[0..3] != b"ID3" {
        return None;
    }
    let size_bytes = &header[6..10];
    if size_bytes.iter().any(|byte| byte & 0x80 != 0) {
        return None;
    }
    let size = size_bytes
        .iter()
        .fold(0usize, |size, byte| (size << 7) | usize::from(*byte));
    let footer = if header[5] & 0x10 != 0 { 10 } else { 0 };
    let total = 10 + size + footer;
    (total <= body.length().saturating_sub(offset)).then_some(total)
}

fn check_transport_stream(body: &mut dyn BodySource, start: usize) -> Result<MediaFormat, String> {
    let length = body.length().saturating_sub(start);
    if length < TS_PACKET_LENGTH {
        return Err(format!(
            "an MPEG-TS body shorter than one packet ({length} bytes)"
        ));
    }
    let trailing = length % TS_PACKET_LENGTH;
    if trailing != 0 {
        // A partial packet at the end would carry foreign bytes into the part and misalign the
        // segment after it.
        return Err(format!(
            "an MPEG-TS body that does not end on a packet boundary ({trailing} bytes after the last whole packet)"
        ));
    }
    let missing_sync = |index: usize| {
        let offset = index * TS_PACKET_LENGTH;
        format!("MPEG-TS sync byte missing at packet {index} (offset {offset})")
    };
    if let Some(packets) = body.whole().and_then(|whole| whole.get(start..)) {
        return match packets
            .chunks_exact(TS_PACKET_LENGTH)
            .position(|packet| packet.first() != Some(&TS_SYNC_BYTE))
        {
            Some(index) => Err(missing_sync(index)),
            None => Ok(MediaFormat::MpegTs),
        };
    }
    for index in 0..length / TS_PACKET_LENGTH {
        let offset = index * TS_PACKET_LENGTH;
        if body.bytes_at(start + offset, 1).first() != Some(&TS_SYNC_BYTE) {
            return Err(missing_sync(index));
        }
    }
    Ok(MediaFormat::MpegTs)
}

fn is_adts_header(bytes: &[u8]) -> bool {
    // 12-bit sync 0xFFF, layer 00.
    bytes.len() >= 7 && bytes[0] == 0xFF && bytes[1] & 0xF6 == 0xF0
}

/// The packed-audio framings walked frame by frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AudioFraming {
    Adts,
    MpegAudio,
    Ac3,
}

impl AudioFraming {
    fn name(self) -> &'static str {
        match self {
            AudioFraming::Adts => "ADTS",
            AudioFraming::MpegAudio => "MPEG audio",
            AudioFraming::Ac3 => "AC-3",
        }
    }

    fn format(self) -> MediaFormat {
        match self {
            AudioFraming::Adts => MediaFormat::AdtsAac,
            AudioFraming::MpegAudio => MediaFormat::MpegAudio,
            AudioFraming::Ac3 => MediaFormat::Ac3,
        }
    }

    /// Bytes of a frame header this framing reads.
    fn header_length(self) -> usize {
        match self {
            AudioFraming::Adts => 7,
            AudioFraming::MpegAudio => 4,
            AudioFraming::Ac3 => 6,
        }
    }

    /// The length of the frame whose header is `header`, or why it is not one.
    fn frame_length(self, header: &[u8]) -> Result<usize, String> {
        match self {
            AudioFraming::Adts => adts_frame_length(header),
            AudioFraming::MpegAudio => mpeg_audio_frame_length(header),
            AudioFraming::Ac3 => ac3_frame_length(header),
        }
    }
}

/// Walks the frames of a packed-audio body from `start`: every frame header must be of
/// `framing`, and the frames (with ID3 tags between them) must end exactly at the body's end.
/// A frame cut short at the end, like a partial TS packet, would carry foreign bytes into the
/// part and misalign the segment after it.
fn check_audio_frames(
    body: &mut dyn BodySource,
    start: usize,
    framing: AudioFraming,
) -> Result<MediaFormat, String> {
    let name = framing.name();
    let mut offset = 0usize;
    let mut frames = 0usize;
    let length = body.length().saturating_sub(start);
    while offset < length {
        let header = body
            .bytes_at(start + offset, framing.header_length())
            .to_vec();
        let frame_length = match framing.frame_length(&header) {
            Ok(frame_length) => frame_length,
            Err(reason) => {
                // Timed ID3 metadata may sit between frames (whole tags only).
                if let Some(tag_length) = whole_id3_tag_length(body, start + offset) {
                    offset += tag_length;
                    continue;
                }
                return Err(format!("{name} sync lost at offset {offset}: {reason}"));
            }
        };
        if frame_length > length - offset {
            return Err(format!(
                "an {name} frame of {frame_length} bytes at offset {offset}, {} bytes remain",
                length - offset
            ));
        }
        offset += frame_length;
        frames += 1;
    }
    if frames == 0 {
        return Err(format!("no {name} frame"));
    }
    Ok(framing.format())
}

fn adts_frame_length(header: &[u8]) -> Result<usize, String> {
    if !is_adts_header(header) {
        return Err("not an ADTS header".to_string());
    }
    let frame_length = (usize::from(header[3] & 0x03) << 11)
        | (usize::from(header[4]) << 3)
        | (usize::from(header[5]) >> 5);
    // The header itself (7 bytes, 9 with a CRC) and at least one byte of payload.
    if frame_length <= 7 {
        return Err(format!("an ADTS frame of {frame_length} bytes"));
    }
    Ok(frame_length)
}

fn is_mpeg_audio_header(bytes: &[u8]) -> bool {
    if bytes.len() < 4 || bytes[0] != 0xFF || bytes[1] & 0xE0 != 0xE0 {
        return false;
    }
    let version = (bytes[1] >> 3) & 0x03;
    let layer = (bytes[1] >> 1) & 0x03;
    let bitrate_index = bytes[2] >> 4;
    let sample_rate_index = (bytes[2] >> 2) & 0x03;
    version != 0x01 && layer != 0x00 && bitrate_index != 0x0F && sample_rate_index != 0x03
}

/// kbit/s by bitrate index (1..=14) for MPEG-1 layers I, II, III, then MPEG-2/2.5 layer I and
/// layers II/III.
const MPEG_AUDIO_BITRATES: [[u32; 14]; 5] = [
    [
        32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448,
    ],
    [
        32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
    ],
    [
        32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
    ],
    [
        32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256,
    ],
    [8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
];

fn mpeg_audio_frame_length(header: &[u8]) -> Result<usize, String> {
    if !is_mpeg_audio_header(header) {
        return Err("not an MPEG audio header".to_string());
    }
    // Version: 3 = MPEG-1, 2 = MPEG-2, 0 = MPEG-2.5. Layer: 3 = I, 2 = II, 1 = III.
    let version = (header[1] >> 3) & 0x03;
    let layer = (header[1] >> 1) & 0x03;
    let bitrate_index = usize::from(header[2] >> 4);
    let sample_rate_index = usize::from((header[2] >> 2) & 0x03);
    let padding = u32::from((header[2] >> 1) & 0x01);
    if bitrate_index == 0 {
        return Err("a free-format MPEG audio frame (no length in its header)".to_string());
    }
    let mpeg1 = version == 3;
    let table = match (mpeg1, layer) {
        (true, 3) => 0,
        (true, 2) => 1,
        (true, _) => 2,
        (false, 3) => 3,
        (false, _) => 4,
    };
    let bitrate = MPEG_AUDIO_BITRATES[table][bitrate_index - 1] * 1000;
    let sample_rate = [44_100u32, 48_000, 32_000][sample_rate_index]
        / match version {
            3 => 1,
            2 => 2,
            _ => 4,
        };
    let length = match layer {
        3 => (12 * bitrate / sample_rate + padding) * 4,
        2 => 144 * bitrate / sample_rate + padding,
        _ if mpeg1 => 144 * bitrate / sample_rate + padding,
        _ => 72 * bitrate / sample_rate + padding,
    };
    Ok(length as usize)
}

/// AC-3 frame sizes in 16-bit words by `frmsizecod / 2`, for 48, 44.1 and 32 kHz (44.1 kHz adds
/// one word when `frmsizecod` is odd).
const AC3_FRAME_WORDS: [[u16; 19]; 3] = [
    [
        64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896, 1024, 1152,
        1280,
    ],
    [
        69, 87, 104, 121, 139, 174, 208, 243, 278, 348, 417, 487, 557, 696, 835, 975, 1114, 1253,
        1393,
    ],
    [
        96, 120, 144, 168, 192, 240, 288, 336, 384, 480, 576, 672, 768, 960, 1152, 1344, 1536,
        1728, 1920,
    ],
];

/// The length of an AC-3 (bsid up to 10) or E-AC-3 (bsid 11 to 16) sync frame.
fn ac3_frame_length(header: &[u8]) -> Result<usize, String> {
    if header.len() < 6 || header[0] != 0x0B || header[1] != 0x77 {
        return Err("no AC-3 sync word".to_string());
    }
    let bsid = header[5] >> 3;
    match bsid {
        0..=10 => {
            let sample_rate_code = usize::from(header[4] >> 6);
            let frame_size_code = usize::from(header[4] & 0x3F);
            if sample_rate_code == 3 || frame_size_code >= 38 {
                return Err(format!(
                    "an AC-3 header with reserved codes ({sample_rate_code}, {frame_size_code})"
                ));
            }
            let mut words = AC3_FRAME_WORDS[sample_rate_code][frame_size_code / 2];
            if sample_rate_code == 1 {
                words += (frame_size_code % 2) as u16;
            }
            Ok(usize::from(words) * 2)
        }
        11..=16 => {
            let words = (usize::from(header[2] & 0x07) << 8) | usize::from(header[3]);
            Ok((words + 1) * 2)
        }
        other => Err(format!("an AC-3 header with bitstream id {other}")),
    }
}

/// Walks top-level MP4 boxes from `start`: they must be known and cover the body exactly.
fn check_mp4_boxes(
    body: &mut dyn BodySource,
    start: usize,
    allowed: &[&[u8; 4]],
) -> Result<MediaFormat, String> {
    let types = mp4_box_types(body, start, allowed)?;
    if types.iter().any(|box_type| box_type == b"moof") {
        Ok(MediaFormat::FragmentedMp4)
    } else if types.iter().any(|box_type| box_type == b"moov")
        && types.iter().any(|box_type| box_type == b"mdat")
    {
        // A progressive MP4 as a segment: self-contained.
        Ok(MediaFormat::FragmentedMp4)
    } else {
        Err("MP4 boxes without a movie fragment (moof)".to_string())
    }
}

fn mp4_box_types(
    body: &mut dyn BodySource,
    start: usize,
    allowed: &[&[u8; 4]],
) -> Result<Vec<[u8; 4]>, String> {
    let mut offset = 0usize;
    let mut types = Vec::new();
    let length = body.length().saturating_sub(start);
    while offset < length {
        let remaining = (length - offset) as u64;
        let rest = body.bytes_at(start + offset, 16);
        if rest.len() < 8 {
            return Err(format!("a cut MP4 box header at offset {offset}"));
        }
        let declared = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as u64;
        let box_type = [rest[4], rest[5], rest[6], rest[7]];
        if !allowed.iter().any(|known| **known == box_type) {
            return Err(format!(
                "unexpected MP4 box {:?} at offset {offset}",
                String::from_utf8_lossy(&box_type)
            ));
        }
        let box_length = match declared {
            0 => remaining,
            1 => {
                if rest.len() < 16 {
                    return Err(format!("a cut MP4 box header at offset {offset}"));
                }
                u64::from_be_bytes([
                    rest[8], rest[9], rest[10], rest[11], rest[12], rest[13], rest[14], rest[15],
                ])
            }
            other => other,
        };
        let header_length = if declared == 1 { 16 } else { 8 };
        if box_length < header_length || box_length > remaining {
            return Err(format!(
                "MP4 box {:?} at offset {offset} declares {box_length} bytes, {remaining} remain",
                String::from_utf8_lossy(&box_type),
            ));
        }
        types.push(box_type);
        offset += box_length as usize;
    }
    Ok(types)
}

fn check_init_segment(body: &mut dyn BodySource) -> Result<MediaFormat, NotMediaReason> {
    let types = match mp4_box_types(body, 0, INIT_BOXES) {
        Ok(types) => types,
        Err(reason) => return Err(describe(body, format!("init segment: {reason}"))),
    };
    let has = |wanted: &[u8; 4]| types.iter().any(|box_type| box_type == wanted);
    if has(b"ftyp") && has(b"moov") {
        Ok(MediaFormat::InitSegment)
    } else {
        Err(NotMediaReason(
            "the init segment lacks ftyp or moov".to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mp4_box(box_type: &[u8; 4], payload_length: usize) -> Vec<u8> {
        let mut bytes = ((payload_length + 8) as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(box_type);
        bytes.extend(std::iter::repeat_n(0u8, payload_length));
        bytes
    }

    fn ts_packets(count: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        for _ in 0..count {
            bytes.push(TS_SYNC_BYTE);
            bytes.extend(std::iter::repeat_n(0xFFu8, TS_PACKET_LENGTH - 1));
        }
        bytes
    }

    fn id3_tag(payload_length: usize) -> Vec<u8> {
        let mut bytes = b"ID3\x04\x00\x00".to_vec();
        let size = payload_length as u32;
        bytes.extend_from_slice(&[
            ((size >> 21) & 0x7F) as u8,
            ((size >> 14) & 0x7F) as u8,
            ((size >> 7) & 0x7F) as u8,
            (size & 0x7F) as u8,
        ]);
        bytes.extend(std::iter::repeat_n(0u8, payload_length));
        bytes
    }

    fn adts_frame(length: usize) -> Vec<u8> {
        let mut frame = vec![
            0xFF,
            0xF1,
            0x50,
            0x80 | ((length >> 11) as u8 & 0x03),
            (length >> 3) as u8,
            ((length & 0x07) << 5) as u8 | 0x1F,
            0xFC,
        ];
        frame.extend(std::iter::repeat_n(0u8, length - 7));
        frame
    }

    #[test]
    fn transport_streams_pass_with_or_without_id3() {
        let plain = ts_packets(10);
        assert_eq!(
            check_media_body(&plain, MediaExpectation::SelfContainedSegment),
            Ok(MediaFormat::MpegTs)
        );
        let mut tagged = id3_tag(33);
        tagged.extend_from_slice(&plain);
        assert_eq!(
            check_media_body(&tagged, MediaExpectation::SelfContainedSegment),
            Ok(MediaFormat::MpegTs)
        );
        let mut broken = plain.clone();
        broken[188 * 4] = 0x00;
        let reason = check_media_body(&broken, MediaExpectation::SelfContainedSegment)
            .expect_err("a lost sync is refused");
        assert!(reason.0.contains("sync"), "{reason}");
    }

    #[test]
    fn playlists_manifests_and_pages_are_not_media() {
        let cases: [(&[u8], &str); 5] = [
            (
                b"#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n",
                "an HLS playlist",
            ),
            (
                b"\xEF\xBB\xBF#EXTM3U\n#EXTINF:1,\n../OTHER_JOB/main-0001.ts\n",
                "an HLS playlist",
            ),
            (
                b"<?xml version=\"1.0\"?><MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\">",
                "a DASH manifest",
            ),
            (
                b"<!DOCTYPE html><html><body>hi</body></html>",
                "an HTML page",
            ),
            (b"G not quite a transport stream", "sync"),
        ];
        for (body, expected) in cases {
            for expectation in [
                MediaExpectation::SelfContainedSegment,
                MediaExpectation::FragmentAfterInit,
                MediaExpectation::Subtitle,
                MediaExpectation::InitSegment,
            ] {
                let reason = check_media_body(body, expectation).expect_err("not media is refused");
                if expectation != MediaExpectation::FragmentAfterInit || expected != "sync" {
                    assert!(
                        reason.0.contains(expected) || expected == "sync",
                        "{expectation:?}: {reason}"
                    );
                }
            }
        }
    }

    #[test]
    fn fragments_and_init_segments() {
        let mut fragment = mp4_box(b"styp", 8);
        fragment.extend(mp4_box(b"sidx", 24));
        fragment.extend(mp4_box(b"moof", 100));
        fragment.extend(mp4_box(b"mdat", 1000));
        assert_eq!(
            check_media_body(&fragment, MediaExpectation::FragmentAfterInit),
            Ok(MediaFormat::FragmentedMp4)
        );
        let mut init = mp4_box(b"ftyp", 16);
        init.extend(mp4_box(b"moov", 500));
        assert_eq!(
            check_media_body(&init, MediaExpectation::InitSegment),
            Ok(MediaFormat::InitSegment)
        );
        // An init where a fragment belongs, a fragment where the init belongs, a cut box.
        assert!(check_media_body(&init, MediaExpectation::FragmentAfterInit).is_err());
        assert!(check_media_body(&fragment, MediaExpectation::InitSegment).is_err());
        assert!(
            check_media_body(
                &fragment[..fragment.len() - 1],
                MediaExpectation::FragmentAfterInit
            )
            .is_err()
        );
        // A TS segment behind an EXT-X-MAP is not what the part expects.
        assert!(check_media_body(&ts_packets(3), MediaExpectation::FragmentAfterInit).is_err());
        // An unknown box type (a `dref` pointing elsewhere would live in moov, not top level).
        let mut unknown = mp4_box(b"moof", 10);
        unknown.extend(mp4_box(b"abcd", 10));
        assert!(check_media_body(&unknown, MediaExpectation::FragmentAfterInit).is_err());
    }

    #[test]
    fn packed_audio_and_webvtt() {
        let mut adts = id3_tag(60);
        for _ in 0..5 {
            adts.extend(adts_frame(300));
        }
        assert_eq!(
            check_media_body(&adts, MediaExpectation::SelfContainedSegment),
            Ok(MediaFormat::AdtsAac)
        );
        let mut mp3 = Vec::new();
        for _ in 0..3 {
            mp3.extend(frame_of(&[0xFF, 0xFB, 0x90, 0x64], 417));
        }
        assert_eq!(
            check_media_body(&mp3, MediaExpectation::SelfContainedSegment),
            Ok(MediaFormat::MpegAudio)
        );
        let mut ac3 = frame_of(&[0x0B, 0x77, 0x01, 0x02, 0x08, 0x40], 256);
        ac3.extend(id3_tag(12));
        ac3.extend(frame_of(&[0x0B, 0x77, 0x01, 0x02, 0x08, 0x40], 256));
        assert_eq!(
            check_media_body(&ac3, MediaExpectation::SelfContainedSegment),
            Ok(MediaFormat::Ac3)
        );
        let webvtt = b"WEBVTT\n\n00:00.000 --> 00:01.000\nhello\n";
        assert_eq!(
            check_media_body(webvtt, MediaExpectation::Subtitle),
            Ok(MediaFormat::WebVtt)
        );
        assert!(check_media_body(webvtt, MediaExpectation::SelfContainedSegment).is_err());
        assert!(check_media_body(&id3_tag(10), MediaExpectation::SelfContainedSegment).is_err());
        assert!(check_media_body(b"", MediaExpectation::SelfContainedSegment).is_err());
    }

    /// `header` then zeros up to `length` bytes.
    fn frame_of(header: &[u8], length: usize) -> Vec<u8> {
        let mut frame = header.to_vec();
        frame.resize(length, 0);
        frame
    }

    /// The frame lengths each header declares, against the standards' tables.
    #[test]
    fn audio_frame_lengths_follow_their_headers() {
        for (header, expected) in [
            // MPEG-1 layer III 128 kbit/s 44.1 kHz, without and with padding.
            (&[0xFF, 0xFB, 0x90, 0x00][..], 417),
            (&[0xFF, 0xFB, 0x92, 0x00][..], 418),
            // MPEG-2 layer III 64 kbit/s 22.05 kHz: 72 * 64000 / 22050.
            (&[0xFF, 0xF3, 0x80, 0x00][..], 208),
            // MPEG-1 layer II 192 kbit/s 48 kHz.
            (&[0xFF, 0xFD, 0xA4, 0x00][..], 576),
            // MPEG-1 layer I 384 kbit/s 48 kHz: (12 * 384000 / 48000) * 4.
            (&[0xFF, 0xFF, 0xC4, 0x00][..], 384),
            // MPEG-2.5 layer III 8 kbit/s 8 kHz.
            (&[0xFF, 0xE3, 0x18, 0x00][..], 72),
        ] {
            assert_eq!(
                mpeg_audio_frame_length(header),
                Ok(expected),
                "{header:02x?}"
            );
        }
        for (header, expected) in [
            // AC-3 48 kHz frmsizecod 8, 44.1 kHz frmsizecod 9 (odd: one more word), 32 kHz 37.
            (&[0x0B, 0x77, 0, 0, 0x08, 0x40][..], 256),
            (&[0x0B, 0x77, 0, 0, 0x49, 0x40][..], 280),
            (&[0x0B, 0x77, 0, 0, 0xA5, 0x40][..], 3840),
            // E-AC-3 (bsid 16), frmsiz 0x2FF: 768 words.
            (&[0x0B, 0x77, 0x02, 0xFF, 0x3F, 0x80][..], 1536),
        ] {
            assert_eq!(ac3_frame_length(header), Ok(expected), "{header:02x?}");
        }
        // Free format, reserved sample rates and frame sizes, an unknown bitstream id.
        assert!(mpeg_audio_frame_length(&[0xFF, 0xFB, 0x00, 0x00]).is_err());
        assert!(ac3_frame_length(&[0x0B, 0x77, 0, 0, 0xC8, 0x40]).is_err());
        assert!(ac3_frame_length(&[0x0B, 0x77, 0, 0, 0x26, 0x40]).is_err());
        assert!(ac3_frame_length(&[0x0B, 0x77, 0, 0, 0x08, 0xF8]).is_err());
    }

    /// A frame header followed by something else, a frame cut at the end, a trailing partial
    /// header, an ID3 tag claiming more than the body: refused for every framing. The first
    /// round looked at the MP3 and AC-3 headers alone and let an ADTS frame run past the end,
    /// so a playlist behind four bytes of an MP3 header passed as media.
    #[test]
    fn audio_bodies_must_be_whole_frames() {
        let playlist = b"#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n".to_vec();
        let mp3_header = [0xFF, 0xFB, 0x90, 0x00];
        let ac3_header = [0x0B, 0x77, 0x01, 0x02, 0x08, 0x40];
        let mut adts_long_frame = adts_frame(8191);
        adts_long_frame.truncate(7);
        for (frame, header) in [
            (frame_of(&mp3_header, 417), mp3_header.to_vec()),
            (frame_of(&ac3_header, 256), ac3_header.to_vec()),
            (adts_frame(300), adts_long_frame),
        ] {
            let mut behind_a_header = header.clone();
            behind_a_header.extend_from_slice(&playlist);
            let mut two_frames_and_a_playlist = frame.repeat(2);
            two_frames_and_a_playlist.extend_from_slice(&playlist);
            let mut cut = frame.repeat(3);
            cut.truncate(cut.len() - 10);
            let mut partial_header = frame.repeat(2);
            partial_header.extend_from_slice(&header[..3]);
            let mut overlong_tag = frame.clone();
            overlong_tag.extend(id3_tag(100));
            overlong_tag.truncate(overlong_tag.len() - 1);
            for body in [
                behind_a_header,
                two_frames_and_a_playlist,
                cut,
                partial_header,
                overlong_tag,
            ] {
                let verdict = check_media_body(&body, MediaExpectation::SelfContainedSegment);
                assert!(verdict.is_err(), "{:02x?}: {verdict:?}", &body[..8]);
            }
        }
    }

    /// A spilled body is checked through a window, with the same verdicts as in memory.
    #[test]
    fn files_get_the_same_verdicts_as_memory() {
        use std::io::Write;
        let mut large_ts = id3_tag(40);
        large_ts.extend(ts_packets(3 * FILE_WINDOW_BYTES / TS_PACKET_LENGTH + 7));
        let mut broken_late = large_ts.clone();
        let last_packet = broken_late.len() - TS_PACKET_LENGTH;
        broken_late[last_packet] = 0x00;
        let mut fragment = mp4_box(b"moof", 100);
        fragment.extend(mp4_box(b"mdat", 2 * FILE_WINDOW_BYTES + 5));
        let mut adts = Vec::new();
        while adts.len() < FILE_WINDOW_BYTES + 4096 {
            adts.extend(adts_frame(300));
            if adts.len() % 7 == 0 {
                adts.extend(id3_tag(20));
            }
        }
        for (body, expectation) in [
            (large_ts, MediaExpectation::SelfContainedSegment),
            (broken_late, MediaExpectation::SelfContainedSegment),
            (fragment.clone(), MediaExpectation::FragmentAfterInit),
            (
                fragment[..fragment.len() - 1].to_vec(),
                MediaExpectation::FragmentAfterInit,
            ),
            (adts, MediaExpectation::SelfContainedSegment),
            (
                b"#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n".to_vec(),
                MediaExpectation::SelfContainedSegment,
            ),
        ] {
            let mut file = tempfile::tempfile().expect("tempfile");
            file.write_all(&body).expect("write");
            assert_eq!(
                check_media_file(&mut file, expectation),
                check_media_body(&body, expectation),
                "{expectation:?}, {} bytes",
                body.len()
            );
        }
    }
}
