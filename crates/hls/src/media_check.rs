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
//! - Packed audio: optional ID3 tag(s), then ADTS AAC frames (walked frame by frame), MPEG audio
//!   (MP3) frame headers, or AC-3/E-AC-3 sync frames.
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
        return check_adts(body, start).map_err(|reason| describe(body, reason));
    }
    if is_mpeg_audio_header(&head) {
        return Ok(MediaFormat::MpegAudio);
    }
    if head.len() >= 5 && head[0] == 0x0B && head[1] == 0x77 {
        return Ok(MediaFormat::Ac3);
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
    for index in 0..length / TS_PACKET_LENGTH {
        let offset = index * TS_PACKET_LENGTH;
        if body.bytes_at(start + offset, 1).first() != Some(&TS_SYNC_BYTE) {
            return Err(format!(
                "MPEG-TS sync byte missing at packet {index} (offset {offset})"
            ));
        }
    }
    Ok(MediaFormat::MpegTs)
}

fn is_adts_header(bytes: &[u8]) -> bool {
    // 12-bit sync 0xFFF, layer 00.
    bytes.len() >= 7 && bytes[0] == 0xFF && bytes[1] & 0xF6 == 0xF0
}

fn check_adts(body: &mut dyn BodySource, start: usize) -> Result<MediaFormat, String> {
    let mut offset = 0usize;
    let mut frames = 0usize;
    let length = body.length().saturating_sub(start);
    while offset < length {
        let rest = body.bytes_at(start + offset, 7);
        if rest.len() < 7 {
            // A partial trailing header: tolerated like a partial TS packet.
            break;
        }
        if !is_adts_header(rest) {
            // Timed ID3 metadata may sit between frames.
            let tags = id3_tags_length(body, start + offset);
            if tags > 0 {
                offset += tags;
                continue;
            }
            return Err(format!("ADTS sync lost at offset {offset}"));
        }
        let frame_length = (usize::from(rest[3] & 0x03) << 11)
            | (usize::from(rest[4]) << 3)
            | (usize::from(rest[5]) >> 5);
        if frame_length < 7 {
            return Err(format!(
                "ADTS frame of {frame_length} bytes at offset {offset}"
            ));
        }
        offset = offset.saturating_add(frame_length);
        frames += 1;
    }
    if frames == 0 {
        return Err("no ADTS frame".to_string());
    }
    Ok(MediaFormat::AdtsAac)
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
        let mp3 = [0xFF, 0xFB, 0x90, 0x64, 0, 0, 0, 0];
        assert_eq!(
            check_media_body(&mp3, MediaExpectation::SelfContainedSegment),
            Ok(MediaFormat::MpegAudio)
        );
        let ac3 = [0x0B, 0x77, 0x01, 0x02, 0x03, 0x04];
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
